"""`generate --truncation keep-end`: a prompt longer than cutoff_len loses its start, never the patient's last
message or the assistant header, and the reference plays no part; LLaMA-Factory's own truncation stays the default."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eval.data import prompts

LAST = "最后的问题：这种情况需要住院吗？"
RECORD = {
    "instruction": LAST, "input": "", "id": "long-1", "source": "cmtmedqa",
    "output": "需要结合检查结果判断。" * 60,  # a long doctor's reply: LF sizes the prompt's share by it
    "history": [[f"第{i}轮：我最近头痛、乏力，晚上睡不好，白天注意力也不集中，", "您好，请描述一下症状持续了多久。"]
                for i in range(8)],
}  # fmt: skip
SHORT = {"instruction": "头痛怎么办？", "input": "", "output": "注意休息。", "history": [], "id": "short-1"}


@pytest.fixture
def dataset_dir(tmp_path: Path) -> Path:
    (tmp_path / "t.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in (RECORD, SHORT)),
                                      encoding="utf-8")  # fmt: skip
    columns = {"prompt": "instruction", "query": "input", "response": "output", "history": "history"}
    (tmp_path / "dataset_info.json").write_text(json.dumps({"t": {"file_name": "t.jsonl", "columns": columns}}))
    return tmp_path


def _examples(tiny_model, dataset_dir: Path, truncation: str, cutoff: int = 160):
    args = {"model_name_or_path": str(tiny_model("qwen2")), "template": "qwen", "cutoff_len": cutoff,
            "finetuning_type": "lora"}  # fmt: skip
    tokenizer, template = prompts.load_tokenizer_and_template(args)
    examples = prompts.build_examples("t", str(dataset_dir), tokenizer, template, "qwen", cutoff,
                                      truncation=truncation)  # fmt: skip
    return tokenizer, {e.id: e for e in examples}


def test_keep_end_keeps_the_last_patient_turn_and_the_assistant_header(tiny_model, dataset_dir: Path):
    tokenizer, lf = _examples(tiny_model, dataset_dir, "lf")
    _, kept = _examples(tiny_model, dataset_dir, "keep-end")
    lf_prompt = tokenizer.decode(lf["long-1"].input_ids)
    # LLaMA-Factory's own truncation (the paper's protocol): the prompt's end goes, and with it the question
    assert LAST not in lf_prompt and not lf_prompt.endswith("<|im_start|>assistant\n")
    prompt = tokenizer.decode(kept["long-1"].input_ids)
    assert LAST in prompt and prompt.endswith("<|im_start|>assistant\n")
    assert len(kept["long-1"].input_ids) == 160 and kept["long-1"].prompt_cut
    assert kept["long-1"].label_ids and not kept["long-1"].label_cut  # the reference is whole, for scoring
    # a record that fits is the same either way
    assert kept["short-1"].input_ids == lf["short-1"].input_ids and not kept["short-1"].prompt_cut
    summary = prompts.truncation_summary(list(kept.values()), 160, "keep-end")
    assert summary["mode"] == "keep-end" and summary["prompt_ids_cut"] == ["long-1"]


def test_an_unknown_truncation_is_refused(dataset_dir: Path):
    with pytest.raises(prompts.DatasetError, match="truncation 'middle'"):
        prompts.build_examples("t", str(dataset_dir), None, None, "qwen", 160, truncation="middle")
