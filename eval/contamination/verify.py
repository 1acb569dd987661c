"""Exact checks of a candidate (training record, exam item), and the near-duplicate score of those that fail.

Verbatim: the item's whole stem occurs in the record (its turns end to end, labels cut, normalised) and after it
either every option (the *question side*: stem and options, any order, one line or many) or the correct option as the
answer (the *answer side*: the letter or number the copy itself gives that option, after an answer marker in
that turn or a later one; or the option's text after a marker, at the start of a later turn, or right after a
stem that lists no options). OpenCompass's classes follow: `input-and-label` when the answer side is there,
`input` when only the question side is, `stem` when a long stem (≥ n characters) stands alone.

Near: rapidfuzz's partial_ratio (Indel similarity of the item's text, stem then options, against its best
aligned window of the turn), run only on candidates that failed the exact check.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from eval.contamination.items import ExamItem
from eval.contamination.text import Labelled

MAX_OCCURRENCES = 16  # of one stem in one turn: a stem repeated more often is not an exam copy
RANK = {"input-and-label": 3, "input": 2, "stem": 1}


@dataclass
class Match:
    kind: str  # input-and-label, input, stem
    question: bool  # stem and every option
    answer: bool
    turn: int
    span: str


def _occurrences(text: str, needle: str):
    start, seen = text.find(needle), 0
    while start >= 0 and seen < MAX_OCCURRENCES:
        yield start
        seen += 1
        start = text.find(needle, start + 1)


@dataclass
class Record:
    """A record's turns, labelled, end to end: a copy may put its stem in `instruction` and its options in
    `input`, or its answer in `output`."""

    text: str
    labels: dict[int, int]
    markers: list[tuple[int, tuple[int, ...]]]
    starts: list[int]  # where each turn begins in text


def record_text(turns: list[Labelled]) -> Record:
    text, labels, markers, starts = [], {}, [], []
    size = 0
    for turn in turns:
        starts.append(size)
        labels |= {size + p: k for p, k in turn.labels.items()}
        markers += [(size + p, keys) for p, keys in turn.markers]
        text.append(turn.text)
        size += len(turn.text)
    return Record("".join(text), labels, markers, starts)


def _turn_of(record: Record, pos: int) -> int:
    return bisect.bisect_right(record.starts, pos) - 1


def _answer_given(item: ExamItem, record: Record, pos: int, start: int, window: str, listed: bool) -> bool:
    """Whether the copy gives the correct option as its answer (see the module's docstring)."""
    turn, reach_end = _turn_of(record, pos), start + len(window) + 16
    # markers of this item: after its stem and before the next item could begin, or in a later turn
    later = [(m, keys) for m, keys in record.markers if pos < m and (m <= reach_end or _turn_of(record, m) > turn)]
    labels: list[int] = []
    for a in item.answer:
        correct = item.options[a] if a < len(item.options) else ""
        at = window.find(correct) if correct else -1
        key = record.labels.get(start + at) if at >= 0 else None
        if key is None:
            labels = []
            break
        labels.append(key)
    if labels and any(set(labels) <= set(keys) for _, keys in later):
        return True
    if len(item.answer) != 1 or not item.options[item.answer[0]]:
        return False
    correct = item.options[item.answer[0]]
    if any(not keys and record.text.startswith(correct, m) for m, keys in later):
        return True
    # a later turn that starts with it (the reply), not the turn of options itself
    listed_end = start + max((window.find(o) + len(o) for o in item.options if o in window), default=0)
    if any(s > pos and s >= listed_end and record.text.startswith(correct, s) for s in record.starts):
        return True
    return not listed and window.startswith(correct)


def verbatim(item: ExamItem, turns: list[Labelled], n: int) -> Match | None:
    record = record_text(turns)
    best: Match | None = None
    reach = 2 * sum(len(o) for o in item.options) + 24
    for pos in _occurrences(record.text, item.stem):
        start = pos + len(item.stem)
        window = record.text[start : start + reach]
        listed = all(o in window for o in item.options)
        answer = _answer_given(item, record, pos, start, window, listed)
        if answer:
            kind = "input-and-label"
        elif listed:
            kind = "input"
        elif len(item.stem) >= n:
            kind = "stem"
        else:
            continue
        end = start + max((window.find(o) + len(o) for o in item.options if o in window), default=0)
        match = Match(kind, listed, answer, _turn_of(record, pos), record.text[pos:end] if listed else item.stem)
        if best is None or RANK[kind] > RANK[best.kind]:
            best = match
        if kind == "input-and-label":
            return best
    return best


def near(item: ExamItem, turns: list[Labelled], cutoff: float) -> tuple[float, int, str] | None:
    """(score 0–100, turn, the aligned training text) of the best turn at or above `cutoff`, else None."""
    from rapidfuzz import fuzz

    best = None
    needle = item.text
    for ti, turn in enumerate(turns):
        if not turn.text:
            continue
        if len(turn.text) < len(needle):  # else a short turn would align inside the item and score 100
            score = fuzz.ratio(needle, turn.text, score_cutoff=cutoff)
            if score and (best is None or score > best[0]):
                best = (round(score, 2), ti, turn.text)
            continue
        found = fuzz.partial_ratio_alignment(needle, turn.text, score_cutoff=cutoff)
        if found is not None and (best is None or found.score > best[0]):
            best = (round(found.score, 2), ti, turn.text[found.dest_start : found.dest_end])
    return best
