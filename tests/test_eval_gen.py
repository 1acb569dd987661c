"""`python -m eval.run generate`: LF-identical prompts, LF's output format, resume after a kill, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eval import generate
from eval import run as eval_run
from eval.backends import generators as backends
from eval.data import prompts

ALPACA = {"prompt": "instruction", "query": "input", "response": "output", "history": "history"}
RECORDS = [
    {
        "instruction": "头痛三天了怎么办？",
        "input": "",
        "output": "建议休息，必要时就医。",
        "history": [],
        "source": "webmedqa",
        "id": "w-1",
    },
    {
        "instruction": "谢谢医生。",
        "input": "",
        "output": "不客气，祝您早日康复！",
        "history": [
            ["医生，我最近总是失眠。", "您好，失眠可能与精神紧张有关。"],
            ["需要吃药吗？", "可短期在医生指导下用药。"],
        ],
        "source": "cmtmedqa",
        "id": "c-1",
    },
    {
        "instruction": "血常规结果如下，请解读。",
        "input": "白细胞 12.5×10^9/L，中性粒细胞 85%",
        "output": "提示细菌感染可能。",
        "history": [],
        "source": "huatuo26m",
        "id": "h-1",
    },
    {
        "instruction": "孩子发烧39度，" * 12,
        "input": "",
        "output": "先物理降温，" * 12,
        "history": [],
        "source": "medchatzh",
        "id": "m-1",
    },
    {
        "instruction": "高血压能喝酒吗",
        "input": "",
        "output": "不建议饮酒。",
        "history": [],
        "source": "webmedqa",
        "id": "w-2",
    },
    {
        "instruction": "咳嗽有痰",
        "input": "",
        "output": "多喝水，痰多可用化痰药。",
        "history": [["我感冒了", "多休息。"]],
        "source": "cmtmedqa",
        "id": "c-2",
    },
]
MAX_NEW = 3


@pytest.fixture()
def dataset_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "med.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in RECORDS), encoding="utf-8"
    )
    info = {"med_test": {"file_name": "med.jsonl", "formatting": "alpaca", "columns": ALPACA}}
    (folder / "dataset_info.json").write_text(json.dumps(info), encoding="utf-8")
    return folder


def lf_predict_dataset(model: Path, template: str, dataset_dir: Path, cutoff: int, tmp: Path, **extra):
    """What LLaMA-Factory's own do_predict (predict_with_generate) tokenizes for the same dataset."""
    from llamafactory.data import get_dataset
    from llamafactory.hparams import get_train_args
    from llamafactory.model import load_tokenizer

    # LF's own function, on a copy of the registry entry, so a default_system here cannot leak into later tests
    from eval.backends.model import template_and_fix_tokenizer

    model_args, data_args, training_args, _, _ = get_train_args(
        dict(
            model_name_or_path=str(model),
            stage="sft",
            do_predict=True,
            predict_with_generate=True,
            eval_dataset="med_test",
            dataset_dir=str(dataset_dir),
            template=template,
            cutoff_len=cutoff,
            output_dir=str(tmp / "lf"),
            overwrite_cache=True,
            finetuning_type="lora",
            report_to="none",
            **extra,
        )
    )
    tokenizer_module = load_tokenizer(model_args)
    template_obj = template_and_fix_tokenizer(tokenizer_module["tokenizer"], data_args)
    module = get_dataset(template_obj, model_args, data_args, training_args, stage="sft", **tokenizer_module)
    return module["eval_dataset"], tokenizer_module["tokenizer"], template_obj


@pytest.mark.slow
@pytest.mark.parametrize(
    ("family", "extra"),
    [("qwen2", {"default_system": "You are a helpful assistant."}), ("llama3", {}), ("gemma", {})],
)
def test_prompts_equal_llamafactory_predict(tiny_model, dataset_dir: Path, tmp_path: Path, family: str, extra):
    from medasst.tiny import FAMILIES

    template = FAMILIES[family].template
    # cutoff 96 truncates the long record's prompt and reference, as LF does
    lf, tokenizer, template_obj = lf_predict_dataset(tiny_model(family), template, dataset_dir, 96, tmp_path, **extra)
    ours = prompts.build_examples("med_test", str(dataset_dir), tokenizer, template_obj, template, 96)
    assert [e.id for e in ours] == [r["id"] for r in RECORDS]
    assert [e.source for e in ours] == [r["source"] for r in RECORDS]
    assert len(lf) == len(ours)
    for i, example in enumerate(ours):
        assert example.input_ids == list(lf[i]["input_ids"])
        assert example.label_ids == list(lf[i]["labels"])
    assert len(ours[3].input_ids) + len(ours[3].label_ids) <= 96
    # the truncation count: exactly the records whose untruncated prompt + reference exceed cutoff_len
    summary = prompts.truncation_summary(ours, 96)
    assert "m-1" in summary["ids_cut"] and summary["records_cut"] == len(summary["ids_cut"])
    for example in ours:
        assert (example.id in summary["ids_cut"]) == (example.full_prompt_len + example.full_label_len > 96)
    history_prompt = tokenizer.decode(ours[1].input_ids)
    assert "医生，我最近总是失眠。" in history_prompt and "需要吃药吗？" in history_prompt


