"""`eval.run model-card` / `dataset-card`: cards parsed back with huggingface_hub equal their inputs, no local path,
the dataset card's folder loads with `datasets`, and every bad input is one line with exit status 2."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest

from eval import report
from eval import run as eval_run
from eval.cards.common import local_paths
from eval.common import fingerprint as fpr

REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_DATA = REPO_ROOT / "demo" / "data"

LF_README = """---
library_name: peft
license: other
base_model: {base}
tags:
- llama-factory
- lora
pipeline_tag: text-generation
model-index:
- name: sft
  results: []
---

# sft

This model is a fine-tuned version of [{base}](https://huggingface.co/{base}) on the medasst_train dataset.

## Training procedure

### Training hyperparameters

The following hyperparameters were used during training:
- learning_rate: 0.0001
- train_batch_size: 4
- eval_batch_size: 8
- seed: 42
- lr_scheduler_type: cosine
- training_steps: 3

### Framework versions

- PEFT 0.18.1
- Transformers 5.5.4
"""


def fingerprinted(record: dict, verb: str) -> dict:
    fp = fpr.Fingerprint(fields={"verb": verb, "protocol": {"name": "test", "version": 1}, "n_shot": 0})
    return record | {"fingerprint": fp.to_json()}


def make_run(root: Path, system: str, skill: float, mcq: bool = True) -> Path:
    rng = random.Random(system)
    folder = root / system
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"system": system}), encoding="utf-8")
    if mcq:
        preds, benchmarks = [], {}
        for bench, n in (("cmmlu", 40), ("ceval", 10)):
            right = [rng.random() < skill for _ in range(n)]
            preds += [{"id": f"{bench}:anatomy:test:{i}", "correct": ok} for i, ok in enumerate(right)]
            benchmarks[bench] = {"accuracy": 100.0 * sum(right) / n, "n": n, "correct": sum(right)}
        overall = (benchmarks["cmmlu"]["accuracy"] + benchmarks["ceval"]["accuracy"]) / 2
        record = {"overall": overall, "benchmarks": benchmarks, "predictions": preds}
        (folder / "mcq.json").write_text(json.dumps(fingerprinted(record, "mcq")), encoding="utf-8")
    rows = [{"id": f"x-{i}", "bleu-4": 10 * skill * rng.random(), "rouge-1": 30 * skill * rng.random(),
             "rouge-2": 8 * skill * rng.random(), "rouge-l": 20 * skill * rng.random()} for i in range(12)]  # fmt: skip
    (folder / "scores_per_sample.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    means = {m: sum(r[m] for r in rows) / len(rows) for m in ("bleu-4", "rouge-1", "rouge-2", "rouge-l")}
    (folder / "scores.json").write_text(json.dumps(fingerprinted({"n": len(rows), **means}, "score")))
    return folder


def add_judges(report_dir: Path, root: Path) -> None:
    """report.json's judge sections as `report` writes them (rows per system), each judge.json by its sha256; made
    here so the card's reading does not depend on the judge's own summary format."""
    path = report_dir / "report.json"
    record = json.loads(path.read_text(encoding="utf-8"))
    pairwise = [{"system": "Qwen2-7B", "reference": "MedAsst", "win": 0.25, "tie": 0.25, "loss": 0.5}]
    safety = [{"system": "MedAsst", "safe_rate": 0.8}, {"system": "Qwen2-7B", "safe_rate": 0.6}]
    sections = {"pairwise": pairwise, "safety": safety}
    record["judge"], shas = [], []
    for rubric, rows in sections.items():
        judge = root / f"judge-{rubric}" / "judge.json"
        judge.parent.mkdir(parents=True)
        judge.write_text(json.dumps(fingerprinted({"rubric": {"name": rubric}, "dataset": "medasst_test"}, "judge")))
        record["judge"].append({"judge": str(judge), "rubric": rubric, "rows": rows})
        shas.append(fpr.file_sha256(judge))
    record["fingerprint"]["fields"]["judge_sha256"] = shas
    path.write_text(json.dumps(record), encoding="utf-8")


@pytest.fixture()
def report_dir(tmp_path: Path) -> Path:
    runs = [make_run(tmp_path / "runs", "Qwen2-7B", 0.6), make_run(tmp_path / "runs", "MedAsst", 0.7)]
    out = tmp_path / "report"
    report.run_report(report.ReportRequest(runs=tuple(map(str, runs)), output=out, resamples=20))
    add_judges(out, tmp_path)
    return out


@pytest.fixture()
def adapter(tmp_path: Path) -> Path:
    base = tmp_path / "tiny-models" / "qwen2"
    base.mkdir(parents=True)
    folder = tmp_path / "saves" / "MedAsst"
    folder.mkdir(parents=True)
    config = {"base_model_name_or_path": str(base), "peft_type": "LORA", "task_type": "CAUSAL_LM", "r": 8,
              "lora_alpha": 16, "lora_dropout": 0.05, "target_modules": ["v_proj", "q_proj"]}  # fmt: skip
    (folder / "adapter_config.json").write_text(json.dumps(config), encoding="utf-8")
    (folder / "README.md").write_text(LF_README.format(base=base), encoding="utf-8")
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": 3, "max_steps": 3, "epoch": 0.1}))
    (folder / "all_results.json").write_text(json.dumps({"train_loss": 11.5, "epoch": 0.1}))
    (folder / "training_args.bin").write_bytes(b"\x80\x05 not a pickle to be loaded")  # never opened
    return folder


@pytest.fixture()
def data_dir(tmp_path: Path) -> Path:
    return Path(shutil.copytree(DEMO_DATA, tmp_path / "data"))


def model_card(adapter: Path, report_dir: Path, data_dir: Path, *extra: str) -> int:
    argv = ["model-card", "--adapter", str(adapter), "--report", str(report_dir), "--data", str(data_dir),
            "--recipe", str(REPO_ROOT / "recipes" / "medasst_qwen2.yaml"), *extra]  # fmt: skip
    return eval_run.main(argv)


def expected_metrics(report_json: dict, system: str) -> list[float]:
    """Every number the card must carry for `system`, read from report.json itself."""
    row2 = next(r for r in report_json["table2"] if r["system"] == system)
    row3 = next(r for r in report_json["table3"] if r["system"] == system)
    values = [row2[c] for c in ("cmmlu", "ceval", "overall")] + [row3[c] for c in ("bleu-4", "rouge-1", "rouge-2",
                                                                                    "rouge-l")]  # fmt: skip
    for section in report_json.get("judge", []):
        for row in section["rows"]:
            if section["rubric"] == "pairwise" and row["reference"] == system:
                values.append(row["loss"])  # the other system's loss is our win
            if section["rubric"] == "safety" and row["system"] == system:
                values.append(row["safe_rate"])
    return values


def check_model_card(text: str, report_json: dict, system: str, forbidden: list[str]) -> None:
    """What both the unit test and the demo's end-to-end test require of a model card."""
    from huggingface_hub import ModelCard

    card = ModelCard(text)
    data = card.data
    assert data.library_name == "peft" and data.pipeline_tag == "text-generation"
    assert data.language == ["zh"] and data.base_model == "Qwen/Qwen2-7B" and data.license == "apache-2.0"
    assert "tyang816/MedChatZH" in data.datasets and "medical" in data.tags
    assert data.to_dict()["tasks"] == ["text-generation"]  # ModelScope's key beside HF's
    got = [(r.dataset_type, r.dataset_split, r.metric_value) for r in data.eval_results]
    assert [v for _, _, v in got] == expected_metrics(report_json, system)
    assert all(split for _, split, _ in got) and got[0][:2] == ("haonan-li/cmmlu", "test")
    assert got[1][:2] == ("ceval/ceval-exam", "val")
    assert f"`{report_json['fingerprint']['digest']}`" in text
    assert local_paths(text) == [], local_paths(text)
    for path in forbidden:
        assert path not in text
    for heading in ("## Results", "## Training data", "## Evaluation protocol", "## Medical disclaimer",
                    "## Limitations", "## Intended use"):  # fmt: skip
        assert heading in text


def test_model_card_from_report(adapter: Path, report_dir: Path, data_dir: Path, tmp_path: Path, capsys):
    assert model_card(adapter, report_dir, data_dir) == 0
    text = (adapter / "README.md").read_text(encoding="utf-8")
    report_json = json.loads((report_dir / "report.json").read_text(encoding="utf-8"))
    check_model_card(text, report_json, "MedAsst", [str(tmp_path), str(Path.home())])
    mcq = json.loads((tmp_path / "runs" / "MedAsst" / "mcq.json").read_text(encoding="utf-8"))
    assert f"`{mcq['fingerprint']['digest']}`" in text  # each number's own result file
    assert "wins vs Qwen2-7B (fraction, ties apart)" in text and "safety rate (fraction)" in text
    # as trained, from the Trainer's card, beside the recipe: the run's 3 steps differ from its 3 epochs
    assert "- learning_rate: 0.0001" in text and "| max_steps | not set | `3` (**differs**) |" in text
    assert "| lora_rank | `8` | `8` |" in text and "- PEFT 0.18.1" in text
    assert "medchatzh | 24 | 6 | 763629" in text  # the manifest's summary
    assert "not stated" in text  # CMtMedQA's test file on GitHub
    # written again from its own output (the Trainer's card is gone now): the same bytes
    assert model_card(adapter, report_dir, data_dir) == 0
    assert (adapter / "README.md").read_text(encoding="utf-8") == text


def test_model_card_other_base_and_chain(adapter: Path, report_dir: Path, data_dir: Path, tmp_path: Path, capsys):
    recipe = tmp_path / "dpo.yaml"
    lines = ["model_name_or_path: meta-llama/Meta-Llama-3-8B-Instruct", "stage: dpo", "finetuning_type: lora",
             "adapter_name_or_path: saves/qwen2-7b/lora/medasst", "pref_beta: 0.1"]  # fmt: skip
    recipe.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "card.md"
    argv = ["model-card", "--adapter", str(adapter), "--report", str(report_dir), "--data", str(data_dir),
            "--recipe", str(recipe), "--output", str(out)]  # fmt: skip
    assert eval_run.main(argv) == 0
    text = out.read_text(encoding="utf-8")
    assert "license: llama3" in text and "base_model: meta-llama/Meta-Llama-3-8B-Instruct" in text
    assert "the adapter of `recipes/medasst_qwen2.yaml`" in text and "this adapter (dpo" in text
    assert "--parent-adapter" in capsys.readouterr().err
    assert eval_run.main([*argv, "--parent-adapter", "someone/medasst-sft"]) == 0
    assert "[`someone/medasst-sft`](https://huggingface.co/someone/medasst-sft)" in out.read_text(encoding="utf-8")
    assert eval_run.main([*argv, "--merged"]) == 0  # the export's card: a transformers checkpoint
    assert "library_name: transformers" in out.read_text(encoding="utf-8")


def test_local_base_model_is_left_out_with_a_warning(adapter, report_dir, data_dir, tmp_path: Path, capsys):
    recipe = tmp_path / "local.yaml"
    recipe.write_text(f"model_name_or_path: {adapter.parent.parent / 'tiny-models' / 'qwen2'}\nstage: sft\n"
                      "finetuning_type: lora\n", encoding="utf-8")  # fmt: skip
    argv = ["model-card", "--adapter", str(adapter), "--report", str(report_dir), "--data", str(data_dir),
            "--recipe", str(recipe)]  # fmt: skip
    assert eval_run.main(argv) == 0
    err = capsys.readouterr().err
    assert "base_model` is left out" in err and "--base-model" in err
    text = (adapter / "README.md").read_text(encoding="utf-8")
    assert "base_model:" not in text and local_paths(text) == [] and str(tmp_path) not in text
    assert eval_run.main([*argv, "--base-model", "Qwen/Qwen2-7B"]) == 0
    assert "base_model: Qwen/Qwen2-7B" in (adapter / "README.md").read_text(encoding="utf-8")


def one_line_error(capsys, *fragments: str) -> None:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err, err


def test_model_card_bad_inputs(adapter: Path, report_dir: Path, data_dir: Path, tmp_path: Path, capsys):
    assert model_card(adapter, tmp_path / "nowhere", data_dir) == 2
    one_line_error(capsys, "--report", "no report.json")
    bare = tmp_path / "bare"
    bare.mkdir()
    assert model_card(bare, report_dir, data_dir) == 2
    one_line_error(capsys, "no adapter_config.json")
    assert model_card(adapter, report_dir, tmp_path / "no-data") == 2
    one_line_error(capsys, "--data", "folder not found")
    assert model_card(adapter, report_dir, data_dir, "--base-model", str(tmp_path)) == 2
    one_line_error(capsys, "--base-model", "not a hub id")
    assert model_card(adapter, report_dir, data_dir, "--system", "Nobody") == 2
    one_line_error(capsys, "no system 'Nobody'")
    (report_dir / "report.json").write_text("{not json", encoding="utf-8")
    assert model_card(adapter, report_dir, data_dir) == 2
    one_line_error(capsys, "not a readable report")


def test_model_card_refuses_a_report_without_table2(adapter, data_dir, tmp_path: Path, capsys):
    runs = [make_run(tmp_path / "runs", "MedAsst", 0.7, mcq=False)]
    report.run_report(report.ReportRequest(runs=tuple(map(str, runs)), output=tmp_path / "report", resamples=20))
    assert model_card(adapter, tmp_path / "report", data_dir) == 2
    one_line_error(capsys, "no Table 2")


def test_model_card_refuses_a_result_changed_after_the_report(adapter, report_dir, data_dir, tmp_path, capsys):
    mcq = tmp_path / "runs" / "MedAsst" / "mcq.json"
    mcq.write_text(mcq.read_text(encoding="utf-8").replace('"overall"', '"overall" ', 1), encoding="utf-8")
    assert model_card(adapter, report_dir, data_dir) == 2
    one_line_error(capsys, "changed after the report")


def check_dataset_card(folder: Path, cache: Path, sources: tuple[str, ...] = ()) -> None:
    """The card parses back, names no local path, and its folder loads with the manifest's counts."""
    from datasets import load_dataset
    from huggingface_hub import DatasetCard

    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    text = (folder / "README.md").read_text(encoding="utf-8")
    assert local_paths(text) == []
    card = DatasetCard(text)
    assert card.data.language == ["zh"] and "unknown" in card.data.license and "apache-2.0" in card.data.license
    assert card.data.size_categories and "text-generation" in card.data.task_categories
    assert (folder / "dataset_card.png").read_bytes()[:4] == b"\x89PNG" and "(dataset_card.png)" in text
    merged = load_dataset(str(folder), cache_dir=str(cache))
    assert {s: merged[s].num_rows for s in merged} == {s: manifest["merged"][s]["written"] for s in ("train", "test")}
    configs = {c["config_name"] for c in card.data.configs}
    assert configs == {"default", "safety", *manifest["sources"]}
    for source in sources:  # each load costs seconds: the others have the same layout
        split = load_dataset(str(folder), source, cache_dir=str(cache))
        assert {s: split[s].num_rows for s in split} == {s: manifest["sources"][source][s]["written"]
                                                         for s in ("train", "test")}  # fmt: skip
    safety = load_dataset(str(folder), "safety", cache_dir=str(cache))
    assert safety["test"].num_rows == manifest["outputs"]["medasst_safety_test.jsonl"]["records"]
    for name, skipped in manifest["sources"]["webmedqa"]["train"]["skipped"].items():
        assert f"{name}: {skipped}" in text  # skipped by reason


def test_dataset_card_loads_with_the_manifest_counts(data_dir: Path, tmp_path: Path):
    assert eval_run.main(["dataset-card", "--data", str(data_dir)]) == 0
    check_dataset_card(data_dir, tmp_path / "hf-cache", ("webmedqa",))
    first = (data_dir / "README.md").read_bytes(), (data_dir / "dataset_card.png").read_bytes()
    assert eval_run.main(["dataset-card", "--data", str(data_dir)]) == 0
    assert ((data_dir / "README.md").read_bytes(), (data_dir / "dataset_card.png").read_bytes()) == first


def test_dataset_card_bad_inputs(data_dir: Path, tmp_path: Path, capsys):
    assert eval_run.main(["dataset-card", "--data", str(tmp_path / "none")]) == 2
    one_line_error(capsys, "--data", "folder not found")
    (data_dir / "manifest.json").rename(tmp_path / "manifest.json")
    assert eval_run.main(["dataset-card", "--data", str(data_dir)]) == 2
    one_line_error(capsys, "no manifest.json")
    (tmp_path / "manifest.json").rename(data_dir / "manifest.json")
    with (data_dir / "medasst_test.jsonl").open("a", encoding="utf-8") as f:
        f.write('{"instruction": "x", "output": "y"}\n')
    assert eval_run.main(["dataset-card", "--data", str(data_dir)]) == 2
    one_line_error(capsys, "changed after manifest.json")


def test_committed_examples_parse_and_name_no_local_path():
    from huggingface_hub import DatasetCard, ModelCard

    examples = REPO_ROOT / "docs" / "examples"
    for path in sorted(examples.rglob("*.md")):
        text = path.read_text(encoding="utf-8")
        assert local_paths(text) == [], (path, local_paths(text))
        assert not any(root in text for root in ("/tmp/", "/root/", "/home/", "/work/", "C:\\")), path
    model = ModelCard.load(examples / "model-card" / "README.md")
    assert model.data.base_model == "Qwen/Qwen2-7B" and len(model.data.eval_results) == 7
    dataset = DatasetCard.load(examples / "dataset-card" / "README.md")
    assert {c["config_name"] for c in dataset.data.configs} >= {"default", "safety"}
    assert (examples / "dataset-card" / "dataset_card.png").is_file()
