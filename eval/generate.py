"""`generate`: greedy answers to a test set → OUT/generated_predictions.jsonl in LLaMA-Factory's format.

Each line is {"prompt","predict","label"} as LF's predict writes it (prompt decoded with special tokens, predict and
label without), plus the record's `id` (its position "#n" when it has none) and `source`. Prompts come from
eval.data.prompts, i.e. LF's own converter, template and cutoff truncation.

Resumable: answers are appended per batch (flush + fsync), so an interrupted run loses at most one batch; a rerun
cuts a torn last line, skips the ids already answered, and refuses to mix inputs (the fingerprint in
generate_run.json; --recompute starts over). Batches
are fixed over the whole set (length-sorted, then by position), so a resumed run builds the same batches. When
all ids are answered the file is rewritten once, atomically, in dataset order.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eval import shards
from eval.backends import vllm_child
from eval.backends.generators import BACKENDS, DEFAULT_BATCH, BackendError, select_backend
from eval.backends.model import DTYPES, ModelLoadError, model_extra
from eval.common import fingerprint as fpr
from eval.common import requests
from eval.common.files import InputFileError, atomic_write_text, iter_jsonl, read_json, repair_tail, write_json
from eval.data.prompts import TRUNCATIONS, DatasetError, Example, dataset_entry

PREDICTIONS_FILE = "generated_predictions.jsonl"
RUN_FILE = "generate_run.json"
DEFAULT_DATASET = "medasst_test"
DEFAULT_CUTOFF = 512  # the recipes' cutoff_len (paper: 512), so prompts are truncated as in LF predict
DEFAULT_MAX_NEW_TOKENS = 512  # recipes/*_predict.yaml; the paper states none
DECODING = "greedy (do_sample=False, num_beams=1, repetition_penalty=1.0)"
# how a record becomes a prompt and an answer is cut; bump the version when either changes
PROTOCOL = "LLaMA-Factory converter + template encode_oneturn, cutoff_len truncation; LF predict stop tokens"
PROTOCOL_VERSION = 1
VERSIONED = ("llamafactory", "transformers", "torch", "peft", "vllm")


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
    parser.add_argument(
        "--vllm-python",
        metavar="PATH",
        help=f"with --backend vllm: run vLLM in a child process under this Python (a venv of its own; default: "
        f"${vllm_child.ENV_PYTHON}, else vLLM in this process)",
    )
    parser.add_argument("--max-new-tokens", type=int, default=DEFAULT_MAX_NEW_TOKENS)
    parser.add_argument("--cutoff-len", type=int, default=DEFAULT_CUTOFF, help="LF cutoff_len for prompt + label")
    parser.add_argument("--batch-size", type=int, help="prompts per batch (default: 8 with hf, 512 with vllm)")
    parser.add_argument("--max-samples", type=int, help="only the first N records (LF max_samples)")
    parser.add_argument(
        "--tensor-parallel-size",
        type=int,
        help="vllm: GPUs to shard over (default: the most visible GPUs that divide the model's attention heads)",
    )
    parser.add_argument("--dtype", choices=DTYPES, default="auto", help="LF infer_dtype (default: auto)")
    parser.add_argument(
        "--truncation",
        choices=TRUNCATIONS,
        default="lf",
        help="a prompt over cutoff_len: lf = LLaMA-Factory's (the paper's; may cut the last patient turn), "
        "keep-end = keep its last tokens (the last turn and the assistant header always stay)",
    )
    requests.add_trust_remote_code(parser)
    parser.add_argument("--output", required=True, help="output folder")
    parser.add_argument(
        "--shard",
        help="I/N: answer only this worker's share of the batches (in OUT/shards/generate-I-of-N/); a later run "
        "without --shard merges the N parts, identical to one process",
    )
    requests.add_recompute(parser)


@dataclass(frozen=True)
class GenerateRequest:
    model: str
    output: Path
    adapter: str | None = None
    template: str = "qwen"
    default_system: str | None = None
    dataset: str = DEFAULT_DATASET
    dataset_dir: str = "."
    backend: str = "auto"
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    cutoff_len: int = DEFAULT_CUTOFF
    batch_size: int | None = None
    max_samples: int | None = None
    tensor_parallel_size: int | None = None
    dtype: str = "auto"
    trust_remote_code: bool = False
    shard: str | None = None
    truncation: str = "lf"
    vllm_python: str | None = None
    recompute: bool = False

    def __post_init__(self) -> None:
        if self.backend == "vllm" and not self.vllm_python and vllm_child.resolve_python(None):
            object.__setattr__(self, "vllm_python", vllm_child.resolve_python(None))  # frozen: set once, here
        requests.model_options(self.model, self.adapter, self.dtype)
        if self.truncation not in TRUNCATIONS:
            raise requests.UsageError(f"--truncation {self.truncation!r}: choose from {', '.join(TRUNCATIONS)}")
        requests.output_folder(Path(self.output))
        try:
            shards.parse(self.shard)
        except shards.ShardError as e:
            raise requests.UsageError(str(e)) from None
        if self.trust_remote_code and self.backend == "vllm":
            raise requests.UsageError("--trust-remote-code runs with --backend hf only (the vLLM path keeps it off)")
        requests.at_least("max_new_tokens", self.max_new_tokens, 1)
        requests.at_least("cutoff_len", self.cutoff_len, 2)
        requests.at_least("batch_size", self.batch_size, 1, optional=True)
        requests.at_least("max_samples", self.max_samples, 1, optional=True)
        requests.at_least("tensor_parallel_size", self.tensor_parallel_size, 1, optional=True)
        if self.vllm_python and self.backend != "vllm":
            raise requests.UsageError(f"--vllm-python runs with --backend vllm only, not {self.backend!r}")
        try:
            if self.vllm_python:  # the child's Python and its vllm are checked now, not after the data load
                vllm_child.probe(self.vllm_python)
            elif self.backend == "vllm":  # an explicit vllm that cannot run is refused now, not after the data load
                select_backend(self.backend)
            elif self.backend not in BACKENDS:
                raise BackendError(f"unknown backend {self.backend!r}; choose from {', '.join(BACKENDS)}")
        except BackendError as e:
            raise requests.UsageError(str(e)) from None
        requests.dataset(self.dataset, self.dataset_dir)

    @property
    def out_dir(self) -> Path:
        shard = shards.parse(self.shard)
        if shard is None:
            return Path(self.output)
        return shards.folder(Path(self.output)) / f"generate-{shard.label}"


def backend_of(request: GenerateRequest) -> str:
    # a child Python's vllm is checked by its probe; this process's own vllm and GPU do not matter then
    return "vllm" if request.vllm_python else select_backend(request.backend)


def fingerprint(request: GenerateRequest, backend: str | None = None) -> fpr.Fingerprint:
    """What decides the answers: model, adapter, prompt (template, system, protocol), data, lengths, decoding."""
    backend = backend or backend_of(request)
    entry, files = dataset_entry(request.dataset, request.dataset_dir)
    root = Path(request.dataset_dir)
    return fpr.Fingerprint(
        fields={
            "verb": "generate",
            "protocol": {"name": PROTOCOL, "version": PROTOCOL_VERSION},
            "model": fpr.model_identity(request.model),
            "adapter": fpr.adapter_identity(request.adapter),
            "template": request.template,
            "default_system": request.default_system,
            "dataset": {"name": request.dataset, "entry": entry, "files": fpr.files_sha256(files, root)},
            "max_samples": request.max_samples,
            "cutoff_len": request.cutoff_len,
            "truncation": request.truncation,
            "max_new_tokens": request.max_new_tokens,
            "decoding": DECODING,
            "backend": backend,
            "dtype": request.dtype,
            **({"trust_remote_code": True} if request.trust_remote_code else {}),
        },
        recorded={
            "model": request.model,
            "adapter": request.adapter,
            "dataset_dir": str(request.dataset_dir),
            "batch_size": request.batch_size or DEFAULT_BATCH[backend],
            "tensor_parallel_size": request.tensor_parallel_size,
            "versions": fpr.package_versions(VERSIONED),
            # the child's Python and versions: recorded, not a field, as the in-process vllm version is
            **({"vllm_python": vllm_child.probe(request.vllm_python)} if request.vllm_python else {}),
        },
    )


def done_rows(path: Path) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    if not path.exists():
        return rows
    for lineno, row in iter_jsonl(path):
        if "id" not in row:
            raise InputFileError(f"{path} line {lineno}: no 'id'; not written by this tool, cannot resume")
        rows[str(row["id"])] = row
    return rows


def state(request: GenerateRequest, fp: fpr.Fingerprint | None = None) -> str:
    """ "fresh" (nothing to keep), "resume" (a partial run of the same inputs), "current" (every answer is there) or
    "merge" (shards to merge, without --shard); a folder made from other inputs is refused (FingerprintMismatch)
    unless --recompute."""
    out_dir = request.out_dir
    run_file, pred_path = out_dir / RUN_FILE, out_dir / PREDICTIONS_FILE
    merge_now = request.shard is None and bool(part_dirs(request))
    if request.recompute:
        return "merge" if merge_now else "fresh"
    if merge_now and not (run_file.is_file() and read_json(run_file).get("complete")):
        return "merge"
    if not run_file.is_file():
        if pred_path.is_file() and pred_path.stat().st_size:
            raise fpr.FingerprintMismatch(
                f"{out_dir} has predictions but no {RUN_FILE}; pass --recompute or use an empty --output folder"
            )
        return "fresh"
    fp = fp or fingerprint(request)
    record = read_json(run_file)
    old = fpr.stored(record)
    if old is None or fpr.differences(old.get("fields"), fp.fields):
        fpr.check_reusable(run_file, record, fp, "generated answers")  # raises, naming what changed
    if record.get("complete") and pred_path.is_file():
        try:
            rows = done_rows(pred_path)
        except InputFileError:
            rows = {}
        if len(rows) == record.get("n"):
            fpr.warn_recorded(pred_path, old.get("recorded"), fp.recorded)
            return "current"
    was = (old.get("recorded") or {}).get("batch_size")
    now = fp.recorded["batch_size"]
    if was != now:
        raise fpr.FingerprintMismatch(
            f"{out_dir} holds a partial run made at batch size {was}; resuming at {now} would build other "
            f"batches: pass --batch-size {was}, or --recompute to start over"
        )
    return "resume"


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


def part_dirs(request: GenerateRequest) -> list[Path]:
    return sorted(p for p in shards.folder(Path(request.output)).glob("generate-*-of-*") if p.is_dir())


def merge(request: GenerateRequest, fp: fpr.Fingerprint) -> dict[str, Any]:
    """The N shard folders → OUT/generated_predictions.jsonl, byte for byte what one process writes."""
    parts, unfinished = {}, []
    for folder in part_dirs(request):
        record = read_json(folder / RUN_FILE) if (folder / RUN_FILE).is_file() else None
        if record is None or not record.get("complete"):
            unfinished.append(folder.name)
            continue
        parts[folder / RUN_FILE] = record
    if unfinished:
        raise shards.ShardError(f"generate shard {unfinished[0]} in {shards.folder(Path(request.output))} is "
                                "unfinished; run it again with its --shard (it resumes)")  # fmt: skip
    records = shards.check_parts(parts, fp, fp.recorded["batch_size"], None, "generate")
    order = records[0]["shard"]["order"]
    rows: dict[str, dict[str, Any]] = {}
    for path in parts:
        for row_id, row in done_rows(path.parent / PREDICTIONS_FILE).items():
            if row_id in rows:
                raise shards.ShardError(f"{path.parent}: id {row_id!r} is answered by two shards; run them again")
            rows[row_id] = row
    if set(rows) != set(order):
        raise shards.ShardError(f"the generate shards in {shards.folder(Path(request.output))} do not answer the "
                                "records exactly once; run the shards again")  # fmt: skip
    out_dir = Path(request.output)
    atomic_write_text(
        out_dir / PREDICTIONS_FILE, "".join(json.dumps(rows[i], ensure_ascii=False) + "\n" for i in order)
    )
    meta = {key: value for key, value in records[0].items() if key not in ("shard", "seconds", "generated_now")}
    meta |= {"n": len(order), "complete": True, "generated_now": 0, "fingerprint": fp.to_json(),
             "merged_shards": [{"index": r["shard"]["index"], "n": r["n"], "seconds": r.get("seconds")}
                               for r in records]}  # fmt: skip
    write_json(out_dir / RUN_FILE, meta)
    return meta


def stopped_after(generator: Any) -> contextlib.AbstractContextManager:
    # a child vLLM process is stopped however the loop ends; the in-process generators have nothing to stop
    return generator if isinstance(generator, vllm_child.VLLMChildGenerator) else contextlib.nullcontext()


def run(request: GenerateRequest, progress: bool = True) -> dict[str, Any]:
    from tqdm import tqdm

    from eval.backends import model as model_mod
    from eval.data import prompts

    out_dir = request.out_dir
    pred_path = out_dir / PREDICTIONS_FILE
    backend = backend_of(request)
    fp = fingerprint(request, backend)
    found = state(request, fp)
    if found == "current":  # nothing to do: do not load the model at all
        return read_json(out_dir / RUN_FILE) | {"generated_now": 0}
    if found == "merge":  # a folder with shards is finished by merging them, without a model
        return merge(request, fp)
    shard = shards.parse(request.shard)
    model_mod.check_template(request.model, request.template)
    # the whole dataset is read (and any bad record named) before anything is written or the model loads
    read = prompts.read_dataset(request.dataset, request.dataset_dir, request.max_samples)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows: dict[str, dict[str, Any]] = {}
    if found == "resume":
        torn = repair_tail(pred_path)
        if torn:
            print(f"generate: cut a torn last line ({torn} bytes) from {pred_path}", file=sys.stderr)
        rows = done_rows(pred_path)

    extra = model_extra(request.dtype, request.default_system, request.trust_remote_code)
    infer = model_mod.infer_args(request.model, request.adapter, request.template, request.cutoff_len, extra)
    loaded = None
    if backend == "hf":
        loaded = model_mod.load(request.model, request.adapter, request.template, request.cutoff_len, extra=extra)
        tokenizer, template = loaded.tokenizer, loaded.template
    else:
        tokenizer, template = prompts.load_tokenizer_and_template(infer)
    if not fp.fields["model"].get("files_sha256"):  # a hub id fetched by this load: record the snapshot it got
        fp = fingerprint(request, backend)
    examples = prompts.build_examples(
        request.dataset,
        request.dataset_dir,
        tokenizer,
        template,
        request.template,
        request.cutoff_len,
        request.max_samples,
        read,
        request.truncation,
    )
    order = [e.id for e in examples]
    batch_size = fp.recorded["batch_size"]
    batches = fixed_batches(examples, batch_size)  # over the whole set, as one process builds them
    cut = list(range(len(batches)))
    if shard is not None:  # this worker's share of those batches; its file is written in dataset order
        cut = shard.take(len(batches))
        batches = [batches[b] for b in cut]
        mine = {e.id for batch in batches for e in batch}
        examples = [e for e in examples if e.id in mine]
    wanted = {e.id for e in examples}
    stray = sorted(set(rows) - wanted)
    if stray:
        raise ResumeError(
            f"{pred_path} has ids not in {request.dataset!r} (e.g. {stray[0]!r}); pass --recompute or use another "
            "--output"
        )
    todo = [e for e in examples if e.id not in rows]
    meta: dict[str, Any] = {
        "backend": backend,
        "batch_size": fp.recorded["batch_size"],
        "decoding": DECODING,
        "infer_args": infer,
        "dataset_dir": str(request.dataset_dir),
        "n": len(examples),
        "truncation": prompts.truncation_summary(examples, request.cutoff_len, request.truncation),
        "complete": False,
        "fingerprint": fp.to_json(),
    }
    if shard is not None:
        meta["shard"] = shards.place(shard, batch_size, cut, order)
    if found == "fresh":  # only now, with the model loaded and the prompts built, is the old run replaced
        pred_path.unlink(missing_ok=True)
    write_json(out_dir / RUN_FILE, meta)

    if todo:
        if backend == "hf":
            from eval.backends.generators import HFGenerator

            generator = HFGenerator(loaded, request.max_new_tokens)
        elif request.vllm_python:
            generator = vllm_child.from_model(
                request.vllm_python,
                request.model,
                request.adapter,
                tokenizer,
                template,
                request.cutoff_len,
                request.max_new_tokens,
                request.tensor_parallel_size,
                out_dir,
                fp.recorded["vllm_python"],
            )
            meta["vllm_engine"] = generator.engine
        else:
            from eval.backends.generators import VLLMGenerator

            generator = VLLMGenerator(
                request.model,
                request.adapter,
                tokenizer,
                template,
                request.cutoff_len,
                request.max_new_tokens,
                request.tensor_parallel_size,
            )
            meta["vllm_engine"] = generator.engine
        batches = [[e for e in batch if e.id not in rows] for batch in batches]
        batches = [b for b in batches if b]
        bar = tqdm(total=len(examples), initial=len(rows), desc="generate", unit="prompt", disable=not progress)
        started = time.perf_counter()
        with pred_path.open("a", encoding="utf-8") as f, stopped_after(generator):
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
        if isinstance(generator, vllm_child.VLLMChildGenerator):
            meta["vllm_child"] = generator.describe()
        bar.close()
        meta["seconds"] = round(time.perf_counter() - started, 3)
    finalize(pred_path, examples, rows)
    meta["complete"] = True
    meta["generated_now"] = len(todo)
    write_json(out_dir / RUN_FILE, meta)
    return meta


def main(request: GenerateRequest) -> int:
    try:
        meta = run(request)
    except (BackendError, DatasetError, InputFileError, ModelLoadError, ResumeError, fpr.FingerprintMismatch,
            shards.ShardError) as e:  # fmt: skip
        print(f"generate: {e}", file=sys.stderr)
        return 2
    print(
        f"generate: {meta['n']} answers ({meta['generated_now']} new, backend {meta['backend']}) → "
        f"{request.out_dir / PREDICTIONS_FILE}"
    )
    return 0


REQUEST = GenerateRequest
