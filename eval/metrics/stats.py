"""Bootstrap confidence intervals and paired-bootstrap p-values, with fixed seeds so reruns agree."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

RESAMPLES = 1000
SEED = 0
_CHUNK = 50  # resamples per numpy batch: bounds memory at 50 × n × k floats


def bootstrap_ci(
    values: np.ndarray, resamples: int = RESAMPLES, seed: int = SEED, level: float = 0.95
) -> list[tuple[float, float]]:
    """Percentile CI of the mean of each column of `values` (n × k), one shared set of resamples."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    n = values.shape[0]
    if n == 0:
        return [(float("nan"), float("nan"))] * values.shape[1]
    rng = np.random.default_rng(seed)
    means = []
    for start in range(0, resamples, _CHUNK):
        idx = rng.integers(0, n, size=(min(_CHUNK, resamples - start), n))
        means.append(values[idx].mean(axis=1))
    stacked = np.concatenate(means, axis=0)
    alpha = (1 - level) / 2
    low = np.quantile(stacked, alpha, axis=0)
    high = np.quantile(stacked, 1 - alpha, axis=0)
    return [(float(lo), float(hi)) for lo, hi in zip(low, high, strict=True)]


def paired_bootstrap_p(
    groups_a: Sequence[np.ndarray],
    groups_b: Sequence[np.ndarray],
    statistic: Callable[[list[float]], float] | None = None,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> float:
    """Two-sided p-value that systems A and B score the same, from paired per-item scores.

    Each group (e.g. a benchmark) is resampled on its own, with the same indices for A and B, so the pairing is
    kept; `statistic` turns the per-group means into the reported number (default: the one group's mean; the
    paper's MCQ "overall" is the plain mean of its two benchmarks). The bootstrap distribution of the difference
    is centred on zero (the null) and p = share of resampled |differences| at least as large as the observed one.
    """
    if len(groups_a) != len(groups_b):
        raise ValueError("paired bootstrap needs the same groups for both systems")
    stat = statistic or (lambda means: means[0])
    a = [np.asarray(g, dtype=np.float64) for g in groups_a]
    b = [np.asarray(g, dtype=np.float64) for g in groups_b]
    for ga, gb in zip(a, b, strict=True):
        if ga.shape != gb.shape or ga.size == 0:
            raise ValueError("paired bootstrap needs the same non-empty items for both systems")
    diffs = [ga - gb for ga, gb in zip(a, b, strict=True)]
    observed = stat([float(d.mean()) for d in diffs])
    if all(not d.any() for d in diffs):
        return 1.0
    rng = np.random.default_rng(seed)
    samples = np.empty(resamples)
    group_means = []
    for d in diffs:
        means = []
        for start in range(0, resamples, _CHUNK):
            idx = rng.integers(0, d.size, size=(min(_CHUNK, resamples - start), d.size))
            means.append(d[idx].mean(axis=1))
        group_means.append(np.concatenate(means))
    for i in range(resamples):
        samples[i] = stat([float(m[i]) for m in group_means])
    extreme = np.abs(samples - observed) >= abs(observed) - 1e-12
    # +1 smoothing: a p-value estimated from R resamples is never below 1/(R+1)
    return float((extreme.sum() + 1) / (resamples + 1))
