"""Runs of one system trained with different seeds, aggregated into one row: every value the mean over the seeds,
per-item scores averaged (so the paired tests against the reference still pair items), and the spread (standard
deviation, a t interval over seeds) per column."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from eval.common.files import InputFileError
from eval.metrics import stats
from eval.tables.common import Run


def group(runs: list[Run]) -> list[Run]:
    """One Run per system; several runs of a system must each name a different seed in run.json."""
    by_system: dict[str, list[Run]] = {}
    for run in runs:
        by_system.setdefault(run.system, []).append(run)
    out = []
    for name, members in by_system.items():
        if len(members) == 1:
            out.append(members[0])
            continue
        seeds = [m.seed for m in members]
        if any(s is None for s in seeds) or len({repr(s) for s in seeds}) < len(seeds):
            a, b = members[0], members[1]
            raise InputFileError(f"two run folders name the system {name!r}: {a.path}, {b.path} (runs of one system "
                                 "are aggregated only when each run.json names a different 'seed')")  # fmt: skip
        out.append(merge(name, sorted(members, key=lambda m: repr(m.seed))))
    return out


def _mean_item_scores(maps: list[dict[str, Any]]) -> dict[str, Any]:
    shared = set.intersection(*(set(m) for m in maps))
    return {k: sum(m[k] for m in maps) / len(maps) for k in sorted(shared)}


def merge(name: str, members: list[Run]) -> Run:
    run = Run(system=name, path=members[0].path, seeds=members)
    with_mcq = [m for m in members if m.mcq is not None]
    if with_mcq:
        if len(with_mcq) < len(members):
            raise InputFileError(f"{name}: some seeds have an mcq.json and some do not; report them alike")
        benches = set.intersection(*(set(m.mcq["benchmarks"]) for m in with_mcq))
        for bench in benches:
            if len({m.mcq["benchmarks"][bench]["n"] for m in with_mcq}) > 1:
                raise InputFileError(f"{name}: its seeds answered different numbers of {bench} questions")
        run.mcq = dict(with_mcq[0].mcq)
        run.mcq["overall"] = sum(m.mcq["overall"] for m in with_mcq) / len(with_mcq)
        run.mcq["benchmarks"] = {
            b: {"n": with_mcq[0].mcq["benchmarks"][b]["n"],
                "accuracy": sum(m.mcq["benchmarks"][b]["accuracy"] for m in with_mcq) / len(with_mcq)}
            for b in sorted(benches)
        }  # fmt: skip
        run.correct = {b: _mean_item_scores([m.correct.get(b, {}) for m in with_mcq]) for b in sorted(benches)}
    with_scores = [m for m in members if m.scores is not None]
    if with_scores:
        if len(with_scores) < len(members):
            raise InputFileError(f"{name}: some seeds have a scores.json and some do not; report them alike")
        run.scores = dict(with_scores[0].scores)
        for key, value in with_scores[0].scores.items():
            if isinstance(value, int | float) and not isinstance(value, bool) and key != "n":
                values = [m.scores.get(key) for m in with_scores]
                if all(isinstance(v, int | float) for v in values):
                    run.scores[key] = sum(values) / len(values)
        shared = set.intersection(*(set(m.per_sample) for m in with_scores))
        run.per_sample = {i: _mean_item_scores([m.per_sample[i] for m in with_scores]) for i in sorted(shared)}
        run.generation = with_scores[0].generation
    return run


def spread(run: Run, value_of: Callable[[Run, str], float | None], column: str) -> dict[str, Any] | None:
    """mean, sd and 95 % t interval of a column over an aggregated row's seeds; None for a single run."""
    if not run.seeds:
        return None
    values = [value_of(m, column) for m in run.seeds]
    if any(v is None for v in values):
        return None
    mean, sd, ci = stats.mean_std_ci([float(v) for v in values])
    return {"mean": mean, "sd": sd, "ci95": ci, "seeds": len(values)}


def seeds_text(run: Run) -> str:
    return str(len(run.seeds) or 1)


def sd_text(run: Run, value_of, columns: tuple[str, ...], labels: dict[str, str]) -> str:
    """The sd over seeds per column, e.g. 'CMMLU 0.41, C-Eval 1.10'; '—' for a single run."""
    parts = []
    for col in columns:
        found = spread(run, value_of, col)
        if found and found["sd"] is not None:
            parts.append(f"{labels[col]} {found['sd']:.2f}")
    return ", ".join(parts) or "—"


NOTE = (
    "Rows of several seeds (column `seeds`) show the mean over their runs, with a 95 % t interval over the seeds "
    "(seed variance; column `sd over seeds`); their p-values pair the items' scores averaged over seeds.\n"
)
