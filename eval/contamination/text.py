"""Text as the audit compares it: normalised characters, where segments may start, and option labels taken out.

Two normalisers that agree character for character:

- `normalize_turns` (numpy, the streaming pass): per character NFKC, casefold, and punctuation, symbols,
  separators and controls (Unicode P, S, Z, C) dropped. It also says which kept characters *start a segment*:
  the first of a turn, or one that follows a dropped character (a space, a newline, 、, a label's `.` or `）`).
  Turns are kept apart by offsets, never by characters in the text, so nothing a record holds (private-use
  U+E000 included, category Co, dropped) can act as a separator.
- `labelled` (regex, the verification of a few candidate records): the same normalisation after option labels
  (`A.`, `A、`, `（A）`, `(1)`, `1.`) and answer markers (`答案：X`, `正确答案是X`) are cut out, with each label's
  and marker's position kept, so a copy's own lettering can be read back (its `答案：B` names the option after
  its `B.`, whatever order it lists them in).
"""

from __future__ import annotations

import functools
import re
import sys
import unicodedata
from dataclasses import dataclass

import numpy as np

NORMALIZATION = (
    "per character: NFKC, casefold, then drop Unicode categories P*, S*, Z*, C* (punctuation, symbols, spaces, "
    "controls); option labels (A. A、 （A） (1) （1） 1.) and answer markers (答案：X, 正确答案是X) cut out, "
    "the same on both sides"
)


class _Normalizer:
    """Decided once per distinct character and kept in lookup arrays: most characters stay, some are dropped, a
    few map to one other character (full-width forms), and the rare ones that become several (㎏ → kg) take a
    slow path."""

    KEEP, DROP, ONE, MANY = 1, 2, 3, 4

    def __init__(self) -> None:
        self.state = np.zeros(sys.maxunicode + 1, dtype=np.uint8)  # 0: not decided yet
        self.one = np.zeros(sys.maxunicode + 1, dtype=np.uint32)
        self.many: dict[int, str] = {}

    def _decide(self, cp: int) -> None:
        out = "".join(ch for ch in unicodedata.normalize("NFKC", chr(cp)).casefold()
                      if unicodedata.category(ch)[0] not in "PSZC")  # fmt: skip
        if out == chr(cp):
            self.state[cp] = self.KEEP
        elif not out:
            self.state[cp] = self.DROP
        elif len(out) == 1:
            self.state[cp], self.one[cp] = self.ONE, ord(out)
        else:
            self.state[cp], self.many[cp] = self.MANY, out

    def states(self, c: np.ndarray) -> np.ndarray:
        state = self.state[c]
        if not state.all():
            for cp in np.unique(c[state == 0]).tolist():
                self._decide(cp)
            state = self.state[c]
        return state

    def expand(self, text: str) -> str:
        """`text` with the characters that normalise to several written out (so every character maps to ≤ 1)."""
        return "".join(self.many.get(ord(ch), ch) for ch in text)


@functools.cache
def _normalizer() -> _Normalizer:
    return _Normalizer()


