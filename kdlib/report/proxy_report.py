"""The proxy study's tables, rendered from its committed results (``kdlib proxy --report``).

Reads what :mod:`kdlib.studies.proxy` wrote — ``results/proxy/<step>/<run-id>/{runs,summary}.csv`` and
``results/proxy/timing.csv`` — and renders one markdown file, ``results/proxy/tables.md``, that the hand-written
report (``results/README.md``) quotes. Nothing here trains or reads a checkpoint, so the tables can be rebuilt
and checked against ``runs.csv`` in seconds.

**Gain over the baseline with its uncertainty.** On the built-in data absolute mIoU is not comparable with the
papers', the gain over the student trained alone is. For method *m* with seed results x_1..x_n and the
baseline's y_1..y_k (same student), the gain is mean(x) − mean(y) and its 95 % interval is Welch's:

    half-width = t_{0.975, ν} · sqrt(s_x² / n + s_y² / k),
    ν = (s_x²/n + s_y²/k)² / ((s_x²/n)² / (n − 1) + (s_y²/k)² / (k − 1))

(ν = n + k − 2 when both variances are 0; no interval with fewer than 2 runs on a side). A gain is
*significant* here when its interval excludes 0.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from kdlib.methods import method_label
from kdlib.display import MODEL_LABELS
from kdlib.report.tables import markdown_table, summarize_seeds, t_quantile

MAIN_TABLE_STEPS = ("cirkd_table1", "cirkd_table2", "cirkd_table3", "afdcd_cityscapes", "afdcd_camvid", "afdcd_voc",
                    "afdcd_ade20k", "afdcd_coco_stuff")
#: Cityscapes is the papers' main dataset: its gains are the reference of the headline figure (first match wins).
HEADLINE_PAPER_STEPS = ("cirkd_table1", "afdcd_cityscapes")
METHOD_ORDER = ("none", "kd", "skd", "ifvd", "cwd", "cirkd", "afdcd")
STUDENT_LABELS = MODEL_LABELS   # the one source: kdlib.display


def welch_interval(x: Sequence[float], y: Sequence[float], confidence: float = 0.95) -> Tuple[float, float]:
    """(mean(x) − mean(y), half-width of its Welch ``confidence`` interval; NaN with < 2 values on a side)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) == 0 or len(y) == 0:
        return float("nan"), float("nan")
    diff = float(x.mean() - y.mean())
    if len(x) < 2 or len(y) < 2:
        return diff, float("nan")
    vx, vy = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
    se2 = vx + vy
    if se2 == 0.0:
        return diff, 0.0
    dof = se2 ** 2 / ((vx ** 2 / (len(x) - 1) if vx else 0.0) + (vy ** 2 / (len(y) - 1) if vy else 0.0))
    return diff, t_quantile(0.5 + confidence / 2.0, dof) * math.sqrt(se2)


def step_result(step: str, results: os.PathLike = "results/proxy") -> Optional[Path]:
    """The folder of ``step``'s final cell (``results/proxy/<step>/<run-id>/``), or None when not run yet."""
    found = sorted(Path(results, step).glob("*/summary.csv"), key=lambda p: p.stat().st_mtime)
    return found[-1].parent if found else None


def gains_table(runs: pd.DataFrame, key: str = "method", baseline: str = "none",
                by: Sequence[str] = ("student",), order: Optional[Sequence[str]] = None) -> pd.DataFrame:
    """Per (``by``, ``key``): seeds, mean ± 95 % CI (:func:`~kdlib.report.tables.summarize_seeds`) and the
    gain over ``baseline`` (:func:`welch_interval`).

    ``runs`` holds one row per run with ``miou`` as a fraction (a study's ``runs.csv``); the result is in
    percent: columns ``by``, ``key``, ``n``, ``mIoU``, ``±CI``, ``gain``, ``gain ±CI``, ``significant``.
    """
    by = list(by)
    runs = runs.assign(**{key: runs[key].astype(str)})
    stats = {tuple(row[c] for c in [*by, key]): row for _, row in summarize_seeds(runs, by=[*by, key]).iterrows()}
    rows: List[Dict[str, object]] = []
    for keys, group in runs.groupby(by, sort=False):
        keys = keys if isinstance(keys, tuple) else (keys,)
        seeds = {value: 100 * part["miou"].astype(float).dropna() for value, part in group.groupby(key, sort=False)}
        values = [v for v in (order or ()) if v in seeds] + [v for v in seeds if v not in (order or ())]
        for value in values:
            st = stats[(*keys, value)]
            gain, gain_ci = (welch_interval(seeds[value], seeds[baseline])
                             if value != baseline and baseline in seeds else (float("nan"), float("nan")))
            rows.append({**dict(zip(by, keys)), key: value, "n": int(st["n"]), "mIoU": 100 * st["mean"],
                         "±CI": 100 * st["ci"], "gain": gain, "gain ±CI": gain_ci,
                         "significant": ("" if value == baseline or math.isnan(gain_ci)
                                         else ("yes" if abs(gain) > gain_ci else "no"))})
    return pd.DataFrame(rows)


