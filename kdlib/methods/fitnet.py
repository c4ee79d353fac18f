"""FitNet hint distillation as released in the CIRKD repository — docs/reference.md §3.5."""
from __future__ import annotations

from typing import Dict, Iterable

import torch.nn as nn
from torch import Tensor

from kdlib.methods.base import DistillLoss, PairSpec
from kdlib.losses.functional import fitnet_loss, kd_loss
from kdlib.models.output import SegOutput
from kdlib.registry import METHODS


@METHODS.register("fitnet")
class FitNet(DistillLoss):
    r"""FitNet on the head feature through a 1x1 connector, plus the released baseline's KD term.

    Terms:

    * ``kd`` — :func:`~kdlib.losses.functional.kd_loss` of the (B, K, h, w) logits (``kd_temperature``).
    * ``fitnet`` — :func:`~kdlib.losses.functional.fitnet_loss`:
      :math:`\frac{1}{B C_t h w}\sum (P(F^S) - F^T)^2`, with P a 1x1 conv C_s -> C_t without bias, always
      present (even for equal widths, as in the official code), trained with the student by SGD.
      F^S: (B, C_s, h, w) student head feature, F^T: (B, C_t, h, w) teacher head feature.

    Options: ``kd_temperature`` (1).
    """

    terms = ("kd", "fitnet")
    distils = ("logits", "feature")
    display_name = "FitNet"
    # released CIRKD-repo scripts (Cityscapes only, used for every dataset): KD 1 + FitNet 10
    paper_weights = {"kd": 1.0, "fitnet": 10.0}

    def __init__(self, pair: PairSpec, enabled: Iterable[str], kd_temperature: float = 1.0) -> None:
        super().__init__(pair, enabled)
        if kd_temperature <= 0:
            raise ValueError(f"kd_temperature must be positive, got {kd_temperature}")
        self.kd_temperature = float(kd_temperature)
        self.connector = (nn.Conv2d(pair.student_feature, pair.teacher_feature, 1, bias=False)
                          if "fitnet" in self.enabled else None)

    def forward(self, student: SegOutput, teacher: SegOutput, labels: Tensor) -> Dict[str, Tensor]:
        out: Dict[str, Tensor] = {}
        if "kd" in self.enabled:
            out["kd"] = kd_loss(student.logits, teacher.logits, self.kd_temperature)
        if self.connector is not None:
            out["fitnet"] = fitnet_loss(self.connector(student.feature), teacher.feature)
        return out
