"""The proxy study: every table and ablation of both papers on the built-in data, run with ``kdlib grid``.

The study is data: :data:`STEPS` lists, per paper table / ablation / figure, the notebook, its parameters and
how its runs are split into grid cells. :func:`run_proxy` (``kdlib proxy``) then

1. trains the one proxy teacher (DeepLabV3-R101 at the ``proxy`` preset's width, :data:`TEACHER_ITERATIONS`
   iterations) into ``runs/proxy/teacher``, reused by every distillation run;
2. for each step, runs its **training cells** with :func:`kdlib.studies.grid.run_grid` (``--jobs`` cells at
   once, each kernel on ``cores // jobs`` threads): the step's runs split into small cells (one student ×
   method, one variant, one sweep value) that train into a run folder shared by all notebooks
   (``runs/proxy/<group>``), write no figures and keep their executed notebooks under ``runs/proxy/cells``;
3. runs the step's **final cell**: the notebook with all its rows, which finds every run finished and only
   reads them, into ``results/proxy/<step>/<run-id>/`` (the executed notebook with its outputs, ``runs.csv``
   with one row per run and its provenance, ``summary.csv``, ``metrics.json``) and ``figures/proxy/<step>/``.

Everything is resumable: finished cells and runs are skipped, an interrupted run resumes. Each grid call is
printed as the equivalent ``kdlib grid`` command line, and ``results/proxy/timing.csv`` records the wall time
of every phase (the study's time budget).
"""
from __future__ import annotations

import json
import os
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence, Tuple

from kdlib.studies.shipped_runs import is_installed_copy

if TYPE_CHECKING:
    import pandas

RESULTS = Path("results/proxy")
FIGURES = Path("figures/proxy")
RUNS = Path("runs/proxy")
CELLS = RUNS / "cells"
TEACHER_RUN = RUNS / "teacher"
#: Finished student runs carried between sessions without weights (``kdlib proxy --ship``;
#: :mod:`kdlib.studies.shipped_runs`): the runs the why study trains or reuses.
SHIPPED_STUDENT_RUNS = RESULTS / "shipped_runs"
SHIPPED_FOLDERS = ("main", "why_*")
PRESET = "proxy"

#: The teacher trains this long (once): a narrow R101 without ImageNet learns slower than the students, and the
#: proxy needs a teacher >= 4 mIoU above the baseline students (measured in results/README.md).
TEACHER_ITERATIONS = 12000

STUDENTS = ("deeplabv3_resnet18", "deeplabv3_mobilenetv2", "pspnet_resnet18")
MAIN_METHODS = ("none", "kd", "skd", "ifvd", "cwd", "cirkd", "afdcd")
MAIN_SEEDS = "0,1,2"
ABLATION_SEEDS = "0"
SWEEP_SEEDS = "0"
#: Loss-term ablations, sweeps and the cost table train half as long as the main tables (their rows are compared
#: with their own ``ce`` / default row, never with the main tables): the 2.5-hour budget on 2 cores.
SHORT = "iterations=400"

#: Table notebooks and the students / methods of their rows (the union of them all is trained once, in
#: ``runs/proxy/main``; every table notebook then reads its rows from there).
TABLE_ROWS: Dict[str, Tuple[Tuple[str, ...], Tuple[str, ...]]] = {
    "cirkd_table1": (STUDENTS, ("none", "skd", "ifvd", "cwd", "cirkd")),
    "cirkd_table2": (("deeplabv3_resnet18", "pspnet_resnet18"), ("none", "skd", "ifvd", "cwd", "cirkd")),
    "cirkd_table3": (("deeplabv3_resnet18", "pspnet_resnet18"), ("none", "skd", "ifvd", "cwd", "cirkd")),
    "afdcd_cityscapes": (("deeplabv3_resnet18", "deeplabv3_mobilenetv2"),
                         ("none", "skd", "ifvd", "cwd", "cirkd", "afdcd")),
    "afdcd_camvid": (("deeplabv3_resnet18", "pspnet_resnet18"), ("none", "skd", "ifvd", "cwd", "cirkd", "afdcd")),
    "afdcd_voc": (("deeplabv3_resnet18", "pspnet_resnet18"), ("none", "skd", "ifvd", "cwd", "cirkd", "afdcd")),
    "afdcd_ade20k": (("deeplabv3_resnet18",), ("none", "kd", "cirkd", "afdcd")),
    "afdcd_coco_stuff": (("deeplabv3_resnet18",), ("none", "kd", "cirkd", "afdcd")),
}


@dataclass(frozen=True)
class Grid:
    """One ``kdlib grid`` call: a notebook and the values of its parameters (Cartesian product)."""

    notebook: str
    params: Mapping[str, Sequence[Any]]


