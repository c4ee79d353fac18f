"""Af-DCD L_fd, Omni- / Spatial- / Channel-Contrasting: naive float64 references from docs/reference.md §3.4 (loops)."""
import math

import numpy as np
import pytest
import torch

from kdlib.losses.functional import afdcd_channel_loss, afdcd_fd_loss, afdcd_omni_loss, afdcd_spatial_loss

RTOL = 1e-6
SIMS = ["l1", "l2", "cosine"]


def rand(shape, seed, scale=1.0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g, dtype=torch.float64) * scale).to(dtype)


# ------------------------------------------------------------------ naive references
def sim_fn(kind):
    if kind == "l1":
        return lambda u, V: -np.abs(V - u).sum(axis=1)
    if kind == "l2":
        return lambda u, V: -np.sqrt(((V - u) ** 2).sum(axis=1))

    def cosine(u, V):
        nu = max(math.sqrt(float(u @ u)), 1e-8)
        nv = np.maximum(np.sqrt((V ** 2).sum(axis=1)), 1e-8)
        return (V @ u) / (nu * nv)
    return cosine


def ce_row(pos, negs, tau):
    """-log(exp(pos/tau) / (exp(pos/tau) + sum exp(negs/tau))), evaluated stably."""
    z = [pos / tau] + [v / tau for v in negs]
    m = max(z)
    return -(pos / tau) + m + math.log(sum(math.exp(v - m) for v in z))


def ref_pool(x, pool):
    if pool is None:
        return x
    B, C, h, w = x.shape
    ho, wo = h // pool, w // pool
    out = np.empty((B, C, ho, wo))
    for i in range(ho):
        for j in range(wo):
            out[:, :, i, j] = x[:, :, i * pool:(i + 1) * pool, j * pool:(j + 1) * pool].max(axis=(2, 3))
    return out


def prep(s, t, pool, patch):
    s, t = ref_pool(s.detach().double().numpy(), pool), ref_pool(t.detach().double().numpy(), pool)
    if patch is not None:
        h, w = s.shape[2] // patch * patch, s.shape[3] // patch * patch
        s, t = s[:, :, :h, :w], t[:, :, :h, :w]
    return s, t