def gen_argv(model: Path, dataset_dir: Path, out: Path, *more: str) -> list[str]:
    return [
        "generate", "--model", str(model), "--template", "qwen", "--dataset", "med_test",
        "--dataset-dir", str(dataset_dir), "--backend", "hf", "--max-new-tokens", str(MAX_NEW),
        "--batch-size", "2", "--cutoff-len", "256", "--default-system", "You are a helpful assistant.",
        "--output", str(out), *more,
    ]  # fmt: skip


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.slow
def test_generate_writes_lf_format_and_resumes_after_a_kill(tiny_model, dataset_dir: Path, tmp_path: Path, monkeypatch):
    model = tiny_model("qwen2")
    full = tmp_path / "full"
    assert eval_run.main(gen_argv(model, dataset_dir, full)) == 0
    rows = read_rows(full / generate.PREDICTIONS_FILE)
    assert [r["id"] for r in rows] == [r["id"] for r in RECORDS]  # dataset order
    for row, record in zip(rows, RECORDS, strict=True):
        assert set(row) == {"prompt", "predict", "label", "id", "source"}
        assert row["source"] == record["source"]
        assert row["prompt"].startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>")
        assert row["prompt"].endswith("<|im_start|>assistant\n")
        assert row["label"] == record["output"] + "\n"  # LF decodes the label with the template's "\n" suffix
    assert "您好，失眠可能与精神紧张有关。" in rows[1]["prompt"]
    run_info = json.loads((full / generate.RUN_FILE).read_text())
    assert run_info["complete"] and run_info["n"] == len(RECORDS)
    assert run_info["truncation"]["cutoff_len"] == 256 and run_info["truncation"]["n"] == len(RECORDS)

    # a run killed after two batches, mid-write of the third line group
    calls = {"n": 0}
    real_call = backends.HFGenerator.__call__

    def dying(self, batch):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real_call(self, batch)

    killed = tmp_path / "killed"
    monkeypatch.setattr(backends.HFGenerator, "__call__", dying)
    with pytest.raises(KeyboardInterrupt):
        eval_run.main(gen_argv(model, dataset_dir, killed))
    monkeypatch.setattr(backends.HFGenerator, "__call__", real_call)
    pred_file = killed / generate.PREDICTIONS_FILE
    assert len(read_rows(pred_file)) == 4
    with pred_file.open("a", encoding="utf-8") as f:
        f.write('{"prompt": "<|im_start|>sys')  # torn last line
    assert not json.loads((killed / generate.RUN_FILE).read_text())["complete"]

    assert eval_run.main(gen_argv(model, dataset_dir, killed)) == 0
    resumed = json.loads((killed / generate.RUN_FILE).read_text())
    assert resumed["complete"] and resumed["generated_now"] == 2
    assert pred_file.read_bytes() == (full / generate.PREDICTIONS_FILE).read_bytes()

    # complete: a rerun neither loads the model nor rewrites anything
    def no_load(*args, **kwargs):
        raise AssertionError("model loaded for a finished run")

    monkeypatch.setattr("eval.backends.model.load", no_load)
    before = pred_file.read_bytes()
    assert eval_run.main(gen_argv(model, dataset_dir, killed)) == 0
    assert pred_file.read_bytes() == before

    # other settings into the same folder: refused, with the difference named
    assert eval_run.main(gen_argv(model, dataset_dir, killed, "--max-samples", "3")) == 2


def test_repair_tail(tmp_path: Path):
    path = tmp_path / "p.jsonl"
    good = '{"id": "a"}\n{"id": "b"}\n'
    path.write_text(good)
    assert generate.repair_tail(path) == 0 and path.read_text() == good
    path.write_text(good + '{"id": "c", "pre')
    assert generate.repair_tail(path) > 0 and path.read_text() == good
    path.write_text(good + '{"id": "c", "pre\n')  # newline written, JSON still cut
    assert generate.repair_tail(path) > 0 and path.read_text() == good
    path.write_text('{"id": "c", "pre')
    assert generate.repair_tail(path) > 0 and path.read_text() == ""
    assert generate.repair_tail(tmp_path / "missing.jsonl") == 0


