"""Each source's upstream format and quirks (datasets.md §1–4), on hand-written files in the real layout."""

from __future__ import annotations

import io
import json
import logging
import zipfile
from pathlib import Path

from converters import huatuo26m, medchatzh, webmedqa
from converters.clean import clean_answer, clean_question, clean_record, normalise_question
from converters.records import Record, Skip


def _write(root: Path, rel: str, data: bytes | str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def _jsonl(rows: list) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def _kept(items: list) -> list[Record]:
    return [c for c in (clean_record(i) if isinstance(i, Record) else i for i in items) if isinstance(c, Record)]


def test_medchatzh_is_json_lines_despite_json_suffix(tmp_path: Path) -> None:
    rows = [
        {"instruction": "血hcg阴性会宫外孕吗", "input": "", "output": "异常妊娠过程…"},
        {
            "instruction": "慢性病的发病原理是什么？慢性病，发病原理",
            "input": "",
            "output": "应避免长时间站立\n2. 弹力支持",
        },
        {"instruction": "空答案", "input": "", "output": ""},
    ]
    _write(tmp_path, "MedChatZH/MedChatZH_train.json", _jsonl(rows))
    items = list(medchatzh.read(tmp_path, "train"))
    assert [i.id for i in items] == ["medchatzh-train-1", "medchatzh-train-2", "medchatzh-train-3"]
    cleaned = [clean_record(i) for i in items]
    assert cleaned[1].output == "应避免长时间站立\n2. 弹力支持"  # mangled lists are kept, not "repaired"
    assert isinstance(cleaned[2], Skip) and cleaned[2].reason == "empty_answer"


def test_medchatzh_valid_is_the_test_split(tmp_path: Path) -> None:
    _write(tmp_path, "MedChatZH/MedChatZH_valid.json", _jsonl([{"instruction": "q", "input": "", "output": "a"}]))
    assert [r.id for r in medchatzh.read(tmp_path, "test")] == ["medchatzh-test-1"]
    assert list(medchatzh.read(tmp_path, "train")) == []


def test_huatuo_encyclopedia_takes_first_question_of_nested_list(tmp_path: Path) -> None:
    rows = [
        {"questions": [["曲匹地尔片的用法用量", "曲匹地尔片怎么吃"]], "answers": ["注意:本文只供参考。<br/>口服。"]},
        {"questions": ["平铺的问题"], "answers": "字符串答案"},  # huatuo26M-testdatasets stores plain strings
    ]
    _write(tmp_path, "huatuo_encyclopedia_qa/test_datasets.jsonl", _jsonl(rows))
    got = _kept(list(huatuo26m.read(tmp_path, "test")))
    assert [(r.instruction, r.output) for r in got] == [
        ("曲匹地尔片的用法用量", "注意:本文只供参考。\n口服。"),
        ("平铺的问题", "字符串答案"),
    ]
    assert got[0].id == "huatuo26m-test-encyclopedia-1"


def test_huatuogpt_sft_multi_turn_prefixes_and_dangling_question(tmp_path: Path) -> None:
    rows = [
        {"data": ["问：头痛怎么办？\n", "答：注意休息。"]},
        {"data": ["问：感冒了怎么办？\n", "答：多喝水。", "问:要吃药吗？\n", "答:对症用药。"]},
        {"data": ["问：一个问题\n", "答：一个回答", "问：没有回答的问题\n"]},
        {"data": ["问：只有问题\n"]},
        {"data": ["答：顺序反了", "问：问题"]},
    ]
    _write(tmp_path, "HuatuoGPT-sft-data-v1/HuatuoGPT_sft_data_v1.jsonl", _jsonl(rows))
    items = list(huatuo26m.read(tmp_path, "train"))
    recs = [clean_record(i) if isinstance(i, Record) else i for i in items]
    assert (recs[0].instruction, recs[0].output, recs[0].history) == ("头痛怎么办？", "注意休息。", [])
    assert recs[1].history == [["感冒了怎么办？", "多喝水。"]]
    assert (recs[1].instruction, recs[1].output) == ("要吃药吗？", "对症用药。")
    assert recs[2].repaired == "dropped_unanswered_last_question" and recs[2].output == "一个回答"
    assert [recs[3].reason, recs[4].reason] == ["unpaired_question", "bad_turns"]
    assert recs[0].id == "huatuo26m-train-sft-1"


def test_huatuo_train_reads_both_files_encyclopedia_first(tmp_path: Path) -> None:
    _write(
        tmp_path, "huatuo_encyclopedia_qa/train_datasets.jsonl", _jsonl([{"questions": [["q1"]], "answers": ["a1"]}])
    )
    _write(tmp_path, "HuatuoGPT-sft-data-v1/HuatuoGPT_sft_data_v1.jsonl", _jsonl([{"data": ["问：q2", "答：a2"]}]))
    assert [r.instruction for r in huatuo26m.read(tmp_path, "train")] == ["q1", "问：q2"]


WEB_LINES = (
    "内科\t0\t21166878\t女性荷尔蒙分泌不平衡怎么办？\t别人的答案\n"
    "内科\t1\t21166878\t女性荷尔蒙分泌不平衡怎么办？\t您还是需要慢慢调养的，祝您身体健康！\n"
    '外科\t1\t21166879\t"引号开头的问题\t答案里也有"引号\n'
    '外科\t0\t21166879\t"引号开头的问题\t另一个答案\n'
)


def test_webmedqa_keeps_label_1_and_never_uses_csv_quoting(tmp_path: Path) -> None:
    _write(tmp_path, "webMedQA/medQA.train.txt", WEB_LINES)
    items = list(webmedqa.read(tmp_path, "train"))
    recs = [i for i in items if isinstance(i, Record)]
    assert [(r.id, r.instruction, r.output) for r in recs] == [
        ("webmedqa-train-21166878", "女性荷尔蒙分泌不平衡怎么办？", "您还是需要慢慢调养的，祝您身体健康！"),
        ("webmedqa-train-21166879", '"引号开头的问题', '答案里也有"引号'),
    ]
    assert [i.reason for i in items if isinstance(i, Skip)] == ["negative_answer", "negative_answer"]


def _zip(members: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, text in members.items():
            zf.writestr(name, text)
    return buf.getvalue()


def test_webmedqa_reads_the_upstream_zip(tmp_path: Path) -> None:
    _write(tmp_path, "webMedQA/test.zip", _zip({"medQA.test.txt": WEB_LINES}))
    recs = [i for i in webmedqa.read(tmp_path, "test") if isinstance(i, Record)]
    assert len(recs) == 2 and recs[0].where == "webMedQA/test.zip/medQA.test.txt:2"


def test_lfs_pointer_is_not_a_present_raw_file(tmp_path: Path, caplog) -> None:
    pointer = (
        "version https://git-lfs.github.com/spec/v1\n"
        "oid sha256:601a21b9769356f04ae43b88eec7e4f77ea9d2fa75204c046171b18426846892\nsize 59919275\n"
    )
    _write(tmp_path, "webMedQA/train.zip", pointer)
    _write(tmp_path, "MedChatZH/MedChatZH_train.json", pointer)
    with caplog.at_level(logging.WARNING, logger="converters"):
        assert webmedqa.inputs(tmp_path, "train") == [None]  # a pointer is not a present raw file
        assert list(webmedqa.read(tmp_path, "train")) == []
        assert medchatzh.inputs(tmp_path, "train") == [None]
    warned = [r.message for r in caplog.records if "Git LFS pointer" in r.message]
    assert any("webMedQA/train.zip" in m and "git lfs pull" in m for m in warned)
    assert any("MedChatZH/MedChatZH_train.json" in m for m in warned)


def test_cleaning_rules() -> None:
    assert clean_question("  问：头痛怎么办？\r\n") == "头痛怎么办？"
    assert clean_answer("答:  建议休息<br>多喝水<BR />再观察</br>") == "建议休息\n多喝水\n再观察"
    assert clean_answer("nan") == "" and clean_answer("  ") == ""
    assert clean_answer("回答：问：不是前缀") == "回答：问：不是前缀"  # only a leading 答 prefix is framing
    assert clean_text_keeps_inner_whitespace()
    assert normalise_question("Ｈｂ高怎么办？ ") == normalise_question("hb高,怎么办")


def clean_text_keeps_inner_whitespace() -> bool:
    return clean_answer(" 第一行\n\n第二行 ") == "第一行\n\n第二行"
