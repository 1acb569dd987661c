"""LLaMA-Factory 0.9.5 loads our outputs with the `dataset_info.json` entries as written, through its own pipeline."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from medasst.facts import DATASET_INFO, DEMO_DATA_DIR, DEMO_TRAIN, REPO_ROOT

pytestmark = pytest.mark.slow


def _train_args(model: Path, dataset: str, out: Path) -> dict:
    return {
        "stage": "sft",
        "do_train": True,
        "model_name_or_path": str(model),
        "finetuning_type": "lora",
        "dataset": dataset,
        "dataset_dir": str(REPO_ROOT),
        "template": "qwen",
        "cutoff_len": 4096,  # long enough that no demo dialogue is truncated before we compare text
        "output_dir": str(out),
        "overwrite_cache": True,
        "preprocessing_num_workers": None,
        "report_to": "none",
    }


def test_demo_train_renders_multi_turn_chatml_in_order(tiny_model, tmp_path: Path) -> None:
    from llamafactory.data import get_dataset, get_template_and_fix_tokenizer
    from llamafactory.hparams import get_train_args
    from llamafactory.model import load_tokenizer

    os.environ.setdefault("WANDB_DISABLED", "true")
    model_args, data_args, training_args, _ft, _gen = get_train_args(
        _train_args(tiny_model("qwen2"), DEMO_TRAIN, tmp_path / "out")
    )
    tokenizer_module = load_tokenizer(model_args)
    tokenizer = tokenizer_module["tokenizer"]
    template = get_template_and_fix_tokenizer(tokenizer, data_args)
    dataset = get_dataset(template, model_args, data_args, training_args, "sft", **tokenizer_module)["train_dataset"]

    records = [json.loads(line) for line in (DEMO_DATA_DIR / "medasst_train.jsonl").read_bytes().splitlines()]
    assert len(dataset) == len(records)
    index = next(i for i, r in enumerate(records) if len(r["history"]) >= 2)
    rec, row = records[index], dataset[index]
    turns = [*rec["history"], [rec["instruction"], rec["output"]]]
    expected = "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
    for user, assistant in turns:
        expected += f"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n{assistant}<|im_end|>\n"
    text = tokenizer.decode(row["input_ids"], skip_special_tokens=False)
    # The qwen template's default system prompt may differ between LF versions; the turns must not.
    assert text.endswith(expected.split("<|im_end|>\n", 1)[1])
    assert text.startswith("<|im_start|>system\n")
    labelled = tokenizer.decode([t for t in row["labels"] if t != -100], skip_special_tokens=False)
    assert labelled == "".join(f"{a}<|im_end|>\n" for _u, a in turns)  # history answers are learned too


def test_every_registered_file_that_exists_loads(tmp_path: Path) -> None:
    from llamafactory.data.loader import _load_single_dataset
    from llamafactory.data.parser import get_dataset_list
    from llamafactory.hparams import DataArguments, ModelArguments

    info = json.loads((REPO_ROOT / DATASET_INFO).read_bytes())
    names = [n for n, e in info.items() if (REPO_ROOT / e["file_name"]).is_file()]
    assert {"medasst_demo_train", "medasst_demo_test"} <= set(names)
    data_args = DataArguments(dataset_dir=str(REPO_ROOT), template="qwen")
    model_args = ModelArguments(model_name_or_path="unused", cache_dir=str(tmp_path))

    class _Args:  # the loader only reads these from Seq2SeqTrainingArguments for local files
        seed = 0
        local_process_index = 0

    for name, attr in zip(names, get_dataset_list(names, str(REPO_ROOT)), strict=True):
        ds = _load_single_dataset(attr, model_args, data_args, _Args())
        first = ds[0]
        assert first["_prompt"][-1]["role"] == "user" and first["_response"][0]["content"], name
        assert len(ds) == (REPO_ROOT / info[name]["file_name"]).read_bytes().count(b"\n"), name