@dataclass(frozen=True)
class Step:
    """One table / ablation / figure of the study: training cells, then one final cell that reads the runs."""

    name: str
    notebook: str
    params: Mapping[str, Any]                       # the final cell's parameters (besides the common ones)
    train: Tuple[Grid, ...] = ()                    # cells that train the runs (no figures), run first
    group: str = "main"                             # run folder: runs/proxy/<group>
    description: str = ""
    common: Mapping[str, Any] = field(default_factory=dict)   # parameters shared by train and final cells
    #: the final cell draws figures (False: its data is drawn by another step, e.g. the main tables' per-class
    #: IoU, which is main_runs' figure: the same runs, drawn once)
    figures: bool = True


def _csv(values: Sequence[Any]) -> str:
    return ",".join(str(v) for v in values)


def _sweep_step(name: str, notebook: str, group: str, panels: Mapping[str, Sequence[Any]], description: str,
                extra_params: Optional[Mapping[str, Any]] = None) -> Step:
    """A sweep notebook: one training cell per (panel, value), the others panels empty; final = all values."""
    extra_params = dict(extra_params or {})
    train = []
    for panel, values in panels.items():
        others = {p: [""] for p in panels if p != panel}
        train.append(Grid(notebook, {panel: [str(v) for v in values], **others}))
    return Step(name, notebook, {**{p: _csv(v) for p, v in panels.items()}, **extra_params}, tuple(train),
                group, description, {"seeds": SWEEP_SEEDS, "extra": SHORT})


def main_rows() -> Dict[str, Tuple[str, ...]]:
    """Per student, the methods some table has a row for (in MAIN_METHODS order): what main_runs trains."""
    rows: Dict[str, set] = {s: set() for s in STUDENTS}
    for students, methods in TABLE_ROWS.values():
        for student in students:
            rows[student].update(methods)
    return {s: tuple(m for m in MAIN_METHODS if m in rows[s]) for s in STUDENTS}


def _main_cells() -> Tuple[Grid, ...]:
    """main_runs' training cells: one (student, method) per cell; students with the same methods share a grid."""
    by_methods: Dict[Tuple[str, ...], List[str]] = {}
    for student, methods in main_rows().items():
        by_methods.setdefault(methods, []).append(student)
    # no R18* table in the training cells: it would train R18 rows while another cell trains them
    return tuple(Grid("cirkd_table1", {"students": students, "methods": list(methods), "no_imagenet_students": [""]})
                 for methods, students in by_methods.items())


def _steps() -> Tuple[Step, ...]:
    steps: List[Step] = [
        Step("main_runs", "cirkd_table1", {"students": _csv(STUDENTS), "methods": _csv(MAIN_METHODS[:1] + MAIN_METHODS[2:])},
             _main_cells(), "main", "every student x method x seed of the main tables (trained once)",
             {"seeds": MAIN_SEEDS}),
    ]
    for table, (students, methods) in TABLE_ROWS.items():
        steps.append(Step(table, table, {"students": _csv(students), "methods": _csv(methods)}, (), "main",
                          f"{table}: rows read from runs/proxy/main (per-class IoU: main_runs' figure)",
                          {"seeds": MAIN_SEEDS}, figures=False))
    from kdlib.studies.ablation import ABLATIONS

    for name in ("cirkd_table4", "afdcd_loss_terms"):
        variants = ABLATIONS[name].variants
        steps.append(Step(name, name, {"variants": _csv(variants)}, (Grid(name, {"variants": list(variants)}),),
                          "ablations", f"{name}: loss-term ablation", {"seeds": ABLATION_SEEDS, "extra": SHORT}))
    steps += [
        _sweep_step("cirkd_fig6", "cirkd_fig6", "sweeps",
                    {"pixel_queue_sizes": (10000, 20000, 40000), "region_queue_sizes": (1000, 2000, 4000)},
                    "CIRKD Fig. 6: queue sizes"),
        _sweep_step("cirkd_fig7", "cirkd_fig7", "sweeps",
                    {"temperatures": (0.05, 0.1, 0.2), "pixel_contrast_sizes": (2048, 4096, 8192),
                     "region_contrast_sizes": (512, 1024, 2048)}, "CIRKD Fig. 7: tau, K_p, K_r"),
        _sweep_step("afdcd_groups", "afdcd_groups", "sweeps", {"values": (8, 16, 32)}, "Af-DCD: M"),
        _sweep_step("afdcd_tau", "afdcd_tau", "sweeps", {"values": (0.02, 0.07, 0.7)}, "Af-DCD: tau"),
        _sweep_step("afdcd_patch", "afdcd_patch", "sweeps", {"values": ("2", "4", "2/pool2")},
                    "Af-DCD: patch size and pooling"),
        _sweep_step("afdcd_mask_ratio", "afdcd_mask_ratio", "sweeps", {"values": (0.5, 0.75, 0.9)},
                    "Af-DCD: mask ratio"),
        Step("afdcd_table5", "afdcd_table5", {"methods": "none,cirkd,afdcd"}, (), "cost",
             "Af-DCD Table 5: time and memory, each run in a fresh process", {"seeds": "0", "extra": SHORT}),
        Step("fig_qualitative", "fig_qualitative", {"methods": "none,cwd,cirkd,afdcd"}, (), "main",
             "qualitative grid (runs of main_runs, seed 0)", {"seeds": "0"}),
        Step("fig_similarity", "fig_similarity", {"distilled_method": "cirkd", "afdcd_method": "afdcd"}, (), "main",
             "similarity maps (runs of main_runs, seed 0)", {"seeds": "0"}),
        Step("fig_tsne", "fig_tsne", {"distilled_method": "cirkd"}, (), "main",
             "t-SNE of pixel embeddings (runs of main_runs, seed 0)", {"seeds": "0"}),
    ]
    return tuple(steps)


