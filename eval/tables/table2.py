"""Table 2: accuracy on the paper's CMMLU + C-Eval medical questions, the paper's values beside ours, a paired
bootstrap p-value against the reference per column (overall = the mean of the two benchmarks, as in the paper;
beside it the question-weighted overall, where a C-Eval question does not weigh ~15 CMMLU ones). Each cell has a
95 % CI (Wilson per benchmark, a stratified bootstrap for the paper's overall), a paper value outside it is
marked †, and the table's p-values are Holm-adjusted as one family."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from eval.common.files import atomic_write_text
from eval.metrics import stats
from eval.tables import contamination, seeds
from eval.tables import paper_numbers as paper
from eval.tables.common import (
    Context,
    Run,
    Section,
    build_table,
    no_shared_items,
    outside_paper,
    protocol_labels,
    protocol_of,
)

BENCHES = tuple(c for c in paper.TABLE2_COLUMNS if c != "overall")
WEIGHTED = "weighted"
COLUMNS = (*paper.TABLE2_COLUMNS, WEIGHTED)
LABELS = paper.TABLE2_LABELS | {WEIGHTED: "overall (per question)"}


def mcq_protocol(run: Run) -> dict[str, Any] | None:
    return protocol_of(run.mcq)


def paper_questions(run: Run) -> bool:
    """Whether the run answered the paper's 1,415 questions (CMMLU 1,325 + C-Eval 90 of its nine subjects)."""
    from eval.data.benchmarks import PAPER, PAPER_BENCHMARKS, PAPER_COUNTS

    benches = (run.mcq or {}).get("benchmarks") or {}
    if {b: v.get("n") for b, v in benches.items() if b in PAPER_BENCHMARKS} != PAPER_COUNTS:
        return False
    subjects = ((run.mcq or {}).get("protocol") or {}).get("subjects")
    paper_subjects = {f"{b}:{s}" for b, names in PAPER.items() for s in names}
    asked = {s for s in subjects or [] if s.split(":", 1)[0] in PAPER_BENCHMARKS}
    return subjects is None or asked == paper_subjects


def mcq_value(run: Run, column: str) -> float | None:
    if run.mcq is None:
        return None
    if column == WEIGHTED:
        counts = _counts(run)
        return None if counts is None else 100.0 * sum(c for c, _ in counts) / sum(n for _, n in counts)
    if column == "overall":
        value = run.mcq.get("overall")
    else:
        value = (run.mcq.get("benchmarks") or {}).get(column, {}).get("accuracy")
    return None if value is None else float(value)


def _counts(run: Run) -> list[tuple[float, int]] | None:
    """(correct, n) per benchmark of Table 2, None unless the run has both."""
    benches = (run.mcq or {}).get("benchmarks") or {}
    if not all(b in benches for b in BENCHES):
        return None
    return [(benches[b]["accuracy"] * benches[b]["n"] / 100.0, int(benches[b]["n"])) for b in BENCHES]


def mcq_ci(run: Run, column: str, resamples: int, seed: int) -> tuple[float, float] | None:
    """95 % CI (×100): Wilson for a benchmark and for the pooled questions; the mean of the two benchmarks from a
    bootstrap of each on its own (it needs the per-question correctness of mcq.json's predictions)."""
    spread = seeds.spread(run, mcq_value, column)
    if spread is not None:
        return spread["ci95"]
    counts = _counts(run)
    if column in BENCHES:
        bench = ((run.mcq or {}).get("benchmarks") or {}).get(column)
        if not bench:
            return None
        lo, hi = stats.wilson_ci(bench["accuracy"] * bench["n"] / 100.0, int(bench["n"]))
    elif column == WEIGHTED:
        if counts is None:
            return None
        lo, hi = stats.wilson_ci(sum(c for c, _ in counts), sum(n for _, n in counts))
    else:
        if not all(run.correct.get(b) for b in BENCHES):
            return None
        groups = [np.array(list(run.correct[b].values())) for b in BENCHES]
        lo, hi = stats.stratified_bootstrap_ci(groups, lambda m: sum(m) / len(m), resamples, seed)
    return 100.0 * lo, 100.0 * hi


def mcq_p_values(run: Run, ref: Run, resamples: int, seed: int) -> dict[str, float | None]:
    out: dict[str, float | None] = dict.fromkeys(COLUMNS)
    benches = [b for b in paper.TABLE2_COLUMNS if b != "overall" and b in run.correct and b in ref.correct]
    groups_a, groups_b = [], []
    for bench in benches:
        shared = sorted(set(run.correct[bench]) & set(ref.correct[bench]))
        if not shared:
            continue
        a = np.array([run.correct[bench][q] for q in shared])
        b = np.array([ref.correct[bench][q] for q in shared])
        out[bench] = stats.paired_bootstrap_p([a], [b], resamples=resamples, seed=seed)
        groups_a.append(a)
        groups_b.append(b)
    if len(groups_a) == len([c for c in paper.TABLE2_COLUMNS if c != "overall"]):

        def overall(means: list[float]) -> float:
            return sum(means) / len(means)

        out["overall"] = stats.paired_bootstrap_p(groups_a, groups_b, overall, resamples=resamples, seed=seed)
        pooled_a, pooled_b = np.concatenate(groups_a), np.concatenate(groups_b)
        out[WEIGHTED] = stats.paired_bootstrap_p([pooled_a], [pooled_b], resamples=resamples, seed=seed)
    return out


