"""``kdlib eval``: load a kdlib or official checkpoint and evaluate it on a dataset split."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Dict

import torch

from kdlib.engine.checkpoint import CHECKPOINT_FORMAT, load_segmentation_model
from kdlib.distributed import init_distributed
from kdlib.engine.evaluate import evaluate
from kdlib.engine.rundir import write_json


def run_eval(args: argparse.Namespace) -> Dict[str, Any]:
    from kdlib.data import build_dataset

    from kdlib.engine.rundir import weights_file

    path = weights_file(Path(args.checkpoint))
    blob = torch.load(path, map_location="cpu", weights_only=False)
    run_cfg: Dict[str, Any] = blob.get("config", {}) if isinstance(blob, dict) and blob.get("format") == \
        CHECKPOINT_FORMAT else {}
    dataset_name = args.dataset or run_cfg.get("dataset")
    root = args.data_root or run_cfg.get("data_root")
    if not dataset_name or not root:
        raise ValueError("give --dataset and --data-root (an official checkpoint does not record them)")
    options = dict(run_cfg.get("dataset_options", {})) if dataset_name == run_cfg.get("dataset") else {}
    dataset = build_dataset(dataset_name, root, args.split, augment=False, **options)
    if not run_cfg and not args.model:
        raise ValueError("an official checkpoint needs --model (e.g. deeplabv3_resnet18)")
    model = load_segmentation_model(path, dataset.num_classes, model_name=args.model, width=args.width, width_field="--width").model
    device = init_distributed(args.device).device
    result = evaluate(model.to(device), dataset, device, scales=args.scales, flip=args.flip,
                      max_samples=args.max_samples)
    result.update(checkpoint=str(path), dataset=dataset_name, split=args.split)
    if args.output:
        write_json(Path(args.output), result)
    return result
