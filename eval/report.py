"""`report`: Table 2, Table 3 (Markdown + CSV, the paper's values alongside) and Figure 4 from run folders.

A run folder is one system: run.json ({"system": "MedAsst", ...}; several folders of one system, each with its own
"seed", are aggregated into one row: mean, sd and a t interval over the seeds) plus mcq.json (from `mcq`) and/or
scores.json with scores_per_sample.jsonl (from `score`). Each system is tested against the reference (MedAsst)
with a paired bootstrap: over per-question correctness for Table 2 (each benchmark resampled on its own; overall =
mean of the two, as in the paper; Holm-adjusted over the table) and over per-sample scores for Table 3, on the
items both systems answered.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eval.common import fingerprint as fpr
from eval.common import requests
from eval.common.files import InputFileError, atomic_write_text, iter_jsonl, read_json, write_json
from eval.metrics import stats
from eval.tables import judge_tables, seeds, table2, table3, xmedbench
from eval.tables import paper_numbers as paper
from eval.tables.common import Context, Run

RUN_FILE = "run.json"
MCQ_FILE = "mcq.json"
SCORES_FILE = "scores.json"
PER_SAMPLE_FILE = "scores_per_sample.jsonl"
PREDICTIONS_FILE = "generated_predictions.jsonl"
GENERATE_RUN_FILE = "generate_run.json"
REPORT_FILE = "report.json"
FORMAT_VERSION = 3  # of the tables: bump when a table's content or layout changes (3: CIs, Holm, per-question, seeds)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", nargs="+", required=True, help="run folders, one per system")
    parser.add_argument("--output", required=True, help="output folder for tables and figure")
    parser.add_argument("--reference", default=paper.REFERENCE, help="system the others are tested against")
    parser.add_argument("--resamples", type=int, default=stats.RESAMPLES, help="paired bootstrap resamples")
    parser.add_argument("--seed", type=int, default=stats.SEED)
    parser.add_argument(
        "--contamination", help="contamination.json of `eval.run contamination`: Table 2 gains a clean column"
    )
    parser.add_argument("--judge", nargs="+", default=(), help="`eval.run judge` output folders: one section each")
    requests.add_recompute(parser)


@dataclass(frozen=True)
class ReportRequest:
    runs: tuple[str, ...]
    output: Path
    reference: str = paper.REFERENCE
    resamples: int = stats.RESAMPLES
    seed: int = stats.SEED
    contamination: str | None = None
    judge: tuple[str, ...] = ()
    recompute: bool = False

    def __post_init__(self) -> None:
        for folder in self.judge:
            if not (Path(folder) / "judge.json").is_file() and not Path(folder).is_file():
                raise requests.UsageError(f"--judge {folder}: no judge.json there (run `eval.run judge`)")
        if self.contamination is not None:
            requests.input_file(Path(self.contamination), "contamination")
        if not self.runs:
            raise requests.UsageError("--runs: name at least one run folder")
        for folder in self.runs:
            if not Path(folder).is_dir():
                raise requests.UsageError(f"--runs {folder}: run folder not found")
        requests.output_folder(Path(self.output))
        requests.at_least("resamples", self.resamples, 1)
        requests.at_least("seed", self.seed, 0)


# the predictions too: scores.json names them by sha256, and changed predictions must not pass for scored ones
INPUT_FILES = (RUN_FILE, MCQ_FILE, SCORES_FILE, PER_SAMPLE_FILE, GENERATE_RUN_FILE, PREDICTIONS_FILE)


def fingerprint(request: ReportRequest) -> fpr.Fingerprint:
    """The report is a function of its run folders' result files (by sha256) and the test settings."""
    inputs = {}
    for folder in request.runs:
        path = Path(folder)
        inputs[str(path)] = {name: fpr.file_sha256(path / name) for name in INPUT_FILES if (path / name).is_file()}
        named = _named_predictions(path)
        if named is not None and named.is_file() and named.resolve() != (path / PREDICTIONS_FILE).resolve():
            inputs[str(path)]["scored_predictions"] = fpr.file_sha256(named)
    return fpr.Fingerprint(
        fields={
            "verb": "report",
            "format": FORMAT_VERSION,
            "inputs": inputs,
            "reference": request.reference,
            "paired_bootstrap": {"resamples": request.resamples, "seed": request.seed},
            "contamination_sha256": fpr.file_sha256(request.contamination) if request.contamination else None,
            "judge_sha256": [fpr.file_sha256(judge_file(f)) for f in request.judge],
        },
        recorded={"versions": fpr.package_versions(("numpy", "matplotlib"))},
    )


def _named_predictions(folder: Path) -> Path | None:
    """The predictions file a run's scores.json says it scored (it may lie outside the run folder)."""
    try:
        scores = read_json(folder / SCORES_FILE) if (folder / SCORES_FILE).is_file() else None
    except InputFileError:
        return None  # load_run names the broken file
    named = scores.get("predictions") if isinstance(scores, dict) else None
    return Path(named) if isinstance(named, str) else None


