"""`python -m eval.run contamination`: which exam questions and test dialogues the training set already holds.

Character n-grams on normalised text (NFKC, case-folded, punctuation, symbols, whitespace and control characters
removed; a question's options are part of its text). An item is flagged when at least `threshold` of its
n-grams occur somewhere in the training set (every turn of every record, `history` included); the training
record that holds most of them is kept as evidence. Defaults: 13-grams (GPT-3's length, here in characters: a
Chinese character carries about a word's information, and 13 characters is longer than any stock phrase of an
exam prompt such as 以下是中国关于…) and a threshold of 0.5 (most of a question's text, not a shared clause).

One streaming pass over the training file. The benchmark side is small (1,415 questions and ~9k test dialogues
give about a million n-grams): their 64-bit rolling hashes sit in one sorted array, and each batch of training
text is hashed and looked up with numpy, so memory is bounded by the benchmark's n-grams, not the training set.
"""

from __future__ import annotations

import argparse
import functools
import sys
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eval.common import fingerprint as fpr
from eval.common import requests
from eval.common.files import InputFileError, atomic_write_text, read_json
from eval.data.benchmarks import BenchmarkError, BenchmarkSource, resolve_subjects
from eval.data.prompts import DatasetError, dataset_entry
from medasst.facts import DEFAULT_DATA_DIR, merged_file

