"""`python -m eval.run contamination`: which exam items and test dialogues the training set already holds.

Exam items are matched as segments (stem, each option, the correct one) with option labels and answer markers
cut out on both sides, so a copy is found in any layout: LLaMA-Factory's eval prompt, labels or none, options on
one line or many and in any order, full-width forms, in `history`, inside a longer answer listing several
questions. Two stages over one streaming pass (`scan`): stage 1 looks every 13-gram and every segment start of
the training text up in the benchmark's keys (`index`) and checks each candidate (record, item) exactly
(`verify`); stage 2 scores the candidates that failed as near-duplicates (rapidfuzz), its time counted apart.
Test dialogues are two sides, question and reference answer, each an n-gram share. eval/README.md, section
"contamination", gives the rules, thresholds and measured recall.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eval.common import fingerprint as fpr
from eval.common import requests
from eval.common.files import InputFileError, atomic_write_text, read_json
from eval.contamination import items as itemsmod
from eval.contamination import scan as scanmod
from eval.contamination.index import Index
from eval.contamination.summary import summarize
from eval.contamination.text import NORMALIZATION, normalize, normalize_turns  # noqa: F401 (public helpers)
from eval.data.benchmarks import BenchmarkError, BenchmarkSource, resolve_subjects
from eval.data.prompts import DatasetError, dataset_entry
from medasst.facts import DEFAULT_DATA_DIR, merged_file

RESULT_FILE = "contamination.json"
DEFAULT_N = 13
DEFAULT_THRESHOLD = 0.5
DEFAULT_NEAR = 90.0
# 4: items as segments with labels cut, two sides, siblings, near-duplicates (3 indexed stem + options glued)
METHOD_VERSION = 4
WARN_SKIPPED_SHARE = 0.05
DEFAULT_TRAIN = str(Path(DEFAULT_DATA_DIR) / merged_file("train"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--train", default=DEFAULT_TRAIN, help=f"training JSONL (default: {DEFAULT_TRAIN})")
    parser.add_argument("--subjects", default="paper", help="multiple-choice subjects, as in mcq (default: paper)")
    parser.add_argument("--benchmarks", help="benchmark folder, as in mcq (default: the shipped CSVs)")
    parser.add_argument("--dataset", default="medasst_test", help="test set in dataset_info.json ('' for none)")
    parser.add_argument("--dataset-dir", default=".", help="folder holding dataset_info.json (default: .)")
    parser.add_argument("--n", type=int, default=DEFAULT_N, help=f"n-gram length in characters ({DEFAULT_N})")
    parser.add_argument(
        "--threshold", type=float, default=DEFAULT_THRESHOLD, help="share of a side's n-grams that flags it (0.5)"
    )
    parser.add_argument(
        "--near", type=float, default=DEFAULT_NEAR, help=f"near-duplicate score, 0-100 (default {DEFAULT_NEAR:g})"
    )
    parser.add_argument("--workers", type=int, help="processes scanning the training file (default: usable cores)")
    parser.add_argument("--output", required=True, help="output folder; contamination.json is written there")
    requests.add_recompute(parser)


@dataclass(frozen=True)
class ContaminationRequest:
    output: Path
    train: Path = Path(DEFAULT_TRAIN)
    subjects: str = "paper"
    benchmarks: str | None = None
    dataset: str | None = "medasst_test"
    dataset_dir: str = "."
    n: int = DEFAULT_N
    threshold: float = DEFAULT_THRESHOLD
    near: float = DEFAULT_NEAR
    workers: int | None = None
    recompute: bool = False

    def __post_init__(self) -> None:
        requests.input_file(Path(self.train), "train")
        requests.output_folder(Path(self.output))
        requests.at_least("n", self.n, 5)
        requests.at_least("workers", self.workers, 1, optional=True)
        if not isinstance(self.threshold, int | float) or not 0 < self.threshold <= 1:
            raise requests.UsageError(f"--threshold must be in (0, 1], got {self.threshold!r}")
        if not isinstance(self.near, int | float) or not 50 <= self.near <= 100:
            raise requests.UsageError(f"--near must be in [50, 100], got {self.near!r}")
        if self.benchmarks is not None and not Path(self.benchmarks).is_dir():
            raise requests.UsageError(f"--benchmarks {self.benchmarks}: folder not found")
        if self.dataset:
            requests.dataset(self.dataset, self.dataset_dir)

    @property
    def result_path(self) -> Path:
        return Path(self.output) / RESULT_FILE


REQUEST = ContaminationRequest


def benchmark_items(request: ContaminationRequest):
    """(exam items, test dialogues, covered subjects, data file → sha256)."""
    from eval.data import prompts
    from eval.data.benchmarks import EVAL_SPLIT

    source = BenchmarkSource(request.benchmarks)
    exams: list[itemsmod.ExamItem] = []
    files: dict[str, str] = {}
    covered: dict[str, dict[str, Any]] = {}
    for subject in resolve_subjects(request.subjects, source):
        split = EVAL_SPLIT[subject.benchmark]
        questions, info = source.load(subject.benchmark, subject.subject, split)
        files[f"{subject.key}:{split}"] = info["sha256"]
        covered[subject.key] = {"split": split, "sha256": info["sha256"], "n": len(questions)}
        exams += [itemsmod.exam_item(q.key, subject.key, q.question, q.options, q.answer) for q in questions]
    dialogues: list[itemsmod.Dialogue] = []
    if request.dataset:
        _, paths = dataset_entry(request.dataset, request.dataset_dir)
        files |= {f"{request.dataset}:{p.name}": fpr.file_sha256(p) for p in paths}
        position = 0
        for path in paths:
            for record in prompts._read_records(path):
                position += 1
                if not isinstance(record, dict):
                    raise DatasetError(f"{path}: record {position} is not a JSON object")
                question, answer = scanmod.dialogue_turns(record)
                dialogues.append(itemsmod.Dialogue(
                    prompts.record_id(record, position), f"test:{record.get('source') or 'unknown'}",
                    question, answer))  # fmt: skip
        _normalize_sides(dialogues)
    return exams, dialogues, covered, files


def _normalize_sides(dialogues: list[itemsmod.Dialogue]) -> None:
    """Every turn of every test dialogue normalised in one pass (one numpy call per dialogue costs seconds)."""
    turns = [t for d in dialogues for t in (*d.question, *d.answer)]
    text = normalize_turns(turns)
    chars = text.chars.tobytes().decode("utf-32-le", "surrogatepass")
    starts = [0, *text.turn_ends.tolist()]
    done = iter(chars[a:b] for a, b in itertools.pairwise(starts))
    for d in dialogues:
        d.question = [next(done) for _ in d.question]
        d.answer = [next(done) for _ in d.answer]


def method(request: ContaminationRequest) -> dict[str, Any]:
    """The audit's method and settings: in the fingerprint, and in the result beside what it measured."""
    return {
        "version": METHOD_VERSION,
        "n": request.n,
        "threshold": request.threshold,
        "near": request.near,
        "normalization": NORMALIZATION,
        "min_item_chars": itemsmod.MIN_ITEM_CHARS,
        "min_anchor_chars": itemsmod.MIN_ANCHOR_CHARS,
    }


