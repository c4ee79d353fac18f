"""The built-in dataset ``synthetic_streets``: deterministic files in the CamVid layout, read back by the CamVid
loader, realistic class imbalance, not solvable by colour alone, clear errors, CLI and the sample figure.

All sets here are tiny (at most 40 images of 64x128), so the whole file runs in a few seconds on one core.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Dict

import numpy as np
import pytest
import torch
from PIL import Image

from kdlib.cli import main
from kdlib.data import (CamVid, LabelValueError, MissingFilesError, SizeMismatchError, build_dataset)
from kdlib.data.synthetic import (CLASS_NAMES, GENERATOR_VERSION, METADATA_FILE, PALETTE, PRESETS, VOID,
                                  SyntheticParamsMismatch, generate, loader_options_from_metadata,
                                  read_metadata, render, resolve_params)

SMALL = dict(seed=0, num_train=8, num_val=4, num_test=2, height=64, width=128, difficulty=0.5)
LOADER_SMALL = dict(generation_seed=0, num_train=8, num_val=4, num_test=2, height=64, width=128, difficulty=0.5)
THIN = ("Pole", "SignSymbol", "Pedestrian", "Bicyclist")


def digests(root: Path) -> Dict[str, str]:
    """sha256 of every file under ``root`` by relative path."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def raw_label(root: Path, split: str, index: int) -> np.ndarray:
    return np.array(Image.open(root / f"{split}annot" / f"{index:06d}.png"))


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("syn") / "small", **SMALL, progress=False)


# ------------------------------------------------------------------------------------------ determinism
def test_layout_and_metadata(small):
    for split, n in (("train", 8), ("val", 4), ("test", 2)):
        lines = (small / f"camvid_{split}_list.txt").read_text().splitlines()
        assert lines == [f"{split}/{i:06d}.png {split}annot/{i:06d}.png" for i in range(n)]
        assert sorted(p.name for p in (small / split).iterdir()) == [f"{i:06d}.png" for i in range(n)]
        assert sorted(p.name for p in (small / f"{split}annot").iterdir()) == [f"{i:06d}.png" for i in range(n)]
        img = Image.open(small / split / "000000.png")
        lab = Image.open(small / f"{split}annot" / "000000.png")
        assert (img.mode, img.size, lab.mode, lab.size) == ("RGB", (128, 64), "L", (128, 64))
    meta = read_metadata(small)
    assert meta["params"] == SMALL and meta["generator_version"] == GENERATOR_VERSION
    assert meta["layout"] == "camvid" and meta["void_label"] == VOID == 11
    assert meta["class_names"] == list(CLASS_NAMES) and len(CLASS_NAMES) == 11
    assert meta["palette"] == [list(c) for c in PALETTE]
    assert meta["counts"] == {"train": 8, "val": 4, "test": 2}
    assert not list(small.parent.glob(".small.tmp-*"))            # the temporary folder was renamed away


def test_same_seed_same_bytes_different_seed_different(small, tmp_path):
    again = generate(tmp_path / "again", **SMALL, progress=False, workers=2)   # also: workers do not matter
    assert digests(again) == digests(small)
    other = generate(tmp_path / "other", **{**SMALL, "seed": 1}, progress=False)
    a, b = digests(small), digests(other)
    assert a.keys() == b.keys()
    changed = [k for k in a if k.endswith(".png") and a[k] != b[k]]
    assert len(changed) == sum(1 for k in a if k.endswith(".png")) == 28
    # the renderer itself is a pure function of its arguments
    x1, y1 = render(0, "val", 3, 64, 128, 0.5)
    x2, y2 = render(0, "val", 3, 64, 128, 0.5)
    assert np.array_equal(x1, x2) and np.array_equal(y1, y2)
    assert x1.dtype == np.uint8 and x1.shape == (64, 128, 3) and y1.dtype == np.uint8 and y1.shape == (64, 128)


def test_splits_are_independent(small, tmp_path):
    # fewer train images, more val images: the shared samples keep their bytes
    other = generate(tmp_path / "o", **{**SMALL, "num_train": 3, "num_val": 6}, progress=False)
    a, b = digests(small), digests(other)
    for split, n in (("train", 3), ("trainannot", 3), ("val", 4), ("valannot", 4), ("test", 2)):
        for i in range(n):
            assert a[f"{split}/{i:06d}.png"] == b[f"{split}/{i:06d}.png"], (split, i)
    # and the splits are different scenes
    assert a["train/000000.png"] != a["val/000000.png"] != a["test/000000.png"]
    assert not np.array_equal(raw_label(small, "train", 0), raw_label(small, "val", 0))


