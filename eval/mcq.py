"""`python -m eval.run mcq`: CMMLU + C-Eval medical multiple choice (the paper's Table 2) → OUT/mcq.json.

Accuracy is 100 x correct / n per subject and per benchmark; `overall` is the plain mean of the two benchmark
accuracies, the paper's definition (not the mean over all questions).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eval.backends.model import ModelLoadError, check_adapter
from eval.data.benchmarks import (
    BENCHMARKS,
    CHOICES,
    EVAL_SPLIT,
    SHOT_SPLIT,
    BenchmarkError,
    BenchmarkSource,
    Question,
    Subject,
    display_name,
    resolve_subjects,
)
from eval.metrics.choice import ChoiceTokenError

RESULT_FILE = "mcq.json"
DEFAULT_SEED = 42  # LLaMA-Factory's eval seed
DEFAULT_BATCH_SIZE = 8


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="base model folder or hub id (model_name_or_path)")
    parser.add_argument("--adapter", help="LoRA adapter folder (adapter_config.json + adapter_model.safetensors)")
    parser.add_argument("--template", default="qwen", help="LLaMA-Factory chat template of the model (default: qwen)")
    parser.add_argument(
        "--default-system", help="override the template's default system prompt, as the recipes' default_system"
    )
    parser.add_argument(
        "--benchmarks",
        help="folder with CMMLU (data/{dev,test}) and/or C-Eval ({dev,val} or ceval-exam.zip); default: shipped CSVs",
    )
    parser.add_argument(
        "--subjects",
        default="paper",
        help="paper (1,325 + 90 = 1,415), medical, cmmlu:all, ceval:all, or a list like cmmlu:anatomy,ceval:physician",
    )
    parser.add_argument("--n-shot", type=int, default=0, help="few-shot examples from the dev split (default: 0)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of the few-shot draw (default: 42)")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="questions per forward pass")
    parser.add_argument("--output", required=True, help="output folder; mcq.json is written there")


@dataclass
class Item:
    question: Question
    shots: list[Question]
    prompt_ids: list[int]


def load_questions(
    source: BenchmarkSource, subjects: list[Subject], n_shot: int
) -> tuple[dict[str, list[Question]], dict[str, list[Question]], dict[str, dict[str, str]]]:
    """Every selected question and shot pool, read before any model is loaded so data errors come first."""
    questions: dict[str, list[Question]] = {}
    pools: dict[str, list[Question]] = {}
    files: dict[str, dict[str, str]] = {}
    for subject in subjects:
        split = EVAL_SPLIT[subject.benchmark]
        questions[subject.key], files[f"{subject.key}:{split}"] = source.load(subject.benchmark, subject.subject, split)
        if n_shot > 0:
            shot_split = SHOT_SPLIT[subject.benchmark]
            pools[subject.key], files[f"{subject.key}:{shot_split}"] = source.load(
                subject.benchmark, subject.subject, shot_split
            )
    return questions, pools, files


def summarize(subjects: list[Subject], questions: dict[str, list[Question]], preds: dict[str, str]) -> dict[str, Any]:
    """Per-subject and per-benchmark counts and accuracies (percent), and the paper's overall."""
    per_subject: dict[str, dict[str, Any]] = {}
    per_bench: dict[str, dict[str, int]] = {}
    for subject in subjects:
        qs = questions[subject.key]
        correct = sum(preds[q.key] == q.answer for q in qs)
        per_subject[subject.key] = {
            "benchmark": subject.benchmark,
            "subject": subject.subject,
            "name": display_name(subject.benchmark, subject.subject),
            "split": EVAL_SPLIT[subject.benchmark],
            "accuracy": 100.0 * correct / len(qs) if qs else 0.0,
            "n": len(qs),
            "correct": correct,
        }
        tally = per_bench.setdefault(subject.benchmark, {"n": 0, "correct": 0})
        tally["n"] += len(qs)
        tally["correct"] += correct
    benchmarks = {
        bench: {"accuracy": 100.0 * t["correct"] / t["n"] if t["n"] else 0.0, "n": t["n"], "correct": t["correct"]}
        for bench, t in sorted(per_bench.items(), key=lambda kv: BENCHMARKS.index(kv[0]))
    }
    accuracies = [b["accuracy"] for b in benchmarks.values()]
    return {
        "overall": sum(accuracies) / len(accuracies) if accuracies else 0.0,
        "overall_definition": "mean of the benchmark accuracies (paper, Table 2)",
        "benchmarks": benchmarks,
        "subjects": per_subject,
    }


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write through a temporary file in the same folder and rename, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would make results unreadable to the rest of the team
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            json.dump(payload, handle, ensure_ascii=False, indent=1)
            handle.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for package in ("llamafactory", "transformers", "torch", "peft"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            continue
    return found


def run(
    model: str,
    output: str | os.PathLike,
    adapter: str | None = None,
    template: str = "qwen",
    benchmarks: str | os.PathLike | None = None,
    subjects: str = "paper",
    n_shot: int = 0,
    seed: int = DEFAULT_SEED,
    batch_size: int = DEFAULT_BATCH_SIZE,
    default_system: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Score one model (+ adapter) and write OUT/mcq.json; returns what was written."""
    from tqdm import tqdm

    from eval.backends.model import load
    from eval.metrics.choice import (
        PROMPT_LANG,
        build_messages,
        choice_tokens,
        encode_prompt,
        eval_template,
        pick_shots,
        score_prompts,
    )

    if n_shot < 0:
        raise BenchmarkError("--n-shot must be 0 or more")
    if batch_size < 1:
        raise BenchmarkError("--batch-size must be at least 1")
    source = BenchmarkSource(benchmarks)
    chosen = resolve_subjects(subjects, source)
    questions, pools, files = load_questions(source, chosen, n_shot)
    if adapter is not None:
        check_adapter(adapter)
    extra = {"default_system": default_system} if default_system else None
    loaded = load(model, adapter=adapter, template=template, extra=extra)

    items: list[Item] = []
    total = sum(len(qs) for qs in questions.values())
    first_messages: list[dict[str, str]] | None = None
    with tqdm(total=total, desc="mcq prompts", unit="q", disable=not progress) as bar:
        for subject in chosen:
            name = display_name(subject.benchmark, subject.subject)
            for question in questions[subject.key]:
                shots = pick_shots(question, pools.get(subject.key, []), n_shot, seed)
                messages = build_messages(question, shots, name)
                first_messages = first_messages or messages
                items.append(Item(question, shots, encode_prompt(loaded.template, loaded.tokenizer, messages)))
                bar.update()
    if first_messages is None:
        raise BenchmarkError(f"--subjects {subjects}: no questions selected")
    choice = choice_tokens(loaded.template, loaded.tokenizer, first_messages, CHOICES)
    if choice.prefix_ids:
        for item in items:
            item.prompt_ids = item.prompt_ids + list(choice.prefix_ids)
    choice_ids = list(choice.letter_ids)
    picked, probs, stats = score_prompts(
        loaded.model,
        [item.prompt_ids for item in items],
        choice_ids,
        pad_id=loaded.tokenizer.pad_token_id,
        batch_size=batch_size,
        progress=progress,
    )
    preds = {item.question.key: CHOICES[p] for item, p in zip(items, picked, strict=True)}
    predictions = []
    for item, p, pr in zip(items, picked, probs, strict=True):
        q = item.question
        entry: dict[str, Any] = {
            "id": q.key,
            "answer": q.answer,
            "prediction": CHOICES[p],
            "correct": CHOICES[p] == q.answer,
            "probs": [round(x, 6) for x in pr],
            "prompt_tokens": len(item.prompt_ids),
        }
        if n_shot > 0:
            entry["shots"] = [shot.index for shot in item.shots]
        predictions.append(entry)

    lf_prompt = eval_template()
    result = summarize(chosen, questions, preds)
    result["protocol"] = {
        "model": model,
        "adapter": loaded.adapter,
        "template": template,
        "infer_args": loaded.infer_args,
        "dtype": str(getattr(loaded.model, "dtype", "")),
        "prompt": {
            "source": f"llamafactory.eval.template '{PROMPT_LANG}'",
            "system": lf_prompt.system,
            "choice": lf_prompt.choice,
            "answer": lf_prompt.answer,
            "chat_template_default_system": getattr(loaded.template, "default_system", None),
            "rendering": "Template.encode_oneturn; few-shot examples as earlier user/assistant turns",
            "example": loaded.tokenizer.decode(items[0].prompt_ids) if items else "",
        },
        "n_shot": n_shot,
        "shot_split": dict(SHOT_SPLIT) if n_shot > 0 else None,
        "shot_seed": seed if n_shot > 0 else None,
        "shot_sampling": "per question: random.Random(f'{seed}:{question id}').sample(dev rows, n_shot)",
        "eval_split": dict(EVAL_SPLIT),
        "scoring": (
            "argmax of the next-token logits (fp32, from the final hidden state) over each letter's token as the "
            "template renders the answer turn"
        ),
        "choice_token_ids": dict(zip(CHOICES, choice_ids, strict=True)),
        "choice_tokens": dict(zip(CHOICES, loaded.tokenizer.convert_ids_to_tokens(choice_ids), strict=True)),
        "answer_prefix_ids": list(choice.prefix_ids),
        "subjects_spec": subjects,
        "subjects": [s.key for s in chosen],
        "benchmarks_dir": "shipped (eval/benchmarks)" if source.shipped else str(source.root),
        "files": files,
        "batch_size": batch_size,
        "versions": versions(),
    }
    result["predictions"] = predictions
    out_path = Path(output) / RESULT_FILE
    write_json_atomic(out_path, result)
    if progress:
        print(
            f"mcq: {total} questions in {stats.batches} batches, {stats.seconds:.1f}s forward, "
            f"{100 * stats.pad_share:.1f}% padding",
            file=sys.stderr,
        )
    return result


def format_table(result: dict[str, Any]) -> str:
    lines = [f"{'subject':<42}{'n':>6}{'correct':>9}{'acc':>8}"]
    for key, s in result["subjects"].items():
        lines.append(f"{key:<42}{s['n']:>6}{s['correct']:>9}{s['accuracy']:>8.2f}")
    for bench, b in result["benchmarks"].items():
        lines.append(f"{bench:<42}{b['n']:>6}{b['correct']:>9}{b['accuracy']:>8.2f}")
    lines.append(f"{'overall (mean of benchmarks)':<42}{'':>6}{'':>9}{result['overall']:>8.2f}")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    try:
        result = run(
            model=args.model,
            output=args.output,
            adapter=args.adapter,
            template=args.template,
            benchmarks=args.benchmarks,
            subjects=args.subjects,
            n_shot=args.n_shot,
            seed=args.seed,
            batch_size=args.batch_size,
            default_system=args.default_system,
        )
    except (BenchmarkError, ModelLoadError, ChoiceTokenError) as err:
        print(f"mcq: error: {err}", file=sys.stderr)
        return 2
    print(format_table(result))
    print(f"wrote {Path(args.output) / RESULT_FILE}")
    return 0
