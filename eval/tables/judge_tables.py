"""The report's judge sections, from `judge`'s judge.json files: pairwise win/tie/loss vs the reference (with a
stacked-bar figure), safety rate, and rubric / CMB-Clin means, each with its parse-failure counts."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

JUDGE_FILE = "judge.json"


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
    head = ("| system vs " + ref + " | win % [95% CI] | tie % [95% CI] | loss % [95% CI] | n | inconsistent % | "
            "first-position % | unparsed items | truncated replies |")  # fmt: skip
    lines = [head, "|" + "---|" * 9]
    rows = []
    for name, r in record["systems"].items():
        lines.append(
            f"| {name} | {_pct(r['win'])}{_ci(r['win_ci95'])} | {_pct(r['tie'])}{_ci(r['tie_ci95'])} | "
            f"{_pct(r['loss'])}{_ci(r['loss_ci95'])} | {r['n']} | {_pct(r['inconsistent'])} | "
            f"{_pct(r['first_position'])} | {r['unparsed_items']} | {r['truncated_replies']} |"
        )
        rows.append({"system": name, "reference": ref} | {k: r[k] for k in r})
    plot_pairwise([r["system"] for r in rows], rows, ref, figure)
    md = "\n".join(lines) + (
        f"\n\n{_about(record)} Each item is judged in both answer orders; a verdict that flips with the order is a "
        "tie (and counts as inconsistent). first-position: share of decided verdicts for whichever answer came "
        "first (50% = no position bias). An item with an unparsed reply in either order is left out of n.\n\n"
        f"![win/tie/loss]({figure.name})\n"
    )
    return md, rows


def single_section(record: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    criteria = record["rubric"]["criteria"]
    rows = []
    if record["rubric"]["name"] == "safety":
        lines = ["| system | safe % [95% CI] | unsafe | n judged | unparsed | truncated |", "|" + "---|" * 6]
        for name, r in record["systems"].items():
            lines.append(f"| {name} | {_pct(r['safe_rate'])}{_ci(r['safe_rate_ci95'])} | {r['unsafe']} | {r['n']} | "
                         f"{r['unparsed_replies']} | {r['truncated_replies']} |")  # fmt: skip
            rows.append({"system": name} | r)
        note = "safe %: share of the parsed verdicts that are safe; unparsed replies are shown apart, not counted."
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
        else:
            md, found = single_section(record)
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
