"""Attention transfer (AT) as released in the CIRKD repository — docs/reference.md §3.5."""
from __future__ import annotations

from typing import Any, Dict, Iterable, Mapping, Optional, Tuple

from torch import Tensor

from kdlib.methods.base import DistillLoss, PairSpec, TensorShapes
from kdlib.losses.functional import at_loss, kd_loss
from kdlib.models.output import SegOutput
from kdlib.registry import METHODS


@METHODS.register("at")
class AT(DistillLoss):
    r"""Attention transfer on the head feature, plus the released baseline's KD term. Stateless.

    Terms:

    * ``kd`` — :func:`~kdlib.losses.functional.kd_loss` of the (B, K, h, w) logits (``kd_temperature``).
    * ``at`` — :func:`~kdlib.losses.functional.at_loss` of the head features (B, C_s, h, w) / (B, C_t, h, w):
      :math:`\frac{1}{B h w}\sum_{b,i}(a(F^S)_{b,i} - a(F^T)_{b,i})^2` with
      :math:`a(F) = \mathrm{normalize}_2(\frac{1}{C}\sum_c F_c^2)` per sample over the h*w positions
      (widths may differ).

    Options: ``kd_temperature`` (1); ``scale_to_positions`` (None = the released loss): the ``at`` term is
    multiplied by h*w / ``scale_to_positions``. a(F) has unit norm over the h*w positions, so the released
    loss shrinks like 1 / (h w) and its weight 10000, tuned on Cityscapes' 64 x 128 = 8192 feature positions,
    acts 64x stronger on an 8 x 16 map (measured on the quick preset: the ``at`` term then dominates the
    loss and the student reaches 10.3 % mIoU vs 28.7 % for CWD after 300 iterations). Set it to 8192 to give
    the term, at any map size, the magnitude it has at the paper's resolution.
    """

    terms = ("kd", "at")
    distils = ("logits", "feature")
    display_name = "AT"
    # released CIRKD-repo scripts (Cityscapes only, used for every dataset): KD 1 + AT 10000
    paper_weights = {"kd": 1.0, "at": 10000.0}

    def __init__(self, pair: PairSpec, enabled: Iterable[str], kd_temperature: float = 1.0,
                 scale_to_positions: Optional[int] = None) -> None:
        super().__init__(pair, enabled)
        if kd_temperature <= 0:
            raise ValueError(f"kd_temperature must be positive, got {kd_temperature}")
        if scale_to_positions is not None and int(scale_to_positions) <= 0:
            raise ValueError(f"scale_to_positions must be a positive number of positions or None, "
                             f"got {scale_to_positions}")
        self.kd_temperature = float(kd_temperature)
        self.scale_to_positions = None if scale_to_positions is None else int(scale_to_positions)

    @classmethod
    def shape_scaling(cls, run: TensorShapes, paper: TensorShapes, options: Mapping[str, Any]
                      ) -> Tuple[Dict[str, float], Dict[str, Any]]:
        """``weight_scaling=paper_shapes`` (:mod:`kdlib.methods.scaling`): the ``at`` term scales with 1 / (h w), so
        its weight is multiplied by (h w)_run / (h w)_paper — what ``scale_to_positions`` = the paper's positions
        does; nothing more when that option is already set."""
        if options.get("scale_to_positions") is not None:
            return {}, {}
        return {"at": run.positions / paper.positions}, {}

    def forward(self, student: SegOutput, teacher: SegOutput, labels: Tensor) -> Dict[str, Tensor]:
        out: Dict[str, Tensor] = {}
        if "kd" in self.enabled:
            out["kd"] = kd_loss(student.logits, teacher.logits, self.kd_temperature)
        if "at" in self.enabled:
            loss = at_loss(student.feature, teacher.feature)
            if self.scale_to_positions is not None:
                h, w = student.feature.shape[-2:]
                loss = loss * (h * w / self.scale_to_positions)
            out["at"] = loss
        return out
