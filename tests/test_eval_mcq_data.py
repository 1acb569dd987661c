"""CMMLU / C-Eval CSV reading and subject presets of `eval mcq` (no model needed)."""

from __future__ import annotations

import shutil
import zipfile
from collections import Counter
from pathlib import Path

import pytest

from eval.data.benchmarks import (
    EVAL_SPLIT,
    MEDICAL,
    PAPER,
    PAPER_COUNTS,
    SHIPPED_DIR,
    BenchmarkError,
    BenchmarkSource,
    parse_csv,
    resolve_subjects,
)

# Upstream sizes (datasets.md §6-7): a wrong file or a parsing slip changes them.
TEST_COUNTS = {
    "anatomy": 148,
    "clinical_knowledge": 237,
    "college_medicine": 273,
    "college_medical_statistics": 106,
    "genetics": 176,
    "nutrition": 145,
    "professional_medicine": 376,
    "traditional_chinese_medicine": 185,
    "virology": 169,
}
VAL_COUNTS = {"clinical_medicine": 22, "basic_medicine": 19, "physician": 49, "veterinary_medicine": 23}


def count(source: BenchmarkSource, spec: str) -> Counter[str]:
    totals: Counter[str] = Counter()
    for subject in resolve_subjects(spec, source):
        questions, _ = source.load(subject.benchmark, subject.subject, EVAL_SPLIT[subject.benchmark])
        totals[subject.benchmark] += len(questions)
    return totals


def test_shipped_files_have_upstream_sizes():
    source = BenchmarkSource()
    assert source.subjects("cmmlu", "test") == sorted(TEST_COUNTS)
    assert source.subjects("cmmlu", "dev") == sorted(TEST_COUNTS)
    assert source.subjects("ceval", "val") == sorted(VAL_COUNTS)
    assert source.subjects("ceval", "dev") == sorted(VAL_COUNTS)
    for subject, n in TEST_COUNTS.items():
        assert len(source.load("cmmlu", subject, "test")[0]) == n
        assert len(source.load("cmmlu", subject, "dev")[0]) == 5
    for subject, n in VAL_COUNTS.items():
        assert len(source.load("ceval", subject, "val")[0]) == n
        assert len(source.load("ceval", subject, "dev")[0]) == 5


def test_shipped_data_carries_license_note():
    note = (SHIPPED_DIR / "README.md").read_text(encoding="utf-8")
    assert "CC BY-NC-SA 4.0" in note
    assert "d6e7b716d8ac694f38969a6c0407437d1fded799" in note  # CMMLU commit
    assert "465ee8119aa489a41bee0b01b3c105a2f3dd137f" in note  # LLaMA-Factory commit holding ceval.zip


def test_paper_preset_is_1325_plus_90():
    totals = count(BenchmarkSource(), "paper")
    assert dict(totals) == PAPER_COUNTS == {"cmmlu": 1325, "ceval": 90}


def test_medical_preset_and_explicit_lists():
    source = BenchmarkSource()
    assert dict(count(source, "medical")) == {"cmmlu": sum(TEST_COUNTS.values()), "ceval": 90}
    assert {s.key for s in resolve_subjects("medical", source)} >= {f"cmmlu:{s}" for s in PAPER["cmmlu"]}
    assert len(MEDICAL["cmmlu"]) == 9
    chosen = resolve_subjects("ceval:physician, cmmlu:anatomy,anatomy", source)
    assert [s.key for s in chosen] == ["cmmlu:anatomy", "ceval:physician"]  # sorted, CMMLU first, deduplicated
    assert dict(count(source, "cmmlu:all,ceval:*")) == {"cmmlu": 1815, "ceval": 113}


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("cmmlu:surgery", "unknown subject cmmlu:surgery"),
        ("dentistry", "unknown subject 'dentistry'"),
        ("mmlu:anatomy", "unknown benchmark 'mmlu'"),
        ("high_school_biology", "in both CMMLU and C-Eval"),
        ("ceval:accountant", "unknown subject ceval:accountant"),  # a real subject, just not shipped
        (" , ", "no subjects"),
    ],
)
def test_unknown_subjects_fail_clearly(spec: str, needle: str):
    with pytest.raises(BenchmarkError, match=needle.replace("(", r"\(")):
        resolve_subjects(spec, BenchmarkSource())


def test_ceval_crlf_rows_with_embedded_lf():
    """C-Eval rows end in CRLF while quoted cells hold bare LF: cells keep the LF and lose no CR."""
    raw = (SHIPPED_DIR / "C-Eval/dev/clinical_medicine_dev.csv").read_bytes()
    assert b"\r\n" in raw
    questions = BenchmarkSource().load("ceval", "clinical_medicine", "dev")[0]
    assert [q.index for q in questions] == [0, 1, 2, 3, 4]
    assert questions[0].answer == "A" and questions[0].question.startswith("下列哪项不是急性心肌梗死")
    data = (
        "id,question,A,B,C,D,answer,explanation\r\n"
        '0,"第一行\n第二行____",甲,"乙\n乙2",丙,丁,B,"1. 解释\n2. 更多"\r\n'
        "1,问题二,a,b,c,d,D,无\r\n"
    ).encode()
    parsed = parse_csv(data, "x_dev.csv", "ceval", "x", "dev")
    assert [q.index for q in parsed] == [0, 1]
    assert parsed[0].question == "第一行\n第二行____"
    assert parsed[0].options == ("甲", "乙\n乙2", "丙", "丁")
    assert parsed[1].answer == "D"
    assert not any("\r" in cell for q in parsed for cell in (q.question, *q.options))


