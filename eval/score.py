"""`score`: BLEU-4 and ROUGE-1/2/L of a predictions file, exactly LLaMA-Factory's predict metric.

Input: `generated_predictions.jsonl` ({"prompt","predict","label"} per line; ours also carry `source`/`id`).
Output: OUT/scores.json (means ×100 as LF reports them, `n`, bootstrap 95% CIs, per-source means) and
OUT/scores_per_sample.jsonl (one line per prediction, for the paired tests of `report`).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from eval.common import fingerprint as fpr
from eval.common import requests
from eval.common.files import InputFileError, iter_jsonl, read_json, write_json, write_jsonl
from eval.metrics import repetition, similarity, stats

SCORES_FILE = "scores.json"
PER_SAMPLE_FILE = "scores_per_sample.jsonl"
REQUIRED_KEYS = ("predict", "label")
_CHUNK = 64  # pairs per task: small enough to balance two workers, big enough to hide IPC
_MIN_PARALLEL = 256  # below this, starting workers costs more than it saves
METRIC = "LLaMA-Factory ComputeSimilarity: char BLEU-4 (NLTK method3), jieba ROUGE F1; ×100 per sample"
METRIC_VERSION = 2  # bump when a score of the same pair can change (2: repeated-4grams added)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--predictions", required=True, help="generated_predictions.jsonl")
    parser.add_argument("--output", help="output folder (default: the predictions file's folder)")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: all usable cores)")
    parser.add_argument("--resamples", type=int, default=stats.RESAMPLES, help="bootstrap resamples for the CIs")
    parser.add_argument("--seed", type=int, default=stats.SEED, help="bootstrap seed")
    requests.add_recompute(parser)


@dataclass(frozen=True)
class ScoreRequest:
    predictions: Path
    output: Path | None = None
    workers: int | None = None
    resamples: int = stats.RESAMPLES
    seed: int = stats.SEED
    recompute: bool = False

    def __post_init__(self) -> None:
        requests.input_file(Path(self.predictions), "predictions")
        requests.output_folder(self.output)
        requests.at_least("workers", self.workers, 1, optional=True)
        requests.at_least("resamples", self.resamples, 1)
        requests.at_least("seed", self.seed, 0)

    @property
    def out_dir(self) -> Path:
        return Path(self.output) if self.output else Path(self.predictions).parent


def fingerprint(request: ScoreRequest) -> fpr.Fingerprint:
    return fpr.Fingerprint(
        fields={
            "verb": "score",
            "metric": {"name": METRIC, "version": METRIC_VERSION},
            "predictions_sha256": fpr.file_sha256(request.predictions),
            "bootstrap": {"resamples": request.resamples, "seed": request.seed},
        },
        recorded={
            "predictions": str(request.predictions),
            "workers": request.workers,
            "versions": fpr.package_versions(("jieba", "rouge-chinese", "nltk", "numpy")),
        },
    )


def current(request: ScoreRequest) -> dict[str, Any] | None:
    """scores.json when it was made from these inputs; None when there is none (or --recompute)."""
    path = request.out_dir / SCORES_FILE
    if request.recompute or not path.is_file() or not (request.out_dir / PER_SAMPLE_FILE).is_file():
        return None
    record = read_json(path)
    fpr.check_reusable(path, record, fingerprint(request), "scores")
    if record.get("per_sample_sha256") != fpr.file_sha256(request.out_dir / PER_SAMPLE_FILE):
        raise fpr.FingerprintMismatch(
            f"{request.out_dir / PER_SAMPLE_FILE} was changed after {path} was written; pass --recompute"
        )
    return record


def read_predictions(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Records with string `predict`/`label`; a missing or non-string key names the line and the key."""
    records = []
    for lineno, obj in iter_jsonl(path):
        for key in REQUIRED_KEYS:
            if key not in obj:
                raise InputFileError(f"{path} line {lineno}: missing key {key!r} (has {sorted(obj)})")
            if not isinstance(obj[key], str):
                kind = type(obj[key]).__name__
                raise InputFileError(f"{path} line {lineno}: key {key!r} must be a string, got {kind}")
        obj["_line"] = lineno
        records.append(obj)
    if not records:
        raise InputFileError(f"{path}: no predictions")
    return records


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def score_pairs(pairs: list[tuple[str, str]], workers: int | None = None, progress: bool = True) -> np.ndarray:
    """n × 4 array of per-sample (bleu-4, rouge-1, rouge-2, rouge-l), in input order."""
    from tqdm import tqdm

    workers = default_workers() if workers is None else max(1, workers)
    chunks = [pairs[i : i + _CHUNK] for i in range(0, len(pairs), _CHUNK)]
    bar = tqdm(total=len(pairs), desc="score", unit="pair", disable=not progress, file=sys.stderr)
    out: list[tuple[float, float, float, float]] = []
    if workers == 1 or len(pairs) < _MIN_PARALLEL:
        similarity.init()
        for chunk in chunks:
            out.extend(similarity.score_chunk(chunk))
            bar.update(len(chunk))
    else:
        # fork on Linux: workers inherit jieba's loaded dictionary instead of each paying ~1 s to load it (safe
        # after torch too: workers never touch it, as with DataLoader workers); spawn elsewhere (macOS)
        similarity.init()
        ctx = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
        with ctx.Pool(processes=min(workers, len(chunks)), initializer=similarity.init) as pool:
            for result in pool.imap(similarity.score_chunk, chunks):
                out.extend(result)
                bar.update(len(result))
    bar.close()
    return np.asarray(out, dtype=np.float64).reshape(len(pairs), len(similarity.METRICS))


