"""Numbers reported by the papers, kept as data (CSV files beside this module).

Every value is typed from docs/reference.md §1 (with the provenance tag given there); nothing
is computed or guessed. Numbers that page marks as not extracted or UNCONFIRMED-without-a-value are absent:
CIRKD Figures 3 / 6 / 7 (plots only), Af-DCD Table 3(a)(b) and Table 4 ablations, its hyper-parameter
sweeps and its transformer results (existence known, numbers not retrievable).

Results tables (tidy, long format: one reported number per row)
----------------------------------------------------------------
Columns (``RESULT_COLUMNS``):

``paper``    ``cirkd`` (CVPR 2022) or ``afdcd`` (NeurIPS 2023) — whose publication reports the number.
``table``    where in that publication: ``Table 1`` … ``Table 5``, ``README`` (official repository, not the
             paper), ``main`` (Af-DCD's main comparison tables as in its README; the paper's own table
             numbering is UNCONFIRMED), ``abstract``.
``dataset``  kdlib dataset name: ``cityscapes, camvid, voc, ade20k, coco_stuff_164k``.
``split``    ``val`` / ``test`` (evaluation split); ``train`` for training-cost numbers.
``teacher``  kdlib model name of the teacher; empty for ``method == "none"`` (a model trained alone: the
             baseline student, or the teacher itself).
``student``  kdlib model name of the evaluated model (``deeplabv3_resnet18``, ``deeplabv3_mobilenetv2``,
             ``pspnet_resnet18``, ``deeplabv3_resnet101``; ``segformer_mit_b0`` / ``segformer_mit_b4`` for
             the CIRKD-README transformer rows).
``method``   lowercase: ``none`` (trained alone), ``kd, skd, ifvd, cwd, cirkd, afdcd, dsd, maskd``.
``variant``  empty for the standard recipe; otherwise ``no_imagenet_init`` (CIRKD's DeepLabV3-Res18*),
             ``released_checkpoint`` (Af-DCD README checkpoint number next to the paper's), or the active
             loss terms of the CIRKD Table 4 ablation (``ce``, ``ce+kd``, ``ce+kd+batch_p2p``, …).
``metric``   ``miou`` (%), ``miou_gain`` (percentage points over the student trained alone),
             ``gpu_memory_gb`` (GB), ``train_time_h`` (hours).
``value``    the reported number, as printed (``paper_table`` returns it as float).
``source``   provenance tag (docs/reference.md §0): ``[S1]`` CIRKD slides reproducing the paper tables, ``[C1] README``
             CIRKD repository README, ``[A] README`` Af-DCD repository README, ``[3P] abstract`` /
             ``[3P] summary`` third-party pages.
``note``     footnotes and the reference's markers (``teacher``, ``UNCONFIRMED``, copy errors, deductions).

A row is identified by ``(paper, table, dataset, split, teacher, student, method, variant, metric)``.

Files
-----
``cirkd_table1``  CIRKD Table 1, Cityscapes val and test: teacher DeepLabV3-R101 and four students (R18, R18*
                  without ImageNet init, MBV2, PSPNet-R18) × {none, skd, ifvd, cwd, cirkd}. 42 numbers.
``cirkd_table2``  CIRKD Table 2, CamVid test (233 images): teacher, R18 and PSPNet-R18 × 5 methods. 11.
``cirkd_table3``  CIRKD Table 3, Pascal VOC val: teacher, R18 and PSPNet-R18 × 5 methods. 11.
``cirkd_table4``  CIRKD Table 4, loss-term ablation, Cityscapes val, R101 → MBV2 (student deduced in docs/reference.md §1.1). 7.
``cirkd_readme``  CIRKD repository README (not in the CVPR paper): ADE20K and COCO-Stuff-164K (teacher, R18,
                  R18+CIRKD), DSD baseline rows for R18 / MBV2, SegFormer MiT-B4 → MiT-B0 on Cityscapes. 15.
``afdcd_cityscapes``  Af-DCD main table, Cityscapes val: MBV2 and R18 rows incl. MasKD's reported number
                  (a reference, not implemented here) and the released MBV2 checkpoint (76.43). 16.
``afdcd_ade20k``, ``afdcd_coco_stuff``  Af-DCD main tables with the "KD" rows (source UNCONFIRMED). 5 each.
``afdcd_voc``, ``afdcd_camvid``  Af-DCD main tables, R18 and PSPNet-R18. 13 each.
``afdcd_abstract``  Af-DCD abstract: 77.03 / 76.38 and the five per-dataset gains (students deduced by
                  the arithmetic of docs/reference.md §1.2). 7.
``afdcd_table5``  Af-DCD Table 5, training efficiency vs CIRKD (GPU memory, training time; pair UNCONFIRMED). 4.

Non-Af-DCD numbers in the ``afdcd_*`` tables repeat CIRKD's (``note`` says "copied by Af-DCD from CIRKD").

Other files
-----------
``complexity``  Params / FLOPs of CIRKD Tables 1-3 (FLOPs are the papers' multiply-accumulate counts;
``reproducible=no`` marks the VOC Table 3 FLOPs, which no input size reproduces, docs/reference.md §2.7). Its own
wide schema: ``table, dataset, height, width, num_classes, model, params_M, flops_G, reproducible``.
"""
from __future__ import annotations

