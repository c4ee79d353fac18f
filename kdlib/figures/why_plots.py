"""Figures of the why study (:mod:`kdlib.studies.why`): gains against schedule length, and effect forest plots."""
from __future__ import annotations

import os
from pathlib import Path
from typing import List, Mapping, Optional

import numpy as np
import pandas as pd

from kdlib.display import method_label, model_label
from kdlib.figures.plots import PALETTE, plt, save_figure, seeds_note


def _seeds_text(table: pd.DataFrame, column: str = "n") -> str:
    return seeds_note(table[column], "Welch 95 % intervals")


def plot_gain_vs_x(gains: pd.DataFrame, path: os.PathLike, title: str, xlabel: str,
                   paper: Optional[Mapping[str, float]] = None, width: Optional[float] = None) -> List[Path]:
    """Gain over the same-setting baseline (mIoU pp) against ``x`` (log2 axis), one line per method with Welch 95 %
    intervals as error bars (none with one seed: the legend says n), one panel per student; the papers'
    Cityscapes gains as diamonds at the right edge."""
    import seaborn as sns

    gains = gains[gains["method"] != "none"]
    students = list(dict.fromkeys(gains["student"]))
    fig, axes = plt.subplots(1, max(len(students), 1), figsize=(4.4 * max(len(students), 1), 3.4), squeeze=False,
                             sharey=True)
    methods = list(dict.fromkeys(gains["method"]))
    colors = dict(zip(methods, sns.color_palette(PALETTE, len(methods))))
    for ax, student in zip(axes[0], students):
        part = gains[gains["student"] == student]
        xs = sorted(part["x"].dropna().unique())
        for method in methods:
            line = part[part["method"] == method].sort_values("x")
            ax.errorbar(line["x"], line["gain_pct"], yerr=np.nan_to_num(line["gain_ci_pct"].to_numpy(dtype=float)),
                        marker="o", ms=4, capsize=3, lw=1.2, color=colors[method], label=method_label(method))
            if paper and method in paper:
                ax.plot([xs[-1] * 1.35], [paper[method]], ls="none", marker="D", ms=5, color=colors[method],
                        markeredgecolor="black", markeredgewidth=0.5)
        ax.axhline(0.0, color="black", lw=0.8)
        ax.set_xscale("log", base=2)
        ax.set_xticks(xs, [f"{int(x):,}" for x in xs])
        ax.minorticks_off()
        ax.set_xlabel(xlabel)
        ax.set_title(f"student {model_label(student, width)}", fontsize=9)
        ax.grid(True, axis="y", alpha=0.3, lw=0.6)
        ax.spines[["top", "right"]].set_visible(False)
    axes[0][0].set_ylabel("gain over same-length baseline (mIoU pp)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    if paper:
        from matplotlib.lines import Line2D

        handles.append(Line2D([], [], ls="none", marker="D", ms=5, color="grey", markeredgecolor="black",
                              markeredgewidth=0.5))
        labels.append("paper gain, Cityscapes (right edge)")
    fig.legend(handles, labels, frameon=False, fontsize=7, loc="lower center", ncol=min(len(labels), 6),
               bbox_to_anchor=(0.5, -0.08))
    fig.suptitle(f"{title} ({_seeds_text(gains)})", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, Path(path))


def plot_effects(gains: pd.DataFrame, effects: pd.DataFrame, path: os.PathLike, title: str,
                 variant_labels: Optional[Mapping[str, str]] = None, width: Optional[float] = None) -> List[Path]:
    """Two forest plots (mIoU pp, Welch 95 % intervals): left, every (student, variant, method)'s gain over the
    baseline; right, the experiment's contrasts (a setting's gain minus the reference setting's, same method)."""
    labels = dict(variant_labels or {})

    def name(row: pd.Series, variant: str) -> str:
        return f"{model_label(row['student'], width)} · {method_label(row['method'])} · {labels.get(variant, variant)}"

    left = gains[gains["method"] != "none"].reset_index(drop=True)
    rows = max(len(left), len(effects), 1)
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.9 + 0.32 * rows), squeeze=False)
    panels = [(axes[0][0], left, "gain_pct", "gain_ci_pct", [name(r, r["variant"]) for _, r in left.iterrows()],
               "gain over the baseline (mIoU pp)"),
              (axes[0][1], effects, "gain_difference_pct", "gain_difference_ci_pct",
               [f"{name(r, r['variant'])} − {labels.get(r['reference'], r['reference'])}" for _, r in effects.iterrows()],
               "gain minus the reference setting's gain (mIoU pp)")]
    for ax, table, value, ci, names, xlabel in panels:
        y = np.arange(len(table))[::-1]
        if len(table):
            ax.errorbar(table[value], y, xerr=np.nan_to_num(table[ci].to_numpy(dtype=float)), ls="none", marker="o",
                        ms=4, capsize=3, color="black")
        ax.axvline(0.0, color="grey", lw=0.8, ls="--")
        ax.set_yticks(y, names, fontsize=7)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.grid(True, axis="x", alpha=0.3, lw=0.6)
        ax.spines[["top", "right"]].set_visible(False)
    fig.suptitle(f"{title} ({_seeds_text(left)})", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, Path(path))


__all__ = ["plot_effects", "plot_gain_vs_x"]
