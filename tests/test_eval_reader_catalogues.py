"""The readers on catalogues of real replies (tests/fixtures/readers): never a wrong reading, and the read rate
printed. A reply may stay unparsed (counted, never a verdict); a reading other than the expected one fails."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from eval.judging.verdicts import parse_pairwise, parse_safety, parse_scores
from eval.metrics.letters import parse_letter

FOLDER = Path(__file__).parent / "fixtures" / "readers"


def _rows(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (FOLDER / name).read_text(encoding="utf-8").splitlines() if line.strip()]


def _read(name: str, row: dict[str, Any]) -> Any:
    if name == "pairwise.jsonl":
        return parse_pairwise(row["reply"])
    if name == "safety.jsonl":
        return parse_safety(row["reply"])
    if name == "letters.jsonl":
        return parse_letter(row["reply"], row["letters"])[0]
    scores = parse_scores(row["reply"], tuple(row["criteria"]))
    return None if scores is None else [scores[c] for c in row["criteria"]]


SIZES = {"pairwise.jsonl": 150, "scores.jsonl": 80, "safety.jsonl": 40, "letters.jsonl": 150}


def read_rate(name: str) -> tuple[int, int, list[str]]:
    """(read right, readable, wrong readings) over one catalogue."""
    right = readable = 0
    wrong = []
    for row in _rows(name):
        got = _read(name, row)
        if row["expected"] is None:
            if got is not None:
                wrong.append(f"{row['reply'][:120]!r}: read {got!r}, should stay unparsed ({row['source'][:60]})")
            continue
        readable += 1
        if got == row["expected"]:
            right += 1
        elif got is not None:
            wrong.append(f"{row['reply'][:120]!r}: read {got!r}, expected {row['expected']!r} ({row['source'][:60]})")
    return right, readable, wrong


@pytest.mark.parametrize("name", sorted(SIZES))
def test_catalogue_has_no_wrong_reading(name: str, capsys):
    rows = _rows(name)
    published = sum(r["source"] != "constructed" for r in rows)
    assert len(rows) >= SIZES[name] and 2 * published >= len(rows)
    assert {r["lang"] for r in rows} == {"zh", "en"}
    right, readable, wrong = read_rate(name)
    with capsys.disabled():
        print(f"\n{name}: read {right}/{readable} readable replies ({right / readable:.1%}), "
              f"{len(rows) - readable} must stay unparsed; {len(wrong)} wrong")  # fmt: skip
    assert not wrong, "\n".join(wrong)
