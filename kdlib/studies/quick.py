"""The quick study (``kdlib quick``, README's main job): teacher, baseline student and KD student on the
built-in data, evaluated, tabulated and plotted in minutes on a 2-core CPU.

Steps (each a normal ``kdlib train`` run under ``runs/quick/<name>``; a finished run is reused, an
unfinished one resumed, so an interrupted study continues where it stopped):

1. ``teacher``  the preset's teacher (DeepLabV3-R18 at width 0.5) trained alone, for
   :data:`TEACHER_ITERATION_FACTOR` times the student's iterations. The repository ships this run
   (:data:`SHIPPED_TEACHER`: weights, config, metrics, environment), which is copied into the runs folder when
   no teacher run is there yet and the study's teacher config is the committed one (overrides that change it
   train the teacher), so the main job trains only the students (``train_teacher=True`` /
   ``kdlib quick --train-teacher`` trains it instead; on the machine kind of ``results/quick/teacher/env.json``
   that gives the same weights);
2. ``baseline`` DeepLabV3-R18 (width 0.25) trained alone;
3. ``kd``       the same student distilled from the teacher with pixel-wise logit KD;
   further methods join as ``extra_methods``.

Writes ``results/quick/summary.csv`` (one row per run), ``results/quick/per_class_iou.csv`` (long format)
and ``figures/quick/miou.{png,pdf}``, ``figures/quick/per_class_iou.{png,pdf}``.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import pandas as pd

from kdlib.engine.config import TrainConfig, resolve_config
from kdlib.engine.rundir import write_text_atomic

#: The teacher trains this many times longer than the students (it must be clearly better to teach).
TEACHER_ITERATION_FACTOR = 1.5
#: The committed teacher run of the default quick study, and its files.
SHIPPED_TEACHER = Path("results/quick/teacher")
SHIPPED_TEACHER_FILES = ("best.pt", "config.yaml", "metrics.json", "env.json")


def _study_configs(runs_root: Path, overrides: Dict[str, Any], methods: Sequence[str]) -> List[tuple]:
    base = resolve_config("quick", overrides)
    teacher_dir = runs_root / "teacher"
    teacher_iterations = int(round(TEACHER_ITERATION_FACTOR * base.iterations))
    plans = [("teacher", {"method": "none", "student": base.teacher, "student_width": base.teacher_width,
                          "iterations": teacher_iterations, "run_dir": str(teacher_dir)}),
             ("baseline", {"method": "none", "run_dir": str(runs_root / "baseline")})]
    for method in methods:
        plans.append((method, {"method": method, "teacher_checkpoint": str(teacher_dir),
                               "run_dir": str(runs_root / method)}))
    return [(name, resolve_config("quick", {**overrides, **plan})) for name, plan in plans]


def _run_or_reuse(cfg: TrainConfig, progress: bool, fresh: bool) -> Dict[str, Any]:
    """Reuse a finished run, resume an unfinished one, or train; a run made with another config is an error."""
    from kdlib.engine.reuse import train_or_reuse

    return train_or_reuse(cfg, progress=progress, fresh=fresh,
                          fix="rerun with --fresh to replace the quick study's runs, or --runs-root <new folder>")


def _env(run_dir: Path) -> Dict[str, Any]:
    import json

    path = run_dir / "env.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def run_quick(results_dir: str = "results/quick", figures_dir: str = "figures/quick",
              runs_root: str = "runs/quick", overrides: Optional[Dict[str, Any]] = None,
              methods: Sequence[str] = ("kd",), progress: bool = True, fresh: bool = False,
              train_teacher: bool = False) -> pd.DataFrame:
    """Run (or reuse) the quick study and write its tables and figures; returns the summary table.

    ``fresh=True`` retrains every run even if a finished one exists. Without a teacher run, the committed one
    (:data:`SHIPPED_TEACHER`) is installed unless ``train_teacher`` (or ``fresh``) asks to train it.
    """
    from kdlib.engine.reuse import install_shipped_run

    from kdlib.figures.plots import plot_miou, plot_per_class_iou

    from kdlib.display import method_label, model_label

    started = time.time()
    rows, per_class = [], []
    student_cfg = _study_configs(Path(runs_root), dict(overrides or {}), methods)[-1][1]
    cfgs_setting = f"{student_cfg.dataset}, students {student_cfg.iterations:,} iterations"
    for name, cfg in _study_configs(Path(runs_root), dict(overrides or {}), methods):
        if name == "teacher" and not (fresh or train_teacher):
            installed = install_shipped_run(SHIPPED_TEACHER, Path(cfg.run_dir), cfg, SHIPPED_TEACHER_FILES,
                                            "run `kdlib quick --train-teacher`", other_settings="skip")
            if installed and progress:
                print(f"[quick] teacher: the committed {SHIPPED_TEACHER} copied to {cfg.run_dir} "
                      f"(`kdlib quick --train-teacher` trains it)", flush=True)
        if progress:
            print(f"[quick] {name}: {cfg.student} (width {cfg.student_width}), method {cfg.method}", flush=True)
        result = _run_or_reuse(cfg, progress, fresh)
        env = _env(Path(cfg.run_dir))
        label = f"teacher ({model_label(cfg.student, cfg.student_width)})" if name == "teacher" else \
            f"{method_label(cfg.method)} ({model_label(cfg.student, cfg.student_width)})"
        provenance = {"seed": cfg.seed, "git_commit": env.get("git_commit"), "started": env.get("started")}
        rows.append({"run": name, "label": label, "model": cfg.student, "width": cfg.student_width,
                     "method": cfg.method, "miou_pct": 100 * result["miou"], "pixel_acc_pct": 100 * result["pixel_acc"],
                     "best_miou_pct": 100 * result["best_miou"], "iterations": cfg.iterations,
                     "wall_time_s": result["wall_time_s"], "run_dir": cfg.run_dir, **provenance})
        per_class += [{"run": name, "label": label, "class": c, "iou_pct": 100 * v, **provenance}
                      for c, v in result["per_class_iou"].items()]
    summary, per_class_df = pd.DataFrame(rows), pd.DataFrame(per_class)
    results, figures = Path(results_dir), Path(figures_dir)
    results.mkdir(parents=True, exist_ok=True)
    write_text_atomic(results / "summary.csv", summary.to_csv(index=False))
    write_text_atomic(results / "per_class_iou.csv", per_class_df.to_csv(index=False))
    setting = f"{cfgs_setting}, one seed per run, no interval"
    plot_miou(summary.assign(miou=summary["miou_pct"] / 100), figures / "miou", label="label",
              title=f"Quick study: mIoU on val\n{setting}")
    plot_per_class_iou(per_class_df.assign(iou=per_class_df["iou_pct"] / 100), figures / "per_class_iou",
                       baseline=summary.loc[summary["run"] == "baseline", "label"].iloc[0], label="label",
                       title=f"Quick study: per-class IoU on val, sorted by the baseline\n{setting}")
    if progress:
        print(summary[["run", "model", "method", "miou_pct", "wall_time_s"]].to_string(index=False))
        print(f"[quick] done in {time.time() - started:.0f} s; tables in {results}, figures in {figures}")
    return summary


__all__ = ["SHIPPED_TEACHER", "run_quick"]