def test_cmmlu_unnamed_index_and_bom():
    data = "\ufeff,Question,A,B,C,D,Answer\n0,问,甲,乙,丙,丁,C\n7,问二,1,2,3,4,A\n".encode()
    parsed = parse_csv(data, "t.csv", "cmmlu", "t", "test")
    assert [(q.index, q.answer) for q in parsed] == [(0, "C"), (7, "A")]


def test_missing_column_names_file_and_column(tmp_path: Path):
    bad = tmp_path / "CMMLU/data/test"
    bad.mkdir(parents=True)
    (bad / "anatomy.csv").write_text(",Question,A,B,C,Answer\n0,q,a,b,c,A\n", encoding="utf-8")
    source = BenchmarkSource(tmp_path)
    with pytest.raises(BenchmarkError) as err:
        source.load("cmmlu", "anatomy", "test")
    assert "anatomy.csv" in str(err.value) and "missing column 'D'" in str(err.value)
    with pytest.raises(BenchmarkError, match=r"physician_val\.csv: missing column 'answer'"):
        parse_csv(b"id,question,A,B,C,D\r\n0,q,a,b,c,d\r\n", "val/physician_val.csv", "ceval", "physician", "val")
    with pytest.raises(BenchmarkError, match="row 1 has answer 'E'"):
        parse_csv(b",Question,A,B,C,D,Answer\n0,q,a,b,c,d,E\n", "t.csv", "cmmlu", "t", "test")


def test_full_copy_layout_and_ceval_zip(tmp_path: Path):
    """`--benchmarks DIR` takes an upstream-layout copy, with C-Eval as ceval-exam.zip, and reads the same rows."""
    shutil.copytree(SHIPPED_DIR / "CMMLU", tmp_path / "CMMLU")
    (tmp_path / "C-Eval").mkdir()
    with zipfile.ZipFile(tmp_path / "C-Eval/ceval-exam.zip", "w") as archive:
        for path in sorted((SHIPPED_DIR / "C-Eval").rglob("*.csv")):
            archive.write(path, path.relative_to(SHIPPED_DIR / "C-Eval").as_posix())
    copy = BenchmarkSource(tmp_path)
    assert copy.locations["ceval"].suffix == ".zip"
    assert dict(count(copy, "paper")) == PAPER_COUNTS
    shipped = BenchmarkSource()
    for subject in ("physician", "clinical_medicine"):
        for split in ("val", "dev"):
            assert copy.load("ceval", subject, split)[0] == shipped.load("ceval", subject, split)[0]
            assert copy.load("ceval", subject, split)[1]["sha256"] == shipped.load("ceval", subject, split)[1]["sha256"]


def test_missing_benchmark_folder(tmp_path: Path):
    with pytest.raises(BenchmarkError, match="benchmark folder not found"):
        BenchmarkSource(tmp_path / "nowhere")
    (tmp_path / "CMMLU/data/test").mkdir(parents=True)
    with pytest.raises(BenchmarkError, match=r"unknown subject cmmlu:anatomy: no test/anatomy\.csv"):
        resolve_subjects("paper", BenchmarkSource(tmp_path))
    with pytest.raises(BenchmarkError, match=r"no ceval data under .*ceval-exam\.zip"):
        resolve_subjects("ceval:physician", BenchmarkSource(tmp_path))


def test_xmedbench_is_read_as_shipped():
    from collections import Counter

    from eval.data.benchmarks import XMEDBENCH_SOURCES

    source = BenchmarkSource()
    subjects = resolve_subjects("xmedbench", source)
    assert sorted(s.subject for s in subjects) == sorted(XMEDBENCH_SOURCES)
    counts, options, multiple = {}, Counter(), Counter()
    ids = set()
    for subject in subjects:
        questions, info = source.load("xmedbench", subject.subject, "test")
        assert info["file"] == "XMedBench/zh.json"
        counts[subject.subject] = len(questions)
        options.update((subject.subject, len(q.options)) for q in questions)
        multiple[subject.subject] += sum(len(q.answer) > 1 for q in questions)
        ids.update(q.key for q in questions)
    assert counts == {"medqa-mcmle": 3426, "cmb-single": 2000, "cmexam": 2000, "cmmlu-medical": 1333}
    assert options[("cmexam", 4)] == 73 and options[("cmb-single", 5)] == 2000
    assert multiple == Counter({"cmexam": 62}) and len(ids) == 8759
    assert resolve_subjects("paper,xmedbench:cmexam", source)[-1].key == "xmedbench:cmexam"


def test_xmedbench_cmmlu_part_is_our_cmmlu_questions():
    """All 1,333 `cmmlu-medical` items are CMMLU test questions we ship, 843 of them among the paper's 1,325."""
    from eval.data.benchmarks import PAPER

    source = BenchmarkSource()
    ours = {}
    for subject in resolve_subjects("medical", source):
        if subject.benchmark == "cmmlu":
            questions, _ = source.load("cmmlu", subject.subject, "test")
            ours.update({(q.question, q.options): subject.subject for q in questions})
    xmed, _ = source.load("xmedbench", "cmmlu-medical", "test")
    matched = [ours.get((q.question, q.options)) for q in xmed]
    assert None not in matched
    assert sum(s in PAPER["cmmlu"] for s in matched) == 843
