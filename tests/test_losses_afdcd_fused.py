"""Regression tests for the fused Af-DCD contrastive losses (values AND gradients).

afdcd_omni_loss / afdcd_spatial_loss / afdcd_channel_loss form their gradient inside the forward pass
(``kdlib.losses.afdcd._PatchContrast``, blocks of patches through reused buffers) and pool the detached teacher
map with strided max-reductions (``_max_pool_constant``). Here they are compared, in float64, with plain autograd
through straightforward formulas (explicit pairwise similarities, -inf mask, logsumexp), including the blocked
path (tiny block budget), the no-grad path, a non-unit upstream gradient, and gradcheck.
"""
import pytest
import torch
import torch.nn.functional as F

import kdlib.losses.afdcd as afdcd_module
from kdlib.losses.functional import afdcd_channel_loss, afdcd_omni_loss, afdcd_spatial_loss


def rand(shape, seed, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=torch.float64) * scale


def plain_sim(a, b, kind):
    diff = a[..., :, None, :] - b[..., None, :, :]
    if kind == "l1":
        return -diff.abs().sum(-1)
    if kind == "l2":
        return -diff.pow(2).sum(-1).sqrt()
    an = a / a.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    bn = b / b.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    return (an[..., :, None, :] * bn[..., None, :, :]).sum(-1)


def plain_ce_sum(sim, tau, valid=None):
    logits = sim / tau
    pos = logits.diagonal(dim1=-2, dim2=-1)
    if valid is not None:
        logits = logits.masked_fill(~valid, float("-inf"))
    return (torch.logsumexp(logits, -1) - pos).sum()


def plain_pool_crop(s, t, pool, patch):
    if pool:
        s, t = F.max_pool2d(s, pool), F.max_pool2d(t, pool)
    h, w = (s.shape[2] // patch) * patch, (s.shape[3] // patch) * patch
    return s[:, :, :h, :w], t[:, :, :h, :w]


def patch_samples(x, patch, groups):
    b, c, h, w = x.shape
    x = x.reshape(b, groups, c // groups, h // patch, patch, w // patch, patch).permute(0, 3, 5, 4, 6, 1, 2)
    return x.reshape(-1, patch * patch * groups, c // groups)


def plain_omni(s, t, groups, patch, pool, tau, kind):
    s, t = plain_pool_crop(s, t, pool, patch)
    b, _, h, w = s.shape
    g = torch.arange(patch * patch * groups) % groups
    valid = (g[:, None] != g[None, :]) | torch.eye(g.numel(), dtype=torch.bool)
    sim = plain_sim(patch_samples(s, patch, groups), patch_samples(t, patch, groups), kind)
    return plain_ce_sum(sim, tau, valid) / (b * h * w)


def plain_spatial(s, t, patch, pool, tau, kind):
    s, t = plain_pool_crop(s, t, pool, patch)
    b, _, h, w = s.shape
    sim = plain_sim(patch_samples(s, patch, 1), patch_samples(t, patch, 1), kind)
    return plain_ce_sum(sim, tau) / (b * h * w)


def plain_channel(s, t, groups, pool, tau, kind):
    if pool:
        s, t = F.max_pool2d(s, pool), F.max_pool2d(t, pool)
    b, c, h, w = s.shape

    def samples(x):
        return x.reshape(b, groups, c // groups, h * w).permute(0, 3, 1, 2).reshape(b * h * w, groups, -1)

    return plain_ce_sum(plain_sim(samples(s), samples(t), kind), tau) / (b * h * w)


def grads(fn, s, t, upstream=1.0):
    x = s.detach().clone().requires_grad_(True)
    val = fn(x, t)
    (val * upstream).backward()
    return val.detach(), x.grad


CASES = {
    "omni": (lambda s, t, k: afdcd_omni_loss(s, t, 4, 2, 2, 0.3, k),
             lambda s, t, k: plain_omni(s, t, 4, 2, 2, 0.3, k)),
    "omni_crop_nopool": (lambda s, t, k: afdcd_omni_loss(s, t, 2, 2, None, 0.2, k),
                         lambda s, t, k: plain_omni(s, t, 2, 2, None, 0.2, k)),
    "spatial": (lambda s, t, k: afdcd_spatial_loss(s, t, 2, 2, 0.3, k),
                lambda s, t, k: plain_spatial(s, t, 2, 2, 0.3, k)),
    "channel": (lambda s, t, k: afdcd_channel_loss(s, t, 4, 2, 0.3, k),
                lambda s, t, k: plain_channel(s, t, 4, 2, 0.3, k)),
}


@pytest.mark.parametrize("block", [None, 1, 100])
@pytest.mark.parametrize("kind", ["l1", "l2", "cosine"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_contrast_value_and_gradient(monkeypatch, case, kind, block):
    if block is not None:   # tiny CPU block budget: one or a few patches per block
        monkeypatch.setattr(afdcd_module, "_CPU_BLOCK_ELEMENTS", block)
    fused, plain = CASES[case]
    shape = (2, 8, 9, 10) if case == "omni_crop_nopool" else (2, 8, 9, 8)   # odd sizes: floor pool / crop
    s, t = rand(shape, 0, 2.0), torch.relu(rand(shape, 1, 2.0))         # teacher with ties (zeros)
    v, g = grads(lambda x, y: fused(x, y, kind), s, t, upstream=1.7)
    v_ref, g_ref = grads(lambda x, y: plain(x, y, kind), s, t, upstream=1.7)
    torch.testing.assert_close(v, v_ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(g, g_ref, rtol=1e-9, atol=1e-12)
    with torch.no_grad():
        torch.testing.assert_close(fused(s, t, kind), v_ref, rtol=1e-10, atol=1e-12)


def test_float32_close_to_float64_truth():
    # official shapes in miniature (tau 0.07, l1); float32 fused vs float64 plain autograd: at least as close as
    # float32 plain autograd is
    s, t = rand((2, 32, 16, 16), 2, 3.0), rand((2, 32, 16, 16), 3, 3.0)
    fused = lambda x, y: afdcd_omni_loss(x, y, 4, 4, 2, 0.07, "l1")         # noqa: E731
    plain = lambda x, y: plain_omni(x, y, 4, 4, 2, 0.07, "l1")              # noqa: E731
    v_true, g_true = grads(plain, s, t)
    v, g = grads(fused, s.float(), t.float())
    v32, g32 = grads(plain, s.float(), t.float())
    assert (v.double() - v_true).abs() <= max((v32.double() - v_true).abs().item(), 1e-6)
    assert (g.double() - g_true).abs().max() <= 1.5 * (g32.double() - g_true).abs().max() + 1e-7


@pytest.mark.parametrize("kind", ["l1", "l2", "cosine"])
def test_contrast_gradcheck(monkeypatch, kind):
    monkeypatch.setattr(afdcd_module, "_CPU_BLOCK_ELEMENTS", 40)   # several blocks
    t = rand((1, 4, 4, 4), 5)
    for fn in (lambda x: afdcd_omni_loss(x, t, 2, 2, None, 0.5, kind),
               lambda x: afdcd_spatial_loss(x, t, 2, None, 0.5, kind),
               lambda x: afdcd_channel_loss(x, t, 2, None, 0.5, kind)):
        assert torch.autograd.gradcheck(fn, (rand((1, 4, 4, 4), 6).requires_grad_(),))


def test_teacher_pool_matches_max_pool2d():
    x = torch.relu(rand((2, 3, 13, 18), 7)).float()                       # ties, floor-mode remainder
    for pool in (2, 3, 4):
        assert torch.equal(afdcd_module._max_pool_constant(x, pool), F.max_pool2d(x, pool))
