"""Evaluation shards: `--shard I/N` runs the I-th share of the batches one process would run; the parts merge back.

A shard is cut at the single-process batch boundaries: the verb builds its batches over the whole set exactly as one
process does (length-sorted, ties by position), and shard I takes batches I, I+N, I+2N, ... (round robin, so the
longest batches are spread over the workers, not all given to shard 0). A batch's rows are padded to the same width
as in one process, so every answer and every logit is what one process computes.

Each part carries the verb's full fingerprint (the same fields one process would record) and its place
`{"index", "count", "batch_size", "batches", "order"}`. Merging refuses parts made from other inputs (another
fingerprint, batch size or item list), a mix of shard counts, and missing parts, in one line each.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eval.common import fingerprint as fpr

SHARDS_DIR = "shards"
SPEC = re.compile(r"^(\d+)/(\d+)$")


class ShardError(ValueError):
    """A shard argument or a set of parts that cannot be merged; the message names the part and the fix."""


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    @property
    def label(self) -> str:
        return f"{self.index}-of-{self.count}"

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def take(self, n_batches: int) -> list[int]:
        """The batch numbers this shard runs."""
        return list(range(self.index, n_batches, self.count))


def parse(spec: str | None) -> Shard | None:
    """'I/N' (0 ≤ I < N) → Shard; None stays None."""
    if spec is None:
        return None
    match = SPEC.match(str(spec).strip())
    if not match:
        raise ShardError(f"--shard {spec!r}: expected I/N, e.g. 0/2 and 1/2 for two workers")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1 or index >= count:
        raise ShardError(f"--shard {spec}: need 0 ≤ I < N (shards are numbered from 0)")
    return Shard(index, count)


def folder(out: Path) -> Path:
    return Path(out) / SHARDS_DIR


def place(shard: Shard, batch_size: int, batches: Sequence[int], order: Sequence[str]) -> dict[str, Any]:
    """What a part records about its cut: enough to check at merge time that the parts tile one run."""
    return {"index": shard.index, "count": shard.count, "batch_size": batch_size, "batches": list(batches),
            "order": list(order)}  # fmt: skip


def regroup_check(lengths: Sequence[int], batch_size: int, want: Sequence[Sequence[int]]) -> None:
    """The verb's batching run on the shard's items alone must give back the single-process batches (it does, as
    every batch but the last is full and a shard keeps the global length order); checked, since a changed batcher
    would silently break the guarantee."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    got = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if [len(b) for b in got] != [len(b) for b in want]:
        raise ShardError("internal: a shard's batches are not the single-process batches")


def check_parts(parts: dict[Path, dict[str, Any]], fp: fpr.Fingerprint, batch_size: int, order: Sequence[str] | None,
                what: str) -> list[dict[str, Any]]:  # fmt: skip
    """The parts (path → record) in shard order, after checking that they are one run of these inputs, complete."""
    if not parts:
        raise ShardError(f"no {what} shards found")
    counts = {}
    for path, record in parts.items():
        shard = record.get("shard") if isinstance(record, dict) else None
        if not isinstance(shard, dict) or not {"index", "count", "order"} <= set(shard):
            raise ShardError(f"{path}: not a {what} shard (no shard record); remove it")
        label = f"-{shard['index']}-of-{shard['count']}"
        if not (path.stem.endswith(label) or path.parent.name.endswith(label)):  # renamed or copied by hand
            raise ShardError(f"{path} holds shard {shard['index']}/{shard['count']}, not the one its name says; "
                             "remove it")  # fmt: skip
        fpr.check_reusable(path, record, fp, f"a {what} shard")  # another fingerprint: refused, naming the fields
        if shard.get("batch_size") != batch_size:
            raise ShardError(f"{path} was cut at batch size {shard.get('batch_size')}, these inputs at {batch_size}: "
                             f"pass --batch-size {shard.get('batch_size')}, or run the shards again")  # fmt: skip
        if order is not None and list(shard["order"]) != list(order):
            raise ShardError(f"{path} was cut from another item list; run the shards again")
        same = counts.setdefault(int(shard["count"]), {})
        if int(shard["index"]) in same:  # a copied or renamed part: which one is this run's cannot be told
            raise ShardError(f"{path} and {same[int(shard['index'])][0]} both hold shard {shard['index']}/"
                             f"{shard['count']}; remove one")  # fmt: skip
        same[int(shard["index"])] = (path, record)
    if len(counts) > 1:
        found = ", ".join(f"{n} ({len(v)} found)" for n, v in sorted(counts.items()))
        raise ShardError(f"{what} shards of different counts in one folder: {found}; remove the stale ones")
    ((count, found),) = counts.items()
    missing = [i for i in range(count) if i not in found]
    if missing:
        raise ShardError(f"{what} shard {missing[0]}/{count} is missing or unfinished ({len(missing)} of {count}); "
                         f"run it with --shard {missing[0]}/{count}")  # fmt: skip
    records = [found[i][1] for i in range(count)]
    first = records[0]["shard"]["order"]
    for path, record in (found[i] for i in range(1, count)):
        if list(record["shard"]["order"]) != list(first):
            raise ShardError(f"{path} was cut from another item list than shard 0; run the shards again")
    return records
