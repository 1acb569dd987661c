"""Licences and attribution of the base models and the training sources, as their upstream cards state them.

Written down here (checked against the Hub cards and repositories when this file was written) because a card is
made offline; an id not listed gets no guessed licence, the card says so and `--license` names it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Licence:
    hub_id: str  # the Hub's licence identifier ("apache-2.0", "llama3", "other")
    name: str
    link: str


APACHE = Licence("apache-2.0", "Apache License 2.0", "https://www.apache.org/licenses/LICENSE-2.0")
MIT = Licence("mit", "MIT License", "https://opensource.org/licenses/MIT")

# base model hub id → its licence (the model card's `license` of the adapter: it runs on, and is bound by, the base)
BASE_MODELS: dict[str, Licence] = {
    "Qwen/Qwen2-7B": APACHE,
    "Qwen/Qwen2-7B-Instruct": APACHE,
    "meta-llama/Meta-Llama-3-8B-Instruct": Licence(
        "llama3", "Meta Llama 3 Community License", "https://huggingface.co/meta-llama/Meta-Llama-3-8B-Instruct"
    ),
    "google/gemma-7b": Licence("gemma", "Gemma Terms of Use", "https://ai.google.dev/gemma/terms"),
    "mistralai/Mistral-7B-v0.1": APACHE,
}


@dataclass(frozen=True)
class Upstream:
    """One upstream publication a source's files come from."""

    title: str
    url: str
    licence: Licence | None  # None: upstream states none
    licence_evidence: str  # where the licence is stated (or looked for)
    files: tuple[str, ...]  # raw files of the manifest's inputs that come from it
    hub_id: str | None = None  # a Hugging Face dataset id, for the model card's `datasets`
    citation: str = ""


# manifest source key → its upstream parts, in the manifest's order
SOURCES: dict[str, tuple[Upstream, ...]] = {
    "medchatzh": (
        Upstream(
            "MedChatZH",
            "https://huggingface.co/datasets/tyang816/MedChatZH",
            APACHE,
            "the dataset card's metadata",
            ("MedChatZH/MedChatZH_train.json", "MedChatZH/MedChatZH_valid.json"),
            "tyang816/MedChatZH",
            "Tan et al., MedChatZH: a tuning LLM for traditional Chinese medicine consultations, "
            "Computers in Biology and Medicine, 2024",
        ),
    ),
    "huatuo26m": (
        Upstream(
            "Huatuo-26M encyclopedia QA",
            "https://huggingface.co/datasets/FreedomIntelligence/huatuo_encyclopedia_qa",
            APACHE,
            "the dataset card's metadata",
            ("huatuo_encyclopedia_qa/train_datasets.jsonl", "huatuo_encyclopedia_qa/test_datasets.jsonl"),
            "FreedomIntelligence/huatuo_encyclopedia_qa",
            "Li et al., Huatuo-26M, a Large-scale Chinese Medical QA Dataset, arXiv:2305.01526",
        ),
        Upstream(
            "HuatuoGPT SFT data v1",
            "https://huggingface.co/datasets/FreedomIntelligence/HuatuoGPT-sft-data-v1",
            APACHE,
            "the dataset card's metadata",
            ("HuatuoGPT-sft-data-v1/HuatuoGPT_sft_data_v1.jsonl",),
            "FreedomIntelligence/HuatuoGPT-sft-data-v1",
            "Zhang et al., HuatuoGPT, towards Taming Language Model to Be a Doctor, arXiv:2305.15075",
        ),
    ),
    "cmtmedqa": (
        Upstream(
            "CMtMedQA (train)",
            "https://huggingface.co/datasets/Suprit/CMtMedQA",
            MIT,
            "the dataset card's metadata",
            ("CMtMedQA/CMtMedQA.json",),
            "Suprit/CMtMedQA",
            "Yang et al., Zhongjing: Enhancing the Chinese Medical Capabilities of Large Language Model through "
            "Expert Feedback and Real-world Multi-turn Dialogue, arXiv:2308.03549",
        ),
        Upstream(
            "CMtMedQA test set (Zhongjing repository)",
            "https://github.com/SupritYoung/Zhongjing",
            None,
            "no LICENSE file and no licence in the README of the repository",
            ("CMtMedQA/CMtMedQA_test.json",),
            None,
            "Yang et al., arXiv:2308.03549",
        ),
    ),
    "webmedqa": (
        Upstream(
            "webMedQA",
            "https://github.com/hejunqing/webMedQA",
            APACHE,
            "the repository's LICENSE file",
            ("webMedQA/medQA.train.txt", "webMedQA/medQA.test.txt"),
            None,
            "He et al., Applying deep matching networks to Chinese medical question answering: a study and a "
            "dataset, BMC Medical Informatics and Decision Making 19 (Suppl 2): 52, 2019",
        ),
    ),
}

NOT_STATED = "not stated"


def licence_text(upstream: Upstream) -> str:
    """`[Apache License 2.0](link)`, or "not stated" with the place it was looked for."""
    if upstream.licence is None:
        return f"{NOT_STATED} ([{upstream.licence_evidence}]({upstream.url}))"
    licence = upstream.licence
    return f"[{licence.name}]({licence.link}) (`{licence.hub_id}`, per {upstream.licence_evidence})"


def hub_datasets(sources: list[str]) -> list[str]:
    """The Hugging Face dataset ids behind the sources used, in the manifest's order."""
    return [u.hub_id for s in sources for u in SOURCES.get(s, ()) if u.hub_id]
