"""Table 2 a reviewer accepts: a CI per cell, the question-weighted overall beside the paper's, a mark where the
paper's value lies outside our CI, Holm-adjusted p-values; several seeds of one system aggregated into one row."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from test_eval_report import make_run

from eval import run as eval_run


def _table2(out: Path) -> dict[str, dict[str, str]]:
    return {r["system"]: r for r in csv.DictReader((out / "table2.csv").open(encoding="utf-8"))}


def test_table2_has_cis_a_weighted_overall_marks_and_holm(tmp_path: Path):
    runs = [make_run(tmp_path / "runs", "Qwen2-7B", 0.86), make_run(tmp_path / "runs", "MedAsst", 0.6)]
    out = tmp_path / "out"
    argv = ["report", "--runs", *map(str, runs), "--output", str(out), "--resamples", "200"]
    assert eval_run.main(argv) == 0
    rows = _table2(out)
    med = rows["MedAsst"]
    for col in ("cmmlu", "ceval", "overall", "weighted"):
        assert float(med[f"{col}_ci95_low"]) < float(med[col]) < float(med[f"{col}_ci95_high"]), col
    # C-Eval's 90 questions give a far wider interval than CMMLU's 1,325
    width = {c: float(med[f"{c}_ci95_high"]) - float(med[f"{c}_ci95_low"]) for c in ("cmmlu", "ceval")}
    assert width["ceval"] > 3 * width["cmmlu"]
    counts = json.loads((runs[1] / "mcq.json").read_text())["benchmarks"]
    pooled = 100 * (counts["cmmlu"]["correct"] + counts["ceval"]["correct"]) / 1415
    assert float(med["weighted"]) == pytest.approx(pooled, abs=1e-4)
    md = (out / "table2.md").read_text(encoding="utf-8")
    assert "| overall (per question) |" in md
    assert "88.32 †" in md  # the paper's MedAsst CMMLU value lies far outside a 0.6-skill run's CI
    qwen = rows["Qwen2-7B"]
    raw, adjusted = float(qwen["ceval_p_raw"]), float(qwen["ceval_p"])
    assert adjusted >= raw and "Holm-adjusted over the table's 4 tests" in md


def _seeded(root: Path, system: str, skill: float, seed: int) -> Path:
    folder = make_run(root / f"s{seed}", system, skill, seed=seed)
    (folder / "run.json").write_text(json.dumps({"system": system, "seed": seed}))
    return folder


def test_seeds_of_one_system_are_one_row_with_mean_sd_and_ci(tmp_path: Path):
    seeds = [_seeded(tmp_path, "MedAsst", skill, seed) for seed, skill in ((1, 0.80), (2, 0.84), (3, 0.88))]
    other = make_run(tmp_path / "q", "Qwen2-7B", 0.86)
    out = tmp_path / "out"
    argv = ["report", "--runs", *map(str, seeds), str(other), "--output", str(out), "--resamples", "100"]
    assert eval_run.main(argv) == 0
    med = _table2(out)["MedAsst"]
    singles = [json.loads((s / "mcq.json").read_text())["benchmarks"]["cmmlu"]["accuracy"] for s in seeds]
    assert float(med["cmmlu"]) == pytest.approx(sum(singles) / 3, abs=1e-4)
    assert med["seeds"] == "3" and "CMMLU" in med["sd over seeds"]
    assert float(med["cmmlu_ci95_low"]) < min(singles) or float(med["cmmlu_ci95_high"]) > max(singles)
    assert _table2(out)["Qwen2-7B"]["seeds"] == "1" and _table2(out)["Qwen2-7B"]["ceval_p"] != ""
    table3 = {r["system"]: r for r in csv.DictReader((out / "table3.csv").open(encoding="utf-8"))}
    assert table3["MedAsst"]["seeds"] == "3"
    assert "mean over their runs" in (out / "report.md").read_text(encoding="utf-8")


def test_two_folders_of_one_system_without_distinct_seeds_stay_an_error(tmp_path: Path, capsys):
    a, b = _seeded(tmp_path / "a", "MedAsst", 0.5, 1), _seeded(tmp_path / "b", "MedAsst", 0.5, 1)
    assert eval_run.main(["report", "--runs", str(a), str(b), "--output", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "two run folders name the system 'MedAsst'" in err[0] and "'seed'" in err[0]
