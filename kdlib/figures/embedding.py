"""t-SNE of pixel embeddings coloured by class (scikit-learn), for teacher / baseline / distilled students.

* :func:`sample_pixel_indices` — the labelled pixels to embed: labels nearest-resized to the feature map
  (as CIRKD resizes them, docs/reference.md §3.3), ignore pixels dropped, classes balanced (every class gets the same
  number of pixels, or all it has; what small classes leave is shared by the others), deterministic per seed.
  The same pixels are used for every model, so the panels are comparable.
* :func:`tsne_embeddings` — one ``sklearn.manifold.TSNE`` (2-D, ``init="pca"``, fixed ``random_state``) per
  model → tidy DataFrame (model, x, y, class_id, class).
* :func:`plot_tsne` — one panel per model, colour-blind-safe colours (marker shapes repeat the colours
  beyond 10 classes). :func:`kdlib.studies.paper_figures.make_tsne_figure` is the ``fig_tsne`` notebook's one call.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import Tensor  # noqa: E402

from kdlib.losses.common import pixel_rows, resize_labels_nearest  # noqa: E402

__all__ = ["resize_labels", "sample_pixel_indices", "tsne_embeddings", "class_silhouette", "plot_tsne"]

_MARKERS = ("o", "^", "s", "D", "v", "P", "X", "*")


def resize_labels(labels: Tensor, size: Tuple[int, int]) -> Tensor:
    """(B, H, W) int labels → (B, h, w) by nearest interpolation (the top-left pixel of each cell for an
    integer factor, as the official CIRKD code resizes its targets)."""
    return resize_labels_nearest(labels, size)


def sample_pixel_indices(labels: Tensor, feature_size: Tuple[int, int], max_points: int, seed: int = 0,
                         ignore_index: int = -1) -> Tuple[np.ndarray, np.ndarray]:
    """Class-balanced sample of labelled pixels of a feature map.

    Args:
        labels: (B, H, W) ground truth (ignore = ``ignore_index``).
        feature_size: (h, w) of the feature map the pixels index.
        max_points: at most this many pixels in total.
        seed: seed of the ``numpy`` generator (same seed, same pixels).

    Returns:
        ``(index, cls)``: flat indices into the B*h*w raster (b-major), sorted, and their class ids.
        Balancing: classes are served from the rarest up, each taking min(its count, what is left / classes
        left), so every class gets the same share unless it has fewer pixels.
    """
    if max_points < 1:
        raise ValueError(f"max_points must be >= 1, got {max_points}")
    flat = resize_labels(labels, feature_size).flatten().numpy()
    rng = np.random.default_rng(int(seed))
    classes, counts = np.unique(flat[flat != ignore_index], return_counts=True)
    order = np.argsort(counts, kind="stable")
    left, chosen = int(max_points), []
    for k, pos in enumerate(order):
        take = min(int(counts[pos]), left // (len(order) - k))
        members = np.flatnonzero(flat == classes[pos])
        chosen.append(rng.choice(members, size=take, replace=False))
        left -= take
    index = np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, np.int64)
    return index.astype(np.int64), flat[index].astype(np.int64)


def _pixels(feature: Tensor, index: np.ndarray, normalize: bool) -> np.ndarray:
    """(B, C, h, w) → (n, C) float64 rows at flat raster ``index``; optionally L2-normalised per pixel."""
    rows = pixel_rows(feature.detach().float().cpu())[torch.from_numpy(index)]
    if normalize:
        rows = F.normalize(rows, p=2, dim=1)
    return rows.double().numpy()


def tsne_embeddings(features: Mapping[str, Tensor], labels: Tensor, max_points: int = 2000, seed: int = 0,
                    class_names: Optional[Sequence[str]] = None, perplexity: float = 30.0,
                    normalize: bool = True, ignore_index: int = -1) -> pd.DataFrame:
    """2-D t-SNE of the same class-balanced pixels of every model's feature map.

    Args:
        features: model name → (B, C_model, h, w) features (same B, h, w for all; widths may differ).
        labels: (B, H, W) ground truth.
        max_points: pixels embedded per model (:func:`sample_pixel_indices`).
        seed: pixel sampling seed and TSNE ``random_state``.
        class_names: names for the ``class`` column (default the id as text).
        perplexity: TSNE perplexity, lowered to (n - 1) / 3 for small samples.
        normalize: L2-normalise every pixel embedding first (the unit sphere CIRKD's relations live on;
            makes models of different widths / scales comparable).

    Returns:
        DataFrame with columns model, x, y, class_id, class (one row per pixel and model).
    """
    from sklearn.manifold import TSNE

    if not features:
        raise ValueError("tsne_embeddings: no features given")
    sizes = {tuple(f.shape[0:1]) + tuple(f.shape[-2:]) for f in features.values()}
    if len(sizes) != 1:
        raise ValueError(f"all feature maps need the same (B, h, w), got {sorted(sizes)}")
    b, h, w = next(iter(sizes))
    if labels.shape[0] != b:
        raise ValueError(f"{labels.shape[0]} label maps for {b} feature maps")
    index, cls = sample_pixel_indices(labels, (h, w), max_points, seed, ignore_index)
    if len(index) < 5:
        raise ValueError(f"only {len(index)} labelled pixels to embed; use more images")
    names = [str(c) for c in range(int(cls.max()) + 1)] if class_names is None else list(class_names)
    frames = []
    for model, feature in features.items():
        x = _pixels(feature, index, normalize)
        tsne = TSNE(n_components=2, perplexity=min(float(perplexity), (len(index) - 1) / 3.0), init="pca",
                    learning_rate="auto", random_state=int(seed))
        xy = tsne.fit_transform(x)
        frames.append(pd.DataFrame({"model": model, "x": xy[:, 0], "y": xy[:, 1], "class_id": cls,
                                    "class": [names[c] for c in cls]}))
    return pd.concat(frames, ignore_index=True)


def class_silhouette(features: Mapping[str, Tensor], labels: Tensor, max_points: int = 2000, seed: int = 0,
                     normalize: bool = True, ignore_index: int = -1) -> Dict[str, float]:
    """Silhouette score (cosine distance; -1..1, higher = classes better separated) of each model's pixel
    embeddings, on the pixels :func:`tsne_embeddings` embeds (NaN with fewer than 2 classes)."""
    from sklearn.metrics import silhouette_score

    first = next(iter(features.values()))
    index, cls = sample_pixel_indices(labels, tuple(first.shape[-2:]), max_points, seed, ignore_index)
    if len(np.unique(cls)) < 2:
        return {m: float("nan") for m in features}
    return {m: float(silhouette_score(_pixels(f, index, normalize), cls, metric="cosine"))
            for m, f in features.items()}


def _class_styles(num_classes: int, palette: Any) -> List[Tuple[Any, str]]:
    """(colour, marker) per class: the given palette (K x 3 numbers, colour names or a palette name), else
    seaborn 'colorblind' with the marker changing every 10 classes (it has 10 colours)."""
    import seaborn as sns

    from kdlib.figures.plots import PALETTE

    if palette is None:
        base = sns.color_palette(PALETTE, 10)
        return [(base[k % 10], _MARKERS[(k // 10) % len(_MARKERS)]) for k in range(num_classes)]
    if isinstance(palette, str):                      # a seaborn / matplotlib palette name
        colours: List[Any] = list(sns.color_palette(palette, num_classes))
    elif np.asarray(palette).dtype.kind in "iuf":     # K x 3 numbers: 0..255 (uint8 palettes) or 0..1
        pal = np.asarray(palette, np.float64)
        colours = [tuple(c) for c in (pal / 255.0 if pal.max() > 1 else pal)]
    else:                                             # colour names / tuples
        colours = list(palette)
    return [(colours[k % len(colours)], "o") for k in range(num_classes)]


def plot_tsne(df: pd.DataFrame, path: Union[str, os.PathLike], class_names: Sequence[str],
              palette: Any = None, title: Optional[str] = None, point_size: float = 6.0) -> List[Path]:
    """One scatter panel per model (order of first appearance in ``df``), points coloured by class; PNG + PDF.

    Args:
        df: :func:`tsne_embeddings` output (model, x, y, class_id).
        class_names: K names (legend, classes absent from ``df`` are left out).
        palette: None (colour-blind-safe default) or K colours (K x 3 uint8, e.g. the dataset's palette).
    """
    from kdlib.figures.plots import save_figure

    models = list(dict.fromkeys(df["model"]))
    styles = _class_styles(len(class_names), palette)
    fig, axes = plt.subplots(1, len(models), figsize=(3.4 * len(models), 3.6), squeeze=False)
    present = sorted(int(c) for c in df["class_id"].unique())
    for ax, model in zip(axes[0], models):
        part = df[df["model"] == model]
        for k in present:
            pts = part[part["class_id"] == k]
            colour, marker = styles[k]
            ax.scatter(pts["x"], pts["y"], s=point_size, color=colour, marker=marker, linewidths=0,
                       alpha=0.85, label=class_names[k], rasterized=True)
        ax.set_title(model, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 6), fontsize=8, frameon=False,
               markerscale=2.5, bbox_to_anchor=(0.5, -0.02 - 0.045 * ((len(labels) - 1) // 6)))
    fig.suptitle(title or "t-SNE of pixel embeddings", fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return save_figure(fig, Path(path))
