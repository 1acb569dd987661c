"""The answer letter of a generated reply to a multiple-choice question, or None — never a default letter.

A confident wrong letter is worse than an unparsed reply (counted, scored wrong), so the reader only answers when
the reply commits to one letter. After NFKC (full-width Ａ and （） become A and ()), markdown emphasis dropped and
LaTeX spans blanked, the reply is cut where a new question block starts (a 问题：/ Question: line then option lines:
a base model running on into the next few-shot item), then into clauses (at 。；！？, commas, line ends, "但/而是/but"):

1. **statement**: the *last* explicit statement decides, so a change of mind is read (答案是C / 答案：C /
   正确答案为C / 故选C / 应选C / 应该是C / "the answer is (C)" / "Answer: C" / "it is C" / \\boxed{C}); it is void
   when a later clause negates that letter or declares another one right (B项的说法也正确, "C is correct in some
   cases"), and the reply is undecided when a hedged clause (也可能是B, "might also be B") names another letter.
   A statement under a condition is an alternative, not the answer: after 如果/若/否则/"if" in its sentence
   (如果没有胃镜条件，可选A), or qualified in its clause ("(A) is correct only for biliary disease", "when p > 0.05");
2. **declared**: the one letter declared right (C正确 / 选项C是正确的 / (C)当选 / "C is correct");
3. **leading**: a reply that opens with the letter ("C", "C.", "C、…", "(C) …", "选项C");
4. **sole**: a short reply with no negation that names exactly one letter.

Never a selection: a letter in a negated clause (不选A, 不是A, A是错误的, A项不当选, "A is wrong"); a letter
inside a term — B超 (spaced too: B 超, B 族), 维生素C, C反应蛋白, B细胞, A型血, 辅酶A, "vitamin C", glued to Latin
letters or digits (CT, DNA, B1), or in arithmetic (C + I + G); an echoed option list (two or more lines "A. …", or
"A：… B：… C：…" on one line); a letter listed with others (A和B都对, 答案是A或C). Only the question's own letters
count, so E is read for five-option questions only.
"""

from __future__ import annotations

import re
import unicodedata

# 1 read the first pattern's first match; 2 let a run-on next question, a conditional or a hedge override the answer.
# Results read by an older version are refused (mcq fingerprint).
PARSER_VERSION = 3

_TOKEN = re.compile(r"(?<![A-Za-z0-9])([A-E])(?![A-Za-z0-9])")
# a CJK character right after / before the letter that makes it part of a term, not an option (pairwise sides too)
TERM_NEXT = set("超型细胞反族链蛋级类端点区线波段肝组柱群因受抗原淋环键醇酸脂值期带管股字号座楼站药片剂肽钙激")
_TERM_PREV = set("素酶白菌位色命激")
_TERM_WORDS = {
    "vitamin", "vitamins", "type", "hepatitis", "group", "factor", "coenzyme", "protein", "cyt", "class", "grade",
    "phase", "stage", "plan", "section", "part", "point", "line", "column", "row", "complex", "hemoglobin",
    "immunoglobulin", "influenza", "blood", "grupo", "and", "or",
}  # fmt: skip
# English words that may follow an option letter ("A is wrong", "C because"); any other word makes it an article
_ENGLISH_NEXT = {"is", "was", "would", "should", "seems", "because", "as", "since", "and", "or", "are", "has"}
_MATH = set("=+-*/^_<>×÷≤≥")
_OPEN, _CLOSE = "([（【", ")]）】"

_NEGATION = re.compile(
    r"不|非|没|无法|错|误|排除|否|除了|\b(?:wrong|incorrect|not|false|never|except|exclude[ds]?|eliminat\w*)\b|n't"
    r"|ruled? out|rather than",
    re.IGNORECASE,
)
_SPLIT = re.compile(r"[。；;！!？?\n，,]|\.(?=\s|$)|但是|但|而是|然而|不过|\b(?:but|however|whereas|instead)\b", re.I)

