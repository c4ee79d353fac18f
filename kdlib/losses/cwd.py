"""Channel-wise distillation (CWD, Shu et al. ICCV 2021) as in the CIRKD repository — docs/reference.md §3.5."""
from __future__ import annotations

from typing import Optional

from torch import Tensor

from kdlib.losses.common import check_4d, check_same_shape, compute_dtype, fp32_region, kl_div_sum

__all__ = ["cwd_loss"]


def cwd_loss(s: Tensor, t: Tensor, temperature: float = 4.0, norm_channels: Optional[int] = None) -> Tensor:
    r"""Channel-wise distillation: per-channel spatial softmax, KL(teacher || student).

    For every image b and channel c, :math:`p_{b,c,i} = \mathrm{softmax}_i(x_{b,c,i}/T)` over the h*w
    positions i, and

    .. math::
        L_{cwd} = \frac{T^2}{B \cdot C_{norm}} \sum_{b,c} \sum_i p^T_{b,c,i}
                  \big(\log p^T_{b,c,i} - \log p^S_{b,c,i}\big)

    Used on logits (C = K) and on features (the student passed through a 1x1 connector first, which is the
    caller's job: ``s`` must already have the teacher's channel count).

    Args:
        s: student map (B, C, h, w) — already projected to the teacher width.
        t: teacher map (B, C, h, w); detached.
        temperature: T (official 4).
        norm_channels: C_norm. ``None`` (default) = C of ``t``, i.e. a per-channel mean. The official module
            reads C from the student tensor **before** its connector, so to reproduce the released feature
            term (128 -> 256 connector) pass ``norm_channels=128`` (C_student): the loss is then twice the
            per-channel mean, and the released weight 50 was tuned with that normaliser.

    Returns:
        scalar tensor.
    """
    check_4d("s", s)
    check_same_shape(("s", "t"), s, t)
    if norm_channels is not None and norm_channels <= 0:
        raise ValueError(f"norm_channels must be positive, got {norm_channels}")
    with fp32_region(s):
        s_ = compute_dtype(s)
        t_ = compute_dtype(t.detach())
        b, c = s_.shape[:2]
        kl = kl_div_sum(s_.flatten(2), t_.flatten(2), dim=2, scale=1.0 / temperature)
        c_norm = c if norm_channels is None else int(norm_channels)
        return kl * (temperature ** 2) / (b * c_norm)
