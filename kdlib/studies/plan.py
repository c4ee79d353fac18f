"""``kdlib plan``: every training run a notebook would make, resolved and checked, with nothing trained.

The notebook's code cells are executed in this process with its parameters (papermill's semantics: the
given values replace those of the cell tagged ``parameters``) while a :class:`Plan` is active. Every run
reaches :func:`kdlib.studies.notebook.train_config`, which, under a plan, resolves the config, checks it
(:func:`kdlib.engine.preflight.check_run`: names, options, the ImageNet files, GPUs) and records it instead
of training. A study stops right after it has listed its runs (:class:`PlanStop`), before it reads
results or writes files, and the notebook goes on with its next cell (so that, e.g., CIRKD Table 1's
R18* pass is planned too). Nothing is written; datasets and teachers need not exist.

Each planned run is one JSON object: ``{"run_id", "run_dir", "nproc_per_node", "status", "config"}``,
where ``config`` is the dict the run's ``config.yaml`` will hold and ``status`` says whether the run is
``new``, ``resumable`` (an interrupted run with the same config) or ``finished`` (reused, costs nothing).
"""
from __future__ import annotations

import contextlib
import contextvars
import io
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence

from kdlib.studies.notebook_source import check_parameters, code_cells

_ACTIVE: contextvars.ContextVar[Optional["Plan"]] = contextvars.ContextVar("kdlib_plan", default=None)


class PlanStop(Exception):
    """Raised by a study once its runs are recorded under a plan: ends the notebook cell, not the plan."""


@dataclass
class Plan:
    """The runs recorded so far (in notebook order, each run once)."""

    runs: List[Dict[str, Any]] = field(default_factory=list)

    def record(self, cfg: Any, run_dir: Path, nproc_per_node: int) -> Dict[str, Any]:
        """Record one resolved, checked run; return a placeholder result (NaN metrics) for the caller."""
        run_dir = Path(run_dir)
        if all(r["run_dir"] != str(run_dir) for r in self.runs):
            self.runs.append({"run_id": run_dir.name, "run_dir": str(run_dir),
                              "nproc_per_node": int(nproc_per_node), "status": run_status(run_dir, cfg),
                              "config": cfg.to_dict()})
        nan = float("nan")
        return {"miou": nan, "pixel_acc": nan, "mean_acc": nan, "best_miou": nan, "per_class_iou": {},
                "wall_time_s": nan, "peak_memory_mb": nan, "iterations": cfg.iterations}


def run_status(run_dir: Path, cfg: Any) -> str:
    """``finished`` / ``resumable`` for a run directory made with this config, else ``new``; a directory
    holding a run made with other settings is an error (the run would refuse it)."""
    from kdlib.engine.rundir import reusable_result

    done = reusable_result(run_dir, cfg.to_yaml(), "use another output_dir or runs_root, or delete that run")
    if done is not None:
        return "finished"
    return "resumable" if (Path(run_dir) / "config.yaml").is_file() else "new"


def active_plan() -> Optional[Plan]:
    """The plan being recorded, or None when runs should really train."""
    return _ACTIVE.get()


def stop_if_planning() -> None:
    """Called by a study after its runs are listed: under a plan, end here (nothing is read or written)."""
    if _ACTIVE.get() is not None:
        raise PlanStop()


@contextlib.contextmanager
def planning() -> Iterator[Plan]:
    """Record runs instead of training them inside this block."""
    plan = Plan()
    token = _ACTIVE.set(plan)
    try:
        yield plan
    finally:
        _ACTIVE.reset(token)


def plan_notebook(notebook: os.PathLike, params: Optional[Mapping[str, Any]] = None) -> List[Dict[str, Any]]:
    """The runs ``notebook`` would train with ``params`` (one value each), checked, in order.

    The notebook's printed output goes to stderr. A mistake (unknown parameter, student, method, option,
    a missing ImageNet file, ...) raises ``ValueError`` / ``FileNotFoundError`` / ``KeyError`` with one line.
    """
    notebook = Path(notebook)
    if not notebook.is_file():
        raise FileNotFoundError(f"notebook not found: {notebook}")
    params = dict(params or {})
    check_parameters(notebook, list(params))
    cells = code_cells(notebook)
    injected = "".join(f"{k} = {v!r}\n" for k, v in params.items())
    namespace: Dict[str, Any] = {"__name__": "__main__"}
    stopped = False
    from kdlib.paths import keep_working_directory

    with planning() as plan, contextlib.redirect_stdout(sys.stderr), _quiet_figures(), keep_working_directory():
        for index, (source, tags) in enumerate(cells):
            if "parameters" in tags:
                source = source + "\n" + injected
            try:
                exec(compile(source, f"{notebook.name}:cell{index}", "exec"), namespace)  # noqa: S102
            except PlanStop:
                stopped = True
            except NameError:
                if not stopped:   # a later cell using a planned study's result: nothing to compute
                    raise
    return plan.runs


@contextlib.contextmanager
def _quiet_figures() -> Iterator[None]:
    """A non-interactive matplotlib backend, so that planning never opens a window."""
    import matplotlib

    previous = matplotlib.get_backend()
    matplotlib.use("Agg", force=True)
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            matplotlib.use(previous, force=True)


def plan_grid(notebook: os.PathLike, params: Mapping[str, Sequence[Any]]) -> List[Dict[str, Any]]:
    """:func:`plan_notebook` over the Cartesian product of ``params`` (``kdlib grid``'s ``--param`` values);
    a run planned by several combinations is listed once."""
    from kdlib.studies.grid import expand_grid

    runs: Dict[str, Dict[str, Any]] = {}
    for cell in expand_grid(params, seeds=(0,)):
        cell.pop("seed")
        for run in plan_notebook(notebook, cell):
            runs.setdefault(run["run_dir"], run)
    return list(runs.values())


def plan_summary(runs: Sequence[Mapping[str, Any]], seconds_per_iteration: Optional[float] = None) -> str:
    """One paragraph: runs by status, iterations to train, and GPU-hours at ``seconds_per_iteration``."""
    todo = [r for r in runs if r["status"] != "finished"]
    iterations = sum(int(r["config"]["iterations"]) for r in todo)
    gpu_iterations = sum(int(r["config"]["iterations"]) * int(r["nproc_per_node"]) for r in todo)
    counts = {s: sum(r["status"] == s for r in runs) for s in ("new", "resumable", "finished")}
    text = (f"plan: {len(runs)} run(s) ({counts['new']} new, {counts['resumable']} resumable, "
            f"{counts['finished']} finished); {iterations:,} iterations to train (at most: resumable runs "
            f"continue where they stopped)")
    if seconds_per_iteration:
        hours = gpu_iterations * seconds_per_iteration / 3600
        text += f"; at {seconds_per_iteration:g} s/iteration: {hours:,.1f} GPU-hours"
    return text


def format_runs(runs: Sequence[Mapping[str, Any]]) -> str:
    """One JSON object per line."""
    buf = io.StringIO()
    for run in runs:
        buf.write(json.dumps({"run_id": run["run_id"], "run_dir": run["run_dir"],
                              "nproc_per_node": run["nproc_per_node"], "status": run["status"],
                              "config": run["config"]}) + "\n")
    return buf.getvalue()


__all__ = ["Plan", "PlanStop", "active_plan", "format_runs", "plan_grid", "plan_notebook", "plan_summary", "planning", "stop_if_planning"]
