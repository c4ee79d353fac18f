"""COCO-Stuff-164K, registered as ``coco_stuff_164k``: **182** ids (0..181), 255 → -1.

Layout (relative to ``root``)::

    images/{train2017,val2017}/<12-digit id>.jpg
    annotations/{train2017,val2017}/<12-digit id>.png   stuffthingmaps: 0..181 = COCO category id - 1,
                                                        255 = unlabeled

Splits: ``train`` (alias ``train2017``) and ``val`` (alias ``val2017``).

List syntax (official): one image id per line (``coco_stuff_164k_{train,val}.txt``); ``image label``
path pairs are accepted too.

Default list (``list_file=None``): ``root/coco_stuff_164k_<split>.txt``, else
``root/list/coco_stuff_164k_<split>.txt``, else a **sorted** listing of ``images/<split>2017/*.jpg`` paired
with ``annotations/<split>2017/<id>.png``. The official lists hold every image of train2017 (118287) and
val2017 (5000), so the listing gives the same samples in sorted order; no list files are shipped (the
train list would be 1.5 MB).

Label mapping (docs/reference.md §4, pitfall 9): raw ids are kept as classes 0..181, 255 → -1, no 182 → 171 remap. The
11 COCO thing ids without annotations (street sign, hat, shoe, eye glasses, plate, mirror, window, desk,
door, blender, hair brush) stay as (never occurring) classes, so mIoU is over 182 classes as officially.
Other values (182..254) are an error — e.g. a ``*_labelTrainIds.png`` (171-class remap) is *not* this format.

Class names: COCO category names by id - 1 (things 0..90, stuff 91..181). Palette: kdlib's own (the VOC bit
colour map shifted by one), for figures only.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Tuple

import numpy as np

from kdlib.data import transforms as T
from kdlib.data.base import FilePair, MissingFilesError, SegmentationDataset
from kdlib.registry import DATASETS

COCO_THING_NAMES = [
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "street sign", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse",
    "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "hat", "backpack", "umbrella", "shoe",
    "eye glasses", "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle", "plate",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange", "broccoli",
    "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant", "bed", "mirror",
    "dining table", "window", "desk", "toilet", "door", "tv", "laptop", "mouse", "remote", "keyboard",
    "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "blender", "book", "clock", "vase",
    "scissors", "teddy bear", "hair drier", "toothbrush", "hair brush",
]
COCO_STUFF_NAMES = [
    "banner", "blanket", "branch", "bridge", "building-other", "bush", "cabinet", "cage", "cardboard",
    "carpet", "ceiling-other", "ceiling-tile", "cloth", "clothes", "clouds", "counter", "cupboard", "curtain",
    "desk-stuff", "dirt", "door-stuff", "fence", "floor-marble", "floor-other", "floor-stone", "floor-tile",
    "floor-wood", "flower", "fog", "food-other", "fruit", "furniture-other", "grass", "gravel",
    "ground-other", "hill", "house", "leaves", "light", "mat", "metal", "mirror-stuff", "moss", "mountain",
    "mud", "napkin", "net", "paper", "pavement", "pillow", "plant-other", "plastic", "platform",
    "playingfield", "railing", "railroad", "river", "road", "rock", "roof", "rug", "salad", "sand", "sea",
    "shelf", "sky-other", "skyscraper", "snow", "solid-other", "stairs", "stone", "straw", "structural-other",
    "table", "tent", "textile-other", "towel", "tree", "vegetable", "wall-brick", "wall-concrete",
    "wall-other", "wall-panel", "wall-stone", "wall-tile", "wall-wood", "water-other", "waterdrops",
    "window-blind", "window-other", "wood",
]
COCO_STUFF_CLASSES = COCO_THING_NAMES + COCO_STUFF_NAMES
#: Raw ids (0-based) of the 11 COCO thing categories that have no annotations in COCO-Stuff.
UNUSED_IDS = (11, 25, 28, 29, 44, 65, 67, 68, 70, 82, 90)
LABEL_LUT = T.make_lut({255: -1})
SPLIT_DIRS = {"train": "train2017", "val": "val2017"}


@DATASETS.register("coco_stuff_164k")
class COCOStuff164k(SegmentationDataset):
    """COCO-Stuff-164K with the official 182-id convention (see the module docstring)."""

    name = "coco_stuff_164k"
    display_name = "COCO-Stuff-164K"
    num_classes = 182
    class_names = list(COCO_STUFF_CLASSES)
    palette = T.bit_color_map(183)[1:]
    default_crop_size = (512, 512)
    splits = ("train", "val")
    split_aliases = {"train2017": "train", "val2017": "val"}
    train_splits = ("train",)
    layout_help = (
        "  <root>/images/{train2017,val2017}/<id>.jpg\n"
        "  <root>/annotations/{train2017,val2017}/<id>.png (stuffthingmaps: ids 0..181, 255 = unlabeled)\n"
        "  optional lists <root>/coco_stuff_164k_{train,val}.txt (one id per line)\n"
        "Get train2017.zip / val2017.zip from https://cocodataset.org and stuffthingmaps_trainval2017.zip from\n"
        "https://github.com/nightrome/cocostuff"
    )
    label_help = "a stuffthingmaps PNG with ids 0..181 and 255 = unlabeled (not the 171-class labelTrainIds)."
    label_lut = LABEL_LUT
    split_dirs = SPLIT_DIRS

    def _entry_from_id(self, token: str, list_path: Path, lineno: int) -> FilePair:
        return (
            str(self.root / "images" / self.split_dir / f"{token}.jpg"),
            str(self.root / "annotations" / self.split_dir / f"{token}.png"),
        )

    def _default_files(self) -> Tuple[List[FilePair], str]:
        lst = self._find_list([f"coco_stuff_164k_{self.split}.txt", f"list/coco_stuff_164k_{self.split}.txt"])
        if lst is not None:
            return self.parse_list_file(lst), f"list file {lst}"
        image_dir = self._require_dir(f"images/{self.split_dir}")
        label_dir = self._require_dir(f"annotations/{self.split_dir}")
        files: List[FilePair] = []
        missing: List[str] = []
        for img in sorted(image_dir.glob("*.jpg")):
            label = label_dir / f"{img.stem}.png"
            if not label.is_file():
                missing.append(str(label))
            files.append((str(img), str(label)))
        if missing:
            raise MissingFilesError(
                f"COCO-Stuff-164K split '{self.split}': {len(missing)} image(s) have no stuffthingmaps label, "
                f"e.g. {', '.join(missing[:5])}.\nFix: unpack stuffthingmaps_trainval2017.zip into "
                f"{self.root}/annotations, or pass a list_file= without them."
            )
        return files, f"sorted listing of {image_dir}"
