"""Every recipe under recipes/ parses with LLaMA-Factory's own argument parser and carries the paper's values.

Fast (no model is loaded): `get_train_args` for train/predict recipes, `get_infer_args` for export recipes, exactly
as `llamafactory-cli train|export` call them. The baselines must equal MedAsst except model, template and output dir.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
RECIPES = REPO_ROOT / "recipes"

# system → (train recipe, predict recipe, export recipe); the untouched Qwen2-7B has no training run and no adapter.
SYSTEMS: dict[str, tuple[str | None, str, str | None]] = {
    "medasst": ("medasst_qwen2", "medasst_qwen2_predict", "medasst_qwen2_export"),
    "llama3": ("llama3_baseline", "llama3_baseline_predict", "llama3_baseline_export"),
    "gemma": ("gemma_baseline", "gemma_baseline_predict", "gemma_baseline_export"),
    "mistral": ("mistral_baseline", "mistral_baseline_predict", "mistral_baseline_export"),
    "qwen2_base": (None, "qwen2_base_predict", None),
}
TRAIN = [t for t, _, _ in SYSTEMS.values() if t]
PREDICT = [p for _, p, _ in SYSTEMS.values()]
EXPORT = [e for _, _, e in SYSTEMS.values() if e]
# chat / webchat / api recipes of MedAsst (the baselines differ by three lines: recipes/README.md)
INFER = ["medasst_qwen2_infer", "medasst_qwen2_infer_vllm", "medasst_qwen2_merged_infer"]
BASELINES = ["llama3_baseline", "gemma_baseline", "mistral_baseline"]
# related systems outside the paper's comparison (tests/test_recipes_glm.py)
RELATED = [f"{base}_huatuo26m{kind}" for base in ("chatglm3", "glm4") for kind in ("", "_predict", "_export", "_infer")]

# ModelScope ids (USE_MODELSCOPE_HUB=1), the HF id each stands for, LLaMA-Factory's model name, and the template.
MODEL_IDS: dict[str, tuple[str, str, str, str]] = {
    "medasst_qwen2": ("Qwen/Qwen2-7B", "Qwen/Qwen2-7B", "Qwen2-7B", "qwen"),
    "llama3_baseline": (
        "LLM-Research/Meta-Llama-3-8B-Instruct",
        "meta-llama/Meta-Llama-3-8B-Instruct",
        "Llama-3-8B-Instruct",
        "llama3",
    ),
    "gemma_baseline": ("AI-ModelScope/gemma-7b-it", "google/gemma-7b-it", "Gemma-7B-Instruct", "gemma"),
    "mistral_baseline": ("AI-ModelScope/Mistral-7B-v0.1", "mistralai/Mistral-7B-v0.1", "Mistral-7B-v0.1", "mistral"),
}

# The paper's stated hyperparameters (paper.md "Model and method").
PAPER = {
    "cutoff_len": 512,
    "per_device_train_batch_size": 4,
    "gradient_accumulation_steps": 1,
    "num_train_epochs": 3.0,
    "learning_rate": 1e-4,
    "warmup_steps": 100,
    "lr_scheduler_type": "cosine",
}
# What a baseline may change relative to MedAsst (default_system belongs to the `qwen` template choice).
MAY_DIFFER = {"model_name_or_path", "template", "default_system", "output_dir"}


def load(name: str) -> dict[str, Any]:
    with open(RECIPES / f"{name}.yaml", encoding="utf-8") as f:
        return yaml.safe_load(f)


def cpu_safe(cfg: dict[str, Any]) -> dict[str, Any]:
    """The recipe itself, plus `use_cpu` where no bf16 GPU exists (TrainingArguments refuses bf16 otherwise)."""
    from transformers.utils import is_torch_bf16_gpu_available

    cfg = dict(cfg)
    if cfg.get("bf16") and not is_torch_bf16_gpu_available():
        cfg["use_cpu"] = True
    return cfg


@pytest.fixture(autouse=True)
def _strict_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    # unknown keys must fail the parse; hub and launcher switches must not leak in from the caller's shell
    for var in ("ALLOW_EXTRA_ARGS", "USE_MODELSCOPE_HUB", "FORCE_TORCHRUN", "USE_MCA", "USE_RAY"):
        monkeypatch.delenv(var, raising=False)


def parse_train(name: str):
    from llamafactory.hparams import get_train_args

    model, data, training, finetuning, generating = get_train_args(cpu_safe(load(name)))
    return {"model": model, "data": data, "training": training, "finetuning": finetuning, "generating": generating}


def parsed_value(parsed: dict[str, Any], key: str) -> Any:
    for group in ("model", "data", "finetuning", "generating", "training"):
        if hasattr(parsed[group], key):
            return getattr(parsed[group], key)
    raise KeyError(key)


def test_recipe_set_is_complete() -> None:
    on_disk = {p.stem for p in RECIPES.glob("*.yaml")} | {p.stem for p in RECIPES.glob("*.yml")}
    assert on_disk == set(TRAIN + PREDICT + EXPORT + INFER + RELATED), "classify every recipe in this test"
    assert {p.name for p in (RECIPES / "deepspeed").glob("*.json")} == {
        "ds_z2_config.json",
        "ds_z3_config.json",
        "ds_z3_offload_config.json",
    }
    assert (RECIPES / "README.md").is_file()


@pytest.mark.parametrize("name", TRAIN + PREDICT + EXPORT)
def test_repo_rules(name: str) -> None:
    text = (RECIPES / f"{name}.yaml").read_text(encoding="utf-8")
    cfg = load(name)
    assert isinstance(cfg, dict) and cfg
    assert "trust_remote_code" not in cfg, "Qwen2/Llama-3/Gemma/Mistral need no remote code"
    assert "../shared" not in text and "/work/" not in text, "recipes must not point outside the repo"
    assert "deepspeed" not in cfg, "DeepSpeed is opt-in on the command line (see recipes/README.md)"
    assert "quantization_bit" not in cfg
    if name not in EXPORT:
        assert cfg["dataset_dir"] == ".", "run from the repo root, where dataset_info.json lives"
        assert cfg["seed"] == 42


@pytest.mark.parametrize("name", TRAIN)
def test_train_recipe_has_paper_values(name: str) -> None:
    parsed = parse_train(name)
    model, data, training, finetuning = parsed["model"], parsed["data"], parsed["training"], parsed["finetuning"]
    ms_id, _, _, template = MODEL_IDS[name]
    assert model.model_name_or_path == ms_id
    assert model.adapter_name_or_path is None
    assert finetuning.stage == "sft" and finetuning.finetuning_type == "lora"
    assert training.do_train and not training.do_predict
    assert data.dataset == ["medasst_train"] and data.eval_dataset is None
    assert data.template == template
    assert data.cutoff_len == PAPER["cutoff_len"]
    assert training.per_device_train_batch_size == PAPER["per_device_train_batch_size"]
    assert training.gradient_accumulation_steps == PAPER["gradient_accumulation_steps"]
    assert training.num_train_epochs == PAPER["num_train_epochs"]
    assert training.learning_rate == PAPER["learning_rate"]
    assert training.warmup_steps == PAPER["warmup_steps"]
    assert str(getattr(training.lr_scheduler_type, "value", training.lr_scheduler_type)) == PAPER["lr_scheduler_type"]
    assert training.bf16 and not training.fp16
    assert training.seed == 42
    # our choices, stated in recipes/README.md
    assert finetuning.lora_rank == 8 and finetuning.lora_alpha == 16 and finetuning.lora_dropout == 0.05
    assert finetuning.lora_target == ["all"]
    assert training.output_dir.startswith("saves/")


def test_qwen_keeps_qwen2_system_prompt() -> None:
    # LLaMA-Factory >=0.9.3 gives `qwen` the Qwen2.5 system prompt; Qwen2's own is this one (llamafactory.md §2.4)
    for name in ("medasst_qwen2", "medasst_qwen2_predict", "qwen2_base_predict", "medasst_qwen2_export"):
        assert load(name)["default_system"] == "You are a helpful assistant."


@pytest.mark.parametrize("baseline", BASELINES)
def test_baseline_differs_from_medasst_only_where_it_must(baseline: str) -> None:
    ours, theirs = load("medasst_qwen2"), load(baseline)
    assert set(theirs) - set(ours) == set(), "a baseline adds no keys"
    assert set(ours) - set(theirs) <= {"default_system"}
    differing = {k for k in ours if ours.get(k) != theirs.get(k)}
    assert differing <= MAY_DIFFER
    assert {"model_name_or_path", "template", "output_dir"} <= differing
    # and the same holds after LLaMA-Factory's parser has filled in and post-processed every value
    p_ours, p_theirs = parse_train("medasst_qwen2"), parse_train(baseline)
    for key in set(ours) - MAY_DIFFER:
        assert parsed_value(p_ours, key) == parsed_value(p_theirs, key), key


@pytest.mark.parametrize("system", list(SYSTEMS))
def test_predict_recipe_matches_its_training_run(system: str) -> None:
    train, predict, _ = SYSTEMS[system]
    parsed = parse_train(predict)
    model, data, training, generating = parsed["model"], parsed["data"], parsed["training"], parsed["generating"]
    cfg = load(predict)
    assert training.do_predict and training.predict_with_generate and not training.do_train
    assert data.eval_dataset == ["medasst_test"] and data.dataset is None
    assert generating.do_sample is False, "greedy decoding"
    assert cfg["max_new_tokens"] == generating.max_new_tokens == 512
    assert generating.num_beams == 1
    assert training.seed == 42
    assert training.output_dir.endswith("/predict")
    if train is None:  # untouched Qwen2-7B: same base model and prompt format as MedAsst, no adapter
        ref = load("medasst_qwen2")
        assert model.adapter_name_or_path is None and "adapter_name_or_path" not in cfg
    else:
        ref = load(train)
        assert model.adapter_name_or_path == [ref["output_dir"]]
        assert cfg["finetuning_type"] == "lora"
    assert cfg["model_name_or_path"] == ref["model_name_or_path"]
    for key in ("template", "default_system", "cutoff_len", "dataset_dir", "bf16"):
        assert cfg.get(key) == ref.get(key), key


@pytest.mark.parametrize("name", EXPORT)
def test_export_recipe(name: str) -> None:
    from llamafactory.hparams import get_infer_args

    train = name.removesuffix("_export")
    ref = load(train)
    model, data, finetuning, _ = get_infer_args(load(name))
    assert model.model_name_or_path == ref["model_name_or_path"]
    assert model.adapter_name_or_path == [ref["output_dir"]]
    assert data.template == ref["template"] and data.default_system == ref.get("default_system")
    assert finetuning.finetuning_type == "lora"
    assert model.export_dir and model.export_dir.startswith("saves/") and model.export_dir != ref["output_dir"]
    assert model.export_device == "cpu" and model.export_quantization_bit is None
    assert model.export_legacy_format is False, "safetensors only"


@pytest.mark.parametrize("name", list(MODEL_IDS))
def test_model_ids_resolve_on_modelscope(name: str) -> None:
    """Our ids equal LLaMA-Factory's own ModelScope/HF table (whose Gemma-7B row is wrong; we use Gemma-7B-Instruct)."""
    from llamafactory.extras.constants import SUPPORTED_MODELS, DownloadSource

    ms_id, hf_id, lf_name, _ = MODEL_IDS[name]
    assert SUPPORTED_MODELS[lf_name][DownloadSource.MODELSCOPE] == ms_id
    assert SUPPORTED_MODELS[lf_name][DownloadSource.DEFAULT] == hf_id
    text = (RECIPES / f"{name}.yaml").read_text(encoding="utf-8")
    if ms_id != hf_id:
        assert hf_id in text, "each recipe names the HF id beside the ModelScope one"


