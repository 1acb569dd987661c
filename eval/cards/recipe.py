"""The recipe an adapter was trained with: its hub base model, the hyperparameters it asked for, and the chain of
adapters it was trained on top of (a preference stage on an SFT adapter)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eval.cards.common import CardError, is_hub_id, local_paths, read_yaml_object, shown_path
from medasst.facts import REPO_ROOT

RECIPES_DIR = REPO_ROOT / "recipes"
# the recipe keys that decide the training, in a card's order (paths and worker counts say nothing about the model)
SHOWN_KEYS = (
    "stage", "finetuning_type", "lora_rank", "lora_alpha", "lora_dropout", "lora_target", "pref_beta", "pref_loss",
    "dataset", "template", "default_system", "cutoff_len", "per_device_train_batch_size",
    "gradient_accumulation_steps", "num_train_epochs", "max_steps", "learning_rate", "warmup_steps",
    "lr_scheduler_type", "bf16", "fp16", "seed",
)  # fmt: skip


@dataclass
class Recipe:
    name: str  # repo-relative ("recipes/medasst_qwen2.yaml") or the bare file name
    values: dict[str, Any]
    parents: list[str] = field(default_factory=list)  # adapter_name_or_path entries: what it was trained on

    @property
    def stage(self) -> str:
        return str(self.values.get("stage", "sft"))

    @property
    def model(self) -> str | None:
        value = self.values.get("model_name_or_path")
        return value if isinstance(value, str) else None

    def shown(self) -> dict[str, Any]:
        out = {}
        for key in SHOWN_KEYS:
            if key in self.values:
                value = self.values[key]
                out[key] = "(a local path)" if isinstance(value, str) and local_paths(value) else value
        return out


def load(path: Path) -> Recipe:
    values = read_yaml_object(path, "recipe")
    if values.get("do_train") is False or ("stage" not in values and "finetuning_type" not in values):
        raise CardError(f"--recipe {path}: not a training recipe (no stage / finetuning_type)")
    parents = values.get("adapter_name_or_path") or []
    if isinstance(parents, str):
        parents = [p.strip() for p in parents.split(",") if p.strip()]  # LF's comma-separated form
    return Recipe(shown_path(path), values, [str(p) for p in parents])


def find_for(adapter: Path) -> Path | None:
    """The repo recipe whose output_dir is this adapter folder (a run of the recipe as shipped), if one is."""
    target = adapter.resolve()
    for path in sorted(RECIPES_DIR.glob("*.yaml")):
        try:
            values = read_yaml_object(path, "recipe")
        except CardError:
            continue
        out = values.get("output_dir")
        mine = isinstance(out, str) and target in {(REPO_ROOT / out).resolve(), (Path.cwd() / out).resolve()}
        if values.get("do_train") and mine:
            return path
    return None


def recipe_of_output(output_dir: str) -> str | None:
    """The repo recipe that trains into `output_dir`, by its repo-relative name: how a parent adapter is named."""
    for path in sorted(RECIPES_DIR.glob("*.yaml")):
        try:
            values = read_yaml_object(path, "recipe")
        except CardError:
            continue
        if values.get("do_train") and values.get("output_dir") == output_dir:
            return shown_path(path)
    return None


def chain(base: str | None, recipe: Recipe | None, parent_ids: tuple[str, ...]) -> list[str]:
    """Base model → each adapter trained on before → this one, every step named without a local path."""
    steps = [f"`{base}`" if base else "the base model (not named: see the warning in Base model)"]
    parents = recipe.parents if recipe else []
    for i, parent in enumerate(parents):
        if i < len(parent_ids):
            steps.append(f"[`{parent_ids[i]}`](https://huggingface.co/{parent_ids[i]})")
        elif is_hub_id(parent):
            steps.append(f"[`{parent}`](https://huggingface.co/{parent})")
        else:
            made_by = recipe_of_output(parent)
            steps.append(f"the adapter of `{made_by}`" if made_by else "a previous adapter (pass --parent-adapter)")
    stage = recipe.stage if recipe else "sft"
    steps.append(f"this adapter ({stage}{f', `{recipe.name}`' if recipe else ''})")
    return steps