def fingerprint(request: ContaminationRequest, files: dict[str, str]) -> fpr.Fingerprint:
    return fpr.Fingerprint(
        fields={
            "verb": "contamination",
            "method": method(request),
            "train_sha256": fpr.file_sha256(request.train),
            "subjects": request.subjects,
            "benchmark_files": dict(sorted(files.items())),
            "dataset": request.dataset or None,
        },
        recorded={
            "train": str(request.train),
            "workers": request.workers,
            "versions": fpr.package_versions(("numpy", "orjson", "rapidfuzz")),
        },
    )


def current(request: ContaminationRequest, fp: fpr.Fingerprint) -> dict[str, Any] | None:
    if request.recompute or not request.result_path.is_file():
        return None
    record = read_json(request.result_path)
    fpr.check_reusable(request.result_path, record, fp, "a contamination audit")
    return record


def _check_scanned(train: Path, scanned: dict[str, Any]) -> float:
    """The share of lines skipped; an error when nothing could be read (an empty or wrong file is not clean)."""
    skipped = sum(scanned["skipped"].values())
    if not scanned["records"]:
        what = f"{skipped} line(s) skipped: {scanned['skipped']}" if skipped else "the file is empty"
        raise InputFileError(f"{train}: no training record read ({what}); nothing to audit")
    share = skipped / (skipped + scanned["records"])
    if share > WARN_SKIPPED_SHARE:
        print(f"warning: {train}: {skipped} of {skipped + scanned['records']} lines skipped ({100 * share:.1f}%: "
              f"{scanned['skipped']}); the audit covers only the records read", file=sys.stderr)  # fmt: skip
    return share


def run(request: ContaminationRequest) -> dict[str, Any]:
    exams, dialogues, covered, files = benchmark_items(request)
    fp = fingerprint(request, files)
    previous = current(request, fp)
    if previous is not None:
        return previous | {"reused": True}
    start = time.perf_counter()
    vignettes = itemsmod.prepare(exams, request.n)
    index = Index(exams, dialogues, request.n)
    built = time.perf_counter() - start
    workers = request.workers or len(os.sched_getaffinity(0))
    try:
        scanned = scanmod.scan_training(index, Path(request.train), workers, request.near)
    except OSError as e:
        raise InputFileError(f"{request.train}: cannot be read ({e.strerror or e})") from None
    share = _check_scanned(Path(request.train), scanned)
    seconds = scanned["seconds"]
    result: dict[str, Any] = {
        "method": method(request) | {"unit": "characters", "benchmark_keys": len(index.keys)},
        "train": {"file": str(request.train), "records": scanned["records"], "lines": scanned["lines"],
                  "skipped": scanned["skipped"], "skipped_share": round(share, 6)},
        "covered": covered,
        **summarize(index, scanned, request.threshold),
        "shared_vignettes": vignettes,
        # the only part that varies between two runs of the same inputs: CPU seconds summed over workers
        "stages": {"index_seconds": round(built, 3), "stage1_seconds": round(seconds["stage1"], 3),
                   "verify_seconds": round(seconds["verify"], 3), "candidates": scanned["candidates"],
                   "near_seconds": round(seconds["near"], 3), "near_checked": scanned["near_checked"]},
        "fingerprint": fp.to_json(),
    }
    atomic_write_text(request.result_path, json.dumps(result, ensure_ascii=False, indent=1) + "\n")
    return result


def main(request: ContaminationRequest) -> int:
    try:
        result = run(request)
    except (BenchmarkError, DatasetError, InputFileError, fpr.FingerprintMismatch) as e:
        print(f"contamination: {e}", file=sys.stderr)
        return 2
    for bench, b in result["benchmarks"].items():
        print(f"{bench}: {b['n']} questions: {b['dirty']} dirty, {b['partly']} partly, {b['clean']} clean, "
              f"{b['unchecked']} unchecked")  # fmt: skip
    for source, s in result["test_sources"].items():
        print(f"test {source}: {s['n']} dialogues: {s['dirty']} copied, {s['answer_only']} answer only, "
              f"{s['unchecked']} unchecked")  # fmt: skip
    state = " (up to date, reused)" if result.get("reused") else ""
    print(f"{len(result['flagged'])} flagged → {request.result_path}{state}")
    return 0
