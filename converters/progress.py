"""tqdm progress over raw bytes, updated in batches so the bar costs nothing per record."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import BinaryIO

from tqdm import tqdm

# None = tqdm's own choice (on for a terminal, off in logs and tests); the CLI sets False for --no-progress.
ENABLED: bool | None = None
_BATCH = 8192
_BATCH_BYTES = 1 << 20


def bytes_bar(total: int | None, desc: str) -> tqdm:
    """A byte-count bar for one input file; only the building process shows bars, never a worker."""
    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, disable=_disabled(), leave=False)


def lines(stream: BinaryIO, total: int | None, desc: str) -> Iterator[bytes]:
    # `readlines(hint)` splits exactly as iterating the stream does, a batch of lines per call instead of one.
    with bytes_bar(total, desc) as bar:
        for batch in iter(lambda: stream.readlines(_BATCH_BYTES), []):
            yield from batch
            bar.update(sum(map(len, batch)))


def items(values: Iterable, desc: str) -> Iterator:
    with tqdm(desc=desc, unit="rec", disable=_disabled(), leave=False) as bar:
        for n, value in enumerate(values, 1):
            if n % _BATCH == 0:
                bar.update(_BATCH)
            yield value


def _disabled() -> bool | None:
    return None if ENABLED is None else not ENABLED
