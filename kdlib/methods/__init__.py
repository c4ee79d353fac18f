"""Distillation methods as registered modules (:data:`kdlib.registry.METHODS`), one file per method.

Each module holds a method's state (projectors, queues, ...) and calls its pure math (:mod:`kdlib.losses`
or functions in the method's own file). Importing this package imports every module in it, which registers
the methods: adding a method is adding one file (docs/development.md, "Adding a method").
"""
import importlib
import pkgutil

from kdlib.methods.base import DistillLoss, PairSpec, build_distiller, method_label

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["DistillLoss", "PairSpec", "build_distiller", "method_label"]
