"""weight_scaling=paper_shapes (kdlib.methods.scaling): the rule's factors by hand, what they equalise, and a run."""
from __future__ import annotations

import json

import pytest
import torch

from kdlib.engine.config import resolve_config
from kdlib.engine.preflight import pair_spec
from kdlib.engine.weight_scaling import method_settings
from kdlib.losses.functional import afdcd_fd_loss, at_loss
from kdlib.methods.base import PairSpec, TensorShapes
from kdlib.methods.scaling import scaled_settings


def proxy(method: str, **overrides):
    return resolve_config("proxy", {"method": method, "teacher_checkpoint": "unused", "weight_scaling": "paper_shapes",
                                    **overrides})


def test_proxy_factors_by_hand():
    # proxy: R101 x0.25 teacher -> c4 has 2048 / 4 = 512 channels; 64x128 crops / 8 = 8 x 16 maps.
    # paper: 2048 channels, 512x1024 / 8 = 64 x 128. fd: (2048*64*128) / (512*8*16) = 4 * 64 = 256.
    # tau: (512/16) / (2048/16) = 1/4 of 0.07. AT: (8*16) / (64*128) = 1/64. Means and KLs: 1.
    cfg = proxy("afdcd")
    weights, options, record = method_settings(cfg, pair_spec(cfg))
    assert record["weight_factors"]["fd"] == 256.0 and weights["fd"] == pytest.approx(256 * cfg.loss_weights["fd"])
    assert options["tau"] == pytest.approx(0.0175) and weights["ctr"] == cfg.loss_weights["ctr"]
    assert weights["kd"] == cfg.loss_weights["kd"] and options["groups"] == cfg.method_options["groups"]
    cfg = proxy("at")
    assert method_settings(cfg, pair_spec(cfg))[2]["weight_factors"] == {"kd": 1.0, "at": 1 / 64}
    cfg = proxy("at", method_options={"scale_to_positions": 8192})   # already rescaled by its own option
    assert method_settings(cfg, pair_spec(cfg))[2]["weight_factors"]["at"] == 1.0
    for method in ("kd", "cwd", "cirkd", "skd", "ifvd", "fitnet"):
        cfg = proxy(method)
        weights, options, record = method_settings(cfg, pair_spec(cfg))
        assert weights == cfg.loss_weights and options == cfg.method_options, method
        assert set(record["weight_factors"].values()) == {1.0}


def test_off_by_default_returns_the_config_itself():
    cfg = resolve_config("proxy", {"method": "afdcd", "teacher_checkpoint": "unused"})
    assert cfg.weight_scaling == "none"
    weights, options, record = method_settings(cfg, pair_spec(cfg))
    assert weights is cfg.loss_weights and options is cfg.method_options and record is None
    with pytest.raises(ValueError, match="weight_scaling must be one of none, paper_shapes"):
        resolve_config("proxy", {"weight_scaling": "paper"})


def _pair(c: int) -> PairSpec:
    return PairSpec(11, c, c, c, c)


def test_scaled_fd_has_the_same_magnitude_at_both_sizes():
    """The point of the rule: with i.i.d. unit differences, E[L_fd] = C h w, so the scaled weight gives the term
    the magnitude it has at the other size (independent check: chi-square sums, not the rule's arithmetic)."""
    torch.manual_seed(0)
    small, large = TensorShapes(_pair(16), 4, 8), TensorShapes(_pair(64), 16, 16)
    weights, _, _ = scaled_settings("afdcd", small, large, {"kd": 1.0, "fd": 1.0, "ctr": 1.0}, {"tau": 0.07})
    loss_small = afdcd_fd_loss(torch.randn(8, 16, 4, 8), torch.zeros(8, 16, 4, 8))
    loss_large = afdcd_fd_loss(torch.randn(8, 64, 16, 16), torch.zeros(8, 64, 16, 16))
    assert weights["fd"] == 64 * 256 / (16 * 32)
    assert float(weights["fd"] * loss_small) == pytest.approx(float(loss_large), rel=0.03)


def test_scaled_tau_gives_contrast_logits_the_same_scale():
    """-L1 over D channels of i.i.d. normals has mean -D * 2/sqrt(pi); divided by the scaled tau both sizes give
    the same logit."""
    torch.manual_seed(0)
    small, large = TensorShapes(_pair(128), 8, 16), TensorShapes(_pair(512), 8, 16)   # D = 8 vs 32 with M = 16
    _, options, _ = scaled_settings("afdcd", small, large, {"ctr": 1.0}, {"tau": 0.07, "groups": 16})
    assert options["tau"] == pytest.approx(0.07 * 8 / 32)
    logit_small = -(torch.randn(20000, 8) - torch.randn(20000, 8)).abs().sum(1).mean() / options["tau"]
    logit_large = -(torch.randn(20000, 32) - torch.randn(20000, 32)).abs().sum(1).mean() / 0.07
    assert float(logit_small) == pytest.approx(float(logit_large), rel=0.02)


def test_scaled_at_has_the_same_magnitude_at_both_sizes():
    torch.manual_seed(0)
    small, large = TensorShapes(_pair(8), 8, 16), TensorShapes(_pair(8), 32, 64)
    weights, _, _ = scaled_settings("at", small, large, {"kd": 1.0, "at": 1.0}, {})
    loss_small = at_loss(torch.randn(64, 8, 8, 16), torch.randn(64, 8, 8, 16))
    loss_large = at_loss(torch.randn(64, 8, 32, 64), torch.randn(64, 8, 32, 64))
    assert weights["at"] == pytest.approx(1 / 16)
    assert float(weights["at"] * loss_small) == pytest.approx(float(loss_large), rel=0.1)


def test_a_run_records_its_effective_weights(tmp_path, tiny_data_and_teacher):
    from kdlib.engine.trainer import train
    from kdlib.studies.notebook import parse_extra

    extra, teacher = tiny_data_and_teacher
    cfg = resolve_config("quick", {**parse_extra(extra), "method": "afdcd", "teacher_checkpoint": str(teacher),
                                   "weight_scaling": "paper_shapes", "run_dir": str(tmp_path / "run")})
    train(cfg, progress=False)
    record = json.loads((tmp_path / "run" / "weight_scaling.json").read_text())
    # tiny: R18 x0.125 teacher (c4 512 / 8 = 64 channels) on 48x96 crops (6 x 12 maps); paper R18: 512, 64 x 128
    assert record["run_feature_size"] == [6, 12] and record["paper_feature_size"] == [64, 128]
    assert record["run_channels"]["teacher_c4"] == 64 and record["paper_channels"]["teacher_c4"] == 512
    assert record["weight_factors"]["fd"] == pytest.approx(512 * 64 * 128 / (64 * 6 * 12))
    assert record["changed_options"]["tau"]["to"] == pytest.approx(0.07 * 64 / 512)
    assert "weight_scaling: paper_shapes" in (tmp_path / "run" / "config.yaml").read_text()
