"""`python -m eval.run report`: tables with the paper's values and p-values, Figure 4, input errors."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest

from eval import report
from eval import run as eval_run
from eval.metrics import stats
from eval.tables import paper_numbers as paper


def run_report(runs, output, **options) -> dict:
    return report.run_report(report.ReportRequest(runs=tuple(map(str, runs)), output=output, **options))


def make_run(root: Path, system: str, skill: float, n_gen: int = 60, mcq: bool = True, seed: int = 0) -> Path:
    """A run folder with the files `mcq` and `score` write; `skill` shifts its scores."""
    rng = random.Random(f"{system}:{seed}")
    folder = root / system.lower()
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"system": system}), encoding="utf-8")
    if mcq:
        preds, tally = [], {"cmmlu": [0, 0], "ceval": [0, 0]}
        for bench, n in (("cmmlu", 1325), ("ceval", 90)):  # the paper's question counts
            for i in range(n):
                ok = rng.random() < skill
                preds.append({"id": f"{bench}:anatomy:test:{i}", "answer": "A", "prediction": "A" if ok else "B",
                              "correct": ok})  # fmt: skip
                tally[bench][0] += ok
                tally[bench][1] += 1
        benchmarks = {b: {"accuracy": 100.0 * c / n, "n": n, "correct": c} for b, (c, n) in tally.items()}
        overall = (benchmarks["cmmlu"]["accuracy"] + benchmarks["ceval"]["accuracy"]) / 2
        (folder / "mcq.json").write_text(
            json.dumps({"overall": overall, "benchmarks": benchmarks, "subjects": {}, "predictions": preds})
        )
    rows = []
    for i in range(n_gen):
        base = 100 * skill * rng.random()
        rows.append({"id": f"x-{i}", "source": "webmedqa", "bleu-4": base / 10, "rouge-1": base / 3,
                     "rouge-2": base / 12, "rouge-l": base / 4})  # fmt: skip
    (folder / "scores_per_sample.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    means = {m: sum(r[m] for r in rows) / len(rows) for m in paper.TABLE3_COLUMNS}
    (folder / "scores.json").write_text(json.dumps({"n": n_gen, **means}))
    return folder


@pytest.fixture()
def five_runs(tmp_path: Path) -> list[Path]:
    skills = {"LlaMa-3-8B": 0.45, "Gemma-7B": 0.25, "Mistral-7B": 0.4, "Qwen2-7B": 0.86, "MedAsst": 0.88}
    return [make_run(tmp_path / "runs", s, k) for s, k in skills.items()]


def test_report_tables_and_figure(five_runs: list[Path], tmp_path: Path):
    out = tmp_path / "report"
    # shuffled on purpose: the tables follow the paper's row order
    argv = ["report", "--runs", *[str(p) for p in reversed(five_runs)], "--output", str(out), "--resamples", "200"]
    assert eval_run.main(argv) == 0
    for name in ("table2.md", "table2.csv", "table3.md", "table3.csv", "figure4.png", "report.md", "report.json"):
        assert (out / name).is_file(), name
    table3 = list(csv.DictReader((out / "table3.csv").open(encoding="utf-8")))
    assert [r["system"] for r in table3] == list(paper.SYSTEMS)
    medasst = table3[-1]
    assert float(medasst["bleu-4_paper"]) == 6.70 and medasst["bleu-4_p"] == ""
    gemma = table3[1]
    assert float(gemma["rouge-l_paper"]) == 17.56
    assert 0 < float(gemma["rouge-l_p"]) < 0.05  # a much weaker system differs significantly
    table2 = list(csv.DictReader((out / "table2.csv").open(encoding="utf-8")))
    assert [r["system"] for r in table2] == list(paper.SYSTEMS)
    assert float(table2[3]["overall_paper"]) == 87.40
    assert float(table2[1]["overall_p_raw"]) < 0.05  # Holm over 16 tests lifts 200 resamples' floor 1/201 above 0.05
    assert float(table2[1]["overall_p"]) >= float(table2[1]["overall_p_raw"])
    assert float(table2[3]["overall_p"]) > 0.05  # 0.86 vs 0.88 on 110 questions: not distinguishable
    md = (out / "table3.md").read_text(encoding="utf-8")
    assert "| BLEU-4 | BLEU-4 (paper) | p vs MedAsst |" in md
    assert (out / "figure4.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    info = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert info["figure4"]["labels"] == "zh"  # the pylopdf-fonts-zh-cn dependency ships a CJK font
    # deterministic: the same inputs give the same bytes
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    assert eval_run.main(argv) == 0
    assert {p.name: p.read_bytes() for p in out.iterdir()} == first


def test_report_generation_only_and_unknown_system(tmp_path: Path):
    runs = [make_run(tmp_path, "MedAsst", 0.8, mcq=False), make_run(tmp_path, "My-Model", 0.5, mcq=False)]
    result = run_report(runs, tmp_path / "out", resamples=100)
    assert result["systems"] == ["MedAsst", "My-Model"]
    assert "table2" not in result and not (tmp_path / "out" / "table2.md").exists()
    my = result["table3"][1]
    assert my["bleu-4_paper"] is None and my["bleu-4_p"] is not None


def test_no_reference_means_no_p_values(tmp_path: Path):
    runs = [make_run(tmp_path, "Gemma-7B", 0.3)]
    with pytest.warns(UserWarning, match="no run of the reference"):
        result = run_report(runs, tmp_path / "out", resamples=50)
    assert result["table3"][0]["bleu-4_p"] is None


def test_report_errors(tmp_path: Path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "run.json").write_text('{"system": "X"}')
    assert eval_run.main(["report", "--runs", str(empty), "--output", str(tmp_path / "o")]) == 2
    assert "neither mcq.json nor scores.json" in capsys.readouterr().err
    assert eval_run.main(["report", "--runs", str(tmp_path / "missing"), "--output", str(tmp_path / "o")]) == 2
    a = make_run(tmp_path / "a", "MedAsst", 0.5)
    b = make_run(tmp_path / "b", "MedAsst", 0.5)
    assert eval_run.main(["report", "--runs", str(a), str(b), "--output", str(tmp_path / "o")]) == 2
    assert "two run folders name the system 'MedAsst'" in capsys.readouterr().err


def test_paired_bootstrap_properties():
    same = [1.0, 0.0, 1.0, 1.0]
    assert stats.paired_bootstrap_p([same], [same]) == 1.0
    a = [1.0] * 50 + [0.0] * 50
    b = [0.0] * 50 + [0.0] * 50
    p = stats.paired_bootstrap_p([a], [b], resamples=500)
    assert p == pytest.approx(1 / 501)
    assert stats.paired_bootstrap_p([a], [b], resamples=500) == p  # fixed seed
    low, high = stats.bootstrap_ci([1.0, 2.0, 3.0, 4.0])[0]
    assert 1.0 <= low <= 2.5 <= high <= 4.0


def test_figure_falls_back_to_english_without_a_cjk_font(tmp_path: Path, monkeypatch):
    from eval.tables import figure

    monkeypatch.setattr(figure, "find_cjk_font", lambda: None)
    with pytest.warns(UserWarning, match="no CJK font"):
        info = figure.plot_table3(["A", "B"], ["bleu-4"], ["BLEU-4"], [[1.0], [None]], tmp_path / "f.png")
    assert info == {"font": None, "labels": "en"}
    assert (tmp_path / "f.png").stat().st_size > 0


def test_table3_names_each_rows_backend_and_truncation(tmp_path: Path):
    medasst = make_run(tmp_path, "MedAsst", 0.8)
    mistral = make_run(tmp_path, "Mistral-7B", 0.4)
    truncation = {"cutoff_len": 512, "n": 43, "prompts_cut": 20, "references_cut": 1, "records_cut": 20}
    (mistral / "generate_run.json").write_text(json.dumps({"backend": "hf", "truncation": truncation}))
    result = run_report([medasst, mistral], tmp_path / "out", resamples=50)
    rows = {row["system"]: row for row in result["table3"]}
    assert rows["Mistral-7B"]["backend"] == "hf"
    assert rows["Mistral-7B"]["cut at cutoff_len"] == "20 prompts, 1 refs of 43 at 512"
    assert rows["MedAsst"]["backend"].startswith("unrecorded")
    md = (tmp_path / "out" / "table3.md").read_text(encoding="utf-8")
    assert "| backend | cut at cutoff_len |" in md and "20 prompts, 1 refs of 43 at 512" in md
    text = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    assert "88.32 is not k/1,325" in text
    # the note is true: every other published CMMLU value is k/1,325, MedAsst's is not
    for system, values in paper.TABLE2.items():
        hits = [k for k in range(1326) if round(100 * k / 1325, 2) == values["cmmlu"]]
        assert bool(hits) == (system != "MedAsst"), system


def test_a_subset_of_questions_shows_no_paper_value(tmp_path: Path):
    medasst = make_run(tmp_path / "runs", "MedAsst", 0.8)
    qwen = make_run(tmp_path / "runs", "Qwen2-7B", 0.7)
    mcq_file = qwen / "mcq.json"
    subset = json.loads(mcq_file.read_text())
    subset["benchmarks"] = {"ceval": subset["benchmarks"]["ceval"]}  # only the 90 C-Eval questions
    subset["predictions"] = [p for p in subset["predictions"] if p["id"].startswith("ceval:")]
    subset["overall"] = subset["benchmarks"]["ceval"]["accuracy"]
    mcq_file.write_text(json.dumps(subset))
    result = run_report([medasst, qwen], tmp_path / "out", resamples=50)
    rows = {row["system"]: row for row in result["table2"]}
    assert rows["Qwen2-7B"]["overall_paper"] is None and rows["MedAsst"]["overall_paper"] == 89.72
    assert rows["Qwen2-7B"]["questions"] == "other (see note)"
    assert "**Rows on other questions than the paper's 1,415**" in (tmp_path / "out" / "table2.md").read_text()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda m, s: m["benchmarks"]["ceval"].update(n=0, accuracy=0.0), "has no questions (n = 0)"),
        (lambda m, s: m.update(overall=float("nan")), "overall = nan is not a finite number"),
        (lambda m, s: m["benchmarks"]["cmmlu"].update(accuracy="high"), "needs a finite accuracy"),
        (lambda m, s: s.update({"rouge-1": float("inf")}), "rouge-1 = inf is not a finite number"),
        (lambda m, s: s.update(n=0), "a score needs at least one prediction"),
    ],
)
def test_damaged_results_are_one_clear_error(tmp_path: Path, capsys, damage, message):
    folder = make_run(tmp_path / "runs", "MedAsst", 0.8)
    mcq_result = json.loads((folder / "mcq.json").read_text())
    scores = json.loads((folder / "scores.json").read_text())
    damage(mcq_result, scores)
    (folder / "mcq.json").write_text(json.dumps(mcq_result))  # json writes NaN / Infinity as Python does
    (folder / "scores.json").write_text(json.dumps(scores))
    assert eval_run.main(["report", "--runs", str(folder), "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_runs_sharing_no_item_say_so(tmp_path: Path):
    medasst = make_run(tmp_path / "runs", "MedAsst", 0.8)
    other = make_run(tmp_path / "runs", "Gemma-7B", 0.3, mcq=False)
    per_sample = other / "scores_per_sample.jsonl"
    per_sample.write_text(per_sample.read_text().replace('"x-', '"y-'))
    result = run_report([medasst, other], tmp_path / "out", resamples=50)
    assert result["table3"][0]["bleu-4_p"] is None
    assert (
        "No p-value for Gemma-7B: no test item in common with MedAsst." in (tmp_path / "out" / "table3.md").read_text()
    )


def test_report_files_are_written_as_a_set(five_runs: list[Path], tmp_path: Path, monkeypatch):
    import stat

    out = tmp_path / "out"
    run_report(five_runs, out, resamples=50)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    for path in out.iterdir():  # readable by the rest of the team, like the converters' outputs
        assert stat.S_IMODE(path.stat().st_mode) & 0o044 == 0o044, path

    def broken_plot(*args, **kwargs):
        raise OSError("disk full")

    (five_runs[0] / "run.json").write_text(json.dumps({"system": "LlaMa-3-8B", "changed": True}))
    monkeypatch.setattr("eval.tables.table3.plot_table3", broken_plot)
    with pytest.raises(OSError, match="disk full"):
        run_report(five_runs, out, resamples=50)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the old set, whole; no staging left


def test_scores_of_predictions_that_changed_since_are_refused(tmp_path: Path, capsys):
    """Regenerated predictions under old scores would put another run's numbers in Table 3."""
    import hashlib

    folder = make_run(tmp_path / "runs", "MedAsst", 0.8, mcq=False)
    predictions = folder / "generated_predictions.jsonl"
    predictions.write_text('{"id": "x-0", "predict": "多喝水", "label": "多休息"}\n', encoding="utf-8")
    scores = json.loads((folder / "scores.json").read_text())
    sha = hashlib.sha256(predictions.read_bytes()).hexdigest()
    scores |= {"predictions": str(predictions), "predictions_sha256": sha}
    (folder / "scores.json").write_text(json.dumps(scores))
    argv = ["report", "--runs", str(folder), "--output", str(tmp_path / "out"), "--resamples", "50"]
    assert eval_run.main(argv) == 0
    predictions.write_text('{"id": "x-0", "predict": "另一个模型的回答", "label": "多休息"}\n', encoding="utf-8")
    capsys.readouterr()
    assert eval_run.main(argv) == 2  # not the earlier report, reused
    (line,) = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
    assert "generated_predictions.jsonl changed after" in line and "rescore it" in line


