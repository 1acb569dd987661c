"""Outputs appear under their final name only when complete: write to a temp file beside it, then os.replace."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO


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

    def write(self, line: bytes) -> None:
        self._fh.write(line)
        self._sha.update(line)
        self.records += 1

    @property
    def sha256(self) -> str:
        return self._sha.hexdigest()

    def commit(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        # mkstemp creates 0600; outputs are ordinary shared data files.
        os.chmod(self.tmp, 0o644)
        os.replace(self.tmp, self.final)

    def discard(self) -> None:
        if not self._fh.closed:
            self._fh.close()
        self.tmp.unlink(missing_ok=True)


def write_bytes(final: Path, data: bytes) -> None:
    writer = AtomicWriter(final)
    try:
        writer._fh.write(data)
        writer.commit()
    except BaseException:
        writer.discard()
        raise
