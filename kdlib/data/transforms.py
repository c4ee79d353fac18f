"""Image / label I/O, label mapping, normalisation and the papers' augmentation as pure functions.

Every function here is stateless: randomness enters only through an explicit ``numpy.random.Generator``
(see :func:`sample_augmentation`), so a sample depends on ``(seed, epoch, index)`` and on nothing else —
not on the DataLoader worker that happens to load it (docs/reference.md §6 pitfall 20).

The official train pipeline (docs/reference.md §4), reproduced by :func:`train_transform`:

1. label mapping (done by the dataset before calling this module's transforms);
2. random scale ``f`` drawn from {0.5, 0.6, ..., 2.0}, same factor on both axes, output size
   ``round(size * f)``; image bilinear (``align_corners=False``, no antialias, result rounded back to the
   0..255 integer grid as OpenCV does for uint8 images), label nearest;
3. normalisation: ``'official'`` = BGR channel order minus (104.00698793, 116.66876762, 122.67891434),
   no division by a std; ``'imagenet'`` = RGB / 255, minus the ImageNet mean, divided by its std;
4. pad bottom / right up to the crop size with image value 0 (the mean colour) and label ``ignore``;
5. random crop with uniform offsets;
6. horizontal flip with probability 0.5.

Validation / test (:func:`eval_transform`): normalisation only, full resolution.

Resizing uses ``torch.nn.functional.interpolate`` rather than OpenCV, so results can differ from the
official loader by one grey level (bilinear rounding) and, for the nearest-neighbour label, by which of two
neighbouring source pixels is picked at a few positions; neither changes the label set or the geometry.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

PathLike = Union[str, Path]

#: The official per-channel mean, in **BGR** order, subtracted from 0..255 pixel values.
OFFICIAL_MEAN_BGR: Tuple[float, float, float] = (104.00698793, 116.66876762, 122.67891434)
#: The ImageNet statistics, in **RGB** order, applied to 0..1 pixel values.
IMAGENET_MEAN_RGB: Tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD_RGB: Tuple[float, float, float] = (0.229, 0.224, 0.225)
#: The official discrete scale factors 0.5 + r / 10, r = 0..15.
OFFICIAL_SCALES: Tuple[float, ...] = tuple(round(0.5 + r / 10.0, 1) for r in range(16))
NORMALIZATIONS = ("official", "imagenet")


# --------------------------------------------------------------------------------------------- I/O
def read_image(path: PathLike) -> np.ndarray:
    """Read an image file as an ``(H, W, 3)`` uint8 **RGB** array (greyscale / palette / RGBA converted)."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()


def read_label(path: PathLike) -> np.ndarray:
    """Read a label PNG as an ``(H, W)`` integer array of the stored class values.

    Greyscale (``L``) and 16/32-bit (``I;16``, ``I``) images give their values, palette (``P``) images give
    their palette **indices** (as VOC's ``SegmentationClass`` needs; OpenCV's greyscale reader would give
    luminances instead). An RGB label whose three channels are equal is read as greyscale; any other colour
    label is rejected because its colours are not class indices.
    """
    with Image.open(path) as im:
        mode = im.mode
        if mode in ("L", "P", "I", "I;16", "I;16B", "I;16L", "1"):
            arr = np.asarray(im)
        elif mode in ("RGB", "RGBA", "LA"):
            rgb = np.asarray(im.convert("RGB"))
            if not (np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2])):
                raise ValueError(
                    f"{path}: label image is colour ({mode}); expected one class index per pixel "
                    "(a greyscale or palette PNG). Convert colour-coded labels to index PNGs first."
                )
            arr = rgb[..., 0]
        else:
            raise ValueError(f"{path}: unsupported label image mode {mode!r}; expected a greyscale PNG")
    return np.array(arr, dtype=np.int64)


# ----------------------------------------------------------------------------------- label mapping
def make_lut(mapping: Mapping[int, int], size: int = 256, identity: bool = True) -> np.ndarray:
    """A lookup table of ``size`` entries: ``mapping`` applied on top of identity (or of -1 if not)."""
    lut = np.arange(size, dtype=np.int64) if identity else np.full(size, -1, dtype=np.int64)
    for raw, mapped in mapping.items():
        lut[int(raw)] = int(mapped)
    return lut


