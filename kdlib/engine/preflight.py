"""Checks that run before any training: what can be known wrong without reading datasets or weights.

``check_run(cfg)`` runs in the notebooks' ``train_config`` (before it trains or launches ``torchrun``) and in
``kdlib plan`` for every planned run; ``kdlib train`` runs :func:`check_buildable` (also for
``--print-config``) and the trainer itself :func:`check_imagenet`. So a mistake is reported as one line
before anything is paid for:

* a **paper preset** (``kdlib.engine.recipes.PAPER_PRESETS``) reproduces a published run, whose student
  starts from the authors' ImageNet file: ``student_imagenet`` must name that file (it must exist, and its
  official name must be the one of this student), or be ``none``, the explicit, recorded opt-out (CIRKD
  Table 1's R18* setting);
* the student, teacher, dataset and method exist, and the method accepts its options and loss terms
  (the modules are built on PyTorch's ``meta`` device: no memory, no weights read);
* ``nproc_per_node`` does not exceed the visible GPUs (:func:`check_nproc`).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Dict, Optional, Union

from kdlib.engine.config import NO_IMAGENET, TrainConfig

if TYPE_CHECKING:
    from kdlib.methods import PairSpec


def imagenet_files() -> Dict[str, str]:
    """Model name -> the official ImageNet file name its backbone is initialised from (CIRKD / Af-DCD
    READMEs for the CNNs; SegFormer's ``mit_b*.pth``)."""
    from kdlib.models.official import IMAGENET_FILES
    from kdlib.models.segformer import IMAGENET_FILES as MIT_FILES

    return {**IMAGENET_FILES, **MIT_FILES}


def imagenet_file_for(model: str) -> str:
    """The official ImageNet file name of ``model``; ``ValueError`` for a model without one."""
    import difflib

    import kdlib.models  # noqa: F401  (registers the models)
    from kdlib.registry import MODELS

    if model not in MODELS:
        close = difflib.get_close_matches(str(model), MODELS.names(), n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise ValueError(f"unknown model {model!r}; {hint}registered: {', '.join(MODELS.names())}")
    files = imagenet_files()
    if model not in files:
        raise ValueError(f"{model} has no official ImageNet file (known: "
                         f"{', '.join(f'{m}: {f}' for m, f in files.items())}); pass student_imagenet=none")
    return files[model]


def imagenet_path(imagenet_dir: Union[str, os.PathLike, None], model: str) -> Optional[str]:
    """``student_imagenet`` for ``model`` from a notebook's ``imagenet_dir`` parameter.

    ``""`` / None: not given (None: the preset decides, and paper presets then stop with the file they
    need); ``"none"``: the explicit opt-out; a folder: ``<folder>/<official file name of model>`` (whether
    it exists is checked by :func:`check_run`).
    """
    if imagenet_dir in (None, ""):
        return None
    if str(imagenet_dir).lower() == NO_IMAGENET:
        return NO_IMAGENET
    return str(Path(imagenet_dir) / imagenet_file_for(model))


def check_imagenet(cfg: TrainConfig) -> None:
    """The paper presets' ImageNet requirement, the file's existence and its official name (see module doc)."""
    from kdlib.engine.recipes import PAPER_PRESETS

    value = cfg.student_imagenet
    if value in (None, ""):
        if cfg.preset in PAPER_PRESETS:
            expected = imagenet_files().get(cfg.student, "its official ImageNet file")
            raise ValueError(
                f"preset {cfg.preset} reproduces the papers' runs, whose {cfg.student} starts from the official "
                f"ImageNet file '{expected}': pass student_imagenet=PATH/{expected} (kdlib train) or "
                f"imagenet_dir=FOLDER holding it (notebooks); student_imagenet=none trains without ImageNet "
                f"initialisation on purpose (CIRKD Table 1's R18* setting)")
        return
    if str(value).lower() == NO_IMAGENET:
        return
    path = Path(value)
    expected = imagenet_files().get(cfg.student)
    if not path.is_file():
        hint = f" ({cfg.student} expects the official '{expected}')" if expected else ""
        raise FileNotFoundError(f"ImageNet file not found: {path}{hint}; or pass student_imagenet=none to train "
                                f"without ImageNet initialisation")
    owners = sorted(m for m, f in imagenet_files().items() if f == path.name)
    if expected and owners and path.name != expected:
        raise ValueError(f"{path} is the official ImageNet file of {', '.join(owners)}, not of the student "
                         f"{cfg.student}, which expects '{expected}'")


def pair_spec(cfg: TrainConfig) -> "PairSpec":
    """The method's view of the config's student / teacher pair (channel widths), from models built on the
    ``meta`` device (no memory, no weights)."""
    import torch

    from kdlib.methods import PairSpec
    from kdlib.models import build_model

    num_classes = _num_classes(cfg.dataset)
    with torch.device("meta"):
        student = build_model(cfg.student, num_classes, aux=cfg.aux, width=cfg.student_width)
        teacher = build_model(cfg.teacher or cfg.student, num_classes, aux=True, width=cfg.teacher_width)
    return PairSpec(num_classes, student.feature_channels, teacher.feature_channels, student.c4_channels,
                    teacher.c4_channels)


def check_buildable(cfg: TrainConfig) -> None:
    """Build the student, the teacher and the method on the ``meta`` device (names, widths, options, terms),
    and run the method's checks of its options against the pair and the feature-map size."""
    import torch

    import kdlib.data  # noqa: F401  (registers the datasets)
    from kdlib.registry import DATASETS, METHODS

    if cfg.dataset not in DATASETS:
        DATASETS.get(cfg.dataset)  # raises the registry's "unknown dataset" error
    from kdlib.data import check_dataset_options

    check_dataset_options(cfg.dataset, cfg.dataset_options)
    if cfg.method == "none":
        pair_spec(cfg)
        return
    from kdlib.methods import build_distiller

    from kdlib.engine.weight_scaling import method_settings

    pair = pair_spec(cfg)
    weights, options, _ = method_settings(cfg, pair)
    with torch.device("meta"):
        try:
            build_distiller(cfg.method, pair, weights, options)
        except TypeError as exc:   # a malformed option value
            raise ValueError(f"method {cfg.method}: {exc}") from None
    h, w = (int(v) // 8 for v in cfg.crop_size)   # the CNN models' output stride
    METHODS.get(cfg.method).check_setting(options, pair, (h, w))


def _num_classes(dataset: str) -> int:
    from kdlib.data import dataset_num_classes

    try:
        return dataset_num_classes(dataset)
    except ValueError:   # a dataset that does not declare K: the models are still checked
        return 2


def check_nproc(nproc_per_node: int, device: str = "auto") -> None:
    """``nproc_per_node`` processes fit this machine: at most the visible GPUs when training on CUDA
    (``device`` auto with a GPU, or cuda); any number on CPU (gloo), for tests and tiny runs."""
    import torch

    nproc = int(nproc_per_node)
    if nproc < 1:
        raise ValueError(f"nproc_per_node must be >= 1, got {nproc_per_node}")
    wants_cuda = str(device).startswith("cuda") or (str(device) == "auto" and torch.cuda.is_available())
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device} but no CUDA GPU is visible; use device=cpu or auto")
    if wants_cuda and nproc > torch.cuda.device_count():
        raise ValueError(f"nproc_per_node={nproc} but only {torch.cuda.device_count()} GPU(s) are visible "
                         f"(CUDA_VISIBLE_DEVICES); use at most that many")


def check_run(cfg: TrainConfig, nproc_per_node: int = 1) -> None:
    """Every check above for one run (raises ``ValueError`` / ``FileNotFoundError`` with one line)."""
    check_imagenet(cfg)
    check_buildable(cfg)
    check_nproc(nproc_per_node, cfg.device)


__all__ = ["check_buildable", "check_imagenet", "check_nproc", "check_run", "imagenet_file_for",
           "imagenet_files", "imagenet_path", "pair_spec"]
