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
import itertools
import os
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
NORMALIZATION = (
    "per character: NFKC, casefold, then drop Unicode categories P*, S*, Z*, C* (punctuation, symbols, spaces, "
    "controls)"
)
METHOD_VERSION = 3
BATCH_LINES = 2048  # ≈ 2.5M characters at real lengths: the hash arrays stay ~100 MB
PARALLEL_MIN_BYTES = 32 << 20  # below this a pool costs more than it saves
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
    workers: int | None = None
    recompute: bool = False

    def __post_init__(self) -> None:
        requests.input_file(Path(self.train), "train")
        requests.output_folder(Path(self.output))
        requests.at_least("n", self.n, 5)
        requests.at_least("workers", self.workers, 1, optional=True)
        if not isinstance(self.threshold, int | float) or not 0 < self.threshold <= 1:
            raise requests.UsageError(f"--threshold must be in (0, 1], got {self.threshold!r}")
        if self.benchmarks is not None and not Path(self.benchmarks).is_dir():
            raise requests.UsageError(f"--benchmarks {self.benchmarks}: folder not found")
        if self.dataset:
            requests.dataset(self.dataset, self.dataset_dir)

    @property
    def result_path(self) -> Path:
        return Path(self.output) / RESULT_FILE


REQUEST = ContaminationRequest


# Private-use characters that survive normalisation: they mark the end of a turn (no n-gram crosses one) and of
# a record, so a whole batch of training text is normalised and hashed in one go.
TURN_END = "\ue000"
RECORD_END = "\ue001"


class _Normalizer:
    """Per character: NFKC, casefold, and punctuation, symbols, separators and controls removed.

    Decided once per distinct character and kept in lookup arrays, so a batch of millions of characters is
    normalised with a few numpy passes: most characters stay, some are dropped, a few map to one other
    character (full-width forms), and the rare ones that become several (㎏ → kg) take a slow path.
    """

    KEEP, DROP, ONE, MANY = 1, 2, 3, 4

    def __init__(self) -> None:
        import numpy as np

        self.state = np.zeros(sys.maxunicode + 1, dtype=np.uint8)  # 0: not decided yet
        self.one = np.zeros(sys.maxunicode + 1, dtype=np.uint32)
        self.many: dict[int, str] = {}

    def _decide(self, cp: int) -> None:
        if cp in (ord(TURN_END), ord(RECORD_END)):
            self.state[cp] = self.KEEP
            return
        out = "".join(ch for ch in unicodedata.normalize("NFKC", chr(cp)).casefold()
                      if unicodedata.category(ch)[0] not in "PSZC")  # fmt: skip
        if out == chr(cp):
            self.state[cp] = self.KEEP
        elif not out:
            self.state[cp] = self.DROP
        elif len(out) == 1:
            self.state[cp], self.one[cp] = self.ONE, ord(out)
        else:
            self.state[cp], self.many[cp] = self.MANY, out

    def codepoints(self, text: str):
        import numpy as np

        c = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        state = self.state[c]
        if not state.all():
            for cp in np.unique(c[state == 0]).tolist():
                self._decide(cp)
            state = self.state[c]
        if (state == self.MANY).any():  # rare: rebuild those characters as strings
            pieces = [self.many.get(cp, chr(cp)) for cp in c.tolist()]
            return self.codepoints("".join(pieces)) if pieces else c
        c = np.where(state == self.ONE, self.one[c], c)
        return c[state != self.DROP]


@functools.cache
def _normalizer() -> _Normalizer:
    return _Normalizer()


def normalize_codepoints(text: str):
    return _normalizer().codepoints(text)


def normalize(text: str) -> str:
    return normalize_codepoints(text).tobytes().decode("utf-32-le", "surrogatepass")


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
                items.append(Item(rid, group, normalize(TURN_END.join(dialogue_text(record)))))
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
        recorded={
            "train": str(request.train),
            "workers": request.workers,
            "versions": fpr.package_versions(("numpy", "orjson")),
        },
    )


# --- hashing ------------------------------------------------------------------------------------------------

_BASE = 0x100000001B3  # FNV prime: odd, so multiplication mod 2**64 is a bijection
_SEPARATORS = (ord(TURN_END), ord(RECORD_END))


