"""Small layer helpers shared by backbones and heads."""
from __future__ import annotations

import torch.nn as nn


def scale_channels(channels: int, width: float) -> int:
    """Channel count of the paper model (``width=1.0``) scaled by ``width``, at least 1."""
    return max(1, int(round(channels * width)))


def conv_bn_relu(c_in: int, c_out: int, kernel: int = 1, dilation: int = 1) -> nn.Sequential:
    """Conv (no bias, 'same' padding for odd kernels) -> BatchNorm -> ReLU, as (0, 1, 2)."""
    padding = dilation * (kernel - 1) // 2
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, padding=padding, dilation=dilation, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )
