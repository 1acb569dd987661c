"""`report`: Table 2, Table 3 (Markdown + CSV, the paper's values alongside) and Figure 4 from run folders.

A run folder is one system: run.json ({"system": "MedAsst", ...}) plus mcq.json (from `mcq`) and/or scores.json
with scores_per_sample.jsonl (from `score`). Each system is tested against the reference (MedAsst) with a paired
bootstrap: over per-question correctness for Table 2 (each benchmark resampled on its own; overall = mean of the
two, as in the paper) and over per-sample scores for Table 3, on the items both systems answered.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import os
import shutil
import sys
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from eval.common import fingerprint as fpr
from eval.common import requests
from eval.common.files import InputFileError, atomic_write_text, iter_jsonl, read_json, write_json
from eval.metrics import stats
from eval.tables import judge_tables
from eval.tables import paper_numbers as paper

RUN_FILE = "run.json"
MCQ_FILE = "mcq.json"
SCORES_FILE = "scores.json"
PER_SAMPLE_FILE = "scores_per_sample.jsonl"
GENERATE_RUN_FILE = "generate_run.json"
REPORT_FILE = "report.json"
FORMAT_VERSION = 2  # of the tables: bump when a table's content or layout changes
# fields that name the system of a row, not the protocol it was measured under
SYSTEM_FIELDS = {"verb", "model", "adapter", "template", "default_system"}


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


INPUT_FILES = (RUN_FILE, MCQ_FILE, SCORES_FILE, PER_SAMPLE_FILE, GENERATE_RUN_FILE)


def fingerprint(request: ReportRequest) -> fpr.Fingerprint:
    """The report is a function of its run folders' result files (by sha256) and the test settings."""
    inputs = {}
    for folder in request.runs:
        path = Path(folder)
        inputs[str(path)] = {name: fpr.file_sha256(path / name) for name in INPUT_FILES if (path / name).is_file()}
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


@dataclass
class Run:
    system: str
    path: Path
    mcq: dict[str, Any] | None = None
    scores: dict[str, Any] | None = None
    per_sample: dict[str, dict[str, float]] = field(default_factory=dict)  # id → metric → score
    correct: dict[str, dict[str, float]] = field(default_factory=dict)  # benchmark → question id → 0/1
    generation: dict[str, Any] | None = None  # generate_run.json of the scored predictions, when found


def protocol_of(record: dict[str, Any] | None) -> dict[str, Any] | None:
    """The protocol part of a result's fingerprint: everything but the fields that name the system."""
    fp = fpr.stored(record)
    if fp is None:
        return None
    return {k: v for k, v in fp["fields"].items() if k not in SYSTEM_FIELDS}


def mcq_protocol(run: Run) -> dict[str, Any] | None:
    return protocol_of(run.mcq)


def generation_protocol(run: Run) -> dict[str, Any] | None:
    """Generation (data, lengths, decoding, backend) plus scoring (metric, bootstrap) of a Table 3 row."""
    gen, score = protocol_of(run.generation), protocol_of(run.scores)
    if gen is None or score is None:
        return None
    score.pop("predictions_sha256", None)
    return {"generate": gen, "score": score}


def protocol_labels(runs: list[Run], protocol) -> tuple[dict[str, str], str]:
    """Per system a label of the protocol its row was measured under, and a note saying how they differ;
    ({}, "") when every row shares one protocol."""
    found = [(run.system, protocol(run)) for run in runs]
    distinct: list[dict[str, Any]] = []
    for _, proto in found:
        if proto is not None and proto not in distinct:
            distinct.append(proto)
    if len(distinct) <= 1 and all(proto is not None for _, proto in found):
        return {}, ""
    labels: dict[str, str] = {}
    for system, proto in found:
        labels[system] = "unrecorded" if proto is None else f"P{distinct.index(proto) + 1}"
    lines = ["**Rows were measured under different protocols** (column `protocol`); compare them with care:"]
    for i, proto in enumerate(distinct[1:], start=2):
        lines.append(f"- P{i} differs from P1 in {fpr.describe(fpr.differences(distinct[0], proto), limit=6)}")
    if any(proto is None for _, proto in found):
        lines.append("- unrecorded: the result files carry no fingerprint (an older version or another tool)")
    return labels, "\n".join(lines) + "\n"


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


def backend_of(run: Run) -> str:
    """How the row's answers were generated: our generate's backend, or LF's predict when no run record exists."""
    if run.generation is None:
        return "unrecorded (e.g. llamafactory-cli predict)"
    return str(run.generation.get("backend") or "unrecorded")


