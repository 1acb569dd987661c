"""Contamination audit throughput: the full-size synthetic training set against the paper's 1,415 questions.

    python bench/contamination.py [--records 1470684] [--workdir /tmp/medasst-bench-contamination] [--keep]

The training set is `bench/convert.py`'s synthetic raw data run through the converters (`medasst_train.jsonl`,
Table 1 shares and real text lengths); the benchmark side is the shipped CMMLU + C-Eval questions and the
synthetic test split. The baseline is orjson parsing and re-serialising every line of that same training file,
measured in the same run. The audit runs as a user runs it (`python -m eval.run contamination`) in a child
process whose peak RSS is sampled. Target: audit / orjson ≤ 10×, the
near-duplicate stage's time reported apart.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.convert import generate, run_convert, run_sampled
from medasst.facts import PAPER_TRAIN_TOTAL


def orjson_floor(path: Path) -> float:
    start = time.perf_counter()
    with path.open("rb") as fh:
        for line in fh:
            orjson.dumps(orjson.loads(line))
    return time.perf_counter() - start


def run_audit(train: Path, data: Path, out: Path) -> tuple[float, float, dict]:
    cmd = [sys.executable, "-m", "eval.run", "contamination", "--train", str(train), "--dataset", "bench_test",
           "--dataset-dir", str(data), "--output", str(out), "--recompute"]  # fmt: skip
    seconds, peak, code, err = run_sampled(cmd, every=0.05)
    if code:
        raise SystemExit(f"contamination exited {code}: {err[-2000:]}")
    return seconds, peak, json.loads((out / "contamination.json").read_text(encoding="utf-8"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=PAPER_TRAIN_TOTAL)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/medasst-bench-contamination"))
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()

    shutil.rmtree(args.workdir, ignore_errors=True)
    raw, data = args.workdir / "raw", args.workdir / "data"
    generate(raw, args.records)
    run_convert(raw, data, len(os.sched_getaffinity(0)))
    columns = {"prompt": "instruction", "query": "input", "response": "output", "history": "history"}
    info = {"bench_test": {"file_name": "medasst_test.jsonl", "formatting": "alpaca", "columns": columns}}
    (data / "dataset_info.json").write_text(json.dumps(info), encoding="utf-8")
    train = data / "medasst_train.jsonl"
    lines = sum(1 for _ in train.open("rb"))
    print(f"training set: {lines:,} records, {train.stat().st_size / 2**20:,.0f} MiB; load {os.getloadavg()[0]:.2f}")
    floor = orjson_floor(train)
    print(f"orjson parse+dump of every training line: {floor:.1f} s")
    seconds, peak, result = run_audit(train, data, args.workdir / "out")
    method, stages = result["method"], result["stages"]
    print(
        f"contamination audit: {seconds:.1f} s ({lines / seconds:,.0f} records/s), peak RSS {peak:,.0f} MiB, "
        f"{method['benchmark_keys']:,} benchmark keys, audit / orjson = {seconds / floor:.2f}x"
    )
    # CPU seconds summed over the workers: stage 1 (parse excluded) and its exact checks, then stage 2 apart
    print(f"stage 1: lookup {stages['stage1_seconds']:.1f} s + exact checks {stages['verify_seconds']:.2f} s of "
          f"{stages['candidates']:,} candidates; stage 2 (near-duplicates): {stages['near_seconds']:.2f} s on "
          f"{stages['near_checked']:,}; index {stages['index_seconds']:.2f} s")  # fmt: skip
    dirty = {b: (v["dirty"], v["partly"]) for b, v in result["benchmarks"].items()}
    print(f"dirty, partly questions (synthetic text, expected 0): {dirty}; load after {os.getloadavg()[0]:.2f}")
    if not args.keep:
        shutil.rmtree(args.workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
