"""Converter throughput: synthesise N raw records in the four upstream formats, convert, compare to plain orjson.

    python bench/convert.py [--records 1470684] [--workers N ...] [--workdir /tmp/medasst-bench] [--keep]

Records are split in Table 1 proportions (huatuo26m further split 362,420 : 226,042 between the encyclopedia and
HuatuoGPT-sft files) with text lengths near the real averages (≈2 GB of raw files at full size), plus test
splits the size of the real ones. Each conversion runs in a child process; its peak memory is the peak of
the summed RSS of that process and its workers, sampled every 20 ms from /proc. The baseline is orjson parsing
and re-serialising the same raw bytes with no cleaning, filtering or hashing, measured in the same run. Every
worker count's outputs are checked byte-identical to the first one's.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from medasst.facts import PAPER_TRAIN_COUNTS, PAPER_TRAIN_TOTAL

# Common characters of Chinese medical text; sampled into pseudo-sentences of realistic length.
_CHARS = (
    "的是了我不在有人这中大为上个国以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而"
    "方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把"
    "性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但"
    "质气第向道命此变条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总次品"
    "式活设及管特件长求老头基资边流路级少图山统接知较将组见计别她手角期根论运农指几九区强放决西被干做必战"
    "先回则任取据处理医生病患者治疗症状检查药物建议注意休息饮食头痛发热咳嗽血压血糖胃肠皮肤"
)
_PUNCT = "，。；、？！"


def _text(rng: random.Random, mean: int) -> str:
    n = max(4, int(rng.expovariate(1 / mean)) if mean > 60 else rng.randint(mean // 2, mean * 3 // 2))
    chars = rng.choices(_CHARS, k=n)
    for i in range(rng.randint(4, 12), n, rng.randint(8, 20)):
        chars[i] = rng.choice(_PUNCT)
    return "".join(chars)


def _shares(total: int) -> dict[str, int]:
    counts = {s: total * c // PAPER_TRAIN_TOTAL for s, c in PAPER_TRAIN_COUNTS.items()}
    counts["medchatzh"] += total - sum(counts.values())
    return counts


def generate(raw: Path, total: int, seed: int = 0, scale: float = 1.0) -> dict[str, int]:
    """`scale`: text lengths relative to the real averages (a test builds many records of short text)."""
    rng = random.Random(seed)

    def text(mean: int) -> str:
        return _text(rng, max(4, int(mean * scale)))

    counts = _shares(total)
    enc = counts["huatuo26m"] * 362_420 // 588_462
    files = {
        "MedChatZH/MedChatZH_train.json": ("medchatzh", counts["medchatzh"]),
        "MedChatZH/MedChatZH_valid.json": ("medchatzh", 494),
        "huatuo_encyclopedia_qa/train_datasets.jsonl": ("encyclopedia", enc),
        "huatuo_encyclopedia_qa/test_datasets.jsonl": ("encyclopedia", 1000),
        "HuatuoGPT-sft-data-v1/HuatuoGPT_sft_data_v1.jsonl": ("sft", counts["huatuo26m"] - enc),
        "CMtMedQA/CMtMedQA.json": ("cmtmedqa", counts["cmtmedqa"]),
        "CMtMedQA/CMtMedQA_test.json": ("cmtmedqa", 1144),
        "webMedQA/medQA.train.txt": ("webmedqa", counts["webmedqa"]),
        "webMedQA/medQA.test.txt": ("webmedqa", 6337),
    }
    for rel, (kind, n) in files.items():
        path = raw / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as fh:
            if kind == "cmtmedqa":
                rows = [
                    {
                        "id": f"j{i}",
                        "cate1": "内科",
                        "cate2": "内科",
                        "instruction": f"{i}{text(30)}",
                        "input": "",
                        "output": text(40),
                        "history": [[text(60), text(130)] for _ in range(rng.randint(1, 6))],
                    }
                    for i in range(n)
                ]
                fh.write(json.dumps(rows, ensure_ascii=False, indent=4))
                continue
            for i in range(n):
                q = f"{rel[:3]}{i}{text(40)}"
                if kind == "medchatzh":
                    obj = {"instruction": q, "input": "", "output": text(330)}
                elif kind == "encyclopedia":
                    obj = {"questions": [[q, text(15)]], "answers": [text(520)]}
                elif kind == "sft":
                    turns = [f"问：{q}\n", f"答：{text(300)}"]
                    if i % 4 == 0:
                        turns += [f"问：{text(30)}\n", f"答：{text(200)}"]
                    obj = {"data": turns}
                else:  # webmedqa: five lines per question, one positive
                    fh.write("".join(f"内科\t{int(k == i % 5)}\t{i}\t{q}\t{text(50)}\n" for k in range(5)))
                    continue
                fh.write(json.dumps(obj, ensure_ascii=False) + "\n")
    return {rel: n for rel, (_kind, n) in files.items()}


def orjson_baseline(raw: Path) -> float:
    """Seconds for orjson to parse and re-serialise every raw file (TSV: split + dump), writing nowhere."""
    start = time.perf_counter()
    for path in sorted(p for p in raw.rglob("*") if p.is_file()):
        with path.open("rb") as fh:
            if path.name == "CMtMedQA.json" or path.name == "CMtMedQA_test.json":
                for obj in orjson.loads(fh.read()):
                    orjson.dumps(obj)
            elif path.suffix == ".txt":
                for line in fh:
                    orjson.dumps(line.decode().rstrip("\n").split("\t", 4))
            else:
                for line in fh:
                    orjson.dumps(orjson.loads(line))
    return time.perf_counter() - start


def tree_rss_kib(pid: int) -> int:
    """Summed VmRSS of `pid` and all its descendants (Linux /proc)."""
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            total += int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, StopIteration, ValueError):
            continue
    return total


def run_sampled(cmd: list[str], every: float = 0.02) -> tuple[float, float, int, str]:
    """(seconds, peak MiB of the process tree, exit code, stderr) of one command, RSS sampled every `every` s."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(every):
            peak = max(peak, tree_rss_kib(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, err = proc.communicate()
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    return seconds, peak / 1024, proc.returncode, err


def run_convert(raw: Path, out: Path, workers: int) -> tuple[float, float]:
    """(seconds, peak MiB of the converter's process tree) of one build."""
    cmd = [sys.executable, "-m", "converters", "build", "--raw-dir", str(raw), "--out-dir", str(out)]
    cmd += ["--no-progress", "--workers", str(workers)]
    seconds, peak, code, err = run_sampled(cmd)
    if code:
        raise SystemExit(f"converter exited {code}: {err[-2000:]}")
    return seconds, peak


def digests(out: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.iterdir())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=PAPER_TRAIN_TOTAL, help="training records (Table 1 shares)")
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[1, len(os.sched_getaffinity(0))], help="worker counts to run"
    )
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/medasst-bench"))
    parser.add_argument("--keep", action="store_true", help="keep the generated raw files and outputs")
    args = parser.parse_args()

    raw = args.workdir / "raw"
    shutil.rmtree(args.workdir, ignore_errors=True)
    t0 = time.perf_counter()
    generate(raw, args.records)
    raw_bytes = sum(p.stat().st_size for p in raw.rglob("*") if p.is_file())
    print(
        f"generated {args.records:,} train records, {raw_bytes / 2**20:,.0f} MiB raw"
        f" in {time.perf_counter() - t0:.1f} s; load average {os.getloadavg()[0]:.2f}"
    )
    base_s = orjson_baseline(raw)
    print(f"orjson parse+dump of the same bytes: {base_s:.1f} s")
    reference = None
    for workers in dict.fromkeys(args.workers):
        out = args.workdir / f"out-{workers}"
        convert_s, peak_mib = run_convert(raw, out, workers)
        manifest = orjson.loads((out / "manifest.json").read_bytes())
        read = sum(e[s]["read"] for e in manifest["sources"].values() for s in ("train", "test") if s in e)
        same = digests(out)
        reference = reference or same
        print(
            f"workers {workers}: {convert_s:.1f} s, {read / convert_s:,.0f} raw records/s, peak RSS (all processes)"
            f" {peak_mib:,.0f} MiB, converter / orjson = {convert_s / base_s:.2f}x,"
            f" outputs {'identical' if same == reference else 'DIFFERENT'}"
        )
        if same != reference:
            return 1
    print(f"written: train {manifest['merged']['train']['written']:,}, test {manifest['merged']['test']['written']:,}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    if not args.keep:
        shutil.rmtree(args.workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
