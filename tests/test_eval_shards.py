"""Sharded `mcq` and `generate`: two worker processes (`--config` with `shards: 2`) merge to exactly one process's
files, byte for byte; parts from other inputs, of mixed counts or missing are refused in one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from eval import generate, mcq, pipeline, shards
from eval import run as cli

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

REPO_ROOT = Path(__file__).resolve().parent.parent
SUBJECTS = "ceval:physician"  # 49 questions: 7 batches of 8, the last one short
MCQ = {"subjects": SUBJECTS, "batch_size": 8}
GEN = {"dataset": "medasst_demo_test", "dataset_dir": str(REPO_ROOT), "backend": "hf", "max_samples": 12,
       "max_new_tokens": 6, "cutoff_len": 128, "batch_size": 4}  # fmt: skip


@pytest.fixture(scope="module")
def model(tiny_model, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Qwen2 with attention amplified: its answers then differ from question to question."""
    from medasst import tiny

    return tiny.amplify_attention(tiny_model("qwen2"), tmp_path_factory.mktemp("shard-model") / "qwen2-varied")


@pytest.fixture(scope="module")
def one_process(model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """mcq + generate of the system in this process, no shards."""
    out = tmp_path_factory.mktemp("one")
    mcq.run(mcq.McqRequest(model=str(model), output=out, **MCQ), progress=False)
    generate.run(generate.GenerateRequest(model=str(model), output=out, **GEN), progress=False)
    return out


@pytest.fixture(scope="module")
def sharded(model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same system through `--config` with `shards: 2`: two spawned workers, then the merge."""
    root = tmp_path_factory.mktemp("sharded")
    gen = {k: v for k, v in GEN.items() if k not in ("dataset", "dataset_dir")}
    config = {"output_dir": str(root), "dataset": GEN["dataset"], "dataset_dir": GEN["dataset_dir"],
              "steps": ["mcq", "generate"], "shards": 2, "mcq": MCQ, "generate": gen,
              "systems": [{"name": "tiny", "model": str(model), "template": "qwen"}]}  # fmt: skip
    (root / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    assert cli.main(["--config", str(root / "config.yaml")]) == 0
    return root / "tiny"


def test_sharded_mcq_is_one_process_byte_for_byte(one_process: Path, sharded: Path) -> None:
    parts = sorted((sharded / "shards").glob("mcq-*.json"))
    assert [p.name for p in parts] == ["mcq-0-of-2.json", "mcq-1-of-2.json"]
    cuts = [json.loads(p.read_text(encoding="utf-8"))["shard"]["batches"] for p in parts]
    assert cuts == [[0, 2, 4, 6], [1, 3, 5]], "round robin over the one-process batches"
    assert (sharded / "mcq.json").read_bytes() == (one_process / "mcq.json").read_bytes()
    result = json.loads((sharded / "mcq.json").read_text(encoding="utf-8"))
    assert len({p["prediction"] for p in result["predictions"]}) > 1, "answers that depend on the question"


def test_sharded_generate_is_one_process_byte_for_byte(one_process: Path, sharded: Path) -> None:
    name = generate.PREDICTIONS_FILE
    assert (sharded / name).read_bytes() == (one_process / name).read_bytes()
    run = json.loads((sharded / generate.RUN_FILE).read_text(encoding="utf-8"))
    assert run["complete"] and run["n"] == 12 and [s["n"] for s in run["merged_shards"]] == [8, 4]
    workers = json.loads((sharded / "run.json").read_text(encoding="utf-8"))["model_process"]
    assert len(workers["pid"]) == 2, "two worker processes"
    # done: a second pipeline run skips both steps without starting any worker
    assert generate.state(generate.GenerateRequest(model=run["fingerprint"]["recorded"]["model"], output=sharded,
                                                   **GEN)) == "current"  # fmt: skip


def test_parts_from_other_inputs_are_refused(model: Path, sharded: Path, tmp_path: Path, capsys) -> None:
    """A part made with other settings (1-shot, or 5 new tokens instead of 6) cannot be merged, in one line."""
    out = tmp_path / "out"
    shutil.copytree(sharded / "shards", out / "shards")
    foreign = mcq.McqRequest(model=str(model), output=out, shard="1/2", **MCQ)
    part = json.loads(foreign.result_path.read_text(encoding="utf-8"))
    part["fingerprint"]["fields"]["n_shot"] = 1  # what a part of a 1-shot run carries
    foreign.result_path.write_text(json.dumps(part), encoding="utf-8")
    argv = ["mcq", "--model", str(model), "--subjects", SUBJECTS, "--batch-size", "8", "--output", str(out)]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "mcq-1-of-2.json was made from other inputs (n_shot: 1 → 0)" in err
    gen_argv = ["generate", "--model", str(model), "--output", str(out), "--max-new-tokens", "5"]
    gen_argv += [f"--{k.replace('_', '-')}={v}" for k, v in GEN.items() if k != "max_new_tokens"]
    assert cli.main(gen_argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "other inputs (max_new_tokens: 6 → 5)" in err
    assert not (out / "mcq.json").exists() and not (out / generate.PREDICTIONS_FILE).exists()


def test_missing_and_mixed_parts_are_refused(model: Path, sharded: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    (out / "shards").mkdir(parents=True)
    shutil.copy(sharded / "shards" / "mcq-0-of-2.json", out / "shards")
    argv = ["mcq", "--model", str(model), "--subjects", SUBJECTS, "--batch-size", "8", "--output", str(out)]
    assert cli.main(argv) == 2
    assert "mcq shard 1/2 is missing or unfinished" in capsys.readouterr().err
    shutil.copy(sharded / "shards" / "mcq-1-of-2.json", out / "shards" / "mcq-1-of-3.json")
    assert cli.main(argv) == 2
    assert "not the one its name says" in capsys.readouterr().err, "a renamed copy of a part is refused"
    stale = json.loads((out / "shards" / "mcq-1-of-3.json").read_text(encoding="utf-8"))
    stale["shard"]["count"] = 3
    (out / "shards" / "mcq-1-of-3.json").write_text(json.dumps(stale), encoding="utf-8")
    assert cli.main(argv) == 2
    assert "shards of different counts" in capsys.readouterr().err
    (out / "shards" / "mcq-1-of-3.json").unlink()
    assert cli.main([*argv[:-2], "--batch-size", "4", "--output", str(out)]) == 2
    assert "cut at batch size 8, these inputs at 4" in capsys.readouterr().err


def test_shard_argument(model: Path, tmp_path: Path, capsys) -> None:
    assert shards.parse("1/2") == shards.Shard(1, 2) and shards.parse(None) is None
    for bad in ("2/2", "1", "-1/2", "a/b"):
        argv = ["mcq", "--model", str(model), "--output", str(tmp_path), "--shard", bad]
        assert cli.main(argv) == 2
        assert capsys.readouterr().err.count("\n") == 1
    with pytest.raises(pipeline.ConfigError, match="shards must be an integer"):
        (tmp_path / "c.yaml").write_text("output_dir: x\nshards: 0\nsystems: [{name: a, model: m, template: qwen}]\n")
        pipeline.load_config(tmp_path / "c.yaml")
