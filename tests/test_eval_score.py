"""`python -m eval.run score`: outputs, parallel == serial, bootstrap CIs, per-source means, input errors."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from eval import run as eval_run
from eval import score
from eval.common.files import InputFileError
from eval.metrics import similarity

SOURCES = ("medchatzh", "huatuo26m", "cmtmedqa", "webmedqa")
_PHRASES_TEXT = "头痛 失眠 建议 就医 感冒 发热 注意休息 多喝水 血常规 可能 引起 治疗 服用 ， 。"
PHRASES = _PHRASES_TEXT.split()


def write_predictions(path: Path, n: int, seed: int = 0, with_source: bool = True) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = "".join(rng.choice(PHRASES) for _ in range(rng.randint(3, 15)))
        pred = label[: rng.randint(0, len(label))] + "".join(rng.choice(PHRASES) for _ in range(rng.randint(0, 5)))
        row = {"prompt": f"问题{i}", "predict": pred, "label": label}
        if with_source:
            row |= {"source": SOURCES[i % 4], "id": f"{SOURCES[i % 4]}-{i}"}
        rows.append(row)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return rows


def test_score_cli_outputs(tmp_path: Path):
    preds = tmp_path / "generated_predictions.jsonl"
    rows = write_predictions(preds, 40)
    out = tmp_path / "out"
    assert eval_run.main(["score", "--predictions", str(preds), "--output", str(out)]) == 0
    result = json.loads((out / "scores.json").read_text(encoding="utf-8"))
    assert result["n"] == 40
    expected = np.array([similarity.score_pair(r["predict"], r["label"]) for r in rows])
    for j, metric in enumerate(similarity.METRICS):
        assert result[metric] == pytest.approx(float(expected[:, j].mean()), abs=1e-9)
        low, high = result["ci95"][metric]
        assert low <= result[metric] <= high
    assert sorted(result["per_source"]) == sorted(SOURCES)
    assert sum(v["n"] for v in result["per_source"].values()) == 40
    per_sample = [json.loads(line) for line in (out / "scores_per_sample.jsonl").read_text().splitlines()]
    assert [p["id"] for p in per_sample] == [r["id"] for r in rows]
    assert per_sample[0]["source"] == "medchatzh"
    # deterministic: a rerun writes the same bytes
    first = (out / "scores.json").read_bytes()
    assert eval_run.main(["score", "--predictions", str(preds), "--output", str(out)]) == 0
    assert (out / "scores.json").read_bytes() == first


def test_default_output_is_predictions_folder_and_ids_fall_back_to_lines(tmp_path: Path):
    preds = tmp_path / "generated_predictions.jsonl"
    write_predictions(preds, 5, with_source=False)
    result = score.run(score.ScoreRequest(preds), progress=False)
    assert "per_source" not in result
    per_sample = [json.loads(line) for line in (tmp_path / "scores_per_sample.jsonl").read_text().splitlines()]
    assert [p["id"] for p in per_sample] == ["#1", "#2", "#3", "#4", "#5"]


def test_parallel_equals_serial(tmp_path: Path):
    rng = random.Random(3)
    pairs = [
        ("".join(rng.choice(PHRASES) for _ in range(8)), "".join(rng.choice(PHRASES) for _ in range(8)))
        for _ in range(score._MIN_PARALLEL + 50)
    ]
    serial = score.score_pairs(pairs, workers=1, progress=False)
    parallel = score.score_pairs(pairs, workers=2, progress=False)
    assert np.array_equal(serial, parallel)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"predict": "a", "label": "b"}\n{"prompt": "p", "predict": "a"}\n', "line 2: missing key 'label'"),
        ('{"prompt": "p", "label": "b"}\n', "line 1: missing key 'predict'"),
        ('{"predict": 3, "label": "b"}\n', "line 1: key 'predict' must be a string"),
        ('{"predict": "a", "label": "b"}\n{"predict": "a", "lab', "line 2: not valid JSON (torn last line"),
        ("[1, 2]\n", "line 1: expected a JSON object"),
        ("", "no predictions"),
    ],
)
def test_bad_predictions_name_line_and_key(tmp_path: Path, capsys, content: str, message: str):
    preds = tmp_path / "p.jsonl"
    preds.write_text(content, encoding="utf-8")
    with pytest.raises(InputFileError, match=message.replace("(", r"\(").replace("[", r"\[")):
        score.read_predictions(preds)
    assert eval_run.main(["score", "--predictions", str(preds), "--output", str(tmp_path / "o")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o" / "scores.json").exists()


def test_missing_file_and_duplicate_ids(tmp_path: Path):
    with pytest.raises(InputFileError, match="file not found"):
        score.read_predictions(tmp_path / "nope.jsonl")
    preds = tmp_path / "p.jsonl"
    preds.write_text('{"predict": "a", "label": "b", "id": "x"}\n{"predict": "a", "label": "b", "id": "x"}\n')
    with pytest.raises(InputFileError, match="duplicate ids"):
        score.run(score.ScoreRequest(preds), progress=False)


def test_repeated_4grams_beside_the_metrics(tmp_path: Path):
    """A degenerate loop over the reference's words keeps ROUGE-1 high; the repetition share shows it."""
    preds = tmp_path / "p.jsonl"
    rows = [
        {"predict": "建议休息，必要时就医。", "label": "建议休息，必要时就医。", "id": "clean"},
        {"predict": "休息就医" * 30, "label": "建议休息，必要时就医。", "id": "loop"},
    ]
    preds.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    result = score.run(score.ScoreRequest(preds, resamples=20), progress=False)
    per_sample = {json.loads(line)["id"]: json.loads(line) for line in (tmp_path / "scores_per_sample.jsonl").open()}
    assert per_sample["clean"]["repeated-4grams"] == 0.0
    assert per_sample["loop"]["repeated-4grams"] > 90 and per_sample["loop"]["rouge-1"] > 40
    assert result["repeated-4grams"] == pytest.approx(per_sample["loop"]["repeated-4grams"] / 2)
