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
) -> tuple[str, str, list[dict[str, Any]]]:
    """(Markdown, CSV, rows): per column ours | paper | p vs the reference, then `extra` columns (key → fn(run))."""
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
        rows.append(row)
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
            cells += [num(row[col]), num(row[f"{col}_paper"]), p_text(row[f"{col}_p"])]
        cells += [str(row[key]) for key in extra]
        md.append("| " + " | ".join(cells) + " |")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    csv_head = ["system", "n"] + [f"{c}{s}" for c in columns for s in ("", "_paper", "_p")] + list(extra)
    writer.writerow(csv_head)
    for row in rows:
        writer.writerow(["" if row[k] is None else (round(row[k], 6) if isinstance(row[k], float) else row[k])
                         for k in csv_head])  # fmt: skip
    return "\n".join(md) + "\n", buffer.getvalue(), rows
