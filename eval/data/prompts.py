"""Test prompts exactly as LLaMA-Factory's predict / `vllm_infer.py` build them, keeping each record's id and source.

LF's own pieces do the work: `get_dataset_list` resolves the name in `<dataset_dir>/dataset_info.json`, the
entry's converter (alpaca with `history`) turns a record into chat messages, and `UnsupervisedDatasetProcessor`
(what predict-with-generate and vLLM inference use) renders them through the template with `encode_oneturn` and
truncates prompt + reference to `cutoff_len`. We only read the file ourselves, because LF's loader drops the
`id`/`source` columns that per-source scores and resuming need.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

_READABLE = (".jsonl", ".json")


class DatasetError(ValueError):
    """A dataset name or file that cannot be used, with the reason."""


@dataclass(frozen=True)
class Example:
    id: str
    source: str | None
    input_ids: list[int]
    label_ids: list[int]
    full_prompt_len: int = 0  # before LF's cutoff_len truncation (0: not measured)
    full_label_len: int = 0

    @property
    def prompt_cut(self) -> bool:
        return self.full_prompt_len > len(self.input_ids)

    @property
    def label_cut(self) -> bool:
        return self.full_label_len > len(self.label_ids)


UNCUT = 1 << 40  # a cutoff_len no record reaches: the same processor then measures the untruncated lengths

# How a prompt longer than cutoff_len is cut. "lf": as LLaMA-Factory's predict does (the paper's protocol): the
# prompt's share of cutoff_len is sized by the reference's length and the prompt's *end* is cut, so with a long
# reference the patient's last message and the assistant header are lost. "keep-end": the reference plays no
# part; the prompt keeps its last cutoff_len tokens, which always hold the last patient turn and the header.
TRUNCATIONS: tuple[str, ...] = ("lf", "keep-end")


def truncation_summary(examples: list[Example], cutoff_len: int, mode: str = "lf") -> dict[str, Any]:
    """How many prompts and references cutoff_len cut (it differs by tokenizer), with the ids cut; `prompt_ids_cut`
    names the dialogues whose prompt lost tokens (Table 3 is also shown on the dialogues no system's prompt lost)."""
    cut = [e for e in examples if e.prompt_cut or e.label_cut]
    return {
        "mode": mode,
        "cutoff_len": cutoff_len,
        "n": len(examples),
        "prompts_cut": sum(e.prompt_cut for e in examples),
        "references_cut": sum(e.label_cut for e in examples),
        "records_cut": len(cut),
        "ids_cut": [e.id for e in cut],
        "prompt_ids_cut": [e.id for e in examples if e.prompt_cut],
    }


def data_arguments(dataset_dir: str, template_name: str, cutoff_len: int):
    # the converter and the processor read only cutoff_len and media_dir; the template object carries the rest
    from llamafactory.hparams import DataArguments

    return DataArguments(dataset_dir=dataset_dir, template=template_name, cutoff_len=cutoff_len)


def load_tokenizer_and_template(model_args_dict: dict[str, Any]):
    """LF's tokenizer (eos/pad fixed for the template) and template, without loading any weights (vLLM path)."""
    from llamafactory.hparams import get_infer_args
    from llamafactory.model import load_tokenizer

    from eval.backends.model import ModelLoadError, check_template_tokens, template_and_fix_tokenizer

    model_args, data_args, _, _ = get_infer_args(dict(model_args_dict))
    try:
        tokenizer = load_tokenizer(model_args)["tokenizer"]
    except OSError as e:
        raise ModelLoadError(f"cannot load the tokenizer of {model_args.model_name_or_path}: {e}") from None
    # the same check as the HF path, on the tokenizer as loaded (before LF adds missing stop words)
    check_template_tokens(tokenizer, data_args.template, str(model_args_dict.get("model_name_or_path", "")))
    template = template_and_fix_tokenizer(tokenizer, data_args)
    tokenizer.padding_side = "left"
    return tokenizer, template


def dataset_entry(dataset: str, dataset_dir: str | Path) -> tuple[dict[str, Any], list[Path]]:
    """(dataset_info.json entry, its local files), read without LLaMA-Factory: checks a request before any model
    loads, and names the data files for the fingerprint."""
    info_path = Path(dataset_dir) / "dataset_info.json"
    if not info_path.is_file():
        raise DatasetError(f"--dataset-dir {dataset_dir}: no dataset_info.json there")
    try:
        info = json.loads(info_path.read_text(encoding="utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DatasetError(f"{info_path}: not valid UTF-8 JSON ({e})") from None
    if not isinstance(info, dict) or not isinstance(info.get(dataset), dict):
        names = sorted(info) if isinstance(info, dict) else []
        raise DatasetError(f"--dataset {dataset!r} is not in {info_path} (it has: {', '.join(names) or 'nothing'})")
    entry = info[dataset]
    if not entry.get("file_name") or any(entry.get(k) for k in ("hf_hub_url", "ms_hub_url", "om_hub_url")):
        raise DatasetError(f"--dataset {dataset!r} is not a local file dataset; generate reads local files only")
    path = Path(dataset_dir) / str(entry["file_name"])
    return entry, _local_files(path)


def _local_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in _READABLE)
        if not files:
            raise DatasetError(f"{path}: no .jsonl/.json files")
        return files
    if not path.is_file():
        raise DatasetError(f"dataset file not found: {path}")
    if path.suffix not in _READABLE:
        raise DatasetError(f"{path}: only .jsonl/.json datasets are supported")
    return [path]


def _files(dataset_dir: str, attr) -> list[Path]:
    return _local_files(Path(dataset_dir) / attr.dataset_name)


def _read_records(path: Path) -> list[dict[str, Any]]:
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DatasetError(f"{path}: not UTF-8 (at byte offset {e.start}); re-save the file as UTF-8") from None
    if path.suffix == ".json" and text.lstrip().startswith("["):
        try:
            records = json.loads(text)
        except json.JSONDecodeError as e:
            cut = " (it ends early: cut short?)" if not text.rstrip().endswith("]") else ""
            raise DatasetError(f"{path}: not a valid JSON array at line {e.lineno}{cut}: {e.msg}") from None
        except RecursionError:
            raise DatasetError(f"{path}: nested too deeply to read") from None
        return records
    records = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise DatasetError(f"{path} line {lineno}: not valid JSON: {e.msg}") from None
    return records


def read_dataset(dataset: str, dataset_dir: str, max_samples: int | None = None):
    """(DatasetAttr, raw records) of a local dataset named in `<dataset_dir>/dataset_info.json`."""
    from llamafactory.data.parser import get_dataset_list

    try:
        (attr,) = get_dataset_list([dataset], dataset_dir)
    except ValueError as e:
        raise DatasetError(f"{dataset!r} in {dataset_dir}: {e}") from None
    if attr.load_from != "file":
        raise DatasetError(f"{dataset!r} is a {attr.load_from} dataset; generate reads local files only")
    if attr.num_samples is not None:
        raise DatasetError(f"{dataset!r} sets num_samples (random resampling); use --max-samples instead")
    records: list[dict[str, Any]] = []
    for path in _files(dataset_dir, attr):
        records.extend(_read_records(path))
    if max_samples is not None:  # LF: the first N rows
        records = records[:max_samples]
    return attr, records


def record_id(record: dict[str, Any], position: int) -> str:
    """The record's own id, else its 1-based position in the dataset (stable across systems)."""
    return str(record["id"]) if record.get("id") is not None else f"#{position}"


def build_examples(
    dataset: str,
    dataset_dir: str,
    tokenizer,
    template,
    template_name: str,
    cutoff_len: int,
    max_samples: int | None = None,
    read: tuple[Any, list[dict[str, Any]]] | None = None,
    truncation: str = "lf",
) -> list[Example]:
    """Prompt and reference token ids per record, as LF's predict would feed and score them (`truncation`
    "lf"), or with the prompt cut from its start and the reference whole ("keep-end", see TRUNCATIONS)."""
    if truncation not in TRUNCATIONS:
        raise DatasetError(f"truncation {truncation!r}: choose from {', '.join(TRUNCATIONS)}")
    from llamafactory.data.converter import get_dataset_converter
    from llamafactory.data.processor import UnsupervisedDatasetProcessor

    attr, records = read or read_dataset(dataset, dataset_dir, max_samples)
    data_args = data_arguments(dataset_dir, template_name, cutoff_len)
    converter = get_dataset_converter(attr.formatting, attr, data_args)
    processor = UnsupervisedDatasetProcessor(
        template=template, tokenizer=tokenizer, processor=None, data_args=data_args
    )
    uncut = UnsupervisedDatasetProcessor(
        template=template,
        tokenizer=tokenizer,
        processor=None,
        data_args=data_arguments(dataset_dir, template_name, UNCUT),
    )
    columns = [c for c in (attr.prompt, attr.query, attr.response, attr.history, attr.system, attr.tools) if c]
    ids = [record_id(record, position) for position, record in enumerate(records, start=1)]
    seen: set[str] = set()
    for rid in ids:
        if rid in seen:
            raise DatasetError(f"{dataset!r}: duplicate id {rid!r}; resuming and pairing need unique ids")
        seen.add(rid)
    examples: list[Example] = []
    for rid, record in zip(ids, records, strict=True):
        # HF datasets fills a column a record lacks with None; do the same before LF's converter reads it
        row = {c: record.get(c) for c in columns} | {
            k: None for k in (attr.images, attr.videos, attr.audios, attr.kto_tag) if k
        }
        aligned = converter(row)
        batch = {key: [value] for key, value in aligned.items()}
        encoded = processor.preprocess_dataset(batch)
        if not encoded["input_ids"]:  # LF drops (and warns about) records with an even number of turns
            logger.warning("dropped record %s: not a valid prompt", rid)
            continue
        full = uncut.preprocess_dataset(batch)
        source = record.get("source")
        prompt, label = list(encoded["input_ids"][0]), list(encoded["labels"][0])
        if truncation == "keep-end":
            prompt, label = list(full["input_ids"][0])[-cutoff_len:], list(full["labels"][0])
        examples.append(
            Example(
                id=rid,
                source=None if source is None else str(source),
                input_ids=prompt,
                label_ids=label,
                full_prompt_len=len(full["input_ids"][0]),
                full_label_len=len(full["labels"][0]),
            )
        )
    if not examples:
        raise DatasetError(f"{dataset!r}: no usable records")
    return examples


def records_by_id(dataset: str, dataset_dir: str | Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """(entry, id → record with LF's standard column names) of a registered local alpaca dataset, read without
    LLaMA-Factory (the judge needs the dialogue as the dataset holds it, not a tokenizer)."""
    entry, files = dataset_entry(dataset, dataset_dir)
    if entry.get("formatting", "alpaca") != "alpaca":
        raise DatasetError(f"--dataset {dataset!r} is {entry.get('formatting')!r}; the judge reads alpaca datasets")
    columns = {"prompt": "instruction", "query": "input", "response": "output", "history": "history"}
    columns |= entry.get("columns") or {}
    records: dict[str, dict[str, Any]] = {}
    position = 0
    for path in files:
        for record in _read_records(path):
            position += 1
            if not isinstance(record, dict):
                raise DatasetError(f"{path}: record {position} is not a JSON object")
            mapped = dict(record)
            for standard, column in (("instruction", "prompt"), ("input", "query"), ("output", "response"),
                                     ("history", "history")):  # fmt: skip
                mapped[standard] = record.get(columns[column])
            rid = record_id(record, position)
            if rid in records:
                raise DatasetError(f"{path}: id {rid!r} appears twice; items could not be matched across systems")
            records[rid] = mapped
    return entry, records
