"""`python -m eval.run --config CONFIG.yaml`: every system of a config end to end — mcq, generate, score — then report.

Each system gets a run folder `<output_dir>/<dir>` with run.json naming it. The config becomes the verbs' typed
requests (eval.mcq.McqRequest, ...), all built and validated before anything runs; then each step asks its verb
whether OUT already holds its result for exactly these inputs (the fingerprint): equal → skipped (or a partial
generation resumed); different → the whole run is refused, naming the system, the fields that changed and
`--recompute`, before any model loads. Scores and the report are derived from files in the run folders, so they
are remade whenever their inputs changed. Relative paths resolve against the working directory, as
LLaMA-Factory's do: run from the repo root. See eval/configs/paper.yaml for the keys.

The steps that load a model (mcq, generate) run in one child process per system (spawned, so no CUDA state is
inherited): when it exits, all of that system's host and GPU memory is returned before the next system's model
loads. This process itself never imports torch; it decides what is done, scores and reports.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eval.common.files import InputFileError, read_json, write_json
from eval.data.benchmarks import BenchmarkError
from eval.data.prompts import DatasetError
from eval.model_steps import run_model_steps, slug

STEPS = ("mcq", "generate", "score", "report")
SYSTEM_KEYS = {"name", "dir", "model", "adapter", "template", "default_system", "trust_remote_code"}
TEXT_KEYS = SYSTEM_KEYS - {"trust_remote_code"}
TOP_KEYS = {"output_dir", "dataset", "dataset_dir", "env", "steps", "mcq", "generate", "report", "systems", "shards"}


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
    trust_remote_code: bool = False  # the model's own code runs only where the config asks for it


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
    shards: int = 1  # model processes per system at once, one per device (eval/shard_runs.py)


def _mapping(raw: dict[str, Any], key: str) -> dict[str, Any]:
    value = raw.get(key) or {}
    if not isinstance(value, dict):
        raise ConfigError(f"{key}: expected a mapping, got {type(value).__name__}")
    return value


def _text(mapping: dict[str, Any], key: str, where: str) -> None:
    """A config value that names something (a path, a model, a prompt) must be written as text."""
    value = mapping.get(key)
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"{where} must be a string, got {value!r} ({type(value).__name__}); quote it")


def load_config(path: str | os.PathLike) -> Config:
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config not found: {path}")
    try:
        raw = yaml.safe_load(path.read_bytes().decode("utf-8-sig"))
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 (at byte offset {e.start}); re-save it as UTF-8") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{path}{where}: not valid YAML ({problem})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    unknown = sorted(set(raw) - TOP_KEYS)
    if unknown:
        raise ConfigError(f"{path}: unknown keys {unknown}; known: {sorted(TOP_KEYS)}")
    if not raw.get("output_dir"):
        raise ConfigError(f"{path}: output_dir is required")
    for key in ("output_dir", "dataset", "dataset_dir"):
        _text(raw, key, f"{path}: {key}")
    raw_steps = raw.get("steps", list(STEPS))
    if not isinstance(raw_steps, list) or not all(isinstance(step, str) for step in raw_steps):
        raise ConfigError(f"{path}: steps must be a list such as [mcq, generate, score, report], got {raw_steps!r}")
    if not raw_steps:
        raise ConfigError(f"{path}: steps is empty; leave it out to run all of {list(STEPS)}")
    steps = tuple(raw_steps)
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
        for key in sorted(TEXT_KEYS):
            _text(entry, key, f"{path}: systems[{i}].{key}")
        if not isinstance(entry.get("trust_remote_code", False), bool):
            raise ConfigError(f"{path}: systems[{i}].trust_remote_code must be true or false")
        systems.append(
            System(
                name=entry["name"],
                model=entry["model"],
                template=entry["template"],
                run_dir=out / (entry.get("dir") or slug(entry["name"])),
                adapter=entry.get("adapter") or None,
                default_system=entry.get("default_system"),
                trust_remote_code=entry.get("trust_remote_code", False),
            )
        )
    names = [s.name for s in systems]
    dirs = [s.run_dir for s in systems]
    if len(set(names)) != len(names) or len(set(dirs)) != len(dirs):
        raise ConfigError(f"{path}: system names and run folders must be unique")
    env = _mapping(raw, "env")
    for key, value in env.items():
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise ConfigError(f"{path}: env.{key} must be a string, got {value!r}")
    env = {str(k): str(v) for k, v in env.items()}
    shards = raw.get("shards", 1)
    if not isinstance(shards, int) or isinstance(shards, bool) or shards < 1:
        raise ConfigError(f"{path}: shards must be an integer ≥ 1 (processes per system, one per device)")
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
        shards=shards,
    )


def _model_options(system: System) -> dict[str, Any]:
    options: dict[str, Any] = {"model": system.model, "template": system.template}
    if system.adapter:
        options["adapter"] = system.adapter
    if system.default_system:
        options["default_system"] = system.default_system
    if system.trust_remote_code:
        options["trust_remote_code"] = True
    return options


@dataclass
class SystemPlan:
    system: System
    mcq: Any = None  # McqRequest when the step is to run
    generate: Any = None  # GenerateRequest when the step is to run
    skipped: list[str] = field(default_factory=list)
    unavailable: str | None = None  # why this system's model cannot be had (it fails; the others run)


def plan_system(config: Config, system: System, index: int, recompute: bool) -> SystemPlan:
    """The system's requests, validated, and what is already done; raises ConfigError / FingerprintMismatch."""
    from eval import generate, mcq
    from eval.common import requests

    plan = SystemPlan(system)
    where = f"systems[{index}] ({system.name})"
    common = _model_options(system) | {"output": str(system.run_dir), "recompute": recompute}
    try:
        if "mcq" in config.steps:
            request = requests.from_options(mcq.McqRequest, config.mcq | common, f"{where} mcq")
            if mcq.current(request) is None:
                plan.mcq = request
            else:
                plan.skipped.append("mcq")
        if "generate" in config.steps:
            data = {"dataset": config.dataset, "dataset_dir": config.dataset_dir}
            request = requests.from_options(
                generate.GenerateRequest, config.generate | data | common, f"{where} generate"
            )
            if generate.state(request) == "current":
                plan.skipped.append("generate")
            else:
                plan.generate = request
    except requests.ModelUnavailable as e:
        plan.unavailable = str(e)
    except requests.UsageError as e:
        raise ConfigError(str(e)) from None
    return plan


