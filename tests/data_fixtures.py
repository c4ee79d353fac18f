"""Tiny on-disk fixtures of the five datasets, each in its exact official layout (used by tests/test_data_*).

Images are 24×32 (H×W) and *position-encoded*: R = 8·row, G = 7·col, B = 10 + 40·sample, so a test can
decode where every output pixel came from after scaling / cropping / flipping. Labels hold every raw value
of interest (all classes plus the dataset's ignore values) scattered by a fixed RNG, so a mapping is checked
on every value pixel by pixel. Each writer returns ``{split: [(sample_id, rgb, raw_label_or_None), ...]}``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

H, W = 24, 32
Sample = Tuple[str, np.ndarray, Optional[np.ndarray]]


def position_image(index: int, h: int = H, w: int = W) -> np.ndarray:
    """RGB uint8 image whose R encodes the row (8·r), G the column (7·c), B the sample (10 + 40·index)."""
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    return np.stack([8 * rows, 7 * cols, np.full_like(rows, 10 + 40 * index)], axis=-1).astype(np.uint8)


def decode_position(rgb: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`position_image`: (row, col) float arrays."""
    return rgb[..., 0].astype(np.float64) / 8.0, rgb[..., 1].astype(np.float64) / 7.0


def scattered_label(values: Sequence[int], seed: int, h: int = H, w: int = W) -> np.ndarray:
    """An ``h``×``w`` uint8 label that contains every value of ``values`` at least once, shuffled."""
    vals = np.asarray(values, dtype=np.uint8)
    flat = vals[np.arange(h * w) % len(vals)]
    return np.random.default_rng(seed).permutation(flat).reshape(h, w)


