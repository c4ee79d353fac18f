"""Distillation methods as registered modules (``kdlib.registry.LOSSES``), one file per method.

Each module holds a method's state (projectors, queues, ...) and calls the pure math of
:mod:`kdlib.losses.functional`. Importing this package registers every method.
"""
from kdlib.losses.base import DistillLoss, PairSpec, build_distiller
from kdlib.methods import afdcd, at, cirkd, cwd, fitnet, ifvd, kd, skd  # noqa: F401  (registers them)

__all__ = ["DistillLoss", "PairSpec", "build_distiller"]