def judge_file(folder: str) -> Path:
    return Path(folder) / "judge.json" if Path(folder).is_dir() else Path(folder)


def current(request: ReportRequest, fp: fpr.Fingerprint) -> dict[str, Any] | None:
    """report.json when the report was made from exactly these inputs and all its files are still there."""
    path = Path(request.output) / REPORT_FILE
    if request.recompute or not path.is_file():
        return None
    record = read_json(path)
    old = fpr.stored(record)
    if old is None or fpr.differences(old.get("fields"), fp.fields):
        return None  # a report is cheap and only ever derived: remade, never refused
    hashes = record.get("file_sha256") or {}
    for name in record.get("files", []):
        path = Path(request.output) / name
        if not path.is_file() or (name in hashes and fpr.file_sha256(path) != hashes[name]):
            return None  # a file missing or from another report (an interrupted commit): remade
    return record


def generation_record(folder: Path, scores: dict[str, Any]) -> dict[str, Any] | None:
    """The generate run behind a scores.json: beside the scored predictions file, else in the run folder."""
    candidates = []
    if isinstance(scores.get("predictions"), str):
        candidates.append(Path(scores["predictions"]).parent / GENERATE_RUN_FILE)
    candidates.append(folder / GENERATE_RUN_FILE)
    for path in candidates:
        if path.is_file():
            record = read_json(path)
            return record if isinstance(record, dict) else None
    return None


def _mcq_correctness(mcq: dict[str, Any], path: Path) -> dict[str, dict[str, float]]:
    """benchmark → question id → 1.0/0.0, read defensively: the benchmark is a field or the id's prefix."""
    out: dict[str, dict[str, float]] = {}
    for i, pred in enumerate(mcq.get("predictions") or []):
        if not isinstance(pred, dict) or "correct" not in pred:
            raise InputFileError(f"{path}: predictions[{i}] lacks 'correct'")
        qid = str(pred.get("id", i))
        bench = pred.get("benchmark") or qid.split(":", 1)[0]
        out.setdefault(str(bench), {})[qid] = 1.0 if pred["correct"] else 0.0
    return out


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def check_mcq(mcq: Any, path: Path) -> dict[str, Any]:
    """An mcq.json whose numbers the tables can print: finite accuracies, and counts of at least one question."""
    if not isinstance(mcq, dict) or not isinstance(mcq.get("benchmarks"), dict):
        raise InputFileError(f"{path}: not an mcq result (no 'benchmarks' mapping)")
    if not _finite(mcq.get("overall")):
        raise InputFileError(f"{path}: overall = {mcq.get('overall')!r} is not a finite number")
    for bench, values in mcq["benchmarks"].items():
        if not isinstance(values, dict) or not _finite(values.get("accuracy")) or not _count(values.get("n")):
            raise InputFileError(f"{path}: benchmarks.{bench} needs a finite accuracy and a count n, got {values!r}")
        if values["n"] == 0:
            raise InputFileError(f"{path}: benchmarks.{bench} has no questions (n = 0); its accuracy means nothing")
    if not isinstance(mcq.get("predictions", []), list):
        raise InputFileError(f"{path}: predictions must be a list")
    return mcq


def check_scores(scores: Any, path: Path) -> dict[str, Any]:
    if not isinstance(scores, dict):
        raise InputFileError(f"{path}: not a scores result (expected a JSON object)")
    if not _count(scores.get("n")) or scores["n"] == 0:
        raise InputFileError(f"{path}: n = {scores.get('n')!r}; a score needs at least one prediction")
    for metric in paper.TABLE3_COLUMNS:
        if metric in scores and not _finite(scores[metric]):
            raise InputFileError(f"{path}: {metric} = {scores[metric]!r} is not a finite number")
    return scores


def load_run(folder: str | Path) -> Run:
    folder = Path(folder)
    if not folder.is_dir():
        raise InputFileError(f"run folder not found: {folder}")
    if (folder / RUN_FILE).exists():
        info = read_json(folder / RUN_FILE)
        system = info.get("system") if isinstance(info, dict) else None
        if not system:
            raise InputFileError(f"{folder / RUN_FILE}: no 'system' name")
    else:
        system = folder.name
        warnings.warn(f"{folder} has no {RUN_FILE}; calling the system {system!r}", stacklevel=2)
    run = Run(system=str(system), path=folder, seed=info.get("seed") if (folder / RUN_FILE).exists() else None)
    if (folder / MCQ_FILE).exists():
        run.mcq = check_mcq(read_json(folder / MCQ_FILE), folder / MCQ_FILE)
        run.correct = _mcq_correctness(run.mcq, folder / MCQ_FILE)
    if (folder / SCORES_FILE).exists():
        run.scores = check_scores(read_json(folder / SCORES_FILE), folder / SCORES_FILE)
        check_predictions_unchanged(run.scores, folder)
        run.generation = generation_record(folder, run.scores)
        per_sample_sha = run.scores.get("per_sample_sha256")
        per_sample_path = folder / PER_SAMPLE_FILE
        if per_sample_sha and per_sample_path.is_file() and fpr.file_sha256(per_sample_path) != per_sample_sha:
            raise InputFileError(
                f"{per_sample_path} was changed after {SCORES_FILE} was written; rerun score with --recompute"
            )
        if (folder / PER_SAMPLE_FILE).exists():
            for lineno, row in iter_jsonl(folder / PER_SAMPLE_FILE):
                if "id" not in row:
                    raise InputFileError(f"{folder / PER_SAMPLE_FILE} line {lineno}: missing key 'id'")
                values = {m: row[m] for m in paper.TABLE3_COLUMNS if m in row}
                for metric, value in values.items():
                    if not _finite(value):
                        raise InputFileError(
                            f"{folder / PER_SAMPLE_FILE} line {lineno}: {metric} = {value!r} is not a finite number"
                        )
                run.per_sample[str(row["id"])] = {m: float(v) for m, v in values.items()}
    if run.mcq is None and run.scores is None:
        raise InputFileError(f"{folder}: neither {MCQ_FILE} nor {SCORES_FILE}")
    return run


