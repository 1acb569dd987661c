"""The offline tiny models: real Qwen2 token ids, each family's template tokens, loadable by transformers."""

from __future__ import annotations

import json

import pytest

from medasst import tiny


def test_qwen2_tokenizer_has_qwen2_ids(tiny_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model("qwen2"))
    # Ids of the released Qwen2 tokenizer.
    assert tok.convert_tokens_to_ids(["<|endoftext|>", "<|im_start|>", "<|im_end|>"]) == [151643, 151644, 151645]
    assert tok("你好", add_special_tokens=False)["input_ids"] == [108386]
    assert tok("Hello", add_special_tokens=False)["input_ids"] == [9707]
    # Qwen2 splits digits one by one.
    assert len(tok("2024", add_special_tokens=False)["input_ids"]) == 4
    text = "患者头痛三天，伴有发热。"
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text


@pytest.mark.parametrize("family", sorted(tiny.FAMILIES))
def test_family_special_tokens_are_single_tokens(tiny_model, family):
    from transformers import AutoConfig, AutoTokenizer

    path = tiny_model(family)
    spec = tiny.FAMILIES[family]
    tok = AutoTokenizer.from_pretrained(path)
    for token in spec.special_tokens:
        assert len(tok(token, add_special_tokens=False)["input_ids"]) == 1, token
    assert tok.eos_token == spec.eos
    config = AutoConfig.from_pretrained(path)
    assert config.model_type == spec.model_type
    assert config.num_hidden_layers == 2 and config.hidden_size == 64
    assert config.vocab_size >= len(tok)
    assert (path / "model.safetensors").is_file()
    assert not list(path.glob("*.bin")), "safetensors only"
    assert json.loads((path / "config.json").read_text())["eos_token_id"] == tok.eos_token_id


def test_build_is_deterministic(tmp_path):
    from safetensors.torch import load_file

    a = tiny.build("mistral", tmp_path / "a", seed=3)
    b = tiny.build("mistral", tmp_path / "b", seed=3)
    wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert wa.keys() == wb.keys()
    assert all((wa[k] == wb[k]).all() for k in wa)


def test_unknown_family_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="unknown family"):
        tiny.build("gpt2", tmp_path / "x")


def test_without_dashscope_a_tokenizer_is_trained_on_the_samples(tmp_path, monkeypatch):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    def missing():
        raise FileNotFoundError("qwen.tiktoken")

    monkeypatch.setattr(tiny, "qwen_tiktoken_path", missing)
    assert tiny.vocabulary() == "samples"
    path = tiny.cached("qwen2", root=tmp_path)
    assert path.name.endswith("-samples")  # never mistaken for a Qwen-vocabulary build in the cache
    tok = AutoTokenizer.from_pretrained(path)
    assert len(tok) <= tiny.FALLBACK_VOCAB_SIZE
    for token in tiny.FAMILIES["qwen2"].special_tokens:
        assert len(tok(token, add_special_tokens=False)["input_ids"]) == 1
    text = "患者头痛三天，伴有发热。"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text and len(ids) < len(text.encode("utf-8"))
    model = AutoModelForCausalLM.from_pretrained(path)
    with torch.no_grad():
        assert model(torch.tensor([ids])).logits.shape[-1] == model.config.vocab_size
    assert "vocabulary samples" in (path / "MEDASST_TINY_MODEL.txt").read_text()


def test_llama3_tokenizer_is_meta_llama3_8b_instruct(tiny_model):
    """Ids, specials, bos and chat template as Meta's files; text ids equal tiktoken's on the same ranks."""
    import tiktoken
    from tiktoken.load import load_tiktoken_bpe
    from transformers import AutoConfig, AutoTokenizer

    path = tiny_model("llama3")
    assert not path.name.endswith("-qwen"), "built on the real Llama-3 tokenizer"
    tok = AutoTokenizer.from_pretrained(path)
    assert len(tok) == 128_256 and AutoConfig.from_pretrained(path).vocab_size == 128_256
    named = {
        128000: "<|begin_of_text|>",
        128001: "<|end_of_text|>",
        128002: "<|reserved_special_token_0|>",
        128005: "<|reserved_special_token_3|>",
        128006: "<|start_header_id|>",
        128007: "<|end_header_id|>",
        128008: "<|reserved_special_token_4|>",
        128009: "<|eot_id|>",
        128010: "<|reserved_special_token_5|>",
        128255: "<|reserved_special_token_250|>",
    }
    assert tok.convert_ids_to_tokens(list(named)) == list(named.values())
    assert (
        tok.convert_tokens_to_ids("<|eom_id|>") is None or tok.convert_tokens_to_ids("<|eom_id|>") == tok.unk_token_id
    )
    assert (tok.bos_token, tok.eos_token, tok.pad_token) == ("<|begin_of_text|>", "<|eot_id|>", None)
    ranks = load_tiktoken_bpe(str(tiny.packaged_file("llama3")))
    assert len(ranks) == tiny.LLAMA3_VOCAB_SIZE
    reference = tiktoken.Encoding("llama3", pat_str=tiny.LLAMA3_PATTERN, mergeable_ranks=ranks, special_tokens={})
    for text in ("患者头痛三天，伴有发热。", "Hello world 2024, BP 120/80 mmHg", "饮酒以后可以服用西地那非吗"):
        assert tok(text, add_special_tokens=False)["input_ids"] == reference.encode(text)
        assert tok(text)["input_ids"][0] == 128000, "bos added, as Llama-3's post-processor does"
    chat = tok.apply_chat_template([{"role": "user", "content": "头痛"}], tokenize=False, add_generation_prompt=True)
    assert chat == (
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n头痛<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )
    generation = json.loads((path / "generation_config.json").read_text())
    assert generation["eos_token_id"] == [128001, 128009]


