"""The typed output every kdlib segmentation model returns."""
from __future__ import annotations

from typing import NamedTuple, Optional

from torch import Tensor


class SegOutput(NamedTuple):
    """Outputs of a segmentation model at the model's own resolution (nothing is upsampled): 1/8 of the input
    for the dilated CNNs; SegFormer's logits and feature are at 1/4 and its c4 at 1/32.

    Attributes:
        logits: (B, K, h, w) main classifier output.
        aux_logits: (B, K, h, w) auxiliary FCN head on the third backbone stage, or None.
        c4: (B, C4, h, w) last backbone stage (what Af-DCD distils).
        feature: (B, W, h, w) head feature right before the classifier, after its dropout
            (what CIRKD and the baselines distil).

    A NamedTuple (not a list) so that code names what it uses; it is still a tuple, so DDP,
    tracing and ``torch.utils.flop_counter`` handle it like any other output.
    """

    logits: Tensor
    aux_logits: Optional[Tensor]
    c4: Tensor
    feature: Tensor
