"""Records → compact batches: each record cleaned, length-checked, serialised and keyed, in file order.

Both paths use it: this process packs batches itself (`batches`), and worker processes pack their chunks
(`converters.parallel`); the serial pass (`converters.filtering`) then sees the same batches either way, so the
outputs are byte-identical for any number of workers.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice

import orjson

from converters.clean import clean_record, content_key, question_key
from converters.records import Record, Skip


@dataclass(frozen=True)
class Prep:
    """What the serial pass needs of one record; computed by `prepare`, in a worker or in this process."""

    need_qkey: bool  # the test split (its questions filter train), or train with the overlap filter on
    dedup: bool
    max_chars: int | None
    source: str
    exclude: dict[str, str] | None = None  # --exclude, train split only: record id → the audit's reason


def prepare(item: Record | Skip, how: Prep) -> Skip | tuple[bytes, bytes | None, bytes | None, str, str]:
    """Clean, length-check, serialise and key one record: (line, content key, question key, repair, the reason
    --exclude leaves it out or "") or a Skip.

    Pure per record, so it can run in any process; everything that depends on earlier records (duplicates,
    test overlap, the writes) is left to the serial pass, which sees the records in file order.
    """
    if item.__class__ is not Record:
        return item
    item = clean_record(item)
    if item.__class__ is not Record:
        return item
    max_chars = how.max_chars
    if max_chars is not None and length(item) > max_chars:
        return Skip("too_long", item.where, f"{length(item)} chars")
    line = dump(item, how.source)
    # an excluded record is still keyed: the serial pass drops its later copies as duplicates, so leaving a
    # flagged record out never lets an identical one through in its place
    excluded = how.exclude.get(item.id, "") if how.exclude else ""
    return (
        line,
        content_key(line) if how.dedup else None,
        question_key(item) if how.need_qkey else None,
        item.repaired,
        excluded,
    )


# A batch of prepared items in file order, compact so it crosses a process boundary cheaply: (items read,
# the records' lines joined, each line's end offset, content keys joined (8 bytes each, or b""), question keys,
# [(record index, repair)], [Skip, ...], [(record index, --exclude reason)]). Skips are counted whole; only
# records have an order that matters.
Batch = tuple[int, bytes, list[int], bytes, list, list, list, list]
BATCH_ITEMS = 4096


def pack(items: Iterable[Record | Skip], how: Prep) -> Batch:
    lines: list[bytes] = []
    ends: list[int] = []
    ckeys: list[bytes] = []
    qkeys: list = []
    repaired: list = []
    skips: list = []
    excluded: list = []
    n = end = 0
    for item in items:
        n += 1
        prepared = prepare(item, how)
        if prepared.__class__ is Skip:
            skips.append(prepared)
            continue
        line, ckey, qkey, repair, leave_out = prepared
        if repair:
            repaired.append((len(lines), repair))
        if leave_out:
            excluded.append((len(lines), leave_out))
        lines.append(line)
        end += len(line)
        ends.append(end)
        if ckey is not None:
            ckeys.append(ckey)
        qkeys.append(qkey)
    return n, b"".join(lines), ends, b"".join(ckeys), qkeys, repaired, skips, excluded


def batches(items: Iterator[Record | Skip], how: Prep) -> Iterator[Batch]:
    """`items` packed `BATCH_ITEMS` at a time, in this process."""
    while True:
        batch = pack(islice(items, BATCH_ITEMS), how)
        if not batch[0]:
            return
        yield batch


def length(rec: Record) -> int:
    return len(rec.instruction) + len(rec.input) + len(rec.output) + sum(len(q) + len(a) for q, a in rec.history)


def dump(rec: Record, source: str) -> bytes:
    # Key order is part of the format (medasst.facts.RECORD_KEYS); orjson keeps insertion order.
    return orjson.dumps(
        {
            "instruction": rec.instruction,
            "input": rec.input,
            "output": rec.output,
            "history": rec.history,
            "source": source,
            "id": rec.id,
        },
        option=orjson.OPT_APPEND_NEWLINE,
    )
