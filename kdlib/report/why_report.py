"""The why study's overview across its experiments (results/README.md, "Why the proxy disagrees").

Each why step (:mod:`kdlib.studies.why`) writes its own ``summary.csv`` (gains over the baseline per setting) and
``effects.csv`` (its contrasts). This module puts them side by side, reading only committed files:

* :func:`regime_gains` — one row per (student, method, setting): the gain over the baseline (mIoU pp) with its
  Welch 95 % interval, for the main proxy setting (taken once: every experiment's main setting is the same
  ``runs/proxy/main`` runs) and every other setting of every experiment that has run;
* :func:`all_effects` — every experiment's contrasts in one table;
* :func:`plot_regime_gains` — the overview figure ``figures/proxy/why_gains.{png,pdf}``, drawn beside the
  headline figure by ``kdlib proxy --report``: per method, the gain in each setting, the papers' Cityscapes gain
  as a marker.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional

import numpy as np
import pandas as pd

MAIN_LABEL = "main proxy setting"


def _why_results(results: os.PathLike):
    """(experiment, summary, effects) of every why step with a committed final cell, in EXPERIMENTS order."""
    from kdlib.report.proxy_report import step_result
    from kdlib.studies.why import EXPERIMENTS

    for name, exp in EXPERIMENTS.items():
        folder = step_result(f"why_{name}", results)
        if folder is None:
            continue
        effects = pd.read_csv(folder / "effects.csv") if (folder / "effects.csv").is_file() else pd.DataFrame()
        yield exp, pd.read_csv(folder / "summary.csv"), effects


def regime_gains(results: os.PathLike = "results/proxy") -> pd.DataFrame:
    """Gains over the baseline in every measured setting: columns ``student, method, experiment, setting, n,
    gain_pct, gain_ci_pct, baseline_setting``. The main setting's rows come from the first experiment that has
    the (student, method) and are labelled :data:`MAIN_LABEL`; the baseline rows themselves are left out."""
    rows: List[dict] = []
    seen_main = set()
    for exp, summary, _ in _why_results(results):
        variants = {v.name: v for v in exp.variants}
        for _, r in summary[summary["method"] != "none"].iterrows():
            variant = variants.get(r["variant"])
            if variant is None:
                continue
            if variant.main:
                if (r["student"], r["method"]) in seen_main:
                    continue
                seen_main.add((r["student"], r["method"]))
            base = variants.get(r.get("baseline_variant"))
            rows.append({"student": r["student"], "method": r["method"],
                         "experiment": "main" if variant.main else exp.name,
                         "setting": MAIN_LABEL if variant.main else variant.title,
                         "n": int(r["n"]), "gain_pct": float(r["gain_pct"]), "gain_ci_pct": float(r["gain_ci_pct"]),
                         "baseline_setting": MAIN_LABEL if base is None or base.main else base.title})
    columns = ["student", "method", "experiment", "setting", "n", "gain_pct", "gain_ci_pct", "baseline_setting"]
    table = pd.DataFrame(rows, columns=columns)
    order = {name: i for i, name in enumerate(["main", *_experiment_names()])}
    return table.sort_values(["student", "experiment"], key=lambda c: c.map(order) if c.name == "experiment" else c,
                             kind="stable").reset_index(drop=True)


def _experiment_names() -> List[str]:
    from kdlib.studies.why import EXPERIMENTS

    return list(EXPERIMENTS)


def all_effects(results: os.PathLike = "results/proxy") -> pd.DataFrame:
    """Every why experiment's contrasts (``effects.csv``) in one table, with an ``experiment`` column first."""
    frames = [effects.assign(experiment=exp.name) for exp, _, effects in _why_results(results) if len(effects)]
    if not frames:
        return pd.DataFrame()
    table = pd.concat(frames, ignore_index=True)
    return table[["experiment", *[c for c in table.columns if c != "experiment"]]]


def plot_regime_gains(table: pd.DataFrame, path: os.PathLike, student: str = "deeplabv3_resnet18",
                      width: Optional[float] = 0.25) -> List[Path]:
    """Gain over the baseline (mIoU pp, Welch 95 % intervals) of each method of ``student`` in every measured
    setting of the why study, the settings dodged side by side per method; the papers' Cityscapes gains
    (:func:`kdlib.studies.why.paper_gains`) as diamonds."""
    import seaborn as sns
    from matplotlib.lines import Line2D

    from kdlib.display import method_label, model_label
    from kdlib.figures.plots import PALETTE, plt, save_figure, seeds_note
    from kdlib.studies.why import paper_gains

    part = table[table["student"] == student]
    methods = [m for m in ("kd", "cwd", "cirkd", "afdcd") if m in set(part["method"])]
    methods += [m for m in dict.fromkeys(part["method"]) if m not in methods]
    settings = list(dict.fromkeys(part["setting"]))
    colors = dict(zip(settings, sns.color_palette(PALETTE, max(len(settings), 1))))
    fig, ax = plt.subplots(figsize=(7.2, 3.6))
    labelled = set()
    for j, method in enumerate(methods):            # dodge only the settings that measured this method
        rows = part[part["method"] == method].set_index("setting")
        present = [s for s in settings if s in rows.index]
        step = min(0.8 / max(len(present), 1), 0.2)
        for i, setting in enumerate(present):
            x = j + step * (i - (len(present) - 1) / 2)
            ci = rows.loc[setting, "gain_ci_pct"]
            ax.errorbar([x], [rows.loc[setting, "gain_pct"]], yerr=[0.0 if ci != ci else ci], ls="none", marker="o",
                        ms=4, capsize=2.5, color=colors[setting],
                        label=None if setting in labelled else setting)
            labelled.add(setting)
    paper = paper_gains(student)
    for j, method in enumerate(methods):
        if method in paper:
            ax.plot([j + 0.5], [paper[method]], ls="none", marker="D", ms=5, color="grey", markeredgecolor="black",
                    markeredgewidth=0.5)
    ax.axhline(0.0, color="black", lw=0.8)
    ax.set_xticks(range(len(methods)), [method_label(m) for m in methods])
    ax.set_ylabel("gain over the baseline (mIoU pp)")
    ax.grid(True, axis="y", alpha=0.3, lw=0.6)
    ax.spines[["top", "right"]].set_visible(False)
    handles, labels = ax.get_legend_handles_labels()     # in the settings' order, not the order first drawn
    order = sorted(range(len(labels)), key=lambda i: settings.index(labels[i]))
    handles, labels = [handles[i] for i in order], [labels[i] for i in order]
    handles.append(Line2D([], [], ls="none", marker="D", ms=5, color="grey", markeredgecolor="black",
                          markeredgewidth=0.5))
    labels.append("paper gain, Cityscapes")
    ax.legend(handles, labels, frameon=False, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title(f"Why study: {model_label(student, width)} gains in each setting "
                 f"({seeds_note(part['n'], 'Welch 95 % intervals')})", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, Path(path))


__all__ = ["MAIN_LABEL", "all_effects", "plot_regime_gains", "regime_gains"]
