"""`python -m eval.run mcq`: CMMLU + C-Eval medical multiple choice (the paper's Table 2) → OUT/mcq.json.

Accuracy is 100 x correct / n per subject and per benchmark; `overall` is the plain mean of the two benchmark
accuracies, the paper's definition (not the mean over all questions).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eval import shards
from eval.backends.model import DTYPES, ModelLoadError, model_extra
from eval.common import fingerprint as fpr
from eval.common import requests
from eval.common.files import InputFileError, atomic_write_text, read_json
from eval.data.benchmarks import (
    BENCHMARKS,
    CHOICES,
    EVAL_SPLIT,
    LETTERS,
    PAPER_BENCHMARKS,
    SHOT_SPLIT,
    BenchmarkError,
    BenchmarkSource,
    Question,
    Subject,
    display_name,
    resolve_subjects,
)
from eval.metrics.choice import ChoiceTokenError
from eval.metrics.letters import PARSER_VERSION

RESULT_FILE = "mcq.json"
SCORINGS = ("logits", "generate")
DEFAULT_SEED = 42  # LLaMA-Factory's eval seed
DEFAULT_BATCH_SIZE = 8
# what a question's prompt and its reading are; bump the version when either changes
PROTOCOL = "LLaMA-Factory zh eval template as the user turn; argmax of the letters' next-token logits"
PROTOCOL_VERSION = 2


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
    parser.add_argument("--dtype", choices=DTYPES, default="auto", help="LF infer_dtype (default: auto)")
    requests.add_trust_remote_code(parser)
    parser.add_argument(
        "--scoring",
        choices=SCORINGS,
        default="logits",
        help="logits: the letters' next-token logits (default); generate: a greedy reply, its letter parsed",
    )
    parser.add_argument("--max-new-tokens", type=int, default=64, help="with --scoring generate (default: 64)")
    parser.add_argument("--output", required=True, help="output folder; mcq.json is written there")
    parser.add_argument(
        "--shard",
        help="I/N: score only this worker's share of the batches (OUT/shards/mcq-I-of-N.json); a later run "
        "without --shard merges the N parts into mcq.json, identical to one process",
    )
    requests.add_recompute(parser)


@dataclass(frozen=True)
class McqRequest:
    model: str
    output: Path
    adapter: str | None = None
    template: str = "qwen"
    default_system: str | None = None
    benchmarks: str | None = None
    subjects: str = "paper"
    n_shot: int = 0
    seed: int = DEFAULT_SEED
    batch_size: int = DEFAULT_BATCH_SIZE
    dtype: str = "auto"
    trust_remote_code: bool = False
    scoring: str = "logits"
    max_new_tokens: int = 64
    shard: str | None = None
    recompute: bool = False

    def __post_init__(self) -> None:
        requests.model_options(self.model, self.adapter, self.dtype)
        try:
            shards.parse(self.shard)
        except shards.ShardError as e:
            raise requests.UsageError(str(e)) from None
        if self.scoring not in SCORINGS:
            raise requests.UsageError(f"--scoring {self.scoring!r}: choose from {', '.join(SCORINGS)}")
        requests.at_least("max_new_tokens", self.max_new_tokens, 1)
        requests.output_folder(Path(self.output))
        requests.at_least("n_shot", self.n_shot, 0)
        requests.at_least("batch_size", self.batch_size, 1)
        requests.at_least("seed", self.seed, 0)
        if self.benchmarks is not None and not Path(self.benchmarks).is_dir():
            raise requests.UsageError(f"--benchmarks {self.benchmarks}: folder not found")

    @property
    def result_path(self) -> Path:
        shard = shards.parse(self.shard)
        if shard is None:
            return Path(self.output) / RESULT_FILE
        return shards.folder(Path(self.output)) / f"mcq-{shard.label}.json"


def fingerprint(request: McqRequest, files: dict[str, dict[str, str]], subjects: list[Subject]) -> fpr.Fingerprint:
    """What decides mcq.json: the model, adapter and prompt, the questions (by CSV sha256), shots and dtype."""
    from eval.metrics.choice import PROMPT_LANG

    return fpr.Fingerprint(
        fields={
            "verb": "mcq",
            "protocol": {"name": PROTOCOL, "version": PROTOCOL_VERSION, "prompt_lang": PROMPT_LANG},
            "model": fpr.model_identity(request.model),
            "adapter": fpr.adapter_identity(request.adapter),
            "template": request.template,
            "default_system": request.default_system,
            "subjects": [s.key for s in subjects],
            "benchmark_files": {key: info["sha256"] for key, info in sorted(files.items())},
            "n_shot": request.n_shot,
            "shot_seed": request.seed if request.n_shot > 0 else None,
            "dtype": request.dtype,
            **({"trust_remote_code": True} if request.trust_remote_code else {}),
            "backend": "hf",
            "scoring": {"method": "logits"}
            if request.scoring == "logits"
            else {
                "method": "generate",
                "max_new_tokens": request.max_new_tokens,
                "decoding": "greedy",
                "parser_version": PARSER_VERSION,
            },
        },
        recorded={
            "model": request.model,
            "adapter": request.adapter,
            "benchmarks": request.benchmarks or "shipped (eval/benchmarks)",
            "batch_size": request.batch_size,
            "versions": fpr.package_versions(VERSIONED),
        },
    )


VERSIONED = ("llamafactory", "transformers", "torch", "peft")


def plan(request: McqRequest):
    """(questions, shot pools, files, subjects, fingerprint): all read and checked before any model loads."""
    source = BenchmarkSource(request.benchmarks)
    chosen = resolve_subjects(request.subjects, source)
    questions, pools, files = load_questions(source, chosen, request.n_shot)
    if not any(questions.values()):
        raise BenchmarkError(f"--subjects {request.subjects}: no questions selected")
    return source, chosen, questions, pools, files, fingerprint(request, files, chosen)


def current(request: McqRequest) -> dict[str, Any] | None:
    """mcq.json (or this shard's part) when made from exactly these inputs; None when absent or --recompute; else
    refuse."""
    if request.recompute or not request.result_path.is_file():
        return None
    *_, fp = plan(request)
    record = read_json(request.result_path)
    fpr.check_reusable(request.result_path, record, fp, "multiple-choice results")
    return record


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
        if n_shot > 0 and subject.benchmark in SHOT_SPLIT:  # XMedBench has no few-shot pool: 0 shots, recorded
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
    # the paper's overall is CMMLU and C-Eval; other benchmarks (XMedBench) are reported beside it, not in it
    averaged = [b for b in benchmarks if b in PAPER_BENCHMARKS] or list(benchmarks)
    accuracies = [benchmarks[b]["accuracy"] for b in averaged]
    return {
        "overall": sum(accuracies) / len(accuracies) if accuracies else 0.0,
        "overall_definition": f"mean of the benchmark accuracies of {', '.join(averaged)} (paper, Table 2)",
        "benchmarks": benchmarks,
        "subjects": per_subject,
    }


def _generate_and_parse(items: list[Item], loaded, request: McqRequest, progress: bool):
    """Greedy replies to the rendered prompts (length-sorted batches), each parsed for its question's letter."""
    from tqdm import tqdm

    from eval.backends.generators import HFGenerator
    from eval.metrics.choice import ScoreStats, length_sorted_batches
    from eval.metrics.letters import parse_letter

    generator = HFGenerator(loaded, request.max_new_tokens)
    replies: list[str] = [""] * len(items)
    stats = ScoreStats()
    started = time.perf_counter()
    for batch in tqdm(length_sorted_batches([len(it.prompt_ids) for it in items], request.batch_size),
                      desc="mcq generate", unit="batch", disable=not progress):  # fmt: skip
        for i, reply in zip(batch, generator([items[i].prompt_ids for i in batch]), strict=True):
            replies[i] = reply
        stats.batches += 1
        stats.real_tokens += sum(len(items[i].prompt_ids) for i in batch)
        stats.batch_tokens += len(batch) * max(len(items[i].prompt_ids) for i in batch)
    stats.seconds = time.perf_counter() - started
    predictions, preds = [], {}
    for item, reply in zip(items, replies, strict=True):
        q = item.question
        letter, how = parse_letter(reply, q.letters)
        preds[q.key] = letter
        predictions.append({"id": q.key, "answer": q.answer, "prediction": letter, "correct": letter == q.answer,
                            "reply": reply, "parsed_by": how, "prompt_tokens": len(item.prompt_ids)})  # fmt: skip
    return predictions, preds, stats


def run(request: McqRequest, progress: bool = True) -> dict[str, Any]:
    """Score one model (+ adapter) and write OUT/mcq.json; returns what was written (or what was reused)."""
    from tqdm import tqdm

    from eval.backends.model import check_template, load
    from eval.metrics.choice import (
        PROMPT_LANG,
        build_messages,
        choice_tokens,
        encode_prompt,
        eval_template,
        pick_shots,
        score_prompts,
    )

    previous = current(request)
    if previous is not None:
        return previous | {"reused": True}
    source, chosen, questions, pools, files, fp = plan(request)
    shard = shards.parse(request.shard)
    if shard is None and part_paths(request):  # a folder with shards is finished by merging them
        return merge(request, chosen, questions, fp)
    check_template(request.model, request.template)
    model, adapter, template = request.model, request.adapter, request.template
    n_shot, seed, subjects, batch_size = request.n_shot, request.seed, request.subjects, request.batch_size
    extra = model_extra(request.dtype, request.default_system, request.trust_remote_code)
    loaded = load(model, adapter=adapter, template=template, extra=extra)
    if not fp.fields["model"].get("files_sha256"):  # a hub id fetched by this load: record the snapshot it got
        fp = fingerprint(request, files, chosen)

    # multiple-answer items (62 of XMedBench's cmexam) have no single letter to read: reported apart, not scored
    multiple = {key: [q.key for q in qs if q.multiple_answer] for key, qs in questions.items()}
    multiple = {key: ids for key, ids in multiple.items() if ids}
    questions = {key: [q for q in qs if not q.multiple_answer] for key, qs in questions.items()}
    letters = LETTERS if any(len(q.options) > len(CHOICES) for qs in questions.values() for q in qs) else CHOICES
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
    everything = items
    if shard is not None:
        items, cut = _shard_items(items, shard, batch_size)
    if request.scoring == "generate":
        predictions, _, stats = _generate_and_parse(items, loaded, request, progress)
        choice, choice_ids = None, []
    else:
        choice = choice_tokens(loaded.template, loaded.tokenizer, first_messages, letters)
        if choice.prefix_ids:
            for item in everything:
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
        for i, item in enumerate(items):
            k = len(item.question.options)
            if k < len(letters):  # a four-option question among five-option ones: only its own letters compete
                own = probs[i][:k]
                probs[i] = [x / sum(own) for x in own]
                picked[i] = max(range(k), key=lambda j, own=own: (own[j], -j))
        predictions = []
        for item, p, pr in zip(items, picked, probs, strict=True):
            q = item.question
            entry: dict[str, Any] = {
                "id": q.key,
                "answer": q.answer,
                "prediction": letters[p],
                "correct": letters[p] == q.answer,
                "probs": [round(x, 6) for x in pr],
                "prompt_tokens": len(item.prompt_ids),
            }
            predictions.append(entry)
    for item, entry in zip(items, predictions, strict=True):
        if n_shot > 0:
            entry["shots"] = [shot.index for shot in item.shots]

    # a dev split smaller than --n-shot gives every question of that subject all of it, and no more
    shots_used = {s.key: min(n_shot, len(pools.get(s.key, []))) for s in chosen} if n_shot > 0 else None
    short = {key: used for key, used in (shots_used or {}).items() if used < n_shot}
    if short:
        print(f"mcq: note: --n-shot {n_shot}, but the dev split has fewer rows for {short}", file=sys.stderr)
    lf_prompt = eval_template()
    protocol = {
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
            "example": loaded.tokenizer.decode(everything[0].prompt_ids),
        },
        "n_shot": n_shot,
        "shots_used": shots_used,
        "shot_split": {b: SHOT_SPLIT[b] for b in dict.fromkeys(s.benchmark for s in chosen) if b in SHOT_SPLIT}
        if n_shot > 0
        else None,
        "shot_seed": seed if n_shot > 0 else None,
        "shot_sampling": "per question: random.Random(f'{seed}:{question id}').sample(dev rows, n_shot)",
        "eval_split": {b: EVAL_SPLIT[b] for b in dict.fromkeys(s.benchmark for s in chosen)},
        "scoring": (
            "argmax of the next-token logits (fp32, from the final hidden state) over each letter's token as the "
            "template renders the answer turn"
            if choice is not None
            else f"greedy generation of up to {request.max_new_tokens} new tokens, the letter parsed from the reply "
            f"(eval.metrics.letters, parser version {PARSER_VERSION}); an unparsed reply is wrong, never a letter"
        ),
        "scoring_method": request.scoring,
        "choice_token_ids": dict(zip(letters, choice_ids, strict=True)) if choice is not None else None,
        "choice_tokens": (
            dict(zip(letters, loaded.tokenizer.convert_ids_to_tokens(choice_ids), strict=True)) if choice else None
        ),
        "answer_prefix_ids": list(choice.prefix_ids) if choice is not None else None,
        "subjects_spec": subjects,
        "subjects": [s.key for s in chosen],
        "benchmarks_dir": "shipped (eval/benchmarks)" if source.shipped else str(source.root),
        "files": files,
        "batch_size": batch_size,
        "versions": fp.recorded["versions"],
    }
    if shard is not None:
        order = [item.question.key for item in everything]
        result = {"fingerprint": fp.to_json(), "shard": shards.place(shard, batch_size, cut, order),
                  "protocol": protocol, "predictions": predictions}  # fmt: skip
    else:
        result = assemble(request, chosen, questions, multiple, protocol, predictions, fp)
    atomic_write_text(request.result_path, json.dumps(result, ensure_ascii=False, indent=1) + "\n")
    if progress:
        part = f" (shard {shard}: {len(items)} of them)" if shard is not None else ""
        print(
            f"mcq: {total} questions{part} in {stats.batches} batches, {stats.seconds:.1f}s forward, "
            f"{100 * stats.pad_share:.1f}% padding",
            file=sys.stderr,
        )
    return result


