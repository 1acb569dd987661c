"""Which dialogue each system's answers were generated for: the judge pairs answers with the dataset by id, so a
dataset whose ids stayed while its questions moved would be judged against questions nobody answered.

Per system, the strongest evidence there is decides: generate's `generate_run.json` beside the predictions names
the dataset and the sha256 of its files (they must equal the judge's); without it, the prompt each prediction
line carries (LLaMA-Factory's predict writes it) must hold the start of the item's first user turn; without
either, the system is `unchecked`, which the run says and records.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from eval.common import fingerprint as fpr
from eval.common.files import InputFileError, iter_jsonl, read_json

GENERATE_RUN = "generate_run.json"
HEAD_CHARS = 16  # the start of the first user turn: the part of a prompt no truncation cuts
_SPACE = re.compile(r"\s+")


def _squeezed(text: str) -> str:
    return _SPACE.sub("", text)


def _first_turn(record: dict[str, Any]) -> str:
    history = record.get("history") or []
    if history and isinstance(history[0], list | tuple) and history[0]:
        return str(history[0][0])
    return str(record.get("instruction") or record.get("input") or "")


def check(name: str, predictions: Path, dataset: str, files: dict[str, str], records: dict[str, dict[str, Any]],
          allow_incomplete: bool = False) -> str:  # fmt: skip
    """How `name`'s answers were tied to the dataset ("generate_run.json", "prompts", "unchecked"), or an
    InputFileError naming the mismatch."""
    run_file = predictions.parent / GENERATE_RUN
    if run_file.is_file():
        run = read_json(run_file)
        if not isinstance(run, dict):
            raise InputFileError(f"{run_file}: not a generate run record")
        if not run.get("complete") and not allow_incomplete:
            raise InputFileError(
                f"{name}: {run_file} says the generate run is incomplete (killed or still running); finish it "
                "(rerun generate), or pass --allow-incomplete to judge the items it answered"
            )
        stored = fpr.stored(run)
        made_on = (stored or {}).get("fields", {}).get("dataset") if stored else None
        if isinstance(made_on, dict):
            if made_on.get("name") != dataset:
                raise InputFileError(
                    f"{name}: its answers are to {made_on.get('name')!r} ({run_file}), not {dataset!r}; pass "
                    f"--dataset {made_on.get('name')}"
                )
            if made_on.get("files") != files:
                changed = sorted(set(files) ^ set(made_on.get("files") or {})) or sorted(
                    f for f in files if files[f] != (made_on.get("files") or {}).get(f)
                )
                raise InputFileError(
                    f"{name}: {dataset!r} has changed since its answers were generated ({', '.join(changed)} differ "
                    f"from {run_file}); the judge would show questions nobody answered. Regenerate, or restore the "
                    "dataset"
                )
            return GENERATE_RUN
    checked = 0
    for lineno, row in iter_jsonl(predictions):
        prompt = row.get("prompt")
        record = records.get(str(row.get("id")))
        if not isinstance(prompt, str) or not prompt.strip() or record is None:
            continue
        head = _squeezed(_first_turn(record))[:HEAD_CHARS]
        if head and head not in _squeezed(prompt):
            raise InputFileError(
                f"{name}: {predictions} line {lineno} answered another question than {dataset!r} holds under id "
                f"{row.get('id')!r} (its prompt lacks {head!r}); was the dataset changed after generating?"
            )
        checked += 1
    return "prompts" if checked else "unchecked"