def apply_lut(raw: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """Map raw label values through ``lut``; values outside the table pass through unchanged."""
    raw = np.asarray(raw, dtype=np.int64)
    if raw.size == 0 or (raw.min() >= 0 and raw.max() < len(lut)):
        return lut[raw]
    out = raw.copy()
    inside = (raw >= 0) & (raw < len(lut))
    out[inside] = lut[raw[inside]]
    return out


def invalid_label_mask(label: np.ndarray, num_classes: int, ignore_index: int = -1) -> np.ndarray:
    """Boolean mask of the pixels whose value is neither a class in 0..K-1 nor ``ignore_index``."""
    return ((label < 0) | (label >= num_classes)) & (label != ignore_index)


# ----------------------------------------------------------------------------------- normalisation
def normalization_stats(mode: str) -> Tuple[str, Tuple[float, ...], Tuple[float, ...], float]:
    """``(channel_order, mean, std, value_scale)`` for a normalisation mode (mean/std in output order)."""
    if mode == "official":
        return "BGR", OFFICIAL_MEAN_BGR, (1.0, 1.0, 1.0), 1.0
    if mode == "imagenet":
        return "RGB", IMAGENET_MEAN_RGB, IMAGENET_STD_RGB, 255.0
    raise ValueError(f"unknown normalize={mode!r}; choose one of {NORMALIZATIONS}")


def image_to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """``(H, W, 3)`` uint8 RGB array → ``(3, H, W)`` float32 tensor with 0..255 values (RGB order)."""
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).to(torch.float32)


def normalize(image_rgb: torch.Tensor, mode: str = "official") -> torch.Tensor:
    """Normalise a ``(3, H, W)`` RGB tensor with 0..255 values (see module docstring for the modes)."""
    order, mean, std, scale = normalization_stats(mode)
    x = image_rgb.flip(0) if order == "BGR" else image_rgb
    mean_t = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
    return ((x / scale - mean_t) / std_t).to(torch.float32).contiguous()


def denormalize(image: torch.Tensor, mode: str = "official") -> np.ndarray:
    """Invert :func:`normalize`: ``(3, H, W)`` tensor → ``(H, W, 3)`` uint8 RGB array (for figures)."""
    order, mean, std, scale = normalization_stats(mode)
    x = torch.as_tensor(image).detach().to("cpu", torch.float32)
    if x.ndim != 3 or x.shape[0] != 3:
        raise ValueError(f"denormalize expects a (3, H, W) tensor, got shape {tuple(x.shape)}")
    mean_t = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
    x = (x * std_t + mean_t) * scale
    if order == "BGR":
        x = x.flip(0)
    return x.round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy().copy()


# -------------------------------------------------------------------------------- geometry helpers
def scaled_size(height: int, width: int, factor: float) -> Tuple[int, int]:
    """Output size of a resize by ``factor`` on both axes: ``round(size * factor)`` (at least 1)."""
    return max(1, int(np.rint(height * factor))), max(1, int(np.rint(width * factor)))


