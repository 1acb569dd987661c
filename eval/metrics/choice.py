"""Multiple-choice scoring as LLaMA-Factory's removed `Evaluator` did it, but length-sorted and last-position only.

Prompt: LLaMA-Factory's own `zh` eval template (subject line, question, `\\nA. …`, `\\n答案：`), few-shot examples as
earlier user/assistant turns, all rendered by the model's chat template through `Template.encode_oneturn`, so the
text the model sees is the text it was trained on. Choice: the argmax of the next-token logits over the letters'
token ids, where each letter's id is read off the template itself: the answer turn is rendered once per letter
and the first token where the renderings differ is that letter's token (Llama-3's "A", Mistral's "▁A" after
`[/INST]`), so a model taught through LLaMA-Factory to answer "C" is read as C whatever its tokenizer. Those few
logits are computed in fp32 from the final hidden state, so a bf16 `lm_head` cannot decide near-ties by rounding.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eval.data.benchmarks import CHOICES, Question

PROMPT_LANG = "zh"


def eval_template() -> Any:
    """LLaMA-Factory's Chinese exam prompt (llamafactory.eval.template), used as is so the wording cannot drift."""
    from llamafactory.eval.template import get_eval_template

    return get_eval_template(PROMPT_LANG)


def pick_shots(question: Question, pool: Sequence[Question], n_shot: int, seed: int) -> list[Question]:
    """Few-shot examples for one question, fixed by (seed, question) so any subset or order gives the same shots."""
    if n_shot <= 0 or not pool:
        return []
    rng = random.Random(f"{seed}:{question.key}")
    return [pool[i] for i in rng.sample(range(len(pool)), min(n_shot, len(pool)))]


def build_messages(question: Question, shots: Sequence[Question], subject_name: str) -> list[dict[str, str]]:
    """Chat messages ending in the target question and its (unused) gold answer, as the Evaluator built them.

    LF's template formats only A–D; a question with a fifth option (XMedBench) gets the same strings with every
    option it has — LF's system line, its `\n{letter}. {text}` choice lines and its `\n答案：` — built here.
    """
    if question.benchmark != "xmedbench" and all(len(q.options) == 4 for q in (question, *shots)):
        return eval_template().format_example(
            target_data=question.as_example(),
            support_set=[shot.as_example() for shot in shots],
            subject_name=subject_name,
        )
    template = eval_template()
    messages: list[dict[str, str]] = []
    for q in (*shots, question):
        choices = "".join(template.choice.format(choice=ch, content=text) for ch, text in zip(q.letters, q.options,
                                                                                              strict=True))  # fmt: skip
        messages.append({"role": "user", "content": q.question + choices + template.answer})
        messages.append({"role": "assistant", "content": q.answer})
    messages[0]["content"] = template.system.format(subject=subject_name) + messages[0]["content"]
    return messages


def encode_prompt(template: Any, tokenizer: Any, messages: list[dict[str, str]]) -> list[int]:
    """Token ids up to and including the assistant prefix; the answer turn is dropped."""
    prompt_ids, _ = template.encode_oneturn(tokenizer=tokenizer, messages=messages)
    return list(prompt_ids)


class ChoiceTokenError(ValueError):
    """The template renders the answer letters so that no single next token tells them apart."""


@dataclass(frozen=True)
class ChoiceTokens:
    """How the template writes an answer letter: the shared ids before it, then one distinct id per letter."""

    prefix_ids: tuple[int, ...]
    letter_ids: tuple[int, ...]


def choice_tokens(
    template: Any, tokenizer: Any, messages: list[dict[str, str]], letters: Sequence[str]
) -> ChoiceTokens:
    """Each letter's token id, from the answer turn as the template renders it (the turn LF trains on).

    `messages` ends in the assistant answer; it is rendered with each letter in turn, and the first position
    where the renderings differ holds the letters' tokens. Tokens before it (a space piece some templates put
    first) are appended to every prompt, so the scored position is the letter's.
    """
    rendered = []
    for letter in letters:
        turn = [*messages[:-1], {**messages[-1], "content": letter}]
        rendered.append(list(template.encode_oneturn(tokenizer=tokenizer, messages=turn)[1]))
    width = min(len(r) for r in rendered)
    at = next((i for i in range(width) if len({r[i] for r in rendered}) > 1), None)
    if at is None:
        raise ChoiceTokenError(f"the template renders the answers {'/'.join(letters)} with no token telling them apart")
    ids = tuple(r[at] for r in rendered)
    if len(set(ids)) != len(ids):
        pieces = tokenizer.convert_ids_to_tokens(list(ids))
        raise ChoiceTokenError(
            f"the answer letters {'/'.join(letters)} do not start with distinct tokens ({pieces}); "
            "letters cannot be scored by their next-token logits with this tokenizer"
        )
    return ChoiceTokens(prefix_ids=tuple(rendered[0][:at]), letter_ids=ids)


