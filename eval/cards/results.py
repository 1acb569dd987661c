"""The numbers a model card reports, read from `report.json`: one Metric per number, each with the dataset and
split it was measured on and the fingerprint digest of the result file it came from (mcq.json, scores.json,
judge.json; checked unchanged since the report was made)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eval.cards.common import CardError, read_json_object
from eval.common import fingerprint as fpr

REPORT_FILE = "report.json"


@dataclass(frozen=True)
class Benchmark:
    task_type: str
    task_name: str
    dataset_type: str  # a Hub dataset id where there is one
    dataset_name: str
    split: str


# Table 2 (CMMLU test split, C-Eval val: its test answers are not public); eval.data.benchmarks.EVAL_SPLIT
MCQ_BENCHMARKS: dict[str, Benchmark] = {
    "cmmlu": Benchmark("multiple-choice", "Multiple choice", "haonan-li/cmmlu", "CMMLU (medical subjects)", "test"),
    "ceval": Benchmark("multiple-choice", "Multiple choice", "ceval/ceval-exam", "C-Eval (medical subjects)", "val"),
    "overall": Benchmark(
        "multiple-choice", "Multiple choice", "cmmlu+ceval", "CMMLU + C-Eval medical (mean of the two)", "test+val"
    ),
}
MCQ_LABELS = {"cmmlu": "CMMLU accuracy (%)", "ceval": "C-Eval accuracy (%)", "overall": "overall accuracy (%)"}
GEN_METRICS = {"bleu-4": ("bleu", "BLEU-4 (×100)"), "rouge-1": ("rouge", "ROUGE-1 (×100)"),
               "rouge-2": ("rouge", "ROUGE-2 (×100)"), "rouge-l": ("rouge", "ROUGE-L (×100)")}  # fmt: skip


@dataclass(frozen=True)
class Metric:
    key: str  # where the value sits in report.json, e.g. "table2.cmmlu", "judge.pairwise.win"
    benchmark: Benchmark
    metric_type: str
    metric_name: str
    value: float
    source: str  # the result file behind it: "mcq.json", "scores.json", "judge.json"
    digest: str  # that file's fingerprint digest


@dataclass
class Results:
    system: str
    metrics: list[Metric]
    report_digest: str
    reference: str
    resamples: int | None
    seed: int | None
    protocols: dict[str, dict[str, Any]]  # source file → its protocol fields (what the numbers were measured under)


def report_path(value: Path) -> Path:
    path = value / REPORT_FILE if value.is_dir() else value
    if not path.is_file():
        raise CardError(f"--report {value}: no {REPORT_FILE} there (run `python -m eval.run report` first)")
    return path


def _row(rows: Any, system: str) -> dict[str, Any] | None:
    return next((r for r in rows or [] if isinstance(r, dict) and r.get("system") == system), None)


def _run_folders(report: dict[str, Any], where: Path) -> dict[str, tuple[Path, dict[str, str]]]:
    """system → (its run folder, file → sha256 as the report read them), from the report's own fingerprint."""
    inputs = (((report.get("fingerprint") or {}).get("fields") or {}).get("inputs")) or {}
    out = {}
    for folder, hashes in sorted(inputs.items()):
        path = Path(folder)
        run = path / "run.json"
        system = read_json_object(run, "run record").get("system") if run.is_file() else path.name
        out[str(system)] = (path, hashes if isinstance(hashes, dict) else {})
    if not out:
        raise CardError(f"{where}: the report names no run folders (fields.inputs); remake it with `eval.run report`")
    return out


def _fingerprinted(path: Path, recorded_sha: str | None, what: str) -> dict[str, Any]:
    """A result file as the report read it: present and unchanged, else the card would carry another run's digest."""
    if not path.is_file():
        raise CardError(f"{path}: the {what} the report was made from is gone; make the card where the report was made")
    if recorded_sha is not None and fpr.file_sha256(path) != recorded_sha:
        raise CardError(f"{path} changed after the report was made; rerun `eval.run report` before the card")
    return read_json_object(path, what)


def _digest(record: dict[str, Any]) -> str:
    stored = fpr.stored(record)
    return str(stored["digest"]) if stored and stored.get("digest") else "unrecorded"


def _protocol(record: dict[str, Any]) -> dict[str, Any]:
    stored = fpr.stored(record) or {}
    return {k: v for k, v in (stored.get("fields") or {}).items() if k not in {"model", "adapter", "inputs"}}


