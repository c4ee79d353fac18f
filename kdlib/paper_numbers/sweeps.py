"""The papers' hyper-parameter sweeps as data: which method option each sweeps, its default points, the
paper's default and how it is drawn (CIRKD Fig. 6 / 7, Af-DCD's hyper-parameter ablations).

Shared vocabulary of :mod:`kdlib.studies.sweep` (which trains them) and :mod:`kdlib.figures.sweep_plots`
(which draws them); see the former's docstring for the table of sweeps and the patch tokens.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Tuple

import numpy as np
import pandas as pd



@dataclass(frozen=True)
class SweepSpec:
    """One hyper-parameter sweep of one method option.

    ``values`` are the default sweep points, valid on the built-in ``quick`` preset (11 classes, 8 x 16
    feature maps, teacher head width 64 and c4 width 256) and on the paper datasets; ``paper_default`` is the
    official code's value (for ``afdcd_patch``: the patch size; the pooling default depends on the dataset).
    ``kind``: ``int``, ``float`` or ``patch`` (patch tokens, see the module docstring). ``memory_cost``: the
    option is a queue length whose memory is drawn on a second axis (``memory_queue`` names the queue).
    ``allow_none``: the option accepts ``None`` (``afdcd_pool``: no pooling, the same as a 1 x 1 pool).
    """
    method: str
    option: str
    values: Tuple[Any, ...]
    paper_default: Any
    student: str
    label: str                      # x-axis label
    title: str
    log_x: bool = False
    memory_cost: bool = False
    kind: str = "int"
    paper_note: str = ""            # what the paper swept (documentation)
    memory_queue: str = ""          # "pixel" / "region" for the queue sweeps
    allow_none: bool = False        # ``none`` is a valid value (pooling off); drawn at x = 1

    @property
    def columns(self) -> Tuple[str, ...]:
        """The method options a value sets (the runs table's value columns)."""
        return (self.option, "pool") if self.kind == "patch" else (self.option,)


_CIRKD_FIG = "CIRKD Fig. {}: values of the plot not extracted (UNCONFIRMED); the code's default is {}."
_AFDCD_NOTE = "Af-DCD hyper-parameter ablation; the paper's values are UNCONFIRMED (docs/reference.md §1.2); code default {}."

# CIRKD's ablation student is presumably the Table 4 one (DeepLabV3-MBV2; UNCONFIRMED); Af-DCD's the R18.
SWEEPS: Dict[str, SweepSpec] = {
    "cirkd_pixel_queue": SweepSpec(
        "cirkd", "pixel_memory_size", (2500, 5000, 10000, 20000, 40000), 20000, "deeplabv3_mobilenetv2",
        "pixel queue size $N_p$ per class", "CIRKD Fig. 6(a): pixel queue size", log_x=True, memory_cost=True,
        paper_note=_CIRKD_FIG.format("6(a)", "N_p = 20000"), memory_queue="pixel"),
    "cirkd_region_queue": SweepSpec(
        "cirkd", "region_memory_size", (250, 500, 1000, 2000, 4000), 2000, "deeplabv3_mobilenetv2",
        "region queue size $N_r$ per class", "CIRKD Fig. 6(b): region queue size", log_x=True, memory_cost=True,
        paper_note=_CIRKD_FIG.format("6(b)", "N_r = 2000"), memory_queue="region"),
    "cirkd_tau": SweepSpec(
        "cirkd", "contrast_temperature", (0.03, 0.05, 0.1, 0.2, 0.5), 0.1, "deeplabv3_mobilenetv2",
        r"temperature $\tau$", "CIRKD Fig. 7(a): temperature", log_x=True, kind="float",
        paper_note=_CIRKD_FIG.format("7(a)", "tau = 0.1")),
    "cirkd_pixel_contrast": SweepSpec(
        "cirkd", "pixel_contrast_size", (1024, 2048, 4096, 8192, 16384), 4096, "deeplabv3_mobilenetv2",
        "contrastive pixel embeddings $K_p$", "CIRKD Fig. 7(b): contrastive pixels", log_x=True,
        paper_note=_CIRKD_FIG.format("7(b)", "K_p = 4096")),
    "cirkd_region_contrast": SweepSpec(
        "cirkd", "region_contrast_size", (256, 512, 1024, 2048, 4096), 1024, "deeplabv3_mobilenetv2",
        "contrastive region embeddings $K_r$", "CIRKD Fig. 7(c): contrastive regions", log_x=True,
        paper_note=_CIRKD_FIG.format("7(c)", "K_r = 1024")),
    "afdcd_groups": SweepSpec(
        "afdcd", "groups", (4, 8, 16, 32, 64), 16, "deeplabv3_resnet18", "channel groups $M$",
        "Af-DCD: channel groups M", log_x=True, paper_note=_AFDCD_NOTE.format("M = 16")),
    "afdcd_tau": SweepSpec(
        "afdcd", "tau", (0.02, 0.05, 0.07, 0.1, 0.2, 0.7), 0.07, "deeplabv3_resnet18", r"temperature $\tau$",
        "Af-DCD: temperature", log_x=True, kind="float",
        paper_note=_AFDCD_NOTE.format("tau = 0.07 (the LLM summary's 0.7 is swept too)")),
    "afdcd_patch": SweepSpec(
        "afdcd", "patch", ("2", "4", "8", "2/pool2", "4/pool2"), 4, "deeplabv3_resnet18", "patch size $N$",
        "Af-DCD: patch size and pooling", log_x=True, kind="patch",
        paper_note=_AFDCD_NOTE.format("4 x 4 patches after a 4 x 4 max-pool (none on CamVid); the summary "
                                      "mentions N from 2 to 8")),
    "afdcd_pool": SweepSpec(
        "afdcd", "pool", ("none", 2), 4, "deeplabv3_resnet18", "max-pool size before the patches",
        "Af-DCD: pooling before the contrast", log_x=True, allow_none=True,
        paper_note=_AFDCD_NOTE.format("pool 4 (none on CamVid); 4 needs maps of at least 16 x 16 for 4 x 4 "
                                      "patches, so it is not among the quick preset's values")),
    "afdcd_mask_ratio": SweepSpec(
        "afdcd", "mask_ratio", (0.25, 0.5, 0.65, 0.75, 0.9), 0.75, "deeplabv3_resnet18", r"mask ratio $\zeta$",
        "Af-DCD: mask ratio", kind="float",
        paper_note=_AFDCD_NOTE.format("0.75 (MGD's default 0.65 is swept too)")),
}

# Multi-panel paper figures: their panels, in order, and titles.
FIGURES: Dict[str, Tuple[str, ...]] = {
    "cirkd_fig6": ("cirkd_pixel_queue", "cirkd_region_queue"),
    "cirkd_fig7": ("cirkd_tau", "cirkd_pixel_contrast", "cirkd_region_contrast"),
}
FIGURE_TITLES: Dict[str, str] = {
    "cirkd_fig6": "CIRKD Fig. 6: memory queue sizes",
    "cirkd_fig7": "CIRKD Fig. 7: temperature and contrastive embeddings",
}


def get_sweep(name: str) -> SweepSpec:
    if name not in SWEEPS:
        raise ValueError(f"unknown sweep {name!r}; known: {', '.join(SWEEPS)}")
    return SWEEPS[name]


# ----------------------------------------------------------------------------------------------- values


def format_number(value: Any) -> str:
    """Compact tick / table label: 20000 → ``20k``, 2500 → ``2.5k``, 0.07 → ``0.07``, None → ``none``."""
    if value is None:
        return "none"
    if isinstance(value, str):
        return value
    if isinstance(value, (int, np.integer)) and abs(value) >= 1000 and value % 100 == 0:
        return f"{value / 1000:g}k"
    return f"{value:g}"


def as_x(value: Any) -> float:
    """Plot / sort position of a value (``none``, pooling off, = a 1 x 1 pool)."""
    return 1.0 if value is None or value == "none" else float(value)


def sweep_rows(summary: pd.DataFrame, name: str) -> pd.DataFrame:
    """The rows of sweep ``name`` in a (multi-sweep) summary, with its value and summary columns."""
    spec = get_sweep(name)
    part = summary[summary["sweep"] == name]
    keep = [c for c in part.columns if c in ("sweep", "student", *spec.columns, "n", "miou_pct", "std_pct",
                                                "ci95_pct", "wall_time_s", "peak_memory_mb", "paper_default",
                                                "setting") or (c == "queue_memory_mb" and spec.memory_cost)]
    return part[keep].reset_index(drop=True)


__all__ = ["FIGURES", "FIGURE_TITLES", "SWEEPS", "SweepSpec", "as_x", "format_number", "get_sweep", "sweep_rows"]