def test_backend_selection(monkeypatch):
    import importlib.util

    import torch

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "vllm" else real_find_spec(name))
    assert backends.select_backend("auto") == "hf"
    assert backends.select_backend("hf") == "hf"
    with pytest.raises(backends.BackendError, match="vLLM is not installed"):
        backends.select_backend("vllm")

    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: object() if name == "vllm" else real_find_spec(name)
    )
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert backends.select_backend("auto") == "hf"
    with pytest.raises(backends.BackendError, match="needs a CUDA GPU"):
        backends.select_backend("vllm")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert backends.select_backend("auto") == "vllm"
    assert backends.select_backend("vllm") == "vllm"
    with pytest.raises(backends.BackendError, match="unknown backend"):
        backends.select_backend("tgi")


def test_generate_vllm_without_vllm_is_a_clear_error(
    tiny_model, tmp_path: Path, dataset_dir: Path, capsys, monkeypatch
):
    monkeypatch.setattr(backends, "vllm_unavailable_reason", lambda: "vLLM is not installed (pip install x)")
    argv = gen_argv(tiny_model("qwen2"), dataset_dir, tmp_path / "out")
    argv[argv.index("hf")] = "vllm"
    assert eval_run.main(argv) == 2
    assert "--backend vllm: vLLM is not installed" in capsys.readouterr().err


def test_generate_errors(tiny_model, tmp_path: Path, dataset_dir: Path, capsys):
    model = tiny_model("qwen2")
    argv = gen_argv(model, dataset_dir, tmp_path / "out", "--adapter", str(tmp_path / "no-adapter"))
    assert eval_run.main(argv) == 2
    assert "adapter folder not found" in capsys.readouterr().err
    argv = gen_argv(model, dataset_dir, tmp_path / "out")
    argv[argv.index("qwen")] = "no-such-template"
    assert eval_run.main(argv) == 2
    assert "unknown LLaMA-Factory template" in capsys.readouterr().err


def test_unknown_dataset_and_duplicate_ids(dataset_dir: Path):
    with pytest.raises(prompts.DatasetError, match="Undefined dataset"):
        prompts.read_dataset("nope", str(dataset_dir))
    (dataset_dir / "med.jsonl").write_text(
        json.dumps(RECORDS[0], ensure_ascii=False) + "\n" + json.dumps(RECORDS[0], ensure_ascii=False) + "\n"
    )
    with pytest.raises(prompts.DatasetError, match="duplicate id"):
        prompts.build_examples("med_test", str(dataset_dir), tokenizer=None, template=None, template_name="qwen",
                               cutoff_len=64)  # fmt: skip


def test_vllm_tensor_parallel_size_divides_the_heads():
    # Qwen2-7B: 28 attention heads, 4 KV heads; on 8 GPUs vLLM's default of 8 fails, 4 works
    assert backends.tensor_parallel_size(28, 4, gpus=8) == 4
    assert backends.tensor_parallel_size(28, 4, gpus=2) == 2
    assert backends.tensor_parallel_size(32, 8, gpus=8) == 8  # Llama-3-8B
    assert backends.tensor_parallel_size(16, 16, gpus=3) == 2  # Gemma-7B
    assert backends.tensor_parallel_size(28, 4, gpus=0) == 1
    assert backends.tensor_parallel_size(28, 4, gpus=8, requested=2) == 2
    with pytest.raises(backends.BackendError, match=r"does not divide the model's 28 attention heads.*\[1, 2, 4\]"):
        backends.tensor_parallel_size(28, 4, gpus=8, requested=8)


def test_vllm_engine_args_built_on_cpu(tiny_model, tmp_path: Path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = tiny_model("qwen2")
    heads, kv_heads = backends.attention_heads(str(model))
    assert (heads, kv_heads) == (4, 2)
    net = AutoModelForCausalLM.from_pretrained(model)
    get_peft_model(net, LoraConfig(r=12, target_modules=["q_proj"])).save_pretrained(tmp_path / "adapter")
    engine = backends.vllm_engine_args(str(model), str(tmp_path / "adapter"), 512, 512, heads, kv_heads, gpus=8)
    assert engine["max_model_len"] == 1024 and engine["tensor_parallel_size"] == 4  # 4 heads
    assert engine["enable_lora"] and engine["max_lora_rank"] == 16  # vLLM's next allowed rank
    assert engine["trust_remote_code"] is False


def test_vllm_path_checks_the_template_like_hf(tiny_model):
    from eval.backends.model import ModelLoadError

    args = {"model_name_or_path": str(tiny_model("qwen2")), "template": "llama3", "cutoff_len": 512}
    with pytest.raises(ModelLoadError, match="template 'llama3' does not fit"):
        prompts.load_tokenizer_and_template(args | {"finetuning_type": "lora"})
    args = {"model_name_or_path": str(tiny_model("llama3")), "template": "llama3", "cutoff_len": 512}
    tokenizer, _ = prompts.load_tokenizer_and_template(args | {"finetuning_type": "lora"})
    assert tokenizer.eos_token == "<|eot_id|>"
