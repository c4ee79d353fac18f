"""Atomic checkpoints with everything needed to resume bit-exactly on CPU, and the one loader of trained
segmentation models (:func:`load_segmentation_model`)."""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any, Dict, NamedTuple, Optional, Union

import numpy as np
import torch

from kdlib.atomic import atomic_path

CHECKPOINT_FORMAT = "kdlib-checkpoint-v1"


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` atomically (:func:`kdlib.atomic.atomic_path`): a crash never leaves a half-written file."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)


def rng_state() -> Dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def load_checkpoint(path: str | os.PathLike) -> Dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a kdlib checkpoint (for official CIRKD/Af-DCD files use "
                         f"kdlib.models.load_official)")
    return ckpt


class LoadedCheckpoint(NamedTuple):
    """A segmentation model read from a checkpoint (on the CPU, in train mode), the config of the run that made
    it (``{}`` for an official file) and the file it came from."""

    model: Any
    config: Dict[str, Any]
    path: Path


def load_segmentation_model(checkpoint: Union[str, os.PathLike], num_classes: Optional[int] = None,
                            model_name: Optional[str] = None, width: Optional[float] = None,
                            role: str = "checkpoint", width_field: str = "width") -> LoadedCheckpoint:
    """The one loader of trained segmentation models: a kdlib run directory (its ``best.pt``, else
    ``final.pt``), a kdlib weights file, or an official CIRKD / Af-DCD state dict.

    A kdlib file records its model, width and class count: ``model_name``, ``width`` and ``num_classes``, when
    given, are checked against it (a width the file does not have is refused, not ignored; ``width_field`` is
    the name the caller's user sets it by, e.g. ``teacher_width``). An official file records none of them, so
    model and classes are required (``width`` defaults to 1.0); its keys are mapped and checked all or nothing
    (:func:`kdlib.models.load_official`). ``role`` names the file in error messages (``teacher checkpoint``,
    ...). Every mistake is one ``ValueError`` / ``FileNotFoundError`` that says what to do.
    """
    from kdlib.engine.rundir import weights_file
    from kdlib.models import OfficialCheckpointError, build_model, load_official

    from kdlib.engine.reuse import install_default_run

    install_default_run(checkpoint)   # a default teacher folder in a fresh clone: the committed run
    path = weights_file(Path(checkpoint))
    blob = torch.load(path, map_location="cpu", weights_only=False)
    if isinstance(blob, dict) and blob.get("format") == CHECKPOINT_FORMAT:
        if blob.get("kind") == "resumable":
            raise ValueError(f"{role} {path} is a resumable training state; give the run directory or its "
                             f"best.pt / final.pt")
        name = blob["model_name"]
        if model_name and model_name != name:
            raise ValueError(f"{role} {path} holds a {name}, but the config asks for {model_name}")
        if width is not None and float(width) != float(blob["width"]):
            raise ValueError(f"{role} {path} holds a {name} at width {blob['width']:g}, but {width_field}={width:g} "
                             f"was asked for: set {width_field}={blob['width']:g} or use a checkpoint of that width")
        if num_classes is not None and blob["num_classes"] != num_classes:
            raise ValueError(f"{role} {path} has {blob['num_classes']} classes but the dataset has {num_classes}; "
                             f"use a model trained on this dataset")
        model = build_model(name, blob["num_classes"], aux=blob.get("aux", True), width=blob["width"])
        model.load_state_dict(blob["model"])
        return LoadedCheckpoint(model, dict(blob.get("config", {})), path)
    if not model_name or num_classes is None:
        raise ValueError(f"{role} {path} is an official state dict, which records neither the model nor its class "
                         f"count: give the model name (e.g. deeplabv3_resnet101) and the dataset")
    model = build_model(model_name, int(num_classes), aux=True, width=1.0 if width is None else float(width))
    try:
        load_official(model, blob)
    except OfficialCheckpointError as exc:
        raise OfficialCheckpointError(f"{role} {path}: {exc}") from None
    return LoadedCheckpoint(model, {}, path)
