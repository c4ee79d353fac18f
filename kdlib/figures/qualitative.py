"""Qualitative segmentation grid, as CIRKD Fig. 4: image | each method's prediction | ground truth.

:func:`qualitative_panels` builds the RGB panels (pure, testable), :func:`plot_qualitative_grid` draws and
saves them (PNG + PDF, :func:`kdlib.figures.plots.save_figure`), :func:`kdlib.studies.paper_figures.make_qualitative_figure` is the
notebook's one call: find or train the runs, predict a few validation images, draw.

Label colours are the dataset's palette (the convention of segmentation figures; the legend names every
class); ignored pixels of the ground truth are black (:func:`kdlib.data.transforms.colorize`).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, List, Mapping, Optional, Sequence, Union

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from kdlib.data import transforms as T  # noqa: E402
from kdlib.methods.base import method_label  # noqa: E402,F401  (display names: the methods declare them)

__all__ = ["method_label", "class_colours", "qualitative_panels", "plot_qualitative_grid"]

ArrayLike = Union[np.ndarray, torch.Tensor]

VOID_RGB = (0, 0, 0)


def _np(x: ArrayLike) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def class_colours(name: str, num_classes: int) -> np.ndarray:
    """(K, 3) uint8 colours of the seaborn palette ``name`` (cycled when it has fewer than K colours)."""
    import seaborn as sns

    return np.round(np.asarray(sns.color_palette(name, num_classes)) * 255).astype(np.uint8)


def qualitative_panels(images: ArrayLike, labels: ArrayLike, predictions: Mapping[str, ArrayLike],
                       palette: Any) -> List[List[np.ndarray]]:
    """RGB panels of the grid: one row per sample, ``[image, *predictions, ground truth]``.

    Args:
        images: (N, H, W, 3) uint8 display images.
        labels: (N, H, W) int ground truth, ignore = -1 (any value outside 0..K-1 is drawn black).
        predictions: method → (N, H, W) int predicted labels (drawn with the same palette).
        palette: (K, 3) uint8 class colours.

    Returns:
        ``panels[i][j]`` (H, W, 3) uint8.
    """
    imgs, labs = _np(images), _np(labels)
    if imgs.ndim != 4 or imgs.shape[-1] != 3:
        raise ValueError(f"images must be (N, H, W, 3) RGB, got {imgs.shape}")
    if labs.shape != imgs.shape[:3]:
        raise ValueError(f"labels {labs.shape} do not match images {imgs.shape[:3]}")
    preds = {m: _np(p) for m, p in predictions.items()}
    for m, p in preds.items():
        if p.shape != labs.shape:
            raise ValueError(f"predictions of {m!r} have shape {p.shape}, labels {labs.shape}")
    pal = np.asarray(palette, np.uint8)
    rows = []
    for i in range(imgs.shape[0]):
        row = [imgs[i].astype(np.uint8)]
        row += [T.colorize(p[i], pal) for p in preds.values()]
        row.append(T.colorize(labs[i], pal))
        rows.append(row)
    return rows


def plot_qualitative_grid(images: ArrayLike, labels: ArrayLike, predictions: Mapping[str, ArrayLike],
                          path: Union[str, os.PathLike], palette: Any, class_names: Sequence[str],
                          title: Optional[str] = None, panel_width: float = 2.0) -> List[Path]:
    """Draw the grid (rows = samples; columns = image, each method, ground truth) and save PNG + PDF.

    Args: as :func:`qualitative_panels`, plus ``path`` (suffix replaced by .png / .pdf), ``class_names``
    (K names for the legend, which also shows black = ignored), ``title`` and the width of one panel (inches).

    Returns:
        the written files.
    """
    from kdlib.figures.plots import save_figure

    panels = qualitative_panels(images, labels, predictions, palette)
    titles = ["image", *[method_label(m) for m in predictions], "ground truth"]
    n_rows, n_cols = len(panels), len(titles)
    h, w = panels[0][0].shape[:2]
    panel_h = panel_width * h / w
    legend_h, title_h = 0.6, (0.35 if title else 0.0)
    fig = plt.figure(figsize=(n_cols * panel_width + (n_cols - 1) * 0.05,
                              n_rows * panel_h + (n_rows - 1) * 0.05 + 0.3 + legend_h + title_h))
    fig_h = fig.get_figheight()
    grid = fig.add_gridspec(n_rows, n_cols, left=0.0, right=1.0, top=1 - (0.3 + title_h) / fig_h,
                            bottom=legend_h / fig_h, wspace=0.03, hspace=0.03)
    for r, row in enumerate(panels):
        for c, panel in enumerate(row):
            ax = fig.add_subplot(grid[r, c])
            ax.imshow(panel, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if r == 0:
                ax.set_title(titles[c], fontsize=9, pad=3)
    if title:
        fig.suptitle(title, fontsize=10, y=1 - 0.05 / fig_h, va="top")
    pal = np.asarray(palette, np.uint8)
    handles = [Patch(facecolor=pal[i] / 255.0, edgecolor="none", label=name) for i, name in enumerate(class_names)]
    handles.append(Patch(facecolor=np.asarray(VOID_RGB) / 255.0, edgecolor="none", label="ignored"))
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), max(4, 2 * n_cols)), fontsize=7,
               frameon=False, handlelength=1.2, columnspacing=0.9, bbox_to_anchor=(0.5, 0.0))
    return save_figure(fig, Path(path))