#: The why study's seeds (kdlib.studies.why): every experiment compares 3 seeds.
WHY_SEEDS = "0,1,2"
#: The why study's experiments, cheapest first (``kdlib proxy why`` runs them in this order).
WHY_EXPERIMENTS = ("pixel_queue", "loss_scale", "schedule", "map_size")


def _why_steps() -> Tuple[Step, ...]:
    """One step per why-experiment: one training cell per (variant, method, student, seed), so that both cores
    stay busy to the last run (a cell per seed list left one core idle while a variant's last cell ran its
    seeds one after another); the main setting's runs are the main study's (``runs/proxy/main``, reused when
    main_runs trained them)."""
    from kdlib.studies.why import experiment

    steps = []
    for name in WHY_EXPERIMENTS:
        exp = experiment(name)
        train = tuple(Grid("why", {"experiment": [name], "variants": [v.name], "methods": list(exp.methods_of(v)),
                                   "students": list(exp.students), "seeds": WHY_SEEDS.split(",")})
                      for v in exp.variants)
        steps.append(Step(f"why_{name}", "why", {"experiment": name}, train, f"why_{name}",
                          f"why study: {exp.title.lower()} ({exp.question})",
                          {"seeds": WHY_SEEDS, "main_runs_root": str(RUNS / "main")}))
    return tuple(steps)


#: The proxy study proper (``kdlib proxy`` with no step runs these) and the why study (``kdlib proxy why``).
MAIN_STEPS: Tuple[Step, ...] = _steps()
WHY_STEPS: Tuple[Step, ...] = _why_steps()
STEPS: Tuple[Step, ...] = MAIN_STEPS + WHY_STEPS
STEP_NAMES: Tuple[str, ...] = tuple(s.name for s in STEPS)
#: Names that stand for several steps.
STEP_GROUPS: Dict[str, Tuple[str, ...]] = {"why": tuple(s.name for s in WHY_STEPS),
                                           "main": tuple(s.name for s in MAIN_STEPS)}


def notebook_path(name: str) -> Path:
    """``notebooks/<name>.py`` (the study runs from the repository root)."""
    path = Path("notebooks") / f"{name}.py"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run the proxy study from the kdlib repository root")
    return path


def teacher_config(overrides: Optional[Mapping[str, Any]] = None):
    """The proxy teacher's training config: the preset's teacher trained alone for TEACHER_ITERATIONS."""
    from kdlib.engine.config import resolve_config

    overrides = dict(overrides or {})
    base = resolve_config(PRESET, {k: v for k, v in overrides.items() if k not in ("iterations", "run_dir")})
    return resolve_config(PRESET, {"iterations": TEACHER_ITERATIONS, "run_dir": str(TEACHER_RUN), **overrides,
                                   "method": "none", "student": base.teacher, "student_width": base.teacher_width,
                                   "eval_interval": 1000, "checkpoint_interval": 1000})


#: The trained proxy teacher, committed (weights, config, metrics; 16 MB): a fresh clone starts the study from it
#: instead of spending ~27 min of the 2.5-hour budget retraining it (``--train-teacher`` retrains; CPU training
#: is deterministic, so the retrained weights give the committed numbers).
SHIPPED_TEACHER = RESULTS / "teacher"
SHIPPED_TEACHER_FILES = ("best.pt", "config.yaml", "metrics.json")


def install_shipped_teacher() -> bool:
    """Copy the committed teacher into runs/proxy/teacher when that run does not exist yet; True if copied.

    Refused (``ValueError``) when the committed teacher was trained with other settings than
    :func:`teacher_config` (e.g. an edited preset): then it is not the study's teacher.
    """
    from kdlib.engine.reuse import install_shipped_run

    return install_shipped_run(SHIPPED_TEACHER, TEACHER_RUN, teacher_config(), SHIPPED_TEACHER_FILES,
                               "run `kdlib proxy --train-teacher` to train the study's teacher")


