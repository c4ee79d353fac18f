"""CIRKD batch p2p and memory p2p / p2r: naive float64 references written from docs/reference.md §3.3 (loops)."""
import math

import numpy as np
import pytest
import torch

import kdlib.losses.cirkd as cirkd_module
from kdlib.losses.functional import cirkd_batch_p2p_loss, cirkd_memory_losses

RTOL = 1e-6


def rand(shape, seed, scale=1.0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g, dtype=torch.float64) * scale).to(dtype)


def rand_labels(shape, k, seed, p_ignore=0.25):
    g = np.random.default_rng(seed)
    lab = g.integers(0, k, size=shape)
    lab[g.random(shape) < p_ignore] = -1
    return torch.from_numpy(lab).long()


def unit_queue(k, n, d, seed):
    q = rand((k, n, d), seed)
    return q / q.norm(dim=-1, keepdim=True)


def softmax_vec(v):
    m = max(v)
    e = [math.exp(x - m) for x in v]
    z = sum(e)
    return [x / z for x in e]


def kl_vec(p_t, p_s):
    return sum(pt * (math.log(pt) - math.log(ps)) for pt, ps in zip(p_t, p_s) if pt > 0)


def pixel_vectors(x, b):
    """Pixel vectors of image b, raster order, each L2-normalised (eps 1e-12)."""
    _, _, h, w = x.shape
    out = []
    for i in range(h):
        for j in range(w):
            v = x[b, :, i, j]
            out.append(v / max(math.sqrt(float(v @ v)), 1e-12))
    return out


# ------------------------------------------------------------------ batch p2p reference
def ref_group_p2p(s, t, images, tau):
    total = 0.0
    for i in images:
        for j in images:
            si, sj, ti, tj = pixel_vectors(s, i), pixel_vectors(s, j), pixel_vectors(t, i), pixel_vectors(t, j)
            pair = 0.0
            for a in range(len(si)):
                ps = softmax_vec([float(si[a] @ sj[c]) / tau for c in range(len(sj))])
                pt = softmax_vec([float(ti[a] @ tj[c]) / tau for c in range(len(tj))])
                pair += kl_vec(pt, ps)
            total += pair / len(si)          # batchmean over the A rows
    return total / len(images) ** 2         # mean over the ordered pairs (self pairs included)


def ref_batch_p2p(s, t, tau=0.1, group_size=None):
    s, t = s.detach().double().numpy(), t.detach().double().numpy()
    B = s.shape[0]
    g = B if group_size is None else group_size
    groups = [list(range(k, min(k + g, B))) for k in range(0, B, g)]
    return sum(ref_group_p2p(s, t, grp, tau) for grp in groups) / len(groups)


@pytest.mark.parametrize("B,group_size", [(3, None), (1, None), (4, 2), (5, 2), (3, 1), (2, 7)])
def test_batch_p2p_matches_reference(B, group_size):
    s, t = rand((B, 5, 3, 4), 1), rand((B, 7, 3, 4), 2)      # student / teacher widths differ
    got = cirkd_batch_p2p_loss(s, t, tau=0.1, group_size=group_size).item()
    assert got == pytest.approx(ref_batch_p2p(s, t, 0.1, group_size), rel=RTOL)


def test_batch_p2p_float32_and_other_tau():
    s, t = rand((2, 6, 4, 4), 3), rand((2, 6, 4, 4), 4)
    ref = ref_batch_p2p(s, t, 0.5)
    assert cirkd_batch_p2p_loss(s.float(), t.float(), tau=0.5).item() == pytest.approx(ref, rel=1e-5)


def test_batch_p2p_chunked_path_equals_one_shot(monkeypatch):
    s, t = rand((4, 5, 3, 3), 5), rand((4, 6, 3, 3), 6)
    one_shot = cirkd_batch_p2p_loss(s, t, group_size=None)
    monkeypatch.setattr(cirkd_module, "_P2P_CHUNK_ELEMENTS", 1)      # one second image per chunk
    assert cirkd_batch_p2p_loss(s, t).item() == pytest.approx(one_shot.item(), rel=1e-12)
    assert cirkd_batch_p2p_loss(s, t, group_size=3).item() == pytest.approx(ref_batch_p2p(s, t, 0.1, 3), rel=RTOL)


