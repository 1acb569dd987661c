"""Type-checked field access shared by the JSON sources: wrong shapes become counted skips, not exceptions."""

from __future__ import annotations

from typing import Any

from converters.records import Record, Skip


def text(obj: dict, key: str, at: str, *, required: bool = True) -> str | Skip:
    if key not in obj:
        return Skip("missing_field", at, f"no {key!r}") if required else ""
    value = obj[key]
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        return Skip("wrong_type", at, f"{key!r} is {type(value).__name__}, expected str")
    return value


def history(value: Any, at: str) -> list[list[str]] | Skip:
    """`[[user, assistant], …]`; None or absent means single-turn."""
    if value is None:
        return []
    if not isinstance(value, list):
        return Skip("wrong_type", at, f"'history' is {type(value).__name__}, expected list")
    for i, pair in enumerate(value):
        if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str) and isinstance(pair[1], str)):
            return Skip("wrong_type", at, f"history[{i}] is not a [user, assistant] pair of strings")
    # the parsed lists themselves, not copies: nothing else holds them, and the cleaner rewrites them in place
    return value


def alpaca(obj: Any, at: str, rec_id: str, *, instruction_keys: tuple[str, ...] = ("instruction",)) -> Record | Skip:
    """An Alpaca-shaped object (`instruction`/`input`/`output`, optional `history`) → Record."""
    if not isinstance(obj, dict):
        return Skip("not_an_object", at, f"got {type(obj).__name__}")
    key = instruction_keys[0]
    for k in instruction_keys:
        if k in obj:
            key = k
            break
    instruction = text(obj, key, at)
    if isinstance(instruction, Skip):
        return instruction
    query = text(obj, "input", at, required=False)
    if isinstance(query, Skip):
        return query
    output = text(obj, "output", at)
    if isinstance(output, Skip):
        return output
    turns = history(obj.get("history"), at)
    if isinstance(turns, Skip):
        return turns
    return Record(instruction=instruction, input=query, output=output, history=turns, id=rec_id, where=at)
