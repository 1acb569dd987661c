"""Generation backends: HF transformers (always there) and vLLM (only where vLLM and a CUDA GPU are present).

Both take prompt token ids already rendered by LLaMA-Factory (eval.data.prompts) and decode greedily, so the two
backends see the same prompts; vLLM is imported only when selected, so CPU machines never need it.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from typing import Any

BACKENDS = ("auto", "hf", "vllm")
DEFAULT_BATCH = {"hf": 8, "vllm": 512}  # vLLM schedules internally; its "batch" is only the resume granularity


class BackendError(RuntimeError):
    """A backend that cannot run here, with the reason and the fix."""


def vllm_unavailable_reason() -> str | None:
    """None when vLLM can run; else why not."""
    if importlib.util.find_spec("vllm") is None:
        return "vLLM is not installed (pip install 'medasst-recipes[vllm]')"
    import torch

    if not torch.cuda.is_available():
        return "vLLM needs a CUDA GPU and none is visible"
    return None


def select_backend(requested: str) -> str:
    """'auto' → vLLM where it can run, else HF; an explicit 'vllm' that cannot run is an error, not a fallback."""
    if requested not in BACKENDS:
        raise BackendError(f"unknown backend {requested!r}; choose from {', '.join(BACKENDS)}")
    if requested == "hf":
        return "hf"
    reason = vllm_unavailable_reason()
    if requested == "vllm" and reason:
        raise BackendError(f"--backend vllm: {reason}; use --backend hf")
    return "hf" if reason else "vllm"


def stop_token_ids(tokenizer, template) -> list[int]:
    """LF's predict eos list: the (template-fixed) eos plus the additional special tokens, plus template stops."""
    extra = getattr(tokenizer, "additional_special_tokens_ids", None)
    if not isinstance(extra, list):  # transformers 5 keeps them as _extra_special_tokens (LF workflow.py does this)
        names = [str(t) for t in getattr(tokenizer, "_extra_special_tokens", [])]
        extra = tokenizer.convert_tokens_to_ids(names) if names else []
    ids = [tokenizer.eos_token_id, *[i for i in extra if i is not None and i != -1]]
    ids += template.get_stop_token_ids(tokenizer)
    return list(dict.fromkeys(i for i in ids if i is not None))


class HFGenerator:
    """Greedy batched `model.generate` on left-padded prompts, as LF's Seq2SeqTrainer predict does."""

    def __init__(self, loaded, max_new_tokens: int):
        self.model = loaded.model
        self.tokenizer = loaded.tokenizer
        self.pad_id = self.tokenizer.pad_token_id
        self.gen_kwargs: dict[str, Any] = {
            "do_sample": False,
            "num_beams": 1,
            "max_new_tokens": max_new_tokens,
            "repetition_penalty": 1.0,
            "eos_token_id": stop_token_ids(self.tokenizer, loaded.template),
            "pad_token_id": self.pad_id,
        }

    def __call__(self, batch: Sequence[Sequence[int]]) -> list[str]:
        import torch

        width = max(len(ids) for ids in batch)
        input_ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        for i, ids in enumerate(batch):
            input_ids[i, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
            attention[i, width - len(ids) :] = 1
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=input_ids.to(self.model.device),
                attention_mask=attention.to(self.model.device),
                **self.gen_kwargs,
            )
        new_tokens = out[:, width:].tolist()
        return self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)


def tensor_parallel_size(num_heads: int, num_kv_heads: int | None, gpus: int, requested: int | None = None) -> int:
    """GPUs to shard over: `requested` if vLLM can split the model that way, else the most of `gpus` that it can.

    vLLM needs the attention heads to divide evenly, and the KV heads to divide evenly or be replicated evenly
    (Qwen2-7B: 28 heads, 4 KV heads, so 8 GPUs fail and 4 is the most it can use on an 8-GPU machine).
    """
    kv = num_kv_heads or num_heads

    def fits(size: int) -> bool:
        return num_heads % size == 0 and (kv % size == 0 or size % kv == 0)

    if requested is not None:
        if requested < 1 or not fits(requested):
            raise BackendError(
                f"--tensor-parallel-size {requested} does not divide the model's {num_heads} attention heads "
                f"({kv} KV heads); choose one of {[t for t in range(1, max(gpus, requested) + 1) if fits(t)]}"
            )
        return requested
    return max(t for t in range(1, max(1, gpus) + 1) if fits(t))


def vllm_engine_args(
    model: str,
    adapter: str | None,
    cutoff_len: int,
    max_new_tokens: int,
    num_heads: int,
    num_kv_heads: int | None,
    gpus: int,
    requested_tp: int | None = None,
) -> dict[str, Any]:
    """The `vllm.LLM` arguments we use (built without vLLM, so they are tested on CPU)."""
    engine: dict[str, Any] = {
        "model": model,
        "trust_remote_code": False,
        "max_model_len": cutoff_len + max_new_tokens,
        "tensor_parallel_size": tensor_parallel_size(num_heads, num_kv_heads, gpus, requested_tp),
        "seed": 0,
        "enable_lora": adapter is not None,
    }
    if adapter is not None:
        engine["max_lora_rank"] = _lora_rank(adapter)
    return engine


def vllm_sampling(max_new_tokens: int, stop_ids: list[int]) -> dict[str, Any]:
    """The `SamplingParams` arguments: greedy, as HF's gen_kwargs (one place for the in-process and child paths)."""
    return {
        "temperature": 0.0,
        "max_tokens": max_new_tokens,
        "repetition_penalty": 1.0,
        "stop_token_ids": list(stop_ids),
        "skip_special_tokens": True,
    }


def attention_heads(model: str) -> tuple[int, int | None]:
    """(attention heads, KV heads) from the model's config, read without loading weights."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model, trust_remote_code=False)
    config = getattr(config, "text_config", None) or config
    return int(config.num_attention_heads), getattr(config, "num_key_value_heads", None)


class VLLMGenerator:
    """vLLM with the LoRA adapter applied per request (no merge), as LF's scripts/vllm_infer.py does."""

    def __init__(
        self,
        model: str,
        adapter: str | None,
        tokenizer,
        template,
        cutoff_len: int,
        max_new_tokens: int,
        tensor_parallel: int | None = None,
    ):
        import torch
        from vllm import LLM, SamplingParams

        if os.environ.get("USE_MODELSCOPE_HUB", "").lower() in ("1", "true", "y"):
            os.environ.setdefault("VLLM_USE_MODELSCOPE", "True")
        heads, kv_heads = attention_heads(model)
        self.engine = vllm_engine_args(
            model, adapter, cutoff_len, max_new_tokens, heads, kv_heads, torch.cuda.device_count(), tensor_parallel
        )
        self.llm = LLM(**self.engine)
        self.params = SamplingParams(**vllm_sampling(max_new_tokens, stop_token_ids(tokenizer, template)))
        self.lora = None
        if adapter is not None:
            from vllm.lora.request import LoRARequest

            self.lora = LoRARequest("default", 1, adapter)

    def __call__(self, batch: Sequence[Sequence[int]]) -> list[str]:
        prompts = [{"prompt_token_ids": list(ids)} for ids in batch]
        outputs = self.llm.generate(prompts, self.params, lora_request=self.lora, use_tqdm=False)
        return [o.outputs[0].text for o in outputs]


def _lora_rank(adapter: str) -> int:
    import json
    from pathlib import Path

    rank = int(json.loads((Path(adapter) / "adapter_config.json").read_text(encoding="utf-8")).get("r", 8))
    # vLLM accepts only these ranks
    return next(r for r in (8, 16, 32, 64, 128, 256, 320, 512) if r >= rank)
