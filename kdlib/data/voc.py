"""Pascal VOC 2012 with the SBD augmentation ("VOC aug"), registered as ``voc``: 21 classes, 255 → -1.

Layout (relative to ``root``, i.e. ``VOCdevkit/VOC2012``)::

    JPEGImages/<id>.jpg
    SegmentationClassAug/<id>.png     train labels: greyscale class indices (10582 train_aug + 1449 val)
    SegmentationClass/<id>.png        val labels: palette PNGs, read as palette indices
    ImageSets/Segmentation/val.txt    official val ids (1449), one id per line
    ImageSets/Segmentation/train_aug.txt   (optional) train_aug ids (10582), one id per line

Splits: ``train`` (alias ``train_aug``) reads ``SegmentationClassAug``; ``val`` reads ``SegmentationClass``
(as the official loader does). ``label_dir=`` overrides the label folder.

List syntax: one id per line (official); lines with two paths (``/JPEGImages/x.jpg
/SegmentationClassAug/x.png``, the DeepLab style) are accepted too.

Default list (``list_file=None``):

* ``val``: ``ImageSets/Segmentation/val.txt``, else ``root/val.txt``; required (it ships with VOC2012).
* ``train``: ``ImageSets/Segmentation/train_aug.txt``, else ``root/train_aug.txt``, else ``root/list/train_aug.txt``;
  if none exists, train_aug is **derived** from the layout: the ids of all PNGs in ``SegmentationClassAug``
  minus the val ids (this is how train_aug is defined: SBD train+val plus VOC train, without VOC val; it
  gives the 10582 ids). Deriving needs ``val.txt`` so that val images never leak into training. So no list
  files are shipped.

Label mapping: 0..20 kept, 255 (object boundaries / difficult) → -1; any other value is an error.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional, Tuple

import numpy as np

from kdlib.data import transforms as T
from kdlib.data.base import DatasetNotFoundError, FilePair, SegmentationDataset
from kdlib.registry import DATASETS

VOC_CLASSES = [
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
]
VOC_PALETTE = T.bit_color_map(21)
LABEL_LUT = T.make_lut({255: -1})

VAL_LISTS = ("ImageSets/Segmentation/val.txt", "val.txt")
TRAIN_LISTS = ("ImageSets/Segmentation/train_aug.txt", "train_aug.txt", "list/train_aug.txt")


def _read_ids(path: Path) -> List[str]:
    with open(path, "r", encoding="utf-8") as fh:
        return [line.split()[0] for line in fh if line.strip() and not line.lstrip().startswith("#")]


@DATASETS.register("voc")
class VOC(SegmentationDataset):
    """Pascal VOC 2012 aug in the official layout (see the module docstring)."""

    name = "voc"
    display_name = "Pascal VOC 2012 aug"
    num_classes = 21
    class_names = list(VOC_CLASSES)
    palette = VOC_PALETTE
    default_crop_size = (512, 512)
    splits = ("train", "val")
    split_aliases = {"train_aug": "train"}
    layout_help = (
        "  <root>/JPEGImages/<id>.jpg, <root>/SegmentationClassAug/<id>.png (train labels),\n"
        "  <root>/SegmentationClass/<id>.png (val labels), <root>/ImageSets/Segmentation/val.txt\n"
        "  optional <root>/ImageSets/Segmentation/train_aug.txt (one id per line)\n"
        "Get VOCtrainval_11-May-2012.tar from http://host.robots.ox.ac.uk/pascal/VOC/voc2012/ and the SBD-derived\n"
        "SegmentationClassAug labels (e.g. from the DeepLab / SBD pages); root = VOCdevkit/VOC2012."
    )
    label_help = "an index PNG with classes 0..20 and 255 = boundary (ignored)."
    label_lut = LABEL_LUT

    def __init__(self, root: Any, split: str = "train", *, label_dir: Optional[str] = None, **options: Any) -> None:
        split_name = self.split_aliases.get(split, split)
        self.label_dir = label_dir or ("SegmentationClassAug" if split_name == "train" else "SegmentationClass")
        super().__init__(root, split, **options)

    def _entry_from_id(self, token: str, list_path: Path, lineno: int) -> FilePair:
        return (str(self.root / "JPEGImages" / f"{token}.jpg"), str(self.root / self.label_dir / f"{token}.png"))

    def _ids_to_files(self, ids: List[str]) -> List[FilePair]:
        return [self._entry_from_id(i, self.root, 0) for i in ids]

    def _default_files(self) -> Tuple[List[FilePair], str]:
        val_list = self._find_list(VAL_LISTS)
        if self.split == "val":
            if val_list is None:
                raise DatasetNotFoundError(
                    f"Pascal VOC val list not found (looked for {', '.join(VAL_LISTS)} under '{self.root}').\n"
                    f"Expected the official layout:\n{self.layout_help}\nFix: restore val.txt or pass list_file=."
                )
            return self.parse_list_file(val_list), f"list file {val_list}"
        train_list = self._find_list(TRAIN_LISTS)
        if train_list is not None:
            return self.parse_list_file(train_list), f"list file {train_list}"
        label_dir = self._require_dir(self.label_dir)
        if val_list is None:
            raise DatasetNotFoundError(
                f"Pascal VOC: no train_aug list ({', '.join(TRAIN_LISTS)}) and no val list to derive it from "
                f"under '{self.root}'. Deriving train_aug as '{self.label_dir} minus val' needs "
                "ImageSets/Segmentation/val.txt, otherwise val images would leak into training.\n"
                "Fix: add ImageSets/Segmentation/train_aug.txt (one id per line) or val.txt, or pass list_file=."
            )
        val_ids = set(_read_ids(val_list))
        ids = sorted(p.stem for p in label_dir.glob("*.png") if p.stem not in val_ids)
        source = f"derived train_aug: {label_dir}/*.png minus the ids of {val_list} (no train_aug.txt found)"
        return self._ids_to_files(ids), source
