"""One-option hyper-parameter sweeps: CIRKD Fig. 6 / 7 and Af-DCD's hyper-parameter ablations.

A *sweep* (:data:`SWEEPS`) trains one distillation method at several values of one of its ``method_options``
— everything else at the method's paper defaults for the dataset (:func:`kdlib.engine.recipes.method_defaults`)
— and draws the ablation curve: mIoU (%) against the value, 95 % CI error bars over seeds, the paper default
marked, and for the queue sweeps (CIRKD Fig. 6) the queues' memory on a second y-axis.

=========================  ======  =============================  =============================================
sweep                      method  option (paper default)         what the value is
=========================  ======  =============================  =============================================
``cirkd_pixel_queue``      cirkd   ``pixel_memory_size`` 20000    N_p, pixel-queue length per class (+ memory)
``cirkd_region_queue``     cirkd   ``region_memory_size`` 2000    N_r, region-queue length per class (+ memory)
``cirkd_tau``              cirkd   ``contrast_temperature`` 0.1   tau of the batch and memory relations
``cirkd_pixel_contrast``   cirkd   ``pixel_contrast_size`` 4096   K_p, contrastive pixel embeddings
``cirkd_region_contrast``  cirkd   ``region_contrast_size`` 1024  K_r, contrastive region embeddings
``afdcd_groups``           afdcd   ``groups`` 16                  M, channel groups of the Omni-Contrasting
``afdcd_tau``              afdcd   ``tau`` 0.07                   contrast temperature
``afdcd_patch``            afdcd   ``patch`` 4 (+ ``pool``)       patch size N, optionally with a pooling
``afdcd_pool``             afdcd   ``pool`` 4 (CamVid: none)      max-pool before the patches (``none``: off)
``afdcd_mask_ratio``       afdcd   ``mask_ratio`` 0.75            fraction of masked positions of L_fd
=========================  ======  =============================  =============================================

Values come as Python values or as a comma string (notebook parameters): ``"5000,10000,20000"``. Ints and
floats are parsed as such (``"2e4"`` is the int 20000); ``none`` is ``None``.

**Patch size and pooling** (``afdcd_patch``). The released Omni-Contrasting max-pools both c4 maps (kernel =
stride = ``pool``, 4; none on CamVid and the built-in data) before cutting N x N patches, so patch size and
pooling together set the spatial extent a patch covers. A value of this sweep is a *patch token*:

* ``"N"`` — patch N, the dataset's default pooling kept (only ``patch`` changes);
* ``"N/poolP"`` — patch N after a P x P max-pool (``patch`` and ``pool`` change);
* ``"N/nopool"`` — patch N without pooling.

It parses to ``(N, P)`` with P an int, ``None`` (no pooling) or ``"default"``. The runs table and the summary
hold the *effective* ``patch`` and ``pool`` of every run (``pool`` ``none`` = no pooling), and the curve draws
one line per pooling setting against the patch size. Tokens that resolve to the same options (``"4"`` and
``"4/nopool"`` on CamVid) are trained once.

**Queue memory** (CIRKD Fig. 6's "memory cost"). The trainer's ``peak_memory_mb`` of every run is kept (CUDA:
max allocated; CPU: the process's RSS high-water mark, reset at the start of each run but including what the
kernel already held), so it is a whole-process figure in which a queue's few MB are hard to see on CPU;
:mod:`kdlib.studies.cost`'s runs, each in a fresh process, are the cleaner per-run measurement. The curve's
second axis is therefore the swept queue's own memory, computed exactly by :func:`queue_memory_mb` (K classes x N entries x d floats of 4 bytes, d the
teacher's head-feature width), which is what the queue length changes.

Each sweep notebook is its parameters plus one call of :func:`reproduce_sweep` (or :func:`reproduce_figure`
for the multi-panel CIRKD figures).
"""
from __future__ import annotations

import functools
import math
import os
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import pandas as pd

from kdlib.figures.sweep_plots import plot_panels, plot_sweep
from kdlib.paper_numbers.sweeps import FIGURE_TITLES, FIGURES, SWEEPS, SweepSpec, as_x, format_number, get_sweep

DEFAULT_POOL = "default"   # patch token without a pooling suffix: the dataset's default pooling kept
BYTES_PER_FLOAT = 4        # fp32 queues
MB = 2 ** 20               # bytes per MB, as the trainer's peak_memory_mb

