"""CMB-Clin's own judging protocol: the GPT-4 evaluation prompt of CMB's README, word for word, and the generation
settings CMB's harness fixes for the CMB-Clin answers.

Source: github.com/FreedomIntelligence/CMB @6c8ece4, README.md "CMB-Clin GPT-4 evaluation Prompt" (Apache-2.0,
© the CMB authors; Wang et al., 2023, "CMB: A comprehensive medical benchmark in Chinese"). The text keeps the
README's line breaks and the spaces around its punctuation (it was copied from the paper's PDF); its per-level
definitions of the four criteria are the scale, and its reply format is a JSON object of four integers, shown
with typographic quotes (eval/judging/score_reader.py reads that shape). The prompt is one user message; CMB
gives no system prompt, no judge temperature and no aggregation (CMB issue #35).

Generation (src/generate_answers.py, workers/base.py, configs/model_config.yaml): greedy (`do_sample: False`),
`max_new_tokens` 512, `min_new_tokens` 1, one sequence, and `repetition_penalty` 1.1 forced for the QA / Clin
sets; earlier questions are asked with CMB's reference answers as the prior turns (eval/data/cmbclin.py).
"""

from __future__ import annotations

from typing import Any

SOURCE = "FreedomIntelligence/CMB@6c8ece4 README.md, CMB-Clin GPT-4 evaluation prompt (Apache-2.0)"
GENERATION: dict[str, Any] = {
    "do_sample": False,
    "max_new_tokens": 512,
    "min_new_tokens": 1,
    "num_return_sequences": 1,
    "repetition_penalty": 1.1,
    "source": "FreedomIntelligence/CMB@6c8ece4 workers/base.py init_generation_config, configs/model_config.yaml",
}

JUDGE_PROMPT = """You are an AI evaluator specializing in assessing the quality of answers
provided by other language models . Your primary goal is to rate the
answers based on their fluency , relevance , completeness , proficiency
in medicine . Use the following scales to evaluate each criterion :
Fluency :
1: Completely broken and unreadable sentence pieces
2: Mostly broken with few readable tokens
3: Moderately fluent but with limited vocabulary
4: Mostly coherent in expressing complex subjects
5: Human - level fluency
Relevance :
1: Completely unrelated to the question
2: Some relation to the question , but mostly off - topic
3: Relevant , but lacking focus or key details
4: Highly relevant , addressing the main aspects of the question
5: Directly relevant and precisely targeted to the question
Completeness :
1: Extremely incomplete
2: Almost incomplete with limited information
3: Moderate completeness with some information
4: Mostly complete with most of the information displayed
5: Fully complete with all information presented
Proficiency in medicine :
1: Using plain languages with no medical terminology .
2: Equipped with some medical knowledge but lacking in - depth details
3: Conveying moderately complex medical information with clarity
4: Showing solid grasp of medical terminology but having some minor
mistakes in detail
5: Fully correct in all presented medical knowledge
You will be provided with the following information :
- a description
- a conversation based on the description ( optional )
- a question based on the description and conversation
- the solution to the question
- a model ’ s answer to the question
[ description ]
{ description }
[ end of description ]
[ conversation ]
{ history }
[ end of conversation ]
[ question ]
{ question }
[ end of question ]
[ solution ]
{ solution }
[ end of solution ]
[ answer ]
{ answer }
[ end of answer ]
Make sure to provide your evaluation results in JSON format and ONLY the
JSON , with separate ratings for each of the mentioned criteria as in
the following example :
{ ‘ fluency ’: 3 , ‘ relevance ’: 3 , ‘ completeness ’: 3 , ‘ proficiency ’: 3}"""

_INTRO = "以下是一位患者的病例资料："
_ASK = "请回答："


def _question(text: str) -> str:
    """The question alone: our first turn wraps it with the case description (eval.data.cmbclin.CASE_INTRO)."""
    if text.startswith(_INTRO) and _ASK in text:
        return text.split(_ASK, 1)[1].strip()
    return text.strip()


def fill(template: str, item: Any, answer: str) -> str:
    """The prompt for one answer: the case, the earlier questions with their reference answers, this question,
    its reference (CMB's "solution") and the answer judged. Placeholders are replaced, not formatted: the
    example reply's braces are text."""
    history = "\n\n".join(f"Question: {_question(q)}\nAnswer: {a}" for q, a in item.history)
    filled = template
    for name, value in (
        ("description", item.case),
        ("history", history),
        ("question", _question(item.question)),
        ("solution", item.reference),
        ("answer", answer),
    ):
        filled = filled.replace("{ " + name + " }", value)
    return filled
