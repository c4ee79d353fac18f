"""Display names: the one place figures, tables and reports get the human names of models and methods."""
from __future__ import annotations

from typing import Optional

#: Registered model name -> the papers' name for it.
MODEL_LABELS = {"deeplabv3_resnet18": "DeepLabV3-R18", "deeplabv3_mobilenetv2": "DeepLabV3-MBV2",
                "pspnet_resnet18": "PSPNet-R18", "deeplabv3_resnet101": "DeepLabV3-R101",
                "segformer_mit_b0": "SegFormer-B0", "segformer_mit_b4": "SegFormer-B4"}


def model_label(model: str, width: Optional[float] = None) -> str:
    """``deeplabv3_resnet18`` -> ``DeepLabV3-R18`` (``×0.25`` appended when ``width`` is not 1)."""
    label = MODEL_LABELS.get(model, model)
    if width is not None and float(width) != 1.0:
        label += f" ×{float(width):g}"
    return label


def method_label(method: str) -> str:
    """``none`` -> ``baseline``; a registered method -> its ``display_name`` (``cirkd`` -> ``CIRKD``)."""
    from kdlib.methods.base import method_label as label

    return label(method)


__all__ = ["MODEL_LABELS", "method_label", "model_label"]
