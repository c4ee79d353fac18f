"""SegFormer MiT-B0 / MiT-B4 (docs/reference.md §2.8): geometry, exact parameter counts, weight layouts, the AdamW option,
distillation on the transformer pair (none / CIRKD / Af-DCD) and the segformer_pair notebook."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from kdlib.models import MODELS, SegOutput, build_model, complexity
from kdlib.models.layers import scale_channels
from kdlib.models.segformer import (MIT_SETTINGS, DropPath, export_official_segformer, load_mit_imagenet,
                                    load_official_segformer)


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _meta(name: str, k: int = 19, width: float = 1.0):
    with torch.device("meta"):
        return build_model(name, k, width=width)


# ------------------------------------------------------------------------------------------- models
def test_registered():
    assert {"segformer_mit_b0", "segformer_mit_b4"} <= set(MODELS.names())


@pytest.mark.parametrize("name,dims,decoder", [("segformer_mit_b0", [4, 8, 20, 32], 32),
                                               ("segformer_mit_b4", [8, 16, 40, 64], 96)])
def test_outputs_at_quarter_and_thirty_second_for_odd_sizes(name, dims, decoder):
    torch.manual_seed(0)
    model = build_model(name, num_classes=5, width=0.125)
    assert model.backbone.channels == dims and model.feature_channels == decoder and model.c4_channels == dims[-1]
    out = model(torch.randn(2, 3, 65, 97))   # not divisible by 32: the padded patch embeds round up
    assert isinstance(out, SegOutput) and out.aux_logits is None
    assert out.logits.shape == (2, 5, 17, 25)       # ceil(65 / 4), ceil(97 / 4)
    assert out.feature.shape == (2, decoder, 17, 25)
    assert out.c4.shape == (2, dims[-1], 3, 4)      # ceil(65 / 32), ceil(97 / 32)
    assert all(torch.isfinite(t).all() for t in out if t is not None)
    out.logits.mean().backward()
    assert all(p.grad is not None for p in model.parameters())
    assert build_model(name, 5, width=0.125)(torch.randn(1, 3, 64, 128)).c4.shape[-2:] == (2, 4)


def test_too_small_input_is_a_clear_error():
    with pytest.raises(ValueError, match="at least 29x29"):
        build_model("segformer_mit_b0", 3, width=0.125)(torch.randn(1, 3, 28, 64))


def _hand_count(dims, depths, decoder, k):
    """Parameters per layer type, from docs/reference.md §2.8's description: every Linear and conv has a bias (the fuse conv
    too, as in CIRKD's file); LayerNorm / BatchNorm have 2C."""
    encoder, c_in = 0, 3
    for i, (c, depth, sr) in enumerate(zip(dims, depths, (8, 4, 2, 1))):
        kernel = 7 if i == 0 else 3
        encoder += c_in * c * kernel * kernel + c + 2 * c              # patch embed conv + LayerNorm
        attn = (c * c + c) + (c * 2 * c + 2 * c) + (c * c + c)          # q, kv, proj
        if sr > 1:
            attn += c * c * sr * sr + c + 2 * c                        # reduction conv + LayerNorm
        ffn = (c * 4 * c + 4 * c) + (4 * c * 9 + 4 * c) + (4 * c * c + c)   # fc1, depth-wise 3x3, fc2
        encoder += depth * (2 * c + attn + 2 * c + ffn) + 2 * c        # blocks (2 LayerNorms) + stage LayerNorm
        c_in = c
    e = decoder
    head = sum(c * e + e for c in dims) + (4 * e * e + e) + 2 * e + (e * k + k)   # linears, fuse + BN, classifier
    return encoder, head


@pytest.mark.parametrize("name,width,total", [
    ("segformer_mit_b0", 1.0, 3_719_283), ("segformer_mit_b4", 1.0, 64_008_403),
    ("segformer_mit_b0", 0.25, 245_547), ("segformer_mit_b4", 0.25, 4_125_763)])