def save_png(path: Path, array: np.ndarray, palette: Optional[np.ndarray] = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if array.ndim == 3:
        Image.fromarray(array, mode="RGB").save(path)
    elif palette is not None:
        im = Image.fromarray(array, mode="P")
        im.putpalette(np.asarray(palette, dtype=np.uint8).reshape(-1).tolist())
        im.save(path)
    else:
        Image.fromarray(array, mode="L").save(path)


def save_jpg(path: Path, rgb: np.ndarray) -> np.ndarray:
    """Write a JPEG and return what PIL decodes from it (JPEG is lossy)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb, mode="RGB").save(path, quality=95)
    return np.asarray(Image.open(path).convert("RGB"))


# ------------------------------------------------------------------------------------- Cityscapes
CITYSCAPES_RAW_VALUES = list(range(34))


def write_cityscapes(root: Path, counts: Dict[str, int] = None, lists: bool = False) -> Dict[str, List[Sample]]:
    counts = counts or {"train": 3, "val": 2, "test": 1}
    out: Dict[str, List[Sample]] = {}
    k = 0
    for split, n in counts.items():
        out[split] = []
        lines = []
        for i in range(n):
            city = ("bochum", "aachen")[i % 2]  # two cities; sorted order != write order
            sid = f"{city}_{i:06d}_000019"
            rgb = position_image(k)
            img_rel = f"leftImg8bit/{split}/{city}/{sid}_leftImg8bit.png"
            save_png(root / img_rel, rgb)
            raw = None
            lab_rel = f"gtFine/{split}/{city}/{sid}_gtFine_labelIds.png"
            if split != "test":
                raw = scattered_label(CITYSCAPES_RAW_VALUES, seed=100 + k)
                save_png(root / lab_rel, raw)
                lines.append(f"{img_rel}\t{lab_rel}")
            else:
                lines.append(img_rel)
            out[split].append((sid, rgb, raw))
            k += 1
        if lists:
            (root / f"{split}.lst").write_text("\n".join(lines) + "\n")
    return out


# ----------------------------------------------------------------------------------------- CamVid
CAMVID_RAW_VALUES = list(range(12))


def write_camvid(root: Path, counts: Dict[str, int] = None, lists: bool = True) -> Dict[str, List[Sample]]:
    counts = counts or {"train": 3, "val": 1, "test": 1}
    out: Dict[str, List[Sample]] = {}
    k = 0
    for split, n in counts.items():
        out[split] = []
        lines = []
        for i in range(n):
            sid = f"0001TP_{(n - i) * 30:06d}"  # written in reverse-sorted order
            rgb = position_image(k)
            raw = scattered_label(CAMVID_RAW_VALUES, seed=200 + k)
            save_png(root / split / f"{sid}.png", rgb)
            save_png(root / f"{split}annot" / f"{sid}.png", raw)
            lines.append(f"{split}/{sid}.png {split}annot/{sid}.png")
            out[split].append((sid, rgb, raw))
            k += 1
        if lists:
            (root / f"camvid_{split}_list.txt").write_text("\n".join(lines) + "\n")
    return out


# ------------------------------------------------------------------------------------------- VOC
VOC_RAW_VALUES = list(range(21)) + [255]


def voc_like_palette() -> np.ndarray:
    """A 256-entry palette (VOC colours first, then random) so that palette indices differ from luminance."""
    pal = np.zeros((256, 3), dtype=np.uint8)
    pal[:6] = [(0, 0, 0), (128, 0, 0), (0, 128, 0), (128, 128, 0), (0, 0, 128), (128, 0, 128)]
    rng = np.random.default_rng(7)
    pal[6:255] = rng.integers(0, 256, size=(249, 3))
    pal[255] = (224, 224, 192)
    return pal


def write_voc(
    root: Path, train_ids: Sequence[str] = ("2007_000032", "2008_000002", "2011_003276"),
    val_ids: Sequence[str] = ("2007_000033", "2010_000002"), extra_ids: Sequence[str] = (),
    train_aug_list: bool = False, val_list: bool = True,
) -> Dict[str, List[Sample]]:
    """JPEGImages + SegmentationClassAug (greyscale, train and val ids) + SegmentationClass (palette, val)."""
    out: Dict[str, List[Sample]] = {"train": [], "val": []}
    for k, sid in enumerate(list(train_ids) + list(val_ids) + list(extra_ids)):
        rgb = save_jpg(root / "JPEGImages" / f"{sid}.jpg", position_image(k))
        raw = scattered_label(VOC_RAW_VALUES, seed=300 + k)
        save_png(root / "SegmentationClassAug" / f"{sid}.png", raw)
        if sid in val_ids:
            save_png(root / "SegmentationClass" / f"{sid}.png", raw, palette=voc_like_palette())
            out["val"].append((sid, rgb, raw))
        elif sid in train_ids:
            out["train"].append((sid, rgb, raw))
    seg = root / "ImageSets" / "Segmentation"
    seg.mkdir(parents=True, exist_ok=True)
    if val_list:
        (seg / "val.txt").write_text("\n".join(val_ids) + "\n")
    if train_aug_list:
        (seg / "train_aug.txt").write_text("\n".join(train_ids) + "\n")
    return out


# ---------------------------------------------------------------------------------------- ADE20K
ADE_RAW_VALUES = list(range(151))


def write_ade20k(root: Path, counts: Dict[str, int] = None) -> Dict[str, List[Sample]]:
    counts = counts or {"training": 2, "validation": 1}
    out: Dict[str, List[Sample]] = {}
    k = 0
    for folder, n in counts.items():
        out[folder] = []
        tag = "train" if folder == "training" else "val"
        for i in range(n):
            sid = f"ADE_{tag}_{n - i:08d}"
            rgb = save_jpg(root / "images" / folder / f"{sid}.jpg", position_image(k))
            raw = scattered_label(ADE_RAW_VALUES, seed=400 + k)
            save_png(root / "annotations" / folder / f"{sid}.png", raw)
            out[folder].append((sid, rgb, raw))
            k += 1
    return out


# ------------------------------------------------------------------------------------ COCO-Stuff
COCO_RAW_VALUES = list(range(182)) + [255]


def write_coco_stuff(root: Path, counts: Dict[str, int] = None, lists: bool = False) -> Dict[str, List[Sample]]:
    counts = counts or {"train2017": 2, "val2017": 1}
    out: Dict[str, List[Sample]] = {}
    k = 0
    for folder, n in counts.items():
        out[folder] = []
        ids = []
        for i in range(n):
            sid = f"{(n - i) * 139 + k:012d}"
            rgb = save_jpg(root / "images" / folder / f"{sid}.jpg", position_image(k))
            raw = scattered_label(COCO_RAW_VALUES, seed=500 + k)
            save_png(root / "annotations" / folder / f"{sid}.png", raw)
            out[folder].append((sid, rgb, raw))
            ids.append(sid)
            k += 1
        if lists:
            split = folder.replace("2017", "")
            (root / f"coco_stuff_164k_{split}.txt").write_text("\n".join(ids) + "\n")
    return out


# ------------------------------------------------------------------------------------ shared check
def check_contract(ds, expected_k: int) -> None:
    """Assert the attribute / item contract every dataset promises."""
    assert ds.num_classes == expected_k == len(ds.class_names)
    assert all(isinstance(n, str) and n for n in ds.class_names)
    assert ds.palette.shape == (expected_k, 3) and ds.palette.dtype == np.uint8
    assert ds.ignore_index == -1
    assert len(ds.files) == len(ds) and all(len(p) == 2 for p in ds.files)
    assert len(ds.mean) == 3 and len(ds.std) == 3
    image, label = ds[0]
    assert image.dtype.is_floating_point and str(image.dtype) == "torch.float32"
    assert str(label.dtype) == "torch.int64"
    assert image.ndim == 3 and image.shape[0] == 3 and label.shape == image.shape[1:]
    values = set(label.unique().tolist())
    assert values <= set(range(expected_k)) | {-1}
    assert ds.denormalize(image).shape == (*label.shape, 3)
    assert ds.colorize(label).shape == (*label.shape, 3)
