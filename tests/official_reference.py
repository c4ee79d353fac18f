"""Independent reference for the official CIRKD / Af-DCD checkpoint layout (test helper, not kdlib code).

Written from the architecture description of the official code (CIRKD commit 7e0d21f,
``models/deeplabv3.py``, ``models/deeplabv3_mobile.py``, ``models/pspnet.py``, ``models/segbase.py``,
``models/base_models/resnetv1b.py``, ``models/base_models/mobilenetv2.py``; docs/reference.md §2.1-2.5), without
looking at or importing anything from ``kdlib.models``. It provides

* :func:`official_layout` - every key of an official state dict with its shape, enumerated by hand;
* :func:`random_official_state` - a random state dict in that layout (random conv weights, random BN
  affine, random running statistics with positive variance, random ``num_batches_tracked``);
* :func:`reference_forward` - a hand-written functional forward pass (``torch.nn.functional`` only) that
  reads such a dict directly and returns ``logits, aux_logits, c4, feature`` in float64, eval mode
  (Dropout is the identity, BatchNorm uses the running statistics with eps 1e-5).

Nothing here is derived from kdlib; agreement between the two is therefore evidence that kdlib's module
tree, key names and forward computation reproduce the official models.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Dict, List, NamedTuple, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

MODEL_NAMES = ("deeplabv3_resnet101", "deeplabv3_resnet18", "deeplabv3_mobilenetv2", "pspnet_resnet18")

BN_EPS = 1e-5  # nn.BatchNorm2d / nn.SyncBatchNorm default, used by every official model

# (block type, blocks per stage) of the two v1s ResNets
RESNET_DEPTHS = {"resnet18": ("basic", (2, 2, 2, 2)), "resnet101": ("bottleneck", (3, 4, 23, 3))}
# official head width (ASPP / PSP conv) at the CVPR-era commits; CIRKDV2 (repo HEAD) uses 512 for all
HEAD_WIDTH = {"deeplabv3_resnet101": 256, "deeplabv3_resnet18": 128, "deeplabv3_mobilenetv2": 128,
              "pspnet_resnet18": 128}
# torchvision-style MobileNetV2 inverted-residual settings (t, c, n, s)
MBV2_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                 (6, 320, 1, 1))


class RefOutput(NamedTuple):
    logits: Tensor
    aux_logits: Optional[Tensor]
    c4: Tensor
    feature: Tensor


# ----------------------------------------------------------------------------------------------------
# key layout
# ----------------------------------------------------------------------------------------------------

class _Layout:
    """Collects ``(key, shape)`` in definition order."""

    def __init__(self) -> None:
        self.entries: List[Tuple[str, Tuple[int, ...]]] = []

    def conv(self, key: str, c_out: int, c_in: int, k: int, bias: bool = False, groups: int = 1) -> None:
        self.entries.append((f"{key}.weight", (c_out, c_in // groups, k, k)))
        if bias:
            self.entries.append((f"{key}.bias", (c_out,)))

    def bn(self, key: str, c: int) -> None:
        for suffix in ("weight", "bias", "running_mean", "running_var"):
            self.entries.append((f"{key}.{suffix}", (c,)))
        self.entries.append((f"{key}.num_batches_tracked", ()))

    def linear(self, key: str, c_out: int, c_in: int) -> None:
        self.entries.append((f"{key}.weight", (c_out, c_in)))
        self.entries.append((f"{key}.bias", (c_out,)))


def _resnet_stages(depth: str):
    """Yield (stage, block index, in_ch, planes, out_ch, has_downsample) for a v1s ResNet."""
    kind, counts = RESNET_DEPTHS[depth]
    expansion = 1 if kind == "basic" else 4
    in_ch = 128  # the deep stem ends with 128 channels
    for stage, (planes, n) in enumerate(zip((64, 128, 256, 512), counts), start=1):
        stride = 2 if stage == 2 else 1
        out_ch = planes * expansion
        for i in range(n):
            downsample = i == 0 and (stride != 1 or in_ch != out_ch)
            yield stage, i, in_ch, planes, out_ch, downsample
            in_ch = out_ch


def _resnet_layout(lay: _Layout, prefix: str, depth: str) -> None:
    kind, _ = RESNET_DEPTHS[depth]
    lay.conv(f"{prefix}conv1", 64, 3, 3)
    lay.bn(f"{prefix}bn1", 64)
    lay.conv(f"{prefix}conv2", 64, 64, 3)
    lay.bn(f"{prefix}bn2", 64)
    lay.conv(f"{prefix}conv3", 128, 64, 3)
    lay.bn(f"{prefix}bn3", 128)
    for stage, i, in_ch, planes, out_ch, downsample in _resnet_stages(depth):
        p = f"{prefix}layer{stage}.{i}."
        if kind == "basic":
            lay.conv(p + "conv1", planes, in_ch, 3)
            lay.bn(p + "bn1", planes)
            lay.conv(p + "conv2", planes, planes, 3)
            lay.bn(p + "bn2", planes)
        else:
            lay.conv(p + "conv1", planes, in_ch, 1)
            lay.bn(p + "bn1", planes)
            lay.conv(p + "conv2", planes, planes, 3)
            lay.bn(p + "bn2", planes)
            lay.conv(p + "conv3", out_ch, planes, 1)
            lay.bn(p + "bn3", out_ch)
        if downsample:
            lay.conv(p + "downsample.0", out_ch, in_ch, 1)
            lay.bn(p + "downsample.1", out_ch)


def _mbv2_blocks():
    """Yield (feature index, in_ch, hidden, out_ch, expand_ratio, original stride)."""
    in_ch, idx = 32, 1
    for t, c, n, s in MBV2_SETTINGS:
        for i in range(n):
            yield idx, in_ch, in_ch * t, c, t, (s if i == 0 else 1)
            in_ch, idx = c, idx + 1


def _mbv2_layout(lay: _Layout, prefix: str, with_imagenet_top: bool = False) -> None:
    lay.conv(f"{prefix}features.0.0", 32, 3, 3)
    lay.bn(f"{prefix}features.0.1", 32)
    for idx, c_in, hidden, c_out, t, _ in _mbv2_blocks():
        p = f"{prefix}features.{idx}.conv."
        if t == 1:
            lay.conv(p + "0", hidden, hidden, 3, groups=hidden)
            lay.bn(p + "1", hidden)
            lay.conv(p + "3", c_out, hidden, 1)
            lay.bn(p + "4", c_out)
        else:
            lay.conv(p + "0", hidden, c_in, 1)
            lay.bn(p + "1", hidden)
            lay.conv(p + "3", hidden, hidden, 3, groups=hidden)
            lay.bn(p + "4", hidden)
            lay.conv(p + "6", c_out, hidden, 1)
            lay.bn(p + "7", c_out)
    if with_imagenet_top:  # ImageNet file only: final 1x1 conv to 1280 and the linear classifier
        lay.conv(f"{prefix}features.18.0", 1280, 320, 1)
        lay.bn(f"{prefix}features.18.1", 1280)
        lay.linear(f"{prefix}classifier.1", 1000, 1280)


def _deeplab_head_layout(lay: _Layout, c_in: int, width: int, k: int) -> None:
    lay.conv("head.aspp.b0.0", width, c_in, 1)
    lay.bn("head.aspp.b0.1", width)
    for b in (1, 2, 3):
        lay.conv(f"head.aspp.b{b}.block.0", width, c_in, 3)
        lay.bn(f"head.aspp.b{b}.block.1", width)
    lay.conv("head.aspp.b4.gap.1", width, c_in, 1)
    lay.bn("head.aspp.b4.gap.2", width)
    lay.conv("head.aspp.project.0", width, 5 * width, 1)
    lay.bn("head.aspp.project.1", width)
    lay.conv("head.block.0", width, width, 3)
    lay.bn("head.block.1", width)
    lay.conv("head.block.4", k, width, 1, bias=True)


def _psp_head_layout(lay: _Layout, c_in: int, width: int, k: int) -> None:
    branch = c_in // 4
    for i in (1, 2, 3, 4):
        lay.conv(f"head.psp.conv{i}.0", branch, c_in, 1)
        lay.bn(f"head.psp.conv{i}.1", branch)
    lay.conv("head.block.0", width, 2 * c_in, 3)
    lay.bn("head.block.1", width)
    lay.conv("head.classifier", k, width, 1, bias=True)


def _aux_layout(lay: _Layout, c3: int, k: int) -> None:
    lay.conv("auxlayer.block.0", c3 // 4, c3, 3)
    lay.bn("auxlayer.block.1", c3 // 4)
    lay.conv("auxlayer.block.4", k, c3 // 4, 1, bias=True)


def official_layout(name: str, num_classes: int, head_width: Optional[int] = None) -> List[Tuple[str, Tuple[int, ...]]]:
    """All keys (with shapes) of the official state dict of model ``name`` at width 1.0.

    ``head_width`` overrides the ASPP / PSP width (e.g. 512 reproduces a CIRKDV2-style checkpoint).
    """
    width = HEAD_WIDTH[name] if head_width is None else head_width
    lay = _Layout()
    if name == "deeplabv3_mobilenetv2":
        _mbv2_layout(lay, "pretrained.net.")
        _deeplab_head_layout(lay, 320, width, num_classes)
        return lay.entries
    depth = "resnet101" if name.endswith("resnet101") else "resnet18"
    _resnet_layout(lay, "pretrained.", depth)
    c3, c4 = (1024, 2048) if depth == "resnet101" else (256, 512)
    if name.startswith("deeplabv3"):
        _deeplab_head_layout(lay, c4, width, num_classes)
    else:
        _psp_head_layout(lay, c4, width, num_classes)
    _aux_layout(lay, c3, num_classes)
    return lay.entries


def imagenet_layout(name: str) -> List[Tuple[str, Tuple[int, ...]]]:
    """Keys of the official ImageNet backbone file (``resnet18-imagenet.pth`` etc.), classifier included."""
    lay = _Layout()
    if name == "deeplabv3_mobilenetv2":
        _mbv2_layout(lay, "", with_imagenet_top=True)
        return lay.entries
    depth = "resnet101" if name.endswith("resnet101") else "resnet18"
    _resnet_layout(lay, "", depth)
    lay.linear("fc", 1000, 512 if depth == "resnet18" else 2048)
    return lay.entries


def torchvision_resnet18_layout() -> List[Tuple[str, Tuple[int, ...]]]:
    """Keys of a torchvision ``resnet18`` state dict: 7x7/64 stem, no conv2/conv3, no layer1 projection."""
    lay = _Layout()
    lay.conv("conv1", 64, 3, 7)
    lay.bn("bn1", 64)
    in_ch = 64
    for stage, planes in enumerate((64, 128, 256, 512), start=1):
        for i in range(2):
            p = f"layer{stage}.{i}."
            lay.conv(p + "conv1", planes, in_ch if i == 0 else planes, 3)
            lay.bn(p + "bn1", planes)
            lay.conv(p + "conv2", planes, planes, 3)
            lay.bn(p + "bn2", planes)
            if i == 0 and stage > 1:
                lay.conv(p + "downsample.0", planes, in_ch, 1)
                lay.bn(p + "downsample.1", planes)
        in_ch = planes
    lay.linear("fc", 1000, 512)
    return lay.entries


def _fill(entries, seed: int, dtype: torch.dtype, zeros: bool = False) -> "OrderedDict[str, Tensor]":
    g = torch.Generator().manual_seed(seed)
    out: "OrderedDict[str, Tensor]" = OrderedDict()
    for key, shape in entries:
        leaf = key.rsplit(".", 1)[1]
        if zeros:  # cheap filler where only keys and shapes matter
            t = torch.zeros(shape, dtype=torch.long if leaf == "num_batches_tracked" else dtype)
        elif leaf == "num_batches_tracked":
            t = torch.randint(1, 100000, (), generator=g, dtype=torch.long)
        elif leaf == "running_var":
            t = torch.rand(shape, generator=g, dtype=dtype) + 0.5  # in [0.5, 1.5): strictly positive
        elif leaf == "running_mean":
            t = torch.randn(shape, generator=g, dtype=dtype) * 0.2
        elif leaf == "weight" and len(shape) == 1:  # BN gamma
            t = torch.rand(shape, generator=g, dtype=dtype) * 0.6 + 0.5
        elif leaf == "bias":  # BN beta, conv / linear bias
            t = torch.randn(shape, generator=g, dtype=dtype) * 0.2
        else:  # conv / linear weight: variance 1 / fan_in keeps activations O(1) through deep stacks
            fan_in = 1
            for s in shape[1:]:
                fan_in *= s
            t = torch.randn(shape, generator=g, dtype=dtype) * fan_in ** -0.5
        out[key] = t
    return out


def random_official_state(name: str, num_classes: int, seed: int = 0, head_width: Optional[int] = None,
                          dtype: torch.dtype = torch.float32, zeros: bool = False) -> "OrderedDict[str, Tensor]":
    """A random state dict in the official layout (as ``torch.save(model.state_dict())`` would write it).

    ``zeros=True`` fills every tensor with zeros instead (for error tests where only the layout matters).
    """
    return _fill(official_layout(name, num_classes, head_width), seed, dtype, zeros)


def random_imagenet_state(name: str, seed: int = 0, dtype: torch.dtype = torch.float32) -> "OrderedDict[str, Tensor]":
    return _fill(imagenet_layout(name), seed, dtype)


# ----------------------------------------------------------------------------------------------------
# functional forward (eval mode, float64)
# ----------------------------------------------------------------------------------------------------

class _Ref:
    """Reads the state dict and applies layers with explicitly written hyper-parameters."""

    def __init__(self, state: Dict[str, Tensor]) -> None:
        self.s = state

    def w(self, key: str) -> Tensor:
        return self.s[key].to(torch.float64)

    def conv(self, x: Tensor, key: str, stride: int = 1, padding: int = 0, dilation: int = 1,
             groups: int = 1, bias: bool = False) -> Tensor:
        b = self.w(f"{key}.bias") if bias else None
        return F.conv2d(x, self.w(f"{key}.weight"), b, stride=stride, padding=padding, dilation=dilation,
                        groups=groups)

    def bn(self, x: Tensor, key: str) -> Tensor:
        # y = (x - mean) / sqrt(var + eps) * gamma + beta, per channel (written out, not F.batch_norm)
        shape = (1, -1, 1, 1)
        mean = self.w(f"{key}.running_mean").view(shape)
        var = self.w(f"{key}.running_var").view(shape)
        gamma = self.w(f"{key}.weight").view(shape)
        beta = self.w(f"{key}.bias").view(shape)
        return (x - mean) / torch.sqrt(var + BN_EPS) * gamma + beta

    def cbr(self, x: Tensor, conv: str, bn: str, **kw) -> Tensor:
        return F.relu(self.bn(self.conv(x, conv, **kw), bn))

    # --- ResNet v1s, output stride 8 ------------------------------------------------------------------
    def resnet(self, x: Tensor, depth: str, prefix: str = "pretrained.") -> Tuple[Tensor, Tensor]:
        kind, counts = RESNET_DEPTHS[depth]
        p = prefix
        x = self.cbr(x, p + "conv1", p + "bn1", stride=2, padding=1)
        x = self.cbr(x, p + "conv2", p + "bn2", stride=1, padding=1)
        x = self.cbr(x, p + "conv3", p + "bn3", stride=1, padding=1)
        x = F.max_pool2d(x, kernel_size=3, stride=2, padding=1)
        stage_dilation = {1: 1, 2: 1, 3: 2, 4: 4}
        c3 = None
        for stage in (1, 2, 3, 4):
            d = stage_dilation[stage]
            for i in range(counts[stage - 1]):
                bp = f"{p}layer{stage}.{i}."
                stride = 2 if (stage == 2 and i == 0) else 1
                # official rule: the first block of a stage with dilation 1 or 2 uses 1, with 4 uses 2;
                # all later blocks use the stage dilation; BasicBlock's second conv always uses d
                first = 1 if d in (1, 2) else 2
                d1 = first if i == 0 else d
                identity = x
                if kind == "basic":
                    out = self.cbr(x, bp + "conv1", bp + "bn1", stride=stride, padding=d1, dilation=d1)
                    out = self.bn(self.conv(out, bp + "conv2", padding=d, dilation=d), bp + "bn2")
                else:
                    out = self.cbr(x, bp + "conv1", bp + "bn1")
                    out = self.cbr(out, bp + "conv2", bp + "bn2", stride=stride, padding=d1, dilation=d1)
                    out = self.bn(self.conv(out, bp + "conv3"), bp + "bn3")
                if f"{bp}downsample.0.weight" in self.s:
                    identity = self.bn(self.conv(x, bp + "downsample.0", stride=stride), bp + "downsample.1")
                x = F.relu(out + identity)
            if stage == 3:
                c3 = x
        return c3, x

    # --- MobileNetV2, output stride 8 ------------------------------------------------------------------
    def mobilenetv2(self, x: Tensor, prefix: str = "pretrained.net.") -> Tensor:
        p = prefix + "features."
        x = F.relu6(self.bn(self.conv(x, p + "0.0", stride=2, padding=1), p + "0.1"))
        for idx, c_in, hidden, c_out, t, stride in _mbv2_blocks():
            # OS8 conversion: features 7..13 "dilate 2", 14..17 "dilate 4". In those, a 3x3 conv that had
            # stride 2 gets stride 1 and dilation dilate/2; other 3x3 convs get dilation dilate.
            dilate = 2 if 7 <= idx <= 13 else (4 if idx >= 14 else 1)
            if dilate == 1:
                dw_stride, dw_dil = stride, 1
            elif stride == 2:
                dw_stride, dw_dil = 1, dilate // 2
            else:
                dw_stride, dw_dil = 1, dilate
            bp = f"{p}{idx}.conv."
            out = x
            if t == 1:
                out = F.relu6(self.bn(self.conv(out, bp + "0", stride=dw_stride, padding=dw_dil,
                                                dilation=dw_dil, groups=hidden), bp + "1"))
                out = self.bn(self.conv(out, bp + "3"), bp + "4")
            else:
                out = F.relu6(self.bn(self.conv(out, bp + "0"), bp + "1"))
                out = F.relu6(self.bn(self.conv(out, bp + "3", stride=dw_stride, padding=dw_dil,
                                                dilation=dw_dil, groups=hidden), bp + "4"))
                out = self.bn(self.conv(out, bp + "6"), bp + "7")
            # residual decided by the *original* stride (before the OS8 conversion) and channel equality
            x = x + out if (stride == 1 and c_in == c_out) else out
        return x

    # --- heads -----------------------------------------------------------------------------------------
    def deeplab_head(self, c4: Tensor) -> Tuple[Tensor, Tensor]:
        size = c4.shape[2:]
        f0 = self.cbr(c4, "head.aspp.b0.0", "head.aspp.b0.1")
        atrous = [self.cbr(c4, f"head.aspp.b{b}.block.0", f"head.aspp.b{b}.block.1", padding=r, dilation=r)
                  for b, r in ((1, 12), (2, 24), (3, 36))]
        pooled = self.cbr(F.adaptive_avg_pool2d(c4, 1), "head.aspp.b4.gap.1", "head.aspp.b4.gap.2")
        f4 = F.interpolate(pooled, size=size, mode="bilinear", align_corners=True)
        x = torch.cat([f0, *atrous, f4], dim=1)
        x = self.cbr(x, "head.aspp.project.0", "head.aspp.project.1")  # Dropout(0.5): identity in eval
        feature = self.cbr(x, "head.block.0", "head.block.1", padding=1)  # Dropout(0.1): identity in eval
        return self.conv(feature, "head.block.4", bias=True), feature

    def psp_head(self, c4: Tensor) -> Tuple[Tensor, Tensor]:
        size = c4.shape[2:]
        feats = [c4]
        for i, bins in ((1, 1), (2, 2), (3, 3), (4, 6)):
            y = self.cbr(F.adaptive_avg_pool2d(c4, bins), f"head.psp.conv{i}.0", f"head.psp.conv{i}.1")
            feats.append(F.interpolate(y, size=size, mode="bilinear", align_corners=True))
        x = torch.cat(feats, dim=1)
        feature = self.cbr(x, "head.block.0", "head.block.1", padding=1)
        return self.conv(feature, "head.classifier", bias=True), feature

    def aux_head(self, c3: Tensor) -> Tensor:
        y = self.cbr(c3, "auxlayer.block.0", "auxlayer.block.1", padding=1)
        return self.conv(y, "auxlayer.block.4", bias=True)


@torch.no_grad()
def reference_forward(name: str, state: Dict[str, Tensor], x: Tensor) -> RefOutput:
    """Eval-mode forward of official model ``name`` with weights ``state`` (official keys), in float64."""
    ref = _Ref(state)
    x = x.to(torch.float64)
    if name == "deeplabv3_mobilenetv2":
        c4 = ref.mobilenetv2(x)
        logits, feature = ref.deeplab_head(c4)
        return RefOutput(logits, None, c4, feature)
    c3, c4 = ref.resnet(x, "resnet101" if name.endswith("resnet101") else "resnet18")
    logits, feature = ref.deeplab_head(c4) if name.startswith("deeplabv3") else ref.psp_head(c4)
    return RefOutput(logits, ref.aux_head(c3), c4, feature)


# ----------------------------------------------------------------------------------------------------
# self-checks of the helper against the published parameter counts (docs/reference.md §2.5, K = 19)
# ----------------------------------------------------------------------------------------------------

PUBLISHED_PARAMS_K19 = {"deeplabv3_resnet101": 61_118_950, "deeplabv3_resnet18": 13_607_974,
                        "pspnet_resnet18": 12_919_334, "deeplabv3_mobilenetv2": 3_233_171}
PUBLISHED_BACKBONE_PARAMS = {"resnet101": 42_623_936, "resnet18": 11_324_992, "mobilenetv2": 1_811_712}


def count_params(entries) -> int:
    """Trainable parameters (running statistics and num_batches_tracked excluded)."""
    total = 0
    for key, shape in entries:
        if key.endswith(("running_mean", "running_var", "num_batches_tracked")):
            continue
        n = 1
        for s in shape:
            n *= s
        total += n
    return total
