"""Complexity: the papers' Params / FLOPs (official rule) and true MACs, cross-checked with torch."""
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from kdlib.models import build_model, complexity


def _meta_model(name, k):
    with torch.device("meta"):
        return build_model(name, k)


@pytest.mark.parametrize("name,params_m,flops_g", [
    ("deeplabv3_resnet101", 61.1, 2371.7),  # CIRKD Table 1, 19 classes, 1x3x1024x2048
    ("deeplabv3_resnet18", 13.6, 572.0),
    ("pspnet_resnet18", 12.9, 507.4),
    ("deeplabv3_mobilenetv2", 3.2, 128.9),
])
def test_cityscapes_table1(name, params_m, flops_g):
    c = complexity(_meta_model(name, 19), (1, 3, 1024, 2048))
    assert abs(c.params / 1e6 - params_m) <= 0.05
    assert abs(c.flops / 1e9 - flops_g) <= 1e-3 * flops_g


@pytest.mark.parametrize("name,flops_g", [
    ("deeplabv3_resnet101", 280.2),  # CIRKD Table 2, CamVid 11 classes, 360x480
    ("deeplabv3_resnet18", 61.0),
    ("pspnet_resnet18", 45.6),
])
def test_camvid_table2(name, flops_g):
    c = complexity(_meta_model(name, 11), (360, 480))
    assert abs(c.flops / 1e9 - flops_g) <= 1e-3 * flops_g


def test_voc_table3_is_not_reproduced_and_we_do_not_pretend():
    # docs/reference.md §2.7: at 512x512 the official rule gives 384.4 / 86.0 / 67.5 G, not the paper's 1294.6 / 305.0 / 260.0
    got = [complexity(_meta_model(n, 21), (512, 512)).flops / 1e9
           for n in ("deeplabv3_resnet101", "deeplabv3_resnet18", "pspnet_resnet18")]
    assert got == pytest.approx([384.4, 86.0, 67.5], rel=1e-3)


def test_true_macs_of_table1_models():
    # docs/reference.md §2.7 [RUN]: true MACs at 1024x2048 (dilation-aware output sizes)
    c = complexity(_meta_model("deeplabv3_resnet18", 19), (1024, 2048))
    assert c.macs / 1e9 == pytest.approx(517.5, rel=1e-3)
    assert c.macs < c.flops


@pytest.mark.parametrize("name", ["deeplabv3_resnet18", "deeplabv3_mobilenetv2", "pspnet_resnet18"])
def test_true_macs_match_torch_flop_counter(name):
    # FlopCounterMode counts 2 FLOPs per multiply-add of convolutions (bias excluded)
    model = build_model(name, 7, width=0.25).eval()
    x = torch.randn(1, 3, 72, 88)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    assert complexity(model, x.shape).macs * 2 == counter.get_total_flops()


def test_official_rule_by_hand_on_a_single_dilated_conv():
    conv = torch.nn.Conv2d(4, 6, 3, padding=12, dilation=12, bias=False)
    c = complexity(conv, (1, 4, 16, 16))
    # official rule: (16 + 24 - 3) // 1 + 1 = 38 rows and cols; real output: 16 x 16
    assert c.flops == 4 * 6 * 9 * 38 * 38
    assert c.macs == 4 * 6 * 9 * 16 * 16
    assert c.params == 4 * 6 * 9


def test_complexity_leaves_model_untouched_and_runs_on_real_weights():
    model = build_model("deeplabv3_resnet18", 5, width=0.125)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    c = complexity(model, (64, 64))
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert c.input_size == (1, 3, 64, 64)
    with pytest.raises(ValueError):
        complexity(model, (3, 64, 64))


def test_the_stored_table_kdlib_info_prints_equals_a_fresh_count():
    """``kdlib info`` reads kdlib/models/complexity_table.json (fast); it must be what counting gives today
    (after a model change: ``kdlib info --recount``)."""
    import json

    from kdlib.info import TABLE_FILE, complexity_table

    assert json.loads(TABLE_FILE.read_text()) == complexity_table(recount=True)
    assert complexity_table(["deeplabv3_resnet18"]) == [r for r in complexity_table(recount=True)
                                                        if r["model"] == "deeplabv3_resnet18"]
