"""One notion of "the same run" for every verb: a fingerprint of everything that determines a result.

A verb describes its inputs as two mappings: `fields` (model, adapter, template, prompt protocol, data hashes,
decoding, backend, ...) decide the result, so any difference means recompute or refuse; `recorded` (package
versions, batch size, workers) are written down and a difference is warned about, never a reason to throw away
hours of generation. The digest is a sha256 over the canonical JSON of `fields`. Every result file carries
`{"digest", "fields", "recorded"}`, and a verb compares it before it reuses anything.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medasst import hashing

FORMAT = 1  # of the fingerprint record itself
RECOMPUTE_FLAG = "--recompute"
# files of a model folder that decide its outputs: weights, config, tokenizer and chat template
MODEL_FILE_PATTERNS = (
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "tokenizer.model",
    "*.tiktoken",
    "vocab.json",
    "merges.txt",
    "chat_template.jinja",
    "chat_template.json",
    "*.safetensors",
    "*.bin",
    "*.py",  # a remote-code model's own modeling / tokenizer code (trust_remote_code)
)
ADAPTER_FILE_PATTERNS = ("adapter_config.json", "adapter_model.safetensors")


class FingerprintMismatch(RuntimeError):
    """A result made from other inputs than the ones asked for now; the message names the fields that changed."""


@dataclass(frozen=True)
class Fingerprint:
    fields: dict[str, Any]
    recorded: dict[str, Any] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        return hashlib.sha256(canonical(self.fields).encode("utf-8")).hexdigest()

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "digest": self.digest, "fields": self.fields, "recorded": self.recorded}


def canonical(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key in sorted(value):
            out.update(_flatten(value[key], f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def differences(old: dict[str, Any] | None, new: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(dotted field, old value, new value) for every leaf that differs, in sorted order."""
    a, b = _flatten(old or {}), _flatten(new)
    return [(key, a.get(key), b.get(key)) for key in sorted(set(a) | set(b)) if a.get(key) != b.get(key)]


def _short(value: Any, width: int = 60) -> str:
    text = canonical(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def describe(changes: list[tuple[str, Any, Any]], limit: int = 4) -> str:
    shown = "; ".join(f"{key}: {_short(a)} → {_short(b)}" for key, a, b in changes[:limit])
    more = f"; and {len(changes) - limit} more" if len(changes) > limit else ""
    return shown + more


def stored(record: Any) -> dict[str, Any] | None:
    """The fingerprint a result file carries, or None (a file made before fingerprints, or by another tool)."""
    if isinstance(record, dict) and isinstance(record.get("fingerprint"), dict):
        fp = record["fingerprint"]
        if isinstance(fp.get("fields"), dict):
            return fp
    return None


def check_reusable(path: Path, record: Any, new: Fingerprint, what: str) -> None:
    """Raise FingerprintMismatch unless `record` (read from `path`) was made from the same inputs; warn on the rest."""
    old = stored(record)
    if old is None:
        raise FingerprintMismatch(
            f"{path} has no fingerprint (made by an older version or another tool), so it cannot be trusted as "
            f"{what} for these inputs; pass {RECOMPUTE_FLAG} to recompute it, or use another --output"
        )
    changed = differences(old.get("fields"), new.fields)
    if changed:
        raise FingerprintMismatch(
            f"{path} was made from other inputs ({describe(changed)}); pass {RECOMPUTE_FLAG} to recompute it, "
            "or use another --output"
        )
    warn_recorded(path, old.get("recorded"), new.recorded)


def warn_recorded(path: Path, old: Any, new: dict[str, Any]) -> None:
    changed = differences(old if isinstance(old, dict) else {}, new)
    if changed:
        print(f"note: {path} is reused; it was made with {describe(changed)}", file=sys.stderr)


# --- identities of the inputs -------------------------------------------------------------------------------


def file_sha256(path: str | os.PathLike) -> str:
    return hashing.file_sha256(path)


def files_sha256(paths: list[Path], root: Path) -> dict[str, str]:
    """Relative name → sha256 for each file, sorted by name (weights through the shared cache)."""
    return hashing.files_sha256(paths, root, big=_SMALL)


_SMALL = hashing.BIG  # files below this are hashed every time; above it the (path, size, mtime) cache is used


def folder_files(folder: Path, patterns: tuple[str, ...]) -> list[Path]:
    found: set[Path] = set()
    for pattern in patterns:
        found.update(p for p in folder.glob(pattern) if p.is_file())
    return sorted(found)


def _tree_digest(files: dict[str, str]) -> str:
    return hashlib.sha256(canonical(files).encode("utf-8")).hexdigest()


def data_file(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    return {"file": str(path), "sha256": file_sha256(path)}


def hub_snapshot(model: str) -> tuple[Path, str | None, str] | None:
    """(local snapshot folder, revision, hub) that a hub id resolves to in the local cache, without any network."""
    if os.environ.get("USE_MODELSCOPE_HUB", "").lower() in ("1", "true", "y"):
        base = Path(os.environ.get("MODELSCOPE_CACHE") or Path.home() / ".cache" / "modelscope" / "hub")
        # ModelScope writes "." in a name as "___" (Qwen2.5-7B → Qwen2___5-7B)
        names = dict.fromkeys((model, model.replace(".", "___")))
        for folder in [b / name for name in names for b in (base / "models", base)]:
            if (folder / "config.json").is_file():
                return folder, None, "modelscope"
        return None
    try:
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(model, local_files_only=True))
    except Exception:  # not cached (or not a valid id): resolved at load time, recorded as unresolved
        return None
    return folder, folder.name, "huggingface"


def model_identity(model: str) -> dict[str, Any]:
    """A local model folder by the sha256 of its weights, config and tokenizer files (not its path: a moved
    folder is the same model; verbs record the path beside); a hub id by the snapshot it resolves to locally
    (its revision, and the same file hashes), else as unresolved."""
    path = Path(model).expanduser()
    if path.is_dir():
        files = files_sha256(folder_files(path, MODEL_FILE_PATTERNS), path)
        return {"files_sha256": _tree_digest(files), "files": files}
    snapshot = hub_snapshot(model)
    if snapshot is None:
        return {"id": model, "revision": None, "resolved": False}
    folder, revision, hub = snapshot
    files = files_sha256(folder_files(folder, MODEL_FILE_PATTERNS), folder)
    return {"id": model, "hub": hub, "revision": revision, "files_sha256": _tree_digest(files), "files": files}


def adapter_identity(adapter: str | None) -> dict[str, Any] | None:
    if adapter is None:
        return None
    path = Path(adapter)
    files = files_sha256(folder_files(path, ADAPTER_FILE_PATTERNS), path)
    return {"files_sha256": _tree_digest(files), "files": files}


def package_versions(names: tuple[str, ...]) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, str] = {}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def readable(fp: dict[str, Any] | None) -> dict[str, Any]:
    """The fields a person reads first (no per-file hash lists), for tables and notes."""
    if fp is None:
        return {}
    out = {}
    for key, value in (fp.get("fields") or {}).items():
        if isinstance(value, dict):
            value = {k: v for k, v in value.items() if k != "files"}
        out[key] = value
    return out
