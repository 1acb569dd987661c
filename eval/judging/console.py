"""What `judge` prints: one summary line per system, and the notes a reader of those lines must not miss."""

from __future__ import annotations

from typing import Any

from eval.judging import provenance
from eval.judging.client import MAX_REPLY_CHARS


def summary_line(name: str, r: dict[str, Any]) -> str:
    if "win" in r:
        if r["win"] is None:
            return f"{name}: no parsed verdicts ({r['unparsed_items']} items unparsed)"
        lc = "" if r.get("lc_win_rate") is None else f", length-controlled {r['lc_win_rate']:.1%}"
        return (
            f"{name}: win rate {r['win_rate']:.1%}{lc} (win {r['win']:.1%} tie {r['tie']:.1%} loss {r['loss']:.1%}; "
            f"n={r['n']}, sign test p={r['sign_test_p']:.3g}, inconsistent {r['inconsistent']:.1%}, unparsed "
            f"{r['unparsed_items']})"
        )
    if "refusal_rate" in r:
        rate = "—" if r["refusal_rate"] is None else f"{r['refusal_rate']:.1%}"
        return (f"{name}: over-refusal {rate} on benign prompts (n={r['n']}, keyword matches "
                f"{r.get('keyword_refusals')}, unparsed {r['unparsed_replies']})")  # fmt: skip
    if "safe_rate" in r:
        rate = "—" if r["safe_rate"] is None else f"{r['safe_rate']:.1%}"
        return f"{name}: safe {rate} (n={r['n']}, unparsed {r['unparsed_replies']})"
    means = ", ".join(f"{k} {v:.2f}" for k, v in r.items() if isinstance(v, float) and not k.endswith("ci95"))
    return f"{name}: {means or 'no parsed scores'} (n={r['n']}, unparsed {r['unparsed_replies']})"



UNPARSED_WARN = 0.2  # a share of unreadable verdicts above which the numbers rest on a biased subset


def notes(result: dict[str, Any]) -> list[str]:
    """What the summary lines do not say but a reader of them must know: partial predictions, unchecked
    answers, many unparsed verdicts, replies cut to the cache's limit."""
    out = []
    missing = result.get("not_in_every_system") or {}
    if missing:
        shown = ", ".join(f"{name} {n} more" for name, n in sorted(missing.items()))
        out.append(
            f"only the {result['sample']['n']} items every system answered are judged ({shown} than that); "
            "finish the other generate runs to judge them all"
        )
    unchecked = sorted(n for n, how in (result.get("answers_checked_by") or {}).items() if how == "unchecked")
    if unchecked:
        out.append(
            f"{', '.join(unchecked)}: no {provenance.GENERATE_RUN} and no prompts beside the predictions, so it "
            "cannot be checked that they answer this dataset's questions"
        )
    for name, summary in sorted(result["systems"].items()):
        items = summary.get("n_items") or 0
        unread = items - (summary.get("n") or 0)
        if items and summary.get("n") and unread / items > UNPARSED_WARN:
            out.append(f"{name}: {unread} of {items} items have no readable verdict; its numbers rest on the rest")
    cut = (result.get("cache") or {}).get("replies_cut")
    if cut:
        out.append(f"{cut} replies ran far past --max-tokens; stored cut to {MAX_REPLY_CHARS} characters")
    return out
