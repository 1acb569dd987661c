"""XMedBench: per system, accuracy per exam source and in all, each with a percentile bootstrap 95% CI."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np

from eval.common.files import atomic_write_text
from eval.metrics import stats
from eval.tables import contamination
from eval.tables.common import Context, Run, Section


def table(runs: list[Run], resamples: int, seed: int, audit: contamination.Audit | None = None):
    """Per system, XMedBench accuracy per source and in all, each with a percentile bootstrap 95% CI; with an
    audit, a second row per system on the clean questions only (`<system> (clean)`)."""
    from eval.data.benchmarks import XMEDBENCH_SOURCES

    rows: list[dict[str, Any]] = []
    sources = [s for s in XMEDBENCH_SOURCES if any(f"xmedbench:{s}" in (r.mcq or {}).get("subjects", {}) for r in runs)]
    passes = [(run, False) for run in runs] + ([(run, True) for run in runs] if audit is not None else [])
    for run, clean_only in passes:
        correct = run.correct.get("xmedbench", {})
        if clean_only:
            subset = contamination.subsets(run, audit)
            correct = {q: v for q, v in correct.items() if subset[q] == "clean"}
        row: dict[str, Any] = {"system": f"{run.system} (clean)" if clean_only else run.system}
        for source in [*sources, "all"]:
            values = np.array([v for q, v in correct.items() if source == "all" or q.split(":")[1] == source])
            if not len(values):
                row[source] = None
                continue
            ((low, high),) = stats.bootstrap_ci(values[:, None], resamples=resamples, seed=seed)
            row[source] = {"accuracy": 100 * float(values.mean()), "ci95": [100 * low, 100 * high], "n": len(values)}
        multiple = (run.mcq or {}).get("multiple_answer") or {}
        row["multiple_answer_not_scored"] = sum(m.get("n", 0) for k, m in multiple.items() if k.startswith("xmed"))
        rows.append(row)
    head = ["system", *sources, "all", "multiple-answer (not scored)"]
    md = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["system", *[f"{s}{x}" for s in [*sources, "all"] for x in ("", "_ci_low", "_ci_high", "_n")],
                     "multiple_answer_not_scored"])  # fmt: skip
    for row in rows:
        cells, line = [row["system"]], [row["system"]]
        for source in [*sources, "all"]:
            value = row[source]
            if value is None:
                cells.append("—")
                line += ["", "", "", ""]
                continue
            low, high = value["ci95"]
            cells.append(f"{value['accuracy']:.2f} [{low:.2f}, {high:.2f}] n={value['n']}")
            line += [round(value["accuracy"], 6), round(low, 6), round(high, 6), value["n"]]
        cells.append(str(row["multiple_answer_not_scored"]))
        line.append(row["multiple_answer_not_scored"])
        md.append("| " + " | ".join(cells) + " |")
        writer.writerow(line)
    return "\n".join(md) + "\n", buffer.getvalue(), rows


def section(runs: list[Run], ref: Run | None, ctx: Context, out: Path) -> Section | None:
    xmed_runs = [r for r in runs if r.mcq is not None and "xmedbench" in (r.mcq.get("benchmarks") or {})]
    if not xmed_runs:
        return None
    resamples, seed, footer = ctx.resamples, ctx.seed, ctx.footer
    audit = contamination.load_audit(ctx.contamination)
    md, text, rows = table(xmed_runs, resamples, seed, audit)
    if audit is not None:
        md += (
            "\n`(clean)` rows: the same systems on the XMedBench questions the contamination audit covered and "
            "found clean (its own row, never averaged into Table 2's `overall (clean)`); unchecked and uncovered "
            "questions are left out.\n"
        )
    md += (
        "\nSingle-answer questions only, read as Table 2 (the letter with the highest logit among the "
        "question's own options, A–E). Multiple-answer items are counted, not scored. `cmmlu-medical` repeats "
        "CMMLU test questions (843 of them are among Table 2's 1,325).\n" + footer
    )
    atomic_write_text(out / "table_xmedbench.md", md)
    atomic_write_text(out / "table_xmedbench.csv", text)
    heading = "## XMedBench: Chinese medical exams (accuracy %, 95% CI)\n\n"
    return Section(heading + md, ["table_xmedbench.md", "table_xmedbench.csv"], {"table_xmedbench": rows})