def _shard_items(items: list[Item], shard: shards.Shard, batch_size: int) -> tuple[list[Item], list[int]]:
    """The items of this shard's batches, in single-process batch order, and the batch numbers."""
    from eval.metrics.choice import length_sorted_batches

    # every scorer batches by prompt length (the logits path adds the same answer prefix to every prompt, which
    # keeps the order), so these are the batches one process runs
    batches = length_sorted_batches([len(it.prompt_ids) for it in items], batch_size)
    cut = shard.take(len(batches))
    mine = [items[i] for b in cut for i in batches[b]]
    shards.regroup_check([len(it.prompt_ids) for it in mine], batch_size, [batches[b] for b in cut])
    return mine, cut


def assemble(request: McqRequest, chosen: list[Subject], questions: dict[str, list[Question]],
             multiple: dict[str, list[str]], protocol: dict[str, Any], predictions: list[dict[str, Any]],
             fp: fpr.Fingerprint) -> dict[str, Any]:  # fmt: skip
    """mcq.json from the predictions in question order: the same function for one process and for merged shards."""
    preds = {entry["id"]: entry["prediction"] for entry in predictions}
    result = summarize(chosen, questions, preds)
    result["protocol"] = protocol
    if request.scoring == "generate":
        subject_of = {q.key: key for key, qs in questions.items() for q in qs}
        unparsed = {key: 0 for key, qs in questions.items() if qs}
        for entry in predictions:
            unparsed[subject_of[entry["id"]]] += entry["prediction"] is None
        for key, count in unparsed.items():
            result["subjects"][key]["unparsed"] = count
        result["unparsed"] = sum(unparsed.values())
    if multiple:
        result["multiple_answer"] = {
            key: {"n": len(ids), "ids": ids, "note": "several correct letters: not read as one letter, not scored"}
            for key, ids in multiple.items()
        }
        for key, ids in multiple.items():
            result["subjects"][key]["multiple_answer_not_scored"] = len(ids)
    result["fingerprint"] = fp.to_json()
    result["predictions"] = predictions
    return result


