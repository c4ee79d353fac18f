"""Reproduce one paper table: train students × methods × seeds, then set our numbers beside the paper's.

Each table notebook is its parameters plus one call of :func:`reproduce_table`. :data:`TABLES` names, per
paper table, the CSV of reported numbers (``kdlib.paper_numbers``), the split and variant to compare with,
and the default students and methods (the table's rows).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import pandas as pd


@dataclass(frozen=True)
class TableSpec:
    paper_csv: str                 # kdlib/paper_numbers/<paper_csv>.csv
    split: str                     # the split the paper reports
    students: Tuple[str, ...]
    methods: Tuple[str, ...]
    title: str
    variant: str = ""              # "" = the standard recipe
    dataset: str = ""              # "" = every row of the CSV (one-dataset tables); else only this dataset's


_R18_PSP = ("deeplabv3_resnet18", "pspnet_resnet18")
TABLES: Dict[str, TableSpec] = {
    "cirkd_table1": TableSpec("cirkd_table1", "val", ("deeplabv3_resnet18", "deeplabv3_mobilenetv2", "pspnet_resnet18"),
                              ("none", "skd", "ifvd", "cwd", "cirkd"), "CIRKD Table 1: Cityscapes val mIoU"),
    # Table 1's DeepLabV3-R18* row: the same recipe without ImageNet initialisation (reproduce_table drops
    # student_imagenet for it); on the built-in data, where nothing is ImageNet-initialised, its runs are the
    # standard R18 runs.
    "cirkd_table1_no_imagenet": TableSpec("cirkd_table1", "val", ("deeplabv3_resnet18",),
                                          ("none", "skd", "ifvd", "cwd", "cirkd"),
                                          "CIRKD Table 1, DeepLabV3-R18* (no ImageNet initialisation): Cityscapes "
                                          "val mIoU", variant="no_imagenet_init"),
    "cirkd_table2": TableSpec("cirkd_table2", "test", _R18_PSP, ("none", "skd", "ifvd", "cwd", "cirkd"),
                              "CIRKD Table 2: CamVid test mIoU"),
    "cirkd_table3": TableSpec("cirkd_table3", "val", _R18_PSP, ("none", "skd", "ifvd", "cwd", "cirkd"),
                              "CIRKD Table 3: Pascal VOC val mIoU"),
    "afdcd_cityscapes": TableSpec("afdcd_cityscapes", "val", ("deeplabv3_resnet18", "deeplabv3_mobilenetv2"),
                                  ("none", "skd", "ifvd", "cwd", "cirkd", "afdcd"), "Af-DCD: Cityscapes val mIoU"),
    "afdcd_camvid": TableSpec("afdcd_camvid", "test", _R18_PSP, ("none", "skd", "ifvd", "cwd", "cirkd", "afdcd"),
                              "Af-DCD: CamVid test mIoU"),
    "afdcd_voc": TableSpec("afdcd_voc", "val", _R18_PSP, ("none", "skd", "ifvd", "cwd", "cirkd", "afdcd"),
                           "Af-DCD: Pascal VOC val mIoU"),
    "afdcd_ade20k": TableSpec("afdcd_ade20k", "val", ("deeplabv3_resnet18",), ("none", "kd", "cirkd", "afdcd"),
                              "Af-DCD: ADE20K val mIoU"),
    "afdcd_coco_stuff": TableSpec("afdcd_coco_stuff", "val", ("deeplabv3_resnet18",),
                                  ("none", "kd", "cirkd", "afdcd"), "Af-DCD: COCO-Stuff-164K val mIoU"),
    # CIRKD README transformer rows (the CSV also holds ADE20K / COCO-Stuff / CNN-DSD rows: dataset filter).
    # DSD is not a kdlib method: its row stays paper-only. Af-DCD's transformer numbers were never released.
    "segformer_pair": TableSpec("cirkd_readme", "val", ("segformer_mit_b0",),
                                ("none", "skd", "ifvd", "cwd", "cirkd", "afdcd"),
                                "SegFormer MiT-B4 -> MiT-B0: Cityscapes val mIoU", dataset="cityscapes"),
}


def paper_rows(name: str) -> pd.DataFrame:
    """The paper's rows of table ``name`` that our runs are compared with (one per student × method)."""
    from kdlib.paper_numbers import paper_table

    spec = TABLES[name]
    paper = paper_table(spec.paper_csv)
    keep = (paper["split"] == spec.split) & (paper["variant"] == spec.variant) & (paper["metric"] == "miou")
    keep &= paper["note"].str.split(";").str[0].str.strip() != "teacher"  # "teacher" or "teacher; <footnote>"
    if spec.dataset:
        keep &= paper["dataset"] == spec.dataset
    return paper[keep].reset_index(drop=True)


