"""sha256 of files, shared by the converters (raw files) and eval (models, data): big files hashed once.

A file of 64 MiB or more is looked up in a cache keyed by its resolved path, size, mtime and ctime
(`~/.cache/medasst/sha256.json`, or `MEDASST_HASH_CACHE`), so a rerun does not reread gigabytes of weights or
raw data; a rewritten file has a new mtime and is hashed again.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

BIG = 64 << 20


def cache_path() -> Path:
    override = os.environ.get("MEDASST_HASH_CACHE")
    if override:
        return Path(override)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "medasst" / "sha256.json"


def read_cache() -> dict[str, str]:
    try:
        data = json.loads(cache_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_cache(cache: dict[str, str]) -> None:
    path = cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(cache, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:  # a read-only home only costs rehashing next time
        pass


def file_sha256(path: str | os.PathLike, cache: dict[str, str] | None = None, big: int | None = None) -> str:
    """sha256 of a file's bytes; files of `big` bytes or more go through `cache` (path, size, mtime, ctime → hash)."""
    big = BIG if big is None else big
    path = Path(path)
    stat = path.stat()
    # the ctime as well: a rewrite that puts the mtime back (`cp -p`, `rsync -t`) still changes it
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{stat.st_ctime_ns}"
    if cache is not None and stat.st_size >= big and key in cache:
        return cache[key]
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    value = digest.hexdigest()
    if cache is not None and stat.st_size >= big:
        cache[key] = value
    return value


def files_sha256(paths: list[Path], root: Path, big: int | None = None) -> dict[str, str]:
    """Name relative to `root` → sha256 for each file, sorted by name; big files through the shared cache."""
    cache = read_cache()
    before = dict(cache)
    out = {p.relative_to(root).as_posix(): file_sha256(p, cache, big) for p in sorted(paths)}
    if cache != before:
        write_cache(cache)
    return out
