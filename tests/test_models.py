"""Models: registry-wide forward contract, exact paper parameter counts, width scaling, OS8 geometry."""
import pytest
import torch

from kdlib.models import MODELS, SegOutput, build_model

NAMES = ["deeplabv3_resnet101", "deeplabv3_resnet18", "deeplabv3_mobilenetv2", "pspnet_resnet18"]


def test_registry_holds_the_four_paper_models():
    assert set(NAMES) <= set(MODELS.names())


@pytest.mark.parametrize("name", NAMES)
def test_forward_contract_at_small_width(name):
    torch.manual_seed(0)
    model = build_model(name, num_classes=5, width=0.125)
    out = model(torch.randn(2, 3, 64, 96))
    assert isinstance(out, SegOutput)
    assert out.logits.shape == (2, 5, 8, 12)  # 1/8 of the input, not upsampled
    assert out.c4.shape[0] == 2 and out.c4.shape[2:] == (8, 12)
    assert out.feature.shape[2:] == (8, 12)
    assert out.feature.shape[1] == model.feature_channels
    assert out.c4.shape[1] == model.c4_channels
    if name == "deeplabv3_mobilenetv2":
        assert out.aux_logits is None
    else:
        assert out.aux_logits.shape == (2, 5, 8, 12)
    for t in out:
        if t is not None:
            assert torch.isfinite(t).all()
    out.logits.mean().backward()
    assert all(p.grad is not None for p in model.head.parameters())


@pytest.mark.parametrize("name,k,expected", [
    # docs/reference.md §2.5: verified counts of the official CVPR-era models, aux head included
    ("deeplabv3_resnet101", 19, 61_118_950),
    ("deeplabv3_resnet18", 19, 13_607_974),
    ("pspnet_resnet18", 19, 12_919_334),
    ("deeplabv3_mobilenetv2", 19, 3_233_171),
])
def test_exact_parameter_counts(name, k, expected):
    with torch.device("meta"):
        model = build_model(name, k)
    assert sum(p.numel() for p in model.parameters()) == expected


def test_parameter_breakdown_of_deeplabv3_resnet18():
    with torch.device("meta"):
        model = build_model("deeplabv3_resnet18", 19)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(model.backbone) == 11_324_992
    assert count(model.head.aspp) == 1_984_000
    assert count(model.head.block) == 150_163
    assert count(model.aux_head) == 148_819


def test_channel_widths_of_paper_models():
    with torch.device("meta"):
        r101 = build_model("deeplabv3_resnet101", 19)
        r18 = build_model("deeplabv3_resnet18", 19)
        mbv2 = build_model("deeplabv3_mobilenetv2", 19)
        psp = build_model("pspnet_resnet18", 19)
    assert (r101.feature_channels, r101.c4_channels) == (256, 2048)
    assert (r18.feature_channels, r18.c4_channels) == (128, 512)
    assert (mbv2.feature_channels, mbv2.c4_channels) == (128, 320)
    assert (psp.feature_channels, psp.c4_channels) == (128, 512)
    # deep stem emits 128 channels, so R18 layer1 has a projection shortcut 128 -> 64
    assert r18.backbone.layer1[0].downsample[0].weight.shape == (64, 128, 1, 1)


def test_resnet_dilation_rule():
    with torch.device("meta"):
        r18 = build_model("deeplabv3_resnet18", 19).backbone
        r101 = build_model("deeplabv3_resnet101", 19).backbone
    d = lambda conv: conv.dilation[0]  # noqa: E731
    assert [(d(b.conv1), d(b.conv2)) for b in r18.layer3] == [(1, 2), (2, 2)]
    assert [(d(b.conv1), d(b.conv2)) for b in r18.layer4] == [(2, 4), (4, 4)]
    assert [d(b.conv2) for b in r101.layer4] == [2, 4, 4]
    assert all(b.conv2.stride == (1, 1) for b in r101.layer3)


def test_mobilenet_output_stride_8_dilations():
    with torch.device("meta"):
        features = build_model("deeplabv3_mobilenetv2", 19).backbone.features
    dw = lambda i: [m for m in features[i].conv if isinstance(m, torch.nn.Conv2d) and m.groups > 1][0]  # noqa
    assert (dw(7).stride, dw(7).dilation) == ((1, 1), (1, 1))
    assert (dw(8).stride, dw(8).dilation) == ((1, 1), (2, 2))
    assert (dw(14).stride, dw(14).dilation) == ((1, 1), (2, 2))
    assert (dw(15).stride, dw(15).dilation) == ((1, 1), (4, 4))
    assert dw(4).stride == (2, 2)
    assert len(features) == 18


def test_width_scales_channels_and_keeps_classes():
    small = build_model("deeplabv3_resnet18", 11, width=0.25)
    assert small.feature_channels == 32 and small.c4_channels == 128
    assert small.head.block[4].out_channels == 11


def test_aux_flag_and_bad_arguments():
    assert build_model("deeplabv3_resnet18", 3, aux=False, width=0.125).aux_head is None
    with pytest.raises(KeyError, match="registered: .*deeplabv3_resnet18"):
        build_model("deeplabv3_resnet50", 19)
    with pytest.raises(ValueError):
        build_model("deeplabv3_resnet18", 0)
    with pytest.raises(ValueError):
        build_model("deeplabv3_resnet18", 19, width=0)


def test_feature_is_taken_after_dropout_in_train_mode():
    torch.manual_seed(0)
    model = build_model("deeplabv3_resnet18", 4, width=0.125)
    x = torch.randn(2, 3, 32, 32)  # batch 2: BN after the ASPP image pooling needs > 1 value in training
    model.train()
    feature = model(x).feature
    assert (feature == 0).float().mean() > 0.05  # Dropout(0.1) after ReLU zeroes extra entries
    model.eval()
    a, b = model(x), model(x)
    assert torch.equal(a.feature, b.feature)
    # the classifier is exactly the 1x1 conv applied to the returned feature
    assert torch.allclose(model.head.block[4](a.feature), a.logits, atol=1e-6)
