"""Outputs appear under their final name only when complete: write to a temp file beside it, then os.replace."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO

# Lines are collected and hashed + written in chunks of this size: one `update` and one `write` per MiB instead
# of two Python-level calls per record.
CHUNK = 1 << 20


class AtomicWriter:
    """Binary writer that hashes what it writes; `commit()` fsyncs and renames, `discard()` removes the temp."""

    def __init__(self, final: Path) -> None:
        self.final = final
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
        self.tmp = Path(tmp)
        self._fh: BinaryIO = os.fdopen(fd, "wb", buffering=1 << 20)
        self._sha = hashlib.sha256()
        self.records = 0
        self._lines: list[bytes] = []
        self._buffered = 0

    def write(self, line: bytes) -> None:
        self.write_block(line, 1)

    def write_block(self, data: bytes, records: int) -> None:
        """`records` whole lines already joined (the build writes a batch at a time)."""
        self._lines.append(data)
        self._buffered += len(data)
        self.records += records
        if self._buffered >= CHUNK:
            self._flush()

    @property
    def sha256(self) -> str:
        self._flush()
        return self._sha.hexdigest()

    def commit(self) -> None:
        self._flush()
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        # mkstemp creates 0600; outputs are ordinary shared data files.
        os.chmod(self.tmp, 0o644)
        os.replace(self.tmp, self.final)

    def discard(self) -> None:
        self._lines.clear()
        if not self._fh.closed:
            self._fh.close()
        self.tmp.unlink(missing_ok=True)

    def _flush(self) -> None:
        if self._lines:
            data = b"".join(self._lines)
            self._lines.clear()
            self._buffered = 0
            self._sha.update(data)
            self._fh.write(data)


def write_bytes(final: Path, data: bytes) -> None:
    writer = AtomicWriter(final)
    try:
        writer._fh.write(data)
        writer.commit()
    except BaseException:
        writer.discard()
        raise
