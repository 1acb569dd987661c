"""The two things a source reader yields: a record to keep, or a counted skip with its reason."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

# Reasons that mean the *file* is malformed. `--strict` stops on the first of them; otherwise they are counted.
ERROR_REASONS: frozenset[str] = frozenset(
    {
        "bad_encoding",  # invalid UTF-8 bytes in the line / record
        "bad_json",  # a line or array element that does not parse
        "truncated_json",  # a JSON array cut off before its closing bracket
        "not_an_object",  # valid JSON, but not the object shape the source uses
        "missing_field",
        "wrong_type",  # e.g. a number where text is expected, a history pair of length 3
        "bad_turns",  # 问/答 list whose roles do not alternate 问, 答, 问, …
        "short_line",  # TSV line with fewer than 5 fields
        "bad_label",  # webMedQA label other than 0/1
        "unreadable_file",  # an archive that does not open, an LFS pointer instead of data
    }
)

# Reasons that are deliberate cleaning decisions on well-formed input; never fatal, always counted.
FILTER_REASONS: frozenset[str] = frozenset(
    {
        "blank_line",
        "empty_question",
        "empty_answer",
        "empty_history_turn",
        "unpaired_question",  # a 问 with no 答 at all
        "negative_answer",  # webMedQA label 0: a randomly sampled wrong answer
        "duplicate_qid",  # webMedQA: a second positive answer for the same question id
        "duplicate",  # exact duplicate of an earlier record (same source or not)
        "in_test",  # train record whose normalised question is in the test set
        "too_long",  # only with --max-chars
        "excluded",  # only with --exclude: a training record a contamination audit flagged (detail: its reason)
    }
)


@dataclass(slots=True)
class Record:
    """One dialogue: `history` holds earlier [user, assistant] turns; instruction/output is the last turn."""

    instruction: str
    output: str
    history: list[list[str]]
    id: str
    input: str = ""
    where: str = ""  # "file:line", for error messages only; never written
    repaired: str = ""  # name of a documented fix applied to this record, counted in the manifest


@dataclass(slots=True, frozen=True)
class Skip:
    reason: str
    where: str  # "file:line"
    detail: str = ""
    # share of the file (0-1) that follows a break a reader cannot go past ("the rest of the file is not read"):
    # one skip that stands for every record after it, so a cut download counts as the loss it is
    rest_lost: float = 0.0

    def __post_init__(self) -> None:
        if self.reason not in ERROR_REASONS and self.reason not in FILTER_REASONS:
            raise ValueError(f"unknown skip reason {self.reason!r}")

    @property
    def is_error(self) -> bool:
        return self.reason in ERROR_REASONS


@dataclass
class SplitStats:
    read: int = 0
    written: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    repaired: dict[str, int] = field(default_factory=dict)
    excluded: dict[str, int] = field(default_factory=dict)  # --exclude: records left out, by the audit's reason

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def repair(self, what: str) -> None:
        self.repaired[what] = self.repaired.get(what, 0) + 1

    def as_dict(self) -> dict:
        out = {
            "read": self.read,
            "written": self.written,
            "skipped": dict(sorted(self.skipped.items())),
            "repaired": dict(sorted(self.repaired.items())),
        }
        if self.excluded:
            out["excluded"] = dict(sorted(self.excluded.items()))
        return out


class ConversionError(Exception):
    """Raised under --strict (and for unusable arguments); the message names file and line."""


def where(path: Path, line: int, root: Path | None = None) -> str:
    return locator(path, root)(line)


def locator(path: Path, root: Path | None = None) -> Callable[[int], str]:
    """`line → "file:line"`, with the file name resolved once: this runs for every one of millions of lines."""
    shown = path.relative_to(root).as_posix() if root is not None and path.is_relative_to(root) else str(path)
    return lambda line: f"{shown}:{line}"
