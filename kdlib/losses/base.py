"""The interface every distillation method implements, and how the trainer builds one by name.

A method is one registered :class:`DistillLoss` subclass (``@LOSSES.register("name")``) whose
``forward(student, teacher, labels)`` returns a dict of **unweighted**, named scalar terms (``kd``,
``batch_p2p``, ``memory_p2p``, ``fd``, ``ctr``, ...). Weights live in the config (``loss_weights``);
a term whose weight is 0 is not computed (the trainer passes only the enabled terms), which is how the
papers' loss-term ablations run. State (projectors, queues, discriminators) lives in the module; its
parameters are optimised with the student by the same SGD, as in the official code — except those listed by
:meth:`DistillLoss.separately_optimized_parameters`, which the method trains itself in
:meth:`DistillLoss.after_student_step` (e.g. the baselines' adversarial discriminator and its Adam).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Dict, Iterable, List, Mapping, Optional, Tuple

import torch.nn as nn
from torch import Tensor

from kdlib.models.output import SegOutput
from kdlib.registry import LOSSES


@dataclass(frozen=True)
class PairSpec:
    """What a method needs to know about the student / teacher pair to build its modules."""

    num_classes: int
    student_feature: int   # channels of SegOutput.feature
    teacher_feature: int
    student_c4: int        # channels of SegOutput.c4
    teacher_c4: int


class DistillLoss(nn.Module):
    """Base class. Subclasses define ``terms`` and implement :meth:`forward`.

    Attributes:
        terms: names of the terms this method can return.
        clip_grad_norm: if set, the trainer clips the L2 norm of this module's own parameter
            gradients to this value after backward (Af-DCD: 15); the student is never clipped.

    Optional trainer hooks (defaults do nothing):

    * :meth:`separately_optimized_parameters` — parameters the trainer must leave out of the student's
      optimizer because the method updates them itself;
    * :meth:`after_student_step` — called once per iteration right after the student's optimizer step,
      on the bare module (not through DDP), outside autocast, on every rank.
    """

    terms: ClassVar[Tuple[str, ...]] = ()
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
    def paper_defaults(cls, dataset: str) -> Dict[str, Any]:
        """Config overrides (``loss_weights``, ``method_options``) of the papers for ``dataset``."""
        return {}


def build_distiller(method: str, pair: PairSpec, weights: Mapping[str, float],
                    options: Optional[Mapping[str, Any]] = None) -> DistillLoss:
    """Instantiate the registered method with the terms whose weight is non-zero."""
    cls = LOSSES.get(method)
    enabled = [name for name, w in weights.items() if w]
    if not enabled:
        raise ValueError(f"method {method!r} has no term with a non-zero weight; set loss_weights, e.g. "
                         f"loss_weights.{cls.terms[0] if cls.terms else 'kd'}=1.0")
    return cls(pair, enabled, **dict(options or {}))
