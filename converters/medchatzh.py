"""MedChatZH (HF tyang816/MedChatZH): `MedChatZH_train.json` / `MedChatZH_valid.json`, JSON Lines despite `.json`.

Each line is `{"instruction", "input": "", "output"}`, single-turn, no id. The valid file is our test split.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from converters import fields, progress
from converters.readers import iter_jsonl, open_lines, present
from converters.records import Record, Skip, locator

SOURCE = "medchatzh"
RAW_FILES: dict[str, tuple[str, ...]] = {
    "train": ("MedChatZH/MedChatZH_train.json",),
    "test": ("MedChatZH/MedChatZH_valid.json",),
}


def inputs(raw_dir: Path, split: str) -> list[Path | None]:
    return present(raw_dir, RAW_FILES[split])


def read(raw_dir: Path, split: str) -> Iterator[Record | Skip]:
    (path,) = inputs(raw_dir, split)
    if path is None:
        return
    with open_lines(path) as fh:
        at = locator(path, raw_dir)
        for item in iter_jsonl(progress.lines(fh, path.stat().st_size, f"{SOURCE} {split}"), at):
            if isinstance(item, Skip):
                yield item
                continue
            lineno, obj = item
            yield fields.alpaca(obj, at(lineno), f"{SOURCE}-{split}-{lineno}")
