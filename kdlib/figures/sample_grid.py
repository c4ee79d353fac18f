"""A grid of dataset samples next to their colour-coded labels, with a class legend (the README's first figure).

:func:`plot_sample_grid` takes a dataset object (any :class:`kdlib.data.base.SegmentationDataset`) or a folder
in the CamVid layout (e.g. one written by ``synthetic_streets``) and returns a matplotlib figure; saving it is
up to the caller: :func:`save_compact_png` writes a small PNG (adaptive 256-colour palette that keeps the class
colours exact), :func:`kdlib.figures.plots.save_figure` a full-colour one. :func:`plot_synthetic_samples` draws the
first samples of a ``synthetic_streets`` preset without writing the whole preset.

Command line: ``kdlib data samples --out figures/synthetic_streets_samples.png``.
"""
from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple, Union

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from kdlib.data import transforms as T  # noqa: E402

__all__ = ["plot_sample_grid", "plot_synthetic_samples", "open_camvid_layout", "save_compact_png"]

#: Colour used for ignored (void) pixels in the label panels; :func:`kdlib.data.transforms.colorize` uses black.
VOID_RGB = (0, 0, 0)


def open_camvid_layout(root: Union[str, os.PathLike], split: str = "train") -> Any:
    """Open a folder in the CamVid layout without augmentation.

    If the folder holds ``synthetic_streets.json`` its class names and palette are used, otherwise CamVid's.
    """
    from kdlib.data.camvid import CamVid
    from kdlib.data.synthetic import read_metadata

    meta = read_metadata(root)
    options: dict[str, Any] = {}
    if meta is not None:
        options = {"class_names": meta["class_names"], "palette": np.asarray(meta["palette"], np.uint8),
                   "void_value": int(meta.get("void_label", 11))}
    return CamVid(root, split, augment=False, **options)


def _samples(dataset: Any, indices: Sequence[int]) -> List[Tuple[np.ndarray, np.ndarray]]:
    """``(rgb uint8 (H, W, 3), label int64 (H, W))`` before augmentation, for each index."""
    if hasattr(dataset, "load"):
        return [dataset.load(int(i)) for i in indices]
    out = []
    for i in indices:                                   # a plain (image tensor, label tensor) dataset
        image, label = dataset[int(i)]
        rgb = dataset.denormalize(image) if hasattr(dataset, "denormalize") else np.asarray(image)
        out.append((rgb, np.asarray(label)))
    return out


def plot_sample_grid(root_or_dataset: Any, n: int = 8, *, split: str = "train",
                     indices: Optional[Sequence[int]] = None, columns: int = 4, panel_width: float = 2.4,
                     title: Optional[str] = None, legend: bool = True) -> "plt.Figure":
    """Figure of ``n`` image / colour-coded label pairs (image above its label) and a class legend.

    Args:
        root_or_dataset: a dataset with ``load(i)`` (or ``__getitem__``), ``class_names`` and ``palette``,
            or a CamVid-layout folder (read with :func:`open_camvid_layout`).
        n: number of samples (the first ``n`` unless ``indices`` is given; fewer if the split is smaller).
        split: split to read when a folder is given.
        indices: explicit sample indices (overrides ``n``).
        columns: pairs per row.
        panel_width: width of one panel in inches (the height follows the images' aspect ratio).
        title: figure title (default: the dataset's name and split).
        legend: add a legend with one patch per class (and void) in the palette colours.

    Returns:
        The matplotlib figure (not saved, not closed). Its ``kdlib_palette`` attribute holds the class colours
        (plus void), which :func:`save_compact_png` keeps exact.
    """
    if isinstance(root_or_dataset, (str, os.PathLike)):
        dataset = open_camvid_layout(root_or_dataset, split)
        default_title = f"{Path(root_or_dataset).name} / {split}"
    else:
        dataset = root_or_dataset
        default_title = f"{getattr(dataset, 'display_name', type(dataset).__name__)} / {getattr(dataset, 'split', '')}"
    if indices is None:
        if n < 1:
            raise ValueError(f"plot_sample_grid: n must be >= 1, got {n}")
        indices = list(range(min(int(n), len(dataset))))
    if not indices:
        raise ValueError("plot_sample_grid: the dataset has no samples to show")
    if columns < 1:
        raise ValueError(f"plot_sample_grid: columns must be >= 1, got {columns}")
    palette = np.asarray(dataset.palette, np.uint8)
    names = list(dataset.class_names)
    pairs = _samples(dataset, indices)

    cols = min(int(columns), len(pairs))
    rows = math.ceil(len(pairs) / cols)
    h, w = pairs[0][0].shape[:2]
    panel_h = panel_width * h / w
    legend_h = 0.55 if legend else 0.0
    title_h = 0.35
    fig_w = cols * panel_width + (cols - 1) * 0.08
    fig_h = rows * 2 * panel_h + (rows - 1) * 0.12 + legend_h + title_h
    fig = plt.figure(figsize=(fig_w, fig_h))
    top = 1 - title_h / fig_h
    bottom = legend_h / fig_h
    grid = fig.add_gridspec(2 * rows, cols, left=0.0, right=1.0, top=top, bottom=bottom, wspace=0.03, hspace=0.03)
    for k, (rgb, label) in enumerate(pairs):
        r, c = divmod(k, cols)
        ax_img, ax_lab = fig.add_subplot(grid[2 * r, c]), fig.add_subplot(grid[2 * r + 1, c])
        ax_img.imshow(rgb, interpolation="nearest")
        ax_lab.imshow(T.colorize(label, palette), interpolation="nearest")
        for ax in (ax_img, ax_lab):
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
        ax_img.set_title(f"#{int(indices[k])}", fontsize=7, pad=2)
    fig.suptitle(title if title is not None else default_title, fontsize=10, y=1 - 0.05 / fig_h, va="top")
    if legend:
        handles = [Patch(facecolor=np.asarray(palette[i]) / 255.0, edgecolor="none", label=name)
                   for i, name in enumerate(names)]
        handles.append(Patch(facecolor=np.asarray(VOID_RGB) / 255.0, edgecolor="none", label="void (ignored)"))
        fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), max(4, 2 * cols)),
                   fontsize=7, frameon=False, handlelength=1.2, columnspacing=0.9, bbox_to_anchor=(0.5, 0.0))
    fig.kdlib_palette = np.concatenate([palette, np.asarray([VOID_RGB], np.uint8)])  # type: ignore[attr-defined]
    return fig


