"""Figure analyses: pure functions against hand-computable cases, then each figure notebook through papermill."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from notebook_runner import execute
import torch

from kdlib.figures.embedding import sample_pixel_indices, tsne_embeddings
from kdlib.figures.qualitative import plot_qualitative_grid, qualitative_panels
from kdlib.figures.similarity import (afdcd_patch_similarity, anchor_similarity_maps, patch_of_cell,
                                       relation_mad, relation_matrix)

REPO = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------------------------- anchor maps
def _naive_cosine(u: torch.Tensor, v: torch.Tensor) -> float:
    u, v = u.double().tolist(), v.double().tolist()
    dot = sum(a * b for a, b in zip(u, v))
    return dot / (math.sqrt(sum(a * a for a in u)) * math.sqrt(sum(b * b for b in v)))


def test_anchor_map_of_identical_features_is_one_at_the_anchor_and_the_naive_cosine_elsewhere():
    g = torch.Generator().manual_seed(0)
    f = torch.randn(5, 4, 6, generator=g, dtype=torch.float64)
    anchor = (1, 4)
    sim = anchor_similarity_maps(f, f, anchor)
    assert sim.shape == (4, 6)
    assert sim[anchor] == pytest.approx(1.0, abs=1e-12)
    for i in range(4):
        for j in range(6):
            assert sim[i, j].item() == pytest.approx(_naive_cosine(f[:, 1, 4], f[:, i, j]), abs=1e-12)
    # negative anchors count from the end
    assert torch.equal(anchor_similarity_maps(f, f, (-3, -2)), sim)


def test_across_image_map_of_an_image_with_itself_equals_the_within_map():
    g = torch.Generator().manual_seed(1)
    a = torch.randn(7, 3, 5, generator=g, dtype=torch.float64)
    b = torch.randn(7, 3, 5, generator=g, dtype=torch.float64)
    within = anchor_similarity_maps(a, a, (2, 0))
    assert torch.allclose(anchor_similarity_maps(a, a.clone(), (2, 0)), within, atol=0)
    # one row of the relation matrix is the anchor map; across images too
    assert torch.allclose(relation_matrix(a, a)[2 * 5 + 0].reshape(3, 5), within, atol=1e-12)
    assert torch.allclose(relation_matrix(a, b)[2 * 5 + 0].reshape(3, 5), anchor_similarity_maps(a, b, (2, 0)),
                          atol=1e-12)


def test_relation_mad_is_zero_for_the_same_features_and_ignores_width():
    g = torch.Generator().manual_seed(2)
    t = torch.randn(2, 6, 3, 4, generator=g, dtype=torch.float64)
    assert relation_mad(t, t) == {"within": 0.0, "across": 0.0}
    # doubling every channel (a wider student) keeps the cosine relations: difference 0
    assert relation_mad(t, torch.cat([t, t], 1))["across"] == pytest.approx(0.0, abs=1e-12)
    s = torch.randn(2, 3, 3, 4, generator=g, dtype=torch.float64)
    mad = relation_mad(t, s)
    naive = np.mean([abs(_naive_cosine(t[0, :, 0, 0], t[1, :, i, j]) - _naive_cosine(s[0, :, 0, 0], s[1, :, i, j]))
                     for i in range(3) for j in range(4)])
    assert mad["across"] > 0
    assert relation_matrix(t[0], t[1])[0].sub(relation_matrix(s[0], s[1])[0]).abs().mean().item() == \
        pytest.approx(naive, abs=1e-12)
    direct = [(relation_matrix(t[i], t[j]) - relation_matrix(s[i], s[j])).abs().mean().item()
              for i in range(2) for j in range(2)]
    assert mad["within"] == pytest.approx((direct[0] + direct[3]) / 2, abs=1e-12)
    assert mad["across"] == pytest.approx((direct[1] + direct[2]) / 2, abs=1e-12)
    assert relation_mad(t, s, chunk=5) == pytest.approx(mad, abs=1e-12)       # blocking changes nothing
    # subsampled anchors: every 2nd of the 12 pixels of image i (rows 0, 2, ..., 10 of the relation)
    sub = relation_mad(t, s, max_anchors=6)
    rows = torch.arange(0, 12, 2)
    assert sub["across"] == pytest.approx(np.mean([(relation_matrix(t[i], t[j]) - relation_matrix(s[i], s[j]))[rows]
                                                   .abs().mean().item() for i, j in ((0, 1), (1, 0))]), abs=1e-12)


# ------------------------------------------------------------------------------------ Af-DCD patch matrices
def _naive_patch_matrices(s, t, groups, patch, pool, py, px):
    """Float64 loops: max-pool, top-left crop, one patch, -L1 between (position, group) samples."""
    def pooled(x):
        c, h, w = x.shape
        if not pool:
            return x
        out = torch.empty(c, h // pool, w // pool, dtype=torch.float64)
        for ch in range(c):
            for i in range(h // pool):
                for j in range(w // pool):
                    out[ch, i, j] = max(x[ch, i * pool + a, j * pool + b].item() for a in range(pool)
                                        for b in range(pool))
        return out

    s, t = pooled(s.double()), pooled(t.double())
    c = s.shape[0]
    cg = c // groups
    positions = [(py * patch + a, px * patch + b) for a in range(patch) for b in range(patch)]   # row-major
    r = len(positions) * groups
    full = np.zeros((r, r))
    for n, (i, j) in enumerate(positions):
        for gi in range(groups):
            u = s[gi * cg:(gi + 1) * cg, i, j]
            for m, (k, l) in enumerate(positions):
                for gk in range(groups):
                    v = t[gk * cg:(gk + 1) * cg, k, l]
                    full[n * groups + gi, m * groups + gk] = -sum(abs(a - b) for a, b in zip(u.tolist(), v.tolist()))
    n2 = len(positions)
    spatial = np.array([[np.mean([full[n * groups + g, m * groups + g] for g in range(groups)]) for m in range(n2)]
                        for n in range(n2)])
    channel = np.array([[np.mean([full[n * groups + g, n * groups + k] for n in range(n2)]) for k in range(groups)]
                        for g in range(groups)])
    return full, spatial, channel


@pytest.mark.parametrize("pool, size, cell", [(2, (8, 12), (1, 2)), (None, (9, 7), (1, 0))])
def test_afdcd_patch_matrices_match_a_naive_loop(pool, size, cell):
    g = torch.Generator().manual_seed(3)
    s = torch.randn(8, *size, generator=g, dtype=torch.float64)
    t = torch.randn(8, *size, generator=g, dtype=torch.float64)
    got = afdcd_patch_similarity(s, t, groups=4, patch=2, pool=pool, similarity="l1", patch_index=cell)
    full, spatial, channel = _naive_patch_matrices(s, t, 4, 2, pool, *cell)
    assert got.full.shape == (16, 16) and got.spatial.shape == (4, 4) and got.channel.shape == (4, 4)
    np.testing.assert_allclose(got.full.numpy(), full, rtol=0, atol=1e-10)
    np.testing.assert_allclose(got.spatial.numpy(), spatial, rtol=0, atol=1e-10)
    np.testing.assert_allclose(got.channel.numpy(), channel, rtol=0, atol=1e-10)
    every = afdcd_patch_similarity(s, t, groups=4, patch=2, pool=pool, patch_index=None)
    grid_w = (size[1] // (pool or 1)) // 2
    assert torch.allclose(every.spatial[cell[0] * grid_w + cell[1]], got.spatial)
    # a map's self-similarity has a zero diagonal under -L1 (each sample is its own nearest)
    own = afdcd_patch_similarity(s, s, groups=4, patch=2, pool=pool, patch_index=cell)
    assert torch.all(own.spatial.diagonal() == 0) and torch.all(own.channel.diagonal() == 0)
    assert patch_of_cell((5, 7), size, patch=2, pool=pool) == ((5 // (pool or 1)) // 2, min((7 // (pool or 1)) // 2,
                                                                                              grid_w - 1))


# ---------------------------------------------------------------------------------------------- t-SNE
def _labels_with_known_counts():
    """(1, 8, 8) labels whose nearest resize to 4x4 has: class 0 x 9, class 1 x 2, class 2 x 3, ignore x 2."""
    small = torch.tensor([[0, 0, 0, 2],
                          [0, 0, 0, 2],
                          [0, 0, 0, 2],
                          [1, 1, -1, -1]])
    return small.repeat_interleave(2, 0).repeat_interleave(2, 1)[None], small


def test_tsne_sampler_balances_classes_drops_ignore_and_is_deterministic():
    labels, small = _labels_with_known_counts()
    index, cls = sample_pixel_indices(labels, (4, 4), max_points=7, seed=0)
    flat = small.flatten().numpy()
    assert np.array_equal(flat[index], cls) and -1 not in cls
    counts = {c: int((cls == c).sum()) for c in np.unique(cls)}
    # 7 points served rarest class first: class 1 min(2, 7//3), class 2 min(3, 5//2), class 0 min(9, 3//1)
    assert counts == {0: 3, 1: 2, 2: 2} and len(index) == len(set(index.tolist()))
    index_all, cls_all = sample_pixel_indices(labels, (4, 4), max_points=100, seed=0)
    assert sorted(np.bincount(cls_all).tolist()) == [2, 3, 9]  # all labelled pixels, none ignored
    again, _ = sample_pixel_indices(labels, (4, 4), max_points=7, seed=0)
    assert np.array_equal(index, again)
    draws = {tuple(sample_pixel_indices(labels, (4, 4), max_points=7, seed=s)[0].tolist()) for s in range(10)}
    assert len(draws) > 1                                   # the seed matters


def test_tsne_embeddings_are_deterministic_per_seed():
    labels, _ = _labels_with_known_counts()
    g = torch.Generator().manual_seed(4)
    feats = {"teacher": torch.randn(1, 6, 4, 4, generator=g), "student": torch.randn(1, 3, 4, 4, generator=g)}
    a = tsne_embeddings(feats, labels, max_points=12, seed=0, class_names=["a", "b", "c"])
    b = tsne_embeddings(feats, labels, max_points=12, seed=0, class_names=["a", "b", "c"])
    pd.testing.assert_frame_equal(a, b)
    assert list(a.columns) == ["model", "x", "y", "class_id", "class"]
    assert a.groupby("model").size().to_dict() == {"student": 12, "teacher": 12}
    assert np.isfinite(a[["x", "y"]].to_numpy()).all() and set(a["class"]) == {"a", "b", "c"}


# ------------------------------------------------------------------------------------------ qualitative
def test_qualitative_grid_colours_ignore_pixels_black(tmp_path):
    palette = np.array([[200, 10, 10], [10, 200, 10]], np.uint8)
    images = np.full((2, 4, 6, 3), 128, np.uint8)
    labels = np.zeros((2, 4, 6), np.int64)
    labels[0, 0, :3] = -1
    labels[1, 2:, :] = 1
    preds = {"none": np.ones((2, 4, 6), np.int64), "cirkd": labels.clip(min=0)}
    panels = qualitative_panels(images, labels, preds, palette)
    assert len(panels) == 2 and len(panels[0]) == 4                      # image, 2 methods, ground truth
    gt = panels[0][-1]
    assert (gt[0, :3] == 0).all() and (gt[0, 3:] == palette[0]).all()  # ignore black, class 0 its colour
    assert (panels[1][-1][2:] == palette[1]).all()
    assert (panels[0][1] == palette[1]).all() and (panels[0][0] == 128).all()
    paths = plot_qualitative_grid(images, labels, preds, tmp_path / "q", palette, ["road", "car"])
    assert {p.suffix for p in paths} == {".png", ".pdf"} and all(p.stat().st_size > 1000 for p in paths)


# ---------------------------------------------------------------------------------------------- loading
def test_load_model_reads_a_run_dir_and_an_official_state_dict(tmp_path, tiny_data_and_teacher):
    from kdlib.figures.predictions import (eval_dataset, extract_outputs, load_model, load_samples,
                                            parse_run_dirs, predict_labels)
    from kdlib.models import export_official

    _, teacher = tiny_data_and_teacher
    run = load_model(teacher, "cpu")
    assert run.checkpoint.name in ("best.pt", "final.pt") and not run.model.training
    assert not any(p.requires_grad for p in run.model.parameters())
    dataset = eval_dataset(run.config)
    images, labels, rgb = load_samples(dataset, [0, 1])
    assert images.shape[0] == 2 and rgb.dtype == np.uint8 and rgb.shape[:3] == labels.shape
    preds = predict_labels(run.model, images)
    assert preds.shape == labels.shape and int(preds.max()) < dataset.num_classes
    out = extract_outputs(run.model, images)
    assert out.feature.shape[-2:] == (labels.shape[-2] // 8, labels.shape[-1] // 8)
    assert out.feature.shape[1] == run.model.feature_channels and out.c4.shape[1] == run.model.c4_channels
    # the same weights in the official key layout: model name / classes / width must be given
    path = tmp_path / "official.pth"
    export_official(run.model, path)
    with pytest.raises(ValueError, match="official state dict"):
        load_model(path)
    official = load_model(path, model_name=run.model.name, num_classes=run.model.num_classes, width=run.model.width)
    assert official.config == {}
    assert torch.equal(predict_labels(official.model, images), preds)
    assert parse_run_dirs(" none:runs/a, cirkd:/x/y:z ") == {"none": "runs/a", "cirkd": "/x/y:z"}
    with pytest.raises(ValueError, match="method:run_dir"):
        parse_run_dirs("runs/a")


# ------------------------------------------------------------------------------------------- notebooks
@pytest.fixture(scope="module")
def tiny(tmp_path_factory, tiny_data_and_teacher):
    extra, teacher = tiny_data_and_teacher
    return tmp_path_factory.mktemp("fig_nb"), extra, teacher


def _common(base: Path, extra: str, teacher: Path, name: str) -> dict:
    # one runs_root for the three notebooks: the baseline / CIRKD / Af-DCD runs are trained once
    return {"teacher_checkpoint": str(teacher), "extra": extra, "seeds": "0", "runs_root": str(base / "runs"),
            "device": "cpu", "output_dir": str(base / name), "figures_dir": str(base / f"{name}_figs")}


def _figure_files(figs: Path, stem: str) -> None:
    assert (figs / f"{stem}.png").stat().st_size > 1000
    assert (figs / f"{stem}.pdf").stat().st_size > 1000


def test_fig_qualitative_notebook(tiny):
    base, extra, teacher = tiny
    params = _common(base, extra, teacher, "qual")
    execute("fig_qualitative.py", {**params, "num_samples": 2})
    _figure_files(Path(params["figures_dir"]), "qualitative")
    metrics = json.loads((Path(params["output_dir"]) / "metrics.json").read_text())
    assert list(metrics["runs"]) == ["none", "cwd", "cirkd", "afdcd"] and metrics["samples"] == [0, 1]
    assert all(0.0 <= v <= 1.0 for v in metrics["pixel_acc"].values())


def test_fig_similarity_notebook(tiny):
    base, extra, teacher = tiny
    params = _common(base, extra, teacher, "sim")
    execute("fig_similarity.py", {**params, "num_images": 2})
    figs = Path(params["figures_dir"])
    _figure_files(figs, "similarity_maps")
    _figure_files(figs, "afdcd_patch_similarity")
    table = pd.read_csv(Path(params["output_dir"]) / "similarity.csv")
    assert table["method"].tolist() == ["none", "cirkd", "afdcd"]
    numbers = table.drop(columns=["method", "model", "run_dir"])
    assert np.isfinite(numbers.to_numpy(dtype=float)).all()
    assert (table.filter(like="_mad") >= 0).all().all()
    metrics = json.loads((Path(params["output_dir"]) / "metrics.json").read_text())
    assert len(metrics["rows"]) == 3 and metrics["afdcd_options"]["similarity"] == "l1"


def test_fig_tsne_notebook(tiny):
    base, extra, teacher = tiny
    params = _common(base, extra, teacher, "tsne")
    execute("fig_tsne.py", {**params, "num_images": 2, "max_points": 200})
    _figure_files(Path(params["figures_dir"]), "tsne")
    df = pd.read_csv(Path(params["output_dir"]) / "tsne.csv")
    assert df["model"].nunique() == 3 and df.groupby("model").size().max() <= 200
    assert np.isfinite(df[["x", "y"]].to_numpy()).all()
    metrics = json.loads((Path(params["output_dir"]) / "metrics.json").read_text())
    assert all(np.isfinite(v) for v in metrics["silhouette"].values())
