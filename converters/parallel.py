"""JSON Lines files prepared by worker processes in chunks of whole lines, handed back in file order.

This process scans each file in `chunk_bytes` blocks cut at a line end and numbers their lines; workers read
their byte range themselves (the raw bytes never go through a pipe), then parse, convert, clean, serialise and
key the records (`pipeline.prepare`, pure per record). Results come back in submission order, so the serial
pass that filters and writes (`pipeline._apply`) sees exactly the sequence a single process would, and the
outputs are byte-identical. At most two chunks per worker are in flight, which bounds memory whatever the file
size.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np

from converters import progress
from converters.jobs import LineJob, convert_lines
from converters.records import ConversionError

IN_FLIGHT_PER_WORKER = 2


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _prepare_chunk(job: LineJob, raw_dir: Path, offset: int, length: int, start: int, how: Any) -> tuple:
    from converters.pipeline import pack

    with job.path.open("rb") as fh:
        fh.seek(offset)
        data = fh.read(length)
    return pack(convert_lines(job, raw_dir, BytesIO(data), start), how)


def _chunks(job: LineJob, chunk_bytes: int) -> Iterator[tuple[int, int, int, int]]:
    """(byte offset, length, first line, last line) of runs of whole lines; the file's last line may lack "\n".

    This process only looks for line ends: blocks are read into one reused buffer and counted by numpy (a
    fresh bytes object per block, and `bytes.count`, cost it more than the workers' share of a core could
    spare); workers read their own ranges.
    """
    buffer = bytearray(chunk_bytes)
    values = np.frombuffer(buffer, np.uint8)
    offset, start = 0, 1
    carry = 0  # bytes read past the last cut
    with job.path.open("rb", buffering=0) as fh:
        while read := fh.readinto(buffer):
            cut = buffer.rfind(b"\n", 0, read) + 1
            if cut == 0:  # no line end yet: one line longer than a chunk, keep reading
                carry += read
                continue
            lines = int(np.count_nonzero(values[:cut] == NEWLINE))
            length = carry + cut
            yield offset, length, start, start + lines - 1
            offset += length
            start += lines
            carry = read - cut
    if carry:
        yield offset, carry, start, start


NEWLINE = ord("\n")


def _context():
    # fork: workers start at once and inherit the loaded modules; elsewhere the platform's default
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else None)


def batches_from_workers(jobs: list[LineJob], raw_dir: Path, how: Any, workers: int, chunk_bytes: int) -> Iterator:
    """The prepared batches of `jobs` (one per chunk, `pipeline.Batch`), in file order, from `workers` processes."""
    if chunk_bytes < 1:
        raise ConversionError("chunk size must be at least 1 byte")
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=_context(), initializer=_ignore_sigint)
    pending: deque[tuple[LineJob, int, int, Future]] = deque()
    try:
        for job in jobs:
            with progress.share(job.desc, job.path.stat().st_size) as bar:
                for offset, length, first, last in _chunks(job, chunk_bytes):
                    future = pool.submit(_prepare_chunk, job, raw_dir, offset, length, first, how)
                    pending.append((job, first, last, future))
                    bar.update(length)
                    while len(pending) >= workers * IN_FLIGHT_PER_WORKER:
                        yield _result(*pending.popleft(), raw_dir)
                while pending:
                    yield _result(*pending.popleft(), raw_dir)
    finally:
        for *_, future in pending:
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)


def _result(job: LineJob, first: int, last: int, future: Future, raw_dir: Path) -> tuple:
    try:
        return future.result()
    except BrokenProcessPool:
        shown = job.path.relative_to(raw_dir) if job.path.is_relative_to(raw_dir) else job.path
        raise ConversionError(
            f"{shown}:{first}-{last}: a conversion worker died on these lines (killed, or out of memory); "
            "nothing was written. Rerun, or use --workers 1 to convert in one process"
        ) from None


def _ignore_sigint() -> None:
    """Ctrl-C reaches the whole process group: the parent ends the build (one line); workers just stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
