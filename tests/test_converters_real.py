"""Converters on byte-exact real upstream samples (tests/fixtures/converters/real, see SOURCES.md there)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from converters import cmtmedqa
from converters.clean import clean_record
from converters.readers import iter_json_array
from converters.records import Record, Skip

REAL = Path(__file__).parent / "fixtures" / "converters" / "real"


def _raw(tmp_path: Path, sample: str) -> Path:
    (tmp_path / "CMtMedQA").mkdir()
    shutil.copyfile(REAL / sample, tmp_path / "CMtMedQA" / "CMtMedQA_test.json")
    return tmp_path


def test_fixture_is_the_real_file() -> None:
    data = (REAL / "CMtMedQA_test.head50.json").read_bytes()
    assert len(data) == 111_351 and not data.startswith(b"\xef\xbb\xbf") and b"\r" not in data
    assert data.endswith(b"\n    }\n]")  # no trailing newline, as upstream


def test_cmtmedqa_dialogues_keep_history_in_order(tmp_path: Path) -> None:
    raw = _raw(tmp_path, "CMtMedQA_test.head50.json")
    upstream = json.loads((REAL / "CMtMedQA_test.head50.json").read_bytes())
    items = list(cmtmedqa.read(raw, "test"))
    assert len(items) == 50 and all(isinstance(r, Record) for r in items)
    for rec, obj in zip(items, upstream, strict=True):
        assert rec.id == f"cmtmedqa-test-{obj['id']}"
        assert rec.history == obj["history"]
        assert (rec.instruction, rec.output) == (obj["instruction"], obj["output"])
    first = items[0]
    assert first.id == "cmtmedqa-test-j4219" and len(first.history) == 3
    assert first.history[0][0].startswith("医生，我得了恶性乳腺癌中期")
    assert first.where == "CMtMedQA/CMtMedQA_test.json:2"


def test_cmtmedqa_safety_items_use_instruct_key_and_lose_leading_spaces(tmp_path: Path) -> None:
    raw = _raw(tmp_path, "CMtMedQA_test.tail5.json")
    upstream = json.loads((REAL / "CMtMedQA_test.tail5.json").read_bytes())
    assert all(set(o) == {"instruct", "output"} for o in upstream)
    items = [clean_record(r) for r in cmtmedqa.read(raw, "test")]
    assert [r.id for r in items] == [f"cmtmedqa-test-safety-{i}" for i in range(1, 6)]
    for rec, obj in zip(items, upstream, strict=True):
        assert isinstance(rec, Record) and rec.history == []
        assert rec.instruction == obj["instruct"].strip() and rec.output == obj["output"].strip()


def test_cmtmedqa_cleaning_keeps_every_real_dialogue(tmp_path: Path) -> None:
    raw = _raw(tmp_path, "CMtMedQA_test.head50.json")
    cleaned = [clean_record(r) for r in cmtmedqa.read(raw, "test")]
    assert not [c for c in cleaned if isinstance(c, Skip)]


def test_zhongjing_huatuo_array_reads_with_line_numbers() -> None:
    data = (REAL / "zhongjing_huatuo26M_test.head50.json").read_bytes()
    items = list(iter_json_array(data, lambda n: f"f:{n}"))
    assert len(items) == 50 and not [i for i in items if isinstance(i, Skip)]
    lines = data.decode().split("\n")
    for line, obj in items:
        assert lines[line - 1].strip() == "{"  # each element is located on the line that opens it
        assert set(obj) == {"id", "instruction", "input", "output"}


@pytest.mark.parametrize("sample", ["CMtMedQA_test.head50.json", "CMtMedQA_test.tail5.json"])
def test_truncating_a_real_file_keeps_every_complete_record(tmp_path: Path, sample: str) -> None:
    data = (REAL / sample).read_bytes()
    cut = data[: len(data) * 2 // 3]
    items = list(iter_json_array(cut, lambda n: f"f:{n}"))
    assert isinstance(items[-1], Skip) and items[-1].reason == "truncated_json"
    whole = json.loads(data)
    got = [obj for _line, obj in items[:-1]]
    assert got == whole[: len(got)] and len(got) >= 1