def _paper_gains(summary: pd.DataFrame, key: str) -> pd.DataFrame:
    """The paper's mIoU and gain columns of a table step's summary.csv (its proxy form), by student and key."""
    paper_cols = [c for c in summary.columns if c.startswith("paper mIoU")]
    if not paper_cols or "paper gain" not in summary.columns:
        return pd.DataFrame(columns=["student", key, "paper mIoU", "paper gain"])
    out = summary[["student", key, paper_cols[0], "paper gain"]].rename(columns={paper_cols[0]: "paper mIoU"})
    return out.dropna(subset=["paper mIoU"])


def table_step(step: str, results: os.PathLike = "results/proxy", key: str = "method",
               baseline: str = "none") -> Optional[pd.DataFrame]:
    """Ours (mean ± CI, gain ± Welch CI) beside the paper's mIoU and gain, for one table / ablation step."""
    folder = step_result(step, results)
    if folder is None:
        return None
    runs = pd.read_csv(folder / "runs.csv")
    summary = pd.read_csv(folder / "summary.csv")
    if key == "method":
        order = list(METHOD_ORDER)
    else:  # ablation variants: the summary's (the paper's) order
        order = list(dict.fromkeys(summary[key].astype(str))) if key in summary.columns else None
    ours = gains_table(runs, key=key, baseline=baseline, order=order)
    table = ours.merge(_paper_gains(summary, key).astype({key: str}), on=["student", key], how="left")
    if key == "method":
        table[key] = table[key].map(method_label)
    return table


def _value_text(value: object) -> str:
    """A swept value as written in the notebooks: 20000 (not 20000.0), 0.07, none."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def sweep_step(step: str, results: os.PathLike = "results/proxy") -> Optional[pd.DataFrame]:
    """A sweep step's summary (one row per swept value) with the change against the paper default's row."""
    folder = step_result(step, results)
    if folder is None:
        return None
    summary = pd.read_csv(folder / "summary.csv")
    value_columns = [c for c in summary.columns
                     if c not in ("sweep", "student", "n", "miou_pct", "std_pct", "ci95_pct", "wall_time_s",
                                  "peak_memory_mb", "queue_memory_mb", "paper_default", "setting")]
    rows = []
    for name, part in summary.groupby("sweep", sort=False):
        default = part.loc[part["paper_default"].astype(bool), "miou_pct"]
        ref = float(default.iloc[0]) if len(default) else float("nan")
        for _, row in part.iterrows():
            value = " / ".join(_value_text(row[c]) for c in value_columns if pd.notna(row[c]))
            rows.append({"sweep": name, "value": value + (" (default)" if bool(row["paper_default"]) else ""),
                         "n": int(row["n"]), "mIoU": float(row["miou_pct"]),
                         "vs default": float(row["miou_pct"]) - ref,
                         "wall time (s)": float(row["wall_time_s"])})
    return pd.DataFrame(rows)


def cost_table(results: os.PathLike = "results/proxy", steps: Sequence[str] = ("cirkd_table1", "afdcd_cityscapes",
                                                                                   "afdcd_camvid")) -> pd.DataFrame:
    """Per student × method: mean wall time and peak memory of the main runs (1 thread, 2 runs at a time)."""
    frames = []
    for step in steps:
        folder = step_result(step, results)
        if folder is not None:
            frames.append(pd.read_csv(folder / "runs.csv"))
    if not frames:
        return pd.DataFrame()
    runs = pd.concat(frames).drop_duplicates("run_dir" if "run_dir" in frames[0].columns else None)
    out = (runs.groupby(["student", "method"], sort=False)[["wall_time_s", "peak_memory_mb"]]
           .agg(["mean", "count"]).reset_index())
    out.columns = ["student", "method", "wall time (s)", "n", "peak RSS (MB)", "_n"]
    out = out.drop(columns="_n")
    out["method"] = out["method"].map(method_label)
    return out


def timing_table(results: os.PathLike = "results/proxy") -> pd.DataFrame:
    """``timing.csv`` summed per step: the study's wall time (every invocation, resumed ones included)."""
    path = Path(results, "timing.csv")
    if not path.is_file():
        return pd.DataFrame()
    timing = pd.read_csv(path)
    out = timing.groupby("step", sort=False).agg(invocations=("wall_time_s", "size"),
                                                 wall_time_min=("wall_time_s", lambda s: s.sum() / 60))
    return out.reset_index()


