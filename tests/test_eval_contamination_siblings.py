"""Siblings and XMedBench: A3/A4 questions share one case text; one planted copy flags that question, not its
siblings, and the benchmark's own shared vignettes are reported. The report keeps XMedBench out of Table 2's
`overall (clean)` (CMMLU and C-Eval only, as `overall`) and gives it its own clean rows."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from eval import contamination
from eval.contamination import items as itemsmod
from eval.data.benchmarks import EVAL_SPLIT, BenchmarkSource, resolve_subjects

SUBJECTS = "ceval:physician,cmmlu:clinical_knowledge,xmedbench:cmb-single"


def load() -> list:
    source = BenchmarkSource()
    out = []
    for subject in resolve_subjects(SUBJECTS, source):
        out += source.load(subject.benchmark, subject.subject, EVAL_SPLIT[subject.benchmark])[0]
    return out


def lf(q) -> dict:
    options = "\n".join(f"{c}. {o}" for c, o in zip("ABCDE", q.options, strict=False))
    return {"instruction": f"{q.question}\n{options}\n答案：", "output": q.answer}


@pytest.fixture(scope="module")
def audit(tmp_path_factory):
    questions = load()
    by_key = {q.key: q for q in questions}
    exams = [itemsmod.exam_item(q.key, f"{q.benchmark}:{q.subject}", q.question, q.options, q.answer)
             for q in questions]  # fmt: skip
    groups = [g["items"] for g in itemsmod.prepare(exams, contamination.DEFAULT_N)]
    rng = random.Random(24)
    picked = rng.sample(groups, 8)
    planted = [rng.choice(g) for g in picked]
    siblings = {k for g in picked for k in g if by_key[k].question != by_key[g[0]].question or k not in planted}
    siblings -= set(planted)
    # an identical copy of a planted question elsewhere in the benchmark is the same question, not a sibling
    siblings = {k for k in siblings if all(by_key[k].question + "".join(by_key[k].options)
                                           != by_key[p].question + "".join(by_key[p].options) for p in planted)}
    root = tmp_path_factory.mktemp("siblings")
    train = root / "train.jsonl"
    rows = [lf(by_key[k]) | {"id": f"plant-{i}"} for i, k in enumerate(planted)]
    train.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    request = contamination.ContaminationRequest(output=root / "out", train=train, subjects=SUBJECTS, dataset="")
    return contamination.run(request), planted, siblings, questions, root


def test_a_planted_question_flags_itself_not_its_siblings(audit):
    result, planted, siblings, _, _ = audit
    entries = {e["id"]: e for e in result["flagged"]}
    assert all(entries[k]["status"] == "dirty" for k in planted)
    assert siblings and not any(entries.get(k, {}).get("status") == "dirty" for k in siblings)
    # siblings whose case text was copied are `partly` (the case was seen), never a copy
    seen = [entries[k] for k in siblings if k in entries]
    assert seen and all(e["status"] == "partly" and e["reason"] in ("shared_vignette", "stem") for e in seen)
    assert any(set(planted) & set(v["items"]) for v in result["shared_vignettes"])


def _run(folder: Path, questions: list, correct) -> Path:
    source = BenchmarkSource()
    files = {}
    for subject in resolve_subjects(SUBJECTS, source):
        split = EVAL_SPLIT[subject.benchmark]
        files[f"{subject.key}:{split}"] = source.load(subject.benchmark, subject.subject, split)[1]
    preds = [{"id": q.key, "benchmark": q.benchmark, "correct": correct(q)} for q in questions]
    benches = {}
    for bench in ("cmmlu", "ceval", "xmedbench"):
        mine = [p for p in preds if p["benchmark"] == bench]
        benches[bench] = {"accuracy": 100.0 * sum(p["correct"] for p in mine) / len(mine), "n": len(mine)}
    folder.mkdir()
    (folder / "run.json").write_text(json.dumps({"system": "MedAsst"}))
    mcq = {"overall": (benches["cmmlu"]["accuracy"] + benches["ceval"]["accuracy"]) / 2, "benchmarks": benches,
           "predictions": preds, "subjects": {"xmedbench:cmb-single": {}}, "protocol": {"files": files}}  # fmt: skip
    (folder / "mcq.json").write_text(json.dumps(mcq))
    return folder


def test_overall_clean_is_cmmlu_and_ceval_only_and_xmedbench_has_its_own_clean_row(audit, tmp_path: Path):
    from eval import report

    result, _, _, questions, root = audit
    # CMMLU and C-Eval always right, XMedBench always wrong: overall (clean) stays 100 whatever XMedBench does
    run = _run(tmp_path / "medasst", questions, lambda q: q.benchmark != "xmedbench")
    request = report.ReportRequest(runs=(str(run),), output=tmp_path / "out", resamples=50,
                                   contamination=str(root / "out" / contamination.RESULT_FILE))  # fmt: skip
    made = report.run_report(request)
    clean = made["table2"][0]["overall (clean) [95% CI]"]
    assert clean.startswith("100.00 [100.00, 100.00]"), clean
    rows = {r["system"]: r for r in made["table_xmedbench"]}
    assert set(rows) == {"MedAsst", "MedAsst (clean)"}
    xmed = result["benchmarks"]["xmedbench"]
    assert rows["MedAsst (clean)"]["all"]["n"] == xmed["clean"] < rows["MedAsst"]["all"]["n"] == xmed["n"]
    assert rows["MedAsst (clean)"]["all"]["accuracy"] == 0.0
