"""Backbone + head (+ optional auxiliary head) -> :class:`SegOutput`."""
from __future__ import annotations

from typing import Optional

import torch.nn as nn
from torch import Tensor

from kdlib.models.output import SegOutput


class Segmentor(nn.Module):
    """A segmentation network whose ``forward`` returns a :class:`SegOutput` (1/8 resolution; SegFormer 1/4).

    ``backbone(x)`` returns ``(c1, c2, c3, c4)`` (entries may be None when a backbone does not expose
    them); ``head(c4)`` returns ``(logits, feature)``; ``aux_head(c3)`` the auxiliary logits.
    """

    def __init__(self, backbone: nn.Module, head: nn.Module, aux_head: Optional[nn.Module],
                 num_classes: int, name: str = "", width: float = 1.0) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.aux_head = aux_head
        self.num_classes = num_classes
        self.name = name
        self.width = width

    @property
    def feature_channels(self) -> int:
        """Channels of ``SegOutput.feature`` (the head width)."""
        return self._last_conv_out(self.head, before_classifier=True)

    @property
    def c4_channels(self) -> int:
        return int(self.backbone.channels[-1])

    @staticmethod
    def _last_conv_out(module: nn.Module, before_classifier: bool) -> int:
        convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
        return convs[-2 if before_classifier else -1].out_channels

    def forward(self, x: Tensor) -> SegOutput:
        _, _, c3, c4 = self.backbone(x)
        logits, feature = self.head(c4)
        aux_logits = self.aux_head(c3) if self.aux_head is not None else None
        return SegOutput(logits=logits, aux_logits=aux_logits, c4=c4, feature=feature)
