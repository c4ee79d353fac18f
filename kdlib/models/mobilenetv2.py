"""Dilated MobileNetV2 (width 1.0 feature stack, no final 1x1->1280 conv), output stride 8.

docs/reference.md §2.2: stem conv3x3 s2 (3->32) BN ReLU6, then inverted residuals (t, c, n, s):
(1,16,1,1) (6,24,2,2) (6,32,3,2) (6,64,4,2) (6,96,3,1) (6,160,3,2) (6,320,1,1) -> 320 channels.
Output-stride-8 conversion (the official post-hoc "no-stride dilate" rule, applied here at build time):
blocks 7..13 use dilate 2, blocks 14..17 dilate 4; a 3x3 conv that had stride 2 gets stride 1 and
dilation dilate/2, every other 3x3 conv (depthwise) gets dilation dilate; 1x1 convs are untouched.
Module names (features.<i>.conv.<j>) follow the official ImageNet checkpoint.
"""
from __future__ import annotations

import math
from typing import List, Tuple

import torch.nn as nn
from torch import Tensor

from kdlib.models.layers import scale_channels

SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
            (6, 320, 1, 1))


def _dilate_for_block(index: int) -> int:
    if 7 <= index <= 13:
        return 2
    if index >= 14:
        return 4
    return 1


class InvertedResidual(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, expand_ratio: int, dilate: int) -> None:
        super().__init__()
        hidden = int(round(c_in * expand_ratio))
        self.use_residual = stride == 1 and c_in == c_out  # decided by the original stride
        if dilate > 1:
            dw_stride, dw_dilation = 1, (dilate // 2 if stride == 2 else dilate)
        else:
            dw_stride, dw_dilation = stride, 1
        depthwise = [
            nn.Conv2d(hidden, hidden, 3, dw_stride, padding=dw_dilation, dilation=dw_dilation, groups=hidden,
                      bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(inplace=True),
        ]
        project = [nn.Conv2d(hidden, c_out, 1, bias=False), nn.BatchNorm2d(c_out)]
        expand = [] if expand_ratio == 1 else [
            nn.Conv2d(c_in, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True)]
        self.conv = nn.Sequential(*expand, *depthwise, *project)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(x) if self.use_residual else self.conv(x)


class MobileNetV2Dilated(nn.Module):
    """MobileNetV2 features at output stride 8; ``width`` scales every channel count."""

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        c_in = scale_channels(32, width)
        layers: List[nn.Module] = [nn.Sequential(
            nn.Conv2d(3, c_in, 3, 2, 1, bias=False), nn.BatchNorm2d(c_in), nn.ReLU6(inplace=True))]
        for t, c, n, s in SETTINGS:
            c_out = scale_channels(c, width)
            for i in range(n):
                layers.append(InvertedResidual(c_in, c_out, s if i == 0 else 1, t, _dilate_for_block(len(layers))))
                c_in = c_out
        self.features = nn.Sequential(*layers)
        self.channels: Tuple[int, ...] = (c_in,)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan))
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tuple[None, None, None, Tensor]:
        return None, None, None, self.features(x)
