"""Moved: ``kdlib.analysis`` was sorted by role into :mod:`kdlib.studies` (running studies), :mod:`kdlib.figures`
(drawing) and :mod:`kdlib.report` (tables and the proxy report); see the README's "Layout".

``import kdlib.analysis.<module>`` / ``from kdlib.analysis.<module> import name`` keep working: they give the
module at its new place. The functions that train the runs a paper figure needs moved on to
:mod:`kdlib.studies.paper_figures` (``make_qualitative_figure``, ``make_similarity_figures``,
``make_tsne_figure``, ``trained_runs``).
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from types import ModuleType
from typing import Optional, Sequence

MOVED = {
    **{name: f"kdlib.studies.{name}" for name in ("ablation", "cost", "grid", "notebook", "plan", "proxy",
                                                   "reproduce", "study", "sweep")},
    **{name: f"kdlib.figures.{name}" for name in ("embedding", "plots", "predictions", "qualitative",
                                                   "sample_grid", "similarity", "sweep_plots")},
    **{name: f"kdlib.report.{name}" for name in ("proxy_report", "tables")},
}


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Resolves ``kdlib.analysis.<old name>`` to the module at its new place (the same module object)."""

    def find_spec(self, fullname: str, path: Optional[Sequence[str]] = None, target: Optional[ModuleType] = None):
        package, _, name = fullname.rpartition(".")
        if package == __name__ and name in MOVED:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec) -> ModuleType:
        return importlib.import_module(MOVED[spec.name.rpartition(".")[2]])

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run: the new module is already imported."""


if not any(isinstance(finder, _MovedModules) for finder in sys.meta_path):
    sys.meta_path.insert(0, _MovedModules())


def __getattr__(name: str) -> ModuleType:   # ``from kdlib.analysis import sweep``
    if name in MOVED:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
