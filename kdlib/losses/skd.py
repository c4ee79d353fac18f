"""Structured KD (SKD) pair-wise term as in the CIRKD repository — docs/reference.md §3.5."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from kdlib.losses.common import check_4d, check_same_shape, compute_dtype, fp32_region, l2_normalize

__all__ = ["skd_pairwise_loss"]


def skd_pairwise_loss(s_feat: Tensor, t_feat: Tensor) -> Tensor:
    r"""SKD pair-wise (pixel-affinity) distillation.

    1. 2x2 max-pool, stride 2, ``ceil_mode=True`` (a partial last window for odd sizes), no padding, on both
       maps -> (B, C, h2, w2), N = h2*w2 nodes.
    2. Per-node L2 normalisation over channels (``F.normalize``, eps 1e-12).
    3. Gram matrices :math:`G_b = \hat F_b^\top \hat F_b \in R^{N\times N}` for student and teacher (channel
       counts may differ: the affinity is N x N either way).
    4. :math:`L = \frac{1}{B N^2}\sum_{b,m,n} (G^S_{b,m,n} - G^T_{b,m,n})^2`.

    Args:
        s_feat: student feature (B, C_s, h, w).
        t_feat: teacher feature (B, C_t, h, w); detached.

    Returns:
        scalar tensor.
    """
    check_4d("s_feat", s_feat)
    check_4d("t_feat", t_feat)
    check_same_shape(("s_feat", "t_feat"), s_feat, t_feat, dims=(0, 2, 3))
    with fp32_region(s_feat):
        s = compute_dtype(s_feat)
        t = compute_dtype(t_feat.detach())
        s = l2_normalize(F.max_pool2d(s, kernel_size=2, stride=2, ceil_mode=True), dim=1).flatten(2)
        t = l2_normalize(F.max_pool2d(t, kernel_size=2, stride=2, ceil_mode=True), dim=1).flatten(2)
        gram_s = torch.bmm(s.transpose(1, 2), s)
        gram_t = torch.bmm(t.transpose(1, 2), t)
        return (gram_s - gram_t).pow(2).mean()
