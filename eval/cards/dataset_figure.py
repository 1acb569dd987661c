"""The dataset card's figure and length table: records per source and split (from the manifest), and the
question / answer length distributions (read from the merged files, checked against the manifest's sha256)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eval.cards.common import CardError
from medasst.facts import SPLITS, merged_file

FIGURE = "dataset_card.png"


@dataclass
class Lengths:
    questions: list[int]  # characters of each record's last user turn (instruction + input)
    answers: list[int]  # characters of its answer (output)


def read_lengths(data_dir: Path, manifest: dict[str, Any]) -> dict[str, Lengths]:
    """Per split, from the merged file the manifest names; a file changed since the build is refused."""
    out: dict[str, Lengths] = {}
    for split in SPLITS:
        name = merged_file(split)
        path = data_dir / name
        recorded = manifest["outputs"].get(name) or {}
        if not path.is_file():
            raise CardError(f"{path}: listed in manifest.json but missing; rebuild with `python -m converters build`")
        digest, lengths = hashlib.sha256(), Lengths([], [])
        with path.open("rb") as f:
            for lineno, line in enumerate(f, start=1):
                digest.update(line)
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    lengths.questions.append(len(record["instruction"]) + len(record.get("input") or ""))
                    lengths.answers.append(len(record["output"]))
                except (ValueError, KeyError, TypeError):
                    raise CardError(f"{path} line {lineno}: not a MedAsst record; rebuild the data") from None
        if recorded.get("sha256") and digest.hexdigest() != recorded["sha256"]:
            raise CardError(f"{path} changed after manifest.json was written; rebuild with `python -m converters "
                            "build` before the card")  # fmt: skip
        out[split] = lengths
    return out


def _quantile(values: list[int], q: float) -> int:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1) + 0.5))] if ordered else 0


def length_table(lengths: dict[str, Lengths]) -> str:
    lines = ["| split | text | records | median | 95th percentile | max |", "|---|---|---:|---:|---:|---:|"]
    for split, found in lengths.items():
        for label, values in (("question", found.questions), ("answer", found.answers)):
            lines.append(f"| {split} | {label} | {len(values)} | {_quantile(values, 0.5)} | "
                         f"{_quantile(values, 0.95)} | {max(values, default=0)} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def plot(sources: list[str], manifest: dict[str, Any], lengths: dict[str, Lengths], out_path: Path) -> None:
    """Three panels: records per source and split; question lengths; answer lengths (log-spaced bins)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib import ticker

    from eval.tables.figure import save_png

    colors = {"train": "#4C72B0", "test": "#DD8452"}
    fig, axes = plt.subplots(1, 3, figsize=(14.0, 4.2), dpi=120)
    width = 0.4
    for k, split in enumerate(SPLITS):
        counts = [int((manifest["sources"][s].get(split) or {}).get("written", 0)) for s in sources]
        xs = [i + (k - 0.5) * width for i in range(len(sources))]
        bars = axes[0].bar(xs, counts, width=width * 0.95, label=split, color=colors[split])
        for bar, count in zip(bars, counts, strict=True):
            axes[0].annotate(f"{count:,}", (bar.get_x() + bar.get_width() / 2, bar.get_height()), xytext=(0, 2),
                             textcoords="offset points", ha="center", va="bottom", fontsize=7)  # fmt: skip
    axes[0].set_xticks(range(len(sources)))
    axes[0].set_xticklabels(sources)
    axes[0].set_ylabel("records written")
    axes[0].set_title("Records per source and split")
    axes[0].legend(frameon=False, fontsize=8)
    for ax, field, title in ((axes[1], "questions", "Question length"), (axes[2], "answers", "Answer length")):
        every = [v for found in lengths.values() for v in getattr(found, field)]
        low, top = max(1, min(every, default=1)), max(2, max(every, default=2))
        bins = np.unique(np.geomspace(low, top + 1, 30).astype(int))
        for split, found in lengths.items():
            values = getattr(found, field)
            if values:
                ax.hist(values, bins=bins, weights=[1 / len(values)] * len(values), histtype="step", linewidth=1.4,
                        label=f"{split} (n={len(values):,})", color=colors.get(split))  # fmt: skip
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())  # 2×10¹, 3×10¹ … crowd the axis
        ax.set_xlabel("characters (log scale)")
        ax.set_ylabel("share of the split's records")
        ax.set_title(title)
        ax.legend(frameon=False, fontsize=8)
    for ax in axes:
        ax.spines[["top", "right"]].set_visible(False)
    save_png(fig, out_path)
