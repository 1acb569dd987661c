"""MedChatZH (HF tyang816/MedChatZH): `MedChatZH_train.json` / `MedChatZH_valid.json`, JSON Lines despite `.json`.

Each line is `{"instruction", "input": "", "output"}`, single-turn, no id. The valid file is our test split.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from converters import fields
from converters.jobs import LineJob, read_jobs
from converters.readers import present
from converters.records import Record, Skip

SOURCE = "medchatzh"
RAW_FILES: dict[str, tuple[str, ...]] = {
    "train": ("MedChatZH/MedChatZH_train.json",),
    "test": ("MedChatZH/MedChatZH_valid.json",),
}


def inputs(raw_dir: Path, split: str) -> list[Path | None]:
    return present(raw_dir, RAW_FILES[split])


def line_jobs(raw_dir: Path, split: str) -> list[LineJob]:
    (path,) = inputs(raw_dir, split)
    return [] if path is None else [LineJob(path, fields.alpaca, f"{SOURCE}-{split}", f"{SOURCE} {split}")]


def read(raw_dir: Path, split: str) -> Iterator[Record | Skip]:
    return read_jobs(line_jobs(raw_dir, split), raw_dir)
