"""`python -m eval.run --config CONFIG.yaml`: every system of a config end to end — mcq, generate, score — then report.

Each system gets a run folder `<output_dir>/<dir>` with run.json naming it; what a folder already holds is not
recomputed (mcq.json present; generate finished with the same settings; scores.json made from the current
predictions file). Relative paths resolve against the working directory, as LLaMA-Factory's do: run from the
repo root. See eval/configs/paper.yaml for the keys.

The steps that load a model (mcq, generate) run in one child process per system (spawned, so no CUDA state is
inherited): when it exits, all of that system's host and GPU memory is returned before the next system's model
loads. This process itself never imports torch; it decides what is done, scores and reports.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import resource
import shlex
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eval.common.files import read_json, write_json

STEPS = ("mcq", "generate", "score", "report")
SYSTEM_KEYS = {"name", "dir", "model", "adapter", "template", "default_system"}
TOP_KEYS = {"output_dir", "dataset", "dataset_dir", "env", "steps", "mcq", "generate", "report", "systems"}


class ConfigError(ValueError):
    """A pipeline config that cannot be used, with the key named."""


@dataclass
class System:
    name: str
    model: str
    template: str
    run_dir: Path
    adapter: str | None = None
    default_system: str | None = None


@dataclass
class Config:
    output_dir: Path
    systems: list[System]
    dataset: str = "medasst_test"
    dataset_dir: str = "."
    steps: tuple[str, ...] = STEPS
    env: dict[str, str] = field(default_factory=dict)
    mcq: dict[str, Any] = field(default_factory=dict)
    generate: dict[str, Any] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "system"


def _mapping(raw: dict[str, Any], key: str) -> dict[str, Any]:
    value = raw.get(key) or {}
    if not isinstance(value, dict):
        raise ConfigError(f"{key}: expected a mapping, got {type(value).__name__}")
    return value


def load_config(path: str | os.PathLike) -> Config:
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config not found: {path}")
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    unknown = sorted(set(raw) - TOP_KEYS)
    if unknown:
        raise ConfigError(f"{path}: unknown keys {unknown}; known: {sorted(TOP_KEYS)}")
    if not raw.get("output_dir"):
        raise ConfigError(f"{path}: output_dir is required")
    steps = tuple(raw.get("steps") or STEPS)
    bad = [s for s in steps if s not in STEPS]
    if bad:
        raise ConfigError(f"{path}: unknown steps {bad}; choose from {list(STEPS)}")
    out = Path(raw["output_dir"])
    systems: list[System] = []
    entries = raw.get("systems")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{path}: systems must be a non-empty list")
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ConfigError(f"{path}: systems[{i}] must be a mapping")
        unknown = sorted(set(entry) - SYSTEM_KEYS)
        if unknown:
            raise ConfigError(f"{path}: systems[{i}] has unknown keys {unknown}; known: {sorted(SYSTEM_KEYS)}")
        for key in ("name", "model", "template"):
            if not entry.get(key):
                raise ConfigError(f"{path}: systems[{i}] needs {key!r}")
        systems.append(
            System(
                name=str(entry["name"]),
                model=str(entry["model"]),
                template=str(entry["template"]),
                run_dir=out / str(entry.get("dir") or slug(str(entry["name"]))),
                adapter=str(entry["adapter"]) if entry.get("adapter") else None,
                default_system=entry.get("default_system"),
            )
        )
    names = [s.name for s in systems]
    dirs = [s.run_dir for s in systems]
    if len(set(names)) != len(names) or len(set(dirs)) != len(dirs):
        raise ConfigError(f"{path}: system names and run folders must be unique")
    env = {str(k): str(v) for k, v in _mapping(raw, "env").items()}
    return Config(
        output_dir=out,
        systems=systems,
        dataset=str(raw.get("dataset") or "medasst_test"),
        dataset_dir=str(raw.get("dataset_dir") or "."),
        steps=steps,
        env=env,
        mcq=_mapping(raw, "mcq"),
        generate=_mapping(raw, "generate"),
        report=_mapping(raw, "report"),
    )


def _options(values: dict[str, Any]) -> list[str]:
    """{max_new_tokens: 512} → ["--max-new-tokens", "512"]; None/False are left out, True is a bare flag."""
    argv: list[str] = []
    for key, value in values.items():
        if value is None or value is False:
            continue
        flag = "--" + str(key).replace("_", "-")
        argv += [flag] if value is True else [flag, str(value)]
    return argv


def call_verb(argv: list[str]) -> int:
    from eval import run as eval_run

    print(f"$ python -m eval.run {shlex.join(argv)}", file=sys.stderr, flush=True)
    return eval_run.main(argv)


def _verb_accepts(verb: str, flag: str) -> bool:
    import importlib

    from eval.run import VERBS

    parser = argparse.ArgumentParser()
    importlib.import_module(VERBS[verb][0]).add_arguments(parser)
    return any(flag in action.option_strings for action in parser._actions)


def _model_args(system: System, verb: str) -> list[str]:
    argv = ["--model", system.model, "--template", system.template]
    if system.adapter:
        argv += ["--adapter", system.adapter]
    # only where the verb has it (mcq may not): the recipes' default_system is part of the prompt
    if system.default_system and _verb_accepts(verb, "--default-system"):
        argv += ["--default-system", system.default_system]
    return argv


def scores_current(run_dir: Path) -> bool:
    from eval.generate import PREDICTIONS_FILE
    from eval.score import PER_SAMPLE_FILE, SCORES_FILE, file_sha256

    scores, preds = run_dir / SCORES_FILE, run_dir / PREDICTIONS_FILE
    if not (scores.exists() and (run_dir / PER_SAMPLE_FILE).exists() and preds.exists()):
        return False
    return read_json(scores).get("predictions_sha256") == file_sha256(preds)


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


def _model_steps_child(steps: list[tuple[str, list[str]]], conn) -> None:
    """Child process: run the model-loading verbs of one system, report exit codes, pid and peak memory."""
    codes: dict[str, int] = {}
    for name, argv in steps:
        try:
            codes[name] = call_verb(argv)
        except Exception:  # one broken step is that step's failure, not the end of the other steps
            traceback.print_exc()
            codes[name] = 1
    conn.send({"pid": os.getpid(), "codes": codes, "max_rss_mib": peak_rss_mib()})
    conn.close()


def run_model_steps(system: System, steps: list[tuple[str, list[str]]]) -> dict[str, Any]:
    """Run `steps` in a fresh child process and wait for it; its memory (host and GPU) is freed when it exits."""
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_model_steps_child, args=(steps, send), name=f"eval-{slug(system.name)}")
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


def generate_argv(config: Config, system: System) -> list[str]:
    argv = ["generate", *_model_args(system, "generate"), "--dataset", config.dataset, "--dataset-dir"]
    return [*argv, config.dataset_dir, "--output", str(system.run_dir), *_options(config.generate)]


def generate_finished(argv: list[str]) -> bool:
    from eval import generate
    from eval.run import build_parser

    try:
        args = build_parser(["generate"]).parse_args(argv)
    except SystemExit:  # a bad option: the child's run of the verb reports it
        return False
    return generate.finished(args) is not None


def run_system(config: Config, system: System) -> list[str]:
    """Run the steps for one system; return the failed steps."""
    from eval.generate import PREDICTIONS_FILE
    from eval.generate import RUN_FILE as GEN_RUN_FILE

    failed: list[str] = []
    run_dir = system.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    info: dict[str, Any] = {
        "system": system.name,
        "model": system.model,
        "adapter": system.adapter,
        "template": system.template,
    }
    steps: list[tuple[str, list[str]]] = []
    if "mcq" in config.steps:
        if (run_dir / "mcq.json").exists():
            print(f"[{system.name}] mcq: done, skipped", file=sys.stderr)
        else:
            steps.append(("mcq", ["mcq", *_model_args(system, "mcq"), "--output", str(run_dir), *_options(config.mcq)]))
    if "generate" in config.steps:
        argv = generate_argv(config, system)
        if generate_finished(argv):
            print(f"[{system.name}] generate: done, skipped", file=sys.stderr)
        else:
            steps.append(("generate", argv))
    codes: dict[str, int] = {}
    if steps:
        report = run_model_steps(system, steps)
        codes = report["codes"]
        info["model_process"] = {k: report[k] for k in ("pid", "max_rss_mib", "exitcode")}
        info["model_process"]["steps"] = [name for name, _ in steps]
    write_json(run_dir / "run.json", info)
    failed += [name for name, code in codes.items() if code]
    generated = codes.get("generate") == 0
    if "score" in config.steps and "generate" not in failed:
        finished = (run_dir / GEN_RUN_FILE).exists() and read_json(run_dir / GEN_RUN_FILE).get("complete")
        if not (run_dir / PREDICTIONS_FILE).exists() or (not generated and not finished):
            print(f"[{system.name}] score: no finished predictions, skipped", file=sys.stderr)
        elif scores_current(run_dir):
            print(f"[{system.name}] score: done, skipped", file=sys.stderr)
        elif call_verb(["score", "--predictions", str(run_dir / PREDICTIONS_FILE), "--output", str(run_dir)]):
            failed.append("score")
    return failed


def run_pipeline(config: Config) -> int:
    for key, value in config.env.items():
        os.environ.setdefault(key, value)  # the caller's own setting wins
    failures: dict[str, list[str]] = {}
    for system in config.systems:
        failed = run_system(config, system)
        if failed:
            failures[system.name] = failed
    if "report" in config.steps:
        ready = [
            s.run_dir
            for s in config.systems
            if (s.run_dir / "mcq.json").exists() or (s.run_dir / "scores.json").exists()
        ]
        if ready:
            argv = ["report", "--runs", *map(str, ready), "--output", str(config.output_dir / "report")]
            if call_verb(argv + _options(config.report)):
                failures["report"] = ["report"]
        else:
            print("report: no system has results yet, skipped", file=sys.stderr)
    if failures:
        print(f"pipeline: failed steps: {failures}", file=sys.stderr)
        return 1
    print(f"pipeline: done → {config.output_dir / 'report' / 'report.md'}")
    return 0


def main(config_path: str | os.PathLike) -> int:
    try:
        config = load_config(config_path)
    except ConfigError as e:
        print(f"pipeline: {e}", file=sys.stderr)
        return 2
    return run_pipeline(config)
