"""`build --exclude`: the training records a contamination audit flagged are left out and counted by reason;
the test splits never change; a file that cannot say which records it means is one line."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

from converters.__main__ import main
from converters.pipeline import Options, build
from medasst.facts import DEMO_RAW_DIR


def _ids(path: Path) -> list[str]:
    return [json.loads(line)["id"] for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("plain")
    build(Options(raw_dir=DEMO_RAW_DIR, out_dir=out))
    return out


def _audit(train_ids: list[str], test_id: str) -> dict:
    """contamination.json's shape (eval.run contamination): flagged items with the training records that match."""
    return {"flagged": [
        {"id": "cmmlu:anatomy:test:3", "status": "dirty", "contamination": "input-and-label",
         "records": [{"train_id": train_ids[0], "line": 1, "side": "question+answer", "span": "…"},
                     {"train_id": train_ids[1], "line": 2, "side": "question", "span": "…"}], "records_total": 2},
        {"id": "ceval:physician:val:7", "status": "partly", "reason": "near",
         "records": [{"train_id": train_ids[1], "line": 2, "side": "question", "score": 0.91}]},
        {"id": test_id, "status": "dirty", "records": [{"train_id": train_ids[2], "line": 9, "side": "question"}],
         "records_total": 1},
    ]}  # fmt: skip


@pytest.mark.parametrize("workers", [1, 2])
def test_flagged_training_records_are_left_out_and_counted_by_reason(plain: Path, tmp_path: Path, workers: int):
    train_ids = _ids(plain / "medasst_train.jsonl")
    chosen = [train_ids[0], train_ids[40], train_ids[-1]]
    audit = tmp_path / "contamination.json"
    audit.write_text(json.dumps(_audit(chosen, _ids(plain / "medasst_test.jsonl")[0])), encoding="utf-8")
    out = tmp_path / "out"
    manifest = build(Options(raw_dir=DEMO_RAW_DIR, out_dir=out, exclude=audit, workers=workers, chunk_bytes=500))
    # exactly those: the demo's MedChatZH file repeats its first record later, and that copy stays dropped as a
    # duplicate (leaving a flagged record out must not let an identical one through in its place)
    assert _ids(out / "medasst_train.jsonl") == [i for i in train_ids if i not in chosen]
    for name in ("medasst_test.jsonl", "medasst_safety_test.jsonl"):  # the benchmark is never touched
        assert (out / name).read_bytes() == (plain / name).read_bytes()
    excluded = {}
    for entry in manifest["sources"].values():
        assert "excluded" not in (entry.get("test") or {}).get("skipped", {})
        for reason, n in (entry.get("train") or {}).get("excluded", {}).items():
            excluded[reason] = excluded.get(reason, 0) + n
    # a record behind a verbatim copy and a near one counts as the copy
    assert excluded == {"dirty:input-and-label": 2, "dirty": 1}
    described = manifest["options"]["exclude"]
    assert described["file"] == "contamination.json" and described["ids"] == 3 and len(described["sha256"]) == 64


def test_a_list_of_ids_and_unmatched_ids(plain: Path, tmp_path: Path, caplog):
    train_ids = _ids(plain / "medasst_train.jsonl")
    listed = tmp_path / "ids.txt"
    listed.write_text(f"# ids to drop\n{train_ids[5]}\n\nno-such-record\n", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="converters"):
        manifest = build(Options(raw_dir=DEMO_RAW_DIR, out_dir=tmp_path / "a", exclude=listed))
    assert train_ids[5] not in _ids(tmp_path / "a" / "medasst_train.jsonl")
    assert manifest["options"]["exclude"]["by_reason"] == {"listed": 2}
    assert any("1 of its 2 ids match no training record" in r.getMessage() for r in caplog.records)
    as_json = tmp_path / "ids.json"
    as_json.write_text(json.dumps([train_ids[5]]), encoding="utf-8")
    build(Options(raw_dir=DEMO_RAW_DIR, out_dir=tmp_path / "b", exclude=as_json))
    train = "medasst_train.jsonl"
    assert (tmp_path / "b" / train).read_bytes() == (tmp_path / "a" / train).read_bytes()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "file not found"),
        ("folder", "is a folder"),
        ('{"flagged": [', "not valid JSON"),
        ('{"items": []}', "neither a contamination.json"),
        ('{"flagged": [{"id": "x", "status": "dirty"}]}', "has no 'records' list"),
        ('{"flagged": [{"id": "x", "status": "dirty", "records": [{"line": 3}]}]}', "without a 'train_id'"),
        ('{"flagged": [{"id": "x", "status": "dirty", "records": [{"train_id": "a"}], "records_total": 5}]}',
         "4 not named"),
        (b"\xff\xfe\x00i\x00d", "not UTF-8"),
    ],
)
def test_an_exclusion_file_that_cannot_be_used_is_one_line(tmp_path: Path, capsys, content, message):
    path = tmp_path / "contamination.json"
    if content == "folder":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content, encoding="utf-8")
    raw = tmp_path / "raw"
    shutil.copytree(DEMO_RAW_DIR / "webMedQA", raw / "webMedQA")
    assert main(["build", "--raw-dir", str(raw), "--out-dir", str(tmp_path / "out"), "--exclude", str(path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (line,) = [x for x in err.splitlines() if x.startswith("error:")]
    assert message in line
    assert not (tmp_path / "out").exists()
