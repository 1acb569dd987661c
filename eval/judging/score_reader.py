"""Rubric scores from a judge reply: every criterion an integer 1–5, or None for the whole reply.

Read from the last object-like span `{…}` that names a criterion — JSON, single-quoted dicts, CMB's own example
with typographic quotes and spaces (`{ ‘ fluency ’: 3 , …}`), a trailing comma, a fenced block — or, where there
is none, from "name: n" lines (`- **流畅性**：4`, `fluency: 4/5`, `流畅性 4 分`, `4 out of 5`, `4分（满分5分）`,
`5分制下为4分`). A value that is not a whole number on the 1–5 scale (4.5, 4-5, 4 to 5, 8/10, 4分（满分10分）,
5/5 -> 4/5, true) voids the reply rather than being rounded or skipped, and so do two different values for one
criterion in the lines: a wrong score is worse than an unparsed one. An object quoted as an example
(`参考格式：{'fluency': 1, …}`, "e.g. {…}") is no score.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

ALIASES: dict[str, tuple[str, ...]] = {
    "correctness": ("correctness", "正确性", "医学正确性", "准确性"),
    "safety": ("safety", "安全性"),
    "helpfulness": ("helpfulness", "有用性", "帮助性"),
    "fluency": ("fluency", "流畅性"),
    "relevance": ("relevance", "相关性"),
    "completeness": ("completeness", "完整性"),
    "proficiency": ("proficiency in medicine", "medical proficiency", "proficiency", "医学专业性", "专业性"),
}
_QUOTES = str.maketrans({"“": '"', "”": '"', "‘": "'", "’": "'", "„": '"', "«": '"', "»": '"'})
_OBJECT = re.compile(r"\{[^{}]*\}")
_VALUE = re.compile(r"(\d+)(?:\.(\d+))?\s*(?:分|points?)?\s*(?:/\s*(\d+))?")
_INVALID = object()
# what a line holds after the criterion's name: an optional scale first ("5分制下为4分"), the value, its unit, the
# scale after it ("/5", "out of 10", "（满分10分）"), and whatever would make it a range or a revision ("4 to 5",
# "5/5 -> 4/5")
_LINE_VALUE = (
    r"(?:(\d+)\s*分制(?:下|中|里)?\s*[,，]?\s*(?:为|是|得|给|打)?\s*)?"
    r"(\d+(?:\.\d+)?)(?:\s*(?:分|points?))?"
    r"(?:\s*(?:/|out\s+of|[(（]\s*(?:满分|总分|out\s+of)|[,，]?\s*满分)\s*(\d+)\s*(?:分|points?)?\s*[)）]?)?"
    r"(\s*(?:->|=>|[-–~→⇒]|\bto\b|\bor\b|至|到|或)\s*\d)?"
)
_EXAMPLE = re.compile(
    r"((?:参考|示例|样例|例如|比如|模板|\bexample|\be\.g\.|\bfor\s+instance|\btemplate|\bsample|\bsuch\s+as)"
    r"[^\n{}]{0,30}?)\{[^{}]*\}",
    re.IGNORECASE,
)


def normalise(text: str) -> str:
    """NFKC (full-width ｛：， become ASCII), typographic quotes straightened, markdown emphasis and fences dropped."""
    return unicodedata.normalize("NFKC", text).translate(_QUOTES).replace("*", "").replace("`", "")


def objects(text: str) -> list[dict[str, str]]:
    """Each `{…}` span (innermost) as key → raw value text, quotes and spaces stripped, in reply order."""
    found = []
    for match in _OBJECT.finditer(text):
        pairs: dict[str, str] = {}
        for item in re.split(r"[,\n]", match.group(0)[1:-1]):
            key, sep, value = item.partition(":")
            if sep:
                pairs[key.strip().strip("'\"").strip().lower()] = value.strip().strip("'\"").strip()
        found.append(pairs)
    return found


def score(value: Any) -> int | object | None:
    """1..5; None when absent; _INVALID when present but not a whole number on the 1–5 scale."""
    if value is None:
        return None
    match = _VALUE.fullmatch(str(value).strip())
    if not match or (match.group(2) and match.group(2).strip("0")) or match.group(3) not in (None, "5"):
        return _INVALID
    number = int(match.group(1))
    return number if 1 <= number <= 5 else _INVALID


def _names(criterion: str) -> tuple[str, ...]:
    return ALIASES.get(criterion, (criterion,))


def _pick(pairs: dict[str, str], criteria: tuple[str, ...]) -> dict[str, int] | None:
    scores = {}
    for criterion in criteria:
        raw = next((pairs[n.lower()] for n in _names(criterion) if n.lower() in pairs), None)
        value = score(raw)
        if value is None or value is _INVALID:
            return None
        scores[criterion] = value
    return scores  # type: ignore[return-value]


def _from_lines(text: str, criteria: tuple[str, ...]) -> dict[str, int] | None:
    names = sorted({n for c in criteria for n in _names(c)}, key=len, reverse=True)
    pattern = re.compile(
        r"(?<![A-Za-z])(" + "|".join(re.escape(n) for n in names) + r")(?![A-Za-z])\s*"
        r"(?:[:：=]\s*|(?=\d+(?:\.\d+)?\s*分))" + _LINE_VALUE,
        re.IGNORECASE,
    )
    seen: dict[str, set[str]] = {}
    for match in pattern.finditer(text):
        criterion = next(c for c in criteria if match.group(1).lower() in (n.lower() for n in _names(c)))
        before, value, after, tail = match.group(2, 3, 4, 5)
        scale = {s for s in (before, after) if s}
        if tail or len(scale) > 1:
            value = "?"  # a range, a revision or two scales: no one score
        elif scale:
            value += "/" + scale.pop()
        seen.setdefault(criterion, set()).add(value)
    if not seen:
        return None
    scores = {}
    for criterion in criteria:
        values = {score(v) for v in seen.get(criterion, ())}
        if len(values) != 1 or _INVALID in values or None in values:
            return None
        scores[criterion] = values.pop()
    return scores  # type: ignore[return-value]


def parse_scores(reply: str, criteria: tuple[str, ...]) -> dict[str, int] | None:
    """{criterion: 1..5} for every criterion, or None."""
    if not isinstance(reply, str) or not reply.strip():
        return None
    text = _EXAMPLE.sub(r"\1", normalise(reply))
    wanted = {n.lower() for c in criteria for n in _names(c)}
    named = [pairs for pairs in objects(text) if wanted & set(pairs)]
    if named:
        return _pick(named[-1], criteria)
    return _from_lines(text, criteria)
