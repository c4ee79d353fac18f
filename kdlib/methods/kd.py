"""Logit knowledge distillation (Hinton et al.), pixel-wise on the 1/8-resolution logits (docs/reference.md §3.2)."""
from __future__ import annotations

from typing import Dict, Iterable

from torch import Tensor

from kdlib.methods.base import DistillLoss, PairSpec
from kdlib.losses.functional import kd_loss
from kdlib.models.output import SegOutput
from kdlib.registry import METHODS


@METHODS.register("kd")
class KD(DistillLoss):
    """Term ``kd``: :func:`kdlib.losses.functional.kd_loss` of the student and teacher logits.

    ``L_kd = T^2 / (B h w) * sum_{b,i} KL(softmax(z^T_{b,:,i} / T) || softmax(z^S_{b,:,i} / T))`` over
    (B, K, h, w) logits, every pixel included. Stateless. Options: ``temperature`` (T, default 1).
    """

    terms = ("kd",)
    distils = ("logits",)
    display_name = "KD"
    # lambda_kd = 1 and T = 1 in CIRKD on every dataset (Af-DCD uses 0.5 on ADE20K / COCO-Stuff for its
    # own method; plain KD baselines keep 1).
    paper_weights = {"kd": 1.0}

    def __init__(self, pair: PairSpec, enabled: Iterable[str], temperature: float = 1.0) -> None:
        super().__init__(pair, enabled)
        if temperature <= 0:
            raise ValueError(f"kd temperature must be positive, got {temperature}")
        self.temperature = float(temperature)

    def forward(self, student: SegOutput, teacher: SegOutput, labels: Tensor) -> Dict[str, Tensor]:
        return {"kd": kd_loss(student.logits, teacher.logits, self.temperature)}
