"""Tiny random models of the paper's four architectures, built offline in seconds.

No model hub is reachable in tests or in the demo, so every model we run on CPU is built here: a 2-layer,
hidden-64 config of Qwen2 / Llama / Gemma / Mistral with random weights, and a fast tokenizer made from the
real Qwen vocabulary that PyPI `dashscope` ships (`qwen.tiktoken`; token ids equal Qwen2's). Each family gets
the special tokens its LLaMA-Factory template needs, so the rendered prompts are the real ones. Where
`qwen.tiktoken` cannot be had, a small BPE is trained on the shipped demo samples instead (logged).

The result is a normal HF model folder (config.json, model.safetensors, tokenizer files) that LLaMA-Factory
loads through `model_name_or_path` like any hub id.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from medasst.facts import DEMO_RAW_DIR, cache_dir

logger = logging.getLogger(__name__)

# Qwen2's pre-tokenizer regex (single digits, unlike cl100k's \p{N}{1,3}).
QWEN2_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN_VOCAB_SIZE = 151_643  # ranks in qwen.tiktoken; special tokens follow
BUILD_VERSION = "1"  # bump when the recipe below changes, so cached copies are rebuilt
FALLBACK_VOCAB_SIZE = 8000


@dataclass(frozen=True)
class Family:
    """What a tiny model of one architecture needs to match its LLaMA-Factory template."""

    name: str
    model_type: str
    template: str
    special_tokens: tuple[str, ...]  # appended after the BPE ranks, in this order
    bos: str | None
    eos: str
    pad: str
    unk: str | None = None
    add_bos: bool = False


FAMILIES: dict[str, Family] = {
    "qwen2": Family(
        name="qwen2",
        model_type="qwen2",
        template="qwen",
        special_tokens=("<|endoftext|>", "<|im_start|>", "<|im_end|>"),
        bos=None,
        eos="<|endoftext|>",
        pad="<|endoftext|>",
    ),
    "llama3": Family(
        name="llama3",
        model_type="llama",
        template="llama3",
        special_tokens=(
            "<|begin_of_text|>",
            "<|end_of_text|>",
            "<|start_header_id|>",
            "<|end_header_id|>",
            "<|eot_id|>",
            "<|eom_id|>",
            "<|finetune_right_pad_id|>",
        ),
        bos="<|begin_of_text|>",
        eos="<|eot_id|>",
        pad="<|finetune_right_pad_id|>",
        add_bos=True,
    ),
    "gemma": Family(
        name="gemma",
        model_type="gemma",
        template="gemma",
        special_tokens=("<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"),
        bos="<bos>",
        eos="<eos>",
        pad="<pad>",
        unk="<unk>",
        add_bos=True,
    ),
    "mistral": Family(
        name="mistral",
        model_type="mistral",
        template="mistral",
        special_tokens=("<unk>", "<s>", "</s>"),
        bos="<s>",
        eos="</s>",
        pad="</s>",
        unk="<unk>",
        add_bos=True,
    ),
}


def qwen_tiktoken_path() -> Path:
    """The real Qwen BPE ranks shipped inside the `dashscope` wheel."""
    import dashscope

    path = Path(dashscope.__file__).parent / "resources" / "qwen.tiktoken"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: reinstall `dashscope`, which ships the Qwen vocabulary")
    return path


def qwen_backend(family: Family):
    """Qwen2's byte-level BPE from the real ranks, the family's special tokens appended after them."""
    from transformers.convert_slow_tokenizer import TikTokenConverter

    return TikTokenConverter(
        vocab_file=str(qwen_tiktoken_path()), pattern=QWEN2_PATTERN, extra_special_tokens=list(family.special_tokens)
    ).converted()


def sample_texts() -> list[str]:
    """Every line of the shipped raw samples: enough Chinese medical text to train a small fallback BPE."""
    lines: list[str] = []
    for path in sorted(DEMO_RAW_DIR.rglob("*")):
        if path.is_file() and path.suffix in {".json", ".jsonl", ".txt"}:
            lines.extend(path.read_text(encoding="utf-8", errors="replace").splitlines())
    if not lines:
        raise FileNotFoundError(f"no sample text under {DEMO_RAW_DIR} to train a fallback tokenizer on")
    return lines


def sample_backend(family: Family, vocab_size: int = FALLBACK_VOCAB_SIZE):
    """A byte-level BPE trained on the shipped samples, for when `qwen.tiktoken` cannot be had."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(family.special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(sample_texts(), trainer)
    return backend


