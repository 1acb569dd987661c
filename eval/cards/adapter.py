"""What an adapter folder says about how it was trained, read from its JSON and Markdown files only.

`training_args.bin` is a torch pickle: loading it runs code, so it is never opened. The arguments as trained come
from the Trainer's own card (README.md, "Training hyperparameters"), `adapter_config.json` and `trainer_state.json`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eval.cards.common import CardError, read_json_object

ADAPTER_CONFIG = "adapter_config.json"
HYPERPARAMETERS_HEADING = "Training hyperparameters"
FRAMEWORKS_HEADING = "Framework versions"
# the adapter_config.json keys a card shows, in this order
LORA_KEYS = ("peft_type", "task_type", "r", "lora_alpha", "lora_dropout", "target_modules", "use_dora", "use_rslora")
STATE_KEYS = ("global_step", "max_steps", "num_train_epochs", "epoch", "train_batch_size")
RESULT_KEYS = ("train_loss", "epoch")


@dataclass
class Adapter:
    path: Path
    config: dict[str, Any]
    hyperparameters: dict[str, str] = field(default_factory=dict)  # the Trainer card's list, as written
    state: dict[str, Any] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)
    frameworks: list[str] = field(default_factory=list)  # "PEFT 0.18.1", … as the Trainer card lists them

    @property
    def base_model(self) -> str | None:
        value = self.config.get("base_model_name_or_path")
        return value if isinstance(value, str) and value else None

    def lora(self) -> dict[str, Any]:
        out = {k: self.config[k] for k in LORA_KEYS if k in self.config}
        if isinstance(out.get("target_modules"), list):
            out["target_modules"] = sorted(out["target_modules"])  # PEFT writes a set: any order
        return out


def _items(card: str, heading: str) -> list[str]:
    """The `- item` lines of the sections whose heading names `heading` (a Trainer card's, or ours)."""
    out, inside = [], False
    for line in card.splitlines():
        if line.startswith("#"):
            inside = heading in line
        elif inside and line.startswith("- "):
            out.append(line[2:].strip())
    return out


def read_hyperparameters(card: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in _items(card, HYPERPARAMETERS_HEADING):
        match = re.match(r"^([\w.-]+): (.+)$", item)
        if match:
            out[match.group(1)] = match.group(2).strip()
    return out


def load(folder: Path) -> Adapter:
    if not folder.is_dir():
        raise CardError(f"--adapter {folder}: folder not found")
    if not (folder / ADAPTER_CONFIG).is_file():
        raise CardError(f"--adapter {folder}: no {ADAPTER_CONFIG} there (not a PEFT adapter; pass the output_dir of "
                        "`llamafactory-cli train`)")  # fmt: skip
    config = read_json_object(folder / ADAPTER_CONFIG, "adapter config")
    adapter = Adapter(folder, config)
    readme = folder / "README.md"
    if readme.is_file():
        text = readme.read_text(encoding="utf-8", errors="replace")
        adapter.hyperparameters = read_hyperparameters(text)
        adapter.frameworks = [f for f in _items(text, FRAMEWORKS_HEADING) if re.match(r"^[\w.-]+ [\w.+-]+$", f)]
    if (folder / "trainer_state.json").is_file():
        state = read_json_object(folder / "trainer_state.json", "trainer state")
        adapter.state = {k: state[k] for k in STATE_KEYS if state.get(k) is not None}
    for name in ("all_results.json", "train_results.json"):
        if (folder / name).is_file():
            results = read_json_object(folder / name, "training results")
            adapter.results = {k: results[k] for k in RESULT_KEYS if results.get(k) is not None}
            break
    return adapter
