"""Parameter count, the papers' FLOPs and the true multiply-adds of a model, without a real forward.

What is counted (docs/reference.md §2.7, the official ``utils/flops.py`` rule):

- ``params``: number of elements of every parameter of the model as built (ResNet models include the
  auxiliary head, as the papers' counts do; distillation modules are not part of the model).
- ``flops``: the papers' "FLOPs", which are multiply-accumulates (not x2) of leaf ``Conv2d`` and
  ``Linear`` modules only; BN, activations, pooling, interpolation, additions and softmax are ignored.
  Per conv: ``C_in * C_out * k_h * k_w * H_out * W_out / groups`` where, as in the official counter,
  ``H_out = (H + 2p - k) // s + 1`` ignores dilation. For dilated convs with padding = dilation this
  overstates the output size, so ``flops`` exceeds the true count (paper Table 1 reproduces exactly).
- ``macs``: the true multiply-accumulates of the same layers, using the real output size.
  ``torch.utils.flop_counter.FlopCounterMode`` reports ``2 * macs`` for these models.
- SegFormer (``segformer_mit_b0`` / ``_b4``): the same rule counts its Linear layers and convs (no dilation, so
  ``flops == macs``) but not the attention products q k^T and (attention) v, which are matmuls, not layers
  (another 66.6G multiply-adds for MiT-B0 at 1024x2048, beside its 54.4G), so counters that include them
  report more.

The forward runs on the ``meta`` device (shapes only), so the 1024x2048 table takes well under a second
per model and no memory.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from itertools import chain
from typing import Dict, Sequence, Tuple

import torch
import torch.nn as nn


@dataclass(frozen=True)
class Complexity:
    """Plain counts (not scaled to M or G) for one model at one input size."""

    params: int
    flops: int
    macs: int
    input_size: Tuple[int, int, int, int]

    def as_dict(self) -> Dict[str, object]:
        return asdict(self)


def _normalise_size(input_size: Sequence[int]) -> Tuple[int, int, int, int]:
    size = tuple(int(s) for s in input_size)
    if len(size) == 2:
        return (1, 3) + size  # type: ignore[return-value]
    if len(size) == 4:
        return size  # type: ignore[return-value]
    raise ValueError(f"input_size must be (H, W) or (N, C, H, W), got {input_size}")


def _official_out(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def complexity(model: nn.Module, input_size: Sequence[int] = (1, 3, 1024, 2048)) -> Complexity:
    """Count params, official-rule FLOPs and true MACs of ``model`` for an input of ``input_size``.

    ``input_size`` is (N, C, H, W) or (H, W) (then N=1, C=3). The model is not modified and runs no
    real computation.
    """
    size = _normalise_size(input_size)
    totals = {"flops": 0, "macs": 0}

    def conv_hook(m: nn.Conv2d, inputs, output) -> None:
        x = inputs[0]
        if isinstance(m.padding, str):
            raise ValueError(f"string padding {m.padding!r} is not supported by the official FLOP rule")
        n, c_in, h, w = x.shape
        kh, kw = m.kernel_size
        per_position = c_in * m.out_channels * kh * kw // m.groups
        h_off = _official_out(h, kh, m.stride[0], m.padding[0])
        w_off = _official_out(w, kw, m.stride[1], m.padding[1])
        totals["flops"] += n * per_position * h_off * w_off
        totals["macs"] += n * per_position * output.shape[-2] * output.shape[-1]

    def linear_hook(m: nn.Linear, inputs, output) -> None:
        rows = output.numel() // m.out_features
        totals["flops"] += rows * m.in_features * m.out_features
        totals["macs"] += rows * m.in_features * m.out_features

    handles = []
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            handles.append(module.register_forward_hook(conv_hook))
        elif isinstance(module, nn.Linear):
            handles.append(module.register_forward_hook(linear_hook))
    meta_state = {name: torch.empty_like(t, device="meta")
                  for name, t in chain(model.named_parameters(), model.named_buffers())}
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            torch.func.functional_call(model, meta_state, (torch.empty(size, device="meta"),))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    params = sum(p.numel() for p in model.parameters())
    return Complexity(params=params, flops=totals["flops"], macs=totals["macs"], input_size=size)
