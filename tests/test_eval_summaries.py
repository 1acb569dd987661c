"""Judge summaries a reviewer accepts: one win rate with a sign test, a length-controlled win rate that sees
through a length-biased judge, a Bradley–Terry ranking, and over-refusal shown with the safety rate."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from judge_stub import Endpoint, Stubs

from eval import report
from eval import run as eval_run
from eval.judging import refusal
from eval.metrics import preference, stats

COLUMNS = {"prompt": "instruction", "query": "input", "response": "output", "history": "history"}


@pytest.fixture
def serve():
    stubs = Stubs()
    yield stubs.start
    stubs.close()


def write_dataset(folder: Path, sets: dict[str, list[dict]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    info = {}
    for name, records in sets.items():
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records),
                                              "utf-8")  # fmt: skip
        info[name] = {"file_name": f"{name}.jsonl", "columns": COLUMNS}
    (folder / "dataset_info.json").write_text(json.dumps(info))
    return folder


def write_system(folder: Path, answers: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = [{"prompt": "", "predict": text, "label": "", "id": rid} for rid, text in answers.items()]
    (folder / "generated_predictions.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n"
                                                                for r in rows), "utf-8")  # fmt: skip
    return folder


def judge_argv(url: str, data: Path, dataset: str, systems: dict[str, Path], out: Path, *more: str) -> list[str]:
    args = ["judge", "--base-url", url, "--judge-model", "judge", "--dataset", dataset, "--dataset-dir", str(data),
            "--output", str(out), "--no-progress", "--max-retries", "0", "--concurrency", "8"]  # fmt: skip
    for name, folder in systems.items():
        args += ["--system", f"{name}={folder}"]
    return args + list(more)


_ANSWER = re.compile(r"\[助手([AB])的回答开始\]\n(.*?)\n\[助手\1的回答结束\]", re.S)


def length_biased_judge(prefers_longer: dict[str, bool]):
    """Prefers the longer answer on the items marked True, the shorter on the rest: per item, so the same verdict
    in both answer orders."""

    def reply(body: dict) -> str:
        text = body["messages"][-1]["content"]
        item = re.search(r"问题(\d+)号", text).group(1)
        answers = dict(_ANSWER.findall(text))
        longer = "A" if len(answers["A"]) > len(answers["B"]) else "B"
        pick = longer if prefers_longer[item] else ("B" if longer == "A" else "A")
        return f"理由。\n[[{pick}]]"

    return reply


def test_a_judge_that_prefers_the_longer_answer_is_length_controlled_to_half(serve, tmp_path: Path):
    """p = 0.8 for the longer answer, per item; the system is the longer one in 90 % of the pairs, shorter in
    the rest. Which items prefer the longer answer is a seeded shuffle within each sign, so exactly 80 % of each:
    that removes the sampling noise an independent draw per item would add (its sd of the LC rate is ~3 points
    at 1,200 items; test_length_control_with_independent_draws checks that case without a server)."""
    n = 200
    rng = np.random.default_rng(26)
    longer = np.arange(n) < int(0.9 * n)
    rng.shuffle(longer)
    prefers = np.zeros(n, dtype=bool)
    for sign in (True, False):
        idx = np.flatnonzero(longer == sign)
        rng.shuffle(idx)
        prefers[idx[: round(0.8 * idx.size)]] = True
    ref_len = rng.integers(250, 300, n)
    gap = rng.integers(150, 201, n)  # the same magnitudes on both signs: what tanh sees is symmetric
    records = [{"instruction": f"问题{i}号：头痛怎么办", "input": "", "output": "", "history": [], "id": f"q{i}"}
               for i in range(n)]  # fmt: skip
    data = write_dataset(tmp_path / "data", {"t": records})
    ref = {f"q{i}": "医" * int(ref_len[i]) for i in range(n)}
    own = {f"q{i}": "答" * int(ref_len[i] + (gap[i] if longer[i] else -gap[i])) for i in range(n)}
    systems = {"MedAsst": write_system(tmp_path / "m", ref), "Verbose": write_system(tmp_path / "v", own)}
    judge = length_biased_judge({str(i): bool(prefers[i]) for i in range(n)})
    out = tmp_path / "out"
    assert eval_run.main(judge_argv(serve(Endpoint(reply=judge)), data, "t", systems, out)) == 0
    result = json.loads((out / "judge.json").read_text())
    verbose = result["systems"]["Verbose"]
    assert verbose["win_rate"] > 0.70 and verbose["inconsistent"] == 0.0
    assert 0.45 <= verbose["lc_win_rate"] <= 0.55, verbose["lc_win_rate"]
    assert verbose["length_coefficient"] > 0  # the judge's taste for length is what the model absorbed
    assert verbose["sign_test_p"] < 0.001
    lo, hi = verbose["win_rate_ci95"]
    assert lo < verbose["win_rate"] < hi
    line = json.loads((out / "judgments.jsonl").read_text().splitlines()[0])
    assert len(line["length"]) == 2


def test_length_control_with_independent_draws():
    """The same judge with an independent coin per item: unbiased, at a size only the numbers (no server) allow."""
    rng = np.random.default_rng(0)
    n = 20_000
    longer = rng.random(n) < 0.9
    ref_len = rng.integers(40, 120, n)
    own_len = ref_len + np.where(longer, 1, -1) * rng.integers(150, 201, n)
    prefers = rng.random(n) < 0.8
    outcomes = (prefers == longer).astype(float)
    fit = preference.length_controlled(outcomes, own_len, ref_len, resamples=20, seed=0)
    assert outcomes.mean() > 0.70 and abs(fit["lc_win_rate"] - 0.5) < 0.02
    # no length effect: the LC rate is the raw rate
    flat = preference.length_controlled(outcomes, ref_len, ref_len, resamples=20, seed=0)
    assert flat["lc_win_rate"] == pytest.approx(outcomes.mean(), abs=1e-6) and flat["length_coefficient"] == 0


def test_three_systems_are_ranked_by_bradley_terry(serve, tmp_path: Path):
    records = [{"instruction": f"问题{i}号", "input": "", "output": "", "history": [], "id": f"q{i}"}
               for i in range(30)]  # fmt: skip
    data = write_dataset(tmp_path / "data", {"t": records})
    systems = {name: write_system(tmp_path / name, {r["id"]: "答" * k for r in records})
               for name, k in (("MedAsst", 10), ("Long", 40), ("Short", 2))}  # fmt: skip
    always_longer = length_biased_judge({str(i): True for i in range(30)})
    out = tmp_path / "out"
    assert eval_run.main(judge_argv(serve(Endpoint(reply=always_longer)), data, "t", systems, out)) == 0
    ranking = json.loads((out / "judge.json").read_text())["ranking"]
    assert list(ranking["systems"]) == ["Long", "MedAsst", "Short"]
    assert ranking["systems"]["MedAsst"]["beta"] == 0.0 and ranking["systems"]["Long"]["bt_score"] > 90
    rep = tmp_path / "rep"
    run = write_run(tmp_path / "run")
    assert eval_run.main(["report", "--runs", str(run), "--output", str(rep), "--judge", str(out)]) == 0
    md = (rep / "report.md").read_text()
    assert "Bradley–Terry score" in md and "| 1 [1–1] | Long |" in md and "length-controlled" in md


def write_run(folder: Path) -> Path:
    """The smallest run folder the report takes (the judge sections need one)."""
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"system": "MedAsst"}))
    (folder / "scores.json").write_text(json.dumps({"n": 1, "bleu-4": 1.0}))
    (folder / "scores_per_sample.jsonl").write_text(json.dumps({"id": "x", "bleu-4": 1.0}) + "\n")
    return folder


def safety_and_refusal_judge(body: dict) -> str:
    text = body["messages"][-1]["content"]
    return "理由。\n[[拒绝]]" if "[[未拒绝]]" in text else "理由。\n[[安全]]"


def test_a_system_that_refuses_everything_is_safe_and_over_refuses_both_in_the_report(serve, tmp_path: Path):
    benign = [{"instruction": f"良性问题{i}", "input": "", "output": "", "history": [], "id": rid}
              for i, rid in enumerate(refusal.benign_ids())]  # fmt: skip
    other = [{"instruction": "无关", "input": "", "output": "", "history": [], "id": "not-listed-1"}]
    harmful = [{"instruction": f"有害请求{i}", "input": "", "output": "", "history": [], "id": f"s{i}"}
               for i in range(5)]  # fmt: skip
    data = write_dataset(tmp_path / "data", {"medasst_test": benign + other, "medasst_safety_test": harmful})
    no = "抱歉，我无法回答这个问题。"
    test_answers = {r["id"]: no for r in benign + other}
    refuser = {"Refuser": write_system(tmp_path / "r", test_answers)}
    safety_out, refusal_out = tmp_path / "safety", tmp_path / "refusal"
    url = serve(Endpoint(reply=safety_and_refusal_judge))
    write_system(tmp_path / "rs", {r["id"]: no for r in harmful})
    assert eval_run.main(judge_argv(url, data, "medasst_safety_test", {"Refuser": tmp_path / "rs"}, safety_out,
                                    "--rubric", "safety")) == 0  # fmt: skip
    assert eval_run.main(judge_argv(url, data, "medasst_test", refuser, refusal_out, "--rubric", "refusal")) == 0
    judged = json.loads((refusal_out / "judge.json").read_text())
    summary = judged["systems"]["Refuser"]
    assert judged["sample"]["n"] == len(refusal.benign_ids())  # the listed prompts only
    assert summary["refusal_rate"] == 1.0 and summary["keyword_refusals"] == len(benign)
    safe = json.loads((safety_out / "judge.json").read_text())["systems"]["Refuser"]
    assert safe["safe_rate"] == 1.0
    rep = tmp_path / "rep"
    args = ["report", "--runs", str(write_run(tmp_path / "run")), "--output", str(rep), "--judge"]
    assert eval_run.main([*args, str(safety_out), str(refusal_out)]) == 0
    md = (rep / "report.md").read_text()
    assert "| Refuser | 100.0 [100.0, 100.0] | 19 | 19 | 19 | 100.0 [100.0, 100.0] |" in md  # over-refusal + safe
    assert "| Refuser | 100.0 [100.0, 100.0] | 0 | 5 | 100.0 |" in md  # the safety table shows over-refusal
    assert "A system that refuses everything is 100 % safe" in md


def test_an_old_judge_json_is_refused_by_the_report(tmp_path: Path, capsys):
    old = tmp_path / "judge.json"
    old.write_text(json.dumps({"rubric": {"name": "pairwise"}, "systems": {}, "complete": True}))
    with pytest.raises(Exception, match="older judge"):
        report.judge_tables.load(old)


@pytest.mark.parametrize(("reply", "verdict"), [("理由\n[[拒绝]]", True), ("[[未拒绝]]", False),
                                                ('{"refused": false}', False), ("[[拒绝]] 或 [[未拒绝]]", None),
                                                ("不知道", None)])  # fmt: skip
def test_refusal_verdicts(reply: str, verdict: bool | None):
    assert refusal.parse_refusal(reply) is verdict


def test_sign_test_wilson_and_holm():
    assert stats.sign_test_p(0, 0) == 1.0 and stats.sign_test_p(5, 5) == 1.0
    assert stats.sign_test_p(10, 0) == pytest.approx(2 / 1024)
    assert stats.sign_test_p(6000, 5000) < 1e-10  # no underflow at large n
    lo, hi = stats.wilson_ci(90, 90)
    assert hi == 1.0 and 0.95 < lo < 0.97
    assert stats.holm([0.01, None, 0.04, 0.03]) == pytest.approx([0.03, None, 0.06, 0.06])
    mean, std, (a, _) = stats.mean_std_ci([1.0, 2.0, 3.0])
    assert mean == 2.0 and std == 1.0 and a == pytest.approx(2 - 4.303 / 3**0.5, abs=1e-3)
