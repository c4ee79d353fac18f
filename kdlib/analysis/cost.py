"""Training cost of Af-DCD vs CIRKD (Af-DCD Table 5): time and peak memory of each method, measured honestly.

Af-DCD's Table 5 reports GPU memory 7.94 GB (Af-DCD) vs 10.09 GB (CIRKD) and training time 4.23 h vs 4.34 h
(8x RTX A5000, 40000 iterations; third-party summary, pair presumably R101 → R18 on Cityscapes — UNCONFIRMED,
``kdlib.paper_numbers.afdcd_table5``). :func:`compare_cost` trains each method (× seed) with the same student,
teacher and recipe and reports, per method:

* ``wall_time_s`` — the trainer's wall time of the run (training loop with its periodic evaluations and
  checkpoints, as the paper's hours presumably are);
* ``ms_per_iter`` — the median time of one training iteration, from the run's ``log.jsonl`` time stamps:
  per logging interval (``log_interval`` iterations), intervals that contain an evaluation (or a resume)
  left out, median over the intervals;
* ``peak_memory_mb`` — the run's own peak memory. **Each run trains in a fresh Python process**
  (``python -m kdlib.analysis.cost``, which runs ``kdlib train``): in one kernel a run's memory figure
  would also hold what the kernel kept from earlier runs. On CUDA it is the trainer's
  ``max_memory_allocated`` of that process. On CPU it is the process's resident-set high-water mark
  ``VmHWM`` (``/proc/self/status``), read by the child after training (``getrusage``'s maximum, which
  the trainer used before it read ``VmHWM``, also counts the parent's RSS at fork time on Linux: every
  child reported the notebook kernel's RSS). It includes the interpreter, PyTorch, the data and both
  models; DataLoader worker processes are not counted. The source is recorded in ``memory_source``
  (``cuda_max_allocated``, ``vmhwm``, or ``trainer`` for runs reused from elsewhere). Add ``none`` (the
  student alone) to ``methods`` to get each method's memory and time *above* plain training
  (``extra_memory_mb``, ``extra_ms_per_iter``).

Absolute numbers depend on the hardware, so the comparable quantity is the ratio to CIRKD
(``time_vs_cirkd``, ``memory_vs_cirkd``) beside the paper's (4.23 / 4.34, 7.94 / 10.09).
"""
from __future__ import annotations

import json
import math
import os
import statistics
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence, Tuple

if TYPE_CHECKING:  # imported where used: the training subprocess runs this module and should stay lean
    import pandas as pd

PAPER_TABLE = "afdcd_table5"
REFERENCE = "cirkd"


PEAK_FILE = "cost.json"     # written into the run directory by the training subprocess

from kdlib.engine.trainer import process_peak_rss_mb  # noqa: E402  (re-exported: the child reads its own peak)


def run_peak_memory(run_dir: os.PathLike, result: Mapping[str, Any]) -> Tuple[Optional[float], str]:
    """(peak memory MB, source) of a finished run: CUDA max allocated, the child's VmHWM, else the trainer's."""
    device = str(result.get("device", ""))
    if device.startswith("cuda"):
        return result.get("peak_memory_mb"), "cuda_max_allocated"
    path = Path(run_dir) / PEAK_FILE
    if path.is_file():
        peak = json.loads(path.read_text()).get("peak_rss_mb")
        if peak is not None:
            return float(peak), "vmhwm"
    return result.get("peak_memory_mb"), "trainer"


def train_isolated(preset: str, overrides: Mapping[str, Any], run_dir: os.PathLike, progress: bool = False
                   ) -> Dict[str, Any]:
    """Train one config in a fresh Python process (reused if already finished in ``run_dir``).

    The child (``python -m kdlib.analysis.cost``) runs ``kdlib train`` and then writes its own memory
    high-water mark to ``run_dir/cost.json`` (see :func:`run_peak_memory`). Returns the run's ``metrics.json``.
    """
    from kdlib.analysis.notebook import train_in_subprocess
    from kdlib.engine.config import resolve_config
    from kdlib.engine.rundir import reusable_result

    run_dir = Path(run_dir)
    cfg = resolve_config(preset, {**dict(overrides), "run_dir": str(run_dir)})
    done = reusable_result(run_dir, cfg.to_yaml(), "use another output_dir, or delete that run to retrain it")
    if done is not None:
        return done
    resume = (run_dir / "config.yaml").is_file()
    return train_in_subprocess([sys.executable, "-m", "kdlib.analysis.cost", "train"], cfg, run_dir, resume,
                               progress)


def step_seconds(log_path: os.PathLike) -> Optional[float]:
    """Median seconds per training iteration from a run's ``log.jsonl`` (None when it has no interval).

    Training records carry ``iteration`` and ``time`` (seconds since the loop started; 0 at iteration 0);
    an ``eval`` record at iteration e means the interval after e also holds the evaluation, so it is left
    out, as is any interval where the clock restarted (a resume).
    """
    path = Path(log_path)
    if not path.is_file():
        return None
    prev_it, prev_t, dirty = 0, 0.0, False
    rates: List[float] = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        if "eval" in record:
            dirty = True
            continue
        if "time" not in record or "iteration" not in record:
            continue
        it, t = int(record["iteration"]), float(record["time"])
        if it > prev_it and t >= prev_t and not dirty:
            rates.append((t - prev_t) / (it - prev_it))
        prev_it, prev_t, dirty = it, t, False
    return statistics.median(rates) if rates else None


