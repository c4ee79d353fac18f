"""The discriminator of SKD / IFVD / CWD: the official spectral norm (``d_spectral_norm="official"``) against a
hand-written float64 power iteration over the discriminator step's two forwards (fake, then real), torch's
variant against :func:`torch.nn.utils.parametrizations.spectral_norm`, and the switch end to end in a tiny run.

Official behaviour (SAGAN reference ``SpectralNorm``, Zhang et al. 2019, as used by the CIRKD repository's
baselines), W = weight reshaped to (out, -1), n(x) = x / (||x|| + 1e-12), per forward:
v <- n(W^T u), u <- n(W v), sigma = u^T W v, W_SN = W / sigma; the gradient of sigma w.r.t. W is u v^T with the
u, v of the *latest* forward (the official module overwrites them in place), so the fake forward's backward
sees the real forward's vectors.

CPU, tiny shapes; a few seconds (the end-to-end test shares the session's tiny teacher run).
"""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Dict, List, Tuple

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

import kdlib.methods  # noqa: F401  (registers the methods)
from kdlib.methods import PairSpec, build_distiller
from kdlib.methods.adversarial import (AdversarialTerm, OfficialSpectralNorm, SAGANDiscriminator, SelfAttention,
                                       official_spectral_norm)
from kdlib.registry import METHODS

EPS = 1e-12
PAPER_DATASETS = ("cityscapes", "camvid", "voc", "ade20k", "coco_stuff_164k")


