"""The pure distillation loss functions of kdlib (fixed public API).

Every function returns a scalar tensor. Tensors are (B, C, h, w) at feature resolution unless said otherwise;
labels are (B, H, W) int64 at any resolution, resized inside by nearest interpolation as the official code does
(ignore label -1). Teacher tensors and queues are constants (detached). Low-precision inputs are computed in
float32 with autocast disabled (float64 inputs stay float64). Random choices (queue slots, masks) are made by
the caller and passed in, so these functions are deterministic.
"""
from __future__ import annotations

from kdlib.losses.afdcd import afdcd_channel_loss, afdcd_fd_loss, afdcd_omni_loss, afdcd_spatial_loss
from kdlib.losses.at import at_loss
from kdlib.losses.cirkd import cirkd_batch_p2p_loss, cirkd_enqueue, cirkd_memory_losses
from kdlib.losses.cwd import cwd_loss
from kdlib.losses.fitnet import fitnet_loss
from kdlib.losses.ifvd import ifvd_loss
from kdlib.losses.kd import kd_loss
from kdlib.losses.skd import skd_pairwise_loss

__all__ = [
    "kd_loss",
    "cwd_loss",
    "skd_pairwise_loss",
    "ifvd_loss",
    "at_loss",
    "fitnet_loss",
    "cirkd_batch_p2p_loss",
    "cirkd_memory_losses",
    "cirkd_enqueue",
    "afdcd_fd_loss",
    "afdcd_omni_loss",
    "afdcd_spatial_loss",
    "afdcd_channel_loss",
]
