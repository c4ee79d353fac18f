"""Pixel-wise logit knowledge distillation (KD) — docs/reference.md §3.2, official CIRKD ``losses/kd.py``."""
from __future__ import annotations

from torch import Tensor

from kdlib.losses.common import check_4d, check_same_shape, compute_dtype, fp32_region, kl_div_sum

__all__ = ["kd_loss"]


def kd_loss(s_logits: Tensor, t_logits: Tensor, temperature: float = 1.0) -> Tensor:
    r"""Pixel-wise KD on logits at feature resolution.

    .. math::
        L_{kd} = T^2 \frac{1}{B h w} \sum_{b,i}
                 \mathrm{KL}\big(\sigma(z^T_{b,:,i}/T)\,\|\,\sigma(z^S_{b,:,i}/T)\big)

    with the softmax :math:`\sigma` over the K classes (dim 1). Every pixel counts, **including ignore
    pixels** (no labels are involved), and the sum is divided by the number of rows B*h*w ("batchmean").

    Args:
        s_logits: student logits (B, K, h, w).
        t_logits: teacher logits (B, K, h, w); detached (no gradient).
        temperature: T (official default 1).

    Returns:
        scalar tensor (float32 for low-precision / float32 inputs, float64 for float64 inputs).
    """
    check_4d("s_logits", s_logits)
    check_same_shape(("s_logits", "t_logits"), s_logits, t_logits)
    with fp32_region(s_logits):
        s = compute_dtype(s_logits)
        t = compute_dtype(t_logits.detach())
        b, _, h, w = s.shape
        kl = kl_div_sum(s, t, dim=1, scale=1.0 / temperature)
        return kl * (temperature ** 2) / (b * h * w)