def window_hashes(codepoints, n: int):
    """(64-bit polynomial hash, start) of every n-character window that does not cross a separator.

    H(a+b)[i] = H(a)[i]·B^b + H(b)[i+a]: the n-gram hashes are built from 1-, 2-, 4-, 8-gram hashes by doubling,
    a handful of vectorised passes instead of n.
    """
    import numpy as np

    c = np.asarray(codepoints, dtype=np.uint64)
    if len(c) < n:
        return np.empty(0, np.uint64), np.empty(0, np.int64)
    windows = len(c) - n + 1
    base = np.uint64(_BASE)
    with np.errstate(over="ignore"):
        powers = {1: (c + np.uint64(1)) * np.uint64(0x9E3779B97F4A7C15)}  # each character spread over 64 bits
        size = 1
        while size * 2 <= n:
            h = powers[size]
            powers[size * 2] = h[:-size] * (base ** np.uint64(size)) + h[size:]
            size *= 2
        # n in binary, largest part first: 13 = 8 + 4 + 1
        total, length = None, 0
        for part in sorted(powers, reverse=True):
            if length + part > n:
                continue
            h = powers[part]
            total = h[:windows] if total is None else total * base ** np.uint64(part) + h[length : length + windows]
            length += part
            if length == n:
                break
    is_sep = (c == _SEPARATORS[0]) | (c == _SEPARATORS[1])
    if not is_sep.any():
        return total, np.arange(windows)
    seps = np.concatenate(([0], np.cumsum(is_sep, dtype=np.int32)))
    ok = seps[n:] - seps[:-n] == 0
    return total[ok], np.nonzero(ok)[0]


def _codepoints(text: str):
    import numpy as np

    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


class Index:
    """The benchmark items' n-grams: a sorted array of hashes, and per item the positions of its own."""

    FILTER_BITS = 25  # a 32 MiB presence table of the hashes' top bits: most training windows stop there

    def __init__(self, items: list[Item], n: int):
        import numpy as np

        self.items, self.n = items, n
        # every item's (normalised) text in one array, hashed at once; then the distinct (item, n-gram) pairs
        c = _codepoints("".join(item.text + RECORD_END for item in items))
        h, starts = window_hashes(c, n)
        owner = np.searchsorted(np.nonzero(c == ord(RECORD_END))[0], starts)
        order = np.lexsort((h, owner))
        owner, h = owner[order], h[order]
        distinct = np.ones(len(h), dtype=bool)
        distinct[1:] = (owner[1:] != owner[:-1]) | (h[1:] != h[:-1])
        owner, h = owner[distinct], h[distinct]
        self.hashes = np.unique(h)
        positions = np.searchsorted(self.hashes, h)
        bounds = np.searchsorted(owner, np.arange(len(items) + 1))
        self.of_item = [positions[bounds[i] : bounds[i + 1]] for i in range(len(items))]
        self.found = np.zeros(len(self.hashes), dtype=bool)
        self.first_record = np.full(len(self.hashes), -1, dtype=np.int64)  # training record that first had it
        self.maybe = np.zeros(1 << self.FILTER_BITS, dtype=bool)
        self.maybe[self._slot(self.hashes)] = True

    def _slot(self, h):
        import numpy as np

        with np.errstate(over="ignore"):
            return (h * np.uint64(0xBF58476D1CE4E5B9)) >> np.uint64(64 - self.FILTER_BITS)

    def scan(self, c, first_record: int) -> set[int]:
        """Mark the n-grams of a batch of normalised training text (codepoints; records ended by RECORD_END);
        return the (global) numbers of the records that hit any."""
        import numpy as np

        if not len(self.hashes):
            return set()
        h, starts = window_hashes(c, self.n)
        candidate = self.maybe[self._slot(h)]
        h, starts = h[candidate], starts[candidate]
        at = np.searchsorted(self.hashes, h)
        at[at == len(self.hashes)] = 0
        hit = self.hashes[at] == h
        if not hit.any():
            return set()
        at, starts = at[hit], starts[hit]
        record_ends = np.nonzero(c == ord(RECORD_END))[0]
        records = np.searchsorted(record_ends, starts) + first_record
        fresh = self.first_record[at] < 0
        # the earliest record of this batch for each n-gram seen for the first time
        order = np.lexsort((records[fresh], at[fresh]))
        new_at, new_rec = at[fresh][order], records[fresh][order]
        first = np.unique(new_at, return_index=True)[1]
        self.first_record[new_at[first]] = new_rec[first]
        self.found[at] = True
        return set(np.unique(records).tolist())


