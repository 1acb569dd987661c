"""Table 2: accuracy on the paper's CMMLU + C-Eval medical questions, the paper's values beside ours, a paired
bootstrap p-value against the reference per column (overall = the mean of the two benchmarks, as in the paper)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from eval.common.files import atomic_write_text
from eval.metrics import stats
from eval.tables import contamination
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
    if column == "overall":
        value = run.mcq.get("overall")
    else:
        value = (run.mcq.get("benchmarks") or {}).get(column, {}).get("accuracy")
    return None if value is None else float(value)


def mcq_p_values(run: Run, ref: Run, resamples: int, seed: int) -> dict[str, float | None]:
    out: dict[str, float | None] = dict.fromkeys(paper.TABLE2_COLUMNS)
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
    return out


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
    audit = contamination.load_audit(ctx.contamination)
    if audit is not None:
        benches = tuple(c for c in paper.TABLE2_COLUMNS if c != "overall")
        extra2 |= contamination.columns(audit, benches, resamples, seed)
        notes2.append(contamination.note(mcq_runs, audit, benches))
    notes2 += outside_paper(mcq_runs, paper.TABLE2)
    paper2 = {name: values for name, values in paper.TABLE2.items() if name in comparable}
    md, text, rows = build_table(
        mcq_runs, ref if ref and ref.mcq else None, paper.TABLE2_COLUMNS, paper.TABLE2_LABELS, paper2,
        mcq_value, lambda r, f: mcq_p_values(r, f, resamples, seed),
        lambda r: sum(int((r.mcq.get("benchmarks") or {}).get(b, {}).get("n", 0)) for b in ("cmmlu", "ceval")),
        extra2,
    )  # fmt: skip
    md += "".join("\n" + note for note in notes2) + footer
    atomic_write_text(out / "table2.md", md)
    atomic_write_text(out / "table2.csv", text)
    result = {"table2": rows, "table2_protocols": labels2 or "one protocol",
              "table2_paper_questions": sorted(comparable)}  # fmt: skip
    heading = "## Table 2: CMMLU + C-Eval medical multiple choice (accuracy %)\n\n"
    return Section(heading + md + "\n" + paper.TABLE2_NOTE + "\n", ["table2.md", "table2.csv"], result)
