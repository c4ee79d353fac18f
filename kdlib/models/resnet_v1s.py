"""Deep-stem dilated ResNet ("v1s"), output stride 8: the backbone of the R18 and R101 models.

Architecture (docs/reference.md §2.1, CVPR-era official CIRKD code):
- stem: conv3x3(3->64, s2) BN ReLU, conv3x3(64->64) BN ReLU, conv3x3(64->128) BN ReLU, maxpool 3x3 s2.
  The stem emits 128 channels, so ResNet-18's first block has a 1x1 projection shortcut.
- layer1 (64, s1), layer2 (128, s2), layer3 (256, s1, dilation 2), layer4 (512, s1, dilation 4).
- first block of a stage with dilation d uses dilation 1 if d in {1, 2} and 2 if d == 4; the other
  blocks use d; in a BasicBlock the second conv always uses d ("previous dilation").
Attribute names follow the official checkpoints (conv1/bn1/.../layer4, downsample.0/1) so ImageNet and
released weights load by name. No classifier: returns (c1, c2, c3, c4).
"""
from __future__ import annotations

from typing import List, Sequence, Tuple, Type, Union

import torch.nn as nn
from torch import Tensor

from kdlib.models.layers import scale_channels


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, c_in: int, planes: int, stride: int, dilation: int, second_dilation: int,
                 downsample: nn.Module | None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, planes, 3, stride, padding=dilation, dilation=dilation, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, padding=second_dilation, dilation=second_dilation,
                               bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, c_in: int, planes: int, stride: int, dilation: int, second_dilation: int,
                 downsample: nn.Module | None) -> None:
        super().__init__()
        # stride and dilation sit on the 3x3 conv; `second_dilation` is unused (kept for one signature)
        del second_dilation
        self.conv1 = nn.Conv2d(c_in, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


Block = Union[Type[BasicBlock], Type[Bottleneck]]


class ResNetV1s(nn.Module):
    """Deep-stem ResNet with output stride 8; ``width`` scales every channel count."""

    def __init__(self, block: Block, depths: Sequence[int], width: float = 1.0) -> None:
        super().__init__()
        stem_mid, stem_out = scale_channels(64, width), scale_channels(128, width)
        self.conv1 = nn.Conv2d(3, stem_mid, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem_mid)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(stem_mid, stem_mid, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(stem_mid)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv3 = nn.Conv2d(stem_mid, stem_out, 3, 1, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(stem_out)
        self.relu3 = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)

        self._c_in = stem_out
        planes = [scale_channels(p, width) for p in (64, 128, 256, 512)]
        self.layer1 = self._make_stage(block, planes[0], depths[0], stride=1, dilation=1)
        self.layer2 = self._make_stage(block, planes[1], depths[1], stride=2, dilation=1)
        self.layer3 = self._make_stage(block, planes[2], depths[2], stride=1, dilation=2)
        self.layer4 = self._make_stage(block, planes[3], depths[3], stride=1, dilation=4)
        self.channels: Tuple[int, int, int, int] = tuple(p * block.expansion for p in planes)  # type: ignore

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _make_stage(self, block: Block, planes: int, blocks: int, stride: int, dilation: int) -> nn.Sequential:
        c_out = planes * block.expansion
        downsample = None
        if stride != 1 or self._c_in != c_out:
            downsample = nn.Sequential(nn.Conv2d(self._c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
        first_dilation = 1 if dilation in (1, 2) else 2
        layers: List[nn.Module] = [block(self._c_in, planes, stride, first_dilation, dilation, downsample)]
        self._c_in = c_out
        layers += [block(c_out, planes, 1, dilation, dilation, None) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        x = self.relu1(self.bn1(self.conv1(x)))
        x = self.relu2(self.bn2(self.conv2(x)))
        x = self.relu3(self.bn3(self.conv3(x)))
        c1 = self.layer1(self.maxpool(x))
        c2 = self.layer2(c1)
        c3 = self.layer3(c2)
        c4 = self.layer4(c3)
        return c1, c2, c3, c4


def resnet18_v1s(width: float = 1.0) -> ResNetV1s:
    return ResNetV1s(BasicBlock, (2, 2, 2, 2), width)


def resnet101_v1s(width: float = 1.0) -> ResNetV1s:
    return ResNetV1s(Bottleneck, (3, 4, 23, 3), width)
