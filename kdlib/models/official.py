"""Load and export state dicts in the official CIRKD / Af-DCD key layout, and ImageNet backbone files.

Key layout of the official code (CIRKD commit 7e0d21f and later, Af-DCD): the backbone lives under
``pretrained.`` (MobileNetV2: ``pretrained.net.``), the head under ``head.`` and the auxiliary head
under ``auxlayer.``; below those prefixes the names are the same as kdlib's (kdlib keeps the official
module names on purpose). Checkpoints saved from a DDP-wrapped model carry a ``module.`` prefix; it is
accepted and stripped.

Loading is all-or-nothing: a missing or unexpected key, a shape mismatch or a wrong class count raises
one :class:`OfficialCheckpointError` that names the keys, and the model is left untouched.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Tuple, Union

import torch
import torch.nn as nn
from torch import Tensor

from kdlib.atomic import atomic_path
from kdlib.models.state_io import OfficialCheckpointError, StateSource, check_and_build, read_state, summarise_keys


# kdlib prefix -> official prefix, per backbone family
_PREFIXES_RESNET = (("backbone.", "pretrained."), ("aux_head.", "auxlayer."), ("head.", "head."))
_PREFIXES_MOBILENET = (("backbone.", "pretrained.net."), ("aux_head.", "auxlayer."), ("head.", "head."))

# official ImageNet file expected for each model's backbone, and the keys of those files that belong to
# the ImageNet classifier (dropped by the official loaders, so tolerated here)
IMAGENET_FILES = {
    "deeplabv3_resnet101": "resnet101-imagenet.pth",
    "deeplabv3_resnet18": "resnet18-imagenet.pth",
    "pspnet_resnet18": "resnet18-imagenet.pth",
    "deeplabv3_mobilenetv2": "mobilenetv2-imagenet.pth",
}
_IMAGENET_CLASSIFIER_PREFIXES = ("fc.", "classifier.", "features.18.")


def _prefixes(model: nn.Module) -> Tuple[Tuple[str, str], ...]:
    from kdlib.models.mobilenetv2 import MobileNetV2Dilated

    backbone = getattr(model, "backbone", None)
    return _PREFIXES_MOBILENET if isinstance(backbone, MobileNetV2Dilated) else _PREFIXES_RESNET


def _rename(key: str, pairs: Tuple[Tuple[str, str], ...], to_official: bool) -> Optional[str]:
    for ours, theirs in pairs:
        src, dst = (ours, theirs) if to_official else (theirs, ours)
        if key.startswith(src):
            return dst + key[len(src):]
    return None


def load_official(model: nn.Module, state_dict: StateSource) -> nn.Module:
    """Load a state dict saved by the official CIRKD or Af-DCD code into a kdlib model (all or nothing).

    Args:
        model: a kdlib :class:`~kdlib.models.Segmentor` built with the matching name, class count,
            ``aux`` and ``width=1.0``.
        state_dict: the official state dict (keys ``pretrained.*``, ``head.*``, ``auxlayer.*``, with or
            without a ``module.`` prefix) or a path to a file holding one.

    Raises:
        OfficialCheckpointError: missing / unexpected keys, shape mismatches or a wrong class count;
            the message names the keys. The model is not modified in that case.
    """
    from kdlib.models.segformer import SegFormer, load_official_segformer

    if isinstance(model, SegFormer):   # CIRKD's SegFormer files use their own flat key layout
        return load_official_segformer(model, state_dict)
    state = read_state(state_dict)
    pairs = _prefixes(model)
    renamed: Dict[str, Tensor] = {}
    unknown: List[str] = []
    for key, value in state.items():
        ours = _rename(key, pairs, to_official=False)
        (unknown.append(key) if ours is None else renamed.__setitem__(ours, value))
    model_state = model.state_dict()
    if unknown:
        raise OfficialCheckpointError(
            f"official checkpoint does not fit the model; nothing was loaded.\n  keys outside the official "
            f"layout (expected prefixes {', '.join(sorted({p for _, p in pairs}))}): {summarise_keys(unknown)}")
    _check_class_count(model, renamed)
    hint = ("Build the kdlib model with the same architecture name, num_classes, aux=True for ResNet models "
            "and width=1.0; checkpoints of the official repository's later 'CIRKDV2' code use other head "
            "widths and do not fit the paper models.")
    full = check_and_build(model_state, renamed, "official checkpoint", hint,
                            display=lambda key: _rename(key, pairs, to_official=True) or key)
    model.load_state_dict(full, strict=True)
    return model


def _check_class_count(model: nn.Module, renamed: Mapping[str, Tensor]) -> None:
    num_classes = getattr(model, "num_classes", None)
    classifier = next((k for k in ("head.block.4.weight", "head.classifier.weight") if k in renamed), None)
    if num_classes is None or classifier is None:
        return
    found = renamed[classifier].shape[0]
    if found != num_classes:
        raise OfficialCheckpointError(
            f"the checkpoint's classifier has {found} classes but the model was built with num_classes="
            f"{num_classes}; nothing was loaded. Build the model with num_classes={found} (or use a "
            f"checkpoint trained on this dataset).")


def export_official(model: nn.Module, path: Union[str, os.PathLike, None] = None) -> "OrderedDict[str, Tensor]":
    """Return (and optionally save to ``path``) the model's state dict in the official key layout."""
    pairs = _prefixes(model)
    out: "OrderedDict[str, Tensor]" = OrderedDict()
    for key, value in model.state_dict().items():
        official = _rename(key, pairs, to_official=True)
        if official is None:
            raise OfficialCheckpointError(f"model key {key!r} has no official counterpart")
        out[official] = value.detach().clone()
    if path is not None:
        with atomic_path(path) as tmp:
            torch.save(out, tmp)
    return out