# the fields of eval.report.ReportRequest that a config may set
REPORT_OPTIONS = {"reference", "resamples", "seed", "contamination"}


def score_step(system: System) -> int | None:
    """Score the system's finished predictions; None when there are none. Scores are derived data: remade
    whenever the predictions (or the scoring settings) changed, never refused."""
    from eval import score
    from eval.common import fingerprint as fpr
    from eval.generate import PREDICTIONS_FILE
    from eval.generate import RUN_FILE as GEN_RUN_FILE

    run_dir = system.run_dir
    gen_run = run_dir / GEN_RUN_FILE
    if not (run_dir / PREDICTIONS_FILE).is_file() or not (gen_run.is_file() and read_json(gen_run).get("complete")):
        print(f"[{system.name}] score: no finished predictions, skipped", file=sys.stderr)
        return None
    request = score.ScoreRequest(predictions=run_dir / PREDICTIONS_FILE, output=run_dir)
    try:
        if score.current(request) is not None:
            print(f"[{system.name}] score: up to date, skipped", file=sys.stderr)
            return 0
    except fpr.FingerprintMismatch as e:
        print(f"[{system.name}] score: inputs changed, rescoring ({e})", file=sys.stderr)
        request = score.ScoreRequest(predictions=run_dir / PREDICTIONS_FILE, output=run_dir, recompute=True)
    return score.main(request)


