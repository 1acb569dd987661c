"""Loads a base model (+ LoRA adapter) through LLaMA-Factory, so prompts and weights match training exactly.

LLaMA-Factory owns template rendering, tokenizer fixes (eos/pad replacement per template), ModelScope ids
(`USE_MODELSCOPE_HUB=1`) and adapter loading without merging; we only call it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ADAPTER_FILES = ("adapter_config.json",)
ADAPTER_WEIGHTS = ("adapter_model.safetensors",)


class ModelLoadError(ValueError):
    """A model or adapter path that cannot be used, with the reason."""


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    template: Any  # llamafactory.data.template.Template
    model_name_or_path: str
    adapter: str | None
    template_name: str
    infer_args: dict[str, Any] = field(default_factory=dict)

    @property
    def device(self):
        return self.model.device


def check_adapter(adapter: str | os.PathLike) -> Path:
    """Fail with a clear message unless `adapter` is an exported PEFT LoRA folder with safetensors weights."""
    path = Path(adapter)
    if not path.is_dir():
        raise ModelLoadError(f"adapter folder not found: {path}")
    missing = [name for name in ADAPTER_FILES if not (path / name).is_file()]
    if missing:
        raise ModelLoadError(f"{path} is not a LoRA adapter: missing {', '.join(missing)}")
    if not any((path / name).is_file() for name in ADAPTER_WEIGHTS):
        if (path / "adapter_model.bin").is_file():
            raise ModelLoadError(f"{path} holds only adapter_model.bin; re-save it as safetensors (safetensors only)")
        raise ModelLoadError(f"{path} is not a LoRA adapter: missing adapter_model.safetensors")
    return path


def check_template(model_name_or_path: str, template: str) -> None:
    """Refuse a template name LLaMA-Factory does not know, before any weights are loaded."""
    from llamafactory.data.template import TEMPLATES

    if template not in TEMPLATES:
        raise ModelLoadError(f"unknown LLaMA-Factory template {template!r}")


def infer_args(
    model: str,
    adapter: str | None = None,
    template: str = "qwen",
    cutoff_len: int = 1024,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The LLaMA-Factory inference arguments we use; recorded verbatim in every result file."""
    args: dict[str, Any] = {
        "model_name_or_path": model,
        "template": template,
        "cutoff_len": cutoff_len,
        "finetuning_type": "lora",
        "trust_remote_code": False,
        "do_sample": False,
    }
    if adapter:
        args["adapter_name_or_path"] = str(adapter)
    if extra:
        args.update(extra)
    return args


def load(
    model: str,
    adapter: str | None = None,
    template: str = "qwen",
    cutoff_len: int = 1024,
    extra: dict[str, Any] | None = None,
    padding_side: str = "left",
) -> LoadedModel:
    """Base model + optional adapter, in eval mode, with LLaMA-Factory's template and fixed tokenizer."""
    from llamafactory.data import get_template_and_fix_tokenizer
    from llamafactory.hparams import get_infer_args
    from llamafactory.model import load_model, load_tokenizer

    if adapter is not None:
        check_adapter(adapter)
    check_template(model, template)
    args = infer_args(model, adapter, template, cutoff_len, extra)
    model_args, data_args, finetuning_args, _ = get_infer_args(dict(args))
    tokenizer = load_tokenizer(model_args)["tokenizer"]
    tok_template = get_template_and_fix_tokenizer(tokenizer, data_args)
    tokenizer.padding_side = padding_side
    net = load_model(tokenizer, model_args, finetuning_args, is_trainable=False)
    net.eval()
    return LoadedModel(
        model=net,
        tokenizer=tokenizer,
        template=tok_template,
        model_name_or_path=model,
        adapter=str(adapter) if adapter else None,
        template_name=template,
        infer_args=args,
    )
