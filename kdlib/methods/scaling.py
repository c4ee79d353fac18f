r"""``weight_scaling=paper_shapes``: bring each loss term from the paper's tensor sizes to the run's.

The published loss weights were set for the papers' tensors: Cityscapes 512 x 1024 crops, output stride 8, so
64 x 128 feature maps, and full-width models (a DeepLabV3-R101 teacher's last stage has 2,048 channels). A run
on smaller maps or narrower models computes the same formulas on fewer elements, and a term whose *size* grows
with the tensors is then weaker or stronger, relative to the cross-entropy, than in the paper. The rule below is
a pure function of the two sets of shapes, fixed before any run (no tuning on results):

* a term that **sums over elements** (Af-DCD's :math:`L_{fd} = \frac{1}{B}\sum_{c,i,j}(G - F^T)^2` over
  :math:`C_t h w`) gets its weight multiplied by paper count / run count;
* a **similarity that sums over D channels** inside a softmax (Af-DCD's :math:`-\lVert\cdot\rVert_1` over the
  :math:`C_t / M` channels of a group) gets its temperature multiplied by :math:`D_{run} / D_{paper}`, so the
  logits have the paper's scale;
* a term whose value **scales with 1/(h w)** (AT: unit-norm attention vectors over h w positions, squared
  differences averaged over positions) gets its weight multiplied by :math:`(h w)_{run} / (h w)_{paper}`;
* **means** over elements, and **divergences between distributions of normalised vectors** (KD, CWD, CIRKD's
  relations, SKD, IFVD, FitNet), do not grow with the tensors: factor 1.

Each method states its own case in :meth:`kdlib.methods.base.DistillLoss.shape_scaling`; this module computes
the effective weights and options from them. It is off by default (``weight_scaling=none``, the published
weights). The why study (``kdlib proxy why_loss_scale``, results/README.md) measures what it changes.
"""
from __future__ import annotations

from typing import Any, Dict, Mapping, Tuple

from kdlib.methods.base import PairSpec, TensorShapes
from kdlib.registry import METHODS

#: The papers' training crop (Cityscapes, both papers) and the CNN models' output stride.
PAPER_CROP = (512, 1024)
OUTPUT_STRIDE = 8


def feature_shapes(pair: PairSpec, crop_size: Tuple[int, int], output_stride: int = OUTPUT_STRIDE) -> TensorShapes:
    """The shapes a method sees for ``pair`` trained on ``crop_size`` crops."""
    return TensorShapes(pair, int(crop_size[0]) // output_stride, int(crop_size[1]) // output_stride)


def scaled_settings(method: str, run: TensorShapes, paper: TensorShapes, loss_weights: Mapping[str, float],
                    options: Mapping[str, Any]) -> Tuple[Dict[str, float], Dict[str, Any], Dict[str, Any]]:
    """``(loss_weights, method_options, record)`` after the rule: each weight times its factor, the options the
    method rescales replaced; ``record`` states the shapes, factors and changed options (for the run folder)."""
    factors, changed = METHODS.get(method).shape_scaling(run, paper, options)
    weights = {term: float(w) * factors.get(term, 1.0) for term, w in loss_weights.items()}
    new_options = {**dict(options), **changed}
    record = {"rule": "paper_shapes", "run_feature_size": [run.height, run.width],
              "paper_feature_size": [paper.height, paper.width],
              "run_channels": {"student_c4": run.pair.student_c4, "teacher_c4": run.pair.teacher_c4,
                               "student_feature": run.pair.student_feature, "teacher_feature": run.pair.teacher_feature},
              "paper_channels": {"student_c4": paper.pair.student_c4, "teacher_c4": paper.pair.teacher_c4,
                                 "student_feature": paper.pair.student_feature,
                                 "teacher_feature": paper.pair.teacher_feature},
              "weight_factors": {t: factors.get(t, 1.0) for t in loss_weights}, "loss_weights": weights,
              "changed_options": {k: {"from": options.get(k), "to": v} for k, v in changed.items()}}
    return weights, new_options, record


__all__ = ["OUTPUT_STRIDE", "PAPER_CROP", "feature_shapes", "scaled_settings"]
