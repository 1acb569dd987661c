"""`generate`: greedy answers to a test set → OUT/generated_predictions.jsonl in LLaMA-Factory's format.

Each line is {"prompt","predict","label"} as LF's predict writes it (prompt decoded with special tokens, predict and
label without), plus the record's `id` (its position "#n" when it has none) and `source`. Prompts come from
eval.data.prompts, i.e. LF's own converter, template and cutoff truncation.

Resumable: answers are appended per batch (flush + fsync), so an interrupted run loses at most one batch; a rerun
cuts a torn last line, skips the ids already answered, and refuses to mix settings (generate_run.json). Batches
are fixed over the whole set (length-sorted, then by position), so a resumed run builds the same batches. When
all ids are answered the file is rewritten once, atomically, in dataset order.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from eval.backends.generators import BACKENDS, DEFAULT_BATCH, BackendError, select_backend
from eval.common.files import InputFileError, atomic_write_text, iter_jsonl, read_json, write_json
from eval.data.prompts import DatasetError, Example

PREDICTIONS_FILE = "generated_predictions.jsonl"
RUN_FILE = "generate_run.json"
DEFAULT_DATASET = "medasst_test"
DEFAULT_CUTOFF = 512  # the recipes' cutoff_len (paper: 512), so prompts are truncated as in LF predict
DEFAULT_MAX_NEW_TOKENS = 512  # recipes/*_predict.yaml; the paper states none
# settings that change the answers: a resumed run must match them
SETTINGS = ("model", "adapter", "template", "default_system", "dataset", "cutoff_len", "max_new_tokens", "max_samples")


class ResumeError(RuntimeError):
    """An output folder whose earlier run used other settings."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="base model folder or hub id (model_name_or_path)")
    parser.add_argument("--adapter", help="LoRA adapter folder (adapter_config.json + adapter_model.safetensors)")
    parser.add_argument("--template", default="qwen", help="LLaMA-Factory chat template (default: qwen)")
    parser.add_argument(
        "--default-system", help="override the template's default system prompt, as the recipes' default_system"
    )
    parser.add_argument("--dataset", default=DEFAULT_DATASET, help=f"name in dataset_info.json ({DEFAULT_DATASET})")
    parser.add_argument("--dataset-dir", default=".", help="folder holding dataset_info.json (default: .)")
    parser.add_argument("--backend", choices=BACKENDS, default="auto", help="auto: vLLM if installed with a GPU")
    parser.add_argument("--max-new-tokens", type=int, default=DEFAULT_MAX_NEW_TOKENS)
    parser.add_argument("--cutoff-len", type=int, default=DEFAULT_CUTOFF, help="LF cutoff_len for prompt + label")
    parser.add_argument("--batch-size", type=int, help="prompts per batch (default: 8 with hf, 512 with vllm)")
    parser.add_argument("--max-samples", type=int, help="only the first N records (LF max_samples)")
    parser.add_argument(
        "--tensor-parallel-size",
        type=int,
        help="vllm: GPUs to shard over (default: the most visible GPUs that divide the model's attention heads)",
    )
    parser.add_argument("--output", required=True, help="output folder")


def settings_of(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "model": str(args.model),
        "adapter": str(args.adapter) if args.adapter else None,
        "template": args.template,
        "default_system": args.default_system,
        "dataset": args.dataset,
        "cutoff_len": args.cutoff_len,
        "max_new_tokens": args.max_new_tokens,
        "max_samples": args.max_samples,
    }


def repair_tail(path: Path) -> int:
    """Cut a torn last line (no newline or not JSON) left by a killed run; return the bytes removed.

    Only the last line can be torn, since lines are appended whole and flushed; a bad line earlier is a real
    error and is left for the reader to report.
    """
    if not path.exists():
        return 0
    data = path.read_bytes()
    keep = len(data)
    if data and not data.endswith(b"\n"):
        keep = data.rfind(b"\n") + 1
    else:
        start = data.rfind(b"\n", 0, max(0, len(data) - 1)) + 1
        if data[start:].strip():
            try:
                json.loads(data[start:])
            except ValueError:
                keep = start
    if keep == len(data):
        return 0
    with path.open("r+b") as f:
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())
    return len(data) - keep


def done_rows(path: Path) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    if not path.exists():
        return rows
    for lineno, row in iter_jsonl(path):
        if "id" not in row:
            raise InputFileError(f"{path} line {lineno}: no 'id'; not written by this tool, cannot resume")
        rows[str(row["id"])] = row
    return rows


def check_resume(out_dir: Path, settings: dict[str, Any], have_rows: bool) -> None:
    run_file = out_dir / RUN_FILE
    if not run_file.exists():
        if have_rows:
            raise ResumeError(f"{out_dir} has predictions but no {RUN_FILE}; use an empty --output folder")
        return
    before = read_json(run_file).get("settings", {})
    changed = {k: (before.get(k), v) for k, v in settings.items() if before.get(k) != v}
    if changed and have_rows:
        diff = "; ".join(f"{k}: {a!r} → {b!r}" for k, (a, b) in changed.items())
        raise ResumeError(f"{out_dir} holds predictions made with other settings ({diff}); use another --output")


def finished(args: argparse.Namespace) -> dict[str, Any] | None:
    """The run record when OUT already holds every answer for these settings (nothing to load or generate)."""
    out_dir = Path(args.output)
    run_file, pred_path = out_dir / RUN_FILE, out_dir / PREDICTIONS_FILE
    if not (run_file.is_file() and pred_path.is_file()):
        return None
    previous = read_json(run_file)
    if not (isinstance(previous, dict) and previous.get("complete") and previous.get("settings") == settings_of(args)):
        return None
    try:
        rows = done_rows(pred_path)
    except InputFileError:
        return None
    return previous if len(rows) == previous.get("n") else None


