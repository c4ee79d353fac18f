"""KD, CWD, SKD, AT, FitNet: naive float64 references written from docs/reference.md §3.2 / §3.5 (loops, numpy only)."""
import math

import numpy as np
import pytest
import torch

from kdlib.losses.functional import at_loss, cwd_loss, fitnet_loss, kd_loss, skd_pairwise_loss

RTOL = 1e-6


def rand(shape, seed, scale=1.0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g, dtype=torch.float64) * scale).to(dtype)


def np64(x):
    return x.detach().to(torch.float64).numpy()


# ------------------------------------------------------------------ naive references
def softmax_vec(v):
    m = max(v)
    e = [math.exp(x - m) for x in v]
    z = sum(e)
    return [x / z for x in e]


def kl_vec(p_t, p_s):
    return sum(pt * (math.log(pt) - math.log(ps)) for pt, ps in zip(p_t, p_s) if pt > 0)


def ref_kd(s, t, T):
    s, t = np64(s), np64(t)
    B, K, h, w = s.shape
    total = 0.0
    for b in range(B):
        for i in range(h):
            for j in range(w):
                pt = softmax_vec([t[b, k, i, j] / T for k in range(K)])
                ps = softmax_vec([s[b, k, i, j] / T for k in range(K)])
                total += kl_vec(pt, ps)
    return total * T * T / (B * h * w)


def ref_cwd(s, t, T, norm_c=None):
    s, t = np64(s), np64(t)
    B, C, h, w = s.shape
    total = 0.0
    for b in range(B):
        for c in range(C):
            pt = softmax_vec([t[b, c, i, j] / T for i in range(h) for j in range(w)])
            ps = softmax_vec([s[b, c, i, j] / T for i in range(h) for j in range(w)])
            total += kl_vec(pt, ps)
    return total * T * T / (B * (C if norm_c is None else norm_c))