def test_mistral_tokenizer_is_mistral_7b_v01(tiny_model):
    """32,000 SentencePiece pieces, <unk>/<s>/</s> = 0/1/2, bos added, no pad; ids equal sentencepiece's."""
    import sentencepiece
    from transformers import AutoTokenizer

    path = tiny_model("mistral")
    assert not path.name.endswith("-qwen")
    tok = AutoTokenizer.from_pretrained(path)
    assert len(tok) == tiny.MISTRAL_VOCAB_SIZE
    assert tok.convert_tokens_to_ids(["<unk>", "<s>", "</s>"]) == [0, 1, 2]
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token) == (1, 2, None)
    reference = sentencepiece.SentencePieceProcessor(model_file=str(tiny.packaged_file("mistral")))
    assert reference.vocab_size() == tiny.MISTRAL_VOCAB_SIZE
    for text in ("患者头痛三天，伴有发热。", "Hello world 2024", "饮酒以后可以服用西地那非吗"):
        assert tok(text)["input_ids"] == [1, *reference.encode(text)]
        assert tok.decode(tok(text)["input_ids"], skip_special_tokens=True) == text


def test_gemma_is_a_stand_in_and_says_so(tiny_model):
    # no PyPI package ships Gemma's 256k SentencePiece model: Qwen's vocabulary with Gemma's control tokens
    assert not tiny.FAMILIES["gemma"].real_tokenizer
    assert all(tiny.FAMILIES[f].real_tokenizer for f in ("qwen2", "llama3", "mistral"))
    assert "a stand-in gemma tokenizer" in (tiny_model("gemma") / "MEDASST_TINY_MODEL.txt").read_text()
    assert "the real llama3 tokenizer" in (tiny_model("llama3") / "MEDASST_TINY_MODEL.txt").read_text()


def test_missing_tokenizer_package_falls_back_to_a_named_stand_in(tmp_path, monkeypatch):
    from transformers import AutoTokenizer

    real_find_spec = tiny.importlib.util.find_spec
    monkeypatch.setattr(
        tiny.importlib.util, "find_spec", lambda name: None if name == "llama_models" else real_find_spec(name)
    )
    assert not tiny.available("llama3") and tiny.vocabulary("llama3") == "qwen"
    with pytest.raises(FileNotFoundError, match="llama-models is not installed"):
        tiny.packaged_file("llama3")
    path = tiny.cached("llama3", root=tmp_path)
    assert path.name.endswith("-qwen"), "a stand-in is never mistaken for the real tokenizer in the cache"
    tok = AutoTokenizer.from_pretrained(path)
    for token in tiny.FAMILIES["llama3"].special_tokens:
        assert len(tok(token, add_special_tokens=False)["input_ids"]) == 1
    assert "a stand-in llama3 tokenizer" in (path / "MEDASST_TINY_MODEL.txt").read_text()


def test_llama3_template_check_accepts_the_real_tokenizer(tiny_model):
    """LF's llama3 template lists <|eom_id|> (a Llama-3.1 token) as an extra stop: not a mismatch for Llama-3."""
    from transformers import AutoTokenizer

    from eval.backends.model import check_template_tokens, template_tokens

    assert "<|eom_id|>" not in template_tokens("llama3")
    assert template_tokens("llama3") == ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
    check_template_tokens(AutoTokenizer.from_pretrained(tiny_model("llama3")), "llama3")
    check_template_tokens(AutoTokenizer.from_pretrained(tiny_model("mistral")), "mistral")
