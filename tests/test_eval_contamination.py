"""`python -m eval.run contamination`: planted copies of exam questions and test dialogues are found exactly (through
punctuation, full-width characters, embedding and history turns); shared stock phrases are not flagged; a test
dialogue whose reference reply alone recurs is `answer_only`, not a copied question; the report's clean column."""

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
    rows = [*planted.values(), *controls, record("plant-dialogue", dialogue["instruction"], dialogue["output"]),
            record("stock-answer", "我家孩子发烧了怎么办？", TEST[1]["output"])]
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
        entry = questions_flagged[key]
        assert entry["status"] == "dirty" and entry["match"] == "verbatim", entry
        assert [r["train_id"] for r in entry["records"]] == [rid], key
        assert entry["contamination"] == "input" and entry["sides"] == ["question"]  # no answer given: input only
        assert entry["overlap"] >= 0.9, entry
    total = result["benchmarks"]["ceval"]
    assert total["n"] == 71 and total["dirty"] == 5 and total["partly"] == 0 and total["unchecked"] == 0
    assert total["clean"] == 66 and total["dirty_share"] == pytest.approx(5 / 71)  # 49 + 22 questions
    assert sum(s["dirty"] for s in result["subjects"].values()) == 5


def test_test_dialogues_and_bad_training_lines(audit):
    result, _, _ = audit
    flagged = {f["id"]: f for f in result["flagged"]}
    insomnia = flagged["t-insomnia"]
    assert insomnia["status"] == "dirty" and insomnia["sides"] == ["question", "answer"]
    assert insomnia["records"] == [{"train_id": "plant-dialogue", "line": 8, "side": "question+answer",
                                    "span": insomnia["records"][0]["span"]}]  # fmt: skip
    assert insomnia["records"][0]["span"] in contamination.normalize(TEST[0]["instruction"])
    # the fever dialogue's reply recurs under another question: a stock answer, not a copied question
    fever = flagged["t-fever"]
    assert fever["status"] == "answer_only" and fever["sides"] == ["answer"], fever
    assert fever["records"][0]["train_id"] == "stock-answer" and fever["records"][0]["side"] == "answer"
    assert result["test_sources"]["webmedqa"]["dirty"] == 1
    assert result["test_sources"]["medchatzh"] == {"n": 1, "dirty": 0, "answer_only": 1, "clean": 0,
                                                   "unchecked": 0, "dirty_share": 0.0}  # fmt: skip
    assert result["train"]["records"] == 9 and result["train"]["skipped"] == {"bad_json": 1, "not_an_object": 1}
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


def test_normalize_segment_starts_and_hashes():
    import numpy as np

    from eval.contamination import hashing, text

    assert contamination.normalize("Ａ，b  Ｃ。１２３！") == "abc123"
    n = text.normalize_turns(["A. 卵巢\nB、前庭\ue000大腺", "（C）乳腺"])
    assert n.chars.tobytes().decode("utf-32-le") == "a卵巢b前庭大腺c乳腺"  # private-use U+E000 dropped, no separator
    assert n.turn_ends.tolist() == [8, 11]
    assert [i for i, s in enumerate(n.starts.tolist()) if s] == [0, 1, 3, 4, 6, 8, 9]
    a = hashing.ngrams(text.codepoints("abcdefghij"), 5)
    b = hashing.ngrams(text.codepoints("xxabcdefghij" + "y" * 50), 5)
    assert np.isin(a, b).all() and hashing.of_text(text.codepoints("abcde")) == a[0]  # the same wherever it is
    # labels and answer markers cut, their places kept: the copy's own lettering can be read back
    got = text.labelled("1. 女性生殖腺是\nA. 卵巢\nB．前庭大腺\n（C）前庭球\n(4) 乳腺\n答案：A")
    assert got.text == "女性生殖腺是卵巢前庭大腺前庭球乳腺"
    assert got.labels == {0: 0, 6: 0, 8: 1, 12: 2, 15: 3} and got.markers == [(17, (0,))]
    assert text.labelled("pH 7.4, 维生素A.").text == "ph74维生素a"  # a decimal and a word's letter stay


def _mcq_run(folder: Path, preds: list[dict], files: dict | None) -> Path:
    folder.mkdir()
    (folder / "run.json").write_text(json.dumps({"system": "MedAsst"}))
    benchmarks = {}
    for bench in sorted({p["id"].split(":", 1)[0] for p in preds}):
        mine = [p for p in preds if p["id"].startswith(bench + ":")]
        right = sum(p["correct"] for p in mine)
        benchmarks[bench] = {"accuracy": 100.0 * right / len(mine), "n": len(mine), "correct": right}
    overall = sum(b["accuracy"] for b in benchmarks.values()) / len(benchmarks)
    mcq = {"overall": overall, "benchmarks": benchmarks, "predictions": preds}
    if files is not None:
        mcq["protocol"] = {"files": files}
    (folder / "mcq.json").write_text(json.dumps(mcq))
    return folder


