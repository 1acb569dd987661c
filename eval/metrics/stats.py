"""Bootstrap confidence intervals and paired-bootstrap p-values, with fixed seeds so reruns agree; Wilson
intervals, the sign test, Holm's adjustment and the spread over seeds."""

from __future__ import annotations

import math
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


def wilson_ci(successes: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion: unlike the normal one it stays inside [0, 1] and is not empty at
    k = 0 or k = n, which matters at C-Eval's n = 90."""
    if n <= 0:
        return (float("nan"), float("nan"))
    z = _z(level)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def _z(level: float) -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf(1 - (1 - level) / 2)


def sign_test_p(wins: int, losses: int) -> float:
    """Exact two-sided sign test (binomial, p = ½) of wins against losses; ties carry no sign and are left out."""
    n = wins + losses
    if n == 0:
        return 1.0
    k = min(wins, losses)
    # log-space terms: C(n, i) / 2^n underflows a float for n in the thousands
    logs = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) - n * math.log(2) for i in range(k + 1)]
    top = max(logs)
    tail = math.exp(top) * sum(math.exp(v - top) for v in logs)
    return min(1.0, 2 * tail)


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjustment of a family of p-values (None: no test, kept None and not counted)."""
    present = sorted((p, i) for i, p in enumerate(pvalues) if p is not None)
    m = len(present)
    out: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for rank, (p, i) in enumerate(present):
        running = max(running, min(1.0, (m - rank) * p))  # monotone: never below an earlier, smaller p's value
        out[i] = running
    return out


# two-sided 97.5 % quantiles of Student's t for 1..30 degrees of freedom (a seed count rarely passes 30)
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045,
         2.042)  # fmt: skip


def mean_std_ci(values: Sequence[float]) -> tuple[float, float | None, tuple[float, float] | None]:
    """Mean, sample standard deviation and 95 % t interval of a few runs (seeds); no spread from one run."""
    x = np.asarray(values, dtype=np.float64)
    mean = float(x.mean())
    if x.size < 2:
        return mean, None, None
    std = float(x.std(ddof=1))
    t = _T975[x.size - 2] if x.size - 1 <= len(_T975) else 1.96
    half = t * std / math.sqrt(x.size)
    return mean, std, (mean - half, mean + half)


def stratified_bootstrap_ci(
    groups: Sequence[np.ndarray],
    statistic: Callable[[list[float]], float],
    resamples: int = RESAMPLES,
    seed: int = SEED,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile CI of `statistic` of the group means, each group (benchmark) resampled on its own: the paper's
    overall, the mean of two benchmarks of 1,325 and 90 questions, varies mostly with the small one."""
    rng = np.random.default_rng(seed)
    means = []
    for g in groups:
        g = np.asarray(g, dtype=np.float64)
        parts = [g[rng.integers(0, g.size, size=(min(_CHUNK, resamples - s), g.size))].mean(axis=1)
                 for s in range(0, resamples, _CHUNK)]  # fmt: skip
        means.append(np.concatenate(parts))
    samples = np.array([statistic([float(m[i]) for m in means]) for i in range(resamples)])
    alpha = (1 - level) / 2
    return float(np.quantile(samples, alpha)), float(np.quantile(samples, 1 - alpha))
