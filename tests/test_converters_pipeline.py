"""Whole builds: layout, manifest bookkeeping, filters across sources, determinism, atomicity, the demo set."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from converters import atomic, batching, dataset_info
from converters.__main__ import main
from converters.pipeline import Options, build
from medasst.facts import (
    DATASET_INFO,
    DEMO_DATA_DIR,
    DEMO_RAW_DIR,
    MANIFEST,
    REPO_ROOT,
    SOURCES,
    merged_file,
    source_file,
)


@pytest.fixture(scope="module")
def demo_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("demo-out")
    return out, build(Options(raw_dir=DEMO_RAW_DIR, out_dir=out, strict=True))


def test_demo_data_is_exactly_what_the_converters_build(demo_build: tuple[Path, dict]) -> None:
    out, _ = demo_build
    built = sorted(p.name for p in out.iterdir())
    assert built == sorted(p.name for p in DEMO_DATA_DIR.iterdir())
    for name in built:
        assert (out / name).read_bytes() == (DEMO_DATA_DIR / name).read_bytes(), f"demo/data/{name} is stale"


def test_layout_and_manifest_bookkeeping(demo_build: tuple[Path, dict]) -> None:
    out, manifest = demo_build
    assert json.loads((out / MANIFEST).read_bytes()) == manifest
    expected = {source_file(s, sp) for s in SOURCES for sp in ("train", "test")} | {
        merged_file("train"),
        merged_file("test"),
        "medasst_safety_test.jsonl",
    }
    assert set(manifest["outputs"]) == expected
    for name, info in manifest["outputs"].items():
        data = (out / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == info["sha256"] and data.count(b"\n") == info["records"]
    for source, entry in manifest["sources"].items():
        assert entry["status"] == "ok"
        for split in ("train", "test"):
            st = entry[split]
            assert st["read"] == st["written"] + sum(st["skipped"].values())
            assert manifest["outputs"][source_file(source, split)]["records"] == st["written"]
    for split in ("train", "test"):
        merged = manifest["merged"][split]
        assert merged["written"] == sum(merged["by_source"].values())


def test_records_have_the_agreed_shape_and_unique_ids(demo_build: tuple[Path, dict]) -> None:
    out, _ = demo_build
    ids = set()
    for split in ("train", "test"):
        for line in (out / merged_file(split)).read_bytes().splitlines():
            rec = json.loads(line)
            assert list(rec) == ["instruction", "input", "output", "history", "source", "id"]
            assert rec["id"].startswith(f"{rec['source']}-{split}-") and rec["id"] not in ids
            ids.add(rec["id"])
            assert all(isinstance(p, list) and len(p) == 2 and all(p) for p in rec["history"])
            assert rec["instruction"] and rec["output"] and rec["instruction"] == rec["instruction"].strip()


def test_demo_shows_every_filter(demo_build: tuple[Path, dict]) -> None:
    _, m = demo_build
    src = m["sources"]
    assert src["medchatzh"]["train"]["skipped"] == {"duplicate": 1, "empty_answer": 1}
    assert src["huatuo26m"]["train"]["skipped"] == {"in_test": 1}
    assert src["huatuo26m"]["train"]["repaired"] == {"dropped_unanswered_last_question": 6}
    assert src["webmedqa"]["train"]["skipped"]["duplicate"] == 2  # the same pair as in HuatuoGPT: cross-source
    assert m["merged"]["test"]["by_source"]["cmtmedqa"] == 25  # 20 real dialogues + 5 real safety items


def test_same_input_gives_byte_identical_output(demo_build: tuple[Path, dict], tmp_path: Path) -> None:
    out, _ = demo_build
    build(Options(raw_dir=DEMO_RAW_DIR, out_dir=tmp_path, strict=True))
    for p in out.iterdir():
        assert (tmp_path / p.name).read_bytes() == p.read_bytes()


def test_missing_source_is_reported_not_fatal(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    shutil.copytree(DEMO_RAW_DIR / "webMedQA", raw / "webMedQA")
    shutil.copytree(DEMO_RAW_DIR / "MedChatZH", raw / "MedChatZH")
    (raw / "MedChatZH" / "MedChatZH_valid.json").unlink()
    m = build(Options(raw_dir=raw, out_dir=tmp_path / "out"))
    assert m["sources"]["cmtmedqa"]["status"] == "missing" and "train" not in m["sources"]["cmtmedqa"]
    assert m["sources"]["medchatzh"]["status"] == "partial" and "test" not in m["sources"]["medchatzh"]
    assert not (tmp_path / "out" / source_file("cmtmedqa", "train")).exists()
    assert m["merged"]["train"]["by_source"] == {"medchatzh": 24, "webmedqa": 20}


def test_sources_subset_and_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(
        ["build", "--raw-dir", str(DEMO_RAW_DIR), "--out-dir", str(tmp_path), "--sources", "webmedqa", "--no-progress"]
    )
    assert rc == 0
    assert "medasst_train: 20 records {'webmedqa': 20}" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [MANIFEST, "webmedqa_train.jsonl", "webmedqa_test.jsonl", "medasst_train.jsonl", "medasst_test.jsonl"]
    )
    assert main(["build", "--raw-dir", str(tmp_path / "nope"), "--out-dir", str(tmp_path)]) == 2


def test_interrupted_build_leaves_previous_outputs_untouched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    build(Options(raw_dir=DEMO_RAW_DIR, out_dir=out))
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    real_dump = batching.dump
    calls = {"n": 0}

    def dying_dump(rec, source):  # the "power cut" comes in the middle of the train split
        calls["n"] += 1
        if calls["n"] == 70:
            raise KeyboardInterrupt
        return real_dump(rec, source)

    monkeypatch.setattr(batching, "dump", dying_dump)
    with pytest.raises(KeyboardInterrupt):
        build(Options(raw_dir=DEMO_RAW_DIR / ".." / "raw", out_dir=out))
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # no temp files, nothing half-written


def test_dataset_info_json_is_current_and_covers_every_output() -> None:
    assert (REPO_ROOT / DATASET_INFO).read_bytes() == dataset_info.render()
    info = json.loads((REPO_ROOT / DATASET_INFO).read_bytes())
    names = {Path(e["file_name"]).name for e in info.values() if e["file_name"].startswith("data/")}
    assert names == {source_file(s, sp) for s in SOURCES for sp in ("train", "test")} | {
        merged_file("train"),
        merged_file("test"),
        "medasst_safety_test.jsonl",
    }
    assert info["medasst_demo_train"]["file_name"] == "demo/data/medasst_train.jsonl"


@pytest.mark.parametrize("direct", [True, False], ids=["o_direct", "page_cache"])
def test_atomic_writer_chunks_hash_and_discard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, direct: bool) -> None:
    # Small buffers, so that many of them are hashed and written, in order, and the last one is partial.
    monkeypatch.setattr(atomic, "CHUNK", 2 * atomic.ALIGN)
    monkeypatch.setattr(atomic, "DIRECT", direct)
    lines = [f'{{"n":{i},"text":"{"问" * (i % 37)}"}}\n'.encode() for i in range(2000)]
    writer = atomic.AtomicWriter(tmp_path / "out.jsonl")
    for line in lines:
        writer.write(line)
    writer.write_block(b"".join(lines), len(lines))  # one block larger than the buffer
    assert not writer.final.exists()
    writer.commit()
    data = b"".join(lines) * 2
    assert writer.final.read_bytes() == data and writer.records == 2 * len(lines)
    assert writer.sha256 == hashlib.sha256(data).hexdigest()
    assert oct(writer.final.stat().st_mode & 0o777) == "0o644"

    doomed = atomic.AtomicWriter(tmp_path / "doomed.jsonl")
    for line in lines:
        doomed.write(line)
    doomed.discard()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]


def test_atomic_writer_bypasses_the_page_cache_where_the_file_system_allows(tmp_path: Path) -> None:
    probe = os.open(tmp_path / "probe", os.O_WRONLY | os.O_CREAT)
    supported = atomic._set_direct(probe, True)
    os.close(probe)
    writer = atomic.AtomicWriter(tmp_path / "big.jsonl")
    writer.write_block(b"x" * (atomic.CHUNK + 5), 1)
    assert writer._direct is supported
    small = atomic.AtomicWriter(tmp_path / "small.jsonl")
    small.write(b"{}\n")
    writer.commit()
    small.commit()
    assert small._direct is False  # a file shorter than one buffer is written through the cache
    assert (tmp_path / "big.jsonl").read_bytes() == b"x" * (atomic.CHUNK + 5)
    assert (tmp_path / "small.jsonl").read_bytes() == b"{}\n"


def test_atomic_writer_falls_back_when_a_direct_write_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Some file systems accept the O_DIRECT flag and then refuse the write (EINVAL): the bytes go through the cache.
    monkeypatch.setattr(atomic, "CHUNK", 2 * atomic.ALIGN)
    monkeypatch.setattr(atomic, "_set_direct", lambda fd, on: True)
    real_write, refused = os.write, []

    def write(fd: int, data) -> int:
        if not refused:
            refused.append(len(data))
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_write(fd, data)

    monkeypatch.setattr(atomic.os, "write", write)
    data = bytes(range(256)) * 100
    writer = atomic.AtomicWriter(tmp_path / "out.jsonl")
    writer.write_block(data, 1)
    writer.commit()
    assert refused == [atomic.CHUNK] and writer._direct is False
    assert (tmp_path / "out.jsonl").read_bytes() == data

    def always_refused(fd: int, data) -> int:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(atomic.os, "write", always_refused)
    broken = atomic.AtomicWriter(tmp_path / "broken.jsonl")
    with pytest.raises(OSError, match="Input/output"):
        broken.write_block(data, 1)
    broken.discard()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]


def test_question_key_fast_path_matches_plain_nfkc() -> None:
    import re
    import unicodedata

    from converters.clean import normalise_question

    non_word = re.compile(r"[\W_]+")
    # Full-width punctuation next to combining marks, compatibility characters and kana voicing marks: replacing
    # the punctuation before NFKC must not change what NFKC composes.
    for text in ["e，\u0301x", "か\u3099？ｶﾞ", "Ｈｂ高（①㎏）：\u3000ﬁ！", "，\u0327c；", "问：头痛？怎么办！"]:
        assert normalise_question(text) == non_word.sub("", unicodedata.normalize("NFKC", text).casefold())


def test_filters_can_be_turned_off_to_match_the_papers_raw_counts(
    demo_build: tuple[Path, dict], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, default = demo_build
    argv = ["build", "--raw-dir", str(DEMO_RAW_DIR), "--out-dir", str(tmp_path), "--no-progress"]
    assert main([*argv, "--keep-duplicates", "--keep-test-overlap"]) == 0
    kept = json.loads((tmp_path / MANIFEST).read_text(encoding="utf-8"))
    assert kept["options"]["dedup"] is False and kept["options"]["drop_test_overlap"] is False
    for source, entry in kept["sources"].items():
        train = entry["train"]
        assert "duplicate" not in train["skipped"] and "in_test" not in train["skipped"], source
        assert train["read"] == train["written"] + sum(train["skipped"].values())
        was = default["sources"][source]["train"]
        removed = was["skipped"].get("duplicate", 0) + was["skipped"].get("in_test", 0)
        assert train["written"] == was["written"] + removed, source


def test_safety_items_are_also_their_own_registered_set(demo_build: tuple[Path, dict]) -> None:
    from medasst.facts import DEMO_SAFETY_TEST, SAFETY_FILE, SAFETY_ID_PREFIX, SAFETY_TEST

    out, manifest = demo_build
    cmtmedqa_test = [json.loads(line) for line in (out / source_file("cmtmedqa", "test")).read_text().splitlines()]
    safety = [json.loads(line) for line in (out / SAFETY_FILE).read_text().splitlines()]
    assert safety == [r for r in cmtmedqa_test if r["id"].startswith(SAFETY_ID_PREFIX)] and len(safety) == 5
    assert manifest["outputs"][SAFETY_FILE]["records"] == 5
    info = json.loads((REPO_ROOT / "dataset_info.json").read_text(encoding="utf-8"))
    assert info[SAFETY_TEST]["file_name"] == f"data/{SAFETY_FILE}"
    assert info[DEMO_SAFETY_TEST]["file_name"] == f"demo/data/{SAFETY_FILE}"
