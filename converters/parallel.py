"""JSON Lines files prepared by worker processes in chunks of whole lines, handed back in file order.

This process scans each file in `chunk_bytes` blocks cut at a line end and numbers their lines; workers read
their byte range themselves (the raw bytes never go through a pipe), then parse, convert, clean, serialise and
key the records (`batching.pack`, pure per record). Results come back in submission order, so the serial
pass that filters and writes (`filtering.apply`) sees exactly the sequence a single process would, and the
outputs are byte-identical. At most two chunks per worker are in flight, which bounds memory whatever the file
size.

Every chunk is read from the file the build hashed: this process and each worker check the open file's
identity (device, inode, size, mtime, ctime) against it, so a file replaced or rewritten mid-build fails the build
instead of mixing two versions. Workers die with the building process (`PR_SET_PDEATHSIG`): a killed build
leaves no orphan holding memory, the raw file and the deleted temp outputs.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import multiprocessing
import os
import signal
import sys
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np

from converters import progress, signals
from converters.batching import pack
from converters.inputs import Identity, changed, identity
from converters.jobs import LineJob, convert_lines
from converters.records import ConversionError

IN_FLIGHT_PER_WORKER = 2


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class FileChanged(Exception):
    """A worker found its file is not the one the build hashed (picklable: it crosses back to the parent)."""


def _prepare_chunk(job: LineJob, raw_dir: Path, offset: int, length: int, start: int, how: Any,
                   expected: Identity) -> tuple:  # fmt: skip
    with job.path.open("rb") as fh:
        now = identity(os.fstat(fh.fileno()))
        if now != expected:
            raise FileChanged(str(changed(_shown(job, raw_dir), expected, now)))
        fh.seek(offset)
        data = fh.read(length)
    return pack(convert_lines(job, raw_dir, BytesIO(data), start), how)


def _shown(job: LineJob, raw_dir: Path) -> str:
    return job.path.relative_to(raw_dir).as_posix() if job.path.is_relative_to(raw_dir) else str(job.path)


def _chunks(job: LineJob, chunk_bytes: int, expected: Identity | None = None,
            shown: str = "") -> Iterator[tuple[int, int, int, int]]:  # fmt: skip
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
        if expected is not None and (now := identity(os.fstat(fh.fileno()))) != expected:
            raise changed(shown or job.path.name, expected, now)
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


def batches_from_workers(jobs: list[LineJob], raw_dir: Path, how: Any, workers: int, chunk_bytes: int,
                         identities: dict[str, Identity] | None = None) -> Iterator:  # fmt: skip
    """The prepared batches of `jobs` (one per chunk, `batching.Batch`), in file order, from `workers` processes.

    `identities` (str(path) → identity when hashed) pins each file; without an entry, the file as first opened.
    """
    if chunk_bytes < 1:
        raise ConversionError("chunk size must be at least 1 byte")
    pool = ProcessPoolExecutor(
        max_workers=workers, mp_context=_context(), initializer=_init_worker, initargs=(os.getpid(),)
    )
    pending: deque[tuple[LineJob, int, int, Future]] = deque()
    try:
        for job in jobs:
            expected = (identities or {}).get(str(job.path)) or identity(job.path.stat())
            with progress.share(job.desc, expected[2]) as bar:
                for offset, length, first, last in _chunks(job, chunk_bytes, expected, _shown(job, raw_dir)):
                    future = pool.submit(_prepare_chunk, job, raw_dir, offset, length, first, how, expected)
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
    except FileChanged as exc:
        raise ConversionError(str(exc)) from None
    except BrokenProcessPool:
        raise ConversionError(
            f"{_shown(job, raw_dir)}:{first}-{last}: a conversion worker died on these lines (killed, or out of "
            "memory); nothing was written. Rerun, or use --workers 1 to convert in one process"
        ) from None


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _init_worker(parent: int) -> None:
    """Ctrl-C reaches the whole process group: the parent ends the build (one line); workers just stop. And a
    worker must not outlive the build: the kernel kills it when the building process dies, however it died."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signals.reset_in_worker()
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the signal was asked for
        os._exit(1)
