"""SegFormer: Mix Transformer (MiT) encoder + all-MLP decoder, as in the CIRKD repository (docs/reference.md §2.8).

Used only for the transformer pair of the CIRKD README (teacher MiT-B4, student MiT-B0, Cityscapes val) and
Af-DCD's transformer claims. Written from the facts in docs/reference.md §2.8 in plain torch (no timm / mmcv).

Architecture (``segformer_mit_b0`` / ``segformer_mit_b4``):

* **Encoder** (MiT), four stages. Stage i starts with an overlapping patch embedding: conv k x k with stride s
  and padding k // 2 (stage 1: 7x7 stride 4, stages 2-4: 3x3 stride 2) -> LayerNorm; then ``depth_i``
  transformer blocks ``x + DropPath(Attn(LN(x)))``, ``x + DropPath(MixFFN(LN(x)))``; then LayerNorm. Output
  sizes are ceil(H / 4), ceil(H / 8), ceil(H / 16), ceil(H / 32) (the padding makes any input size work, e.g.
  65x97 -> 17x25 / 9x13 / 5x7 / 3x4); inputs must be at least 29 pixels high and wide (stage 1's 8x8 reduction
  conv needs an 8x8 map, as in the official code).

  - efficient self-attention: q = Linear(C, C); keys / values from the map reduced by a conv R x R stride R
    (R = sr ratio 8 / 4 / 2 / 1; none when R = 1) + LayerNorm: kv = Linear(C, 2C); softmax(q k^T / sqrt(d)) v
    per head (d = C / heads) -> Linear(C, C). All Linear layers have biases.
  - Mix-FFN: Linear(C, 4C) -> depth-wise conv 3x3 (with bias) -> GELU -> Linear(4C, C).
  - stochastic depth (drop path) rising linearly from 0 to 0.1 over all blocks; train mode only.
  - LayerNorm eps 1e-6 for the block and stage norms; the patch-embedding and reduction norms keep PyTorch's
    1e-5, as the official code does.

  | model | dims | depths | heads | decoder dim |
  | --- | --- | --- | --- | --- |
  | MiT-B0 | 32, 64, 160, 256 | 2, 2, 2, 2 | 1, 2, 5, 8 | 256 |
  | MiT-B4 | 64, 128, 320, 512 | 3, 8, 27, 3 | 1, 2, 5, 8 | 768 |

* **Decoder** (all-MLP): per stage Linear(C_i, E) on the tokens -> bilinear upsample (align_corners=False) to
  stage 1's size (1/4) -> concat [c4, c3, c2, c1] -> 1x1 conv 4E -> E (with bias, as CIRKD's file) + BatchNorm
  + ReLU ("fuse") -> Dropout2d(0.0) -> 1x1 classifier E -> K. No auxiliary head.

Outputs (:class:`~kdlib.models.output.SegOutput`), all at the model's own strides, nothing upsampled:
``logits`` (B, K, H/4, W/4); ``aux_logits`` None; ``c4`` (B, C4, H/32, W/32), the last encoder stage (what
Af-DCD distils); ``feature`` (B, E, H/4, W/4), the fused decoder feature after the (p = 0) dropout, i.e. the
official ``[logits, fused_feature]`` second output (what CIRKD and the baselines distil). Note the 1/4 feature
has 4x the pixels of the CNNs' 1/8 features: CIRKD's mini-batch relation (A x A maps) costs 16x more.

Parameters at 19 classes (counted by hand per layer type in the tests): MiT-B0 3,719,283 (encoder 3,319,392,
decoder 399,891); MiT-B4 64,008,403 (encoder 60,842,688, decoder 3,165,715). At 150 classes (ADE20K) these
are 3.75M / 64.11M, the SegFormer paper's 3.8M / 64.1M.

``width`` (proxy models) scales the per-head dimension (32 for B0, 64 for B4) with
:func:`~kdlib.models.layers.scale_channels`, so every stage width stays divisible by its head count
(B0 x0.25: 8, 16, 40, 64), and the decoder dim E (B0 x0.25: 64). Depths, heads, MLP ratio and reduction
ratios are unchanged.

Weights: the module names follow the official files below ``backbone.`` (encoder) and ``head.`` (decoder), so

* :func:`load_mit_imagenet` initialises the encoder from the SegFormer ImageNet files ``mit_b0.pth`` /
  ``mit_b4.pth`` (keys ``patch_embed1.proj.weight``, ``block1.0.attn.q.weight``, ``norm1.weight``, ...;
  their ImageNet classifier ``head.*`` is dropped), all or nothing;
* :func:`load_official_segformer` / :func:`export_official_segformer` read / write the CIRKD SegFormer
  layout (one flat module: encoder keys as above, decoder keys ``linear_c1.proj.*`` ...
  ``linear_fuse.{0,1}.*``, ``linear_pred.*``).

Init as the official code: Linear trunc-normal(0.02) with zero bias, LayerNorm (1, 0), conv normal(0,
sqrt(2 / fan_out)) with zero bias (fan_out = k*k*C_out / groups), BatchNorm PyTorch defaults. The MiT
ImageNet weights expect RGB input normalised by the ImageNet mean / std, but the CIRKD loaders (and kdlib's)
feed BGR mean-subtracted images (docs/reference.md §4); the official SegFormer runs had the same mismatch.
"""
from __future__ import annotations

