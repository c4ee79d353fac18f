"""Official CIRKD / Af-DCD checkpoints and ImageNet backbone files load correctly (issue 3, items 5-6).

The state dicts are built by ``tests/official_reference.py`` from the official architecture description
(key names and shapes enumerated by hand, random weights and running statistics), and kdlib's outputs
after ``load_official`` are compared with a hand-written functional forward that reads the official
dict directly. Nothing in the reference is derived from kdlib's code.
"""
from __future__ import annotations

import copy
import functools
from pathlib import Path

import pytest
import torch

from kdlib.models import (OfficialCheckpointError, build_model, export_official, load_imagenet_backbone,
                          load_official)

try:  # pytest's default "prepend" import mode puts tests/ on sys.path
    import official_reference as ref
except ImportError:  # pragma: no cover - tests/ imported as a package
    from tests import official_reference as ref

# a different class count per model, so that a count hard-coded anywhere would show
NUM_CLASSES = {"deeplabv3_resnet101": 19, "deeplabv3_resnet18": 11, "deeplabv3_mobilenetv2": 21,
               "pspnet_resnet18": 7}
IMAGENET_FILE = {"deeplabv3_resnet101": "resnet101-imagenet.pth", "deeplabv3_resnet18": "resnet18-imagenet.pth",
                 "pspnet_resnet18": "resnet18-imagenet.pth", "deeplabv3_mobilenetv2": "mobilenetv2-imagenet.pth"}
BACKBONE_PREFIX = {"deeplabv3_resnet101": "pretrained.", "deeplabv3_resnet18": "pretrained.",
                   "pspnet_resnet18": "pretrained.", "deeplabv3_mobilenetv2": "pretrained.net."}
NAMES = ref.MODEL_NAMES
# odd sizes on purpose; the wide input gives a 1/8 map 76 columns wide, so that the ASPP taps at
# +-12 / +-24 / +-36 columns all fall inside the map and a wrong atrous rate changes the output
INPUT_SHAPES = ((2, 3, 65, 97), (1, 3, 33, 601))
FORWARD_SHAPES = {name: INPUT_SHAPES for name in ref.MODEL_NAMES}
FORWARD_SHAPES["deeplabv3_resnet101"] = INPUT_SHAPES[1:]  # time: R101 only on the wide input
RTOL = 1e-10


@functools.lru_cache(maxsize=None)
def official_state(name: str, seed: int = 1, num_classes: int = -1, head_width=None, zeros: bool = False):
    """Random official-layout state dict (cached: the R101 one has 61M parameters). Do not mutate."""
    k = NUM_CLASSES[name] if num_classes < 0 else num_classes
    return ref.random_official_state(name, k, seed=seed, head_width=head_width, zeros=zeros)


@functools.lru_cache(maxsize=None)
def loaded_model(name: str):
    """A kdlib model with the seed-1 official dict loaded (float32, eval). Tests must not modify it."""
    model = build_model(name, NUM_CLASSES[name])
    assert load_official(model, official_state(name)) is model
    return model.eval()


def fresh_model(name: str):
    """A model of the right architecture holding the seed-1 weights (a copy: cheaper than building R101)."""
    return copy.deepcopy(loaded_model(name))


def assert_state_equals(model, expected) -> None:
    got = export_official(model)
    assert set(got) == set(expected), (sorted(set(got) - set(expected))[:5], sorted(set(expected) - set(got))[:5])
    bad = [k for k in expected if got[k].shape != expected[k].shape or not torch.equal(got[k], expected[k].to(got[k].dtype))]
    assert not bad, f"tensors differ after loading: {bad[:8]}"


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-300))


# ---------------------------------------------------------------------------------------------------
# the reference itself
# ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_reference_layout_matches_published_parameter_counts(name):
    """The hand-enumerated layout reproduces the official parameter counts exactly (docs/reference.md §2.5)."""
    assert ref.count_params(ref.official_layout(name, 19)) == ref.PUBLISHED_PARAMS_K19[name]
    backbone = {"deeplabv3_mobilenetv2": "mobilenetv2", "deeplabv3_resnet101": "resnet101"}.get(name, "resnet18")
    entries = [e for e in ref.official_layout(name, 19) if e[0].startswith("pretrained.")]
    assert ref.count_params(entries) == ref.PUBLISHED_BACKBONE_PARAMS[backbone]


