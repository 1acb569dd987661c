"""The answer letter of a generated reply to a multiple-choice question, or None — never a default letter.

Patterns in priority order, after NFKC (full-width Ａ and （） become A and ()), restricted to the question's own
letters; the first pattern that matches decides, and its first match is the answer:

1. an explicit statement: 答案是C / 答案：C / 答案应该是C / 正确答案为C / 正确选项是C / 选C / 故选C /
   "the answer is (C)" / "Answer: C" / \\boxed{C};
2. a reply that opens with the letter: "C", "C.", "C、…", "(C) …", "选项C";
3. the letter declared right: "C是正确的", "C正确", "C当选";
4. a sole isolated letter: exactly one distinct option letter standing alone in the reply.

A letter glued to other Latin letters (CT, DNA, MRI) never counts. Several distinct letters with no stronger
pattern, a refusal, or no letter at all → None, counted by the caller as unparsed (as OpenCompass and the CMB
harness leave them empty, and unlike harnesses that fall back to "B" or a random letter).
"""

from __future__ import annotations

import re
import unicodedata

PARSER_VERSION = 1
_L = "(?<![A-Za-z])([A-E])(?![A-Za-z])"  # an option letter not glued to other Latin letters

PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "statement",
        re.compile(r"(?:答案|正确选项|答)\s*(?:应该|应)?\s*(?:是|为|选)?\s*[:：]?\s*(?:选项)?\s*[(\[]?" + _L),
    ),
    ("chose", re.compile(r"(?:故|所以|因此)?\s*选(?:择)?\s*(?:选项)?\s*[(\[]?" + _L)),
    ("english", re.compile(r"(?i:answer(?: is)?)\s*[:：]?\s*[(\[]?" + _L)),
    ("boxed", re.compile(r"\\boxed\{" + _L + r"\}")),
    ("leading", re.compile(r"^\s*(?:选项)?\s*(?:[(\[]" + _L + r"[)\]]|" + _L + r"(?:[.．、:：,，。\s]|$))")),
    ("declared", re.compile(_L + r"\s*(?:项)?\s*(?:是正确|正确|当选|是对)")),
)
_ISOLATED = re.compile(_L)


def parse_letter(reply: str, letters: tuple[str, ...] | str = "ABCD") -> tuple[str | None, str]:
    """(letter or None, the pattern that decided, or "unparsed")."""
    text = unicodedata.normalize("NFKC", reply or "")
    allowed = set(letters)
    for name, pattern in PATTERNS:
        for match in pattern.finditer(text):
            letter = next(g for g in match.groups() if g)
            if letter in allowed:
                return letter, name
    isolated = {m.group(1) for m in _ISOLATED.finditer(text)} & allowed
    if len(isolated) == 1:
        return isolated.pop(), "sole"
    return None, "unparsed"
