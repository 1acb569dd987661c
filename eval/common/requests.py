"""Typed verb requests: built from argv (the CLI) or from a config mapping (`--config`), validated in one place.

A request is a frozen dataclass of a verb's options. It validates itself when built (`__post_init__`), before any
model loads, and raises UsageError: one line naming the flag (or config key) and the fix.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

R = TypeVar("R")
# org/name as on the Hugging Face Hub and ModelScope
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class UsageError(ValueError):
    """A flag, option or input path that cannot be used; the message names it and says what to do."""


class ModelUnavailable(UsageError):
    """A well-formed model reference that cannot be had here now (a hub id not cached while offline): in a
    pipeline, that system fails and the others still run."""


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def at_least(name: str, value: int | None, minimum: int, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise UsageError(f"{flag(name)} must be an integer ≥ {minimum}, got {value!r}")


def output_folder(path: Path | None, name: str = "output") -> None:
    if path is not None and path.exists() and not path.is_dir():
        raise UsageError(f"{flag(name)} {path} is a file; pass a folder (it is created if missing)")


def input_file(path: Path, name: str) -> None:
    if path.is_dir():
        raise UsageError(f"{flag(name)} {path} is a folder; pass the file itself")
    if not path.is_file():
        raise UsageError(f"{flag(name)} {path}: file not found")


def model_ref(value: str, name: str = "model") -> None:
    """A local model folder (with config.json), or a hub id `org/name` that the loader resolves."""
    path = Path(value).expanduser()
    if path.is_file():
        raise UsageError(f"{flag(name)} {value} is a file; pass the model folder (with config.json) or a hub id")
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise UsageError(f"{flag(name)} {value} has no config.json; pass a model folder or a hub id")
        return
    explicit_path = value.startswith(("/", ".", "~")) or value.count("/") != 1 or os.sep + os.sep in value
    if explicit_path or not HUB_ID.match(value):
        raise UsageError(f"{flag(name)} {value}: model folder not found (and not a hub id like Qwen/Qwen2-7B)")
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    modelscope = os.environ.get("USE_MODELSCOPE_HUB", "").lower() in ("1", "true", "y")
    if offline and not modelscope:
        from eval.common.fingerprint import hub_snapshot

        if hub_snapshot(value) is None:
            raise ModelUnavailable(
                f"{flag(name)} {value}: no local folder of that name, and the hub id is not in the local cache "
                "(HF_HUB_OFFLINE=1); download it first or pass the model folder"
            )


def model_options(model: str, adapter: str | None, dtype: str) -> None:
    """What every model-loading verb checks first: the model reference, the adapter folder, the dtype."""
    from eval.backends.model import DTYPES, ModelLoadError, check_adapter

    model_ref(model)
    if dtype not in DTYPES:
        raise UsageError(f"--dtype {dtype!r}: choose from {', '.join(DTYPES)}")
    if adapter is not None:
        try:
            check_adapter(adapter)
        except ModelLoadError as e:
            raise UsageError(f"--adapter: {e}") from None


def dataset(name: str, dataset_dir: str) -> None:
    """A dataset registered in `<dataset_dir>/dataset_info.json` whose local files exist."""
    from eval.data.prompts import DatasetError, dataset_entry

    try:
        dataset_entry(name, dataset_dir)
    except DatasetError as e:
        raise UsageError(str(e)) from None


def _accepts(hint: Any, value: Any) -> bool:
    """Whether a YAML value fits a field's type (int, str, bool, Path, their Optional, tuples of str)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_accepts(arg, value) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint in (str, Path):
        return isinstance(value, str | int | float) and not isinstance(value, bool)
    if origin is tuple:
        return isinstance(value, list | tuple) and all(isinstance(v, str) for v in value)
    return True


def _coerce(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    if typing.get_origin(hint) is tuple:
        return tuple(str(v) for v in value)
    args = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
    if Path in args:
        return Path(str(value))
    if str in args and not isinstance(value, str):
        return str(value)
    return value


def from_options(cls: type[R], options: dict[str, Any], where: str) -> R:
    """A request from a config mapping; unknown keys and values of the wrong type name the key."""
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise UsageError(f"{where}: unknown option(s) {unknown}; known: {sorted(known)}")
    values: dict[str, Any] = {}
    for key, value in options.items():
        if not _accepts(hints[key], value):
            raise UsageError(f"{where}: {key} = {value!r} has the wrong type (expected {hints[key]})")
        values[key] = _coerce(hints[key], value)
    try:
        return cls(**values)
    except TypeError as e:  # a required option left out
        missing = [f.name for f in dataclasses.fields(cls) if f.name not in values and _required(f)]
        raise UsageError(f"{where}: missing option(s) {missing}") from e
    except UsageError as e:
        raise type(e)(f"{where}: {e}") from None


def _required(f: dataclasses.Field) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def from_args(cls: type[R], args: argparse.Namespace) -> R:
    """A request from parsed argv: every dataclass field argparse produced (flags map to fields by name)."""
    hints = typing.get_type_hints(cls)
    parsed = vars(args)
    values = {f.name: _coerce(hints[f.name], parsed[f.name]) for f in dataclasses.fields(cls) if f.name in parsed}
    return cls(**values)


def add_recompute(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--recompute",
        action="store_true",
        # absent here, the top-level flag (`python -m eval.run --recompute VERB`) is not overwritten
        default=argparse.SUPPRESS,
        help="recompute even if OUT holds a result; without it, a result made from other inputs is refused",
    )


def add_trust_remote_code(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="run the model's own Python code from its folder or hub repo (ChatGLM3); off unless asked",
    )
