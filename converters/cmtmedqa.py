"""CMtMedQA (Zhongjing; HF Suprit/CMtMedQA): `CMtMedQA.json` (train) and `CMtMedQA_test.json`, one JSON array each.

Records are already Alpaca-with-history: `history` holds earlier [user, doctor] turns and `instruction`/`output`
is the last one (usually a "谢谢医生" closer, so the history is the substance). The test file ends with 144
safety items shaped `{"instruct", "output"}` with leading spaces; we keep them as single-turn test records.
`cate1`/`cate2` (sometimes the string "nan") are not carried into the output.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from converters import fields, progress
from converters.readers import iter_json_array, present
from converters.records import Record, Skip, locator

SOURCE = "cmtmedqa"
RAW_FILES: dict[str, tuple[str, ...]] = {
    "train": ("CMtMedQA/CMtMedQA.json",),
    "test": ("CMtMedQA/CMtMedQA_test.json",),
}


def inputs(raw_dir: Path, split: str) -> list[Path | None]:
    return present(raw_dir, RAW_FILES[split])


def read(raw_dir: Path, split: str) -> Iterator[Record | Skip]:
    (path,) = inputs(raw_dir, split)
    if path is None:
        return
    at = locator(path, raw_dir)
    # The one source we hold whole: it is a single 156 MB array, not line-delimited.
    data = path.read_bytes()
    seen_ids: set[str] = set()
    # the build's bar moves by lines: the reader yields each element with the line it starts on
    with progress.share(f"{SOURCE} {split}", data.count(b"\n") + 1, len(data)) as bar:
        shown = 1
        for number, item in enumerate(iter_json_array(data, at), 1):
            if isinstance(item, Skip):
                yield item
                continue
            line, obj = item
            if line - shown >= 4096:
                bar.update(line - shown)
                shown = line
            rec = fields.alpaca(obj, at(line), "", instruction_keys=("instruction", "instruct"))
            if isinstance(rec, Record):
                rec.id = _record_id(obj, split, number, seen_ids)
            yield rec


def _record_id(obj: dict, split: str, number: int, seen: set[str]) -> str:
    upstream = obj.get("id")
    if "instruct" in obj and "instruction" not in obj:
        return f"{SOURCE}-{split}-safety-{number}"
    if not isinstance(upstream, str) or not upstream.strip():
        return f"{SOURCE}-{split}-{number}"
    upstream = upstream.strip()
    # Upstream ids are unique in the test file; if the big train file repeats one, the position disambiguates.
    rec_id = f"{SOURCE}-{split}-{upstream}" if upstream not in seen else f"{SOURCE}-{split}-{upstream}-{number}"
    seen.add(upstream)
    return rec_id
