"""The decontamination loop end to end, on the real audit: exam items planted in a raw training file are found by
`eval.run contamination`, `build --exclude` leaves their records out, and the audit of the new build is clean."""

from __future__ import annotations

import csv
import json
import random
import shutil
from pathlib import Path

from converters.pipeline import Options, build
from eval import run as eval_run
from medasst.facts import DEMO_RAW_DIR, REPO_ROOT

CMMLU = REPO_ROOT / "eval" / "benchmarks" / "CMMLU" / "data" / "test"


def _planted_items(k: int, seed: int = 7) -> list[dict]:
    """`k` CMMLU questions drawn at random from every shipped subject, as LLaMA-Factory's eval prompt lays them
    out (stem, `A. option` lines, `答案：X`) — a training record a scraped exam-practice site could hold."""
    rows = []
    for path in sorted(CMMLU.glob("*.csv")):
        with path.open(encoding="utf-8") as fh:
            rows += [(path.stem, row) for row in csv.DictReader(fh)]
    chosen = random.Random(seed).sample(rows, k)
    items = []
    for subject, row in chosen:
        text = row["Question"] + "".join(f"\n{c}. {row[c]}" for c in "ABCD")
        items.append({"subject": subject, "answer": row["Answer"], "text": text})
    return items


def _audit(train: Path, out: Path) -> dict:
    # every shipped subject (the plants come from all nine), no test dialogues
    assert eval_run.main(["contamination", "--train", str(train), "--subjects", "medical", "--dataset", "",
                          "--output", str(out), "--workers", "1"]) == 0  # fmt: skip
    return json.loads((out / "contamination.json").read_text(encoding="utf-8"))


def test_planted_exam_items_are_found_excluded_and_gone_from_the_next_audit(tmp_path: Path):
    raw = tmp_path / "raw"
    shutil.copytree(DEMO_RAW_DIR, raw)
    planted = _planted_items(4)
    with (raw / "MedChatZH" / "MedChatZH_train.json").open("a", encoding="utf-8") as fh:
        for item in planted:
            record = {"instruction": item["text"], "input": "", "output": f"答案：{item['answer']}"}
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    first = build(Options(raw_dir=raw, out_dir=tmp_path / "data"))
    audit = _audit(tmp_path / "data" / "medasst_train.jsonl", tmp_path / "audit1")
    flagged = {e["id"]: e for e in audit["flagged"] if e["status"] == "dirty"}
    assert len(flagged) >= 4, sorted(flagged)
    named = {r["train_id"] for e in flagged.values() for r in e["records"]}
    assert named and all(rid.startswith("medchatzh-train-") for rid in named)

    exclusion = tmp_path / "audit1" / "contamination.json"
    second = build(Options(raw_dir=raw, out_dir=tmp_path / "clean", exclude=exclusion))
    kept = {json.loads(line)["id"] for line in (tmp_path / "clean" / "medasst_train.jsonl").read_text().splitlines()}
    assert not kept & named
    assert second["merged"]["train"]["written"] == first["merged"]["train"]["written"] - len(named)
    test = "medasst_test.jsonl"
    assert (tmp_path / "clean" / test).read_bytes() == (tmp_path / "data" / test).read_bytes()
    again = _audit(tmp_path / "clean" / "medasst_train.jsonl", tmp_path / "audit2")
    assert not [e for e in again["flagged"] if e["id"] in flagged], "a planted item is still in the clean build"