def resize_pair(
    image: torch.Tensor, label: torch.Tensor, size: Tuple[int, int]
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Resize a ``(3, H, W)`` 0..255 image (bilinear, rounded) and an ``(H, W)`` label (nearest)."""
    if tuple(size) == tuple(label.shape):
        return image, label
    img = F.interpolate(image[None], size=size, mode="bilinear", align_corners=False, antialias=False)[0]
    img = img.round_().clamp_(0.0, 255.0)  # OpenCV rounds uint8 results
    lab = F.interpolate(label[None, None].to(torch.float32), size=size, mode="nearest")[0, 0]
    return img, lab.to(torch.int64)


def pad_pair(
    image: torch.Tensor, label: torch.Tensor, height: int, width: int, ignore_index: int = -1
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Pad bottom / right to at least ``height`` × ``width``: image with 0, label with ``ignore_index``."""
    h, w = label.shape
    pad_h, pad_w = max(height - h, 0), max(width - w, 0)
    if pad_h == 0 and pad_w == 0:
        return image, label
    tvf = _tv_functional()
    img = tvf.pad(image, [0, 0, pad_w, pad_h], fill=0.0)
    lab = tvf.pad(label[None], [0, 0, pad_w, pad_h], fill=ignore_index)[0]
    return img, lab


def crop_pair(
    image: torch.Tensor, label: torch.Tensor, top: int, left: int, height: int, width: int
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Crop both tensors to ``[top:top+height, left:left+width]`` (inside the image: :func:`pad_pair` first)."""
    tvf = _tv_functional()
    return tvf.crop(image, top, left, height, width), tvf.crop(label[None], top, left, height, width)[0]


def hflip_pair(image: torch.Tensor, label: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Mirror both tensors left-right."""
    tvf = _tv_functional()
    return tvf.horizontal_flip(image), tvf.horizontal_flip(label[None])[0]


def _tv_functional():
    """torchvision's tensor transforms (crop, pad, flip: exact index operations, the official ones' results)."""
    import torchvision.transforms.v2.functional as tvf

    return tvf


# ---------------------------------------------------------------------------------- augmentation
@dataclass(frozen=True)
class AugmentParams:
    """The random decisions of one training sample (all drawn by :func:`sample_augmentation`)."""

    scale: float
    size: Tuple[int, int]  # (h, w) after scaling
    top: int
    left: int
    flip: bool


def sample_augmentation(
    rng: np.random.Generator,
    height: int,
    width: int,
    crop_size: Tuple[int, int],
    scales: Optional[Sequence[float]] = OFFICIAL_SCALES,
    scale_range: Optional[Tuple[float, float]] = None,
    flip: bool = True,
) -> AugmentParams:
    """Draw scale, crop offsets and flip for an ``height`` × ``width`` sample, in that fixed order.

    ``scale_range=(lo, hi)`` draws a continuous factor uniformly; otherwise a factor is chosen uniformly
    from ``scales`` (default: the official {0.5, ..., 2.0}); ``scales=None`` or ``(1.0,)`` disables scaling.
    """
    if scale_range is not None:
        lo, hi = float(scale_range[0]), float(scale_range[1])
        factor = float(rng.uniform(lo, hi))
    elif scales:
        factor = float(scales[int(rng.integers(0, len(scales)))])
    else:
        factor = 1.0
    sh, sw = scaled_size(height, width, factor)
    ch, cw = int(crop_size[0]), int(crop_size[1])
    top = int(rng.integers(0, max(sh, ch) - ch + 1))
    left = int(rng.integers(0, max(sw, cw) - cw + 1))
    do_flip = bool(flip) and bool(rng.random() < 0.5)
    return AugmentParams(scale=factor, size=(sh, sw), top=top, left=left, flip=do_flip)


def train_transform(
    rgb: np.ndarray,
    label: np.ndarray,
    params: AugmentParams,
    crop_size: Tuple[int, int],
    normalization: str = "official",
    ignore_index: int = -1,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Apply the official train pipeline with the decisions in ``params`` (see module docstring)."""
    image = image_to_tensor(rgb)
    lab = torch.from_numpy(np.ascontiguousarray(label, dtype=np.int64))
    image, lab = resize_pair(image, lab, params.size)
    image = normalize(image, normalization)
    ch, cw = int(crop_size[0]), int(crop_size[1])
    image, lab = pad_pair(image, lab, ch, cw, ignore_index)
    image, lab = crop_pair(image, lab, params.top, params.left, ch, cw)
    if params.flip:
        image, lab = hflip_pair(image, lab)
    return image.contiguous(), lab.contiguous()


def eval_transform(
    rgb: np.ndarray, label: np.ndarray, normalization: str = "official"
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Validation / test protocol: full resolution, normalisation only."""
    image = normalize(image_to_tensor(rgb), normalization)
    return image, torch.from_numpy(np.ascontiguousarray(label, dtype=np.int64))


# --------------------------------------------------------------------------------------- palettes
def bit_color_map(n: int) -> np.ndarray:
    """The Pascal VOC colour map (bit-interleaved RGB), ``n`` × 3 uint8; entry 0 is black."""
    ids = np.arange(n, dtype=np.int64)
    cmap = np.zeros((n, 3), dtype=np.int64)
    c = ids.copy()
    for shift in range(7, -1, -1):  # 8 bit-planes, vectorised over all ids
        for ch in range(3):
            cmap[:, ch] |= ((c >> ch) & 1) << shift
        c >>= 3
    return cmap.astype(np.uint8)


def colorize(label: Union[np.ndarray, torch.Tensor], palette: np.ndarray) -> np.ndarray:
    """``(H, W)`` class indices → ``(H, W, 3)`` uint8 RGB; ignore and out-of-range values are black."""
    lab = np.asarray(label.detach().cpu() if isinstance(label, torch.Tensor) else label).astype(np.int64)
    pal = np.asarray(palette, dtype=np.uint8)
    ext = np.concatenate([pal, np.zeros((1, 3), dtype=np.uint8)], axis=0)
    idx = np.where((lab >= 0) & (lab < len(pal)), lab, len(pal))
    return ext[idx]
