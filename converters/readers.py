"""Byte-level streaming readers shared by the sources: JSON Lines, one JSON array, and TAB-separated text.

Each yields `(line_number, value)` or a `Skip`, so a single bad line never stops a 600 MB file.
BOM and CRLF are tolerated everywhere; invalid UTF-8 is a counted `bad_encoding`, never a crash or a silent
replacement character.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from converters.records import Skip

log = logging.getLogger("converters")
BOM = b"\xef\xbb\xbf"
_LONE_SURROGATE = re.compile("[\udc80-\udcff]")

Where = Callable[[int], str]


LFS_POINTER = b"version https://git-lfs"


def is_lfs_pointer(path: Path) -> bool:
    """A Git LFS pointer (a few hundred bytes naming the real file) left by a clone without `git lfs pull`."""
    try:
        if path.stat().st_size > 1024:
            return False
        with path.open("rb") as fh:
            return fh.read(len(LFS_POINTER)) == LFS_POINTER
    except OSError:
        return False


def present(raw_dir: Path, names: Iterable[str]) -> list[Path | None]:
    """Each expected raw file under `raw_dir`, or None where it is absent (an LFS pointer is not the file)."""
    found: list[Path | None] = []
    for name in names:
        path = raw_dir / name
        if path.is_file() and is_lfs_pointer(path):
            log.warning(
                "%s is a Git LFS pointer, not the data: run `git lfs pull` in its clone, or "
                "`python -m converters fetch --raw-dir %s --force`; skipped",
                name,
                raw_dir,
            )
            path = None
        found.append(path if path is not None and path.is_file() else None)
    return found


def iter_jsonl(lines: Iterable[bytes], where: Where, start: int = 1) -> Iterator[tuple[int, Any] | Skip]:
    """`(line number, value)` per line; `start` is the number of the first line (a chunk of a larger file)."""
    loads = orjson.loads
    for lineno, raw in enumerate(lines, start):
        if lineno == 1 and raw.startswith(BOM):
            raw = raw[3:]
        # Trailing CR/LF is JSON whitespace, so the line parses as is (no copy); the stripped copy is made only
        # for a blank or broken line, whose error message must not depend on the line ending.
        if not raw or raw.isspace():
            yield Skip("blank_line", where(lineno))
            continue
        try:
            yield lineno, loads(raw)
        except orjson.JSONDecodeError:
            raw = raw.rstrip(b"\r\n")
            try:
                yield lineno, loads(raw)
            except orjson.JSONDecodeError as exc:
                yield _classify(raw, where(lineno), exc)


def _classify(raw: bytes, at: str, exc: Exception) -> Skip:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as bad:
        return Skip("bad_encoding", at, f"invalid UTF-8 at byte {bad.start}")
    return Skip("bad_json", at, str(exc))


def iter_json_array(data: bytes, where: Where) -> Iterator[tuple[int, Any] | Skip]:
    """Elements of one top-level JSON array, each with the line it starts on.

    Decoded element by element (not `json.load`) so that a truncated or partly broken file still yields every
    element before the break, and so errors can name a line. Invalid UTF-8 is kept as lone surrogates
    (`surrogateescape`) and only the elements that contain it are skipped.
    """
    if data.startswith(BOM):
        data = data[3:]
    text = data.decode("utf-8", errors="surrogateescape")
    has_bad_bytes = _LONE_SURROGATE.search(text) is not None
    has_surrogate_escapes = _SURROGATE_ESCAPE.search(text) is not None  # once here, not once per element
    decoder = json.JSONDecoder()
    ws = re.compile(r"[ \t\r\n]*")
    pos = ws.match(text, 0).end()
    line = 1 + text.count("\n", 0, pos)
    if not text.startswith("[", pos):
        yield Skip("bad_json", where(line), "expected a JSON array '['", rest_lost=1.0)
        return
    pos = ws.match(text, pos + 1).end()
    if text.startswith("]", pos):
        return
    truncated = not text.rstrip().endswith("]")
    line, counted_to = 1, 0
    while True:
        line += text.count("\n", counted_to, pos)
        counted_to = pos
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            # Nothing after a broken element can be located reliably, so the rest of the file is one skip.
            reason = "truncated_json" if truncated else "bad_json"
            yield Skip(reason, where(line), f"{exc.msg}; the rest of the file is not read", _rest(text, pos, truncated))
            return
        except RecursionError:  # nesting deeper than Python's stack: as orjson's bad_json for a JSONL line
            yield Skip("bad_json", where(line), "nested too deeply; the rest of the file is not read", _rest(text, pos))
            return
        if has_bad_bytes and _LONE_SURROGATE.search(text, pos, end):
            yield Skip("bad_encoding", where(line), "invalid UTF-8 bytes")
        elif has_surrogate_escapes and _SURROGATE_ESCAPE.search(text, pos, end) and _has_lone_surrogate(value):
            # "\ud83d" alone is valid JSON but no valid text: it cannot be written as UTF-8
            yield Skip("bad_encoding", where(line), "a lone surrogate escape (\\uD800-\\uDFFF)")
        else:
            yield line, value
        pos = ws.match(text, end).end()
        if text.startswith(",", pos):
            pos = ws.match(text, pos + 1).end()
            continue
        line += text.count("\n", counted_to, pos)
        counted_to = pos
        if text.startswith("]", pos):
            if text[pos + 1 :].strip():  # e.g. two arrays written one after the other: the second is lost
                tail = len(text) - pos - 1 - (len(text[pos + 1 :]) - len(text[pos + 1 :].lstrip()))
                yield Skip("bad_json", where(line), "data after the closing ']' is not read", tail / len(text))
            return
        reason = "truncated_json" if truncated else "bad_json"
        message = "expected ',' or ']' after an element; the rest of the file is not read"
        yield Skip(reason, where(line), message, _rest(text, pos, truncated))
        return


def _rest(text: str, pos: int, truncated: bool = False) -> float:
    """The share of the file after a break; for a file cut short, unknown: how much is missing cannot be told
    from what is there, so it counts as all (the build's limits then refuse it unless told otherwise)."""
    return 1.0 if truncated or not text else (len(text) - pos) / len(text)


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_ANY_SURROGATE = re.compile("[\ud800-\udfff]")  # after decoding, a pair is one character: any left is lone


def _has_lone_surrogate(value: Any) -> bool:
    """Whether a decoded JSON value holds a surrogate that no pair completed (json.loads keeps such escapes)."""
    if isinstance(value, str):
        return _ANY_SURROGATE.search(value) is not None
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(v) for v in value)
    return False


def iter_tsv(lines: Iterable[bytes], where: Where, fields: int) -> Iterator[tuple[int, list[bytes]] | Skip]:
    """Split on TAB only. No CSV quoting: a field that starts with '"' must not swallow the next lines."""
    for lineno, raw in enumerate(lines, 1):
        if lineno == 1 and raw.startswith(BOM):
            raw = raw[3:]
        raw = raw.rstrip(b"\r\n")
        if not raw.strip():
            yield Skip("blank_line", where(lineno))
            continue
        parts = raw.split(b"\t", fields - 1)
        if len(parts) < fields:
            yield Skip("short_line", where(lineno), f"{len(parts)} fields, need {fields}")
            continue
        yield lineno, parts


def decode(raw: bytes) -> str | None:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def open_lines(path: Path) -> BinaryIO:
    # 1 MiB buffer: these are hundreds of MB read once, sequentially.
    return path.open("rb", buffering=1 << 20)
