"""constraints.txt, the exact install the README offers, agrees with pyproject.toml's ranges and pins the stack
that moves (a requirement bumped without `bash .ci/lock` fails here, before a user's install does)."""

from __future__ import annotations

import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from medasst.facts import REPO_ROOT


def _pins() -> dict[str, str]:
    pins = {}
    for line in (REPO_ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, version = line.partition("==")
        assert sep and version, f"not an exact pin: {line!r}"
        pins[canonicalize_name(name)] = version
    return pins


def test_every_requirement_is_pinned_within_its_range():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pins = _pins()
    for spec in project["dependencies"] + project["optional-dependencies"]["dev"]:
        req = Requirement(spec)
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is not in constraints.txt; run bash .ci/lock"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"constraints.txt pins {req.name}=={pins[name]}, outside pyproject's {req.specifier}; run bash .ci/lock"
        )


def test_the_stack_that_moves_is_pinned():
    pins = _pins()
    for name in ("torch", "transformers", "peft", "trl", "datasets", "gradio", "accelerate", "tokenizers"):
        assert name in pins, name