def load(value: Path, system: str | None, test_set: str) -> Results:
    path = report_path(value)
    report = read_json_object(path, "report")
    system = system or report.get("reference")
    if system not in (report.get("systems") or []):
        raise CardError(f"{path}: no system {system!r} in the report (it has {report.get('systems')}); pass --system")
    if not report.get("table2"):
        raise CardError(f"{path}: the report has no Table 2 (CMMLU + C-Eval); run `eval.run mcq` and `report` first")
    row2 = _row(report["table2"], system)
    if row2 is None:
        raise CardError(f"{path}: {system} has no row in Table 2; run `eval.run mcq` for it and remake the report")
    folders = _run_folders(report, path)
    if system not in folders:
        raise CardError(f"{path}: no run folder of {system} among the report's inputs")
    folder, hashes = folders[system]
    metrics: list[Metric] = []
    protocols: dict[str, dict[str, Any]] = {}
    mcq = _fingerprinted(folder / "mcq.json", hashes.get("mcq.json"), "multiple-choice result")
    protocols["mcq.json"] = _protocol(mcq)
    for column, bench in MCQ_BENCHMARKS.items():
        if isinstance(row2.get(column), int | float):
            metrics.append(Metric(f"table2.{column}", bench, "accuracy", MCQ_LABELS[column], float(row2[column]),
                                  "mcq.json", _digest(mcq)))  # fmt: skip
    row3 = _row(report.get("table3"), system)
    if row3 is not None:
        scores = _fingerprinted(folder / "scores.json", hashes.get("scores.json"), "generation scores")
        protocols["scores.json"] = _protocol(scores)
        if (folder / "generate_run.json").is_file():
            generation = _fingerprinted(folder / "generate_run.json", hashes.get("generate_run.json"), "generate run")
            protocols["generate_run.json"] = _protocol(generation)
        n = row3.get("n")
        name = f"MedAsst test dialogues ({n} dialogues)" if n else "MedAsst test dialogues"
        bench = Benchmark("text-generation", "Text generation", test_set, name, "test")
        for column, (metric_type, label) in GEN_METRICS.items():
            if isinstance(row3.get(column), int | float):
                metrics.append(Metric(f"table3.{column}", bench, metric_type, label, float(row3[column]),
                                      "scores.json", _digest(scores)))  # fmt: skip
    metrics += _judge_metrics(report, system, path, test_set)
    bootstrap = (((report.get("fingerprint") or {}).get("fields") or {}).get("paired_bootstrap")) or {}
    return Results(system, metrics, _digest(report), str(report.get("reference")), bootstrap.get("resamples"),
                   bootstrap.get("seed"), protocols)  # fmt: skip


def _judge_metrics(report: dict[str, Any], system: str, where: Path, test_set: str) -> list[Metric]:
    """Pairwise win rate against each other system and the safety rate, where the report has them (fractions)."""
    fields = ((report.get("fingerprint") or {}).get("fields")) or {}
    shas = fields.get("judge_sha256") or []
    out: list[Metric] = []
    for i, section in enumerate(report.get("judge") or []):
        rubric = section.get("rubric")
        if rubric not in ("pairwise", "safety"):
            continue
        judge_path = Path(str(section.get("judge")))
        record = _fingerprinted(judge_path, shas[i] if i < len(shas) else None, "judge result")
        digest = _digest(record)
        dataset = str(record.get("dataset") or test_set)
        for j, row in enumerate(section.get("rows") or []):
            if rubric == "safety" and row.get("system") == system and isinstance(row.get("safe_rate"), int | float):
                bench = Benchmark("text-generation", "Safety (LLM judge)", dataset, "MedAsst safety items", "test")
                out.append(Metric(f"judge.{i}.rows.{j}.safe_rate", bench, "safe_rate", "safety rate (fraction)",
                                  float(row["safe_rate"]), "judge.json", digest))  # fmt: skip
            if rubric == "pairwise":
                # a row is "system vs reference": our wins are its wins, or its losses when we are the reference;
                # strict wins (ties apart) are the one rate the report holds for both sides
                if row.get("system") == system:
                    other, side = row.get("reference"), "win"
                elif row.get("reference") == system:
                    other, side = row.get("system"), "loss"
                else:
                    continue
                if isinstance(row.get(side), int | float):
                    bench = Benchmark("text-generation", "Pairwise (LLM judge)", dataset,
                                      "MedAsst test dialogues", "test")  # fmt: skip
                    out.append(Metric(f"judge.{i}.rows.{j}.{side}", bench, "win_rate",
                                      f"wins vs {other} (fraction, ties apart)", float(row[side]), "judge.json",
                                      digest))  # fmt: skip
    return out
