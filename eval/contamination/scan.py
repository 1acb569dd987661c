"""One streaming pass over the training JSONL: parse, normalise, look up, and check the candidates at once.

Memory is one batch (BATCH_LINES records or BATCH_CHARS characters, whichever comes first) plus the line being
read: a record longer than PIECE_CHARS is cut into overlapping pieces, each looked up on its own (an item copy
is far shorter than the overlap, so it lies whole in some piece). Workers each take whole-line byte ranges of
the file and share the index their parent built (fork); their results merge in file order, so any number of
workers gives the same audit.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from eval.contamination import verify
from eval.contamination.index import Index
from eval.contamination.text import labelled, normalize_turns

BATCH_LINES = 2048
BATCH_CHARS = 2_000_000
PIECE_CHARS = 262_144
OVERLAP_CHARS = 8_192
PARALLEL_MIN_BYTES = 32 << 20  # below this a pool costs more than it saves
MAX_EVIDENCE = 5  # training records per flagged item whose matched text is written out (all are named)


def dialogue_turns(record: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(question side: history turns, instruction, input; answer side: output) of an Alpaca record."""
    question: list[str] = []
    history = record.get("history")
    if history and isinstance(history, list):
        for turn in history:
            if isinstance(turn, list | tuple):
                question.extend(t for t in turn if isinstance(t, str))
    question.extend(record[k] for k in ("instruction", "input") if isinstance(record.get(k), str))
    output = record.get("output")
    return question, [output] if isinstance(output, str) else []


def _units(turns: list[str]) -> Iterator[list[str]]:
    """A record as one unit, or a long one as pieces of PIECE_CHARS overlapping by OVERLAP_CHARS (made one at a
    time, so a 30M-character record never exists twice)."""
    if sum(len(t) for t in turns) <= PIECE_CHARS:
        yield turns
        return
    step = PIECE_CHARS - OVERLAP_CHARS
    for turn in turns:
        for start in range(0, max(len(turn) - OVERLAP_CHARS, 1), step):
            yield [turn[start : start + PIECE_CHARS]]


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


class _Chunk:
    """The state of one worker's byte range: counts, evidence, timings."""

    def __init__(self, index: Index, near_cutoff: float) -> None:
        self.index, self.near_cutoff = index, near_cutoff
        self.records = self.lines = 0
        self.skipped: dict[str, int] = {}
        self.ids: dict[int, tuple[str | None, int]] = {}  # record → (its id, its line), for the evidence kept
        self.exact: dict[int, list[dict[str, Any]]] = {}  # exam item → evidence, in file order
        self.exact_count: dict[int, int] = {}  # exam item → training records holding a verbatim copy
        self.last: dict[int, int] = {}
        self.near: dict[int, dict[str, Any]] = {}  # exam item → its best near-duplicate
        self.seconds = {"stage1": 0.0, "verify": 0.0, "near": 0.0}
        self.candidates = 0
        self.near_checked = 0
        self.units: list[list[str]] = []
        self.unit_record: list[int] = []
        self.pending: dict[int, tuple[str | None, int]] = {}
        self.chars = 0

    def add(self, rid: Any, turns: list[str]) -> None:
        me = (str(rid) if isinstance(rid, str | int) and rid != "" else None, self.lines)
        self.pending[self.records] = me
        size = sum(map(len, turns))
        if size <= PIECE_CHARS and self.chars < BATCH_CHARS:  # the common case, without the generator
            self.units.append(turns)
            self.unit_record.append(self.records)
            self.chars += size
            self.records += 1
            if len(self.pending) >= BATCH_LINES or self.chars >= BATCH_CHARS:
                self.flush()
            return
        for unit in _units(turns):
            if self.chars >= BATCH_CHARS:  # a long record's pieces go out batch by batch
                self.flush()
                self.pending[self.records] = me
            self.units.append(unit)
            self.unit_record.append(self.records)
            self.chars += sum(map(len, unit))
        self.records += 1
        if len(self.pending) >= BATCH_LINES or self.chars >= BATCH_CHARS:
            self.flush()

    def flush(self) -> None:
        if not self.units:
            self.pending.clear()
            return
        start = time.perf_counter()
        flat = [t for unit in self.units for t in unit]
        text = normalize_turns(flat)
        ends = np.cumsum([len(u) for u in self.units]) - 1
        unit_ends = text.turn_ends[ends] if len(flat) else np.zeros(len(self.units), np.int64)
        # a unit without text ends where the previous one did: searchsorted(side="right") skips it
        unit_record = np.asarray(self.unit_record, dtype=np.int64)
        hits = self.index.scan(text, unit_ends, unit_record)
        for unit in hits.firsts.tolist():
            rec = int(unit_record[unit])
            self.ids[rec] = self.pending[rec]
        self.seconds["stage1"] += time.perf_counter() - start
        self._check(hits.pairs, unit_record)
        self.units, self.unit_record, self.chars = [], [], 0
        self.pending.clear()

    def _check(self, pairs: np.ndarray, unit_record: np.ndarray) -> None:
        index = self.index
        self.candidates += len(pairs)
        for unit, group in itertools.groupby(pairs.tolist(), key=lambda p: p[0]):
            start = time.perf_counter()
            turns = [labelled(t) for t in self.units[unit]]
            rec = int(unit_record[unit])
            rid, line = self.pending[rec]
            failed: list[int] = []
            for _, i in group:
                match = verify.verbatim(index.exams[i], turns, index.n)
                if match is None:
                    failed.append(i)
                    continue
                if self.last.get(i) == rec:
                    continue  # another piece of a record already counted
                self.last[i] = rec
                self.exact_count[i] = self.exact_count.get(i, 0) + 1
                # every record is named (a decontaminated build must drop them all); the text of the first few
                self.exact.setdefault(i, []).append(
                    {"record": rec, "line": line, "id": rid, "kind": match.kind, "question": match.question,
                     "answer": match.answer, "span": match.span[:400]})  # fmt: skip
            self.seconds["verify"] += time.perf_counter() - start
            self._near(failed, turns, rec, rid, line)

    def _near(self, failed: list[int], turns, rec: int, rid: str | None, line: int) -> None:
        start = time.perf_counter()
        for i in failed:
            if i in self.exact:
                continue  # already a verbatim copy elsewhere
            self.near_checked += 1
            found = verify.near(self.index.exams[i], turns, self.near_cutoff)
            if found is None:
                continue
            score, _, span = found
            best = self.near.get(i)
            if best is None or score > best["score"]:
                self.near[i] = {"record": rec, "line": line, "id": rid, "score": score, "span": span[:400]}
        self.seconds["near"] += time.perf_counter() - start