def fixed_batches(examples: list[Example], batch_size: int) -> list[list[Example]]:
    # longest first: similar lengths waste less padding, and an OOM shows up in the first batch, not the last
    order = sorted(range(len(examples)), key=lambda i: (-len(examples[i].input_ids), i))
    ranked = [examples[i] for i in order]
    return [ranked[i : i + batch_size] for i in range(0, len(ranked), batch_size)]


def row_for(example: Example, predict: str, tokenizer) -> dict[str, Any]:
    row: dict[str, Any] = {
        "prompt": tokenizer.decode(example.input_ids, skip_special_tokens=False),
        "predict": predict,
        "label": tokenizer.decode(example.label_ids, skip_special_tokens=True),
        "id": example.id,
    }
    if example.source is not None:
        row["source"] = example.source
    return row


def finalize(path: Path, examples: list[Example], rows: dict[str, dict[str, Any]]) -> None:
    """Rewrite the appended file in dataset order, atomically (sorted, comparable outputs across systems)."""
    text = "".join(json.dumps(rows[e.id], ensure_ascii=False) + "\n" for e in examples)
    atomic_write_text(path, text)


def run(args: argparse.Namespace, progress: bool = True) -> dict[str, Any]:
    from tqdm import tqdm

    from eval.backends import model as model_mod
    from eval.data import prompts

    out_dir = Path(args.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    pred_path = out_dir / PREDICTIONS_FILE
    settings = settings_of(args)
    backend = select_backend(args.backend)
    if args.adapter:
        model_mod.check_adapter(args.adapter)
    model_mod.check_template(args.model, args.template)

    torn = repair_tail(pred_path)
    if torn:
        print(f"generate: cut a torn last line ({torn} bytes) from {pred_path}", file=sys.stderr)
    rows = done_rows(pred_path)
    check_resume(out_dir, settings, bool(rows))
    previous = finished(args)
    if previous is not None:
        return previous | {"generated_now": 0}  # nothing to do: do not load the model at all

    extra = {"default_system": args.default_system} if args.default_system else None
    infer = model_mod.infer_args(args.model, args.adapter, args.template, args.cutoff_len, extra)
    loaded = None
    if backend == "hf":
        loaded = model_mod.load(args.model, args.adapter, args.template, args.cutoff_len, extra=extra)
        tokenizer, template = loaded.tokenizer, loaded.template
    else:
        tokenizer, template = prompts.load_tokenizer_and_template(infer)
    examples = prompts.build_examples(
        args.dataset, args.dataset_dir, tokenizer, template, args.template, args.cutoff_len, args.max_samples
    )
    wanted = {e.id for e in examples}
    stray = sorted(set(rows) - wanted)
    if stray:
        raise ResumeError(f"{pred_path} has ids not in {args.dataset!r} (e.g. {stray[0]!r}); use another --output")
    todo = [e for e in examples if e.id not in rows]
    meta: dict[str, Any] = {
        "settings": settings,
        "backend": backend,
        "batch_size": args.batch_size or DEFAULT_BATCH[backend],
        "decoding": "greedy (do_sample=False, num_beams=1, repetition_penalty=1.0)",
        "infer_args": infer,
        "dataset_dir": str(args.dataset_dir),
        "n": len(examples),
        "truncation": prompts.truncation_summary(examples, args.cutoff_len),
        "complete": False,
    }
    write_json(out_dir / RUN_FILE, meta)

    if todo:
        if backend == "hf":
            from eval.backends.generators import HFGenerator

            generator = HFGenerator(loaded, args.max_new_tokens)
        else:
            from eval.backends.generators import VLLMGenerator

            generator = VLLMGenerator(
                args.model,
                args.adapter,
                tokenizer,
                template,
                args.cutoff_len,
                args.max_new_tokens,
                getattr(args, "tensor_parallel_size", None),
            )
            meta["vllm_engine"] = generator.engine
        batches = [[e for e in batch if e.id not in rows] for batch in fixed_batches(examples, meta["batch_size"])]
        batches = [b for b in batches if b]
        bar = tqdm(total=len(examples), initial=len(rows), desc="generate", unit="prompt", disable=not progress)
        started = time.perf_counter()
        with pred_path.open("a", encoding="utf-8") as f:
            for batch in batches:
                answers = generator([e.input_ids for e in batch])
                lines = []
                for example, answer in zip(batch, answers, strict=True):
                    row = row_for(example, answer, tokenizer)
                    rows[example.id] = row
                    lines.append(json.dumps(row, ensure_ascii=False) + "\n")
                f.write("".join(lines))  # one write per batch: a kill leaves whole lines plus at most one torn one
                f.flush()
                os.fsync(f.fileno())
                bar.update(len(batch))
        bar.close()
        meta["seconds"] = round(time.perf_counter() - started, 3)
    finalize(pred_path, examples, rows)
    meta["complete"] = True
    meta["generated_now"] = len(todo)
    write_json(out_dir / RUN_FILE, meta)
    return meta


def main(args: argparse.Namespace) -> int:
    from eval.backends.model import ModelLoadError

    try:
        meta = run(args)
    except (BackendError, DatasetError, InputFileError, ModelLoadError, ResumeError) as e:
        print(f"generate: {e}", file=sys.stderr)
        return 2
    print(
        f"generate: {meta['n']} answers ({meta['generated_now']} new, backend {meta['backend']}) → "
        f"{Path(args.output) / PREDICTIONS_FILE}"
    )
    return 0
