"""`--config` with `shards: N`: a system's model steps (mcq, generate) as N parallel processes, one per device.

Worker I runs every step with `shard=I/N` in its own spawned process with `CUDA_VISIBLE_DEVICES` set to the I-th
device (the config's `devices`, else 0..N-1), so each loads the model once on its own GPU; on a CPU host the workers
share the cores. When all have exited, the steps run again without a shard in this process: each finds its N parts
and merges them (no model is loaded, torch is not imported), refusing parts from other inputs.
"""

from __future__ import annotations

import dataclasses
import importlib
import multiprocessing
import os
import sys
from typing import Any

from eval import shards


def _worker(env: dict[str, str], steps: list[tuple[str, Any]], conn, label: str) -> None:
    os.environ.update(env)  # before the step imports torch, so each worker sees only its own device
    from eval.model_steps import model_steps_child

    model_steps_child(steps, conn, label)


def run_sharded(system: Any, steps: list[tuple[str, Any]], count: int, devices: list[str] | None = None) -> dict:
    """Run `steps` as `count` shard processes at once, then merge here; the report run_model_steps gives."""
    from eval.model_steps import STEP_MODULES, slug

    devices = devices or [str(i) for i in range(count)]
    if len(devices) < count:
        raise shards.ShardError(f"shards: {count} but only {len(devices)} devices: {devices}")
    context = multiprocessing.get_context("spawn")
    workers = []
    for index in range(count):
        mine = [(name, dataclasses.replace(request, shard=f"{index}/{count}")) for name, request in steps]
        receive, send = context.Pipe(duplex=False)
        env = {"CUDA_VISIBLE_DEVICES": devices[index]}
        label = f"{system.name} {index}/{count}"
        child = context.Process(target=_worker, args=(env, mine, send, label),
                                name=f"eval-{slug(system.name)}-{index}")  # fmt: skip
        child.start()
        send.close()
        workers.append((child, receive))
    reports = []
    try:
        for child, receive in workers:
            try:
                reports.append(receive.recv() if receive.poll(None) else None)
            except EOFError:  # died before reporting (killed, out of memory)
                reports.append(None)
            child.join()
    except BaseException:
        for child, _ in workers:
            child.terminate()
        raise
    codes = dict.fromkeys((name for name, _ in steps), 0)
    for (child, _), report in zip(workers, reports, strict=True):
        for name in codes:
            code = 1 if report is None else report["codes"].get(name, 1)
            codes[name] = codes[name] or code
        if report is None:
            print(f"[{system.name}] shard process {child.pid} died (exit code {child.exitcode})", file=sys.stderr)
    for name, request in steps:  # merge what every shard finished; a failed shard leaves its step failed
        if codes[name] == 0:
            codes[name] = int(importlib.import_module(STEP_MODULES[name]).main(request) or 0)
    rss = [r["max_rss_mib"] for r in reports if r and r.get("max_rss_mib") is not None]
    return {"pid": [child.pid for child, _ in workers], "codes": codes, "max_rss_mib": max(rss) if rss else None,
            "exitcode": max((child.exitcode or 0) for child, _ in workers), "shards": count}  # fmt: skip