def truncation_of(run: Run) -> str:
    cut = (run.generation or {}).get("truncation")
    if not isinstance(cut, dict):
        return "—"
    return (
        f"{cut.get('prompts_cut')} prompts, {cut.get('references_cut')} refs of {cut.get('n')} "
        f"at {cut.get('cutoff_len')}"
    )


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


def paper_questions(run: Run) -> bool:
    """Whether the run answered the paper's 1,415 questions (CMMLU 1,325 + C-Eval 90 of its nine subjects)."""
    from eval.data.benchmarks import PAPER, PAPER_BENCHMARKS, PAPER_COUNTS

    benches = (run.mcq or {}).get("benchmarks") or {}
    if {b: v.get("n") for b, v in benches.items() if b in PAPER_BENCHMARKS} != PAPER_COUNTS:
        return False
    subjects = ((run.mcq or {}).get("protocol") or {}).get("subjects")
    paper_subjects = {f"{b}:{s}" for b, names in PAPER.items() for s in names}
    asked = {s for s in subjects or [] if s.split(":", 1)[0] in PAPER_BENCHMARKS}
    return subjects is None or asked == paper_subjects


def flagged_questions(path: str | None) -> set[str] | None:
    """Question ids the contamination audit flagged (None: no audit given)."""
    if path is None:
        return None
    audit = read_json(path)
    flagged = audit.get("flagged") if isinstance(audit, dict) else None
    if not isinstance(flagged, list) or not all(isinstance(f, dict) and "id" in f for f in flagged):
        raise InputFileError(f"{path}: not a contamination.json (no 'flagged' list of ids)")
    return {str(f["id"]) for f in flagged}


def clean_accuracy(run: Run, flagged: set[str], resamples: int, seed: int) -> str:
    """Overall accuracy (mean of the benchmarks) on the unflagged questions, with a percentile bootstrap CI."""
    groups = [np.array([v for q, v in qs.items() if q not in flagged]) for _, qs in sorted(run.correct.items())]
    groups = [g for g in groups if len(g)]
    if not groups:
        return "—"
    value = 100 * float(np.mean([g.mean() for g in groups]))
    rng = np.random.default_rng(seed)
    draws = np.mean([g[rng.integers(0, len(g), (resamples, len(g)))].mean(axis=1) for g in groups], axis=0)
    low, high = np.percentile(100 * draws, [2.5, 97.5])
    return f"{value:.2f} [{low:.2f}, {high:.2f}] n={sum(len(g) for g in groups)}"


def xmedbench_table(runs: list[Run], resamples: int, seed: int) -> tuple[str, str, list[dict[str, Any]]]:
    """Per system, XMedBench accuracy per source and in all, each with a percentile bootstrap 95% CI."""
    from eval.data.benchmarks import XMEDBENCH_SOURCES

    rows: list[dict[str, Any]] = []
    sources = [s for s in XMEDBENCH_SOURCES if any(f"xmedbench:{s}" in (r.mcq or {}).get("subjects", {}) for r in runs)]
    for run in runs:
        correct = run.correct.get("xmedbench", {})
        row: dict[str, Any] = {"system": run.system}
        for source in [*sources, "all"]:
            values = np.array([v for q, v in correct.items() if source == "all" or q.split(":")[1] == source])
            if not len(values):
                row[source] = None
                continue
            ((low, high),) = stats.bootstrap_ci(values[:, None], resamples=resamples, seed=seed)
            row[source] = {"accuracy": 100 * float(values.mean()), "ci95": [100 * low, 100 * high], "n": len(values)}
        multiple = (run.mcq or {}).get("multiple_answer") or {}
        row["multiple_answer_not_scored"] = sum(m.get("n", 0) for k, m in multiple.items() if k.startswith("xmed"))
        rows.append(row)
    head = ["system", *sources, "all", "multiple-answer (not scored)"]
    md = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["system", *[f"{s}{x}" for s in [*sources, "all"] for x in ("", "_ci_low", "_ci_high", "_n")],
                     "multiple_answer_not_scored"])  # fmt: skip
    for row in rows:
        cells, line = [row["system"]], [row["system"]]
        for source in [*sources, "all"]:
            value = row[source]
            if value is None:
                cells.append("—")
                line += ["", "", "", ""]
                continue
            low, high = value["ci95"]
            cells.append(f"{value['accuracy']:.2f} [{low:.2f}, {high:.2f}] n={value['n']}")
            line += [round(value["accuracy"], 6), round(low, 6), round(high, 6), value["n"]]
        cells.append(str(row["multiple_answer_not_scored"]))
        line.append(row["multiple_answer_not_scored"])
        md.append("| " + " | ".join(cells) + " |")
        writer.writerow(line)
    return "\n".join(md) + "\n", buffer.getvalue(), rows


