"""Distillation losses. The pure math lives in :mod:`kdlib.losses.functional` (one file per method)."""
from kdlib.losses import functional

__all__ = ["functional"]
