"""Tiny random models of the paper's four architectures, built offline in seconds, on each family's real tokenizer.

No model hub is reachable in tests or in the demo, so every model we run on CPU is built here: a 2-layer,
hidden-64 config of Qwen2 / Llama / Gemma / Mistral with random weights, and the family's own tokenizer rebuilt
from files that PyPI packages ship:

- Qwen2: the BPE ranks in `dashscope` (`resources/qwen.tiktoken`; token ids equal Qwen2's);
- Llama-3-8B-Instruct: the BPE ranks in `llama-models` (`llama3/tokenizer.model`), with the 256 special tokens
  named and numbered as Meta's tokenizer files do, bos `<|begin_of_text|>`, eos `<|eot_id|>`, Llama-3's chat
  template and pre-tokenizer pattern;
- Mistral-7B-v0.1: the SentencePiece model in `mistral-common` (`data/tokenizer.model.v1`), bos `<s>` = 1,
  eos `</s>` = 2, add_bos, no pad (as the hub's files);
- Gemma-7B: no package ships Gemma's 256k SentencePiece model, so Gemma is a stand-in: Qwen's vocabulary with
  Gemma's control tokens appended (its prompts render as Gemma's, its ids are not Gemma's).

The packages are only searched for the one file (`importlib.util.find_spec`, nothing imported), so their own
dependencies never matter at run time. Where a family's file is missing, the family falls back to a stand-in on
Qwen's vocabulary (logged, and named in the cache folder); where `qwen.tiktoken` is missing too, a small BPE is
trained on the shipped demo samples.

The result is a normal HF model folder (config.json, model.safetensors, tokenizer files) that LLaMA-Factory
loads through `model_name_or_path` like any hub id.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from medasst.facts import DEMO_RAW_DIR, cache_dir

logger = logging.getLogger(__name__)

# Qwen2's pre-tokenizer regex (single digits, unlike cl100k's \p{N}{1,3}).
QWEN2_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# Llama-3's pre-tokenizer regex (llama_models/llama3/tokenizer.py): digits in groups of up to three.
LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN_VOCAB_SIZE = 151_643  # ranks in qwen.tiktoken; special tokens follow
LLAMA3_VOCAB_SIZE = 128_000  # ranks in llama3/tokenizer.model; 256 special tokens follow
MISTRAL_VOCAB_SIZE = 32_000  # pieces in tokenizer.model.v1
BUILD_VERSION = "2"  # bump when the recipe below changes, so cached copies are rebuilt
FALLBACK_VOCAB_SIZE = 8000

# Meta-Llama-3-8B-Instruct's special tokens, ids 128000..128255, as its tokenizer.json names them.
LLAMA3_SPECIAL_TOKENS: tuple[str, ...] = (
    "<|begin_of_text|>",
    "<|end_of_text|>",
    *(f"<|reserved_special_token_{i}|>" for i in range(4)),
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|reserved_special_token_4|>",
    "<|eot_id|>",
    *(f"<|reserved_special_token_{i}|>" for i in range(5, 251)),
)
# Meta-Llama-3-8B-Instruct's tokenizer_config.json chat template.
LLAMA3_CHAT_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}"
    "{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
LLAMA3_MAX_LENGTH = 1_000_000_000_000_000_019_884_624_838_656  # tokenizer_config.json's model_max_length

# vocabulary → (PyPI package, file inside it) of the real tokenizers; "samples" is trained here.
PACKAGED_FILES: dict[str, tuple[str, str]] = {
    "qwen": ("dashscope", "resources/qwen.tiktoken"),
    "llama3": ("llama_models", "llama3/tokenizer.model"),
    "mistral": ("mistral_common", "data/tokenizer.model.v1"),
}
PIP_NAMES = {"dashscope": "dashscope", "llama_models": "llama-models", "mistral_common": "mistral-common"}


@dataclass(frozen=True)
class Family:
    """What a tiny model of one architecture needs to match its LLaMA-Factory template.

    `vocabulary` is the family's real tokenizer; `special_tokens` etc. describe the stand-in built on Qwen's
    vocabulary (or the sample BPE) when that one cannot be had, Gemma always.
    """

    name: str
    model_type: str
    template: str
    vocabulary: str  # "qwen", "llama3", "mistral": whose real tokenizer; Gemma has none here ("qwen" stand-in)
    special_tokens: tuple[str, ...]  # stand-in: appended after the BPE ranks, in this order
    bos: str | None
    eos: str
    pad: str | None
    unk: str | None = None
    add_bos: bool = False
    generation_eos: tuple[str, ...] = field(default_factory=tuple)  # generation_config eos list, if not just eos

    @property
    def real_tokenizer(self) -> bool:
        return self.vocabulary != "qwen" or self.name == "qwen2"


FAMILIES: dict[str, Family] = {
    "qwen2": Family(
        name="qwen2",
        model_type="qwen2",
        template="qwen",
        vocabulary="qwen",
        special_tokens=("<|endoftext|>", "<|im_start|>", "<|im_end|>"),
        bos=None,
        eos="<|endoftext|>",
        pad="<|endoftext|>",
    ),
    "llama3": Family(
        name="llama3",
        model_type="llama",
        template="llama3",
        vocabulary="llama3",
        special_tokens=(
            "<|begin_of_text|>",
            "<|end_of_text|>",
            "<|start_header_id|>",
            "<|end_header_id|>",
            "<|eot_id|>",
        ),
        bos="<|begin_of_text|>",
        eos="<|eot_id|>",
        pad=None,
        add_bos=True,
        generation_eos=("<|end_of_text|>", "<|eot_id|>"),
    ),
    "gemma": Family(
        name="gemma",
        model_type="gemma",
        template="gemma",
        vocabulary="qwen",
        special_tokens=("<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"),
        bos="<bos>",
        eos="<eos>",
        pad="<pad>",
        unk="<unk>",
        add_bos=True,
    ),
    # GLM-4-9B-0414 (the ChatGLM3 recipe's native variant): no real tokenizer file ships in a PyPI package, so a
    # stand-in with its control tokens (as in its tokenizer_config.json) after Qwen's ranks, like Gemma's
    "glm4": Family(
        name="glm4",
        model_type="glm4",
        template="glm4",
        vocabulary="qwen",
        special_tokens=(
            "<|endoftext|>",
            "[MASK]",
            "[gMASK]",
            "[sMASK]",
            "<sop>",
            "<eop>",
            "<|system|>",
            "<|user|>",
            "<|assistant|>",
            "<|observation|>",
        ),
        bos=None,
        eos="<|endoftext|>",
        pad="<|endoftext|>",
        generation_eos=("<|endoftext|>", "<|user|>", "<|observation|>"),
    ),
    "mistral": Family(
        name="mistral",
        model_type="mistral",
        template="mistral",
        vocabulary="mistral",
        special_tokens=("<unk>", "<s>", "</s>"),
        bos="<s>",
        eos="</s>",
        pad=None,
        unk="<unk>",
        add_bos=True,
    ),
}


def packaged_file(vocab: str) -> Path:
    """The real tokenizer file of `vocab` inside its installed PyPI package, found without importing the package."""
    package, relative = PACKAGED_FILES[vocab]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"{PIP_NAMES[package]} is not installed; it ships the {vocab} tokenizer (pip install -e '.[dev]')"
        )
    for root in spec.submodule_search_locations:
        path = Path(root) / relative
        if path.is_file():
            return path
    raise FileNotFoundError(f"{relative} is missing from {PIP_NAMES[package]}: reinstall it (pip install -e '.[dev]')")


def qwen_tiktoken_path() -> Path:
    """The real Qwen BPE ranks shipped inside the `dashscope` wheel."""
    return packaged_file("qwen")


def available(vocab: str) -> bool:
    try:
        if vocab == "qwen":
            qwen_tiktoken_path()
        else:
            packaged_file(vocab)
    except (ImportError, FileNotFoundError, ValueError):
        return False
    return True


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


def vocabulary(family_name: str = "qwen2") -> str:
    """The tokenizer a tiny `family_name` model is built with here.

    The family's real one when its package file is installed; else a stand-in on Qwen's vocabulary (`qwen`);
    else `samples`, a BPE trained on demo/raw.
    """
    family = FAMILIES[family_name]
    if family.vocabulary != "qwen" and available(family.vocabulary):
        return family.vocabulary
    if family.vocabulary != "qwen":
        logger.warning(
            "%s's tokenizer file is not installed (pip install -e '.[dev]'): building %s on a stand-in vocabulary",
            family.vocabulary,
            family_name,
        )
    return "qwen" if available("qwen") else "samples"


TOKENIZER_NAMES = {"qwen2": "Qwen2", "llama3": "Llama-3-8B-Instruct", "mistral": "Mistral-7B-v0.1", "gemma": "Gemma"}


def tokenizer_label(family_name: str) -> str:
    """What the tiny `family_name` model is tokenized with here, in words (for the demo's output)."""
    family = FAMILIES[family_name]
    vocab = vocabulary(family_name)
    if vocab == family.vocabulary and family.real_tokenizer:
        return f"the real {TOKENIZER_NAMES[family_name]} tokenizer"
    base = "Qwen2's vocabulary" if vocab == "qwen" else "a BPE trained on the demo samples"
    return f"a stand-in: {base} + {TOKENIZER_NAMES[family_name]}'s control tokens"


def llama3_tokenizer():
    """Meta-Llama-3-8B-Instruct's tokenizer: the real ranks, the 256 special tokens at their ids, bos added."""
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    backend = TikTokenConverter(
        vocab_file=str(packaged_file("llama3")),
        pattern=LLAMA3_PATTERN,
        extra_special_tokens=list(LLAMA3_SPECIAL_TOKENS),
    ).converted()
    bos = "<|begin_of_text|>"
    backend.post_processor = processors.TemplateProcessing(
        single=f"{bos}:0 $A:0", pair=f"{bos}:0 $A:0 {bos}:1 $B:1", special_tokens=[(bos, backend.token_to_id(bos))]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=bos,
        eos_token="<|eot_id|>",
        model_max_length=LLAMA3_MAX_LENGTH,
        model_input_names=["input_ids", "attention_mask"],
        clean_up_tokenization_spaces=True,
    )
    tokenizer.chat_template = LLAMA3_CHAT_TEMPLATE
    return tokenizer


def mistral_tokenizer():
    """Mistral-7B-v0.1's tokenizer: transformers' own conversion of the real SentencePiece model, as on the hub."""
    from transformers import AutoTokenizer

    with tempfile.TemporaryDirectory(prefix="medasst-mistral-tok-") as tmp:
        shutil.copyfile(packaged_file("mistral"), Path(tmp) / "tokenizer.model")
        config = {  # Mistral-7B-v0.1's tokenizer_config.json
            "tokenizer_class": "LlamaTokenizer",
            "add_bos_token": True,
            "add_eos_token": False,
            "bos_token": "<s>",
            "eos_token": "</s>",
            "unk_token": "<unk>",
            "pad_token": None,
            "legacy": True,
            "clean_up_tokenization_spaces": False,
            "model_max_length": LLAMA3_MAX_LENGTH,
        }
        (Path(tmp) / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
        return AutoTokenizer.from_pretrained(tmp)


def build_tokenizer(family: Family, vocab: str | None = None):
    """The family's tokenizer: its real one (`vocab` = its vocabulary), or a stand-in with its special tokens.

    A stand-in has Qwen2's ids for ordinary text and the family's special tokens appended; without `dashscope`
    (vocab "samples") the ids are those of a small BPE trained on the shipped samples: the pipeline still runs,
    but the ids no longer equal any real model's.
    """
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    vocab = vocab or vocabulary(family.name)
    if vocab == "llama3":
        return llama3_tokenizer()
    if vocab == "mistral":
        return mistral_tokenizer()
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
    kwargs = {"eos_token": family.eos}
    # a stand-in needs a pad for the left-padded batches; the real Llama-3 / Mistral files have none (LF sets eos)
    kwargs["pad_token"] = family.pad or family.eos
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
    if family.model_type in ("gemma", "glm4"):
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
    vocab = vocab or vocabulary(family_name)
    tokenizer = build_tokenizer(family, vocab)
    config = build_config(family, len(tokenizer), tokenizer)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    eos_ids = config.eos_token_id
    if family.generation_eos and vocab == family.vocabulary:
        eos_ids = tokenizer.convert_tokens_to_ids(list(family.generation_eos))
    model.generation_config = GenerationConfig(
        eos_token_id=eos_ids, pad_token_id=config.pad_token_id, bos_token_id=config.bos_token_id
    )
    real = vocab == family.vocabulary and family.real_tokenizer
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "MEDASST_TINY_MODEL.txt").write_text(
            f"Tiny random {family.model_type} model built by medasst.tiny (version {BUILD_VERSION}, seed {seed},"
            f" vocabulary {vocab}, {'the real' if real else 'a stand-in'} {family.name} tokenizer).\n"
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
    """Path of a tiny model in the user cache, built on first use; a stand-in's folder names its vocabulary."""
    if family_name not in FAMILIES:
        raise ValueError(f"unknown family {family_name!r}; choose from {sorted(FAMILIES)}")
    base = Path(root) if root is not None else cache_dir() / "tiny-models"
    vocab = vocabulary(family_name)
    suffix = "" if vocab == FAMILIES[family_name].vocabulary else f"-{vocab}"
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
