"""Huatuo-26M part of MedAsst = huatuo_encyclopedia_qa + HuatuoGPT-sft-data-v1 (362,420 + 226,042 = 588,462).

- `huatuo_encyclopedia_qa/{train,test}_datasets.jsonl`: `{"questions": [[q, paraphrase, …]], "answers": [a]}`.
  We take the first question (paraphrases of one question would be near-duplicates) and the first answer.
- `HuatuoGPT-sft-data-v1/HuatuoGPT_sft_data_v1.jsonl` (train only): `{"data": ["问：…", "答：…", …]}`,
  alternating turns, sometimes with a dangling last 问 that HuatuoGPT's own trainer drops — so do we (counted).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from converters.jobs import LineJob, read_jobs
from converters.readers import present
from converters.records import Record, Skip

SOURCE = "huatuo26m"
ENCYCLOPEDIA = "huatuo_encyclopedia_qa"
SFT = "HuatuoGPT-sft-data-v1"
RAW_FILES: dict[str, tuple[str, ...]] = {
    "train": (f"{ENCYCLOPEDIA}/train_datasets.jsonl", f"{SFT}/HuatuoGPT_sft_data_v1.jsonl"),
    "test": (f"{ENCYCLOPEDIA}/test_datasets.jsonl",),
}


def inputs(raw_dir: Path, split: str) -> list[Path | None]:
    return present(raw_dir, RAW_FILES[split])


def line_jobs(raw_dir: Path, split: str) -> list[LineJob]:
    jobs = []
    for path in inputs(raw_dir, split):
        if path is None:
            continue
        kind = "sft" if path.parent.name == SFT else "encyclopedia"
        convert = _sft if kind == "sft" else _encyclopedia
        jobs.append(LineJob(path, convert, f"{SOURCE}-{split}-{kind}", f"{SOURCE} {split} {kind}"))
    return jobs


def read(raw_dir: Path, split: str) -> Iterator[Record | Skip]:
    return read_jobs(line_jobs(raw_dir, split), raw_dir)


def _first_text(value: Any, key: str, at: str) -> str | Skip:
    """First string of a list, or of a list of lists (`questions` nests paraphrases); a bare string is accepted
    because huatuo26M-testdatasets stores plain strings in the same keys."""
    while isinstance(value, list):
        if not value:
            return ""  # an empty list is an empty question/answer, dropped later by the cleaner
        value = value[0]
    if not isinstance(value, str):
        return Skip("wrong_type", at, f"{key!r} holds {type(value).__name__}, expected text")
    return value


def _encyclopedia(obj: Any, at: str, rec_id: str) -> Record | Skip:
    if not isinstance(obj, dict):
        return Skip("not_an_object", at, f"got {type(obj).__name__}")
    for key in ("questions", "answers"):
        if key not in obj:
            return Skip("missing_field", at, f"no {key!r}")
    question = _first_text(obj["questions"], "questions", at)
    if isinstance(question, Skip):
        return question
    answer = _first_text(obj["answers"], "answers", at)
    if isinstance(answer, Skip):
        return answer
    return Record(instruction=question, output=answer, history=[], id=rec_id, where=at)


def _role(turn: str) -> str:
    head = turn.lstrip()[:1]
    return head if head in ("问", "答") else ""


def _sft(obj: Any, at: str, rec_id: str) -> Record | Skip:
    if not isinstance(obj, dict):
        return Skip("not_an_object", at, f"got {type(obj).__name__}")
    turns = obj.get("data")
    if turns is None:
        return Skip("missing_field", at, "no 'data'")
    if not isinstance(turns, list) or not all(isinstance(t, str) for t in turns):
        return Skip("wrong_type", at, "'data' must be a list of strings")
    if not turns:
        return Skip("empty_question", at)
    for i, turn in enumerate(turns):
        # Unprefixed turns take their role from their position; a prefix that contradicts it is corrupt.
        expected = "问" if i % 2 == 0 else "答"
        if _role(turn) not in ("", expected):
            return Skip("bad_turns", at, f"data[{i}] starts with {_role(turn)}, expected {expected}")
    repaired = ""
    if len(turns) % 2:
        turns = turns[:-1]
        repaired = "dropped_unanswered_last_question"
    if not turns:
        return Skip("unpaired_question", at)
    pairs = [[turns[i], turns[i + 1]] for i in range(0, len(turns), 2)]
    last = pairs.pop()
    return Record(instruction=last[0], output=last[1], history=pairs, id=rec_id, where=at, repaired=repaired)