_L = r"[(\[（【]?\s*([A-E])(?![A-Za-z0-9])"
_STATEMENTS = (
    re.compile(
        r"(?:正确的?答案|正确的?选项|最佳答案|最终答案|最佳选项|答案|正确的是|正确的为|应选的是)\s*"
        r"(?:应该|应当|应|可能|就|也|即)?\s*(?:是|为|选|选择)?\s*[:：]?\s*(?:选项|选)?\s*" + _L
    ),
    re.compile(r"(?:^|[^首])选(?:择)?\s*(?:选项|答案)?\s*" + _L),
    re.compile(r"(?:应该|应当|应|可能)\s*(?:是|为)\s*" + _L),
    re.compile(r"^\s*答\s*[:：]\s*" + _L),
    re.compile(
        r"(?i:(?:correct|right|best|final|most\s+appropriate|most\s+likely)?\s*(?:answer|option|choice)\s*"
        r"(?:is|would\s+be|should\s+be|=|:)\s*(?:option\s+|choice\s+)?)" + _L
    ),
    re.compile(r"(?i:\b(?:choose|pick|select|go\s+with)\s+(?:option\s+)?)" + _L),
    re.compile(r"(?i:\b(?:it|that)(?:'s|\s+is|\s+must\s+be|\s+should\s+be|\s+would\s+be)\s+(?:option\s+)?)" + _L),
)
_DECLARED = (
    re.compile(
        r"([A-E])\s*[)\]）】]?\s*(?:项|选项)?\s*(?:的说法|说法|描述|叙述|表述)?\s*(?:是|为|最|更|才是|也是|也|均|都)?\s*"
        r"(?:正确|对的|对|当选|符合题意|符合要求|最恰当|最合适|最佳|最符合|符合|恰当)"
    ),
    re.compile(r"(?i:([A-E])\s*[)\]]?\s*is\s+(?:the\s+)?(?:correct|right|best))"),
)
_LEADING = re.compile(r"^\s*(?:选项\s*)?(?:[(\[（【]\s*([A-E])\s*[)\]）】]|([A-E])(?=[.．、:：,，。\s]|$))")
_LISTED_BEFORE = re.compile(r"[A-E]\s*[)\]）】]?\s*(?:[、,，/&]|和|与|及|或|\band\b|\bor\b)\s*[(\[（【]?\s*$")
_LISTED_AFTER = re.compile(
    r"^\s*[)\]）】]?\s*(?:(?:[、/&]|和|与|及|或|\band\b|\bor\b)\s*[(\[（【]?\s*[A-E](?![A-Za-z0-9])"
    r"|[,，]\s*[(\[（【]?\s*[A-E](?![A-Za-z0-9])\s*[)\]）】]?\s*(?:[、,，]|和|与|及|或|均|都|$))"
)
_OPTION_LINE = re.compile(r"^\s*[(\[（【]?\s*([A-E])\s*[)\]）】.．、:：]\s*\S")
_INLINE_OPTION = re.compile(r"(?:(?<![A-Za-z0-9])([A-E])\s*[.．:：]|[(（]([A-E])[)）])\s*(?=\S)")
# a new question block (a base model running on into the next few-shot item): what follows is not this reply's
_QUESTION_HEAD = re.compile(r"^\s*#*\s*(?:问题|题目|试题|Question)\s*\d*\s*[:：.]", re.IGNORECASE)
_SENTENCE = re.compile(r"[。；;！!？?\n]|\.(?=\s|$)")
# a statement after one of these in its sentence is an alternative under a condition, not the reply's answer
_CONDITION = re.compile(
    r"如果|假如|倘若|假若|假设|若(?!干)|要是|万一|否则|\b(?:if|unless|otherwise|in\s+case|suppose|assuming)\b", re.I
)
# ... and so is one qualified after it in its clause ("(A) is correct only for biliary disease")
_CONDITION_AFTER = re.compile(r"\b(?:if|when|unless|only\s+(?:for|in|if|when|under))\b", re.I)
# a clause offering another possibility: a letter in it next to another statement makes the reply undecided
_HEDGE = re.compile(
    r"也可能|可能也|也许|或许|或者是|也可以是|亦可|\b(?:might|may|could)\s+(?:also\s+)?be\b|\bor\s+possibly\b|\bperhaps\b"
    r"|\bmaybe\b",
    re.I,
)
_SOLE_MAX = 60  # characters of the reply: a longer one that names one letter in passing has not chosen it


def _prepare(reply: str) -> str:
    text = unicodedata.normalize("NFKC", reply or "")
    text = re.sub(r"\\boxed\{\s*([A-E])\s*\}", r" 答案是\1。", text)
    text = text.replace("*", "").replace("`", "")
    # LaTeX: C_4H_8O_2, P=A\times … are formulas, not options
    text = re.sub(r"\$[^$]*\$|\\\(.*?\\\)|\\\[.*?\\\]", "□", text, flags=re.DOTALL)
    lines = text.split("\n")
    lines = lines[: _question_block(lines)]
    marked = [m.group(1) if (m := _OPTION_LINE.match(line)) else None for line in lines]
    if len({m for m in marked if m}) >= 2:  # the option list echoed line by line
        lines = [line for line, m in zip(lines, marked, strict=True) if not m]
    kept = []
    for line in lines:
        # "A：发热 B：咳嗽 C：胸痛" on one line: a bare list, no clause of its own
        listed = {m.group(1) or m.group(2) for m in _INLINE_OPTION.finditer(line)}
        if len(listed) < 3 or re.search(r"[,，;；。]", line):
            kept.append(line)
    return "\n".join(kept)


def _question_block(lines: list[str]) -> int:
    """Index of the first line of a new question (a heading, then two option lines) after some reply text."""
    for i, line in enumerate(lines):
        if i and _QUESTION_HEAD.match(line) and any(x.strip() for x in lines[:i]):
            options = {m.group(1) for x in lines[i + 1 :] if (m := _OPTION_LINE.match(x))}
            if len(options) >= 2:
                return i
    return len(lines)


def _prev_word(text: str, at: int) -> str:
    match = re.search(r"([A-Za-z]+)\s+$", text[:at])
    return match.group(1).lower() if match else ""


