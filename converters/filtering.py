"""The serial pass, in file order: counted skips, the test-overlap and duplicate filters, the writes.

Everything that depends on earlier records is decided here, in one process, whatever prepared the batches
(`converters.batching`), so the outputs are a pure function of the input bytes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from converters.atomic import AtomicWriter
from converters.batching import Batch
from converters.records import ConversionError, SplitStats
from medasst.facts import SPLITS

log = logging.getLogger("converters")


@dataclass
class State:
    """What the filters remember across sources and splits: test questions, and the contents seen per split."""

    test_questions: set[bytes] = field(default_factory=set)
    seen: dict[str, set[bytes]] = field(default_factory=lambda: {s: set() for s in SPLITS})


@dataclass
class FileTally:
    """One raw file's share of a split: what it yielded, and how much of it was lost to malformed input."""

    read: int = 0
    written: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    rest_lost: float = 0.0  # share of the file after a break that a reader could not go past


@dataclass(frozen=True)
class Filters:
    dedup: bool
    drop_test_overlap: bool
    strict: bool


def apply(
    files: Iterable[tuple[str, Iterable[Batch]]],
    source: str,
    split: str,
    filters: Filters,
    state: State,
    outs: tuple[AtomicWriter, ...],
) -> tuple[SplitStats, dict[str, FileTally]]:
    """Filter and write a split's batches, grouped by the raw file they came from; counts per split and per file."""
    # Millions of records: they are filtered and written a batch at a time.
    stats = SplitStats()
    tallies: dict[str, FileTally] = {}
    seen = state.seen[split]
    filter_in_test = split == "train" and filters.drop_test_overlap
    is_test = split == "test"
    dedup, strict = filters.dedup, filters.strict
    # the split's first source: its file and the merged one hold the same bytes so far, so one hash serves both
    first, *rest = outs
    shared = [w for w in rest if w.hashes_like(first)]
    for name, batches in files:
        tally = tallies[name] = FileTally()
        for n, blob, ends, ckeys, qkeys, repaired, skips, excluded in batches:
            tally.read += n
            for skip in skips:
                if strict and skip.is_error:
                    detail = f": {skip.detail}" if skip.detail else ""
                    raise ConversionError(f"{skip.where}: {skip.reason}{detail}")
                stats.skip(skip.reason)
                tally.skipped[skip.reason] = tally.skipped.get(skip.reason, 0) + 1
                if skip.rest_lost > tally.rest_lost:
                    tally.rest_lost = skip.rest_lost
            check_test = filter_in_test and bool(state.test_questions)  # an empty test set can match nothing
            keys = ckeys if dedup else None
            dropped = _dropped(len(ends), keys, qkeys, check_test, is_test, seen, state.test_questions, stats)
            if excluded:
                dropped = _excluded(dropped, excluded, stats)
            if dropped:
                gone = set(dropped)
                kept = [j for j in range(len(ends)) if j not in gone]
                blob = b"".join(blob[ends[j - 1] if j else 0 : ends[j]] for j in kept)
                repaired = [(j, what) for j, what in repaired if j not in gone]
            count = len(ends) - len(dropped)
            for _, what in repaired:
                stats.repair(what)
            if count:
                first.write_block(blob, count)
                for out in rest:
                    out.write_block(blob, count, hashed=out in shared)
            tally.written += count
    for out in shared:
        out.take_hash(first)
    stats.read = sum(t.read for t in tallies.values())
    stats.written = sum(t.written for t in tallies.values())
    log.info("%s %s: read %d, written %d, skipped %s", source, split, stats.read, stats.written, stats.skipped)
    return stats, tallies


def _excluded(dropped: list[int], excluded: list[tuple[int, str]], stats: SplitStats) -> list[int]:
    """`dropped` plus the --exclude records the filters kept (one already dropped as a duplicate or as in_test
    is counted there); their keys stay recorded, so later copies of them are dropped as duplicates."""
    gone = set(dropped)
    for j, reason in excluded:
        if j not in gone:
            stats.skip("excluded")
            stats.excluded[reason] = stats.excluded.get(reason, 0) + 1
            gone.add(j)
    return sorted(gone)


def _dropped(n: int, ckeys: bytes | None, qkeys: list, check_test: bool, is_test: bool, seen: set[bytes],
             test_questions: set[bytes], stats: SplitStats) -> list[int]:  # fmt: skip
    """Indices of the batch's `n` records that the test-overlap and duplicate filters drop, in file order; the
    keys of the kept ones are recorded (seen contents; test questions when this is the test split)."""
    keys = [ckeys[i : i + 8] for i in range(0, 8 * n, 8)] if ckeys is not None else None
    # Nearly every batch drops nothing: that is decided with whole-batch set operations, and the keys are
    # recorded the same way; only a batch with a drop is walked record by record.
    if (not check_test or test_questions.isdisjoint(qkeys)) and (
        keys is None or (len(set(keys)) == n and seen.isdisjoint(keys))
    ):
        if keys is not None:
            seen.update(keys)
        if is_test:
            test_questions.update(q for q in qkeys if q is not None)
        return []
    dropped: list[int] = []
    for j in range(n):
        if check_test:
            qkey = qkeys[j]
            if qkey is not None and qkey in test_questions:
                stats.skip("in_test")
                dropped.append(j)
                continue
        if keys is not None:
            ckey = keys[j]
            if ckey in seen:
                stats.skip("duplicate")
                dropped.append(j)
                continue
            seen.add(ckey)
        if is_test:
            qkey = qkeys[j]
            if qkey is not None:
                test_questions.add(qkey)
    return dropped
