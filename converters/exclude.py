"""`build --exclude FILE`: training records to leave out, by id — the ones a contamination audit flagged, so a
user can retrain on a decontaminated set and compare. Test splits are never touched: the benchmark stays fixed.

FILE is `eval.run contamination`'s contamination.json (every flagged item's matching training records, with the
item's status as the reason), a JSON list of record ids, or a text file with one id per line (reason `listed`).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from converters.records import ConversionError

log = logging.getLogger("converters")


@dataclass(frozen=True)
class Exclusion:
    reasons: dict[str, str] = field(default_factory=dict)  # training record id → why it goes
    file: str = ""
    sha256: str = ""

    @property
    def ids(self) -> frozenset[str]:
        return frozenset(self.reasons)

    def describe(self) -> dict[str, Any]:
        by_reason: dict[str, int] = {}
        for reason in self.reasons.values():
            by_reason[reason] = by_reason.get(reason, 0) + 1
        return {"file": self.file, "sha256": self.sha256, "ids": len(self.reasons),
                "by_reason": dict(sorted(by_reason.items()))}  # fmt: skip


_SEVERITY = {"dirty": 0, "partly": 1}


def _audit_reason(entry: dict[str, Any]) -> str:
    detail = entry.get("contamination") or entry.get("reason")
    return f"{entry.get('status')}:{detail}" if detail else str(entry.get("status"))


def load(path: Path) -> Exclusion:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConversionError(f"--exclude {path}: file not found") from None
    except IsADirectoryError:
        raise ConversionError(f"--exclude {path} is a folder; pass contamination.json or a list of ids") from None
    except OSError as exc:
        raise ConversionError(f"--exclude {path}: cannot read it ({exc.strerror})") from None
    sha = hashlib.sha256(data).hexdigest()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ConversionError(f"--exclude {path}: not UTF-8 text") from None
    reasons: dict[str, str] = {}
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConversionError(f"--exclude {path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
        if isinstance(value, dict) and isinstance(value.get("flagged"), list):
            reasons = _from_audit(value["flagged"], path)
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            reasons = dict.fromkeys(value, "listed")
        else:
            raise ConversionError(
                f"--exclude {path}: neither a contamination.json (no 'flagged' list) nor a JSON list of record ids"
            )
    else:
        reasons = {line.strip(): "listed" for line in text.splitlines() if line.strip() and not line.startswith("#")}
    if not reasons:
        log.warning("--exclude %s names no training record: nothing is excluded", path.name)
    return Exclusion(dict(sorted(reasons.items())), path.name, sha)


def _from_audit(flagged: list, path: Path) -> dict[str, str]:
    reasons: dict[str, str] = {}
    unlisted = 0
    for i, entry in enumerate(flagged):
        records = entry.get("records") if isinstance(entry, dict) else None
        if not isinstance(records, list):
            raise ConversionError(f"--exclude {path}: flagged[{i}] has no 'records' list of training record ids")
        reason = _audit_reason(entry)
        for record in records:
            rid = record.get("train_id") if isinstance(record, dict) else None
            if not isinstance(rid, str) or not rid:
                raise ConversionError(f"--exclude {path}: flagged[{i}] holds a record without a 'train_id'")
            if rid not in reasons or _SEVERITY.get(reason.split(":")[0], 9) < _SEVERITY.get(
                reasons[rid].split(":")[0], 9
            ):
                reasons[rid] = reason  # a record behind a verbatim copy and a near one counts as the copy
        total = entry.get("records_total")
        if isinstance(total, int) and total > len(records):
            unlisted += total - len(records)
    if unlisted:
        raise ConversionError(
            f"--exclude {path}: the audit lists only part of the matching training records ({unlisted} not named); "
            "excluding the named ones would leave copies in. Rerun the audit so it names every matching record"
        )
    return reasons
