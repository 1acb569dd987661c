"""A `converters build` folder's manifest.json, checked and summarised for both cards: what was read, written and
skipped by reason, per source and split, and which filters were on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from eval.cards.common import CardError, read_json_object
from medasst.facts import MANIFEST, SPLITS

# why a record was left out, in a reader's words (converters/records.py holds the reasons themselves)
REASONS: dict[str, str] = {
    "blank_line": "blank line",
    "empty_question": "empty question",
    "empty_answer": "empty answer",
    "empty_history_turn": "an empty turn in the history",
    "unpaired_question": "a question with no answer",
    "negative_answer": "webMedQA negative (label 0: a randomly sampled wrong answer)",
    "duplicate_qid": "a second positive answer to the same webMedQA question",
    "duplicate": "exact duplicate of an earlier record",
    "in_test": "training record whose question is in a test split",
    "too_long": "longer than --max-chars",
}


def load(data_dir: Path) -> dict[str, Any]:
    if not data_dir.is_dir():
        raise CardError(f"--data {data_dir}: folder not found (the --out-dir of `python -m converters build`)")
    path = data_dir / MANIFEST
    if not path.is_file():
        raise CardError(f"--data {data_dir}: no {MANIFEST} there (run `python -m converters build` first)")
    manifest = read_json_object(path, "manifest")
    for key in ("options", "sources", "merged", "outputs"):
        if not isinstance(manifest.get(key), dict):
            raise CardError(f"{path}: no '{key}' mapping; not a manifest of `converters build` (rebuild the data)")
    for split in SPLITS:
        if not isinstance((manifest["merged"].get(split) or {}).get("written"), int):
            raise CardError(f"{path}: merged.{split}.written missing; rebuild the data")
    return manifest


def sources(manifest: dict[str, Any]) -> list[str]:
    return [s for s in manifest["options"].get("sources") or manifest["sources"] if s in manifest["sources"]]


def filters(manifest: dict[str, Any]) -> list[str]:
    options = manifest["options"]
    max_chars = options.get("max_chars")
    return [
        "exact duplicates removed (within and across sources)" if options.get("dedup") else "duplicates kept",
        "training records whose question appears in a test split removed"
        if options.get("drop_test_overlap") else "train/test question overlap kept",
        f"dialogues longer than {max_chars} characters removed" if max_chars else "no length limit",
        "strict: the build stops at the first malformed record" if options.get("strict")
        else "malformed records counted and skipped (the build fails above the bad-share limit)",
        "empty questions / answers / turns, unanswered questions and webMedQA's negative answers always skipped",
    ]  # fmt: skip


def merged_table(manifest: dict[str, Any]) -> str:
    """Records written per source and split, with the paper's training count beside ours."""
    lines = ["| source | train | test | paper's train |", "|---|---:|---:|---:|"]
    for source in sources(manifest):
        entry = manifest["sources"][source]
        cells = [str((entry.get(split) or {}).get("written", "—")) for split in SPLITS]
        lines.append(f"| {source} | {' | '.join(cells)} | {entry.get('paper_train', '—')} |")
    total = [str(manifest["merged"][split]["written"]) for split in SPLITS]
    lines.append(f"| **all** | {' | '.join(total)} | |")
    return "\n".join(lines) + "\n"


def counts_table(manifest: dict[str, Any]) -> str:
    """Read / written / skipped by reason / repaired, per source and split."""
    lines = ["| source | split | read | written | skipped (by reason) | repaired |", "|---|---|---:|---:|---|---|"]
    for source in sources(manifest):
        for split in SPLITS:
            stats = manifest["sources"][source].get(split)
            if not isinstance(stats, dict):
                continue
            skipped = ", ".join(f"{r}: {n}" for r, n in sorted((stats.get("skipped") or {}).items())) or "—"
            repaired = ", ".join(f"{r}: {n}" for r, n in sorted((stats.get("repaired") or {}).items())) or "—"
            lines.append(f"| {source} | {split} | {stats.get('read')} | {stats.get('written')} | {skipped} | "
                         f"{repaired} |")  # fmt: skip
    used = sorted({r for s in sources(manifest) for sp in SPLITS
                   for r in ((manifest["sources"][s].get(sp) or {}).get("skipped") or {})})  # fmt: skip
    if used:
        lines.append("")
        lines += [f"- `{r}`: {REASONS.get(r, 'malformed input (the file, not a cleaning choice)')}" for r in used]
    return "\n".join(lines) + "\n"
