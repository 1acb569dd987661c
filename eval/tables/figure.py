"""Figure 4: grouped bar chart of Table 3 (one group per system, one bar per metric, values on the bars).

matplotlib bundles no CJK font, so the Chinese labels need one: the Noto Sans SC that the `pylopdf-fonts-zh-cn`
dependency ships (same look on every machine), else any system font that covers Chinese. Without one the figure
falls back to English labels with a warning instead of printing empty boxes.
"""

from __future__ import annotations

import os
import subprocess
import warnings
from collections.abc import Sequence

PROBE = "图模型得分"  # characters the Chinese labels need

ZH = {"title": "图4 各模型在测试集上的生成质量（BLEU-4 / ROUGE）", "ylabel": "得分（×100）", "xlabel": "模型"}
EN = {
    "title": "Figure 4: generation quality on the test set (BLEU-4 / ROUGE)",
    "ylabel": "score (×100)",
    "xlabel": "model",
}


def _covers(path: str, text: str = PROBE) -> bool:
    from matplotlib.ft2font import FT2Font

    try:
        charmap = FT2Font(path).get_charmap()
    except (OSError, RuntimeError, ValueError):
        return False
    return all(ord(ch) in charmap for ch in text)


def _candidates() -> list[str]:
    paths: list[str] = []
    try:
        import pylopdf_fonts_zh_cn

        paths.append(str(pylopdf_fonts_zh_cn.sans_path()))
    except ImportError:
        pass
    try:
        listed = subprocess.run(
            ["fc-list", ":lang=zh", "file"], capture_output=True, text=True, timeout=20, check=False
        ).stdout
        paths += sorted(line.split(":")[0].strip() for line in listed.splitlines() if line.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return paths


def find_cjk_font() -> str | None:
    """Path of a font file that renders Chinese, or None."""
    for path in _candidates():
        if os.path.isfile(path) and _covers(path):
            return path
    return None


def plot_table3(
    systems: Sequence[str],
    metrics: Sequence[str],
    labels: Sequence[str],
    values: Sequence[Sequence[float | None]],
    out_path: str | os.PathLike,
) -> dict[str, str | None]:
    """Write the PNG (atomically) and return which font and label language were used."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import font_manager

    font = find_cjk_font()
    text = ZH if font else EN
    if font is None:
        warnings.warn("no CJK font found (pip install pylopdf-fonts-zh-cn): Figure 4 uses English labels", stacklevel=2)
    rc = {"font.family": "sans-serif", "axes.unicode_minus": False}
    if font:
        font_manager.fontManager.addfont(font)
        name = font_manager.FontProperties(fname=font).get_name()
        rc["font.sans-serif"] = [name, "DejaVu Sans"]
    with plt.rc_context(rc):
        fig, ax = plt.subplots(figsize=(max(6.0, 1.9 * len(systems) + 1.5), 4.8), dpi=150)
        width = 0.8 / max(1, len(metrics))
        colors = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860"]
        for j, label in enumerate(labels):
            xs = [i + (j - (len(metrics) - 1) / 2) * width for i in range(len(systems))]
            heights = [v[j] if v[j] is not None else 0.0 for v in values]
            bars = ax.bar(xs, heights, width=width * 0.95, label=label, color=colors[j % len(colors)])
            for bar, value in zip(bars, (v[j] for v in values), strict=True):
                if value is not None:
                    ax.annotate(
                        f"{value:.2f}",
                        (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        xytext=(0, 2),
                        textcoords="offset points",
                        ha="center",
                        va="bottom",
                        fontsize=7,
                    )
        ax.set_xticks(range(len(systems)))
        ax.set_xticklabels(systems)
        ax.set_xlabel(text["xlabel"])
        ax.set_ylabel(text["ylabel"])
        ax.set_title(text["title"])
        top = max([h for v in values for h in v if h is not None] or [1.0])
        ax.set_ylim(0, top * 1.15 + 0.5)
        ax.legend(ncols=len(metrics), loc="upper left", fontsize=8, frameon=False)
        ax.spines[["top", "right"]].set_visible(False)
        save_png(fig, out_path)
    return {"font": font, "labels": "zh" if font else "en"}


def save_png(fig, out_path: str | os.PathLike) -> None:
    """The figure as a PNG with no software stamp (same bytes on every run), written atomically, then closed."""
    import io

    import matplotlib.pyplot as plt

    from eval.common.files import atomic_write_bytes

    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    plt.close(fig)
    atomic_write_bytes(out_path, buffer.getvalue())
