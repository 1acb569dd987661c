"""Judge results that cannot go stale or leak: answers tied to the questions they answered, the judge known by its
server and model entry, nothing empty cached, a cache that survives a full disk, a crash and a second run, and no
key or URL credential in anything written or printed."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import threading
import time
from pathlib import Path

import pytest
from judge_stub import Endpoint, Stubs

from eval import run as eval_run
from eval.judging.client import MAX_REPLY_CHARS, Cache

RECORDS = [{"instruction": f"第{i}个问题：头痛怎么办", "input": "", "output": f"答{i}", "history": [], "id": f"q{i}"}
           for i in range(4)]  # fmt: skip
KEY = "sk-test-S3CRET-0123456789abcdef"


@pytest.fixture
def serve():
    stubs = Stubs()
    yield stubs.start
    stubs.close()


def _write_dataset(data: Path, records: list[dict]) -> None:
    data.mkdir(exist_ok=True)
    (data / "t.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), "utf-8")
    columns = {"prompt": "instruction", "query": "input", "response": "output", "history": "history"}
    (data / "dataset_info.json").write_text(json.dumps({"t": {"file_name": "t.jsonl", "columns": columns}}))


def _system(folder: Path, answer: str, records: list[dict], prompts: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = [{"prompt": f"<|im_start|>user\n{r['instruction']}<|im_end|>\n" if prompts else "", "predict": answer,
             "label": r["output"], "id": r["id"]} for r in records]  # fmt: skip
    (folder / "generated_predictions.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n"
                                                                for r in rows), "utf-8")  # fmt: skip
    return folder


def _generate_run(folder: Path, data: Path, complete: bool = True) -> None:
    """The generate_run.json that `generate` writes: the dataset's name and its files' sha256 in the fingerprint."""
    sha = hashlib.sha256((data / "t.jsonl").read_bytes()).hexdigest()
    fields = {"verb": "generate", "dataset": {"name": "t", "entry": {}, "files": {"t.jsonl": sha}}}
    record = {"complete": complete, "n": 4, "fingerprint": {"fields": fields, "digest": "x"}}
    (folder / "generate_run.json").write_text(json.dumps(record))


@pytest.fixture
def inputs(tmp_path: Path):
    data = tmp_path / "data"
    _write_dataset(data, RECORDS)
    medasst = _system(tmp_path / "medasst", "答", RECORDS)
    other = _system(tmp_path / "other", "不知道", RECORDS)
    return data, {"medasst": medasst, "other": other}


def argv(url: str, data: Path, systems: dict[str, Path], out: Path, *more: str) -> list[str]:
    args = ["judge", "--base-url", url, "--judge-model", "judge", "--dataset", "t", "--dataset-dir", str(data),
            "--output", str(out), "--no-progress", "--max-retries", "0"]  # fmt: skip
    for name, folder in systems.items():
        args += ["--system", f"{name}={folder}"]
    return args + list(more)


def _errors(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


# --- answers tied to the questions they answered ----------------------------------------------------------


def test_a_dataset_whose_questions_moved_under_the_same_ids_is_refused(serve, inputs, tmp_path: Path, capsys):
    data, systems = inputs
    for folder in systems.values():
        _generate_run(folder, data)
    url = serve(Endpoint())
    assert eval_run.main(argv(url, data, systems, tmp_path / "ok")) == 0
    moved = [r | {"instruction": RECORDS[(i + 1) % 4]["instruction"]} for i, r in enumerate(RECORDS)]
    _write_dataset(data, moved)
    capsys.readouterr()
    assert eval_run.main(argv(url, data, systems, tmp_path / "out")) == 2
    (line,) = _errors(capsys)
    assert "has changed since its answers were generated" in line and "t.jsonl" in line
    assert not (tmp_path / "out" / "judge.json").exists()


def test_without_a_generate_run_the_prompts_are_checked(serve, inputs, tmp_path: Path, capsys):
    data, _ = inputs
    systems = {"medasst": _system(tmp_path / "m", "答", RECORDS, prompts=True),
               "other": _system(tmp_path / "o", "不知道", RECORDS, prompts=True)}  # fmt: skip
    url = serve(Endpoint())
    assert eval_run.main(argv(url, data, systems, tmp_path / "ok")) == 0
    assert json.loads((tmp_path / "ok" / "judge.json").read_text())["answers_checked_by"] == {
        "medasst": "prompts", "other": "prompts"}  # fmt: skip
    _write_dataset(data, [r | {"instruction": "完全不同的另一个问题"} if r["id"] == "q2" else r for r in RECORDS])
    capsys.readouterr()
    assert eval_run.main(argv(url, data, systems, tmp_path / "out")) == 2
    (line,) = _errors(capsys)
    assert "answered another question" in line and "'q2'" in line


def test_answers_that_cannot_be_checked_and_partial_predictions_are_said(serve, inputs, tmp_path: Path, capsys):
    data, systems = inputs
    _system(systems["other"], "不知道", RECORDS[:3])
    assert eval_run.main(argv(serve(Endpoint()), data, systems, tmp_path / "out")) == 0
    out = capsys.readouterr().out
    assert "note: only the 3 items every system answered are judged (medasst 1 more" in out
    assert "note: medasst, other: no generate_run.json and no prompts" in out


def test_an_unfinished_generate_run_is_refused_unless_asked(serve, inputs, tmp_path: Path, capsys):
    data, systems = inputs
    _generate_run(systems["medasst"], data)
    _generate_run(systems["other"], data, complete=False)
    url = serve(Endpoint())
    assert eval_run.main(argv(url, data, systems, tmp_path / "out")) == 2
    (line,) = _errors(capsys)
    assert line.startswith("judge: other:") and "incomplete" in line and "--allow-incomplete" in line
    assert eval_run.main(argv(url, data, systems, tmp_path / "out", "--allow-incomplete")) == 0


# --- the judge known by its server and model entry ---------------------------------------------------------


def test_another_server_or_model_entry_under_the_same_name_is_asked_again(serve, inputs, tmp_path: Path, capsys):
    data, systems = inputs
    out = tmp_path / "out"
    first = Endpoint()
    assert eval_run.main(argv(serve(first), data, systems, out)) == 0
    assert first.chat_requests == 8
    # the same served name behind another URL: not the judge that gave those verdicts
    second = Endpoint(reply=lambda body: "[[B]]")
    url2 = serve(second)
    assert eval_run.main(argv(url2, data, systems, out, "--recompute")) == 0
    assert second.chat_requests == 8, "verdicts of another server were reused"
    assert json.loads((out / "judge.json").read_text())["systems"]["other"]["tie"] == 1.0
    # the same URL now serving another model under the name "judge" (another owner, another root)
    second.models = [{"id": "judge", "object": "model", "owned_by": "someone-else", "root": "/models/other"}]
    assert eval_run.main(argv(url2, data, systems, out, "--recompute")) == 0
    assert second.chat_requests == 16
    # the listing's volatile fields (a fresh `created` per listing) do not make a new judge
    second.models = [{**second.models[0], "created": int(time.time()) + 99}]
    capsys.readouterr()
    assert eval_run.main(argv(url2, data, systems, out)) == 0
    assert second.chat_requests == 16
    assert "requests: none asked: up to date, reused (8 judged earlier)" in capsys.readouterr().out


def test_a_judge_model_the_server_does_not_list_is_one_line(serve, inputs, tmp_path: Path, capsys):
    data, systems = inputs
    args = argv(serve(Endpoint()), data, systems, tmp_path / "out")
    args[args.index("judge", 1)] = "nonexistent"
    assert eval_run.main(args) == 2
    (line,) = _errors(capsys)
    assert "serves judge; no model 'nonexistent' (--judge-model)" in line


def test_a_base_url_without_v1_says_so(serve, inputs, tmp_path: Path, capsys):
    data, systems = inputs
    url = serve(Endpoint(), path="")
    assert eval_run.main(argv(url, data, systems, tmp_path / "out")) == 2
    (line,) = _errors(capsys)
    assert "(404)" in line and "does --base-url need /v1 at the end?" in line


# --- nothing empty cached, nothing parsed is a failure ------------------------------------------------------


@pytest.mark.parametrize("content", [None, "", "  \n"])
def test_empty_and_null_replies_are_not_cached_and_asked_again(serve, inputs, tmp_path: Path, capsys, content):
    data, systems = inputs
    endpoint = Endpoint(reply=lambda body: content)
    url = serve(endpoint)
    out = tmp_path / "out"
    assert eval_run.main(argv(url, data, systems, out)) == 1
    assert "8 requests failed" in capsys.readouterr().err
    assert not (out / "judge_cache.jsonl").exists() or (out / "judge_cache.jsonl").read_text() == ""
    endpoint.reply = lambda body: "[[A]]"
    assert eval_run.main(argv(url, data, systems, out)) == 0
    assert endpoint.chat_requests == 16


def test_a_run_that_parses_nothing_exits_1_and_a_large_unparsed_share_warns(serve, inputs, tmp_path: Path, capsys):
    data, systems = inputs
    url = serve(Endpoint(reply=lambda body: "这个问题我无法判断。"))
    assert eval_run.main(argv(url, data, systems, tmp_path / "none")) == 1
    assert "no reply could be read as a verdict" in capsys.readouterr().err
    answered = {"n": 0}

    def mostly_babble(body):
        answered["n"] += 1
        return "[[A]]" if answered["n"] <= 2 else "嗯。"

    url = serve(Endpoint(reply=mostly_babble))
    assert eval_run.main(argv(url, data, systems, tmp_path / "some", "--concurrency", "1")) == 0
    assert "items have no readable verdict; its numbers rest on the rest" in capsys.readouterr().out


# --- the cache: full disk, torn lines, two runs, huge replies ----------------------------------------------


def test_a_failed_append_is_rolled_back_and_the_next_run_reads_the_cache(serve, inputs, tmp_path, monkeypatch):
    import eval.judging.client as client_mod

    data, systems = inputs
    out = tmp_path / "out"
    url = serve(Endpoint())
    real, calls = client_mod.os.fsync, {"n": 0}

    def full_on_the_third(fd):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd)

    monkeypatch.setattr(client_mod.os, "fsync", full_on_the_third)
    assert eval_run.main(argv(url, data, systems, out, "--concurrency", "1")) == 1
    monkeypatch.undo()
    lines = (out / "judge_cache.jsonl").read_bytes().splitlines(keepends=True)
    assert len(lines) == 7 and all(line.endswith(b"\n") and json.loads(line) for line in lines)
    assert eval_run.main(argv(url, data, systems, out)) == 0


def test_a_torn_line_in_the_middle_is_skipped_and_counted(tmp_path: Path):
    cache = tmp_path / "judge_cache.jsonl"
    good = [json.dumps({"key": f"k{i}", "reply": "[[A]]", "finish_reason": "stop"}) for i in range(3)]
    # a line cut by a crash of an older version, then bytes that are not UTF-8, both before good lines
    cache.write_bytes(f"{good[0]}\n{good[1][:20]}\n".encode() + b"\xff\xfe{}\n" + f"{good[2]}\n".encode())
    loaded = Cache(cache)
    assert sorted(loaded.replies) == ["k0", "k2"] and loaded.skipped == 2 and loaded.torn == 0


def test_the_start_up_repair_waits_for_another_runs_append(tmp_path: Path):
    """Another run holds the lock while its line is half written: the repair must not cut it as torn."""
    cache = tmp_path / "judge_cache.jsonl"
    line = (json.dumps({"key": "k1", "reply": "[[B]]", "finish_reason": "stop"}) + "\n").encode()
    with cache.open("ab") as writer:
        fcntl.flock(writer, fcntl.LOCK_EX)
        writer.write(line[:15])
        writer.flush()
        loaded: dict = {}
        reader = threading.Thread(target=lambda: loaded.setdefault("cache", Cache(cache)))
        reader.start()
        time.sleep(0.3)
        assert reader.is_alive(), "the repair did not wait for the writer's lock"
        writer.write(line[15:])
        writer.flush()
        fcntl.flock(writer, fcntl.LOCK_UN)
    reader.join(10)
    assert loaded["cache"].torn == 0 and loaded["cache"].get("k1")["reply"] == "[[B]]"


def test_a_reply_far_past_max_tokens_is_stored_cut(serve, inputs, tmp_path: Path, capsys):
    data, systems = inputs
    url = serve(Endpoint(reply=lambda body: "很长的理由。" * 500_000 + "\n[[A]]"))  # 3 MB each
    out = tmp_path / "out"
    assert eval_run.main(argv(url, data, systems, out)) == 0
    assert (out / "judge_cache.jsonl").stat().st_size < 8 * (3 * MAX_REPLY_CHARS + 1000)
    result = json.loads((out / "judge.json").read_text())
    assert result["cache"]["replies_cut"] == 8 and result["systems"]["other"]["tie"] == 1.0  # the verdict kept
    assert "8 replies ran far past --max-tokens" in capsys.readouterr().out


# --- no key and no URL credential in anything written or printed -------------------------------------------


def test_a_server_echoing_the_key_leaks_nothing(serve, inputs, tmp_path: Path, capsys, monkeypatch):
    data, systems = inputs
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    url = serve(Endpoint(status=500, fail_first=100, echo_headers_on_error=True))
    url = url.replace("http://", "http://admin:hunter2pass@")
    out = tmp_path / "out"
    assert eval_run.main(argv(url, data, systems, out, "--concurrency", "1")) == 1
    printed = capsys.readouterr()
    written = "".join(p.read_text(errors="replace") for p in out.iterdir())
    for text in (printed.out, printed.err, written):
        assert KEY not in text and "hunter2pass" not in text
    assert "***@127.0.0.1" in written and "Authorization" in written  # the echo is there, masked


def test_a_key_goes_only_to_https_or_this_machine(inputs, tmp_path: Path, capsys, monkeypatch):
    data, systems = inputs
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    args = argv("http://judge.example.invalid:8000/v1", data, systems, tmp_path / "out", "--timeout", "2")
    assert eval_run.main(args) == 2
    (line,) = _errors(capsys)
    assert "plain http to another machine" in line and "--allow-insecure-key" in line and KEY not in line
    assert eval_run.main([*args, "--allow-insecure-key"]) == 2  # now asked: the name does not resolve
    (line,) = _errors(capsys)
    assert "cannot reach" in line and KEY not in line
    monkeypatch.setenv("OPENAI_API_KEY", "")  # no key: any URL
    assert eval_run.main(args) == 2
    assert "plain http" not in capsys.readouterr().err


@pytest.mark.parametrize("content", [json.dumps(RECORDS, ensure_ascii=False)[:-40], json.dumps([RECORDS[0], 7])])
def test_a_json_array_dataset_cut_short_or_holding_a_non_object_is_one_line(serve, inputs, tmp_path, capsys, content):
    data, systems = inputs
    (data / "t.json").write_text(content, encoding="utf-8")
    info = json.loads((data / "dataset_info.json").read_text())
    info["t"]["file_name"] = "t.json"
    (data / "dataset_info.json").write_text(json.dumps(info))
    assert eval_run.main(argv(serve(Endpoint()), data, systems, tmp_path / "out")) == 2
    (line,) = _errors(capsys)
    assert "t.json" in line and ("cut short" in line or "is not a JSON object" in line)