def check_predictions_unchanged(scores: dict[str, Any], folder: Path) -> None:
    """The predictions a scores.json was computed from are still the ones there: regenerated predictions with
    the old scores would put another run's numbers in the table."""
    recorded = scores.get("predictions_sha256")
    if not isinstance(recorded, str):
        return
    named = Path(scores["predictions"]) if isinstance(scores.get("predictions"), str) else None
    for path in (named, folder / PREDICTIONS_FILE):
        if path is not None and path.is_file():
            if fpr.file_sha256(path) != recorded:
                raise InputFileError(
                    f"{path} changed after {folder / SCORES_FILE} was computed from it; rescore it (`eval.run score "
                    f"--predictions {path} --output {folder}`, or rerun --config) before reporting"
                )
            return


def order_systems(runs: list[Run]) -> list[Run]:
    runs = seeds.group(runs)
    rank = {name: i for i, name in enumerate(paper.SYSTEMS)}
    return sorted(runs, key=lambda r: (rank.get(r.system, len(rank)), r.system))


def run_report(request: ReportRequest) -> dict[str, Any]:
    reference = request.reference
    fp = fingerprint(request)
    previous = current(request, fp)
    if previous is not None:
        return previous | {"reused": True}
    runs = order_systems([load_run(f) for f in request.runs])
    ref = next((r for r in runs if r.system == reference), None)
    if ref is None:
        warnings.warn(f"no run of the reference system {reference!r}: no p-values", stacklevel=2)
    out = Path(request.output)
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".report-", dir=out))  # every file is made before any is replaced
    try:
        result = _write_report(runs, ref, request, fp, staging)
        _commit(staging, out, result["files"])
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return result


def _commit(staging: Path, out: Path, names: list[str]) -> None:
    """Move the staged files into place, report.json last: it lists the sha256 of the others, so a reader (and
    the next run) can tell a complete set from one interrupted halfway."""
    for name in sorted(names, key=lambda n: n == REPORT_FILE):
        os.replace(staging / name, out / name)


def _write_report(runs: list[Run], ref: Run | None, request: ReportRequest, fp, out: Path):
    reference, resamples, seed = request.reference, request.resamples, request.seed
    result: dict[str, Any] = {"reference": reference, "systems": [r.system for r in runs], "files": []}
    sections = [f"# MedAsst evaluation report\n\nReference for p-values: {ref.system if ref else '—'} "
                f"(paired bootstrap, {resamples} resamples, seed {seed}, two-sided).\n"]  # fmt: skip
    footer = f"\nInputs: fingerprint `{fp.digest[:16]}` (the run folders' result files by sha256; {REPORT_FILE}).\n"

    ctx = Context(reference, resamples, seed, footer, request.contamination)
    for table in (table2, xmedbench, table3):
        section = table.section(runs, ref, ctx, out)
        if section is not None:
            sections.append(section.text)
            result["files"] += section.files
            result.update(section.result)

    if request.judge:
        try:
            judged = [judge_tables.load(f) for f in request.judge]
        except judge_tables.JudgeResultError as e:
            raise InputFileError(str(e)) from None
        texts, files, rows = judge_tables.sections(judged, out)
        sections += texts
        result["files"] += files
        result["judge"] = rows

    atomic_write_text(out / "report.md", "\n".join(sections))
    result["files"] += ["report.md"]
    result["file_sha256"] = {name: fpr.file_sha256(out / name) for name in result["files"]}
    result["files"] += [REPORT_FILE]
    result["fingerprint"] = fp.to_json()
    write_json(out / REPORT_FILE, result)
    return result


def main(request: ReportRequest) -> int:
    try:
        result = run_report(request)
    except InputFileError as e:
        print(f"report: {e}", file=sys.stderr)
        return 2
    state = " (up to date, reused)" if result.get("reused") else ""
    print(f"report: {', '.join(result['systems'])} → {Path(request.output) / 'report.md'}{state}")
    return 0


REQUEST = ReportRequest
