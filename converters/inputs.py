"""The raw files a build reads: which are there, their sha256, and proof that they did not change under it.

A file is known by its identity (device, inode, size, mtime, ctime) from the moment it is hashed. Every reader of it
(this process, or a worker reading a chunk) checks that identity, and the build checks it again before its
outputs replace anything, so a file replaced or rewritten mid-build fails the build instead of mixing two
versions, and the manifest's sha256 is of the bytes that were converted.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import orjson

from converters.fetch import LOCK_FILE
from converters.records import ConversionError
from converters.registry import MODULES
from medasst.hashing import files_sha256

log = logging.getLogger("converters")

# st_dev, st_ino, st_size, st_mtime_ns, st_ctime_ns: the ctime too, because a rewrite can put the mtime back
# (`cp -p`, `rsync -t`, `tar x` over the file) but nobody can set the ctime
Identity = tuple[int, int, int, int, int]


def identity(stat: os.stat_result) -> Identity:
    return stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns


def changed(name: str, was: Identity, now: Identity | None) -> ConversionError:
    if now is None:
        how = "was removed"
    elif now[:2] != was[:2]:
        how = "was replaced by another file"
    elif now[2] != was[2]:
        how = f"changed size ({was[2]} → {now[2]} bytes)"
    else:
        how = "was rewritten"
    return ConversionError(
        f"{name} {how} during the build; nothing was written, the previous outputs are kept. Rerun once it is "
        "complete (a download or copy still running?)"
    )


def presence(source: str, raw_dir: Path, split: str) -> dict:
    module = MODULES[source]
    found = [p for p in module.inputs(raw_dir, split)]
    paths = [p for p in found if p is not None]
    before = {p: identity(p.stat()) for p in paths}
    # the raw bytes this build reads, so a manifest names its inputs (big files hashed once, then cached)
    sha = files_sha256(paths, raw_dir)
    for path, was in before.items():
        now = _identity_or_none(path)
        if now != was:
            raise changed(path.relative_to(raw_dir).as_posix(), was, now)
    return {
        "expected": list(module.RAW_FILES[split]),
        "found": [p.relative_to(raw_dir).as_posix() if p is not None else None for p in found],
        "sha256": sha,
        "identity": {str(p): was for p, was in before.items()},  # not written to the manifest
    }


def _identity_or_none(path: Path) -> Identity | None:
    try:
        return identity(path.stat())
    except FileNotFoundError:
        return None


def check_unchanged(raw_dir: Path, presence_by_source: dict) -> None:
    """Every raw file is still the one that was hashed: the last check before outputs replace anything."""
    for splits in presence_by_source.values():
        for info in splits.values():
            for path, was in info["identity"].items():
                now = _identity_or_none(Path(path))
                if now != was:
                    raise changed(Path(path).relative_to(raw_dir).as_posix(), was, now)


def sizes(presence_by_source: dict, raw_dir: Path) -> dict[str, int]:
    """Raw file name (relative) → its size in bytes when it was hashed."""
    return {
        Path(path).relative_to(raw_dir).as_posix(): was[2]
        for splits in presence_by_source.values()
        for info in splits.values()
        for path, was in info["identity"].items()
    }


def check_lock(raw_dir: Path, presence_by_source: dict) -> None:
    """Warn when a raw file is not the one its lock entry (`fetch`'s raw.lock.json) names."""
    try:
        locked = orjson.loads((raw_dir / LOCK_FILE).read_bytes()).get("files", {})
    except (OSError, orjson.JSONDecodeError, AttributeError):
        return
    for splits in presence_by_source.values():
        for info in splits.values():
            for name, sha in info["sha256"].items():
                entry = locked.get(name) if isinstance(locked, dict) else None
                if isinstance(entry, dict) and entry.get("sha256") and entry["sha256"] != sha:
                    log.warning("%s differs from its entry in %s: this build's training set is not the locked one",
                                name, LOCK_FILE)  # fmt: skip


def report_missing(presence_by_source: dict, strict: bool) -> None:
    missing = [
        f"{source} {split}: {name}"
        for source, splits in presence_by_source.items()
        for split, info in splits.items()
        for name, got in zip(info["expected"], info["found"], strict=True)
        if got is None
    ]
    if not missing:
        return
    if strict:
        raise ConversionError("raw files missing (--strict):\n  " + "\n  ".join(missing))
    for line in missing:
        log.warning("raw file missing, skipped: %s", line)
