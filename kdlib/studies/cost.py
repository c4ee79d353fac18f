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
  (``python -m kdlib.studies.cost``, which runs ``kdlib train``): in one kernel a run's memory figure
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
from kdlib.figures.cost_plots import plot_cost  # noqa: E402  (re-exported: it draws this study's summary)


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

    The child (``python -m kdlib.studies.cost``) runs ``kdlib train`` and then writes its own memory
    high-water mark to ``run_dir/cost.json`` (see :func:`run_peak_memory`). Returns the run's ``metrics.json``.
    """
    from kdlib.studies.notebook import train_in_subprocess
    from kdlib.engine.config import resolve_config
    from kdlib.engine.reuse import train_or_reuse

    run_dir = Path(run_dir)
    cfg = resolve_config(preset, {**dict(overrides), "run_dir": str(run_dir)})

    def launch(cfg: Any, resume: bool) -> Dict[str, Any]:
        return train_in_subprocess([sys.executable, "-m", "kdlib.studies.cost", "train"], cfg, run_dir, resume,
                                   progress)
    return train_or_reuse(cfg, progress=progress, launch=launch,
                          fix="use another output_dir, or delete that run to retrain it")


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

    from kdlib.report.tables import summarize_seeds

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
    from kdlib.studies.grid import run_id
    from kdlib.studies.notebook import save_metrics, train_config
    from kdlib.studies.plan import active_plan, stop_if_planning
    from kdlib.engine.preflight import imagenet_path
    from kdlib.engine.config import resolve_config
    from kdlib.registry import METHODS
    from kdlib.progress import progress_bar

    methods = list(dict.fromkeys(str(m) for m in methods))
    if not methods:
        raise ValueError("no methods given")
    for method in methods:
        if method != "none" and method not in METHODS.names():
            raise ValueError(f"unknown method {method!r}; known: none, {', '.join(METHODS.names())}")
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("no seeds given")
    output_dir = Path(output_dir)
    common = dict(common or {})
    dataset = resolve_config(preset, {**common, "student": student}).dataset
    rows: List[Dict[str, Any]] = []
    cells = [(m, s) for m in methods for s in seeds]
    for method, seed in progress_bar(cells, desc="cost", disable=not progress):
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


def _child_main(argv: Sequence[str]) -> int:
    """``python -m kdlib.studies.cost train --config C --run-dir D [--resume] [--quiet]``: train the resolved
    config (as ``kdlib train`` would), then record this process's peak memory in ``D/cost.json``."""
    import argparse

    from kdlib import distributed
    from kdlib.engine.config import load_config_file, resolve_config
    from kdlib.engine.trainer import train

    parser = argparse.ArgumentParser(prog="python -m kdlib.studies.cost",
                                     description="Train one config in this fresh process and record its peak memory.")
    parser.add_argument("command", choices=["train"])
    parser.add_argument("--config", required=True, help="the run's resolved config (YAML)")
    parser.add_argument("--run-dir", required=True, help="output directory of the run")
    parser.add_argument("--resume", action="store_true", help="continue the unfinished run in --run-dir")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(list(argv))
    cfg = resolve_config(None, {**load_config_file(args.config), "run_dir": args.run_dir})
    try:
        train(cfg, resume=args.resume, progress=not args.quiet)
    finally:
        distributed.cleanup()
    (Path(args.run_dir) / PEAK_FILE).write_text(json.dumps({"peak_rss_mb": process_peak_rss_mb(),
                                                            "measured": "VmHWM of the training process"}) + "\n")
    return 0


__all__ = ["compare_cost", "paper_cost", "plot_cost", "process_peak_rss_mb", "run_peak_memory", "step_seconds",
           "summarize_cost", "train_isolated"]


if __name__ == "__main__":
    raise SystemExit(_child_main(sys.argv[1:]))
