"""The documented multi-process commands, run as two CPU processes (gloo) through `medasst.launch` → `llamafactory-cli`.

Each run is the MedAsst recipe with key=value overrides only: a tiny Qwen2, 12 demo records, cutoff 64, two
optimizer steps. The effective batch stays the recipe's 4 (2 per process × 2 processes), which is what the launcher
check enforces; the refusal itself is tested without training. Four trainings in all: plain DDP, resumed in one
process (another world size), ZeRO-3, and ZeRO-3 resumed at the same world size.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from lfcli import CPU, REPO_ROOT, lf_env

pytestmark = pytest.mark.slow

RECIPE = "recipes/medasst_qwen2.yaml"
TWO = {"FORCE_TORCHRUN": "1", "NNODES": "1", "NPROC_PER_NODE": "2"}
# 12 records, 2 steps at global batch 4; a checkpoint every step, so step 1 can be resumed from
TINY = ["dataset=medasst_demo_train", "max_samples=12", "cutoff_len=64", "max_steps=2", "save_steps=1",
        "logging_steps=1", "warmup_steps=0", "lora_dropout=0", "plot_loss=false", *CPU]  # fmt: skip


def launch(args: list[str], log: Path, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess:
    """`python -m medasst.launch ARGS` from the repo root, output in `log`; fail with its tail."""
    cmd = [sys.executable, "-m", "medasst.launch", *args]
    with open(log, "w", encoding="utf-8") as out:
        proc = subprocess.run(cmd, cwd=REPO_ROOT, env=lf_env(log.parent, **env), stdout=out,
                              stderr=subprocess.STDOUT, timeout=600)  # fmt: skip
    if check and proc.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} exited {proc.returncode}:\n{log.read_text(errors='replace')[-4000:]}")
    return proc


def train(model: Path, out: Path, env: dict[str, str], *extra: str) -> str:
    out.parent.mkdir(parents=True, exist_ok=True)
    log = out.parent / f"{out.name}.log"
    launch(["train", RECIPE, f"model_name_or_path={model}", f"output_dir={out}", *TINY, *extra], log, env)
    return log.read_text(encoding="utf-8", errors="replace")


def tensors(adapter: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(adapter / "adapter_model.safetensors")


def shapes(adapter: Path) -> dict[str, tuple[int, ...]]:
    return {name: tuple(t.shape) for name, t in tensors(adapter).items()}


def check_trained(out: Path, log: str, world: int, steps: int = 2) -> None:
    for rank in range(world):
        assert f"Process rank: {rank}, world size: {world}," in log
    assert "Total train batch size (w. parallel, distributed & accumulation) = 4" in log, "the paper's batch"
    loss = json.loads((out / "train_results.json").read_text(encoding="utf-8"))["train_loss"]
    assert math.isfinite(loss) and loss > 0
    assert json.loads((out / "trainer_state.json").read_text(encoding="utf-8"))["global_step"] == steps


@pytest.fixture(scope="module")
def ddp(tiny_model, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """(model, output dir, log) of the recipe as two DDP processes, 2 per process (batch 4), checkpoints 1 and 2."""
    model = tiny_model("qwen2")
    out = tmp_path_factory.mktemp("ddp") / "out"
    return model, out, train(model, out, TWO, "per_device_train_batch_size=2")


def test_two_process_ddp(ddp) -> None:
    _, out, log = ddp
    check_trained(out, log, world=2)
    assert (
        "launch: effective batch 4 = per_device_train_batch_size 2 × gradient_accumulation_steps 1 × world size 2"
        in (log)
    )
    assert (out / "checkpoint-1" / "rng_state_1.pth").is_file(), "one RNG state per process"


def test_resume_at_another_world_size(ddp, tmp_path: Path) -> None:
    """One process (4 per device: still batch 4) takes over the two-process checkpoint-1; its adapter has the same
    tensors and shapes as the two-process one. The RNG state per process of 2 is not the one of 1: noted by the
    Trainer ("Didn't find an RNG file"), and the data order after the switch is the one-process order."""
    model, first, _ = ddp
    out = tmp_path / "out"
    shutil.copytree(first / "checkpoint-1", out / "checkpoint-1")
    log = train(model, out, {}, f"resume_from_checkpoint={out / 'checkpoint-1'}")
    assert "past 0 epochs and 1 batches to resume" in log
    check_trained(out, log, world=1)
    assert shapes(out) == shapes(first)


@pytest.fixture(scope="module")
def zero3(ddp, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """(output dir, log) of the recipe as two ZeRO-3 processes (DeepSpeed on CPU), checkpoints 1 and 2."""
    import deepspeed  # noqa: F401 (the dev extra installs it: a missing DeepSpeed is a failure, not a skip)
    out = tmp_path_factory.mktemp("zero3") / "out"
    return out, train(ddp[0], out, TWO, "per_device_train_batch_size=2", ZERO3)


ZERO3 = "deepspeed=recipes/deepspeed/ds_z3_config.json"


def test_two_process_zero3(ddp, zero3) -> None:
    out, log = zero3
    check_trained(out, log, world=2)
    assert (out / "checkpoint-1" / "global_step1").is_dir(), "a DeepSpeed checkpoint"
    assert shapes(out) == shapes(ddp[1]), "ZeRO-3 gathers the whole adapter on save: the DDP tensors and shapes"


def test_resume_same_world_size_is_the_uninterrupted_run(ddp, zero3, tmp_path: Path) -> None:
    """Two ZeRO-3 processes resumed from checkpoint-1 end where the uninterrupted run ended. (Plain DDP resumes at
    world size > 1 on GPUs only: on CPU transformers maps the optimizer state to `cpu:0`, which torch.load cannot
    restore; see recipes/README.)"""
    import torch

    first, _ = zero3
    out = tmp_path / "out"
    shutil.copytree(first / "checkpoint-1", out / "checkpoint-1")
    log = train(ddp[0], out, TWO, "per_device_train_batch_size=2", ZERO3,
                f"resume_from_checkpoint={out / 'checkpoint-1'}")  # fmt: skip
    assert "past 0 epochs and 1 batches to resume" in log
    check_trained(out, log, world=2)
    want, got = tensors(first), tensors(out)
    assert want.keys() == got.keys()
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-5, atol=1e-6, msg=name)


# --- the effective-batch check, no training -------------------------------------------------------------------


def test_world_size_changing_the_batch_is_refused_in_one_line(tiny_model, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["train", RECIPE, f"model_name_or_path={tiny_model('qwen2')}", f"output_dir={out}", *TINY]
    proc = launch(args, tmp_path / "refused.log", TWO, check=False)
    text = (tmp_path / "refused.log").read_text(encoding="utf-8")
    assert proc.returncode == 2
    assert text.count("\n") == 1 and text.startswith("launch: error: effective batch 8 = "), text
    assert "--batch 8" in text and "Traceback" not in text
    assert not out.exists(), "refused before LLaMA-Factory starts"
    # an explicit override says the new batch is meant: the check passes (dry run: the command is printed)
    proc = launch(["--batch", "8", "--dry-run", *args], tmp_path / "meant.log", TWO)
    assert "launch: effective batch 8" in (tmp_path / "meant.log").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("env", "overrides", "world", "ok"),
    [
        ({}, [], 1, True),
        ({"CUDA_VISIBLE_DEVICES": "0,1,2,3"}, [], 4, False),  # LF starts torchrun over every visible GPU
        ({"CUDA_VISIBLE_DEVICES": "0,1,2,3"}, ["per_device_train_batch_size=1"], 4, True),
        ({"FORCE_TORCHRUN": "1", "NNODES": "2", "NPROC_PER_NODE": "8"}, ["per_device_train_batch_size=1"], 16, False),
        (
            {"FORCE_TORCHRUN": "1", "NPROC_PER_NODE": "2"},
            ["per_device_train_batch_size=1", "gradient_accumulation_steps=2"],
            2,
            True,
        ),
        ({"CUDA_VISIBLE_DEVICES": "0"}, ["per_device_train_batch_size=2", "gradient_accumulation_steps=2"], 1, True),
    ],
)
def test_effective_batch_table(env: dict[str, str], overrides: list[str], world: int, ok: bool) -> None:
    from medasst import launch as launcher

    recipe = REPO_ROOT / RECIPE
    env = {"CUDA_VISIBLE_DEVICES": ""} | env  # this host's GPUs never count
    assert launcher.world_size(env, launcher.read_recipe(recipe, overrides)[1]).size == world
    if ok:
        assert launcher.check(recipe, overrides, env).startswith("launch: effective batch 4 ")
    else:
        with pytest.raises(launcher.LaunchError, match="effective batch"):
            launcher.check(recipe, overrides, env)


def test_predict_recipes_pass_unchecked_and_spaces_are_refused_for_torchrun() -> None:
    from medasst import launch as launcher

    env = {"CUDA_VISIBLE_DEVICES": ""}
    assert "does not train" in launcher.check(REPO_ROOT / "recipes/medasst_qwen2_predict.yaml", [], env)
    with pytest.raises(launcher.LaunchError, match="has a space"):
        launcher.check(REPO_ROOT / RECIPE, ["default_system=a b", "per_device_train_batch_size=2"], TWO | env)


def test_zero3_offload_is_zero3_with_cpu_offload() -> None:
    """The 24 GB-card variant: ds_z3_config.json plus optimizer and parameter offload to (pinned) host memory."""
    folder = REPO_ROOT / "recipes" / "deepspeed"
    z3 = json.loads((folder / "ds_z3_config.json").read_text(encoding="utf-8"))
    offload = json.loads((folder / "ds_z3_offload_config.json").read_text(encoding="utf-8"))
    zero = offload["zero_optimization"]
    for key in ("offload_optimizer", "offload_param"):
        assert zero.pop(key) == {"device": "cpu", "pin_memory": True}
    assert offload == z3
