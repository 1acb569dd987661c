"""`--backend vllm --vllm-python PY`: vLLM in a child process under another Python (its own venv).

vLLM's wheel pins a torch and moves transformers past what LLaMA-Factory 0.9.5 accepts, so the two cannot share
one environment. Here the parent (LF's environment) still renders the prompts and builds the engine arguments, and
`vllm_worker.py` runs under PY: it gets the engine arguments, the sampling settings, the adapter and each batch's
prompt token ids as JSON lines on its stdin, and answers each batch's texts and finish reasons, in order, on its
stdout. The parent never imports vllm or the child's torch. The child's stderr (vLLM's logs, tracebacks) goes to
OUT/vllm_child.log; any failure in the child is one line here, naming PY and the cause.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from eval.backends.generators import BackendError

ENV_PYTHON = "MEDASST_VLLM_PYTHON"
WORKER = Path(__file__).resolve().with_name("vllm_worker.py")
LOG_FILE = "vllm_child.log"
# prompts given as {"prompt_token_ids": ...} dicts (TokensPrompt) need this; the same floor as the vllm extra
MIN_VLLM = (0, 4, 3)
PROBE_TIMEOUT_S = 120
CLOSE_TIMEOUT_S = 60
VENV_HINT = "make it as eval/README.md#generate says: python3 -m venv .venv-vllm && .venv-vllm/bin/pip install vllm"


def resolve_python(explicit: str | None) -> str | None:
    """--vllm-python, else $MEDASST_VLLM_PYTHON, else None (in-process vLLM)."""
    return explicit or os.environ.get(ENV_PYTHON) or None


def version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split("+")[0].split("."):
        digits = "".join(c for c in piece if c.isdigit()) if piece[:1].isdigit() else ""
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def check_vllm_version(python: str, version: str | None) -> None:
    if version and version_tuple(version) < MIN_VLLM:
        floor = ".".join(map(str, MIN_VLLM))
        raise BackendError(f"--vllm-python {python}: vllm {version} is older than {floor} (prompts as token ids); "
                           "install a newer vllm in that venv")  # fmt: skip


def child_env(python: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONHOME", None)  # LF's interpreter's home would make PY load the wrong standard library
    exe = shutil.which(python) or python
    # tools vLLM runs by name (ninja, its venv's scripts) come from PY's venv first
    env["PATH"] = os.pathsep.join([str(Path(exe).parent), env.get("PATH", "")])
    if env.get("USE_MODELSCOPE_HUB", "").lower() in ("1", "true", "y"):
        env.setdefault("VLLM_USE_MODELSCOPE", "True")
    return env


def probe(python: str) -> dict[str, Any]:
    """PY's path, executable, Python version and vllm/torch/transformers versions, without importing vllm; a PY
    that does not run, or has no (or too old a) vllm, is a BackendError naming it."""
    try:
        done = subprocess.run([python, str(WORKER), "probe"], capture_output=True, text=True,
                              timeout=PROBE_TIMEOUT_S, env=child_env(python))  # fmt: skip
    except (OSError, subprocess.SubprocessError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else type(e).__name__
        raise BackendError(f"--vllm-python {python}: cannot run it ({reason}); {VENV_HINT}") from None
    lines = done.stdout.strip().splitlines()
    try:
        info = json.loads(lines[-1]) if done.returncode == 0 and lines else None
    except json.JSONDecodeError:
        info = None
    if not isinstance(info, dict):
        last = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1][:300]
        raise BackendError(f"--vllm-python {python}: not a Python that runs the worker ({last})")
    if not info.get("vllm_importable"):
        raise BackendError(f"--vllm-python {python}: vllm is not installed in that Python "
                           f"({info.get('executable')}); {VENV_HINT}")  # fmt: skip
    check_vllm_version(python, (info.get("versions") or {}).get("vllm"))
    return {"python": python, **{k: info.get(k) for k in ("executable", "python_version", "versions")}}


def visible_gpus() -> int:
    """GPUs the child will see, counted without torch: the parent's torch (LF's) may be a CPU build."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        ids = [d.strip() for d in env.split(",") if d.strip()]
        return 0 if not ids or ids[0].startswith("-") else len(ids)
    if shutil.which("nvidia-smi") is None:
        return 0
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


def exit_status(code: int | None) -> str:
    if code is None:
        return "still running"
    return f"killed by signal {-code}" if code < 0 else f"exit status {code}"


