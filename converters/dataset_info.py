"""The `dataset_info.json` entries for everything `build` writes, plus the shipped demo sets and CMB-Clin.

Generated from `medasst.facts` so names and paths cannot drift; `python -m converters.dataset_info` rewrites
the file at the repo root and a test checks the committed one is current.
"""

from __future__ import annotations

import orjson

from medasst.facts import (
    CMB_CLIN,
    CMB_CLIN_DIR,
    CMB_CLIN_FILE,
    DATASET_INFO,
    DEFAULT_DATA_DIR,
    DEMO_DATA_DIR,
    DEMO_SAFETY_TEST,
    DEMO_TEST,
    DEMO_TRAIN,
    MERGED_TEST,
    MERGED_TRAIN,
    REPO_ROOT,
    SAFETY_FILE,
    SAFETY_TEST,
    SOURCES,
    SPLITS,
    merged_file,
    source_file,
)

_ALPACA = {
    "formatting": "alpaca",
    "columns": {"prompt": "instruction", "query": "input", "response": "output", "history": "history"},
}


def entries() -> dict[str, dict]:
    demo_dir = DEMO_DATA_DIR.relative_to(REPO_ROOT).as_posix()
    files = {
        MERGED_TRAIN: f"{DEFAULT_DATA_DIR}/{merged_file('train')}",
        MERGED_TEST: f"{DEFAULT_DATA_DIR}/{merged_file('test')}",
    }
    for source in SOURCES:
        for split in SPLITS:
            files[f"{source}_{split}"] = f"{DEFAULT_DATA_DIR}/{source_file(source, split)}"
    files[SAFETY_TEST] = f"{DEFAULT_DATA_DIR}/{SAFETY_FILE}"
    files[DEMO_TRAIN] = f"{demo_dir}/{merged_file('train')}"
    files[DEMO_TEST] = f"{demo_dir}/{merged_file('test')}"
    files[DEMO_SAFETY_TEST] = f"{demo_dir}/{SAFETY_FILE}"
    files[CMB_CLIN] = f"{CMB_CLIN_DIR}/{CMB_CLIN_FILE}"  # a benchmark eval ships, registered here like the rest
    return {name: {"file_name": path, **_ALPACA} for name, path in files.items()}


def render() -> bytes:
    return orjson.dumps(entries(), option=orjson.OPT_INDENT_2) + b"\n"


if __name__ == "__main__":
    from converters.atomic import write_bytes

    write_bytes(REPO_ROOT / DATASET_INFO, render())
