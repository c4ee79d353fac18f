"""Evaluation as the papers do it: whole images, dataset-level confusion matrix, mean over all classes.

Protocol (docs/reference.md §5): per image, logits are bilinearly upsampled (align_corners=True) to the label size
and argmax'ed; pixels labelled ``ignore_index`` are excluded; intersections and unions are summed over
the whole dataset (and over ranks); ``IoU_c = I_c / (U_c + 2.22e-16)``; **mIoU is the plain mean over all
K classes**, so a class that never occurs (zero union) counts as 0, exactly as the official ``score.py``
(this is why COCO-Stuff-164K numbers are over 182 ids). ``miou_present`` (mean over classes with a
non-empty union) is reported beside it for information. Flip and multi-scale inference are options, off
by default as in the papers.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from kdlib import distributed
from kdlib.progress import progress_bar

EPS = 2.220446049250313e-16


def confusion_matrix(pred: Tensor, target: Tensor, num_classes: int, ignore_index: int = -1) -> Tensor:
    """(K, K) int64 counts, rows = ground truth, columns = prediction; ignore pixels are dropped."""
    keep = target != ignore_index
    t, p = target[keep].long(), pred[keep].long()
    if t.numel() and (t.min() < 0 or t.max() >= num_classes):
        raise ValueError(f"label values outside 0..{num_classes - 1} (and ignore {ignore_index}) found: "
                         f"{sorted(set(t.unique().tolist()) - set(range(num_classes)))}")
    return torch.bincount(t * num_classes + p, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def metrics_from_confusion(conf: Tensor, class_names: Optional[Sequence[str]] = None) -> Dict[str, object]:
    """mIoU (official: mean over all K), per-class IoU, pixel accuracy and class-mean accuracy."""
    conf = conf.double()
    inter = conf.diag()
    union = conf.sum(0) + conf.sum(1) - inter
    iou = inter / (union + EPS)
    gt = conf.sum(1)
    present = union > 0
    names = list(class_names) if class_names is not None else [str(i) for i in range(conf.shape[0])]
    return {
        "miou": float(iou.mean()),
        "miou_present": float(iou[present].mean()) if present.any() else 0.0,
        "pixel_acc": float(inter.sum() / max(float(conf.sum()), 1.0)),
        "mean_acc": float((inter[gt > 0] / gt[gt > 0]).mean()) if (gt > 0).any() else 0.0,
        "per_class_iou": {n: float(v) for n, v in zip(names, iou)},
        "num_pixels": int(conf.sum()),
    }


@torch.no_grad()
def predict_logits(model: nn.Module, image: Tensor, out_size: Sequence[int], scales: Sequence[float] = (1.0,),
                   flip: bool = False) -> Tensor:
    """Average of upsampled (align_corners=True) logits over scales (and horizontal flips)."""
    total = None
    for s in scales:
        x = image if s == 1.0 else F.interpolate(image, scale_factor=s, mode="bilinear", align_corners=True)
        views = [x, x.flip(-1)] if flip else [x]
        for i, view in enumerate(views):
            logits = model(view).logits.float()
            if i == 1:
                logits = logits.flip(-1)
            logits = F.interpolate(logits, size=tuple(out_size), mode="bilinear", align_corners=True)
            total = logits if total is None else total + logits
    return total


@torch.no_grad()
def evaluate(model: nn.Module, dataset, device: torch.device | str = "cpu", scales: Sequence[float] = (1.0,),
             flip: bool = False, max_samples: Optional[int] = None, progress: bool = True,
             amp_dtype: Optional[torch.dtype] = None) -> Dict[str, object]:
    """Evaluate ``model`` on every image of ``dataset`` (batch 1, full resolution).

    Under DDP each rank takes images rank, rank + W, ... (no padding duplicates) and the confusion
    matrices are summed over ranks, so every rank returns the same metrics.
    """
    device = torch.device(device)
    was_training = model.training
    model.eval()
    k = int(dataset.num_classes)
    ignore = int(getattr(dataset, "ignore_index", -1))
    conf = torch.zeros(k, k, dtype=torch.int64, device=device)
    n = len(dataset) if max_samples is None else min(len(dataset), max_samples)
    indices: List[int] = list(range(distributed.rank(), n, distributed.world_size()))
    bar = progress_bar(indices, desc="eval", leave=False, disable=not progress or distributed.rank() != 0)
    for i in bar:
        image, label = dataset[i]
        image = image.unsqueeze(0).to(device)
        label = label.to(device)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            logits = predict_logits(model, image, label.shape[-2:], scales, flip)
        conf += confusion_matrix(logits.argmax(1)[0], label, k, ignore)
    distributed.all_reduce_sum(conf)
    model.train(was_training)
    result = metrics_from_confusion(conf.cpu(), getattr(dataset, "class_names", None))
    result["num_images"] = n
    return result
