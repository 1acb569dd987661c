"""What the converter tests share: a good build of the demo raw files to break things against, and the bytes of an
output folder, to show a failed build left the previous outputs byte-identical."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from converters.pipeline import Options, build
from medasst.facts import DEMO_RAW_DIR


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every entry's bytes (a folder in the way is an error: nothing may stand there unnoticed)."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def snapshot_files(folder: Path) -> dict[str, bytes]:
    """The files' bytes, for a test that puts a folder there on purpose."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture
def built(tmp_path: Path) -> tuple[Path, Path, dict[str, bytes]]:
    """(raw dir, out dir, its files' bytes) after a good build of a copy of the demo raw files."""
    raw = tmp_path / "raw"
    shutil.copytree(DEMO_RAW_DIR, raw)
    out = tmp_path / "data"
    build(Options(raw_dir=raw, out_dir=out))
    return raw, out, snapshot(out)