def test_scores_of_predictions_kept_outside_the_run_folder_are_checked_too(tmp_path: Path, capsys):
    import hashlib

    folder = make_run(tmp_path / "runs", "MedAsst", 0.8, mcq=False)
    elsewhere = tmp_path / "generate-out" / "generated_predictions.jsonl"  # `score --predictions` of another folder
    elsewhere.parent.mkdir()
    elsewhere.write_text('{"id": "x-0", "predict": "多喝水", "label": "多休息"}\n', encoding="utf-8")
    scores = json.loads((folder / "scores.json").read_text())
    scores |= {"predictions": str(elsewhere), "predictions_sha256": hashlib.sha256(elsewhere.read_bytes()).hexdigest()}
    (folder / "scores.json").write_text(json.dumps(scores))
    argv = ["report", "--runs", str(folder), "--output", str(tmp_path / "out"), "--resamples", "50"]
    assert eval_run.main(argv) == 0
    elsewhere.write_text('{"id": "x-0", "predict": "重新生成的回答", "label": "多休息"}\n', encoding="utf-8")
    capsys.readouterr()
    assert eval_run.main(argv) == 2
    assert "changed after" in capsys.readouterr().err


def test_table3_is_also_shown_on_the_dialogues_no_systems_prompt_was_cut(tmp_path: Path):
    """Which prompts cutoff_len cuts depends on the tokenizer (Mistral's cut 20 of the demo's 43, Qwen2's 3): the
    second block compares every system on the same uncut inputs."""
    medasst = make_run(tmp_path, "MedAsst", 0.8)
    mistral = make_run(tmp_path, "Mistral-7B", 0.4)
    for folder, cut in ((medasst, ["x-0", "x-1"]), (mistral, [f"x-{i}" for i in range(1, 21)])):
        truncation = {"mode": "lf", "cutoff_len": 512, "n": 60, "prompts_cut": len(cut), "references_cut": 0,
                      "records_cut": len(cut), "ids_cut": cut, "prompt_ids_cut": cut}  # fmt: skip
        (folder / "generate_run.json").write_text(json.dumps({"backend": "hf", "truncation": truncation}))
    result = run_report([medasst, mistral], tmp_path / "out", resamples=50)
    uncut = {row["system"]: row for row in result["table3_uncut"]}
    assert uncut["MedAsst"]["n"] == uncut["Mistral-7B"]["n"] == 60 - 21
    per_sample = [json.loads(x) for x in (medasst / "scores_per_sample.jsonl").read_text().splitlines()]
    expected = sum(r["bleu-4"] for r in per_sample[21:]) / 39
    assert abs(uncut["MedAsst"]["bleu-4"] - expected) < 1e-9
    md = (tmp_path / "out" / "table3.md").read_text(encoding="utf-8")
    assert "On the 39 dialogues no system's prompt was cut (21 cut for at least one system)" in md
