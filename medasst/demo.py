"""`python -m medasst.demo`: the whole MedAsst pipeline on shipped data, on CPU, in a few minutes.

shipped raw samples → `converters` → `recipes/medasst_qwen2.yaml` and the three baseline recipes through
`llamafactory-cli train` (the real recipes; `key=value` overrides only for model, data, steps, precision and
output) → `eval.run` multiple choice, generation and scoring of the paper's five systems → Table 2, Table 3 and
Figure 4 → the Hub cards of MedAsst's adapter and of the converted data (`model-card`, `dataset-card`).

The models are tiny random Qwen2 / Llama / Gemma / Mistral models built offline (`medasst.tiny`) on the real
Qwen2, Llama-3-8B-Instruct and Mistral-7B-v0.1 tokenizers (Gemma's is a stand-in), so the numbers only prove
that the pipeline runs; they say nothing about MedAsst. Every stage is the same command a
user runs on a GPU machine, called as a subprocess, so the demo exercises the public interfaces and nothing else.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from medasst import facts, tiny

RECIPES = facts.REPO_ROOT / "recipes"


@dataclass(frozen=True)
class DemoSystem:
    """A row of the paper's tables: its tiny stand-in architecture and the recipe that trains (or prompts) it."""

    name: str
    family: str  # medasst.tiny family
    recipe: str  # training recipe, or the predict recipe of an untouched model
    fine_tuned: bool = True


# The paper's five systems, in its table order; `--systems medasst` keeps the last two.
SYSTEMS = (
    DemoSystem("LlaMa-3-8B", "llama3", "llama3_baseline.yaml"),
    DemoSystem("Gemma-7B", "gemma", "gemma_baseline.yaml"),
    DemoSystem("Mistral-7B", "mistral", "mistral_baseline.yaml"),
    DemoSystem("Qwen2-7B", "qwen2", "qwen2_base_predict.yaml", fine_tuned=False),
    DemoSystem("MedAsst", "qwen2", "medasst_qwen2.yaml"),
)
SYSTEM_SETS = {"paper": SYSTEMS, "medasst": SYSTEMS[-2:]}
NOTICE = (
    "NOTE: these numbers come from tiny random models (2 layers, hidden 64) trained for a few steps on a few\n"
    "dozen shipped samples. They only prove that the pipeline runs end to end; they say nothing about MedAsst."
)


class StageError(RuntimeError):
    pass


class Runner:
    """Runs each stage as a subprocess from the repo root, logging its output to a file under the output dir."""

    def __init__(self, out: Path, env: dict[str, str], total: int) -> None:
        self.out = out
        self.env = env
        self.total = total
        self.done = 0
        self.logs = out / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)

    def stage(self, title: str, argv: list[str], log_name: str, echo: str | None = None) -> None:
        """Run one stage; lines of its output that start with `echo` are shown as sub-steps."""
        self.done += 1
        log_path = self.logs / f"{self.done:02d}_{log_name}.log"
        print(f"[{self.done}/{self.total}] {title}", flush=True)
        print(f"      $ {shlex.join(argv)}", flush=True)
        started = time.monotonic()
        with open(log_path, "w", encoding="utf-8") as log:
            proc = subprocess.Popen(
                argv, cwd=facts.REPO_ROOT, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                text=True, encoding="utf-8", errors="replace",
            )  # fmt: skip
            assert proc.stdout is not None
            for line in proc.stdout:
                log.write(line)
                if echo and line.startswith(echo) and not line.startswith(LOG_PREFIXES):
                    print(f"      {line.rstrip()}", flush=True)
            proc.wait()
        elapsed = time.monotonic() - started
        if proc.returncode != 0:
            tail = log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-25:]
            raise StageError(f"stage '{title}' failed (exit {proc.returncode}); log: {log_path}\n" + "\n".join(tail))
        print(f"      done in {elapsed:.0f} s (log: {log_path.relative_to(self.out)})", flush=True)

    def note(self, title: str) -> None:
        self.done += 1
        print(f"[{self.done}/{self.total}] {title}", flush=True)