def headline_table(results: os.PathLike = "results/proxy") -> pd.DataFrame:
    """Every main run once (all table steps' runs.csv), gains per student × method, beside the Cityscapes gains
    the papers report (CIRKD Table 1; Af-DCD's Cityscapes table for Af-DCD)."""
    frames, paper = [], []
    for step in MAIN_TABLE_STEPS:
        folder = step_result(step, results)
        if folder is None:
            continue
        frames.append(pd.read_csv(folder / "runs.csv"))
        if step in HEADLINE_PAPER_STEPS:
            paper.append(_paper_gains(pd.read_csv(folder / "summary.csv"), "method"))
    if not frames:
        return pd.DataFrame()
    runs = pd.concat(frames, ignore_index=True).drop_duplicates(["student", "method", "seed"])
    table = gains_table(runs, order=METHOD_ORDER)
    if paper:
        reported = pd.concat(paper, ignore_index=True).drop_duplicates(["student", "method"])
        table = table.merge(reported.astype({"method": str}), on=["student", "method"], how="left")
    return table


PAPER_COLUMNS = {"cirkd_table1": "CIRKD CS", "cirkd_table2": "CIRKD CamVid", "cirkd_table3": "CIRKD VOC",
                 "afdcd_cityscapes": "Af-DCD CS", "afdcd_camvid": "Af-DCD CamVid", "afdcd_voc": "Af-DCD VOC",
                 "afdcd_ade20k": "Af-DCD ADE", "afdcd_coco_stuff": "Af-DCD COCO"}


def gains_vs_all_papers(results: os.PathLike = "results/proxy") -> pd.DataFrame:
    """The headline gains beside the paper gain of *every* main table (one column per paper table).

    All eight table notebooks read the same proxy runs; they differ only in the paper numbers compared, so one
    wide table shows them all: ``student, method, n, gain, gain ±CI, significant, <paper table>...``.
    """
    table = headline_table(results)
    if table.empty:
        return table
    table = table[["student", "method", "n", "mIoU", "gain", "gain ±CI", "significant"]]
    for step, column in PAPER_COLUMNS.items():
        folder = step_result(step, results)
        if folder is None:
            continue
        paper = _paper_gains(pd.read_csv(folder / "summary.csv"), "method")[["student", "method", "paper gain"]]
        table = table.merge(paper.rename(columns={"paper gain": column}).astype({"method": str}),
                            on=["student", "method"], how="left")
    table["student"] = table["student"].map(lambda s: STUDENT_LABELS.get(s, s))
    table["method"] = table["method"].map(method_label)
    return table