import math
import os
from collections import OrderedDict
from typing import List, Mapping, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from kdlib.models.layers import scale_channels
from kdlib.models.state_io import check_and_build, read_state
from kdlib.models.output import SegOutput
from kdlib.models.segmentor import Segmentor

BLOCK_EPS = 1e-6           # block and stage LayerNorms (official norm_layer)
DROP_PATH_RATE = 0.1
SR_RATIOS = (8, 4, 2, 1)
MLP_RATIO = 4

# name -> (dims, depths, heads, decoder dim) at width 1.0 (docs/reference.md §2.8)
MIT_SETTINGS = {
    "segformer_mit_b0": ((32, 64, 160, 256), (2, 2, 2, 2), (1, 2, 5, 8), 256),
    "segformer_mit_b4": ((64, 128, 320, 512), (3, 8, 27, 3), (1, 2, 5, 8), 768),
}
IMAGENET_FILES = {"segformer_mit_b0": "mit_b0.pth", "segformer_mit_b4": "mit_b4.pth"}


class DropPath(nn.Dropout):
    """Stochastic depth: zero a whole residual branch per sample with probability ``p`` (train mode only),
    scaling kept samples by 1 / (1 - p). A :class:`torch.nn.Dropout` subclass so that code switching every
    dropout off (``disable_dropout``) also switches stochastic depth off."""

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep


class OverlapPatchEmbed(nn.Module):
    """conv k x k, stride s, padding k // 2 -> tokens (B, h*w, C) -> LayerNorm; returns (tokens, h, w)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2)
        self.norm = nn.LayerNorm(c_out)

    def forward(self, x: Tensor) -> Tuple[Tensor, int, int]:
        x = self.proj(x)
        h, w = x.shape[-2:]
        return self.norm(x.flatten(2).transpose(1, 2)), h, w


class EfficientAttention(nn.Module):
    """Multi-head self-attention whose keys / values come from the map reduced by ``sr_ratio`` (conv + LN)."""

    def __init__(self, dim: int, heads: int, sr_ratio: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} must be divisible by the number of heads {heads}")
        self.heads = heads
        self.sr_ratio = sr_ratio
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        if sr_ratio > 1:
            self.sr = nn.Conv2d(dim, dim, sr_ratio, stride=sr_ratio)
            self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor, h: int, w: int) -> Tensor:
        b, n, c = x.shape
        d = c // self.heads
        q = self.q(x).reshape(b, n, self.heads, d).transpose(1, 2)
        if self.sr_ratio > 1:
            if h < self.sr_ratio or w < self.sr_ratio:
                raise ValueError(f"a {h}x{w} token map is smaller than the {self.sr_ratio}x{self.sr_ratio} "
                                 f"spatial reduction; SegFormer needs inputs of at least 29x29 pixels")
            x = self.sr(x.transpose(1, 2).reshape(b, c, h, w)).flatten(2).transpose(1, 2)
            x = self.norm(x)
        kv = self.kv(x).reshape(b, -1, 2, self.heads, d).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, kv[0], kv[1])  # softmax(q k^T / sqrt(d)) v
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class DWConv(nn.Module):
    """Depth-wise 3x3 conv (with bias) on tokens (B, h*w, C) viewed as a map."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)

    def forward(self, x: Tensor, h: int, w: int) -> Tensor:
        b, _, c = x.shape
        return self.dwconv(x.transpose(1, 2).reshape(b, c, h, w)).flatten(2).transpose(1, 2)