LOG_PREFIXES = ("[INFO", "[WARNING", "[ERROR", "[DEBUG")  # LLaMA-Factory's and transformers' log lines


def read_recipe(name: str) -> dict:
    import yaml

    return yaml.safe_load((RECIPES / name).read_text(encoding="utf-8"))


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    # Nothing in the demo may reach a hub; fail fast instead of waiting on time-outs.
    env.update(
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        CUDA_VISIBLE_DEVICES=env.get("CUDA_VISIBLE_DEVICES", ""),
        PYTHONUNBUFFERED="1",
    )
    env.pop("USE_MODELSCOPE_HUB", None)
    return env


def write_dataset_info(data_dir: Path) -> None:
    """Register the converted files under their MedAsst names, so `dataset_dir` can point at the demo's data."""
    root_info = json.loads((facts.REPO_ROOT / facts.DATASET_INFO).read_text(encoding="utf-8"))
    info = {}
    for split in facts.SPLITS:
        name = f"medasst_{split}"
        entry = dict(root_info[name])
        entry["file_name"] = facts.merged_file(split)
        info[name] = entry
    (data_dir / facts.DATASET_INFO).write_text(json.dumps(info, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def train_argv(recipe: str, model: Path, data_dir: Path, adapter_dir: Path, steps: int) -> list[str]:
    cli = str(Path(sys.executable).with_name("llamafactory-cli"))
    overrides = {
        "model_name_or_path": str(model),
        "dataset_dir": str(data_dir),
        "output_dir": str(adapter_dir),
        "max_steps": str(steps),
        # CPU: no bf16, no pinned memory; a few steps need no warm-up.
        "bf16": "false",
        "warmup_steps": "0",
        # only the final adapter; quoted because OmegaConf reads a bare `no` as false
        "save_strategy": "'no'",
        "logging_steps": "1",
        "report_to": "none",
        "dataloader_pin_memory": "false",
        "preprocessing_num_workers": "1",
        "dataloader_num_workers": "0",
        "overwrite_output_dir": "true",
    }
    return [cli, "train", str(RECIPES / recipe), *(f"{k}={v}" for k, v in overrides.items())]


def adapter_dir(out: Path, system: DemoSystem) -> Path:
    return out / "saves" / system.family / system.name / "lora" / "sft"


def eval_config(
    out: Path,
    systems: tuple[DemoSystem, ...],
    models: dict[str, Path],
    data_dir: Path,
    max_new_tokens: int,
    subjects: str,
) -> dict:
    """The demo's `eval.run --config`: every system on its tiny model, its adapter when it was fine-tuned."""
    entries = []
    for system in systems:
        recipe = read_recipe(system.recipe)
        entry = {"name": system.name, "dir": system.name, "model": str(models[system.family])}
        if system.fine_tuned:
            entry["adapter"] = str(adapter_dir(out, system))
        entry["template"] = recipe["template"]
        if recipe.get("default_system"):
            entry["default_system"] = recipe["default_system"]  # the prompt must be the one trained on
        entries.append(entry)
    return {
        "output_dir": str(out / "runs"),
        "dataset": facts.MERGED_TEST,
        "dataset_dir": str(data_dir),
        "steps": ["mcq", "generate", "score", "report"],
        "mcq": {"subjects": subjects, "n_shot": 0},
        "generate": {"cutoff_len": read_recipe("medasst_qwen2.yaml")["cutoff_len"], "max_new_tokens": max_new_tokens},
        "report": {"reference": "MedAsst"},
        "systems": entries,
    }


def run(out: Path, steps: int, max_new_tokens: int, subjects: str, systems: tuple[DemoSystem, ...]) -> int:
    import yaml

    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    trained = [s for s in systems if s.fine_tuned]
    runner = Runner(out, subprocess_env(), total=5 + len(trained))
    started = time.monotonic()
    print(NOTICE, flush=True)

    families = sorted({s.family for s in systems})
    runner.note(f"Building tiny random models ({', '.join(families)}; each family's tokenizer; cached)")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # one shard of a tiny model: the bar is noise in the demo's output
    models = {family: tiny.cached(family) for family in families}
    for family, path in models.items():
        print(f"      {family}: {path} ({tiny.tokenizer_label(family)})", flush=True)

    data_dir = out / "data"
    runner.stage(
        "Converting the shipped raw samples of the four sources",
        [py, "-m", "converters", "build", "--raw-dir", str(facts.DEMO_RAW_DIR), "--out-dir", str(data_dir),
         "--no-progress"],
        "convert",
        echo="medasst_",
    )  # fmt: skip
    write_dataset_info(data_dir)

    for system in trained:
        runner.stage(
            f"{system.name}: training with recipes/{system.recipe} ({steps} steps on CPU)",
            train_argv(system.recipe, models[system.family], data_dir, adapter_dir(out, system), steps),
            f"train_{system.family}_{system.name}",
            echo="{'train_runtime'",
        )

    config_path = out / "eval_config.yaml"
    config = eval_config(out, systems, models, data_dir, max_new_tokens, subjects)
    config_path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")
    runner.stage(
        f"Scoring {len(systems)} systems: multiple choice, generation, BLEU/ROUGE, tables and figure",
        # the adapters were just retrained: every result in runs/ is stale by definition
        [py, "-m", "eval.run", "--config", str(config_path), "--recompute"],
        "eval",
        echo="[",  # the pipeline's per-system step lines: "[MedAsst] mcq: running in a model process"
    )

    report_dir = out / "runs" / "report"
    write_cards(runner, out, data_dir, report_dir, trained)
    print(flush=True)
    for table in sorted(report_dir.glob("table*.md")):
        print(table.read_text(encoding="utf-8"), flush=True)
    for fig in sorted(report_dir.glob("*.png")):
        print(f"Figure: {fig}", flush=True)
    print(f"\nEverything is under {out} ({time.monotonic() - started:.0f} s in all).", flush=True)
    print(NOTICE, flush=True)
    return 0


def write_cards(runner: Runner, out: Path, data_dir: Path, report_dir: Path, trained: list[DemoSystem]) -> None:
    """The Hub cards of the run: MedAsst's adapter (its hub base model, not the tiny one) and the data folder."""
    py = sys.executable
    medasst = next(s for s in trained if s.name == "MedAsst")
    runner.stage(
        "Model card of the MedAsst adapter (README.md for the Hub, from report.json and manifest.json)",
        [py, "-m", "eval.run", "model-card", "--adapter", str(adapter_dir(out, medasst)), "--report", str(report_dir),
         "--data", str(data_dir), "--recipe", str(RECIPES / medasst.recipe), "--system", medasst.name,
         "--notice", NOTICE.replace("\n", " ")],
        "model_card",
        echo="model-card",
    )  # fmt: skip
    runner.stage(
        "Dataset card of the converted data (README.md + figure; loads with datasets.load_dataset)",
        [py, "-m", "eval.run", "dataset-card", "--data", str(data_dir)],
        "dataset_card",
        echo="dataset-card",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m medasst.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/demo", help="output folder (default: runs/demo)")
    parser.add_argument("--steps", type=int, default=10, help="training steps on CPU (default: 10)")
    parser.add_argument("--max-new-tokens", type=int, default=32, help="generation length (default: 32)")
    parser.add_argument("--subjects", default="paper", help="multiple-choice subject preset (default: paper)")
    parser.add_argument(
        "--systems",
        choices=sorted(SYSTEM_SETS),
        default="paper",
        help="paper: the five systems of the paper (default); medasst: MedAsst and the untouched Qwen2 only",
    )
    args = parser.parse_args(argv)
    try:
        return run(Path(args.out), args.steps, args.max_new_tokens, args.subjects, SYSTEM_SETS[args.systems])
    except StageError as err:
        print(f"\nERROR: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