def ensure_teacher(progress: bool = True, train_teacher: bool = False) -> Dict[str, Any]:
    """The proxy teacher in runs/proxy/teacher: reused if there, else the committed one
    (:data:`SHIPPED_TEACHER`), else (or with ``train_teacher``) trained; its metrics go to
    results/proxy/teacher.json."""
    from kdlib.engine.reuse import train_or_reuse

    cfg = teacher_config()
    if not train_teacher and install_shipped_teacher() and progress:
        print(f"[proxy] teacher: the committed {SHIPPED_TEACHER} copied to {TEACHER_RUN} "
              f"(`kdlib proxy --train-teacher` retrains it, ~27 min on 2 cores)", flush=True)
    result = train_or_reuse(cfg, progress=progress, fix=f"delete {TEACHER_RUN} to retrain the proxy teacher")
    RESULTS.mkdir(parents=True, exist_ok=True)
    keep = ("miou", "pixel_acc", "mean_acc", "best_miou", "per_class_iou", "wall_time_s", "peak_memory_mb")
    summary = {"model": cfg.student, "width": cfg.student_width, "iterations": cfg.iterations,
               **{k: result.get(k) for k in keep}}
    (RESULTS / "teacher.json").write_text(json.dumps(summary, indent=2) + "\n")
    return result


def cell_params(step: Step, final: bool) -> Dict[str, Any]:
    """Parameters every cell of ``step`` gets: preset, teacher, shared run folder, figures (final cell only)."""
    params: Dict[str, Any] = {"preset": PRESET, "teacher_checkpoint": str(TEACHER_RUN), **dict(step.common)}
    if step.notebook != "afdcd_table5":   # it trains each run in a fresh process, in its own folder
        params["runs_root"] = str(RUNS / step.group)
    params["figures_dir"] = str(FIGURES / step.name) if final and step.figures else ""
    return params


def grid_command(notebook: str, params: Mapping[str, Sequence[Any]], results_root: Path, study: str,
                 jobs: int) -> str:
    """The ``kdlib grid`` command line of one grid call (printed, so any cell can be rerun by hand)."""
    parts = ["kdlib", "grid", str(notebook_path(notebook))]
    for key, values in params.items():
        text = ",".join(json.dumps(v) if isinstance(v, str) and ("," in v or v == "") else str(v) for v in values)
        parts += ["--param", f"{key}={text}"]
    parts += ["--results-root", str(results_root), "--study", study]
    if jobs > 1:
        parts += ["--jobs", str(jobs)]
    return " ".join(shlex.quote(p) for p in parts)


def plan(steps: Optional[Sequence[str]] = None, jobs: int = 2) -> List[Tuple[str, str, Path, str, Dict[str, List[Any]], int]]:
    """Every grid call of the study, in order: (step, phase, results_root, notebook, params, jobs)."""
    wanted = [name for step in (steps or ["main"]) for name in STEP_GROUPS.get(step, (step,))]
    unknown = [s for s in wanted if s not in STEP_NAMES]
    if unknown:
        from kdlib.registry import did_you_mean

        hints = "".join(did_you_mean(u, [*STEP_NAMES, *STEP_GROUPS]) for u in unknown[:1])
        raise ValueError(f"unknown proxy step(s) {unknown}{hints}; the steps are: {', '.join(STEP_NAMES)} "
                         f"(groups: {', '.join(STEP_GROUPS)})")
    calls = []
    for step in STEPS:
        if step.name not in wanted:
            continue
        for grid in step.train:
            params = {**{k: [v] for k, v in cell_params(step, final=False).items()},
                      **{k: list(v) for k, v in grid.params.items()}}
            calls.append((step.name, "train", CELLS, grid.notebook, params, jobs))
        params = {k: [v] for k, v in {**cell_params(step, final=True), **dict(step.params)}.items()}
        calls.append((step.name, "final", RESULTS, step.notebook, params, 1))
    return calls