def _parse_int(token: str, what: str) -> int:
    try:
        number = float(token)
    except ValueError:
        raise ValueError(f"{what}: {token!r} is not a number") from None
    if not math.isfinite(number) or number != int(number):
        raise ValueError(f"{what}: {token!r} is not an integer")
    return int(number)


def _parse_patch(token: str, what: str) -> Tuple[int, Union[int, None, str]]:
    text = token.strip().lower().replace(" ", "")
    patch_text, _, pool_text = text.partition("/")
    patch = _parse_int(patch_text, what)
    if not pool_text:
        return patch, DEFAULT_POOL
    if pool_text in ("nopool", "pool0", "pool1", "poolnone"):
        return patch, None
    if not pool_text.startswith("pool"):
        raise ValueError(f"{what}: {token!r} is not a patch token (N, N/poolP or N/nopool)")
    return patch, _parse_int(pool_text[len("pool"):], what)


def parse_value(name: str, value: Any) -> Any:
    """One sweep value in its option's type: int, float, ``None`` (``"none"``) or a patch ``(N, pool)``."""
    spec = get_sweep(name)
    what = f"sweep {name} ({spec.option})"
    if spec.kind == "patch":
        if isinstance(value, tuple) and len(value) == 2:
            return int(value[0]), value[1]
        return _parse_patch(str(value), what)
    if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null")):
        if not spec.allow_none:
            raise ValueError(f"{what}: none is not a value of this option")
        return None
    if isinstance(value, bool):
        raise ValueError(f"{what}: {value!r} is not a number")
    if spec.kind == "int":
        return _parse_int(str(value).strip(), what)
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{what}: {value!r} is not a number") from None


def parse_values(name: str, values: Union[str, Sequence[Any], None]) -> List[Any]:
    """A comma string (``"0.05, 0.1"``) or a sequence → the parsed values, repeats dropped, order kept.

    ``None`` or ``""`` gives the sweep's default values.
    """
    from kdlib.studies.study import split_list

    spec = get_sweep(name)
    if values is None or (isinstance(values, str) and not values.strip()):
        values = spec.values
    items = split_list(values) if isinstance(values, str) else list(values)
    parsed = [parse_value(name, v) for v in items]
    return list(dict.fromkeys(parsed))


def value_label(name: str, value: Any) -> str:
    """The value as written in a notebook parameter: ``5000``, ``0.1``, ``4/pool2``, ``4/nopool``, ``4``."""
    spec = get_sweep(name)
    value = parse_value(name, value)
    if spec.kind == "patch":
        patch, pool = value
        return str(patch) if pool == DEFAULT_POOL else f"{patch}/nopool" if pool is None else f"{patch}/pool{pool}"
    return "none" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def value_options(name: str, value: Any) -> Dict[str, Any]:
    """The ``method_options`` one sweep value sets (only the swept option; ``pool`` too for a pooled patch)."""
    spec = get_sweep(name)
    value = parse_value(name, value)
    if spec.kind == "patch":
        patch, pool = value
        return {"patch": patch} if pool == DEFAULT_POOL else {"patch": patch, "pool": pool}
    return {spec.option: value}


def value_overrides(name: str, value: Any) -> Dict[str, Any]:
    """kdlib overrides of one sweep value: the method and the swept option; the rest stays at the defaults.

    ``method_options`` overrides merge key by key into the method's paper options for the dataset
    (:func:`kdlib.engine.config.resolve_config`), so exactly the swept option(s) change.
    """
    spec = get_sweep(name)
    return {"method": spec.method, "method_options": value_options(name, value)}


# ------------------------------------------------------------------------------------ model quantities
def queue_memory_mb(num_classes: int, queue_size: int, dim: int, bytes_per_value: int = BYTES_PER_FLOAT) -> float:
    """Memory of a class-wise queue of ``queue_size`` ``dim``-d embeddings per class, in MB (2**20 bytes).

    CIRKD's pixel queue is (K, N_p, d) fp32: Cityscapes K = 19, N_p = 20000, d = 256 → 389,120,000 bytes =
    371.1 MB (docs/reference.md §3.3: ≈ 0.39 GB decimal).
    """
    for what, number in (("num_classes", num_classes), ("queue_size", queue_size), ("dim", dim),
                         ("bytes_per_value", bytes_per_value)):
        if int(number) < 0:
            raise ValueError(f"{what} must be >= 0, got {number}")
    return int(num_classes) * int(queue_size) * int(dim) * int(bytes_per_value) / MB