def paper_cost() -> pd.DataFrame:
    """The paper's Table 5 as one row per method: ``paper_train_time_h``, ``paper_gpu_memory_gb``."""
    from kdlib.paper_numbers import paper_table

    paper = paper_table(PAPER_TABLE)
    wide = paper.pivot_table(index="method", columns="metric", values="value", aggfunc="first")
    wide = wide.rename(columns={"train_time_h": "paper_train_time_h", "gpu_memory_gb": "paper_gpu_memory_gb"})
    return wide.reset_index()[["method", "paper_train_time_h", "paper_gpu_memory_gb"]]


def _ratio(values: pd.Series, methods: pd.Series, reference: str = REFERENCE) -> pd.Series:
    import numpy as np
    import pandas as pd

    ref = values[methods == reference]
    if len(ref) == 0 or not ref.iloc[0] or pd.isna(ref.iloc[0]):
        return pd.Series(np.nan, index=values.index)
    return values / float(ref.iloc[0])


def summarize_cost(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (student, method): mIoU (mean, 95 % CI over seeds), time, memory, ratios to CIRKD, the paper's."""
    import pandas as pd

    from kdlib.analysis.tables import summarize_seeds

    stats = summarize_seeds(runs, by=["student", "method"])
    costs = runs.groupby(["student", "method"], sort=False).agg(
        iterations=("iterations", "first"), wall_time_s=("wall_time_s", "mean"),
        ms_per_iter=("ms_per_iter", "mean"), peak_memory_mb=("peak_memory_mb", "mean")).reset_index()
    order = list(dict.fromkeys(runs["method"]))
    summary = costs.merge(stats, on=["student", "method"], how="left")
    summary["miou_pct"] = 100 * summary["mean"]
    summary["ci95_pct"] = 100 * summary["ci"]
    parts = []
    for _, part in summary.groupby("student", sort=False):
        part = part.copy()
        if "none" in set(part["method"]):
            base = part[part["method"] == "none"].iloc[0]
            part["extra_memory_mb"] = part["peak_memory_mb"] - base["peak_memory_mb"]
            part["extra_ms_per_iter"] = part["ms_per_iter"] - base["ms_per_iter"]
        part["time_vs_cirkd"] = _ratio(part["wall_time_s"], part["method"])
        part["step_vs_cirkd"] = _ratio(part["ms_per_iter"], part["method"])
        part["memory_vs_cirkd"] = _ratio(part["peak_memory_mb"], part["method"])
        parts.append(part)
    summary = pd.concat(parts, ignore_index=True)
    paper = paper_cost()
    paper["paper_time_vs_cirkd"] = _ratio(paper["paper_train_time_h"], paper["method"])
    paper["paper_memory_vs_cirkd"] = _ratio(paper["paper_gpu_memory_gb"], paper["method"])
    summary = summary.merge(paper, on="method", how="left")
    summary["_order"] = [order.index(m) for m in summary["method"]]
    summary = summary.sort_values(["_order"], kind="stable").drop(columns="_order")
    columns = ["student", "method", "n", "miou_pct", "ci95_pct", "iterations", "wall_time_s", "ms_per_iter",
               "peak_memory_mb", *[c for c in ("extra_ms_per_iter", "extra_memory_mb") if c in summary.columns],
               "time_vs_cirkd", "step_vs_cirkd", "memory_vs_cirkd", "paper_train_time_h", "paper_gpu_memory_gb",
               "paper_time_vs_cirkd", "paper_memory_vs_cirkd"]
    return summary[columns].reset_index(drop=True)


def compare_cost(preset: str, student: str, methods: Sequence[str] = ("cirkd", "afdcd"),
                 seeds: Sequence[int] = (0,), output_dir: os.PathLike = "results/afdcd_table5",
                 figures_dir: Optional[os.PathLike] = None, common: Optional[Mapping[str, Any]] = None,
                 progress: bool = True, isolate: bool = True, imagenet_dir: Optional[os.PathLike] = None,
                 nproc_per_node: int = 1) -> Tuple[pd.DataFrame, pd.DataFrame]:
    """Train (or reuse) every method × seed, each in a fresh process; compare time / memory; (summary, runs).

    Args:
        preset, student: the recipe and the student of every run (the teacher comes from ``common``).
        methods: registered methods (``none`` = the student alone, a reference for the overhead).
        seeds: seeds of every method.
        output_dir: gets ``runs/<run-id>/``, ``runs.csv`` (per run: ``miou``, per-class IoU, ``wall_time_s``,
            ``ms_per_iter``, ``peak_memory_mb``, ``device``), ``summary.csv`` (:func:`summarize_cost`) and
            ``metrics.json``.
        figures_dir: gets ``cost.png`` / ``cost.pdf``: time and memory side by side (relative to CIRKD, ours
            beside the paper's, when CIRKD is among the methods; else ours in absolute units).
        isolate: train each run in a subprocess (``False``: in this process, e.g. for debugging; then the
            peak memory of later runs includes earlier ones' on CPU).
        imagenet_dir: folder of the official ImageNet files (paper presets need the student's), or ``"none"``.
        nproc_per_node: > 1 trains every run with ``torchrun`` (itself a fresh process per run).
    """
    import pandas as pd

    import kdlib.methods  # noqa: F401  (registers the methods)
    from kdlib.analysis.grid import run_id
    from kdlib.analysis.notebook import save_metrics, train_config
    from kdlib.analysis.plan import active_plan, stop_if_planning
    from kdlib.engine.preflight import imagenet_path
    from kdlib.engine.config import resolve_config
    from kdlib.registry import LOSSES
    from tqdm.auto import tqdm

    methods = list(dict.fromkeys(str(m) for m in methods))
    if not methods:
        raise ValueError("no methods given")
    for method in methods:
        if method != "none" and method not in LOSSES.names():
            raise ValueError(f"unknown method {method!r}; known: none, {', '.join(LOSSES.names())}")
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("no seeds given")
    output_dir = Path(output_dir)
    common = dict(common or {})
    dataset = resolve_config(preset, {**common, "student": student}).dataset
    rows: List[Dict[str, Any]] = []
    cells = [(m, s) for m in methods for s in seeds]
    for method, seed in tqdm(cells, desc="cost", disable=not progress):
        columns = {"student": student, "method": method, "seed": seed}
        overrides = {**common, "student": student, "method": method, "seed": seed}
        if method == "none":
            overrides.pop("teacher_checkpoint", None)
        if imagenet_dir not in (None, "") and "student_imagenet" not in overrides:
            overrides["student_imagenet"] = imagenet_path(imagenet_dir, student)
        run_dir = output_dir / "runs" / run_id(columns)
        if isolate and nproc_per_node <= 1 and active_plan() is None:
            result = train_isolated(preset, overrides, run_dir)
        else:
            result = train_config(preset, overrides, run_dir, nproc_per_node=nproc_per_node)
        if active_plan() is not None:   # kdlib plan: recorded, nothing to measure
            continue
        step = step_seconds(run_dir / "log.jsonl")
        peak, source = run_peak_memory(run_dir, result)
        row = {**columns, "miou": result["miou"], "pixel_acc": result["pixel_acc"],
               "iterations": result.get("iterations"), "wall_time_s": result.get("wall_time_s"),
               "ms_per_iter": None if step is None else 1000 * step, "peak_memory_mb": peak,
               "memory_source": source, "device": result.get("device"), "isolated": bool(isolate)}
        row.update({f"iou/{k}": v for k, v in result["per_class_iou"].items()})
        rows.append(row)
    stop_if_planning()
    runs = pd.DataFrame(rows)
    summary = summarize_cost(runs)

    output_dir.mkdir(parents=True, exist_ok=True)
    runs.to_csv(output_dir / "runs.csv", index=False)
    summary.to_csv(output_dir / "summary.csv", index=False)
    if figures_dir:  # None or "" (a notebook parameter): no figure
        plot_cost(summary, Path(figures_dir) / "cost", title=f"Training cost: {student} ({dataset})")
    records = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
               for r in summary.to_dict(orient="records")]
    save_metrics(output_dir, {"table": "afdcd_table5", "student": student, "dataset": dataset, "preset": preset,
                              "methods": methods, "seeds": seeds, "isolated": bool(isolate),
                              "device": str(runs["device"].iloc[0]), "rows": records})
    return summary, runs


def plot_cost(summary: pd.DataFrame, path: os.PathLike, title: Optional[str] = None) -> List[Path]:
    """Time per iteration and peak memory side by side (bars per method; the paper's beside ours vs CIRKD)."""
    import matplotlib.pyplot as plt
    import numpy as np
    import seaborn as sns

    from kdlib.analysis.plots import PALETTE, save_figure

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


def _child_main(argv: Sequence[str]) -> int:
    """``python -m kdlib.analysis.cost train ...``: ``kdlib train ...``, then this process's peak memory."""
    from kdlib.cli import main

    code = main(list(argv))
    if code == 0 and "--run-dir" in argv:
        run_dir = Path(argv[list(argv).index("--run-dir") + 1])
        if run_dir.is_dir():
            (run_dir / PEAK_FILE).write_text(json.dumps({"peak_rss_mb": process_peak_rss_mb(),
                                                          "measured": "VmHWM of the training process"}) + "\n")
    return code


__all__ = ["compare_cost", "paper_cost", "plot_cost", "process_peak_rss_mb", "run_peak_memory", "step_seconds",
           "summarize_cost", "train_isolated"]


if __name__ == "__main__":
    raise SystemExit(_child_main(sys.argv[1:]))
