"""`mcq --scoring generate`: the letter parsed from a greedy reply (Chinese and English patterns, never a default),
the parse failures counted per subject; a model taught to reply "答案是C。" is read as C."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eval import run as eval_run
from eval.metrics.letters import parse_letter

REPLIES = {
    "答案是C。": "C", "答案：B": "B", "正确答案为 D": "D", "故选A。": "A", "选C": "C", "C": "C",
    "C. 咽鼓管宽、短、直": "C", "（Ｂ）鼻腔相对较小": "B", "The answer is (C).": "C", "Answer: D": "D",
    "\\boxed{A}": "A", "B是正确的，因为": "B", "根据CT检查结果，答案是D": "D", "这道题选项C正确": "C", "选项C": "C",
    "应该是 A 吧": "A", "我不能回答这个问题，请咨询医生。": None, "A和B都对": None, "DNA复制需要引物": None,
    "患者需要做MRI检查": None, "": None, "\n\n\n": None,
}  # fmt: skip


@pytest.mark.parametrize(("reply", "letter"), list(REPLIES.items()))
def test_parse_letter_on_realistic_replies(reply: str, letter: str | None):
    assert parse_letter(reply, "ABCD")[0] == letter


def test_parse_letter_keeps_to_the_questions_letters():
    assert parse_letter("答案应该是E", "ABCD") == (None, "unparsed")
    assert parse_letter("答案应该是E", "ABCDE") == ("E", "statement")
    assert parse_letter("E", "ABCDE") == ("E", "leading")


@pytest.mark.slow
def test_a_model_taught_to_say_the_answer_is_c_is_read_as_c(sentence_taught, tmp_path: Path):
    model, adapter = sentence_taught
    out = tmp_path / "out"
    argv = ["mcq", "--model", str(model), "--adapter", str(adapter), "--subjects", "ceval:physician",
            "--scoring", "generate", "--max-new-tokens", "16", "--batch-size", "16", "--output", str(out)]  # fmt: skip
    assert eval_run.main(argv) == 0
    result = json.loads((out / "mcq.json").read_text(encoding="utf-8"))
    preds = result["predictions"]
    assert sum(p["prediction"] == "C" for p in preds) >= 0.95 * len(preds), [p["reply"] for p in preds[:5]]
    assert result["protocol"]["scoring_method"] == "generate" and result["protocol"]["choice_token_ids"] is None
    assert (
        result["subjects"]["ceval:physician"]["unparsed"]
        == result["unparsed"]
        == sum(p["prediction"] is None for p in preds)
    )
    assert result["fingerprint"]["fields"]["scoring"]["method"] == "generate"
    # logit scoring into the same folder is another protocol: refused, not mixed up
    assert eval_run.main(argv[: argv.index("--scoring")] + argv[argv.index("--batch-size") :]) == 2