def dataset_num_classes(dataset: str) -> int:
    """K of a registered dataset (without building it): :func:`kdlib.data.dataset_num_classes`."""
    from kdlib.data import dataset_num_classes as declared

    return declared(dataset)


def teacher_widths(cfg: Any) -> Tuple[int, int]:
    """(head-feature width d, c4 width) of the config's teacher, read from the built model."""
    if not cfg.teacher:
        raise ValueError("the config has no teacher")
    return _model_widths(cfg.teacher, dataset_num_classes(cfg.dataset), float(cfg.teacher_width))


@functools.lru_cache(maxsize=None)
def _model_widths(name: str, num_classes: int, width: float) -> Tuple[int, int]:
    # built on the CPU once per (model, K, width): the meta device would import torch._dynamo (seconds)
    from kdlib.models import build_model

    model = build_model(name, num_classes, aux=False, width=width)
    return int(model.feature_channels), int(model.c4_channels)


def feature_map_size(crop_size: Sequence[int], stride: int = 8) -> Tuple[int, int]:
    """(h, w) of the models' 1/8-resolution maps for a training crop (ceil: 360 → 45, 48 → 6)."""
    return tuple(-(-int(s) // stride) for s in crop_size)  # type: ignore[return-value]


def sweep_config(name: str, value: Any, preset: str, student: Optional[str] = None,
                 common: Optional[Mapping[str, Any]] = None) -> Any:
    """The resolved :class:`~kdlib.engine.config.TrainConfig` of one sweep value (without seed / run dir)."""
    from kdlib.engine.config import merge, resolve_config

    spec = get_sweep(name)
    overrides = merge({**dict(common or {}), "student": student or spec.student}, value_overrides(name, value))
    return resolve_config(preset, overrides)


def check_value(name: str, value: Any, cfg: Any) -> None:
    """Raise ``ValueError`` when a sweep value cannot be trained as labelled with the resolved ``cfg``.

    The method checks its own options: its constructor (e.g. positive temperatures, CIRKD's queue at least
    ``pixels_per_class`` long, Af-DCD's mask ratio in [0, 1]) and its
    :meth:`~kdlib.methods.base.DistillLoss.check_setting` against the model pair and the feature-map size
    (CIRKD: ``contrast_size // K + 1`` slots per class fit the queue, which it would otherwise silently clip;
    Af-DCD: ``groups`` divides the teacher's c4 width, a patch fits the pooled map).
    """
    from kdlib.engine.preflight import check_buildable

    spec = get_sweep(name)
    try:
        check_buildable(cfg)
    except ValueError as exc:
        raise ValueError(f"sweep {name}: {spec.option} = {value_label(name, value)}: {exc}") from None


def effective_values(name: str, cfg: Any) -> Dict[str, Any]:
    """The swept option(s) as the resolved config has them (``pool`` too for ``afdcd_patch``)."""
    spec = get_sweep(name)
    return {c: cfg.method_options.get(c) for c in spec.columns}


def _display(value: Any) -> Any:
    return "none" if value is None else value


def _setting(name: str, values: Mapping[str, Any], base: Mapping[str, Any]) -> str:
    """Run name of a sweep point: ``default`` at the base options (shared by the sweeps of one call)."""
    if dict(values) == dict(base):
        return "default"
    return "-".join(f"{k}-{_display(v)}" for k, v in values.items())


# ------------------------------------------------------------------------------------------------ study
def _order_key(row: pd.Series, spec: SweepSpec) -> Tuple[float, float]:
    if spec.kind == "patch":
        return (as_x(row["pool"]), float(row[spec.option]))
    return (as_x(row[spec.option]), 0.0)


def _run_sweeps(requests: Sequence[Tuple[str, Sequence[Any]]], preset: str, student: Optional[str],
                seeds: Sequence[int], output_dir: Path, common: Optional[Mapping[str, Any]], progress: bool,
                include_default: bool, runs_root: Optional[os.PathLike] = None,
                imagenet_dir: Optional[os.PathLike] = None, nproc_per_node: int = 1
                ) -> Tuple[pd.DataFrame, pd.DataFrame, Dict[str, Any]]:
    """Train every (sweep, value) × seed under ``output_dir/runs``; return (summary, runs, info)."""
    from kdlib.studies.grid import run_id
    from kdlib.studies.study import run_study, study_runs_root
    from kdlib.report.tables import summarize_seeds
    from kdlib.engine.config import merge, resolve_config
    from kdlib.engine.recipes import method_defaults

    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("no seeds given")
    plan: List[Dict[str, Any]] = []
    info: Dict[str, Any] = {}
    for name, values in requests:
        spec = get_sweep(name)
        who = student or spec.student
        base = resolve_config(preset, merge({**dict(common or {}), "student": who}, {"method": spec.method}))
        paper_opts = method_defaults(spec.method, base.dataset).get("method_options", {})
        paper = {c: paper_opts.get(c) for c in spec.columns}
        base_values = effective_values(name, base)
        parsed = parse_values(name, values)
        if not parsed:
            raise ValueError(f"sweep {name}: no values given")
        if include_default:
            parsed.append((paper[spec.option], paper["pool"]) if spec.kind == "patch" else paper[spec.option])
        points: Dict[Tuple, Dict[str, Any]] = {}
        for value in parsed:
            cfg = sweep_config(name, value, preset, who, common)
            check_value(name, value, cfg)
            eff = effective_values(name, cfg)
            key = tuple(eff.items())
            if key in points:
                continue
            points[key] = {"sweep": name, "student": who, "values": eff, "label": value_label(name, value),
                           "overrides": merge({"student": who}, value_overrides(name, value)),
                           "setting": _setting(name, eff, base_values)}
        plan.extend(points.values())
        k = dataset_num_classes(base.dataset)
        d, c4 = teacher_widths(base)
        info[name] = {"method": spec.method, "option": spec.option, "student": who, "dataset": base.dataset,
                      "num_classes": k, "teacher_feature_dim": d, "teacher_c4": c4,
                      "paper_default": {c: _display(v) for c, v in paper.items()},
                      "values": [p["label"] for p in points.values()],
                      "paper_note": spec.paper_note}

    configs = [p["overrides"] for p in plan]
    params = [{"student": p["student"], "method": get_sweep(p["sweep"]).method, "setting": p["setting"]}
              for p in plan]
    unique: Dict[Tuple, int] = {}
    for i, prm in enumerate(params):  # a point shared by two sweeps (the default) is trained once
        unique.setdefault(tuple(prm.items()), i)
    keep = sorted(unique.values())
    runs = run_study(preset, [configs[i] for i in keep], seeds, study_runs_root(output_dir, runs_root), common,
                     progress=progress, params=[params[i] for i in keep], imagenet_dir=imagenet_dir,
                     nproc_per_node=nproc_per_node)
    metric_columns = [c for c in runs.columns if c not in ("student", "method", "setting", "seed")]
    metric_columns = ([c for c in metric_columns if not c.startswith("iou/")]
                      + [c for c in metric_columns if c.startswith("iou/")])
    value_columns = list(dict.fromkeys(c for p in plan for c in p["values"]))

    rows: List[Dict[str, Any]] = []
    for p in plan:
        for seed in seeds:
            method = get_sweep(p["sweep"]).method
            matches = runs[(runs["student"] == p["student"]) & (runs["method"] == method)
                           & (runs["setting"] == p["setting"]) & (runs["seed"] == seed)]
            record = matches.iloc[0].to_dict()
            row = {"sweep": p["sweep"], "student": p["student"],
                   **{c: _display(p["values"][c]) if c in p["values"] else np.nan for c in value_columns},
                   "method": method, "seed": seed, **{c: record[c] for c in metric_columns},
                   "setting": p["setting"],
                   "run_id": run_id({"student": p["student"], "method": method, "setting": p["setting"],
                                     "seed": seed})}
            rows.append(row)
    table = pd.DataFrame(rows)

    summaries = []
    for p_name, _ in requests:
        spec = get_sweep(p_name)
        part = table[table["sweep"] == p_name]
        stats = summarize_seeds(part, by=["setting"])
        costs = part.groupby("setting", sort=False)[["wall_time_s", "peak_memory_mb"]].mean().reset_index()
        first = part.drop_duplicates("setting")[["sweep", "student", *spec.columns, "setting"]]
        summary = first.merge(stats, on="setting").merge(costs, on="setting")
        summary["miou_pct"] = 100 * summary["mean"]
        summary["std_pct"] = 100 * summary["std"]
        summary["ci95_pct"] = 100 * summary["ci"]
        columns = ["sweep", "student", *spec.columns, "n", "miou_pct", "std_pct", "ci95_pct", "wall_time_s",
                   "peak_memory_mb"]
        if spec.memory_cost:
            k, d = info[p_name]["num_classes"], info[p_name]["teacher_feature_dim"]
            summary["queue_memory_mb"] = [queue_memory_mb(k, int(n), d) for n in summary[spec.option]]
            columns.append("queue_memory_mb")
        paper = info[p_name]["paper_default"]
        summary["paper_default"] = [all(row[c] == paper[c] for c in spec.columns)
                                    for _, row in summary.iterrows()]
        columns += ["paper_default", "setting"]
        summary = summary[columns]
        summary = summary.iloc[sorted(range(len(summary)), key=lambda i: _order_key(summary.iloc[i], spec))]
        summaries.append(summary.reset_index(drop=True))
    summary = pd.concat(summaries, ignore_index=True, sort=False)
    front = ["sweep", "student", *value_columns]
    summary = summary[front + [c for c in summary.columns if c not in front]]
    for frame in (summary, table):  # integer options stay integers beside another sweep's empty cells
        for column in value_columns:
            if pd.api.types.is_float_dtype(frame[column]) and all(
                    get_sweep(n).kind == "int" for n in frame.loc[frame[column].notna(), "sweep"].unique()):
                frame[column] = pd.Series([int(v) if pd.notna(v) else np.nan for v in frame[column]],
                                          index=frame.index, dtype=object)
    return summary, table, info


def _write(output_dir: Path, summary: pd.DataFrame, runs: pd.DataFrame, metrics: Mapping[str, Any]) -> None:
    from kdlib.studies.notebook import save_metrics

    output_dir.mkdir(parents=True, exist_ok=True)
    runs.to_csv(output_dir / "runs.csv", index=False)
    summary.to_csv(output_dir / "summary.csv", index=False)
    save_metrics(output_dir, {**metrics, "rows": _records(summary)})


def _records(frame: pd.DataFrame) -> List[Dict[str, Any]]:
    return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
            for row in frame.to_dict(orient="records")]


def reproduce_sweep(name: str, preset: str, student: Optional[str], values: Union[str, Sequence[Any], None],
                    seeds: Sequence[int], output_dir: os.PathLike, figures_dir: Optional[os.PathLike] = None,
                    common: Optional[Mapping[str, Any]] = None, progress: bool = True,
                    include_default: bool = False, runs_root: Optional[os.PathLike] = None,
                    imagenet_dir: Optional[os.PathLike] = None, nproc_per_node: int = 1
                    ) -> Tuple[pd.DataFrame, pd.DataFrame]:
    """Train (or reuse) the sweep's method at every value × seed and draw its ablation curve; (summary, runs).

    Args:
        name: a :data:`SWEEPS` key.
        preset: kdlib preset (``quick`` / ``proxy`` built-in data, or a paper dataset).
        student: student model (None: the sweep's).
        values: the sweep points (comma string or sequence; None / ``""``: the sweep's defaults). Every value
            is checked (:func:`check_value`) before anything trains.
        seeds: seeds of every value.
        output_dir: gets ``runs/<run-id>/`` (one kdlib run each; the point at the method's defaults — the
            paper's unless ``common`` sets the option — is named ``default`` and shared by the sweeps),
            ``runs.csv`` (a column named after the option with its value — ``patch`` and ``pool`` for
            ``afdcd_patch`` —, ``method``, ``seed``, ``miou``, per-class IoU, ``wall_time_s``,
            ``peak_memory_mb``, ``setting``, ``run_id``), ``summary.csv`` (per value: ``n``, ``miou_pct``,
            ``std_pct``, ``ci95_pct`` (95 % CI half-width), mean ``wall_time_s`` and ``peak_memory_mb``, for
            the queue sweeps ``queue_memory_mb`` (:func:`queue_memory_mb`), ``paper_default``) and
            ``metrics.json``.
        figures_dir: gets ``<name>.png`` / ``.pdf``, the ablation curve (None: no figure).
        common: overrides of every run (teacher checkpoint, data root, iterations, ...).
        include_default: also train the paper's default value when ``values`` lacks it.
        runs_root: where the runs go instead of ``output_dir/runs`` (several sweep notebooks may share one).
        imagenet_dir, nproc_per_node: as in :func:`kdlib.studies.study.run_study`.
    """
    from kdlib.studies.study import setting_text

    spec = get_sweep(name)
    output_dir = Path(output_dir)
    summary, runs, info = _run_sweeps([(name, values)], preset, student, seeds, output_dir, common, progress,
                                      include_default, runs_root, imagenet_dir, nproc_per_node)
    if figures_dir:  # None or "" (a notebook parameter): no figure
        plot_sweep(summary, name, Path(figures_dir) / name, dataset=setting_text(preset, common),
                   default=info[name]["paper_default"][spec.option])
    _write(output_dir, summary, runs, {"sweep": name, **info[name], "title": spec.title,
                                       "seeds": [int(s) for s in seeds]})
    return summary, runs


def reproduce_figure(figure: str, preset: str, student: Optional[str],
                     values: Mapping[str, Union[str, Sequence[Any], None]], seeds: Sequence[int],
                     output_dir: os.PathLike, figures_dir: Optional[os.PathLike] = None,
                     common: Optional[Mapping[str, Any]] = None, progress: bool = True,
                     runs_root: Optional[os.PathLike] = None, imagenet_dir: Optional[os.PathLike] = None,
                     nproc_per_node: int = 1) -> Tuple[pd.DataFrame, pd.DataFrame]:
    """Several sweeps of one paper figure (:data:`FIGURES`: ``cirkd_fig6``, ``cirkd_fig7``); (summary, runs).

    ``values`` maps each panel's sweep name to its values (``""`` / missing: that panel is skipped). The runs
    share ``output_dir/runs`` (the default point, the same config in every panel, trains once); the tables
    have a ``sweep`` column. Writes ``runs.csv``, ``summary.csv``, ``metrics.json`` into ``output_dir``, and
    into ``figures_dir`` one curve per sweep (``<sweep>.png/.pdf``) plus the panels side by side
    (``<figure>.png/.pdf``).
    """
    if figure not in FIGURES:
        raise ValueError(f"unknown figure {figure!r}; known: {', '.join(FIGURES)}")
    unknown = sorted(set(values) - set(FIGURES[figure]))
    if unknown:
        raise ValueError(f"{figure} has no panel(s) {unknown}; its sweeps are {list(FIGURES[figure])}")
    requests = [(n, values[n]) for n in FIGURES[figure]
                if values.get(n) is not None and not (isinstance(values[n], str) and not values[n].strip())]
    if not requests:
        raise ValueError(f"{figure}: no values for any panel")
    from kdlib.studies.study import setting_text

    output_dir = Path(output_dir)
    summary, runs, info = _run_sweeps(requests, preset, student, seeds, output_dir, common, progress, False,
                                      runs_root, imagenet_dir, nproc_per_node)
    if figures_dir:  # None or "": no figure
        defaults = {n: info[n]["paper_default"][get_sweep(n).option] for n, _ in requests}
        for name, _ in requests:
            plot_sweep(summary, name, Path(figures_dir) / name, dataset=setting_text(preset, common),
                       default=defaults[name])
        plot_panels(summary, [n for n, _ in requests], Path(figures_dir) / figure,
                    dataset=setting_text(preset, common), defaults=defaults,
                    title=FIGURE_TITLES.get(figure, figure))
    _write(output_dir, summary, runs, {"figure": figure, "sweeps": info, "seeds": [int(s) for s in seeds]})
    return summary, runs


__all__ = ["FIGURES", "FIGURE_TITLES", "SWEEPS", "SweepSpec", "check_value", "dataset_num_classes", "effective_values",
           "feature_map_size", "format_number", "get_sweep", "parse_value", "parse_values", "queue_memory_mb",
           "reproduce_figure", "reproduce_sweep", "sweep_config", "teacher_widths", "value_label", "value_options", "value_overrides"]
