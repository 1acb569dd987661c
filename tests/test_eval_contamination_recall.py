"""Recall of the contamination audit on copies of real shipped questions, drawn at random (seeded) from every
paper subject, short stems included, each planted in one verbatim layout (LLaMA-Factory's eval prompt, every
label style, no labels, one line, reordered, full-width, stem and options in two turns, in `history`, in an
answer listing several questions). Two subjects get no plant and must show no flag; the demo's converted
training data is the negative control."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from eval import contamination
from eval.data.benchmarks import EVAL_SPLIT, BenchmarkSource, display_name, resolve_subjects

SEED = 24
PER_LAYOUT = 40
UNPLANTED = {"ceval:basic_medicine", "cmmlu:college_medical_statistics"}
DEMO_TRAIN = Path(__file__).resolve().parents[1] / "demo" / "data" / "medasst_train.jsonl"
HEADER = "以下是中国关于{}考试的单项选择题，请选出其中的正确答案。\n\n"


def full_width(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if 0x21 <= ord(c) <= 0x7E else ("\u3000" if c == " " else c) for c in text)


def _options(q, labels: list[str], order: list[int], sep: str = "\n") -> str:
    return sep.join(f"{lab}{q.options[i]}" for lab, i in zip(labels, order, strict=False))


def _letter(q, order: list[int], keys: str = "ABCDE") -> str:
    return keys[order.index(ord(q.answer) - ord("A"))]


def layout(name: str, q, rng: random.Random) -> dict:
    """A training record holding question `q` copied in layout `name`."""
    k = len(q.options)
    order = list(range(k))
    subject = display_name(q.benchmark, q.subject)
    if name == "lf":  # LLaMA-Factory's eval prompt: stem, \nA. option lines, 答案：, the letter as the reply
        prompt = HEADER.format(subject) + q.question + "\n" + _options(q, [f"{c}. " for c in "ABCDE"], order)
        return {"instruction": prompt + "\n答案：", "output": q.answer}
    if name == "lf_one_turn":
        body = q.question + "\n" + _options(q, [f"{c}. " for c in "ABCDE"], order) + f"\n答案：{q.answer}"
        return {"instruction": "请做这道题", "output": body}
    if name == "dun_inline":  # A、 labels on one line, 正确答案是X
        body = q.question + " " + _options(q, [f"{c}、" for c in "ABCDE"], order, " ")
        return {"instruction": body, "output": f"正确答案是{q.answer}"}
    if name == "paren_fullwidth":  # （A） labels, full-width forms throughout
        body = q.question + "\n" + _options(q, [f"({c})" for c in "ABCDE"], order) + f"\n答案：{q.answer}"
        return {"instruction": full_width(body), "output": full_width(f"答案：({q.answer})")}
    if name == "number_paren":  # (1) labels, 答案：n
        body = q.question + "\n" + _options(q, [f"({i}) " for i in range(1, 6)], order)
        return {"instruction": body, "output": f"答案：{ord(q.answer) - ord('A') + 1}"}
    if name == "number_paren_fw":  # （1）
        body = q.question + "  " + _options(q, [f"（{i}）" for i in range(1, 6)], order, "  ")
        return {"instruction": body, "output": f"正确答案是（{ord(q.answer) - ord('A') + 1}）"}
    if name == "number_dot":  # 1. labels
        body = q.question + "\n" + _options(q, [f"{i}. " for i in range(1, 6)], order)
        return {"instruction": body, "output": f"答案：{ord(q.answer) - ord('A') + 1}"}
    if name == "no_labels_lines":
        body = q.question + "\n" + _options(q, [""] * k, order)
        return {"instruction": body, "output": f"答案：{q.options[ord(q.answer) - ord('A')]}"}
    if name == "no_labels_inline":
        body = q.question + "  " + _options(q, [""] * k, order, "  ")
        return {"instruction": body, "output": q.options[ord(q.answer) - ord("A")]}
    if name == "reordered":  # the copy's own lettering: its 答案 names its own letter
        rng.shuffle(order)
        body = q.question + "\n" + _options(q, [f"{c}. " for c in "ABCDE"], order)
        return {"instruction": body, "output": f"答案：{_letter(q, order)}"}
    if name == "split_turns":  # Alpaca: the stem as instruction, the options as input, the letter as output
        return {"instruction": q.question, "input": _options(q, [f"{c}. " for c in "ABCDE"], order),
                "output": q.answer}  # fmt: skip
    if name == "history":
        prompt = HEADER.format(subject) + q.question + "\n" + _options(q, [f"{c}. " for c in "ABCDE"], order)
        history = [[prompt + "\n答案：", q.answer]]
        return {"instruction": "谢谢，还有别的题吗？", "output": "没有了。", "history": history}
    raise ValueError(name)


LAYOUTS = ("lf", "lf_one_turn", "dun_inline", "paren_fullwidth", "number_paren", "number_paren_fw", "number_dot",
           "no_labels_lines", "no_labels_inline", "reordered", "split_turns", "history", "practice")  # fmt: skip


def practice(qs: list, rng: random.Random) -> dict:
    """An exam-practice answer listing several questions, numbered, each with options and its answer."""
    parts = [f"{n}. {q.question}\n" + _options(q, [f"{c}. " for c in "ABCDE"], list(range(len(q.options))))
             + f"\n答案：{q.answer}\n解析：略。" for n, q in enumerate(qs, 1)]  # fmt: skip
    return {"instruction": "给我出几道医学练习题", "output": "好的，下面是练习题：\n\n" + "\n\n".join(parts)}


def all_questions():
    source = BenchmarkSource()
    out = []
    for subject in resolve_subjects("paper", source):
        out += source.load(subject.benchmark, subject.subject, EVAL_SPLIT[subject.benchmark])[0]
    return out


def plant(root: Path) -> tuple[Path, dict[str, list[tuple[str, str]]], set[str]]:
    """(training file, layout → [(question key, record id)], the keys of every plantable question)."""
    rng = random.Random(SEED)
    questions = [q for q in all_questions() if f"{q.benchmark}:{q.subject}" not in UNPLANTED]
    rng.shuffle(questions)
    rows, plants = [], {}  # layout → [(question key, record id)]
    for li, name in enumerate(LAYOUTS):
        picked = questions[li * PER_LAYOUT : (li + 1) * PER_LAYOUT]
        if name == "practice":
            for g in range(0, len(picked), 4):
                rid = f"practice-{g}"
                rows.append(practice(picked[g : g + 4], rng) | {"id": rid})
                plants.setdefault(name, []).extend((q.key, rid) for q in picked[g : g + 4])
            continue
        for j, q in enumerate(picked):
            rid = f"{name}-{j}"
            rows.append(layout(name, q, rng) | {"id": rid})
            plants.setdefault(name, []).append((q.key, rid))
    demo = [json.loads(line) for line in DEMO_TRAIN.read_text(encoding="utf-8").splitlines() if line.strip()]
    mixed = demo + rows
    random.Random(SEED).shuffle(mixed)
    train = root / "train.jsonl"
    train.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in mixed), encoding="utf-8")
    return train, plants, {q.key for q in questions}


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    root = tmp_path_factory.mktemp("recall")
    train, plants, keys = plant(root)
    request = contamination.ContaminationRequest(output=root / "out", train=train, subjects="paper", dataset="")
    return contamination.run(request), plants, keys


def test_every_verbatim_layout_is_found_in_95_percent_of_checkable_items(planted):
    result, plants, _ = planted
    entries = {e["id"]: e for e in result["flagged"]}
    unchecked = set(result["unchecked"])
    recall = {}
    for name, pairs in plants.items():
        checkable = [(key, rid) for key, rid in pairs if key not in unchecked]
        hit = [key for key, rid in checkable if entries.get(key, {}).get("status") == "dirty"
               and rid in {r["train_id"] for r in entries[key]["records"]}]  # fmt: skip
        recall[name] = len(hit) / len(checkable)
    print("recall per layout:", {k: round(v, 3) for k, v in recall.items()})
    assert all(v >= 0.95 for v in recall.values()), recall
    # the copy gives its answer in every layout: the answer side is found with the question side
    sides = [entries[key]["contamination"] for pairs in plants.values() for key, _ in pairs if key in entries]
    assert sides.count("input-and-label") / len(sides) >= 0.95


def test_no_flag_where_nothing_was_planted_and_none_on_the_demo_dialogues(planted):
    result, _, planted_keys = planted
    for subject in UNPLANTED:
        row = result["subjects"][subject]
        assert row["dirty"] == row["partly"] == 0, (subject, row)
    stray = [e for e in result["flagged"] if e["id"] not in planted_keys]
    assert stray == []  # nothing flagged but the plants: no record of the demo's training data matched anything
    assert not any(r["train_id"].startswith("medchatzh") or r["train_id"].startswith("webmedqa")
                   for e in result["flagged"] for r in e["records"])  # fmt: skip


def test_short_items_are_unchecked_never_clean(planted):
    result, _, _ = planted
    unchecked = set(result["unchecked"])
    assert unchecked  # CMMLU anatomy's short items (脾之华在 毛 发 面 唇 is not in the paper set; 8 characters)
    totals = result["benchmarks"]["cmmlu"]
    assert totals["n"] == totals["dirty"] + totals["partly"] + totals["clean"] + totals["unchecked"]
    flagged = {e["id"] for e in result["flagged"]}
    assert not unchecked & flagged
