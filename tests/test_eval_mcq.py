"""`python -m eval.run mcq` end to end on tiny local models: counts, scoring, determinism, few-shot, errors."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from eval import mcq
from eval import run as cli
from eval.data.benchmarks import PAPER, PAPER_COUNTS, BenchmarkSource, resolve_subjects
from eval.mcq import RESULT_FILE


def run(model: str, output, progress: bool = True, **options) -> dict:
    """The typed verb, as the CLI and --config call it."""
    return mcq.run(mcq.McqRequest(model=model, output=output, **options), progress=progress)


PAPER_CEVAL = ",".join(f"ceval:{s}" for s in PAPER["ceval"])  # the 90 C-Eval questions

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


def varied_model(base: Path, out: Path) -> Path:
    """The tiny model with attention output amplified: its answers then depend on the question."""
    from medasst import tiny

    return tiny.amplify_attention(base, out)


def letter_model(base: Path, out: Path, letter: str) -> Path:
    """A tiny Qwen2 whose next token after any prompt is `letter` among A-E.

    The last layer's value projection becomes a large constant bias (and its MLP is silenced), so every position's
    final hidden state is the same vector h; the (tied) embedding rows of A-D are then set to 0 except `letter`'s,
    which points along h, so that letter's logit is |h| x 10 and the others 0.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base)
    last = model.model.layers[-1]
    generator = torch.Generator().manual_seed(0)
    captured: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        last.self_attn.v_proj.weight.zero_()
        last.self_attn.v_proj.bias.copy_(torch.randn(last.self_attn.v_proj.bias.shape, generator=generator) * 1000)
        last.mlp.down_proj.weight.zero_()

        def keep(_module, _inputs, output) -> None:  # returning a value would replace the norm's output
            captured["h"] = output[0, -1].clone()

        hook = model.model.norm.register_forward_hook(keep)
        model(input_ids=tokenizer("以下是中国关于解剖学考试的单项选择题", return_tensors="pt").input_ids)
        hook.remove()
        h = captured["h"]
        rows = model.get_output_embeddings().weight
        for ch in "ABCDE":  # E too: XMedBench's five-option questions
            rows[tokenizer.encode(ch, add_special_tokens=False)[-1]] = h / h.norm() * 10 if ch == letter else 0.0
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def qwen_varied(tiny_model, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return varied_model(tiny_model("qwen2"), tmp_path_factory.mktemp("mcq-models") / "qwen2-varied")


@pytest.fixture(scope="module")
def paper_run(qwen_varied: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("mcq-paper")
    assert cli.main(["mcq", "--model", str(qwen_varied), "--batch-size", "16", "--output", str(out)]) == 0
    return json.loads((out / RESULT_FILE).read_text(encoding="utf-8"))


def test_paper_run_counts_and_summary(paper_run: dict):
    assert {b: v["n"] for b, v in paper_run["benchmarks"].items()} == PAPER_COUNTS
    assert len(paper_run["predictions"]) == 1415
    assert sum(s["n"] for s in paper_run["subjects"].values()) == 1415
    assert paper_run["subjects"]["cmmlu:professional_medicine"]["n"] == 376
    assert paper_run["subjects"]["ceval:physician"]["n"] == 49
    for key, subject in paper_run["subjects"].items():
        preds = [p for p in paper_run["predictions"] if p["id"].startswith(key + ":")]
        assert subject["correct"] == sum(p["correct"] for p in preds)
        assert subject["accuracy"] == pytest.approx(100 * subject["correct"] / subject["n"])
    cmmlu, ceval = paper_run["benchmarks"]["cmmlu"], paper_run["benchmarks"]["ceval"]
    assert paper_run["overall"] == pytest.approx((cmmlu["accuracy"] + ceval["accuracy"]) / 2)
    assert all(p["prediction"] in "ABCD" and len(p["probs"]) == 4 for p in paper_run["predictions"])
    assert all(p["correct"] == (p["prediction"] == p["answer"]) for p in paper_run["predictions"])
    assert len(Counter(p["prediction"] for p in paper_run["predictions"])) > 1  # the model is not a constant


def test_protocol_records_prompt_template_and_data(paper_run: dict):
    protocol = paper_run["protocol"]
    assert protocol["template"] == "qwen" and protocol["adapter"] is None and protocol["n_shot"] == 0
    assert protocol["prompt"]["system"] == "以下是中国关于{subject}考试的单项选择题，请选出其中的正确答案。\n\n"
    assert protocol["prompt"]["choice"] == "\n{choice}. {content}" and protocol["prompt"]["answer"] == "\n答案："
    example = protocol["prompt"]["example"]
    assert example.startswith("<|im_start|>system\n")
    assert "<|im_start|>user\n以下是中国关于解剖学考试的单项选择题，请选出其中的正确答案。\n\n" in example
    assert "\nA. " in example and example.endswith("\n答案：<|im_end|>\n<|im_start|>assistant\n")
    assert list(protocol["choice_token_ids"]) == ["A", "B", "C", "D"]
    assert protocol["eval_split"] == {"cmmlu": "test", "ceval": "val"}
    assert protocol["files"]["ceval:physician:val"]["file"] == "C-Eval/val/physician_val.csv"
    assert protocol["infer_args"]["trust_remote_code"] is False


def test_deterministic_across_runs(paper_run: dict, qwen_varied: Path, tmp_path: Path):
    again = run(str(qwen_varied), tmp_path, batch_size=16, progress=False)
    assert json.loads((tmp_path / RESULT_FILE).read_text(encoding="utf-8")) == again
    assert again["predictions"] == paper_run["predictions"]
    assert again["overall"] == paper_run["overall"]


def test_batching_matches_one_question_at_a_time(paper_run: dict, qwen_varied: Path, tmp_path: Path):
    """Left padding + position ids must not change answers: batch size 1 (no padding) is the reference."""
    single = run(str(qwen_varied), tmp_path, subjects=PAPER_CEVAL, batch_size=1, progress=False)
    batched = {p["id"]: p for p in paper_run["predictions"] if p["id"].startswith("ceval:")}
    assert len(single["predictions"]) == 90
    for p in single["predictions"]:
        assert p["prediction"] == batched[p["id"]]["prediction"]
        assert p["probs"] == pytest.approx(batched[p["id"]]["probs"], abs=1e-4)


def test_letter_model_scores_the_share_of_that_letter(tiny_model, tmp_path: Path):
    model = letter_model(tiny_model("qwen2"), tmp_path / "always-c", "C")
    result = run(str(model), tmp_path / "out", batch_size=32, progress=False)
    assert {p["prediction"] for p in result["predictions"]} == {"C"}
    source = BenchmarkSource()
    for subject in resolve_subjects("paper", source):
        questions, _ = source.load(
            subject.benchmark, subject.subject, "test" if subject.benchmark == "cmmlu" else "val"
        )
        share = sum(q.answer == "C" for q in questions)
        assert result["subjects"][subject.key]["correct"] == share
        assert result["subjects"][subject.key]["accuracy"] == pytest.approx(100 * share / len(questions))
    answers = Counter(p["answer"] for p in result["predictions"] if p["id"].startswith("cmmlu:"))
    assert result["benchmarks"]["cmmlu"]["correct"] == answers["C"]
    assert result["benchmarks"]["cmmlu"]["accuracy"] == pytest.approx(100 * answers["C"] / 1325)


def test_few_shot_from_dev_with_fixed_seed(qwen_varied: Path, tmp_path: Path):
    spec = "ceval:clinical_medicine,cmmlu:anatomy"
    first = run(str(qwen_varied), tmp_path / "a", subjects=spec, n_shot=2, progress=False)
    second = run(str(qwen_varied), tmp_path / "b", subjects=spec, n_shot=2, progress=False)
    other_seed = run(str(qwen_varied), tmp_path / "c", subjects=spec, n_shot=2, seed=7, progress=False)
    assert first["predictions"] == second["predictions"]
    shots = [tuple(p["shots"]) for p in first["predictions"]]
    assert all(len(s) == 2 and len(set(s)) == 2 and set(s) <= set(range(5)) for s in shots)
    assert len(set(shots)) > 1  # re-drawn per question, as LLaMA-Factory's Evaluator did
    assert shots != [tuple(p["shots"]) for p in other_seed["predictions"]]
    protocol = first["protocol"]
    assert protocol["n_shot"] == 2 and protocol["shot_seed"] == 42
    assert protocol["shot_split"] == {"cmmlu": "dev", "ceval": "dev"}
    assert "cmmlu:anatomy:dev" in protocol["files"]
    example = protocol["prompt"]["example"]
    # Shots are earlier chat turns: system, then 3 user turns, the first two answered by the assistant.
    assert example.count("<|im_start|>user\n") == 3
    assert example.count("\n答案：<|im_end|>\n<|im_start|>assistant\n") == 3
    assert example.count("以下是中国关于解剖学考试") == 1
    for p in first["predictions"]:
        assert p["prompt_tokens"] > 60


def test_adapter_is_applied_and_recorded(qwen_varied: Path, tmp_path: Path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    net = AutoModelForCausalLM.from_pretrained(qwen_varied)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(net, config).save_pretrained(tmp_path / "adapter")
    assert (tmp_path / "adapter/adapter_model.safetensors").is_file()
    base = run(str(qwen_varied), tmp_path / "base", subjects=PAPER_CEVAL, progress=False)
    tuned = run(
        str(qwen_varied), tmp_path / "out", adapter=str(tmp_path / "adapter"), subjects=PAPER_CEVAL, progress=False
    )
    assert tuned["protocol"]["adapter"] == str(tmp_path / "adapter")
    assert tuned["protocol"]["infer_args"]["adapter_name_or_path"] == str(tmp_path / "adapter")
    assert tuned["benchmarks"]["ceval"]["n"] == 90
    assert [p["probs"] for p in tuned["predictions"]] != [p["probs"] for p in base["predictions"]]


def test_other_family_uses_its_template(tiny_model, tmp_path: Path):
    result = run(str(tiny_model("gemma")), tmp_path, template="gemma", subjects="ceval:physician", progress=False)
    assert result["benchmarks"]["ceval"]["n"] == 49
    assert result["protocol"]["prompt"]["example"].startswith("<bos><start_of_turn>user\n以下是中国关于医师资格考试")


def _cli_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert cli.main(argv) == 2
    return capsys.readouterr().err


def test_error_missing_adapter(tiny_model, tmp_path: Path, capsys):
    err = _cli_error(
        ["mcq", "--model", str(tiny_model("qwen2")), "--adapter", str(tmp_path / "nope"), "--output", str(tmp_path)],
        capsys,
    )
    assert "adapter folder not found" in err and str(tmp_path / "nope") in err
    (tmp_path / "half").mkdir()
    (tmp_path / "half/adapter_config.json").write_text("{}")
    err = _cli_error(
        ["mcq", "--model", str(tiny_model("qwen2")), "--adapter", str(tmp_path / "half"), "--output", str(tmp_path)],
        capsys,
    )
    assert "missing adapter_model.safetensors" in err
    assert not (tmp_path / RESULT_FILE).exists()


@pytest.mark.parametrize(
    ("family", "template", "needle"),
    [("qwen2", "gemma", "<start_of_turn>"), ("gemma", "qwen", "<|im_start|>"), ("qwen2", "mistral", "bos")],
)
def test_error_template_mismatch(tiny_model, tmp_path: Path, capsys, family: str, template: str, needle: str):
    argv = ["mcq", "--model", str(tiny_model(family)), "--template", template, "--subjects", "ceval:physician"]
    err = _cli_error([*argv, "--output", str(tmp_path)], capsys)
    assert f"template {template!r} does not fit" in err or "starts with a bos token" in err
    assert needle in err and "--template" in err
    assert not (tmp_path / RESULT_FILE).exists()


def test_error_unknown_subject_and_bad_csv(tiny_model, tmp_path: Path, capsys):
    model = str(tiny_model("qwen2"))
    err = _cli_error(["mcq", "--model", model, "--subjects", "cmmlu:surgery", "--output", str(tmp_path)], capsys)
    assert "unknown subject cmmlu:surgery" in err and "available: anatomy" in err
    bench = tmp_path / "bench"
    (bench / "C-Eval/val").mkdir(parents=True)
    (bench / "C-Eval/val/physician_val.csv").write_bytes(b"id,question,A,B,C,answer\r\n0,q,a,b,c,A\r\n")
    argv = ["mcq", "--model", model, "--benchmarks", str(bench), "--subjects", "ceval:physician"]
    err = _cli_error([*argv, "--output", str(tmp_path)], capsys)
    assert "physician_val.csv" in err and "missing column 'D'" in err
    assert not (tmp_path / RESULT_FILE).exists()


def test_default_system_override_reaches_the_prompt_and_does_not_leak(qwen_varied: Path, tmp_path: Path):
    custom = run(
        str(qwen_varied),
        tmp_path / "a",
        subjects="ceval:physician",
        default_system="You are a helpful assistant.",
        progress=False,
    )
    assert custom["protocol"]["prompt"]["example"].startswith(
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>"
    )
    assert custom["protocol"]["infer_args"]["default_system"] == "You are a helpful assistant."
    plain = run(str(qwen_varied), tmp_path / "b", subjects="ceval:physician", progress=False)
    assert plain["protocol"]["prompt"]["example"].startswith(
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud"
    )


def test_letter_ids_come_from_the_templates_answer_turn(tiny_model):
    """mistral writes the answer as " {answer}": on a byte-level vocabulary that is the " C" token, not "C"."""
    from eval.backends.model import load
    from eval.metrics.choice import build_messages, choice_token_ids, choice_tokens

    loaded = load(str(tiny_model("gemma")), template="mistral")  # Qwen2 byte-level ids with a bos token
    source = BenchmarkSource()
    question = source.load("ceval", "physician", "val")[0][0]
    messages = build_messages(question, [], "医师资格")
    choice = choice_tokens(loaded.template, loaded.tokenizer, messages, "ABCD")
    spaced = [loaded.tokenizer.encode(f" {ch}", add_special_tokens=False) for ch in "ABCD"]
    assert all(len(ids) == 1 for ids in spaced)
    assert list(choice.letter_ids) == [ids[0] for ids in spaced] and choice.prefix_ids == ()
    assert list(choice.letter_ids) != choice_token_ids(loaded.tokenizer), "LF's old bare-letter rule misreads it"
    # what the template trains on: the answer turn starts with the letter's token
    _, response = loaded.template.encode_oneturn(loaded.tokenizer, [*messages[:-1], {**messages[-1], "content": "C"}])
    assert response[0] == choice.letter_ids[2]


def test_letters_without_distinct_tokens_are_refused():
    from eval.metrics.choice import ChoiceTokenError, choice_tokens

    class SameStart:  # a template whose answers all start with one shared token and never differ
        def encode_oneturn(self, tokenizer, messages):
            return [1, 2], [7, 8]

    class Tok:
        def convert_ids_to_tokens(self, ids):
            return [str(i) for i in ids]

    messages = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "A"}]
    with pytest.raises(ChoiceTokenError, match="no token telling them apart"):
        choice_tokens(SameStart(), Tok(), messages, "ABCD")


def test_letter_logits_are_fp32_from_the_hidden_state(tiny_model):
    """With a bf16 model the letters' logits come from the fp32 product of the final hidden state and head rows."""
    import torch
    from transformers import AutoModelForCausalLM

    from eval.metrics.choice import LetterHead

    model = AutoModelForCausalLM.from_pretrained(tiny_model("qwen2"), dtype=torch.bfloat16).eval()
    letters = [32, 33, 34, 35]
    head = LetterHead(model, letters)
    ids = torch.tensor([[108386, 3837, 14880, 102104, 5122]])
    with torch.inference_mode():
        out = model(input_ids=ids, logits_to_keep=1)
    ours = head.logits(out)
    head.close()
    assert head.exact and ours.dtype == torch.float32
    hidden = head.hidden[:, -1, :].double()
    want = hidden @ model.get_output_embeddings().weight[letters].double().T
    torch.testing.assert_close(ours.double(), want, atol=1e-5, rtol=1e-5)
    bf16 = out.logits[:, -1, letters].double()
    assert (bf16 - want).abs().max() > (ours.double() - want).abs().max()


def test_more_shots_than_the_dev_split_records_what_was_used(tiny_model, tmp_path: Path, capsys):
    result = run(str(tiny_model("qwen2")), tmp_path, subjects="ceval:physician", n_shot=7, progress=False)
    assert result["protocol"]["shots_used"] == {"ceval:physician": 5}  # C-Eval dev splits hold 5 rows
    assert all(len(p["shots"]) == 5 for p in result["predictions"])
    assert "the dev split has fewer rows for {'ceval:physician': 5}" in capsys.readouterr().err


def test_xmedbench_letter_model_scores_that_letters_share(tiny_model, tmp_path: Path):
    """Every single-answer XMedBench question is read as the preferred letter; multiple-answer items are apart."""
    model = letter_model(tiny_model("qwen2"), tmp_path / "always-c", "C")
    result = run(str(model), tmp_path / "out", subjects="xmedbench", batch_size=64, progress=False)
    assert {p["prediction"] for p in result["predictions"]} == {"C"}
    assert result["protocol"]["choice_token_ids"].keys() == set("ABCDE")
    source = BenchmarkSource()
    total = 0
    for subject in resolve_subjects("xmedbench", source):
        questions, _ = source.load("xmedbench", subject.subject, "test")
        single = [q for q in questions if len(q.answer) == 1]
        total += len(single)
        row = result["subjects"][subject.key]
        assert row["n"] == len(single) and row["correct"] == sum(q.answer == "C" for q in single), subject.key
        assert row["accuracy"] == pytest.approx(100 * row["correct"] / len(single))
    assert total == 8759 - 62 and len(result["predictions"]) == total
    assert result["multiple_answer"]["xmedbench:cmexam"]["n"] == 62
    assert result["subjects"]["xmedbench:cmexam"]["multiple_answer_not_scored"] == 62
    ids = [p["id"] for p in result["predictions"]]
    assert len(set(ids)) == len(ids) and ids[0].startswith("xmedbench:")  # "xmedbench:<source>:<index>"
    four = next(p for p in result["predictions"] if p["id"].startswith("xmedbench:medqa-mcmle:"))
    assert len(four["probs"]) == 4 and sum(four["probs"]) == pytest.approx(1.0)  # only its own letters
    five = next(p for p in result["predictions"] if p["id"].startswith("xmedbench:cmb-single:"))
    assert len(five["probs"]) == 5
    assert result["overall"] == result["benchmarks"]["xmedbench"]["accuracy"]  # no CMMLU/C-Eval asked
    # the report puts each source beside Table 2, with its CI; Table 2 itself stays the paper's benchmarks
    from eval import report

    (tmp_path / "out" / "run.json").write_text(json.dumps({"system": "MedAsst"}))
    made = report.run_report(report.ReportRequest(runs=(str(tmp_path / "out"),), output=tmp_path / "rep",
                                                  resamples=100))  # fmt: skip
    row = made["table_xmedbench"][0]
    for subject in resolve_subjects("xmedbench", source):
        cell = row[subject.subject]
        assert cell["accuracy"] == pytest.approx(result["subjects"][subject.key]["accuracy"])
        assert cell["ci95"][0] <= cell["accuracy"] <= cell["ci95"][1]
    assert row["multiple_answer_not_scored"] == 62
    assert "## XMedBench: Chinese medical exams" in (tmp_path / "rep" / "report.md").read_text(encoding="utf-8")
    assert "table2" not in made  # XMedBench alone is no Table 2 row (its overall is not the paper's)
