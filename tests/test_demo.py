"""The newcomer's demo: every stage on CPU from shipped data, every artifact where the README says."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path: Path, tiny_model_root: Path):
    out = tmp_path / "demo"
    env = dict(os.environ, MEDASST_CACHE=str(tmp_path / "cache"))
    proc = subprocess.run(
        [sys.executable, "-m", "medasst.demo", "--out", str(out), "--steps", "3", "--max-new-tokens", "8"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    stdout = proc.stdout
    assert "tiny random model" in stdout
    # Llama-3 and Mistral run on their real tokenizers; Gemma's stand-in says what it is
    assert "the real Llama-3-8B-Instruct tokenizer" in stdout and "the real Mistral-7B-v0.1 tokenizer" in stdout
    assert "the real Qwen2 tokenizer" in stdout and "a stand-in: Qwen2's vocabulary + Gemma's control tokens" in stdout
    assert "Figure:" in stdout

    # the models were built into the user cache named by MEDASST_CACHE
    for family in ("qwen2", "llama3", "gemma", "mistral"):
        assert list((tmp_path / "cache" / "tiny-models").glob(f"{family}-*/model.safetensors")), family

    manifest = json.loads((out / "data" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest
    for split in ("train", "test"):
        lines = (out / "data" / f"medasst_{split}.jsonl").read_text(encoding="utf-8").splitlines()
        assert lines and all(json.loads(line)["output"] for line in lines)

    # every fine-tuned system trained through its real recipe; the untouched Qwen2 has no adapter
    adapters = sorted(p.parent.relative_to(out / "saves").as_posix() for p in out.glob("saves/**/adapter_config.json"))
    assert adapters == [
        "gemma/Gemma-7B/lora/sft",
        "llama3/LlaMa-3-8B/lora/sft",
        "mistral/Mistral-7B/lora/sft",
        "qwen2/MedAsst/lora/sft",
    ]
    assert all((out / "saves" / a / "adapter_model.safetensors").is_file() for a in adapters)

    systems = ("LlaMa-3-8B", "Gemma-7B", "Mistral-7B", "Qwen2-7B", "MedAsst")
    for system in systems:
        run = out / "runs" / system
        mcq = json.loads((run / "mcq.json").read_text(encoding="utf-8"))
        assert mcq["benchmarks"]["cmmlu"]["n"] == 1325 and mcq["benchmarks"]["ceval"]["n"] == 90
        assert 0.0 <= mcq["overall"] <= 100.0
        predictions = (run / "generated_predictions.jsonl").read_text(encoding="utf-8").splitlines()
        assert len(predictions) == len((out / "data" / "medasst_test.jsonl").read_text().splitlines())
        assert {"prompt", "predict", "label"} <= set(json.loads(predictions[0]))
        scores = json.loads((run / "scores.json").read_text(encoding="utf-8"))
        for metric in ("bleu-4", "rouge-1", "rouge-2", "rouge-l"):
            assert metric in scores
        assert json.loads((run / "run.json").read_text(encoding="utf-8"))["system"] == system

    report = out / "runs" / "report"
    pngs = list(report.glob("*.png"))
    assert pngs and all(p.stat().st_size > 10_000 for p in pngs)
    tables = list(report.glob("*.md")) + list(report.glob("*.csv"))
    text = "\n".join(p.read_text(encoding="utf-8") for p in tables)
    assert all(system in text for system in systems)
    assert "89.72" in text  # the paper's overall for MedAsst sits beside ours
    table2 = (report / "table2.md").read_text(encoding="utf-8").splitlines()
    rows = [line.split("|")[1].strip() for line in table2[2:] if line.startswith("|")]
    assert rows == list(systems)  # the paper's row order
    assert "protocol" not in table2[0] and "questions" not in table2[0]  # one protocol, the paper's 1,415
    # Table 3 names each row's backend and how many test prompts the row's tokenizer cut at cutoff_len 512
    import csv

    table3 = {row["system"]: row for row in csv.DictReader((report / "table3.csv").open(encoding="utf-8"))}
    assert all(row["backend"] in {"hf", "vllm"} for row in table3.values())
    assert table3["Mistral-7B"]["cut at cutoff_len"].startswith("20 prompts")  # SentencePiece: ~1 token per char
    assert table3["MedAsst"]["cut at cutoff_len"].startswith("3 prompts")

    # the Hub cards, from this run's own files: MedAsst's model card carries every number of report.json and the
    # recipe's hub base model (the run trained on a local tiny model), and names no path of this machine; the
    # dataset card's folder loads with `datasets` at the manifest's counts
    from test_cards import check_dataset_card, check_model_card

    card = (out / "saves" / "qwen2" / "MedAsst" / "lora" / "sft" / "README.md").read_text(encoding="utf-8")
    report_json = json.loads((report / "report.json").read_text(encoding="utf-8"))
    forbidden = [str(out), str(tmp_path), str(REPO_ROOT), str(Path.home()), str(tiny_model_root)]
    check_model_card(card, report_json, "MedAsst", forbidden)
    assert "tiny random models" in card  # the demo's notice travels with its numbers
    check_dataset_card(out / "data", tmp_path / "hf-cache")