def reproduce_table(name: str, preset: str, students: Sequence[str], methods: Sequence[str],
                    seeds: Sequence[int], output_dir: os.PathLike, figures_dir: Optional[os.PathLike] = None,
                    common: Optional[Mapping[str, Any]] = None, progress: bool = True,
                    method_overrides: Optional[Mapping[str, Mapping[str, Any]]] = None,
                    runs_root: Optional[os.PathLike] = None) -> Tuple[pd.DataFrame, pd.DataFrame]:
    """Train (or reuse) every run, compare with the paper, write results and a figure; return (table, runs).

    Writes ``output_dir/runs.csv`` (one row per run), ``output_dir/summary.csv`` (the comparison: see
    :func:`kdlib.analysis.tables.table_vs_paper`), ``output_dir/metrics.json`` (for ``kdlib grid``) and
    ``figures_dir/per_class_iou.{png,pdf}`` (the first student, classes sorted by its baseline).

    ``method_overrides`` maps a method to overrides of its runs only (merged into ``common``), e.g.
    ``{"afdcd": {"method_options": {"patch": 2}}}``; runs are still named by student, method and seed.
    ``runs_root`` (default ``output_dir/runs``) holds the runs: several table notebooks sharing one train
    each (student, method, seed) once (a run made with other settings there is refused, not reused).
    """
    from kdlib.analysis.notebook import save_metrics
    from kdlib.analysis.plots import plot_per_class_iou
    from kdlib.analysis.study import per_class_long, run_study, study_runs_root
    from kdlib.analysis.tables import summarize_seeds, table_vs_paper
    from kdlib.engine.config import merge, resolve_config

    if name not in TABLES:
        raise ValueError(f"unknown paper table {name!r}; known: {', '.join(TABLES)}")
    common = dict(common or {})
    if TABLES[name].variant == "no_imagenet_init":
        common["student_imagenet"] = None
    method_overrides = {m: dict(o) for m, o in (method_overrides or {}).items()}
    params = [{"student": s, "method": m} for s in students for m in methods]
    configs = [{**p, **merge({k: common[k] for k in method_overrides.get(p["method"], {}) if k in common},
                             method_overrides.get(p["method"], {}))} for p in params]
    output_dir = Path(output_dir)
    runs = run_study(preset, configs, seeds, study_runs_root(output_dir, runs_root), common, progress=progress, params=params)
    summary = summarize_seeds(runs, by=["student", "method"])
    dataset = resolve_config(preset, common).dataset
    table = table_vs_paper(summary, paper_rows(name), dataset)
    output_dir.mkdir(parents=True, exist_ok=True)
    runs.to_csv(output_dir / "runs.csv", index=False)
    table.to_csv(output_dir / "summary.csv", index=False)
    if figures_dir and "none" in methods:  # None or "": no figure
        long = per_class_long(runs, by=["student", "method"])
        first = students[0]
        plot_per_class_iou(long[long["student"] == first], Path(figures_dir) / "per_class_iou", baseline="none",
                           label="method", title=f"{TABLES[name].title.split(':')[0]}: per-class IoU, {first} "
                                                 f"({dataset})")
    save_metrics(output_dir, {"table": name, "dataset": dataset, "rows": table.to_dict(orient="records")})
    return table, runs


__all__ = ["TABLES", "TableSpec", "paper_rows", "reproduce_table"]
