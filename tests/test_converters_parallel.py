"""`converters build --workers N`: chunks prepared in worker processes, outputs byte-identical to one process."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import signal
from pathlib import Path

import pytest

from converters import __main__ as cli
from converters import parallel
from converters.pipeline import Options, build
from converters.records import ConversionError
from medasst.facts import DEMO_RAW_DIR, REPO_ROOT


def outputs(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def convert(raw: Path, out: Path, workers: int, chunk_bytes: int = 4 << 20, **more) -> dict[str, bytes]:
    build(Options(raw_dir=raw, out_dir=out, workers=workers, chunk_bytes=chunk_bytes, **more))
    return outputs(out)


@pytest.mark.parametrize("workers", [2, 4])
def test_demo_build_is_byte_identical_for_any_worker_count(tmp_path: Path, workers: int):
    single = convert(DEMO_RAW_DIR, tmp_path / "one", 1)
    # 700-byte chunks: every JSON Lines file is cut many times, mid-file and at its last line
    assert convert(DEMO_RAW_DIR, tmp_path / "many", workers, chunk_bytes=700) == single
    assert convert(DEMO_RAW_DIR, tmp_path / "big", workers) == single


def test_chunks_are_whole_numbered_lines(tmp_path: Path):
    from converters.jobs import LineJob

    path = tmp_path / "x.jsonl"
    lines = [b'{"a": %d}\n' % i for i in range(1, 40)] + [b'{"long": "' + b"x" * 3000 + b'"}\n', b'{"last": 1}']
    path.write_bytes(b"".join(lines))
    job = LineJob(path, lambda *a: None, "x", "x")
    chunks = list(parallel._chunks(job, 64))
    data = path.read_bytes()
    assert [offset for offset, *_ in chunks] == [sum(c[1] for c in chunks[:i]) for i in range(len(chunks))]
    assert sum(length for _, length, *_ in chunks) == len(data)
    line = 1
    for offset, length, first, last in chunks:
        piece = data[offset : offset + length]
        assert first == line and last == first + len(piece.splitlines()) - 1
        assert piece.endswith(b"\n") or piece == lines[-1]
        line = last + 1
    assert line == len(lines) + 1
    assert any(length > 3000 for _, length, *_ in chunks), "a line longer than a chunk stays whole"


@pytest.mark.slow
def test_synthetic_200k_build_is_byte_identical(tmp_path: Path):
    spec = importlib.util.spec_from_file_location("bench_convert", REPO_ROOT / "bench" / "convert.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    raw = tmp_path / "raw"
    # 200,000 training records of a fifth of the real text lengths (≈ 90 MB raw: the disk of a CI machine is
    # shared by the whole suite), with duplicates and test questions planted across chunk boundaries
    bench.generate(raw, 200_000, scale=0.2)
    _plant_duplicates_and_test_questions(raw)
    # digests, and one output folder on disk at a time
    single = digests(raw, tmp_path / "w1", 1)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    skipped = manifest["sources"]["medchatzh"]["train"]["skipped"]
    assert skipped["duplicate"] == 400 and skipped["in_test"] == 40, skipped
    assert manifest["sources"]["huatuo26m"]["train"]["skipped"]["duplicate"] == 100  # copies of MedChatZH records
    for workers in (2, 4):
        assert digests(raw, tmp_path / f"w{workers}", workers, chunk_bytes=1 << 20) == single, workers


def _plant_duplicates_and_test_questions(raw: Path) -> None:
    """MedChatZH train gets 400 repeated lines and 40 questions of its test split, scattered through the
    file; the encyclopedia file gets 100 records whose turns equal MedChatZH ones (a cross-source duplicate)."""
    train = raw / "MedChatZH" / "MedChatZH_train.json"
    lines = train.read_bytes().splitlines(keepends=True)
    tests = (raw / "MedChatZH" / "MedChatZH_valid.json").read_bytes().splitlines(keepends=True)
    planted = list(lines)
    for k in range(400):
        planted.insert(len(planted) * (k + 1) // 401, lines[k * 97])
    for k in range(40):
        asked = json.loads(tests[k])
        asked["output"] = f"另一个回答 {k}"  # same question, different answer: not a duplicate, but in the test set
        planted.insert(len(planted) * (k + 1) // 41, json.dumps(asked, ensure_ascii=False).encode() + b"\n")
    train.write_bytes(b"".join(planted))
    encyclopedia = raw / "huatuo_encyclopedia_qa" / "train_datasets.jsonl"
    records = encyclopedia.read_bytes().splitlines(keepends=True)
    for k in range(100):
        source = json.loads(lines[k * 131])
        copy = {"questions": [[source["instruction"]]], "answers": [source["output"]]}
        records.insert(len(records) * (k + 1) // 101, json.dumps(copy, ensure_ascii=False).encode() + b"\n")
    encyclopedia.write_bytes(b"".join(records))


def digests(raw: Path, out: Path, workers: int, **more) -> dict[str, str]:
    build(Options(raw_dir=raw, out_dir=out, workers=workers, **more))
    found = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.iterdir())}
    shutil.copyfile(out / "manifest.json", out.parent / "manifest.json")
    shutil.rmtree(out)
    return found


def test_a_killed_worker_fails_the_build_and_keeps_the_previous_outputs(tmp_path: Path, monkeypatch):
    out = tmp_path / "data"
    before = convert(DEMO_RAW_DIR, out, 1)
    from converters import batching

    real, main_pid = batching.prepare, os.getpid()

    def dies_in_a_worker(item, how):
        if os.getpid() != main_pid and "huatuo_encyclopedia_qa" in getattr(item, "where", ""):
            os.kill(os.getpid(), signal.SIGKILL)
        return real(item, how)

    monkeypatch.setattr(batching, "prepare", dies_in_a_worker)  # forked workers inherit it
    with pytest.raises(
        ConversionError, match=r"huatuo_encyclopedia_qa/\w+_datasets\.jsonl:\d+-\d+: a conversion worker"
    ):
        convert(DEMO_RAW_DIR, out, 2, chunk_bytes=700)
    assert outputs(out) == before, "the previous build's files, byte for byte"
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "no temp files left"


def test_strict_stops_at_the_same_record_in_workers(tmp_path: Path):
    raw = tmp_path / "raw"
    for path in DEMO_RAW_DIR.rglob("*"):
        if path.is_file():
            target = raw / path.relative_to(DEMO_RAW_DIR)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    train = raw / "MedChatZH" / "MedChatZH_train.json"
    lines = train.read_bytes().splitlines(keepends=True)
    lines[7] = b'{"instruction": "broken\n'
    train.write_bytes(b"".join(lines))
    messages = []
    for workers in (1, 2):
        with pytest.raises(ConversionError) as err:
            convert(raw, tmp_path / f"out{workers}", workers, chunk_bytes=300, strict=True)
        messages.append(str(err.value))
    assert messages[0] == messages[1] and "MedChatZH/MedChatZH_train.json:8: bad_json" in messages[0]
    assert not (tmp_path / "out2").exists() or not list((tmp_path / "out2").glob("*.jsonl"))


def test_bad_worker_count_is_one_line(tmp_path: Path, capsys):
    code = cli.main(["build", "--raw-dir", str(DEMO_RAW_DIR), "--out-dir", str(tmp_path), "--workers", "0"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: --workers must be at least 1, got 0"] or (len(err) == 1 and "--workers" in err[0])


@pytest.mark.parametrize("workers", [1, 2])
def test_one_progress_bar_for_the_whole_build(tmp_path: Path, monkeypatch, capsys, workers: int):
    # the demo's raw files, with webMedQA train as its upstream zip (the bar counts the zip's bytes, not the text's)
    import zipfile

    from converters import progress

    raw = tmp_path / "raw"
    shutil.copytree(DEMO_RAW_DIR, raw)
    text = raw / "webMedQA" / "medQA.train.txt"
    with zipfile.ZipFile(raw / "webMedQA" / "train.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(text, "medQA.train.txt")
    text.unlink()
    bars = []

    class Recorded(progress.tqdm):
        def close(self):
            if not any(bar is self for bar, _ in bars):
                bars.append((self, self.n))
            super().close()

    monkeypatch.setattr(progress, "tqdm", Recorded)
    monkeypatch.setattr(progress, "ENABLED", True)
    build(Options(raw_dir=raw, out_dir=tmp_path / "out", workers=workers, chunk_bytes=700))
    inputs = [p for p in raw.rglob("*") if p.is_file() and p.suffix in (".json", ".jsonl", ".txt", ".zip")]
    total = sum(p.stat().st_size for p in inputs)
    assert [(bar.desc, n, bar.total) for bar, n in bars] == [("converting", total, total)]
    frames = [frame for frame in capsys.readouterr().err.replace("\r", "\n").splitlines() if frame.strip()]
    assert frames[-1].startswith("converting: 100%") and all(frame.startswith("converting:") for frame in frames)
