"""The benchmark side as one sorted array of 64-bit keys, and the streaming lookup of a batch of training text.

Keys: every 13-gram of every exam stem and of both sides of every test dialogue (looked for at every position
of the training text), and the whole text of the short stems and options that anchor an item (looked for only
where a segment starts: after a label, a space, a newline or punctuation, so 卵巢 inside 卵巢囊肿 is not it).
A hit on a test dialogue's n-gram is counted once for the whole training set (which n-grams were found, and the
first record holding each); a hit on an exam key makes that (record, item) a *candidate*, checked exactly by
`verify` while the record's text is still in memory.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from eval.contamination import hashing
from eval.contamination.items import GENERIC_ITEMS, Dialogue, ExamItem
from eval.contamination.text import Normalized, codepoints


def _side_ngrams(sides: list[list[str]], n: int) -> list[np.ndarray]:
    """The distinct n-grams of each side (a list of turns; none across two turns), hashed in one go."""
    turns = [t for side in sides for t in side]
    side_of = np.repeat(np.arange(len(sides)), [len(side) for side in sides])
    h, owner = hashing.ngrams_of_many(turns, n)
    owner = side_of[owner] if len(owner) else owner
    order = np.lexsort((h, owner))
    h, owner = h[order], owner[order]
    distinct = np.ones(len(h), dtype=bool)
    distinct[1:] = (h[1:] != h[:-1]) | (owner[1:] != owner[:-1])
    h, owner = h[distinct], owner[distinct]
    bounds = np.searchsorted(owner, np.arange(len(sides) + 1))
    return [h[bounds[i] : bounds[i + 1]] for i in range(len(sides))]


def _distinct(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values (numpy 2's np.unique hashes first: 4× slower on a million uint64)."""
    values = np.sort(values)
    keep = np.ones(len(values), dtype=bool)
    keep[1:] = values[1:] != values[:-1]
    return values[keep]


def _split_at(keys: np.ndarray, groups: list[np.ndarray]) -> list[np.ndarray]:
    """Each group's positions in `keys`, looked up in one call."""
    if not groups:
        return []
    at = np.searchsorted(keys, np.concatenate(groups))
    return np.split(at, np.cumsum([len(g) for g in groups])[:-1])


@dataclass
class Hits:
    """One batch's result: which records are candidates for which exam items."""

    pairs: np.ndarray  # (k, 2) int64: unit (its place in the batch), exam item number; sorted, distinct
    firsts: np.ndarray  # units that are now the first holder of some key (their ids are kept as evidence)


