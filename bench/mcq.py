"""`eval mcq` scoring vs LLaMA-Factory's `Evaluator.batch_inference` on the paper's 1,415 questions.

    python bench/mcq.py [--model DIR --template T] [--batch-size 8] [--threads N] [--repeats 1]

Both sides score the same token ids (prompts rendered once, as `eval mcq` renders them) with the same model at
the same batch size. Ours: length-sorted batches, left padding with explicit position ids, logits of the last
position only. LLaMA-Factory's: its own `Evaluator.batch_inference` called on batches built as its `eval()`
builds them (file order, `tokenizer.pad` with right padding, logits of every position). The default model is
the tiny random Qwen2 of medasst.tiny with its attention output amplified, so that answers vary by question.
Prints time per side, the ratio, the padded-token share of each and whether the predictions agree.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from eval.data.benchmarks import EVAL_SPLIT, BenchmarkSource, display_name, resolve_subjects
from eval.metrics.choice import (
    ScoreStats,
    build_messages,
    choice_token_ids,
    encode_prompt,
    score_prompts,
)
from medasst.facts import cache_dir


def varied_tiny_model() -> Path:
    """Tiny Qwen2 with attention output x50: a plain random tiny model answers from the last token alone."""
    from medasst import tiny

    out = cache_dir() / "tiny-models" / f"qwen2-v{tiny.BUILD_VERSION}-seed0-mcq-varied"
    if (out / "config.json").is_file():
        return out
    return tiny.amplify_attention(tiny.cached("qwen2"), out)


def lf_predict(loaded: Any, prompts: list[list[int]], batch_size: int) -> tuple[list[int], ScoreStats]:
    """LLaMA-Factory's batching, verbatim in effect: unsorted, `tokenizer.pad` on the right, its batch_inference."""
    from llamafactory.eval.evaluator import Evaluator

    tokenizer = loaded.tokenizer
    evaluator = SimpleNamespace(model=loaded.model, choice_inputs=choice_token_ids(tokenizer))
    side = tokenizer.padding_side
    tokenizer.padding_side = "right"  # as Evaluator.__init__ sets it
    inputs = [{"input_ids": ids, "attention_mask": [1] * len(ids)} for ids in prompts]
    letters: list[str] = []
    stats = ScoreStats()
    start = time.perf_counter()
    try:
        for i in range(0, len(inputs), batch_size):
            batch = tokenizer.pad(inputs[i : i + batch_size], return_attention_mask=True, return_tensors="pt")
            letters += Evaluator.batch_inference(evaluator, batch.to(loaded.model.device))
            stats.batches += 1
            stats.real_tokens += int(batch["attention_mask"].sum())
            stats.batch_tokens += batch["attention_mask"].numel()
    finally:
        tokenizer.padding_side = side
    stats.seconds = time.perf_counter() - start
    return ["ABCD".index(x) for x in letters], stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model folder (default: the amplified tiny Qwen2)")
    parser.add_argument("--template", default="qwen")
    parser.add_argument("--subjects", default="paper")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per side; the fastest is reported")
    args = parser.parse_args(argv)

    import torch

    from eval.backends.model import load

    if args.threads:
        torch.set_num_threads(args.threads)
    model = args.model or str(varied_tiny_model())
    loaded = load(model, template=args.template)
    source = BenchmarkSource()
    prompts: list[list[int]] = []
    answers: list[str] = []
    for subject in resolve_subjects(args.subjects, source):
        questions, _ = source.load(subject.benchmark, subject.subject, EVAL_SPLIT[subject.benchmark])
        name = display_name(subject.benchmark, subject.subject)
        for q in questions:
            prompts.append(encode_prompt(loaded.template, loaded.tokenizer, build_messages(q, [], name)))
            answers.append(q.answer)
    choice_ids = choice_token_ids(loaded.tokenizer)
    pad_id = loaded.tokenizer.pad_token_id

    # Warm-up on a few prompts so neither side pays first-call allocation costs.
    score_prompts(loaded.model, prompts[:4], choice_ids, pad_id, args.batch_size, progress=False)
    lf_predict(loaded, prompts[:4], args.batch_size)
    ours_runs, lf_runs = [], []
    for _ in range(args.repeats):
        ours, probs, ours_stats = score_prompts(loaded.model, prompts, choice_ids, pad_id, args.batch_size, False)
        ours_runs.append(ours_stats)
        theirs, lf_stats = lf_predict(loaded, prompts, args.batch_size)
        lf_runs.append(lf_stats)
    best_ours = min(ours_runs, key=lambda s: s.seconds)
    best_lf = min(lf_runs, key=lambda s: s.seconds)

    differ = [i for i, (a, b) in enumerate(zip(ours, theirs, strict=True)) if a != b]
    margins = sorted(sorted(p)[-1] - sorted(p)[-2] for p in probs)
    letters = "".join(sorted({"ABCD"[i] for i in ours}))
    accuracy = 100 * sum("ABCD"[i] == a for i, a in zip(ours, answers, strict=True)) / len(answers)
    print(
        f"model {model} ({loaded.model.dtype}), {len(prompts)} questions, batch size {args.batch_size}, "
        f"threads {torch.get_num_threads()}, repeats {args.repeats}"
    )
    print(
        f"prompt tokens: total {sum(map(len, prompts))}, mean {sum(map(len, prompts)) / len(prompts):.1f}, "
        f"max {max(map(len, prompts))}"
    )
    for label, s in (("ours (sorted, left pad, last logits)", best_ours), ("LF batch_inference (unsorted)", best_lf)):
        print(f"{label:<40} {s.seconds:8.2f} s  {s.batches:4d} batches  padded-token share {100 * s.pad_share:5.1f} %")
    print(f"time ratio LF / ours: {best_lf.seconds / best_ours.seconds:.2f}x")
    print(
        f"predictions identical: {not differ} ({len(differ)} differ); letters predicted: {letters}; "
        f"smallest top-2 probability margin {margins[0]:.2e}; accuracy {accuracy:.2f}"
    )
    return 0 if not differ else 1


if __name__ == "__main__":
    sys.exit(main())
