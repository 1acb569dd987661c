"""The build's guards against inputs a hostile user brought, each of which once got through.

Inputs the guard tests did not try: a webMedQA file in GBK, a JSON array file with a second array after it, a raw
file rewritten with its mtime put back, a SIGTERM'd build, and a commit whose backup step fails.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from converter_builds import snapshot_files as snapshot

from converters import atomic, pipeline
from converters.pipeline import Options, build
from converters.records import ConversionError
from medasst.facts import DEMO_RAW_DIR, REPO_ROOT

# --- 1. webMedQA's label-0 negatives dilute its malformed share: a GBK file yields nothing and the build passes ---


@pytest.mark.parametrize("workers", [1, 2])
def test_a_gbk_webmedqa_file_that_yields_no_record_fails_the_build(built, workers):
    """Every positive line is invalid UTF-8, so the file yields 0 records; but 80 % of its lines are deliberate
    negatives, counted in the denominator, so the loss reads as 20 % (a warning listing `negative_answer` as
    malformed) and the build replaces webmedqa_train.jsonl with an empty file, manifest status "ok"."""
    raw, out, before = built
    path = raw / "webMedQA" / "medQA.train.txt"
    path.write_bytes(path.read_bytes().decode("utf-8").encode("gbk", errors="replace"))
    with pytest.raises(ConversionError, match=r"webMedQA/medQA\.train\.txt"):
        build(Options(raw_dir=raw, out_dir=out, workers=workers))
    assert snapshot(out) == before


def test_webmedqa_losing_most_of_its_positive_lines_fails_the_build(built):
    """60 % of the positive (label 1) lines broken: a 60 % loss of what the file can yield, reported as 12 %."""
    raw, out, before = built
    path = raw / "webMedQA" / "medQA.train.txt"
    lines = path.read_bytes().splitlines(keepends=True)
    positives = [i for i, line in enumerate(lines) if line.split(b"\t")[1:2] == [b"1"]]
    for i in positives[: int(len(positives) * 0.6) + 1]:
        fields = lines[i].split(b"\t")
        lines[i] = b"\t".join([*fields[:3], b"\xff\xfe" + fields[3], *fields[4:]])
    path.write_bytes(b"".join(lines))
    with pytest.raises(ConversionError, match=r"--max-bad-share"):
        build(Options(raw_dir=raw, out_dir=out))
    assert snapshot(out) == before


# --- 2. a JSON array followed by more data: the unread rest is not counted as lost ---


def test_two_json_arrays_in_one_file_lose_half_of_it_and_fail_the_build(built):
    """`cat a.json b.json`: the second array (half the file, half the records) is one `bad_json` skip with no
    share lost, so the build warns "6% of it is malformed" and drops half of CMtMedQA's train records."""
    raw, out, before = built
    path = raw / "CMtMedQA" / "CMtMedQA.json"
    path.write_bytes(path.read_bytes() * 2)
    with pytest.raises(ConversionError, match=r"CMtMedQA/CMtMedQA\.json"):
        build(Options(raw_dir=raw, out_dir=out))
    assert snapshot(out) == before


# --- 3. a rewrite that keeps size and mtime is not seen: the manifest names bytes that were not converted ---


TRAIN = "MedChatZH/MedChatZH_train.json"


@pytest.mark.parametrize("workers", [1, 2])
def test_a_same_size_rewrite_with_the_mtime_put_back_fails_the_build(built, monkeypatch, workers):
    """What `cp -p`/`rsync -t`/`tar x` over the file do: same inode, same size, the old mtime set again. Only
    st_ctime (which no one can set back) shows it; the identity leaves it out, so the build succeeds with
    outputs from the new bytes and a manifest sha256 of the old ones."""
    raw, out, before = built
    real = pipeline.apply

    def rewritten_before_the_train_split(*args, **kwargs):
        if args[1] == "medchatzh" and args[2] == "train":
            path = raw / TRAIN
            st = path.stat()
            data = path.read_bytes().replace("医生".encode(), "大夫".encode())
            assert len(data) == st.st_size
            with path.open("r+b") as fh:
                fh.write(data)
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "apply", rewritten_before_the_train_split)
    try:
        manifest = build(Options(raw_dir=raw, out_dir=out, workers=workers, chunk_bytes=300))
    except ConversionError as exc:
        assert "during the build" in str(exc)
        assert snapshot(out) == before
        return
    converted = hashlib.sha256((raw / TRAIN).read_bytes()).hexdigest()
    named = manifest["sources"]["medchatzh"]["inputs"]["train"]["sha256"][TRAIN]
    assert named == converted, "the manifest's sha256 is not of the bytes that were converted"


# --- 4. SIGTERM (kill, timeout, systemd, docker stop) leaves the build's temp files behind, with no message ---


SLOW_BUILD = """
import sys, time
from pathlib import Path
from converters import batching
from converters.pipeline import Options, build

real = batching.prepare
def slow(item, how):
    time.sleep(0.05)
    return real(item, how)
batching.prepare = slow
build(Options(raw_dir=Path(sys.argv[1]), out_dir=Path(sys.argv[2]), workers=int(sys.argv[3]), chunk_bytes=200,
              sources=("medchatzh",)))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux signals")
@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_removes_the_temp_files_like_ctrl_c_does(tmp_path: Path, workers):
    raw = tmp_path / "raw"
    shutil.copytree(DEMO_RAW_DIR / "MedChatZH", raw / "MedChatZH")
    out = tmp_path / "out"
    env = {**os.environ, "MEDASST_HASH_CACHE": str(tmp_path / "hashes.json")}
    proc = subprocess.Popen([sys.executable, "-c", SLOW_BUILD, str(raw), str(out), str(workers)], cwd=REPO_ROOT,
                            env=env, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            if out.is_dir() and any(p.name.endswith(".tmp") for p in out.iterdir()):
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the build ended before it could be stopped"
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
    finally:
        proc.kill()
        proc.wait()
    left = sorted(p.name for p in out.iterdir() if p.name.endswith(".tmp"))
    assert left == [], f"a SIGTERM'd build left its temp files: {left}"


# --- 5. a failure while the old outputs are linked aside deletes the ones not yet linked ---


def test_a_folder_where_a_backup_link_goes_keeps_the_previous_outputs(built):
    """commit_set links each old output aside as `.NAME.old.tmp`; when that fails part-way, the roll-back takes
    every output not yet linked for a new file and deletes it: the old train files and the manifest are gone,
    while the error line says "the previous outputs are kept"."""
    raw, out, before = built
    (out / ".medasst_train.jsonl.old.tmp").mkdir()
    (out / ".medasst_train.jsonl.old.tmp" / "x").write_bytes(b"")
    with pytest.raises(ConversionError, match="the previous outputs are kept"):
        build(Options(raw_dir=raw, out_dir=out))
    after = {name: data for name, data in snapshot(out).items() if not name.endswith(".old.tmp")}
    assert sorted(after) == sorted(before)
    assert after == before


def test_a_file_system_without_hard_links_keeps_the_previous_outputs(built, monkeypatch):
    """exFAT/FAT USB drives and some network mounts refuse link(2) (EPERM): the first backup fails, and the
    roll-back deletes every previous output."""
    raw, out, before = built

    def no_links(src, dst, *args, **kwargs):
        raise PermissionError(errno.EPERM, "Operation not permitted", str(src))

    monkeypatch.setattr(atomic.os, "link", no_links)
    try:
        build(Options(raw_dir=raw, out_dir=out))
    except ConversionError:
        pass  # refusing is fine; losing the old outputs is not
    else:
        return  # building without backups is fine too, when it succeeds
    assert snapshot(out) == before