def test_batch_p2p_is_invariant_to_image_permutation():
    s, t = rand((5, 4, 3, 3), 7), rand((5, 6, 3, 3), 8)
    perm = torch.tensor([3, 0, 4, 2, 1])
    base = cirkd_batch_p2p_loss(s, t).item()
    assert cirkd_batch_p2p_loss(s[perm], t[perm]).item() == pytest.approx(base, rel=1e-12)


def test_group_size_is_the_average_of_per_group_losses():
    s, t = rand((5, 4, 2, 3), 9), rand((5, 4, 2, 3), 10)
    per_group = [cirkd_batch_p2p_loss(s[a:b], t[a:b]) for a, b in ((0, 2), (2, 4), (4, 5))]
    expected = torch.stack(per_group).mean().item()
    assert cirkd_batch_p2p_loss(s, t, group_size=2).item() == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError):
        cirkd_batch_p2p_loss(s, t, group_size=0)


def test_batch_p2p_known_values():
    x = rand((3, 4, 2, 3), 11)
    assert cirkd_batch_p2p_loss(x, x.clone()).item() == pytest.approx(0.0, abs=1e-12)
    assert cirkd_batch_p2p_loss(x, 2 * x + 0).item() == pytest.approx(0.0, abs=1e-12)   # scale-free
    # B = 1, two pixels: student pixels e1, e2 -> S^S = I; teacher pixels e1, e1 -> S^T = ones.
    # each row: p_t = (1/2, 1/2), p_s = softmax((1, 0)/tau) -> KL = 1/(2 tau) - ln 2 + ln(1 + e^{-1/tau})
    s = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64).view(1, 2, 1, 2)
    t = torch.tensor([[1.0, 1.0], [0.0, 0.0]], dtype=torch.float64).view(1, 2, 1, 2)
    expected = 5.0 - math.log(2.0) + math.log1p(math.exp(-10.0))
    assert cirkd_batch_p2p_loss(s, t, tau=0.1).item() == pytest.approx(expected, rel=1e-12)


# ------------------------------------------------------------------ memory reference
def ref_memory(s_emb, t_emb, labels, pq, rq, pidx, ridx, tau=0.1, T=1.0, ignore_index=-1):
    s, t = s_emb.detach().double().numpy(), t_emb.detach().double().numpy()
    B, d, h, w = s.shape
    H, W = labels.shape[1:]
    lab = labels.numpy()
    anchors_s, anchors_t = [], []
    for b in range(B):
        vs, vt = pixel_vectors(s, b), pixel_vectors(t, b)
        for i in range(h):
            for j in range(w):
                y = lab[b, min(int(math.floor(i * H / h)), H - 1), min(int(math.floor(j * W / w)), W - 1)]
                if y != ignore_index:
                    anchors_s.append(vs[i * w + j])
                    anchors_t.append(vt[i * w + j])
    out = []
    for q, idx in ((pq.double().numpy(), pidx.tolist()), (rq.double().numpy(), ridx.tolist())):
        contrast = [q[c, k] for c in range(q.shape[0]) for k in idx]      # class-major
        total = 0.0
        for a_s, a_t in zip(anchors_s, anchors_t):
            ps = softmax_vec([float(a_s @ v) / tau / T for v in contrast])
            pt = softmax_vec([float(a_t @ v) / tau / T for v in contrast])
            total += kl_vec(pt, ps)
        out.append(T * T * total / len(anchors_s))
    return out


def memory_case(B=2, d=6, h=3, w=4, H=6, W=8, K=3, Np=10, Nr=5, seed=0):
    s, t = rand((B, d, h, w), seed + 1, 2.0), rand((B, d, h, w), seed + 2, 2.0)
    labels = rand_labels((B, H, W), K, seed + 3)
    pq, rq = unit_queue(K, Np, d, seed + 4), unit_queue(K, Nr, d, seed + 5)
    pidx = torch.tensor([7, 2, 5, 0])
    ridx = torch.tensor([4, 1])
    return s, t, labels, pq, rq, pidx, ridx


