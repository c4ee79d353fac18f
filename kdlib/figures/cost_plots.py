"""The training-cost figure of Af-DCD Table 5 (:mod:`kdlib.studies.cost`): time per iteration and peak memory."""
from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional

import pandas as pd

REFERENCE = "cirkd"   # the method the ratios are relative to (as the paper's Table 5)


def plot_cost(summary: pd.DataFrame, path: os.PathLike, title: Optional[str] = None) -> List[Path]:
    """Time per iteration and peak memory side by side (bars per method; the paper's beside ours vs CIRKD)."""
    import matplotlib.pyplot as plt
    import numpy as np
    import seaborn as sns

    from kdlib.figures.plots import PALETTE, save_figure

    summary = summary.drop_duplicates("method")
    relative = REFERENCE in set(summary["method"]) and summary["step_vs_cirkd"].notna().any()
    colors = sns.color_palette(PALETTE, 4)
    panels = [("time", "ms_per_iter", "step_vs_cirkd", "paper_train_time_h", "paper_time_vs_cirkd",
               "ms/it", "h"),
              ("memory", "peak_memory_mb", "memory_vs_cirkd", "paper_gpu_memory_gb", "paper_memory_vs_cirkd",
               "MB", "GB")]
    methods = summary["method"].tolist()
    x = np.arange(len(methods))
    fig, axes = plt.subplots(1, 2, figsize=(2 * (1.4 + 1.1 * len(methods)), 3.2))
    for ax, (what, ours_abs, ours_rel, paper_abs, paper_rel, unit, paper_unit) in zip(axes, panels):
        ours_values = summary[ours_abs].to_numpy(dtype=float)
        if relative:
            width = 0.38
            ours = ax.bar(x - width / 2, summary[ours_rel].to_numpy(dtype=float), width, color=colors[0],
                          label="ours")
            theirs = ax.bar(x + width / 2, np.nan_to_num(summary[paper_rel].to_numpy(dtype=float)), width,
                            color=colors[1], label="paper (Table 5)")
            ax.bar_label(ours, labels=[f"{v:.3g} {unit}" if np.isfinite(v) else "" for v in ours_values],
                         fontsize=7, rotation=90, padding=2)
            ax.bar_label(theirs, labels=[f"{v:.3g} {paper_unit}" if np.isfinite(v) else ""
                                         for v in summary[paper_abs].to_numpy(dtype=float)],
                         fontsize=7, rotation=90, padding=2)
            ax.axhline(1.0, color="0.5", lw=0.8, ls=":")
            ax.set_ylabel(f"{what} relative to CIRKD")
            top = np.nanmax(np.concatenate([summary[ours_rel].to_numpy(dtype=float),
                                            summary[paper_rel].to_numpy(dtype=float), [1.0]]))
            ax.set_ylim(0, 1.45 * top)
        else:
            bars = ax.bar(x, ours_values, 0.6, color=colors[0], label="ours")
            ax.bar_label(bars, labels=[f"{v:.3g}" if np.isfinite(v) else "" for v in ours_values], fontsize=7)
            ax.set_ylabel(f"{'time per iteration' if what == 'time' else 'peak memory'} ({unit})")
        ax.set_xticks(x)
        ax.set_xticklabels(methods)
        ax.set_title("training time per iteration" if what == "time" else "peak memory", fontsize=9)
        ax.spines[["top", "right"]].set_visible(False)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    if relative:  # one legend below both panels, clear of the bar labels
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, frameon=False, fontsize=7, loc="upper center", ncol=2,
                   bbox_to_anchor=(0.5, 0.02))
    return save_figure(fig, Path(path))


__all__ = ["plot_cost"]
