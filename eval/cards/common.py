"""What both cards share: the one error type a verb turns into a one-line message, JSON/YAML readers that raise
it, and the check that no path of this machine reaches a card."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from eval.common import requests


class CardError(ValueError):
    """An input a card cannot be made from; the message names the file and what to do."""


def read_json_object(path: Path, what: str) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CardError(f"{path}: {what} not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CardError(f"{path}: not a readable {what} ({type(e).__name__}: {str(e).splitlines()[0]})") from None
    if not isinstance(value, dict):
        raise CardError(f"{path}: not a {what} (expected a JSON object)")
    return value


def read_yaml_object(path: Path, what: str) -> dict[str, Any]:
    import yaml

    try:
        value = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CardError(f"{path}: {what} not found") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise CardError(f"{path}: not a readable {what} ({type(e).__name__})") from None
    if not isinstance(value, dict):
        raise CardError(f"{path}: not a {what} (expected a YAML mapping)")
    return value


# an absolute POSIX or Windows path, or one under the home folder, after whitespace or an opening mark;
# URLs are safe ("https://…" has no such boundary before its "//")
_LOCAL_PATH = re.compile(r"(?:^|[\s(\[`'\"=:,])(?:/(?!/)[\w.@+-]+(?:/[\w.@+-]*)+|~/[\w.@+-]+|[A-Za-z]:\\[\w.\\-]+)")


def local_paths(text: str) -> list[str]:
    """The absolute (machine-specific) paths in a text: what a published card must never contain."""
    return sorted({m.group(0).lstrip(" \t\n([`'\"=:,") for m in _LOCAL_PATH.finditer(text)})


def is_hub_id(value: object) -> bool:
    """`org/name` that is not a folder here: what a card may name as a model or dataset."""
    if not isinstance(value, str) or not requests.HUB_ID.match(value):
        return False
    return not Path(value).expanduser().exists()


def warn(verb: str, message: str) -> None:
    print(f"{verb}: warning: {message}", file=sys.stderr)


def shown_path(path: Path) -> str:
    """A path as a card may show it: relative to the repo root when inside it, else only its last part."""
    from medasst.facts import REPO_ROOT

    resolved = path.resolve()
    if resolved.is_relative_to(REPO_ROOT):
        return resolved.relative_to(REPO_ROOT).as_posix()
    return path.name
