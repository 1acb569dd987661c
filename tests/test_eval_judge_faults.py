"""`judge` under server faults, against a small stdlib HTTP server that plays an overloaded OpenAI endpoint:
429 and 503 are retried with the openai client's backoff, a request that keeps failing is counted (not cached,
exit 1) and asked again by the next run, a refused key stops the run with one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from judge_stub import Endpoint, Stubs

from eval import run as eval_run
from eval.judging import verdicts

RECORDS = [{"instruction": f"问题{i}", "input": "", "output": f"答{i}", "history": [], "id": f"q{i}"} for i in range(4)]


@pytest.fixture
def serve():
    stubs = Stubs()
    yield stubs.start
    stubs.close()


@pytest.fixture
def inputs(tmp_path: Path) -> tuple[Path, list[str]]:
    data = tmp_path / "data"
    data.mkdir()
    (data / "t.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in RECORDS), "utf-8")
    columns = {"prompt": "instruction", "query": "input", "response": "output", "history": "history"}
    (data / "dataset_info.json").write_text(json.dumps({"t": {"file_name": "t.jsonl", "columns": columns}}))
    systems = []
    for name, answer in (("medasst", "答"), ("other", "不知道")):
        folder = tmp_path / name
        folder.mkdir()
        rows = [{"prompt": "", "predict": answer, "label": r["output"], "id": r["id"]} for r in RECORDS]
        (folder / "generated_predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
        systems += ["--system", f"{name}={folder}"]
    return data, systems


def argv(url: str, inputs, out: Path, *more: str) -> list[str]:
    data, systems = inputs
    return ["judge", "--base-url", url, "--judge-model", "judge", "--dataset", "t", "--dataset-dir", str(data),
            "--output", str(out), "--no-progress", *systems, *more]  # fmt: skip


def test_429_and_503_are_retried_and_every_request_sends_temperature_and_n(serve, inputs, tmp_path: Path):
    for status in (429, 503):
        endpoint = Endpoint(status=status, fail_first=3)
        out = tmp_path / f"out{status}"
        assert eval_run.main(argv(serve(endpoint), inputs, out, "--concurrency", "2")) == 0
        result = json.loads((out / "judge.json").read_text(encoding="utf-8"))
        assert result["complete"] and result["requests"]["failed"] == 0
        assert endpoint.chat_requests == 8 + 3, "each failure retried once more, nothing else repeated"
        assert all(b["temperature"] == 0.0 and b["n"] == 1 and b["max_tokens"] == 512 for b in endpoint.bodies)
        # always [[A]]: position bias in full, so every item is a tie
        assert result["systems"]["other"]["tie"] == 1.0


def test_a_request_that_keeps_failing_is_counted_and_asked_again_next_run(serve, inputs, tmp_path: Path, capsys):
    endpoint = Endpoint(status=503, fail_first=3)
    url = serve(endpoint)
    out = tmp_path / "out"
    assert eval_run.main(argv(url, inputs, out, "--concurrency", "1", "--max-retries", "0")) == 1
    err = capsys.readouterr().err
    assert "3 requests failed" in err and "rerun to ask them again" in err
    result = json.loads((out / "judge.json").read_text(encoding="utf-8"))
    assert not result["complete"] and result["requests"]["failed"] == 3
    cached = (out / "judge_cache.jsonl").read_text(encoding="utf-8").count("\n")
    assert cached == 5
    assert eval_run.main(argv(url, inputs, out, "--concurrency", "1", "--max-retries", "0")) == 0
    assert endpoint.chat_requests == 8 + 3, "only the failed requests were asked again"


def test_a_refused_key_stops_the_run_in_one_line(serve, inputs, tmp_path: Path, capsys, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "wrong")
    url = serve(Endpoint(key="right"))
    assert eval_run.main(argv(url, inputs, tmp_path / "out")) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and "refused the key in $OPENAI_API_KEY (401); set OPENAI_API_KEY" in lines[0]
    assert not (tmp_path / "out").exists()


def test_a_changed_dataset_is_refused_and_recompute_asks_only_the_new_prompts(serve, inputs, tmp_path: Path, capsys):
    endpoint = Endpoint()
    url = serve(endpoint)
    out = tmp_path / "out"
    assert eval_run.main(argv(url, inputs, out)) == 0
    data, _ = inputs
    changed = [r | {"instruction": r["instruction"] + "？"} if r["id"] == "q0" else r for r in RECORDS]
    (data / "t.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in changed), "utf-8")
    capsys.readouterr()
    assert eval_run.main(argv(url, inputs, out)) == 2
    err = capsys.readouterr().err
    assert "was made from other inputs" in err and "dataset.files" in err and "--recompute" in err
    assert eval_run.main(argv(url, inputs, out, "--recompute")) == 0
    assert endpoint.chat_requests == 8 + 2, "only q0's two orders are new requests; the rest come from the cache"


def test_a_result_read_by_an_older_parser_is_refused_and_recompute_rereads_the_cache(serve, inputs, tmp_path, capsys):
    endpoint = Endpoint()
    url = serve(endpoint)
    out = tmp_path / "out"
    assert eval_run.main(argv(url, inputs, out)) == 0
    path = out / "judge.json"
    result = json.loads(path.read_text(encoding="utf-8"))
    assert result["fingerprint"]["fields"]["parser_version"] >= 2
    result["fingerprint"]["fields"]["parser_version"] = 1  # as the v1 readers wrote it
    path.write_text(json.dumps(result, ensure_ascii=False), encoding="utf-8")
    capsys.readouterr()
    assert eval_run.main(argv(url, inputs, out)) == 2
    err = capsys.readouterr().err
    assert f"parser_version: 1 → {verdicts.PARSER_VERSION}" in err and "--recompute" in err
    assert eval_run.main(argv(url, inputs, out, "--recompute")) == 0
    assert endpoint.chat_requests == 8, "the cached replies are read again by the new parser, not asked again"