def test_reference_is_sensitive_to_atrous_rates():
    """Guard against a weak test: swapping the rate-24 and rate-36 ASPP branches changes the reference."""
    name = "deeplabv3_resnet18"
    state = dict(official_state(name))
    x = torch.randn(INPUT_SHAPES[1], generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    base = ref.reference_forward(name, state, x)
    for suffix in ("block.0.weight", "block.1.weight", "block.1.bias", "block.1.running_mean", "block.1.running_var"):
        state[f"head.aspp.b2.{suffix}"], state[f"head.aspp.b3.{suffix}"] = (state[f"head.aspp.b3.{suffix}"],
                                                                            state[f"head.aspp.b2.{suffix}"])
    swapped = ref.reference_forward(name, state, x)
    assert rel_err(swapped.feature, base.feature) > 1e-3


# ---------------------------------------------------------------------------------------------------
# load_official: outputs and key layout
# ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_loaded_model_matches_reference_forward(name):
    state = official_state(name)
    model = copy.deepcopy(loaded_model(name)).double().eval()
    g = torch.Generator().manual_seed(0)
    for shape in FORWARD_SHAPES[name]:
        x = torch.randn(shape, generator=g, dtype=torch.float64)
        expected = ref.reference_forward(name, state, x)
        with torch.no_grad():
            out = model(x)
        h, w = -(-shape[2] // 8), -(-shape[3] // 8)  # ceil: every stride-2 layer pads to keep odd sizes
        assert out.logits.shape == (shape[0], NUM_CLASSES[name], h, w)
        for field in ("logits", "aux_logits", "c4", "feature"):
            want, got = getattr(expected, field), getattr(out, field)
            if want is None:
                assert got is None, f"{name}: official model has no {field}"
                continue
            assert got is not None and got.shape == want.shape, (field, None if got is None else got.shape, want.shape)
            assert got.dtype == torch.float64
            err = rel_err(got, want)
            assert err < RTOL, f"{name} {field} at input {shape}: relative error {err:.3g}"


@pytest.mark.parametrize("name", NAMES)
def test_export_official_returns_exactly_the_official_layout(name):
    state = official_state(name)
    got = export_official(loaded_model(name))
    assert set(got) == set(state)
    assert len(got) == len(state)
    for key, value in state.items():
        assert got[key].shape == value.shape, key
        assert got[key].dtype == value.dtype, key
        assert torch.equal(got[key], value), key


@pytest.mark.parametrize("name", NAMES)
def test_load_with_module_prefix(name):
    other = official_state(name, seed=2)  # values differ from the copied model's seed-1 weights
    model = fresh_model(name)
    load_official(model, {f"module.{k}": v for k, v in other.items()})
    assert_state_equals(model, other)


@pytest.mark.parametrize("name", ["deeplabv3_resnet18", "deeplabv3_mobilenetv2", "pspnet_resnet18"])
def test_load_from_file(name, tmp_path):
    model = build_model(name, NUM_CLASSES[name])
    other = official_state(name, seed=2)  # a DDP-prefixed file, path given as str
    path = tmp_path / "official.pth"
    torch.save({f"module.{k}": v for k, v in other.items()}, path)
    load_official(model, str(path))
    assert_state_equals(model, other)
    torch.save(dict(official_state(name)), path)  # a plain file, path given as Path
    load_official(model, Path(path))
    assert_state_equals(model, official_state(name))
    with pytest.raises(FileNotFoundError):
        load_official(model, tmp_path / "absent.pth")


@pytest.mark.parametrize("name", ["deeplabv3_resnet18", "deeplabv3_mobilenetv2"])
def test_export_to_file_round_trip(name, tmp_path):
    path = tmp_path / "exported.pth"
    written = export_official(loaded_model(name), path)
    on_disk = torch.load(path, map_location="cpu", weights_only=True)
    assert set(on_disk) == set(official_state(name)) == set(written)
    model = build_model(name, NUM_CLASSES[name])
    load_official(model, path)
    assert_state_equals(model, official_state(name))


# ---------------------------------------------------------------------------------------------------
# load_official: errors, never a partial load
# ---------------------------------------------------------------------------------------------------

# one key per model part whose absence / wrong shape must be reported by name
PROBE_KEYS = {
    "deeplabv3_resnet101": ("pretrained.layer3.17.bn2.running_var", "head.aspp.b4.gap.1.weight",
                            "auxlayer.block.1.weight"),
    "deeplabv3_resnet18": ("pretrained.layer1.0.downsample.0.weight", "head.aspp.project.0.weight",
                           "auxlayer.block.4.bias"),
    "pspnet_resnet18": ("pretrained.conv3.weight", "head.psp.conv4.1.running_mean", "auxlayer.block.0.weight"),
    "deeplabv3_mobilenetv2": ("pretrained.net.features.14.conv.3.weight", "head.block.1.bias",
                              "pretrained.net.features.0.1.running_mean"),
}


def _check_rejected(name, bad_state, *must_mention):
    """Loading ``bad_state`` into the loaded model raises, names the keys, and changes nothing."""
    model = loaded_model(name)
    with pytest.raises(OfficialCheckpointError) as info:
        load_official(model, bad_state)
    message = str(info.value)
    for text in must_mention:
        assert text in message, f"error message does not mention {text!r}:\n{message}"
    assert_state_equals(model, official_state(name))  # untouched: still the seed-1 weights
    return message


@pytest.mark.parametrize("name", NAMES)
def test_missing_key_is_rejected_by_name(name):
    for key in PROBE_KEYS[name]:
        bad = dict(official_state(name, seed=2))  # other values, so a partial load would show
        del bad[key]
        _check_rejected(name, bad, key)


@pytest.mark.parametrize("name", NAMES)
def test_unexpected_key_is_rejected_by_name(name):
    extras = {"head.aspp.b5.0.weight": torch.zeros(3, 3, 1, 1), "proj_head.0.weight": torch.zeros(4, 4, 1, 1)}
    if name == "deeplabv3_mobilenetv2":  # the official MBV2 model has no auxiliary head
        extras["auxlayer.block.0.weight"] = torch.zeros(80, 320, 3, 3)
    else:  # the backbone has no ImageNet classifier
        extras["pretrained.fc.weight"] = torch.zeros(1000, 512)
    for key, value in extras.items():
        bad = dict(official_state(name, seed=2))
        bad[key] = value
        _check_rejected(name, bad, key)


@pytest.mark.parametrize("name", NAMES)
def test_shape_mismatch_is_rejected_by_name(name):
    for key in PROBE_KEYS[name]:
        bad = dict(official_state(name, seed=2))
        shape = list(bad[key].shape)
        shape[0] += 1
        bad[key] = torch.zeros(shape)
        _check_rejected(name, bad, key)


@pytest.mark.parametrize("name", NAMES)
def test_wrong_class_count_is_rejected_with_the_count(name):
    k = NUM_CLASSES[name]
    bad = official_state(name, num_classes=k + 4, zeros=True)
    message = _check_rejected(name, bad, str(k + 4))
    assert str(k) in message.replace(str(k + 4), "")


@pytest.mark.parametrize("name", ["deeplabv3_resnet18", "deeplabv3_mobilenetv2", "deeplabv3_resnet101"])
def test_cirkdv2_head_width_is_rejected(name):
    """The official repository's later 'CIRKDV2' code uses ASPP width 512; such checkpoints must not load."""
    bad = official_state(name, head_width=512, zeros=True)
    message = _check_rejected(name, bad, "head.aspp.b0.0.weight")
    assert "512" in message


def test_checkpoint_of_another_architecture_is_rejected():
    # an R18 DeepLabV3 checkpoint into PSPNet-R18 and into DeepLabV3-MBV2
    # (same class count, so that only the architecture differs)
    r18_for_psp = official_state("deeplabv3_resnet18", num_classes=NUM_CLASSES["pspnet_resnet18"], zeros=True)
    _check_rejected("pspnet_resnet18", r18_for_psp, "head.aspp.b0.0.weight")
    r18_for_mbv2 = official_state("deeplabv3_resnet18", num_classes=NUM_CLASSES["deeplabv3_mobilenetv2"], zeros=True)
    _check_rejected("deeplabv3_mobilenetv2", r18_for_mbv2, "pretrained.conv1.weight")


@pytest.mark.parametrize("name", NAMES)
def test_missing_num_batches_tracked_only_is_tolerated(name):
    other = official_state(name, seed=2)
    stripped = {k: v for k, v in other.items() if not k.endswith("num_batches_tracked")}
    assert len(stripped) < len(other)
    model = fresh_model(name)
    load_official(model, stripped)
    got = export_official(model)
    assert set(got) == set(other)
    for key, value in stripped.items():
        assert torch.equal(got[key], value), key


# ---------------------------------------------------------------------------------------------------
# load_imagenet_backbone
# ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_imagenet_backbone_loads_official_file(name, tmp_path):
    file_state = ref.random_imagenet_state(name, seed=3)
    if name == "deeplabv3_mobilenetv2":  # old-format file without num_batches_tracked must load too
        file_state = {k: v for k, v in file_state.items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / IMAGENET_FILE[name]
    torch.save(file_state, path)
    model = fresh_model(name)
    before = export_official(model)
    assert load_imagenet_backbone(model, path) is model
    after = export_official(model)
    prefix = BACKBONE_PREFIX[name]
    classifier = ("fc.", "classifier.", "features.18.")
    backbone_keys = [k for k in file_state if not k.startswith(classifier)]
    for key in backbone_keys:
        assert torch.equal(after[prefix + key], file_state[key]), key
    expected_backbone = {prefix + k for k in backbone_keys}
    for key in after:  # the head, the aux head and only them are untouched
        if key.startswith(prefix):
            assert key in expected_backbone or key.endswith("num_batches_tracked"), key
        else:
            assert torch.equal(after[key], before[key]), key


def test_torchvision_resnet18_is_rejected(tmp_path):
    # the layout of torchvision.models.resnet18().state_dict() (checked against torchvision by hand)
    tv_state = ref._fill(ref.torchvision_resnet18_layout(), seed=6, dtype=torch.float32)
    assert tuple(tv_state["conv1.weight"].shape) == (64, 3, 7, 7) and "conv2.weight" not in tv_state
    path = tmp_path / "resnet18-imagenet.pth"
    torch.save(tv_state, path)
    for name in ("deeplabv3_resnet18", "pspnet_resnet18"):
        model = loaded_model(name)
        with pytest.raises(OfficialCheckpointError) as info:
            load_imagenet_backbone(model, path)
        assert "conv1.weight" in str(info.value)
        assert_state_equals(model, official_state(name))


def test_imagenet_file_missing_a_backbone_key_is_rejected(tmp_path):
    name = "deeplabv3_resnet18"
    file_state = ref.random_imagenet_state(name, seed=4)
    del file_state["layer4.1.bn2.weight"]
    path = tmp_path / "resnet18-imagenet.pth"
    torch.save(file_state, path)
    model = loaded_model(name)
    with pytest.raises(OfficialCheckpointError) as info:
        load_imagenet_backbone(model, path)
    assert "layer4.1.bn2.weight" in str(info.value)
    assert_state_equals(model, official_state(name))


def test_imagenet_file_of_the_wrong_backbone_is_rejected(tmp_path):
    path = tmp_path / "mobilenetv2-imagenet.pth"
    torch.save(ref.random_imagenet_state("deeplabv3_mobilenetv2", seed=4), path)
    model = loaded_model("pspnet_resnet18")
    with pytest.raises(OfficialCheckpointError):
        load_imagenet_backbone(model, path)
    assert_state_equals(model, official_state("pspnet_resnet18"))


@pytest.mark.parametrize("name", NAMES)
def test_missing_imagenet_file_names_the_expected_file(name, tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        load_imagenet_backbone(loaded_model(name), tmp_path / "nowhere" / "weights.pth")
    assert IMAGENET_FILE[name] in str(info.value)
