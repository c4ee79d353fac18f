"""Shared base class of the real-dataset loaders, their errors, and ``verify``.

A dataset is a list of ``(image_path, label_path or None)`` pairs plus a label mapping. The subclass says
where the files are (official list file or official folder layout) and how raw label values map to the
training ids; this class does the rest:

* ``dataset[i]`` → ``(image, label)``: float32 ``(3, H, W)`` and int64 ``(H, W)`` with values in
  ``{0..K-1, -1}``. Train splits are augmented with the official pipeline (:mod:`kdlib.data.transforms`),
  other splits are returned at full resolution with normalisation only. A sample without a label (e.g.
  the Cityscapes test split) gets a label filled with -1.
* augmentation randomness comes from ``numpy.random.default_rng([seed, epoch, index])``, so a sample is a
  function of (seed, epoch, index) only — the same in any DataLoader worker. Call :meth:`set_epoch` before
  creating each epoch's iterator (with ``persistent_workers=False``, the default, workers get a fresh copy).
* bad input raises one :class:`DataError` naming the file and the fix; nothing is ever dropped silently.
"""
from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch.utils.data import Dataset

from kdlib.data import transforms as T

IGNORE_INDEX = -1
PathLike = Union[str, Path]
FilePair = Tuple[str, Optional[str]]


# ------------------------------------------------------------------------------------------ errors
#: How to name a dataset's folder, in each interface's own spelling.
ROOT_FIX = ("set data_root=<folder> (kdlib train, notebooks' extra) or --data-root <folder> (kdlib eval) to the "
            "folder that holds this layout (root= in build_dataset)")

class DataError(Exception):
    """Base class of every data-loading error raised by kdlib (catch this to catch them all)."""


class DatasetNotFoundError(DataError, FileNotFoundError):
    """The dataset root, a split folder or a default list file does not exist."""


class MissingFilesError(DataError, FileNotFoundError):
    """A list file (or the folder layout) names image / label files that do not exist."""


class ListFileError(DataError, ValueError):
    """A list file line cannot be parsed."""


class LabelValueError(DataError, ValueError):
    """A label holds values outside ``{0..K-1, ignore}`` after the dataset's label mapping."""


class SizeMismatchError(DataError, ValueError):
    """An image and its label have different sizes."""


def _first(items: Sequence[Any], n: int = 5) -> str:
    shown = ", ".join(str(x) for x in items[:n])
    return shown + (f", ... ({len(items) - n} more)" if len(items) > n else "")


