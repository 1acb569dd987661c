"""Device check: `eval.run --config` returns each system's GPU memory before the next system's model loads.

Run on a machine with an NVIDIA GPU (`nvidia-smi` on PATH), from the repo root:

    python bench/gpu_memory_check.py [--out runs/gpu-memory-check]

It builds two tiny models, runs a two-system config (mcq on one C-Eval subject, a few generated answers), and
reads the GPU's used memory with nvidia-smi before each system's model process starts and after it exits. It
prints one JSON line per system and exits 1 if memory used after a system's process exited is more than
--tolerance-mib above what was used before it started. On CPU-only machines it says so and exits 0.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))


def gpu_used_mib() -> list[int]:
    out = subprocess.run(
        ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return [int(line) for line in out.split()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/gpu-memory-check")
    parser.add_argument("--tolerance-mib", type=int, default=64)
    args = parser.parse_args()
    if shutil.which("nvidia-smi") is None:
        print("gpu_memory_check: no nvidia-smi here; run this on a GPU machine")
        return 0
    import yaml

    from eval import pipeline

    out = Path(args.out)
    models = {}
    for family in ("qwen2", "llama3"):
        path = subprocess.run(
            [sys.executable, "-m", "medasst.tiny", family, "--out", str(out / "models" / family)],
            capture_output=True, text=True, check=True, cwd=REPO_ROOT,
        ).stdout.strip().splitlines()[-1]  # fmt: skip
        models[family] = path
    config = {
        "output_dir": str(out / "runs"),
        "dataset": "medasst_demo_test",
        "dataset_dir": str(REPO_ROOT),
        "steps": ["mcq", "generate"],
        "mcq": {"subjects": "ceval:physician"},
        "generate": {"backend": "hf", "max_new_tokens": 8, "max_samples": 8},
        "systems": [
            {"name": "LlaMa-3-8B", "model": models["llama3"], "template": "llama3"},
            {"name": "MedAsst", "model": models["qwen2"], "template": "qwen"},
        ],
    }
    shutil.rmtree(out / "runs", ignore_errors=True)
    (out / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")

    real = pipeline.run_model_steps
    readings: list[dict] = []

    def measured(system, steps):
        import threading

        before = gpu_used_mib()
        peak = list(before)
        done = threading.Event()

        def sample() -> None:  # the child's own use, so the check shows it did run on the GPU
            while not done.wait(0.5):
                peak[:] = [max(p, u) for p, u in zip(peak, gpu_used_mib(), strict=True)]

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            report = real(system, steps)
        finally:
            done.set()
            sampler.join()
        after = gpu_used_mib()
        readings.append({"system": system.name, "before_mib": before, "peak_mib": peak, "after_mib": after, **report})
        return report

    pipeline.run_model_steps = measured
    code = pipeline.main(out / "config.yaml")
    failed = code != 0
    for reading in readings:
        grew = max(a - b for a, b in zip(reading["after_mib"], reading["before_mib"], strict=True))
        reading["grew_mib"] = grew
        failed |= grew > args.tolerance_mib
        print(json.dumps(reading))
    print("gpu_memory_check:", "FAILED" if failed else "ok: every system's GPU memory was returned")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