def plot_headline(table: pd.DataFrame, path: os.PathLike) -> List[Path]:
    """Gain over the baseline (mIoU pp) per method, one panel per student: ours with Welch 95 % intervals as bars,
    the paper's Cityscapes gain as a marker."""
    import matplotlib.pyplot as plt
    import seaborn as sns
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    from kdlib.figures.plots import PALETTE, save_figure

    students = list(dict.fromkeys(table["student"]))
    fig, axes = plt.subplots(1, len(students), figsize=(3.6 * len(students), 3.2), squeeze=False, sharey=True)
    colors = sns.color_palette(PALETTE, 8)
    for ax, student in zip(axes[0], students):
        part = table[(table["student"] == student) & (table["method"] != "none")]
        x = np.arange(len(part))
        ax.bar(x, part["gain"], yerr=np.nan_to_num(part["gain ±CI"].to_numpy(dtype=float)), capsize=3,
               color=[colors[0] if s == "yes" else colors[7] for s in part["significant"]])
        if "paper gain" in part.columns and part["paper gain"].notna().any():
            ax.plot(x, part["paper gain"], ls="none", marker="D", ms=5, color=colors[3], markeredgecolor="black",
                    markeredgewidth=0.5)
        ax.axhline(0.0, color="black", lw=0.8)
        ax.set_xticks(x, [method_label(m) for m in part["method"]], rotation=30, ha="right")
        ax.set_title(f"{STUDENT_LABELS.get(student, student)} (x0.25)", fontsize=9)
        ax.grid(True, axis="y", alpha=0.3, lw=0.6)
        ax.spines[["top", "right"]].set_visible(False)
    axes[0][0].set_ylabel("gain over baseline (mIoU pp)")
    handles = [Patch(color=colors[0], label="ours: 95 % interval excludes 0"),
               Patch(color=colors[7], label="ours: interval includes 0"),
               Line2D([], [], ls="none", marker="D", ms=5, color=colors[3], markeredgecolor="black",
                      markeredgewidth=0.5, label="paper (Cityscapes)")]
    fig.legend(handles=handles, frameon=False, fontsize=7, loc="lower center", ncol=3, bbox_to_anchor=(0.5, -0.06))
    fig.suptitle("Proxy study: gain over the baseline student, 3 seeds, Welch 95 % intervals", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, Path(path))


def why_step(step: str, results: os.PathLike = "results/proxy") -> List[str]:
    """Markdown of a why-experiment (:mod:`kdlib.studies.why`): its prediction, the gains over the baseline per
    setting and the experiment's contrasts, with Welch 95 % intervals (mIoU pp)."""
    from kdlib.studies.why import experiment

    folder = step_result(step, results)
    exp = experiment(step[len("why_"):])
    lines = [f"Prediction (written before the runs): {exp.prediction}", ""]
    if folder is None:
        return lines + ["(not run yet)", ""]
    gains = pd.read_csv(folder / "summary.csv")
    effects = pd.read_csv(folder / "effects.csv") if (folder / "effects.csv").is_file() else pd.DataFrame()
    shown = gains.rename(columns={"miou_pct": "mIoU", "miou_ci_pct": "±CI", "gain_pct": "gain",
                                  "gain_ci_pct": "gain ±CI"})[["student", "variant", "method", "n", "mIoU", "±CI",
                                                               "gain", "gain ±CI"]]
    lines += [markdown_table(shown), ""]
    if len(effects):
        lines += ["Contrasts (a setting minus its reference, same student and method: mIoU, and gain over each "
                  "setting's own baseline):", "",
                  markdown_table(effects.rename(columns={"difference_pct": "mIoU diff", "difference_ci_pct": "±CI",
                                                         "gain_difference_pct": "gain diff",
                                                         "gain_difference_ci_pct": "gain ±CI"})[
                      ["student", "method", "variant", "reference", "n", "mIoU diff", "±CI", "gain diff", "gain ±CI",
                       "resolved"]]), ""]
    if (folder / "runs.csv").is_file():
        from kdlib.studies.why import method_change_contrasts

        pairs = method_change_contrasts(pd.read_csv(folder / "runs.csv"), exp.name)
        if len(pairs):
            lines += ["Between methods (how much more the first method's gain changed from the reference setting "
                      "than the other's; the baselines cancel):", "",
                      markdown_table(pairs.rename(columns={"change_difference_pct": "change diff",
                                                           "change_difference_ci_pct": "±CI"})), ""]
    return lines


def why_overview(results: os.PathLike = "results/proxy") -> List[str]:
    """Markdown of the why study across its experiments (:mod:`kdlib.report.why_report`): gains in every measured
    setting, and every contrast; empty before any why step has run."""
    from kdlib.report.why_report import all_effects, regime_gains

    gains = regime_gains(results)
    if gains.empty:
        return []
    effects = all_effects(results)
    shown = gains.assign(student=gains["student"].map(lambda s: STUDENT_LABELS.get(s, s)),
                         method=gains["method"].map(method_label))
    lines = ["## Why study: gains in every setting", "",
             "Gain over the baseline (mIoU pp, Welch 95 %) of each method in the main proxy setting and in every "
             "setting a why experiment changed (figure: `figures/proxy/why_gains.png`).", "",
             markdown_table(shown.rename(columns={"gain_pct": "gain", "gain_ci_pct": "gain ±CI",
                                                  "baseline_setting": "baseline"})), ""]
    if len(effects):
        lines += ["Every contrast (a setting's gain minus its reference's, same student and method):", "",
                  markdown_table(effects.rename(columns={"gain_difference_pct": "gain diff",
                                                         "gain_difference_ci_pct": "gain ±CI"})[
                      ["experiment", "student", "method", "variant", "reference", "n", "gain diff", "gain ±CI",
                       "resolved"]]), ""]
    return lines


