"""Whole raw files of the wrong shape, a folder where an output goes, two builds into one folder, a test file
without safety items: each a clear `error:` line (or a warning) and the previous outputs byte-identical."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
from converter_builds import snapshot

from converters import pipeline
from converters.__main__ import main
from converters.pipeline import Options, build
from converters.records import ConversionError
from medasst.facts import DEMO_RAW_DIR


def _one_error_line(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err
    return errors[0]


def _wrong_shapes(raw: Path) -> dict[str, tuple[str, bytes]]:
    """Whole files a clumsy user or a cut download leaves: (file, bytes) per case, from the demo's own files."""
    medchatzh = raw / "MedChatZH" / "MedChatZH_train.json"
    records = [json.loads(line) for line in medchatzh.read_bytes().splitlines() if line.strip()]
    array = (raw / "CMtMedQA" / "CMtMedQA.json").read_bytes()
    tsv = (raw / "webMedQA" / "medQA.train.txt").read_bytes()
    return {
        # a JSON array cut short: the one `truncated_json` skip stands for the whole rest of the file
        "array_cut_at_40pct": ("CMtMedQA/CMtMedQA.json", array[: int(len(array) * 0.4)]),
        # JSON Lines written as one JSON array, on one line and pretty-printed
        "jsonl_as_array": ("MedChatZH/MedChatZH_train.json", json.dumps(records, ensure_ascii=False).encode()),
        "jsonl_as_indented_array": (
            "MedChatZH/MedChatZH_train.json", json.dumps(records, ensure_ascii=False, indent=2).encode()
        ),
        # webMedQA saved as CSV by a spreadsheet
        "tsv_with_commas": ("webMedQA/medQA.train.txt", tsv.replace(b"\t", b",")),
        "zero_bytes": ("huatuo_encyclopedia_qa/train_datasets.jsonl", b""),
        "only_blank_lines": ("HuatuoGPT-sft-data-v1/HuatuoGPT_sft_data_v1.jsonl", b"\n\n  \n"),
    }


EXPECTED = {
    "array_cut_at_40pct": r"CMtMedQA/CMtMedQA.json is cut short: it ends inside a JSON element after 6 records "
    r"\(.*truncated_json 1.*\); a download that did not finish\?",
    "jsonl_as_array": r"MedChatZH/MedChatZH_train.json: no record could be read \(not_an_object 1\)",
    "jsonl_as_indented_array": r"MedChatZH/MedChatZH_train.json: no record could be read \(bad_json \d+",
    "tsv_with_commas": r"webMedQA/medQA.train.txt: no record could be read \(short_line \d+\)",
    "zero_bytes": r"huatuo_encyclopedia_qa/train_datasets.jsonl is empty \(0 bytes\)",
    "only_blank_lines": r"HuatuoGPT_sft_data_v1.jsonl: no record could be read \(blank_line 3\)",
}


@pytest.mark.parametrize("case", sorted(EXPECTED))
@pytest.mark.parametrize("workers", [1, 2])
def test_a_raw_file_of_the_wrong_shape_fails_the_build_and_keeps_the_outputs(built, capsys, case, workers):
    import re

    raw, out, before = built
    name, data = _wrong_shapes(raw)[case]
    (raw / name).write_bytes(data)
    line = _one_error_line(capsys, ["build", "--raw-dir", str(raw), "--out-dir", str(out), "--no-progress",
                                    "--workers", str(workers)])  # fmt: skip
    assert re.search(EXPECTED[case], line), line
    assert "the previous outputs are kept" in line
    assert snapshot(out) == before


