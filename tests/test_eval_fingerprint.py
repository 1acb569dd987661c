"""One fingerprint for every verb: an unchanged rerun recomputes nothing; a changed model, adapter, dataset, subject
list, template or backend under the same output folder is refused (naming what changed) or, with --recompute,
recomputed — never reused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from eval import generate, mcq, report, score
from eval import run as eval_run
from eval.common import fingerprint as fpr

SUBJECTS = "ceval:clinical_medicine"  # 22 questions
RECORDS = [
    {"instruction": "头痛三天了怎么办？", "input": "", "output": "建议休息，必要时就医。", "history": [], "id": "a"},
    {"instruction": "孩子发烧39度", "input": "", "output": "先物理降温。", "history": [], "id": "b"},
    {"instruction": "血常规白细胞偏高", "input": "", "output": "提示感染可能。", "history": [], "id": "c"},
]


def no_model(*args, **kwargs):
    raise AssertionError("a model was loaded although the result was up to date")


def last_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err, "no message on stderr"
    return err[-1]


@pytest.fixture(scope="module")
def adapter(tiny_model, tmp_path_factory) -> Path:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    folder = tmp_path_factory.mktemp("fp-adapter") / "lora"
    net = AutoModelForCausalLM.from_pretrained(tiny_model("qwen2"))
    get_peft_model(net, LoraConfig(r=4, target_modules=["q_proj", "v_proj"])).save_pretrained(folder)
    return folder


@pytest.fixture
def dataset_dir(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    (data / "t.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in RECORDS), "utf-8")
    columns = {"prompt": "instruction", "query": "input", "response": "output", "history": "history"}
    info = {"t": {"file_name": "t.jsonl", "formatting": "alpaca", "columns": columns}}
    (data / "dataset_info.json").write_text(json.dumps(info), "utf-8")
    return data


def test_differences_and_description():
    old = {"model": {"files_sha256": "aa"}, "n_shot": 0, "subjects": ["x"]}
    new = {"model": {"files_sha256": "bb"}, "n_shot": 0, "subjects": ["x", "y"], "dtype": "auto"}
    changed = fpr.differences(old, new)
    assert [key for key, _, _ in changed] == ["dtype", "model.files_sha256", "subjects"]
    text = fpr.describe(changed)
    assert "model.files_sha256: 'aa' → 'bb'" in text and "dtype: null → 'auto'" in text
    assert fpr.Fingerprint(old).digest == fpr.Fingerprint(dict(reversed(old.items()))).digest  # canonical


def test_model_identity_is_its_content_not_its_path(tiny_model, tmp_path: Path):
    model = tiny_model("qwen2")
    moved = tmp_path / "moved"
    shutil.copytree(model, moved)
    same = fpr.model_identity(str(moved))
    assert same == fpr.model_identity(str(model))
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(same["files"])
    (moved / "tokenizer_config.json").write_text((moved / "tokenizer_config.json").read_text() + " ")
    assert fpr.model_identity(str(moved))["files_sha256"] != same["files_sha256"]  # the chat template lives there
    unresolved = fpr.model_identity("nobody/not-cached")
    assert unresolved == {"id": "nobody/not-cached", "revision": None, "resolved": False}


def test_hash_cache_keys_on_path_size_and_mtime(tmp_path: Path, monkeypatch):
    import os

    monkeypatch.setenv("MEDASST_HASH_CACHE", str(tmp_path / "cache.json"))
    monkeypatch.setattr(fpr, "_SMALL", 0)  # every file counts as big weights here
    weights = tmp_path / "w" / "model.safetensors"
    weights.parent.mkdir()
    weights.write_bytes(b"x" * 100)
    first = fpr.files_sha256([weights], weights.parent)["model.safetensors"]
    cache = json.loads((tmp_path / "cache.json").read_text())
    assert list(cache.values()) == [first]
    (tmp_path / "cache.json").write_text(json.dumps(dict.fromkeys(cache, "cached")))
    assert fpr.files_sha256([weights], weights.parent)["model.safetensors"] == "cached"  # not re-read
    os.utime(weights, ns=(1, 1))  # rewritten weights get a new mtime: hashed again
    assert fpr.files_sha256([weights], weights.parent)["model.safetensors"] == first


def mcq_argv(model: Path, out: Path, *more: str) -> list[str]:
    return ["mcq", "--model", str(model), "--subjects", SUBJECTS, "--output", str(out), *more]


def test_mcq_reuses_only_the_same_inputs(tiny_model, adapter: Path, tmp_path: Path, capsys, monkeypatch):
    model, out = tiny_model("qwen2"), tmp_path / "out"
    assert eval_run.main(mcq_argv(model, out)) == 0
    result = json.loads((out / mcq.RESULT_FILE).read_text(encoding="utf-8"))
    fp = result["fingerprint"]
    assert fp["digest"] == fpr.Fingerprint(fp["fields"]).digest
    assert fp["fields"]["subjects"] == [SUBJECTS] and fp["fields"]["template"] == "qwen"
    assert set(fp["fields"]["benchmark_files"]) == {f"{SUBJECTS}:val"}
    assert fp["recorded"]["model"] == str(model) and "transformers" in fp["recorded"]["versions"]
    before = (out / mcq.RESULT_FILE).read_bytes()
    assert (out / mcq.RESULT_FILE).stat().st_mode & 0o044 == 0o044  # 0644, not mkstemp's 0600

    monkeypatch.setattr("eval.backends.model.load", no_model)
    assert eval_run.main(mcq_argv(model, out)) == 0  # unchanged: reused, nothing loaded
    assert eval_run.main(mcq_argv(model, out, "--batch-size", "3")) == 0  # batch size is recorded, not decisive
    assert "batch_size: 8 → 3" in capsys.readouterr().err
    changes = {
        "model": mcq_argv(tiny_model("qwen2", seed=1), out),
        "adapter": mcq_argv(model, out, "--adapter", str(adapter)),
        "subjects": ["mcq", "--model", str(model), "--subjects", "ceval:physician", "--output", str(out)],
        "template": mcq_argv(model, out, "--template", "qwen2_vl"),
        "default_system": mcq_argv(model, out, "--default-system", "你是医生。"),
        "n_shot": mcq_argv(model, out, "--n-shot", "1"),
        "dtype": mcq_argv(model, out, "--dtype", "float32"),
    }
    for field, argv in changes.items():
        assert eval_run.main(argv) == 2, field
        line = last_error(capsys)
        assert f"{field}" in line and "--recompute" in line and str(out / mcq.RESULT_FILE) in line, line
    assert (out / mcq.RESULT_FILE).read_bytes() == before

    monkeypatch.undo()
    assert eval_run.main(mcq_argv(model, out, "--subjects", "ceval:physician", "--recompute")) == 0
    again = json.loads((out / mcq.RESULT_FILE).read_text(encoding="utf-8"))
    assert again["fingerprint"]["fields"]["subjects"] == ["ceval:physician"]


def test_mcq_without_a_fingerprint_is_not_trusted(tiny_model, tmp_path: Path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / mcq.RESULT_FILE).write_text(json.dumps({"overall": 99.0}), encoding="utf-8")
    assert eval_run.main(mcq_argv(tiny_model("qwen2"), out)) == 2
    assert "has no fingerprint" in last_error(capsys)


def gen_argv(model: Path, data: Path, out: Path, *more: str) -> list[str]:
    return [
        "generate", "--model", str(model), "--dataset", "t", "--dataset-dir", str(data), "--backend", "hf",
        "--max-new-tokens", "3", "--batch-size", "2", "--cutoff-len", "128", "--output", str(out), *more,
    ]  # fmt: skip


def test_generate_reuses_resumes_or_refuses(tiny_model, adapter: Path, dataset_dir: Path, tmp_path: Path, capsys,
                                            monkeypatch):  # fmt: skip
    model, out = tiny_model("qwen2"), tmp_path / "out"
    assert eval_run.main(gen_argv(model, dataset_dir, out)) == 0
    run_record = json.loads((out / generate.RUN_FILE).read_text(encoding="utf-8"))
    fields = run_record["fingerprint"]["fields"]
    assert fields["backend"] == "hf" and fields["dataset"]["files"] == {
        "t.jsonl": fpr.file_sha256(dataset_dir / "t.jsonl")
    }
    assert run_record["fingerprint"]["recorded"]["batch_size"] == 2
    predictions = (out / generate.PREDICTIONS_FILE).read_bytes()
    assert all((out / n).stat().st_mode & 0o044 == 0o044 for n in (generate.RUN_FILE, generate.PREDICTIONS_FILE))

    monkeypatch.setattr("eval.backends.model.load", no_model)
    assert eval_run.main(gen_argv(model, dataset_dir, out)) == 0
    assert eval_run.main(gen_argv(model, dataset_dir, out, "--batch-size", "3")) == 0  # complete: only a note
    assert "batch_size: 2 → 3" in capsys.readouterr().err
    other_data = tmp_path / "data2"
    shutil.copytree(dataset_dir, other_data)
    with (other_data / "t.jsonl").open("a", encoding="utf-8") as f:
        f.write(json.dumps(RECORDS[0] | {"id": "d"}, ensure_ascii=False) + "\n")
    changes = {
        "model": gen_argv(tiny_model("qwen2", seed=1), dataset_dir, out),
        "adapter": gen_argv(model, dataset_dir, out, "--adapter", str(adapter)),
        "dataset.files": gen_argv(model, other_data, out),
        "template": gen_argv(model, dataset_dir, out, "--template", "qwen2_vl"),
        "max_new_tokens": gen_argv(model, dataset_dir, out, "--max-new-tokens", "4"),
        "cutoff_len": gen_argv(model, dataset_dir, out, "--cutoff-len", "100"),
    }
    for field, argv in changes.items():
        assert eval_run.main(argv) == 2, field
        line = last_error(capsys)
        assert field in line and "--recompute" in line, line
    # the backend: vLLM is not here, so ask what the same request would say had auto resolved to it
    request = generate.GenerateRequest(model=str(model), output=out, dataset="t", dataset_dir=str(dataset_dir),
                                       max_new_tokens=3, batch_size=2, cutoff_len=128)  # fmt: skip
    with pytest.raises(fpr.FingerprintMismatch, match="backend: 'hf' → 'vllm'"):
        generate.state(request, generate.fingerprint(request, "vllm"))
    assert (out / generate.PREDICTIONS_FILE).read_bytes() == predictions

    # a partial run resumes only at its own batch size: other batches would mix into the file
    run_record["complete"] = False
    (out / generate.RUN_FILE).write_text(json.dumps(run_record), encoding="utf-8")
    assert eval_run.main(gen_argv(model, dataset_dir, out, "--batch-size", "3")) == 2
    assert "partial run made at batch size 2" in last_error(capsys)
    monkeypatch.undo()
    assert eval_run.main(gen_argv(model, dataset_dir, out, "--batch-size", "3", "--recompute")) == 0
    assert json.loads((out / generate.RUN_FILE).read_text())["fingerprint"]["recorded"]["batch_size"] == 3
    assert json.loads((out / generate.RUN_FILE).read_text())["generated_now"] == 3


def test_score_and_report_follow_their_inputs(tmp_path: Path, capsys, monkeypatch):
    run_dir = tmp_path / "medasst"
    run_dir.mkdir()
    (run_dir / "run.json").write_text(json.dumps({"system": "MedAsst"}))
    preds = run_dir / "generated_predictions.jsonl"
    rows = [{"predict": "建议休息", "label": "建议休息，必要时就医", "id": str(i)} for i in range(5)]
    preds.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    argv = ["score", "--predictions", str(preds), "--resamples", "50"]
    assert eval_run.main(argv) == 0
    scores = json.loads((run_dir / score.SCORES_FILE).read_text(encoding="utf-8"))
    assert scores["fingerprint"]["fields"]["predictions_sha256"] == fpr.file_sha256(preds)
    assert scores["per_sample_sha256"] == fpr.file_sha256(run_dir / score.PER_SAMPLE_FILE)
    for name in (score.SCORES_FILE, score.PER_SAMPLE_FILE):  # readable by the rest of the team (0644)
        assert (run_dir / name).stat().st_mode & 0o044 == 0o044, name

    real_score_pairs = score.score_pairs
    monkeypatch.setattr(score, "score_pairs", no_model)
    assert eval_run.main(argv) == 0  # up to date
    assert eval_run.main([*argv[:-1], "60"]) == 2
    assert "bootstrap.resamples: 50 → 60" in last_error(capsys)
    preds.write_text(preds.read_text(encoding="utf-8").replace('建议休息"', '多喝水"'), encoding="utf-8")
    assert eval_run.main(argv) == 2
    assert "predictions_sha256" in last_error(capsys)
    monkeypatch.setattr(score, "score_pairs", real_score_pairs)
    assert eval_run.main([*argv, "--recompute"]) == 0

    out = tmp_path / "report"
    report_argv = ["report", "--runs", str(run_dir), "--output", str(out), "--resamples", "50"]
    assert eval_run.main(report_argv) == 0
    made = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    record = json.loads((out / report.REPORT_FILE).read_text(encoding="utf-8"))
    # the scored predictions too: new predictions under old scores are refused, not reported
    assert set(record["fingerprint"]["fields"]["inputs"][str(run_dir)]) == {
        "run.json", "scores.json", "scores_per_sample.jsonl", "generated_predictions.jsonl"}  # fmt: skip
    assert record["file_sha256"]["table3.md"] == fpr.file_sha256(out / "table3.md")
    assert "fingerprint `" in (out / "table3.md").read_text(encoding="utf-8")
    monkeypatch.setattr("eval.tables.table2.build_table", no_model)
    monkeypatch.setattr("eval.tables.table3.build_table", no_model)
    assert eval_run.main(report_argv) == 0  # up to date: nothing rewritten
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == made
    monkeypatch.undo()
    (run_dir / "run.json").write_text(json.dumps({"system": "MedAsst", "note": "renamed"}))
    assert eval_run.main(report_argv) == 0  # an input changed: remade (a report is only ever derived)
    assert (
        json.loads((out / report.REPORT_FILE).read_text())["fingerprint"]["digest"] != record["fingerprint"]["digest"]
    )


def test_report_marks_rows_measured_under_different_protocols(tiny_model, tmp_path: Path):
    model = tiny_model("qwen2")
    folders = []
    for name, n_shot in (("MedAsst", 0), ("Qwen2-7B", 1)):
        folder = tmp_path / name
        mcq.run(mcq.McqRequest(model=str(model), output=folder, subjects=SUBJECTS, n_shot=n_shot), progress=False)
        (folder / "run.json").write_text(json.dumps({"system": name}))
        folders.append(str(folder))
    result = report.run_report(report.ReportRequest(runs=tuple(folders), output=tmp_path / "out", resamples=50))
    assert result["table2_protocols"] == {"Qwen2-7B": "P1", "MedAsst": "P2"}  # table order
    table = (tmp_path / "out" / "table2.md").read_text(encoding="utf-8")
    assert table.splitlines()[0].endswith("| protocol | questions |")  # 22 questions: not the paper's 1,415
    note = next(line for line in table.splitlines() if line.startswith("- P2 differs from P1 in "))
    assert "n_shot: 1 → 0" in note and "shot_seed: 42 → null" in note and ":dev:" in note  # the shots' CSV too
    csv_head = (tmp_path / "out" / "table2.csv").read_text(encoding="utf-8").splitlines()[0]
    assert csv_head.endswith(",protocol,questions")


def test_a_hub_id_is_recorded_with_the_local_snapshot_it_resolves_to(tiny_model, tmp_path: Path, monkeypatch):
    import huggingface_hub.constants

    from eval.common import requests

    revision = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--org--tiny-qwen2"
    shutil.copytree(tiny_model("qwen2"), repo / "snapshots" / revision)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    identity = fpr.model_identity("org/tiny-qwen2")
    assert identity["hub"] == "huggingface" and identity["revision"] == revision
    assert identity["files_sha256"] == fpr.model_identity(str(tiny_model("qwen2")))["files_sha256"]
    requests.model_ref("org/tiny-qwen2")  # cached: accepted offline

    # ModelScope's layout (USE_MODELSCOPE_HUB=1), where "." in a name is written "___"
    monkeypatch.setenv("USE_MODELSCOPE_HUB", "1")
    monkeypatch.setenv("MODELSCOPE_CACHE", str(tmp_path / "ms"))
    shutil.copytree(tiny_model("qwen2"), tmp_path / "ms" / "models" / "Qwen" / "Qwen2___5-7B")
    identity = fpr.model_identity("Qwen/Qwen2.5-7B")
    assert identity["hub"] == "modelscope" and identity["files_sha256"]
    assert fpr.model_identity("Qwen/Qwen2-7B") == {"id": "Qwen/Qwen2-7B", "revision": None, "resolved": False}


def test_recompute_is_read_before_or_after_the_verb():
    from eval.common import requests
    from eval.run import build_parser

    parser = build_parser(["score"])
    for argv, want in ((["--recompute", "score"], True), (["score", "--recompute"], True), (["score"], False)):
        args = parser.parse_args([*argv, "--predictions", __file__])
        assert requests.from_args(score.ScoreRequest, args).recompute is want, argv
