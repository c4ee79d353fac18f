"""The loss weights and method options a run trains with: the config's, or rescaled by ``weight_scaling``.

``weight_scaling=none`` (default) returns the config's own values, untouched. ``paper_shapes`` applies
:mod:`kdlib.methods.scaling`'s rule between the run's shapes (its pair at its widths, ``crop_size`` / 8) and the
paper's (the same models at width 1, 512 x 1024 crops / 8); the trainer writes the record to the run folder
(``weight_scaling.json``) so the effective values are on disk next to ``config.yaml``.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Dict, Optional, Tuple

from kdlib.engine.config import TrainConfig

if TYPE_CHECKING:
    from kdlib.methods import PairSpec


def method_settings(cfg: TrainConfig, pair: "PairSpec"
                    ) -> Tuple[Dict[str, float], Dict[str, Any], Optional[Dict[str, Any]]]:
    """``(loss_weights, method_options, record)`` the run trains with; ``record`` is None without scaling."""
    if cfg.weight_scaling == "none" or cfg.method == "none":
        return cfg.loss_weights, cfg.method_options, None
    from kdlib.engine.preflight import pair_spec
    from kdlib.methods.scaling import PAPER_CROP, feature_shapes, scaled_settings

    paper_pair = pair_spec(dataclasses.replace(cfg, student_width=1.0, teacher_width=1.0))
    return scaled_settings(cfg.method, feature_shapes(pair, cfg.crop_size), feature_shapes(paper_pair, PAPER_CROP),
                           cfg.loss_weights, cfg.method_options)


__all__ = ["method_settings"]
