"""Outputs appear under their final name only when complete: write to a temp file beside it, then os.replace."""

from __future__ import annotations

import hashlib
import json
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

    def finish(self) -> None:
        """Everything written and synced to the temp file, readable by others; not yet under its final name."""
        if self._fh.closed:
            return
        self._flush()
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        # mkstemp creates 0600; outputs are ordinary shared data files.
        os.chmod(self.tmp, 0o644)

    def commit(self) -> None:
        self.finish()
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
    journal = folder / JOURNAL
    targets = [w.final for w in writers] + [p for p in stale if p.is_file()]
    try:
        for final in targets:
            if final.is_file():
                backup = final.with_name(f".{final.name}.old.tmp")
                backup.unlink(missing_ok=True)
                os.link(final, backup)
                backups[final.name] = backup.name
        journal.write_text(json.dumps({"backups": backups, "new": [w.final.name for w in writers]}))
        for writer in writers:
            os.replace(writer.tmp, writer.final)
        for path in stale:
            path.unlink(missing_ok=True)
        _fsync_dir(folder)
    except BaseException:
        _roll_back(folder, backups, [w.final.name for w in writers])
        for writer in writers:
            writer.tmp.unlink(missing_ok=True)
        journal.unlink(missing_ok=True)
        raise
    journal.unlink(missing_ok=True)
    for backup in backups.values():
        (folder / backup).unlink(missing_ok=True)


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