def _note(tests: int, marked: bool) -> str:
    return (
        "Each accuracy with its 95 % CI: Wilson for CMMLU, C-Eval and the per-question overall (all their questions "
        "pooled, each weighing the same); for the paper's overall (the mean of the two benchmarks, so a C-Eval "
        "question weighs ~15 CMMLU ones) a bootstrap of each benchmark on its own. "
        + ("† marks a paper value outside our CI. " if marked else "")
        + (f"p-values are Holm-adjusted over the table's {tests} tests (the raw ones: `_p_raw` in table2.csv).\n"
           if tests else "\n")
    )


def section(runs: list[Run], ref: Run | None, ctx: Context, out: Path) -> Section | None:
    # Table 2 is CMMLU + C-Eval: a run of other benchmarks only (XMedBench) gets its own table, not a row
    mcq_runs = [r for r in runs if r.mcq is not None and set(r.mcq.get("benchmarks") or {}) & set(paper.TABLE2_COLUMNS)]
    if not mcq_runs:
        return None
    reference, resamples, seed, footer = ctx.reference, ctx.resamples, ctx.seed, ctx.footer
    labels2, note2 = protocol_labels(mcq_runs, mcq_protocol)
    extra2: dict[str, Any] = {"protocol": lambda r: labels2[r.system]} if labels2 else {}
    comparable = {r.system for r in mcq_runs if paper_questions(r)}
    notes2 = [note2] if note2 else []
    if len(comparable) < len(mcq_runs):
        extra2["questions"] = lambda r: "the paper's 1,415" if r.system in comparable else "other (see note)"
        notes2.append(
            "**Rows on other questions than the paper's 1,415** (CMMLU 1,325 + C-Eval 90 of its nine subjects) "
            "show no paper value: their accuracy is not comparable with it.\n"
        )
    lonely = no_shared_items(mcq_runs, ref if ref and ref.mcq else None,
                             lambda r: {q for qs in r.correct.values() for q in qs})  # fmt: skip
    if lonely:
        notes2.append(f"No p-value for {', '.join(lonely)}: no question in common with {reference}.\n")
    if any((r.mcq.get("protocol") or {}).get("scoring_method") == "generate" for r in mcq_runs):
        extra2["scoring"] = lambda r: (
            f"generate ({r.mcq.get('unparsed', 0)} unparsed)"
            if (r.mcq.get("protocol") or {}).get("scoring_method") == "generate"
            else "logits"
        )
        notes2.append(
            "**scoring**: `logits` reads the letter with the highest next-token logit; `generate` parses it from a "
            "greedy reply, and an unparsed reply counts as wrong.\n"
        )
    if any(r.seeds for r in mcq_runs):
        extra2["seeds"] = seeds.seeds_text
        extra2["sd over seeds"] = lambda r: seeds.sd_text(r, mcq_value, COLUMNS, LABELS)
        notes2.append(seeds.NOTE)
    audit = contamination.load_audit(ctx.contamination)
    if audit is not None:
        benches = tuple(c for c in paper.TABLE2_COLUMNS if c != "overall")
        extra2 |= contamination.columns(audit, benches, resamples, seed)
        notes2.append(contamination.note(mcq_runs, audit, benches))
    notes2 += outside_paper(mcq_runs, paper.TABLE2)
    paper2 = {name: values for name, values in paper.TABLE2.items() if name in comparable}
    md, text, rows = build_table(
        mcq_runs, ref if ref and ref.mcq else None, COLUMNS, LABELS, paper2,
        mcq_value, lambda r, f: mcq_p_values(r, f, resamples, seed),
        lambda r: sum(int((r.mcq.get("benchmarks") or {}).get(b, {}).get("n", 0)) for b in ("cmmlu", "ceval")),
        extra2, ci_of=lambda r, c: mcq_ci(r, c, resamples, seed), adjust=stats.holm,
    )  # fmt: skip
    tests = sum(row[f"{c}_p_raw"] is not None for row in rows for c in COLUMNS)
    notes2.insert(0, _note(tests, any(row.get(f"{c}_paper_outside_ci") for row in rows for c in COLUMNS)))
    md += "".join("\n" + note for note in notes2) + footer
    atomic_write_text(out / "table2.md", md)
    atomic_write_text(out / "table2.csv", text)
    result = {"table2": rows, "table2_protocols": labels2 or "one protocol",
              "table2_paper_questions": sorted(comparable)}  # fmt: skip
    heading = "## Table 2: CMMLU + C-Eval medical multiple choice (accuracy %)\n\n"
    return Section(heading + md + "\n" + paper.TABLE2_NOTE + "\n", ["table2.md", "table2.csv"], result)