def no_shared_items(runs: list[Run], ref: Run | None, items) -> list[str]:
    """The systems that share no item with the reference, so no p-value can be computed for them."""
    if ref is None:
        return []
    return [r.system for r in runs if r is not ref and not items(r) & items(ref)]


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
    run = Run(system=str(system), path=folder)
    if (folder / MCQ_FILE).exists():
        run.mcq = check_mcq(read_json(folder / MCQ_FILE), folder / MCQ_FILE)
        run.correct = _mcq_correctness(run.mcq, folder / MCQ_FILE)
    if (folder / SCORES_FILE).exists():
        run.scores = check_scores(read_json(folder / SCORES_FILE), folder / SCORES_FILE)
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


def order_systems(runs: list[Run]) -> list[Run]:
    seen: dict[str, Run] = {}
    for run in runs:
        if run.system in seen:
            raise InputFileError(f"two run folders name the system {run.system!r}: {seen[run.system].path}, {run.path}")
        seen[run.system] = run
    rank = {name: i for i, name in enumerate(paper.SYSTEMS)}
    return sorted(runs, key=lambda r: (rank.get(r.system, len(rank)), r.system))


def mcq_value(run: Run, column: str) -> float | None:
    if run.mcq is None:
        return None
    if column == "overall":
        value = run.mcq.get("overall")
    else:
        value = (run.mcq.get("benchmarks") or {}).get(column, {}).get("accuracy")
    return None if value is None else float(value)


def mcq_p_values(run: Run, ref: Run, resamples: int, seed: int) -> dict[str, float | None]:
    out: dict[str, float | None] = dict.fromkeys(paper.TABLE2_COLUMNS)
    benches = [b for b in paper.TABLE2_COLUMNS if b != "overall" and b in run.correct and b in ref.correct]
    groups_a, groups_b = [], []
    for bench in benches:
        shared = sorted(set(run.correct[bench]) & set(ref.correct[bench]))
        if not shared:
            continue
        a = np.array([run.correct[bench][q] for q in shared])
        b = np.array([ref.correct[bench][q] for q in shared])
        out[bench] = stats.paired_bootstrap_p([a], [b], resamples=resamples, seed=seed)
        groups_a.append(a)
        groups_b.append(b)
    if len(groups_a) == len([c for c in paper.TABLE2_COLUMNS if c != "overall"]):

        def overall(means: list[float]) -> float:
            return sum(means) / len(means)

        out["overall"] = stats.paired_bootstrap_p(groups_a, groups_b, overall, resamples=resamples, seed=seed)
    return out


def gen_p_values(run: Run, ref: Run, resamples: int, seed: int) -> dict[str, float | None]:
    out: dict[str, float | None] = dict.fromkeys(paper.TABLE3_COLUMNS)
    shared = sorted(set(run.per_sample) & set(ref.per_sample))
    if not shared:
        return out
    if len(shared) < max(len(run.per_sample), len(ref.per_sample)):
        warnings.warn(f"{run.system} vs {ref.system}: testing on the {len(shared)} samples both have", stacklevel=2)
    for metric in paper.TABLE3_COLUMNS:
        if all(metric in run.per_sample[i] and metric in ref.per_sample[i] for i in shared):
            a = np.array([run.per_sample[i][metric] for i in shared])
            b = np.array([ref.per_sample[i][metric] for i in shared])
            out[metric] = stats.paired_bootstrap_p([a], [b], resamples=resamples, seed=seed)
    return out


def _num(value: float | None, digits: int = 2) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _p(value: float | None) -> str:
    if value is None:
        return "—"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def outside_paper(runs: list[Run], table: dict[str, Any]) -> list[str]:
    """A note naming the rows that are not among the paper's systems (extra rows: no paper value)."""
    extra = [r.system for r in runs if r.system not in table]
    if not extra:
        return []
    return [f"**Not among the paper's systems** (extra rows, not part of its comparison; no paper value): "
            f"{', '.join(extra)}.\n"]  # fmt: skip


