"""The model-loading steps of one system (mcq, generate) in a child process of their own, so its host and GPU
memory is returned when it exits; `--config` runs them here one system at a time, and `eval.shard_runs` runs a
system's shards as several such processes at once."""

from __future__ import annotations

import importlib
import multiprocessing
import os
import re
import resource
import sys
import traceback
from pathlib import Path
from typing import Any

STEP_MODULES = {"mcq": "eval.mcq", "generate": "eval.generate"}


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "system"


def peak_rss_mib() -> int:
    """This process's own peak resident memory (VmHWM; ru_maxrss would include a forking parent's peak)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024




def model_steps_child(steps: list[tuple[str, Any]], conn, label: str = "") -> None:
    """Child process: run the model-loading verbs of one system, report exit codes, pid and peak memory."""
    codes: dict[str, int] = {}
    for name, request in steps:
        try:
            codes[name] = int(importlib.import_module(STEP_MODULES[name]).main(request) or 0)
        except Exception as e:  # one broken step is that step's failure, not the end of the other steps
            codes[name] = 1
            log = Path(request.output) / f"{name}.error.log"
            try:
                log.parent.mkdir(parents=True, exist_ok=True)
                log.write_text(traceback.format_exc(), encoding="utf-8")
                where = f"the traceback is in {log}"
            except OSError:
                where = "its traceback could not be written"
            from eval.common import redact

            cause = (redact.text(str(e), redact.env_secrets()).strip().splitlines() or [""])[0][:300]
            print(f"[{label}] {name} failed: {type(e).__name__}: {cause} ({where})", file=sys.stderr, flush=True)
    conn.send({"pid": os.getpid(), "codes": codes, "max_rss_mib": peak_rss_mib()})
    conn.close()


def run_model_steps(system: Any, steps: list[tuple[str, Any]]) -> dict[str, Any]:
    """Run `steps` in a fresh child process and wait for it; its memory (host and GPU) is freed when it exits."""
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=model_steps_child, args=(steps, send, system.name),
                            name=f"eval-{slug(system.name)}")  # fmt: skip
    child.start()
    send.close()
    try:
        report = receive.recv() if receive.poll(None) else None
    except EOFError:  # the child died before reporting (killed, out of memory)
        report = None
    except BaseException:
        child.terminate()
        child.join()
        raise
    child.join()
    if report is None:
        print(f"[{system.name}] model process {child.pid} died (exit code {child.exitcode})", file=sys.stderr)
        report = {"pid": child.pid, "codes": dict.fromkeys((name for name, _ in steps), 1), "max_rss_mib": None}
    report["exitcode"] = child.exitcode
    return report
