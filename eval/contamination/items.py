"""The benchmark side: exam items as segments (stem, each option, the correct one), test dialogues as two sides
(question: instruction, input and history; answer: the reference reply), and the benchmark's own shared
vignettes (Chinese A3/A4 cases whose several questions open with one case text).

An exam item is *checkable* when its normalised stem plus options hold at least MIN_ITEM_CHARS characters, its
stem at least MIN_STEM_CHARS, and it has an anchor: a stem or option of at least MIN_ANCHOR_CHARS that fewer
than GENERIC_ITEMS items of the benchmark share. Why 12: below it an item is a few characters (脾之华在 +
毛 / 发 / 面 / 唇 is 8) that ordinary text holds by chance, stem and options together; at 12 the same number of
characters as the n-gram audit's 13-gram, less one, must all be found in one place.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from eval.contamination import hashing
from eval.contamination.text import codepoints, strip_labels

MIN_ITEM_CHARS = 12
MIN_STEM_CHARS = 2
MIN_ANCHOR_CHARS = 4
GENERIC_ITEMS = 8  # a segment this many items share (以上都不是, 下列说法正确的是) names none of them
SHARED_MIN_NGRAMS = 5  # a vignette: this many stem n-grams (n + 4 characters) shared by items that differ


@dataclass
class ExamItem:
    id: str
    group: str  # "cmmlu:anatomy"
    stem: str  # normalised, labels cut
    options: tuple[str, ...]
    answer: tuple[int, ...]  # option numbers of the correct option(s)
    checkable: bool = True
    why_unchecked: str = ""
    stem_ngrams: np.ndarray = field(default_factory=lambda: np.empty(0, np.uint64))
    specific: np.ndarray = field(default_factory=lambda: np.empty(0, np.uint64))  # n-grams no sibling has
    anchors: list[str] = field(default_factory=list)  # whole-segment keys (stems and options under n)
    option_ngrams: np.ndarray = field(default_factory=lambda: np.empty(0, np.uint64))  # of options of n and more
    siblings: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return self.stem + "".join(self.options)


@dataclass
class Dialogue:
    id: str
    group: str  # "test:<source>"
    question: list[str]  # normalised turns: instruction, input, history
    answer: list[str]  # the reference reply


def exam_item(key: str, group: str, stem: str, options: tuple[str, ...], answer: str) -> ExamItem:
    item = ExamItem(key, group, strip_labels(stem), tuple(strip_labels(o) for o in options),
                    tuple(ord(a) - ord("A") for a in answer))  # fmt: skip
    if len(item.stem) < MIN_STEM_CHARS:
        item.checkable, item.why_unchecked = False, f"stem under {MIN_STEM_CHARS} characters"
    elif len(item.text) < MIN_ITEM_CHARS:
        item.checkable, item.why_unchecked = False, f"stem and options under {MIN_ITEM_CHARS} characters"
    return item


def prepare(items: list[ExamItem], n: int) -> list[dict]:
    """Anchors, stem n-grams and siblings of every item, decided over the whole benchmark side; returns the
    shared vignettes."""
    users: dict[str, set[str]] = defaultdict(set)  # segment text → the distinct items (stem + options) using it
    for item in items:
        for segment in (item.stem, *item.options):
            users[segment].add(item.text)
    for item in items:
        item.stem_ngrams = np.unique(hashing.ngrams(codepoints(item.stem), n))
        # every specific segment is a key: a copy whose stem was edited is still found (as a candidate) by its
        # options, and the exact check or the near-duplicate score decides
        segments = [s for s in (item.stem, *item.options) if len(users[s]) < GENERIC_ITEMS]
        item.anchors = sorted({s for s in segments if MIN_ANCHOR_CHARS <= len(s) < n})
        long_options = [hashing.ngrams(codepoints(o), n) for o in item.options if o in segments and len(o) >= n]
        item.option_ngrams = np.unique(np.concatenate(long_options)) if long_options else item.option_ngrams
        if item.checkable and not len(item.stem_ngrams) and not item.anchors:
            item.checkable, item.why_unchecked = False, "no stem or option specific enough to look for"
    # siblings: items of other text whose stems share n-grams (the case of an A3/A4 group)
    owners: dict[int, list[int]] = defaultdict(list)
    for i, item in enumerate(items):
        for h in item.stem_ngrams.tolist():
            owners[h].append(i)
    shared: dict[int, set[int]] = defaultdict(set)
    pair_counts: dict[tuple[int, int], int] = defaultdict(int)
    for h, who in owners.items():
        distinct = {items[i].text for i in who}
        if len(distinct) < 2 or len(who) > 4 * GENERIC_ITEMS:
            continue
        for i in who:
            shared[i].add(h)
        for a in who:
            for b in who:
                if a < b and items[a].text != items[b].text:
                    pair_counts[a, b] += 1
    for i, item in enumerate(items):
        mine = shared.get(i, set())
        item.specific = item.stem_ngrams[~np.isin(item.stem_ngrams, np.fromiter(mine, np.uint64, len(mine)))]
    parent = list(range(len(items)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for (a, b), count in pair_counts.items():
        if count >= SHARED_MIN_NGRAMS:
            parent[root(a)] = root(b)
    groups: dict[int, list[int]] = defaultdict(list)
    for a, b in pair_counts:
        if pair_counts[a, b] >= SHARED_MIN_NGRAMS:
            groups[root(a)] += [a, b]
    vignettes = []
    for members in groups.values():
        members = sorted(set(members), key=lambda i: items[i].id)
        for i in members:
            items[i].siblings = [items[j].id for j in members if j != i]
        common = _shared_text([items[i].stem for i in members])
        vignettes.append({"items": [items[i].id for i in members], "shared_text": common,
                          "shared_chars": len(common)})  # fmt: skip
    return sorted(vignettes, key=lambda v: v["items"][0])


def _shared_text(texts: list[str]) -> str:
    """The longest text every member holds (usually the case before each question)."""
    from difflib import SequenceMatcher

    common = texts[0]
    for other in texts[1:]:
        m = SequenceMatcher(None, common, other, autojunk=False).find_longest_match(0, len(common), 0, len(other))
        common = common[m.a : m.a + m.size]
    return common
