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
