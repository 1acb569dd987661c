"""What every table of the report shares: a run of one system, the protocol its numbers were measured under,
and the writer of a "ours | paper | p vs the reference" table in Markdown and CSV."""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eval.common import fingerprint as fpr

# fields that name the system of a row, not the protocol it was measured under
SYSTEM_FIELDS = {"verb", "model", "adapter", "template", "default_system"}


@dataclass
class Run:
    system: str
    path: Path
    mcq: dict[str, Any] | None = None
    scores: dict[str, Any] | None = None
    per_sample: dict[str, dict[str, float]] = field(default_factory=dict)  # id → metric → score
    correct: dict[str, dict[str, float]] = field(default_factory=dict)  # benchmark → question id → 0/1
    generation: dict[str, Any] | None = None  # generate_run.json of the scored predictions, when found
    seed: Any = None  # run.json's "seed": runs of one system that differ by it are aggregated (eval/tables/seeds.py)
    seeds: list[Run] = field(default_factory=list)  # an aggregated row: the runs it is the mean of


@dataclass(frozen=True)
class Context:
    """The settings every table is made under, and the footer naming the report's inputs."""

    reference: str
    resamples: int
    seed: int
    footer: str
    contamination: str | None = None


@dataclass
class Section:
    """One table's part of the report: its text in report.md, the files it wrote, its entries in report.json."""

    text: str
    files: list[str]
    result: dict[str, Any]


def protocol_of(record: dict[str, Any] | None) -> dict[str, Any] | None:
    """The protocol part of a result's fingerprint: everything but the fields that name the system."""
    fp = fpr.stored(record)
    if fp is None:
        return None
    return {k: v for k, v in fp["fields"].items() if k not in SYSTEM_FIELDS}


def protocol_labels(runs: list[Run], protocol) -> tuple[dict[str, str], str]:
    """Per system a label of the protocol its row was measured under, and a note saying how they differ;
    ({}, "") when every row shares one protocol."""
    found = [(run.system, protocol(run)) for run in runs]
    distinct: list[dict[str, Any]] = []
    for _, proto in found:
        if proto is not None and proto not in distinct:
            distinct.append(proto)
    if len(distinct) <= 1 and all(proto is not None for _, proto in found):
        return {}, ""
    labels: dict[str, str] = {}
    for system, proto in found:
        labels[system] = "unrecorded" if proto is None else f"P{distinct.index(proto) + 1}"
    lines = ["**Rows were measured under different protocols** (column `protocol`); compare them with care:"]
    for i, proto in enumerate(distinct[1:], start=2):
        lines.append(f"- P{i} differs from P1 in {fpr.describe(fpr.differences(distinct[0], proto), limit=6)}")
    if any(proto is None for _, proto in found):
        lines.append("- unrecorded: the result files carry no fingerprint (an older version or another tool)")
    return labels, "\n".join(lines) + "\n"


def no_shared_items(runs: list[Run], ref: Run | None, items) -> list[str]:
    """The systems that share no item with the reference, so no p-value can be computed for them."""
    if ref is None:
        return []
    return [r.system for r in runs if r is not ref and not items(r) & items(ref)]


def num(value: float | None, digits: int = 2) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def p_text(value: float | None) -> str:
    if value is None:
        return "—"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def outside_paper(runs: list[Run], table: dict[str, Any]) -> list[str]:
    """A note naming the rows that are not among the paper's systems (extra rows: no paper value)."""
    extra = [r.system for r in runs if r.system not in table]
    if not extra:
        return []
    return [f"**Not among the paper's systems** (extra rows, not part of its comparison; no paper value): "
            f"{', '.join(extra)}.\n"]  # fmt: skip


def build_table(
    runs: list[Run],
    ref: Run | None,
    columns: tuple[str, ...],
    labels: dict[str, str],
    paper_values: dict[str, dict[str, float]],
    value_of,
    p_of,
    n_of,
    extra: dict[str, Any] | None = None,
    ci_of=None,
    adjust=None,
) -> tuple[str, str, list[dict[str, Any]]]:
    """(Markdown, CSV, rows): per column ours | paper | p vs the reference, then `extra` columns (key → fn(run)).

    ci_of(run, column) → (low, high) or None: ours is shown with its 95 % CI, and a paper value outside it is
    marked †. adjust(p-values) → p-values: the table's p-values as one family (e.g. stats.holm); the raw ones
    stay in the CSV as `_p_raw`."""
    extra = extra or {}
    rows: list[dict[str, Any]] = []
    for run in runs:
        pvals = p_of(run, ref) if ref is not None and run is not ref else {}
        row: dict[str, Any] = {"system": run.system, "n": n_of(run)}
        row.update({key: fn(run) for key, fn in extra.items()})
        for col in columns:
            row[col] = value_of(run, col)
            row[f"{col}_paper"] = paper_values.get(run.system, {}).get(col)
            row[f"{col}_p"] = pvals.get(col)
            if ci_of is not None:
                ci = ci_of(run, col)
                row[f"{col}_ci95"] = None if ci is None else [float(ci[0]), float(ci[1])]
                ours_paper = row[f"{col}_paper"]
                row[f"{col}_paper_outside_ci"] = (None if ci is None or ours_paper is None
                                                  else not ci[0] <= ours_paper <= ci[1])  # fmt: skip
        rows.append(row)
    if adjust is not None:
        cells = [(row, col) for row in rows for col in columns]
        adjusted = adjust([row[f"{col}_p"] for row, col in cells])
        for (row, col), value in zip(cells, adjusted, strict=True):
            row[f"{col}_p_raw"], row[f"{col}_p"] = row[f"{col}_p"], value
    ref_name = ref.system if ref is not None else "—"
    head = ["system", "n"]
    for col in columns:
        head += [labels[col], f"{labels[col]} (paper)", f"p vs {ref_name}"]
    head += list(extra)
    align = ["---"] + ["---:"] * (len(head) - 1 - len(extra)) + ["---"] * len(extra)
    md = ["| " + " | ".join(head) + " |", "|" + "|".join(align) + "|"]
    for row in rows:
        cells = [row["system"], "—" if row["n"] is None else str(row["n"])]
        for col in columns:
            ci = row.get(f"{col}_ci95")
            ours = num(row[col]) + ("" if ci is None else f" [{num(ci[0])}, {num(ci[1])}]")
            paper_cell = num(row[f"{col}_paper"]) + (" †" if row.get(f"{col}_paper_outside_ci") else "")
            cells += [ours, paper_cell, p_text(row[f"{col}_p"])]
        cells += [str(row[key]) for key in extra]
        md.append("| " + " | ".join(cells) + " |")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    suffixes = ("", "_ci95_low", "_ci95_high", "_paper", "_p", "_p_raw") if ci_of is not None else ("", "_paper", "_p")
    csv_head = ["system", "n"] + [f"{c}{s}" for c in columns for s in suffixes] + list(extra)
    writer.writerow(csv_head)
    for row in rows:
        if ci_of is not None:
            for col in columns:
                ci = row.get(f"{col}_ci95")
                row[f"{col}_ci95_low"], row[f"{col}_ci95_high"] = (None, None) if ci is None else ci
                row.setdefault(f"{col}_p_raw", row[f"{col}_p"])
        writer.writerow(["" if row[k] is None else (round(row[k], 6) if isinstance(row[k], float) else row[k])
                         for k in csv_head])  # fmt: skip
    return "\n".join(md) + "\n", buffer.getvalue(), rows
