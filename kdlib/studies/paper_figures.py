"""The papers' figures as studies: train (or reuse) the runs a figure needs, then draw it with :mod:`kdlib.figures`.

:func:`trained_runs` finds or trains the run of every method (the same run folders as the table notebooks',
so finished runs are reused); :func:`make_qualitative_figure` (CIRKD Fig. 4), :func:`make_similarity_figures`
(CIRKD's cross-image relations, Af-DCD's patch similarity) and :func:`make_tsne_figure` load them and draw.
Each figure notebook (``notebooks/fig_*.py``) is its parameters plus one of these calls.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Union

import pandas as pd
import torch
from torch import Tensor

from kdlib.figures.embedding import class_silhouette, plot_tsne, tsne_embeddings
from kdlib.figures.predictions import (PathLike, eval_dataset, extract_outputs, load_model, load_samples,
                                       predict_labels)
from kdlib.figures.qualitative import class_colours, method_label, plot_qualitative_grid
from kdlib.figures.similarity import (PatchSimilarity, afdcd_patch_similarity, anchor_similarity_maps, offdiag_corr,
                                      patch_of_cell, plot_afdcd_matrices, plot_similarity_maps, relation_mad)


def trained_runs(preset: str, student: str, methods: Sequence[str], seed: int, runs_root: PathLike,
                 common: Optional[Mapping[str, Any]] = None, given: Optional[Mapping[str, PathLike]] = None,
                 progress: bool = True) -> Dict[str, Path]:
    """Run directory of every method: ``given[method]`` if present, else trained (or reused) under ``runs_root``.

    Missing runs are made by :func:`kdlib.studies.study.run_study` with configs ``{"student": student,
    "method": method}``, seed ``seed`` and the shared overrides ``common`` (teacher checkpoint, data, ...), so
    they land in ``runs_root/<run_id(student, method, seed)>`` exactly as the table notebooks' runs do and a
    finished run is reused instead of retrained.

    Returns:
        ``{method: run_dir}`` in the order of ``methods``.
    """
    from kdlib.studies.grid import run_id
    from kdlib.studies.study import run_study

    given = {str(k): Path(v) for k, v in (given or {}).items()}
    unknown = sorted(set(given) - set(methods))
    if unknown:
        raise ValueError(f"run dirs given for {unknown}, which are not among the methods {list(methods)}")
    todo = [m for m in methods if m not in given]
    if todo:
        run_study(preset, [{"student": student, "method": m} for m in todo], [int(seed)], runs_root,
                  common, progress=progress)
    return {m: given.get(m, Path(runs_root) / run_id({"student": student, "method": m, "seed": int(seed)}))
            for m in methods}


def _students_and_teacher(preset: str, student: str, methods: Sequence[str], seed: int, runs_root: PathLike,
                          common: Mapping[str, Any], run_dirs: Optional[Mapping[str, PathLike]],
                          teacher_checkpoint: PathLike, device: Union[str, torch.device], progress: bool
                          ) -> Tuple[Dict[str, Path], Dict[str, Any], Any, Any]:
    """The run folders and loaded students of ``methods`` (trained or reused), the baseline run's evaluation
    data and the teacher (a kdlib run or an official file: the preset gives its name and width)."""
    from kdlib.engine.config import resolve_config

    runs = trained_runs(preset, student, methods, seed, runs_root, common, run_dirs, progress=progress)
    loaded = {m: load_model(path, device) for m, path in runs.items()}
    dataset = eval_dataset(loaded["none"].config)
    cfg = resolve_config(preset, dict(common))
    teacher = load_model(teacher_checkpoint, device, model_name=cfg.teacher, num_classes=dataset.num_classes,
                         width=cfg.teacher_width)
    return runs, loaded, dataset, teacher


def make_qualitative_figure(preset: str, student: str, methods: Sequence[str], seed: int, num_samples: int,
                            runs_root: Union[str, os.PathLike], figures_dir: Union[str, os.PathLike],
                            common: Optional[Mapping[str, Any]] = None,
                            run_dirs: Optional[Mapping[str, Union[str, os.PathLike]]] = None,
                            first_sample: int = 0, device: str = "auto", palette: str = "dataset",
                            progress: bool = True) -> Dict[str, Any]:
    """The ``fig_qualitative`` notebook: predictions of each method's student on ``num_samples`` val images.

    Runs not in ``run_dirs`` are trained (or reused) under ``runs_root`` (:func:`~kdlib.figures.predictions.
    trained_runs`). Samples ``first_sample .. first_sample + num_samples - 1`` of the first run's validation
    split. ``palette``: ``"dataset"`` (the dataset's own class colours, as the papers' figures) or a seaborn
    palette name (e.g. ``"colorblind"``; it has 10 colours, so beyond 10 classes colours repeat). Writes
    ``figures_dir/qualitative.{png,pdf}``.

    Returns:
        ``{"figure": [paths], "runs": {method: run_dir}, "samples": [indices], "pixel_acc": {method: acc on
        the shown samples}, "dataset": name}``.
    """

    runs = trained_runs(preset, student, methods, seed, runs_root, common, run_dirs, progress=progress)
    models = {m: load_model(path, device) for m, path in runs.items()}
    dataset = eval_dataset(next(iter(models.values())).config)
    indices = list(range(int(first_sample), min(len(dataset), int(first_sample) + int(num_samples))))
    images, labels, rgb = load_samples(dataset, indices)
    preds = {m: predict_labels(loaded.model, images) for m, loaded in models.items()}
    valid = labels != dataset.ignore_index
    accuracy = {m: float((p[valid] == labels[valid]).float().mean()) if valid.any() else float("nan")
                for m, p in preds.items()}
    name = next(iter(models.values())).config.get("dataset") or getattr(dataset, "display_name", "")
    colours = dataset.palette if palette == "dataset" else class_colours(palette, dataset.num_classes)
    paths = plot_qualitative_grid(rgb, labels, preds, Path(figures_dir) / "qualitative", colours,
                                  dataset.class_names, title=f"{student} students on {name} "
                                                             f"({dataset.split} #{indices[0]}-{indices[-1]})")
    return {"figure": [str(p) for p in paths], "runs": {m: str(p) for m, p in runs.items()}, "samples": indices,
            "pixel_acc": accuracy, "dataset": name}


def make_similarity_figures(preset: str, student: str, distilled_method: str, seed: int,
                            runs_root: Union[str, os.PathLike], teacher_checkpoint: Union[str, os.PathLike],
                            output_dir: Union[str, os.PathLike], figures_dir: Union[str, os.PathLike],
                            common: Optional[Mapping[str, Any]] = None,
                            run_dirs: Optional[Mapping[str, Union[str, os.PathLike]]] = None,
                            afdcd_method: str = "afdcd", image_a: int = 0, image_b: int = 1,
                            anchor: Tuple[int, int] = (-1, -1), num_images: int = 4, device: str = "auto",
                            progress: bool = True) -> Dict[str, Any]:
    """The ``fig_similarity`` notebook: teacher vs baseline student vs distilled students.

    1. Runs ``none``, ``distilled_method`` and ``afdcd_method`` of ``student`` (given in ``run_dirs`` or
       trained / reused under ``runs_root``); the teacher from ``teacher_checkpoint``.
    2. Head features (``SegOutput.feature``, CIRKD's) of validation images ``image_a``, ``image_b``:
       anchor maps within a and across a → b for teacher / baseline / distilled →
       ``figures_dir/similarity_maps.{png,pdf}``. ``anchor`` = (row, col) feature cell of image a; -1 = the
       centre.
    3. Backbone c4 (Af-DCD's feature) of image a: each model's **own** patch self-similarity (s = t = its c4;
       the student's c4 is not passed through the Af-DCD align conv, which only the Af-DCD run has and its
       checkpoint does not keep), for the patch holding the anchor, with the Af-DCD run's groups / patch /
       pool / similarity → ``figures_dir/afdcd_patch_similarity.{png,pdf}``.
    4. Numbers (``output_dir/similarity.csv`` and ``metrics.json``), one row per student: mean absolute
       difference to the teacher of the anchor maps and of the whole relation matrices over ``num_images``
       images (within / across), and the correlation with the teacher's Af-DCD matrices (off-diagonal entries,
       all patches of those images; scale-free since widths differ). Reported, not asserted.
    """
    from kdlib.studies.notebook import save_metrics
    from kdlib.methods.afdcd import AfDCD

    common = dict(common or {})
    methods = list(dict.fromkeys(["none", distilled_method, afdcd_method]))
    runs, loaded, dataset, teacher = _students_and_teacher(preset, student, methods, seed, runs_root, common,
                                                           run_dirs, teacher_checkpoint, device, progress)
    models = {"teacher": teacher, **loaded}
    names = {"teacher": "teacher", **{m: f"{method_label(m)} student" for m in methods}}

    count = max(int(num_images), image_a + 1, image_b + 1)
    if len(dataset) < 2 or count > len(dataset):
        raise ValueError(f"need images 0..{count - 1} of the {len(dataset)}-image {dataset.split} split")
    images, labels, rgb = load_samples(dataset, list(range(count)))
    outs = {m: extract_outputs(model.model, images) for m, model in models.items()}
    h, w = outs["teacher"].feature.shape[-2:]
    row = h // 2 if anchor[0] < 0 else int(anchor[0])
    col = w // 2 if anchor[1] < 0 else int(anchor[1])
    if not (0 <= row < h and 0 <= col < w):
        raise ValueError(f"anchor ({row}, {col}) outside the {h}x{w} feature map")

    def maps(feature: Tensor) -> Tuple[Tensor, Tensor]:
        return (anchor_similarity_maps(feature[image_a], feature[image_a], (row, col)),
                anchor_similarity_maps(feature[image_a], feature[image_b], (row, col)))

    shown = ["teacher", "none", distilled_method]
    panel = {names[m]: maps(outs[m].feature) for m in shown}
    fig_maps = plot_similarity_maps(rgb[image_a], rgb[image_b], panel, (row, col),
                                    Path(figures_dir) / "similarity_maps",
                                    title=f"Head-feature cosine similarity to an anchor pixel "
                                          f"(cell {row},{col} of {h}x{w}; val #{image_a} / #{image_b})")

    # the Af-DCD run's own contrast options; its paper defaults for the dataset if that run is not Af-DCD
    opts = dict(AfDCD.paper_defaults(str(loaded["none"].config.get("dataset", "")))["method_options"])
    afdcd_cfg = loaded[afdcd_method].config
    if afdcd_cfg.get("method") == "afdcd":
        opts.update(afdcd_cfg.get("method_options", {}))
    groups, patch, pool = int(opts.get("groups", 16)), int(opts.get("patch", 4)), opts.get("pool", 4)
    similarity = str(opts.get("similarity", "l1"))
    c4_models = ["teacher", "none", afdcd_method]
    cell = patch_of_cell((row, col), (h, w), patch, pool)
    own: Dict[str, PatchSimilarity] = {}
    every: Dict[str, PatchSimilarity] = {}
    notes: Dict[str, str] = {}
    per_group: Dict[str, int] = {}
    for m in list(dict.fromkeys(c4_models + [distilled_method])):
        c4 = outs[m].c4
        g = math.gcd(c4.shape[1], groups)
        notes[m] = f"C={c4.shape[1]}, M={g}"
        per_group[m] = c4.shape[1] // g
        own[m] = afdcd_patch_similarity(c4[image_a], c4[image_a], g, patch, pool, similarity, cell)
        per_image = [afdcd_patch_similarity(c4[i], c4[i], g, patch, pool, similarity, None)
                     for i in range(images.shape[0])]
        every[m] = PatchSimilarity(*(torch.cat(parts) for parts in zip(*per_image)))
    fig_afdcd = plot_afdcd_matrices({names[m]: own[m] for m in c4_models}, Path(figures_dir) /
                                    "afdcd_patch_similarity", similarity=similarity,
                                    notes={names[m]: notes[m] for m in c4_models},
                                    channels_per_group={names[m]: per_group[m] for m in c4_models},
                                    title=f"Af-DCD patch self-similarity of backbone c4 (patch {cell} of val "
                                          f"#{image_a}; {patch}x{patch} patch, pool {pool}, {similarity})")

    rows = []
    for m in methods:
        rel = relation_mad(outs["teacher"].feature, outs[m].feature)
        t_maps, s_maps = maps(outs["teacher"].feature), maps(outs[m].feature)
        same_groups = every["teacher"].channel.shape == every[m].channel.shape
        rows.append({
            "method": m, "model": names[m], "run_dir": str(runs[m]),
            "anchor_within_mad": float((t_maps[0] - s_maps[0]).abs().double().mean()),
            "anchor_across_mad": float((t_maps[1] - s_maps[1]).abs().double().mean()),
            "relation_within_mad": rel["within"], "relation_across_mad": rel["across"],
            "afdcd_spatial_corr": offdiag_corr(every["teacher"].spatial, every[m].spatial),
            "afdcd_channel_corr": (offdiag_corr(every["teacher"].channel, every[m].channel) if same_groups
                                   else float("nan")),
        })
    table = pd.DataFrame(rows)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    table.to_csv(output_dir / "similarity.csv", index=False)
    result = {"dataset": loaded["none"].config.get("dataset"), "anchor": [row, col], "feature_size": [h, w],
              "images": [image_a, image_b], "num_images": count, "afdcd_patch": list(cell),
              "afdcd_options": {"groups": groups, "patch": patch, "pool": pool, "similarity": similarity},
              "teacher": str(teacher.checkpoint), "runs": {m: str(p) for m, p in runs.items()},
              "rows": table.to_dict(orient="records"),
              "figures": [str(p) for p in [*fig_maps, *fig_afdcd]]}
    save_metrics(output_dir, result)
    return result


def make_tsne_figure(preset: str, student: str, distilled_method: str, seed: int,
                     runs_root: Union[str, os.PathLike], teacher_checkpoint: Union[str, os.PathLike],
                     output_dir: Union[str, os.PathLike], figures_dir: Union[str, os.PathLike],
                     common: Optional[Mapping[str, Any]] = None,
                     run_dirs: Optional[Mapping[str, Union[str, os.PathLike]]] = None,
                     num_images: int = 8, max_points: int = 2000, tsne_seed: int = 0, perplexity: float = 30.0,
                     device: str = "auto", progress: bool = True) -> Dict[str, Any]:
    """The ``fig_tsne`` notebook: t-SNE of head features (``SegOutput.feature``) of teacher, baseline and
    ``distilled_method`` students on the first ``num_images`` validation images.

    Runs not in ``run_dirs`` are trained (or reused) under ``runs_root``. Writes ``figures_dir/tsne.{png,pdf}``,
    ``output_dir/tsne.csv`` (the embedding) and ``output_dir/metrics.json`` (points per model and each model's
    cosine silhouette score of the embedded pixels by class).
    """
    from kdlib.studies.notebook import save_metrics

    common = dict(common or {})
    methods = list(dict.fromkeys(["none", distilled_method]))
    runs, loaded, dataset, teacher = _students_and_teacher(preset, student, methods, seed, runs_root, common,
                                                           run_dirs, teacher_checkpoint, device, progress)
    images, labels, _ = load_samples(dataset, list(range(min(int(num_images), len(dataset)))))
    models = {"teacher": teacher, **{f"{method_label(m)} student": loaded[m] for m in methods}}
    features = {name: extract_outputs(m.model, images).feature for name, m in models.items()}
    df = tsne_embeddings(features, labels, max_points, tsne_seed, dataset.class_names, perplexity,
                         ignore_index=dataset.ignore_index)
    silhouette = class_silhouette(features, labels, max_points, tsne_seed, ignore_index=dataset.ignore_index)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    df.to_csv(output_dir / "tsne.csv", index=False)
    name = loaded["none"].config.get("dataset")
    paths = plot_tsne(df, Path(figures_dir) / "tsne", dataset.class_names,
                      title=f"t-SNE of head-feature pixel embeddings ({student} students, {name} "
                            f"{dataset.split}, {images.shape[0]} images)")
    result = {"dataset": name, "num_images": int(images.shape[0]), "points_per_model": int(len(df) // len(models)),
              "silhouette": silhouette, "teacher": str(teacher.checkpoint),
              "runs": {m: str(p) for m, p in runs.items()}, "figure": [str(p) for p in paths]}
    save_metrics(output_dir, result)
    return result


__all__ = ["make_qualitative_figure", "make_similarity_figures", "make_tsne_figure", "trained_runs"]
