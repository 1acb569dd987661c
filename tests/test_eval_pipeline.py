"""`python -m eval.run --config`: systems end to end on tiny models, skipping finished work; paper.yaml ↔ recipes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from eval import pipeline
from eval import run as eval_run
from medasst.facts import REPO_ROOT

RECORDS = [
    {"instruction": "头痛三天了怎么办？", "input": "", "output": "建议休息，必要时就医。", "history": [],
     "source": "webmedqa", "id": "w-1"},
    {"instruction": "谢谢医生。", "input": "", "output": "不客气，祝您早日康复！",
     "history": [["医生，我最近总是失眠。", "您好，失眠可能与精神紧张有关。"]], "source": "cmtmedqa", "id": "c-1"},
    {"instruction": "血常规白细胞偏高", "input": "", "output": "提示感染可能。", "history": [], "source": "huatuo26m",
     "id": "h-1"},
    {"instruction": "孩子发烧39度", "input": "", "output": "先物理降温。", "history": [], "source": "medchatzh",
     "id": "m-1"},
]  # fmt: skip


def write_config(tmp_path: Path, tiny_model, steps: list[str]) -> Path:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    (data / "t.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in RECORDS), "utf-8")
    columns = {"prompt": "instruction", "query": "input", "response": "output", "history": "history"}
    info = {"tiny_test": {"file_name": "t.jsonl", "formatting": "alpaca", "columns": columns}}
    (data / "dataset_info.json").write_text(json.dumps(info), "utf-8")
    config = {
        "output_dir": str(tmp_path / "runs"),
        "dataset": "tiny_test",
        "dataset_dir": str(data),
        "steps": steps,
        "mcq": {"subjects": "ceval:clinical_medicine", "batch_size": 8},
        "generate": {"backend": "hf", "max_new_tokens": 3, "batch_size": 2, "cutoff_len": 256},
        "report": {"resamples": 200},
        "systems": [
            {"name": "LlaMa-3-8B", "model": str(tiny_model("llama3")), "template": "llama3"},
            {"name": "Qwen2-7B", "model": str(tiny_model("qwen2", seed=1)), "template": "qwen",
             "default_system": "You are a helpful assistant."},
            {"name": "MedAsst", "model": str(tiny_model("qwen2")), "template": "qwen",
             "default_system": "You are a helpful assistant."},
        ],
    }  # fmt: skip
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), "utf-8")
    return path


PROBE = r"""
import json, re, resource, sys
from eval import run
code = run.main(["--config", sys.argv[1]])
# VmHWM: this process's own peak (ru_maxrss of self would carry the forking pytest's peak across exec)
peak_kib = int(re.search(r"VmHWM:\s+(\d+)", open("/proc/self/status").read()).group(1))
print("PROBE " + json.dumps({
    "code": code,
    "torch_imported": "torch" in sys.modules,
    "self_max_rss_mib": peak_kib // 1024,
    "children_max_rss_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024,
}))
"""


@pytest.mark.slow
def test_pipeline_end_to_end_then_skips(tiny_model, tmp_path: Path, monkeypatch, capsys):
    import subprocess
    import sys

    config = write_config(tmp_path, tiny_model, ["mcq", "generate", "score", "report"])
    # as a user runs it, in its own process, so its memory can be measured
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, str(config)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=900
    )
    probe_line = [line for line in proc.stdout.splitlines() if line.startswith("PROBE ")]
    assert probe_line, proc.stdout[-3000:] + proc.stderr[-3000:]
    probe = json.loads(probe_line[-1][len("PROBE ") :])
    assert probe["code"] == 0, proc.stderr[-3000:]
    runs = tmp_path / "runs"
    pids = set()
    for system in ("llama-3-8b", "qwen2-7b", "medasst"):
        folder = runs / system
        info = json.loads((folder / "run.json").read_text())
        assert info["system"] in {"LlaMa-3-8B", "Qwen2-7B", "MedAsst"}
        # each system's model was loaded in a child of its own, which returned its memory when it exited
        assert info["model_process"]["steps"] == ["mcq", "generate"] and info["model_process"]["exitcode"] == 0
        pids.add(info["model_process"]["pid"])
        for name in ("mcq.json", "generated_predictions.jsonl", "scores.json", "scores_per_sample.jsonl"):
            assert (folder / name).is_file(), (system, name)
    assert len(pids) == 3 and proc.returncode == 0
    # the parent never held a model: no torch imported, and its peak memory is well below a model child's
    assert not probe["torch_imported"]
    assert probe["self_max_rss_mib"] < probe["children_max_rss_mib"] / 2, probe
    medasst_prompt = json.loads((runs / "medasst" / "generated_predictions.jsonl").read_text().splitlines()[0])
    assert "You are a helpful assistant." in medasst_prompt["prompt"]
    # the recipes' system prompt reaches mcq too
    assert "You are a helpful assistant." in (runs / "medasst" / "mcq.json").read_text(encoding="utf-8")
    report = runs / "report"
    table3 = list(csv.DictReader((report / "table3.csv").open(encoding="utf-8")))
    assert [r["system"] for r in table3] == ["LlaMa-3-8B", "Qwen2-7B", "MedAsst"]
    assert table3[0]["bleu-4_p"] != "" and table3[2]["bleu-4_p"] == ""
    assert {r["backend"] for r in table3} == {"hf"}
    table2 = list(csv.DictReader((report / "table2.csv").open(encoding="utf-8")))
    assert [r["system"] for r in table2] == ["LlaMa-3-8B", "Qwen2-7B", "MedAsst"]
    assert table2[0]["n"] == "22"
    assert (report / "figure4.png").stat().st_size > 10_000

    # a rerun has nothing left to compute: no model process is started, nothing is rescored
    def no_load(*args, **kwargs):
        raise AssertionError("a finished system was recomputed")

    monkeypatch.setattr(pipeline, "run_model_steps", no_load)
    monkeypatch.setattr("eval.score.score_pairs", no_load)
    monkeypatch.setattr("eval.tables.table2.build_table", no_load)
    monkeypatch.setattr("eval.tables.table3.build_table", no_load)
    before = (runs / "medasst" / "scores.json").read_bytes()
    assert eval_run.main(["--config", str(config)]) == 0
    assert (runs / "medasst" / "scores.json").read_bytes() == before

    # another model, or another subject list, under the same output_dir: refused before anything runs
    raw = yaml.safe_load(config.read_text(encoding="utf-8"))
    raw["systems"][2]["model"] = str(tiny_model("qwen2", seed=1))
    config.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    capsys.readouterr()
    assert eval_run.main(["--config", str(config)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("pipeline: nothing was run: [MedAsst]"), err
    assert "model.files" in err[0] and "--recompute" in err[0]
    raw["systems"][2]["model"] = str(tiny_model("qwen2"))
    raw["mcq"]["subjects"] = "ceval:physician"
    config.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    assert eval_run.main(["--config", str(config)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == "pipeline: nothing was run:" and len(err) == 4  # one line per system
    assert all("subjects" in line for line in err[1:])

    # --recompute: recomputed (here one system, mcq only)
    monkeypatch.undo()
    raw["systems"], raw["steps"] = raw["systems"][2:], ["mcq"]
    config.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    assert eval_run.main(["--config", str(config), "--recompute"]) == 0
    redone = json.loads((runs / "medasst" / "mcq.json").read_text(encoding="utf-8"))
    assert redone["fingerprint"]["fields"]["subjects"] == ["ceval:physician"]


@pytest.mark.slow
def test_a_system_whose_model_process_dies_fails_alone(tiny_model, tmp_path: Path, capsys):
    import shutil

    config = write_config(tmp_path, tiny_model, ["mcq", "report"])
    # a model folder that passes every check but whose weights are cut short: loading fails in its child
    broken = tmp_path / "broken-llama3"
    shutil.copytree(tiny_model("llama3"), broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    text = config.read_text(encoding="utf-8").replace(str(tiny_model("llama3")), str(broken))
    # and a hub id that cannot be had offline (HF_HUB_OFFLINE=1 here): that system fails too, the others run
    text = text.replace(str(tiny_model("qwen2", seed=1)), "nobody/not-cached")
    config.write_text(text, encoding="utf-8")
    capsys.readouterr()
    assert eval_run.main(["--config", str(config)]) == 1
    assert (tmp_path / "runs" / "medasst" / "mcq.json").is_file(), "the other systems still ran"
    assert not (tmp_path / "runs" / "llama-3-8b" / "mcq.json").exists()
    assert not (tmp_path / "runs" / "qwen2-7b" / "mcq.json").exists()
    err = capsys.readouterr().err
    assert "[Qwen2-7B] failed: systems[1] (Qwen2-7B) mcq: --model nobody/not-cached: no local folder" in err
    summary = [line for line in err.splitlines() if line.startswith("pipeline: failed steps:")]
    assert summary and "LlaMa-3-8B" in summary[0] and "Qwen2-7B" in summary[0]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- 1\n", "expected a mapping at the top level"),
        ("output_dir: x\nsystems: []\n", "systems must be a non-empty list"),
        ("output_dir: x\nbogus: 1\nsystems: [{name: a, model: m, template: qwen}]\n", "unknown keys ['bogus']"),
        ("output_dir: x\nsystems: [{name: a, template: qwen}]\n", "systems[0] needs 'model'"),
        ("output_dir: x\nsteps: [train]\nsystems: [{name: a, model: m, template: qwen}]\n", "unknown steps"),
        ("systems: [{name: a, model: m, template: qwen}]\n", "output_dir is required"),
        ("output_dir: x\nsystems: [{name: a, model: m, template: qwen}, {name: a, model: n, template: qwen}]\n",
         "must be unique"),
    ],
)  # fmt: skip
def test_config_errors(tmp_path: Path, capsys, text: str, message: str):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    assert eval_run.main(["--config", str(path)]) == 2
    assert message in capsys.readouterr().err
    assert eval_run.main(["--config", str(tmp_path / "missing.yaml")]) == 2


def test_yaml_is_loaded_safely(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text("output_dir: !!python/object/apply:os.system ['touch pwned']\nsystems: []\n")
    with pytest.raises(pipeline.ConfigError, match="line 1, column 13: not valid YAML"):
        pipeline.load_config(path)
    assert not Path("pwned").exists()


def test_paper_config_matches_the_recipes():
    config = pipeline.load_config(REPO_ROOT / "eval" / "configs" / "paper.yaml")
    assert [s.name for s in config.systems] == ["LlaMa-3-8B", "Gemma-7B", "Mistral-7B", "Qwen2-7B", "MedAsst"]
    assert config.steps == pipeline.STEPS and config.dataset == "medasst_test"
    # generated as the paper did, through the HF path; vLLM only when asked for
    assert config.generate["backend"] == "hf"
    recipes = {}
    for path in sorted((REPO_ROOT / "recipes").glob("*.yaml")):
        recipe = yaml.safe_load(path.read_text(encoding="utf-8"))
        if recipe.get("do_train"):
            recipes[recipe["output_dir"]] = recipe
    for system in config.systems:
        if system.adapter is None:  # the untouched base model
            assert (system.name, system.model, system.template) == ("Qwen2-7B", "Qwen/Qwen2-7B", "qwen")
            continue
        recipe = recipes[system.adapter]
        assert system.model == recipe["model_name_or_path"]
        assert system.template == recipe["template"]
        assert system.default_system == recipe.get("default_system")


def test_the_pipeline_calls_the_verbs_not_the_cli():
    """No import circle: the CLI and --config are two thin layers over the verbs' typed functions."""
    import ast

    def imports(path: Path) -> set[str]:
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
        return found

    eval_dir = REPO_ROOT / "eval"
    assert "eval.run" not in imports(eval_dir / "pipeline.py")
    for path in sorted(eval_dir.rglob("*.py")):
        if path.name not in ("run.py", "pipeline.py"):
            assert not {"eval.run", "eval.pipeline"} & imports(path), path
    # every verb takes a typed request, and --config builds the same one
    from eval import generate, mcq, report, score

    for verb in (mcq, generate, score, report):
        assert verb.REQUEST.__dataclass_params__.frozen