# -------------------------------------------------------------------------------------- base class
class SegmentationDataset(Dataset):
    """Base class of the real-dataset loaders (see the module docstring for the contract).

    Subclasses set the class attributes and implement :meth:`_default_files` (and, where list lines may
    be ids rather than path pairs, :meth:`_entry_from_id`).

    Args:
        root: dataset folder in the official layout.
        split: one of ``cls.splits`` (aliases in ``cls.split_aliases`` are accepted).
        list_file: a list file overriding the default one (official syntax of the dataset).
        crop_size: ``(h, w)`` of training crops; default the paper's crop for this dataset.
        augment: apply the training augmentation; default True for train splits, False otherwise.
        scales: discrete scale factors to choose from (default the official {0.5, ..., 2.0});
            ``None`` or ``(1.0,)`` disables scaling.
        scale_range: ``(lo, hi)`` continuous uniform scale factor instead of ``scales``.
        flip: random horizontal flip (p = 0.5) when augmenting.
        seed: base seed of the per-sample augmentation RNG.
        normalize: ``'official'`` (BGR minus the official mean, no std) or ``'imagenet'`` (RGB, /255,
            ImageNet mean / std).
        max_samples: keep only the first N samples of the list (for tiny runs).
        class_names, palette: override the class names / colours (same K, or a new K for derived data).
        check_files: check at construction that every listed file exists.
        check_labels: check every loaded label's values after mapping.
    """

    name: ClassVar[str] = "segmentation"
    display_name: ClassVar[str] = "segmentation dataset"
    num_classes: int = 0
    class_names: List[str] = []
    palette: np.ndarray = np.zeros((0, 3), dtype=np.uint8)
    ignore_index: int = IGNORE_INDEX
    default_crop_size: ClassVar[Tuple[int, int]] = (512, 512)
    splits: ClassVar[Tuple[str, ...]] = ("train", "val")
    split_aliases: ClassVar[Dict[str, str]] = {}
    train_splits: ClassVar[Tuple[str, ...]] = ("train", "trainval")
    #: raw stored value -> training id (``ignore_index`` for ignored values); None: values are ids already
    label_lut: ClassVar[Optional[np.ndarray]] = None
    #: split -> folder name on disk, where the two differ (e.g. ADE20K's "training")
    split_dirs: ClassVar[Dict[str, str]] = {}
    #: Human-readable description of the expected layout and where to get the data.
    layout_help: ClassVar[str] = ""
    #: What a valid raw label file contains (used in LabelValueError messages).
    label_help: ClassVar[str] = ""

    def __init__(
        self,
        root: PathLike,
        split: str = "train",
        *,
        list_file: Optional[PathLike] = None,
        crop_size: Optional[Tuple[int, int]] = None,
        augment: Optional[bool] = None,
        scales: Optional[Sequence[float]] = T.OFFICIAL_SCALES,
        scale_range: Optional[Tuple[float, float]] = None,
        flip: bool = True,
        seed: int = 0,
        normalize: str = "official",
        max_samples: Optional[int] = None,
        class_names: Optional[Sequence[str]] = None,
        palette: Optional[Any] = None,
        check_files: bool = True,
        check_labels: bool = True,
    ) -> None:
        super().__init__()
        split = self.split_aliases.get(split, split)
        if split not in self.splits:
            raise ValueError(f"{self.display_name}: unknown split {split!r}; choose one of {list(self.splits)}")
        self.split = split
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise DatasetNotFoundError(
                f"{self.display_name} root '{self.root}' does not exist or is not a folder: {ROOT_FIX}.\n"
                f"Expected the official layout:\n{self.layout_help}"
            )
        self._set_classes(class_names, palette)
        self.channel_order, self.mean, self.std, _ = T.normalization_stats(normalize)
        self.normalize = normalize
        self.crop_size = tuple(int(v) for v in (crop_size or self.default_crop_size))
        if len(self.crop_size) != 2 or min(self.crop_size) < 1:
            raise ValueError(f"crop_size must be (h, w) with positive values, got {crop_size!r}")
        self.augment = (split in self.train_splits) if augment is None else bool(augment)
        self.scales = tuple(float(s) for s in scales) if scales else None
        self.scale_range = tuple(float(s) for s in scale_range) if scale_range is not None else None
        if self.scale_range is not None and not (0 < self.scale_range[0] <= self.scale_range[1]):
            raise ValueError(f"scale_range must be (lo, hi) with 0 < lo <= hi, got {scale_range!r}")
        self.flip = bool(flip)
        self.seed = int(seed)
        self.epoch = 0
        self.check_labels = bool(check_labels)

        if list_file is not None:
            self.list_file: Optional[Path] = Path(list_file).expanduser()
            if not self.list_file.is_file():
                raise DatasetNotFoundError(
                    f"list file '{self.list_file}' does not exist. Fix: pass an existing list_file= "
                    f"or leave list_file=None to use the default list of {self.display_name}."
                )
            files = self.parse_list_file(self.list_file)
            self.list_source = f"list file {self.list_file}"
        else:
            self.list_file = None
            files, self.list_source = self._default_files()
        if max_samples is not None:
            files = files[: int(max_samples)]
        if not files:
            raise DatasetNotFoundError(
                f"{self.display_name} split '{split}': {self.list_source} gives no samples.\n"
                f"Expected the official layout:\n{self.layout_help}"
            )
        self.files: List[FilePair] = files
        if check_files:
            self._check_files_exist()

    # ----------------------------------------------------------------------------- subclass hooks
    def _default_files(self) -> Tuple[List[FilePair], str]:
        """The split's files and a description of where they came from (list file or folder listing)."""
        raise NotImplementedError

    def _entry_from_id(self, token: str, list_path: Path, lineno: int) -> FilePair:
        """Turn a one-token list line (an id or an image path) into a file pair."""
        raise ListFileError(
            f"{list_path}:{lineno}: expected two whitespace-separated paths (image label), got {token!r}"
        )

    def map_label(self, raw: np.ndarray) -> np.ndarray:
        """Map raw stored label values to training ids (``ignore_index`` for ignored pixels)."""
        if self.label_lut is not None:
            return T.apply_lut(raw, self.label_lut)
        return np.asarray(raw, dtype=np.int64)

    @property
    def split_dir(self) -> str:
        """The folder name of this split on disk."""
        return self.split_dirs.get(self.split, self.split)

    # ---------------------------------------------------------------------------------- list files
    def resolve(self, path: str) -> str:
        """A list-file path: absolute paths that exist are kept, others are relative to ``root``."""
        p = Path(path)
        if p.is_absolute() and p.exists():
            return str(p)
        return str(self.root / path.lstrip("/"))

    def parse_list_file(self, list_path: PathLike) -> List[FilePair]:
        """Parse a list file: ``image label`` path pairs (tab / space separated) or one id per line."""
        list_path = Path(list_path)
        files: List[FilePair] = []
        with open(list_path, "r", encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, start=1):
                tokens = line.split()
                if not tokens or tokens[0].startswith("#"):
                    continue
                if len(tokens) == 1:
                    files.append(self._entry_from_id(tokens[0], list_path, lineno))
                elif len(tokens) == 2:
                    files.append((self.resolve(tokens[0]), self.resolve(tokens[1])))
                else:
                    raise ListFileError(
                        f"{list_path}:{lineno}: expected 'image_path label_path' or one id, got {line.strip()!r}"
                    )
        return files

    def _find_list(self, candidates: Sequence[str]) -> Optional[Path]:
        for rel in candidates:
            p = self.root / rel
            if p.is_file():
                return p
        return None

    def _require_dir(self, rel: str) -> Path:
        d = self.root / rel
        if not d.is_dir():
            raise DatasetNotFoundError(
                f"{self.display_name} split '{self.split}': folder '{d}' not found and no list file given.\n"
                f"Expected the official layout:\n{self.layout_help}\n"
                f"Fix: {ROOT_FIX}, or pass list_file=."
            )
        return d

    def _check_files_exist(self) -> None:
        missing = [p for pair in self.files for p in pair if p is not None and not os.path.isfile(p)]
        if missing:
            raise MissingFilesError(
                f"{self.display_name} split '{self.split}': {len(missing)} file(s) named by {self.list_source} "
                f"do not exist: {_first(missing)}.\n"
                f"Fix: check that the data root '{self.root}' is the folder the list paths are relative to, "
                f"that the download is complete, or pass a list_file= naming only files you have."
            )

    # ------------------------------------------------------------------------------------ classes
    def _set_classes(self, class_names: Optional[Sequence[str]], palette: Optional[Any]) -> None:
        names = list(class_names) if class_names is not None else list(type(self).class_names)
        k = len(names)
        if palette is None:
            pal = np.asarray(type(self).palette, dtype=np.uint8)
            if len(pal) != k:
                pal = T.bit_color_map(k + 1)[1:]
        else:
            pal = np.asarray(palette)
            if pal.shape != (k, 3) or pal.min() < 0 or pal.max() > 255:
                raise ValueError(f"palette must be {k}x3 values in 0..255 (one RGB row per class), got {pal.shape}")
            pal = pal.astype(np.uint8)
        self.class_names = names
        self.num_classes = k
        self.palette = pal

    # --------------------------------------------------------------------------------- loading
    def __len__(self) -> int:
        return len(self.files)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose augmentation ``dataset[i]`` returns (part of the per-sample seed)."""
        self.epoch = int(epoch)

    def sample_rng(self, index: int) -> np.random.Generator:
        """The augmentation RNG of sample ``index`` in the current epoch."""
        return np.random.default_rng([self.seed, self.epoch, int(index)])

    def sample_name(self, index: int) -> str:
        """The file stem of sample ``index`` (e.g. for saving predictions)."""
        return Path(self.files[index][0]).stem

    def read_raw(self, index: int) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        """Read sample ``index`` as stored: RGB uint8 image and raw label values (None if unlabelled)."""
        image_path, label_path = self.files[index]
        rgb = T.read_image(image_path)
        if label_path is None:
            return rgb, None
        try:
            raw = T.read_label(label_path)
        except ValueError as exc:
            raise LabelValueError(str(exc)) from None
        if raw.shape != rgb.shape[:2]:
            raise SizeMismatchError(
                f"image '{image_path}' is {rgb.shape[1]}x{rgb.shape[0]} (WxH) but its label '{label_path}' is "
                f"{raw.shape[1]}x{raw.shape[0]}. Fix: check that the list pairs each image with its own label "
                f"and that neither file was resized."
            )
        return rgb, raw

    def mapped_label(self, raw: np.ndarray, label_path: str) -> np.ndarray:
        """Apply :meth:`map_label` and (if ``check_labels``) reject values outside ``{0..K-1, ignore}``."""
        label = self.map_label(raw)
        if self.check_labels:
            bad = T.invalid_label_mask(label, self.num_classes, self.ignore_index)
            if bad.any():
                raw_bad = np.unique(raw[bad])
                raise LabelValueError(
                    f"label '{label_path}' has values {_first(raw_bad.tolist(), 10)} that are not classes of "
                    f"{self.display_name} (0..{self.num_classes - 1} after mapping, or ignored) — "
                    f"{int(bad.sum())} pixel(s). Expected: {self.label_help} "
                    f"Fix: use the official label files (or pass check_labels=False to pass them through)."
                )
        return label

    def load(self, index: int) -> Tuple[np.ndarray, np.ndarray]:
        """Sample ``index`` before augmentation: RGB uint8 ``(H, W, 3)`` and mapped int64 ``(H, W)`` label."""
        if index < 0:
            index += len(self)
        rgb, raw = self.read_raw(index)
        if raw is None:
            return rgb, np.full(rgb.shape[:2], self.ignore_index, dtype=np.int64)
        return rgb, self.mapped_label(raw, str(self.files[index][1]))

    def augmentation_params(self, index: int, height: int, width: int) -> T.AugmentParams:
        """The random decisions for sample ``index`` of size ``height`` × ``width`` in the current epoch."""
        return T.sample_augmentation(
            self.sample_rng(index), height, width, self.crop_size, self.scales, self.scale_range, self.flip
        )

    def __getitem__(self, index: int) -> Tuple[torch.Tensor, torch.Tensor]:
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        rgb, label = self.load(index)
        if not self.augment:
            return T.eval_transform(rgb, label, self.normalize)
        params = self.augmentation_params(index, *label.shape)
        return T.train_transform(rgb, label, params, self.crop_size, self.normalize, self.ignore_index)

    # ------------------------------------------------------------------------------- for figures
    def denormalize(self, image: torch.Tensor) -> np.ndarray:
        """``(3, H, W)`` normalised tensor → ``(H, W, 3)`` uint8 RGB array."""
        return T.denormalize(image, self.normalize)

    def colorize(self, label: Union[np.ndarray, torch.Tensor]) -> np.ndarray:
        """``(H, W)`` class indices → ``(H, W, 3)`` uint8 RGB with this dataset's palette (ignore black)."""
        return T.colorize(label, self.palette)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(root='{self.root}', split='{self.split}', samples={len(self)}, "
            f"K={self.num_classes}, augment={self.augment}, normalize='{self.normalize}')"
        )


