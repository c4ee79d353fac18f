"""IFVD: naive float64 reference written from docs/reference.md §3.5 (per image, per class, per pixel loops)."""
import math

import numpy as np
import pytest
import torch

from kdlib.losses.functional import ifvd_loss

RTOL = 1e-6


def rand(shape, seed, scale=1.0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g, dtype=torch.float64) * scale).to(dtype)


def rand_labels(shape, k, seed, p_ignore=0.2):
    g = np.random.default_rng(seed)
    lab = g.integers(0, k, size=shape)
    lab[g.random(shape) < p_ignore] = -1
    return torch.from_numpy(lab).long()


def nearest_resize(lab, h, w):
    """PyTorch 'nearest': source index floor(dst * in / out)."""
    B, H, W = lab.shape
    out = np.empty((B, h, w), dtype=np.int64)
    for b in range(B):
        for i in range(h):
            for j in range(w):
                out[b, i, j] = lab[b, min(int(math.floor(i * H / h)), H - 1), min(int(math.floor(j * W / w)), W - 1)]
    return out


def cos(u, v, eps=1e-8):
    return float(u @ v) / (max(math.sqrt(float(u @ u)), eps) * max(math.sqrt(float(v @ v)), eps))


def ref_ifv(f, lab, K):
    B, C, h, w = f.shape
    out = np.empty((B, h, w))
    for b in range(B):
        protos = {}
        for c in range(K):
            acc, n = np.zeros(C), 0
            for i in range(h):
                for j in range(w):
                    if lab[b, i, j] == c:
                        acc += f[b, :, i, j]
                        n += 1
            protos[c] = acc / (n + 1e-6)
        for i in range(h):
            for j in range(w):
                c = lab[b, i, j]
                centre = protos[c] if 0 <= c < K else f[b, :, i, j]
                out[b, i, j] = cos(f[b, :, i, j], centre)
    return out


def ref_ifvd(s, t, labels, K, ignore_index=-1):
    s, t = s.detach().double().numpy(), t.detach().double().numpy()
    lab = nearest_resize(labels.numpy(), s.shape[2], s.shape[3])
    lab = np.where(lab == ignore_index, -1, lab)
    d = ref_ifv(s, lab, K) - ref_ifv(t, lab, K)
    return float((d ** 2).sum()) / d.size


@pytest.mark.parametrize("B,H,W,h,w", [(2, 8, 12, 4, 6), (1, 13, 9, 5, 4), (2, 5, 5, 5, 5)])
def test_ifvd_matches_reference(B, H, W, h, w):
    K = 4
    s, t = rand((B, 6, h, w), 1), rand((B, 10, h, w), 2)
    labels = rand_labels((B, H, W), K, 3)
    got = ifvd_loss(s, t, labels, num_classes=K).item()
    assert got == pytest.approx(ref_ifvd(s, t, labels, K), rel=RTOL)
    assert ifvd_loss(s.float(), t.float(), labels, K).item() == pytest.approx(got, rel=1e-4)


def test_labels_outside_the_classes_and_custom_ignore():
    K = 3
    s, t = rand((2, 4, 4, 4), 4), rand((2, 4, 4, 4), 5)
    labels = rand_labels((2, 4, 4), K + 2, 6)           # values 3, 4 are outside [0, K): compared with self
    labels[labels == -1] = 255
    got = ifvd_loss(s, t, labels, K, ignore_index=255).item()
    assert got == pytest.approx(ref_ifvd(s, t, labels, K, ignore_index=255), rel=RTOL)


def test_identical_features_give_zero():
    x = rand((2, 5, 4, 4), 7)
    assert ifvd_loss(x, x.clone(), rand_labels((2, 8, 8), 3, 8), 3).item() == pytest.approx(0.0, abs=1e-14)


def test_ignore_pixels_count_in_the_mean_with_zero_contribution():
    K = 2
    s, t = rand((1, 3, 2, 2), 9), rand((1, 3, 2, 2), 10)
    labels = torch.tensor([[[0, 0], [1, 1]]])
    labels_half = torch.tensor([[[0, 0], [-1, -1]]])
    full_top = ifvd_loss(s[..., :1, :], t[..., :1, :], labels[..., :1, :], K).item()
    assert ifvd_loss(s, t, labels_half, K).item() == pytest.approx(full_top / 2, rel=1e-12)


def test_one_pixel_class_hand_value():
    # a class with one pixel: prototype = f / (1 + 1e-6) -> cosine exactly 1 for S and T -> loss 0;
    # with two pixels the prototype is their mean: cos(e1, (e1 + e2)/2) = 1/sqrt(2)
    s = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64).view(1, 2, 1, 2)  # pixels e1, e2
    t = torch.tensor([[1.0, 1.0], [0.0, 0.0]], dtype=torch.float64).view(1, 2, 1, 2)  # pixels e1, e1
    labels = torch.zeros(1, 1, 2, dtype=torch.long)
    expected = (1 / math.sqrt(2) - 1.0) ** 2     # both pixels: IFV^S = 1/sqrt(2), IFV^T = 1
    assert ifvd_loss(s, t, labels, 1).item() == pytest.approx(expected, rel=1e-6)
    assert ifvd_loss(s, t, torch.tensor([[[0, 1]]]), 2).item() == pytest.approx(0.0, abs=1e-12)


def test_all_pixels_ignored_is_a_graph_connected_zero():
    s = rand((2, 4, 3, 3), 11).requires_grad_()
    loss = ifvd_loss(s, rand((2, 4, 3, 3), 12), torch.full((2, 6, 6), -1), 3)
    assert loss.item() == pytest.approx(0.0, abs=1e-12) and loss.requires_grad  # cos(f, f) = 1 to rounding
    loss.backward()
    assert s.grad is not None and torch.isfinite(s.grad).all()
