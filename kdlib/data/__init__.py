"""Datasets: the five paper datasets in their official on-disk layouts, plus the built-in synthetic one.

``build_dataset(name, root, split, **options)`` looks ``name`` up in :data:`kdlib.registry.DATASETS`:

=================== ============================== ==== ===================== =============
name                class                          K    label mapping          train crop
=================== ============================== ==== ===================== =============
``cityscapes``      :class:`Cityscapes`            19   34 labelIds → trainIds 512×1024
``voc``             :class:`VOC`                   21   255 → -1               512×512
``camvid``          :class:`CamVid`                11   11 (void) → -1         360×360
``ade20k``          :class:`ADE20K`                150  label - 1 (0 → -1)     512×512
``coco_stuff_164k`` :class:`COCOStuff164k`         182  255 → -1               512×512
=================== ============================== ==== ===================== =============

Every dataset returns ``(image, label)``: float32 ``(3, H, W)`` and int64 ``(H, W)`` with values in
``{0..K-1, IGNORE_INDEX}``; see :mod:`kdlib.data.base` for the options and :mod:`kdlib.data.transforms` for the
official preprocessing. ``verify(dataset)`` reports counts, label statistics and problems.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Union

from kdlib.registry import DATASETS
from kdlib.data import transforms
from kdlib.data.base import (
    IGNORE_INDEX,
    DataError,
    DatasetNotFoundError,
    LabelValueError,
    ListFileError,
    MissingFilesError,
    SegmentationDataset,
    SizeMismatchError,
    verify,
)
from kdlib.data.ade20k import ADE20K
from kdlib.data.camvid import CamVid
from kdlib.data.cityscapes import Cityscapes
from kdlib.data.coco_stuff import COCOStuff164k
from kdlib.data.voc import VOC


def build_dataset(name: str, root: Union[str, Path], split: str = "train", **options: Any) -> Any:
    """Build the dataset registered as ``name`` from ``root`` (official layout) for ``split``."""
    return DATASETS.get(name)(root, split, **options)


def dataset_num_classes(name: str) -> int:
    """K of the dataset registered as ``name``, as it declares it (``num_classes``), without building it."""
    k = getattr(DATASETS.get(name), "num_classes", None)
    if not k:
        raise ValueError(f"dataset {name!r} does not declare its number of classes (a num_classes attribute)")
    return int(k)


def generates_on_first_use(name: str) -> bool:
    """Whether the dataset ``name`` writes itself on first use (and so takes a ``progress`` option)."""
    return bool(getattr(DATASETS.get(name), "generated_on_first_use", False))


__all__ = [
    "ADE20K",
    "COCOStuff164k",
    "CamVid",
    "Cityscapes",
    "DATASETS",
    "DataError",
    "DatasetNotFoundError",
    "IGNORE_INDEX",
    "LabelValueError",
    "ListFileError",
    "MissingFilesError",
    "SegmentationDataset",
    "SizeMismatchError",
    "VOC",
    "build_dataset",
    "dataset_num_classes",
    "generates_on_first_use",
    "transforms",
    "verify",
]

# The built-in dataset registers itself ("synthetic_streets") on import; keep this import last.
from kdlib.data import synthetic  # noqa: E402,F401
