"""The "why" study: experiments that separate the proxy's regime from the methods (results/README.md, "Why the
proxy disagrees").

The committed proxy study finds that on the built-in data most of the papers' gains do not appear. Each
experiment here changes one property of the proxy's regime — schedule length, loss scale, feature-map size, the
released code's pixel queue — and measures the methods again, 3 seeds, gains with Welch 95 % intervals. Every
experiment is data (:data:`EXPERIMENTS`): its question, hypothesis and the prediction written *before* its runs
(git history shows the order), its students, methods and **variants** (the settings compared). One variant of
each experiment is the main study's setting: its runs are the main study's (``runs/proxy/main``), reused.

Runs live in ``<runs_root>/<variant>/<student-..._method-..._seed-N>`` (the main variant: ``main_runs_root``),
so a variant's run is the same run whichever notebook or grid cell asks for it. :func:`run_experiment` trains
(or reuses) them and returns the tidy runs table; :func:`effects_table` computes what each experiment compares.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import pandas as pd

R18 = "deeplabv3_resnet18"
MBV2 = "deeplabv3_mobilenetv2"


@dataclass(frozen=True)
class Variant:
    """One setting of an experiment: overrides on top of the proxy preset (and the study's common overrides)."""

    name: str
    overrides: Mapping[str, Any] = field(default_factory=dict)
    methods: Optional[Tuple[str, ...]] = None     # None: every method of the experiment
    main: bool = False                            # the main study's setting (runs in main_runs_root)
    x: Optional[float] = None                     # position on the experiment's x axis (schedule: iterations)
    #: the setting's own teacher, when it needs one: overrides of the proxy teacher's config (with its run_dir);
    #: ``kdlib proxy`` trains it before the step's cells (:func:`variant_teacher_config`)
    teacher: Optional[Mapping[str, Any]] = None
    #: how reports and the overview figure name the setting (default: ``name``)
    label: str = ""

    @property
    def title(self) -> str:
        return self.label or self.name


@dataclass(frozen=True)
class Experiment:
    """A question about the proxy's regime, the prediction made before the runs, and the runs that answer it."""

    name: str
    title: str
    question: str
    hypothesis: str
    prediction: str
    students: Tuple[str, ...]
    methods: Tuple[str, ...]
    variants: Tuple[Variant, ...]
    #: (variant, reference variant) pairs whose same-method difference is the experiment's effect
    contrasts: Tuple[Tuple[str, str], ...] = ()

    def variant(self, name: str) -> Variant:
        for v in self.variants:
            if v.name == name:
                return v
        raise KeyError(f"experiment {self.name!r} has no variant {name!r}; its variants: "
                       f"{', '.join(v.name for v in self.variants)}")

    def methods_of(self, variant: Variant) -> Tuple[str, ...]:
        return variant.methods if variant.methods is not None else self.methods


#: The five methods the schedule and map-size experiments compare (DeepLabV3-R18 student).
CORE_METHODS = ("none", "kd", "cwd", "cirkd", "afdcd")

EXPERIMENTS: Dict[str, Experiment] = {e.name: e for e in (
    Experiment(
        "schedule", "Schedule length",
        "Are 800 iterations too few for the relational and contrastive terms?",
        "KD's soft targets help most while the student is far from converged; CIRKD's cross-image relations and "
        "Af-DCD's dense contrast act on feature structure that a short schedule has not formed yet. Each length "
        "uses the poly schedule over its full length.",
        "The gains of CIRKD and Af-DCD over the same-length baseline grow from 800 to 3,200 iterations, while "
        "KD's gain shrinks.",
        (R18,), CORE_METHODS,
        (Variant("iterations-800", {}, main=True, x=800, label="800 iterations (main)"),
         Variant("iterations-1600", {"iterations": 1600, "eval_interval": 800, "checkpoint_interval": 800}, x=1600,
                 label="1,600 iterations"),
         Variant("iterations-3200", {"iterations": 3200, "eval_interval": 1600, "checkpoint_interval": 1600},
                 x=3200, label="3,200 iterations")),
        (("iterations-1600", "iterations-800"), ("iterations-3200", "iterations-800")),
    ),
    Experiment(
        "loss_scale", "Loss scale",
        "Is Af-DCD below the baseline because its published weights are tied to the papers' tensor sizes?",
        "With `weight_scaling=paper_shapes` every loss term is brought from the paper's tensor sizes "
        "(Cityscapes 512x1024 crops, 64x128 maps, full-width channels) to the run's by a rule fixed by the shapes "
        "alone (kdlib.methods.scaling): a term that sums over elements gets its weight multiplied by "
        "paper count / run count (Af-DCD's L_fd: C*h*w, 256x at the proxy), a similarity that sums over D "
        "channels gets its temperature multiplied by D_run / D_paper (Af-DCD's -L1 contrast logits: 32 vs 128 "
        "channels per group), a term whose value scales with 1/(h*w) gets its weight multiplied by "
        "(h*w)_run / (h*w)_paper (AT); means, and KLs between distributions of normalised vectors, are left "
        "alone (KD, CWD, CIRKD, SKD, IFVD, FitNet). Af-DCD at tau = 0.7 (10x the paper's) is the one-seed point "
        "of the tau sweep that recovered 2.3 mIoU.",
        "Af-DCD with paper_shapes is at or above the baseline (its gain's interval includes or exceeds 0) and "
        "above Af-DCD with the paper's weights; CIRKD is unchanged by the rule (every factor is 1), so its runs "
        "repeat the main ones exactly. Af-DCD at tau = 0.7 is above Af-DCD at the paper's tau = 0.07 over 3 seeds.",
        (R18,), ("none", "cirkd", "afdcd"),
        (Variant("paper_weights", {}, main=True, label="paper weights (main)"),
         Variant("paper_shapes", {"weight_scaling": "paper_shapes"}, methods=("cirkd", "afdcd"),
                 label="weights rescaled to the run's shapes"),
         Variant("tau-0.7", {"method_options": {"tau": 0.7}}, methods=("afdcd",),
                 label="Af-DCD tau = 0.7")),
        (("paper_shapes", "paper_weights"), ("tau-0.7", "paper_weights")),
    ),
    Experiment(
        "map_size", "Feature-map size",
        "Do CIRKD's cross-image relations help more when there are more pixels to relate?",
        "The proxy's relational terms act on 8 x 16 maps (Cityscapes: 64 x 128): a mini-batch of 8 images holds "
        "1,024 pixels to relate, and every class but the largest has a few pixels per image. The larger setting "
        "uses the built-in data's `proxy` images (128 x 256, 1,200 train / 200 val) with 128 x 256 crops, so "
        "16 x 32 maps (4x the pixels), and its own teacher: DeepLabV3-R101 x0.25 trained at that size for 6,000 "
        "iterations (the 64 x 128 teacher: 12,000; the budget allows half as many iterations at 4x the pixels). "
        "The students train 800 iterations as in the main study. The comparison is each method's gain over the "
        "baseline of its own setting.",
        "CIRKD's gain over the baseline is larger at 16 x 32 than at 8 x 16 (the difference of gains above 0 by "
        "more than its interval); the other methods' gains change less than CIRKD's.",
        (R18,), CORE_METHODS,
        (Variant("maps-8x16", {}, main=True, label="8 x 16 maps (main)"),
         Variant("maps-16x32", {"data_root": "data/synthetic_streets_proxy", "dataset_options": {"preset": "proxy"},
                                "crop_size": [128, 256], "teacher_checkpoint": "runs/proxy/teacher_128x256"},
                 teacher={"data_root": "data/synthetic_streets_proxy", "dataset_options": {"preset": "proxy"},
                          "crop_size": [128, 256], "iterations": 6000, "run_dir": "runs/proxy/teacher_128x256"},
                 label="16 x 32 maps, own teacher")),
        (("maps-16x32", "maps-8x16"),),
    ),
    Experiment(
        "pixel_queue", "The released pixel queue",
        "What does the released CIRKD code's pixel-queue indexing do to the result?",
        "The released code fills the class-c pixel queue from the first n_c raster positions of each image "
        "instead of the class-c pixels (kdlib.methods.cirkd, `pixel_queue_bug`), so the memory pixel-to-pixel "
        "term contrasts against mislabelled memory. The corrected queue is the proxy's default.",
        "No difference beyond the seed noise at the proxy's scale: the memory terms are two of four CIRKD terms "
        "and the proxy's CIRKD gain is itself within noise; the difference's interval includes 0 for both students.",
        (R18, MBV2), ("none", "cirkd"),
        (Variant("corrected", {}, main=True, label="corrected queue (main)"),
         Variant("released", {"method_options": {"pixel_queue_bug": True}}, methods=("cirkd",),
                 label="released pixel queue")),
        (("released", "corrected"),),
    ),
)}


def experiment(name: str) -> Experiment:
    if name not in EXPERIMENTS:
        from kdlib.registry import did_you_mean

        raise ValueError(f"unknown why-experiment {name!r}{did_you_mean(name, EXPERIMENTS)}; "
                         f"known: {', '.join(EXPERIMENTS)}")
    return EXPERIMENTS[name]


def variant_root(variant: Variant, runs_root: os.PathLike, main_runs_root: Optional[os.PathLike]) -> Path:
    """Where a variant's runs live: the main study's run folder for the main variant, else runs_root/<variant>."""
    if variant.main and main_runs_root not in (None, ""):
        return Path(main_runs_root)
    return Path(runs_root) / variant.name


def variant_teacher_config(variant: Variant, teacher_config: Any) -> Any:
    """The training config of ``variant``'s own teacher: ``teacher_config(overrides)`` (the proxy teacher's
    config function) with the variant's teacher overrides; None when the variant uses the study's teacher."""
    return None if variant.teacher is None else teacher_config(dict(variant.teacher))


def run_experiment(name: str, preset: str, seeds: Sequence[int], runs_root: os.PathLike,
                   main_runs_root: Optional[os.PathLike] = None, common: Optional[Mapping[str, Any]] = None,
                   students: Optional[Sequence[str]] = None, methods: Optional[Sequence[str]] = None,
                   variants: Optional[Sequence[str]] = None, progress: bool = True) -> pd.DataFrame:
    """Train (or reuse) the runs of experiment ``name`` and return one row per run.

    ``students`` / ``methods`` / ``variants`` select a subset (a grid cell trains one variant and method);
    empty or None means all of the experiment's. Columns: ``experiment``, ``variant``, ``x`` (the variant's
    position, e.g. iterations), then :func:`kdlib.studies.study.run_study`'s (``student``, ``method``, ``seed``,
    ``miou`` ..., ``run_dir``, ``git_commit``).
    """
    from kdlib.engine.config import merge
    from kdlib.studies.study import run_study

    exp = experiment(name)
    chosen = [exp.variant(v) for v in variants] if variants else list(exp.variants)
    frames: List[pd.DataFrame] = []
    for variant in chosen:
        wanted = [m for m in exp.methods_of(variant) if not methods or m in methods]
        who = [s for s in exp.students if not students or s in students]
        unknown = [s for s in (students or ()) if s not in exp.students]
        if unknown:
            raise ValueError(f"experiment {name!r} has no student(s) {unknown}; its students: {', '.join(exp.students)}")
        if not wanted or not who:
            continue
        configs = [{"student": s, "method": m} for s in who for m in wanted]
        runs = run_study(preset, configs, seeds, variant_root(variant, runs_root, main_runs_root),
                         common=merge(dict(common or {}), dict(variant.overrides)), progress=progress)
        runs.insert(0, "x", variant.x)
        runs.insert(0, "variant", variant.name)
        runs.insert(0, "experiment", name)
        frames.append(runs)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def run_state(run_dir: os.PathLike) -> Tuple[str, Optional[int]]:
    """Where a run folder stands, from its files alone: ``("done", None)`` (``metrics.json``),
    ``("interrupted", iteration)`` (a checkpoint to resume from; the last logged iteration),
    ``("started", None)`` (a config but no checkpoint yet: it restarts) or ``("to train", None)``."""
    import json

    run_dir = Path(run_dir)
    if (run_dir / "metrics.json").is_file():
        return "done", None
    if (run_dir / "checkpoint_last.pt").is_file():
        iteration = None
        log = run_dir / "log.jsonl"
        if log.is_file():
            lines = [line for line in log.read_text().splitlines() if line.strip()]
            try:
                iteration = int(json.loads(lines[-1]).get("iteration")) if lines else None
            except (ValueError, TypeError):
                iteration = None
        return "interrupted", iteration
    if (run_dir / "config.yaml").is_file():
        return "started", None
    return "to train", None


def experiment_progress(name: str, runs_root: os.PathLike, main_runs_root: Optional[os.PathLike],
                        seeds: Sequence[int]) -> pd.DataFrame:
    """Every run experiment ``name`` needs and where it stands (:func:`run_state`), without training or reading a
    checkpoint: columns ``variant, student, method, seed, run_dir, state, iteration``; a setting's own teacher
    first among its rows, with ``method`` ``teacher``. What ``kdlib proxy --status`` prints."""
    from kdlib.studies.grid import run_id

    exp = experiment(name)
    rows: List[Dict[str, Any]] = []
    for variant in exp.variants:
        teacher_dir = (variant.teacher or {}).get("run_dir")
        if teacher_dir:
            state, iteration = run_state(teacher_dir)
            rows.append({"variant": variant.name, "student": "", "method": "teacher", "seed": None,
                         "run_dir": str(teacher_dir), "state": state, "iteration": iteration})
        root = variant_root(variant, runs_root, main_runs_root)
        for student in exp.students:
            for method in exp.methods_of(variant):
                for seed in seeds:
                    run_dir = root / run_id({"student": student, "method": method, "seed": int(seed)})
                    state, iteration = run_state(run_dir)
                    rows.append({"variant": variant.name, "student": student, "method": method, "seed": int(seed),
                                 "run_dir": str(run_dir), "state": state, "iteration": iteration})
    return pd.DataFrame(rows, columns=["variant", "student", "method", "seed", "run_dir", "state", "iteration"])


def gains_by_variant(runs: pd.DataFrame, name: str) -> pd.DataFrame:
    """Per (student, variant, method): mIoU (%) ± 95 % CI and the gain over the baseline (``none``) of the same
    variant — or of the main variant where the variant trains no baseline — with Welch's 95 % interval."""
    from kdlib.report.proxy_report import welch_interval
    from kdlib.report.tables import summarize_seeds

    exp = experiment(name)
    main = next(v.name for v in exp.variants if v.main)
    stats = summarize_seeds(runs, by=["student", "variant", "method"])
    rows: List[Dict[str, Any]] = []
    for (student, variant, method), part in runs.groupby(["student", "variant", "method"], sort=False):
        st = stats[(stats["student"] == student) & (stats["variant"] == variant) & (stats["method"] == method)].iloc[0]
        base_variant = variant if ((runs["variant"] == variant) & (runs["method"] == "none")).any() else main
        base = runs[(runs["student"] == student) & (runs["variant"] == base_variant) & (runs["method"] == "none")]
        gain, ci = (welch_interval(100 * part["miou"].astype(float), 100 * base["miou"].astype(float))
                    if method != "none" and len(base) else (float("nan"), float("nan")))
        rows.append({"student": student, "variant": variant, "x": part["x"].iloc[0], "method": method,
                     "n": int(st["n"]), "miou_pct": 100 * st["mean"], "miou_ci_pct": 100 * st["ci"],
                     "baseline_variant": base_variant if method != "none" else "", "gain_pct": gain,
                     "gain_ci_pct": ci})
    return pd.DataFrame(rows)


def welch_combination(groups: Sequence[Tuple[float, Sequence[float]]], confidence: float = 0.95
                      ) -> Tuple[float, float]:
    """``sum(sign * mean(values))`` over independent groups and the half-width of its Welch–Satterthwaite
    interval: se² = Σ var_i / n_i, dof = (Σ var_i/n_i)² / Σ (var_i/n_i)² / (n_i − 1). NaN half-width when a
    group has fewer than 2 values. Two groups with signs +1, −1 give Welch's two-sample interval."""
    import math

    import numpy as np

    from kdlib.report.tables import t_quantile

    estimate, terms = 0.0, []
    for sign, values in groups:
        x = np.asarray(values, dtype=float)
        estimate += sign * float(x.mean())
        terms.append((float(x.var(ddof=1)) / len(x) if len(x) > 1 else float("nan"), len(x)))
    if any(math.isnan(v) for v, _ in terms):
        return estimate, float("nan")
    se2 = sum(v for v, _ in terms)
    if se2 == 0.0:
        return estimate, 0.0
    dof = se2 ** 2 / sum(v ** 2 / (n - 1) for v, n in terms if v)
    return estimate, t_quantile(0.5 + confidence / 2.0, dof) * math.sqrt(se2)


def _miou_pct(runs: pd.DataFrame, variant: str, student: str, method: str) -> pd.Series:
    """The mIoU (%) of every seed of one (setting, student, method) in a why runs table."""
    part = runs[(runs["variant"] == variant) & (runs["student"] == student) & (runs["method"] == method)]
    return 100 * part["miou"].astype(float)


def effects_table(runs: pd.DataFrame, name: str) -> pd.DataFrame:
    """The experiment's contrasts: per (student, method, variant vs reference), the difference of mean mIoU (pp)
    and the difference of the gains over each setting's own baseline (its ``none`` runs, or the main setting's
    where it trains none), each with its Welch 95 % interval; ``resolved`` when the gain difference's interval
    excludes 0. With the same baseline on both sides the two differences are equal."""
    exp = experiment(name)
    main = next(v.name for v in exp.variants if v.main)

    miou = partial(_miou_pct, runs)

    def baseline_of(variant: str, student: str) -> str:
        return variant if len(miou(variant, student, "none")) else main

    rows: List[Dict[str, Any]] = []
    for variant, reference in exp.contrasts:
        for (student, method), _ in runs[runs["variant"] == variant].groupby(["student", "method"], sort=False):
            if method == "none":
                continue
            x, y = miou(variant, student, method), miou(reference, student, method)
            if not len(y):
                continue
            diff, ci = welch_combination([(1, x), (-1, y)])
            bx, by = baseline_of(variant, student), baseline_of(reference, student)
            groups = [(1, x), (-1, y)]
            if bx != by:
                groups += [(-1, miou(bx, student, "none")), (1, miou(by, student, "none"))]
            gain_diff, gain_ci = welch_combination(groups)
            rows.append({"student": student, "method": method, "variant": variant, "reference": reference,
                         "n": len(x), "n_reference": len(y), "difference_pct": diff, "difference_ci_pct": ci,
                         "gain_difference_pct": gain_diff, "gain_difference_ci_pct": gain_ci,
                         "resolved": bool(gain_ci == gain_ci and abs(gain_diff) > gain_ci)})
    return pd.DataFrame(rows)


def method_change_contrasts(runs: pd.DataFrame, name: str) -> pd.DataFrame:
    """How much more one method's gain changed than another's, per contrast of the experiment: for methods a, b
    of the same student and a setting v against its reference r, ``(gain_a(v) - gain_a(r)) - (gain_b(v) -
    gain_b(r))`` in mIoU pp, which equals ``a(v) - b(v) - a(r) + b(r)`` (the baselines cancel), with the Welch
    95 % interval of that four-group sum (:func:`welch_combination`). One row per unordered pair of the
    distillation methods both settings measured, in the experiment's method order; ``resolved`` when the
    interval excludes 0. This tests predictions of the form "method a's gain changes more than the others'"."""
    exp = experiment(name)
    order = {m: i for i, m in enumerate(exp.methods)}

    miou = partial(_miou_pct, runs)

    rows: List[Dict[str, Any]] = []
    for variant, reference in exp.contrasts:
        for student in dict.fromkeys(runs.loc[runs["variant"] == variant, "student"]):
            methods = sorted({m for m in runs.loc[(runs["variant"] == variant) & (runs["student"] == student),
                                                  "method"] if m != "none" and len(miou(reference, student, m))},
                             key=lambda m: order.get(m, len(order)))
            for i, a in enumerate(methods):
                for b in methods[i + 1:]:
                    estimate, ci = welch_combination([(1, miou(variant, student, a)), (-1, miou(variant, student, b)),
                                                      (-1, miou(reference, student, a)),
                                                      (1, miou(reference, student, b))])
                    rows.append({"student": student, "variant": variant, "reference": reference, "method": a,
                                 "other": b, "change_difference_pct": estimate, "change_difference_ci_pct": ci,
                                 "resolved": bool(ci == ci and abs(estimate) > ci)})
    return pd.DataFrame(rows, columns=["student", "variant", "reference", "method", "other", "change_difference_pct",
                                       "change_difference_ci_pct", "resolved"])


def paper_gains(student: str = R18, dataset: str = "cityscapes") -> Dict[str, float]:
    """The papers' gains (mIoU pp over their baseline) for ``student`` on ``dataset`` val, per method: the main
    tables (CIRKD Table 1, Af-DCD's main table); KD from CIRKD Table 4 (``ce+kd``; reported for MobileNetV2
    only, so used as the KD reference for every student and labelled so in the figures)."""
    from kdlib.paper_numbers import paper_results

    table = paper_results()
    table = table[(table["dataset"] == dataset) & (table["split"] == "val") & (table["metric"] == "miou")]
    gains: Dict[str, float] = {}
    main = table[(table["student"] == student) & (table["variant"] == "")]
    base = main[main["method"] == "none"]["value"]
    for method, values in main[main["method"] != "none"].groupby("method"):
        if len(base):
            gains[method] = float(values["value"].iloc[0]) - float(base.iloc[0])
    ablation = table[(table["table"] == "Table 4") & (table["paper"] == "cirkd")]
    ce = ablation[ablation["variant"] == "ce"]["value"]
    kd = ablation[ablation["variant"] == "ce+kd"]["value"]
    if len(ce) and len(kd):
        gains.setdefault("kd", float(kd.iloc[0]) - float(ce.iloc[0]))
    return gains


def write_experiment(runs: pd.DataFrame, name: str, output_dir: Optional[os.PathLike],
                     figures_dir: Optional[os.PathLike] = None, preset: Optional[str] = None
                     ) -> Tuple[pd.DataFrame, pd.DataFrame]:
    """Write an experiment's results and figure; return (gains, effects).

    ``output_dir``: ``runs.csv`` (one row per run, with its ``git_commit``), ``summary.csv`` (the gains,
    :func:`gains_by_variant`), ``effects.csv`` (:func:`effects_table`), ``metrics.json``; ``figures_dir``:
    ``why_<name>.{png,pdf}`` (gain against iterations for the schedule, forest plots otherwise), titled with
    the experiment and ``preset``'s setting (crop, student width). Percent columns end in ``_pct``.
    """
    from kdlib.figures.why_plots import plot_effects, plot_gain_vs_x
    from kdlib.studies.notebook import save_metrics

    exp = experiment(name)
    gains = gains_by_variant(runs, name)
    effects = effects_table(runs, name)
    if output_dir:
        from kdlib.atomic import atomic_path

        Path(output_dir).mkdir(parents=True, exist_ok=True)
        for table, file in ((runs, "runs.csv"), (gains, "summary.csv"), (effects, "effects.csv")):
            with atomic_path(Path(output_dir) / file) as tmp:
                table.to_csv(tmp, index=False)
        save_metrics(output_dir, {"experiment": name, "runs": int(len(runs)),
                                  "effects": effects.to_dict(orient="records"),
                                  "gains": gains.to_dict(orient="records")})
    if figures_dir:
        title, width = f"Why study · {exp.title}", None
        if preset:
            from kdlib.engine.config import resolve_config

            cfg = resolve_config(preset, {})
            width = cfg.student_width
            crops = dict.fromkeys(f"{h}x{w}" for h, w in [cfg.crop_size, *(v.overrides["crop_size"] for v in
                                                                         exp.variants if "crop_size" in v.overrides)])
            title += f" · {preset} preset, {' / '.join(crops)} crops"
        if all(v.x is not None for v in exp.variants):
            plot_gain_vs_x(gains, Path(figures_dir) / f"why_{name}", title, "iterations (poly schedule over each length)",
                           paper=paper_gains(exp.students[0]) if len(exp.students) == 1 else None, width=width)
        else:
            plot_effects(gains, effects, Path(figures_dir) / f"why_{name}", title, width=width,
                         variant_labels={v.name: v.title for v in exp.variants})
    return gains, effects


__all__ = ["CORE_METHODS", "EXPERIMENTS", "Experiment", "Variant", "effects_table", "experiment", "experiment_progress",
           "run_state",
           "gains_by_variant", "method_change_contrasts", "paper_gains", "welch_combination", "run_experiment", "variant_root", "variant_teacher_config",
           "write_experiment"]