RESULT_FILE = "contamination.json"
DEFAULT_N = 13
DEFAULT_THRESHOLD = 0.5
NORMALIZATION = "NFKC, casefold, drop Unicode categories P*, S*, Z*, C* (punctuation, symbols, spaces, controls)"
METHOD_VERSION = 1
BATCH_LINES = 8192
DEFAULT_TRAIN = str(Path(DEFAULT_DATA_DIR) / merged_file("train"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--train", default=DEFAULT_TRAIN, help=f"training JSONL (default: {DEFAULT_TRAIN})")
    parser.add_argument("--subjects", default="paper", help="multiple-choice subjects, as in mcq (default: paper)")
    parser.add_argument("--benchmarks", help="benchmark folder, as in mcq (default: the shipped CSVs)")
    parser.add_argument("--dataset", default="medasst_test", help="test set in dataset_info.json ('' for none)")
    parser.add_argument("--dataset-dir", default=".", help="folder holding dataset_info.json (default: .)")
    parser.add_argument("--n", type=int, default=DEFAULT_N, help=f"n-gram length in characters ({DEFAULT_N})")
    parser.add_argument(
        "--threshold", type=float, default=DEFAULT_THRESHOLD, help="share of an item's n-grams that flags it (0.5)"
    )
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
    recompute: bool = False

    def __post_init__(self) -> None:
        requests.input_file(Path(self.train), "train")
        requests.output_folder(Path(self.output))
        requests.at_least("n", self.n, 5)
        if not isinstance(self.threshold, int | float) or not 0 < self.threshold <= 1:
            raise requests.UsageError(f"--threshold must be in (0, 1], got {self.threshold!r}")
        if self.benchmarks is not None and not Path(self.benchmarks).is_dir():
            raise requests.UsageError(f"--benchmarks {self.benchmarks}: folder not found")
        if self.dataset:
            try:
                dataset_entry(self.dataset, self.dataset_dir)
            except DatasetError as e:
                raise requests.UsageError(str(e)) from None

    @property
    def result_path(self) -> Path:
        return Path(self.output) / RESULT_FILE


REQUEST = ContaminationRequest


@functools.cache
def _dropped() -> dict[int, None]:
    """str.translate table removing every punctuation, symbol, separator and control character."""
    return {cp: None for cp in range(sys.maxunicode + 1) if unicodedata.category(chr(cp))[0] in "PSZC"}


def normalize(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold().translate(_dropped())


@dataclass(frozen=True)
class Item:
    id: str
    group: str  # "cmmlu:anatomy" for a question, "test:<source>" for a test dialogue
    text: str  # normalised


def dialogue_text(record: dict[str, Any]) -> list[str]:
    """Every turn of an Alpaca record, as separate segments (an n-gram never spans two turns)."""
    parts: list[str] = []
    history = record.get("history")
    if isinstance(history, list):
        for turn in history:
            if isinstance(turn, list | tuple):
                parts.extend(str(t) for t in turn if isinstance(t, str))
    parts.extend(str(record.get(k)) for k in ("instruction", "input", "output") if isinstance(record.get(k), str))
    return parts


def benchmark_items(request: ContaminationRequest) -> tuple[list[Item], dict[str, str]]:
    """(items, data file → sha256): the selected questions (question + options) and the test dialogues."""
    from eval.data import prompts
    from eval.data.benchmarks import EVAL_SPLIT

    source = BenchmarkSource(request.benchmarks)
    items: list[Item] = []
    files: dict[str, str] = {}
    for subject in resolve_subjects(request.subjects, source):
        split = EVAL_SPLIT[subject.benchmark]
        questions, info = source.load(subject.benchmark, subject.subject, split)
        files[f"{subject.key}:{split}"] = info["sha256"]
        for q in questions:
            items.append(Item(q.key, subject.key, normalize(q.question + "".join(q.options))))
    if request.dataset:
        _, paths = dataset_entry(request.dataset, request.dataset_dir)
        files |= {f"{request.dataset}:{p.name}": fpr.file_sha256(p) for p in paths}
        position = 0
        for path in paths:
            for record in prompts._read_records(path):
                position += 1
                rid = prompts.record_id(record, position)
                group = f"test:{record.get('source') or 'unknown'}"
                items.append(Item(rid, group, "\n".join(normalize(t) for t in dialogue_text(record))))
    return items, files


def fingerprint(request: ContaminationRequest, files: dict[str, str]) -> fpr.Fingerprint:
    return fpr.Fingerprint(
        fields={
            "verb": "contamination",
            "method": {
                "version": METHOD_VERSION,
                "n": request.n,
                "threshold": request.threshold,
                "normalization": NORMALIZATION,
            },
            "train_sha256": fpr.file_sha256(request.train),
            "subjects": request.subjects,
            "benchmark_files": dict(sorted(files.items())),
            "dataset": request.dataset or None,
        },
        recorded={"train": str(request.train), "versions": fpr.package_versions(("numpy", "orjson"))},
    )


# --- hashing ------------------------------------------------------------------------------------------------

_BASE = 0x100000001B3  # FNV prime: odd, so multiplication mod 2**64 is a bijection
_SEPARATOR = ord("\n")  # removed by normalize, so it only ever marks a boundary between segments


def window_hashes(codepoints, n: int):
    """(64-bit rolling hash, start) of every n-character window that does not cross a separator."""
    import numpy as np

    c = np.asarray(codepoints, dtype=np.uint64)
    if len(c) < n:
        return np.empty(0, np.uint64), np.empty(0, np.int64)
    windows = len(c) - n + 1
    h = np.zeros(windows, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(n):
            h = h * np.uint64(_BASE) + c[k : k + windows] + np.uint64(1)
        h ^= h >> np.uint64(29)  # a final mix: nearby windows get unrelated values
        h *= np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(32)
    seps = np.concatenate(([0], np.cumsum(c == _SEPARATOR)))
    ok = seps[n:] - seps[:-n] == 0
    return h[ok], np.nonzero(ok)[0]


def _codepoints(text: str):
    import numpy as np

    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


class Index:
    """The benchmark items' n-grams: a sorted array of hashes, and per item the positions of its own."""

    def __init__(self, items: list[Item], n: int):
        import numpy as np

        self.items, self.n = items, n
        per_item = [np.unique(window_hashes(_codepoints(item.text), n)[0]) for item in items]
        self.hashes = np.unique(np.concatenate(per_item)) if per_item else np.empty(0, np.uint64)
        self.of_item = [np.searchsorted(self.hashes, h) for h in per_item]
        self.found = np.zeros(len(self.hashes), dtype=bool)
        self.first_record = np.full(len(self.hashes), -1, dtype=np.int64)  # training record that first had it

    def scan(self, text: str, record_ends: list[int], first_record: int) -> set[int]:
        """Mark the n-grams of a batch of training text; return the (global) records that hit any."""
        import numpy as np

        if not len(self.hashes):
            return set()
        h, starts = window_hashes(_codepoints(text), self.n)
        at = np.searchsorted(self.hashes, h)
        at[at == len(self.hashes)] = 0
        hit = self.hashes[at] == h
        if not hit.any():
            return set()
        at, starts = at[hit], starts[hit]
        records = np.searchsorted(np.asarray(record_ends), starts, side="right") + first_record
        fresh = self.first_record[at] < 0
        # the earliest record of this batch for each n-gram seen for the first time
        order = np.lexsort((records[fresh], at[fresh]))
        new_at, new_rec = at[fresh][order], records[fresh][order]
        first = np.unique(new_at, return_index=True)[1]
        self.first_record[new_at[first]] = new_rec[first]
        self.found[at] = True
        return set(np.unique(records).tolist())


def scan_training(index: Index, path: Path) -> dict[str, Any]:
    """One streaming pass; returns {records, skipped, ids (record number → id for the records that hit)}."""
    import orjson

    ids: dict[int, str] = {}
    skipped: dict[str, int] = {}
    batch: list[str] = []
    batch_ids: list[str] = []
    ends: list[int] = []
    size = 0
    records = 0

    def flush() -> None:
        nonlocal batch, batch_ids, ends, size
        if batch:
            first = records - len(batch_ids)
            for rec in index.scan("".join(batch), ends, first):
                ids[rec] = batch_ids[rec - first]
        batch, batch_ids, ends, size = [], [], [], 0

    with path.open("rb") as f:
        for lineno, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                record = orjson.loads(raw)
            except orjson.JSONDecodeError:
                skipped["bad_json"] = skipped.get("bad_json", 0) + 1
                continue
            if not isinstance(record, dict):
                skipped["not_an_object"] = skipped.get("not_an_object", 0) + 1
                continue
            text = "\n".join(normalize(t) for t in dialogue_text(record)) + "\n"
            batch.append(text)
            size += len(text)
            ends.append(size)
            batch_ids.append(str(record.get("id") or f"#{lineno}"))
            records += 1
            if len(batch) >= BATCH_LINES:
                flush()
    flush()
    return {"records": records, "skipped": dict(sorted(skipped.items())), "ids": ids}


def summarize(index: Index, ids: dict[int, str], threshold: float) -> dict[str, Any]:
    import numpy as np

    groups: dict[str, dict[str, Any]] = {}
    flagged: list[dict[str, Any]] = []
    for item, positions in zip(index.items, index.of_item, strict=True):
        group = groups.setdefault(item.group, {"n": 0, "flagged": 0, "too_short": 0})
        group["n"] += 1
        if not len(positions):
            group["too_short"] += 1  # shorter than n characters: cannot be checked this way
            continue
        overlap = float(index.found[positions].mean())
        if overlap >= threshold:
            group["flagged"] += 1
            hits = index.first_record[positions]
            values, counts = np.unique(hits[hits >= 0], return_counts=True)
            evidence = ids.get(int(values[np.argmax(counts)])) if len(values) else None
            flagged.append({"id": item.id, "train_id": evidence, "overlap": round(overlap, 4)})
    for group in groups.values():
        checked = group["n"] - group["too_short"]
        group["share"] = group["flagged"] / checked if checked else 0.0
    benchmarks: dict[str, dict[str, Any]] = {}
    for key, group in groups.items():
        if key.startswith("test:"):
            continue
        bench = benchmarks.setdefault(key.split(":", 1)[0], {"n": 0, "flagged": 0, "too_short": 0})
        for field in ("n", "flagged", "too_short"):
            bench[field] += group[field]
    for bench in benchmarks.values():
        checked = bench["n"] - bench["too_short"]
        bench["share"] = bench["flagged"] / checked if checked else 0.0
    return {
        "benchmarks": benchmarks,
        "subjects": {k: v for k, v in sorted(groups.items()) if not k.startswith("test:")},
        "test_sources": {k.split(":", 1)[1]: v for k, v in sorted(groups.items()) if k.startswith("test:")},
        "flagged": sorted(flagged, key=lambda f: f["id"]),
    }


def current(request: ContaminationRequest, fp: fpr.Fingerprint) -> dict[str, Any] | None:
    if request.recompute or not request.result_path.is_file():
        return None
    record = read_json(request.result_path)
    fpr.check_reusable(request.result_path, record, fp, "a contamination audit")
    return record


def run(request: ContaminationRequest) -> dict[str, Any]:
    import json

    items, files = benchmark_items(request)
    fp = fingerprint(request, files)
    previous = current(request, fp)
    if previous is not None:
        return previous | {"reused": True}
    index = Index(items, request.n)
    scanned = scan_training(index, Path(request.train))
    result: dict[str, Any] = {
        "method": {
            "n": request.n,
            "threshold": request.threshold,
            "normalization": NORMALIZATION,
            "unit": "characters",
            "benchmark_ngrams": len(index.hashes),
        },
        "train": {"file": str(request.train), "records": scanned["records"], "skipped": scanned["skipped"]},
        **summarize(index, scanned["ids"], request.threshold),
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
        print(f"{bench}: {b['flagged']} of {b['n']} questions flagged ({100 * b['share']:.2f}%)")
    for source, s in result["test_sources"].items():
        print(f"test {source}: {s['flagged']} of {s['n']} dialogues flagged ({100 * s['share']:.2f}%)")
    state = " (up to date, reused)" if result.get("reused") else ""
    print(f"{len(result['flagged'])} flagged → {request.result_path}{state}")
    return 0
