"""Every family on its real tokenizer: a model taught through LLaMA-Factory is read right by `eval.run`.

Per family (Qwen2, Llama-3-8B-Instruct and Mistral-7B-v0.1 on their real tokenizers; Gemma on its stand-in):
its real training recipe, run by `llamafactory-cli` with `key=value` overrides only, teaches the tiny model to
answer every exam prompt with "C". Then, on the base model + that adapter, as users evaluate:

- `eval.run mcq` reads C on (nearly) every question it was not trained on;
- `eval.run generate` writes a row for every record, and each answer is "C" alone: generation stopped at the
  template's stop token instead of running to max_new_tokens.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from lfcli import FAMILIES as RECIPES
from lfcli import LETTER

from eval import run as cli
from eval.data.benchmarks import EVAL_SPLIT, BenchmarkSource, resolve_subjects
from medasst import tiny

pytestmark = pytest.mark.slow

# questions the taught model never saw: the paper's C-Eval subjects and one CMMLU subject
HELD_OUT = "ceval:clinical_medicine,ceval:physician,ceval:basic_medicine,cmmlu:anatomy"
MIN_SHARE = 0.95


@pytest.mark.parametrize("family", list(RECIPES))
def test_taught_letter_is_read_by_mcq_and_generate(family: str, taught, letter_data: Path, tmp_path: Path):
    model, adapter = taught(family)
    template = tiny.FAMILIES[family].template
    common = ["--model", str(model), "--adapter", str(adapter), "--template", template]

    assert cli.main(["mcq", *common, "--subjects", HELD_OUT, "--output", str(tmp_path / "mcq")]) == 0
    result = json.loads((tmp_path / "mcq" / "mcq.json").read_text(encoding="utf-8"))
    picks = Counter(p["prediction"] for p in result["predictions"])
    source = BenchmarkSource()
    held_out = sum(
        len(source.load(s.benchmark, s.subject, EVAL_SPLIT[s.benchmark])[0]) for s in resolve_subjects(HELD_OUT, source)
    )
    assert sum(picks.values()) == held_out == 238  # 22 + 49 + 19 C-Eval val, 148 CMMLU anatomy test
    assert picks[LETTER] / held_out >= MIN_SHARE, picks
    protocol = result["protocol"]
    assert protocol["adapter"] == str(adapter)
    # the letter's token as the template writes the answer: "C", or SentencePiece's "▁C" after Mistral's [/INST]
    assert protocol["choice_tokens"][LETTER].removeprefix("▁") == LETTER
    state = json.loads((adapter / "trainer_state.json").read_text(encoding="utf-8"))
    assert state["global_step"] == 40

    out = tmp_path / "gen"
    argv = ["generate", *common, "--dataset", "letter_test", "--dataset-dir", str(letter_data), "--backend", "hf"]
    assert cli.main([*argv, "--max-new-tokens", "12", "--output", str(out)]) == 0
    rows = [json.loads(line) for line in (out / "generated_predictions.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in rows] == [f"held-out-{i}" for i in range(12)], "a row for every record, in order"
    answers = Counter(r["predict"] for r in rows)
    assert answers[LETTER] >= 11, answers  # "C" alone: stopped at the stop token, not after 12 tokens
