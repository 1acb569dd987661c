"""Loads a base model (+ LoRA adapter) through LLaMA-Factory, so prompts and weights match training exactly.

LLaMA-Factory owns template rendering, tokenizer fixes (eos/pad replacement per template), ModelScope ids
(`USE_MODELSCOPE_HUB=1`) and adapter loading without merging; we only call it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ADAPTER_FILES = ("adapter_config.json",)
DTYPES = ("auto", "float16", "bfloat16", "float32")  # LF's infer_dtype
ADAPTER_WEIGHTS = ("adapter_model.safetensors",)
# Chat-control tokens written literally in LLaMA-Factory's template strings (`<|im_start|>`, `<start_of_turn>`, ...).
TEMPLATE_TOKEN = re.compile(r"<\|[^<>|\s]+\|>|<(?:start|end)_of_turn>")


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


def template_tokens(template: str) -> list[str]:
    """Control tokens that LLaMA-Factory's `template` writes into prompts, and the one it stops on, first-seen order.

    Only the first stop word counts: it is the eos LF puts in place (`replace_eos`) and writes after every answer.
    Further stop words (llama3's `<|eom_id|>`, a Llama-3.1 token) are extra stops that LF adds to a tokenizer
    lacking them; a model that never saw them is not a mismatch.
    """
    from llamafactory.data.template import TEMPLATES

    tpl = TEMPLATES[template]
    found: dict[str, None] = {}
    for name in ("format_prefix", "format_system", "format_user", "format_assistant"):
        for slot in getattr(tpl, name).slots:
            if isinstance(slot, str):
                found.update(dict.fromkeys(TEMPLATE_TOKEN.findall(slot)))
    if tpl.replace_eos and tpl.stop_words and TEMPLATE_TOKEN.fullmatch(tpl.stop_words[0]):
        found[tpl.stop_words[0]] = None
    return list(found)


def check_template_tokens(tokenizer: Any, template: str, model: str = "") -> None:
    """Refuse a template whose control tokens the tokenizer splits into pieces: the model was trained on another one.

    Must run on the tokenizer as loaded, before `get_template_and_fix_tokenizer` adds missing stop words as new
    (untrained, out-of-embedding) special tokens and so hides the mismatch.
    """
    from llamafactory.data.template import TEMPLATES

    hint = (
        "pass the --template of the model's family "
        "(e.g. qwen for Qwen2, llama3 for Llama-3, gemma for Gemma, mistral for Mistral)"
    )
    where = model or "this tokenizer"
    for token in template_tokens(template):
        ids = tokenizer.encode(token, add_special_tokens=False)
        if len(ids) != 1:
            raise ModelLoadError(
                f"template {template!r} does not fit {where}: {token!r} is not a single token "
                f"(it splits into {len(ids)}); {hint}"
            )
    # Templates such as mistral mark turns with plain text, so the one tell left is the bos they start with.
    prefix = TEMPLATES[template].format_prefix.slots
    if any(isinstance(slot, set | dict) and "bos_token" in slot for slot in prefix) and tokenizer.bos_token_id is None:
        raise ModelLoadError(f"template {template!r} starts with a bos token but {where} has none; {hint}")


def template_and_fix_tokenizer(tokenizer: Any, data_args: Any) -> Any:
    """LLaMA-Factory's `get_template_and_fix_tokenizer`, on a private copy of the registered template.

    LF writes `default_system` into its global TEMPLATES entry, which would leak one system's prompt into the next
    model loaded in the same process; the registry entry is swapped for a copy while LF fixes it up.
    """
    import copy

    from llamafactory.data import get_template_and_fix_tokenizer
    from llamafactory.data.template import TEMPLATES

    name = data_args.template
    shared = TEMPLATES[name]
    TEMPLATES[name] = copy.copy(shared)
    try:
        return get_template_and_fix_tokenizer(tokenizer, data_args)
    finally:
        TEMPLATES[name] = shared


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


def model_extra(dtype: str, default_system: str | None, trust_remote_code: bool) -> dict[str, Any]:
    """The LF inference arguments a verb's request adds to `infer_args`'s defaults."""
    extra: dict[str, Any] = {"infer_dtype": dtype}
    if trust_remote_code:  # asked for by the user (a config's system key, or the flag)
        extra["trust_remote_code"] = True
    if default_system:
        extra["default_system"] = default_system
    return extra


def remote_code_failed(model: str, part: str, error: Exception, remote: bool) -> Exception:
    """One line for a model whose own code (trust_remote_code) does not run on the installed transformers, or that
    needs its own code when it was not asked for; any other error is returned as it is (a bug to see whole)."""
    import transformers

    if not remote:
        if "trust_remote_code" not in str(error):
            return error
        return ModelLoadError(
            f"{model} needs its own (remote) code to load; pass --trust-remote-code (a config: the system's "
            "trust_remote_code: true) if you trust that code"
        )
    detail = str(error).splitlines()[0][:200] if str(error) else ""
    return ModelLoadError(
        f"{model}: its own {part} code (trust_remote_code) fails on transformers {transformers.__version__}: "
        f"{type(error).__name__}: {detail} (ChatGLM3: see recipes/README.md#chatglm3-6b-remote-code)"
    )


def load(
    model: str,
    adapter: str | None = None,
    template: str = "qwen",
    cutoff_len: int = 1024,
    extra: dict[str, Any] | None = None,
    padding_side: str = "left",
    check_tokens: bool = True,
) -> LoadedModel:
    """Base model + optional adapter, in eval mode, with LLaMA-Factory's template and fixed tokenizer."""
    from llamafactory.hparams import get_infer_args
    from llamafactory.model import load_model, load_tokenizer

    if adapter is not None:
        check_adapter(adapter)
    check_template(model, template)
    args = infer_args(model, adapter, template, cutoff_len, extra)
    model_args, data_args, finetuning_args, _ = get_infer_args(dict(args))
    remote = bool(args.get("trust_remote_code"))
    try:
        tokenizer = load_tokenizer(model_args)["tokenizer"]
    except OSError as e:  # LF: "Failed to load tokenizer." — say which model and what to check
        raise ModelLoadError(
            f"cannot load the tokenizer of {model}: {e} (not a model folder, or a hub id not in the local cache "
            "and no network?)"
        ) from None
    except Exception as e:
        raise remote_code_failed(model, "tokenizer", e, remote) from None
    if check_tokens:
        check_template_tokens(tokenizer, template, model)
    tok_template = template_and_fix_tokenizer(tokenizer, data_args)
    tokenizer.padding_side = padding_side
    try:
        net = load_model(tokenizer, model_args, finetuning_args, is_trainable=False)
    except OSError as e:  # missing or unreadable weights
        raise ModelLoadError(f"cannot load the weights of {model}: {e}") from None
    except Exception as e:
        raise remote_code_failed(model, "model", e, remote) from None
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
