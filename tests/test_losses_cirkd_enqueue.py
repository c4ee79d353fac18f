"""CIRKD queue enqueue: vectorised helper vs a naive per-image, per-class loop written from docs/reference.md §3.3."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from kdlib.losses.functional import cirkd_enqueue


def naive_enqueue(pq, rq, pptr, rptr, emb, lab, keys, ignore=-1, per_class=16, bug=False):
    """Sequential reference (numpy float64): official loop order, choice by smallest random key."""
    pq, rq, pptr, rptr = pq.copy(), rq.copy(), pptr.copy(), rptr.copy()
    K, Np, d = pq.shape
    Nr = rq.shape[1]
    B = emb.shape[0]
    for b in range(B):
        feat = emb[b].reshape(d, -1)
        feat = feat / np.maximum(np.linalg.norm(feat, axis=0, keepdims=True), 1e-12)
        y = lab[b].reshape(-1)
        key = keys[b].reshape(-1)
        for c in sorted(set(y.tolist())):
            if c == ignore or not 0 <= c < K:
                continue
            idxs = [a for a in range(y.size) if y[a] == c]
            mean = feat[:, idxs].mean(axis=1)
            rq[c, rptr[c]] = mean / max(np.linalg.norm(mean), 1e-12)
            rptr[c] = (rptr[c] + 1) % Nr
            n = len(idxs)
            k = min(n, per_class)
            candidates = list(range(n)) if bug else idxs
            picked = sorted(candidates, key=lambda a: key[a])[:k]
            vec = feat[:, picked].T
            vec = vec / np.maximum(np.linalg.norm(vec, axis=1, keepdims=True), 1e-12)
            p = pptr[c]
            if p + k >= Np:
                pq[c, Np - k:] = vec
                pptr[c] = 0
            else:
                pq[c, p:p + k] = vec
                pptr[c] = (p + k) % Np
    return pq, rq, pptr, rptr


def make(B, K, Np, Nr, d, h, w, seed, p_ignore=0.2, extra_label=False):
    rng = np.random.default_rng(seed)
    pq = rng.standard_normal((K, Np, d))
    pq /= np.linalg.norm(pq, axis=2, keepdims=True)
    rq = rng.standard_normal((K, Nr, d))
    rq /= np.linalg.norm(rq, axis=2, keepdims=True)
    emb = rng.standard_normal((B, d, h, w))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    # skewed class frequencies so that some classes have < 16 pixels and some have many
    lab = rng.choice(K + (1 if extra_label else 0), size=(B, h, w),
                     p=np.r_[np.linspace(1, 0.1, K + (1 if extra_label else 0))] /
                     np.linspace(1, 0.1, K + (1 if extra_label else 0)).sum())
    lab[rng.random((B, h, w)) < p_ignore] = -1
    keys = rng.random((B, h, w))
    pptr = rng.integers(0, Np, size=K)
    rptr = rng.integers(0, Nr, size=K)
    return pq, rq, pptr, rptr, emb, lab, keys


def run_both(case, **kw):
    pq, rq, pptr, rptr, emb, lab, keys = case
    ref = naive_enqueue(pq, rq, pptr, rptr, emb, lab, keys, **kw)
    t = [torch.from_numpy(x) for x in (pq, rq, pptr, rptr, emb, lab, keys)]
    tq, tr, tpp, trp = t[0].clone(), t[1].clone(), t[2].clone(), t[3].clone()
    cirkd_enqueue(tq, tr, tpp, trp, t[4], t[5], t[6], ignore_index=kw.get("ignore", -1),
                  pixels_per_class=kw.get("per_class", 16), pixel_queue_bug=kw.get("bug", False))
    return ref, (tq.numpy(), tr.numpy(), tpp.numpy(), trp.numpy())


@pytest.mark.parametrize("bug", [False, True])
@pytest.mark.parametrize("B,K,Np,Nr,h,w,seed", [
    (3, 4, 200, 10, 8, 8, 0),       # big queues: no pointer reset
    (4, 3, 40, 3, 8, 8, 1),         # resets, same-call overwrites, more images than region slots
    (5, 3, 17, 2, 6, 7, 2),         # several resets per call (N_p < 16 * B)
    (1, 5, 16, 4, 5, 5, 3),         # batch size 1, N_p == 16: every full write resets
])
def test_enqueue_matches_sequential_reference(bug, B, K, Np, Nr, h, w, seed):
    ref, got = run_both(make(B, K, Np, Nr, 6, h, w, seed), bug=bug)
    for r, g, name in zip(ref, got, ("pixel_queue", "region_queue", "pixel_ptr", "region_ptr")):
        np.testing.assert_allclose(g, r, rtol=1e-10, atol=1e-12, err_msg=name)


def test_enqueue_other_options():
    case = make(2, 3, 30, 5, 4, 6, 6, 7, extra_label=True)     # label 3 (== K) is skipped like ignore
    pq, rq, pptr, rptr, emb, lab, keys = case
    lab = np.where(lab == -1, 255, lab)
    ref, got = run_both((pq, rq, pptr, rptr, emb, lab, keys), ignore=255, per_class=3)
    for r, g in zip(ref, got):
        np.testing.assert_allclose(g, r, rtol=1e-10, atol=1e-12)


def test_official_bug_reads_the_first_raster_positions():
    # docs/reference.md §3.3: class 2 at positions {54, 55, 62, 63} of an 8x8 map -> the bug enqueues positions {0, 1, 2, 3}
    d = 64
    emb = torch.eye(d).view(1, d, 8, 8).double()           # embedding of position a = one-hot e_a
    lab = torch.full((1, 8, 8), 0, dtype=torch.long)
    lab.view(-1)[[54, 55, 62, 63]] = 2
    keys = torch.rand(1, 8, 8, generator=torch.Generator().manual_seed(0)).double()
    for bug, expected in ((True, {0, 1, 2, 3}), (False, {54, 55, 62, 63})):
        pq = torch.zeros(3, 32, d, dtype=torch.float64)
        rq = torch.zeros(3, 4, d, dtype=torch.float64)
        pptr, rptr = torch.zeros(3, dtype=torch.long), torch.zeros(3, dtype=torch.long)
        cirkd_enqueue(pq, rq, pptr, rptr, emb, lab, keys, pixel_queue_bug=bug)
        assert set(pq[2, :4].argmax(dim=1).tolist()) == expected
        assert pptr.tolist() == [16, 0, 4] and rptr.tolist() == [1, 0, 1]
        # the region queue is correct in both modes: the mean of the four one-hots, normalised
        assert torch.allclose(rq[2, 0], F.normalize(emb.view(d, -1)[:, [54, 55, 62, 63]].mean(1), dim=0))


def test_enqueue_does_not_track_gradients():
    pq = F.normalize(torch.randn(2, 20, 4), dim=-1)
    rq = F.normalize(torch.randn(2, 5, 4), dim=-1)
    emb = torch.randn(1, 4, 3, 3, requires_grad=True)
    cirkd_enqueue(pq, rq, torch.zeros(2, dtype=torch.long), torch.zeros(2, dtype=torch.long), emb,
                  torch.zeros(1, 3, 3, dtype=torch.long), torch.rand(1, 3, 3))
    assert not pq.requires_grad and not rq.requires_grad


def test_duplicate_slots_keep_only_the_latest_write():
    # index_put_ with duplicate indices is undefined on CUDA: the helper must leave exactly one (the latest)
    from kdlib.losses.cirkd import _last_write_wins
    rows = torch.tensor([0, 0, 1, 0, 1, 0])
    cols = torch.tensor([3, 4, 3, 3, 3, 5])
    order = torch.tensor([0, 1, 2, 5, 3, 4])
    assert _last_write_wins(rows, cols, order, 10).tolist() == [False, True, False, True, True, True]