class MixFFN(nn.Module):
    """Linear(C, rC) -> depth-wise conv 3x3 -> GELU -> Linear(rC, C)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.dwconv = DWConv(hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor, h: int, w: int) -> Tensor:
        return self.fc2(self.act(self.dwconv(self.fc1(x), h, w)))


class MiTBlock(nn.Module):
    def __init__(self, dim: int, heads: int, sr_ratio: int, drop_path: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=BLOCK_EPS)
        self.attn = EfficientAttention(dim, heads, sr_ratio)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=BLOCK_EPS)
        self.mlp = MixFFN(dim, dim * MLP_RATIO)

    def forward(self, x: Tensor, h: int, w: int) -> Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), h, w))
        return x + self.drop_path(self.mlp(self.norm2(x), h, w))


class MixTransformer(nn.Module):
    """MiT encoder; ``forward`` returns the four stage maps (c1, c2, c3, c4) at strides 4, 8, 16, 32.

    Attribute names are the official ones (``patch_embed{i}``, ``block{i}``, ``norm{i}``, i = 1..4).
    """

    def __init__(self, dims: Sequence[int], depths: Sequence[int], heads: Sequence[int],
                 sr_ratios: Sequence[int] = SR_RATIOS, drop_path_rate: float = DROP_PATH_RATE) -> None:
        super().__init__()
        self.channels: List[int] = list(dims)
        total = sum(depths)
        # linear stochastic-depth rule over all blocks (plain Python: also works on the meta device)
        rates = [drop_path_rate * i / (total - 1) if total > 1 else 0.0 for i in range(total)]
        c_in, start = 3, 0
        for i, (dim, depth, head, sr) in enumerate(zip(dims, depths, heads, sr_ratios), start=1):
            kernel, stride = (7, 4) if i == 1 else (3, 2)
            setattr(self, f"patch_embed{i}", OverlapPatchEmbed(c_in, dim, kernel, stride))
            setattr(self, f"block{i}", nn.ModuleList(MiTBlock(dim, head, sr, rates[start + j])
                                                     for j in range(depth)))
            setattr(self, f"norm{i}", nn.LayerNorm(dim, eps=BLOCK_EPS))
            c_in, start = dim, start + depth

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        outs = []
        for i in range(1, 5):
            tokens, h, w = getattr(self, f"patch_embed{i}")(x)
            for block in getattr(self, f"block{i}"):
                tokens = block(tokens, h, w)
            tokens = getattr(self, f"norm{i}")(tokens)
            x = tokens.transpose(1, 2).reshape(tokens.shape[0], -1, h, w)
            outs.append(x)
        return outs[0], outs[1], outs[2], outs[3]


class LinearEmbed(nn.Module):
    """Linear(C_i, E) applied to every pixel of a map; returns a map (B, E, h, w)."""

    def __init__(self, c_in: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(c_in, dim)

    def forward(self, x: Tensor) -> Tensor:
        b, _, h, w = x.shape
        return self.proj(x.flatten(2).transpose(1, 2)).transpose(1, 2).reshape(b, -1, h, w)


class SegFormerHead(nn.Module):
    """All-MLP decoder: ``forward((c1, c2, c3, c4))`` -> (logits, fused feature), both at c1's size (1/4)."""

    def __init__(self, in_channels: Sequence[int], dim: int, num_classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.channels = dim
        for i, c in enumerate(in_channels, start=1):
            setattr(self, f"linear_c{i}", LinearEmbed(c, dim))
        self.linear_fuse = nn.Sequential(nn.Conv2d(4 * dim, dim, 1), nn.BatchNorm2d(dim), nn.ReLU(inplace=True))
        self.dropout = nn.Dropout2d(dropout)
        self.linear_pred = nn.Conv2d(dim, num_classes, 1)

    def forward(self, feats: Sequence[Tensor]) -> Tuple[Tensor, Tensor]:
        c1 = feats[0]
        size = c1.shape[-2:]
        maps = []
        for i in (4, 3, 2, 1):  # official concat order: c4, c3, c2, c1
            m = getattr(self, f"linear_c{i}")(feats[i - 1])
            if i != 1:
                m = F.interpolate(m, size=size, mode="bilinear", align_corners=False)
            maps.append(m)
        feature = self.dropout(self.linear_fuse(torch.cat(maps, dim=1)))
        return self.linear_pred(feature), feature


class SegFormer(Segmentor):
    """SegFormer as a kdlib :class:`~kdlib.models.Segmentor`: outputs at 1/4 (logits, feature) and 1/32 (c4)."""

    def __init__(self, backbone: MixTransformer, head: SegFormerHead, num_classes: int, name: str = "",
                 width: float = 1.0) -> None:
        super().__init__(backbone, head, None, num_classes, name=name, width=width)

    @property
    def feature_channels(self) -> int:
        return int(self.head.channels)

    def forward(self, x: Tensor) -> SegOutput:
        feats = self.backbone(x)
        logits, feature = self.head(feats)
        return SegOutput(logits=logits, aux_logits=None, c4=feats[3], feature=feature)


def _init_weights(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
    elif isinstance(m, nn.Conv2d):
        fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
        nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
        if m.bias is not None:
            nn.init.zeros_(m.bias)


def build_segformer(name: str, num_classes: int, width: float = 1.0) -> SegFormer:
    """SegFormer ``name`` (a key of :data:`MIT_SETTINGS`) with K classes; ``width`` scales the per-head dim
    and the decoder dim (see the module docstring)."""
    dims, depths, heads, decoder_dim = MIT_SETTINGS[name]
    dims = [h * scale_channels(d // h, width) for d, h in zip(dims, heads)]
    backbone = MixTransformer(dims, depths, heads)
    head = SegFormerHead(dims, scale_channels(decoder_dim, width), num_classes)
    model = SegFormer(backbone, head, num_classes, name=name, width=width)
    model.apply(_init_weights)
    return model


# ------------------------------------------------------------------------------------ weights I/O
StateSource = Union[Mapping[str, Tensor], str, os.PathLike]
_HEAD_KEYS = ("linear_c1.", "linear_c2.", "linear_c3.", "linear_c4.", "linear_fuse.", "linear_pred.")


def _official_to_kdlib(key: str) -> str:
    return ("head." if key.startswith(_HEAD_KEYS) else "backbone.") + key


def load_official_segformer(model: SegFormer, state_dict: StateSource) -> SegFormer:
    """Load a CIRKD SegFormer state dict (flat keys, optional ``module.`` prefix) or a file; all or nothing."""
    state = {_official_to_kdlib(k): v for k, v in read_state(state_dict).items()}
    full = check_and_build(model.state_dict(), state, "SegFormer checkpoint",
                            "Build the model with the same name, num_classes and width=1.0.",
                            display=lambda key: key.split(".", 1)[1])
    model.load_state_dict(full, strict=True)
    return model


def export_official_segformer(model: SegFormer) -> "OrderedDict[str, Tensor]":
    """The model's state dict in the CIRKD SegFormer layout (flat keys)."""
    return OrderedDict((k.split(".", 1)[1], v.detach().clone()) for k, v in model.state_dict().items())


def load_mit_imagenet(model: SegFormer, path: Union[str, os.PathLike]) -> SegFormer:
    """Initialise the encoder from a SegFormer ImageNet file (``mit_b0.pth`` / ``mit_b4.pth``), all or nothing.

    Every encoder key must be present with the right shape (so width must be 1.0); the file's ImageNet
    classifier (``head.*``) is ignored, as the official ``strict=False`` load ignores it.
    """
    expected = IMAGENET_FILES.get(model.name, "mit_bX.pth")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"MiT ImageNet checkpoint not found: {path}. {model.name} expects the SegFormer "
                                f"file '{expected}'; pass its local path.")
    state = read_state(path)
    full = check_and_build(model.backbone.state_dict(), state, f"MiT ImageNet checkpoint {path}",
                            f"Expected the SegFormer '{expected}' at width=1.0.", tolerated_extra=("head.",))
    model.backbone.load_state_dict(full, strict=True)
    return model


__all__ = ["SegFormer", "MixTransformer", "SegFormerHead", "DropPath", "build_segformer", "MIT_SETTINGS",
           "load_official_segformer", "export_official_segformer", "load_mit_imagenet"]
