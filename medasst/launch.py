"""`python -m medasst.launch [--batch N] train RECIPE.yaml key=value ...`: keep the recipe's effective batch.

The paper's batch 4 is per-device × accumulation × world size. LLaMA-Factory's launcher starts as many processes
as the environment asks (FORCE_TORCHRUN, NNODES × NPROC_PER_NODE, or every visible GPU) and never looks at the
batch, so the same command on 4 GPUs silently trains at 16 with a schedule (warm-up steps, lr) chosen for 4. This
check runs before LF's launcher, which stays as it is: it reads the recipe with the overrides as LF reads them
(OmegaConf), works out the world size as LF's launcher will, and refuses in one line (exit 2) when the effective
batch is not the recipe's own (its per-device × accumulation at one process), unless `--batch N` says that N is
meant. Every train recipe passes through it the same way (SFT, and DPO/KTO preference recipes: the keys are
LF's). Then it runs `llamafactory-cli` with the same arguments and returns its exit status.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

BATCH_KEYS = ("per_device_train_batch_size", "gradient_accumulation_steps")
LF_DEFAULTS = {"per_device_train_batch_size": 8, "gradient_accumulation_steps": 1}  # HF TrainingArguments'


class LaunchError(ValueError):
    """A launch that would change the recipe's effective batch or break in LF's launcher; one line."""


@dataclass(frozen=True)
class World:
    size: int
    how: str  # where the number came from, for the message


def _enabled(env: Mapping[str, str], name: str) -> bool:
    return env.get(name, "0").lower() in ("1", "true", "y")  # LF's is_env_enabled


def device_count(env: Mapping[str, str]) -> int:
    """GPUs LF's launcher would see: CUDA_VISIBLE_DEVICES when set (no torch import), else torch's count."""
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    import torch

    return torch.cuda.device_count()


def world_size(env: Mapping[str, str], config: Mapping[str, object]) -> World:
    """The processes LF 0.9.5's launcher starts for `train` (llamafactory/launcher.py), times the nodes."""
    if _enabled(env, "USE_RAY"):
        workers = int(config.get("ray_num_workers", 1))  # type: ignore[call-overload]
        return World(workers, f"ray_num_workers {workers}")
    torchrun = _enabled(env, "FORCE_TORCHRUN") or _enabled(env, "USE_MCA")
    if not torchrun and device_count(env) <= 1:
        return World(1, "one process")
    nnodes = int(env.get("NNODES", "1"))
    nproc = int(env["NPROC_PER_NODE"]) if "NPROC_PER_NODE" in env else device_count(env)
    return World(nnodes * nproc, f"NNODES {nnodes} × NPROC_PER_NODE {nproc}")


def read_recipe(recipe: Path, overrides: list[str]) -> tuple[dict, dict]:
    """(the recipe file, the recipe with the overrides merged as LF merges them)."""
    from omegaconf import OmegaConf

    if not recipe.is_file():
        raise LaunchError(f"{recipe}: recipe not found")
    bad = [o for o in overrides if "=" not in o]
    if bad:
        raise LaunchError(f"override {bad[0]!r} is not key=value")
    try:
        base = OmegaConf.load(recipe)
        merged = OmegaConf.merge(base, OmegaConf.from_cli(overrides))
    except Exception as e:  # YAML and OmegaConf errors alike: named in one line, never a traceback
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise LaunchError(f"{recipe} with {' '.join(overrides) or 'no overrides'}: cannot be read ({first})") from None
    return OmegaConf.to_container(base), OmegaConf.to_container(merged)  # type: ignore[return-value]


def _batch(config: Mapping[str, object]) -> tuple[int, int]:
    per, acc = (int(config.get(key, LF_DEFAULTS[key])) for key in BATCH_KEYS)  # type: ignore[call-overload]
    return per, acc


def _deepspeed_batch(config: Mapping[str, object]) -> int | None:
    """A DeepSpeed JSON's own train_batch_size when it is a number (ours say "auto": the recipe's values win)."""
    path = config.get("deepspeed")
    if not isinstance(path, str) or not Path(path).is_file():
        return None
    value = json.loads(Path(path).read_text(encoding="utf-8")).get("train_batch_size")
    return value if isinstance(value, int) else None


def check(recipe: Path, overrides: list[str], env: Mapping[str, str], batch: int | None = None) -> str:
    """The one-line note of a launch that keeps the recipe's effective batch (or `batch`); else LaunchError."""
    base, config = read_recipe(recipe, overrides)
    world = world_size(env, config)
    if world.size > 1:
        spaced = [o for o in overrides if " " in o]
        if spaced:  # LF joins the arguments for torchrun and splits them again on spaces
            raise LaunchError(f"override {spaced[0]!r} has a space, which LF's torchrun launcher splits; put it "
                              "in a copy of the recipe")  # fmt: skip
    if not config.get("do_train", False):
        return f"launch: {recipe} does not train; batch not checked"
    want = batch if batch is not None else _batch(base)[0] * _batch(base)[1]
    per, acc = _batch(config)
    effective = per * acc * world.size
    formula = f"per_device_train_batch_size {per} × gradient_accumulation_steps {acc} × world size {world.size}"
    ds = _deepspeed_batch(config)
    if ds is not None and ds != effective:
        raise LaunchError(f"{config['deepspeed']} sets train_batch_size {ds}, but {formula} is {effective}")
    if effective != want:
        if batch is not None:
            raise LaunchError(f"--batch {batch}, but {formula} ({world.how}) is {effective}")
        raise LaunchError(
            f"effective batch {effective} = {formula} ({world.how}), but {recipe} trains at {want}; change "
            f"per_device_train_batch_size / gradient_accumulation_steps, or pass --batch {effective} to mean it"
        )
    own = "" if batch is None else f" (--batch {batch})"
    return f"launch: effective batch {effective} = {formula}{own}"


def lf_command(argv: list[str]) -> tuple[list[str], dict[str, str]]:
    """`llamafactory-cli` of this environment, with its bin first on PATH: LF's launcher runs `torchrun` from PATH."""
    bin_dir = Path(sys.executable).parent
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(bin_dir), env.get("PATH", "")])
    return [str(bin_dir / "llamafactory-cli"), *argv], env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m medasst.launch", description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, help="the effective batch meant, when it is not the recipe's own")
    parser.add_argument("--dry-run", action="store_true", help="check and print the command; do not run it")
    parser.add_argument("command", help="llamafactory-cli command (train; others pass through unchecked)")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="RECIPE.yaml key=value ...")
    opts = parser.parse_args(argv)
    cmd, env = lf_command([opts.command, *opts.args])
    if opts.command == "train":
        if not opts.args or not opts.args[0].endswith((".yaml", ".yml")):
            print("launch: error: train needs a recipe .yaml first", file=sys.stderr)
            return 2
        try:
            note = check(Path(opts.args[0]), opts.args[1:], os.environ, opts.batch)
        except (LaunchError, ValueError, OSError) as e:  # a non-integer batch or env value is one line too
            print(f"launch: error: {str(e).splitlines()[0]}", file=sys.stderr)
            return 2
        print(note, file=sys.stderr, flush=True)
    if opts.dry_run:
        print(" ".join(cmd))
        return 0
    return subprocess.run(cmd, env=env, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
