"""The contamination audit's part of the report: accuracy on the clean, partly and dirty questions.

A question is `clean` only when the audit covered it (its subject, from the same CSV by sha256 as the run's
mcq.json) and checked it (not `unchecked`) and found nothing; `dirty` is a verbatim copy, `partly` a partial or
near copy; a question the audit did not cover is `uncovered`, never clean. An audit of another method version is
refused: its "clean" did not mean the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from eval.common.files import InputFileError, read_json
from eval.tables.common import Run

SUBSETS = ("clean", "partly", "dirty", "unchecked", "uncovered")


@dataclass(frozen=True)
class Audit:
    name: str
    status: dict[str, str]  # question id → dirty / partly / unchecked (others of a covered subject: clean)
    covered: dict[str, str]  # subject key "cmmlu:anatomy" → sha256 of the file the audit read


def load_audit(path: str | None) -> Audit | None:
    """The audit behind `report --contamination` (None: no audit given); refused when made by another method."""
    from eval.contamination import METHOD_VERSION

    if path is None:
        return None
    audit = read_json(path)
    fields = ((audit.get("fingerprint") or {}).get("fields") or {}) if isinstance(audit, dict) else {}
    version = (fields.get("method") or {}).get("version") if isinstance(fields.get("method"), dict) else None
    shaped = isinstance(audit, dict) and isinstance(audit.get("flagged"), list)
    if not shaped or fields.get("verb") != "contamination":
        raise InputFileError(f"{path}: not a contamination.json of `eval.run contamination`")
    if version != METHOD_VERSION:
        raise InputFileError(
            f"{path}: made by audit method version {version!r}, this report reads version {METHOD_VERSION} "
            "(an older audit missed most labelled copies); rerun `eval.run contamination --recompute`"
        )
    covered = audit.get("covered")
    if not isinstance(covered, dict) or not all(isinstance(v, dict) and "sha256" in v for v in covered.values()):
        raise InputFileError(f"{path}: no 'covered' subjects with their sha256")
    status = {str(e["id"]): str(e["status"]) for e in audit["flagged"] if isinstance(e, dict) and "id" in e}
    status |= {str(i): "unchecked" for i in audit.get("unchecked") or []}
    return Audit(str(path), status, {k: str(v["sha256"]) for k, v in covered.items()})


def _subject(qid: str) -> tuple[str, str]:
    """("cmmlu:anatomy", "cmmlu:anatomy:test") for cmmlu:anatomy:test:0; xmedbench:cmb-single:10 is its test."""
    parts = qid.split(":")
    if parts[0] == "xmedbench":
        return ":".join(parts[:2]), ":".join(parts[:2]) + ":test"
    return ":".join(parts[:2]), ":".join(parts[:3])


def subsets(run: Run, audit: Audit) -> dict[str, str]:
    """question id → its subset, for every question the run answered."""
    files = ((run.mcq or {}).get("protocol") or {}).get("files") or {}
    out: dict[str, str] = {}
    for qs in run.correct.values():
        for qid in qs:
            subject, file_key = _subject(qid)
            sha = (files.get(file_key) or {}).get("sha256") if isinstance(files.get(file_key), dict) else None
            if subject not in audit.covered or sha is None or sha != audit.covered[subject]:
                out[qid] = "uncovered"
            else:
                out[qid] = audit.status.get(qid, "clean") if audit.status.get(qid) != "answer_only" else "clean"
    return out


def _ci(draws: np.ndarray) -> tuple[float, float]:
    low, high = np.percentile(100 * draws, [2.5, 97.5])
    return float(low), float(high)


def clean_accuracy(run: Run, audit: Audit, benchmarks: tuple[str, ...], resamples: int, seed: int) -> str:
    """The mean over `benchmarks` (as `overall`) of each one's accuracy on its clean questions, with a percentile
    bootstrap CI; "—" unless every one of them has clean questions."""
    subset = subsets(run, audit)
    present = [b for b in benchmarks if b in run.correct]
    groups = [np.array([v for q, v in sorted(run.correct[b].items()) if subset[q] == "clean"]) for b in present]
    if not groups or any(not len(g) for g in groups):
        return "—"
    value = 100 * float(np.mean([g.mean() for g in groups]))
    rng = np.random.default_rng(seed)
    draws = np.mean([g[rng.integers(0, len(g), (resamples, len(g)))].mean(axis=1) for g in groups], axis=0)
    low, high = _ci(draws)
    return f"{value:.2f} [{low:.2f}, {high:.2f}] n={sum(len(g) for g in groups)}"


def subset_values(run: Run, audit: Audit, benchmarks: tuple[str, ...]) -> dict[str, np.ndarray]:
    subset = subsets(run, audit)
    out: dict[str, list[float]] = {s: [] for s in SUBSETS}
    for b in benchmarks:
        for q, v in sorted(run.correct.get(b, {}).items()):
            out[subset[q]].append(v)
    return {k: np.array(v) for k, v in out.items()}


def pooled(values: np.ndarray) -> str:
    return "—" if not len(values) else f"{100 * values.mean():.2f} n={len(values)}"


def gap(values: dict[str, np.ndarray], resamples: int, seed: int) -> str:
    """dirty − clean accuracy (pooled questions), with a percentile bootstrap CI resampling each subset."""
    dirty, clean = values["dirty"], values["clean"]
    if not len(dirty) or not len(clean):
        return "—"
    rng = np.random.default_rng(seed)
    d = dirty[rng.integers(0, len(dirty), (resamples, len(dirty)))].mean(axis=1)
    c = clean[rng.integers(0, len(clean), (resamples, len(clean)))].mean(axis=1)
    low, high = _ci(d - c)
    return f"{100 * (dirty.mean() - clean.mean()):+.2f} [{low:+.2f}, {high:+.2f}]"


def columns(audit: Audit, benchmarks: tuple[str, ...], resamples: int, seed: int) -> dict[str, Any]:
    """Table 2's extra columns (name → fn(run))."""
    return {
        "overall (clean) [95% CI]": lambda r: clean_accuracy(r, audit, benchmarks, resamples, seed),
        "partly": lambda r: pooled(subset_values(r, audit, benchmarks)["partly"]),
        "dirty": lambda r: pooled(subset_values(r, audit, benchmarks)["dirty"]),
        "dirty − clean [95% CI]": lambda r: gap(subset_values(r, audit, benchmarks), resamples, seed),
    }


def note(runs: list[Run], audit: Audit, benchmarks: tuple[str, ...]) -> str:
    counts = {s: 0 for s in SUBSETS}
    seen: set[str] = set()
    for run in runs:
        for q, s in subsets(run, audit).items():
            if q.split(":", 1)[0] in benchmarks and q not in seen:
                seen.add(q)
                counts[s] += 1
    shown = ", ".join(f"{counts[s]} {s}" for s in SUBSETS)
    return (
        f"**clean / partly / dirty** (contamination audit {audit.name}): of the {len(seen)} questions asked, {shown}. "
        "`overall (clean)` is the mean of CMMLU's and C-Eval's accuracy on their clean questions (as `overall`); "
        "`partly` and `dirty` pool their questions; `dirty − clean` compares pooled accuracies (bootstrap CI, "
        "each subset resampled). Clean means the audit covered the question (same CSV by sha256) and found no copy; "
        "`unchecked` (too short to tell) and `uncovered` questions are never clean.\n"
    )
