"""Cityscapes (fine annotations), registered as ``cityscapes``: 19 classes, 34 label ids → 19 train ids.

Layout (relative to ``root``)::

    leftImg8bit/{train,val,test}/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    gtFine/{train,val}/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png

Default list (``list_file=None``): the official list ``root/<split>.lst`` (tab- or space-separated
``image_path label_path`` per line, relative to ``root``; ``test.lst`` holds image paths only) if present,
else ``root/list/cityscapes/<split>.lst``, else a **sorted** listing of ``leftImg8bit/<split>/*/*.png``
paired with ``gtFine/<split>/<city>/<stem>_gtFine_labelIds.png``. The official ``train.lst`` (2975) and
``val.lst`` (500) are exactly the gtFine train / val folders, so the listing gives the same samples (in
sorted rather than list order); no list files are shipped. ``trainval`` = train + val. The test split has
no labels: its samples carry ``label_path=None`` and a label of all -1.

Label mapping: the official ``labelIds → trainIds`` table (identical to ``cityscapesscripts``' label table;
tested against it). Ids -1, 0–6, 9, 10, 14–16, 18, 29, 30 → -1. Raw values above 33 are not label ids and
raise :class:`~kdlib.data.base.LabelValueError` (e.g. a ``*_labelTrainIds.png`` or colour file by mistake).
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Tuple

import numpy as np

from kdlib.data import transforms as T
from kdlib.data.base import FilePair, MissingFilesError, SegmentationDataset
from kdlib.registry import DATASETS

#: (name, train id colour RGB) in train-id order 0..18.
CITYSCAPES_CLASSES: Tuple[Tuple[str, Tuple[int, int, int]], ...] = (
    ("road", (128, 64, 128)),
    ("sidewalk", (244, 35, 232)),
    ("building", (70, 70, 70)),
    ("wall", (102, 102, 156)),
    ("fence", (190, 153, 153)),
    ("pole", (153, 153, 153)),
    ("traffic light", (250, 170, 30)),
    ("traffic sign", (220, 220, 0)),
    ("vegetation", (107, 142, 35)),
    ("terrain", (152, 251, 152)),
    ("sky", (70, 130, 180)),
    ("person", (220, 20, 60)),
    ("rider", (255, 0, 0)),
    ("car", (0, 0, 142)),
    ("truck", (0, 0, 70)),
    ("bus", (0, 60, 100)),
    ("train", (0, 80, 100)),
    ("motorcycle", (0, 0, 230)),
    ("bicycle", (119, 11, 32)),
)

#: labelId → trainId for the 19 evaluated classes; every other id 0..33 is ignored.
LABEL_ID_TO_TRAIN_ID = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9,
    23: 10, 24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
}


def _build_lut() -> np.ndarray:
    lut = T.make_lut({}, size=256, identity=True)
    lut[:34] = -1  # every label id is ignored unless it is in the table
    for label_id, train_id in LABEL_ID_TO_TRAIN_ID.items():
        lut[label_id] = train_id
    return lut


LABEL_LUT = _build_lut()


@DATASETS.register("cityscapes")
class Cityscapes(SegmentationDataset):
    """Cityscapes fine annotations in the official layout (see the module docstring)."""

    name = "cityscapes"
    display_name = "Cityscapes"
    num_classes = 19
    class_names = [n for n, _ in CITYSCAPES_CLASSES]
    palette = np.array([c for _, c in CITYSCAPES_CLASSES], dtype=np.uint8)
    default_crop_size = (512, 1024)
    splits = ("train", "val", "test", "trainval")
    layout_help = (
        "  <root>/leftImg8bit/{train,val,test}/<city>/<id>_leftImg8bit.png\n"
        "  <root>/gtFine/{train,val}/<city>/<id>_gtFine_labelIds.png\n"
        "  optional lists <root>/{train,val,test}.lst (tab-separated image/label paths)\n"
        "Get leftImg8bit_trainvaltest.zip and gtFine_trainvaltest.zip from https://www.cityscapes-dataset.com/"
    )
    label_help = "a *_gtFine_labelIds.png with label ids 0..33 (not trainIds or colour images)."
    label_lut = LABEL_LUT

    @staticmethod
    def label_path_for(image_rel: str) -> str:
        """``leftImg8bit/<split>/<city>/<id>_leftImg8bit.png`` → the matching gtFine labelIds path."""
        p = image_rel.replace("leftImg8bit/", "gtFine/", 1)
        return p.replace("_leftImg8bit.png", "_gtFine_labelIds.png")

    def _entry_from_id(self, token: str, list_path: Path, lineno: int) -> FilePair:
        # test.lst holds image paths only; other one-path lines get the matching gtFine label.
        if self.split == "test":
            return self.resolve(token), None
        return self.resolve(token), self.resolve(self.label_path_for(token.lstrip("/")))

    def _default_files(self) -> Tuple[List[FilePair], str]:
        parts = ("train", "val") if self.split == "trainval" else (self.split,)
        lst = self._find_list([f"{self.split}.lst", f"list/cityscapes/{self.split}.lst"])
        if lst is not None:
            return self.parse_list_file(lst), f"list file {lst}"
        files: List[FilePair] = []
        missing: List[str] = []
        for part in parts:
            image_dir = self._require_dir(f"leftImg8bit/{part}")
            for img in sorted(image_dir.glob("*/*_leftImg8bit.png")):
                rel = img.relative_to(self.root).as_posix()
                if part == "test":
                    files.append((str(img), None))
                    continue
                label = self.root / self.label_path_for(rel)
                if not label.is_file():
                    missing.append(str(label))
                files.append((str(img), str(label)))
        if missing:
            raise MissingFilesError(
                f"Cityscapes split '{self.split}': {len(missing)} image(s) under leftImg8bit/ have no gtFine "
                f"labelIds file, e.g. {', '.join(missing[:5])}.\n"
                "Fix: unpack gtFine_trainvaltest.zip into the same root, or pass a list_file= without them."
            )
        return files, f"sorted listing of {self.root}/leftImg8bit/{'+'.join(parts)}"
