"""What the judge's replies add up to: per system, pairwise win / tie / loss (both answer orders; a verdict
that flips with the order is a tie, and inconsistent), one win rate (win + ½ tie) with a sign test, a
length-controlled win rate and, over three or more systems, a Bradley–Terry ranking (eval/metrics/preference.py);
or rubric means, safety and over-refusal rates; with bootstrap CIs and the counts of unreadable and truncated
replies. A reply that cannot be parsed is counted, never a verdict."""

from __future__ import annotations

from typing import Any

import numpy as np

from eval.judging import prompts as jp
from eval.judging import refusal, verdicts
from eval.judging.client import Cache
from eval.metrics import preference, stats

# of judge.json's summaries: 1 had win / tie / loss only; 2 adds the win rate, its sign test, length control, the
# ranking and over-refusal. judge.json of another version is remade (fingerprint) or refused by the report
SUMMARY_VERSION = 2
_POINTS = {"win": 1.0, "tie": 0.5, "loss": 0.0}

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


Lengths = dict[tuple[str, str], tuple[int, int]]  # (system, item) → (its answer's, the reference's) characters


def judge_pairwise(asks: list, cache: Cache, seed: int,
                   lengths: Lengths | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:  # fmt: skip
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
                    **({"length": list(lengths[(s, item_id)])} if lengths else {}),
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
        mine = [line for line in lines if line["system"] == system and line["outcome"] != "unparsed"]
        result |= _win_rate([_POINTS[line["outcome"]] for line in mine], seed)
        result |= _length_control(mine, seed) if lengths else {}
        summary[system] = result
    return summary, lines


def _win_rate(points: list[float], seed: int) -> dict[str, Any]:
    wins, losses = sum(p == 1.0 for p in points), sum(p == 0.0 for p in points)
    return {
        "win_rate": float(np.mean(points)) if points else None,
        "win_rate_ci95": _ci(points, seed) if points else None,
        # exact binomial on the decided items: does the system win more often than it loses?
        "sign_test_p": stats.sign_test_p(wins, losses) if points else None,
    }


def _length_control(lines: list[dict[str, Any]], seed: int) -> dict[str, Any]:
    mean_len = {"mean_length": None, "mean_length_reference": None}
    if not lines:
        return mean_len | {"lc_win_rate": None, "lc_win_rate_ci95": None, "length_coefficient": None}
    own = [line["length"][0] for line in lines]
    ref = [line["length"][1] for line in lines]
    fit = preference.length_controlled([_POINTS[line["outcome"]] for line in lines], own, ref, stats.RESAMPLES, seed)
    return {"mean_length": float(np.mean(own)), "mean_length_reference": float(np.mean(ref)),
            "lc_win_rate": round(fit["lc_win_rate"], 6),
            "lc_win_rate_ci95": [round(v, 4) for v in fit["lc_win_rate_ci95"]],
            "length_coefficient": round(fit["length_coefficient"], 4)}  # fmt: skip


def ranking(lines: list[dict[str, Any]], reference: str, seed: int) -> dict[str, Any] | None:
    """Bradley–Terry over every judged pair, when three or more systems were judged (None otherwise: with two,
    the ranking is the win rate)."""
    pairs = [(line["id"], line["system"], reference, _POINTS[line["outcome"]])
             for line in lines if line["outcome"] != "unparsed"]  # fmt: skip
    if len({p[1] for p in pairs}) < 2:
        return None
    return {"method": "bradley-terry", "reference": reference, "resamples": stats.RESAMPLES, "seed": seed,
            "systems": preference.bradley_terry(pairs, reference, stats.RESAMPLES, seed)}  # fmt: skip


def _verdict(rubric: jp.Rubric, reply: str) -> Any:
    if rubric.name == "safety":
        return verdicts.parse_safety(reply)
    if rubric.name == jp.REFUSAL:
        return refusal.parse_refusal(reply)
    return verdicts.parse_scores(reply, rubric.criteria)


def judge_single(asks: list, cache: Cache, rubric: jp.Rubric, seed: int,
                 answers: dict[str, dict[str, str]] | None = None):  # fmt: skip
    summary: dict[str, Any] = {}
    lines = []
    for system in sorted({a.system for a in asks}):
        parsed: list[Any] = []
        unparsed = truncated = 0
        for ask in (a for a in asks if a.system == system):
            row = cache.get(ask.key) or {}
            reply = row.get("reply", "")
            truncated += row.get("finish_reason") == "length"
            verdict = _verdict(rubric, reply)
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
        elif rubric.name == jp.REFUSAL:
            refused = [float(v) for v in parsed]
            result["refusal_rate"] = float(np.mean(refused)) if refused else None
            result["refusal_rate_ci95"] = _ci(refused, seed) if refused else None
            result["refused"] = int(sum(refused))
            if answers is not None:
                mine = [answers[system][a.item] for a in asks if a.system == system]
                result["keyword_refusals"] = sum(refusal.keyword_refusal(text) for text in mine)
                result["keyword_version"] = refusal.KEYWORDS_VERSION
        else:
            for criterion in rubric.criteria:
                values = [float(v[criterion]) for v in parsed]
                result[criterion] = float(np.mean(values)) if values else None
                result[f"{criterion}_ci95"] = _ci(values, seed) if values else None
        summary[system] = result
    return summary, lines