def run_proxy(steps: Optional[Sequence[str]] = None, jobs: int = 2, dry_run: bool = False,
              progress: bool = True, train_teacher: bool = False) -> List[Dict[str, Any]]:
    """Run (or resume) the proxy study; returns one record per grid call (and the teacher), also appended to
    ``results/proxy/timing.csv``. ``dry_run``: print the ``kdlib grid`` commands only; ``train_teacher``:
    train the teacher instead of starting from the committed one (:func:`ensure_teacher`)."""
    from kdlib.studies.grid import failure_report, run_grid

    calls = plan(steps, jobs)
    records: List[Dict[str, Any]] = []
    if dry_run:
        print(f"# teacher: kdlib train --preset {PRESET} --run-dir {TEACHER_RUN} method=none "
              f"student=<preset teacher> iterations={TEACHER_ITERATIONS}")
        for step, phase, root, notebook, params, n in calls:
            print(f"# {step} ({phase})\n{grid_command(notebook, params, root, step, n)}")
        return records
    started = time.time()
    ensure_teacher(progress, train_teacher)
    records.append({"step": "teacher", "phase": "train", "cells": 1, "ran": 1, "failed": 0,
                    "wall_time_s": round(time.time() - started, 1)})
    _append_timing(records[-1])
    installed = install_shipped_students()
    if installed and progress:
        print(f"[proxy] {len(installed)} finished run(s) from {SHIPPED_STUDENT_RUNS} installed under {RUNS} "
              f"(reused, not re-trained)", flush=True)
    failures = []
    teachers_done = set()
    for step, phase, root, notebook, params, n in calls:
        if step not in teachers_done:   # a why-experiment setting with its own teacher trains it first
            teachers_done.add(step)
            for record in _step_teachers(step, progress):
                records.append(record)
                _append_timing(record)
        if progress:
            print(f"[proxy] {step} ({phase}): {grid_command(notebook, params, root, step, n)}", flush=True)
        t0 = time.time()
        _, results = run_grid(notebook_path(notebook), params, jobs=n, results_root=root,
                              study=step, progress=progress)
        failed = [r for r in results if r.status == "failed"]
        failures += failed
        records.append({"step": step, "phase": phase, "cells": len(results),
                        "ran": sum(r.status != "skipped" for r in results), "failed": len(failed),
                        "wall_time_s": round(time.time() - t0, 1)})
        _append_timing(records[-1])
    report = failure_report(failures)
    if report:
        print(report)
    return records


#: Steps a replay cannot redraw: fresh timings (afdcd_table5). The figure steps (fig_*) need the seed-0 main
#: runs' weights under runs/proxy/main and are redrawn when those are there (:func:`missing_weights`).
REDRAW_SKIPS = ("afdcd_table5",)
FIGURE_STEPS = ("fig_qualitative", "fig_similarity", "fig_tsne")


def missing_weights(step: Step) -> List[str]:
    """The run folders a figure step loads weights from that hold no finished run here (``metrics.json``, written
    last; seed 0 of the main runs, DeepLabV3-R18: the notebooks' default student)."""
    from kdlib.studies.grid import run_id

    methods = {"none"}
    for key in ("methods", "distilled_method", "afdcd_method"):
        methods.update(m.strip() for m in str(step.params.get(key, "")).split(",") if m.strip())
    folders = [RUNS / "main" / run_id({"student": "deeplabv3_resnet18", "method": m, "seed": 0}) for m in sorted(methods)]
    return [str(f) for f in folders if not (f / "metrics.json").is_file() or is_installed_copy(f)]


def redraw(steps: Optional[Sequence[str]] = None, progress: bool = True) -> Dict[str, str]:
    """Re-execute the final cell of every committed step from the committed numbers (``kdlib proxy --redraw``).

    The committed ``results/proxy/*/*/runs.csv`` are copied aside and replayed (:mod:`kdlib.studies.replay`):
    nothing trains, every run keeps its original ``git_commit``. Each step's final cell runs into a scratch
    step's committed folders are moved aside and its final cell runs in their place; on success its files replace
    ``results/proxy/<step>/`` and ``figures/proxy/<step>/`` (a step that draws no figure loses its old ones); on
    failure the committed files are put back. Returns
    ``{step: "redrawn" | "skipped (...)" | "failed: ..."}``.
    """
    import shutil
    import tempfile

    from kdlib.studies.grid import run_grid
    from kdlib.studies.replay import ENV_VAR, PREFER_VAR

    names = [n for n in (steps or ["main", "why"]) for n in STEP_GROUPS.get(n, (n,))]
    scratch = Path(tempfile.mkdtemp(prefix="kdlib-redraw-"))
    source = scratch / "committed"
    for runs_csv in RESULTS.glob("*/*/runs.csv"):
        target = source / runs_csv.relative_to(RESULTS)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(runs_csv, target)
    outcome: Dict[str, str] = {}
    previous = {var: os.environ.get(var) for var in (ENV_VAR, PREFER_VAR)}
    os.environ[ENV_VAR] = str(source)   # the kernels inherit it
    try:
        for step, phase, _, notebook, params, _ in plan(names):
            if phase != "final":
                continue
            os.environ[PREFER_VAR] = step      # a run also committed by another step keeps this step's row
            if step in REDRAW_SKIPS:
                outcome[step] = "skipped (its numbers are timings: re-run the step to measure them again)"
                continue
            if step in FIGURE_STEPS:
                missing = missing_weights(next(s for s in STEPS if s.name == step))
                if missing:
                    outcome[step] = f"skipped (needs the weights of {len(missing)} run(s), e.g. {missing[0]}: " \
                                    f"`kdlib proxy main_runs` trains them)"
                    continue
            if not (RESULTS / step).is_dir():
                outcome[step] = "skipped (not committed)"
                continue
            figures = Path(params["figures_dir"][0]) if params["figures_dir"][0] else None
            backup = scratch / "backup" / step
            backup.mkdir(parents=True)
            shutil.move(str(RESULTS / step), backup / "results")   # the cell runs in place (paths stay relative)
            if FIGURES.joinpath(step).is_dir():
                shutil.move(str(FIGURES / step), backup / "figures")
            _, results = run_grid(notebook_path(notebook), params, jobs=1, results_root=RESULTS, study=step,
                                  progress=progress)
            failed = [r for r in results if r.status == "failed"]
            if failed:   # the committed files come back
                outcome[step] = f"failed: {failed[0].error}"
                shutil.rmtree(RESULTS / step, ignore_errors=True)
                shutil.move(str(backup / "results"), RESULTS / step)
                shutil.rmtree(FIGURES / step, ignore_errors=True)
                if (backup / "figures").is_dir():
                    shutil.move(str(backup / "figures"), FIGURES / step)
                continue
            if figures is None:
                shutil.rmtree(FIGURES / step, ignore_errors=True)
            outcome[step] = "redrawn"
    finally:
        for var, value in previous.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value
        shutil.rmtree(scratch, ignore_errors=True)
    return outcome


