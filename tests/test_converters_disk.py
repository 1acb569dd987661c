"""The disk refusing a write: full, a file-size limit. One `error:` line, no temp file left, the previous outputs
byte-identical — on the page-cache path and the O_DIRECT path alike."""

from __future__ import annotations

import errno
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from converter_builds import snapshot

from converters import atomic
from converters.__main__ import main
from converters.atomic import AtomicWriter
from medasst.facts import REPO_ROOT


def _disk_full_after(monkeypatch, limit: int) -> None:
    """os.write as a file system with `limit` bytes left: a short write, then ENOSPC (what Linux does)."""
    real, left = os.write, {"n": limit}

    def write(fd, data):
        if left["n"] <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        taken = real(fd, bytes(memoryview(data)[: left["n"]]))
        left["n"] -= taken
        return taken

    monkeypatch.setattr(atomic.os, "write", write)


@pytest.mark.parametrize("direct", [True, False])
def test_a_full_disk_in_the_middle_of_a_write_is_one_line(built, monkeypatch, capsys, direct):
    raw, out, before = built
    # buffers of 16 KiB, so the demo's outputs take the O_DIRECT path where the file system allows it
    monkeypatch.setattr(atomic, "CHUNK", 16 << 10)
    monkeypatch.setattr(atomic, "DIRECT", direct)
    _disk_full_after(monkeypatch, 40_000)
    assert main(["build", "--raw-dir", str(raw), "--out-dir", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "BufferError" not in err
    (line,) = [x for x in err.splitlines() if x.startswith("error:")]
    assert "the disk is full" in line and "the previous outputs are kept" in line
    assert snapshot(out) == before  # no temp file, nothing replaced


def test_a_writer_that_fails_on_the_direct_path_closes_cleanly(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(atomic, "CHUNK", 8192)
    _disk_full_after(monkeypatch, 0)
    writer = AtomicWriter(tmp_path / "out.jsonl")
    with pytest.raises(OSError) as caught:
        writer.write_block(b"x" * 20_000, 1)
    assert caught.value.errno == errno.ENOSPC
    del caught  # the traceback no longer holds a view of the buffer either way
    writer.discard()  # before the fix: BufferError, cannot close exported pointers exist
    assert list(tmp_path.iterdir()) == []


def _limit_file_size(limit: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_a_file_size_limit_is_one_line(built, tmp_path: Path):
    raw, out, before = built
    biggest = max(len(data) for data in before.values())
    env = {**os.environ, "MEDASST_HASH_CACHE": str(tmp_path / "hashes.json"), "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "converters", "build", "--raw-dir", str(raw), "--out-dir", str(out), "--no-progress",
         "--workers", "1"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120,
        preexec_fn=_limit_file_size(biggest // 2),
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    (line,) = [x for x in done.stderr.splitlines() if x.startswith("error:")]
    assert "file-size limit" in line and "the previous outputs are kept" in line
    assert snapshot(out) == before


def test_a_raw_file_that_cannot_be_read_is_one_line_about_reading(built, monkeypatch, capsys):
    """An I/O error on the way in (a flaky network mount, a permission) is not reported as a write failure."""
    raw, out, before = built
    import converters.jobs as jobs

    def unreadable(path):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))

    monkeypatch.setattr(jobs, "open_lines", unreadable)
    assert main(["build", "--raw-dir", str(raw), "--out-dir", str(out), "--no-progress", "--workers", "1"]) == 2
    (line,) = [x for x in capsys.readouterr().err.splitlines() if x.startswith("error:")]
    assert line.startswith("error: reading ") and "Permission denied" in line and "writing" not in line
    assert snapshot(out) == before