def vocabulary() -> str:
    """`qwen` when dashscope's real Qwen vocabulary is available, else `samples` (a BPE trained on demo/raw)."""
    try:
        qwen_tiktoken_path()
    except (ImportError, FileNotFoundError):
        return "samples"
    return "qwen"


def build_tokenizer(family: Family, vocab: str | None = None):
    """A fast tokenizer with Qwen2's ids for ordinary text and the family's special tokens appended.

    Without `dashscope` (vocab "samples") the ids are those of a small BPE trained on the shipped samples: the
    pipeline still runs, but the ids no longer equal Qwen2's.
    """
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    vocab = vocab or vocabulary()
    if vocab == "qwen":
        backend = qwen_backend(family)
    else:
        logger.warning("dashscope's qwen.tiktoken is unavailable: training a fallback tokenizer on %s", DEMO_RAW_DIR)
        backend = sample_backend(family)
    if family.add_bos:
        bos_id = backend.token_to_id(family.bos)
        backend.post_processor = processors.TemplateProcessing(
            single=f"{family.bos} $A", pair=f"{family.bos} $A {family.bos} $B", special_tokens=[(family.bos, bos_id)]
        )
    else:
        backend.post_processor = None
    kwargs = {"eos_token": family.eos, "pad_token": family.pad}
    if family.bos:
        kwargs["bos_token"] = family.bos
    if family.unk:
        kwargs["unk_token"] = family.unk
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, model_max_length=4096, **kwargs)
    tokenizer.padding_side = "right"
    return tokenizer


def build_config(family: Family, vocab_size: int, tokenizer):
    from transformers import AutoConfig

    # Round up as the real checkpoints do (Qwen2-7B pads 151,646 tokens to 152,064).
    padded = (vocab_size + 63) // 64 * 64
    common = {
        "vocab_size": padded,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 4096,
        "tie_word_embeddings": True,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id if family.bos else None,
    }
    if family.model_type == "gemma":
        common["head_dim"] = 16
    return AutoConfig.for_model(family.model_type, **common)


def build(family_name: str, out_dir: str | os.PathLike, seed: int = 0, vocab: str | None = None) -> Path:
    """Write a tiny random model of `family_name` to `out_dir` (atomically) and return the path."""
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig

    if family_name not in FAMILIES:
        raise ValueError(f"unknown family {family_name!r}; choose from {sorted(FAMILIES)}")
    family = FAMILIES[family_name]
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    vocab = vocab or vocabulary()
    tokenizer = build_tokenizer(family, vocab)
    config = build_config(family, len(tokenizer), tokenizer)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.generation_config = GenerationConfig(
        eos_token_id=config.eos_token_id, pad_token_id=config.pad_token_id, bos_token_id=config.bos_token_id
    )
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "MEDASST_TINY_MODEL.txt").write_text(
            f"Tiny random {family.model_type} model built by medasst.tiny (version {BUILD_VERSION}, seed {seed},"
            f" vocabulary {vocab}).\n"
            f"Its outputs are noise: it only proves that the pipeline runs.\n"
            f"LLaMA-Factory template: {family.template}\n",
            encoding="utf-8",
        )
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def amplify_attention(base: str | os.PathLike, out_dir: str | os.PathLike, factor: float = 50.0) -> Path:
    """A copy of a tiny model whose attention output is scaled up, so its next token depends on the whole prompt.

    A random 2-layer model at init answers from the last prompt token alone (always the same letter in a
    multiple-choice prompt); tests and benchmarks that need answers varying by question use this copy.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = Path(out_dir)
    model = AutoModelForCausalLM.from_pretrained(base)
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.mul_(factor)
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(base).save_pretrained(out)
    return out


def cached(family_name: str, seed: int = 0, root: str | os.PathLike | None = None) -> Path:
    """Path of a tiny model in the user cache, built on first use."""
    base = Path(root) if root is not None else cache_dir() / "tiny-models"
    vocab = vocabulary()
    suffix = "" if vocab == "qwen" else f"-{vocab}"
    path = base / f"{family_name}-v{BUILD_VERSION}-seed{seed}{suffix}"
    if not (path / "config.json").is_file():
        build(family_name, path, seed=seed, vocab=vocab)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Build a tiny random model for offline pipeline runs.")
    parser.add_argument("family", choices=sorted(FAMILIES))
    parser.add_argument("--out", help="output folder (default: the user cache)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    path = build(args.family, args.out, seed=args.seed) if args.out else cached(args.family, seed=args.seed)
    print(path)


if __name__ == "__main__":
    main()