def run_system(config: Config, plan: SystemPlan) -> list[str]:
    """Run the planned steps of one system; return the failed steps."""
    system = plan.system
    failed: list[str] = []
    run_dir = system.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    info: dict[str, Any] = {
        "system": system.name,
        "model": system.model,
        "adapter": system.adapter,
        "template": system.template,
    }
    if plan.unavailable:
        print(f"[{system.name}] failed: {plan.unavailable}", file=sys.stderr)
        return [step for step in ("mcq", "generate", "score") if step in config.steps]
    for name in plan.skipped:
        print(f"[{system.name}] {name}: up to date (same fingerprint), skipped", file=sys.stderr)
    steps = [(name, request) for name, request in (("mcq", plan.mcq), ("generate", plan.generate)) if request]
    codes: dict[str, int] = {}
    if steps:
        for name, _ in steps:
            print(f"[{system.name}] {name}: running in a model process", file=sys.stderr, flush=True)
        if config.shards > 1:
            from eval.shard_runs import run_sharded

            report = run_sharded(system, steps, config.shards)
        else:
            report = run_model_steps(system, steps)
        codes = report["codes"]
        info["model_process"] = {k: report[k] for k in ("pid", "max_rss_mib", "exitcode")}
        info["model_process"]["steps"] = [name for name, _ in steps]
    run_file = run_dir / "run.json"
    try:
        previous = read_json(run_file) if run_file.is_file() else None
    except InputFileError:  # a damaged run.json is replaced
        previous = None
    if isinstance(previous, dict) and "model_process" not in info and "model_process" in previous:
        info["model_process"] = previous["model_process"]  # the process that made what is still there
    if info != previous:  # unchanged: left alone, so the report (whose input it is) stays up to date
        write_json(run_file, info)
    failed += [name for name, code in codes.items() if code]
    if "score" in config.steps and "generate" not in failed and score_step(system):
        failed.append("score")
    return failed


def report_step(config: Config, failures: dict[str, list[str]] | None = None) -> int:
    from eval import report

    failures = failures or {}
    left_out = [s.name for s in config.systems if s.name in failures]
    if left_out:
        # what is in their folders is an earlier run's: shown under their names it would pass for this one's
        print(f"report: left out {', '.join(left_out)}: a step failed in this run, so their results there are "
              "not this run's", file=sys.stderr)  # fmt: skip
    ready = [
        s.run_dir
        for s in config.systems
        if s.name not in failures and ((s.run_dir / "mcq.json").exists() or (s.run_dir / "scores.json").exists())
    ]
    if not ready:
        print("report: no system has results yet, skipped", file=sys.stderr)
        return 0
    from eval.common import requests

    options = dict(config.report) | {"runs": [str(p) for p in ready], "output": str(config.output_dir / "report")}
    try:
        request = requests.from_options(report.ReportRequest, options, "report")
    except requests.UsageError as e:
        print(f"pipeline: {e}", file=sys.stderr)
        return 2
    return report.main(request)


def plan_pipeline(config: Config, recompute: bool = False) -> list[SystemPlan]:
    """Every system's plan, or ConfigError listing every refusal and bad option (one line each)."""
    from eval.common import fingerprint as fpr

    plans, problems = [], []
    for index, system in enumerate(config.systems):
        try:
            plans.append(plan_system(config, system, index, recompute))
        # a data error found while fingerprinting (benchmark CSV, dataset file) is a problem like a bad option
        except (ConfigError, fpr.FingerprintMismatch, BenchmarkError, DatasetError, InputFileError) as e:
            problems.append(f"[{system.name}] {e}")
    if "report" in config.steps:
        unknown = sorted(set(config.report) - REPORT_OPTIONS)
        if unknown:
            problems.append(f"report: unknown option(s) {unknown}; known: {sorted(REPORT_OPTIONS)}")
    if problems:
        raise ConfigError("\n".join(problems))
    return plans


def run_pipeline(config: Config, recompute: bool = False) -> int:
    for key, value in config.env.items():
        os.environ.setdefault(key, value)  # the caller's own setting wins
    try:
        plans = plan_pipeline(config, recompute)
    except ConfigError as e:
        problems = str(e).splitlines()
        sep = " " if len(problems) == 1 else "\n"
        print(f"pipeline: nothing was run:{sep}{e}", file=sys.stderr)
        return 2
    failures: dict[str, list[str]] = {}
    for plan in plans:
        failed = run_system(config, plan)
        if failed:
            failures[plan.system.name] = failed
    if "report" in config.steps and report_step(config, failures):
        failures["report"] = ["report"]
    if failures:
        print(f"pipeline: failed steps: {failures}", file=sys.stderr)
        return 1
    print(f"pipeline: done → {config.output_dir / 'report' / 'report.md'}")
    return 0


def main(config_path: str | os.PathLike, recompute: bool = False) -> int:
    try:
        config = load_config(config_path)
    except ConfigError as e:
        print(f"pipeline: {e}", file=sys.stderr)
        return 2
    return run_pipeline(config, recompute)
