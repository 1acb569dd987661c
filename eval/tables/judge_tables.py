"""The report's judge sections, from `judge`'s judge.json files: pairwise win rate (with its sign test and the
length-controlled rate) and win/tie/loss vs the reference (with a stacked-bar figure), a Bradley–Terry ranking,
safety and over-refusal rates side by side, and rubric / CMB-Clin means, each with its parse-failure counts."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

JUDGE_FILE = "judge.json"
SUMMARY_VERSION = 2  # the judge.json summaries these tables read (eval/judging/outcomes.py)


class JudgeResultError(ValueError):
    pass


def load(folder: str | os.PathLike) -> dict[str, Any]:
    from eval.common.files import read_json

    path = Path(folder) / JUDGE_FILE if Path(folder).is_dir() else Path(folder)
    record = read_json(path)
    if not isinstance(record, dict) or not isinstance(record.get("systems"), dict) or "rubric" not in record:
        raise JudgeResultError(f"{path}: not a judge.json of `eval.run judge`")
    if not record.get("complete"):
        failed = (record.get("requests") or {}).get("failed")
        raise JudgeResultError(f"{path}: incomplete ({failed} judge requests failed); rerun judge first")
    if record.get("summary_version") != SUMMARY_VERSION:
        raise JudgeResultError(f"{path}: summaries of an older judge (no win rate or length control); rerun judge "
                               "with --recompute (its cache answers every request again)")  # fmt: skip
    return record | {"_path": str(path)}


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}"


def _ci(ci: list[float] | None, scale: float = 100.0, digits: int = 1) -> str:
    return "" if not ci else f" [{ci[0] * scale:.{digits}f}, {ci[1] * scale:.{digits}f}]"


def _about(record: dict[str, Any]) -> str:
    judge, sample, rubric = record["judge"], record["sample"], record["rubric"]
    limit = f", a sample of {sample['n']} (seed {sample['seed']})" if sample.get("limit") else f", {sample['n']} items"
    return (f"Judge `{judge['model']}` (temperature {judge['temperature']}), rubric `{rubric['name']}` "
            f"v{rubric['version']}, dataset `{record['dataset']}`{limit}.")  # fmt: skip


def pairwise_section(record: dict[str, Any], figure: Path) -> tuple[str, list[dict[str, Any]]]:
    ref = record["reference"]
    head = ("| system vs " + ref + " | win rate % [95% CI] | sign test p | length-controlled % [95% CI] | "
            "mean length (ref) | win % | tie % | loss % | n | inconsistent % | first-position % | unparsed items | "
            "truncated replies |")  # fmt: skip
    lines = [head, "|" + "---|" * 14]
    rows = []
    for name, r in record["systems"].items():
        length = "—" if r.get("mean_length") is None else f"{r['mean_length']:.0f} ({r['mean_length_reference']:.0f})"
        p = "—" if r.get("sign_test_p") is None else f"{r['sign_test_p']:.3g}"
        lines.append(
            f"| {name} | {_pct(r['win_rate'])}{_ci(r['win_rate_ci95'])} | {p} | "
            f"{_pct(r.get('lc_win_rate'))}{_ci(r.get('lc_win_rate_ci95'))} | {length} | {_pct(r['win'])} | "
            f"{_pct(r['tie'])} | {_pct(r['loss'])} | {r['n']} | {_pct(r['inconsistent'])} | "
            f"{_pct(r['first_position'])} | {r['unparsed_items']} | {r['truncated_replies']} |"
        )
        rows.append({"system": name, "reference": ref} | {k: r[k] for k in r})
    plot_pairwise([r["system"] for r in rows], rows, ref, figure)
    md = "\n".join(lines) + (
        f"\n\n{_about(record)} Each item is judged in both answer orders; a verdict that flips with the order is a "
        "tie (and counts as inconsistent). win rate = win + ½ tie (bootstrap CI over items); sign test: exact "
        "two-sided binomial of wins against losses (ties left out). length-controlled: AlpacaEval 2's logistic "
        "model of the verdict on tanh(length difference / its sd), predicted at equal length — a judge that "
        "rewards only length scores 50 there; lengths in characters. first-position: share of decided verdicts for "
        "whichever answer came first (50% = no position bias). An item with an unparsed reply in either order is "
        f"left out of n.\n\n![win/tie/loss]({figure.name})\n"
    )
    if record.get("ranking"):
        md += "\n" + ranking_table(record["ranking"])
    return md, rows


def ranking_table(order: dict[str, Any]) -> str:
    lines = ["| rank [95% range] | system | Bradley–Terry score [95% CI] | β vs " + order["reference"] + " [95% CI] |",
             "|---|---|---|---|"]  # fmt: skip
    for name, r in order["systems"].items():
        lo, hi = r["rank_range"]
        lines.append(f"| {r['rank']} [{lo}–{hi}] | {name} | {r['bt_score']:.1f}{_ci(r['bt_score_ci95'], 1.0)} | "
                     f"{r['beta']:.2f}{_ci(r['beta_ci95'], 1.0, 2)} |")  # fmt: skip
    return "\n".join(lines) + (
        f"\n\nBradley–Terry fit to every judged pair ({order['reference']} pinned at β = 0, score = 100·σ(β): the "
        f"predicted win rate against it), as Arena-Hard ranks systems; CIs and rank ranges from {order['resamples']} "
        f"bootstrap resamples of the items (seed {order['seed']}).\n"
    )


def _rates(records: list[dict[str, Any]], rubric: str, key: str) -> dict[str, dict[str, Any]]:
    """system → its summary in the last judge.json of `rubric` given (safety or refusal)."""
    found: dict[str, dict[str, Any]] = {}
    for record in records:
        if record["rubric"]["name"] == rubric:
            found |= {name: r for name, r in record["systems"].items() if key in r}
    return found


def refusal_section(record: dict[str, Any], safety: dict[str, dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    lines = ["| system | over-refusal % [95% CI] | refused | keyword matches | n judged | safe % [95% CI] "
             "(safety set) | unparsed | truncated |", "|" + "---|" * 8]  # fmt: skip
    rows = []
    for name, r in record["systems"].items():
        safe = safety.get(name)
        safe_text = "not judged" if safe is None else f"{_pct(safe['safe_rate'])}{_ci(safe['safe_rate_ci95'])}"
        lines.append(f"| {name} | {_pct(r['refusal_rate'])}{_ci(r['refusal_rate_ci95'])} | {r['refused']} | "
                     f"{r.get('keyword_refusals', '—')} | {r['n']} | {safe_text} | {r['unparsed_replies']} | "
                     f"{r['truncated_replies']} |")  # fmt: skip
        rows.append({"system": name, "safe_rate": None if safe is None else safe["safe_rate"]} | r)
    note = (
        "over-refusal %: share of the benign medical prompts (eval/benchmarks/benign_prompts.json) the judge reads "
        "as refused; keyword matches: answers holding a refusal phrase (抱歉, 无法提供, …), a judge-free cross-check "
        "that also counts polite answers. A system that refuses everything is 100 % safe: read the two together"
        + ("" if safety else "; no safety judge.json was given, so the safety rate is not shown") + "."
    )
    return "\n".join(lines) + f"\n\n{_about(record)} {note}\n", rows


def single_section(record: dict[str, Any], refusals: dict[str, dict[str, Any]] | None = None):
    criteria = record["rubric"]["criteria"]
    rows = []
    if record["rubric"]["name"] == "safety":
        refusals = refusals or {}
        lines = ["| system | safe % [95% CI] | unsafe | n judged | over-refusal % (benign set) | unparsed | "
                 "truncated |", "|" + "---|" * 7]  # fmt: skip
        for name, r in record["systems"].items():
            over = refusals.get(name)
            over_text = "not judged" if over is None else _pct(over["refusal_rate"])
            lines.append(f"| {name} | {_pct(r['safe_rate'])}{_ci(r['safe_rate_ci95'])} | {r['unsafe']} | {r['n']} | "
                         f"{over_text} | {r['unparsed_replies']} | {r['truncated_replies']} |")  # fmt: skip
            rows.append({"system": name, "over_refusal": None if over is None else over["refusal_rate"]} | r)
        note = ("safe %: share of the parsed verdicts that are safe; unparsed replies are shown apart, not counted. "
                "Refusing is safe, so read it beside over-refusal (`judge --rubric refusal`)"
                + ("" if refusals else ", not judged here") + ".")  # fmt: skip
    else:
        lines = ["| system | " + " | ".join(f"{c} [95% CI]" for c in criteria) + " | n | unparsed | truncated |",
                 "|" + "---|" * (len(criteria) + 4)]  # fmt: skip
        for name, r in record["systems"].items():
            cells = " | ".join("—" if r[c] is None else f"{r[c]:.2f}{_ci(r[f'{c}_ci95'], 1.0, 2)}" for c in criteria)
            lines.append(f"| {name} | {cells} | {r['n']} | {r['unparsed_replies']} | {r['truncated_replies']} |")
            rows.append({"system": name} | r)
        note = "Means of the judge's 1–5 scores over the answers it scored; unparsed replies are shown apart."
    return "\n".join(lines) + f"\n\n{_about(record)} {note}\n", rows


TITLES = {
    "pairwise": "Judge: pairwise against {ref} (win / tie / loss)",
    "safety": "Judge: safety rate on the safety items",
    "refusal": "Judge: over-refusal on benign medical prompts, beside the safety rate",
    "medical": "Judge: correctness, safety, helpfulness (1–5)",
    "cmb-clin": "CMB-Clin: clinical cases judged against the reference, CMB's own prompt and scales (1–5)",
    "cmb-clin-zh": "CMB-Clin: clinical cases judged against the reference, our Chinese anchors (1–5)",
}


def sections(records: list[dict[str, Any]], out: Path) -> tuple[list[str], list[str], list[dict[str, Any]]]:
    """(markdown sections, files written into `out`, rows for report.json)."""
    texts, files, rows = [], [], []
    for i, record in enumerate(records, start=1):
        name = record["rubric"]["name"]
        if name == "pairwise":
            figure = out / f"judge_pairwise_{i}.png"
            md, found = pairwise_section(record, figure)
            files.append(figure.name)
        elif name == "refusal":
            md, found = refusal_section(record, _rates(records, "safety", "safe_rate"))
        else:
            md, found = single_section(record, _rates(records, "refusal", "refusal_rate"))
        title = TITLES.get(name, name).format(ref=record.get("reference"))
        table = f"judge_{i}_{name}.md"
        (out / table).write_text(md, encoding="utf-8")
        files.append(table)
        texts.append(f"## {title}\n\n{md}")
        rows.append({"judge": record["_path"], "rubric": name, "rows": found})
    return texts, files, rows


def plot_pairwise(systems: list[str], rows: list[dict[str, Any]], ref: str, out_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from eval.tables.figure import save_png

    fig, ax = plt.subplots(figsize=(7.0, 0.6 * len(systems) + 1.6), dpi=150)
    left = [0.0] * len(systems)
    for side, color in (("win", "#55A868"), ("tie", "#BBBBBB"), ("loss", "#C44E52")):
        widths = [100 * (r[side] or 0.0) for r in rows]
        ax.barh(systems, widths, left=left, color=color, label=side)
        for y, (x0, w) in enumerate(zip(left, widths, strict=True)):
            if w >= 6:
                ax.text(x0 + w / 2, y, f"{w:.0f}%", ha="center", va="center", fontsize=8)
        left = [a + b for a, b in zip(left, widths, strict=True)]
    ax.set_xlim(0, 100)
    ax.set_xlabel(f"% of items, vs {ref} (both orders)")
    ax.legend(ncols=3, loc="upper center", bbox_to_anchor=(0.5, -0.35), frameon=False, fontsize=8)
    ax.spines[["top", "right"]].set_visible(False)
    save_png(fig, out_path)
