"""Paper-exact segmentation models, their complexity, and official checkpoint I/O."""
from __future__ import annotations

from kdlib.models import zoo as _zoo  # noqa: F401  (registers the models)
from kdlib.models.complexity import Complexity, complexity
from kdlib.models.official import (OfficialCheckpointError, export_official, load_imagenet_backbone,
                                   load_official)
from kdlib.models.output import SegOutput
from kdlib.models.segmentor import Segmentor
from kdlib.registry import MODELS


def build_model(name: str, num_classes: int, aux: bool = True, width: float = 1.0) -> Segmentor:
    """Build a registered model (``MODELS.names()``): DeepLabV3 / PSPNet on dilated ResNet or MobileNetV2,
    SegFormer on MiT.

    Args:
        name: ``deeplabv3_resnet101``, ``deeplabv3_resnet18``, ``deeplabv3_mobilenetv2``, ``pspnet_resnet18``,
            ``segformer_mit_b0``, ``segformer_mit_b4``.
        num_classes: K, the classifier width.
        aux: build the auxiliary FCN head on c3 (ResNet models; the official ResNet models always have it).
        width: multiplies every channel count; 1.0 is the paper model, smaller values give proxy models
            (SegFormer: the per-head dim and the decoder dim, see :mod:`kdlib.models.segformer`).

    Returns a :class:`Segmentor` whose forward returns :class:`SegOutput` (logits at 1/8 resolution; SegFormer
    1/4).
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if not width > 0:
        raise ValueError(f"width must be > 0, got {width}")
    return MODELS.build(name, num_classes=num_classes, aux=aux, width=width)


__all__ = ["build_model", "complexity", "Complexity", "load_official", "export_official",
           "load_imagenet_backbone", "OfficialCheckpointError", "SegOutput", "Segmentor", "MODELS"]
