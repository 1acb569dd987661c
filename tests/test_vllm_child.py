"""`--backend vllm --vllm-python PY`: the child-process protocol, run with this interpreter and a stub `vllm`.

No vLLM is installed in CI: the child is `sys.executable` with tests/fixtures/vllm_stub on its PYTHONPATH (plus a
dist-info giving the stub a version), so what is tested is the worker, the pipe protocol, the error lines and the
wiring into `generate`, not vLLM itself (bench/vllm_env_check.py is the device check for that).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from eval.backends import vllm_child
from eval.backends.generators import BackendError, vllm_sampling

STUB = Path(__file__).resolve().parent / "fixtures" / "vllm_stub"
ENGINE = {"model": "tiny", "max_model_len": 64, "tensor_parallel_size": 1, "seed": 0, "enable_lora": True}


def use_stub(monkeypatch, tmp_path: Path, version: str = "0.9.2") -> Path:
    meta = tmp_path / "site" / f"vllm-{version}.dist-info"
    meta.mkdir(parents=True)
    (meta / "METADATA").write_text(f"Metadata-Version: 2.1\nName: vllm\nVersion: {version}\n", encoding="utf-8")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path / "site"), str(STUB)]))
    record = tmp_path / "calls.jsonl"
    monkeypatch.setenv("VLLM_STUB_RECORD", str(record))
    for name in ("VLLM_STUB_CRASH", "VLLM_STUB_FAIL", vllm_child.ENV_PYTHON):
        monkeypatch.delenv(name, raising=False)
    return record


def calls(record: Path) -> list[dict]:
    return [json.loads(line) for line in record.read_text(encoding="utf-8").splitlines()]


def test_child_answers_in_order_with_greedy_settings_stop_ids_and_adapter(monkeypatch, tmp_path: Path):
    record = use_stub(monkeypatch, tmp_path)
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    info = vllm_child.probe(sys.executable)
    assert info["versions"]["vllm"] == "0.9.2" and info["executable"] and info["python"] == sys.executable
    sampling = vllm_sampling(7, [151645, 151643])
    log = tmp_path / "out" / vllm_child.LOG_FILE
    with vllm_child.VLLMChildGenerator(sys.executable, ENGINE, sampling, str(adapter), log, info) as gen:
        first = gen([[5, 6, 7], [1, 151645], [9]])
        second = gen([[4, 4, 4, 4, 3]])
        described = gen.describe()
    assert first == ["n=3 last=7", "n=2 last=151645", "n=1 last=9"]  # one answer per prompt, in the prompts' order
    assert second == ["n=5 last=3"]
    assert gen.proc.returncode == 0  # EOF on its stdin ends it cleanly
    engine, *generated = calls(record)
    assert engine == {"call": "LLM", "engine": ENGINE}
    assert [c["prompts"] for c in generated] == [[[5, 6, 7], [1, 151645], [9]], [[4, 4, 4, 4, 3]]]
    for call in generated:
        assert call["sampling"] == {"temperature": 0.0, "max_tokens": 7, "repetition_penalty": 1.0,
                                    "stop_token_ids": [151645, 151643], "skip_special_tokens": True}  # fmt: skip
        assert call["lora"] == ["default", 1, str(adapter.resolve())]  # the adapter with every request, no merge
        assert call["use_tqdm"] is False
    assert described["finish_reasons"] == {"length": 3, "stop": 1}
    assert described["loaded"]["vllm"] == "0.9.2" and described["versions"]["vllm"] == "0.9.2"
    # the stub's stdout print went to the log, not into the protocol
    assert "stub vllm imported" in log.read_text(encoding="utf-8")


def test_no_adapter_means_no_lora_request(monkeypatch, tmp_path: Path):
    record = use_stub(monkeypatch, tmp_path)
    engine = ENGINE | {"enable_lora": False}
    with vllm_child.VLLMChildGenerator(sys.executable, engine, vllm_sampling(3, [2]), None, tmp_path / "log") as gen:
        assert gen([[1, 2]]) == ["n=2 last=2"]
    assert calls(record)[-1]["lora"] is None


def one_line_error(excinfo: pytest.ExceptionInfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def test_a_python_without_vllm_or_not_a_python_is_one_line(monkeypatch, tmp_path: Path):
    use_stub(monkeypatch, tmp_path)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "empty"))  # this interpreter, no stub: no vllm at all
    with pytest.raises(BackendError) as e:
        vllm_child.probe(sys.executable)
    assert f"--vllm-python {sys.executable}: vllm is not installed in that Python" in one_line_error(e)
    missing = str(tmp_path / "no-venv" / "bin" / "python")
    with pytest.raises(BackendError) as e:
        vllm_child.probe(missing)
    assert f"--vllm-python {missing}: cannot run it" in one_line_error(e)
    not_python = tmp_path / "false.sh"
    not_python.write_text("#!/bin/sh\necho broken >&2\nexit 3\n")
    not_python.chmod(0o755)
    with pytest.raises(BackendError) as e:
        vllm_child.probe(str(not_python))
    assert "not a Python that runs the worker (broken)" in one_line_error(e)


def test_too_old_a_vllm_is_refused(monkeypatch, tmp_path: Path):
    use_stub(monkeypatch, tmp_path, version="0.3.3")
    with pytest.raises(BackendError) as e:
        vllm_child.probe(sys.executable)
    assert "vllm 0.3.3 is older than 0.4.3" in one_line_error(e)
    assert vllm_child.version_tuple("0.10.1+cpu") == (0, 10, 1) and vllm_child.version_tuple("0.6.3.post1") >= (0, 6)


def test_a_child_that_dies_or_fails_is_one_line_naming_python_and_log(monkeypatch, tmp_path: Path):
    use_stub(monkeypatch, tmp_path)
    log = tmp_path / "out" / vllm_child.LOG_FILE
    monkeypatch.setenv("VLLM_STUB_CRASH", "1")  # the engine loads, then the process is SIGKILLed mid-batch
    gen = vllm_child.VLLMChildGenerator(sys.executable, ENGINE, vllm_sampling(3, [2]), None, log)
    with pytest.raises(BackendError) as e:
        gen([[1, 2, 3]])
    message = one_line_error(e)
    assert message.startswith(f"vLLM child ({sys.executable}) while generating: it died (killed by signal 9)")
    assert f"(log: {log})" in message
    monkeypatch.delenv("VLLM_STUB_CRASH")
    monkeypatch.setenv("VLLM_STUB_FAIL", "engine")
    with pytest.raises(BackendError) as e:
        vllm_child.VLLMChildGenerator(sys.executable, ENGINE, vllm_sampling(3, [2]), None, log)
    assert "while loading the engine: engine: ValueError: stub: cannot load tiny" in one_line_error(e)
    assert "Traceback" in log.read_text(encoding="utf-8")  # the whole story is in the log
    monkeypatch.delenv("VLLM_STUB_FAIL")
    with pytest.raises(BackendError) as e:  # a bad sampling key: vLLM's TypeError, still one line
        vllm_child.VLLMChildGenerator(sys.executable, ENGINE, {"top_z": 1}, None, log)
    assert "engine: TypeError: unexpected keyword argument 'top_z'" in one_line_error(e)


def test_visible_gpus_without_torch(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,3")
    assert vllm_child.visible_gpus() == 2
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert vllm_child.visible_gpus() == 0
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    assert vllm_child.visible_gpus() == 0


def test_generate_request_takes_the_child_python(monkeypatch, tmp_path: Path):
    from eval import generate
    from eval.common import requests

    use_stub(monkeypatch, tmp_path)
    (tmp_path / "dataset_info.json").write_text(json.dumps({"d": {"file_name": "d.jsonl"}}), encoding="utf-8")
    (tmp_path / "d.jsonl").write_text("", encoding="utf-8")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}", encoding="utf-8")
    base = {"model": str(tmp_path / "model"), "output": str(tmp_path / "out"), "dataset": "d",
            "dataset_dir": str(tmp_path)}  # fmt: skip
    with pytest.raises(requests.UsageError, match="--vllm-python runs with --backend vllm only"):
        generate.GenerateRequest(**base, backend="hf", vllm_python=sys.executable)
    monkeypatch.setenv(vllm_child.ENV_PYTHON, sys.executable)
    request = generate.GenerateRequest(**base, backend="vllm")  # no vllm here: the child's is what counts
    assert request.vllm_python == sys.executable and generate.backend_of(request) == "vllm"
    assert generate.GenerateRequest(**base, backend="hf").vllm_python is None  # the variable is for vllm only
    options = base | {"backend": "vllm", "vllm_python": sys.executable}
    from_config = requests.from_options(generate.GenerateRequest, options, "systems[0] generate")
    assert from_config.vllm_python == sys.executable  # a pipeline config's `generate: {vllm_python: ...}`
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "empty"))
    with pytest.raises(requests.UsageError, match="vllm is not installed in that Python"):
        generate.GenerateRequest(**base, backend="vllm")


@pytest.mark.slow
def test_generate_runs_through_the_child(tiny_model, monkeypatch, tmp_path: Path):
    from eval import generate
    from eval import run as eval_run

    record = use_stub(monkeypatch, tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    rows = [{"instruction": f"头痛{i}天了", "input": "", "output": "建议休息。", "id": f"r{i}"} for i in range(3)]
    (data / "med.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    columns = {"prompt": "instruction", "query": "input", "response": "output"}
    info = {"med_test": {"file_name": "med.jsonl", "formatting": "alpaca", "columns": columns}}
    (data / "dataset_info.json").write_text(json.dumps(info), encoding="utf-8")
    out = tmp_path / "out"
    argv = ["generate", "--model", str(tiny_model("qwen2")), "--template", "qwen", "--dataset", "med_test",
            "--dataset-dir", str(data), "--backend", "vllm", "--vllm-python", sys.executable, "--max-new-tokens", "4",
            "--batch-size", "2", "--cutoff-len", "64", "--output", str(out)]  # fmt: skip
    assert eval_run.main(argv) == 0
    predictions = [json.loads(line) for line in (out / generate.PREDICTIONS_FILE).read_text().splitlines()]
    assert [p["id"] for p in predictions] == ["r0", "r1", "r2"]
    prompts = [c["prompts"] for c in calls(record) if c["call"] == "generate"]
    assert [len(batch) for batch in prompts] == [2, 1]  # the fixed batches, one request each
    answers = {f"n={len(ids)} last={ids[-1]}" for batch in prompts for ids in batch}
    assert {p["predict"] for p in predictions} <= answers
    meta = json.loads((out / generate.RUN_FILE).read_text())
    assert meta["backend"] == "vllm" and meta["vllm_engine"]["max_model_len"] == 68
    assert meta["vllm_child"]["python"] == sys.executable and meta["vllm_child"]["versions"]["vllm"] == "0.9.2"
    assert sum(meta["vllm_child"]["finish_reasons"].values()) == 3
    recorded = meta["fingerprint"]["recorded"]["vllm_python"]
    assert recorded["versions"] == meta["vllm_child"]["versions"] and "torch" in recorded["versions"]
    assert (out / vllm_child.LOG_FILE).is_file()
    # finished: a rerun starts no child at all
    before = len(calls(record))
    assert eval_run.main(argv) == 0 and len(calls(record)) == before


def test_the_device_check_script_imports_and_compares():
    import importlib.util

    spec = importlib.util.spec_from_file_location("vllm_env_check", STUB.parents[2] / "bench" / "vllm_env_check.py")
    check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check)
    assert check.parse_args([]).vllm_python == ".venv-vllm/bin/python"
    rows = [{"id": "a", "predict": "头痛多休息"}, {"id": "b", "predict": "xyz"}]
    vllm_run = {"vllm_child": {"finish_reasons": {"stop": 2}}, "fingerprint": {"recorded": {"versions": {}}}}
    hf = {"rows": rows, "seconds": 1.0}
    vl = {"rows": [rows[0], {"id": "b", "predict": "xy!"}], "run": vllm_run, "seconds": 0.5}
    report = check.compare("tiny", hf, vl, samples=2)
    assert not report["failed"] and report["identical"] == 1 and report["mean_shared_prefix"] == round(5 / 6, 3)
    assert report["first_difference"] == {"hf": "xyz", "vllm": "xy!"}
    assert check.compare("tiny", hf, {"error": "boom", "seconds": 0}, samples=2)["failed"]
