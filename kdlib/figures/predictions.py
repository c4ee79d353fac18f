"""Models for figures: load a trained model in eval mode, predict, extract features.

(Finding or training the runs a figure needs is a study: :func:`kdlib.studies.paper_figures.trained_runs`.)

* :func:`load_model` — a kdlib run directory / checkpoint (``best.pt``, else ``final.pt``, as
  :func:`kdlib.engine.rundir.weights_file` picks) or an official CIRKD / Af-DCD state dict → a
  :class:`~kdlib.models.Segmentor` in eval mode with frozen parameters, plus the run's resolved config.
* :func:`eval_dataset` — the run's validation data, unaugmented (as ``kdlib eval`` builds it).
* :func:`load_samples`, :func:`predict_labels`, :func:`extract_outputs` — images / labels of a few samples,
  full-resolution predicted label maps (:func:`kdlib.engine.evaluate.predict_logits`, the evaluation
  protocol: bilinear upsampling with align_corners=True, argmax) and the 1/8-resolution
  :class:`~kdlib.models.output.SegOutput` of a batch, without gradients.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from kdlib.models.output import SegOutput

PathLike = Union[str, os.PathLike]

__all__ = ["LoadedModel", "parse_run_dirs", "load_model", "eval_dataset", "load_samples",
           "predict_labels", "extract_outputs", "resolve_device"]


@dataclass
class LoadedModel:
    """A trained model ready for analysis.

    Attributes:
        model: the :class:`~kdlib.models.Segmentor`, in eval mode, parameters frozen, on the requested device.
        config: the run's resolved :class:`~kdlib.engine.config.TrainConfig` as a dict (``{}`` for an official
            checkpoint, which records none).
        checkpoint: the weights file that was read.
    """

    model: torch.nn.Module
    config: Dict[str, Any]
    checkpoint: Path


def resolve_device(device: Union[str, torch.device] = "auto") -> torch.device:
    """``'auto'`` → CUDA if available else CPU (:func:`kdlib.distributed.resolve_device`)."""
    from kdlib.distributed import resolve_device as _resolve

    return device if isinstance(device, torch.device) else _resolve(str(device))


def parse_run_dirs(text: str) -> Dict[str, str]:
    """``"none:runs/a, cirkd:runs/b"`` → ``{"none": "runs/a", "cirkd": "runs/b"}`` (notebook parameter form).

    Entries are comma-separated ``method:run_dir`` pairs (the first ``:`` splits); empty text gives ``{}``.
    """
    out: Dict[str, str] = {}
    for item in (part.strip() for part in str(text).split(",") if part.strip()):
        method, sep, path = item.partition(":")
        if not sep or not method.strip() or not path.strip():
            raise ValueError(f"run_dirs entry {item!r} must look like method:run_dir (e.g. cirkd:runs/my_cirkd)")
        out[method.strip()] = path.strip()
    return out


def load_model(checkpoint: PathLike, device: Union[str, torch.device] = "cpu", *, model_name: Optional[str] = None,
               num_classes: Optional[int] = None, width: Optional[float] = None) -> LoadedModel:
    """Load a trained model for analysis (eval mode, ``requires_grad=False``).

    Args:
        checkpoint: a kdlib run directory (its ``best.pt``, else ``final.pt``), a kdlib weights file, or an
            official CIRKD / Af-DCD state dict.
        device: ``'auto'``, ``'cpu'``, ``'cuda'``, ... or a :class:`torch.device`.
        model_name, num_classes, width: only for an official state dict, which records none of them
            (e.g. ``deeplabv3_resnet101``, 19, 1.0); a kdlib checkpoint holds its own.
    """
    from kdlib.engine.checkpoint import load_segmentation_model

    loaded = load_segmentation_model(checkpoint, num_classes, model_name=model_name, width=width)
    loaded.model.eval().requires_grad_(False)
    return LoadedModel(loaded.model.to(resolve_device(device)), loaded.config, loaded.path)


def eval_dataset(config: Mapping[str, Any], split: Optional[str] = None) -> Any:
    """The unaugmented dataset of a run's ``config`` (``split`` default: the run's ``val_split``)."""
    from kdlib.data import build_dataset, generates_on_first_use

    name, root = config.get("dataset"), config.get("data_root")
    if not name or not root:
        raise ValueError("the config names no dataset / data_root (an official checkpoint records none)")
    options = dict(config.get("dataset_options", {}))
    if generates_on_first_use(name):
        options.setdefault("progress", False)
    return build_dataset(name, root, split or config.get("val_split", "val"), augment=False, **options)


def load_samples(dataset: Any, indices: Sequence[int]) -> Tuple[Tensor, Tensor, np.ndarray]:
    """Normalised images, labels and display images of samples ``indices`` (all of one size).

    Returns:
        images (N, 3, H, W) float32 (the network input), labels (N, H, W) int64 (ignore = -1),
        rgb (N, H, W, 3) uint8 (for display).
    """
    if not len(indices):
        raise ValueError("load_samples: no sample indices given")
    pairs = [dataset[int(i)] for i in indices]
    sizes = {tuple(img.shape[-2:]) for img, _ in pairs}
    if len(sizes) > 1:
        raise ValueError(f"load_samples: the samples differ in size ({sorted(sizes)}); pick samples of one size")
    images = torch.stack([img for img, _ in pairs])
    labels = torch.stack([lab for _, lab in pairs]).long()
    rgb = np.stack([dataset.denormalize(img) for img in images])
    return images, labels, rgb


@torch.no_grad()
def predict_labels(model: torch.nn.Module, images: Tensor, out_size: Optional[Sequence[int]] = None,
                   batch_size: int = 4) -> Tensor:
    """Full-resolution predicted label maps (N, H, W) int64 of images (N, 3, H, W), on the CPU.

    Logits are upsampled bilinearly (align_corners=True) to ``out_size`` (default the image size) and
    argmax'ed, as :func:`kdlib.engine.evaluate.evaluate` does (single scale, no flip).
    """
    from kdlib.engine.evaluate import predict_logits

    device = next(model.parameters()).device
    size = tuple(out_size) if out_size is not None else tuple(images.shape[-2:])
    was_training = model.training
    model.eval()
    preds: List[Tensor] = []
    for start in range(0, images.shape[0], batch_size):
        logits = predict_logits(model, images[start:start + batch_size].to(device), size)
        preds.append(logits.argmax(1).cpu())
    model.train(was_training)
    return torch.cat(preds)


@torch.no_grad()
def extract_outputs(model: torch.nn.Module, images: Tensor) -> SegOutput:
    """The model's :class:`SegOutput` for images (B, 3, H, W) in eval mode, as float32 CPU tensors.

    Shapes (1/8 resolution, h = H/8, w = W/8): logits (B, K, h, w), aux_logits (B, K, h, w) or None,
    c4 (B, C4, h, w) (Af-DCD's feature), feature (B, W, h, w) (the head feature CIRKD distils).
    """
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = model(images.to(device))
    model.train(was_training)
    return SegOutput(*(None if t is None else t.detach().float().cpu() for t in out))