# ------------------------------------------------------------------------------------------- float64 reference
def ref_iteration(w: Tensor, u: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """One official power iteration from ``u``: (u', v', sigma), all float64, written out by hand."""
    wm = w.reshape(w.shape[0], -1)
    v = wm.t() @ u
    v = v / (v.norm() + EPS)
    u = wm @ v
    u = u / (u.norm() + EPS)
    return u, v, u @ wm @ v


def ref_weight_grad(w: Tensor, grads: List[Tensor], sigmas: List[Tensor], u: Tensor, v: Tensor) -> Tensor:
    """dL/dW for W_SN,i = W / sigma_i (i over forwards), G_i = dL/dW_SN,i, with d sigma_i / dW = u v^T for the
    given (u, v): sum_i G_i / sigma_i - (<G_i, W> / sigma_i^2) u v^T."""
    out = torch.zeros_like(w)
    for g, s in zip(grads, sigmas):
        out = out + g / s - (g * w).sum() / s ** 2 * torch.outer(u, v).reshape(w.shape)
    return out


def hinge_d(d_real: Tensor, d_fake: Tensor) -> Tensor:
    return F.relu(1.0 - d_real).mean() + F.relu(1.0 + d_fake).mean()


def test_official_init_draws_unit_normals_without_warmup():
    torch.manual_seed(3)
    conv = official_spectral_norm(nn.Conv2d(3, 6, 4, 2, 1))
    torch.manual_seed(3)
    plain = nn.Conv2d(3, 6, 4, 2, 1)
    u, v = torch.randn(6), torch.randn(3 * 4 * 4)
    sn = conv.parametrizations.weight[0]
    assert isinstance(sn, OfficialSpectralNorm)
    assert torch.equal(conv.parametrizations.weight.original, plain.weight)
    torch.testing.assert_close(sn._u, u / (u.norm() + EPS), rtol=0, atol=1e-7)
    torch.testing.assert_close(sn._v, v / (v.norm() + EPS), rtol=0, atol=1e-7)


def test_official_conv_two_forwards_values_and_latest_vector_gradient():
    """One spectral-norm conv, D-step pattern: fake forward, real forward, one backward of the hinge loss."""
    torch.manual_seed(0)
    conv = official_spectral_norm(nn.Conv2d(3, 6, 4, 2, 1).double())
    sn = conv.parametrizations.weight[0]
    w0 = conv.parametrizations.weight.original.detach().clone()
    bias = conv.bias.detach().clone()
    u0 = sn._u.clone()
    x_fake, x_real = torch.randn(2, 3, 10, 10, dtype=torch.float64), torch.randn(2, 3, 10, 10, dtype=torch.float64)

    d_fake = conv(x_fake)
    d_real = conv(x_real)
    hinge_d(d_real, d_fake).backward()

    # reference: iteration 1 (fake) from u0, iteration 2 (real) from u1; same W (no step in between)
    u1, v1, s1 = ref_iteration(w0, u0)
    u2, v2, s2 = ref_iteration(w0, u1)
    wsn1 = (w0 / s1).requires_grad_(True)
    wsn2 = (w0 / s2).requires_grad_(True)
    b = bias.clone().requires_grad_(True)
    r_fake = F.conv2d(x_fake, wsn1, b, stride=2, padding=1)
    r_real = F.conv2d(x_real, wsn2, b, stride=2, padding=1)
    g1, g2, gb = torch.autograd.grad(hinge_d(r_real, r_fake), [wsn1, wsn2, b])

    tight = dict(rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(d_fake, r_fake.detach(), **tight)
    torch.testing.assert_close(d_real, r_real.detach(), **tight)
    assert not torch.allclose(s1, s2, rtol=1e-6, atol=0.0), "the two forwards must see different sigmas"
    torch.testing.assert_close(sn._u, u2, **tight)
    torch.testing.assert_close(sn._v, v2, **tight)
    official = ref_weight_grad(w0, [g1, g2], [s1, s2], u2, v2)     # both forwards: the latest (real) u, v
    consistent = (ref_weight_grad(w0, [g1], [s1], u1, v1) + ref_weight_grad(w0, [g2], [s2], u2, v2))
    grad = conv.parametrizations.weight.original.grad
    torch.testing.assert_close(grad, official, **tight)
    torch.testing.assert_close(conv.bias.grad, gb, **tight)
    assert (grad - consistent).abs().max() > 1e-6, "the fake forward's backward must use the real forward's u, v"


def ref_discriminator(x: Tensor, d: SAGANDiscriminator, wsn: List[Tensor], p: Dict[str, Tensor]) -> Tensor:
    """The discriminator written out (train-mode BatchNorm, 64x64 input: no size-safe padding), with the four
    normalised conv weights ``wsn`` and every other parameter ``p`` (leaves) given explicitly."""
    mean = x.mean((0, 2, 3), keepdim=True)
    var = ((x - mean) ** 2).mean((0, 2, 3), keepdim=True)
    x = (x - mean) / torch.sqrt(var + d.input_norm.eps) * p["input_norm.weight"].view(1, -1, 1, 1) \
        + p["input_norm.bias"].view(1, -1, 1, 1)

    def attention(x: Tensor, name: str) -> Tensor:
        q = F.conv2d(x, p[f"{name}.query.weight"], p[f"{name}.query.bias"]).flatten(2)     # (B, C/8, N)
        k = F.conv2d(x, p[f"{name}.key.weight"], p[f"{name}.key.bias"]).flatten(2)
        v = F.conv2d(x, p[f"{name}.value.weight"], p[f"{name}.value.bias"]).flatten(2)     # (B, C, N)
        attn = torch.softmax(torch.einsum("bci,bcj->bij", q, k), dim=-1)                   # row i = query
        out = torch.einsum("bcj,bij->bci", v, attn).reshape(x.shape)
        return p[f"{name}.gamma"] * out + x

    for i in range(4):
        x = F.leaky_relu(F.conv2d(x, wsn[i], p[f"convs.{i}.bias"], stride=2, padding=1), 0.1)
        if i == 2:
            x = attention(x, "attn1")
    x = attention(x, "attn2")
    return F.conv2d(x, p["last.weight"], p["last.bias"])


def test_official_discriminator_step_against_float64_reference():
    """Whole discriminator, the official D step (fake forward, real forward, hinge backward): outputs, u/v buffers
    and every parameter's gradient; the spectral-norm weights get the latest-vector gradient."""
    torch.manual_seed(0)
    d = SAGANDiscriminator(3, conv_dim=4, spectral_norm="official").double().train()
    with torch.no_grad():
        d.attn1.gamma.fill_(0.7)        # exercise the attention path (gamma starts at 0)
        d.attn2.gamma.fill_(-0.4)
    w0 = [c.parametrizations.weight.original.detach().clone() for c in d.convs]
    u0 = [c.parametrizations.weight[0]._u.clone() for c in d.convs]
    p = {k: v.detach().clone().requires_grad_(True) for k, v in d.named_parameters()
         if "parametrizations" not in k}
    z_fake, z_real = torch.randn(2, 3, 64, 64, dtype=torch.float64), torch.randn(2, 3, 64, 64, dtype=torch.float64)

    d_fake = d(z_fake)
    d_real = d(z_real)
    hinge_d(d_real, d_fake).backward()

    it1 = [ref_iteration(w, u) for w, u in zip(w0, u0)]                  # fake forward
    it2 = [ref_iteration(w, r[0]) for w, r in zip(w0, it1)]              # real forward
    wsn1 = [(w / r[2]).requires_grad_(True) for w, r in zip(w0, it1)]
    wsn2 = [(w / r[2]).requires_grad_(True) for w, r in zip(w0, it2)]
    r_fake = ref_discriminator(z_fake, d, wsn1, p)
    r_real = ref_discriminator(z_real, d, wsn2, p)
    names = list(p)
    grads = torch.autograd.grad(hinge_d(r_real, r_fake), wsn1 + wsn2 + [p[k] for k in names])
    g1, g2, g_rest = grads[:4], grads[4:8], dict(zip(names, grads[8:]))

    tight = dict(rtol=1e-9, atol=1e-12)
    assert d_fake.shape == (2, 1, 1, 1)
    torch.testing.assert_close(d_fake, r_fake.detach(), **tight)
    torch.testing.assert_close(d_real, r_real.detach(), **tight)
    for i, conv in enumerate(d.convs):
        sn = conv.parametrizations.weight[0]
        u2, v2, s2 = it2[i]
        torch.testing.assert_close(sn._u, u2, **tight)
        torch.testing.assert_close(sn._v, v2, **tight)
        official = ref_weight_grad(w0[i], [g1[i], g2[i]], [it1[i][2], s2], u2, v2)
        consistent = (ref_weight_grad(w0[i], [g1[i]], [it1[i][2]], it1[i][0], it1[i][1])
                      + ref_weight_grad(w0[i], [g2[i]], [s2], u2, v2))
        grad = conv.parametrizations.weight.original.grad
        torch.testing.assert_close(grad, official, **tight, msg=f"conv {i}")
        assert (grad - consistent).abs().max() > 1e-9 * consistent.abs().max(), f"conv {i}"
    for name, param in d.named_parameters():
        if "parametrizations" not in name:
            torch.testing.assert_close(param.grad, g_rest[name], **tight, msg=name)


# ------------------------------------------------------------------------------------------- torch variant
def test_torch_variant_is_torch_spectral_norm_and_unchanged_construction():
    torch.manual_seed(5)
    d = SAGANDiscriminator(5, conv_dim=8, spectral_norm="torch")
    # the discriminator as built before the official variant existed: same modules, same random draws
    torch.manual_seed(5)
    sn = torch.nn.utils.parametrizations.spectral_norm
    ref = nn.Module()
    ref.input_norm = nn.BatchNorm2d(5)
    ref.convs = nn.ModuleList(sn(nn.Conv2d(c_in, c_out, 4, stride=2, padding=1))
                              for c_in, c_out in ((5, 8), (8, 16), (16, 32), (32, 64)))
    ref.attn1, ref.attn2, ref.last = SelfAttention(32), SelfAttention(64), nn.Conv2d(64, 1, 4)
    sd, sd_ref = d.state_dict(), ref.state_dict()
    assert sd.keys() == sd_ref.keys()
    assert all(torch.equal(sd[k], sd_ref[k]) for k in sd)
    # two forwards + one backward: identical outputs, buffers and gradients per conv
    for conv, conv_ref in zip(d.convs, ref.convs):
        assert type(conv.parametrizations.weight[0]) is type(conv_ref.parametrizations.weight[0])
        x1, x2 = torch.randn(2, conv.in_channels, 8, 8), torch.randn(2, conv.in_channels, 8, 8)
        a1, a2 = conv(x1), conv(x2)
        b1, b2 = conv_ref(x1), conv_ref(x2)
        (a1.square().sum() - a2.sum()).backward()
        (b1.square().sum() - b2.sum()).backward()
        assert torch.equal(a1, b1) and torch.equal(a2, b2)
        assert torch.equal(conv.parametrizations.weight.original.grad, conv_ref.parametrizations.weight.original.grad)
        assert torch.equal(conv.parametrizations.weight[0]._u, conv_ref.parametrizations.weight[0]._u)
        assert torch.equal(conv.parametrizations.weight[0]._v, conv_ref.parametrizations.weight[0]._v)


def test_variants_share_random_draws_and_state_dict_layout():
    torch.manual_seed(2)
    official = SAGANDiscriminator(5, conv_dim=8, spectral_norm="official")
    after_official = torch.rand(3)
    torch.manual_seed(2)
    other = SAGANDiscriminator(5, conv_dim=8, spectral_norm="torch")
    after_torch = torch.rand(3)
    assert torch.equal(after_official, after_torch), "the variants must consume the same random numbers"
    a, b = official.state_dict(), other.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        if k.endswith("._u") or k.endswith("._v"):
            assert not torch.equal(a[k], b[k]), k          # torch's warm-up iterations vs the official none
        else:
            assert torch.equal(a[k], b[k]), k
    official.load_state_dict(b)                            # checkpoints load across variants
    assert torch.equal(official.convs[0].parametrizations.weight[0]._u, other.convs[0].parametrizations.weight[0]._u)


@pytest.mark.parametrize("variant,order", [("official", ["fake", "real"]), ("torch", ["real", "fake"])])
def test_discriminator_step_forward_order(variant, order):
    torch.manual_seed(0)
    term = AdversarialTerm(4, conv_dim=4, spectral_norm=variant)
    s_logits, t_logits = torch.randn(2, 4, 16, 16), torch.randn(2, 4, 16, 16)
    term.generator_loss(s_logits, t_logits)
    seen: List[str] = []

    def hook(module: nn.Module, args: Tuple[Tensor, ...]) -> None:
        seen.append("fake" if torch.equal(args[0], s_logits) else "real" if torch.equal(args[0], t_logits) else "?")

    reference, flipped = copy.deepcopy(term.discriminator), copy.deepcopy(term.discriminator)
    term.discriminator.register_forward_pre_hook(hook)
    out = term.discriminator_step()
    assert seen == order
    # the reported loss is the hinge loss of the forwards in that order (each forward moves u, v)
    scores = {name: reference(s_logits if name == "fake" else t_logits) for name in order}
    assert torch.equal(out["adv_d"], hinge_d(scores["real"], scores["fake"]))
    if variant == "official":   # the order matters (torch's warmed-up vectors barely move: not asserted there)
        other = {name: flipped(s_logits if name == "fake" else t_logits) for name in reversed(order)}
        assert not torch.equal(out["adv_d"], hinge_d(other["real"], other["fake"]))


# ------------------------------------------------------------------------------------------- methods / defaults
@pytest.mark.parametrize("method", ["skd", "ifvd", "cwd"])
def test_paper_defaults_and_option(method):
    cls = METHODS.get(method)
    for dataset in PAPER_DATASETS:
        assert cls.paper_defaults(dataset)["method_options"]["d_spectral_norm"] == "official", dataset
    assert cls.paper_defaults("synthetic_streets")["method_options"]["d_spectral_norm"] == "torch"
    pair = PairSpec(num_classes=5, student_feature=8, teacher_feature=16, student_c4=12, teacher_c4=32)
    weights = cls.paper_defaults("cityscapes")["loss_weights"]
    module = build_distiller(method, pair, weights)                       # constructor default: official
    assert module.adversarial.spectral_norm == "official"
    assert isinstance(module.adversarial.discriminator.convs[0].parametrizations.weight[0], OfficialSpectralNorm)
    module = build_distiller(method, pair, weights, {"d_spectral_norm": "torch"})
    assert module.adversarial.spectral_norm == "torch"
    assert not isinstance(module.adversarial.discriminator.convs[0].parametrizations.weight[0], OfficialSpectralNorm)
    with pytest.raises(ValueError, match="spectral_norm"):
        build_distiller(method, pair, weights, {"d_spectral_norm": "sagan"})


# ------------------------------------------------------------------------------------------- end to end
def test_switch_changes_only_the_discriminator_in_a_tiny_skd_run(tiny_data_and_teacher, tmp_path):
    from kdlib.studies.notebook import parse_extra
    from kdlib.engine.config import resolve_config
    from kdlib.engine.trainer import train

    extra, teacher = tiny_data_and_teacher
    base = {**parse_extra(extra), "method": "skd", "teacher_checkpoint": str(teacher), "log_interval": 1}
    # synthetic_streets without the option: torch's variant (its committed proxy study's behaviour)
    assert resolve_config("quick", base).method_options["d_spectral_norm"] == "torch"
    assert resolve_config("cityscapes", {"method": "skd"}).method_options["d_spectral_norm"] == "official"
    runs = {}
    for variant in ("torch", "official"):
        # a narrow discriminator (d_conv_dim 8, not 64) keeps the runs at a few seconds
        cfg = resolve_config("quick", {**base, "run_dir": str(tmp_path / variant),
                                       "method_options": {"d_conv_dim": 8, "d_spectral_norm": variant}})
        assert cfg.method_options["d_spectral_norm"] == variant
        train(cfg, progress=False)
        log = [json.loads(line) for line in Path(tmp_path / variant, "log.jsonl").read_text().splitlines()]
        state = torch.load(tmp_path / variant / "checkpoint_last.pt", map_location="cpu",
                           weights_only=False)["step_module"]
        runs[variant] = ([r for r in log if "loss" in r], state)
    (log_t, st_t), (log_o, st_o) = runs["torch"], runs["official"]

    # iteration 1: the student's terms that do not involve D are equal; D's terms differ (other u, v)
    first_t, first_o = log_t[0], log_o[0]
    assert first_t["iteration"] == first_o["iteration"] == 1
    for term in ("ce", "aux_ce", "kd", "pairwise"):
        assert first_t[term] == first_o[term], term
    assert first_t["adv"] != first_o["adv"] and first_t["adv_d"] != first_o["adv_d"]

    # after the run: the same state_dict layout; the discriminator's weights have moved differently
    assert st_t.keys() == st_o.keys()
    d_weights = [k for k in st_t if "discriminator.convs" in k and k.endswith("original")]
    assert len(d_weights) == 4
    assert all(not torch.equal(st_t[k], st_o[k]) for k in d_weights)


def test_run_made_before_the_option_existed_is_still_reused(tmp_path):
    """A saved config.yaml without d_spectral_norm ran torch's spectral norm: it equals today's built-in
    default (reused), and differs from an explicit official request (refused)."""
    import yaml

    from kdlib.engine.config import resolve_config
    from kdlib.engine.rundir import config_changes

    cfg = resolve_config("quick", {"method": "skd", "teacher_checkpoint": "t", "run_dir": str(tmp_path)})
    assert cfg.method_options["d_spectral_norm"] == "torch"
    old = cfg.to_dict()
    old["method_options"] = {k: v for k, v in old["method_options"].items() if k != "d_spectral_norm"}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(old))
    assert config_changes(tmp_path, cfg.to_yaml()) == []
    official = resolve_config("quick", {"method": "skd", "teacher_checkpoint": "t", "run_dir": str(tmp_path),
                                        "method_options": {"d_spectral_norm": "official"}})
    assert config_changes(tmp_path, official.to_yaml()) == ["method_options"]
