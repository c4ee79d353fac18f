"""Papermill batch grids: run a parameterised notebook over a Cartesian product of values and seeds.

``kdlib grid NOTEBOOK --param k=v1,v2 ... --seeds 0,1,2 --jobs N`` expands the product, executes each cell
of the grid through papermill into ``results/<study>/<run-id>/`` and aggregates one tidy table,
``results/<study>/runs.csv``.

Layout of one cell's folder::

    results/<study>/<run-id>/
        notebook.ipynb   the executed notebook (on failure: the partial notebook with papermill's banner)
        params.json      the cell's parameters (written first)
        metrics.json     written by the notebook (``kdlib.studies.notebook.save_metrics``)
        done.json        written last, atomically: parameters, wall time, status; marks the cell finished

A cell with ``done.json`` and status ``ok`` is skipped on the next call (grids are resumable); a failed
cell is retried. Failures never stop the grid: they are listed at the end with their error banners.
Parameters are passed to the notebook's cell tagged ``parameters``; every cell also receives
``output_dir`` (its folder) and ``seed``.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import contextlib
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

import pandas as pd
import yaml

from kdlib import atomic
from kdlib.progress import progress_bar
from kdlib.studies.notebook_source import check_parameters, notebook_parameters, read_notebook

DONE_FILE = "done.json"
METRICS_FILE = "metrics.json"


@dataclass
class CellResult:
    """Outcome of one grid cell."""

    run_id: str
    params: Dict[str, Any]
    status: str                      # "ok", "failed" or "skipped" (already done)
    wall_time_s: float = 0.0
    error: Optional[str] = None
    output_dir: str = ""
    metrics: Dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------ parameters
def split_values(text: str) -> List[str]:
    """Split ``v1,v2,...`` on the commas that are outside brackets and quotes (``[64,128],[96,192]``: 2)."""
    parts, depth, quote, current = [], 0, "", []
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


def parse_param(spec: str) -> Tuple[str, List[Any]]:
    """``'tau=0.05,0.1'`` → ``('tau', [0.05, 0.1])``; values are parsed as YAML (numbers, lists, null, ...)."""
    if "=" not in spec:
        raise ValueError(f"--param expects key=v1,v2,... ; got {spec!r}")
    key, _, values = spec.partition("=")
    key = key.strip()
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
        raise ValueError(f"--param: {key!r} is not a notebook parameter name")
    parsed = [yaml.safe_load(v) for v in split_values(values)]
    if not parsed:
        raise ValueError(f"--param {key}: no values given")
    return key, parsed


def expand_grid(params: Mapping[str, Sequence[Any]], seeds: Sequence[int] = (0,)) -> List[Dict[str, Any]]:
    """Cartesian product of the values (in the given order), seeds varying fastest."""
    keys = list(params)
    cells = []
    for combo in itertools.product(*(params[k] for k in keys)):
        for seed in seeds:
            cells.append({**dict(zip(keys, combo)), "seed": int(seed)})
    return cells


def run_id(params: Mapping[str, Any]) -> str:
    """A readable, stable folder name: ``k1-v1_k2-v2_seed-0`` (+ a short hash when it would be too long)."""
    def token(value: Any) -> str:
        text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else value
        return re.sub(r"[^A-Za-z0-9.+-]+", "", text.replace(",", "x")) or "empty"

    name = "_".join(f"{k}-{token(v)}" for k, v in params.items())
    if len(name) > 120:
        digest = hashlib.sha1(json.dumps(dict(params), sort_keys=True).encode()).hexdigest()[:10]
        name = f"{name[:100]}_{digest}"
    return name


# ------------------------------------------------------------------------------------------ one cell
def is_done(cell_dir: Path) -> bool:
    done = cell_dir / DONE_FILE
    if not done.is_file():
        return False
    try:
        return json.loads(done.read_text()).get("status") == "ok"
    except json.JSONDecodeError:
        return False


def run_cell(notebook: Path, params: Mapping[str, Any], cell_dir: Path, kernel_name: str = "python3",
             timeout_s: Optional[int] = None) -> CellResult:
    """Execute ``notebook`` with ``params`` (+ ``output_dir``) into ``cell_dir``; never raises on failure."""
    import papermill as pm

    from kdlib.studies.kernel import ipc_kernel_manager

    cell_dir.mkdir(parents=True, exist_ok=True)
    (cell_dir / DONE_FILE).unlink(missing_ok=True)
    full = {**params, "output_dir": str(cell_dir)}
    atomic.write_json(cell_dir / "params.json", full)
    # the cell's ``seed`` names its folder; a notebook that runs its own ``seeds`` is not given it
    passed = {k: v for k, v in full.items() if k != "seed" or "seed" in notebook_parameters(notebook)}
    started = time.time()
    error = None
    try:
        pm.execute_notebook(read_notebook(Path(notebook)), str(cell_dir / "notebook.ipynb"),
                            parameters=passed, kernel_name=kernel_name, progress_bar=False,
                            cwd=str(Path.cwd()), execution_timeout=timeout_s,
                            kernel_manager_class=ipc_kernel_manager())
    except Exception as exc:  # noqa: BLE001 - the grid keeps going; the message is reported at the end
        error = _error_banner(exc)
    wall = round(time.time() - started, 2)
    metrics_path = cell_dir / METRICS_FILE
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    if error is None and not metrics:
        error = f"the notebook finished but wrote no {METRICS_FILE} into output_dir"
    status = "ok" if error is None else "failed"
    from kdlib.engine.rundir import git_commit

    atomic.write_json(cell_dir / DONE_FILE, {"status": status, "params": full, "wall_time_s": wall,
                                              "error": error, "git_commit": git_commit()})
    return CellResult(cell_dir.name, dict(params), status, wall, error, str(cell_dir), metrics)


def _error_banner(exc: BaseException) -> str:
    """The essential lines of a papermill failure (exception name and message), not the whole traceback."""
    ename = getattr(exc, "ename", type(exc).__name__)
    evalue = getattr(exc, "evalue", str(exc))
    return f"{ename}: {evalue}".strip()


# ------------------------------------------------------------------------------------------ the grid
def study_name(notebook: Path) -> str:
    return Path(notebook).stem.replace(".nb", "")


def run_grid(notebook: os.PathLike, params: Mapping[str, Sequence[Any]], seeds: Optional[Sequence[int]] = None,
             jobs: int = 1, results_root: os.PathLike = "results", study: Optional[str] = None,
             progress: bool = True, kernel_name: str = "python3", executor: str = "local",
             slurm_options: Optional[Mapping[str, Any]] = None) -> Tuple[pd.DataFrame, List[CellResult]]:
    """Run every cell not already done; return the study's tidy table and this call's cell results.

    ``executor="local"`` runs up to ``jobs`` cells at once on this machine; ``"slurm"`` submits the cells as a
    Slurm job array through submitit (``slurm_options`` go to ``executor.update_parameters``; ``"submitit-local"``
    uses submitit's local executor, for tests).

    Seeds, one mechanism: a notebook with a ``seed`` parameter (``train_config``) runs one cell per seed; a
    notebook that trains its own list of ``seeds`` (the tables, ablations, sweeps) gets ``seeds`` as its
    ``seeds`` parameter, in one cell. ``None``: seed 0, or the notebook's own ``seeds``.
    """
    notebook = Path(notebook)
    if not notebook.is_file():
        raise FileNotFoundError(f"notebook not found: {notebook}")
    check_parameters(notebook, [k for k in params if k != "seed"])   # a typo is refused, not run with defaults
    params = dict(params)
    declared = notebook_parameters(notebook)
    if seeds is not None and "seed" not in declared:
        if "seeds" not in declared:
            raise ValueError(f"{notebook.name} takes no seed; drop --seeds")
        if "seeds" in params:
            raise ValueError(f"{notebook.name}: give its seeds once, with --seeds or with --param seeds=..., not both")
        params["seeds"] = [",".join(str(int(s)) for s in seeds)]
        seeds = None
    study_dir = Path(results_root) / (study or study_name(notebook))
    cells = expand_grid(params, seeds if seeds is not None else (0,))
    todo, results = [], []
    for cell in cells:
        cell_dir = study_dir / run_id(cell)
        if is_done(cell_dir):
            results.append(CellResult(cell_dir.name, cell, "skipped", output_dir=str(cell_dir)))
        else:
            todo.append((cell, cell_dir))
    if todo:
        if executor == "local":
            results += _run_local(notebook, todo, jobs, progress, kernel_name)
        elif executor in ("slurm", "submitit-local"):
            results += _run_submitit(notebook, todo, study_dir, executor, dict(slurm_options or {}), kernel_name)
        else:
            raise ValueError(f"unknown executor {executor!r}; use local, slurm or submitit-local")
    table = collect_runs(study_dir)
    return table, results


def gpus_per_cell(params: Dict[str, Sequence[Any]], slurm_options: Dict[str, Any], gpus: int) -> None:
    """Give every cell ``gpus`` GPUs: the notebooks' ``nproc_per_node`` (each run is launched with ``torchrun``
    inside the cell) and the Slurm job's ``gpus_per_node`` with one task (in place)."""
    if gpus < 1:
        raise ValueError(f"--gpus-per-cell must be >= 1, got {gpus}")
    if "nproc_per_node" in params and list(params["nproc_per_node"]) != [gpus]:
        raise ValueError(f"--gpus-per-cell {gpus} sets nproc_per_node; drop --param nproc_per_node")
    params["nproc_per_node"] = [gpus]
    slurm_options.setdefault("gpus_per_node", gpus)
    slurm_options.setdefault("tasks_per_node", 1)


