"""A JSON Lines raw file and how each of its lines becomes a record: the unit the build can split across workers.

MedChatZH and Huatuo-26M (about 89 % of the characters) are JSON Lines, where every line converts on its own; a
`LineJob` names the file, the source's per-line converter (a module-level function, so worker processes can be
handed it) and the id prefix, so the same lines convert identically whether one process reads the whole file or
workers take it in chunks of whole lines.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from converters import progress
from converters.readers import iter_jsonl, open_lines
from converters.records import Record, Skip, locator

Convert = Callable[[Any, str, str], Record | Skip]


@dataclass(frozen=True)
class LineJob:
    path: Path
    convert: Convert  # (parsed line, "file:line", record id) → Record | Skip
    id_prefix: str  # record id = f"{id_prefix}-{line number}"
    desc: str  # progress label


def convert_lines(job: LineJob, raw_dir: Path, lines: Iterable[bytes], start: int = 1) -> Iterator[Record | Skip]:
    """The records of `lines`, the first of which is line `start` of the job's file."""
    at = locator(job.path, raw_dir)
    convert, prefix = job.convert, job.id_prefix
    for item in iter_jsonl(lines, at, start):
        if item.__class__ is Skip:
            yield item
            continue
        lineno, obj = item
        yield convert(obj, at(lineno), f"{prefix}-{lineno}")


def read_jobs(jobs: Iterable[LineJob], raw_dir: Path) -> Iterator[Record | Skip]:
    """Every job's file read whole, in order, in this process."""
    for job in jobs:
        with open_lines(job.path) as fh:
            yield from convert_lines(job, raw_dir, progress.lines(fh, job.path.stat().st_size, job.desc))
