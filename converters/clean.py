"""Text cleaning and the keys used for de-duplication and the train/test overlap filter.

Deliberately conservative: we only remove markup and framing that carry no meaning (HTML line breaks,
问：/答： role prefixes, surrounding whitespace). The content itself — typos, mangled numbered lists,
boilerplate — is left alone, because "fixing" it changes what the model learns in ways nobody can audit.
"""

from __future__ import annotations

import re
import unicodedata

import xxhash

from converters.records import Record, Skip

_BREAK_TAGS = re.compile(r"<\s*/?\s*(?:br|p)\s*/?\s*>", re.IGNORECASE)
_NBSP = re.compile(r"&nbsp;?", re.IGNORECASE)
_QUESTION_PREFIX = re.compile(r"^\s*问\s*[：:]\s*")
_ANSWER_PREFIX = re.compile(r"^\s*答\s*[：:]\s*")
# Everything that is not a letter/digit (CJK ideographs count as letters): punctuation, spaces, symbols.
_NON_WORD = re.compile(r"[\W_]+")
# A pandas NaN that went through str(): it is "no value", not the word "nan".
_NAN_TEXT = frozenset({"nan", "NaN", "NAN"})


def clean_text(text: str) -> str:
    """Markup and whitespace only; inner text untouched except CRLF → LF."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "<" in text:
        text = _BREAK_TAGS.sub("\n", text)
    if "&" in text:
        text = _NBSP.sub(" ", text)
    text = text.strip()
    return "" if text in _NAN_TEXT else text


def clean_question(text: str) -> str:
    text = clean_text(text)
    if text.startswith("问"):
        text = _QUESTION_PREFIX.sub("", text, count=1)
    return text


def clean_answer(text: str) -> str:
    text = clean_text(text)
    if text.startswith("答"):
        text = _ANSWER_PREFIX.sub("", text, count=1)
    return text


def clean_record(rec: Record) -> Record | Skip:
    """Clean every turn in place; a dialogue with any empty turn is dropped, since LF would train on a blank."""
    rec.instruction = clean_question(rec.instruction)
    rec.input = clean_text(rec.input)
    rec.output = clean_answer(rec.output)
    for pair in rec.history:
        pair[0] = clean_question(pair[0])
        pair[1] = clean_answer(pair[1])
        if not pair[0] or not pair[1]:
            return Skip("empty_history_turn", rec.where)
    if not rec.instruction and not rec.input:
        return Skip("empty_question", rec.where)
    if not rec.output:
        return Skip("empty_answer", rec.where)
    return rec


def first_question(rec: Record) -> str:
    """The opening user turn: it identifies a dialogue (later turns are often just "谢谢医生")."""
    if rec.history:
        return rec.history[0][0]
    return f"{rec.instruction}\n{rec.input}" if rec.input else rec.instruction


# Full-width punctuation that nearly every Chinese question contains. Each one's NFKD is a single ASCII character
# (U+FF01–FF5E → U+0021–007E, U+3000 → space), so replacing it by that character first leaves the NFKD — hence
# the NFKC — of the whole string unchanged, while letting `unicodedata.normalize` take its quick-check exit
# (a full NFKC pass is the most expensive step of the key). Anything rarer still goes through NFKC itself.
_FULLWIDTH = tuple((c, unicodedata.normalize("NFKC", c)) for c in "，？！；：（）\u3000")
assert all(len(a) == 1 and a.isascii() for _, a in _FULLWIDTH)


def normalise_question(text: str) -> str:
    """Width, case, punctuation and spacing differences do not make a different question."""
    for wide, narrow in _FULLWIDTH:
        if wide in text:
            text = text.replace(wide, narrow)
    return _NON_WORD.sub("", unicodedata.normalize("NFKC", text).casefold())


def digest(data: bytes) -> bytes:
    # 64-bit keys keep 1.5M-entry sets small; a collision needs ~4e9 records to become likely. XXH3 is a fixed,
    # seedless function (the same key in every process and on every machine) and ~10x cheaper per call than
    # blake2b, which was the largest single cost of a record.
    return xxhash.xxh3_64_digest(data)


_SOURCE_KEY = b',"source":'


def content_key(line: bytes) -> bytes:
    """Exact-duplicate key: all turns after cleaning, ignoring source and id.

    `line` is the record's output line (`{"instruction",…,"history":…,"source":…,"id":…}`): everything before
    `,"source":` encodes exactly the four turn fields, so that prefix is hashed instead of serialising the turns a
    second time. The id is a JSON string, in which a `"` is always escaped, so the last `,"source":` is the key.
    """
    return digest(line[: line.rindex(_SOURCE_KEY)])


def question_key(rec: Record) -> bytes | None:
    """None for a question with no letters at all: it must not match every other such question."""
    norm = normalise_question(first_question(rec))
    return digest(norm.encode()) if norm else None
