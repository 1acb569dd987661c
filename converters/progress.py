"""One tqdm bar for the whole build, in raw bytes on disk; each input file advances its share of it.

Readers count in their own units (bytes read, bytes decompressed from a zip, lines of a JSON array); each
file's progress is scaled to its size on disk, so the bar moves evenly from the first file to the last and
ends at exactly the raw files' total. Only the building process draws; workers never do. Updates are
batched, so the bar costs nothing per record.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

# None = tqdm's own choice (on for a terminal, off in logs and tests); the CLI sets False for --no-progress.
ENABLED: bool | None = None
_BATCH_BYTES = 1 << 20

_whole: tqdm | None = None  # the build's bar, while a build runs


@contextmanager
def build(total_bytes: int) -> Iterator[None]:
    """The bar of one build; log lines are printed above it instead of through it."""
    global _whole
    with tqdm(total=total_bytes, desc="converting", unit="B", unit_scale=True, disable=_disabled()) as bar:
        _whole = bar
        try:
            with logging_redirect_tqdm():
                yield
        finally:
            _whole = None


class Share:
    """One input file's part of the build's bar: `update(n)` in the reader's units, `total` of them in all,
    standing for `on_disk` bytes. Leaving it tops the bar up to the whole file, whatever the units said."""

    def __init__(self, desc: str, total: int | None, on_disk: int) -> None:
        self._own = None
        bar = _whole
        if bar is None:  # a reader used outside a build: a bar of its own
            bar = self._own = tqdm(total=on_disk, desc=desc, unit="B", unit_scale=True, disable=_disabled(),
                                   leave=False)  # fmt: skip
        else:
            bar.set_postfix_str(desc, refresh=False)
        self._bar = bar
        self._scale = on_disk / total if total else 0.0
        self._on_disk = on_disk
        self._done = 0.0
        self._shown = 0

    def update(self, n: int) -> None:
        self._done += n * self._scale
        step = min(int(self._done), self._on_disk) - self._shown
        if step > 0:
            self._bar.update(step)
            self._shown += step

    def __enter__(self) -> Share:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._shown < self._on_disk:
            self._bar.update(self._on_disk - self._shown)
            self._shown = self._on_disk
        if self._own is not None:
            self._own.close()


def share(desc: str, total: int | None, on_disk: int | None = None) -> Share:
    """`on_disk` defaults to `total`: the reader counts the file's own bytes."""
    return Share(desc, total, (total or 0) if on_disk is None else on_disk)


def lines(stream: BinaryIO, total: int | None, desc: str, on_disk: int | None = None) -> Iterator[bytes]:
    # `readlines(hint)` splits exactly as iterating the stream does, a batch of lines per call instead of one.
    with share(desc, total, on_disk) as bar:
        for batch in iter(lambda: stream.readlines(_BATCH_BYTES), []):
            yield from batch
            bar.update(sum(map(len, batch)))


def _disabled() -> bool | None:
    return None if ENABLED is None else not ENABLED
