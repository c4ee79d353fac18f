"""The papers' main tables as data: per table, the CSV of reported numbers, the split and variant compared
with, and the default students and methods (the table's rows). Used by :mod:`kdlib.studies.reproduce`
(which trains them) and :mod:`kdlib.report` (which reports them).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple

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


__all__ = ["TABLES", "TableSpec", "paper_rows"]