def load_imagenet_backbone(model: nn.Module, path: Union[str, os.PathLike]) -> nn.Module:
    """Initialise ``model.backbone`` from an ImageNet checkpoint in the official repositories' format.

    Expected files: ``resnet18-imagenet.pth`` / ``resnet101-imagenet.pth`` (deep-stem v1s ResNets, keys
    ``conv1.*``, ``bn1.*``, ..., ``layer4.*``) or ``mobilenetv2-imagenet.pth`` (keys ``features.*``).
    torchvision / timm / mmcv ResNet weights do not fit (their stems differ) and are rejected. Every
    backbone key must be present with the right shape; only the ImageNet classifier's keys (``fc.*``,
    ``classifier.*``, MobileNetV2's final ``features.18.*``) may be extra. All or nothing.
    """
    from kdlib.models.segformer import SegFormer, load_mit_imagenet

    if isinstance(model, SegFormer):   # SegFormer's own ImageNet files (mit_b0.pth / mit_b4.pth)
        return load_mit_imagenet(model, path)
    expected = IMAGENET_FILES.get(getattr(model, "name", ""), "the official ImageNet checkpoint")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"ImageNet checkpoint not found: {path}. {getattr(model, 'name', 'This model')} expects the official "
            f"CIRKD file '{expected}' (deep-stem 'v1s' weights; torchvision weights do not fit). Download it "
            f"from the CIRKD repository's README links and pass its local path, or train without ImageNet "
            f"initialisation (the papers' R18* setting).")
    state = read_state(path)
    from kdlib.models.mobilenetv2 import MobileNetV2Dilated

    backbone = model.backbone
    if isinstance(backbone, MobileNetV2Dilated):
        state = {k[len("net."):] if k.startswith("net.") else k: v for k, v in state.items()}
    hint = (f"Expected the official '{expected}' at width=1.0 (deep stem 64-64-128 for ResNets). "
            f"torchvision/timm ResNet weights have a different stem and cannot be used.")
    full = check_and_build(backbone.state_dict(), state, f"ImageNet checkpoint {path.name}", hint,
                            tolerated_extra=_IMAGENET_CLASSIFIER_PREFIXES)
    backbone.load_state_dict(full, strict=True)
    return model