def chunks(path: Path, parts: int) -> list[tuple[int, int]]:
    """Byte ranges of whole lines, about equal in size."""
    size = path.stat().st_size
    edges = [0]
    with path.open("rb") as f:
        for i in range(1, parts):
            f.seek(max(edges[-1], size * i // parts))
            f.readline()
            edges.append(min(f.tell(), size))
    edges.append(size)
    return [(a, b) for a, b in itertools.pairwise(edges) if b > a]


_INDEX: Index | None = None  # the index a forked worker inherits


def scan_chunk(path: Path, start: int, end: int, index: Index | None = None) -> dict[str, Any]:
    """Scan the lines in [start, end): local record numbers; the n-grams found, each with the first record
    that had it; the ids of those records; line and record counts, and counted skips."""
    import numpy as np
    import orjson

    index = index or _INDEX
    index.found[:] = False
    index.first_record[:] = -1
    skipped: dict[str, int] = {}
    batch: list[str] = []
    ids: dict[int, tuple[str | None, int]] = {}
    records = lines = 0
    pending: list[tuple[str | None, int]] = []

    def flush() -> None:
        if batch:
            first = records - len(batch)
            for rec in index.scan(normalize_codepoints("".join(batch)), first):
                ids[rec] = pending[rec - first]
        batch.clear()
        pending.clear()

    loads = orjson.loads
    position = start
    with path.open("rb") as f:
        f.seek(start)
        for raw in f:  # streamed: memory is one batch of text, whatever the chunk's size
            if position >= end:
                break
            position += len(raw)
            lines += 1
            try:
                record = loads(raw)
            except orjson.JSONDecodeError:
                if raw.strip():
                    skipped["bad_json"] = skipped.get("bad_json", 0) + 1
                continue
            if not isinstance(record, dict):
                skipped["not_an_object"] = skipped.get("not_an_object", 0) + 1
                continue
            batch.append(TURN_END.join(dialogue_text(record)) + RECORD_END)
            rid = record.get("id")
            pending.append((str(rid) if rid else None, lines))
            records += 1
            if len(batch) >= BATCH_LINES:
                flush()
    flush()
    found = np.nonzero(index.found)[0]
    return {"records": records, "lines": lines, "skipped": skipped, "found": found,
            "first": index.first_record[found], "ids": ids}  # fmt: skip


def _scan_worker(args: tuple[Path, int, int]) -> dict[str, Any]:
    return scan_chunk(*args)


def scan_training(index: Index, path: Path, workers: int = 1) -> dict[str, Any]:
    """The chunks' results merged in file order: global record numbers, the first record per n-gram."""
    import multiprocessing

    parallel = workers > 1 and path.stat().st_size >= PARALLEL_MIN_BYTES
    parts = chunks(path, workers * 4 if parallel else 1)
    if parallel and len(parts) > 1:
        global _INDEX
        _INDEX = index
        try:
            # fork: the workers share the index the parent built instead of rebuilding it
            with multiprocessing.get_context("fork").Pool(workers) as pool:
                results = pool.map(_scan_worker, [(path, a, b) for a, b in parts], chunksize=1)
        finally:
            _INDEX = None
    else:
        results = [scan_chunk(path, a, b, index) for a, b in parts]
    index.found[:] = False
    index.first_record[:] = -1
    ids: dict[int, str] = {}
    skipped: dict[str, int] = {}
    records = lines = 0
    for result in results:
        fresh = index.first_record[result["found"]] < 0
        index.first_record[result["found"][fresh]] = result["first"][fresh] + records
        index.found[result["found"]] = True
        for local, (rid, line) in result["ids"].items():
            ids[records + local] = rid or f"#{lines + line}"
        for reason, count in result["skipped"].items():
            skipped[reason] = skipped.get(reason, 0) + count
        records += result["records"]
        lines += result["lines"]
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
    workers = request.workers or len(os.sched_getaffinity(0))
    scanned = scan_training(index, Path(request.train), workers)
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