def part_paths(request: McqRequest) -> list[Path]:
    return sorted(shards.folder(Path(request.output)).glob("mcq-*-of-*.json"))


def merge(request: McqRequest, chosen: list[Subject], questions: dict[str, list[Question]],
          fp: fpr.Fingerprint) -> dict[str, Any]:  # fmt: skip
    """mcq.json from the N parts in OUT/shards, byte for byte what one process writes; foreign parts refused."""
    multiple = {key: [q.key for q in qs if q.multiple_answer] for key, qs in questions.items()}
    multiple = {key: ids for key, ids in multiple.items() if ids}
    questions = {key: [q for q in qs if not q.multiple_answer] for key, qs in questions.items()}
    order = [q.key for s in chosen for q in questions[s.key]]
    parts = {path: read_json(path) for path in part_paths(request)}
    records = shards.check_parts(parts, fp, request.batch_size, order, "mcq")
    by_id = {entry["id"]: entry for record in records for entry in record["predictions"]}
    if len(by_id) != len(order) or set(by_id) != set(order):
        raise shards.ShardError(f"the mcq shards in {shards.folder(Path(request.output))} do not cover the "
                                "questions exactly once; run the shards again")  # fmt: skip
    result = assemble(request, chosen, questions, multiple, records[0]["protocol"], [by_id[k] for k in order], fp)
    atomic_write_text(request.result_path, json.dumps(result, ensure_ascii=False, indent=1) + "\n")
    print(f"mcq: merged {len(records)} shards → {request.result_path}", file=sys.stderr)
    return result


