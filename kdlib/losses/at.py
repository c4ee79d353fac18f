"""Attention transfer (AT) as in the CIRKD repository — docs/reference.md §3.5."""
from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from kdlib.losses.common import check_4d, check_same_shape, compute_dtype, fp32_region, l2_normalize

__all__ = ["at_loss", "attention_map"]


class _ChannelMeanSquare(torch.autograd.Function):
    r"""(B, C, h, w) -> (B, h, w): :math:`\frac{1}{C}\sum_c x_c^2`, with the gradient :math:`\frac{2}{C} x g` in one
    pass (autograd through ``pow`` / ``mean`` makes three: ``x ** 1``, ``* 2``, ``* g / C``). First-order only."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        return x.pow(2).mean(dim=1)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor) -> Tensor:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return x * (grad_out.unsqueeze(1) * (2.0 / x.shape[1]))


def attention_map(feat: Tensor) -> Tensor:
    r"""AT map :math:`a(F) = \mathrm{normalize}_2\big(\tfrac{1}{C}\sum_c F_c^2\big)` flattened to (B, h*w).

    The L2 normalisation is per sample over the h*w positions (``F.normalize``, eps 1e-12).
    """
    return l2_normalize(_ChannelMeanSquare.apply(feat).flatten(1), dim=1)


def at_loss(s_feat: Tensor, t_feat: Tensor) -> Tensor:
    r"""Attention transfer: :math:`L = \frac{1}{B h w}\sum_{b,i} (a(F^S)_{b,i} - a(F^T)_{b,i})^2`.

    Channel counts may differ (the channel mean removes them); spatial sizes must match.

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
        a_s = attention_map(compute_dtype(s_feat))
        a_t = attention_map(compute_dtype(t_feat.detach()))
        return (a_s - a_t).pow(2).mean()