def _step_teachers(step: str, progress: bool) -> List[Dict[str, Any]]:
    """Train (or reuse) the teachers of a why step's settings that have their own (:attr:`Variant.teacher`);
    one timing record each."""
    if not step.startswith("why_"):
        return []
    from kdlib.engine.reuse import train_or_reuse
    from kdlib.studies.why import experiment, variant_teacher_config

    from kdlib.engine.reuse import install_shipped_run

    records = []
    for variant in experiment(step[len("why_"):]).variants:
        cfg = variant_teacher_config(variant, teacher_config)
        if cfg is None:
            continue
        run_dir = Path(cfg.run_dir)
        shipped = RESULTS / run_dir.name
        if install_shipped_run(shipped, run_dir, cfg, SHIPPED_TEACHER_FILES,
                               f"delete {shipped} to train the {variant.name} teacher anew") and progress:
            print(f"[proxy] {step}: the committed {shipped} copied to {run_dir}", flush=True)
        if progress:
            print(f"[proxy] {step}: the {variant.name} teacher ({cfg.iterations} iterations) -> {cfg.run_dir}",
                  flush=True)
        t0 = time.time()
        train_or_reuse(cfg, progress=progress, fix=f"delete {cfg.run_dir} to retrain it")
        ship_run(run_dir, shipped)
        records.append({"step": step, "phase": f"teacher {variant.name}", "cells": 1, "ran": 1, "failed": 0,
                        "wall_time_s": round(time.time() - t0, 1)})
    return records


