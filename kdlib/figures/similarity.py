"""Similarity maps: the relations CIRKD distils and the patch similarities Af-DCD contrasts.

Pure functions (tensors in, tensors out):

* :func:`anchor_similarity_maps` — cosine similarity of one anchor pixel of image a to every pixel of image b
  (b = a: "within image"; b another image: "across images"). This is one row of CIRKD's pixel-to-pixel
  relation :math:`\\hat F_a \\hat F_b^\\top` (per-pixel L2 normalisation over channels, docs/reference.md §3.3) before the
  softmax; :func:`relation_matrix` is the whole matrix and :func:`relation_mad` the mean absolute difference
  between a teacher's and a student's relations (widths may differ: the relations are A x A for both).
* :func:`afdcd_patch_similarity` — the similarity matrices of Af-DCD's contrast inside one N x N patch
  (docs/reference.md §3.4): after the same pooling / top-left crop / patching / channel grouping as
  :func:`kdlib.losses.afdcd.afdcd_omni_loss` (its helpers are reused), the full (N²M x N²M) matrix
  s(u_{n,g}, v_{m,k}) (``'l1'``: -||u - v||_1, official), its **spatial** part (N² x N², positions n, m with
  matched groups, averaged over the M groups) and its **channel** part (M x M, groups g, k at the same
  position, averaged over the N² positions).

Plots: :func:`plot_similarity_maps` (rows teacher / student / distilled student, columns within / across image,
anchor marked) and :func:`plot_afdcd_matrices` (rows = models, columns spatial / channel). Colour maps are
perceptually uniform and colour-blind-safe (viridis, cividis). :func:`kdlib.studies.paper_figures.make_similarity_figures` is the
``fig_similarity`` notebook's one call.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Dict, List, Mapping, NamedTuple, Optional, Tuple, Union

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import Tensor  # noqa: E402

__all__ = ["anchor_similarity_maps", "offdiag_corr", "relation_matrix", "relation_mad", "PatchSimilarity",
           "afdcd_patch_similarity", "patch_of_cell", "plot_similarity_maps", "plot_afdcd_matrices",
           "MAP_CMAP", "MATRIX_CMAP"]

MAP_CMAP = "viridis"
MATRIX_CMAP = "cividis"
_NORM_EPS = 1e-12   # F.normalize's default, as the CIRKD losses


# ------------------------------------------------------------------------------------------ CIRKD relations
def _check_chw(name: str, x: Tensor) -> None:
    if x.dim() != 3:
        raise ValueError(f"{name} must be (C, h, w), got shape {tuple(x.shape)}")


def anchor_similarity_maps(feature_a: Tensor, feature_b: Tensor, anchor: Tuple[int, int]) -> Tensor:
    """Cosine similarity of pixel ``anchor`` of ``feature_a`` to every pixel of ``feature_b``.

    Args:
        feature_a: (C, h_a, w_a) features of the anchor's image.
        feature_b: (C, h_b, w_b) features of the compared image (``feature_a`` itself: the within-image map).
        anchor: (row, col) in ``feature_a``'s cells; negative values count from the end.

    Returns:
        (h_b, w_b) map, ``cos(f_a[:, r, c], f_b[:, i, j])`` with per-pixel L2 normalisation over channels
        (``F.normalize``, eps 1e-12; an all-zero pixel has similarity 0). Dtype: that of the inputs.
    """
    _check_chw("feature_a", feature_a)
    _check_chw("feature_b", feature_b)
    if feature_a.shape[0] != feature_b.shape[0]:
        raise ValueError(f"channel counts differ: {feature_a.shape[0]} vs {feature_b.shape[0]}")
    r, c = int(anchor[0]), int(anchor[1])
    h, w = feature_a.shape[-2:]
    if not (-h <= r < h and -w <= c < w):
        raise ValueError(f"anchor {anchor} is outside the {h}x{w} feature map")
    a = F.normalize(feature_a[:, r, c], p=2, dim=0, eps=_NORM_EPS)                 # (C,)
    b = F.normalize(feature_b, p=2, dim=0, eps=_NORM_EPS)                          # (C, h_b, w_b)
    return torch.einsum("c,chw->hw", a, b)


def relation_matrix(feature_a: Tensor, feature_b: Tensor) -> Tensor:
    """All anchors at once: (h_a w_a, h_b w_b) cosine similarities, rows = pixels of a in raster order.

    Row ``r * w_a + c`` equals ``anchor_similarity_maps(feature_a, feature_b, (r, c)).flatten()``; this is
    CIRKD's pixel-to-pixel relation S_ab (before the temperature softmax).
    """
    _check_chw("feature_a", feature_a)
    _check_chw("feature_b", feature_b)
    a = F.normalize(feature_a.flatten(1), p=2, dim=0, eps=_NORM_EPS)              # (C, A_a)
    b = F.normalize(feature_b.flatten(1), p=2, dim=0, eps=_NORM_EPS)              # (C, A_b)
    return a.transpose(0, 1) @ b


def relation_mad(teacher: Tensor, student: Tensor, max_anchors: Optional[int] = 4096, chunk: int = 1024
                 ) -> Dict[str, float]:
    """Mean absolute difference between teacher and student relations over a batch.

    Args:
        teacher: (B, C_t, h, w) teacher features; student: (B, C_s, h, w) (C_s may differ from C_t).
        max_anchors: rows (anchor pixels of image i) used per pair: all if h*w is not larger, else every k-th
            pixel in raster order, k = ceil(h*w / max_anchors) (a full-resolution Cityscapes map has 32768
            pixels, i.e. 1e9 pairs per image pair); None: all. Columns are always all pixels of image j.
        chunk: anchors per block (memory is chunk x h*w per block; the result does not depend on it).

    Returns:
        ``{"within": mean_i mean|S^T_ii - S^S_ii|, "across": mean_{i != j} mean|S^T_ij - S^S_ij|}``
        (``across`` is NaN for B = 1). Smaller = the student's relations are closer to the teacher's.
    """
    if teacher.dim() != 4 or student.dim() != 4 or teacher.shape[0] != student.shape[0] \
            or teacher.shape[-2:] != student.shape[-2:]:
        raise ValueError(f"teacher {tuple(teacher.shape)} and student {tuple(student.shape)} must be (B, C, h, w) "
                         f"with the same B, h, w")
    b, area = teacher.shape[0], teacher.shape[-2] * teacher.shape[-1]
    t = F.normalize(teacher.flatten(2), p=2, dim=1, eps=_NORM_EPS)                  # (B, C_t, A)
    s = F.normalize(student.flatten(2), p=2, dim=1, eps=_NORM_EPS)                  # (B, C_s, A)
    rows = torch.arange(area)
    if max_anchors is not None and area > max_anchors:
        rows = torch.arange(0, area, math.ceil(area / int(max_anchors)))            # every k-th pixel
    within: List[float] = []
    across: List[float] = []
    for i in range(b):
        for j in range(b):
            total = 0.0
            for start in range(0, len(rows), int(chunk)):
                r = rows[start:start + int(chunk)]
                diff = t[i][:, r].transpose(0, 1) @ t[j] - s[i][:, r].transpose(0, 1) @ s[j]   # (chunk, A)
                total += float(diff.abs().double().sum())
            (within if i == j else across).append(total / (len(rows) * area))
    return {"within": float(np.mean(within)), "across": float(np.mean(across)) if across else float("nan")}


# ------------------------------------------------------------------------------------------ Af-DCD patches
class PatchSimilarity(NamedTuple):
    """Af-DCD similarity matrices of one patch (or of every patch: a leading patch dimension P).

    Attributes:
        full: (N²M, N²M), entry (n M + g, m M + k) = s(student sample (n, g), teacher sample (m, k)); n, m are
            row-major positions in the patch, g, k channel groups (the index order of the released loss).
        spatial: (N², N²), entry (n, m) = mean over groups g of full[n M + g, m M + g].
        channel: (M, M), entry (g, k) = mean over positions n of full[n M + g, n M + k].
    """

    full: Tensor
    spatial: Tensor
    channel: Tensor


def afdcd_patch_similarity(s: Tensor, t: Tensor, groups: int = 16, patch: int = 4, pool: Optional[int] = 4,
                           similarity: str = "l1", patch_index: Optional[Tuple[int, int]] = (0, 0)
                           ) -> PatchSimilarity:
    """Spatial and channel similarity matrices of one patch as Af-DCD's contrast sees them (docs/reference.md §3.4).

    Pre-processing is the released loss's (helpers of :mod:`kdlib.losses.afdcd`): max-pool kernel = stride =
    ``pool`` (None / 0 / 1: none), keep the top-left multiple of ``patch``, cut ``patch`` x ``patch`` patches,
    split the C channels into ``groups`` contiguous groups of C/M.

    Args:
        s: (C, h, w) "student" map (rows of the matrices); t: (C, h, w) "teacher" map (columns). Pass the same
            map twice for a model's own self-similarity.
        groups: M (C must be divisible by M). patch: N. pool: max-pool size.
        similarity: ``'l1'`` (-L1 distance, official), ``'l2'`` (-Euclidean) or ``'cosine'``.
        patch_index: (row, col) of the patch in the pooled, cropped map's patch grid; None: every patch.

    Returns:
        :class:`PatchSimilarity` with full (N²M, N²M), spatial (N², N²), channel (M, M); with
        ``patch_index=None`` each has a leading dimension P = number of patches (row-major).
    """
    from kdlib.losses.afdcd import (check_groups, check_options, crop_to_patch, pairwise_similarity, pool_pair,
                                    to_patch_samples)

    _check_chw("s", s)
    _check_chw("t", t)
    if s.shape != t.shape:
        raise ValueError(f"s {tuple(s.shape)} and t {tuple(t.shape)} must have the same shape")
    check_options(similarity)
    check_groups(s.shape[0], groups)
    s_, t_ = pool_pair(s.unsqueeze(0), t.unsqueeze(0).detach(), pool, strict=False)
    s_, t_ = crop_to_patch(s_, t_, patch, "topleft")
    h, w = s_.shape[-2:]
    xs, xt = to_patch_samples(s_, patch, groups), to_patch_samples(t_, patch, groups)   # (P, N²M, C/M)
    if patch_index is not None:
        py, px = int(patch_index[0]), int(patch_index[1])
        if not (0 <= py < h // patch and 0 <= px < w // patch):
            raise ValueError(f"patch_index {patch_index} outside the {h // patch}x{w // patch} patch grid")
        k = py * (w // patch) + px
        xs, xt = xs[k:k + 1], xt[k:k + 1]
    full = pairwise_similarity(xs, xt, similarity)                                               # (P, N²M, N²M)
    n2, m = patch * patch, groups
    blocks = full.reshape(-1, n2, m, n2, m)                                               # p, n, g, m', k
    spatial = torch.diagonal(blocks, dim1=2, dim2=4).mean(-1)                            # (P, N², N²)
    channel = torch.diagonal(blocks, dim1=1, dim2=3).mean(-1)                            # (P, M, M)
    if patch_index is not None:
        full, spatial, channel = full[0], spatial[0], channel[0]
    return PatchSimilarity(full, spatial, channel)


def patch_of_cell(cell: Tuple[int, int], feature_size: Tuple[int, int], patch: int = 4, pool: Optional[int] = 4
                  ) -> Tuple[int, int]:
    """The (row, col) of the Af-DCD patch holding feature cell ``cell`` (clamped into the cropped patch grid)."""
    p = 1 if pool in (None, 0, 1) else int(pool)
    rows, cols = (feature_size[0] // p) // patch, (feature_size[1] // p) // patch
    if rows < 1 or cols < 1:
        raise ValueError(f"a {feature_size[0]}x{feature_size[1]} map holds no {patch}x{patch} patch after pool={pool}")
    return min(int(cell[0]) // p // patch, rows - 1), min(int(cell[1]) // p // patch, cols - 1)


def offdiag_corr(a: Tensor, b: Tensor) -> float:
    """Pearson correlation of the off-diagonal entries of (..., R, R) matrices a and b (scale-free)."""
    r = a.shape[-1]
    keep = ~torch.eye(r, dtype=torch.bool)
    x, y = a[..., keep].double().flatten(), b[..., keep].double().flatten()
    x, y = x - x.mean(), y - y.mean()
    denom = float(x.norm() * y.norm())
    return float((x @ y) / denom) if denom > 0 else float("nan")


# ---------------------------------------------------------------------------------------------- plots
def _bare(ax: plt.Axes) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def _mark(ax: plt.Axes, x: float, y: float) -> None:
    """Anchor marker readable on any background (white cross with a black outline)."""
    ax.plot([x], [y], marker="P", markersize=9, markerfacecolor="white", markeredgecolor="black",
            markeredgewidth=1.2, linestyle="none")


def plot_similarity_maps(rgb_a: np.ndarray, rgb_b: np.ndarray, maps: Mapping[str, Tuple[Tensor, Tensor]],
                         anchor: Tuple[int, int], path: Union[str, os.PathLike], title: Optional[str] = None,
                         panel_width: float = 2.6) -> List[Path]:
    """Panel grid of anchor similarity maps; saves PNG + PDF.

    Rows: the two images (anchor marked on image a), then one row per model (``maps`` order, e.g. teacher,
    student, distilled student). Columns: "within image" (anchor of a vs a) and "across images" (anchor of a
    vs b). Maps are drawn at feature resolution stretched over the image, one shared colour scale (viridis).

    Args:
        rgb_a, rgb_b: (H, W, 3) uint8 images. maps: model → (within (h, w), across (h, w)).
        anchor: (row, col) feature cell of the anchor in image a.
    """
    from kdlib.figures.plots import save_figure

    h_img, w_img = rgb_a.shape[:2]
    h, w = next(iter(maps.values()))[0].shape[-2:]
    ay, ax_ = (anchor[0] % h + 0.5) * h_img / h, (anchor[1] % w + 0.5) * w_img / w
    values = np.concatenate([np.asarray(m, np.float64).ravel() for pair in maps.values() for m in pair])
    vmin, vmax = float(values.min()), float(max(values.max(), values.min() + 1e-6))
    rows = len(maps) + 1
    panel_h = panel_width * h_img / w_img
    fig, axes = plt.subplots(rows, 2, figsize=(2 * panel_width + 1.6, rows * (panel_h + 0.3) + 0.5),
                             squeeze=False, gridspec_kw={"wspace": 0.05, "hspace": 0.25})
    axes[0, 0].imshow(rgb_a, interpolation="nearest")
    _mark(axes[0, 0], ax_, ay)
    axes[0, 0].set_title("image a (anchor)", fontsize=9)
    axes[0, 1].imshow(rgb_b, interpolation="nearest")
    axes[0, 1].set_title("image b", fontsize=9)
    extent = (0, w_img, h_img, 0)
    image = None
    for r, (name, (within, across)) in enumerate(maps.items(), start=1):
        for c, sim in enumerate((within, across)):
            image = axes[r, c].imshow(np.asarray(sim, np.float64), cmap=MAP_CMAP, vmin=vmin, vmax=vmax,
                                      extent=extent, interpolation="nearest")
            if c == 0:
                _mark(axes[r, c], ax_, ay)
        axes[r, 0].set_ylabel(name, fontsize=9)
        if r == 1:
            axes[r, 0].set_title("within image (a vs a)", fontsize=9)
            axes[r, 1].set_title("across images (a vs b)", fontsize=9)
    for a in axes.ravel():
        _bare(a)
    if image is not None:
        bar = fig.colorbar(image, ax=axes[1:, :].ravel().tolist(), fraction=0.04, pad=0.02)
        bar.set_label("cosine similarity to the anchor", fontsize=8)
        bar.ax.tick_params(labelsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, Path(path))


def plot_afdcd_matrices(matrices: Mapping[str, PatchSimilarity], path: Union[str, os.PathLike],
                        title: Optional[str] = None, similarity: str = "l1",
                        notes: Optional[Mapping[str, str]] = None,
                        channels_per_group: Optional[Mapping[str, int]] = None) -> List[Path]:
    """Heat-maps of Af-DCD patch similarity matrices; rows = models, columns = spatial (N² x N²) and channel
    (M x M). The models are compared down each column, so each column has one colour scale and one labelled
    colour bar. ``channels_per_group``: per model, the channels an L1 / L2 distance sums over (C / M); the
    distances are divided by it (per-channel distance), since models of different widths otherwise differ in
    scale by their channel count alone. ``notes``: per-model text appended to the row label."""
    from kdlib.figures.plots import save_figure

    label = {"l1": "-L1 distance", "l2": "-L2 distance", "cosine": "cosine"}.get(similarity, similarity)
    per_channel = bool(channels_per_group) and similarity in ("l1", "l2")
    if per_channel:
        label += " per channel"
    scaled = {name: [np.asarray(m, np.float64) / (channels_per_group[name] if per_channel else 1.0)
                     for m in (sim.spatial, sim.channel)] for name, sim in matrices.items()}
    limits = [(min(float(v[c].min()) for v in scaled.values()), max(float(v[c].max()) for v in scaled.values()))
              for c in range(2)]
    rows = len(matrices)
    fig, axes = plt.subplots(rows, 2, figsize=(7.6, 3.1 * rows + 0.6), squeeze=False,
                             gridspec_kw={"wspace": 0.5, "hspace": 0.45})
    for c, (what, axis) in enumerate((("spatial", "patch position"), ("channel", "channel group"))):
        vmin, vmax = limits[c]
        for r, name in enumerate(matrices):
            ax = axes[r, c]
            data = scaled[name][c]
            image = ax.imshow(data, cmap=MATRIX_CMAP, interpolation="nearest", vmin=vmin, vmax=max(vmax, vmin + 1e-9))
            ax.set_title(f"{what} ({data.shape[0]}x{data.shape[1]})", fontsize=9)
            ax.set_xlabel(axis, fontsize=8)
            ax.tick_params(labelsize=7)
            if c == 0:
                note = f"\n{notes[name]}" if notes and name in notes else ""
                ax.set_ylabel(f"{name}{note}\n{axis}", fontsize=8)
            else:
                ax.set_ylabel(axis, fontsize=8)
        bar = fig.colorbar(image, ax=axes[:, c].ravel().tolist(), fraction=0.046, pad=0.04)
        bar.set_label(f"{label} (one scale for the column)", fontsize=8)
        bar.ax.tick_params(labelsize=7)
    fig.suptitle(title or f"Af-DCD patch similarity ({label})", fontsize=10)
    return save_figure(fig, Path(path))


# ------------------------------------------------------------------------------------------ the notebook
