"""Benchmark: `eval.score` vs LLaMA-Factory's own `ComputeSimilarity` loop on 8,975 synthetic Chinese pairs.

Both run in this process on the same pairs; the per-sample scores must be identical and ours should be ≥ 2×
faster on 2 cores. Ours = exact fast metric (eval.metrics.similarity) in worker processes, pool start-up included.

    python bench/score.py [--n 8975] [--workers 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from eval import score
from eval.metrics import similarity

PHRASES = (
    "您好 根据您的描述 考虑 可能是 上呼吸道感染 急性胃肠炎 高血压 糖尿病 甲状腺功能亢进 偏头痛 失眠 焦虑 "
    "建议 及时 到医院 就诊 完善 血常规 尿常规 肝功能 肾功能 心电图 胸片 B超 CT 检查 明确诊断 "
    "注意休息 多喝水 清淡饮食 避免辛辣刺激 戒烟限酒 规律作息 适当运动 遵医嘱 服用 布洛芬 阿莫西林 "
    "奥美拉唑 二甲双胍 硝苯地平 对症治疗 一般 三到五天 可以 缓解 如果 症状 加重 出现 发热 咳嗽 胸闷 "
    "腹痛 腹泻 头晕 乏力 需要 复查 定期 监测 血压 血糖 孩子 老人 孕妇 不建议 自行 用药 mg 每日 两次"
)
PUNCT = "，，，。。！？；、"


def sentence(rng: random.Random, words: list[str], n_words: int) -> str:
    parts = []
    for _ in range(n_words):
        parts.append(rng.choice(words))
        if rng.random() < 0.2:
            parts.append(rng.choice(PUNCT))
    return "".join(parts) + "。"


def synthetic_pairs(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """Answer-like labels (≈20–250 chars) and predictions sharing some spans with them, some short, a few empty."""
    rng = random.Random(seed)
    words = PHRASES.split()
    pairs = []
    for _ in range(n):
        label = sentence(rng, words, rng.randint(6, 60))
        r = rng.random()
        if r < 0.01:
            pred = ""
        elif r < 0.5:  # a model that copies part of the answer and adds its own words
            cut = rng.randint(0, len(label))
            pred = label[:cut] + sentence(rng, words, rng.randint(0, 30))
        else:
            pred = sentence(rng, words, rng.randint(3, 60))
        pairs.append((pred, label))
    return pairs


class StubTokenizer:
    """Id i decodes to the i-th string, so LF's ComputeSimilarity scores exactly our strings."""

    pad_token_id = 0

    def __init__(self, texts: list[str]):
        self.texts = ["", *texts]

    def batch_decode(self, rows, skip_special_tokens: bool = True) -> list[str]:
        return [self.texts[int(row[0])] for row in rows]


def llamafactory_scores(pairs: list[tuple[str, str]]) -> tuple[np.ndarray, float]:
    from llamafactory.train.sft.metric import ComputeSimilarity
    from transformers import EvalPrediction

    preds = [p for p, _ in pairs]
    labels = [lab for _, lab in pairs]
    metric = ComputeSimilarity(tokenizer=StubTokenizer(preds + labels))
    pred_ids = np.arange(1, len(pairs) + 1)[:, None]
    label_ids = np.arange(len(pairs) + 1, 2 * len(pairs) + 1)[:, None]
    started = time.perf_counter()
    metric(EvalPrediction(predictions=pred_ids, label_ids=label_ids), compute_result=False)
    seconds = time.perf_counter() - started
    table = np.array([metric.score_dict[m] for m in similarity.METRICS], dtype=np.float64).T
    return table, seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=8975)
    parser.add_argument("--workers", type=int, default=score.default_workers())
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)

    import jieba

    jieba.setLogLevel(60)
    jieba.initialize()  # both sides start with jieba's dictionary loaded
    similarity.init()
    pairs = synthetic_pairs(args.n)
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None

    lf, lf_seconds = llamafactory_scores(pairs)
    started = time.perf_counter()
    ours = score.score_pairs(pairs, workers=args.workers, progress=False)
    ours_seconds = time.perf_counter() - started
    started = time.perf_counter()
    serial = score.score_pairs(pairs, workers=1, progress=False)
    serial_seconds = time.perf_counter() - started

    identical = bool(np.array_equal(lf, ours) and np.array_equal(lf, serial))
    max_diff = float(np.abs(lf - ours).max())
    result = {
        "pairs": len(pairs),
        "mean_label_chars": round(sum(len(lab) for _, lab in pairs) / len(pairs), 1),
        "llamafactory_seconds": round(lf_seconds, 2),
        "ours_seconds": round(ours_seconds, 2),
        "ours_workers": args.workers,
        "ours_1_worker_seconds": round(serial_seconds, 2),
        "speedup": round(lf_seconds / ours_seconds, 2),
        "speedup_1_worker": round(lf_seconds / serial_seconds, 2),
        "identical_per_sample": identical,
        "max_abs_diff": max_diff,
        "means_lf": {m: float(np.mean(lf[:, j])) for j, m in enumerate(similarity.METRICS)},
        "means_ours": {m: float(np.mean(ours[:, j])) for j, m in enumerate(similarity.METRICS)},
        "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "python": platform.python_version(),
        "load_avg_before": load_before,
        "load_avg_after": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n", encoding="utf-8")
    return 0 if identical and result["speedup"] >= 2 else 1


if __name__ == "__main__":
    sys.exit(main())