def ship_run(run_dir: Path, shipped: Path) -> bool:
    """Copy a finished teacher run's weights, config and metrics (:data:`SHIPPED_TEACHER_FILES`) from ``run_dir``
    to ``shipped`` under results/proxy, to be committed, when ``shipped`` does not hold them yet; True if copied.
    A why setting's own teacher is shipped like the main one, so that its students can be trained (or re-run)
    in a later session or a fresh clone without retraining it."""
    import shutil

    if all((shipped / f).is_file() for f in SHIPPED_TEACHER_FILES) or not (run_dir / "metrics.json").is_file():
        return False
    tmp = shipped.with_name(shipped.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for f in SHIPPED_TEACHER_FILES:
        shutil.copy2(run_dir / f, tmp / f)
    shutil.rmtree(shipped, ignore_errors=True)
    tmp.rename(shipped)
    return True


def ship_students() -> List[Path]:
    """``kdlib proxy --ship``: copy every finished run under runs/proxy/{main,why_*} that is not shipped yet to
    results/proxy/shipped_runs/ (config, environment, metrics, log; no weights), to be committed, so that a study
    spanning sessions or clones resumes without training them again (:mod:`kdlib.studies.shipped_runs`)."""
    from kdlib.studies.shipped_runs import ship_runs

    return ship_runs(RUNS, SHIPPED_STUDENT_RUNS, SHIPPED_FOLDERS)


def install_shipped_students() -> List[Path]:
    """Install the committed shipped runs under runs/proxy wherever no run is there yet; the installed folders."""
    from kdlib.studies.shipped_runs import install_runs

    return install_runs(SHIPPED_STUDENT_RUNS, RUNS)


def why_status(steps: Optional[Sequence[str]] = None) -> List[str]:
    """Lines saying where each why step stands under runs/proxy (``kdlib proxy --status``): per setting, runs done /
    needed, interrupted runs with their last logged iteration (they resume there), and the setting's own teacher.
    Nothing is trained or loaded."""
    from kdlib.studies.shipped_runs import REQUIRED_FILES
    from kdlib.studies.why import experiment_progress

    def shipped(run_dir: str) -> bool:   # not here yet, but committed: installed when the step runs
        source = SHIPPED_STUDENT_RUNS / Path(run_dir).relative_to(RUNS)
        return all((source / f).is_file() for f in REQUIRED_FILES)

    wanted = [n for step in (steps or ["why"]) for n in STEP_GROUPS.get(step, (step,))]
    unknown = [n for n in wanted if n not in STEP_NAMES]
    if unknown:
        plan(unknown)                     # raises the usual one-line error, with a suggestion
    why_names = {s.name for s in WHY_STEPS}
    lines: List[str] = [f"{n}: --status covers the why steps only" for n in wanted if n not in why_names]
    for step in WHY_STEPS:
        if step.name not in wanted:
            continue
        name = step.name[len("why_"):]
        table = experiment_progress(name, RUNS / step.group, RUNS / "main", [int(s) for s in WHY_SEEDS.split(",")])
        written = "final cell written" if step_done(step.name) else "final cell not run yet"
        lines.append(f"{step.name}: {written} ({RESULTS / step.name})")
        for variant, part in table.groupby("variant", sort=False):
            runs = part[part["method"] != "teacher"]
            text = f"  {variant:<16} {int((runs['state'] == 'done').sum())}/{len(runs)} runs done"
            waiting = sum(shipped(r.run_dir) for r in runs.itertuples() if r.state == "to train")
            if waiting:
                text += f" (+{waiting} shipped in {SHIPPED_STUDENT_RUNS}, installed when the step runs)"
            stopped = runs[runs["state"] == "interrupted"]
            if len(stopped):
                text += "; stopped or running (resume from their checkpoint): " + ", ".join(
                    f"{r.method} seed {r.seed}{_at_iteration(r.iteration)}" for r in stopped.itertuples())
            for r in part[part["method"] == "teacher"].itertuples():
                state = "stopped or running" if r.state == "interrupted" else r.state
                if state == "to train" and all((RESULTS / Path(r.run_dir).name / f).is_file()
                                               for f in SHIPPED_TEACHER_FILES):
                    state = f"committed in {RESULTS / Path(r.run_dir).name}, installed when the step runs"
                text += f"; own teacher {r.run_dir}: {state}{_at_iteration(r.iteration)}"
            lines.append(text)
    return lines


def _at_iteration(iteration: Any) -> str:
    """`` at iteration N`` for a logged iteration, empty when none was logged (None or NaN)."""
    return "" if iteration is None or iteration != iteration else f" at iteration {int(iteration)}"


def step_done(step: str) -> bool:
    """True when ``step``'s final cell has written its results under results/proxy."""
    return any(Path(RESULTS, step).glob("*/summary.csv"))


def _append_timing(record: Mapping[str, Any]) -> None:
    import pandas as pd

    from kdlib.engine.rundir import git_commit

    path = RESULTS / "timing.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = ["step", "phase", "cells", "ran", "failed", "wall_time_s", "finished", "git_commit", "cpu_count"]
    row = pd.DataFrame([{**record, "finished": time.strftime("%Y-%m-%d %H:%M:%S"), "git_commit": git_commit(),
                         "cpu_count": os.cpu_count()}]).reindex(columns=columns)
    row.to_csv(path, mode="a", header=not path.is_file(), index=False)


MACHINE_FILE = RESULTS / "machine.json"   # the machine kind the committed numbers were measured on


def _configuration(run_dir: str) -> str:
    """A run folder without its seed (``..._seed-2`` -> ``...``): the runs of one configuration over seeds."""
    import re

    return re.sub(r"_seed-\d+$", "", Path(run_dir).name)


def verify_runs(results: os.PathLike = "results/proxy", tolerance: float = 1e-9) -> "pandas.DataFrame":
    """Committed numbers vs the runs on this machine: every ``runs.csv`` row whose ``run_dir`` holds a finished
    run (``metrics.json``), plus the teacher (``teacher.json`` vs ``runs/proxy/teacher``).

    Returns one row per comparable run: ``step``, ``run_dir``, ``committed`` and ``local`` mIoU (%), ``match``
    (|difference| <= ``tolerance`` in mIoU fraction), ``spread`` (the committed seed range of the run's
    configuration, in mIoU %: max - min over its seeds in the same table; for a configuration with one seed,
    the median range of the study's multi-seed configurations) and ``within_spread``
    (|local - committed| <= spread). Runs not trained here are left out, and so are runs installed from
    results/proxy/shipped_runs (:mod:`kdlib.studies.shipped_runs`: trained elsewhere).

    What holds where: CPU training is deterministic on one kind of machine (CPU model and the instruction set
    torch's kernels use, :func:`kdlib.engine.rundir.machine`), so there every number must match exactly;
    on another kind the summation order of the kernels differs and numbers move within the seed noise, so
    there each difference must stay inside the committed seed spread (:func:`verification_verdict`).
    """
    import json

    import pandas as pd

    rows: List[Dict[str, object]] = []
    spreads: Dict[Tuple[str, str], float] = {}

    def compare(step: str, run_dir: str, committed: float) -> None:
        metrics = Path(run_dir, "metrics.json")
        if metrics.is_file() and not is_installed_copy(Path(run_dir)):   # a shipped copy was trained elsewhere
            local = float(json.loads(metrics.read_text())["miou"])
            rows.append({"step": step, "run_dir": run_dir, "committed": 100 * committed, "local": 100 * local,
                         "match": abs(local - committed) <= tolerance,
                         "spread": spreads.get((step, _configuration(run_dir)))})

    for runs_csv in sorted(Path(results).glob("*/*/runs.csv")):
        runs = pd.read_csv(runs_csv)
        if "run_dir" not in runs.columns:
            continue
        groups = runs.assign(_config=runs["run_dir"].astype(str).map(_configuration)).groupby("_config")["miou"]
        for config, values in groups:
            if values.count() >= 2:
                spreads[(runs_csv.parent.parent.name, config)] = 100 * float(values.max() - values.min())
    fallback = float(pd.Series(list(spreads.values())).median()) if spreads else 0.0
    teacher = Path(results, "teacher.json")
    if teacher.is_file():
        compare("teacher", str(TEACHER_RUN), float(json.loads(teacher.read_text())["miou"]))
    for runs_csv in sorted(Path(results).glob("*/*/runs.csv")):
        runs = pd.read_csv(runs_csv)
        if "run_dir" not in runs.columns:
            continue
        for run_dir, miou in zip(runs["run_dir"].astype(str), runs["miou"].astype(float)):
            compare(runs_csv.parent.parent.name, run_dir, miou)
    table = pd.DataFrame(rows, columns=["step", "run_dir", "committed", "local", "match", "spread"])
    table["spread"] = table["spread"].astype(float).fillna(fallback)
    table["within_spread"] = (table["local"] - table["committed"]).abs() <= table["spread"] + 100 * tolerance
    return table.drop_duplicates("run_dir")


def committed_machine(results: os.PathLike = "results/proxy") -> Optional[Dict[str, Any]]:
    """The machine the committed numbers were measured on (``machine.json``), or None if not recorded."""
    path = Path(results, MACHINE_FILE.name)
    return json.loads(path.read_text()) if path.is_file() else None


def verification_verdict(checked: "pandas.DataFrame", committed_kind: Optional[str], local_kind: str
                         ) -> Tuple[bool, List[str]]:
    """``(passed, report lines)``. Same machine kind: every run must reproduce its committed mIoU exactly.
    Another (or unrecorded) kind: every difference must lie inside the committed seed spread."""
    same = committed_kind is not None and committed_kind == local_kind
    if same:
        bad = checked[~checked["match"]]
        lines = [f"proxy: this machine ({local_kind}) is the kind the committed numbers were measured on, so they "
                 f"must match exactly: {len(checked) - len(bad)} of {len(checked)} local run(s) do"]
        lines += [f"  MISMATCH {r.run_dir}: committed {r.committed:.4f}, here {r.local:.4f}" for r in bad.itertuples()]
        return len(bad) == 0, lines
    bad = checked[~checked["within_spread"]]
    exact = int(checked["match"].sum())
    lines = [f"proxy: this machine ({local_kind}) is not the kind the committed numbers were measured on "
             f"({committed_kind or 'not recorded'}): numbers may differ within the seed noise. "
             f"{len(checked) - len(bad)} of {len(checked)} local run(s) lie inside the committed seed spread "
             f"({exact} reproduce exactly)"]
    lines += [f"  OUTSIDE {r.run_dir}: committed {r.committed:.4f}, here {r.local:.4f}, spread {r.spread:.2f}"
              for r in bad.itertuples()]
    return len(bad) == 0, lines


__all__ = ["ship_students", "install_shipped_students", "SHIPPED_STUDENT_RUNS", "SHIPPED_FOLDERS", "redraw", "REDRAW_SKIPS", "FIGURE_STEPS", "missing_weights", "verify_runs", "verification_verdict", "committed_machine", "MACHINE_FILE", "STEPS", "STEP_NAMES", "SHIPPED_TEACHER", "Step", "Grid", "TEACHER_ITERATIONS", "ensure_teacher",
           "grid_command", "install_shipped_teacher", "plan", "run_proxy", "teacher_config"]