class Index:
    # a presence table of 2^28 bits (32 MiB) of the keys' top bits: 1.8M keys set 0.7 % of it, so 99 % of the
    # training windows stop there and never reach the binary search of the sorted keys
    FILTER_BITS = 28
    OPENING_BITS = 22

    def __init__(self, exams: list[ExamItem], dialogues: list[Dialogue], n: int):
        self.exams, self.dialogues, self.n = exams, dialogues, n
        self.question_grams = _side_ngrams([d.question for d in dialogues], n)
        self.answer_grams = _side_ngrams([d.answer for d in dialogues], n)
        exam_keys, exam_owner = [], []
        lengths: set[int] = set()
        for i, item in enumerate(exams):
            if not item.checkable:
                continue
            whole = np.array([hashing.of_text(codepoints(a)) for a in item.anchors], np.uint64)
            keys = [item.stem_ngrams, item.option_ngrams, whole]
            lengths.update(len(a) for a in item.anchors)
            keys_i = _distinct(np.concatenate(keys))
            exam_keys.append(keys_i)
            exam_owner.append(np.full(len(keys_i), i, dtype=np.int64))
        self.anchor_lengths = sorted(lengths)
        # a segment start is looked up at every anchor length only when its first two characters begin some
        # anchor: most starts (8 % of the text) stop at this table
        self.opening = np.zeros(1 << self.OPENING_BITS, dtype=bool)
        firsts = [codepoints(a[:2]) for item in exams if item.checkable for a in item.anchors]
        if firsts:
            pairs = np.stack(firsts)
            self.opening[self._opening(pairs[:, 0], pairs[:, 1])] = True
        ek = np.concatenate(exam_keys) if exam_keys else np.empty(0, np.uint64)
        eo = np.concatenate(exam_owner) if exam_owner else np.empty(0, np.int64)
        self.keys = _distinct(np.concatenate([ek, *self.question_grams, *self.answer_grams]))
        # exam key → items (CSR), without the keys so many items share that they name none
        at = np.searchsorted(self.keys, ek)
        order = np.lexsort((eo, at))
        at, eo = at[order], eo[order]
        counts = np.bincount(at, minlength=len(self.keys))
        generic = counts >= GENERIC_ITEMS
        keep = ~generic[at]
        at, eo = at[keep], eo[keep]
        self.item_ptr = np.concatenate(([0], np.cumsum(np.bincount(at, minlength=len(self.keys)))))
        self.item_of = eo
        self.exam_key = self.item_ptr[1:] > self.item_ptr[:-1]
        self.question_at = _split_at(self.keys, self.question_grams)
        self.answer_at = _split_at(self.keys, self.answer_grams)
        self.stem_at = _split_at(self.keys, [item.stem_ngrams for item in exams])
        self.specific_at = _split_at(self.keys, [item.specific for item in exams])
        self.reset()
        self.table = np.zeros(1 << (self.FILTER_BITS - 3), dtype=np.uint8)
        slots = self._slot(self.keys)
        np.bitwise_or.at(self.table, slots >> np.uint64(3), (1 << (slots & np.uint64(7))).astype(np.uint8))

    def reset(self) -> None:
        self.found = np.zeros(len(self.keys), dtype=bool)
        self.first_record = np.full(len(self.keys), -1, dtype=np.int64)  # the first training record holding it

    def _opening(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):
            mixed = (a.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) ^ b.astype(np.uint64)
            return (mixed * np.uint64(0xBF58476D1CE4E5B9)) >> np.uint64(64 - self.OPENING_BITS)

    def maybe(self, h: np.ndarray) -> np.ndarray:
        """Whether each hash may be a key (no false negatives)."""
        slots = self._slot(h)
        return (self.table[slots >> np.uint64(3)] >> (slots & np.uint64(7)).astype(np.uint8)) & np.uint8(1) > 0

    def _slot(self, h: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):
            return (h * np.uint64(0xBF58476D1CE4E5B9)) >> np.uint64(64 - self.FILTER_BITS)

    def scan(self, text: Normalized, unit_ends: np.ndarray, unit_record: np.ndarray) -> Hits:
        """Look up a batch of units (records, or pieces of a long one): `unit_ends` are their end offsets in
        `text.chars`, `unit_record` their training record numbers. Pairs name units by their place in the batch."""
        empty = Hits(np.empty((0, 2), np.int64), np.empty(0, np.int64))
        c = text.chars
        if not len(self.keys) or not len(c):
            return empty
        p = hashing.prefix(c)
        n, size = self.n, len(c)
        lengths = np.diff(np.concatenate(([0], text.turn_ends)))
        queries, where = [], []
        if size >= n:
            # every window by slices (no gathers), then those inside one turn and past the presence table
            with np.errstate(over="ignore"):
                h = (p[n:] - p[: size - n + 1]) * hashing.powers_up(n - 1, size)
            turn = np.repeat(np.arange(len(lengths), dtype=np.int32), lengths)
            ok = turn[: size - n + 1] == turn[n - 1 :]
            ok &= self.maybe(h)
            idx = np.flatnonzero(ok)
            queries.append(h[idx])
            where.append(idx)
        seg = np.flatnonzero(text.starts)
        seg = seg[seg + 1 < size]
        seg = seg[self.opening[self._opening(c[seg], c[seg + 1])]]
        if len(seg) and self.anchor_lengths:
            room = np.repeat(text.turn_ends, lengths)[seg] - seg
            for length in self.anchor_lengths:
                s = seg[room >= length]
                hs = hashing.windows(p, s, length)
                keep = self.maybe(hs)
                queries.append(hs[keep])
                where.append(s[keep])
        if not queries:
            return empty
        h, at_char = np.concatenate(queries), np.concatenate(where)
        at = np.searchsorted(self.keys, h)
        at[at == len(self.keys)] = 0
        hit = self.keys[at] == h
        if not hit.any():
            return empty
        at, at_char = at[hit], at_char[hit]
        records = np.searchsorted(unit_ends, at_char, side="right")
        fresh = self.first_record[at] < 0
        order = np.lexsort((records[fresh], at[fresh]))
        new_at, new_rec = at[fresh][order], records[fresh][order]
        first = np.unique(new_at, return_index=True)[1]
        self.first_record[new_at[first]] = unit_record[new_rec[first]]
        self.found[at] = True
        firsts = np.unique(new_rec[first])
        exam = self.exam_key[at]
        at, records = at[exam], records[exam]
        if not len(at):
            return Hits(empty.pairs, firsts)
        pairs = np.unique(np.stack((records, at), axis=1), axis=0)
        spans = self.item_ptr[pairs[:, 1] + 1] - self.item_ptr[pairs[:, 1]]
        rec = np.repeat(pairs[:, 0], spans)
        offsets = np.arange(spans.sum()) - np.repeat(np.cumsum(spans) - spans, spans)
        items = self.item_of[np.repeat(self.item_ptr[pairs[:, 1]], spans) + offsets]
        return Hits(np.unique(np.stack((rec, items), axis=1), axis=0), firsts)
