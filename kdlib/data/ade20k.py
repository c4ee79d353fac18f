"""ADE20K (ADEChallengeData2016, SceneParsing 150), registered as ``ade20k``: 150 classes, labels shifted by -1.

Layout (relative to ``root`` = ``ADEChallengeData2016``)::

    images/{training,validation}/ADE_{train,val}_<n>.jpg
    annotations/{training,validation}/ADE_{train,val}_<n>.png    0 = "other" (ignored), 1..150 = classes

Splits: ``train`` (alias ``training``) and ``val`` (alias ``validation``).

Default list (``list_file=None``): there is no official list; the official loader takes the (unsorted)
directory listing of ``images/<dir>/*.jpg``. kdlib takes the **sorted** listing (same 20210 / 2000 samples,
reproducible order) and — unlike the official loader, which prints and skips — raises if an image has no
annotation. A ``list_file=`` may hold ``image label`` path pairs relative to ``root``, image paths, or ids
(file stems). No list files are shipped.

Label mapping (docs/reference.md §4 / §6 pitfall 8): ``label - 1`` with signed labels, so 0 ("other") → -1 and
1..150 → 0..149, applied *before* scaling; the padding added afterwards is -1 directly. (The official code
pads a uint8 label with -1, which saturates to 0, and shifts after padding — same result.) Raw values
above 150 are an error.

Class names: the 150 SceneParsing names (first name of each objectInfo150 entry). Palette: kdlib's own
(the VOC bit colour map shifted by one, so no class is black); it is for figures only.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Tuple

import numpy as np

from kdlib.data import transforms as T
from kdlib.data.base import FilePair, MissingFilesError, SegmentationDataset
from kdlib.registry import DATASETS

ADE20K_CLASSES = [
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass", "cabinet",
    "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair", "car", "water",
    "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field", "armchair", "seat", "fence", "desk",
    "rock", "wardrobe", "lamp", "bathtub", "railing", "cushion", "base", "box", "column", "signboard",
    "chest of drawers", "counter", "sand", "sink", "skyscraper", "fireplace", "refrigerator", "grandstand",
    "path", "stairs", "runway", "case", "pool table", "pillow", "screen door", "stairway", "river", "bridge",
    "bookcase", "blind", "coffee table", "toilet", "flower", "book", "hill", "bench", "countertop", "stove",
    "palm", "kitchen island", "computer", "swivel chair", "boat", "bar", "arcade machine", "hovel", "bus",
    "towel", "light", "truck", "tower", "chandelier", "awning", "streetlight", "booth", "television receiver",
    "airplane", "dirt track", "apparel", "pole", "land", "bannister", "escalator", "ottoman", "bottle",
    "buffet", "poster", "stage", "van", "ship", "fountain", "conveyer belt", "canopy", "washer", "plaything",
    "swimming pool", "stool", "barrel", "basket", "waterfall", "tent", "bag", "minibike", "cradle", "oven",
    "ball", "food", "step", "tank", "trade name", "microwave", "pot", "animal", "bicycle", "lake",
    "dishwasher", "screen", "blanket", "sculpture", "hood", "sconce", "vase", "traffic light", "tray",
    "ashcan", "fan", "pier", "crt screen", "plate", "monitor", "bulletin board", "shower", "radiator", "glass",
    "clock", "flag",
]
LABEL_LUT = np.arange(256, dtype=np.int64) - 1  # 0 → -1, v → v - 1
SPLIT_DIRS = {"train": "training", "val": "validation"}


@DATASETS.register("ade20k")
class ADE20K(SegmentationDataset):
    """ADE20K SceneParsing in the ADEChallengeData2016 layout (see the module docstring)."""

    name = "ade20k"
    display_name = "ADE20K"
    num_classes = 150
    class_names = list(ADE20K_CLASSES)
    palette = T.bit_color_map(151)[1:]
    default_crop_size = (512, 512)
    splits = ("train", "val")
    split_aliases = {"training": "train", "validation": "val"}
    train_splits = ("train",)
    layout_help = (
        "  <root>/images/{training,validation}/*.jpg\n"
        "  <root>/annotations/{training,validation}/*.png (0 = other, 1..150 = classes)\n"
        "Get ADEChallengeData2016.zip from http://sceneparsing.csail.mit.edu/ ; root = ADEChallengeData2016."
    )
    label_help = "an ADEChallengeData2016 annotation PNG with 0 = other and classes 1..150."
    label_lut = LABEL_LUT
    split_dirs = SPLIT_DIRS

    def _entry_from_id(self, token: str, list_path: Path, lineno: int) -> FilePair:
        rel = token.lstrip("/")
        if "/" in rel or rel.endswith(".jpg"):
            image_rel = rel
        else:
            image_rel = f"images/{self.split_dir}/{rel}.jpg"
        label_rel = image_rel.replace("images/", "annotations/", 1)
        label_rel = label_rel[: -len(Path(label_rel).suffix)] + ".png" if Path(label_rel).suffix else label_rel
        return self.resolve(image_rel), self.resolve(label_rel)

    def _default_files(self) -> Tuple[List[FilePair], str]:
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
                f"ADE20K split '{self.split}': {len(missing)} image(s) have no annotation, e.g. "
                f"{', '.join(missing[:5])}.\nFix: restore the annotation files (the official loader would "
                "silently skip these images) or pass a list_file= without them."
            )
        return files, f"sorted listing of {image_dir}"
