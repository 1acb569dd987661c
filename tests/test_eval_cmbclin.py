"""CMB-Clin shipped as a registered alpaca set: one record per question, earlier questions with CMB's reference
answers as history, rendered by LLaMA-Factory like any other test set."""

from __future__ import annotations

import json

from eval.data import cmbclin, prompts
from medasst.facts import CMB_CLIN, CMB_CLIN_FILE, REPO_ROOT


def test_shipped_jsonl_is_current():
    assert (cmbclin.FOLDER / CMB_CLIN_FILE).read_bytes() == cmbclin.render()


def test_cases_become_dialogues_with_reference_history():
    cases = json.loads((cmbclin.FOLDER / "CMB-Clin-qa.json").read_text(encoding="utf-8"))
    records = cmbclin.records(cases)
    assert len(cases) == 74 and len(records) == 208
    assert len({r["id"] for r in records}) == 208
    first, second = records[0], records[1]
    assert first["history"] == [] and cases[0]["description"].strip()[:20] in first["instruction"]
    assert second["id"] == f"cmbclin-{cases[0]['id']}-2"
    assert second["history"] == [[first["instruction"], cases[0]["QA_pairs"][0]["answer"].strip()]]
    assert second["instruction"] == cases[0]["QA_pairs"][1]["question"].strip()


def test_registered_and_read_by_llamafactory(tiny_model):
    from llamafactory.data import get_template_and_fix_tokenizer
    from transformers import AutoTokenizer

    info = json.loads((REPO_ROOT / "dataset_info.json").read_text(encoding="utf-8"))
    assert info[CMB_CLIN]["columns"]["history"] == "history"
    tokenizer = AutoTokenizer.from_pretrained(tiny_model("qwen2"))
    template = get_template_and_fix_tokenizer(tokenizer, prompts.data_arguments(str(REPO_ROOT), "qwen", 4096))
    examples = prompts.build_examples(CMB_CLIN, str(REPO_ROOT), tokenizer, template, "qwen", 4096, max_samples=3)
    assert [e.id for e in examples] == ["cmbclin-0-1", "cmbclin-0-2", "cmbclin-0-3"]
    third = tokenizer.decode(examples[2].input_ids)
    # the earlier questions and their reference answers are prior turns of the prompt
    assert third.count("<|im_start|>user") == 3 and "嵌顿性腹股沟斜疝" in third
    _, by_id = prompts.records_by_id(CMB_CLIN, REPO_ROOT)
    assert by_id["cmbclin-0-3"]["description"].startswith("现病史")