import csv
from io import StringIO
from importlib import resources
from typing import TYPE_CHECKING, Dict, Iterable, List, Optional, Tuple

if TYPE_CHECKING:  # pandas is a dependency, but importing kdlib.paper_numbers should stay cheap
    import pandas as pd

RESULT_COLUMNS: Tuple[str, ...] = ("paper", "table", "dataset", "split", "teacher", "student", "method",
                                   "variant", "metric", "value", "source", "note")
KEY_COLUMNS: Tuple[str, ...] = ("paper", "table", "dataset", "split", "teacher", "student", "method",
                                "variant", "metric")
RESULT_TABLES: Tuple[str, ...] = ("cirkd_table1", "cirkd_table2", "cirkd_table3", "cirkd_table4", "cirkd_readme",
                                  "afdcd_cityscapes", "afdcd_ade20k", "afdcd_coco_stuff", "afdcd_voc",
                                  "afdcd_camvid", "afdcd_abstract", "afdcd_table5")
PAPERS: Tuple[str, ...] = ("cirkd", "afdcd")
DATASETS: Tuple[str, ...] = ("cityscapes", "camvid", "voc", "ade20k", "coco_stuff_164k")
SPLITS: Tuple[str, ...] = ("val", "test", "train")
MODELS: Tuple[str, ...] = ("deeplabv3_resnet101", "deeplabv3_resnet18", "deeplabv3_mobilenetv2", "pspnet_resnet18",
                           "segformer_mit_b0", "segformer_mit_b4")
METHODS: Tuple[str, ...] = ("none", "kd", "skd", "ifvd", "cwd", "at", "fitnet", "dsd", "maskd", "cirkd", "afdcd")
METRICS: Tuple[str, ...] = ("miou", "miou_gain", "gpu_memory_gb", "train_time_h")


def names() -> List[str]:
    """Names of all CSV files in this package (without ``.csv``), sorted."""
    return sorted(p.name[:-4] for p in resources.files(__name__).iterdir() if p.name.endswith(".csv"))


def load(name: str) -> List[Dict[str, str]]:
    """Rows of ``kdlib/paper_numbers/<name>.csv`` as dicts of strings."""
    text = resources.files(__name__).joinpath(f"{name}.csv").read_text()
    return list(csv.DictReader(text.splitlines()))


def paper_table(name: str) -> "pd.DataFrame":
    """``kdlib/paper_numbers/<name>.csv`` as a DataFrame with typed values.

    Text columns stay strings with ``""`` for empty cells (``teacher`` of a ``none`` row is ``""``, not NaN,
    so joins on it behave); columns whose non-empty cells are all numbers become float / int (``value``
    of the results tables is always float64; empty cells of a numeric column become NaN).
    """
    import pandas as pd

    text = resources.files(__name__).joinpath(f"{name}.csv").read_text()
    frame = pd.read_csv(StringIO(text), dtype=str, keep_default_na=False)
    for column in frame.columns:
        cells = frame[column]
        filled = cells != ""
        numbers = pd.to_numeric(cells.where(filled), errors="coerce")
        if filled.any() and numbers[filled].notna().all():
            frame[column] = numbers
    if "value" in frame.columns:
        frame["value"] = frame["value"].astype("float64")
    return frame


def paper_results(tables: Optional[Iterable[str]] = None, paper: Optional[str] = None) -> "pd.DataFrame":
    """All results tables (``RESULT_TABLES``, or the given ones) stacked into one DataFrame.

    ``paper`` keeps only the rows of one publication (``"cirkd"`` or ``"afdcd"``).
    """
    import pandas as pd

    frame = pd.concat([paper_table(n) for n in (tables or RESULT_TABLES)], ignore_index=True)
    if paper is not None:
        frame = frame[frame["paper"] == paper].reset_index(drop=True)
    return frame


__all__ = ["DATASETS", "KEY_COLUMNS", "METHODS", "METRICS", "MODELS", "PAPERS", "RESULT_COLUMNS", "RESULT_TABLES",
           "SPLITS", "load", "names", "paper_results", "paper_table"]
