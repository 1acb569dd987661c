"""Pairwise preferences summarised: a win rate (win + ½ tie), AlpacaEval 2's length-controlled win rate and a
Bradley–Terry ranking, each with a bootstrap CI over items (fixed seed).

Length control (Dubois et al., 2024, "Length-controlled AlpacaEval"): per system a logistic model of the
preference on the standardised length difference, logit P(win) = θ + φ·tanh(Δlen / sd(Δlen)); the
length-controlled win rate is the model's prediction at Δlen = 0, σ(θ). A judge that only rewards length then
scores 50 %. Ties are half a win (a fractional response: the same likelihood, a quasi-binomial fit).

Bradley–Terry (as Arena-Hard ranks its systems): P(i beats j) = σ(β_i − β_j), fitted by Newton's method to every
judged pair, the reference pinned at 0; the bootstrap resamples items, keeping each item's pairs together.
A tiny ridge keeps the fit finite when a system wins (or loses) every item.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

RIDGE = 1e-3
_ITERATIONS = 50
_CHUNK = 100  # resamples fitted at once


def _newton(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Ridge logistic fits, one per row: x (r × n × k) features, y (n) or (r × n) responses in [0, 1], w (r × n)
    weights (bootstrap counts). Returns β (r × k)."""
    r, _, k = x.shape
    beta = np.zeros((r, k))
    eye = RIDGE * np.eye(k)
    for _ in range(_ITERATIONS):
        p = 1.0 / (1.0 + np.exp(-np.einsum("rnk,rk->rn", x, beta)))
        grad = np.einsum("rn,rnk->rk", w * (y - p), x) - RIDGE * beta
        hess = np.einsum("rn,rnk,rnl->rkl", w * p * (1 - p), x, x) + eye
        step = np.linalg.solve(hess, grad[..., None])[..., 0]
        beta += step
        if np.abs(step).max() < 1e-9:
            break
    return beta


def _resample_weights(n: int, resamples: int, seed: int) -> np.ndarray:
    """Bootstrap resamples of n items as counts (resamples × n)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(resamples, n))
    counts = np.zeros((resamples, n))
    np.add.at(counts, (np.arange(resamples)[:, None], idx), 1.0)
    return counts


def _interval(samples: np.ndarray, level: float = 0.95) -> list[float]:
    alpha = (1 - level) / 2
    return [float(np.quantile(samples, alpha)), float(np.quantile(samples, 1 - alpha))]


def length_features(system_lengths: Sequence[float], reference_lengths: Sequence[float]) -> np.ndarray:
    """tanh of the length difference over its standard deviation (0 when every difference is the same)."""
    diff = np.asarray(system_lengths, dtype=np.float64) - np.asarray(reference_lengths, dtype=np.float64)
    sd = diff.std()
    return np.tanh(diff / sd) if sd > 0 else np.zeros_like(diff)


def length_controlled(outcomes: Sequence[float], system_lengths: Sequence[float],
                      reference_lengths: Sequence[float], resamples: int, seed: int) -> dict[str, Any]:  # fmt: skip
    """Length-controlled win rate with a bootstrap CI, and the fitted length coefficient φ (> 0: the judge
    prefers the longer answer). outcomes: 1 win, ½ tie, 0 loss per item."""
    y = np.asarray(outcomes, dtype=np.float64)
    n = y.size
    feature = length_features(system_lengths, reference_lengths)
    x = np.stack([np.ones(n), feature], axis=1)
    (theta, phi), = _newton(x[None], y, np.ones((1, n)))  # fmt: skip
    counts = _resample_weights(n, resamples, seed)
    thetas = []
    for start in range(0, resamples, _CHUNK):
        w = counts[start:start + _CHUNK]
        thetas.append(_newton(np.broadcast_to(x, (w.shape[0], n, 2)), y, w)[:, 0])
    rates = 1.0 / (1.0 + np.exp(-np.concatenate(thetas)))
    return {"lc_win_rate": float(1.0 / (1.0 + np.exp(-theta))), "lc_win_rate_ci95": _interval(rates),
            "length_coefficient": float(phi)}  # fmt: skip


def bradley_terry(pairs: Sequence[tuple[str, str, str, float]], reference: str, resamples: int,
                  seed: int) -> dict[str, dict[str, Any]]:  # fmt: skip
    """pairs: (item, system, opponent, outcome for system: 1 / ½ / 0). Per system: β (log-odds against the
    reference), its CI, the BT score 100·σ(β) (the win rate against the reference the model predicts) and the
    rank (1 = strongest), with the range of ranks over the bootstrap."""
    systems = sorted({p[1] for p in pairs} | {p[2] for p in pairs} | {reference})
    free = [s for s in systems if s != reference]
    col = {s: i for i, s in enumerate(free)}
    items = sorted({p[0] for p in pairs})
    row_of = {item: i for i, item in enumerate(items)}
    x = np.zeros((len(pairs), len(free)))
    for b, (_, a, o, _) in enumerate(pairs):
        if a in col:
            x[b, col[a]] += 1.0
        if o in col:
            x[b, col[o]] -= 1.0
    y = np.array([p[3] for p in pairs], dtype=np.float64)
    item_of = np.array([row_of[p[0]] for p in pairs])
    beta = _newton(x[None], y, np.ones((1, len(pairs))))[0]
    counts = _resample_weights(len(items), resamples, seed)[:, item_of]
    boot = np.concatenate([
        _newton(np.broadcast_to(x, (w.shape[0], *x.shape)), y, w)
        for w in (counts[s:s + _CHUNK] for s in range(0, resamples, _CHUNK))
    ])  # fmt: skip
    full = np.concatenate([boot, np.zeros((resamples, 1))], axis=1)  # the reference's column, pinned at 0
    names = [*free, reference]
    point = np.append(beta, 0.0)
    # rank 1 = strongest; ties in β share the better rank
    ranks = (full[:, None, :] > full[:, :, None]).sum(axis=2) + 1
    point_rank = (point[None, :] > point[:, None]).sum(axis=1) + 1
    out: dict[str, dict[str, Any]] = {}
    for j, name in enumerate(names):
        lo, hi = _interval(full[:, j])
        out[name] = {
            "beta": float(point[j]),
            "beta_ci95": [lo, hi],
            "bt_score": float(100.0 / (1.0 + np.exp(-point[j]))),
            "bt_score_ci95": [float(100.0 / (1.0 + np.exp(-lo))), float(100.0 / (1.0 + np.exp(-hi)))],
            "rank": int(point_rank[j]),
            "rank_range": [int(np.quantile(ranks[:, j], 0.025)), int(np.quantile(ranks[:, j], 0.975))],
        }
    return dict(sorted(out.items(), key=lambda kv: (kv[1]["rank"], kv[0])))
