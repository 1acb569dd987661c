"""Source key (as in `medasst.facts.SOURCES`) → its converter module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Protocol

from converters import cmtmedqa, huatuo26m, medchatzh, webmedqa
from converters.records import Record, Skip
from medasst.facts import SOURCES


class SourceModule(Protocol):
    SOURCE: str
    RAW_FILES: dict[str, tuple[str, ...]]

    def inputs(self, raw_dir: Path, split: str) -> list[Path | None]: ...

    def read(self, raw_dir: Path, split: str) -> Iterator[Record | Skip]: ...


MODULES: dict[str, ModuleType] = {m.SOURCE: m for m in (medchatzh, huatuo26m, cmtmedqa, webmedqa)}
assert tuple(MODULES) == SOURCES, "converter modules must follow medasst.facts.SOURCES order"