def build_table(
    runs: list[Run],
    ref: Run | None,
    columns: tuple[str, ...],
    labels: dict[str, str],
    paper_values: dict[str, dict[str, float]],
    value_of,
    p_of,
    n_of,
    extra: dict[str, Any] | None = None,
) -> tuple[str, str, list[dict[str, Any]]]:
    """(Markdown, CSV, rows): per column ours | paper | p vs the reference, then `extra` columns (key → fn(run))."""
    extra = extra or {}
    rows: list[dict[str, Any]] = []
    for run in runs:
        pvals = p_of(run, ref) if ref is not None and run is not ref else {}
        row: dict[str, Any] = {"system": run.system, "n": n_of(run)}
        row.update({key: fn(run) for key, fn in extra.items()})
        for col in columns:
            row[col] = value_of(run, col)
            row[f"{col}_paper"] = paper_values.get(run.system, {}).get(col)
            row[f"{col}_p"] = pvals.get(col)
        rows.append(row)
    ref_name = ref.system if ref is not None else "—"
    head = ["system", "n"]
    for col in columns:
        head += [labels[col], f"{labels[col]} (paper)", f"p vs {ref_name}"]
    head += list(extra)
    align = ["---"] + ["---:"] * (len(head) - 1 - len(extra)) + ["---"] * len(extra)
    md = ["| " + " | ".join(head) + " |", "|" + "|".join(align) + "|"]
    for row in rows:
        cells = [row["system"], "—" if row["n"] is None else str(row["n"])]
        for col in columns:
            cells += [_num(row[col]), _num(row[f"{col}_paper"]), _p(row[f"{col}_p"])]
        cells += [str(row[key]) for key in extra]
        md.append("| " + " | ".join(cells) + " |")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    csv_head = ["system", "n"] + [f"{c}{s}" for c in columns for s in ("", "_paper", "_p")] + list(extra)
    writer.writerow(csv_head)
    for row in rows:
        writer.writerow(["" if row[k] is None else (round(row[k], 6) if isinstance(row[k], float) else row[k])
                         for k in csv_head])  # fmt: skip
    return "\n".join(md) + "\n", buffer.getvalue(), rows


def run_report(request: ReportRequest) -> dict[str, Any]:
    from eval.tables.figure import plot_table3

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
        result = _write_report(runs, ref, request, fp, staging, plot_table3)
        _commit(staging, out, result["files"])
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return result


def _commit(staging: Path, out: Path, names: list[str]) -> None:
    """Move the staged files into place, report.json last: it lists the sha256 of the others, so a reader (and
    the next run) can tell a complete set from one interrupted halfway."""
    for name in sorted(names, key=lambda n: n == REPORT_FILE):
        os.replace(staging / name, out / name)


