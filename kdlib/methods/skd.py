"""Structured knowledge distillation (SKD) as released in the CIRKD repository — docs/reference.md §3.5."""
from __future__ import annotations

from typing import Dict, Iterable, Sequence

from torch import Tensor

from kdlib.methods.base import PairSpec
from kdlib.losses.functional import kd_loss, skd_pairwise_loss
from kdlib.methods.adversarial import AdversarialDistillLoss
from kdlib.models.output import SegOutput
from kdlib.registry import METHODS


@METHODS.register("skd")
class SKD(AdversarialDistillLoss):
    r"""SKD: pixel-wise KD + pair-wise affinity distillation + holistic adversarial distillation.

    Terms:

    * ``kd`` — :func:`~kdlib.losses.functional.kd_loss` of the (B, K, h, w) logits (``kd_temperature``).
    * ``pairwise`` — :func:`~kdlib.losses.functional.skd_pairwise_loss` of the head features (B, C_s, h, w) /
      (B, C_t, h, w): 2x2 max-pool (ceil), per-node L2 normalisation, Gram matrices G = F^T F (B, N, N),
      :math:`\frac{1}{B N^2}\sum (G^S - G^T)^2`.
    * ``adv`` — holistic term ``-mean(D(z^S))``. When (and only when) its weight is non-zero the module owns
      the SAGAN discriminator D of docs/reference.md §3.5 (spectral-norm convs, self-attention, size-safe final layer)
      and D's Adam (lr ``d_lr``, betas ``d_betas``). D is excluded from the student's SGD
      (:meth:`separately_optimized_parameters`) and trained with the hinge loss
      ``d_loss_weight * (mean ReLU(1 - D(z^T)) + mean ReLU(1 + D(z^S)))`` on the detached logits of the
      last forward when the trainer calls :meth:`after_student_step` (after the student's SGD step, as in
      the official iteration order). See :mod:`kdlib.methods.adversarial`.

    Options: ``kd_temperature`` (1), ``d_lr`` (4e-4), ``d_betas`` ((0.9, 0.99)), ``d_loss_weight`` (0.1),
    ``d_conv_dim`` (64), ``d_size_safe`` (True: zero-pad maps too small for D's convs; official layout
    otherwise),
    ``d_spectral_norm`` (``"official"``: the official code's power iteration, gradient and fake-then-real
    order of the discriminator step; ``"torch"``: torch's spectral norm, real then fake — see
    :mod:`kdlib.methods.adversarial`). :meth:`paper_defaults` select ``"official"`` on the paper datasets
    and ``"torch"`` on the built-in ``synthetic_streets``, whose committed proxy study was run with it.
    """

    terms = ("kd", "pairwise", "adv")
    distils = ("logits", "feature")
    display_name = "SKD"
    # released CIRKD-repo scripts (Cityscapes only, used for every dataset): KD 1 + pair-wise 10 +
    # holistic adversarial G 0.001 (D 0.1); discriminator: AdversarialDistillLoss.dataset_differences
    paper_weights = {"kd": 1.0, "pairwise": 10.0, "adv": 0.001}

    def __init__(self, pair: PairSpec, enabled: Iterable[str], kd_temperature: float = 1.0,
                 d_lr: float = 4e-4, d_betas: Sequence[float] = (0.9, 0.99), d_loss_weight: float = 0.1,
                 d_conv_dim: int = 64, d_size_safe: bool = True, d_spectral_norm: str = "official") -> None:
        super().__init__(pair, enabled)
        if kd_temperature <= 0:
            raise ValueError(f"kd_temperature must be positive, got {kd_temperature}")
        self.kd_temperature = float(kd_temperature)
        self._build_adversarial(d_lr, d_betas, d_loss_weight, d_conv_dim, d_size_safe, d_spectral_norm)

    def forward(self, student: SegOutput, teacher: SegOutput, labels: Tensor) -> Dict[str, Tensor]:
        out: Dict[str, Tensor] = {}
        if "kd" in self.enabled:
            out["kd"] = kd_loss(student.logits, teacher.logits, self.kd_temperature)
        if "pairwise" in self.enabled:
            out["pairwise"] = skd_pairwise_loss(student.feature, teacher.feature)
        if self.adversarial is not None:
            out["adv"] = self.adversarial.generator_loss(student.logits, teacher.logits)
        return out
