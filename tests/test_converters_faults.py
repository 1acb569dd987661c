"""Faults around the records: whole files, the output folder, a narrower build, a killed build. A failed build
leaves the previous outputs byte-identical; a crash on one record is a counted skip."""

from __future__ import annotations

import io
import json
import logging
import shutil
import zipfile
from pathlib import Path

import pytest
from converter_builds import snapshot

from converters.__main__ import main
from converters.pipeline import Options, build
from converters.records import ConversionError
from medasst.facts import DEMO_RAW_DIR, source_file

GOOD = {"instruction": "头痛怎么办？", "input": "", "output": "注意休息。"}


def test_a_raw_dir_with_none_of_the_sources_replaces_nothing(built, tmp_path: Path, capsys):
    _, out, before = built
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    assert main(["build", "--raw-dir", str(empty), "--out-dir", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: none of the raw files of medchatzh, huatuo26m, cmtmedqa, webmedqa are under")
    assert snapshot(out) == before


def test_a_source_of_the_previous_build_gone_is_refused(built):
    raw, out, before = built
    shutil.rmtree(raw / "CMtMedQA")
    with pytest.raises(ConversionError, match=r"cmtmedqa (train|test): the previous build .* wrote \d+ records"):
        build(Options(raw_dir=raw, out_dir=out))
    assert snapshot(out) == before
    # asked for without it, the build goes ahead and its old files do not linger looking current
    manifest = build(Options(raw_dir=raw, out_dir=out, sources=("medchatzh", "huatuo26m", "webmedqa")))
    assert "cmtmedqa" not in manifest["sources"]
    assert (
        not (out / source_file("cmtmedqa", "train")).exists() and not (out / source_file("cmtmedqa", "test")).exists()
    )
    assert set(manifest["outputs"]) | {"manifest.json"} == {p.name for p in out.iterdir()}


def test_a_file_of_nothing_but_bad_bytes_and_half_fail_a_higher_limit_warns(built, caplog):
    raw, out, before = built
    train = raw / "MedChatZH" / "MedChatZH_train.json"
    lines = train.read_bytes().splitlines(keepends=True)
    bad = b'{"instruction": "\xff\xfe", "output": "x"}\n'
    train.write_bytes(bad * len(lines))
    with pytest.raises(ConversionError, match=r"^MedChatZH/MedChatZH_train.json: no record could be read "
                                              rf"\(bad_encoding {len(lines)}\)"):  # fmt: skip
        build(Options(raw_dir=raw, out_dir=out))
    assert snapshot(out) == before
    train.write_bytes(b"".join(lines) + bad * len(lines))
    half = r"MedChatZH_train.json: 5\d% of it is malformed \(bad_encoding \d+[^)]*\), at or above the limit of 50%"
    with pytest.raises(ConversionError, match=half):
        build(Options(raw_dir=raw, out_dir=out))
    assert snapshot(out) == before
    with caplog.at_level(logging.WARNING, logger="converters"):
        build(Options(raw_dir=raw, out_dir=out, max_bad_share=0.6))  # a higher limit, asked for: a warning
    assert any("MedChatZH/MedChatZH_train.json: 51% of it is malformed" in r.message for r in caplog.records)


def test_cmtmedqa_lone_surrogate_and_deep_nesting_are_counted(tmp_path: Path):
    raw = tmp_path / "raw"
    (raw / "CMtMedQA").mkdir(parents=True)
    good = json.dumps(GOOD, ensure_ascii=False)
    (raw / "CMtMedQA" / "CMtMedQA_test.json").write_text(
        f'[{good}, {{"instruction": "表情\\ud83d", "output": "x"}},'
        f' {{"instruction": "好\\ud83d\\ude00", "output": "y"}}]'
    )
    deep = "[" * 50_000 + "]" * 50_000
    (raw / "CMtMedQA" / "CMtMedQA.json").write_text(f"[{json.dumps({**GOOD, 'instruction': '别的问题'})}, {deep}]")
    manifest = build(Options(raw_dir=raw, out_dir=tmp_path / "out", sources=("cmtmedqa",), max_bad_share=1.0))
    test, train = manifest["sources"]["cmtmedqa"]["test"], manifest["sources"]["cmtmedqa"]["train"]
    assert test["skipped"] == {"bad_encoding": 1} and test["written"] == 2  # a valid pair is an emoji, kept
    assert train["skipped"] == {"bad_json": 1} and train["written"] == 1


def _zip(path: Path, name: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, data)
    return buffer.getvalue()


def test_webmedqa_zip_encrypted_or_corrupt(tmp_path: Path):
    raw = tmp_path / "raw"
    (raw / "webMedQA").mkdir(parents=True)
    rows = "".join(f"内科\t1\t{i}\t问题{i}很长很长\t回答{i}\n" for i in range(200)).encode()
    (raw / "webMedQA" / "medQA.test.txt").write_bytes("内科\t1\t9\tq\ta\n".encode())
    data = bytearray(_zip(raw, "medQA.train.txt", rows))
    corrupt = bytearray(data)
    corrupt[60] ^= 0xFF  # inside the deflated member: the CRC (or the inflate) fails
    (raw / "webMedQA" / "train.zip").write_bytes(bytes(corrupt))
    out = tmp_path / "out"
    with pytest.raises(ConversionError, match=r"webMedQA/train.zip: medQA.train.txt is corrupt"):
        build(Options(raw_dir=raw, out_dir=out, sources=("webmedqa",)))
    assert not out.exists() or not list(out.iterdir())
    encrypted = bytearray(data)
    # the general-purpose flag bit 0 (encrypted) in the local and the central header
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = encrypted.find(signature) + offset
        encrypted[at] |= 0x1
    (raw / "webMedQA" / "train.zip").write_bytes(bytes(encrypted))
    with pytest.raises(ConversionError, match=r"webMedQA/train.zip: no record could be read \(unreadable_file 1\)"):
        build(Options(raw_dir=raw, out_dir=out, sources=("webmedqa",)))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--out-dir", "{file}"], "is a file; pass a folder"),
        (["--out-dir", "{file}/data"], "is under"),
        (["--max-chars", "0"], "--max-chars must be at least 1, got 0"),
        (["--max-chars", "-5"], "--max-chars must be at least 1, got -5"),
    ],
)
def test_bad_build_arguments_are_one_line(tmp_path: Path, capsys, argv: list[str], message: str):
    taken = tmp_path / "taken"
    taken.write_text("not a folder")
    argv = [a.replace("{file}", str(taken)) for a in argv]
    if "--out-dir" not in argv:
        argv += ["--out-dir", str(tmp_path / "out")]
    assert main(["build", "--raw-dir", str(DEMO_RAW_DIR), "--no-progress", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert taken.read_text() == "not a folder"


def test_an_out_dir_that_is_not_writable_is_one_line(tmp_path: Path, capsys, monkeypatch):
    import os

    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    # the tests run as root, whom chmod does not stop: ask os.access what an ordinary user would be told
    monkeypatch.setattr(os, "access", lambda path, mode: False if Path(path) == locked else real_access(path, mode))
    assert main(["build", "--raw-dir", str(DEMO_RAW_DIR), "--out-dir", str(locked / "data"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: --out-dir {locked / 'data'}: {locked} is not writable"]
    assert list(locked.iterdir()) == []


def test_stale_temp_files_of_a_killed_build_are_removed(built):
    raw, out, before = built
    stale = out / ".medasst_train.jsonl.k1ll3d.tmp"
    stale.write_bytes(b"x" * 1000)
    foreign = out / ".notes.txt.abc.tmp"  # not ours: left alone
    foreign.write_text("mine")
    build(Options(raw_dir=raw, out_dir=out))
    assert not stale.exists() and foreign.exists()
    assert {k: v for k, v in snapshot(out).items() if not k.startswith(".")} == before


def test_ctrl_c_is_one_line_and_keeps_the_outputs(built, capsys, monkeypatch):
    raw, out, before = built
    import converters.pipeline as pipeline

    real = pipeline.apply

    def interrupted(*args, **kwargs):
        real(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "apply", interrupted)
    assert main(["build", "--raw-dir", str(raw), "--out-dir", str(out), "--no-progress"]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["interrupted: nothing was replaced (the previous outputs are as they were)"]
    assert snapshot(out) == before


def test_a_failure_while_switching_outputs_restores_the_old_set(built, monkeypatch):
    import os

    raw, out, before = built
    (raw / "MedChatZH" / "MedChatZH_train.json").write_bytes(
        (raw / "MedChatZH" / "MedChatZH_train.json").read_bytes() + (json.dumps({**GOOD, "instruction": "新问题"},
                                                                              ensure_ascii=False) + "\n").encode()
    )  # fmt: skip
    real_replace, calls = os.replace, {"n": 0}

    def disk_full_on_the_third(src, dst):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr("converters.atomic.os.replace", disk_full_on_the_third)
    with pytest.raises(ConversionError, match="the disk is full; the temp files were removed"):
        build(Options(raw_dir=raw, out_dir=out))
    assert snapshot(out) == before  # the two files already switched were put back; no temp or journal left
    monkeypatch.undo()

    # a folder where manifest.json should go: the same, refused before the data files change
    (out / "manifest.json").unlink()
    (out / "manifest.json").mkdir()
    with pytest.raises(ConversionError, match=r"manifest.json is a folder .* where the build writes a file"):
        build(Options(raw_dir=raw, out_dir=out))
    after = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert after == {k: v for k, v in before.items() if k != "manifest.json"}


def test_a_build_killed_while_switching_is_rolled_back_by_the_next(built):
    from converters.atomic import JOURNAL

    _, out, before = built
    # the state a SIGKILL between two renames leaves: one file new, its old bytes linked aside, the journal
    victim = out / "medasst_train.jsonl"
    os_link_target = out / ".medasst_train.jsonl.old.tmp"
    os_link_target.write_bytes(victim.read_bytes())
    victim.write_bytes(b'{"half": "switched"}\n')
    (out / JOURNAL).write_text(json.dumps({"backups": {"medasst_train.jsonl": os_link_target.name}, "new": []}))
    from converters.atomic import recover

    assert recover(out)
    assert snapshot(out) == before
