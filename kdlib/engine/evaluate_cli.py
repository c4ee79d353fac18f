"""``kdlib eval``: load a kdlib or official checkpoint and evaluate it on a dataset split."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Dict

import torch

from kdlib.engine.checkpoint import CHECKPOINT_FORMAT
from kdlib.distributed import init_distributed
from kdlib.engine.evaluate import evaluate
from kdlib.engine.rundir import weights_file, write_json
from kdlib.models import build_model, load_official


def run_eval(args: argparse.Namespace) -> Dict[str, Any]:
    from kdlib.data import build_dataset

    path = weights_file(Path(args.checkpoint))
    blob = torch.load(path, map_location="cpu", weights_only=False)
    run_cfg: Dict[str, Any] = {}
    if isinstance(blob, dict) and blob.get("format") == CHECKPOINT_FORMAT:
        run_cfg = blob.get("config", {})
    dataset_name = args.dataset or run_cfg.get("dataset")
    root = args.data_root or run_cfg.get("data_root")
    if not dataset_name or not root:
        raise ValueError("give --dataset and --data-root (an official checkpoint does not record them)")
    options = dict(run_cfg.get("dataset_options", {})) if dataset_name == run_cfg.get("dataset") else {}
    dataset = build_dataset(dataset_name, root, args.split, augment=False, **options)
    if run_cfg:
        model = build_model(blob["model_name"], blob["num_classes"], aux=blob.get("aux", True), width=blob["width"])
        if blob["num_classes"] != dataset.num_classes:
            raise ValueError(f"{path} predicts {blob['num_classes']} classes but {dataset_name} has "
                             f"{dataset.num_classes}")
        model.load_state_dict(blob["model"])
    else:
        if not args.model:
            raise ValueError("an official checkpoint needs --model (e.g. deeplabv3_resnet18)")
        model = build_model(args.model, dataset.num_classes, aux=True, width=args.width)
        load_official(model, blob)
    device = init_distributed(args.device).device
    result = evaluate(model.to(device), dataset, device, scales=args.scales, flip=args.flip,
                      max_samples=args.max_samples)
    result.update(checkpoint=str(path), dataset=dataset_name, split=args.split)
    if args.output:
        write_json(Path(args.output), result)
    return result
