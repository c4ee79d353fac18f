"""Benchmark of the built-in dataset ``synthetic_streets``: generation speed and how far colour alone gets.

1. Generates ``--num`` train images (default 1,000 at 128x256, no val / test) into a temporary folder with a
   progress bar, once per value of ``--workers``, and prints the wall time and images per second.
   Requirement: 1,000 images at 128x256 in under a minute on 2 cores.
2. Fits per-pixel colour classifiers on RGB only (scikit-learn logistic regression; optionally a gradient
   boosted tree model, a much stronger colour lookup) on ``--clf-train`` generated images read back through the
   CamVid loader, and reports mIoU on ``--clf-val`` val images (void ignored, mean over the 11 classes).
   Requirement: logistic regression under 35 % mIoU, so the data is not a colour-lookup toy.
3. Prints the class pixel frequencies of the generated set (from its ``synthetic_streets.json``).

Usage::

    python benchmarks/synthetic_generation.py                      # 1000 x 128x256, workers 2
    python benchmarks/synthetic_generation.py --workers 1 2 --json results/synthetic_generation.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np

from kdlib.data import build_dataset
from kdlib.data.synthetic import CLASS_NAMES, NUM_CLASSES, VOID, generate, read_metadata, render


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Time synthetic_streets generation and score per-pixel colour classifiers on it.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--num", type=int, default=1000, help="train images to generate (no val / test)")
    parser.add_argument("--height", type=int, default=128, help="image height")
    parser.add_argument("--width", type=int, default=256, help="image width")
    parser.add_argument("--workers", type=int, nargs="+", default=[2],
                        help="generation processes; several values time one generation each")
    parser.add_argument("--seed", type=int, default=0, help="generation seed")
    parser.add_argument("--difficulty", type=float, default=0.5, help="generation difficulty in [0, 1]")
    parser.add_argument("--clf-train", type=int, default=200, help="images to fit the colour classifiers on")
    parser.add_argument("--clf-val", type=int, default=100, help="val images to score the colour classifiers on")
    parser.add_argument("--clf-pixels", type=int, default=200_000, help="training pixels (random subsample)")
    parser.add_argument("--boosting", action="store_true",
                        help="also fit a gradient boosted tree colour classifier (stronger; slower)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON to this file")
    parser.add_argument("--keep", metavar="DIR", help="keep the last generated dataset in DIR")
    return parser.parse_args(argv)


def time_generation(num: int, height: int, width: int, workers: int, seed: int, difficulty: float,
                    root: Path) -> float:
    """Wall time (s) to generate ``num`` train images into ``root`` (which must not exist)."""
    start = time.perf_counter()
    generate(root, seed=seed, num_train=num, num_val=0, num_test=0, height=height, width=width,
             difficulty=difficulty, workers=workers, progress=True)
    return time.perf_counter() - start


def confusion_miou(y_true: np.ndarray, y_pred: np.ndarray, k: int = NUM_CLASSES) -> Tuple[float, np.ndarray, float]:
    """(mIoU over classes present in ``y_true``, per-class IoU, pixel accuracy) from a k x k confusion matrix."""
    cm = np.bincount(y_true * k + y_pred, minlength=k * k).reshape(k, k).astype(np.float64)
    tp = np.diag(cm)
    union = cm.sum(0) + cm.sum(1) - tp
    iou = np.divide(tp, union, out=np.zeros(k), where=union > 0)
    present = cm.sum(1) > 0
    return float(iou[present].mean()), iou, float(tp.sum() / cm.sum())


def colour_pixels(images: List[np.ndarray], labels: List[np.ndarray]) -> Tuple[np.ndarray, np.ndarray]:
    """RGB in [0, 1] and class of every non-void pixel."""
    x = np.stack(images).reshape(-1, 3).astype(np.float32) / 255.0
    y = np.stack(labels).reshape(-1).astype(np.int64)
    keep = (y >= 0) & (y != VOID)
    return x[keep], y[keep]


def colour_classifiers(root: Path, args: argparse.Namespace) -> Dict[str, Any]:
    """Fit colour-only classifiers on the generated train files, score them on freshly rendered val images."""
    from sklearn.linear_model import LogisticRegression

    n_train = min(args.clf_train, args.num)
    ds = build_dataset("synthetic_streets", root, "train", generation_seed=args.seed, num_train=args.num,
                       num_val=0, num_test=0, height=args.height, width=args.width, difficulty=args.difficulty,
                       augment=False)
    train = [ds.load(i) for i in range(n_train)]                # RGB uint8, label int64 with void = -1
    x_train, y_train = colour_pixels([t[0] for t in train], [t[1] for t in train])
    val = [render(args.seed, "val", i, args.height, args.width, args.difficulty) for i in range(args.clf_val)]
    x_val, y_val = colour_pixels([v[0] for v in val], [v[1] for v in val])
    pick = np.random.default_rng(0).choice(len(y_train), min(args.clf_pixels, len(y_train)), replace=False)
    models: Dict[str, Any] = {"logistic_regression_rgb": LogisticRegression(max_iter=500)}
    if args.boosting:
        from sklearn.ensemble import HistGradientBoostingClassifier

        models["gradient_boosting_rgb"] = HistGradientBoostingClassifier(max_iter=100, random_state=0)
    out: Dict[str, Any] = {"train_images": n_train, "val_images": args.clf_val, "train_pixels": int(len(pick)),
                           "val_pixels": int(len(y_val)), "size": f"{args.height}x{args.width}"}
    for name, model in models.items():
        start = time.perf_counter()
        model.fit(x_train[pick], y_train[pick])
        miou, iou, acc = confusion_miou(y_val, model.predict(x_val))
        out[name] = {"miou": miou, "pixel_acc": acc, "fit_s": time.perf_counter() - start,
                     "per_class_iou": dict(zip(CLASS_NAMES, iou.round(4).tolist()))}
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    results: Dict[str, Any] = {
        "num_images": args.num, "size": f"{args.height}x{args.width}", "seed": args.seed,
        "difficulty": args.difficulty, "cpu_count": os.cpu_count(), "python": platform.python_version(),
        "generation": []}
    tmp = Path(tempfile.mkdtemp(prefix="kdlib-bench-"))
    try:
        last = None
        for workers in args.workers:
            root = tmp / f"w{workers}"
            seconds = time_generation(args.num, args.height, args.width, workers, args.seed, args.difficulty, root)
            results["generation"].append({"workers": workers, "seconds": seconds, "images_per_s": args.num / seconds})
            print(f"generated {args.num} images at {args.height}x{args.width} with workers={workers}: "
                  f"{seconds:.1f} s ({args.num / seconds:.1f} images/s)", flush=True)
            last = root
        assert last is not None
        frac = read_metadata(last)["class_pixel_fraction"]["train"]
        results["class_pixel_fraction"] = frac
        print("\nclass pixel frequency (train):")
        for name, value in sorted(frac.items(), key=lambda kv: -kv[1]):
            print(f"  {name:<12} {100 * value:6.2f} %")
        if args.clf_train > 0 and args.clf_val > 0:
            print(f"\nfitting colour classifiers on {min(args.clf_train, args.num)} images ...", flush=True)
            clf = colour_classifiers(last, args)
            results["colour_classifier"] = clf
            for name in ("logistic_regression_rgb", "gradient_boosting_rgb"):
                if name in clf:
                    r = clf[name]
                    print(f"{name}: val mIoU {100 * r['miou']:.1f} %, pixel acc {100 * r['pixel_acc']:.1f} % "
                          f"({clf['val_images']} val images {clf['size']}, fit {r['fit_s']:.1f} s)")
                    print("  per-class IoU: " + ", ".join(f"{k} {100 * v:.0f}" for k, v in r["per_class_iou"].items()))
        if args.keep:
            shutil.rmtree(args.keep, ignore_errors=True)
            shutil.move(str(last), args.keep)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    checks = []
    two = [g for g in results["generation"] if g["workers"] == 2]
    if two and args.num >= 1000 and args.height * args.width >= 128 * 256:
        checks.append(f"1,000 images at 128x256 under 60 s with 2 workers: "
                      f"{'yes' if all(g['seconds'] * 1000 / args.num < 60 for g in two) else 'NO'}")
    lr = results.get("colour_classifier", {}).get("logistic_regression_rgb")
    if lr:
        checks.append(f"colour classifier under 35 % mIoU: {'yes' if lr['miou'] < 0.35 else 'NO'}")
    if checks:
        print("\nrequirements: " + "; ".join(checks))
    return 0


if __name__ == "__main__":
    sys.exit(main())
