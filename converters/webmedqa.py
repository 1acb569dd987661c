"""webMedQA (hejunqing/webMedQA): `medQA.{train,test}.txt`, or the upstream `train.zip`/`test.zip` holding them.

Each line is `department \\t label \\t question_id \\t question \\t answer`; every question appears on five lines,
one positive answer (label 1) and four random negatives (label 0). We keep label 1 only. Lines are split on
TAB with no CSV quoting (a field starting with '"' would otherwise swallow the following lines).
"""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

from converters import progress
from converters.readers import decode, iter_tsv, open_lines, present
from converters.records import ConversionError, Record, Skip, locator, where

SOURCE = "webmedqa"
DIR = "webMedQA"
RAW_FILES: dict[str, tuple[str, ...]] = {
    "train": (f"{DIR}/medQA.train.txt",),
    "test": (f"{DIR}/medQA.test.txt",),
}
ZIPS = {"train": f"{DIR}/train.zip", "test": f"{DIR}/test.zip"}


def inputs(raw_dir: Path, split: str) -> list[Path | None]:
    """The extracted text file if present, else the upstream zip."""
    for name in (*RAW_FILES[split], ZIPS[split]):
        (found,) = present(raw_dir, [name])
        if found is not None:
            return [found]
    return [None]


def read(raw_dir: Path, split: str) -> Iterator[Record | Skip]:
    (path,) = inputs(raw_dir, split)
    if path is None:
        return
    if path.suffix == ".zip":
        yield from _read_zip(path, raw_dir, split)
        return
    with open_lines(path) as fh:
        yield from _convert(progress.lines(fh, path.stat().st_size, f"{SOURCE} {split}"), path, raw_dir, split)


def _read_zip(path: Path, raw_dir: Path, split: str) -> Iterator[Record | Skip]:
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        yield Skip("unreadable_file", where(path, 1, raw_dir), f"not a zip archive: {exc}", 1.0)
        return
    with archive:
        wanted = Path(RAW_FILES[split][0]).name
        names = [n for n in archive.namelist() if Path(n).name == wanted]
        if not names:
            yield Skip("unreadable_file", where(path, 1, raw_dir), f"no {wanted} inside", 1.0)
            return
        info = archive.getinfo(names[0])
        if info.flag_bits & 0x1:
            message = f"{names[0]} is encrypted (a password is needed)"
            yield Skip("unreadable_file", where(path, 1, raw_dir), message, 1.0)
            return
        try:
            with archive.open(info) as member:
                shown = path / names[0]
                lines = progress.lines(member, info.file_size, f"{SOURCE} {split}", on_disk=path.stat().st_size)
                yield from _convert(lines, shown, raw_dir, split)
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
            # the CRC is checked at the end of the member: every line read so far is suspect, so the build stops
            raise ConversionError(
                f"{path.relative_to(raw_dir)}: {names[0]} is corrupt ({exc}); download it again "
                "(`python -m converters fetch --force`)"
            ) from None


def _convert(lines: Iterator[bytes], path: Path, raw_dir: Path, split: str) -> Iterator[Record | Skip]:
    at = locator(path, raw_dir)
    seen_qids: set[bytes] = set()
    for item in iter_tsv(lines, at, fields=5):
        if isinstance(item, Skip):
            yield item
            continue
        lineno, (_dept, label, qid, question, answer) = item
        label = label.strip()
        if label == b"0":
            yield Skip("negative_answer", at(lineno))
            continue
        if label != b"1":
            yield Skip("bad_label", at(lineno), f"label {label[:20]!r}")
            continue
        qid = qid.strip()
        if qid and qid in seen_qids:
            yield Skip("duplicate_qid", at(lineno), qid.decode(errors="replace"))
            continue
        q, a, q_id = decode(question), decode(answer), decode(qid)
        if q is None or a is None or q_id is None:
            yield Skip("bad_encoding", at(lineno), "invalid UTF-8 bytes")
            continue
        if qid:
            seen_qids.add(qid)
        rec_id = f"{SOURCE}-{split}-{q_id}" if q_id else f"{SOURCE}-{split}-L{lineno}"
        yield Record(instruction=q, output=a, history=[], id=rec_id, where=at(lineno))