def sample_id(record: dict[str, Any]) -> str:
    """Key that pairs the same test item across systems: the record id, else its position in the file."""
    return str(record["id"]) if record.get("id") is not None else f"#{record['_line']}"


def summarize(
    records: list[dict[str, Any]], per_sample: np.ndarray, resamples: int = stats.RESAMPLES, seed: int = stats.SEED
) -> dict[str, Any]:
    # np.mean over the rounded per-sample list, as LF's ComputeSimilarity._dump does
    result: dict[str, Any] = {"n": len(records)}
    for j, metric in enumerate(similarity.METRICS):
        result[metric] = float(np.mean(per_sample[:, j]))
    cis = stats.bootstrap_ci(per_sample, resamples=resamples, seed=seed)
    result["ci95"] = {m: [round(lo, 4), round(hi, 4)] for m, (lo, hi) in zip(similarity.METRICS, cis, strict=True)}
    result["bootstrap"] = {"resamples": resamples, "seed": seed, "method": "percentile"}
    sources = sorted({str(r["source"]) for r in records if r.get("source") is not None})
    if sources:
        labels = np.array([str(r.get("source")) for r in records])
        result["per_source"] = {
            s: {"n": int((labels == s).sum())}
            | {m: float(np.mean(per_sample[labels == s, j])) for j, m in enumerate(similarity.METRICS)}
            for s in sources
        }
    return result


def run(request: ScoreRequest, progress: bool = True) -> dict[str, Any]:
    previous = current(request)
    if previous is not None:
        return previous | {"reused": True}
    fp = fingerprint(request)
    records = read_predictions(request.predictions)
    pairs = [(r["predict"], r["label"]) for r in records]
    per_sample = score_pairs(pairs, workers=request.workers, progress=progress)
    result = summarize(records, per_sample, resamples=request.resamples, seed=request.seed)
    repeats = np.array([repetition.repeated_share(r["predict"]) for r in records])
    result["repeated-4grams"] = float(repeats.mean())  # beside the metrics, not one of LF's
    result["predictions"] = str(request.predictions)
    result["predictions_sha256"] = fp.fields["predictions_sha256"]
    result["metric"] = METRIC
    rows = []
    for record, scores in zip(records, per_sample, strict=True):
        row: dict[str, Any] = {"id": sample_id(record)}
        if record.get("source") is not None:
            row["source"] = record["source"]
        row.update({m: float(v) for m, v in zip(similarity.METRICS, scores, strict=True)})
        row["repeated-4grams"] = repetition.repeated_share(record["predict"])
        rows.append(row)
    ids = [row["id"] for row in rows]
    if len(set(ids)) != len(ids):
        raise InputFileError(
            f"{request.predictions}: duplicate ids; per-sample scores could not be paired across systems"
        )
    per_sample_path = write_jsonl(request.out_dir / PER_SAMPLE_FILE, rows)
    result["per_sample_sha256"] = fpr.file_sha256(per_sample_path)
    result["fingerprint"] = fp.to_json()
    write_json(request.out_dir / SCORES_FILE, result)
    return result


def main(request: ScoreRequest) -> int:
    try:
        result = run(request)
    except (InputFileError, fpr.FingerprintMismatch) as e:
        print(f"score: {e}", file=sys.stderr)
        return 2
    summary = ", ".join(f"{m} {result[m]:.4f}" for m in similarity.METRICS)
    state = " (up to date, reused)" if result.get("reused") else ""
    print(f"n={result['n']}: {summary} → {request.out_dir / SCORES_FILE}{state}")
    return 0


REQUEST = ScoreRequest
