"""Small file helpers shared by the eval verbs: atomic writes and line-numbered JSONL reading."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any


class InputFileError(ValueError):
    """An input file that cannot be used, with the file and line named."""


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write via a temp file in the same folder + os.replace, so readers never see a half-written file."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp's 0600 would make results unreadable to the rest of the team
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def dump_json(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=False) + "\n"


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, dump_json(obj))


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict[str, Any]]) -> Path:
    return atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    try:
        return json.loads(decode(path.read_bytes(), path))
    except FileNotFoundError:
        raise InputFileError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise InputFileError(f"{path} is a folder, not a JSON file") from None
    except json.JSONDecodeError as e:
        raise InputFileError(f"{path}: not valid JSON ({e})") from None


def decode(data: bytes, path: Path, lineno: int | None = None) -> str:
    """UTF-8 text (a leading BOM, as Windows editors write it, is dropped); anything else is a named error."""
    try:
        return data.decode("utf-8-sig" if lineno in (None, 1) else "utf-8")
    except UnicodeDecodeError as e:
        where = f"{path} line {lineno}" if lineno is not None else str(path)
        raise InputFileError(
            f"{where}: not UTF-8 (byte 0x{data[e.start]:02x} at offset {e.start}; GBK or another encoding?); "
            "re-save the file as UTF-8"
        ) from None


def iter_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, dict[str, Any]]]:
    """(1-based line number, object) per non-blank line; errors name the file and line."""
    path = Path(path)
    if path.is_dir():
        raise InputFileError(f"{path} is a folder, not a JSONL file")
    if not path.is_file():
        raise InputFileError(f"{path}: file not found")
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, start=1):
            line = decode(raw, path, lineno)
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                torn = "" if line.endswith("\n") else " (torn last line: was a run interrupted?)"
                raise InputFileError(f"{path} line {lineno}: not valid JSON{torn}: {e.msg}") from None
            if not isinstance(obj, dict):
                raise InputFileError(f"{path} line {lineno}: expected a JSON object, got {type(obj).__name__}")
            yield lineno, obj


def repair_tail(path: Path) -> int:
    """Cut a torn last line (no newline or not JSON) left by a killed run (append-only files); return the bytes removed.

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
