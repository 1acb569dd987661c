"""The near-duplicate stage measured: copies of random real questions edited (1-3 characters substituted in the
stem, options reordered, a prefix or suffix added, punctuation swapped) are found as `near` (or, where the edit
leaves the segments whole, `dirty`); unplanted questions are not. The audit runs at the lowest cutoff (--near 50)
so each threshold's recall and false-positive rate can be read off one scan; eval/README.md gives the numbers."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from eval import contamination
from eval.data.benchmarks import EVAL_SPLIT, BenchmarkSource, resolve_subjects

SEED = 7
PER_EDIT = 60
EDITS = ("substitute_1", "substitute_3", "reorder", "prefix_suffix", "punctuation")
FILLER = "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面"
DEMO_TRAIN = Path(__file__).resolve().parents[1] / "demo" / "data" / "medasst_train.jsonl"
SWAP = str.maketrans({"，": ",", "。": ".", "？": "?", "、": ",", "：": ":", "（": "(", "）": ")", ",": "，"})


def edited(q, edit: str, rng: random.Random) -> str:
    stem, options = q.question, list(q.options)
    if edit.startswith("substitute"):
        k = int(edit[-1])
        spots = [i for i, ch in enumerate(stem) if "\u4e00" <= ch <= "\u9fff"]
        for i in rng.sample(spots, min(k, len(spots))):
            stem = stem[:i] + rng.choice(FILLER.replace(stem[i], "")) + stem[i + 1 :]
    elif edit == "reorder":
        rng.shuffle(options)
    elif edit == "prefix_suffix":
        stem = "请帮我看看这道题" + stem
        options[-1] += "，谢谢老师"
    elif edit == "punctuation":
        stem = stem.translate(SWAP).replace("，", " ，")
    lines = "\n".join(f"{c}. {o}" for c, o in zip("ABCDE", options, strict=False))
    return f"{stem}\n{lines}"


def measure(root: Path) -> tuple[dict, dict[str, list[str]], set[str]]:
    source = BenchmarkSource()
    questions = []
    for subject in resolve_subjects("paper", source):
        questions += source.load(subject.benchmark, subject.subject, EVAL_SPLIT[subject.benchmark])[0]
    rng = random.Random(SEED)
    rng.shuffle(questions)
    plants: dict[str, list[str]] = {}
    rows = [json.loads(line) for line in DEMO_TRAIN.read_text(encoding="utf-8").splitlines() if line.strip()]
    for e, edit in enumerate(EDITS):
        for j, q in enumerate(questions[e * PER_EDIT : (e + 1) * PER_EDIT]):
            rows.append({"id": f"{edit}-{j}", "instruction": edited(q, edit, rng), "output": "好的。"})
            plants.setdefault(edit, []).append(q.key)
    train = root / "train.jsonl"
    train.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    request = contamination.ContaminationRequest(output=root / "out", train=train, subjects="paper", dataset="",
                                                 near=50)  # fmt: skip
    unplanted = {q.key for q in questions[len(EDITS) * PER_EDIT :]}
    return contamination.run(request), plants, unplanted


def rates(result: dict, plants: dict[str, list[str]], unplanted: set[str], threshold: float):
    entries = {e["id"]: e for e in result["flagged"]}
    unchecked = set(result["unchecked"])

    def found(key: str) -> bool:
        e = entries.get(key, {})
        return e.get("status") == "dirty" or e.get("near_score", 0) >= threshold

    recall = {edit: sum(found(k) for k in keys if k not in unchecked) / sum(k not in unchecked for k in keys)
              for edit, keys in plants.items()}  # fmt: skip
    negatives = [k for k in unplanted if k not in unchecked]
    false = sum(entries.get(k, {}).get("near_score", 0) >= threshold for k in negatives) / len(negatives)
    return recall, false


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    return measure(tmp_path_factory.mktemp("near"))


def test_near_duplicates_recall_and_false_positives_at_the_default_threshold(measured):
    result, plants, unplanted = measured
    for threshold in (80, 85, 90, 95):
        print(threshold, *rates(result, plants, unplanted, threshold))
    recall, false = rates(result, plants, unplanted, contamination.DEFAULT_NEAR)
    assert recall["reorder"] >= 0.95 and recall["punctuation"] >= 0.95  # segments whole: verbatim
    assert recall["substitute_1"] >= 0.95 and recall["substitute_3"] >= 0.85 and recall["prefix_suffix"] >= 0.95
    assert false <= 0.005
    assert result["stages"]["near_checked"] <= result["stages"]["candidates"]  # bounded by stage 1's candidates