@pytest.mark.parametrize("tau,T", [(0.1, 1.0), (0.2, 2.0)])
@pytest.mark.parametrize("B,H,W", [(2, 6, 8), (1, 7, 9), (2, 3, 4)])
def test_memory_matches_reference(tau, T, B, H, W):
    s, t, _, pq, rq, pidx, ridx = memory_case(B=B)
    labels = rand_labels((B, H, W), 3, 42)
    p2p, p2r = cirkd_memory_losses(s, t, labels, pq, rq, pidx, ridx, tau=tau, kd_temperature=T)
    rp, rr = ref_memory(s, t, labels, pq, rq, pidx, ridx, tau, T)
    assert p2p.item() == pytest.approx(rp, rel=RTOL)
    assert p2r.item() == pytest.approx(rr, rel=RTOL)


def test_memory_float32_queues_and_custom_ignore():
    s, t, labels, pq, rq, pidx, ridx = memory_case(seed=10)
    labels[labels == -1] = 255
    p2p, p2r = cirkd_memory_losses(s.float(), t.float(), labels, pq.float(), rq.float(), pidx, ridx,
                                   ignore_index=255)
    rp, rr = ref_memory(s, t, labels, pq, rq, pidx, ridx, ignore_index=255)
    assert p2p.item() == pytest.approx(rp, rel=1e-5) and p2r.item() == pytest.approx(rr, rel=1e-5)


def test_memory_known_values():
    s, t, labels, pq, rq, pidx, ridx = memory_case(seed=20)
    p2p, p2r = cirkd_memory_losses(s, 3 * s, labels, pq, rq, pidx, ridx)    # same direction -> 0
    assert p2p.item() == pytest.approx(0.0, abs=1e-12) and p2r.item() == pytest.approx(0.0, abs=1e-12)
    # one anchor, d = 2, one class with two slots e1, e2; student e1, teacher e2 (tau = 1, T = 1):
    # p_s = softmax(1, 0), p_t = softmax(0, 1) -> KL = (2 sigma(1) - 1) * 1 where sigma = logistic
    q = torch.eye(2, dtype=torch.float64).view(1, 2, 2)
    s1 = torch.tensor([1.0, 0.0], dtype=torch.float64).view(1, 2, 1, 1)
    t1 = torch.tensor([0.0, 5.0], dtype=torch.float64).view(1, 2, 1, 1)
    sig = 1.0 / (1.0 + math.exp(-1.0))
    expected = (2 * sig - 1.0)
    p2p, p2r = cirkd_memory_losses(s1, t1, torch.zeros(1, 1, 1, dtype=torch.long), q, q,
                                   torch.tensor([0, 1]), torch.tensor([1, 0]), tau=1.0)
    assert p2p.item() == pytest.approx(expected, rel=1e-12) and p2r.item() == pytest.approx(expected, rel=1e-12)


def test_memory_all_ignored_is_a_graph_connected_zero():
    s, t, labels, pq, rq, pidx, ridx = memory_case(seed=30)
    s.requires_grad_()
    p2p, p2r = cirkd_memory_losses(s, t, torch.full_like(labels, -1), pq, rq, pidx, ridx)
    assert p2p.item() == 0.0 and p2r.item() == 0.0
    assert p2p.requires_grad and p2r.requires_grad
    (p2p + p2r).backward()
    assert s.grad is not None and torch.count_nonzero(s.grad) == 0


def test_memory_gradients_and_no_queue_change():
    s, t, labels, pq, rq, pidx, ridx = memory_case(seed=40)
    s.requires_grad_()
    t.requires_grad_()        # even a grad-requiring teacher / queue gets no gradient
    pq.requires_grad_()
    before = [x.detach().clone() for x in (t, pq, rq)]
    p2p, p2r = cirkd_memory_losses(s, t, labels, pq, rq, pidx, ridx)
    (p2p + p2r).backward()
    assert torch.isfinite(s.grad).all() and s.grad.abs().sum() > 0
    assert t.grad is None and pq.grad is None
    for x, y in zip((t, pq, rq), before):
        assert torch.equal(x.detach(), y)


def test_memory_shape_errors():
    s, t, labels, pq, rq, pidx, ridx = memory_case(seed=50)
    with pytest.raises(ValueError, match="pixel_queue"):
        cirkd_memory_losses(s, t, labels, pq[..., :3], rq, pidx, ridx)
    with pytest.raises(ValueError, match="labels"):
        cirkd_memory_losses(s, t, labels[0], pq, rq, pidx, ridx)