def _files(subjects: str) -> dict:
    source = BenchmarkSource()
    out = {}
    for subject in resolve_subjects(subjects, source):
        _, info = source.load(subject.benchmark, subject.subject, "val")
        out[f"{subject.key}:val"] = info
    return out


def test_report_table2_gains_clean_partly_dirty_columns(audit, tmp_path: Path):
    from eval import report

    _, planted, root = audit
    # right on every question except the five the training set holds: the clean accuracy is 100, dirty 0
    preds = [{"id": q.key, "answer": q.answer, "prediction": q.answer, "correct": q.key not in planted}
             for q in questions()]  # fmt: skip
    n = len(preds)
    run = _mcq_run(tmp_path / "medasst", preds, _files(SUBJECTS))
    request = report.ReportRequest(runs=(str(run),), output=tmp_path / "out", resamples=200,
                                   contamination=str(root / "out" / contamination.RESULT_FILE))  # fmt: skip
    row = report.run_report(request)["table2"][0]
    assert row["overall (clean) [95% CI]"] == f"100.00 [100.00, 100.00] n={n - 5}"
    assert row["dirty"] == "0.00 n=5" and row["partly"] == "—"
    assert row["dirty − clean [95% CI]"] == "-100.00 [-100.00, -100.00]"
    table = (tmp_path / "out" / "table2.md").read_text(encoding="utf-8")
    assert f"of the {n} questions asked, {n - 5} clean, 0 partly, 5 dirty, 0 unchecked, 0 uncovered" in table


def test_report_never_counts_an_uncovered_question_clean(audit, tmp_path: Path):
    from eval import report

    _, _, root = audit
    preds = [{"id": q.key, "answer": q.answer, "prediction": q.answer, "correct": True} for q in questions()]
    # another subject than the audit's (anatomy), and the audited subjects read from other CSVs (by sha256)
    preds.append({"id": "cmmlu:anatomy:test:0", "answer": "A", "prediction": "A", "correct": True})
    files = {k: v | {"sha256": "0" * 64} for k, v in _files(SUBJECTS).items()}
    run = _mcq_run(tmp_path / "medasst", preds, files)
    audit_path = str(root / "out" / contamination.RESULT_FILE)
    request = report.ReportRequest(runs=(str(run),), output=tmp_path / "out", resamples=50, contamination=audit_path)
    row = report.run_report(request)["table2"][0]
    assert row["overall (clean) [95% CI]"] == "—"  # nothing is clean: no question was covered by this audit
    table = (tmp_path / "out" / "table2.md").read_text(encoding="utf-8")
    assert f"0 clean, 0 partly, 0 dirty, 0 unchecked, {len(preds)} uncovered" in table


def test_report_refuses_an_audit_of_the_old_method(audit, tmp_path: Path):
    from eval import report
    from eval.common.files import InputFileError

    _, _, root = audit
    old = json.loads((root / "out" / contamination.RESULT_FILE).read_text(encoding="utf-8"))
    old["fingerprint"]["fields"]["method"]["version"] = 3
    path = tmp_path / "old.json"
    path.write_text(json.dumps(old, ensure_ascii=False), encoding="utf-8")
    preds = [{"id": q.key, "answer": q.answer, "prediction": q.answer, "correct": True} for q in questions()]
    run = _mcq_run(tmp_path / "medasst", preds, _files(SUBJECTS))
    request = report.ReportRequest(runs=(str(run),), output=tmp_path / "out", resamples=50, contamination=str(path))
    with pytest.raises(InputFileError, match="method version 3, this report reads version 4"):
        report.run_report(request)


def test_an_audit_of_the_old_method_is_refused_not_reused(audit, capsys):
    _, _, root = audit
    out = root / "out-old"
    out.mkdir()
    made = json.loads((root / "out" / contamination.RESULT_FILE).read_text(encoding="utf-8"))
    made["fingerprint"]["fields"]["method"]["version"] = 3
    (out / contamination.RESULT_FILE).write_text(json.dumps(made, ensure_ascii=False), encoding="utf-8")
    argv = ["contamination", "--train", str(root / "train.jsonl"), "--subjects", SUBJECTS, "--dataset", "t",
            "--dataset-dir", str(root), "--output", str(out)]  # fmt: skip
    assert eval_run.main(argv) == 2
    assert "method.version: 3 → 4" in capsys.readouterr().err


def test_workers_and_chunks_give_the_same_audit(audit, tmp_path: Path, monkeypatch):
    result, _, root = audit
    from eval.contamination import scan

    monkeypatch.setattr(scan, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(scan, "BATCH_LINES", 2)  # batches and chunks cut between the plants
    request = contamination.ContaminationRequest(output=tmp_path / "out", train=root / "train.jsonl",
                                                 subjects=SUBJECTS, dataset="t", dataset_dir=str(root),
                                                 workers=2)  # fmt: skip
    again = contamination.run(request)
    for key in ("flagged", "benchmarks", "subjects", "test_sources", "train", "unchecked", "shared_vignettes"):
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
    assert result["covered"]["xmedbench:cmb-single"]["n"] == 2000
