"""Run a list of training configurations (× seeds) in-process and collect one tidy runs table.

The table notebooks call :func:`run_study`; its rows have the same columns as ``kdlib grid``'s
``runs.csv`` (parameters, seed, ``miou``, ``pixel_acc``, ``iou/<class>``, wall time, peak memory), so the
same analysis functions (:mod:`kdlib.report.tables`) read both.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

import pandas as pd

from kdlib.progress import progress_bar
from kdlib.studies.grid import run_id


def split_list(text: str) -> List[str]:
    """``"a, b,c"`` → ``["a", "b", "c"]`` (notebook parameters are scalars; lists come as comma strings)."""
    return [part.strip() for part in str(text).split(",") if part.strip()]


def run_study(preset: str, configs: Sequence[Mapping[str, Any]], seeds: Sequence[int],
              runs_root: os.PathLike, common: Optional[Mapping[str, Any]] = None,
              progress: bool = True, params: Optional[Sequence[Mapping[str, Any]]] = None,
              imagenet_dir: Optional[os.PathLike] = None, nproc_per_node: int = 1) -> pd.DataFrame:
    """Train (or reuse) every ``config`` × ``seed`` under ``runs_root/<run-id>`` and return the runs table.

    Args:
        preset: kdlib preset for every run (e.g. ``"quick"``, ``"cityscapes"``).
        configs: per-run overrides, e.g. ``{"student": "deeplabv3_resnet18", "method": "cirkd"}``; the keys
            become the table's parameter columns.
        seeds: seeds of every configuration.
        runs_root: parent of the run directories (finished runs are reused, interrupted ones resumed).
        common: overrides shared by all runs (data root, iterations, teacher checkpoint, ...).
        params: per-config parameter columns naming the run (run id and the table's columns) instead of the
            config itself, e.g. ``{"variant": "ce+kd"}`` for overrides holding a ``loss_weights`` dict.
        imagenet_dir: folder of the official ImageNet files: each run's student gets its own file
            (:func:`kdlib.engine.preflight.imagenet_path`) unless its overrides set ``student_imagenet``;
            ``"none"``: no ImageNet initialisation, recorded; ``None`` / ``""``: the preset decides.
        nproc_per_node: processes per run (``torchrun``; 1 trains in this process).

    Rows carry the reported ``miou`` (the config's ``report_checkpoint`` on its ``final_split``), the best
    periodic validation ``best_miou`` (on ``val_split``), and both models on the final split
    (``best_checkpoint_miou``, ``final_model_miou``). Under ``kdlib plan`` the runs are recorded, not
    trained, and the study stops here (:class:`kdlib.studies.plan.PlanStop`).
    """
    from kdlib.studies.notebook import train_config
    from kdlib.studies.plan import stop_if_planning
    from kdlib.engine.rundir import commit_date
    from kdlib.studies.replay import replayed_result

    rows: List[Dict[str, Any]] = []
    if params is not None and len(params) != len(configs):
        raise ValueError(f"params has {len(params)} entries for {len(configs)} configs")
    names = list(params) if params is not None else list(configs)
    cells = [(dict(cfg), dict(name), int(seed)) for cfg, name in zip(configs, names) for seed in seeds]
    from kdlib.studies.plan import active_plan

    for cfg, name, seed in progress_bar(cells, desc="study", disable=not progress or active_plan() is not None):
        columns = {**name, "seed": seed}
        overrides = {**dict(common or {}), **cfg, "seed": seed}
        if overrides.get("method", "none") == "none":
            overrides.pop("teacher_checkpoint", None)
        run_dir = Path(runs_root) / run_id(columns)
        replayed = replayed_result(run_dir)   # KDLIB_REPLAY: the committed numbers, nothing trained
        result = replayed if replayed is not None else train_config(preset, overrides, run_dir,
                                                                    nproc_per_node=nproc_per_node,
                                                                    imagenet_dir=imagenet_dir)
        row: Dict[str, Any] = {**columns, "miou": result["miou"], "miou_pct": 100 * result["miou"],
                               "pixel_acc": result["pixel_acc"],
                               "best_miou": result.get("best_miou"), "wall_time_s": result.get("wall_time_s")}
        for key in REPORT_COLUMNS:   # runs made before these existed: absent, not invented
            if key in result:
                row[key] = result[key]
        row.update({f"iou/{name}": value for name, value in result["per_class_iou"].items()})
        # the trainer's peak memory (MB): CUDA max allocated, or on CPU this process's RSS high-water mark
        # since the run started (kdlib.engine.trainer.peak_memory_mb; kdlib.studies.cost isolates runs)
        row["peak_memory_mb"] = result.get("peak_memory_mb")
        row.update(_provenance(run_dir) if replayed is None else
                   {"run_dir": str(run_dir), "git_commit": replayed["git_commit"], "started": replayed.get("started")})
        row["commit_date"] = commit_date(row["git_commit"])
        rows.append(row)
    stop_if_planning()
    return pd.DataFrame(rows)


# what each reported number is: see kdlib.engine.trainer.final_evaluation
REPORT_COLUMNS = ("report_checkpoint", "final_split", "best_checkpoint_miou", "final_model_miou", "val_split",
                  "best_iteration")



def _provenance(run_dir: Path) -> Dict[str, Any]:
    """``run_dir``, the ``git_commit`` that trained it and when it ``started`` (the run's env.json)."""
    import json

    env = json.loads((run_dir / "env.json").read_text()) if (run_dir / "env.json").is_file() else {}
    return {"run_dir": str(run_dir), "git_commit": env.get("git_commit"), "started": env.get("started")}


def setting_text(preset: str, common: Optional[Mapping[str, Any]] = None) -> str:
    """The setting a figure title names: ``synthetic_streets, proxy preset, 400 iterations``."""
    from kdlib.engine.config import resolve_config

    cfg = resolve_config(preset, dict(common or {}))
    return f"{cfg.dataset}, {preset} preset, {cfg.iterations:,} iterations"


def study_runs_root(output_dir: os.PathLike, runs_root: Optional[os.PathLike] = None) -> Path:
    """Where a study's runs go: ``runs_root`` if given (non-empty; shared by several notebooks so that the same
    (student, method, seed) run trains once), else ``output_dir/runs``."""
    return Path(runs_root) if runs_root not in (None, "") else Path(output_dir) / "runs"


def per_class_long(runs: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """Mean per-class IoU over seeds in long format (``by`` columns, ``class``, ``iou``) for bar charts."""
    columns = [c for c in runs.columns if c.startswith("iou/")]
    long = runs.melt(id_vars=list(by), value_vars=columns, var_name="class", value_name="iou")
    long["class"] = long["class"].str[len("iou/"):]
    return long.groupby([*by, "class"], sort=False, as_index=False)["iou"].mean()


__all__ = ["per_class_long", "run_study", "setting_text", "split_list", "study_runs_root"]
