"""The contamination audit's part of Table 2: accuracy on the questions the audit did not flag."""

from __future__ import annotations

import numpy as np

from eval.common.files import InputFileError, read_json
from eval.tables.common import Run


def flagged_questions(path: str | None) -> set[str] | None:
    """Question ids the contamination audit flagged (None: no audit given)."""
    if path is None:
        return None
    audit = read_json(path)
    flagged = audit.get("flagged") if isinstance(audit, dict) else None
    if not isinstance(flagged, list) or not all(isinstance(f, dict) and "id" in f for f in flagged):
        raise InputFileError(f"{path}: not a contamination.json (no 'flagged' list of ids)")
    return {str(f["id"]) for f in flagged}


def clean_accuracy(run: Run, flagged: set[str], resamples: int, seed: int) -> str:
    """Overall accuracy (mean of the benchmarks) on the unflagged questions, with a percentile bootstrap CI."""
    groups = [np.array([v for q, v in qs.items() if q not in flagged]) for _, qs in sorted(run.correct.items())]
    groups = [g for g in groups if len(g)]
    if not groups:
        return "—"
    value = 100 * float(np.mean([g.mean() for g in groups]))
    rng = np.random.default_rng(seed)
    draws = np.mean([g[rng.integers(0, len(g), (resamples, len(g)))].mean(axis=1) for g in groups], axis=0)
    low, high = np.percentile(100 * draws, [2.5, 97.5])
    return f"{value:.2f} [{low:.2f}, {high:.2f}] n={sum(len(g) for g in groups)}"