def test_deepspeed_configs() -> None:
    z2 = json.loads((RECIPES / "deepspeed" / "ds_z2_config.json").read_text(encoding="utf-8"))
    z3 = json.loads((RECIPES / "deepspeed" / "ds_z3_config.json").read_text(encoding="utf-8"))
    for cfg in (z2, z3):
        # "auto" lets the HF Trainer fill batch/accumulation/clipping/precision from the recipe
        for key in ("train_batch_size", "train_micro_batch_size_per_gpu", "gradient_accumulation_steps"):
            assert cfg[key] == "auto"
        assert cfg["bf16"]["enabled"] == "auto" and cfg["fp16"]["enabled"] == "auto"
    assert z2["zero_optimization"]["stage"] == 2
    assert z3["zero_optimization"]["stage"] == 3
    assert z3["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is True


@pytest.mark.parametrize("name", INFER)
def test_infer_recipe_serves_what_was_trained(name: str, monkeypatch) -> None:
    """Parsed by LF's own parser; model, adapter, template and system prompt as in training; greedy by default."""
    from llamafactory.hparams import get_infer_args, parser

    required: list[str] = []
    if name.endswith("_vllm"):  # vLLM cannot be installed beside our torch: record LF's demand for it instead
        monkeypatch.setattr(parser, "check_version", lambda requirement, mandatory=False: required.append(requirement))
    cfg = load(name)
    model, data, finetuning, generating = get_infer_args(dict(cfg))
    train = load("medasst_qwen2")
    assert cfg["trust_remote_code"] is False and model.trust_remote_code is False
    assert data.template == train["template"] and data.default_system == train["default_system"]
    assert generating.do_sample is False and generating.max_new_tokens == 512
    if name == "medasst_qwen2_merged_infer":
        assert model.model_name_or_path == load("medasst_qwen2_export")["export_dir"]
        assert model.adapter_name_or_path is None
    else:
        assert model.model_name_or_path == train["model_name_or_path"]
        assert model.adapter_name_or_path == [train["output_dir"]] and finetuning.finetuning_type == "lora"
    if name.endswith("_vllm"):
        assert model.infer_backend == "vllm" and "vllm" in required
        # LF's vLLM engine reads vllm_maxlen, not cutoff_len: prompt budget + answer budget
        assert model.vllm_maxlen == train["cutoff_len"] + generating.max_new_tokens
        tp = model.vllm_config["tensor_parallel_size"]
        assert 28 % tp == 0 and 4 % tp == 0  # Qwen2-7B: 28 attention heads, 4 KV heads
    else:
        assert model.infer_backend == "huggingface"


def test_every_documented_server_command_binds_this_machine_only():
    """LLaMA-Factory binds the API and Gradio (webchat, webui) to 0.0.0.0 by default, with no auth: every command
    line the docs and recipes give sets the loopback address."""
    import re

    files = [REPO_ROOT / "README.md", RECIPES / "README.md", *sorted(RECIPES.glob("*.yaml"))]
    found = 0
    for path in files:
        lines = path.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            command = line + (" " + lines[i - 1] if i and lines[i - 1].rstrip().endswith("\\") else "")
            # a command, not the name of one in prose (`llamafactory-cli api`)
            if re.search(r"(?<!`)(llamafactory-cli|run\.py) (webchat|webui)\b", line):
                found += 1
                assert "GRADIO_SERVER_NAME=127.0.0.1" in command, f"{path.name}:{i + 1}: {line.strip()}"
            if re.search(r"(?<!`)(llamafactory-cli|run\.py) api\b", line):
                found += 1
                assert "API_HOST=127.0.0.1" in command, f"{path.name}:{i + 1}: {line.strip()}"
    assert found >= 6
