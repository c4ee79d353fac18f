"""Random draws of the method modules (masks, queue slots, pixel choices), optionally from a private generator.

Every method module has a ``generator`` attribute (``None`` by default). ``None`` = the global torch RNG of the
tensor's device, which the trainer seeds per rank and saves in resumable checkpoints, so a run is
reproducible and resumes bit-exactly. Tests (or users) may set a ``torch.Generator`` to replay a module's
random choices by hand; the draws are then made on the generator's device and moved to the target device.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor


def rand(shape: Sequence[int], device: torch.device, generator: Optional[torch.Generator] = None) -> Tensor:
    """U(0, 1) float32 tensor of ``shape`` on ``device``."""
    if generator is None:
        return torch.rand(tuple(shape), device=device)
    return torch.rand(tuple(shape), generator=generator, device=generator.device).to(device)


def randperm(n: int, device: torch.device, generator: Optional[torch.Generator] = None) -> Tensor:
    """A uniformly random permutation of 0..n-1 (int64) on ``device``."""
    if generator is None:
        return torch.randperm(n, device=device)
    return torch.randperm(n, generator=generator, device=generator.device).to(device)


__all__ = ["rand", "randperm"]
