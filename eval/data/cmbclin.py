"""CMB-Clin's cases → one alpaca record per question, as CMB's own harness puts them to a model.

A case's k-th question is asked after the earlier ones, whose turns carry CMB's *reference* answers (CMB's
workers feed the references, not the model's own answers, as prior turns), so every system sees the same
dialogue. The first turn opens with the case description. Each record keeps `description` and `title` for the
judge, which shows the case once above the dialogue. Ids: `cmbclin-<case id>-<question number>`.

`python -m eval.data.cmbclin` rewrites the shipped JSONL from the shipped upstream file; a test checks it is
current.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from medasst.facts import CMB_CLIN, CMB_CLIN_DIR, CMB_CLIN_FILE, CMB_CLIN_UPSTREAM, REPO_ROOT

FOLDER = REPO_ROOT / CMB_CLIN_DIR
CASE_INTRO = "以下是一位患者的病例资料：\n{description}\n\n请回答：{question}"


def records(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for case in cases:
        history: list[list[str]] = []
        description = str(case["description"]).strip()
        for k, qa in enumerate(case["QA_pairs"], start=1):
            question = str(qa["question"]).strip()
            shown = CASE_INTRO.format(description=description, question=question) if k == 1 else question
            out.append({
                "instruction": shown,
                "input": "",
                "output": str(qa["answer"]).strip(),
                "history": [list(turn) for turn in history],
                "source": CMB_CLIN,
                "id": f"cmbclin-{case['id']}-{k}",
                "title": str(case.get("title", "")),
                "description": description,
            })  # fmt: skip
            history.append([shown, str(qa["answer"]).strip()])
    return out


def render(upstream: Path = FOLDER / CMB_CLIN_UPSTREAM) -> bytes:
    cases = json.loads(upstream.read_text(encoding="utf-8"))
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records(cases)).encode("utf-8")


if __name__ == "__main__":
    from eval.common.files import atomic_write_bytes

    atomic_write_bytes(FOLDER / CMB_CLIN_FILE, render())
