"""End to end: each family's train recipe, then its predict recipe, run by `llamafactory-cli` on a tiny local model.

Only `key=value` overrides change a recipe: the model path, the demo dataset, the output dir, a few steps/samples,
and the CPU settings below. Runs from the repo root on CPU (CUDA hidden), offline.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
from lfcli import CPU, FAMILIES, REPO_ROOT, adapter_factory, llamafactory

DEMO_TEST = REPO_ROOT / "demo" / "data" / "medasst_test.jsonl"
MAX_SAMPLES = 8

pytestmark = pytest.mark.slow


def demo_test_records() -> list[dict]:
    with open(DEMO_TEST, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()][:MAX_SAMPLES]


@pytest.fixture(scope="module")
def trained(tiny_model, tmp_path_factory: pytest.TempPathFactory):
    """Factory: family → (model path, adapter dir); trains once per family per test session."""
    overrides = ["dataset=medasst_demo_train", "max_steps=2", f"max_samples={MAX_SAMPLES}"]
    return adapter_factory(tiny_model, tmp_path_factory, "lora", overrides)


def check_predictions(out_dir: Path, marker: str) -> None:
    path = out_dir / "generated_predictions.jsonl"
    assert path.is_file()
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    expected = demo_test_records()
    assert len(rows) == len(expected)
    for row, record in zip(rows, expected, strict=True):
        assert set(row) == {"prompt", "predict", "label"}
        assert isinstance(row["predict"], str)
        assert marker in row["prompt"], "the recipe's chat template renders the prompt"
        assert record["instruction"] in row["prompt"]
        for old_query, _ in record.get("history") or []:
            assert old_query in row["prompt"], "multi-turn history reaches the prompt"
        assert row["label"].strip() and record["output"].strip().startswith(row["label"].strip())
    metrics = json.loads((out_dir / "predict_results.json").read_text(encoding="utf-8"))
    for key in ("predict_bleu-4", "predict_rouge-1", "predict_rouge-2", "predict_rouge-l"):
        assert math.isfinite(metrics[key])


@pytest.mark.parametrize("family", list(FAMILIES))
def test_train_then_predict(family: str, trained, tmp_path: Path) -> None:
    model, adapter = trained(family)
    assert (adapter / "adapter_model.safetensors").is_file()
    assert not (adapter / "adapter_model.bin").exists(), "safetensors only"
    adapter_config = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))
    assert adapter_config["peft_type"] == "LORA" and adapter_config["r"] == 8
    assert adapter_config["lora_alpha"] == 16
    result = json.loads((adapter / "train_results.json").read_text(encoding="utf-8"))
    assert math.isfinite(result["train_loss"]) and result["train_loss"] > 0
    state = json.loads((adapter / "trainer_state.json").read_text(encoding="utf-8"))
    assert state["global_step"] == 2

    predict_dir = tmp_path / "predict"
    llamafactory(
        "train",
        FAMILIES[family][1],
        [
            f"model_name_or_path={model}",
            f"adapter_name_or_path={adapter}",
            "eval_dataset=medasst_demo_test",
            f"output_dir={predict_dir}",
            f"max_samples={MAX_SAMPLES}",
            "max_new_tokens=8",
            *CPU,
        ],
        tmp_path / "predict.log",
    )
    check_predictions(predict_dir, FAMILIES[family][3])


def test_untouched_qwen2_predict(tiny_model, tmp_path: Path) -> None:
    predict_dir = tmp_path / "predict"
    llamafactory(
        "train",
        "qwen2_base_predict",
        [
            f"model_name_or_path={tiny_model('qwen2')}",
            "eval_dataset=medasst_demo_test",
            f"output_dir={predict_dir}",
            f"max_samples={MAX_SAMPLES}",
            "max_new_tokens=8",
            *CPU,
        ],
        tmp_path / "predict.log",
    )
    check_predictions(predict_dir, FAMILIES["qwen2"][3])


def test_export_merges_adapter(trained, tmp_path: Path) -> None:
    """`llamafactory-cli export` of the MedAsst recipe writes a standalone safetensors model equal to base + adapter."""
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file, save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model, trained_adapter = trained("qwen2")
    # two steps at warm-up lr leave LoRA B ≈ 0 (merged ≈ base); give B visible weights so the merge is checkable
    adapter = tmp_path / "adapter"
    shutil.copytree(trained_adapter, adapter, ignore=shutil.ignore_patterns("checkpoint-*"))
    weights = load_file(adapter / "adapter_model.safetensors")
    generator = torch.Generator().manual_seed(0)
    lora_b = [k for k in weights if "lora_B" in k]
    assert lora_b
    for key in lora_b:
        weights[key] = torch.randn(weights[key].shape, generator=generator) * 0.05
    save_file(weights, adapter / "adapter_model.safetensors", metadata={"format": "pt"})
    export_dir = tmp_path / "merged"
    llamafactory(
        "export",
        FAMILIES["qwen2"][2],
        [f"model_name_or_path={model}", f"adapter_name_or_path={adapter}", f"export_dir={export_dir}"],
        tmp_path / "export.log",
    )
    assert list(export_dir.glob("*.safetensors")), "merged weights"
    assert not list(export_dir.glob("*.bin")), "safetensors only"
    assert not (export_dir / "adapter_config.json").exists(), "the adapter is merged, not copied"

    tokenizer = AutoTokenizer.from_pretrained(export_dir)
    # the recipe's template and Qwen2 system prompt travel with the merged model
    rendered = tokenizer.apply_chat_template([{"role": "user", "content": "头痛怎么办"}], tokenize=False)
    assert "<|im_start|>system\nYou are a helpful assistant.<|im_end|>" in rendered
    ids = tokenizer(rendered, return_tensors="pt").input_ids
    merged = AutoModelForCausalLM.from_pretrained(export_dir, dtype=torch.float32).eval()
    base = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32).eval()
    with torch.no_grad():
        before = base(ids).logits
        want = PeftModel.from_pretrained(base, adapter).eval()(ids).logits
        got = merged(ids).logits
    assert torch.isfinite(got).all()
    assert not torch.allclose(got, before, atol=1e-3), "the adapter changed the model"
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
