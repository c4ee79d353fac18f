"""The interface every distillation method implements, and how the trainer builds one by name.

A method is one registered :class:`DistillLoss` subclass (``@METHODS.register("name")`` in its own file under
``kdlib/methods/``, found without any import list) whose ``forward(student, teacher, labels)`` returns a dict
of **unweighted**, named scalar terms (``kd``, ``batch_p2p``, ``memory_p2p``, ``fd``, ``ctr``, ...). Weights
live in the config (``loss_weights``); a term whose weight is 0 is not computed (the trainer passes only the
enabled terms), which is how the papers' loss-term ablations run. State (projectors, queues, discriminators)
lives in the module; its parameters are optimised with the student by the same SGD, as in the official
code — except those listed by :meth:`DistillLoss.separately_optimized_parameters`, which the method trains
itself in :meth:`DistillLoss.after_student_step` (e.g. the baselines' adversarial discriminator and its Adam).

Each method declares, once:

* ``terms`` — the names of the terms it can return;
* ``distils`` — the :class:`~kdlib.models.output.SegOutput` fields of the student its terms use
  (``logits``, ``feature``, ``c4``): the generic tests check that gradients reach exactly those;
* ``display_name`` — its name in tables and figures;
* ``paper_weights`` — the papers' loss weights; its options' paper values are its constructor defaults;
* :meth:`DistillLoss.dataset_differences` — only what differs per dataset (weights, options, config fields);
* :meth:`DistillLoss.check_setting` — option checks that need the model pair and the feature-map size
  (used by the sweeps before anything trains).
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, ClassVar, Dict, Iterable, List, Mapping, Optional, Tuple

import torch.nn as nn
from torch import Tensor

from kdlib.models.output import SegOutput
from kdlib.registry import METHODS


@dataclass(frozen=True)
class PairSpec:
    """What a method needs to know about the student / teacher pair to build its modules."""

    num_classes: int
    student_feature: int   # channels of SegOutput.feature
    teacher_feature: int
    student_c4: int        # channels of SegOutput.c4
    teacher_c4: int


@dataclass(frozen=True)
class TensorShapes:
    """The sizes a method's terms are computed on: the pair's channels and the (h, w) of its feature maps."""

    pair: PairSpec
    height: int
    width: int

    @property
    def positions(self) -> int:
        return self.height * self.width


class DistillLoss(nn.Module):
    """Base class. Subclasses define ``terms``, ``distils``, ``display_name``, ``paper_weights`` and
    implement :meth:`forward`.

    Attributes:
        terms: names of the terms this method can return.
        distils: student outputs its terms use (``logits``, ``feature``, ``c4``).
        display_name: the method's name in tables and figures.
        paper_weights: the papers' weight of every term (per-dataset changes: :meth:`dataset_differences`).
        clip_grad_norm: if set, the trainer clips the L2 norm of this module's own parameter
            gradients to this value after backward (Af-DCD: 15); the student is never clipped.

    Optional trainer hooks (defaults do nothing):

    * :meth:`separately_optimized_parameters` — parameters the trainer must leave out of the student's
      optimizer because the method updates them itself;
    * :meth:`after_student_step` — called once per iteration right after the student's optimizer step,
      on the bare module (not through DDP), outside autocast, on every rank.
    """

    terms: ClassVar[Tuple[str, ...]] = ()
    distils: ClassVar[Tuple[str, ...]] = ()
    display_name: ClassVar[str] = ""
    paper_weights: ClassVar[Dict[str, float]] = {}
    clip_grad_norm: Optional[float] = None

    def __init__(self, pair: PairSpec, enabled: Iterable[str]) -> None:
        super().__init__()
        self.pair = pair
        enabled = tuple(enabled)
        unknown = sorted(set(enabled) - set(self.terms))
        if unknown:
            raise ValueError(f"{type(self).__name__} has no loss term(s) {unknown}; its terms are "
                             f"{list(self.terms)}")
        self.enabled = enabled

    def forward(self, student: SegOutput, teacher: SegOutput, labels: Tensor) -> Dict[str, Tensor]:
        raise NotImplementedError

    def separately_optimized_parameters(self) -> List[nn.Parameter]:
        """Parameters of this module that the trainer keeps out of the student's optimizer (default none).

        The method optimises them itself in :meth:`after_student_step` (its own optimizer, whose state it
        keeps in its ``state_dict`` so that resumable checkpoints restore it).
        """
        return []

    def after_student_step(self) -> Dict[str, Tensor]:
        """Hook run by the trainer once per iteration after the student's optimizer step (default: nothing).

        Use it for updates that must follow the student step, such as a discriminator step on the (detached)
        outputs the module remembered in its last :meth:`forward`. It runs on every rank; collective
        operations are allowed. Returns detached scalar diagnostics to log (e.g. ``{'adv_d': ...}``); they
        are not loss terms and carry no weight.
        """
        return {}

    @classmethod
    def default_options(cls) -> Dict[str, Any]:
        """The constructor's keyword defaults (tuples as lists, as a YAML config holds them)."""
        options: Dict[str, Any] = {}
        for name, parameter in inspect.signature(cls.__init__).parameters.items():
            if name in ("self", "pair", "enabled") or parameter.default is inspect.Parameter.empty:
                continue
            value = parameter.default
            options[name] = list(value) if isinstance(value, tuple) else value
        return options

    @classmethod
    def dataset_differences(cls, dataset: str) -> Dict[str, Any]:
        """What differs from ``paper_weights`` / the constructor defaults on ``dataset``: any of
        ``loss_weights``, ``method_options`` (merged) and config fields (e.g. ``val_split``). Default none."""
        return {}

    @classmethod
    def paper_defaults(cls, dataset: str) -> Dict[str, Any]:
        """Config overrides of the papers for ``dataset``: ``loss_weights`` (``paper_weights`` with the dataset's
        changes), ``method_options`` (the constructor defaults with the dataset's changes) and any config field
        the dataset changes."""
        differences = dict(cls.dataset_differences(dataset))
        weights = {**cls.paper_weights, **differences.pop("loss_weights", {})}
        options = {**cls.default_options(), **differences.pop("method_options", {})}
        return {**differences, "loss_weights": weights, "method_options": options}

    @classmethod
    def shape_scaling(cls, run: "TensorShapes", paper: "TensorShapes", options: Mapping[str, Any]
                      ) -> Tuple[Dict[str, float], Dict[str, Any]]:
        """``weight_scaling=paper_shapes`` (:mod:`kdlib.methods.scaling`): ``(weight factors per term, option
        values)`` that bring the terms from the paper's tensor sizes to the run's. Default: nothing changes —
        right for terms that are means over their elements, or divergences between distributions of
        normalised vectors (KD, CWD, CIRKD, SKD, IFVD, FitNet), whose size does not grow with the tensors."""
        return {}, {}

    @classmethod
    def check_setting(cls, options: Mapping[str, Any], pair: PairSpec, feature_size: Tuple[int, int]) -> None:
        """Raise ``ValueError`` when ``options`` cannot run as given with this pair and (h, w) feature maps
        (e.g. a patch larger than the map), where the module would fail or silently change the value.
        Checks that need no pair belong in the constructor. Default: nothing to check."""


