"""Replies that parser version 2 read wrong, each a confident reading the reply does not make: a base model running
on into the next few-shot question, conditional and hedged alternatives, "Answer: C" at a line end, spaced terms
(B 超), an echoed judge template or option list, the article "a", a comparison in one respect, 安全性, a score out of
10, a range, a revision, a quoted example format. Expected: the reading the reply makes, or None where it is
ambiguous.

Sources: "constructed" unless noted; MCQ questions drawn (seed 7) from the shipped CMMLU test / C-Eval val CSVs
whose options hold Latin letters or numbers; the echoed judge template is MT-Bench's pairwise prompt
(lm-sys/FastChat fastchat/llm_judge/data/judge_prompts.jsonl, "pair-v2"), quoted as a judge might echo it.
"""

from __future__ import annotations

import pytest

from eval.judging.score_reader import parse_scores
from eval.judging.verdicts import parse_pairwise, parse_safety
from eval.metrics.letters import parse_letter

CMB = ("fluency", "relevance", "completeness", "proficiency")

# (reply, letters, expected, source)
LETTERS = [
    # a change of mind: the last statement is "it is C", read as the earlier "the answer is A"
    ("I think the answer is A. Actually, on reflection, it is C.", "ABCD", "C", "constructed"),
    # a base model running on into the next few-shot question: the reply's own answer is the first one
    ("答案：B\n\n问题：下列哪项...？\nA. x\nB. y\n答案：C", "ABCD", "B", "constructed"),
    (
        "答案是C。\n\n问题2：DNA 受热变性时出现的现象是\nA. 最大光吸收峰波长发生转移\nB. 多聚核苷酸链变为单核苷酸\n"
        "C. 溶液黏度增加\nD. 260nm 波长处的吸光度增高\n答案是D。",
        "ABCD",
        "C",
        "constructed; the second question is CMMLU professional_medicine.csv (drawn, seed 7)",
    ),
    (
        "C\n\nQuestion: Which of the following is correct?\nA. x\nB. y\nC. z\nD. w\nAnswer: A",
        "ABCD",
        "C",
        "constructed",
    ),
    # hedges: the reply leans to A, or names two
    ("可能是A，也可能是B", "ABCD", None, "constructed"),
    ("我觉得应该是A，不过也可能是B。", "ABCD", None, "constructed"),
    # conditional alternatives after the answer
    ("答案：C，如果题目问的是最常用的检查，则答案是D。", "ABCD", "C", "constructed"),
    (
        "答案：C（胃镜）。如果没有胃镜条件，可选A。",
        "ABCD",
        "C",
        "constructed for CMMLU college_medicine.csv 上消化道出血 (drawn, seed 7)",
    ),
    ("答案为C。若无条件，则应选B。", "ABCD", "C", "constructed"),
    # a later "B项的说法也正确" makes a single-answer reply ambiguous
    ("正确答案是A，B项的说法也正确，C、D错误", "ABCD", None, "constructed"),
    # "Answer: X" at a line end followed by an English word: X is taken for an article, a later option decides
    (
        "Answer: C\nExplanation: Endoscopy is diagnostic and therapeutic. (A) is correct only for biliary disease.",
        "ABCD",
        "C",
        "constructed for CMMLU college_medicine.csv 上消化道出血 (drawn, seed 7)",
    ),
    (
        "Answer: B\nOption A is correct when p > 0.05, which is not the case here.",
        "ABCD",
        "B",
        "constructed for CMMLU college_medical_statistics.csv |t|≥t0.05 (drawn, seed 7)",
    ),
    ("Answer: D\nExplanation: A is wrong. B is wrong. C is correct in some cases.", "ABCD", None, "constructed"),
    # a spaced term "B 超" / "B 型" / "B 族" (pangu-style spacing) read as the option letter
    (
        "答案是腹部 B 超",
        "ABCD",
        None,
        "constructed for CMMLU clinical_knowledge.csv 腹膜结核 (drawn, seed 7; option D is 腹部B超)",
    ),
    (
        "对确定诊断最有价值的是腹腔穿刺腹水检查。腹部 B 超只能发现腹水。",
        "ABCD",
        None,
        "constructed for CMMLU clinical_knowledge.csv 腹膜结核 (drawn, seed 7)",
    ),
    (
        "答案是腹部 B 型超声检查",
        "ABCD",
        None,
        "constructed for CMMLU college_medicine.csv 上消化道出血 (drawn, seed 7; option A is 腹部B型超声检查)",
    ),
    ("答案是 B 族链球菌", "ABCD", None, "constructed"),
]

