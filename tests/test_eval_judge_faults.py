"""`judge` under server faults, against a small stdlib HTTP server that plays an overloaded OpenAI endpoint:
429 and 503 are retried with the openai client's backoff, a request that keeps failing is counted (not cached,
exit 1) and asked again by the next run, a refused key stops the run with one line."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from eval import run as eval_run

RECORDS = [{"instruction": f"问题{i}", "input": "", "output": f"答{i}", "history": [], "id": f"q{i}"} for i in range(4)]


class Endpoint:
    """Fails the first `fail_first` chat requests with `status`, then answers [[A]]; counts every request."""

    def __init__(self, status: int = 429, fail_first: int = 0, key: str | None = None):
        self.status, self.fail_first, self.key = status, fail_first, key
        self.chat_requests = 0
        self.bodies: list[dict] = []
        self.lock = threading.Lock()


def handler_for(endpoint: Endpoint):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet
            pass

        def _send(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("retry-after-ms", "10")  # keep the client's backoff short in the test
            self.end_headers()
            self.wfile.write(data)

        def _authorised(self) -> bool:
            if endpoint.key and self.headers.get("Authorization") != f"Bearer {endpoint.key}":
                self._send(401, {"error": {"message": "bad key"}})
                return False
            return True

        def do_GET(self):
            if self._authorised():
                self._send(200, {"object": "list", "data": [{"id": "judge", "object": "model"}]})

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if not self._authorised():
                return
            with endpoint.lock:
                endpoint.chat_requests += 1
                endpoint.bodies.append(body)
                failing = endpoint.chat_requests <= endpoint.fail_first
            if failing:
                self._send(endpoint.status, {"error": {"message": "overloaded"}})
                return
            self._send(200, {"id": "x", "object": "chat.completion", "created": 0, "model": "judge",
                             "choices": [{"index": 0, "finish_reason": "stop",
                                          "message": {"role": "assistant", "content": "理由。\n[[A]]"}}]})  # fmt: skip

    return Handler


@pytest.fixture
def serve():
    servers = []

    def start(endpoint: Endpoint) -> str:
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(endpoint))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/v1"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


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
    assert len(lines) == 1 and "refused the key (401)" in lines[0]
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
    assert "parser_version: 1 → 2" in err and "--recompute" in err
    assert eval_run.main(argv(url, inputs, out, "--recompute")) == 0
    assert endpoint.chat_requests == 8, "the cached replies are read again by the new parser, not asked again"