def _is_option(text: str, at: int) -> bool:
    """Whether the letter at `at` can be an option reference (not part of a term, a formula or an English word)."""
    after, before = text[at + 1 :], text[:at]
    if re.match(r"[A-Za-z0-9]", after[:1]) or re.search(r"[A-Za-z0-9]$", before):
        return False
    near_after, near_before = after.lstrip(" \t"), before.rstrip(" \t")
    # spaced terms ("腹部 B 超", "B 族链球菌") as well as glued ones
    if near_after[:1] in TERM_NEXT or near_before[-1:] in _TERM_PREV:
        return False
    if near_after[:1] in _MATH or near_before[-1:] in _MATH:
        return False
    if before[-1:] in _OPEN and re.search(r"[A-Za-z0-9]$", before[:-1]):  # dB(A)
        return False
    if _prev_word(text, at) in _TERM_WORDS:
        return False
    word = re.match(r"[ \t]+([A-Za-z]+|\d)", after)  # "Answer: C\nExplanation": the next line is no article's noun
    return not (word and word.group(1).lower() not in _ENGLISH_NEXT)


def _clauses(text: str) -> list[tuple[int, int, bool]]:
    """(start, end, negated) of each clause."""
    out, start = [], 0
    for match in _SPLIT.finditer(text):
        out.append((start, match.start()))
        start = match.end()
    out.append((start, len(text)))
    return [(s, e, bool(_NEGATION.search(text[s:e]))) for s, e in out if text[s:e].strip()]


def _clause_of(clauses: list[tuple[int, int, bool]], at: int) -> tuple[int, int, bool] | None:
    return next((c for c in clauses if c[0] <= at < c[1]), None)


def _listed(text: str, start: int, end: int) -> bool:
    return bool(_LISTED_BEFORE.search(text[:start]) or _LISTED_AFTER.match(text[end:]))


def _conditional(text: str, at: int, end: int, clause: tuple[int, int, bool]) -> bool:
    """Whether the match at `at`..`end` stands under a condition: after 如果/若/if in its sentence, or qualified
    by "only for" / "when" after it in its clause."""
    start = max((m.end() for m in _SENTENCE.finditer(text, 0, at)), default=0)
    return bool(_CONDITION.search(text, start, at) or _CONDITION_AFTER.search(text, end, clause[1]))


def _hits(text: str, patterns, clauses) -> list[tuple[int, str, bool]]:
    """(position, letter, hedged) of pattern matches in clauses without a negation or a condition; "*" for a letter
    listed with others."""
    found = []
    for pattern in patterns:
        for match in pattern.finditer(text):
            group = next(i for i in range(1, len(match.groups()) + 1) if match.group(i))
            at = match.start(group)
            clause = _clause_of(clauses, at)
            if clause is None or clause[2] or not _is_option(text, at) or _conditional(text, at, match.end(), clause):
                continue
            letter = "*" if _listed(text, at, at + 1) else match.group(group)
            found.append((at, letter, bool(_HEDGE.search(text, clause[0], clause[1]))))
    return sorted(set(found))


def parse_letter(reply: str, letters: tuple[str, ...] | str = "ABCD") -> tuple[str | None, str]:
    """(letter or None, the rule that decided, or "unparsed")."""
    text = _prepare(reply)
    short = len(unicodedata.normalize("NFKC", reply or "").strip()) <= _SOLE_MAX
    allowed = set(letters)
    clauses = _clauses(text)
    options = [(m.start(1), m.group(1)) for m in _TOKEN.finditer(text) if _is_option(text, m.start(1))]
    negated = [(at, letter) for at, letter in options if (c := _clause_of(clauses, at)) and c[2]]
    declared = _hits(text, _DECLARED, clauses)

    statements = _hits(text, _STATEMENTS, clauses)
    if statements:
        at, letter, _ = statements[-1]
        later_negated = {ltr for pos, ltr in negated if pos > at}
        later_declared = {ltr for pos, ltr, _ in declared if pos > at}
        # a change of mind is fine (the last statement wins), a hedge between letters is undecided
        hedged = any(h for *_, h in statements) and len({ltr for _, ltr, _ in statements}) > 1
        if letter in allowed and letter not in later_negated and later_declared <= {letter} and not hedged:
            return letter, "statement"
        return None, "unparsed"
    if declared:
        chosen = {letter for _, letter, _ in declared}
        (letter,) = chosen if len(chosen) == 1 else ("*",)
        if letter in allowed and letter not in {ltr for _, ltr in negated}:
            return letter, "declared"
        return None, "unparsed"
    leading = _LEADING.match(text)
    if leading:
        group = 1 if leading.group(1) else 2
        at, letter = leading.start(group), leading.group(group)
        clause = _clause_of(clauses, at)
        if (letter in allowed and _is_option(text, at) and clause and not clause[2]
                and not _listed(text, at, leading.end(group))):  # fmt: skip
            return letter, "leading"
    named = {letter for _, letter in options}
    if len(named) == 1 and not negated and not any(c[2] for c in clauses) and short:
        letter = named.pop()
        if letter in allowed:
            return letter, "sole"
    return None, "unparsed"
