"""Outputs appear under their final name only when complete: write to a temp file beside it, then os.replace.

Large outputs bypass the page cache (O_DIRECT) where the file system allows it. The build writes every
training line twice (its source's file and the merged one, ≈ 4 GB at full size) and never reads it back;
through the page cache each new 4 KiB page costs the kernel an allocation, which on the virtual machines we
measured (`bench/RESULTS.md`) took 2–3 s of CPU per GB, as much as all the rest of the building process's
work. Written directly, the same bytes cost ≈ 0.1 s per GB and are on disk when the final fsync comes. Where
O_DIRECT is refused (older tmpfs, some overlay and network file systems) the writer falls back to ordinary
writes; the bytes on disk are the same either way.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import mmap
import os
import tempfile
from pathlib import Path

# Lines are collected in an aligned buffer of this size and written one buffer at a time.
CHUNK = 8 << 20
# O_DIRECT needs the memory address, the file offset and the length of every write aligned to the device's
# logical block (512 B or 4 KiB); 4 KiB satisfies both, and mmap memory is page-aligned.
ALIGN = 4096
DIRECT = hasattr(os, "O_DIRECT")  # tests turn it off to cover the fallback


class AtomicWriter:
    """Binary writer that hashes what it writes; `commit()` fsyncs and renames, `discard()` removes the temp."""

    def __init__(self, final: Path) -> None:
        self.final = final
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
        self.tmp = Path(tmp)
        self._fd: int | None = fd
        self._direct: bool | None = None  # decided at the first full buffer: small files are not worth it
        self._buf: mmap.mmap | None = None  # allocated on the first write: most writers hold a few lines
        self._used = 0  # bytes of _buf not yet written
        self._size = 0  # bytes handed to the writer so far
        self._sha = hashlib.sha256()
        self.records = 0

    def write(self, line: bytes) -> None:
        self.write_block(line, 1)

    def write_block(self, data: bytes, records: int, *, hashed: bool = False) -> None:
        """`records` whole lines already joined (the build writes a batch at a time). `hashed`: the caller
        writes the same bytes to a writer whose hash this one will take (`take_hash`), so they are not hashed
        twice."""
        if not hashed:
            self._sha.update(data)
        self.records += records
        self._size += len(data)
        if self._buf is None:
            self._buf = mmap.mmap(-1, CHUNK)
        view, pos = memoryview(data), 0
        while pos < len(view):
            take = min(CHUNK - self._used, len(view) - pos)
            self._buf[self._used : self._used + take] = view[pos : pos + take]
            self._used += take
            pos += take
            if self._used == CHUNK:
                self._write_out(CHUNK)
                self._used = 0

    def hashes_like(self, other: AtomicWriter) -> bool:
        """Whether both have written the same bytes so far, as far as it can be told: here, none at all."""
        return self._size == other._size == 0

    def take_hash(self, other: AtomicWriter) -> None:
        """This writer's bytes are `other`'s: continue from its hash (hashlib objects copy their state)."""
        if self._size != other._size:
            raise ValueError(f"{self.final.name} holds {self._size} bytes, {other.final.name} {other._size}")
        self._sha = other._sha.copy()

    @property
    def sha256(self) -> str:
        return self._sha.hexdigest()

    def finish(self) -> None:
        """Everything written and synced to the temp file, readable by others; not yet under its final name."""
        if self._fd is None:
            return
        if self._used:
            if self._direct:
                # the last block is written whole, then the file cut back to the bytes that were written
                self._write_out(-(-self._used // ALIGN) * ALIGN)
                os.ftruncate(self._fd, self._size)
            else:
                self._write_out(self._used)
            self._used = 0
        os.fsync(self._fd)
        self._close()
        # mkstemp creates 0600; outputs are ordinary shared data files.
        os.chmod(self.tmp, 0o644)

    def commit(self) -> None:
        self.finish()
        os.replace(self.tmp, self.final)

    def discard(self) -> None:
        self._close()
        self.tmp.unlink(missing_ok=True)

    def _write_out(self, length: int) -> None:
        if self._direct is None:
            self._direct = DIRECT and length == CHUNK and _set_direct(self._fd, True)
        # every view of the buffer is released before this returns or raises: a live one (held by a traceback)
        # would make closing the buffer fail with BufferError and hide the real error (a full disk)
        with memoryview(self._buf) as whole:
            pos = 0
            while pos < length:
                with whole[pos:length] as view:
                    try:
                        written = os.write(self._fd, view)
                    except OSError as exc:
                        # a file system that took the flag but refuses the write itself: go on through the cache
                        if not (self._direct and exc.errno == errno.EINVAL):
                            raise
                        self._stop_direct()
                        continue
                if written < length - pos and self._direct:
                    self._stop_direct()  # what is left would start unaligned
                pos += written

    def _stop_direct(self) -> None:
        if not _set_direct(self._fd, False):
            raise OSError(f"{self.tmp}: cannot write with or without O_DIRECT")
        self._direct = False

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._buf is not None:
            self._buf.close()
            self._buf = None


def _set_direct(fd: int, on: bool) -> bool:
    """Turn O_DIRECT on or off for `fd`; False where the file system does not support it."""
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    try:
        fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_DIRECT if on else flags & ~os.O_DIRECT)
    except OSError:
        return False
    return True


def write_bytes(final: Path, data: bytes) -> None:
    writer = AtomicWriter(final)
    try:
        writer.write_block(data, 0)
        writer.commit()
    except BaseException:
        writer.discard()
        raise


JOURNAL = ".build-commit.json"  # present only while a set of outputs is being switched


def commit_set(writers: list[AtomicWriter], folder: Path, stale: list[Path] = ()) -> None:
    """Put every writer's file in place as one set, and remove `stale` files, or leave the old set as it was.

    Each existing output is first hard-linked aside; then the new files are renamed over the old ones. If any
    step fails, what was replaced is restored from those links and new files without an old one are removed, so
    the folder never holds a mix of two builds. The journal names the links, so a build killed in the middle
    of the switch (nothing can run then) is rolled back by the next one (`recover`). Works in any plain folder.
    """
    for writer in writers:
        writer.finish()
    backups: dict[str, str] = {}
    placed: list[str] = []  # new files renamed in so far: only these may be removed on the way back
    journal = folder / JOURNAL
    targets = [w.final for w in writers] + [p for p in stale if p.is_file()]
    try:
        for final in targets:
            if final.is_file():
                backup = final.with_name(f".{final.name}.old.tmp")
                backup.unlink(missing_ok=True)
                _set_aside(final, backup)
                backups[final.name] = backup.name
        journal.write_text(json.dumps({"backups": backups, "new": [w.final.name for w in writers]}))
        for writer in writers:
            os.replace(writer.tmp, writer.final)
            placed.append(writer.final.name)
        for path in stale:
            path.unlink(missing_ok=True)
        _fsync_dir(folder)
    except BaseException:
        _roll_back(folder, backups, placed)
        for writer in writers:
            writer.tmp.unlink(missing_ok=True)
        journal.unlink(missing_ok=True)
        raise
    journal.unlink(missing_ok=True)
    for backup in backups.values():
        (folder / backup).unlink(missing_ok=True)


def _set_aside(final: Path, backup: Path) -> None:
    """Keep the old file under `backup`: a second link, so the final name never goes missing; where the file
    system has no hard links (FAT, exFAT, some network mounts) it is renamed aside instead, and the switch
    that follows (or the roll-back) puts a file under the final name again."""
    try:
        os.link(final, backup)
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EMLINK, errno.ENOSYS):
            raise
        os.replace(final, backup)


def _roll_back(folder: Path, backups: dict[str, str], new: list[str]) -> None:
    for name in new:
        if name not in backups and (folder / name).is_file():
            (folder / name).unlink()
    for name, backup in backups.items():
        kept, final = folder / backup, folder / name
        if not kept.is_file():
            continue
        if final.is_file() and os.path.samefile(kept, final):
            kept.unlink()  # never replaced; rename() between two links of one file would do nothing
        else:
            os.replace(kept, final)


def recover(folder: Path) -> bool:
    """Roll back a switch that a killed build left half done; True when there was one."""
    journal = folder / JOURNAL
    try:
        state = json.loads(journal.read_text())
    except (OSError, ValueError):
        return False
    _roll_back(folder, state.get("backups", {}), state.get("new", []))
    journal.unlink(missing_ok=True)
    return True


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