# ------------------------------------------------------------------------------- loader, classes, imbalance
def test_build_dataset_generates_on_first_use_and_reads_as_camvid(tmp_path):
    root = tmp_path / "nested" / "first_use"
    assert not root.exists()
    ds = build_dataset("synthetic_streets", root, "val", **LOADER_SMALL, progress=False)
    assert isinstance(ds, CamVid) and read_metadata(root)["params"] == SMALL
    assert len(ds) == 4 and ds.num_classes == 11 and ds.class_names == list(CLASS_NAMES)
    assert ds.palette.tolist() == [list(c) for c in PALETTE] and not ds.augment
    for i in range(len(ds)):
        image, label = ds[i]
        assert image.dtype == torch.float32 and image.shape == (3, 64, 128)
        assert label.dtype == torch.int64 and label.shape == (64, 128)
        raw = raw_label(root, "val", i)
        assert np.array_equal(label.numpy(), np.where(raw == VOID, -1, raw.astype(np.int64)))
        assert set(np.unique(label.numpy())) <= set(range(-1, 11))
        rgb = np.array(Image.open(root / "val" / f"{i:06d}.png"))
        assert np.array_equal(ds.denormalize(image), rgb)
    # the same files are there now: a second build (train, with augmentation) does not regenerate
    stamp = (root / METADATA_FILE).stat().st_mtime_ns
    train = build_dataset("synthetic_streets", root, "train", **LOADER_SMALL, crop_size=(32, 64), seed=3)
    assert (root / METADATA_FILE).stat().st_mtime_ns == stamp
    assert len(train) == 8 and train.augment
    image, label = train[0]
    assert image.shape == (3, 32, 64) and label.shape == (32, 64) and label.dtype == torch.int64
    assert int(label.min()) >= -1 and int(label.max()) <= 10
    # the plain CamVid loader opens the folder too (a user's own code path)
    assert len(CamVid(root, "test", class_names=CLASS_NAMES)) == 2


def test_all_classes_appear_and_imbalance_is_realistic(small):
    labels = np.stack([raw_label(small, "train", i) for i in range(8)])
    assert set(np.unique(labels)) <= set(range(12))
    counts = np.bincount(labels.ravel(), minlength=12)
    assert (counts[:11] > 0).all(), dict(zip(CLASS_NAMES, counts.tolist()))
    frac = read_metadata(small)["class_pixel_fraction"]["train"]
    # the metadata's frequencies are those of the files
    assert frac == {name: round(c / counts.sum(), 6) for name, c in zip(list(CLASS_NAMES) + ["void"], counts)}
    big = frac["Road"] + frac["Building"] + frac["Sky"]
    assert big > 0.55, frac
    for name in THIN:
        assert 0 < frac[name] < 0.03, (name, frac[name])
    assert min(frac[n] for n in ("Road", "Building", "Sky")) > 4 * max(frac[n] for n in THIN)
    assert frac["void"] < 0.02
    # over a few more images every class is in most splits' sets as well
    val = np.bincount(np.stack([raw_label(small, "val", i) for i in range(4)]).ravel(), minlength=12)
    assert (val[:11] > 0).sum() >= 10


def test_scale_varies_with_depth():
    """Objects standing lower in the image (nearer the camera) are taller: rank correlation of each car /
    pedestrian blob's bottom row with its height in pixels."""
    from scipy import ndimage
    from scipy.stats import spearmanr

    for cls, name in ((8, "Car"), (9, "Pedestrian")):
        bottoms, heights = [], []
        for i in range(24):
            _, lab = render(5, "train", i, 64, 128, 0.5)
            blobs, _ = ndimage.label(lab == cls)
            for rows, _cols in ndimage.find_objects(blobs):
                bottoms.append(rows.stop)
                heights.append(rows.stop - rows.start)
        assert len(bottoms) >= 30, (name, len(bottoms))
        rho = spearmanr(bottoms, heights).statistic
        assert rho > 0.5, (name, rho)


# ------------------------------------------------------------------------------------- colour classifier
def _miou(y_true: np.ndarray, y_pred: np.ndarray, k: int = 11) -> float:
    cm = np.bincount(y_true * k + y_pred, minlength=k * k).reshape(k, k).astype(np.float64)
    tp = np.diag(cm)
    union = cm.sum(0) + cm.sum(1) - tp
    present = cm.sum(1) > 0
    return float((tp[present] / union[present]).mean())