def render_report(steps: Sequence[Any], results: os.PathLike = "results/proxy") -> str:
    """All tables of the proxy study as one markdown document.

    ``steps``: the study's steps in report order, each with ``name``, ``group`` (``sweeps``, ``ablations``,
    ...) and ``description`` (:data:`kdlib.studies.proxy.STEPS`).
    """
    from kdlib.paper_numbers.tables import TABLES

    parts = ["# Proxy study: tables (generated by `kdlib proxy --report` from results/proxy; do not edit)", "",
             "mIoU in %, mean over seeds ± 95 % t-interval; gain = ours − baseline with Welch's 95 % interval "
             "(significant: the interval excludes 0). Paper columns: the paper's mIoU and gain on its dataset.",
             ""]
    wide = gains_vs_all_papers(results)
    parts += ["## Headline: gains over the baseline, every main run, beside every paper table's gains", "",
              "Ours: all runs of the main tables (seeds 0-2). Paper columns: the gain each paper table reports for "
              "that student and method (CS = Cityscapes).", "",
              markdown_table(wide) if len(wide) else "(not run yet)", ""]
    for step in steps:
        if step.group == "sweeps":
            table = sweep_step(step.name, results)
        elif step.group == "ablations":
            table = table_step(step.name, results, key="variant", baseline="ce")
        elif step.name in TABLES or step.name == "main_runs":
            table = table_step(step.name, results)
        elif step.group.startswith("why_"):
            parts += [f"## {step.name}", "", step.description, ""]
            parts += why_step(step.name, results)
            continue
        elif step.name == "afdcd_table5":
            folder = step_result(step.name, results)
            table = pd.read_csv(folder / "summary.csv") if folder is not None else None
        else:  # figures only
            continue
        parts += [f"## {step.name}", "", step.description, ""]
        parts += [markdown_table(table) if table is not None and len(table) else "(not run yet)", ""]
    parts += why_overview(results)
    cost = cost_table(results)
    parts += ["## Cost of the main runs", "",
              "Mean per run: wall time on one thread with two runs at a time, process peak RSS (VmHWM).", "",
              markdown_table(cost, digits=1) if len(cost) else "(not run yet)", ""]
    timing = timing_table(results)
    parts += ["## Study wall time (timing.csv)", "",
              markdown_table(timing, digits=1) if len(timing) else "(not run yet)", ""]
    if len(timing):
        parts += [f"Total recorded: {timing['wall_time_min'].sum():.1f} min.", ""]
    return "\n".join(parts)


def write_report(steps: Sequence[Any], results: os.PathLike = "results/proxy",
                 figures: Optional[os.PathLike] = "figures/proxy") -> Path:
    """Write ``results/proxy/tables.md`` (atomically) and, when ``figures`` is set, the headline figure
    ``figures/proxy/headline_gains.{png,pdf}`` (when the main runs exist) and the why study's overview
    ``figures/proxy/why_gains.{png,pdf}`` (when a why step has run); return the markdown's path."""
    headline = headline_table(results)
    if figures and len(headline):
        plot_headline(headline, Path(figures, "headline_gains"))
    from kdlib.report.why_report import plot_regime_gains, regime_gains

    regimes = regime_gains(results)
    if figures and len(regimes):
        plot_regime_gains(regimes, Path(figures, "why_gains"))
    from kdlib.atomic import write_text

    return write_text(Path(results, "tables.md"), render_report(steps, results))


__all__ = ["cost_table", "gains_table", "gains_vs_all_papers", "headline_table", "plot_headline", "render_report",
           "step_result", "sweep_step", "table_step", "timing_table", "welch_interval", "why_overview", "write_report"]