def build_distiller(method: str, pair: PairSpec, weights: Mapping[str, float],
                    options: Optional[Mapping[str, Any]] = None) -> DistillLoss:
    """Instantiate the registered method with the terms whose weight is non-zero."""
    cls = METHODS.get(method)
    enabled = [name for name, w in weights.items() if w]
    if not enabled:
        raise ValueError(f"method {method!r} has no term with a non-zero weight; set loss_weights, e.g. "
                         f"loss_weights.{cls.terms[0] if cls.terms else 'kd'}=1.0")
    unknown = sorted(set(options or {}) - set(cls.default_options()))
    if unknown:
        from kdlib.registry import did_you_mean

        hints = [f"{name}{did_you_mean(name, cls.default_options())}" for name in unknown]
        raise ValueError(f"method {method} has no option(s) {', '.join(hints)}; its options: "
                         f"{', '.join(cls.default_options())}")
    return cls(pair, enabled, **dict(options or {}))


def method_label(method: str) -> str:
    """Display name of a method (``none`` → ``baseline``; registered methods: their ``display_name``)."""
    if method == "none":
        return "baseline"
    if method in METHODS:
        return METHODS.get(method).display_name or method
    return method


__all__ = ["DistillLoss", "PairSpec", "TensorShapes", "build_distiller", "method_label"]
