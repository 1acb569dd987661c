"""`eval.metrics.similarity` equals LLaMA-Factory's own `ComputeSimilarity` per sample and in the mean."""

from __future__ import annotations

import random

import numpy as np
import pytest

from eval.metrics import similarity

AWKWARD = [
    ("", ""),
    ("", "可能是感冒引起的。"),
    ("可能是感冒引起的。", ""),
    ("   ", "可能是感冒引起的。"),
    ("可能是感冒引起的。", " \t\n "),
    ("\n", "\n"),
    ("可能是感冒引起的，建议就医。", "可能是感冒或流感引起的，建议测量体温并就医。"),
    ("Take ibuprofen twice a day.", "Take ibuprofen 200 mg twice a day, after meals."),
    ("Hello world", "Hello world"),
    ("，。！？", "。。。！"),
    ("...", "......。"),
    ("！", "！"),
    ("？？？", "可能是感冒。"),
    ("a", "a"),
    ("哈哈哈哈哈哈", "哈哈哈"),
    ("血压 140/90 mmHg，建议复查。", "血压140/90mmHg，建议低盐饮食并复查。"),
    ("第一句。第二句！第三句？", "第一句。第三句？第二句！"),
    ("“你好。”他说。", "他说：“你好。”"),
    ("多喝水\n多休息\n\n", "多休息，多喝水"),
    ("😀 头痛", "头痛 😀"),
    ("相同的回答", "相同的回答"),
]

_WORDS_TEXT = (
    "头痛 失眠 建议 医生 患者 感冒 发热 咳嗽 注意 休息 多喝水 检查 血常规 可能 引起 治疗 药物 服用 症状 "
    "医院 就诊 高血压 糖尿病 the patient should rest and drink water mg 5 10 ， 。 ！ ？ ： ； 、 … ( ) \n   ."
)
WORDS = _WORDS_TEXT.split(" ")


def random_text(rng: random.Random) -> str:
    return "".join(rng.choice(WORDS) for _ in range(rng.randint(0, 40)))


def pairs_for_test() -> list[tuple[str, str]]:
    rng = random.Random(1234)
    pairs = list(AWKWARD)
    for _ in range(300):
        label = random_text(rng)
        # half the predictions share text with the label, so higher-order n-grams match too
        pred = label[: rng.randint(0, len(label))] + random_text(rng) if rng.random() < 0.5 else random_text(rng)
        pairs.append((pred, label))
    return pairs


class StubTokenizer:
    """Decodes id i to the i-th string, so LF scores exactly our strings (whitespace-only ones included)."""

    pad_token_id = 0

    def __init__(self, texts: list[str]):
        self.texts = ["", *texts]

    def batch_decode(self, rows, skip_special_tokens: bool = True) -> list[str]:
        return ["".join(self.texts[int(i)] for i in row if int(i) != self.pad_token_id) for row in rows]


def lf_per_sample(pairs: list[tuple[str, str]]) -> dict[str, list[float]]:
    from llamafactory.train.sft.metric import ComputeSimilarity
    from transformers import EvalPrediction

    preds = [p for p, _ in pairs]
    labels = [lab for _, lab in pairs]
    tokenizer = StubTokenizer(preds + labels)
    pred_ids = np.arange(1, len(pairs) + 1)[:, None]
    label_ids = np.arange(len(pairs) + 1, 2 * len(pairs) + 1)[:, None]
    metric = ComputeSimilarity(tokenizer=tokenizer)
    metric(EvalPrediction(predictions=pred_ids, label_ids=label_ids), compute_result=False)
    return {k: list(v) for k, v in metric.score_dict.items()}


def test_lcs_length_matches_rouge_chinese():
    from rouge_chinese.rouge_score import _len_lcs

    rng = random.Random(7)
    for _ in range(300):
        x = [rng.choice("abcdef") for _ in range(rng.randint(0, 30))]
        y = [rng.choice("abcdeg") for _ in range(rng.randint(0, 30))]
        assert similarity.lcs_length(x, y) == _len_lcs(x, y)


def test_per_sample_equals_llamafactory():
    pairs = pairs_for_test()
    lf = lf_per_sample(pairs)
    ours = np.array([similarity.score_pair(p, lab) for p, lab in pairs])
    for j, metric in enumerate(similarity.METRICS):
        for i, (pred, label) in enumerate(pairs):
            assert ours[i, j] == pytest.approx(lf[metric][i], abs=1e-6), (metric, pred, label)
        assert float(np.mean(ours[:, j])) == pytest.approx(float(np.mean(lf[metric])), abs=1e-6)
    # not just close: identical floats (same operations in the same order)
    assert [list(row) for row in ours] == [[lf[m][i] for m in similarity.METRICS] for i in range(len(pairs))]


def test_known_value_from_llamafactory_docs():
    scores = similarity.score_pair("可能是感冒引起的，建议就医。", "可能是感冒或流感引起的，建议测量体温并就医。")
    assert scores == (40.1851, 81.8182, 60.0, 81.8182)


def test_real_tokenizer_roundtrip(tiny_model):
    """Drive LF's metric the way do_predict does: token ids through the (tiny) Qwen2 tokenizer."""
    from llamafactory.extras.constants import IGNORE_INDEX
    from llamafactory.train.sft.metric import ComputeSimilarity
    from transformers import AutoTokenizer, EvalPrediction

    tokenizer = AutoTokenizer.from_pretrained(tiny_model("qwen2"))
    pairs = AWKWARD[6:] + pairs_for_test()[40:80]
    width = 1 + max(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for pair in pairs for t in pair)

    def ids(texts: list[str]) -> np.ndarray:
        out = np.full((len(texts), width), IGNORE_INDEX)
        for i, text in enumerate(texts):
            row = tokenizer(text, add_special_tokens=False)["input_ids"]
            out[i, : len(row)] = row
        return out

    metric = ComputeSimilarity(tokenizer=tokenizer)
    lf = metric(EvalPrediction(predictions=ids([p for p, _ in pairs]), label_ids=ids([lab for _, lab in pairs])))
    decoded = [
        (
            tokenizer.decode(tokenizer(p, add_special_tokens=False)["input_ids"], skip_special_tokens=True),
            tokenizer.decode(tokenizer(lab, add_special_tokens=False)["input_ids"], skip_special_tokens=True),
        )
        for p, lab in pairs
    ]
    ours = np.array([similarity.score_pair(p, lab) for p, lab in decoded])
    for j, name in enumerate(similarity.METRICS):
        assert float(np.mean(ours[:, j])) == pytest.approx(lf[name], abs=1e-6)
