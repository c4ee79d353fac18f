"""Built-in procedural dataset ``synthetic_streets``: perspective street scenes with CamVid's 11 classes.

Why it exists: the papers' datasets cannot be downloaded here, yet the whole proxy study (every distillation
method, several seeds) must run on a 2-core CPU. ``synthetic_streets`` is a *real* segmentation problem that
is cheap to make and small to learn:

* a pinhole camera at 1.3–1.8 m above a straight street: a horizon, a road that narrows to a vanishing point,
  sidewalks, building blocks (street-facing and camera-facing walls, windows, shop fronts) with cross-street
  gaps, a distant skyline, sky with clouds, trees, fences, poles (lamps, sign posts, traffic lights), signs,
  cars (3-D boxes: rear/front plus the visible side), pedestrians and bicyclists;
* every object is placed in metres and projected, so apparent size shrinks with depth and things further up
  the image are smaller; a z-buffer gives correct occlusion between all of them;
* class imbalance like CamVid's (road / building / sky large; pole, sign, pedestrian, bicyclist small);
* colours that overlap between classes on purpose (grey road, grey sidewalk, grey building, grey car and
  overcast sky; green trees and green signs and fences; haze that pulls far buildings towards the sky colour;
  glass that reflects the sky), per-image lighting and colour casts, cast shadows, blur and sensor noise, so a
  per-pixel colour classifier fails (logistic regression on RGB scores well under 35 % mIoU) while shape and
  context identify the classes.

Layout on disk = the official CamVid (SegNet) layout, so :class:`kdlib.data.camvid.CamVid` reads it::

    root/
      train/000000.png   trainannot/000000.png   camvid_train_list.txt
      val/...            valannot/...            camvid_val_list.txt
      test/...           testannot/...           camvid_test_list.txt
      synthetic_streets.json                     (generation parameters, version, class frequencies)

Labels are grayscale uint8 PNGs with values 0..10 (:data:`CLASS_NAMES`) and 11 = void (ignored, −1 after
loading). Generation is deterministic: image ``i`` of split ``s`` is drawn from its own random stream seeded by
``(seed, s, i, GENERATOR_VERSION)``, so the same parameters give byte-identical files and one split's images
do not depend on the size of another.

Usage::

    from kdlib.data.synthetic import generate
    generate("data/synthetic_streets_quick", preset="quick")      # or build_dataset(...) does it on first use

    from kdlib.registry import DATASETS
    ds = DATASETS.build("synthetic_streets", "data/synthetic_streets_quick", "train",
                        preset="quick", crop_size=(64, 128), seed=0)
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image

from kdlib.data.synthetic_render import (CLASS_NAMES, GENERATOR_VERSION, NUM_CLASSES, PALETTE, SPLITS, VOID,
                                         render, render_scene)
from kdlib.registry import DATASETS

__all__ = [
    "CLASS_NAMES", "PALETTE", "NUM_CLASSES", "VOID", "GENERATOR_VERSION", "PRESETS", "SPLITS",
    "GenerationParams", "resolve_params", "render_scene", "generate", "ensure_generated", "read_metadata",
    "build_synthetic_streets", "GENERATION_OPTIONS", "SyntheticParamsMismatch", "render", "sample_id",
    "METADATA_FILE", "list_file_name", "loader_options_from_metadata",
]

# --------------------------------------------------------------------------------------------------------------
# Presets and generation parameters (the renderer itself: kdlib.data.synthetic_render)
# --------------------------------------------------------------------------------------------------------------

METADATA_FILE = "synthetic_streets.json"


@dataclass(frozen=True)
class GenerationParams:
    """Everything that determines the generated files (and nothing else)."""

    seed: int = 0
    num_train: int = 320
    num_val: int = 80
    num_test: int = 80
    height: int = 64
    width: int = 128
    difficulty: float = 0.5

    def __post_init__(self) -> None:
        for name in ("num_train", "num_val", "num_test"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"synthetic_streets: {name} must be >= 0, got {getattr(self, name)}")
        if self.height < 32 or self.width < 32:
            raise ValueError(f"synthetic_streets: images must be at least 32x32, got {self.height}x{self.width}")
        if not 0.0 <= float(self.difficulty) <= 1.0:
            raise ValueError(f"synthetic_streets: difficulty must be in [0, 1], got {self.difficulty}")

    def count(self, split: str) -> int:
        return int(getattr(self, f"num_{split}"))

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


#: Named parameter sets. ``quick``: a few hundred small images, for the < 10-minute CPU main job.
#: ``proxy``: the dataset of the 3-seed proxy study (about 2.5 h on 2 cores). ``tiny``: tests and smoke runs.
PRESETS: Dict[str, Dict[str, Any]] = {
    "tiny": dict(num_train=16, num_val=8, num_test=8, height=64, width=128, difficulty=0.5),
    "quick": dict(num_train=320, num_val=80, num_test=80, height=64, width=128, difficulty=0.5),
    "proxy": dict(num_train=1200, num_val=200, num_test=300, height=128, width=256, difficulty=0.5),
}
DEFAULT_PRESET = "quick"
#: Option names of ``build_dataset("synthetic_streets", ...)`` that are generation options (all others go to
#: the CamVid loader). ``seed`` is the loader's augmentation seed, as for every dataset; the generation seed is
#: ``generation_seed``.
GENERATION_OPTIONS = ("preset", "generation_seed", "num_train", "num_val", "num_test", "height", "width",
                      "difficulty")


def resolve_params(preset: Optional[str] = None, **overrides: Any) -> GenerationParams:
    """Start from ``PRESETS[preset]`` (default ``"quick"``) and apply explicit overrides (``None`` = keep)."""
    name = DEFAULT_PRESET if preset is None else preset
    if name not in PRESETS:
        raise KeyError(f"synthetic_streets: unknown preset '{name}'; known presets: {', '.join(PRESETS)}")
    values: Dict[str, Any] = dict(PRESETS[name])
    known = {f.name for f in fields(GenerationParams)}
    for key, value in overrides.items():
        if key not in known:
            raise TypeError(f"synthetic_streets: unknown generation option '{key}'; known: {', '.join(sorted(known))}")
        if value is not None:
            values[key] = value
    types = {"seed": int, "num_train": int, "num_val": int, "num_test": int, "height": int, "width": int,
             "difficulty": float}
    return GenerationParams(**{k: types[k](v) for k, v in values.items()})



# --------------------------------------------------------------------------------------------------------------
# Writing the dataset (CamVid layout), metadata, registry entry
# --------------------------------------------------------------------------------------------------------------

class SyntheticParamsMismatch(ValueError):
    """``root`` holds a synthetic_streets dataset generated with other parameters (or another version)."""


def sample_id(index: int) -> str:
    """File stem of sample ``index`` (the same in every split)."""
    return f"{index:06d}"


def list_file_name(split: str) -> str:
    return f"camvid_{split}_list.txt"


def read_metadata(root: Union[str, os.PathLike]) -> Optional[Dict[str, Any]]:
    """The parsed ``synthetic_streets.json`` of ``root``, or None if there is none."""
    path = Path(root) / METADATA_FILE
    if not path.is_file():
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _mismatch_message(root: Path, meta: Mapping[str, Any], params: GenerationParams) -> str:
    have = dict(meta.get("params", {}))
    want = params.to_dict()
    diffs = [f"{k}: on disk {have.get(k)!r}, requested {want[k]!r}" for k in want if have.get(k) != want[k]]
    if meta.get("generator_version") != GENERATOR_VERSION:
        diffs.append(f"generator_version: on disk {meta.get('generator_version')!r}, "
                     f"this kdlib writes {GENERATOR_VERSION}")
    presets = [name for name, p in PRESETS.items() if all(have.get(k) == v for k, v in p.items())]
    hint = f" (the files match preset '{presets[0]}' with seed {have.get('seed')})" if presets else ""
    return (f"synthetic_streets: {root} already holds a dataset generated with different parameters{hint}; "
            f"differences: {'; '.join(diffs)}. Fix: pass the same generation options as when it was generated, "
            f"use another root for these options, or regenerate it with "
            f"kdlib.data.synthetic.generate('{root}', ..., overwrite=True) / "
            f"'kdlib data generate {root} ... --overwrite' (or delete the folder).")


def _matches(meta: Optional[Mapping[str, Any]], params: GenerationParams) -> bool:
    return (meta is not None and meta.get("generator_version") == GENERATOR_VERSION
            and dict(meta.get("params", {})) == params.to_dict())


def _render_and_write(task: Tuple[str, str, Sequence[int], GenerationParams]) -> np.ndarray:
    """Worker: render samples ``indices`` of ``split`` into ``out``; returns their label histogram (12 bins)."""
    out, split, indices, p = task
    hist = np.zeros(NUM_CLASSES + 1, np.int64)
    img_dir, lab_dir = Path(out) / split, Path(out) / f"{split}annot"
    for i in indices:
        img, lab = render(p.seed, split, i, p.height, p.width, p.difficulty)
        Image.fromarray(img, "RGB").save(img_dir / f"{sample_id(i)}.png", format="PNG", compress_level=_PNG_LEVEL)
        Image.fromarray(lab, "L").save(lab_dir / f"{sample_id(i)}.png", format="PNG", compress_level=_PNG_LEVEL)
        hist += np.bincount(lab.ravel(), minlength=NUM_CLASSES + 1)
    return hist


_PNG_LEVEL = 6
_CHUNK = 16


def _write_all(out: Path, p: GenerationParams, progress: bool, workers: int) -> Dict[str, np.ndarray]:
    from kdlib.progress import progress_bar

    tasks = []
    for split in SPLITS:
        (out / split).mkdir()
        (out / f"{split}annot").mkdir()
        n = p.count(split)
        tasks += [(str(out), split, list(range(s, min(s + _CHUNK, n))), p) for s in range(0, n, _CHUNK)]
    hists = {split: np.zeros(NUM_CLASSES + 1, np.int64) for split in SPLITS}
    total = sum(p.count(s) for s in SPLITS)
    with progress_bar(total=total, desc=f"synthetic_streets {p.height}x{p.width}", unit="img",
                      disable=not progress) as bar:
        if workers <= 1:
            for t in tasks:
                hists[t[1]] += _render_and_write(t)
                bar.update(len(t[2]))
        else:
            import concurrent.futures as cf
            import multiprocessing as mp

            ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
            with cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
                futures = {pool.submit(_render_and_write, t): t for t in tasks}
                for fut in cf.as_completed(futures):
                    t = futures[fut]
                    hists[t[1]] += fut.result()
                    bar.update(len(t[2]))
    for split in SPLITS:
        lines = [f"{split}/{sample_id(i)}.png {split}annot/{sample_id(i)}.png\n" for i in range(p.count(split))]
        with open(out / list_file_name(split), "w", encoding="utf-8", newline="\n") as f:
            f.writelines(lines)
    return hists


def _metadata(p: GenerationParams, hists: Mapping[str, np.ndarray]) -> Dict[str, Any]:
    names = list(CLASS_NAMES) + ["void"]
    frac = {split: {names[c]: round(float(h[c]) / max(int(h.sum()), 1), 6) for c in range(len(names))}
            for split, h in hists.items()}
    return {
        "dataset": "synthetic_streets",
        "generator_version": GENERATOR_VERSION,
        "params": p.to_dict(),
        "layout": "camvid",
        "num_classes": NUM_CLASSES,
        "class_names": list(CLASS_NAMES),
        "palette": [list(c) for c in PALETTE],
        "void_label": VOID,
        "counts": {split: p.count(split) for split in SPLITS},
        "list_files": {split: list_file_name(split) for split in SPLITS},
        "class_pixel_fraction": frac,
    }


def generate(root: Union[str, os.PathLike], *, preset: Optional[str] = None, seed: Optional[int] = None,
             num_train: Optional[int] = None, num_val: Optional[int] = None, num_test: Optional[int] = None,
             height: Optional[int] = None, width: Optional[int] = None, difficulty: Optional[float] = None,
             progress: bool = True, workers: int = 1, overwrite: bool = False) -> Path:
    """Write ``synthetic_streets`` to ``root`` in the CamVid layout and return ``root``.

    Parameters start from ``PRESETS[preset]`` (default ``"quick"``); explicit arguments override them
    (``seed`` defaults to 0). If ``root`` already holds the same dataset (same parameters and generator
    version) nothing is done. If it holds one with other parameters, :class:`SyntheticParamsMismatch` is raised
    unless ``overwrite=True``. Files are written into a temporary folder beside ``root`` that is renamed into
    place at the end, so an interrupted run leaves nothing half-written. ``workers`` > 1 renders in that many
    processes (the files are identical either way).
    """
    params = resolve_params(preset, seed=seed, num_train=num_train, num_val=num_val, num_test=num_test,
                            height=height, width=width, difficulty=difficulty)
    root = Path(root).expanduser().absolute()
    meta = read_metadata(root)
    if _matches(meta, params):
        return root
    if meta is not None and not overwrite:
        raise SyntheticParamsMismatch(_mismatch_message(root, meta, params))
    if root.exists() and meta is None and (not root.is_dir() or any(root.iterdir())):
        if _matches(read_metadata(root), params):   # another process has just renamed the same dataset in place
            return root
        raise FileExistsError(f"synthetic_streets: {root} exists and is not a synthetic_streets dataset (no "
                              f"{METADATA_FILE}); refusing to write into it. Fix: choose an empty or new folder.")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=root.parent))
    try:
        hists = _write_all(tmp, params, progress, workers)
        with open(tmp / METADATA_FILE, "w", encoding="utf-8", newline="\n") as f:
            json.dump(_metadata(params, hists), f, indent=2, sort_keys=False)
            f.write("\n")
        old = None
        if meta is not None:                        # overwrite=True: move the old dataset aside, delete it after
            old = Path(tempfile.mkdtemp(prefix=f".{root.name}.old-", dir=root.parent))
            os.replace(root, old / root.name)
        try:
            if old is None and root.is_dir():
                root.rmdir()   # an empty folder; fails if another process has meanwhile put its dataset there
            os.replace(tmp, root)
        except OSError:
            # another process finished first: accept its result if it is the same dataset
            if _matches(read_metadata(root), params):
                shutil.rmtree(tmp, ignore_errors=True)
                return root
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root


def loader_options_from_metadata(root: Union[str, os.PathLike]) -> Dict[str, Any]:
    """The ``build_dataset("synthetic_streets", root, ...)`` generation options that match what ``root`` holds.

    Use it to open an existing dataset without restating how it was generated (e.g. ``kdlib data verify``).
    Raises :class:`FileNotFoundError` naming the fix if ``root`` holds no ``synthetic_streets.json``.
    """
    meta = read_metadata(root)
    if meta is None:
        raise FileNotFoundError(
            f"synthetic_streets: no {METADATA_FILE} in '{root}', so it holds no generated dataset. Fix: generate it "
            f"with 'kdlib data generate {root} --preset quick' (or build_dataset('synthetic_streets', ...)), "
            f"or pass the folder that holds it.")
    params = dict(meta.get("params", {}))
    options: Dict[str, Any] = {k: params[k] for k in GENERATION_OPTIONS if k in params}
    options["generation_seed"] = params.get("seed", 0)
    return options


def ensure_generated(root: Union[str, os.PathLike], params: GenerationParams, progress: bool = True,
                     workers: int = 1) -> Path:
    """Generate ``params`` into ``root`` unless it is already there; mismatching data raises a clear error."""
    return generate(root, **params.to_dict(), progress=progress, workers=workers)


@DATASETS.register("synthetic_streets")
def build_synthetic_streets(root: Union[str, os.PathLike], split: str, *, preset: Optional[str] = None,
                            generation_seed: Optional[int] = None, num_train: Optional[int] = None,
                            num_val: Optional[int] = None, num_test: Optional[int] = None,
                            height: Optional[int] = None, width: Optional[int] = None,
                            difficulty: Optional[float] = None, progress: bool = True, workers: int = 1,
                            **loader_options: Any):
    """``build_dataset("synthetic_streets", root, split, ...)``: generate on first use, then load as CamVid.

    Generation options (see :data:`GENERATION_OPTIONS`): ``preset`` (default ``"quick"``), ``generation_seed``,
    ``num_train``, ``num_val``, ``num_test``, ``height``, ``width``, ``difficulty``; plus ``progress`` and
    ``workers`` for the first-use generation. Every other keyword (``crop_size``, ``augment``, ``seed`` = the
    augmentation seed, ``normalize``, ``max_samples``, ``list_file``, ...) is passed to
    :class:`kdlib.data.camvid.CamVid`, with this dataset's class names and palette.
    """
    if split not in SPLITS:
        raise ValueError(f"synthetic_streets: unknown split '{split}'; known splits: {', '.join(SPLITS)}")
    params = resolve_params(preset, seed=generation_seed, num_train=num_train, num_val=num_val,
                            num_test=num_test, height=height, width=width, difficulty=difficulty)
    root = ensure_generated(root, params, progress=progress, workers=workers)
    from kdlib.data.camvid import CamVid  # imported here: the CamVid loader lives in its own module

    return CamVid(root, split, class_names=CLASS_NAMES, palette=PALETTE, **loader_options)


# what the dataset declares (kdlib.data.dataset_num_classes / generates_on_first_use read it)
build_synthetic_streets.num_classes = NUM_CLASSES  # type: ignore[attr-defined]
build_synthetic_streets.generated_on_first_use = True  # type: ignore[attr-defined]  (takes ``progress``)


def _declare_loader() -> None:
    """build_dataset("synthetic_streets", ...) passes every option it does not take itself on to the CamVid loader
    (read by :func:`kdlib.data.dataset_option_names`)."""
    from kdlib.data.camvid import CamVid

    build_synthetic_streets.passes_options_to = CamVid  # type: ignore[attr-defined]


_declare_loader()