def maxpool2_ceil(x):
    B, C, h, w = x.shape
    ho, wo = -(-h // 2), -(-w // 2)
    out = np.empty((B, C, ho, wo))
    for b in range(B):
        for c in range(C):
            for oy in range(ho):
                for ox in range(wo):
                    out[b, c, oy, ox] = max(x[b, c, y, xx] for y in range(2 * oy, min(2 * oy + 2, h))
                                            for xx in range(2 * ox, min(2 * ox + 2, w)))
    return out


def ref_skd(s, t):
    s, t = maxpool2_ceil(np64(s)), maxpool2_ceil(np64(t))
    B, _, h, w = s.shape
    N = h * w

    def nodes(x, b):
        vs = []
        for i in range(h):
            for j in range(w):
                v = x[b, :, i, j]
                vs.append(v / max(math.sqrt(sum(v * v)), 1e-12))
        return vs

    total = 0.0
    for b in range(B):
        ns, nt = nodes(s, b), nodes(t, b)
        for m in range(N):
            for n in range(N):
                total += (float(ns[m] @ ns[n]) - float(nt[m] @ nt[n])) ** 2
    return total / (B * N * N)


def ref_at(s, t):
    s, t = np64(s), np64(t)
    B, _, h, w = s.shape

    def amap(x, b):
        a = [float(np.mean(x[b, :, i, j] ** 2)) for i in range(h) for j in range(w)]
        n = max(math.sqrt(sum(v * v for v in a)), 1e-12)
        return [v / n for v in a]

    total = 0.0
    for b in range(B):
        total += sum((u - v) ** 2 for u, v in zip(amap(s, b), amap(t, b)))
    return total / (B * h * w)


def ref_fitnet(s, t):
    d = (np64(s) - np64(t)).ravel()
    return float(sum(x * x for x in d)) / d.size


# ------------------------------------------------------------------ tests vs references
@pytest.mark.parametrize("T", [1.0, 4.0])
@pytest.mark.parametrize("B,h,w", [(2, 3, 5), (1, 4, 4)])
def test_kd_matches_reference(T, B, h, w):
    s, t = rand((B, 7, h, w), 1, 3.0), rand((B, 7, h, w), 2, 3.0)
    assert kd_loss(s, t, temperature=T).item() == pytest.approx(ref_kd(s, t, T), rel=RTOL)
    # float32 path (the production path) agrees to float32 accuracy
    assert kd_loss(s.float(), t.float(), T).item() == pytest.approx(ref_kd(s, t, T), rel=1e-5)


@pytest.mark.parametrize("norm_c", [None, 3])
@pytest.mark.parametrize("T", [1.0, 4.0])
def test_cwd_matches_reference(T, norm_c):
    s, t = rand((2, 6, 3, 4), 3, 2.0), rand((2, 6, 3, 4), 4, 2.0)
    got = cwd_loss(s, t, temperature=T, norm_channels=norm_c).item()
    assert got == pytest.approx(ref_cwd(s, t, T, norm_c), rel=RTOL)


def test_cwd_official_normaliser_is_a_rescaling():
    s, t = rand((2, 8, 3, 3), 5), rand((2, 8, 3, 3), 6)
    # official feature term: C read from the 4-channel student before its 4->8 connector => x2
    assert cwd_loss(s, t, norm_channels=4).item() == pytest.approx(2 * cwd_loss(s, t).item(), rel=1e-12)


@pytest.mark.parametrize("h,w", [(4, 6), (5, 7), (1, 3)])
def test_skd_matches_reference(h, w):
    s, t = rand((2, 5, h, w), 7), rand((2, 9, h, w), 8)   # widths may differ
    assert skd_pairwise_loss(s, t).item() == pytest.approx(ref_skd(s, t), rel=RTOL)


def test_at_matches_reference():
    s, t = rand((3, 4, 3, 5), 9), rand((3, 6, 3, 5), 10)
    assert at_loss(s, t).item() == pytest.approx(ref_at(s, t), rel=RTOL)


def test_at_gradient_matches_finite_differences():
    """AT's one-pass channel-mean-square backward against central differences (float64 gradcheck)."""
    s = rand((2, 3, 3, 4), 31).requires_grad_(True)
    t = rand((2, 5, 3, 4), 32)
    assert torch.autograd.gradcheck(lambda x: at_loss(x, t), (s,), eps=1e-6, atol=1e-8, rtol=1e-6)


def test_fitnet_matches_reference():
    s, t = rand((2, 4, 3, 5), 11), rand((2, 4, 3, 5), 12)
    assert fitnet_loss(s, t).item() == pytest.approx(ref_fitnet(s, t), rel=RTOL)


# ------------------------------------------------------------------ hand-checkable values
def test_identical_inputs_give_zero():
    x = rand((2, 5, 4, 6), 13, 3.0)
    for fn in (kd_loss, cwd_loss, skd_pairwise_loss, at_loss, fitnet_loss):
        assert fn(x, x.clone()).item() == pytest.approx(0.0, abs=1e-12), fn.__name__


def test_kd_two_class_hand_value():
    # one pixel, two classes: teacher (0, 0) -> p_t = (1/2, 1/2); student (ln 3, 0) -> p_s = (3/4, 1/4)
    s = torch.tensor([math.log(3.0), 0.0], dtype=torch.float64).view(1, 2, 1, 1)
    t = torch.zeros(1, 2, 1, 1, dtype=torch.float64)
    expected = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)
    assert kd_loss(s, t).item() == pytest.approx(expected, rel=1e-12)
    # temperature 2 on logits scaled by 2: same distributions, times T^2 = 4
    assert kd_loss(2 * s, t, temperature=2.0).item() == pytest.approx(4 * expected, rel=1e-12)


def test_kd_counts_every_pixel_in_the_mean():
    s, t = rand((1, 3, 2, 2), 14), rand((1, 3, 2, 2), 15)
    t2 = t.clone()
    t2[..., 1, :] = s[..., 1, :]    # half the pixels agree -> they add 0 but still count
    full = kd_loss(s, t).item()
    assert kd_loss(s, t2).item() == pytest.approx(kd_loss(s[..., :1, :], t[..., :1, :]).item() / 2, rel=1e-12)
    assert full > 0


def test_at_is_invariant_to_feature_scale():
    s, t = rand((2, 4, 3, 3), 16), rand((2, 4, 3, 3), 17)
    assert at_loss(5 * s, t).item() == pytest.approx(at_loss(s, t).item(), rel=1e-10)


def test_shape_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match="s_logits and t_logits"):
        kd_loss(torch.randn(1, 3, 4, 4), torch.randn(1, 3, 4, 5))
    with pytest.raises(ValueError):
        cwd_loss(torch.randn(1, 3, 4, 4), torch.randn(1, 4, 4, 4))
    with pytest.raises(ValueError):
        skd_pairwise_loss(torch.randn(1, 3, 4, 4), torch.randn(1, 3, 2, 4))
