"""Channel-wise distillation (CWD, Shu et al. ICCV 2021) as released in the CIRKD repository — docs/reference.md §3.5."""
from __future__ import annotations

from typing import Dict, Iterable, Sequence

import torch.nn as nn
from torch import Tensor

from kdlib.methods.base import PairSpec
from kdlib.losses.functional import cwd_loss, kd_loss
from kdlib.methods.adversarial import AdversarialDistillLoss
from kdlib.models.output import SegOutput
from kdlib.registry import METHODS


@METHODS.register("cwd")
class CWD(AdversarialDistillLoss):
    r"""CWD on logits and on the head feature, plus the released baseline's KD and adversarial terms.

    Terms (all unweighted; each is computed only if enabled):

    * ``kd`` — :func:`~kdlib.losses.functional.kd_loss` of the (B, K, h, w) logits, temperature
      ``kd_temperature``.
    * ``cwd_logits`` — :func:`~kdlib.losses.functional.cwd_loss` of the logits (C = K, no connector):
      :math:`\frac{T^2}{B K}\sum_{b,c}\mathrm{KL}(\sigma_i(z^T_{b,c}/T)\,\|\,\sigma_i(z^S_{b,c}/T))`, softmax over
      the h*w positions i of each channel.
    * ``cwd_feature`` — the same on the head features (B, C_s, h, w) / (B, C_t, h, w), the student passed
      through a 1x1 connector C_s -> C_t (no bias) when the widths differ. Normaliser: with
      ``official_normaliser=True`` the sum is divided by B * C_s (the official module reads C from the
      student tensor *before* its connector, so for 128 -> 256 the term is twice the per-channel mean — the
      released weight 50 was tuned with it); ``False`` divides by B * C_t.
    * ``adv`` — holistic adversarial generator term ``-mean(D(z^S))`` (:mod:`kdlib.methods.adversarial`);
      D is built only when this term is enabled and trained by its own Adam after the student step.

    One module instance (one connector) serves both CWD calls, as in the official code: the connector is
    applied only where the channel counts differ (the features), never to the logits.

    Options (``method_options``): ``temperature`` (T = 4), ``kd_temperature`` (1), ``official_normaliser``
    (True), ``d_lr`` (4e-4), ``d_betas`` ((0.9, 0.99)), ``d_loss_weight`` (0.1), ``d_conv_dim`` (64),
    ``d_size_safe`` (True),
    ``d_spectral_norm`` (``"official"``: the official code's power iteration, gradient and fake-then-real
    order of the discriminator step; ``"torch"``: torch's spectral norm, real then fake — see
    :mod:`kdlib.methods.adversarial`). :meth:`paper_defaults` select ``"official"`` on the paper datasets
    and ``"torch"`` on the built-in ``synthetic_streets``, whose committed proxy study was run with it.
    """

    terms = ("kd", "cwd_logits", "cwd_feature", "adv")
    distils = ("logits", "feature")
    display_name = "CWD"
    # released CIRKD-repo scripts (Cityscapes only; no per-dataset baseline scripts exist, so every dataset
    # uses them): KD 1 + CWD-logit 3 + CWD-feature 50 + adversarial G 0.001 (D 0.1), T = 4
    paper_weights = {"kd": 1.0, "cwd_logits": 3.0, "cwd_feature": 50.0, "adv": 0.001}

    def __init__(self, pair: PairSpec, enabled: Iterable[str], temperature: float = 4.0,
                 kd_temperature: float = 1.0, official_normaliser: bool = True, d_lr: float = 4e-4,
                 d_betas: Sequence[float] = (0.9, 0.99), d_loss_weight: float = 0.1, d_conv_dim: int = 64,
                 d_size_safe: bool = True, d_spectral_norm: str = "official") -> None:
        super().__init__(pair, enabled)
        if temperature <= 0 or kd_temperature <= 0:
            raise ValueError(f"temperatures must be positive, got {temperature} / {kd_temperature}")
        self.temperature = float(temperature)
        self.kd_temperature = float(kd_temperature)
        self.official_normaliser = bool(official_normaliser)
        self.connector = (nn.Conv2d(pair.student_feature, pair.teacher_feature, 1, bias=False)
                          if "cwd_feature" in self.enabled and pair.student_feature != pair.teacher_feature
                          else None)
        self._build_adversarial(d_lr, d_betas, d_loss_weight, d_conv_dim, d_size_safe, d_spectral_norm)

    def _cwd(self, s: Tensor, t: Tensor) -> Tensor:
        c_student = s.shape[1]
        if s.shape[1] != t.shape[1]:
            if self.connector is None:
                raise ValueError(f"CWD: student has {s.shape[1]} channels and teacher {t.shape[1]}, but no "
                                 f"connector was built for PairSpec {self.pair}")
            s = self.connector(s)
        return cwd_loss(s, t, self.temperature, norm_channels=c_student if self.official_normaliser else None)

    def forward(self, student: SegOutput, teacher: SegOutput, labels: Tensor) -> Dict[str, Tensor]:
        out: Dict[str, Tensor] = {}
        if "kd" in self.enabled:
            out["kd"] = kd_loss(student.logits, teacher.logits, self.kd_temperature)
        if "cwd_logits" in self.enabled:
            out["cwd_logits"] = self._cwd(student.logits, teacher.logits)
        if "cwd_feature" in self.enabled:
            out["cwd_feature"] = self._cwd(student.feature, teacher.feature)
        if self.adversarial is not None:
            out["adv"] = self.adversarial.generator_loss(student.logits, teacher.logits)
        return out