def kernel_threads(jobs: int, cpus: Optional[int] = None) -> Optional[int]:
    """CPU threads per kernel when ``jobs`` cells share this machine: ``cpus // jobs`` (at least 1), or None
    for one job. Oversubscribing (each kernel's PyTorch using every core) makes OpenMP threads spin-wait on
    each other: measured ~50x slower training on 2 cores with two 2-thread processes."""
    if jobs <= 1:
        return None
    return max(1, (cpus or os.cpu_count() or 1) // jobs)


def _run_local(notebook: Path, todo: List[Tuple[Dict[str, Any], Path]], jobs: int, progress: bool,
               kernel_name: str) -> List[CellResult]:
    threads = kernel_threads(min(jobs, len(todo)))
    out = []
    bar = progress_bar(total=len(todo), desc=f"grid {notebook.stem}", disable=not progress)
    with _kernel_threads_env(threads), ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [pool.submit(run_cell, notebook, cell, cell_dir, kernel_name) for cell, cell_dir in todo]
        for future in as_completed(futures):  # kernels are processes: threads suffice to wait for them
            result = future.result()
            out.append(result)
            bar.set_postfix(failed=sum(r.status == "failed" for r in out), refresh=False)
            bar.update(1)
    bar.close()
    return out


@contextlib.contextmanager
def _kernel_threads_env(threads: Optional[int]) -> Iterator[None]:
    """``OMP_NUM_THREADS=threads`` for the kernels started inside (they inherit the environment), unless the
    user set it; restored afterwards, so nothing else this process starts later is affected."""
    if threads is None or "OMP_NUM_THREADS" in os.environ:
        yield
        return
    os.environ["OMP_NUM_THREADS"] = str(threads)
    try:
        yield
    finally:
        os.environ.pop("OMP_NUM_THREADS", None)


def _run_submitit(notebook: Path, todo: List[Tuple[Dict[str, Any], Path]], study_dir: Path, executor: str,
                  options: Dict[str, Any], kernel_name: str) -> List[CellResult]:
    try:
        import submitit
    except ImportError:
        raise ValueError("--executor slurm needs submitit: pip install submitit") from None
    folder = study_dir / "_submitit"
    ex = (submitit.LocalExecutor(folder=folder) if executor == "submitit-local"
          else submitit.AutoExecutor(folder=folder, cluster="slurm"))
    ex.update_parameters(**options)
    jobs = ex.map_array(run_cell, [notebook] * len(todo), [c for c, _ in todo], [d for _, d in todo],
                        [kernel_name] * len(todo))
    return [job.result() for job in jobs]


# ------------------------------------------------------------------------------------------ results
def collect_runs(study_dir: os.PathLike) -> pd.DataFrame:
    """One row per finished cell of a study: parameters, status, wall time, metrics, per-class IoU.

    Writes ``<study_dir>/runs.csv`` (atomically) and returns it. Per-class IoU becomes columns
    ``iou/<class>``; nested metric dicts are flattened with ``/``; a metric that is itself a table (a list of
    rows, e.g. a table notebook's ``rows``) is left out — it is the cell's ``summary.csv`` — so the CSV stays
    tidy (one value per field).
    """
    study_dir = Path(study_dir)
    rows = []
    for done in sorted(study_dir.glob(f"*/{DONE_FILE}")):
        record = json.loads(done.read_text())
        row: Dict[str, Any] = {"run_id": done.parent.name, "status": record["status"],
                               "wall_time_s": record.get("wall_time_s"), "error": record.get("error"),
                               "git_commit": record.get("git_commit")}
        row.update({k: (json.dumps(v) if isinstance(v, (list, dict)) else v)
                    for k, v in record["params"].items() if k != "output_dir"})
        metrics_path = done.parent / METRICS_FILE
        if metrics_path.is_file():
            row.update(_flatten(json.loads(metrics_path.read_text())))
        rows.append(row)
    table = pd.DataFrame(rows)
    if rows:
        with atomic.atomic_path(study_dir / "runs.csv") as tmp:
            table.to_csv(tmp, index=False)
    return table


def _flatten(metrics: Mapping[str, Any], prefix: str = "") -> Dict[str, Any]:
    flat: Dict[str, Any] = {}
    for key, value in metrics.items():
        name = "iou/" if key == "per_class_iou" and not prefix else f"{prefix}{key}/"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, name))
        elif isinstance(value, (list, tuple)):
            if any(isinstance(item, Mapping) for item in value):
                continue   # a table: the cell's summary.csv holds it
            flat[f"{prefix}{key}"] = json.dumps(value)
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def failure_report(results: Iterable[CellResult]) -> str:
    """Human-readable list of failed cells with their error banners ('' if none failed)."""
    failed = [r for r in results if r.status == "failed"]
    if not failed:
        return ""
    lines = [f"{len(failed)} cell(s) failed:"]
    for r in failed:
        lines.append(f"  {r.run_id}: {r.error}\n    notebook: {Path(r.output_dir) / 'notebook.ipynb'}")
    return "\n".join(lines)


__all__ = ["CellResult", "collect_runs", "expand_grid", "failure_report", "gpus_per_cell", "is_done", "parse_param",
           "run_cell", "run_grid", "run_id", "split_values", "study_name"]
