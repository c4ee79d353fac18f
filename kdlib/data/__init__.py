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
from typing import Any, Dict, List, Optional, Union

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


def dataset_option_names(name: str) -> Optional[List[str]]:
    """The keyword options ``build_dataset(name, root, split, **options)`` accepts, read from the builder's
    signature (a class: its ``__init__`` and, where that passes ``**options`` on, its base classes'; a function:
    its own and those of the class named by its ``passes_options_to`` attribute). None when unknown."""
    import inspect

    names: List[str] = []
    todo: List[Any] = [DATASETS.get(name)]
    while todo:
        target = todo.pop(0)
        init = target.__init__ if isinstance(target, type) else target
        params = inspect.signature(init).parameters.values()
        names += [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                  and p.name not in ("self", "root", "split") and p.name not in names]
        if any(p.kind is p.VAR_KEYWORD for p in params):
            onward = getattr(target, "passes_options_to", None)
            if onward is not None:
                todo.append(onward)
            elif isinstance(target, type) and target.__mro__[1] is not object:
                todo.append(target.__mro__[1])
            else:
                return None
    return names


def check_dataset_options(name: str, options: Dict[str, Any]) -> None:
    """Every key of a config's ``dataset_options`` is an option of dataset ``name``; else one ``ValueError`` line."""
    from kdlib.registry import did_you_mean

    known = dataset_option_names(name)
    if known is None:
        return
    # the trainer sets these itself from the config (crop_size, seed) or per split (augment)
    known = [k for k in known if k not in ("crop_size", "augment", "seed")]
    for key in options:
        if key not in known:
            raise ValueError(f"dataset_options.{key} is not an option of dataset {name}{did_you_mean(key, known)} "
                             f"(its options: {', '.join(known)})")


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
    "check_dataset_options",
    "dataset_option_names",
    "dataset_num_classes",
    "generates_on_first_use",
    "transforms",
    "verify",
]

# The built-in dataset registers itself ("synthetic_streets") on import; keep this import last.
from kdlib.data import synthetic  # noqa: E402,F401
