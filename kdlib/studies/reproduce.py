"""Reproduce one paper table: train students × methods × seeds, then set our numbers beside the paper's.

Each table notebook is its parameters plus one call of :func:`reproduce_table`. :data:`TABLES` names, per
paper table, the CSV of reported numbers (``kdlib.paper_numbers``), the split and variant to compare with,
and the default students and methods (the table's rows).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import pandas as pd

from kdlib.paper_numbers.tables import TABLES, TableSpec, paper_rows  # noqa: F401  (re-exported)


def reproduce_table(name: str, preset: str, students: Sequence[str], methods: Sequence[str],
                    seeds: Sequence[int], output_dir: os.PathLike, figures_dir: Optional[os.PathLike] = None,
                    common: Optional[Mapping[str, Any]] = None, progress: bool = True,
                    method_overrides: Optional[Mapping[str, Mapping[str, Any]]] = None,
                    runs_root: Optional[os.PathLike] = None, imagenet_dir: Optional[os.PathLike] = None,
                    nproc_per_node: int = 1) -> Tuple[pd.DataFrame, pd.DataFrame]:
    """Train (or reuse) every run, compare with the paper, write results and a figure; return (table, runs).

    Writes ``output_dir/runs.csv`` (one row per run), ``output_dir/summary.csv`` (the comparison: see
    :func:`kdlib.report.tables.table_vs_paper`), ``output_dir/metrics.json`` (for ``kdlib grid``) and
    ``figures_dir/per_class_iou.{png,pdf}`` (the first student, classes sorted by its baseline).

    ``method_overrides`` maps a method to overrides of its runs only (merged into ``common``), e.g.
    ``{"afdcd": {"method_options": {"patch": 2}}}``; runs are still named by student, method and seed.
    ``runs_root`` (default ``output_dir/runs``) holds the runs: several table notebooks sharing one train
    each (student, method, seed) once (a run made with other settings there is refused, not reused).

    ``imagenet_dir`` gives each student its official ImageNet file (paper presets need it; ``"none"`` opts
    out, recorded); ``nproc_per_node`` > 1 trains every run with ``torchrun``. The compared number is the
    one the paper reports: the run's ``miou`` (paper presets: the best checkpoint on the paper's split, e.g.
    CamVid test); the final model's number on the same split is shown beside it when they differ in kind.

    The R18* variant (``cirkd_table1_no_imagenet``) trains with ``student_imagenet=none``; when the main
    pass has ImageNet files its runs get their own identity (``init-none`` in the run id), so both passes
    coexist in one ``runs_root``. On the built-in data (nothing ImageNet-initialised) they are the main
    pass's runs, reused.
    """
    from kdlib.studies.notebook import save_metrics
    from kdlib.figures.plots import plot_per_class_iou
    from kdlib.studies.study import per_class_long, run_study, study_runs_root
    from kdlib.report.tables import summarize_seeds, table_vs_paper
    from kdlib.engine.config import merge, resolve_config

    if name not in TABLES:
        raise ValueError(f"unknown paper table {name!r}; known: {', '.join(TABLES)}")
    common = dict(common or {})
    init: Dict[str, str] = {}
    if TABLES[name].variant == "no_imagenet_init":
        from kdlib.engine.config import NO_IMAGENET
        from kdlib.engine.recipes import PAPER_PRESETS

        main_has_init = _names_imagenet_file(imagenet_dir) or _names_imagenet_file(common.get("student_imagenet"))
        common["student_imagenet"] = NO_IMAGENET if (main_has_init or preset in PAPER_PRESETS) else None
        init = {"init": NO_IMAGENET} if main_has_init else {}
        imagenet_dir = None
    method_overrides = {m: dict(o) for m, o in (method_overrides or {}).items()}
    params = [{"student": s, "method": m, **init} for s in students for m in methods]
    configs = [{**p, **merge({k: common[k] for k in method_overrides.get(p["method"], {}) if k in common},
                             method_overrides.get(p["method"], {}))} for p in params]
    output_dir = Path(output_dir)
    configs = [{k: v for k, v in c.items() if k != "init"} for c in configs]
    runs = run_study(preset, configs, seeds, study_runs_root(output_dir, runs_root), common, progress=progress,
                     params=params, imagenet_dir=imagenet_dir, nproc_per_node=nproc_per_node)
    summary = summarize_seeds(runs, by=["student", "method"])
    dataset = resolve_config(preset, common).dataset
    table = with_final_model(table_vs_paper(summary, paper_rows(name), dataset), runs, ["student", "method"])
    output_dir.mkdir(parents=True, exist_ok=True)
    runs.to_csv(output_dir / "runs.csv", index=False)
    table.to_csv(output_dir / "summary.csv", index=False)
    if figures_dir and "none" in methods:  # None or "": no figure
        from kdlib.display import method_label, model_label
        from kdlib.studies.study import setting_text

        long = per_class_long(runs, by=["student", "method"])
        first = students[0]
        cfg = resolve_config(preset, common)
        shown = long[long["student"] == first].assign(method=lambda f: f["method"].map(method_label))
        plot_per_class_iou(shown, Path(figures_dir) / "per_class_iou", baseline=method_label("none"),
                           label="method",
                           title=f"{TABLES[name].title.split(':')[0]} ({setting_text(preset, common)}): per-class "
                                 f"IoU of {model_label(first, cfg.student_width)} (mean over {len(seeds)} "
                                 f"seed{'s' if len(seeds) != 1 else ''}, no interval)")
    save_metrics(output_dir, {"table": name, "dataset": dataset, "rows": table.to_dict(orient="records")})
    return table, runs


def _names_imagenet_file(value: Any) -> bool:
    return value not in (None, "") and str(value).lower() != "none"


def with_final_model(table: pd.DataFrame, runs: pd.DataFrame, on: Sequence[str]) -> pd.DataFrame:
    """Add what the compared number is (``reported on``, e.g. ``best checkpoint, test``) and, where it is the
    best checkpoint, the final model's mean on the same split (``ours final model``, percent) beside it."""
    from kdlib.report.tables import summarize_seeds

    if "report_checkpoint" not in runs.columns or runs["report_checkpoint"].isna().all():
        return table
    on = list(on)
    kind = runs["report_checkpoint"].map({"best": "best checkpoint", "final": "final model"})
    label = kind.fillna(runs["report_checkpoint"].astype(str)) + ", " + runs["final_split"].astype(str)
    described = runs.assign(_label=label).groupby(on, sort=False)["_label"].first().reset_index()
    out = table.merge(described.rename(columns={"_label": "reported on"}), on=on, how="left")
    if (runs["report_checkpoint"] == "best").any() and "final_model_miou" in runs.columns:
        final = summarize_seeds(runs, by=on, metric="final_model_miou")[on + ["mean"]]
        out = out.merge(final.assign(mean=100 * final["mean"]).rename(columns={"mean": "ours final model"}),
                        on=on, how="left")
    return out


__all__ = ["TABLES", "TableSpec", "paper_rows", "reproduce_table", "with_final_model"]
