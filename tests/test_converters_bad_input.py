"""The bad-input catalogue: every malformed record is a counted skip (or, with --strict, an error naming file:line)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from converters.pipeline import Options, build
from converters.records import ConversionError

GOOD = {"instruction": "头痛怎么办？", "input": "", "output": "注意休息。"}


def _write(root: Path, rel: str, data: bytes) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _line(obj: object) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode() + b"\n"


def _run(raw: Path, out: Path, source: str, strict: bool = False) -> dict:
    return build(Options(raw_dir=raw, out_dir=out, sources=(source,), strict=strict, max_bad_share=1.0))


# (source, raw file, bytes, the skip reasons expected in that split, kept records)
CASES = {
    "medchatzh_jsonl": (
        "medchatzh",
        "MedChatZH/MedChatZH_train.json",
        b"\xef\xbb\xbf"
        + _line(GOOD)  # BOM on the first line
        + _line({**GOOD, "instruction": "CRLF 行"}).replace(b"\n", b"\r\n")
        + b'{"instruction": "truncated", "out\n'
        + b'{"instruction": "\xff\xfe bad bytes", "input": "", "output": "x"}\n'
        + _line(["not", "an", "object"])
        + _line({**GOOD, "output": 42})
        + _line({"instruction": "no output"})
        + _line({**GOOD, "instruction": "nan 答案", "output": "nan"})
        + _line({**GOOD, "instruction": "空答案", "output": "  "})
        + _line({**GOOD, "instruction": "   "})
        + b"\n"
        + _line(GOOD),  # exact duplicate of line 1
        {
            "bad_json": 1,
            "bad_encoding": 1,
            "not_an_object": 1,
            "wrong_type": 1,
            "missing_field": 1,
            "empty_answer": 2,
            "empty_question": 1,
            "blank_line": 1,
            "duplicate": 1,
        },
        2,
    ),
    "huatuo_odd_lists": (
        "huatuo26m",
        "HuatuoGPT-sft-data-v1/HuatuoGPT_sft_data_v1.jsonl",
        _line({"data": ["问：q\n", "答：a", "问：dangling"]})
        + _line({"data": ["问：only question"]})
        + _line({"data": []})
        + _line({"data": "问：not a list"})
        + _line({"data": ["问：q", "问：q again"]})
        + _line({"data": ["问：q", 7]})
        + _line({"questions": [["q"]], "answers": ["a"]}),  # wrong file for this shape: no "data"
        {"unpaired_question": 1, "empty_question": 1, "wrong_type": 2, "bad_turns": 1, "missing_field": 1},
        1,
    ),
    "webmedqa_tsv": (
        "webmedqa",
        "webMedQA/medQA.train.txt",
        "内科\t1\t1\t问题一\t答案一\r\n".encode()
        + "内科\t0\t1\t问题一\t错误答案\n".encode()
        + "内科\t1\t2\t只有四列\n".encode()
        + "内科\tx\t3\t问题三\t答案三\n".encode()
        + "内科\t1\t1\t问题一\t第二个正例\n".encode()
        + "内科\t1\t4\t问题四\t".encode()
        + b"\xff\n"
        + "内科\t1\t5\t问题五\t\n".encode()
        + "内科\t1\t6\t\t答案六\n".encode(),
        {
            "negative_answer": 1,
            "short_line": 1,
            "bad_label": 1,
            "duplicate_qid": 1,
            "bad_encoding": 1,
            "empty_answer": 1,
            "empty_question": 1,
        },
        1,
    ),
    "cmtmedqa_array": (
        "cmtmedqa",
        "CMtMedQA/CMtMedQA.json",
        json.dumps(
            [
                {"id": "j1", "cate1": "nan", "cate2": "nan", **GOOD, "history": [["上一轮", "回答"]]},
                {"id": "j2", **GOOD, "history": [["只有一半"]]},
                {"id": "j3", **GOOD, "history": "not a list"},
                {"id": "j4", **GOOD, "history": [["", "空问题"]]},
                {"id": "j5", **GOOD, "instruction": ["list"]},
                "a string element",
                {"id": "j1", **GOOD, "history": [["上一轮", "回答"]]},  # same id and content
            ],
            ensure_ascii=False,
            indent=4,
        ).encode()[:-40],  # and the file is cut off inside the last element
        {"wrong_type": 3, "empty_history_turn": 1, "not_an_object": 1, "truncated_json": 1},
        1,
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_inputs_are_counted_by_reason(tmp_path: Path, case: str) -> None:
    source, rel, data, reasons, kept = CASES[case]
    split = "train"
    _write(tmp_path / "raw", rel, data)
    manifest = _run(tmp_path / "raw", tmp_path / "out", source)
    stats = manifest["sources"][source][split]
    assert stats["skipped"] == dict(sorted(reasons.items()))
    assert stats["written"] == kept
    assert stats["read"] == stats["written"] + sum(stats["skipped"].values())
    lines = (tmp_path / "out" / f"{source}_{split}.jsonl").read_bytes().splitlines()
    assert len(lines) == kept and all(json.loads(line)["source"] == source for line in lines)


@pytest.mark.parametrize(
    ("case", "where"),
    [
        ("medchatzh_jsonl", "MedChatZH/MedChatZH_train.json:3: bad_json"),
        ("huatuo_odd_lists", "HuatuoGPT-sft-data-v1/HuatuoGPT_sft_data_v1.jsonl:4: wrong_type"),
        ("webmedqa_tsv", "webMedQA/medQA.train.txt:3: short_line"),
        ("cmtmedqa_array", "CMtMedQA/CMtMedQA.json:"),
    ],
)
def test_strict_names_file_and_line_and_writes_nothing(tmp_path: Path, case: str, where: str) -> None:
    source, rel, data, _reasons, _kept = CASES[case]
    _write(tmp_path / "raw", rel, data)
    out = tmp_path / "out"
    with pytest.raises(ConversionError, match="missing"):  # --strict also refuses absent raw files
        _run(tmp_path / "raw", out, source, strict=True)
    # give the source its other split so only the bad record can fail
    other = {
        "medchatzh": ("MedChatZH/MedChatZH_valid.json", _line(GOOD)),
        "huatuo26m": ("huatuo_encyclopedia_qa/test_datasets.jsonl", _line({"questions": [["x"]], "answers": ["y"]})),
        "webmedqa": ("webMedQA/medQA.test.txt", "内科\t1\t9\tq\ta\n".encode()),
        "cmtmedqa": ("CMtMedQA/CMtMedQA_test.json", b"[]"),
    }[source]
    _write(tmp_path / "raw", *other)
    if source == "huatuo26m":
        _write(tmp_path / "raw", "huatuo_encyclopedia_qa/train_datasets.jsonl", b"")
    with pytest.raises(ConversionError) as err:
        _run(tmp_path / "raw", out, source, strict=True)
    assert where in str(err.value)
    assert not out.exists() or not [p for p in out.iterdir() if not p.name.startswith(".")]
    assert not out.exists() or not list(out.iterdir())  # no temp files left behind either