def _write_report(runs: list[Run], ref: Run | None, request: ReportRequest, fp, out: Path, plot_table3):
    reference, resamples, seed = request.reference, request.resamples, request.seed
    result: dict[str, Any] = {"reference": reference, "systems": [r.system for r in runs], "files": []}
    sections = [f"# MedAsst evaluation report\n\nReference for p-values: {ref.system if ref else '—'} "
                f"(paired bootstrap, {resamples} resamples, seed {seed}, two-sided).\n"]  # fmt: skip
    footer = f"\nInputs: fingerprint `{fp.digest[:16]}` (the run folders' result files by sha256; {REPORT_FILE}).\n"

    # Table 2 is CMMLU + C-Eval: a run of other benchmarks only (XMedBench) gets its own table below, not a row
    all_mcq = [r for r in runs if r.mcq is not None]
    mcq_runs = [r for r in all_mcq if set(r.mcq.get("benchmarks") or {}) & set(paper.TABLE2_COLUMNS)]
    if mcq_runs:
        labels2, note2 = protocol_labels(mcq_runs, mcq_protocol)
        extra2: dict[str, Any] = {"protocol": lambda r: labels2[r.system]} if labels2 else {}
        comparable = {r.system for r in mcq_runs if paper_questions(r)}
        notes2 = [note2] if note2 else []
        if len(comparable) < len(mcq_runs):
            extra2["questions"] = lambda r: "the paper's 1,415" if r.system in comparable else "other (see note)"
            notes2.append(
                "**Rows on other questions than the paper's 1,415** (CMMLU 1,325 + C-Eval 90 of its nine subjects) "
                "show no paper value: their accuracy is not comparable with it.\n"
            )
        lonely = no_shared_items(mcq_runs, ref if ref and ref.mcq else None,
                                 lambda r: {q for qs in r.correct.values() for q in qs})  # fmt: skip
        if lonely:
            notes2.append(f"No p-value for {', '.join(lonely)}: no question in common with {reference}.\n")
        if any((r.mcq.get("protocol") or {}).get("scoring_method") == "generate" for r in mcq_runs):
            extra2["scoring"] = lambda r: (
                f"generate ({r.mcq.get('unparsed', 0)} unparsed)"
                if (r.mcq.get("protocol") or {}).get("scoring_method") == "generate"
                else "logits"
            )
            notes2.append(
                "**scoring**: `logits` reads the letter with the highest next-token logit; `generate` parses it from a "
                "greedy reply, and an unparsed reply counts as wrong.\n"
            )
        flagged = flagged_questions(request.contamination)
        if flagged is not None:
            extra2["overall (clean) [95% CI]"] = lambda r: clean_accuracy(r, flagged, resamples, seed)
            asked = {q for r in mcq_runs for qs in r.correct.values() for q in qs}
            notes2.append(
                f"**clean**: accuracy on the questions the contamination audit did not flag ({len(flagged & asked)} "
                f"of the {len(asked)} asked were flagged; {Path(request.contamination).name}).\n"
            )
        notes2 += outside_paper(mcq_runs, paper.TABLE2)
        paper2 = {name: values for name, values in paper.TABLE2.items() if name in comparable}
        md, text, rows = build_table(
            mcq_runs, ref if ref and ref.mcq else None, paper.TABLE2_COLUMNS, paper.TABLE2_LABELS, paper2,
            mcq_value, lambda r, f: mcq_p_values(r, f, resamples, seed),
            lambda r: sum(int((r.mcq.get("benchmarks") or {}).get(b, {}).get("n", 0)) for b in ("cmmlu", "ceval")),
            extra2,
        )  # fmt: skip
        md += "".join("\n" + note for note in notes2) + footer
        atomic_write_text(out / "table2.md", md)
        atomic_write_text(out / "table2.csv", text)
        result["table2"] = rows
        result["table2_protocols"] = labels2 or "one protocol"
        result["table2_paper_questions"] = sorted(comparable)
        result["files"] += ["table2.md", "table2.csv"]
        sections.append(
            "## Table 2: CMMLU + C-Eval medical multiple choice (accuracy %)\n\n" + md + "\n" + paper.TABLE2_NOTE + "\n"
        )

    xmed_runs = [r for r in all_mcq if "xmedbench" in (r.mcq.get("benchmarks") or {})]
    if xmed_runs:
        md, text, rows = xmedbench_table(xmed_runs, resamples, seed)
        md += (
            "\nSingle-answer questions only, read as Table 2 (the letter with the highest logit among the "
            "question's own options, A–E). Multiple-answer items are counted, not scored. `cmmlu-medical` repeats "
            "CMMLU test questions (843 of them are among Table 2's 1,325).\n" + footer
        )
        atomic_write_text(out / "table_xmedbench.md", md)
        atomic_write_text(out / "table_xmedbench.csv", text)
        result["table_xmedbench"] = rows
        result["files"] += ["table_xmedbench.md", "table_xmedbench.csv"]
        sections.append("## XMedBench: Chinese medical exams (accuracy %, 95% CI)\n\n" + md)

    gen_runs = [r for r in runs if r.scores is not None]
    if gen_runs:
        labels3, note3 = protocol_labels(gen_runs, generation_protocol)
        extra3: dict[str, Any] = {
            "backend": backend_of,
            "cut at cutoff_len": truncation_of,
            "repeated 4-grams %": lambda r: _num(r.scores.get("repeated-4grams")),
        }
        if labels3:
            extra3["protocol"] = lambda r: labels3[r.system]
        notes3 = [note3] if note3 else []
        notes3 += outside_paper(gen_runs, paper.TABLE3)
        lonely = no_shared_items(gen_runs, ref if ref and ref.scores else None, lambda r: set(r.per_sample))
        if lonely:
            notes3.append(f"No p-value for {', '.join(lonely)}: no test item in common with {reference}.\n")
        md, text, rows = build_table(
            gen_runs, ref if ref and ref.scores else None, paper.TABLE3_COLUMNS, paper.TABLE3_LABELS, paper.TABLE3,
            lambda r, c: None if r.scores.get(c) is None else float(r.scores[c]),
            lambda r, f: gen_p_values(r, f, resamples, seed),
            lambda r: r.scores.get("n"),
            extra3,
        )  # fmt: skip
        md += "".join("\n" + note for note in notes3) + footer
        atomic_write_text(out / "table3.md", md)
        atomic_write_text(out / "table3.csv", text)
        result["table3"] = rows
        result["table3_protocols"] = labels3 or "one protocol"
        values = [[row[c] for c in paper.TABLE3_COLUMNS] for row in rows]
        labels = [paper.TABLE3_LABELS[c] for c in paper.TABLE3_COLUMNS]
        result["figure4"] = plot_table3(
            [r.system for r in gen_runs], paper.TABLE3_COLUMNS, labels, values, out / "figure4.png"
        )
        result["files"] += ["table3.md", "table3.csv", "figure4.png"]
        sections.append("## Table 3: generation on the test set (×100)\n\n" + md + "\n![Figure 4](figure4.png)\n")

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
