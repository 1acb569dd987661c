"""The scan's findings as contamination.json: a status per item, counts per subject and test source, evidence.

Exam item status: `dirty` (a verbatim copy: `input-and-label` or `input`), `partly` (`stem`: a long stem
verbatim without its options; `near`: a near-duplicate; `stem_overlap`: most of the item-specific stem n-grams
somewhere in training; `shared_vignette`: only the case text it shares with its siblings), `clean`, or
`unchecked` (too short to tell: never clean). Test dialogue status: `dirty` (the question side, instruction +
input + history, mostly found), `answer_only` (only the reference reply's sentences recur: a stock answer, not a
copied question), `clean`, `unchecked`.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from eval.contamination import hashing
from eval.contamination.index import Index
from eval.contamination.text import codepoints

EXAM_STATES = ("dirty", "partly", "clean", "unchecked")
DIALOGUE_STATES = ("dirty", "answer_only", "clean", "unchecked")


def _share(index: Index, at: np.ndarray) -> float | None:
    return float(index.found[at].mean()) if len(at) else None


def _majority(index: Index, at: np.ndarray) -> int | None:
    hits = index.first_record[at]
    values, counts = np.unique(hits[hits >= 0], return_counts=True)
    return int(values[np.argmax(counts)]) if len(values) else None


def _longest_found(index: Index, turns: list[str]) -> str:
    """The longest stretch of a side whose consecutive n-grams were all found: the matched text."""
    best = ""
    for turn in turns:
        grams = hashing.ngrams(codepoints(turn), index.n)
        if not len(grams):
            continue
        at = np.minimum(np.searchsorted(index.keys, grams), len(index.keys) - 1)
        found = (index.keys[at] == grams) & index.found[at]
        run = start = 0
        for i, hit in enumerate([*found.tolist(), False]):
            if hit:
                run += 1
                continue
            if run and run + index.n - 1 > len(best):
                best = turn[start : start + run + index.n - 1]
            run, start = 0, i + 1
    return best[:400]


def _record(ids: dict[int, tuple[str, int]], record: int | None, side: str, span: str) -> dict[str, Any] | None:
    if record is None or record not in ids:
        return None
    rid, line = ids[record]
    return {"train_id": rid, "line": line, "side": side, "span": span}


def exam_entry(index: Index, i: int, scanned: dict[str, Any], threshold: float) -> dict[str, Any]:
    item = index.exams[i]
    overlap = _share(index, index.stem_at[i])
    share = None if overlap is None else round(overlap, 4)
    entry: dict[str, Any] = {"id": item.id, "group": item.group, "overlap": share}
    if not item.checkable:
        return entry | {"status": "unchecked", "reason": item.why_unchecked}
    evidence = scanned["exact"].get(i)
    if evidence and evidence[0]["kind"] != "stem":
        best = evidence[0]["kind"]
        records = [{"train_id": e["id"], "line": e["line"],
                    "side": "question+answer" if e["answer"] and e["question"] else
                    ("answer" if e["answer"] else "question"),
                    "contamination": e["kind"], "span": e["span"]} for e in evidence]  # fmt: skip
        records = [{k: v for k, v in r.items() if v is not None} for r in records]
        sides = sorted({s for r in records for s in r["side"].split("+")}, key=("question", "answer").index)
        return entry | {"status": "dirty", "match": "verbatim", "contamination": best, "sides": sides,
                        "records": records, "records_total": scanned["exact_count"][i]}  # fmt: skip
    if evidence:  # a long stem verbatim, without its options or answer
        records = [{"train_id": e["id"], "line": e["line"], "side": "question", "contamination": "stem",
                    **({"span": e["span"]} if e["span"] is not None else {})} for e in evidence]  # fmt: skip
        return entry | {"status": "partly", "reason": "stem", "match": "verbatim", "sides": ["question"],
                        "records": records, "records_total": scanned["exact_count"][i]}  # fmt: skip
    near = scanned["near"].get(i)
    if near is not None:
        record = {"train_id": near["id"], "line": near["line"], "side": "question", "score": near["score"],
                  "span": near["span"]}  # fmt: skip
        return entry | {"status": "partly", "reason": "near", "match": "near", "sides": ["question"],
                        "records": [record], "near_score": near["score"]}  # fmt: skip
    specific = _share(index, index.specific_at[i])
    if specific is not None and specific >= threshold:
        rec = _record(scanned["ids"], _majority(index, index.specific_at[i]), "question",
                      _longest_found(index, [item.stem]))  # fmt: skip
        return entry | {"status": "partly", "reason": "stem_overlap", "match": "overlap", "sides": ["question"],
                        "records": [rec] if rec else []}  # fmt: skip
    if item.siblings and overlap is not None and overlap >= threshold:
        rec = _record(scanned["ids"], _majority(index, index.stem_at[i]), "question",
                      _longest_found(index, [item.stem]))  # fmt: skip
        return entry | {"status": "partly", "reason": "shared_vignette", "match": "overlap", "sides": ["question"],
                        "siblings": item.siblings, "records": [rec] if rec else []}  # fmt: skip
    return entry | {"status": "clean"}


def dialogue_entry(index: Index, j: int, ids: dict[int, tuple[str, int]], threshold: float) -> dict[str, Any]:
    d = index.dialogues[j]
    q, a = _share(index, index.question_at[j]), _share(index, index.answer_at[j])
    entry: dict[str, Any] = {"id": d.id, "group": d.group, "question_overlap": None if q is None else round(q, 4),
                             "answer_overlap": None if a is None else round(a, 4)}  # fmt: skip
    if q is None:
        return entry | {"status": "unchecked", "reason": f"question side under {index.n} characters"}
    sides = [side for side, share in (("question", q), ("answer", a)) if share is not None and share >= threshold]
    if not sides:
        return entry | {"status": "clean"}
    records = []
    for side in sides:
        at = index.question_at[j] if side == "question" else index.answer_at[j]
        text = d.question if side == "question" else d.answer
        rec = _record(ids, _majority(index, at), side, _longest_found(index, text))
        if rec:
            records.append(rec)
    # one record holding both sides is one copy of the dialogue
    if len(records) == 2 and records[0]["train_id"] == records[1]["train_id"]:
        records = [records[0] | {"side": "question+answer", "span": records[0]["span"]}]
    status = "dirty" if "question" in sides else "answer_only"
    return entry | {"status": status, "match": "verbatim", "sides": sides, "records": records}


def summarize(index: Index, scanned: dict[str, Any], threshold: float) -> dict[str, Any]:
    exams = [exam_entry(index, i, scanned, threshold) for i in range(len(index.exams))]
    dialogues = [dialogue_entry(index, j, scanned["ids"], threshold) for j in range(len(index.dialogues))]
    subjects: dict[str, Counter] = {}
    for e in exams:
        counts = subjects.setdefault(e["group"], Counter())
        counts["n"] += 1
        counts[e["status"]] += 1
        if e["status"] == "dirty":
            counts[e["contamination"]] += 1
        elif e["status"] == "partly":
            counts[e["reason"]] += 1
    sources: dict[str, Counter] = {}
    for e in dialogues:
        counts = sources.setdefault(e["group"].split(":", 1)[1], Counter())
        counts["n"] += 1
        counts[e["status"]] += 1
    benchmarks: dict[str, Counter] = {}
    for key, counts in subjects.items():
        benchmarks.setdefault(key.split(":", 1)[0], Counter()).update(counts)

    def table(groups: dict[str, Counter], states: tuple[str, ...]) -> dict[str, dict[str, Any]]:
        out = {}
        for key, counts in sorted(groups.items()):
            row = {"n": counts["n"], **{s: counts[s] for s in states}}
            row |= {k: v for k, v in sorted(counts.items()) if k not in row}
            checked = counts["n"] - counts["unchecked"]
            row["dirty_share"] = counts["dirty"] / checked if checked else 0.0
            out[key] = row
        return out

    flagged = [e for e in exams + dialogues if e["status"] not in ("clean", "unchecked")]
    return {
        "benchmarks": table(benchmarks, EXAM_STATES),
        "subjects": table(subjects, EXAM_STATES),
        "test_sources": table(sources, DIALOGUE_STATES),
        "flagged": sorted(flagged, key=lambda e: e["id"]),
        "unchecked": sorted(e["id"] for e in exams + dialogues if e["status"] == "unchecked"),
    }