def test_parameter_counts_at_19_classes(name, width, total):
    model = _meta(name, 19, width)
    dims, depths, heads, decoder = MIT_SETTINGS[name]
    dims = [h * scale_channels(d // h, width) for d, h in zip(dims, heads)]   # per-head dim scaled
    assert all(d % h == 0 for d, h in zip(dims, heads))
    encoder, head = _hand_count(dims, depths, scale_channels(decoder, width), 19)
    assert (_count(model.backbone), _count(model.head)) == (encoder, head)
    assert _count(model) == total
    if width == 1.0:  # SegFormer paper (ADE20K, 150 classes): B0 3.8M, B4 64.1M
        assert round(_count(_meta(name, 150)) / 1e6, 1) == {"segformer_mit_b0": 3.8, "segformer_mit_b4": 64.1}[name]


def test_complexity_on_meta_counts_convs_and_linears():
    c = complexity(_meta("segformer_mit_b0"), (1024, 2048))
    assert c.params == 3_719_283 and c.flops == c.macs > 0   # no dilation: both rules agree


def test_drop_path_is_train_only_and_switched_off_with_dropout():
    blocks = [m for m in build_model("segformer_mit_b4", 3, width=0.125).modules() if isinstance(m, DropPath)]
    rates = [m.p for m in blocks]
    assert len(rates) == 41 and rates[0] == 0 and rates[-1] == pytest.approx(0.1) and rates == sorted(rates)
    dp = DropPath(0.5)
    x = torch.ones(64, 4, 3)
    assert torch.equal(dp.eval()(x), x)
    y = dp.train()(x)
    assert set(y.unique().tolist()) <= {0.0, 2.0} and 0 < (y[:, 0, 0] == 0).sum() < 64
    assert isinstance(dp, nn.Dropout)   # the trainer's disable_dropout sets its p to 0 too


def test_official_layout_round_trip_and_mit_imagenet_file(tmp_path):
    torch.manual_seed(0)
    a, b = build_model("segformer_mit_b0", 4, width=0.125), build_model("segformer_mit_b0", 4, width=0.125)
    official = export_official_segformer(a)
    assert {"patch_embed1.proj.weight", "block1.0.attn.q.weight", "block1.0.attn.sr.weight",
            "block1.0.mlp.dwconv.dwconv.weight", "norm4.weight", "linear_c4.proj.weight", "linear_fuse.0.weight",
            "linear_fuse.1.running_mean", "linear_pred.weight"} <= set(official)
    load_official_segformer(b, {f"module.{k}": v for k, v in official.items()})
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
    encoder = {k: v for k, v in official.items() if not k.startswith("linear_")}
    path = tmp_path / "mit_b0.pth"
    torch.save({**encoder, "head.weight": torch.zeros(1000, 32), "head.bias": torch.zeros(1000)}, path)
    c = build_model("segformer_mit_b0", 4, width=0.125)
    load_mit_imagenet(c, path)
    assert all(torch.equal(v, c.backbone.state_dict()[k]) for k, v in a.backbone.state_dict().items())
    # the generic entry points dispatch to the SegFormer layouts (teacher_checkpoint / student_imagenet)
    from kdlib.models import load_imagenet_backbone, load_official

    d = build_model("segformer_mit_b0", 4, width=0.125)
    load_imagenet_backbone(d, path)
    assert all(torch.equal(v, d.backbone.state_dict()[k]) for k, v in a.backbone.state_dict().items())
    load_official(d, official)
    assert all(torch.equal(v, d.state_dict()[k]) for k, v in a.state_dict().items())
    del encoder["norm4.weight"]
    torch.save(encoder, path)
    with pytest.raises(ValueError, match="norm4.weight"):
        load_mit_imagenet(c, path)


# ------------------------------------------------------------------------------------------- optimizer
def test_optimizer_option():
    from kdlib.engine.config import TrainConfig, resolve_config
    from kdlib.engine.trainer import build_optimizer

    params = [nn.Parameter(torch.zeros(3))]
    sgd = build_optimizer(TrainConfig(), params)
    assert type(sgd) is torch.optim.SGD
    assert sgd.defaults == torch.optim.SGD(params, lr=0.02, momentum=0.9, weight_decay=1e-4).defaults
    adamw = build_optimizer(TrainConfig(optimizer="adamw", lr=2e-4), params)
    assert type(adamw) is torch.optim.AdamW and adamw.defaults["lr"] == 2e-4
    assert adamw.defaults["weight_decay"] == 1e-4
    with pytest.raises(ValueError, match="optimizer must be sgd or adamw"):
        TrainConfig.from_dict({"optimizer": "adam"})
    cfg = resolve_config("cityscapes_segformer", {"method": "cirkd", "teacher_checkpoint": "t",
                                                  "method_options": {"pixel_memory_size": 2000}})
    assert (cfg.optimizer, cfg.lr, cfg.weight_decay, cfg.batch_size, cfg.iterations) == ("adamw", 2e-4, 1e-4, 8,
                                                                                          160000)
    assert (cfg.student, cfg.teacher, cfg.crop_size, cfg.aux) == ("segformer_mit_b0", "segformer_mit_b4",
                                                                  (1024, 1024), False)
    assert cfg.method_options["pixel_memory_size"] == 2000 and cfg.loss_weights["memory_p2p"] == 0.1


# ------------------------------------------------------------------------------------------- training
@pytest.fixture(scope="module")
def segformer_teacher(tmp_path_factory, tiny_data_and_teacher):
    """(extra, run dir) of a 2-iteration MiT-B4 teacher at width 0.125 (AdamW), on the tiny data."""
    from kdlib.studies.notebook import parse_extra
    from kdlib.engine.config import resolve_config
    from kdlib.engine.trainer import train

    extra, _ = tiny_data_and_teacher
    run = tmp_path_factory.mktemp("segformer") / "teacher"
    overrides = {**parse_extra(extra), "student": "segformer_mit_b4", "optimizer": "adamw", "lr": 0.003,
                 "crop_size": [64, 64], "iterations": 2, "eval_interval": 2, "checkpoint_interval": 2,
                 "run_dir": str(run)}
    train(resolve_config("quick", overrides), progress=False)
    return extra, run


def _optimizer_groups(run: Path):
    return torch.load(run / "checkpoint_last.pt", map_location="cpu", weights_only=False)["optimizer"]["param_groups"]


@pytest.mark.parametrize("method,options,terms", [
    ("none", {}, set()),
    ("cirkd", {"pixel_memory_size": 2000}, {"kd", "batch_p2p", "memory_p2p", "memory_p2r"}),
    ("afdcd", {"patch": 2}, {"kd", "fd", "ctr"}),   # c4 of a 64x64 crop is 2x2: patch 2, no pooling
])
def test_two_iterations_on_the_segformer_pair(segformer_teacher, tiny_data_and_teacher, tmp_path, method, options,
                                              terms):
    from kdlib.studies.notebook import parse_extra
    from kdlib.engine.config import resolve_config
    from kdlib.engine.trainer import train

    extra, teacher = segformer_teacher
    overrides = {**parse_extra(extra), "student": "segformer_mit_b0", "teacher": "segformer_mit_b4",
                 "teacher_checkpoint": str(teacher), "method": method, "optimizer": "adamw", "lr": 0.003,
                 "crop_size": [64, 64], "iterations": 2, "eval_interval": 2, "checkpoint_interval": 2,
                 "log_interval": 1, "run_dir": str(tmp_path / method), "method_options": options}
    if method == "none":
        overrides.pop("teacher_checkpoint")
    result = train(resolve_config("quick", overrides), progress=False)
    assert 0 <= result["miou"] <= 1
    logs = [json.loads(line) for line in (tmp_path / method / "log.jsonl").read_text().splitlines()]
    steps = [r for r in logs if "loss" in r]
    assert len(steps) == 2 and terms | {"ce", "loss"} <= set(steps[-1])
    assert all(math.isfinite(v) for r in steps for k, v in r.items() if k != "iteration")
    groups = _optimizer_groups(tmp_path / method)
    assert len(groups) == 1 and "betas" in groups[0] and "momentum" not in groups[0]   # AdamW
    if method == "none":  # the default (SGD) runs are unchanged: the shared CNN teacher was trained with SGD
        sgd = _optimizer_groups(tiny_data_and_teacher[1])[0]
        assert sgd["momentum"] == 0.9 and "betas" not in sgd


# ------------------------------------------------------------------------------------------- notebook
def test_segformer_pair_notebook(segformer_teacher, tmp_path):
    import pandas as pd
    import yaml

    from kdlib.studies.grid import run_id
    from notebook_runner import execute

    extra, teacher = segformer_teacher
    out, figs = tmp_path / "pair", tmp_path / "pair_figs"
    execute("segformer_pair.py", {"methods": "none,cirkd,afdcd", "teacher_checkpoint": str(teacher),
                                  "extra": extra, "output_dir": str(out), "figures_dir": str(figs)})
    summary = pd.read_csv(out / "summary.csv").set_index("method")
    assert set(summary["student"]) == {"segformer_mit_b0"}   # no CNN / other-dataset / teacher rows
    assert set(summary.index) == {"none", "cirkd", "afdcd", "skd", "ifvd", "cwd", "dsd"}
    assert summary.loc["cirkd", "paper gain"] == pytest.approx(76.92 - 75.58, abs=1e-6)
    assert summary.loc["dsd", "paper gain"] == pytest.approx(76.62 - 75.58, abs=1e-6)
    assert summary.loc["none", "ours gain"] == 0 and summary.loc[["cirkd", "afdcd"], "ours gain"].notna().all()
    assert math.isnan(summary.loc["afdcd", "paper gain"])   # Af-DCD's transformer numbers: never released
    assert summary.loc[["skd", "dsd"], "ours gain"].isna().all()

    def config(method):
        path = out / "runs" / run_id({"student": "segformer_mit_b0", "method": method, "seed": 0}) / "config.yaml"
        return yaml.safe_load(path.read_text())

    assert config("cirkd")["method_options"]["pixel_memory_size"] == 2000
    assert config("afdcd")["method_options"]["patch"] == 2 and "patch" not in config("cirkd")["method_options"]
    assert {config(m)["optimizer"] for m in ("none", "cirkd", "afdcd")} == {"adamw"}
    assert config("cirkd")["teacher"] == "segformer_mit_b4" and config("cirkd")["student_width"] == 0.125
    assert (figs / "per_class_iou.png").is_file()
    assert json.loads((out / "metrics.json").read_text())["table"] == "segformer_pair"