def plot_synthetic_samples(preset: str = "proxy", n: int = 8, *, seed: int = 0, split: str = "train",
                           indices: Optional[Sequence[int]] = None, columns: int = 4, title: Optional[str] = None,
                           **grid_options: Any) -> "plt.Figure":
    """:func:`plot_sample_grid` of samples ``indices`` (default the first ``n``) of a ``synthetic_streets`` preset.

    Only images 0..max(indices) of ``split`` are generated (into a temporary folder that is deleted
    afterwards); sample ``i`` depends only on (seed, split, i, size, difficulty), so they are byte-identical
    to the full preset's.
    """
    from kdlib.data.synthetic import SPLITS, generate, resolve_params

    if split not in SPLITS:
        raise ValueError(f"synthetic_streets: unknown split '{split}'; known splits: {', '.join(SPLITS)}")
    if indices is None:
        if n < 1:
            raise ValueError(f"plot_synthetic_samples: n must be >= 1, got {n}")
        indices = list(range(int(n)))
    indices = [int(i) for i in indices]
    if not indices or min(indices) < 0:
        raise ValueError(f"plot_synthetic_samples: indices must be non-negative sample numbers, got {indices}")
    params = resolve_params(preset, seed=seed)
    counts = {f"num_{s}": (max(indices) + 1 if s == split else 0) for s in SPLITS}
    shown = ", ".join(f"#{i}" for i in indices) if len(indices) <= 10 else f"{len(indices)} samples"
    default = (f"synthetic_streets (preset {preset}, {params.height}x{params.width}, seed {seed}, {split} "
               f"{shown}): images and labels")
    with tempfile.TemporaryDirectory(prefix="kdlib-samples-") as tmp:
        root = generate(Path(tmp) / "synthetic_streets", preset=preset, seed=seed, progress=False, **counts)
        return plot_sample_grid(root, split=split, indices=indices, columns=columns,
                                title=default if title is None else title, **grid_options)



def save_compact_png(fig: "plt.Figure", path: Union[str, os.PathLike], *, dpi: int = 150, max_colors: int = 256,
                     keep_colors: Optional[Any] = None, close: bool = True) -> Path:
    """Save ``fig`` as a small PNG: rendered at ``dpi``, then reduced to an adaptive palette of ``max_colors``.

    Photographs with sensor noise compress badly as true-colour PNG; a 256-colour palette (median cut, no
    dithering) makes the file about 3x smaller with no visible change. ``keep_colors`` (N x 3 uint8; default the
    figure's ``kdlib_palette``) are put into the palette as they are, so the label colours stay exact.
    """
    import io

    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", facecolor="white")
    if close:
        plt.close(fig)
    image = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    keep = np.asarray(keep_colors if keep_colors is not None else getattr(fig, "kdlib_palette", np.zeros((0, 3))),
                      np.uint8).reshape(-1, 3)
    keep = np.unique(np.concatenate([keep, np.array([[0, 0, 0], [255, 255, 255]], np.uint8)]), axis=0)
    if not 0 < len(keep) < max_colors <= 256:
        raise ValueError(f"save_compact_png: need len(keep_colors) + 2 < max_colors <= 256, got {len(keep)}, "
                         f"{max_colors}")
    adaptive = image.quantize(max_colors - len(keep), method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    colors = np.asarray(adaptive.getpalette()[: 3 * (max_colors - len(keep))], np.uint8).reshape(-1, 3)
    table = np.concatenate([keep, colors])
    table = np.concatenate([table, np.zeros((256 - len(table), 3), np.uint8)])
    pal_image = Image.new("P", (1, 1))
    pal_image.putpalette(table.ravel().tolist())
    image.quantize(palette=pal_image, dither=Image.Dither.NONE).save(path, format="PNG", optimize=True)
    return path
