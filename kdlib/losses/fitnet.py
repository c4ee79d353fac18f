"""FitNet hint loss as in the CIRKD repository — docs/reference.md §3.5."""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from kdlib.losses.common import check_same_shape, compute_dtype, fp32_region

__all__ = ["fitnet_loss"]


def fitnet_loss(s_projected: Tensor, t_feat: Tensor) -> Tensor:
    r"""FitNet: mean squared error over all elements, :math:`L = \frac{1}{BCHW}\sum (P(F^S) - F^T)^2`.

    Args:
        s_projected: student feature after the 1x1 connector C_s -> C_t (no bias; the caller's module),
            shape (B, C_t, h, w).
        t_feat: teacher feature (B, C_t, h, w); detached.

    Returns:
        scalar tensor.
    """
    check_same_shape(("s_projected", "t_feat"), s_projected, t_feat)
    with fp32_region(s_projected):
        # fused MSE: no (B, C, h, w) difference tensor is allocated or kept for backward
        return F.mse_loss(compute_dtype(s_projected), compute_dtype(t_feat.detach()), reduction="mean")