# --------------------------------------------------------------------------------------- verify
def verify(dataset: SegmentationDataset, limit: Optional[int] = None, progress: bool = False) -> Dict[str, Any]:
    """Read every sample of ``dataset`` once and report counts, label statistics and problems.

    Unlike ``dataset[i]`` this never raises on a bad sample: each problem (unreadable file, size mismatch,
    label values outside ``{0..K-1, ignore}`` after mapping) is collected as a message naming the file.

    Returns a dict with ``dataset``, ``split``, ``root``, ``list_source``, ``num_samples``, ``num_checked``,
    ``num_labelled`` (labels read without problems), ``num_classes``, ``class_pixels`` (list of K pixel
    counts), ``ignore_pixels``, ``label_histogram`` (class name → pixel count) — these three over the labels
    without problems —, ``raw_value_histogram`` (stored value → pixel count, over every readable label, to
    diagnose bad files), ``image_sizes`` ("HxW" → count), ``problems`` (list of str) and ``ok``.
    """
    n = len(dataset) if limit is None else min(int(limit), len(dataset))
    k = dataset.num_classes
    class_pixels = np.zeros(k, dtype=np.int64)
    raw_hist: Counter = Counter()
    sizes: Counter = Counter()
    ignore_pixels = 0
    labelled = 0
    problems: List[str] = []
    indices: Any = range(n)
    if progress:
        from kdlib.progress import progress_bar

        indices = progress_bar(indices, desc=f"verify {dataset.name}/{dataset.split}")
    for i in indices:
        image_path, label_path = dataset.files[i]
        try:
            rgb, raw = dataset.read_raw(i)
        except DataError as exc:
            problems.append(str(exc))
            continue
        except (OSError, ValueError) as exc:
            problems.append(f"cannot read sample {i} ('{image_path}', '{label_path}'): {exc}")
            continue
        sizes[f"{rgb.shape[0]}x{rgb.shape[1]}"] += 1
        if raw is None:
            continue
        values, counts = np.unique(raw, return_counts=True)
        raw_hist.update(dict(zip(values.tolist(), counts.tolist())))
        label = dataset.map_label(raw)
        bad = T.invalid_label_mask(label, k, dataset.ignore_index)
        if bad.any():
            problems.append(
                f"label '{label_path}': values {_first(np.unique(raw[bad]).tolist(), 10)} are outside "
                f"0..{k - 1} / ignore after mapping ({int(bad.sum())} pixels). Expected: {dataset.label_help}"
            )
            continue
        labelled += 1
        ignore_pixels += int((label == dataset.ignore_index).sum())
        class_pixels += np.bincount(label[label >= 0], minlength=k)[:k]
    return {
        "dataset": dataset.name,
        "split": dataset.split,
        "root": str(dataset.root),
        "list_source": dataset.list_source,
        "num_samples": len(dataset),
        "num_checked": n,
        "num_labelled": labelled,
        "num_classes": k,
        "class_pixels": class_pixels.tolist(),
        "ignore_pixels": ignore_pixels,
        "label_histogram": {name: int(c) for name, c in zip(dataset.class_names, class_pixels)},
        "raw_value_histogram": {int(v): int(c) for v, c in sorted(raw_hist.items())},
        "image_sizes": dict(sizes),
        "problems": problems,
        "ok": not problems,
    }
