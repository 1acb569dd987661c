"""Shared test fixtures: offline hub settings and tiny local models of the four architectures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# No hub is reachable in CI: fail fast instead of waiting on network time-outs.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("DISABLE_VERSION_CHECK", "0")

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


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