def choice_token_ids(tokenizer: Any) -> list[int]:
    """LLaMA-Factory's removed Evaluator's rule (the last id of the bare letter), kept for comparison in bench."""
    return [tokenizer.encode(ch, add_special_tokens=False)[-1] for ch in CHOICES]


class LetterHead:
    """The letters' logits in fp32 from the final hidden state, via a hook on the output layer's input.

    Only the letters' rows of the head are used, so this costs nothing; where the head is not a plain Linear
    (an adapter on lm_head), the model's own logits are used instead.
    """

    def __init__(self, model: Any, letter_ids: Sequence[int]):
        import torch

        head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
        self.exact = type(head) is torch.nn.Linear
        self.hidden: Any = None
        self.handle = None
        if self.exact:
            index = torch.tensor(list(letter_ids), device=head.weight.device)
            self.rows = head.weight.detach().index_select(0, index).float()
            self.bias = None if head.bias is None else head.bias.detach().index_select(0, index).float()
            self.handle = head.register_forward_hook(self._keep)
        config = getattr(model, "config", None)
        self.softcap = getattr(config, "final_logit_softcapping", None)
        self.index = torch.tensor(list(letter_ids))

    def _keep(self, _module, inputs, _output) -> None:
        self.hidden = inputs[0]

    def logits(self, out: Any) -> Any:
        import torch

        if not self.exact:
            return out.logits[:, -1, :].float().index_select(-1, self.index.to(out.logits.device))
        hidden = self.hidden[:, -1, :].float()
        logits = hidden @ self.rows.to(hidden.device).T
        if self.bias is not None:
            logits = logits + self.bias.to(hidden.device)
        if self.softcap:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits

    def close(self) -> None:
        if self.handle is not None:
            self.handle.remove()


@dataclass
class ScoreStats:
    batches: int = 0
    real_tokens: int = 0
    batch_tokens: int = 0  # rows x padded length, summed over batches
    seconds: float = 0.0

    @property
    def pad_share(self) -> float:
        return 1.0 - self.real_tokens / self.batch_tokens if self.batch_tokens else 0.0


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped longest first (ties by index): little padding, and an out-of-memory shows up at once."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def score_prompts(
    model: Any,
    prompts: Sequence[Sequence[int]],
    choice_ids: Sequence[int],
    pad_id: int,
    batch_size: int = 8,
    progress: bool = True,
) -> tuple[list[int], list[list[float]], ScoreStats]:
    """For each prompt: index of the chosen letter and the softmax over the letter logits.

    One forward pass per prompt. Batches are left-padded with explicit position ids (as `generate` does for its
    prefill), so every row's last position is the next-token position and only that row of logits is computed;
    the full-vocabulary logits of every position would cost batch x length x 152k floats.
    """
    import torch
    from tqdm import tqdm

    if batch_size < 1:
        raise ValueError("batch size must be at least 1")
    device = getattr(model, "device", torch.device("cpu"))
    preds: list[int] = [0] * len(prompts)
    probs: list[list[float]] = [[]] * len(prompts)
    stats = ScoreStats()
    batches = length_sorted_batches([len(p) for p in prompts], batch_size)
    head = LetterHead(model, choice_ids)
    start = time.perf_counter()
    try:
        with torch.inference_mode():
            for batch in tqdm(batches, desc="mcq batches", unit="batch", disable=not progress):
                width = max(len(prompts[i]) for i in batch)
                input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                for row, i in enumerate(batch):
                    ids = prompts[i]
                    input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
                    mask[row, width - len(ids) :] = 1
                position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
                out = model(
                    input_ids=input_ids.to(device),
                    attention_mask=mask.to(device),
                    position_ids=position_ids.to(device),
                    logits_to_keep=1,
                    use_cache=False,
                )
                letter_logits = head.logits(out)
                letter_probs = torch.softmax(letter_logits, dim=-1).cpu()
                # torch.argmax returns the first maximum, so exact ties resolve to the earlier letter, as in LF.
                chosen = torch.argmax(letter_logits, dim=-1).cpu()
                for row, i in enumerate(batch):
                    preds[i] = int(chosen[row])
                    probs[i] = [float(p) for p in letter_probs[row]]
                stats.batches += 1
                stats.real_tokens += int(mask.sum())
                stats.batch_tokens += mask.numel()
    finally:
        head.close()
    stats.seconds = time.perf_counter() - start
    return preds, probs, stats