def codepoints(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


@dataclass
class Normalized:
    """A batch of turns, normalised: the characters, which of them start a segment, and where each turn ends."""

    chars: np.ndarray  # uint32 code points
    starts: np.ndarray  # bool, per character
    turn_ends: np.ndarray  # int64, per turn: offset one past its last character


def normalize_turns(turns: list[str]) -> Normalized:
    norm = _normalizer()
    c = codepoints("".join(turns))
    state = norm.states(c)
    if (state == norm.MANY).any():  # rare: write those characters out and start again
        return normalize_turns([norm.expand(t) for t in turns])
    lengths = np.fromiter((len(t) for t in turns), dtype=np.int64, count=len(turns))
    raw_ends = np.cumsum(lengths)
    dropped = state == norm.DROP
    follows_drop = np.empty(len(c), dtype=bool)
    if len(c):
        follows_drop[0] = True
        follows_drop[1:] = dropped[:-1]
        turn_starts = (raw_ends - lengths)[lengths > 0]
        follows_drop[turn_starts] = True
    kept = ~dropped
    chars = np.where(state == norm.ONE, norm.one[c], c)[kept]
    kept_before = np.concatenate(([0], np.cumsum(kept, dtype=np.int64)))
    return Normalized(chars, follows_drop[kept], kept_before[raw_ends])


def normalize(text: str) -> str:
    """One string normalised (no labels cut: see `labelled` for that)."""
    n = normalize_turns([text])
    return n.chars.tobytes().decode("utf-32-le", "surrogatepass")


# --- labels ---------------------------------------------------------------------------------------------------

# After NFKC (full-width （Ａ） is (A)); a label stands after the start, a space or punctuation, never inside a
# word (维生素A. stays), and `1.` followed by a digit is a decimal (7.4), not a label.
_BEFORE = r"(?:^|(?<=[\s,.;:!?、，。；：！？)\]】」』]))"
_KEY = r"(?P<key>[A-Ea-e]|[1-9][0-9]?)"
_LABEL = (
    rf"{_BEFORE}(?:[(\[【]\s*{_KEY}\s*[)\]】]"  # (A) （1） 【A】
    r"|(?P<key2>[A-Ea-e]|[1-9][0-9]?)\s*(?:[.、:)]|．)(?![0-9]))"  # A. A、 1. 1) A:
)
_MARKER = (
    r"(?:(?:正确|参考)?答案\s*[\]】]?\s*(?:应(?:该)?(?:是|为|选)|是|为|选)?|(?<![\w])答)\s*[:]?\s*"
    r"(?P<mkey>[(\[【]?\s*(?:[A-Ea-e]{1,5}|[1-9])(?![A-Za-z0-9])\s*[)\]】]?)?"
)
_BARE = re.compile(r"[(\[【]?\s*[A-E]{1,5}\s*[)\]】]?\s*[.。!！]?")
_PATTERN = re.compile(f"(?P<marker>{_MARKER})|(?P<label>{_LABEL})")


def label_index(key: str) -> int:
    """A label's option number: A/a/1 → 0, B/b/2 → 1, …"""
    return ord(key.upper()) - ord("A") if key.isalpha() else int(key) - 1


@dataclass
class Labelled:
    """One turn, normalised with its labels and answer markers cut out."""

    text: str
    labels: dict[int, int]  # position in text → option number of the label just before it
    markers: list[tuple[int, tuple[int, ...]]]  # (position in text, option numbers it names, () when none)


def labelled(turn: str) -> Labelled:
    raw = unicodedata.normalize("NFKC", turn)
    pieces: list[str] = []
    size = 0
    labels: dict[int, int] = {}
    markers: list[tuple[int, tuple[int, ...]]] = []
    last = 0
    for m in _PATTERN.finditer(raw):
        piece = normalize(raw[last : m.start()])
        pieces.append(piece)
        size += len(piece)
        last = m.end()
        if m.group("marker") is not None:
            key = re.sub(r"[\s()\[\]【】]", "", m.group("mkey") or "")
            keys = tuple(label_index(k) for k in key) if key.isalpha() else ((label_index(key),) if key else ())
            markers.append((size, keys))
        else:
            labels[size] = label_index(m.group("key") or m.group("key2"))
    pieces.append(normalize(raw[last:]))
    text = "".join(pieces)
    if not markers and len(raw) <= 12 and _BARE.fullmatch(raw.strip()):  # a reply that is only the letter: "B。"
        return Labelled("", {}, [(0, tuple(label_index(k) for k in re.sub(r"[^A-E]", "", raw)))])
    return Labelled(text, labels, markers)


def strip_labels(text: str) -> str:
    """The benchmark side of the same rule: a stem or option normalised as a training turn is."""
    return labelled(text).text