def ref_omni(s, t, groups=16, patch=4, pool=4, tau=0.07, similarity="l1"):
    s, t = prep(s, t, pool, patch)
    B, C, h, w = s.shape
    cg, P, M = C // groups, patch, groups
    sim = sim_fn(similarity)
    total = 0.0
    for b in range(B):
        for py in range(h // P):
            for px in range(w // P):
                def sample(x, n, g):
                    iy, ix = divmod(n, P)
                    return x[b, g * cg:(g + 1) * cg, py * P + iy, px * P + ix]
                keys = [(n, g) for n in range(P * P) for g in range(M)]        # index n*M + g
                V = np.stack([sample(t, n, g) for n, g in keys])
                for (n, g) in keys:
                    sims = sim(sample(s, n, g), V)
                    pos = sims[n * M + g]
                    negs = [sims[k] for k, (n2, g2) in enumerate(keys) if g2 != g]   # any position
                    total += ce_row(pos, negs, tau)
    return total / (B * h * w)


def ref_spatial(s, t, patch=4, pool=4, tau=0.07, similarity="l1"):
    s, t = prep(s, t, pool, patch)
    B, C, h, w = s.shape
    P, sim = patch, sim_fn(similarity)
    total = 0.0
    for b in range(B):
        for py in range(h // P):
            for px in range(w // P):
                pix = [(py * P + iy, px * P + ix) for iy in range(P) for ix in range(P)]
                V = np.stack([t[b, :, y, x] for y, x in pix])
                for k, (y, x) in enumerate(pix):
                    sims = sim(s[b, :, y, x], V)
                    total += ce_row(sims[k], [sims[m] for m in range(len(pix)) if m != k], tau)
    return total / (B * h * w)


def ref_channel(s, t, groups=16, pool=4, tau=0.07, similarity="l1"):
    s, t = prep(s, t, pool, None)
    B, C, h, w = s.shape
    cg, sim = C // groups, sim_fn(similarity)
    total = 0.0
    for b in range(B):
        for y in range(h):
            for x in range(w):
                V = np.stack([t[b, g * cg:(g + 1) * cg, y, x] for g in range(groups)])
                for g in range(groups):
                    sims = sim(s[b, g * cg:(g + 1) * cg, y, x], V)
                    total += ce_row(sims[g], [sims[k] for k in range(groups) if k != g], tau)
    return total / (B * h * w)


def pair(shape, seed, noise=0.5):
    """Teacher and a correlated student (generated map ~ teacher + noise), like a trained generator."""
    t = rand(shape, seed)
    return t + noise * rand(shape, seed + 1), t


# ------------------------------------------------------------------ L_fd
def test_fd_matches_reference_and_zero():
    g, t = rand((3, 4, 2, 5), 1), rand((3, 4, 2, 5), 2)
    ref = float(((g.numpy() - t.numpy()) ** 2).sum()) / 3
    assert afdcd_fd_loss(g, t).item() == pytest.approx(ref, rel=RTOL)
    assert afdcd_fd_loss(t, t.clone()).item() == 0.0


# ------------------------------------------------------------------ OC vs reference
@pytest.mark.parametrize("similarity", SIMS)
def test_omni_matches_reference_small(similarity):
    s, t = pair((2, 8, 8, 8), 3)
    kw = dict(groups=4, patch=2, pool=2, tau=0.5, similarity=similarity)
    assert afdcd_omni_loss(s, t, **kw).item() == pytest.approx(ref_omni(s, t, **kw), rel=RTOL)


def test_omni_matches_reference_official_defaults():
    # official hyper-parameters: M = 16, 4x4 patch, 4x4 max-pool, tau 0.07, -L1
    s, t = pair((2, 32, 16, 16), 5, noise=0.1)
    got = afdcd_omni_loss(s, t).item()
    assert got == pytest.approx(ref_omni(s, t), rel=RTOL)
    assert afdcd_omni_loss(s.float(), t.float()).item() == pytest.approx(got, rel=1e-5)


@pytest.mark.parametrize("shape,patch", [((1, 4, 5, 7), 2), ((2, 6, 3, 3), 3)])
def test_omni_no_pool_and_crop(shape, patch):
    s, t = pair(shape, 7)
    kw = dict(groups=2, patch=patch, pool=None, tau=0.3)
    got = afdcd_omni_loss(s, t, **kw).item()
    assert got == pytest.approx(ref_omni(s, t, **kw), rel=RTOL)


def test_omni_topleft_crop_equals_explicit_crop_and_error_mode():
    s, t = pair((2, 4, 9, 10), 9)       # CamVid-like: not a multiple of the patch, no pooling
    kw = dict(groups=2, patch=4, pool=None)
    cropped = afdcd_omni_loss(s[..., :8, :8], t[..., :8, :8], **kw)
    assert afdcd_omni_loss(s, t, **kw).item() == pytest.approx(cropped.item(), rel=1e-12)
    with pytest.raises(ValueError, match="not a multiple of the 4x4 patch"):
        afdcd_omni_loss(s, t, crop="error", **kw)
    # with pooling: 18x16 -> pool 2 -> 9x8 -> crop 8x8 (top-left); error mode rejects it
    s2, t2 = pair((1, 4, 18, 16), 11)
    got = afdcd_omni_loss(s2, t2, groups=2, patch=4, pool=2).item()
    assert got == pytest.approx(ref_omni(s2, t2, groups=2, patch=4, pool=2), rel=RTOL)
    with pytest.raises(ValueError):
        afdcd_omni_loss(s2, t2, groups=2, patch=4, pool=2, crop="error")
    # a map that is not a multiple of the pool: floor pooling in 'topleft', error in 'error'
    s3, t3 = pair((1, 4, 17, 16), 13)
    exact = afdcd_omni_loss(s3[..., :16, :], t3[..., :16, :], groups=2, patch=4, pool=2).item()
    assert afdcd_omni_loss(s3, t3, groups=2, patch=4, pool=2).item() == pytest.approx(exact, rel=1e-12)
    with pytest.raises(ValueError, match="multiple of pool"):
        afdcd_omni_loss(s3, t3, groups=2, patch=4, pool=2, crop="error")
    afdcd_omni_loss(s3[..., :16, :], t3[..., :16, :], groups=2, patch=4, pool=2, crop="error")   # exact: fine


def test_omni_option_errors():
    s, t = pair((1, 6, 8, 8), 15)
    with pytest.raises(ValueError, match="divisible by groups"):
        afdcd_omni_loss(s, t, groups=4, patch=2, pool=None)
    with pytest.raises(ValueError, match="similarity"):
        afdcd_omni_loss(s, t, groups=2, patch=2, similarity="dot")
    with pytest.raises(ValueError, match="crop"):
        afdcd_omni_loss(s, t, groups=2, patch=2, crop="center")
    with pytest.raises(ValueError, match="smaller than one"):
        afdcd_omni_loss(s, t, groups=2, patch=4, pool=4)          # 8x8 -> 2x2 < one 4x4 patch


# ------------------------------------------------------------------ SC / CC vs reference
@pytest.mark.parametrize("similarity", SIMS)
def test_spatial_matches_reference(similarity):
    s, t = pair((2, 5, 8, 12), 17)
    kw = dict(patch=2, pool=2, tau=0.4, similarity=similarity)
    assert afdcd_spatial_loss(s, t, **kw).item() == pytest.approx(ref_spatial(s, t, **kw), rel=RTOL)


def test_spatial_crop_modes():
    s, t = pair((1, 3, 7, 6), 19)
    kw = dict(patch=3, pool=None, tau=0.2)
    assert afdcd_spatial_loss(s, t, **kw).item() == pytest.approx(ref_spatial(s, t, **kw), rel=RTOL)
    with pytest.raises(ValueError):
        afdcd_spatial_loss(s, t, crop="error", **kw)


@pytest.mark.parametrize("similarity", SIMS)
def test_channel_matches_reference(similarity):
    s, t = pair((2, 12, 9, 8), 21)       # 9 rows: floor pooling drops the last row, as official max-pool
    kw = dict(groups=4, pool=2, tau=0.3, similarity=similarity)
    assert afdcd_channel_loss(s, t, **kw).item() == pytest.approx(ref_channel(s, t, **kw), rel=RTOL)
    kw["pool"] = None
    assert afdcd_channel_loss(s, t, **kw).item() == pytest.approx(ref_channel(s, t, **kw), rel=RTOL)


# ------------------------------------------------------------------ hand-checkable values
def test_two_sample_hand_values():
    # one pixel, C = 2, two groups of one channel with values (0, 1), student = teacher, tau = 1:
    # each of the 2 rows: positive distance 0, one negative at L1 distance 1 -> log(1 + e^{-1})
    x = torch.tensor([0.0, 1.0], dtype=torch.float64).view(1, 2, 1, 1)
    two_rows = 2 * math.log1p(math.exp(-1.0))
    assert afdcd_omni_loss(x, x, groups=2, patch=1, pool=None, tau=1.0).item() == pytest.approx(two_rows, rel=1e-12)
    assert afdcd_channel_loss(x, x, groups=2, pool=None, tau=1.0).item() == pytest.approx(two_rows, rel=1e-12)
    # SC on a 2x2 patch of scalars 0, 1, 2, 3 (row-major): row n -> log sum_m e^{-|n - m|}; sum / (B h w = 4)
    y = torch.tensor([[0.0, 1.0], [2.0, 3.0]], dtype=torch.float64).view(1, 1, 2, 2)
    rows = [math.log(sum(math.exp(-abs(n - m)) for m in range(4))) for n in range(4)]
    assert afdcd_spatial_loss(y, y, patch=2, pool=None, tau=1.0).item() == pytest.approx(sum(rows) / 4, rel=1e-12)
    # tau scales the distances: tau = 0.5 doubles them
    assert afdcd_channel_loss(x, x, groups=2, pool=None, tau=0.5).item() == pytest.approx(
        2 * math.log1p(math.exp(-2.0)), rel=1e-12)


def test_omni_structure_facts():
    s, t = pair((1, 8, 4, 4), 23)
    # M = 1: every other teacher sample of the patch shares the group, so all are excluded (neither positive
    # nor negative) -> each row is the CE of a lone positive = 0. Including them would make the loss > 0.
    assert afdcd_omni_loss(s, t, groups=1, patch=2, pool=None).item() == pytest.approx(0.0, abs=1e-12)
    assert afdcd_spatial_loss(s, t, patch=2, pool=None).item() > 0
    # the released normalisation: sum over B*h'*w'*M rows / (B*h'*w') = M x mean row CE
    a = afdcd_omni_loss(s, t, groups=4, patch=2, pool=None).item()
    rows = 1 * 4 * 4 * 4
    mean_ce = ref_omni(s, t, groups=4, patch=2, pool=None, tau=0.07) * (4 * 4) / rows
    assert a == pytest.approx(4 * mean_ce, rel=RTOL)


def test_identical_maps_with_far_groups_reach_the_minimum():
    # student == teacher and groups far apart in L1: every positive wins -> loss ~ 0 (the known minimum)
    x = torch.zeros(1, 4, 2, 2, dtype=torch.float64)
    x[:, 2:] = 1000.0
    assert afdcd_omni_loss(x, x, groups=2, patch=2, pool=None).item() == pytest.approx(0.0, abs=1e-12)
    assert afdcd_channel_loss(x, x, groups=2, pool=None).item() == pytest.approx(0.0, abs=1e-12)
    y = torch.arange(4, dtype=torch.float64).view(1, 1, 2, 2) * 1000.0
    assert afdcd_spatial_loss(y, y, patch=2, pool=None).item() == pytest.approx(0.0, abs=1e-12)
