"""Exact checks of a candidate (training record, exam item), and the near-duplicate score of those that fail.

Verbatim: the item's whole stem occurs in a turn of the record (labels cut, normalised) and after it either
every option (the *question side*: stem and options, any order, one line or many) or the correct option as the
answer (the *answer side*: the letter or number the copy itself gives that option, after an answer marker in
that turn or a later one; or the option's text after a marker, at the start of a later turn, or right after a
stem that lists no options). OpenCompass's classes follow: `input-and-label` when the answer side is there,
`input` when only the question side is, `stem` when a long stem (≥ n characters) stands alone.

Near: rapidfuzz's partial_ratio (Indel similarity of the item's text, stem then options, against its best
aligned window of the turn), run only on candidates that failed the exact check.
"""

from __future__ import annotations

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


def _answer_given(item: ExamItem, turns: list[Labelled], ti: int, pos: int, window_start: int, window: str,
                  listed: bool) -> bool:  # fmt: skip
    turn = turns[ti]
    labels: list[int] = []
    for a in item.answer:
        correct = item.options[a] if a < len(item.options) else ""
        if not correct:
            return False
        at = window.find(correct)
        if at < 0:
            labels = []
            break
        key = turn.labels.get(window_start + at)
        if key is None:
            labels = []
            break
        labels.append(key)
    later = [(ti, m) for m in turn.markers if m[0] > pos] + [(tj, m) for tj in range(ti + 1, len(turns))
                                                             for m in turns[tj].markers]  # fmt: skip
    if labels and any(set(labels) <= set(keys) for _, (_, keys) in later):
        return True
    if len(item.answer) != 1:
        return False
    correct = item.options[item.answer[0]]
    for tj, (mpos, keys) in later:
        if not keys and turns[tj].text.startswith(correct, mpos):
            return True
    if any(turns[tj].text.startswith(correct) for tj in range(ti + 1, len(turns))):
        return True
    return not listed and window.startswith(correct)


def verbatim(item: ExamItem, turns: list[Labelled], n: int) -> Match | None:
    best: Match | None = None
    reach = 2 * sum(len(o) for o in item.options) + 24
    for ti, turn in enumerate(turns):
        for pos in _occurrences(turn.text, item.stem):
            start = pos + len(item.stem)
            window = turn.text[start : start + reach]
            listed = all(o in window for o in item.options)
            answer = _answer_given(item, turns, ti, pos, start, window, listed)
            if answer:
                kind = "input-and-label"
            elif listed:
                kind = "input"
            elif len(item.stem) >= n:
                kind = "stem"
            else:
                continue
            end = start + max((window.find(o) + len(o) for o in item.options if o in window), default=0)
            match = Match(kind, listed, answer, ti, turn.text[pos:end] if listed else item.stem)
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
