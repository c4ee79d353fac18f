"""Paper-style bar charts from tidy result tables (colour-blind-safe palette, PNG + PDF)."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, List, Optional

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

PALETTE = "colorblind"


def save_figure(fig: plt.Figure, path: Path, formats: Iterable[str] = ("png", "pdf")) -> List[Path]:
    """Save ``fig`` as ``path`` with each suffix in ``formats``; returns the written paths."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in formats:
        out = path.with_suffix(f".{fmt}")
        # no creation date in PDFs: the same figure gives the same bytes (no churn in figures/)
        metadata = {"CreationDate": None} if fmt == "pdf" else None
        fig.savefig(out, dpi=150, bbox_inches="tight", metadata=metadata)
        written.append(out)
    plt.close(fig)
    return written


def seeds_note(counts: Iterable[object], interval: str = "95 % CI") -> str:
    """What a figure's error bars are: ``n = 3 seeds, bars: 95 % CI``, or ``n = 1 seed, no interval`` when no
    point has two seeds (then no bar is drawn, and the figure must say so)."""
    values = sorted({int(n) for n in counts if n == n})
    if not values:
        return "no runs"
    text = "/".join(str(n) for n in values)
    if max(values) < 2:
        return f"n = {text} seed, no interval"
    return f"n = {text} seed{'s' if values != [1] else ''}, bars: {interval}"


def plot_miou(summary: pd.DataFrame, path: Path, label: str = "run", title: Optional[str] = None) -> List[Path]:
    """Bar per run (``summary[label]``) of mIoU in %, value printed on each bar. With seed statistics (columns
    ``n`` and ``ci``, as :func:`kdlib.report.tables.summarize_seeds` gives) the 95 % intervals are drawn and the
    title says how many seeds (``n = 1 seed, no interval`` when there is one)."""
    fig, ax = plt.subplots(figsize=(1.2 + 1.1 * len(summary), 3.2))
    colors = sns.color_palette(PALETTE, len(summary))
    values = 100 * summary["miou"].to_numpy()
    errors = 100 * summary["ci"].to_numpy(dtype=float) if "ci" in summary.columns else None
    has_errors = errors is not None and bool(np.isfinite(errors).any())
    bars = ax.bar(summary[label].astype(str), values, color=colors,
                  yerr=np.nan_to_num(errors) if has_errors else None, capsize=3 if has_errors else 0)
    ax.bar_label(bars, labels=[f"{v:.1f}" for v in values], fontsize=8, padding=2)
    ax.set_ylabel("mIoU (%)")
    ax.set_ylim(0, max((values + (np.nan_to_num(errors) if has_errors else 0)).max() * 1.15, 1))
    note = seeds_note(summary["n"]) if "n" in summary.columns else ""
    ax.set_title((title or "mIoU") + (f"\n{note}" if note else ""), fontsize=9)
    if summary[label].astype(str).str.len().max() > 12:  # long labels (e.g. ablation variants): slanted
        ax.tick_params(axis="x", rotation=30)
        for tick in ax.get_xticklabels():
            tick.set_horizontalalignment("right")
    ax.spines[["top", "right"]].set_visible(False)
    return save_figure(fig, path)


def plot_per_class_iou(per_class: pd.DataFrame, path: Path, baseline: str, label: str = "run",
                       title: Optional[str] = None) -> List[Path]:
    """Grouped bars of per-class IoU (%), classes sorted by the ``baseline`` run's IoU (as CIRKD Fig. 3).

    ``per_class`` is long format with columns ``label``, ``class``, ``iou``.
    """
    order = (per_class[per_class[label] == baseline].sort_values("iou")["class"].tolist()
             or sorted(per_class["class"].unique()))
    data = per_class.assign(iou_pct=100 * per_class["iou"])
    fig, ax = plt.subplots(figsize=(max(6.0, 0.7 * len(order)), 3.4))
    sns.barplot(data=data, x="class", y="iou_pct", hue=label, order=order, palette=PALETTE, ax=ax)
    ax.set_xlabel("")
    ax.set_ylabel("IoU (%)")
    ax.set_title(title or "per-class IoU", fontsize=9)
    ax.tick_params(axis="x", rotation=45)
    for tick in ax.get_xticklabels():
        tick.set_horizontalalignment("right")
    ax.set_ylim(0, max(float(data["iou_pct"].max()) * 1.22, 1.0))   # room for the legend above the bars
    ax.legend(frameon=False, fontsize=8, ncol=min(4, data[label].nunique()), loc="upper left")
    ax.spines[["top", "right"]].set_visible(False)
    return save_figure(fig, path)