class VLLMChildGenerator:
    """One long-lived worker under `python`: the engine loads once, then one request/answer pair per batch."""

    def __init__(self, python: str, engine: dict[str, Any], sampling: dict[str, Any], adapter: str | None,
                 log: Path, info: dict[str, Any] | None = None):  # fmt: skip
        self.python = python
        self.info = info or probe(python)
        self.engine = engine
        self.log = Path(log)
        self.finish_reasons: Counter[str] = Counter()
        self.loaded: dict[str, Any] = {}
        lora = {"name": "default", "id": 1, "path": str(Path(adapter).resolve())} if adapter else None
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("a", encoding="utf-8") as f:
            f.write(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} vLLM child: {python} {WORKER} serve\n")
            f.flush()
            self.proc = subprocess.Popen([python, str(WORKER), "serve"], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=f, text=True, encoding="utf-8",
                                         env=child_env(python))  # fmt: skip
        ready = self._exchange({"engine": engine, "sampling": sampling, "lora": lora}, "loading the engine")
        if not ready.get("ready"):
            self._fail("loading the engine", f"unexpected reply {str(ready)[:200]}")
        self.loaded = ready.get("versions") or {}
        try:  # the imported vllm, which a path can make differ from the probed metadata
            check_vllm_version(python, self.loaded.get("vllm"))
        except BackendError:
            self.close()
            raise

    def __call__(self, batch: Sequence[Sequence[int]]) -> list[str]:
        reply = self._exchange({"prompts": [list(ids) for ids in batch]}, "generating")
        outputs = reply.get("outputs")
        if not isinstance(outputs, list) or len(outputs) != len(batch):
            got = len(outputs) if isinstance(outputs, list) else "no"
            self._fail("generating", f"{got} answers for {len(batch)} prompts")
        self.finish_reasons.update(str(o.get("finish_reason")) for o in outputs)
        return [str(o.get("text", "")) for o in outputs]

    def describe(self) -> dict[str, Any]:
        """What generate_run.json records: PY, its versions, what it loaded, finish reasons, the log."""
        return {**self.info, "loaded": self.loaded, "finish_reasons": dict(sorted(self.finish_reasons.items())),
                "log": str(self.log)}  # fmt: skip

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()  # EOF: the worker returns and vLLM shuts its engine down
                self.proc.wait(timeout=CLOSE_TIMEOUT_S)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream and not stream.closed:
                stream.close()

    def __enter__(self) -> VLLMChildGenerator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _exchange(self, message: dict[str, Any], doing: str) -> dict[str, Any]:
        try:
            self.proc.stdin.write(json.dumps(message) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except (BrokenPipeError, OSError):
            line = ""
        if not line:
            self._died(doing)
        try:
            reply = json.loads(line)
        except json.JSONDecodeError:
            self._fail(doing, f"not a protocol line: {line[:120]!r}")
        if "error" in reply:
            self._fail(doing, f"{reply.get('stage', '?')}: {reply['error']}")
        return reply

    def _died(self, doing: str) -> None:
        try:
            code = self.proc.wait(timeout=CLOSE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self._fail(doing, f"it died ({exit_status(code)}); last log line: {self._last_log_line()}")

    def _fail(self, doing: str, cause: str) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        raise BackendError(f"vLLM child ({self.python}) while {doing}: {cause} (log: {self.log})")

    def _last_log_line(self) -> str:
        try:
            lines = [ln.strip() for ln in self.log.read_text(encoding="utf-8", errors="replace").splitlines()]
        except OSError:
            return "(no log)"
        lines = [ln for ln in lines if ln and not ln.startswith("=== ")]
        return lines[-1][:300] if lines else "(empty)"


def from_model(python: str, model: str, adapter: str | None, tokenizer, template, cutoff_len: int,
               max_new_tokens: int, tensor_parallel: int | None, out_dir: Path,
               info: dict[str, Any] | None = None) -> VLLMChildGenerator:  # fmt: skip
    """The child generator with exactly the in-process path's engine arguments, sampling and stop ids."""
    from eval.backends.generators import attention_heads, stop_token_ids, vllm_engine_args, vllm_sampling

    heads, kv_heads = attention_heads(model)
    engine = vllm_engine_args(model, adapter, cutoff_len, max_new_tokens, heads, kv_heads, visible_gpus(),
                              tensor_parallel)  # fmt: skip
    sampling = vllm_sampling(max_new_tokens, stop_token_ids(tokenizer, template))
    return VLLMChildGenerator(python, engine, sampling, adapter, Path(out_dir) / LOG_FILE, info)


if __name__ == "__main__":  # `python -m eval.backends.vllm_child PY`: check a venv before a long run
    try:
        print(json.dumps(probe(sys.argv[1] if len(sys.argv) > 1 else resolve_python(None) or sys.executable)))
    except BackendError as e:
        sys.exit(f"vllm_child: {e}")
