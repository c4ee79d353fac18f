"""The four models of the papers, registered by name (docs/reference.md §2).

| name | backbone | head width | aux head |
| --- | --- | --- | --- |
| deeplabv3_resnet101 | ResNet-101 v1s, OS8 | ASPP 256 | FCN on c3 (1024 -> 256) |
| deeplabv3_resnet18 | ResNet-18 v1s, OS8 | ASPP 128 | FCN on c3 (256 -> 64) |
| deeplabv3_mobilenetv2 | MobileNetV2, OS8 | ASPP 128 | none (the papers use none) |
| pspnet_resnet18 | ResNet-18 v1s, OS8 | PPM + conv 128 | FCN on c3 (256 -> 64) |
| segformer_mit_b0 | MiT-B0 (strides 4..32) | all-MLP decoder 256, outputs at 1/4 | none |
| segformer_mit_b4 | MiT-B4 (strides 4..32) | all-MLP decoder 768, outputs at 1/4 | none |

These are the CVPR-era widths (13.6M / 61.1M / 12.9M / 3.2M parameters at 19 classes), not the
later widths of the official repository's HEAD. The SegFormers (3.72M / 64.0M at 19 classes) are the CIRKD
README's transformer pair (``kdlib.models.segformer``). Adding a model is one registered builder.
"""
from __future__ import annotations

from kdlib.models.heads import DeepLabV3Head, FCNHead, PSPHead
from kdlib.models.layers import scale_channels
from kdlib.models.mobilenetv2 import MobileNetV2Dilated
from kdlib.models.resnet_v1s import resnet18_v1s, resnet101_v1s
from kdlib.models.segformer import build_segformer
from kdlib.models.segmentor import Segmentor
from kdlib.registry import MODELS


def _resnet_segmentor(name: str, backbone, head_cls, head_width: int, num_classes: int, aux: bool,
                      width: float) -> Segmentor:
    c3, c4 = backbone.channels[2], backbone.channels[3]
    head = head_cls(c4, num_classes, scale_channels(head_width, width))
    aux_head = FCNHead(c3, num_classes) if aux else None
    return Segmentor(backbone, head, aux_head, num_classes, name=name, width=width)


@MODELS.register("deeplabv3_resnet101")
def deeplabv3_resnet101(num_classes: int, aux: bool = True, width: float = 1.0) -> Segmentor:
    return _resnet_segmentor("deeplabv3_resnet101", resnet101_v1s(width), DeepLabV3Head, 256, num_classes, aux,
                             width)


@MODELS.register("deeplabv3_resnet18")
def deeplabv3_resnet18(num_classes: int, aux: bool = True, width: float = 1.0) -> Segmentor:
    return _resnet_segmentor("deeplabv3_resnet18", resnet18_v1s(width), DeepLabV3Head, 128, num_classes, aux, width)


@MODELS.register("pspnet_resnet18")
def pspnet_resnet18(num_classes: int, aux: bool = True, width: float = 1.0) -> Segmentor:
    return _resnet_segmentor("pspnet_resnet18", resnet18_v1s(width), PSPHead, 128, num_classes, aux, width)


@MODELS.register("deeplabv3_mobilenetv2")
def deeplabv3_mobilenetv2(num_classes: int, aux: bool = True, width: float = 1.0) -> Segmentor:
    """DeepLabV3-MBV2. ``aux`` is accepted for a uniform signature; the papers' MBV2 has no aux head."""
    del aux
    backbone = MobileNetV2Dilated(width)
    head = DeepLabV3Head(backbone.channels[-1], num_classes, scale_channels(128, width))
    return Segmentor(backbone, head, None, num_classes, name="deeplabv3_mobilenetv2", width=width)


@MODELS.register("segformer_mit_b0")
def segformer_mit_b0(num_classes: int, aux: bool = True, width: float = 1.0) -> Segmentor:
    """SegFormer MiT-B0 (CIRKD README student). ``aux`` is accepted for a uniform signature; SegFormer has none."""
    del aux
    return build_segformer("segformer_mit_b0", num_classes, width)


@MODELS.register("segformer_mit_b4")
def segformer_mit_b4(num_classes: int, aux: bool = True, width: float = 1.0) -> Segmentor:
    """SegFormer MiT-B4 (CIRKD README teacher). ``aux`` is accepted for a uniform signature; SegFormer has none."""
    del aux
    return build_segformer("segformer_mit_b4", num_classes, width)
