"""Remote code (a model's own Python files, as ChatGLM3 ships): never run unless asked, and when asked, a failure
of that code is one line naming the model, the transformers version and where to read more."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from lfcli import REPO_ROOT
from safetensors.torch import save_file

# Our own toy "remote code": a config class, and a model whose constructor fails the way ChatGLM3's does on
# transformers 5 (an attribute the config no longer has).
TOY_CODE = """
from transformers import PretrainedConfig, PreTrainedModel


class ToyConfig(PretrainedConfig):
    model_type = "toyremote"


class ToyModel(PreTrainedModel):
    config_class = ToyConfig

    def __init__(self, config):
        super().__init__(config)
        self.max_sequence_length = config.max_length
"""


@pytest.fixture(scope="module")
def remote_model(tiny_model, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("remote-model")
    for path in tiny_model("qwen2").iterdir():
        if path.name.startswith("tokenizer") or path.name == "special_tokens_map.json":
            shutil.copy(path, folder / path.name)
    (folder / "toy.py").write_text(TOY_CODE, encoding="utf-8")
    config = {"model_type": "toyremote", "architectures": ["ToyModel"],
              "auto_map": {"AutoConfig": "toy.ToyConfig", "AutoModelForCausalLM": "toy.ToyModel"}}  # fmt: skip
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    save_file({"weight": torch.zeros(1)}, folder / "model.safetensors")  # weights are looked for first
    return folder


def run_eval(argv: list[str]) -> tuple[int, str]:
    """(exit status, last stderr line) of the real CLI; LF's own log lines come before ours."""
    done = subprocess.run([sys.executable, "-m", "eval.run", *argv], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    return done.returncode, done.stderr.strip().splitlines()[-1]


def test_remote_code_is_not_run_unless_asked(remote_model: Path, tmp_path: Path):
    argv = ["mcq", "--model", str(remote_model), "--subjects", "ceval:physician", "--output", str(tmp_path / "o")]
    code, line = run_eval(argv)
    assert code == 2
    assert "needs its own (remote) code" in line and "--trust-remote-code" in line
    assert not (tmp_path / "o").exists()


def test_asked_for_remote_code_that_fails_is_one_line(remote_model: Path, tmp_path: Path):
    argv = ["mcq", "--model", str(remote_model), "--subjects", "ceval:physician", "--output", str(tmp_path / "o"),
            "--trust-remote-code"]  # fmt: skip
    code, line = run_eval(argv)
    assert code == 2
    assert "its own model code (trust_remote_code) fails on transformers" in line
    assert "max_length" in line and "recipes/README.md#chatglm3-6b-remote-code" in line


def test_config_key_is_per_system_and_off_by_default(remote_model: Path, tmp_path: Path):
    from eval import pipeline

    config = {"output_dir": str(tmp_path / "runs"), "steps": ["mcq"], "mcq": {"subjects": "ceval:physician"},
              "systems": [{"name": "plain", "model": str(remote_model), "template": "qwen"},
                          {"name": "asked", "model": str(remote_model), "template": "qwen",
                           "trust_remote_code": True}]}  # fmt: skip
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    loaded = pipeline.load_config(path)
    assert [s.trust_remote_code for s in loaded.systems] == [False, True]
    requests = [pipeline._model_options(s) for s in loaded.systems]
    assert "trust_remote_code" not in requests[0] and requests[1]["trust_remote_code"] is True
    bad = config | {"systems": [config["systems"][1] | {"trust_remote_code": "yes"}]}
    path.write_text(yaml.safe_dump(bad), encoding="utf-8")
    with pytest.raises(pipeline.ConfigError, match="trust_remote_code must be true or false"):
        pipeline.load_config(path)


def test_the_shipped_chatglm3_config_asks_for_remote_code_for_chatglm3_only():
    from eval import pipeline

    config = pipeline.load_config(REPO_ROOT / "eval" / "configs" / "chatglm3_huatuo26m.yaml")
    asked = {s.name: s.trust_remote_code for s in config.systems}
    assert asked == {"MedAsst": False, "ChatGLM3-6B-Huatuo (related, not in the paper)": True,
                     "GLM-4-9B-0414-Huatuo (variant, not in the paper)": False}  # fmt: skip
    assert {s.template for s in config.systems} == {"qwen", "chatglm3", "glm4"}
