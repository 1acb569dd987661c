"""A raw file that changes under a running build, and a build process that is killed: no mix of two versions,
no manifest naming bytes that were not converted, no worker left behind."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from converter_builds import snapshot

from converters import parallel, pipeline
from converters.pipeline import Options, build
from converters.records import ConversionError
from medasst.facts import DEMO_RAW_DIR, REPO_ROOT

TRAIN = "MedChatZH/MedChatZH_train.json"


def _new_version(raw: Path) -> bytes:
    lines = (raw / TRAIN).read_bytes().splitlines(keepends=True)
    return b"".join(line.replace("医生".encode(), "大夫".encode()) for line in reversed(lines))


def _replace(raw: Path, data: bytes) -> None:
    """What a download tool or `cp` to a temp + `mv` does: a new file renamed over the old one."""
    tmp = raw / (TRAIN + ".part")
    tmp.write_bytes(data)
    os.replace(tmp, raw / TRAIN)


def test_a_file_replaced_while_workers_read_it_fails_the_build(built, monkeypatch):
    raw, out, before = built
    real, calls = parallel._result, {"n": 0}

    def replaced_after_the_first_chunk(job, *args):
        if job.path.name == "MedChatZH_train.json":
            calls["n"] += 1
            if calls["n"] == 1:  # workers have their next chunks to read yet
                _replace(raw, _new_version(raw))
        return real(job, *args)

    monkeypatch.setattr(parallel, "_result", replaced_after_the_first_chunk)
    with pytest.raises(ConversionError, match=rf"{TRAIN} was replaced by another file during the build"):
        build(Options(raw_dir=raw, out_dir=out, workers=2, chunk_bytes=300, sources=("medchatzh",)))
    assert snapshot(out) == before


@pytest.mark.parametrize("how", ["replaced", "appended"])
def test_a_file_changed_after_it_was_hashed_fails_the_build(built, monkeypatch, how):
    """One process reads a file once, so it sees one version; but not the one the manifest's sha256 names."""
    raw, out, before = built
    real, calls = pipeline.apply, {"n": 0}

    def changed_before_the_train_split(*args, **kwargs):
        calls["n"] += 1
        if args[2] == "train" and args[1] == "medchatzh":
            if how == "replaced":
                _replace(raw, _new_version(raw))
            else:
                with (raw / TRAIN).open("ab") as fh:  # the same inode, written on
                    fh.write(json.dumps({"instruction": "新问题", "output": "新回答"}, ensure_ascii=False).encode())
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "apply", changed_before_the_train_split)
    expected = "was replaced by another file" if how == "replaced" else "changed size"
    with pytest.raises(ConversionError, match=rf"{TRAIN} {expected} .*during the build; nothing was written"):
        build(Options(raw_dir=raw, out_dir=out, workers=1))
    assert snapshot(out) == before
    monkeypatch.undo()
    # once the file is still, the build goes through and its manifest names the bytes it converted
    import hashlib

    manifest = build(Options(raw_dir=raw, out_dir=out, workers=2, chunk_bytes=300))
    sha = manifest["sources"]["medchatzh"]["inputs"]["train"]["sha256"][TRAIN]
    assert sha == hashlib.sha256((raw / TRAIN).read_bytes()).hexdigest()


SLOW_BUILD = """
import sys, time
from pathlib import Path
from converters import batching
from converters.pipeline import Options, build

real = batching.prepare
def slow(item, how):  # forked workers inherit it: each chunk takes a while, as real chunks of 4 MB do
    time.sleep(0.05)
    return real(item, how)
batching.prepare = slow
build(Options(raw_dir=Path(sys.argv[1]), out_dir=Path(sys.argv[2]), workers=2, chunk_bytes=200,
              sources=("medchatzh",)))
"""


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc; PR_SET_PDEATHSIG is Linux's")
def test_killing_the_build_process_takes_its_workers_with_it(tmp_path: Path):
    raw = tmp_path / "raw"
    shutil.copytree(DEMO_RAW_DIR / "MedChatZH", raw / "MedChatZH")
    env = {**os.environ, "MEDASST_HASH_CACHE": str(tmp_path / "hashes.json")}
    proc = subprocess.Popen([sys.executable, "-c", SLOW_BUILD, str(raw), str(tmp_path / "out")], cwd=REPO_ROOT,
                            env=env, stderr=subprocess.DEVNULL)  # fmt: skip
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while len(workers) < 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
            workers = _children(proc.pid)
        assert len(workers) == 2, "the build's workers never started"
        proc.send_signal(signal.SIGKILL)  # what the OOM killer does
        proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        while any(_alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [w for w in workers if _alive(w)], "workers outlived the killed build"
    finally:
        proc.kill()
        for w in workers:
            if _alive(w):
                os.kill(w, signal.SIGKILL)
