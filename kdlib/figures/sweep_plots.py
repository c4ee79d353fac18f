"""Ablation curves of the one-option sweeps (:mod:`kdlib.studies.sweep`; specs in :mod:`kdlib.paper_numbers.sweeps`): CIRKD Fig. 6 / 7 panels.

:func:`plot_sweep` draws one sweep's curve: mIoU (%) against the swept value with 95 % CI error bars over seeds,
the paper default starred (or a dotted line when no run is at it), one line per pooling setting for the
patch sweep, and for the queue sweeps the queue's own memory on a second y-axis. :func:`plot_panels` puts
several sweeps side by side as panels (a), (b), ... like the papers' figures.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, List, Mapping, Optional, Sequence

import numpy as np
import pandas as pd

from kdlib.display import model_label
from kdlib.figures.plots import seeds_note
from kdlib.paper_numbers.sweeps import as_x, format_number, get_sweep, sweep_rows


def _draw(ax: Any, summary: pd.DataFrame, name: str, legend: bool = True, default: Any = None) -> None:
    """One sweep's curve on ``ax`` (and a twin axis for the queue memory).

    ``default``: the paper default for the dataset, drawn as a dotted line when no point is at it (None: the
    spec's ``paper_default``).
    """
    import seaborn as sns
    from matplotlib.ticker import FixedLocator, NullLocator

    from kdlib.figures.plots import PALETTE

    spec = get_sweep(name)
    part = sweep_rows(summary, name)
    colors = sns.color_palette(PALETTE, 8)
    markers = ["o", "^", "D", "v", "P"]
    series = ([("", part)] if spec.kind != "patch" else
              [("no pooling" if pool == "none" else f"max-pool {pool}", group)
               for pool, group in part.groupby("pool", sort=False)])
    handles = []
    for i, (label, group) in enumerate(series):
        x = np.array([as_x(v) for v in group[spec.option]])
        y = group["miou_pct"].to_numpy(dtype=float)
        err = np.nan_to_num(group["ci95_pct"].to_numpy(dtype=float))
        h = ax.errorbar(x, y, yerr=err, color=colors[i % len(colors)], marker=markers[i % len(markers)],
                        ms=5, lw=1.5, capsize=3, label=f"mIoU{', ' + label if label else ''}")
        handles.append(h)
        at_default = group[group["paper_default"].astype(bool)]
        if len(at_default):
            handles.append(ax.plot([as_x(v) for v in at_default[spec.option]], at_default["miou_pct"], ls="none",
                                   marker="*", ms=13, color=colors[3], markeredgecolor="black",
                                   markeredgewidth=0.5, zorder=5, label="paper default")[0])
    if not part["paper_default"].astype(bool).any() and spec.kind != "patch":
        default = spec.paper_default if default is None else default
        handles.append(ax.axvline(as_x(default), color=colors[3], ls=":", lw=1.2,
                                  label=f"paper default ({format_number(default)})"))
    ax.set_xlabel(spec.label)
    ax.set_ylabel("mIoU (%)")
    xs = sorted(set(as_x(v) for v in part[spec.option]))
    if spec.log_x:
        ax.set_xscale("log", base=2 if spec.kind == "patch" or spec.option in ("groups", "pool") else 10)
    ax.xaxis.set_major_locator(FixedLocator(xs))
    ax.set_xticklabels(["none" if spec.allow_none and v == 1.0 else
                        format_number(int(v) if float(v).is_integer() and spec.kind != "float" else v) for v in xs])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.grid(True, which="major", axis="y", alpha=0.3, lw=0.6)
    ax.spines[["top"]].set_visible(False)
    if spec.memory_cost and "queue_memory_mb" in part.columns:
        ax2 = ax.twinx()
        mem = part[[spec.option, "queue_memory_mb"]].drop_duplicates().sort_values(spec.option)
        handles.append(ax2.plot(mem[spec.option].astype(float), mem["queue_memory_mb"], color=colors[1],
                                ls="--", marker="s", ms=4, lw=1.2, label="queue memory")[0])
        ax2.set_ylabel("queue memory (MB)", color=colors[1])
        ax2.tick_params(axis="y", colors=colors[1])
        ax2.set_ylim(bottom=0)
        ax2.spines[["top"]].set_visible(False)
    else:
        ax.spines[["right"]].set_visible(False)
    if legend:  # below the axes: never over the curves
        ax.legend(handles=handles, frameon=False, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.24),
                  ncol=min(3, len(handles)), handletextpad=0.4, columnspacing=1.0)


def _counts(rows: pd.DataFrame) -> List[object]:
    """Seeds behind each point (the summary's ``n``; 1 when the summary has no such column)."""
    return list(rows["n"]) if "n" in rows.columns else [1] * len(rows)


def plot_sweep(summary: pd.DataFrame, name: str, path: os.PathLike, dataset: str = "", default: Any = None
               ) -> List[Path]:
    """The ablation curve of one sweep as ``path.png`` / ``path.pdf`` (``default``: see :func:`_draw`)."""
    import matplotlib.pyplot as plt

    from kdlib.figures.plots import save_figure

    spec = get_sweep(name)
    fig, ax = plt.subplots(figsize=(4.2, 3.2))
    _draw(ax, summary, name, default=default)
    rows = sweep_rows(summary, name)
    student = model_label(str(rows["student"].iloc[0]))
    ax.set_title(f"{spec.title}\n{student}{f' ({dataset})' if dataset else ''}; {seeds_note(_counts(rows))}",
                 fontsize=9)
    return save_figure(fig, Path(path))


def plot_panels(summary: pd.DataFrame, names: Sequence[str], path: os.PathLike, dataset: str = "",
                defaults: Optional[Mapping[str, Any]] = None, title: str = "") -> List[Path]:
    """Sweeps side by side, panels (a), (b), ... as in the paper's figures (``defaults``: per sweep)."""
    import matplotlib.pyplot as plt

    from kdlib.figures.plots import save_figure

    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.4), squeeze=False)
    for i, (ax, name) in enumerate(zip(axes[0], names)):
        _draw(ax, summary, name, default=(defaults or {}).get(name))
        panel = get_sweep(name).title.split(": ", 1)[-1]
        ax.set_title(f"({chr(ord('a') + i)}) {panel}", fontsize=9)
    shown = summary[summary["sweep"].isin(names)]
    students = ", ".join(model_label(s) for s in dict.fromkeys(shown["student"].astype(str)))
    fig.suptitle(f"{title + ': ' if title else ''}{students}{f' ({dataset})' if dataset else ''}; "
                 f"{seeds_note(_counts(shown))}", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, Path(path))


__all__ = ["plot_panels", "plot_sweep"]
