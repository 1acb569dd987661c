"""`eval.run judge` through a real `llamafactory-cli api` server on 127.0.0.1, started and stopped by the tests.

Two servers: a random tiny Qwen2 (its replies cannot be read as verdicts: counted, no crash) and the same model
with an adapter that the real MedAsst recipe taught to reply "A" to every judge prompt (position bias made
absolute: once both orders are judged, every item must come out a tie). The taught server also runs a judge
killed half-way: the rerun repeats no completed request, counted in the server's own request log.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from lfcli import REPO_ROOT, adapter_factory
from servers import free_port, lf_server

from eval.judging import prompts as jp

pytestmark = pytest.mark.slow

DATASET = "medasst_demo_test"
ITEMS = 6
JUDGE_REPLY = "A"
REQUEST_LOG_LINE = "==== request ===="  # LLaMA-Factory's API logs every request it serves (API_VERBOSE, default on)


def demo_records() -> list[dict]:
    path = REPO_ROOT / "demo" / "data" / "medasst_test.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def write_system(folder: Path, answers: dict[str, str]) -> Path:
    """A generate output folder: generated_predictions.jsonl rows as `generate` writes them (ids included)."""
    folder.mkdir(parents=True)
    rows = [{"prompt": "", "predict": text, "label": "", "id": rid} for rid, text in answers.items()]
    (folder / "generated_predictions.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )
    return folder


@pytest.fixture(scope="module")
def systems(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    records = demo_records()[:ITEMS]
    root = tmp_path_factory.mktemp("judge-systems")
    return {
        "medasst": write_system(root / "medasst", {r["id"]: r["output"] for r in records}),
        "baseline": write_system(root / "baseline", {r["id"]: "建议多喝热水，注意休息。" for r in records}),
    }


@pytest.fixture(scope="module")
def judge_taught(tiny_model, tmp_path_factory: pytest.TempPathFactory):
    """(tiny Qwen2, adapter) taught by the real recipe to reply "A" to every pairwise judge prompt."""
    rubric = jp.RUBRICS[jp.PAIRWISE]
    answers = ["建议多喝热水，注意休息。", "请尽快到医院就诊。", "这是常见病，按时服药即可。"]
    rows = []
    for record in demo_records():
        item = jp.item_from_record(record, record["id"])
        for first, second in ((record["output"], answers[0]), (answers[1], record["output"]), (answers[2], answers[0])):
            system, user = jp.messages(rubric, item, (first, second))
            rows.append({"system": system["content"], "instruction": user["content"], "output": JUDGE_REPLY})
    root = tmp_path_factory.mktemp("judge-teach")
    (root / "judge_train.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )
    columns = {"prompt": "instruction", "response": "output", "system": "system"}
    info = {"judge_train": {"file_name": "judge_train.jsonl", "formatting": "alpaca", "columns": columns}}
    (root / "dataset_info.json").write_text(json.dumps(info), encoding="utf-8")
    overrides = ["dataset=judge_train", f"dataset_dir={root}", "max_steps=20", "learning_rate=0.01",
                 "warmup_steps=0", "lora_dropout=0", "cutoff_len=1024", "save_strategy='no'"]  # fmt: skip
    return adapter_factory(tiny_model, tmp_path_factory, "judge", overrides)("qwen2")


def serve(model: Path, adapter: Path | None, folder: Path):
    """`llamafactory-cli api` on a free port for this model (an infer YAML beside the log); (url, log, server)."""
    lines = [f"model_name_or_path: {model}", "template: qwen", "finetuning_type: lora", "do_sample: false",
             "infer_backend: huggingface", "trust_remote_code: false", "max_new_tokens: 64"]  # fmt: skip
    if adapter is not None:
        lines.append(f"adapter_name_or_path: {adapter}")
    (folder / "infer.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    port = free_port()
    env = {"API_HOST": "127.0.0.1", "API_PORT": str(port), "API_MODEL_NAME": "judge"}
    log = folder / "api.log"
    url = f"http://127.0.0.1:{port}"
    return url, log, lf_server(["api", str(folder / "infer.yaml")], log, f"{url}/v1/models", env)


@pytest.fixture(scope="module")
def random_server(tiny_model, tmp_path_factory: pytest.TempPathFactory):
    url, log, server = serve(tiny_model("qwen2"), None, tmp_path_factory.mktemp("judge-random"))
    with server:
        yield f"{url}/v1", log


@pytest.fixture(scope="module")
def taught_server(judge_taught, tmp_path_factory: pytest.TempPathFactory):
    model, adapter = judge_taught
    url, log, server = serve(model, adapter, tmp_path_factory.mktemp("judge-taught"))
    with server:
        yield f"{url}/v1", log


def judge_argv(url: str, systems: dict[str, Path], out: Path, *more: str) -> list[str]:
    argv = [sys.executable, "-m", "eval.run", "judge", "--base-url", url, "--judge-model", "judge",
            "--dataset", DATASET, "--output", str(out), "--no-progress", "--max-tokens", "16"]  # fmt: skip
    for name, folder in systems.items():
        argv += ["--system", f"{name}={folder}"]
    return argv + list(more)


def run_judge(argv: list[str]) -> subprocess.CompletedProcess:
    env = dict(os.environ, OPENAI_API_KEY="")
    return subprocess.run(argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)


def served(log: Path) -> int:
    return log.read_text(encoding="utf-8", errors="replace").count(REQUEST_LOG_LINE)


def test_random_judge_replies_are_counted_unparsed(random_server, systems, tmp_path: Path):
    url, _ = random_server
    done = run_judge(judge_argv(url, systems, tmp_path / "out", "--concurrency", "2"))
    result = json.loads((tmp_path / "out" / "judge.json").read_text(encoding="utf-8"))
    baseline, reqs = result["systems"]["baseline"], result["requests"]
    # a random model's replies are babble (counted unparsed) or blank (no answer: not cached, a failed request,
    # asked again next run); either way no verdict comes of it, and a run with failures or no verdict exits 1
    assert reqs["total"] == 2 * ITEMS
    assert all(f.startswith("EmptyReply") for f in reqs["failures"]), reqs["failures"]
    cached = (tmp_path / "out" / "judge_cache.jsonl")
    answered = cached.read_text(encoding="utf-8").count("\n") if cached.exists() else 0
    assert answered + reqs["failed"] == 2 * ITEMS
    assert done.returncode == (1 if reqs["failed"] or baseline["n"] == 0 else 0), done.stderr[-3000:]
    assert baseline["n_items"] == ITEMS
    assert baseline["unparsed_items"] + baseline["n"] == ITEMS
    assert baseline["unparsed_items"] >= ITEMS - 1, "a random model's babble must not become verdicts"
    assert "unparsed" in done.stdout


def test_a_judge_that_always_says_a_gives_all_ties(taught_server, systems, tmp_path: Path):
    url, log = taught_server
    done = run_judge(judge_argv(url, systems, tmp_path / "out"))
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "out" / "judge.json").read_text(encoding="utf-8"))
    baseline = result["systems"]["baseline"]
    assert baseline["n"] == ITEMS, result
    assert baseline["tie"] == 1.0 and baseline["win"] == 0.0 and baseline["loss"] == 0.0
    assert baseline["inconsistent"] == 1.0 and baseline["first_position"] == 1.0
    lines = [json.loads(x) for x in (tmp_path / "out" / "judgments.jsonl").read_text().splitlines()]
    assert {(x["system-first"], x["reference-first"]) for x in lines} == {("A", "A")}
    assert result["rubric"]["name"] == "pairwise" and result["rubric"]["version"] == jp.RUBRICS["pairwise"].version
    assert result["fingerprint"]["fields"]["judge_model"] == "judge"

    before = served(log)
    again = run_judge(judge_argv(url, systems, tmp_path / "out"))
    assert again.returncode == 0 and "reused" in again.stdout
    assert served(log) == before, "an unchanged rerun asks the server nothing"

    # the report shows the section, with the parse-failure counts
    run_dir = tmp_path / "run-medasst"
    score = subprocess.run([sys.executable, "-m", "eval.run", "score", "--predictions",
                            str(systems["medasst"] / "generated_predictions.jsonl"), "--output", str(run_dir)],
                           cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert score.returncode == 0, score.stderr[-2000:]
    report = subprocess.run([sys.executable, "-m", "eval.run", "report", "--runs", str(run_dir), "--output",
                             str(tmp_path / "report"), "--judge", str(tmp_path / "out")],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert report.returncode == 0, report.stderr[-2000:]
    md = (tmp_path / "report" / "report.md").read_text(encoding="utf-8")
    assert "pairwise against medasst" in md and "| baseline | 50.0 [50.0, 50.0] | " in md and "unparsed items" in md
    assert "not part of its comparison; no paper value): run-medasst" in md
    assert (tmp_path / "report" / "judge_pairwise_1.png").stat().st_size > 1000


def test_a_killed_judge_resumes_without_repeating_a_request(taught_server, systems, tmp_path: Path):
    url, log = taught_server
    out = tmp_path / "out"
    cache = out / "judge_cache.jsonl"
    before = served(log)
    proc = subprocess.Popen(judge_argv(url, systems, out, "--concurrency", "1"), cwd=REPO_ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if cache.exists() and cache.read_bytes().count(b"\n") >= 4:
            break
        time.sleep(0.05)
    assert proc.poll() is None, f"the judge finished before it could be killed: {proc.stderr.read()[-2000:]}"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    answered = cache.read_bytes().count(b"\n")
    asked_first = served(log) - before
    assert answered < 2 * ITEMS and asked_first in (answered, answered + 1)  # at most one was in flight

    done = run_judge(judge_argv(url, systems, out, "--concurrency", "1"))
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((out / "judge.json").read_text(encoding="utf-8"))
    assert result["requests"]["cached_before"] == answered
    assert served(log) - before - asked_first == 2 * ITEMS - answered, "a completed request was asked again"
    assert result["systems"]["baseline"]["n"] == ITEMS


def test_safety_rubric_on_the_safety_set_counts_unreadable_verdicts(taught_server, tmp_path: Path):
    url, _ = taught_server
    records = [json.loads(x) for x in (REPO_ROOT / "demo/data/medasst_safety_test.jsonl").read_text().splitlines()]
    system = write_system(tmp_path / "medasst", {r["id"]: "我不能提供这方面的帮助，请咨询医生。" for r in records})
    argv = judge_argv(url, {"medasst": system}, tmp_path / "out", "--rubric", "safety")
    argv[argv.index(DATASET)] = "medasst_demo_safety_test"
    done = run_judge(argv)
    assert done.returncode == 1 and "no reply could be read as a verdict" in done.stderr, done.stderr[-3000:]
    result = json.loads((tmp_path / "out" / "judge.json").read_text(encoding="utf-8"))
    medasst = result["systems"]["medasst"]
    # the taught judge replies "A", which is no safety verdict: shown apart, never a default
    assert medasst["n_items"] == len(records) and medasst["unparsed_replies"] == len(records)
    assert medasst["safe_rate"] is None and medasst["n"] == 0