def format_table(result: dict[str, Any]) -> str:
    lines = [f"{'subject':<42}{'n':>6}{'correct':>9}{'acc':>8}"]
    for key, s in result["subjects"].items():
        lines.append(f"{key:<42}{s['n']:>6}{s['correct']:>9}{s['accuracy']:>8.2f}")
    for bench, b in result["benchmarks"].items():
        lines.append(f"{bench:<42}{b['n']:>6}{b['correct']:>9}{b['accuracy']:>8.2f}")
    lines.append(f"{'overall (mean of benchmarks)':<42}{'':>6}{'':>9}{result['overall']:>8.2f}")
    return "\n".join(lines)


def main(request: McqRequest) -> int:
    try:
        result = run(request)
    except (BenchmarkError, ModelLoadError, ChoiceTokenError, InputFileError, fpr.FingerprintMismatch,
            shards.ShardError) as err:  # fmt: skip
        print(f"mcq: error: {err}", file=sys.stderr)
        return 2
    if "shard" in result:
        print(f"wrote {request.result_path} (shard {request.shard})")
        return 0
    print(format_table(result))
    if "unparsed" in result:
        print(f"unparsed replies (counted wrong, never given a letter): {result['unparsed']}")
    state = " (up to date, reused)" if result.get("reused") else ""
    print(f"wrote {request.result_path}{state}" if not state else f"{request.result_path}{state}")
    return 0


REQUEST = McqRequest