def test_a_per_pixel_colour_classifier_scores_under_35_percent_miou():
    from sklearn.linear_model import LogisticRegression

    def pixels(split: str, n: int):
        imgs, labs = zip(*(render(0, split, i, 64, 128, 0.5) for i in range(n)))
        x = np.stack(imgs).reshape(-1, 3).astype(np.float64) / 255.0
        y = np.stack(labs).ravel().astype(np.int64)
        keep = y != VOID
        return x[keep], y[keep]

    x_train, y_train = pixels("train", 40)
    x_val, y_val = pixels("val", 20)
    pick = np.random.default_rng(0).choice(len(y_train), 30_000, replace=False)
    clf = LogisticRegression(max_iter=300).fit(x_train[pick], y_train[pick])
    pred = clf.predict(x_val)
    miou = _miou(y_val, pred)
    acc = float((pred == y_val).mean())
    assert np.unique(y_val).size == 11
    assert miou < 0.35, miou
    assert acc > 0.3, acc          # the classifier did learn something (road / tree / sky colours) ...
    assert miou > 0.05, miou       # ... so the low mIoU is the data, not a broken fit


# ----------------------------------------------------------------------------------------- bad input
def test_existing_data_with_other_parameters_is_a_clear_error(small, tmp_path):
    with pytest.raises(SyntheticParamsMismatch) as err:
        build_dataset("synthetic_streets", small, "train", **{**LOADER_SMALL, "generation_seed": 1})
    msg = str(err.value)
    assert str(small) in msg and "seed: on disk 0, requested 1" in msg and "overwrite=True" in msg
    assert "--overwrite" in msg
    with pytest.raises(SyntheticParamsMismatch, match="num_train: on disk 8, requested 320"):
        build_dataset("synthetic_streets", small, "train", preset="quick", generation_seed=0)
    # overwrite=True replaces it
    root = generate(tmp_path / "w", **SMALL, progress=False)
    generate(root, **{**SMALL, "num_train": 2}, progress=False, overwrite=True)
    assert read_metadata(root)["counts"]["train"] == 2 and len(list((root / "train").iterdir())) == 2
    # a folder that is not a synthetic dataset is never written into
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a synthetic_streets dataset"):
        build_dataset("synthetic_streets", tmp_path / "mine", "train", **LOADER_SMALL)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_bad_generation_options():
    with pytest.raises(KeyError, match="unknown preset 'huge'.*quick"):
        resolve_params("huge")
    with pytest.raises(ValueError, match="difficulty must be in"):
        resolve_params("tiny", difficulty=1.5)
    with pytest.raises(ValueError, match="at least 32x32"):
        resolve_params("tiny", height=16)
    with pytest.raises(ValueError, match="num_train must be >= 0"):
        resolve_params("tiny", num_train=-1)
    with pytest.raises(TypeError, match="unknown generation option 'colour'"):
        resolve_params("tiny", colour=1)
    with pytest.raises(ValueError, match="unknown split 'trainval'"):
        build_dataset("synthetic_streets", "/nonexistent", "trainval")
    assert {"quick", "proxy"} <= set(PRESETS)
    assert resolve_params("proxy").height == 128 and resolve_params("proxy").width == 256


def test_damaged_files_raise_one_error_naming_the_file(tmp_path):
    root = generate(tmp_path / "d", **SMALL, progress=False)
    # a label with a value outside {0..10, 11 = void}
    lab = root / "trainannot" / "000002.png"
    raw = np.array(Image.open(lab))
    raw[5, 7] = 12
    Image.fromarray(raw).save(lab)
    ds = build_dataset("synthetic_streets", root, "train", **LOADER_SMALL, augment=False)
    with pytest.raises(LabelValueError, match="000002.png") as err:
        ds[2]
    assert "values 12" in str(err.value) and "1 pixel(s)" in str(err.value) and "Fix" in str(err.value)
    # an image / label size mismatch
    Image.fromarray(np.zeros((60, 128), np.uint8)).save(lab)
    with pytest.raises(SizeMismatchError, match="000002.png") as err:
        ds[2]
    assert "Fix" in str(err.value)
    # the list file names a file that is gone: refused at construction, never silently dropped
    (root / "val" / "000001.png").unlink()
    with pytest.raises(MissingFilesError) as err:
        build_dataset("synthetic_streets", root, "val", **LOADER_SMALL)
    msg = str(err.value)
    assert "val/000001.png" in msg and "camvid_val_list.txt" in msg and "1 file(s)" in msg and "Fix" in msg
    # no metadata: nothing to open without regenerating
    with pytest.raises(FileNotFoundError, match="kdlib data generate"):
        loader_options_from_metadata(tmp_path / "absent")


