"""Scanning that does not lie: an empty or unreadable training file is an error, not "0 flagged"; skipped lines
are counted and a large share warned about; private-use characters are text, never separators; memory stays
bounded by a batch whatever one record's length."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from eval import contamination
from eval import run as eval_run
from eval.data.benchmarks import BenchmarkSource

SUBJECTS = "ceval:physician"


def _question(i: int = 3):
    return BenchmarkSource().load("ceval", "physician", "val")[0][i]


def _lf(q) -> str:
    options = "\n".join(f"{c}. {o}" for c, o in zip("ABCD", q.options, strict=True))
    return f"{q.question}\n{options}\n答案：{q.answer}"


def _audit(tmp_path: Path, lines: list[str], capsys) -> tuple[int, str, dict | None]:
    train = tmp_path / "train.jsonl"
    train.write_text("".join(lines), encoding="utf-8")
    out = tmp_path / "out"
    code = eval_run.main(["contamination", "--train", str(train), "--subjects", SUBJECTS, "--dataset", "",
                          "--output", str(out)])  # fmt: skip
    path = out / contamination.RESULT_FILE
    return code, capsys.readouterr().err, json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def test_an_empty_training_file_is_an_error_not_a_clean_audit(tmp_path, capsys):
    code, err, result = _audit(tmp_path, [], capsys)
    assert code == 2 and result is None
    assert err.strip().endswith("no training record read (the file is empty); nothing to audit")
    assert "Traceback" not in err


def test_a_file_of_unreadable_lines_is_an_error_naming_the_counts(tmp_path, capsys):
    code, err, result = _audit(tmp_path, ["{broken\n", "[1, 2]\n", '{"history": 3}\n', "\n"], capsys)
    assert code == 2 and result is None
    assert "3 line(s) skipped: {'bad_json': 1, 'no_text': 1, 'not_an_object': 1}" in err


def test_a_large_skipped_share_is_warned_and_recorded(tmp_path, capsys):
    good = json.dumps({"id": "r1", "instruction": "你好", "output": "你好。"}, ensure_ascii=False) + "\n"
    code, err, result = _audit(tmp_path, [good, "{broken\n", "\xff\n"], capsys)
    assert code == 0
    assert "warning:" in err and "2 of 3 lines skipped (66.7%" in err
    assert result["train"]["skipped"] == {"bad_json": 2} and result["train"]["skipped_share"] == round(2 / 3, 6)


def test_private_use_characters_are_never_separators(tmp_path, capsys):
    q = _question()
    noise = "\ue000\ue001" * 10
    rows = [{"id": "pua-only", "instruction": noise * 5, "output": noise},
            {"id": "copy", "instruction": noise + _lf(q).replace("\n", noise + "\n"), "output": noise},
            {"id": "after", "instruction": "别的问题" + noise, "output": "别的回答"}]  # fmt: skip
    code, err, result = _audit(tmp_path, [json.dumps(r, ensure_ascii=False) + "\n" for r in rows], capsys)
    assert code == 0, err
    (entry,) = result["flagged"]
    assert entry["id"] == q.key and entry["status"] == "dirty" and entry["contamination"] == "input-and-label"
    assert [r["train_id"] for r in entry["records"]] == ["copy"] and entry["records"][0]["line"] == 2
    assert result["train"]["records"] == 3


def test_one_30m_character_record_keeps_memory_bounded(tmp_path):
    q = _question()
    filler = "".join(chr(0x4E00 + (i * 7919) % 2000) for i in range(1000))
    body = filler * 15_000 + "\n" + _lf(q) + "\n" + filler * 15_000  # 30M characters, the copy in the middle
    train = tmp_path / "train.jsonl"
    train.write_text(json.dumps({"id": "huge", "instruction": "x", "output": body}, ensure_ascii=False) + "\n", "utf-8")
    script = (
        "import json, sys\n"
        "from eval import contamination\n"
        f"r = contamination.run(contamination.ContaminationRequest(output={str(tmp_path / 'out')!r}, "
        f"train={str(train)!r}, subjects={SUBJECTS!r}, dataset='', workers=1))\n"
        "print(json.dumps([[e['id'], [x['train_id'] for x in e['records']]] for e in r['flagged']]))\n"
        # VmHWM, this process's own peak: ru_maxrss would carry the forking pytest's peak across exec (in the
        # whole suite pytest holds torch by then)
        "print(next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM:')) // 1024)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[1])  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    flagged, peak = done.stdout.strip().splitlines()
    assert json.loads(flagged) == [[q.key, ["huge"]]]
    # the record itself (90 MB of UTF-8, 60 MB as a str) plus one batch; the old scan took 2.6 GB
    assert int(peak) < 700, f"peak RSS {peak} MiB"


def test_every_record_holding_a_copy_is_named_for_a_decontaminated_build(tmp_path, capsys):
    q = _question()
    rows = [{"id": f"copy-{i}", "instruction": _lf(q), "output": "好的"} for i in range(8)]
    code, err, result = _audit(tmp_path, [json.dumps(r, ensure_ascii=False) + "\n" for r in rows], capsys)
    assert code == 0, err
    (entry,) = result["flagged"]
    assert entry["records_total"] == 8 and [r["train_id"] for r in entry["records"]] == [f"copy-{i}" for i in range(8)]
    assert sum("span" in r for r in entry["records"]) == 5  # the matched text of the first five only
