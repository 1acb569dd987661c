"""Sharded `generate` on CPU: one process vs two shard processes at once, and the merge's own cost.

    python bench/shards.py [--records 24] [--max-new-tokens 16]

Tiny random Qwen2 (medasst.tiny), the demo test set; each shard is `python -m eval.run generate --shard I/2` in
its own process (as `--config` with `shards: 2` starts them), then one run without --shard merges. Wall times,
and whether the merged file is byte-identical to the one-process file.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def generate(model: Path, out: Path, records: int, tokens: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "eval.run", "generate", "--model", str(model), "--output", str(out),
            "--dataset", "medasst_demo_test", "--dataset-dir", str(REPO), "--backend", "hf",
            "--max-samples", str(records), "--max-new-tokens", str(tokens), "--batch-size", "4", *extra]  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=24)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    args = parser.parse_args()
    from medasst import tiny

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = tiny.cached("qwen2", seed=0, root=root / "models")
        started = time.perf_counter()
        subprocess.run(generate(model, root / "one", args.records, args.max_new_tokens), cwd=REPO, check=True)
        one = time.perf_counter() - started
        started = time.perf_counter()
        procs = [subprocess.Popen(generate(model, root / "two", args.records, args.max_new_tokens, "--shard", f"{i}/2"),
                                  cwd=REPO) for i in range(2)]  # fmt: skip
        if any(p.wait() for p in procs):
            return 1
        two = time.perf_counter() - started
        started = time.perf_counter()
        subprocess.run(generate(model, root / "two", args.records, args.max_new_tokens), cwd=REPO, check=True)
        merge = time.perf_counter() - started
        same = (root / "one" / "generated_predictions.jsonl").read_bytes() == (
            root / "two" / "generated_predictions.jsonl"
        ).read_bytes()
    print(f"records {args.records}, max_new_tokens {args.max_new_tokens}: one process {one:.1f}s, "
          f"two shards {two:.1f}s, merge {merge:.1f}s (a process start included), identical {same}")  # fmt: skip
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
