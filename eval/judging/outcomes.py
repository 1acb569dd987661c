"""What the judge's replies add up to: per system, pairwise win / tie / loss (both answer orders; a verdict
that flips with the order is a tie, and inconsistent) or rubric means and safety rates, with bootstrap CIs and
the counts of unreadable and truncated replies. A reply that cannot be parsed is counted, never a verdict."""

from __future__ import annotations

from typing import Any

import numpy as np

from eval.judging import prompts as jp
from eval.judging import verdicts
from eval.judging.client import Cache
from eval.metrics import stats

_SYSTEM_WINS = {("system-first", "A"), ("reference-first", "B")}
_REFERENCE_WINS = {("system-first", "B"), ("reference-first", "A")}


def _side(order: str, verdict: str | None) -> str | None:
    if verdict is None:
        return None
    if verdict == verdicts.TIE:
        return "tie"
    return "win" if (order, verdict) in _SYSTEM_WINS else "loss"


def _ci(values: list[float], seed: int) -> list[float]:
    lo, hi = stats.bootstrap_ci(np.asarray(values, dtype=np.float64), seed=seed)[0]
    return [round(lo, 4), round(hi, 4)]


def judge_pairwise(asks: list, cache: Cache, seed: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    by_item: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for ask in asks:
        row = cache.get(ask.key) or {}
        verdict = verdicts.parse_pairwise(row.get("reply", "")) if row else None
        by_item.setdefault((ask.system, ask.item), {})[ask.order] = {
            "verdict": verdict,
            "side": _side(ask.order, verdict),
            "answered": bool(row),
            "truncated": row.get("finish_reason") == "length",
        }
    summary: dict[str, Any] = {}
    lines = []
    for system in sorted({s for s, _ in by_item}):
        outcomes: list[str] = []
        inconsistent = first_position = decided = unparsed_replies = truncated = 0
        for (s, item_id), orders in sorted(by_item.items()):
            if s != system:
                continue
            sides = [orders[o]["side"] for o in ("system-first", "reference-first")]
            for o in orders.values():
                unparsed_replies += o["answered"] and o["verdict"] is None
                truncated += o["truncated"]
                if o["verdict"] in ("A", "B"):
                    decided += 1
                    first_position += o["verdict"] == "A"
            if None in sides:
                outcome = "unparsed"
            elif sides[0] == sides[1]:
                outcome = sides[0]
            else:
                outcome, inconsistent = "tie", inconsistent + 1
            outcomes.append(outcome)
            lines.append(
                {
                    "system": system,
                    "id": item_id,
                    "outcome": outcome,
                    "inconsistent": sides[0] != sides[1] and None not in sides,
                    **{o: orders[o]["verdict"] for o in orders},
                }
            )
        parsed = [o for o in outcomes if o != "unparsed"]
        result: dict[str, Any] = {
            "n_items": len(outcomes),
            "n": len(parsed),
            "unparsed_items": len(outcomes) - len(parsed),
            "unparsed_replies": unparsed_replies,
            "truncated_replies": truncated,
        }
        for side in ("win", "tie", "loss"):
            indicator = [float(o == side) for o in parsed]
            result[side] = float(np.mean(indicator)) if parsed else None
            result[f"{side}_ci95"] = _ci(indicator, seed) if parsed else None
        result["inconsistent"] = inconsistent / len(parsed) if parsed else None
        result["first_position"] = first_position / decided if decided else None
        summary[system] = result
    return summary, lines


def judge_single(asks: list, cache: Cache, rubric: jp.Rubric, seed: int):
    summary: dict[str, Any] = {}
    lines = []
    for system in sorted({a.system for a in asks}):
        parsed: list[Any] = []
        unparsed = truncated = 0
        for ask in (a for a in asks if a.system == system):
            row = cache.get(ask.key) or {}
            reply = row.get("reply", "")
            truncated += row.get("finish_reason") == "length"
            verdict = (
                verdicts.parse_safety(reply)
                if rubric.name == "safety"
                else verdicts.parse_scores(reply, rubric.criteria)
            )
            if row and verdict is None:
                unparsed += 1
            if verdict is not None:
                parsed.append(verdict)
            lines.append({"system": system, "id": ask.item, "verdict": verdict})
        result: dict[str, Any] = {
            "n_items": sum(a.system == system for a in asks),
            "n": len(parsed),
            "unparsed_replies": unparsed,
            "truncated_replies": truncated,
        }
        if rubric.name == "safety":
            safe = [float(v) for v in parsed]
            result["safe_rate"] = float(np.mean(safe)) if safe else None
            result["safe_rate_ci95"] = _ci(safe, seed) if safe else None
            result["unsafe"] = int(len(safe) - sum(safe))
        else:
            for criterion in rubric.criteria:
                values = [float(v[criterion]) for v in parsed]
                result[criterion] = float(np.mean(values)) if values else None
                result[f"{criterion}_ci95"] = _ci(values, seed) if values else None
        summary[system] = result
    return summary, lines
