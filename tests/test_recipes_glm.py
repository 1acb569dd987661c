"""The ChatGLM3 medical Q&A system ("基于 ChatGLM 微调的医疗问答系统") as recipes, and its GLM-4-9B-0414 variant.

ChatGLM3's remote code cannot run here (recipes/README.md#chatglm3-6b-remote-code), so its recipes are checked by
LF's own parser and its template is rendered with a stand-in tokenizer that has ChatGLM3's control tokens. The
GLM-4 variant is native in transformers: its train and predict recipes run end to end on a tiny GLM-4.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from lfcli import CPU, REPO_ROOT, llamafactory

RECIPES = REPO_ROOT / "recipes"
MEDASST = "medasst_qwen2"
QUESTION = "饮酒以后可以服用西地那非吗"  # that paper's before/after example
# MedAsst's settings, which the ChatGLM3 paper leaves open
SHARED = ("cutoff_len", "per_device_train_batch_size", "gradient_accumulation_steps", "num_train_epochs",
          "learning_rate", "warmup_steps", "lr_scheduler_type", "lora_rank", "lora_alpha", "lora_dropout", "bf16",
          "seed", "dataset_dir", "stage", "finetuning_type")  # fmt: skip
SYSTEMS = {
    "chatglm3": ("ZhipuAI/chatglm3-6b", "chatglm3", True, "saves/chatglm3-6b/lora/huatuo26m"),
    "glm4": ("ZhipuAI/GLM-4-9B-0414", "glm4", False, "saves/glm-4-9b-0414/lora/huatuo26m"),
}


def load(name: str) -> dict:
    return yaml.safe_load((RECIPES / f"{name}.yaml").read_text(encoding="utf-8"))


@pytest.fixture(autouse=True)
def _strict_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("ALLOW_EXTRA_ARGS", "USE_MODELSCOPE_HUB", "FORCE_TORCHRUN", "USE_MCA", "USE_RAY"):
        monkeypatch.delenv(var, raising=False)


def cpu_safe(cfg: dict) -> dict:
    from transformers.utils import is_torch_bf16_gpu_available

    return cfg | ({"use_cpu": True} if cfg.get("bf16") and not is_torch_bf16_gpu_available() else {})


@pytest.mark.parametrize("system", list(SYSTEMS))
def test_recipes_parse_with_llamafactory(system: str) -> None:
    from llamafactory.extras.constants import SUPPORTED_MODELS, DownloadSource
    from llamafactory.hparams import get_infer_args, get_train_args

    model_id, template, remote, output_dir = SYSTEMS[system]
    base = f"{system}_huatuo26m"
    model, data, training, finetuning, _ = get_train_args(cpu_safe(load(base)))
    assert model.model_name_or_path == model_id and model.trust_remote_code is remote
    assert data.dataset == ["huatuo26m_train"] and data.template == template
    assert training.output_dir == output_dir and finetuning.finetuning_type == "lora"
    ours, medasst = load(base), load(MEDASST)
    for key in SHARED:
        assert ours[key] == medasst[key], f"{key}: MedAsst's value where the paper is silent"
    assert model_id in {
        s[DownloadSource.MODELSCOPE] for s in SUPPORTED_MODELS.values() if DownloadSource.MODELSCOPE in s
    }

    model, data, training, _, generating = get_train_args(cpu_safe(load(f"{base}_predict")))
    assert model.adapter_name_or_path == [output_dir] and data.eval_dataset == ["medasst_test"]
    assert training.predict_with_generate and generating.do_sample is False and model.trust_remote_code is remote
    for kind in ("_export", "_infer"):
        model, data, _, _ = get_infer_args(load(f"{base}{kind}"))
        assert model.model_name_or_path == model_id and model.adapter_name_or_path == [output_dir]
        assert data.template == template and model.trust_remote_code is remote
    assert QUESTION in (RECIPES / f"{base}_infer.yaml").read_text(encoding="utf-8")


def test_every_line_says_whose_value_it_is() -> None:
    """Each setting of the ChatGLM3 recipe sits under a comment, in its section, naming the paper's or ours."""
    structural = {"stage", "do_train", "ddp_timeout"}  # how LF is driven, not a choice of either
    said = ""
    for line in (RECIPES / "chatglm3_huatuo26m.yaml").read_text(encoding="utf-8").splitlines():
        if line.startswith("###"):
            said = ""
        elif line.startswith("#"):
            said += line
        elif line.strip() and line.split(":")[0] not in structural:
            assert re.search(r"paper|ours", said), f"{line}: no comment above it says whose value it is"


