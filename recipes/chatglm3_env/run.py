"""Run a ChatGLM3 recipe with LLaMA-Factory 0.8.3, in the environment of requirements.txt beside this file.

    python recipes/chatglm3_env/run.py train recipes/chatglm3_huatuo26m.yaml [key=value ...]

LLaMA-Factory 0.8.3 always trusts remote code and rejects a `trust_remote_code` key, and it reads no `key=value`
overrides; so the recipe (which asks for remote code in LF 0.9.5's terms) is written, minus that key and with the
overrides applied, to a temporary YAML that `llamafactory-cli` then runs. Nothing else changes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

DROPPED = ("trust_remote_code",)  # LF 0.8.3 trusts remote code unconditionally and refuses the key


def legacy_config(recipe: Path, overrides: list[str]) -> dict:
    config = yaml.safe_load(recipe.read_text(encoding="utf-8"))
    if not isinstance(config, dict):
        raise SystemExit(f"{recipe}: not a recipe (a YAML mapping)")
    if config.get("trust_remote_code") is not True:
        raise SystemExit(f"{recipe}: does not ask for remote code; run it with the repo's own LLaMA-Factory")
    for key in DROPPED:
        config.pop(key, None)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"override {item!r}: write key=value")
        config[key] = yaml.safe_load(value) if value else None
    return config


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        raise SystemExit(__doc__)
    command, recipe, overrides = argv[0], Path(argv[1]), argv[2:]
    config = legacy_config(recipe, overrides)
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False, encoding="utf-8") as f:
        yaml.safe_dump(config, f, allow_unicode=True, sort_keys=False)
    try:
        return subprocess.call(["llamafactory-cli", command, f.name])
    finally:
        os.unlink(f.name)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