# (reply, expected, source)
PAIRWISE = [
    (
        "My final verdict is [[A]].\n\nWait — on reflection, Assistant B's answer is better because it is correct.",
        None,
        "constructed",
    ),
    (
        'Output your final verdict by strictly following this format:\n"[[A]]" if assistant A is better,\n'
        '"[[B]]" if assistant B is better,\n"[[C]]" for a tie.\n\nAssistant A is better.',
        "A",
        "constructed; template from MT-Bench pair-v2 prompt (lm-sys/FastChat judge_prompts.jsonl)",
    ),
    (
        'Following the format ("[[A]]" if assistant A is better, "[[B]]"\nif assistant B is better, and "[[C]]" for '
        "a tie), my verdict: Assistant A is better.",
        "A",
        "constructed; template wrapped as in FastChat-derived judge prompts",
    ),
    (
        "按照要求的格式：\n[[A]]表示助手A更好\n[[B]]表示助手B更好\n[[C]]表示平局\n\n我的判断：助手A更好。",
        "A",
        "constructed",
    ),
    # the article "a" read as side A
    (
        "Assistant B is more concise.\nHowever, I would prefer a response that explains the mechanism.",
        None,
        "constructed",
    ),
    ("Final verdict: a draw.", "tie", "constructed"),
    # a partial comparison read as the verdict
    ("总体而言，虽然助手A比助手B更详细，但助手B的回答更准确，我更倾向于助手B。", "B", "constructed"),
    ("Overall, Assistant B wins.\nAssistant A is better at formatting, though.", "B", "constructed"),
    # medical terms read as sides
    ("助手A的回答更好。\n注：两位助手都建议患者选择B超检查。", "A", "constructed"),
    (
        "Both assistants mention vitamin B is better absorbed with food. Assistant A is more complete.",
        "A",
        "constructed",
    ),
    # an echoed option list: "C. 平局" taken as the verdict over 答案：B
    ("A. 助手A更好\nB. 助手B更好\nC. 平局\n答案：B", "B", "constructed"),
]

SAFETY = [
    ("结论：安全性不足，判定为不安全", False, "constructed"),
    ("结论：安全隐患较大", False, "constructed"),
    ("判断：安全性存疑", None, "constructed"),
]

# (reply, expected scores in CMB order or None, source)
SCORES = [
    (
        "流畅性：4分（满分10分）\n相关性：5分（满分10分）\n完整性：3分（满分10分）\n专业性：4分（满分10分）",
        None,
        "constructed (a judge scoring out of 10)",
    ),
    (
        "Fluency: 4 out of 10\nRelevance: 5 out of 10\nCompleteness: 3 out of 10\nProficiency: 2 out of 10",
        None,
        "constructed (a judge scoring out of 10)",
    ),
    ("Fluency: 4 to 5\nRelevance: 5\nCompleteness: 3\nProficiency: 4", None, "constructed"),
    (
        "流畅性：4，相关性：5，完整性：3，专业性：4。\n参考格式：{'fluency': 1, 'relevance': 1, 'completeness': 1, "
        "'proficiency': 1}",
        [4, 5, 3, 4],
        "constructed (the CMB-Clin format echoed after the scores)",
    ),
    ("流畅性：5分制下为4分\n相关性：5分\n完整性：3分\n专业性：4分", [4, 5, 3, 4], "constructed"),
    ("Fluency: 5/5 -> 4/5 after revision\nRelevance: 5\nCompleteness: 3\nProficiency: 4", None, "constructed"),
]


@pytest.mark.parametrize(("reply", "letters", "expected", "source"), LETTERS)
def test_letter(reply, letters, expected, source):
    assert parse_letter(reply, letters)[0] == expected, source


@pytest.mark.parametrize(("reply", "expected", "source"), PAIRWISE)
def test_pairwise(reply, expected, source):
    assert parse_pairwise(reply) == expected, source


@pytest.mark.parametrize(("reply", "expected", "source"), SAFETY)
def test_safety(reply, expected, source):
    assert parse_safety(reply) is expected, source


@pytest.mark.parametrize(("reply", "expected", "source"), SCORES)
def test_scores(reply, expected, source):
    got = parse_scores(reply, CMB)
    assert (None if got is None else [got[c] for c in CMB]) == expected, source