def test_chatglm3_lora_targets_are_its_module_names() -> None:
    """ChatGLM3 shares ChatGLM2's architecture, whose modeling code modelscope bundles: the targets are its
    nn.Linear attributes (read as text; that code is not imported here)."""
    import importlib.util

    spec = importlib.util.find_spec("modelscope")
    assert spec and spec.origin
    code = "".join(
        p.read_text(encoding="utf-8") for p in (Path(spec.origin).parent / "models/nlp/chatglm2").glob("*.py")
    )
    for target in load("chatglm3_huatuo26m")["lora_target"].split(","):
        assert re.search(rf"self\.{target}\s*=\s*(nn\.Linear|init_method\(\s*nn\.Linear|.*Linear)", code), target


def stand_in_tokenizer(control: list[str]):
    """Qwen2's real ranks (tiny Qwen2) with `control` added as single special tokens, as the real files have them."""
    from medasst import tiny

    tokenizer = tiny.build_tokenizer(tiny.FAMILIES["qwen2"])
    tokenizer.add_special_tokens({"additional_special_tokens": control})
    return tokenizer


@pytest.mark.parametrize(
    ("template", "control", "expected"),
    [
        # ChatGLM3's tokenizer: [gMASK], sop and the role tokens are special tokens (its tokenization_chatglm.py)
        ("chatglm3", ["[gMASK]", "sop", "<|system|>", "<|user|>", "<|assistant|>", "<|observation|>"],
         f"[gMASK]sop<|user|>\n{QUESTION}<|assistant|>"),
        ("glm4", ["[gMASK]", "<sop>", "<|system|>", "<|user|>", "<|assistant|>", "<|observation|>"],
         f"[gMASK]<sop><|user|>\n{QUESTION}<|assistant|>"),
    ],
)  # fmt: skip
def test_template_renders_with_the_control_tokens(template: str, control: list[str], expected: str) -> None:
    from llamafactory.data import get_template_and_fix_tokenizer
    from llamafactory.hparams import DataArguments

    tokenizer = stand_in_tokenizer(control)
    tpl = get_template_and_fix_tokenizer(tokenizer, DataArguments(template=template))
    prompt, answer = tpl.encode_oneturn(tokenizer, [{"role": "user", "content": QUESTION},
                                                    {"role": "assistant", "content": "不建议。"}])  # fmt: skip
    assert tokenizer.decode(prompt) == expected
    for token in ("[gMASK]", "<|user|>", "<|assistant|>"):
        assert tokenizer.convert_tokens_to_ids(token) in prompt, f"{token} is one id, not pieces"
    assert tokenizer.decode(answer).startswith("\n不建议。")
    assert tokenizer.eos_token in {"<|user|>", "<|endoftext|>"} or tokenizer.eos_token_id in answer


@pytest.mark.slow
def test_glm4_variant_trains_and_predicts_on_a_tiny_glm4(tiny_model, tmp_path: Path) -> None:
    model = tiny_model("glm4")
    adapter = tmp_path / "adapter"
    argv = [f"model_name_or_path={model}", f"output_dir={adapter}", "dataset=medasst_demo_train", "max_steps=2",
            "max_samples=8", *CPU]  # fmt: skip
    llamafactory("train", "glm4_huatuo26m", argv, tmp_path / "train.log")
    result = json.loads((adapter / "train_results.json").read_text(encoding="utf-8"))
    assert result["train_loss"] > 0 and (adapter / "adapter_model.safetensors").is_file()
    predict = tmp_path / "predict"
    llamafactory("train", "glm4_huatuo26m_predict", [f"model_name_or_path={model}", f"adapter_name_or_path={adapter}",
                 "eval_dataset=medasst_demo_test", f"output_dir={predict}", "max_samples=4", "max_new_tokens=8",
                 *CPU], tmp_path / "predict.log")  # fmt: skip
    rows = [json.loads(x) for x in (predict / "generated_predictions.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 4 and all(r["prompt"].startswith("[gMASK]<sop><|user|>\n") for r in rows)


def test_legacy_runner_drops_only_the_remote_code_key() -> None:
    """recipes/chatglm3_env/run.py: LF 0.8.3 refuses `trust_remote_code` (it always trusts) and reads no key=value."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("chatglm3_run", RECIPES / "chatglm3_env" / "run.py")
    runner = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(runner)
    recipe = RECIPES / "chatglm3_huatuo26m.yaml"
    config = runner.legacy_config(recipe, ["max_steps=2", "bf16=false", "output_dir=/tmp/x"])
    assert "trust_remote_code" not in config
    assert config["max_steps"] == 2 and config["bf16"] is False and config["output_dir"] == "/tmp/x"
    changed = {"trust_remote_code", "max_steps", "bf16", "output_dir"}
    original = load("chatglm3_huatuo26m")
    kept = {k: v for k, v in config.items() if k not in changed}
    assert {k: v for k, v in original.items() if k not in changed} == kept
    with pytest.raises(SystemExit, match="does not ask for remote code"):
        runner.legacy_config(RECIPES / "glm4_huatuo26m.yaml", [])
    pins = (RECIPES / "chatglm3_env" / "requirements.txt").read_text(encoding="utf-8")
    assert "llamafactory==0.8.3" in pins and "transformers==4.41.2" in pins
