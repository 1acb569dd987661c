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
from test_recipes_e2e import CPU, llamafactory
from test_recipes_e2e import FAMILIES as RECIPES

from eval import run as cli
from eval.mcq_data import BenchmarkSource, display_name, resolve_subjects
from eval.mcq_score import build_messages
from medasst import tiny

pytestmark = pytest.mark.slow

LETTER = "C"
# questions the taught model never saw: the paper's C-Eval subjects and one CMMLU subject
HELD_OUT = "ceval:clinical_medicine,ceval:physician,ceval:basic_medicine,cmmlu:anatomy"
TRAIN_SUBJECTS = "cmmlu:genetics,cmmlu:nutrition,cmmlu:virology"  # medical, but not among the paper's subjects
TRAIN_RECORDS = 96
MIN_SHARE = 0.95


def exam_prompts(spec: str, limit: int | None = None) -> list[str]:
    """The user turn `mcq` sends for each question of `spec` (LF's Chinese exam prompt, 0-shot)."""
    source = BenchmarkSource()
    texts: list[str] = []
    for subject in resolve_subjects(spec, source):
        questions, _ = source.load(
            subject.benchmark, subject.subject, "test" if subject.benchmark == "cmmlu" else "val"
        )
        name = display_name(subject.benchmark, subject.subject)
        texts += [build_messages(q, [], name)[0]["content"] for q in questions]
    return texts[:limit] if limit else texts


@pytest.fixture(scope="session")
def letter_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dataset dir with `letter_train` (exam prompts → "C") and `letter_test` (held-out exam prompts)."""
    root = tmp_path_factory.mktemp("letter-data")
    train = [{"instruction": text, "input": "", "output": LETTER} for text in exam_prompts(TRAIN_SUBJECTS)]
    train = train[:: max(1, len(train) // TRAIN_RECORDS)][:TRAIN_RECORDS]
    test = [
        {"instruction": text, "input": "", "output": LETTER, "id": f"held-out-{i}"}
        for i, text in enumerate(exam_prompts("ceval:physician", 12))
    ]
    for name, rows in (("letter_train", train), ("letter_test", test)):
        (root / f"{name}.jsonl").write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
        )
    columns = {"prompt": "instruction", "query": "input", "response": "output"}
    info = {
        name: {"file_name": f"{name}.jsonl", "formatting": "alpaca", "columns": columns}
        for name in ("letter_train", "letter_test")
    }
    (root / "dataset_info.json").write_text(json.dumps(info, indent=1), encoding="utf-8")
    return root


@pytest.fixture(scope="session")
def taught(tiny_model, letter_data: Path, tmp_path_factory: pytest.TempPathFactory):
    """Factory: family → (base model, adapter taught to answer "C"), trained once per session by the real recipe."""
    done: dict[str, tuple[Path, Path]] = {}

    def get(family: str) -> tuple[Path, Path]:
        if family not in done:
            model = tiny_model(family)
            out = tmp_path_factory.mktemp(f"{family}-letter")
            adapter = out / "adapter"
            llamafactory(
                "train",
                RECIPES[family][0],
                [
                    f"model_name_or_path={model}",
                    "dataset=letter_train",
                    f"dataset_dir={letter_data}",
                    f"output_dir={adapter}",
                    "max_steps=40",
                    "learning_rate=0.01",
                    "warmup_steps=0",
                    "lora_dropout=0",
                    "save_strategy='no'",
                    *CPU,
                ],
                out / "train.log",
            )
            done[family] = (model, adapter)
        return done[family]

    return get


@pytest.mark.parametrize("family", list(RECIPES))
def test_taught_letter_is_read_by_mcq_and_generate(family: str, taught, letter_data: Path, tmp_path: Path, capsys):
    model, adapter = taught(family)
    template = tiny.FAMILIES[family].template
    common = ["--model", str(model), "--adapter", str(adapter), "--template", template]

    assert cli.main(["mcq", *common, "--subjects", HELD_OUT, "--output", str(tmp_path / "mcq")]) == 0
    result = json.loads((tmp_path / "mcq" / "mcq.json").read_text(encoding="utf-8"))
    picks = Counter(p["prediction"] for p in result["predictions"])
    assert sum(picks.values()) == 49 + 30 + 5 + 135 or sum(picks.values()) > 150
    assert picks[LETTER] / sum(picks.values()) >= MIN_SHARE, picks
    protocol = result["protocol"]
    assert protocol["adapter"] == str(adapter)
    letter_id = protocol["choice_token_ids"][LETTER]
    trained_tokens = json.loads((adapter / "trainer_state.json").read_text(encoding="utf-8"))
    assert trained_tokens["global_step"] == 40

    out = tmp_path / "gen"
    argv = ["generate", *common, "--dataset", "letter_test", "--dataset-dir", str(letter_data), "--backend", "hf"]
    assert cli.main([*argv, "--max-new-tokens", "12", "--output", str(out)]) == 0
    rows = [json.loads(line) for line in (out / "generated_predictions.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in rows] == [f"held-out-{i}" for i in range(12)], "a row for every record, in order"
    answers = Counter(r["predict"] for r in rows)
    assert answers[LETTER] >= 11, answers  # "C" alone: stopped at the stop token, not after 12 tokens
    assert letter_id is not None
    capsys.readouterr()
