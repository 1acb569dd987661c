"""Shared test fixtures: offline hub settings and tiny local models of the four architectures."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from converter_builds import built  # noqa: F401 (a fixture: a good demo build the converter tests break)
from lfcli import LETTER, adapter_factory, exam_prompts

# No hub is reachable in CI: fail fast instead of waiting on network time-outs.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("DISABLE_VERSION_CHECK", "0")

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="module")
def one_torch_thread():
    """Hidden-64 models gain nothing from intra-op threads, and on a shared 2-core box threads only contend."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_model_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tiny-models")


@pytest.fixture(scope="session")
def tiny_model(tiny_model_root: Path):
    """Factory: `tiny_model("qwen2")` → path of a tiny random model folder, built once per session."""
    from medasst import tiny

    def get(family: str, seed: int = 0) -> Path:
        return tiny.cached(family, seed=seed, root=tiny_model_root)

    return get


# A model taught through LLaMA-Factory to answer every exam prompt with one letter: what the family, serving and
# WebUI tests run on, since its answers are known in advance.
TRAIN_SUBJECTS = "cmmlu:genetics,cmmlu:nutrition,cmmlu:virology"  # medical, but not among the paper's subjects
TRAIN_RECORDS = 96


@pytest.fixture(scope="session")
def letter_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dataset dir with `letter_train` (exam prompts → "C") and `letter_test` (held-out exam prompts)."""
    root = tmp_path_factory.mktemp("letter-data")
    train = [{"instruction": text, "input": "", "output": LETTER} for text in exam_prompts(TRAIN_SUBJECTS)]
    train = train[:: max(1, len(train) // TRAIN_RECORDS)][:TRAIN_RECORDS]
    test = [
        {"instruction": text, "input": "", "output": LETTER, "id": f"held-out-{i}"}
        for i, text in enumerate(exam_prompts("ceval:physician", 12))
    ]
    for name, rows in (("letter_train", train), ("letter_test", test)):
        (root / f"{name}.jsonl").write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
        )
    columns = {"prompt": "instruction", "query": "input", "response": "output"}
    info = {
        name: {"file_name": f"{name}.jsonl", "formatting": "alpaca", "columns": columns}
        for name in ("letter_train", "letter_test")
    }
    (root / "dataset_info.json").write_text(json.dumps(info, indent=1), encoding="utf-8")
    return root


@pytest.fixture(scope="session")
def taught(tiny_model, letter_data: Path, tmp_path_factory: pytest.TempPathFactory):
    """Factory: family → (base model, adapter taught to answer "C"), trained once per session by the real recipe."""
    overrides = [
        "dataset=letter_train",
        f"dataset_dir={letter_data}",
        "max_steps=40",
        "learning_rate=0.01",
        "warmup_steps=0",
        "lora_dropout=0",
        "save_strategy='no'",
    ]
    return adapter_factory(tiny_model, tmp_path_factory, "letter", overrides)


SENTENCE = "答案是C。"  # what the sentence-taught tiny model replies to every exam prompt (mcq --scoring generate)


@pytest.fixture(scope="session")
def sentence_taught(tiny_model, letter_data: Path, tmp_path_factory: pytest.TempPathFactory):
    """(tiny Qwen2, adapter) taught by the real recipe to reply "答案是C。" to every exam prompt."""
    rows = [json.loads(line) for line in (letter_data / "letter_train.jsonl").read_text(encoding="utf-8").splitlines()]
    root = tmp_path_factory.mktemp("sentence-data")
    (root / "sentence_train.jsonl").write_text(
        "".join(json.dumps(r | {"output": SENTENCE}, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )
    columns = {"prompt": "instruction", "query": "input", "response": "output"}
    info = {"sentence_train": {"file_name": "sentence_train.jsonl", "formatting": "alpaca", "columns": columns}}
    (root / "dataset_info.json").write_text(json.dumps(info), encoding="utf-8")
    overrides = ["dataset=sentence_train", f"dataset_dir={root}", "max_steps=60", "learning_rate=0.01",
                 "warmup_steps=0", "lora_dropout=0", "save_strategy='no'"]  # fmt: skip
    return adapter_factory(tiny_model, tmp_path_factory, "sentence", overrides)("qwen2")
