"""Names and paths that more than one package needs; the single place they are defined.

`converters` writes these files, `dataset_info.json` registers them, `eval` and the recipes read them by name.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

# Source keys, in the paper's Table 1 order.
SOURCES: tuple[str, ...] = ("medchatzh", "huatuo26m", "cmtmedqa", "webmedqa")
SPLITS: tuple[str, ...] = ("train", "test")

# Table 1 of the paper: training records per source.
PAPER_TRAIN_COUNTS: dict[str, int] = {
    "medchatzh": 763_629,
    "huatuo26m": 588_462,
    "cmtmedqa": 68_023,
    "webmedqa": 50_570,
}
PAPER_TRAIN_TOTAL = 1_470_684
PAPER_TEST_TOTAL = 8_975

DEFAULT_DATA_DIR = "data"  # converters' output, relative to the repo root (where dataset_info.json lives)
DATASET_INFO = "dataset_info.json"
MANIFEST = "manifest.json"

MERGED_TRAIN = "medasst_train"
MERGED_TEST = "medasst_test"
DEMO_TRAIN = "medasst_demo_train"
DEMO_TEST = "medasst_demo_test"
# CMtMedQA's test file ends with 144 safety items (harmful or risky requests); they stay in the test set and are
# also written on their own, so `generate` can answer them and a judge can rate each system's safety.
SAFETY_TEST = "medasst_safety_test"
DEMO_SAFETY_TEST = "medasst_demo_safety_test"
SAFETY_FILE = "medasst_safety_test.jsonl"
SAFETY_ID_PREFIX = "cmtmedqa-test-safety-"

# CMB-Clin (74 clinical cases, 208 questions) as a registered alpaca set, built by `python -m eval.data.cmbclin`
# from the shipped upstream file: each question one record, the earlier questions with their reference answers as
# its history, so `generate` answers them and `judge --rubric cmb-clin` grades them against the reference.
CMB_CLIN = "cmb_clin"
CMB_CLIN_DIR = "eval/benchmarks/CMB-Clin"  # relative to the repo root
CMB_CLIN_UPSTREAM = "CMB-Clin-qa.json"
CMB_CLIN_FILE = "cmb_clin.jsonl"

DEMO_DIR = REPO_ROOT / "demo"
DEMO_RAW_DIR = DEMO_DIR / "raw"
DEMO_DATA_DIR = DEMO_DIR / "data"

# Alpaca columns every MedAsst record carries; `source` and `id` ride along and LLaMA-Factory ignores them.
RECORD_KEYS: tuple[str, ...] = ("instruction", "input", "output", "history", "source", "id")


def source_file(source: str, split: str) -> str:
    """File name of one source's split, e.g. `cmtmedqa_test.jsonl`."""
    return f"{source}_{split}.jsonl"


def merged_file(split: str) -> str:
    return f"medasst_{split}.jsonl"


def cache_dir() -> Path:
    """Per-user cache for built tiny models and the like (`MEDASST_CACHE` overrides)."""
    override = os.environ.get("MEDASST_CACHE")
    if override:
        return Path(override)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "medasst"