# ------------------------------------------------------------------------------------------------ CLI
def test_cli_generate_verify_and_errors(tmp_path, capsys):
    root = tmp_path / "cli"
    args = ["data", "generate", str(root), "--preset", "tiny", "--num-train", "4", "--num-val", "2",
            "--num-test", "1", "--size", "64x128", "--seed", "7", "--quiet"]
    assert main(args) == 0
    assert "synthetic_streets written to" in capsys.readouterr().out
    meta = read_metadata(root)
    assert meta["params"] == dict(seed=7, num_train=4, num_val=2, num_test=1, height=64, width=128,
                                  difficulty=0.5)
    # the same files as the library writes
    assert digests(root) == digests(generate(tmp_path / "lib", preset="tiny", seed=7, num_train=4, num_val=2,
                                             num_test=1, progress=False))
    # verify reads the generation options from the metadata
    assert main(["data", "verify", "synthetic_streets", str(root), "--split", "val"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["num_samples"] == 2 and report["num_classes"] == 11
    # other options on the same root: one line, exit status 2, names the fix
    assert main(args[:-2] + ["8", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("kdlib: error: synthetic_streets:") and "\n" not in err and "seed: on disk 7" in err
    assert main(args[:-2] + ["8", "--quiet", "--overwrite", "--workers", "2"]) == 0
    assert read_metadata(root)["params"]["seed"] == 8
    assert main(["data", "generate", str(tmp_path / "x"), "--size", "64by128"]) == 2
    assert "size must be HxW" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- figure
def test_sample_grid_figure(small, tmp_path, capsys):
    import matplotlib

    from kdlib.figures.sample_grid import plot_sample_grid, save_compact_png

    fig = plot_sample_grid(small, n=3, split="val", columns=2)
    assert matplotlib.get_backend().lower() == "agg"
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 6
    # the label panels show the palette colours of the stored labels
    raw = raw_label(small, "val", 1)
    shown = panels[3].images[0].get_array()
    expected = np.array(list(PALETTE) + [(0, 0, 0)], np.uint8)[raw]
    assert np.array_equal(np.asarray(shown), expected)
    assert np.array_equal(np.asarray(panels[2].images[0].get_array()),
                          np.array(Image.open(small / "val" / "000001.png")))
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == list(CLASS_NAMES) + ["void (ignored)"]
    out = save_compact_png(fig, tmp_path / "grid.png")
    colours = {tuple(c) for c in np.asarray(Image.open(out).convert("RGB")).reshape(-1, 3).tolist()}
    assert all(tuple(c) in colours for c in PALETTE)                  # class colours are kept exact
    # and from the command line (generated on the fly from a preset)
    png = tmp_path / "cli" / "samples.png"
    assert main(["data", "samples", "--out", str(png), "--preset", "tiny", "--indices", "0", "2"]) == 0
    assert png.is_file() and Image.open(png).format == "PNG" and "sample grid written" in capsys.readouterr().out
    with pytest.raises(ValueError, match="no samples|n must be"):
        plot_sample_grid(small, n=0)


def test_two_processes_generating_the_same_dataset_at_once_both_succeed(tmp_path, monkeypatch):
    """Grid cells starting together on a fresh clone race to generate the data: the loser keeps the winner's."""
    import kdlib.data.synthetic as syn

    root = tmp_path / "race"
    real_write_all = syn._write_all

    def write_while_another_process_finishes(tmp, params, progress, workers):
        monkeypatch.setattr(syn, "_write_all", real_write_all)
        generate(root, **SMALL, progress=False)             # the other process renames its dataset into place
        return real_write_all(tmp, params, progress, workers)

    root.mkdir()                                             # an empty folder: the rmdir path of the loser
    monkeypatch.setattr(syn, "_write_all", write_while_another_process_finishes)
    assert generate(root, **SMALL, progress=False) == root.absolute()
    assert (root / syn.METADATA_FILE).is_file()
    assert not [p.name for p in tmp_path.iterdir() if p.name != "race"]     # no temporary folder left behind

    real_read = syn.read_metadata
    calls = []

    def stale_first_read(path):                              # the dataset appears right after the first look
        calls.append(path)
        return None if len(calls) == 1 else real_read(path)

    monkeypatch.setattr(syn, "read_metadata", stale_first_read)
    assert generate(root, **SMALL, progress=False) == root.absolute()
