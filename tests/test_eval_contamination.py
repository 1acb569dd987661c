"""`python -m eval.run contamination`: planted copies of exam questions and test dialogues are found exactly (through
punctuation, full-width characters, embedding and history turns); shared stock phrases are not flagged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eval import contamination
from eval import run as eval_run
from eval.data.benchmarks import BenchmarkSource, resolve_subjects

SUBJECTS = "ceval:physician,ceval:clinical_medicine"
TEST = [
    {"instruction": "我最近总是失眠，晚上躺下两三个小时都睡不着，白天头昏脑涨，需要吃安眠药吗？", "input": "",
     "output": "长期失眠先查找原因，调整作息，必要时在医生指导下短期用药。", "history": [], "source": "webmedqa",
     "id": "t-insomnia"},
    {"instruction": "孩子三岁，发烧三十九度二，精神还可以，需要马上去医院吗？", "input": "",
     "output": "可先物理降温并观察精神状态，持续高热或精神差应及时就医。", "history": [], "source": "medchatzh",
     "id": "t-fever"},
]  # fmt: skip


def questions() -> list:
    source = BenchmarkSource()
    picked = []
    for subject in resolve_subjects(SUBJECTS, source):
        qs, _ = source.load(subject.benchmark, subject.subject, "val")
        picked += [q for q in qs if len(q.question) >= 20]
    return picked


def full_width(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if 0x21 <= ord(c) <= 0x7E else c for c in text)


def record(rid: str, instruction: str, output: str = "好的。", history: list | None = None) -> dict:
    return {"instruction": instruction, "input": "", "output": output, "history": history or [], "id": rid}


@pytest.fixture(scope="module")
def audit(tmp_path_factory) -> tuple[dict, dict[str, str], Path]:
    root = tmp_path_factory.mktemp("contamination")
    qs = questions()
    exact, punct, wide, embedded, in_history, partial, *_ = qs
    text = {q.key: q.question + "".join(q.options) for q in qs}
    planted = {
        exact.key: record("plant-exact", text[exact.key]),
        punct.key: record("plant-punct", text[punct.key].replace("，", ",").replace("。", "!") + "？？"),
        wide.key: record("plant-wide", full_width(text[wide.key])),
        embedded.key: record("plant-embedded", "请解释", "前面很长。" * 20 + text[embedded.key] + "后面也长。" * 20),
        in_history.key: record("plant-history", "谢谢医生", history=[[text[in_history.key], "好的。"]]),
    }  # fmt: skip
    controls = [
        record("control-stock-phrase", "以下是中国关于临床医学考试的单项选择题，请选出其中的正确答案。"),
        record("control-few-chars", partial.question[:8] + "，这个问题我不太懂。"),
    ]
    dialogue = TEST[0]
    rows = [*planted.values(), *controls, record("plant-dialogue", dialogue["instruction"], dialogue["output"])]
    rows.append(["not", "a record"])
    train = root / "train.jsonl"
    train.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows) + "{broken\n", "utf-8")
    (root / "test.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in TEST), "utf-8")
    columns = {"prompt": "instruction", "query": "input", "response": "output", "history": "history"}
    (root / "dataset_info.json").write_text(json.dumps({"t": {"file_name": "test.jsonl", "columns": columns}}))
    out = root / "out"
    argv = ["contamination", "--train", str(train), "--subjects", SUBJECTS, "--dataset", "t",
            "--dataset-dir", str(root), "--output", str(out)]  # fmt: skip
    assert eval_run.main(argv) == 0
    result = json.loads((out / contamination.RESULT_FILE).read_text(encoding="utf-8"))
    return result, {key: r["id"] for key, r in planted.items()}, root


def test_planted_questions_are_found_exactly_and_controls_are_not(audit):
    result, planted, _ = audit
    flagged = {f["id"]: f for f in result["flagged"]}
    questions_flagged = {k: v for k, v in flagged.items() if k.startswith("ceval:")}
    assert set(questions_flagged) == set(planted)  # every plant, and nothing else (the controls included)
    for key, rid in planted.items():
        assert questions_flagged[key]["train_id"] == rid, key
        assert questions_flagged[key]["overlap"] >= 0.9, questions_flagged[key]
    total = result["benchmarks"]["ceval"]
    assert total == {"n": 71, "flagged": 5, "too_short": 0, "share": pytest.approx(5 / 71)}  # 49 + 22 questions
    assert sum(s["flagged"] for s in result["subjects"].values()) == 5


def test_test_dialogues_and_bad_training_lines(audit):
    result, _, _ = audit
    flagged = {f["id"]: f for f in result["flagged"]}
    assert flagged["t-insomnia"]["train_id"] == "plant-dialogue" and "t-fever" not in flagged
    assert result["test_sources"]["webmedqa"] == {"n": 1, "flagged": 1, "too_short": 0, "share": 1.0}
    assert result["test_sources"]["medchatzh"]["flagged"] == 0
    assert result["train"]["records"] == 8 and result["train"]["skipped"] == {"bad_json": 1, "not_an_object": 1}
    assert result["method"]["n"] == 13 and result["fingerprint"]["fields"]["method"]["threshold"] == 0.5


def test_a_rerun_is_reused_and_another_training_set_refused(audit, capsys):
    _, _, root = audit
    out = root / "out"
    argv = ["contamination", "--train", str(root / "train.jsonl"), "--subjects", SUBJECTS, "--dataset", "t",
            "--dataset-dir", str(root), "--output", str(out)]  # fmt: skip
    before = (out / contamination.RESULT_FILE).read_bytes()
    assert eval_run.main(argv) == 0 and "(up to date, reused)" in capsys.readouterr().out
    other = root / "other.jsonl"
    other.write_text(json.dumps(record("x", "别的训练数据"), ensure_ascii=False) + "\n", "utf-8")
    argv[argv.index(str(root / "train.jsonl"))] = str(other)
    assert eval_run.main(argv) == 2
    assert "train_sha256" in capsys.readouterr().err
    assert (out / contamination.RESULT_FILE).read_bytes() == before


def test_normalize_and_window_hashes():
    assert contamination.normalize("Ａ，b  Ｃ。１２３！") == "abc123"
    import numpy as np

    text = "abcdefgh" + contamination.TURN_END + "ijklmnop"
    h, starts = contamination.window_hashes(contamination._codepoints(text), 5)
    assert list(starts) == [0, 1, 2, 3, 9, 10, 11, 12]  # no window crosses the separator
    again, _ = contamination.window_hashes(contamination._codepoints("xxabcdefgh"), 5)
    assert np.isin(h[:4], again).all()  # the same characters hash the same wherever they are


def test_report_table2_gains_a_clean_column(audit, tmp_path: Path):
    from eval import report

    _, planted, root = audit
    run = tmp_path / "medasst"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"system": "MedAsst"}))
    # right on every question except the five the training set holds: the clean accuracy is 100
    preds = [{"id": q.key, "answer": q.answer, "prediction": q.answer, "correct": q.key not in planted}
             for q in questions()]  # fmt: skip
    n = len(preds)
    accuracy = 100.0 * (n - len(planted)) / n
    benchmarks = {"ceval": {"accuracy": accuracy, "n": n, "correct": n - len(planted)}}
    (run / "mcq.json").write_text(json.dumps({"overall": accuracy, "benchmarks": benchmarks, "predictions": preds}))
    request = report.ReportRequest(runs=(str(run),), output=tmp_path / "out", resamples=200,
                                   contamination=str(root / "out" / contamination.RESULT_FILE))  # fmt: skip
    rows = report.run_report(request)["table2"]
    assert rows[0]["overall (clean) [95% CI]"] == f"100.00 [100.00, 100.00] n={n - 5}"
    table = (tmp_path / "out" / "table2.md").read_text(encoding="utf-8")
    assert f"**clean**: accuracy on the questions the contamination audit did not flag (5 of the {n} asked" in table


def test_workers_and_chunks_give_the_same_audit(audit, tmp_path: Path, monkeypatch):
    result, _, root = audit
    monkeypatch.setattr(contamination, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(contamination, "BATCH_LINES", 2)  # batches and chunks cut between the plants
    request = contamination.ContaminationRequest(output=tmp_path / "out", train=root / "train.jsonl",
                                                 subjects=SUBJECTS, dataset="t", dataset_dir=str(root),
                                                 workers=2)  # fmt: skip
    again = contamination.run(request)
    for key in ("flagged", "benchmarks", "subjects", "test_sources", "train"):
        if key == "train":
            assert again[key]["records"] == result[key]["records"] and again[key]["skipped"] == result[key]["skipped"]
        else:
            assert again[key] == result[key], key


def test_the_audit_covers_xmedbench(tmp_path: Path):
    source = BenchmarkSource()
    questions_, _ = source.load("xmedbench", "cmb-single", "test")
    planted = questions_[10]
    train = tmp_path / "train.jsonl"
    text = planted.question + "".join(planted.options)
    train.write_text(json.dumps(record("plant-xmed", "请看这道题", text), ensure_ascii=False) + "\n", "utf-8")
    request = contamination.ContaminationRequest(output=tmp_path / "out", train=train, subjects="xmedbench:cmb-single",
                                                 dataset="")  # fmt: skip
    result = contamination.run(request)
    assert [f["id"] for f in result["flagged"]] == [planted.key] == ["xmedbench:cmb-single:10"]
    assert result["benchmarks"]["xmedbench"]["n"] == 2000 and result["test_sources"] == {}
