"""Regression tests for the fused KL / relation autograd functions (values AND gradients).

kd_loss, cwd_loss, cirkd_batch_p2p_loss and cirkd_memory_losses compute their gradient inside the forward pass
(``kdlib.losses.common._KLDivSumFused``, ``kdlib.losses.cirkd._BatchP2PKL`` / ``_MemoryKL``, row-blocked).
Here they are compared, in float64, with plain autograd through straightforward formulas, including the
row-blocked path (tiny block budget), the no-grad path, a non-unit upstream gradient, and gradcheck.
"""
import pytest
import torch
import torch.nn.functional as F

import kdlib.losses.cirkd as cirkd_module
from kdlib.losses.functional import cirkd_batch_p2p_loss, cirkd_memory_losses, cwd_loss, kd_loss


def rand(shape, seed, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g, dtype=torch.float64) * scale)


def plain_kl_sum(s, t, dim):
    return F.kl_div(F.log_softmax(s, dim), F.log_softmax(t, dim), reduction="sum", log_target=True)


def plain_p2p(s, t, tau, group):
    losses = []
    for g0 in range(0, s.shape[0], group):
        fs = F.normalize(s[g0:g0 + group], dim=1).flatten(2).transpose(1, 2)
        ft = F.normalize(t[g0:g0 + group], dim=1).flatten(2).transpose(1, 2)
        n, a = fs.shape[:2]
        tot = 0
        for i in range(n):
            for j in range(n):
                tot = tot + plain_kl_sum(fs[i] @ fs[j].T / tau, ft[i] @ ft[j].T / tau, 1) / a
        losses.append(tot / n ** 2)
    return torch.stack(losses).mean()


def plain_memory(s, t, labels, pq, rq, pi, ri, tau, tc):
    d = s.shape[1]
    lab = F.interpolate(labels[:, None].double(), size=s.shape[-2:], mode="nearest")[:, 0].long().reshape(-1)
    keep = lab != -1
    sh = F.normalize(s, dim=1).permute(0, 2, 3, 1).reshape(-1, d)[keep]
    th = F.normalize(t, dim=1).permute(0, 2, 3, 1).reshape(-1, d)[keep]
    out = []
    for q, idx in ((pq, pi), (rq, ri)):
        v = q[:, idx].reshape(-1, d)
        out.append(plain_kl_sum(sh @ v.T / tau / tc, th @ v.T / tau / tc, 1) * tc ** 2 / sh.shape[0])
    return out


def grads(fn, *leaves, upstream=1.0):
    xs = [x.detach().clone().requires_grad_(True) for x in leaves]
    val = fn(*xs)
    (val * upstream).backward()
    return val.detach(), [x.grad for x in xs]


@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_kd_and_cwd_value_and_gradient(temperature):
    s, t = rand((2, 5, 3, 4), 0, 3), rand((2, 5, 3, 4), 1, 3)
    v, (g,) = grads(lambda x: kd_loss(x, t, temperature), s, upstream=0.7)
    v_ref, (g_ref,) = grads(lambda x: plain_kl_sum(x / temperature, t / temperature, 1) * temperature ** 2 / 24,
                            s, upstream=0.7)
    torch.testing.assert_close(v, v_ref, rtol=1e-12, atol=0)
    torch.testing.assert_close(g, g_ref, rtol=1e-10, atol=1e-14)
    v, (g,) = grads(lambda x: cwd_loss(x, t, temperature, norm_channels=3), s)
    v_ref, (g_ref,) = grads(lambda x: plain_kl_sum(x.flatten(2) / temperature, t.flatten(2) / temperature, 2)
                            * temperature ** 2 / (2 * 3), s)
    torch.testing.assert_close(v, v_ref, rtol=1e-12, atol=0)
    torch.testing.assert_close(g, g_ref, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("block", [None, 1, 7])
@pytest.mark.parametrize("group", [2, 3])
def test_batch_p2p_value_and_gradient(monkeypatch, block, group):
    if block is not None:   # row blocks of 1 / 7 rows: exercises the blocked accumulation
        monkeypatch.setattr(cirkd_module, "_P2P_CHUNK_ELEMENTS", block * 20)
    s, t = rand((5, 4, 4, 5), 2), rand((5, 6, 4, 5), 3)
    v, (g,) = grads(lambda x: cirkd_batch_p2p_loss(x, t, 0.1, group), s, upstream=1.3)
    v_ref, (g_ref,) = grads(lambda x: plain_p2p(x, t, 0.1, group), s, upstream=1.3)
    torch.testing.assert_close(v, v_ref, rtol=1e-11, atol=0)
    torch.testing.assert_close(g, g_ref, rtol=1e-9, atol=1e-13)
    with torch.no_grad():
        assert cirkd_batch_p2p_loss(s, t, 0.1, group).item() == pytest.approx(v.item(), rel=1e-12)


@pytest.mark.parametrize("block", [None, 3])
def test_memory_value_and_gradient(monkeypatch, block):
    if block is not None:
        monkeypatch.setattr(cirkd_module, "_P2P_CHUNK_ELEMENTS", block * 9)
    k, d = 3, 8
    s, t = rand((2, d, 4, 4), 4), rand((2, d, 4, 4), 5)
    g = torch.Generator().manual_seed(6)
    labels = torch.randint(-1, k, (2, 8, 8), generator=g)
    pq, rq = F.normalize(rand((k, 10, d), 7), dim=2), F.normalize(rand((k, 5, d), 8), dim=2)
    pi, ri = torch.tensor([3, 1, 8]), torch.tensor([4, 0])
    for which in (0, 1):
        v, (gr,) = grads(lambda x: cirkd_memory_losses(x, t, labels, pq, rq, pi, ri, 0.1, 2.0)[which], s,
                         upstream=0.3)
        v_ref, (gr_ref,) = grads(lambda x: plain_memory(x, t, labels, pq, rq, pi, ri, 0.1, 2.0)[which], s,
                                 upstream=0.3)
        torch.testing.assert_close(v, v_ref, rtol=1e-11, atol=0)
        torch.testing.assert_close(gr, gr_ref, rtol=1e-9, atol=1e-13)


def test_fused_functions_pass_gradcheck():
    s, t = rand((2, 3, 2, 3), 9), rand((2, 4, 2, 3), 10)
    assert torch.autograd.gradcheck(lambda x: cirkd_batch_p2p_loss(x, t, 0.5, 2), (s.requires_grad_(),))
    z, zt = rand((2, 4, 2, 2), 11), rand((2, 4, 2, 2), 12)
    assert torch.autograd.gradcheck(lambda x: kd_loss(x, zt, 2.0), (z.requires_grad_(),))
