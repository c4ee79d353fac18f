"""Intra-class feature variation distillation (IFVD) as in the CIRKD repository — docs/reference.md §3.5."""
from __future__ import annotations

import torch
from torch import Tensor

from kdlib.losses.common import check_4d, check_same_shape, compute_dtype, fp32_region, resize_labels_nearest

__all__ = ["ifvd_loss", "ifv_map"]

_PROTO_EPS = 1e-6   # official: masked sum / (count + 1e-6)
_COS_EPS = 1e-8     # nn.CosineSimilarity default


def ifv_map(feat: Tensor, labels_small: Tensor, num_classes: int) -> Tensor:
    r"""Intra-class feature variation map (B, h*w) of one feature map.

    For image b and class c in [0, K): prototype :math:`\mu_{b,c} = \sum_{i: y_i=c} f_{b,i} / (n_{b,c} +
    10^{-6})`. Every pixel whose label is a class in [0, K) is compared with its own class prototype of its own
    image; any other pixel (ignore label, or a label outside [0, K)) is compared with itself. The value is the
    cosine similarity over channels, :math:`\cos(u, v) = \frac{u}{\max(\|u\|, 10^{-8})} \cdot
    \frac{v}{\max(\|v\|, 10^{-8})}` (``nn.CosineSimilarity``).

    Vectorised: the prototypes are one one-hot batched matmul (B, K, A) @ (B, A, C); no loop over images or
    classes.

    Args:
        feat: (B, C, h, w) in its compute dtype.
        labels_small: (B, h, w) int64, already at feature resolution.
        num_classes: K.
    """
    b, c, h, w = feat.shape
    f = feat.flatten(2).transpose(1, 2)                                   # (B, A, C)
    lab = labels_small.reshape(b, h * w)                                  # (B, A)
    classes = torch.arange(num_classes, device=lab.device)
    onehot = (lab.unsqueeze(1) == classes.view(1, -1, 1)).to(f.dtype)      # (B, K, A)
    sums = torch.bmm(onehot, f)                                           # (B, K, C)
    counts = onehot.sum(dim=2, keepdim=True)                              # (B, K, 1)
    protos = sums / (counts + _PROTO_EPS)
    valid = (lab >= 0) & (lab < num_classes)                              # (B, A)
    idx = lab.clamp(0, num_classes - 1).unsqueeze(-1).expand(b, h * w, c)
    own_proto = torch.gather(protos, 1, idx)                              # (B, A, C)
    centre = torch.where(valid.unsqueeze(-1), own_proto, f)
    f_n = f / f.norm(dim=2, keepdim=True).clamp_min(_COS_EPS)
    c_n = centre / centre.norm(dim=2, keepdim=True).clamp_min(_COS_EPS)
    return (f_n * c_n).sum(dim=2)


def ifvd_loss(s_feat: Tensor, t_feat: Tensor, labels: Tensor, num_classes: int,
              ignore_index: int = -1) -> Tensor:
    r"""IFVD: :math:`L = \frac{1}{B h w} \sum_{b,i} (\mathrm{IFV}^S_{b,i} - \mathrm{IFV}^T_{b,i})^2`.

    See :func:`ifv_map` for IFV. Labels are resized to (h, w) by nearest interpolation (official). Ignore
    pixels (``ignore_index``) — and any label outside [0, K), exactly as the official per-class loop — are
    compared with themselves (cosine 1 for both student and teacher, 0 for an all-zero vector), so they
    contribute 0 but still count in the mean over B*h*w. Student and teacher widths may differ.

    Args:
        s_feat: student feature (B, C_s, h, w).
        t_feat: teacher feature (B, C_t, h, w); detached.
        labels: (B, H, W) int64 at any resolution.
        num_classes: K.
        ignore_index: the ignore label (-1). Any label outside [0, K) is treated the same way.

    Returns:
        scalar tensor.
    """
    check_4d("s_feat", s_feat)
    check_4d("t_feat", t_feat)
    check_same_shape(("s_feat", "t_feat"), s_feat, t_feat, dims=(0, 2, 3))
    if labels.dim() != 3 or labels.shape[0] != s_feat.shape[0]:
        raise ValueError(f"labels must be (B, H, W) with B={s_feat.shape[0]}, got {tuple(labels.shape)}")
    if num_classes <= 0:
        raise ValueError(f"num_classes must be positive, got {num_classes}")
    with fp32_region(s_feat):
        lab = resize_labels_nearest(labels.to(s_feat.device), tuple(s_feat.shape[-2:]))
        lab = torch.where(lab == ignore_index, torch.full_like(lab, -1), lab)
        ifv_s = ifv_map(compute_dtype(s_feat), lab, num_classes)
        ifv_t = ifv_map(compute_dtype(t_feat.detach()), lab, num_classes)
        return (ifv_s - ifv_t).pow(2).mean()
