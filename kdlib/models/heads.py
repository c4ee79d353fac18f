"""Segmentation heads of the CVPR-era official models (docs/reference.md §2.3, §2.4).

Every head maps c4 to ``(logits, feature)`` where ``feature`` is the tensor right before the 1x1
classifier, taken after the head's Dropout(0.1) (so it carries dropout noise in train mode, as in the
official code). Attribute names follow the official checkpoints.
"""
from __future__ import annotations

from typing import Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from kdlib.models.layers import conv_bn_relu


class ASPPConv(nn.Module):
    def __init__(self, c_in: int, c_out: int, rate: int) -> None:
        super().__init__()
        self.block = conv_bn_relu(c_in, c_out, 3, dilation=rate)

    def forward(self, x: Tensor) -> Tensor:
        return self.block(x)


class ASPPPooling(nn.Module):
    """Image-level branch: global average pool -> 1x1 conv BN ReLU -> bilinear upsample (align_corners)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.gap = nn.Sequential(nn.AdaptiveAvgPool2d(1), *conv_bn_relu(c_in, c_out, 1))

    def forward(self, x: Tensor) -> Tensor:
        return F.interpolate(self.gap(x), x.shape[2:], mode="bilinear", align_corners=True)


class ASPP(nn.Module):
    """1x1 branch, three 3x3 atrous branches (rates 12/24/36), image pooling; concat -> 1x1 -> Dropout(0.5)."""

    def __init__(self, c_in: int, c_out: int, rates: Sequence[int] = (12, 24, 36)) -> None:
        super().__init__()
        self.b0 = conv_bn_relu(c_in, c_out, 1)
        self.b1 = ASPPConv(c_in, c_out, rates[0])
        self.b2 = ASPPConv(c_in, c_out, rates[1])
        self.b3 = ASPPConv(c_in, c_out, rates[2])
        self.b4 = ASPPPooling(c_in, c_out)
        self.project = nn.Sequential(*conv_bn_relu(5 * c_out, c_out, 1), nn.Dropout(0.5))

    def forward(self, x: Tensor) -> Tensor:
        branches = (self.b0(x), self.b1(x), self.b2(x), self.b3(x), self.b4(x))
        return self.project(torch.cat(branches, dim=1))


class DeepLabV3Head(nn.Module):
    """ASPP -> conv3x3 BN ReLU Dropout(0.1) (= feature) -> conv1x1 classifier (``block[4]``)."""

    def __init__(self, c_in: int, num_classes: int, channels: int) -> None:
        super().__init__()
        self.aspp = ASPP(c_in, channels)
        self.block = nn.Sequential(*conv_bn_relu(channels, channels, 3), nn.Dropout(0.1),
                                   nn.Conv2d(channels, num_classes, 1))

    def forward(self, c4: Tensor) -> Tuple[Tensor, Tensor]:
        feature = self.block[:4](self.aspp(c4))
        return self.block[4](feature), feature


class PyramidPooling(nn.Module):
    """Adaptive average pools to bins 1, 2, 3, 6, each 1x1 conv (c_in/4) BN ReLU, upsampled, concat with x."""

    def __init__(self, c_in: int, bins: Sequence[int] = (1, 2, 3, 6)) -> None:
        super().__init__()
        self.bins = tuple(bins)
        c_branch = c_in // 4
        self.conv1 = conv_bn_relu(c_in, c_branch, 1)
        self.conv2 = conv_bn_relu(c_in, c_branch, 1)
        self.conv3 = conv_bn_relu(c_in, c_branch, 1)
        self.conv4 = conv_bn_relu(c_in, c_branch, 1)

    def forward(self, x: Tensor) -> Tensor:
        size = x.shape[2:]
        convs = (self.conv1, self.conv2, self.conv3, self.conv4)
        pooled = [F.interpolate(conv(F.adaptive_avg_pool2d(x, b)), size, mode="bilinear", align_corners=True)
                  for conv, b in zip(convs, self.bins)]
        return torch.cat([x, *pooled], dim=1)


class PSPHead(nn.Module):
    """Pyramid pooling -> conv3x3 (2*c_in -> channels) BN ReLU Dropout(0.1) (= feature) -> classifier."""

    def __init__(self, c_in: int, num_classes: int, channels: int) -> None:
        super().__init__()
        self.psp = PyramidPooling(c_in)
        c_cat = c_in + 4 * (c_in // 4)
        self.block = nn.Sequential(*conv_bn_relu(c_cat, channels, 3), nn.Dropout(0.1))
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, c4: Tensor) -> Tuple[Tensor, Tensor]:
        feature = self.block(self.psp(c4))
        return self.classifier(feature), feature


class FCNHead(nn.Module):
    """Auxiliary head on c3: conv3x3 (c_in -> c_in/4) BN ReLU Dropout(0.1) -> conv1x1 classifier."""

    def __init__(self, c_in: int, num_classes: int) -> None:
        super().__init__()
        inter = max(1, c_in // 4)
        self.block = nn.Sequential(*conv_bn_relu(c_in, inter, 3), nn.Dropout(0.1), nn.Conv2d(inter, num_classes, 1))

    def forward(self, c3: Tensor) -> Tensor:
        return self.block(c3)
