"""Bad input to eval, every verb and --config: exit status 2 and one line naming the file, line or flag and the fix —
never a traceback, and nothing written. Each case is what a user types; the request is refused before any model
loads."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from eval import run as eval_run

RECORD = {"instruction": "头痛怎么办？", "input": "", "output": "多休息。", "history": [], "id": "a"}
PREDICTION = {"predict": "多休息", "label": "多休息，多喝水", "id": "a"}


class Setup:
    """Files a case needs, under one tmp folder; `model` is a real tiny Qwen2 folder."""

    def __init__(self, root: Path, model: Path):
        self.root, self.model = root, str(model)
        self.out = root / "out"
        self.data = root / "data"
        self.data.mkdir()
        (self.data / "t.jsonl").write_text(json.dumps(RECORD, ensure_ascii=False) + "\n", encoding="utf-8")
        columns = {"prompt": "instruction", "query": "input", "response": "output", "history": "history"}
        info = {"t": {"file_name": "t.jsonl", "formatting": "alpaca", "columns": columns},
                "gone": {"file_name": "missing.jsonl"}}  # fmt: skip
        (self.data / "dataset_info.json").write_text(json.dumps(info), encoding="utf-8")

    def file(self, name: str, data: bytes | str = "x") -> str:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
        return str(path)

    def folder(self, name: str) -> str:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return str(path)

    def mcq(self, *more: str) -> list[str]:
        return ["mcq", "--model", self.model, "--subjects", "ceval:physician", "--output", str(self.out), *more]

    def generate(self, *more: str) -> list[str]:
        return ["generate", "--model", self.model, "--dataset", "t", "--dataset-dir", str(self.data),
                "--backend", "hf", "--output", str(self.out), *more]  # fmt: skip

    def score(self, predictions: str, *more: str) -> list[str]:
        return ["score", "--predictions", predictions, "--output", str(self.out), *more]

    def system(self, name: str, rows: list[dict] | None = None) -> str:
        rows = [PREDICTION] if rows is None else rows
        folder = Path(self.folder(f"systems/{name}"))
        (folder / "generated_predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
        return f"{name}={folder}"

    def judge(self, *more: str, systems: tuple[str, ...] = ("medasst", "other")) -> list[str]:
        argv = ["judge", "--base-url", "http://127.0.0.1:9/v1", "--judge-model", "j", "--dataset", "t",
                "--dataset-dir", str(self.data), "--output", str(self.out), "--max-retries", "0"]  # fmt: skip
        for name in systems:
            argv += ["--system", self.system(name)]
        return argv + list(more)

    def config(self, text: str | bytes | dict) -> list[str]:
        if isinstance(text, dict):
            base = {"output_dir": str(self.out), "dataset": "t", "dataset_dir": str(self.data), "steps": ["mcq"],
                    "systems": [{"name": "a", "model": self.model, "template": "qwen"}]}  # fmt: skip
            text = yaml.safe_dump(base | text, allow_unicode=True)
        return ["--config", self.file("c.yaml", text)]


def gbk_predictions(s: Setup) -> str:
    return s.file("gbk.jsonl", (json.dumps(PREDICTION, ensure_ascii=False) + "\n").encode("gbk"))


def adapter_bin_only(s: Setup) -> str:
    folder = Path(s.folder("bin-adapter"))
    (folder / "adapter_config.json").write_text("{}")
    (folder / "adapter_model.bin").write_bytes(b"x")
    return str(folder)


def gbk_dataset(s: Setup) -> list[str]:
    (s.data / "t.jsonl").write_bytes((json.dumps(RECORD, ensure_ascii=False) + "\n").encode("gbk"))
    return s.generate()


def bad_record_dataset(s: Setup) -> list[str]:
    with (s.data / "t.jsonl").open("a", encoding="utf-8") as f:
        f.write('{"instruction": "cut\n')
    return s.generate()


def report_with_broken_run_json(s: Setup) -> list[str]:
    folder = Path(s.folder("runs/broken"))
    (folder / "run.json").write_text("{not json")
    (folder / "mcq.json").write_text("{}")
    return ["report", "--runs", str(folder), "--output", str(s.out)]


CASES: dict[str, tuple[Callable[[Setup], list[str]], str]] = {
    # mcq
    "mcq model path missing": (lambda s: ["mcq", "--model", "/no/such/model", "--output", str(s.out)],
                               "--model /no/such/model: model folder not found"),
    "mcq model is a file": (lambda s: ["mcq", "--model", s.file("weights.bin"), "--output", str(s.out)],
                            "is a file; pass the model folder"),
    "mcq model folder without config": (lambda s: ["mcq", "--model", s.folder("empty"), "--output", str(s.out)],
                                        "has no config.json"),
    "mcq hub id not cached offline": (lambda s: ["mcq", "--model", "nobody/nothing", "--output", str(s.out)],
                                      "not in the local cache (HF_HUB_OFFLINE=1)"),
    "mcq output is a file": (lambda s: ["mcq", "--model", s.model, "--output", s.file("taken")],
                             "is a file; pass a folder"),
    "mcq n-shot negative": (lambda s: s.mcq("--n-shot", "-1"), "--n-shot must be an integer ≥ 0, got -1"),
    "mcq n-shot not a number": (lambda s: s.mcq("--n-shot", "two"), "argument --n-shot: invalid int value: 'two'"),
    "mcq batch size zero": (lambda s: s.mcq("--batch-size", "0"), "--batch-size must be an integer ≥ 1, got 0"),
    "mcq seed negative": (lambda s: s.mcq("--seed", "-5"), "--seed must be an integer ≥ 0"),
    "mcq unknown subject": (lambda s: s.mcq("--subjects", "cmmlu:astrology"), "astrology"),
    "mcq benchmarks folder missing": (lambda s: s.mcq("--benchmarks", "/no/bench"), "--benchmarks /no/bench"),
    "mcq adapter missing": (lambda s: s.mcq("--adapter", "/no/adapter"), "adapter folder not found"),
    "mcq adapter only .bin": (lambda s: s.mcq("--adapter", adapter_bin_only(s)), "safetensors"),
    "mcq unknown template": (lambda s: s.mcq("--template", "nosuch"), "unknown LLaMA-Factory template 'nosuch'"),
    "mcq unknown dtype": (lambda s: s.mcq("--dtype", "int4"), "argument --dtype: invalid choice: 'int4'"),
    "mcq unknown flag": (lambda s: s.mcq("--shots", "3"), "unrecognized arguments: --shots 3"),
    # generate
    "generate max-new-tokens 0": (lambda s: s.generate("--max-new-tokens", "0"),
                                  "--max-new-tokens must be an integer ≥ 1, got 0"),
    "generate batch size -2": (lambda s: s.generate("--batch-size", "-2"), "--batch-size must be an integer ≥ 1"),
    "generate cutoff 0": (lambda s: s.generate("--cutoff-len", "0"), "--cutoff-len must be an integer ≥ 2"),
    "generate max-samples 0": (lambda s: s.generate("--max-samples", "0"), "--max-samples must be an integer ≥ 1"),
    "generate tensor parallel 0": (lambda s: s.generate("--tensor-parallel-size", "0"),
                                   "--tensor-parallel-size must be an integer ≥ 1"),
    "generate unknown backend": (lambda s: s.generate("--backend", "tgi"), "argument --backend: invalid choice"),
    "generate unknown dataset": (lambda s: s.generate("--dataset", "nope"), "--dataset 'nope' is not in"),
    "generate dataset file missing": (lambda s: s.generate("--dataset", "gone"), "dataset file not found"),
    "generate no dataset_info": (lambda s: s.generate("--dataset-dir", s.folder("nodata")), "no dataset_info.json"),
    "generate output is a file": (lambda s: s.generate("--output", s.file("taken")), "is a file; pass a folder"),
    "generate GBK dataset": (gbk_dataset, "not UTF-8"),
    "generate torn dataset line": (bad_record_dataset, "t.jsonl line 2: not valid JSON"),
    # score
    "score GBK predictions": (lambda s: s.score(gbk_predictions(s)), "gbk.jsonl line 1: not UTF-8"),
    "score predictions missing": (lambda s: s.score("/no/preds.jsonl"), "--predictions /no/preds.jsonl: file not"),
    "score predictions is a folder": (lambda s: s.score(s.folder("pdir")), "is a folder; pass the file itself"),
    "score workers 0": (lambda s: s.score(s.file("p.jsonl", json.dumps(PREDICTION)), "--workers", "0"),
                        "--workers must be an integer ≥ 1"),
    "score resamples 0": (lambda s: s.score(s.file("p.jsonl", json.dumps(PREDICTION)), "--resamples", "0"),
                          "--resamples must be an integer ≥ 1"),
    "score missing label": (lambda s: s.score(s.file("p.jsonl", '{"predict": "x"}\n')), "line 1: missing key 'label'"),
    "score output is a file": (lambda s: s.score(s.file("p.jsonl", json.dumps(PREDICTION)), "--output",
                                                 s.file("taken")), "is a file; pass a folder"),
    # judge
    "judge base url not http": (lambda s: s.judge("--base-url", "127.0.0.1:8000"), "must start with http://"),
    "judge system without a name": (lambda s: s.judge("--system", "/some/dir"), "write NAME=DIR"),
    "judge system folder without predictions": (lambda s: s.judge("--system", f"x={s.folder('nothing')}"),
                                                "no generated_predictions.jsonl there (run generate)"),
    "judge one system pairwise": (lambda s: s.judge(systems=("medasst",)), "needs at least two --system"),
    "judge reference not a system": (lambda s: s.judge(systems=("a", "b")), "--reference 'medasst' is not among"),
    "judge system twice": (lambda s: s.judge(systems=("medasst", "medasst")), "--system 'medasst' is given twice"),
    "judge concurrency 0": (lambda s: s.judge("--concurrency", "0"), "--concurrency must be an integer ≥ 1"),
    "judge temperature 3": (lambda s: s.judge("--temperature", "3"), "--temperature must lie in [0, 2]"),
    "judge limit 0": (lambda s: s.judge("--limit", "0"), "--limit must be an integer ≥ 1"),
    "judge unknown rubric": (lambda s: s.judge("--rubric", "style"), "argument --rubric: invalid choice"),
    "judge unknown dataset": (lambda s: s.judge("--dataset", "nope"), "--dataset 'nope' is not in"),
    "judge prediction id not in the set": (lambda s: s.judge("--system", s.system("odd", [PREDICTION | {"id": "z"}])),
                                           "id 'z' is not in the dataset"),
    "judge predictions without ids": (lambda s: s.judge("--system", s.system("lf", [{"predict": "x", "label": "y"}])),
                                      "no 'id' (the judge looks items up by id"),
    "judge duplicate prediction ids": (lambda s: s.judge("--system", s.system("dup", [PREDICTION, PREDICTION])),
                                       "id 'a' appears twice"),
    "judge server unreachable": (lambda s: s.judge(), "cannot reach http://127.0.0.1:9/v1"),
    # report
    "report judge folder without judge.json": (lambda s: ["report", "--runs", s.folder("r"), "--output", str(s.out),
                                                          "--judge", s.folder("j")], "--judge"),
    "report run folder missing": (lambda s: ["report", "--runs", "/no/run", "--output", str(s.out)],
                                  "--runs /no/run: run folder not found"),
    "report empty run folder": (lambda s: ["report", "--runs", s.folder("runs/empty"), "--output", str(s.out)],
                                "neither mcq.json nor scores.json"),
    "report broken run.json": (report_with_broken_run_json, "run.json: not valid JSON"),
    "report resamples 0": (lambda s: ["report", "--runs", s.folder("r"), "--output", str(s.out), "--resamples", "0"],
                           "--resamples must be an integer ≥ 1"),
    # --config
    "config malformed YAML": (lambda s: s.config("output_dir: x\nsystems: [{name: a\n"), "not valid YAML"),
    "config GBK": (lambda s: s.config("output_dir: 输出\n".encode("gbk")), "not UTF-8"),
    "config is a folder": (lambda s: ["--config", s.folder("cfgdir")], "config not found"),
    "config unknown mcq option": (lambda s: s.config({"mcq": {"shots": 3}}),
                                  "systems[0] (a) mcq: unknown option(s) ['shots']"),
    "config wrong type": (lambda s: s.config({"steps": ["generate"], "generate": {"max_new_tokens": "many"}}),
                          "max_new_tokens = 'many' has the wrong type"),
    "config bad value": (lambda s: s.config({"steps": ["generate"], "generate": {"batch_size": -2}}),
                         "systems[0] (a) generate: --batch-size must be an integer ≥ 1, got -2"),
    "config model missing": (lambda s: s.config({"systems": [{"name": "a", "model": "/no/m", "template": "qwen"}]}),
                             "[a] systems[0] (a) mcq: --model /no/m: model folder not found"),
    "config adapter missing": (lambda s: s.config({"systems": [{"name": "a", "model": s.model, "template": "qwen",
                                                                "adapter": "/no/lora"}]}), "adapter folder not found"),
    "config unknown report option": (lambda s: s.config({"steps": ["report"], "report": {"refrence": "MedAsst"}}),
                                     "report: unknown option(s) ['refrence']"),
    "config output_dir a number": (lambda s: s.config({"output_dir": 123}), "output_dir must be a string, got 123"),
    "config default_system a number": (lambda s: s.config({"systems": [{"name": "a", "model": s.model,
                                                                        "template": "qwen", "default_system": 123}]}),
                                       "systems[0].default_system must be a string, got 123"),
    "config steps a string": (lambda s: s.config({"steps": "mcq"}), "steps must be a list"),
    "config steps empty": (lambda s: s.config({"steps": []}), "steps is empty"),
    "config env not text": (lambda s: s.config({"env": {"HF_HOME": ["a"]}}), "env.HF_HOME must be a string"),
    "config system not a mapping": (lambda s: s.config({"systems": ["MedAsst"]}), "systems[0] must be a mapping"),
}  # fmt: skip


@pytest.fixture(scope="module")
def qwen2(tiny_model) -> Path:
    return tiny_model("qwen2")


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_and_exit_2(case: str, qwen2: Path, tmp_path: Path, capsys):
    build, expected = CASES[case]
    setup = Setup(tmp_path, qwen2)
    argv = build(setup)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    code = eval_run.main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err[-2000:]
    assert "Traceback" not in err, err[-2000:]
    assert len(lines) == 1, lines
    assert expected in lines[0], lines[0]
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert after == before, "a refused request wrote files"


def test_argparse_errors_exit_2_in_one_line(capsys):
    assert eval_run.main(["mcq", "--output", "x"]) == 2  # --model left out
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == ["python -m eval.run mcq: error: the following arguments are required: --model "
                     "(see python -m eval.run mcq --help)"]  # fmt: skip


def test_score_reads_a_utf8_file_with_a_bom(tmp_path: Path):
    preds = tmp_path / "bom.jsonl"
    preds.write_bytes(b"\xef\xbb\xbf" + (json.dumps(PREDICTION, ensure_ascii=False) + "\n").encode("utf-8"))
    assert eval_run.main(["score", "--predictions", str(preds), "--resamples", "10"]) == 0
    scores = json.loads((tmp_path / "scores.json").read_text(encoding="utf-8"))
    assert scores["n"] == 1 and scores["bleu-4"] > 0