def test_a_broken_array_element_loses_the_rest_and_the_limit_is_a_flag(built, capsys, caplog):
    raw, out, _ = built
    path = raw / "CMtMedQA" / "CMtMedQA.json"
    data = path.read_bytes()
    # one broken element 85% of the way in: the file still ends with "]", the rest after it is lost
    at = data.rfind(b"{", 0, int(len(data) * 0.85))
    path.write_bytes(data[:at] + b"{oops " + data[at:])
    with caplog.at_level(logging.WARNING, logger="converters"):
        assert main(["build", "--raw-dir", str(raw), "--out-dir", str(out), "--no-progress"]) == 0
    warned = [r.getMessage() for r in caplog.records if "CMtMedQA/CMtMedQA.json" in r.getMessage()]
    assert warned and "bad_json 1" in warned[0] and "could not be read" in warned[0]
    # a stricter limit, asked for, fails the same file
    line = _one_error_line(capsys, ["build", "--raw-dir", str(raw), "--out-dir", str(out), "--no-progress",
                                    "--max-bad-share", "0.1"])  # fmt: skip
    assert "at or above the limit of 10% (--max-bad-share)" in line
    # a cut file is built from what is there only when asked to
    path.write_bytes(data[: len(data) // 2])
    assert "cut short" in _one_error_line(capsys, ["build", "--raw-dir", str(raw), "--out-dir", str(out)])
    with caplog.at_level(logging.WARNING, logger="converters"):
        assert main(["build", "--raw-dir", str(raw), "--out-dir", str(out), "--max-bad-share", "1"]) == 0
    assert any("cut short" in r.getMessage() and "Built from what is there" in r.getMessage() for r in caplog.records)
    for bad in ("0", "1.5", "-1"):
        assert "--max-bad-share must be above 0 and at most 1" in _one_error_line(
            capsys, ["build", "--raw-dir", str(raw), "--out-dir", str(out), "--max-bad-share", bad]
        )


def test_deliberate_filters_are_not_losses(tmp_path: Path, caplog):
    """webMedQA keeps one line in five (label 1): the four negatives are the format, not damage."""
    with caplog.at_level(logging.WARNING, logger="converters"):
        manifest = build(Options(raw_dir=DEMO_RAW_DIR, out_dir=tmp_path / "out", sources=("webmedqa",)))
    assert manifest["sources"]["webmedqa"]["train"]["skipped"]["negative_answer"] > 0
    assert not [r for r in caplog.records if "malformed" in r.getMessage()]


def test_a_folder_where_an_output_file_goes_is_one_line(built, capsys):
    raw, out, _ = built
    (out / "medasst_train.jsonl").unlink()
    (out / "medasst_train.jsonl").mkdir()
    (out / "medasst_train.jsonl" / "keep.txt").write_text("mine")
    line = _one_error_line(capsys, ["build", "--raw-dir", str(raw), "--out-dir", str(out), "--no-progress"])
    assert "medasst_train.jsonl is a folder" in line
    assert (out / "medasst_train.jsonl" / "keep.txt").read_text() == "mine"
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_two_builds_into_one_folder_the_second_is_refused_and_the_first_completes(built, monkeypatch, capsys):
    raw, out, before = built
    real = pipeline.apply
    seen: dict = {}

    def second_build_meanwhile(*args, **kwargs):
        if "line" not in seen:  # while the first build has live temp files in `out`
            seen["temps"] = sorted(p.name for p in out.iterdir() if p.name.endswith(".tmp"))
            seen["line"] = _one_error_line(capsys, ["build", "--raw-dir", str(raw), "--out-dir", str(out),
                                                    "--no-progress"])  # fmt: skip
            seen["temps_after"] = sorted(p.name for p in out.iterdir() if p.name.endswith(".tmp"))
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "apply", second_build_meanwhile)
    build(Options(raw_dir=raw, out_dir=out))
    assert "another build is writing into" in seen["line"]
    assert seen["temps"] and seen["temps_after"] == seen["temps"]  # the first build's temps were not "stale"
    assert snapshot(out) == before  # the first build finished: the same bytes as the build before it
    # the lock went with the build: the next one runs
    monkeypatch.undo()
    build(Options(raw_dir=raw, out_dir=out))


def test_a_cmtmedqa_test_file_without_safety_items_warns(tmp_path: Path, caplog):
    raw = tmp_path / "raw"
    shutil.copytree(DEMO_RAW_DIR, raw)
    path = raw / "CMtMedQA" / "CMtMedQA_test.json"
    items = json.loads(path.read_bytes())
    path.write_text(json.dumps([i for i in items if "instruct" not in i], ensure_ascii=False))
    with caplog.at_level(logging.WARNING, logger="converters"):
        manifest = build(Options(raw_dir=raw, out_dir=tmp_path / "out"))
    assert manifest["outputs"]["medasst_safety_test.jsonl"]["records"] == 0
    assert any("holds no safety items" in r.getMessage() and "Zhongjing" in r.getMessage() for r in caplog.records)


def test_build_refuses_before_converting_when_given_a_bad_share_in_code(tmp_path: Path):
    with pytest.raises(ConversionError, match="--max-bad-share"):
        build(Options(raw_dir=DEMO_RAW_DIR, out_dir=tmp_path / "out", max_bad_share=0))


def test_a_file_emptied_by_max_chars_is_the_users_choice_not_a_bad_file(tmp_path: Path):
    plain = build(Options(raw_dir=DEMO_RAW_DIR, out_dir=tmp_path / "plain"))
    manifest = build(Options(raw_dir=DEMO_RAW_DIR, out_dir=tmp_path / "out", max_chars=5, sources=("medchatzh",)))
    train = manifest["sources"]["medchatzh"]["train"]
    assert train["written"] == 0 and train["skipped"]["too_long"] > 0
    # a training-side option never changes the benchmark: the test split is the one a plain build writes
    assert "too_long" not in manifest["sources"]["medchatzh"]["test"]["skipped"]
    assert manifest["sources"]["medchatzh"]["test"]["written"] == plain["sources"]["medchatzh"]["test"]["written"]