_INDEX: Index | None = None  # the index a forked worker inherits


def scan_chunk(path: Path, start: int, end: int, near_cutoff: float, index: Index | None = None) -> dict[str, Any]:
    import orjson

    index = index or _INDEX
    assert index is not None
    index.reset()
    state = _Chunk(index, near_cutoff)
    loads = orjson.loads
    position = start
    with path.open("rb") as f:
        f.seek(start)
        for raw in f:  # one line at a time: memory is a batch, whatever the chunk's size
            if position >= end:
                break
            position += len(raw)
            state.lines += 1
            if not raw.strip():
                continue
            try:
                record = loads(raw)
            except orjson.JSONDecodeError:
                state.skipped["bad_json"] = state.skipped.get("bad_json", 0) + 1
                continue
            if not isinstance(record, dict):
                state.skipped["not_an_object"] = state.skipped.get("not_an_object", 0) + 1
                continue
            question, answer = dialogue_turns(record)
            turns = [t for t in question + answer if t]
            if not turns:
                state.skipped["no_text"] = state.skipped.get("no_text", 0) + 1
                continue
            state.add(record.get("id"), turns)
    state.flush()
    found = np.nonzero(index.found)[0]
    return {"records": state.records, "lines": state.lines, "skipped": state.skipped, "found": found,
            "first": index.first_record[found], "ids": state.ids, "exact": state.exact,
            "exact_count": state.exact_count, "near": state.near, "seconds": state.seconds,
            "candidates": state.candidates, "near_checked": state.near_checked}  # fmt: skip


def _scan_worker(args: tuple[Path, int, int, float]) -> dict[str, Any]:
    return scan_chunk(*args)


def scan_training(index: Index, path: Path, workers: int, near_cutoff: float) -> dict[str, Any]:
    """The chunks' results merged in file order: global record and line numbers, the first record per key."""
    import multiprocessing

    parallel = workers > 1 and path.stat().st_size >= PARALLEL_MIN_BYTES
    parts = chunks(path, workers * 4 if parallel else 1)
    if parallel and len(parts) > 1:
        global _INDEX
        _INDEX = index
        try:
            # fork: the workers share the index the parent built instead of rebuilding it
            with multiprocessing.get_context("fork").Pool(workers) as pool:
                results = pool.map(_scan_worker, [(path, a, b, near_cutoff) for a, b in parts], chunksize=1)
        finally:
            _INDEX = None
    else:
        results = [scan_chunk(path, a, b, near_cutoff, index) for a, b in parts]
    return merge(index, results)


def merge(index: Index, results: list[dict[str, Any]]) -> dict[str, Any]:
    index.reset()
    ids: dict[int, tuple[str, int]] = {}
    skipped: dict[str, int] = {}
    exact: dict[int, list[dict[str, Any]]] = {}
    exact_count: dict[int, int] = {}
    near: dict[int, dict[str, Any]] = {}
    seconds = {"stage1": 0.0, "verify": 0.0, "near": 0.0}
    records = lines = candidates = near_checked = 0

    def place(entry: dict[str, Any]) -> dict[str, Any]:
        line = entry["line"] + lines
        return entry | {"record": entry["record"] + records, "line": line, "id": entry["id"] or f"#{line}"}

    for result in results:
        fresh = index.first_record[result["found"]] < 0
        index.first_record[result["found"][fresh]] = result["first"][fresh] + records
        index.found[result["found"]] = True
        for local, (rid, line) in result["ids"].items():
            ids[records + local] = (rid or f"#{lines + line}", lines + line)
        for reason, count in result["skipped"].items():
            skipped[reason] = skipped.get(reason, 0) + count
        for i, evidence in result["exact"].items():
            exact.setdefault(i, []).extend(place(e) for e in evidence)
        for i, count in result["exact_count"].items():
            exact_count[i] = exact_count.get(i, 0) + count
        for i, entry in result["near"].items():
            if i not in near or entry["score"] > near[i]["score"]:
                near[i] = place(entry)
        for stage, value in result["seconds"].items():
            seconds[stage] += value
        records += result["records"]
        lines += result["lines"]
        candidates += result["candidates"]
        near_checked += result["near_checked"]
    for evidence in exact.values():
        evidence.sort(key=lambda e: (-verify.RANK[e["kind"]], e["record"]))
        for e in evidence[MAX_EVIDENCE:]:
            e["span"] = None  # named, its text left out: the first MAX_EVIDENCE show what matched
    return {"records": records, "lines": lines, "skipped": dict(sorted(skipped.items())), "ids": ids,
            "exact": exact, "exact_count": exact_count, "near": near, "seconds": seconds,
            "candidates": candidates, "near_checked": near_checked}  # fmt: skip
