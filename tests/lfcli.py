"""Running `llamafactory-cli` from tests as a user does: the repo's recipes, `key=value` overrides, CPU, offline."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
CLI = Path(sys.executable).with_name("llamafactory-cli")

# family (medasst.tiny) → (train recipe, predict recipe, export recipe, a marker of the template in the prompt)
FAMILIES = {
    "qwen2": ("medasst_qwen2", "medasst_qwen2_predict", "medasst_qwen2_export", "<|im_start|>user\n"),
    "llama3": (
        "llama3_baseline",
        "llama3_baseline_predict",
        "llama3_baseline_export",
        "<|start_header_id|>user<|end_header_id|>",
    ),
    "gemma": ("gemma_baseline", "gemma_baseline_predict", "gemma_baseline_export", "<start_of_turn>user\n"),
    "mistral": ("mistral_baseline", "mistral_baseline_predict", "mistral_baseline_export", "[INST]"),
}
# CPU overrides shared by every run: the recipes are bf16 for the A10, which TrainingArguments refuses without a
# bf16 GPU; and 16 tokenizer processes / 4 loader workers cost ~20 s a run on 2 cores for 8 records
CPU = ["bf16=false", "preprocessing_num_workers=1", "dataloader_num_workers=0"]


def lf_env(scratch: Path, **extra: str) -> dict[str, str]:
    """The environment of an offline CPU `llamafactory-cli` run, free of the caller's launcher settings."""
    env = dict(os.environ)
    for var in ("USE_MODELSCOPE_HUB", "FORCE_TORCHRUN", "ALLOW_EXTRA_ARGS", "USE_RAY", "USE_MCA", "NNODES"):
        env.pop(var, None)
    env.update(
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        CUDA_VISIBLE_DEVICES="",  # CPU even on a GPU host: one process, no torchrun
        HF_DATASETS_CACHE=str(scratch / "hf-datasets-cache"),
        PYTHONHASHSEED="0",
    )
    env.update(extra)
    return env


def llamafactory(command: str, recipe: str, overrides: list[str], log: Path) -> None:
    """`llamafactory-cli <command> recipes/<recipe>.yaml k=v ...` from the repo root; fail with the log tail."""
    cmd = [str(CLI), command, f"recipes/{recipe}.yaml", *overrides]
    with open(log, "w", encoding="utf-8") as out:
        proc = subprocess.run(
            cmd, cwd=REPO_ROOT, env=lf_env(log.parent), stdout=out, stderr=subprocess.STDOUT, timeout=600
        )
    if proc.returncode != 0:
        tail = log.read_text(encoding="utf-8", errors="replace")[-4000:]
        pytest.fail(f"{' '.join(cmd)} exited {proc.returncode}:\n{tail}")


def adapter_factory(tiny_model, tmp_path_factory: pytest.TempPathFactory, label: str, overrides: list[str]):
    """Factory: family → (tiny base model, adapter) trained once by the family's real recipe with `overrides`."""
    done: dict[str, tuple[Path, Path]] = {}

    def get(family: str) -> tuple[Path, Path]:
        if family not in done:
            model = tiny_model(family)
            out = tmp_path_factory.mktemp(f"{family}-{label}")
            adapter = out / "adapter"
            argv = [f"model_name_or_path={model}", f"output_dir={adapter}", *overrides, *CPU]
            llamafactory("train", FAMILIES[family][0], argv, out / "train.log")
            done[family] = (model, adapter)
        return done[family]

    return get


LETTER = "C"  # what the taught tiny models (conftest `taught`) answer to every exam prompt


def exam_prompts(spec: str, limit: int | None = None) -> list[str]:
    """The user turn `mcq` sends for each question of `spec` (LF's Chinese exam prompt, 0-shot)."""
    from eval.data.benchmarks import BenchmarkSource, display_name, resolve_subjects
    from eval.metrics.choice import build_messages

    source = BenchmarkSource()
    texts: list[str] = []
    for subject in resolve_subjects(spec, source):
        questions, _ = source.load(
            subject.benchmark, subject.subject, "test" if subject.benchmark == "cmmlu" else "val"
        )
        name = display_name(subject.benchmark, subject.subject)
        texts += [build_messages(q, [], name)[0]["content"] for q in questions]
    return texts[:limit] if limit else texts
