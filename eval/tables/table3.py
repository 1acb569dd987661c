"""Table 3: BLEU-4 / ROUGE on the test dialogues (and Figure 4), the paper's values beside ours, a paired
bootstrap p-value against the reference over per-sample scores, on the items both systems answered."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from eval.common.files import atomic_write_text
from eval.metrics import stats
from eval.tables import paper_numbers as paper
from eval.tables import seeds
from eval.tables.common import (
    Context,
    Run,
    Section,
    build_table,
    no_shared_items,
    num,
    outside_paper,
    protocol_labels,
    protocol_of,
)
from eval.tables.figure import plot_table3


def generation_protocol(run: Run) -> dict[str, Any] | None:
    """Generation (data, lengths, decoding, backend) plus scoring (metric, bootstrap) of a Table 3 row."""
    gen, score = protocol_of(run.generation), protocol_of(run.scores)
    if gen is None or score is None:
        return None
    score.pop("predictions_sha256", None)
    return {"generate": gen, "score": score}


def backend_of(run: Run) -> str:
    """How the row's answers were generated: our generate's backend, or LF's predict when no run record exists."""
    if run.generation is None:
        return "unrecorded (e.g. llamafactory-cli predict)"
    return str(run.generation.get("backend") or "unrecorded")


def truncation_of(run: Run) -> str:
    cut = (run.generation or {}).get("truncation")
    if not isinstance(cut, dict):
        return "—"
    return (
        f"{cut.get('prompts_cut')} prompts, {cut.get('references_cut')} refs of {cut.get('n')} "
        f"at {cut.get('cutoff_len')}"
    )


def gen_p_values(run: Run, ref: Run, resamples: int, seed: int) -> dict[str, float | None]:
    out: dict[str, float | None] = dict.fromkeys(paper.TABLE3_COLUMNS)
    shared = sorted(set(run.per_sample) & set(ref.per_sample))
    if not shared:
        return out
    if len(shared) < max(len(run.per_sample), len(ref.per_sample)):
        warnings.warn(f"{run.system} vs {ref.system}: testing on the {len(shared)} samples both have", stacklevel=2)
    for metric in paper.TABLE3_COLUMNS:
        if all(metric in run.per_sample[i] and metric in ref.per_sample[i] for i in shared):
            a = np.array([run.per_sample[i][metric] for i in shared])
            b = np.array([ref.per_sample[i][metric] for i in shared])
            out[metric] = stats.paired_bootstrap_p([a], [b], resamples=resamples, seed=seed)
    return out


def prompt_cut_ids(run: Run) -> set[str] | None:
    """The dialogues whose prompt lost tokens at cutoff_len in this run's generation (None: not recorded)."""
    cut = (run.generation or {}).get("truncation")
    if not isinstance(cut, dict) or not isinstance(cut.get("prompt_ids_cut"), list):
        return None
    return {str(i) for i in cut["prompt_ids_cut"]}


def uncut_table(gen_runs: list[Run]) -> tuple[str, list[dict[str, Any]]]:
    """Table 3's means on the dialogues no system's prompt lost a token of: which dialogues are cut depends on
    each tokenizer (and, with LLaMA-Factory's truncation, on the reference's length), so the full table compares
    systems partly on different inputs; this one does not. Empty when a run does not record its cut prompts."""
    cuts = [prompt_cut_ids(r) for r in gen_runs]
    if any(c is None for c in cuts) or not any(cuts):
        return "", []
    cut = set().union(*cuts)
    shared = set.intersection(*(set(r.per_sample) for r in gen_runs)) - cut
    rows = []
    head = ["system", "n", *[paper.TABLE3_LABELS[c] for c in paper.TABLE3_COLUMNS]]
    md = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for run in gen_runs:
        row: dict[str, Any] = {"system": run.system, "n": len(shared)}
        for metric in paper.TABLE3_COLUMNS:
            values = [run.per_sample[i][metric] for i in sorted(shared) if metric in run.per_sample[i]]
            row[metric] = float(np.mean(values)) if values else None
        rows.append(row)
        md.append("| " + " | ".join([run.system, str(len(shared))] + [num(row[c]) for c in paper.TABLE3_COLUMNS])
                  + " |")  # fmt: skip
    heading = (f"\n### On the {len(shared)} dialogues no system's prompt was cut ({len(cut)} cut for at least one "
               "system)\n\n")  # fmt: skip
    return heading + "\n".join(md) + "\n", rows


def section(runs: list[Run], ref: Run | None, ctx: Context, out: Path) -> Section | None:
    gen_runs = [r for r in runs if r.scores is not None]
    if not gen_runs:
        return None
    reference, resamples, seed, footer = ctx.reference, ctx.resamples, ctx.seed, ctx.footer
    labels3, note3 = protocol_labels(gen_runs, generation_protocol)
    extra3: dict[str, Any] = {
        "backend": backend_of,
        "cut at cutoff_len": truncation_of,
        "repeated 4-grams %": lambda r: num(r.scores.get("repeated-4grams")),
    }
    if labels3:
        extra3["protocol"] = lambda r: labels3[r.system]
    notes3 = [note3] if note3 else []
    value3 = lambda r, c: None if r.scores.get(c) is None else float(r.scores[c])  # noqa: E731
    if any(r.seeds for r in gen_runs):
        extra3["seeds"] = seeds.seeds_text
        extra3["sd over seeds"] = lambda r: seeds.sd_text(r, value3, paper.TABLE3_COLUMNS, paper.TABLE3_LABELS)
        notes3.append(seeds.NOTE)
    notes3 += outside_paper(gen_runs, paper.TABLE3)
    lonely = no_shared_items(gen_runs, ref if ref and ref.scores else None, lambda r: set(r.per_sample))
    if lonely:
        notes3.append(f"No p-value for {', '.join(lonely)}: no test item in common with {reference}.\n")
    md, text, rows = build_table(
        gen_runs, ref if ref and ref.scores else None, paper.TABLE3_COLUMNS, paper.TABLE3_LABELS, paper.TABLE3,
        value3,
        lambda r, f: gen_p_values(r, f, resamples, seed),
        lambda r: r.scores.get("n"),
        extra3,
    )  # fmt: skip
    uncut_md, uncut_rows = uncut_table(gen_runs)
    md += uncut_md + "".join("\n" + note for note in notes3) + footer
    atomic_write_text(out / "table3.md", md)
    atomic_write_text(out / "table3.csv", text)
    result: dict[str, Any] = {"table3": rows, "table3_protocols": labels3 or "one protocol"}
    if uncut_rows:
        result["table3_uncut"] = uncut_rows
    values = [[row[c] for c in paper.TABLE3_COLUMNS] for row in rows]
    labels = [paper.TABLE3_LABELS[c] for c in paper.TABLE3_COLUMNS]
    result["figure4"] = plot_table3(
        [r.system for r in gen_runs], paper.TABLE3_COLUMNS, labels, values, out / "figure4.png"
    )
    heading = "## Table 3: generation on the test set (×100)\n\n"
    return Section(heading + md + "\n![Figure 4](figure4.png)\n", ["table3.md", "table3.csv", "figure4.png"], result)
