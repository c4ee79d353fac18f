"""Properties every pure loss must have: fixed API, gradient routing, batch size 1, autocast, CUDA."""
import inspect

import pytest
import torch
import torch.nn.functional as F

import kdlib.losses
from kdlib.losses import functional as LF

K = 3


def rand(shape, seed, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g) * scale


def labels(B, seed, H=16, W=16):
    g = torch.Generator().manual_seed(seed)
    lab = torch.randint(0, K, (B, H, W), generator=g)
    lab[torch.rand((B, H, W), generator=g) < 0.2] = -1
    return lab


def unit(shape, seed):
    return F.normalize(rand(shape, seed), dim=-1)


# name -> (builder(B) -> (inputs, student keys, teacher/queue keys), call(inputs) -> tuple of scalars)
CASES = {
    "kd": (lambda B: ({"s": rand((B, 5, 4, 4), 1, 3), "t": rand((B, 5, 4, 4), 2, 3)}, ["s"], ["t"]),
           lambda x: (LF.kd_loss(x["s"], x["t"]),)),
    "cwd": (lambda B: ({"s": rand((B, 6, 4, 4), 3, 3), "t": rand((B, 6, 4, 4), 4, 3)}, ["s"], ["t"]),
            lambda x: (LF.cwd_loss(x["s"], x["t"], norm_channels=3),)),
    "skd": (lambda B: ({"s": rand((B, 4, 5, 5), 5), "t": rand((B, 6, 5, 5), 6)}, ["s"], ["t"]),
            lambda x: (LF.skd_pairwise_loss(x["s"], x["t"]),)),
    "ifvd": (lambda B: ({"s": rand((B, 4, 4, 4), 7), "t": rand((B, 6, 4, 4), 8)}, ["s"], ["t"]),
             lambda x: (LF.ifvd_loss(x["s"], x["t"], labels(x["s"].shape[0], 9), K),)),
    "at": (lambda B: ({"s": rand((B, 4, 4, 4), 10), "t": rand((B, 6, 4, 4), 11)}, ["s"], ["t"]),
           lambda x: (LF.at_loss(x["s"], x["t"]),)),
    "fitnet": (lambda B: ({"s": rand((B, 4, 4, 4), 12), "t": rand((B, 4, 4, 4), 13)}, ["s"], ["t"]),
               lambda x: (LF.fitnet_loss(x["s"], x["t"]),)),
    "cirkd_batch_p2p": (lambda B: ({"s": rand((B, 4, 4, 4), 14), "t": rand((B, 6, 4, 4), 15)}, ["s"], ["t"]),
                        lambda x: (LF.cirkd_batch_p2p_loss(x["s"], x["t"], group_size=2),)),
    "cirkd_memory": (lambda B: ({"s": rand((B, 8, 4, 4), 16), "t": rand((B, 8, 4, 4), 17),
                                 "pq": unit((K, 12, 8), 18), "rq": unit((K, 6, 8), 19)}, ["s"], ["t", "pq", "rq"]),
                     lambda x: LF.cirkd_memory_losses(x["s"], x["t"], labels(x["s"].shape[0], 20), x["pq"], x["rq"],
                                                      torch.tensor([3, 1, 8]), torch.tensor([5, 0]))),
    "afdcd_fd": (lambda B: ({"s": rand((B, 8, 4, 4), 21), "t": rand((B, 8, 4, 4), 22)}, ["s"], ["t"]),
                 lambda x: (LF.afdcd_fd_loss(x["s"], x["t"]),)),
    "afdcd_omni": (lambda B: ({"s": rand((B, 32, 18, 16), 23), "t": rand((B, 32, 18, 16), 24)}, ["s"], ["t"]),
                   lambda x: (LF.afdcd_omni_loss(x["s"], x["t"], groups=16, patch=2, pool=4),)),
    "afdcd_spatial": (lambda B: ({"s": rand((B, 8, 9, 8), 25), "t": rand((B, 8, 9, 8), 26)}, ["s"], ["t"]),
                      lambda x: (LF.afdcd_spatial_loss(x["s"], x["t"], patch=2, pool=2),)),
    "afdcd_channel": (lambda B: ({"s": rand((B, 8, 8, 8), 27), "t": rand((B, 8, 8, 8), 28)}, ["s"], ["t"]),
                      lambda x: (LF.afdcd_channel_loss(x["s"], x["t"], groups=4, pool=2),)),
}


# ------------------------------------------------------------------ API surface
EXPECTED_SIGNATURES = {
    "kd_loss": "(s_logits, t_logits, temperature=1.0)",
    "cwd_loss": "(s, t, temperature=4.0, norm_channels=None)",
    "skd_pairwise_loss": "(s_feat, t_feat)",
    "ifvd_loss": "(s_feat, t_feat, labels, num_classes, ignore_index=-1)",
    "at_loss": "(s_feat, t_feat)",
    "fitnet_loss": "(s_projected, t_feat)",
    "cirkd_batch_p2p_loss": "(s_feat, t_feat, tau=0.1, group_size=None)",
    "cirkd_memory_losses": "(s_emb, t_emb, labels, pixel_queue, region_queue, pixel_idx, region_idx, tau=0.1, "
                           "kd_temperature=1.0, ignore_index=-1)",
    "cirkd_enqueue": "(pixel_queue, region_queue, pixel_ptr, region_ptr, t_emb_normalised, labels_small, "
                     "pixel_choice, ignore_index=-1, pixels_per_class=16, pixel_queue_bug=False)",
    "afdcd_fd_loss": "(generated, t_feat)",
    "afdcd_omni_loss": "(s, t, groups=16, patch=4, pool=4, tau=0.07, similarity='l1', crop='topleft')",
    "afdcd_spatial_loss": "(s, t, patch=4, pool=4, tau=0.07, similarity='l1', crop='topleft')",
    "afdcd_channel_loss": "(s, t, groups=16, pool=4, tau=0.07, similarity='l1')",
}


def _plain_signature(fn):
    params = [p.replace(annotation=inspect.Parameter.empty) for p in inspect.signature(fn).parameters.values()]
    return str(inspect.Signature(params))


def test_functional_api_is_exactly_the_fixed_one():
    assert sorted(LF.__all__) == sorted(EXPECTED_SIGNATURES)
    assert kdlib.losses.functional is LF
    for name, sig in EXPECTED_SIGNATURES.items():
        fn = getattr(LF, name)
        assert _plain_signature(fn) == sig, name
        assert fn.__doc__ and len(fn.__doc__) > 200, name


# ------------------------------------------------------------------ gradient routing / purity
@pytest.mark.parametrize("name", sorted(CASES))
def test_gradient_reaches_the_student_only_and_teacher_is_untouched(name):
    build, call = CASES[name]
    x, student, teacher = build(2)
    for k in student:
        x[k].requires_grad_()
    for k in teacher:              # even grad-requiring teacher tensors / queues get no gradient
        x[k].requires_grad_()
    before = {k: x[k].detach().clone() for k in teacher}
    outs = call(x)
    for o in outs:
        assert o.dim() == 0 and torch.isfinite(o)
    sum(outs).backward()
    for k in student:
        assert x[k].grad is not None and torch.isfinite(x[k].grad).all() and x[k].grad.abs().sum() > 0
    for k in teacher:
        assert x[k].grad is None, k
        assert torch.equal(x[k].detach(), before[k]), k


@pytest.mark.parametrize("name", sorted(CASES))
def test_teacher_without_grad_and_deterministic(name):
    build, call = CASES[name]
    x, student, _ = build(2)
    for k in student:
        x[k].requires_grad_()
    a = call(x)
    b = call(x)
    for u, v in zip(a, b):
        assert torch.equal(u, v)
    sum(a).backward()
    assert all(x[k].grad is not None for k in student)


@pytest.mark.parametrize("name", sorted(CASES))
def test_batch_size_one(name):
    build, call = CASES[name]
    x, student, _ = build(1)
    for k in student:
        x[k].requires_grad_()
    outs = call(x)
    assert all(torch.isfinite(o) and o.dim() == 0 for o in outs)
    sum(outs).backward()
    assert all(torch.isfinite(x[k].grad).all() for k in student)


# ------------------------------------------------------------------ autocast
@pytest.mark.parametrize("name", sorted(CASES))
def test_autocast_bf16(name):
    build, call = CASES[name]
    x, student, teacher = build(2)
    ref = call(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        same = call(x)                                        # fp32 inputs: autocast must not touch the math
        low = {k: v.bfloat16() for k, v in x.items()}         # what a model run under autocast hands over
        for k in student:
            low[k].requires_grad_()
        got = call(low)
    rounded = call({k: v.float() for k, v in low.items()})
    for r, s_, g, rr in zip(ref, same, got, rounded):
        assert s_.dtype == torch.float32 and torch.equal(s_, r)
        assert g.dtype == torch.float32 and torch.isfinite(g)
        assert g.item() == pytest.approx(rr.item(), rel=1e-5, abs=1e-7)     # computed in fp32
        assert g.item() == pytest.approx(r.item(), rel=5e-2, abs=1e-4)      # bf16 inputs: close to fp32
    sum(got).backward()
    for k in student:
        assert low[k].grad is not None and low[k].grad.dtype == torch.bfloat16
        assert torch.isfinite(low[k].grad.float()).all()


def test_official_magnitudes_do_not_overflow_half():
    # Af-DCD logits are -L1 distances / 0.07 of 128-d unnormalised vectors: thousands; fd sums reach 1e5+.
    s, t = rand((2, 256, 16, 16), 30, 3), rand((2, 256, 16, 16), 31, 3)
    ref = LF.afdcd_omni_loss(s, t).item(), LF.afdcd_fd_loss(s, t).item()
    assert ref[0] > 100 and ref[1] > 65504     # beyond fp16 range
    got = LF.afdcd_omni_loss(s.half(), t.half()).item(), LF.afdcd_fd_loss(s.half(), t.half()).item()
    assert got[0] == pytest.approx(ref[0], rel=1e-2) and got[1] == pytest.approx(ref[1], rel=1e-2)


# ------------------------------------------------------------------ CUDA (runs where a GPU exists)
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("name", sorted(CASES))
def test_cuda_matches_cpu(name):
    build, call = CASES[name]
    x, student, _ = build(2)
    cpu = call(x)
    xc = {k: v.cuda() for k, v in x.items()}
    for k in student:
        xc[k].requires_grad_()
    with torch.autocast("cuda", dtype=torch.float16):
        gpu_amp = call({k: v.half() for k, v in xc.items()})
    gpu = call(xc)
    sum(gpu).backward()
    for c, g, a in zip(cpu, gpu, gpu_amp):
        assert g.is_cuda and g.item() == pytest.approx(c.item(), rel=1e-4, abs=1e-6)
        assert a.dtype == torch.float32 and torch.isfinite(a) and a.item() == pytest.approx(c.item(), rel=5e-2, abs=1e-3)
    assert all(torch.isfinite(xc[k].grad).all() for k in student)


@pytest.mark.parametrize("dim", [1, 2])
def test_l2_normalize_matches_f_normalize_values_and_gradients(dim):
    from kdlib.losses.common import l2_normalize

    x = torch.randn(2, 5, 3, 4, dtype=torch.float64)
    x[0, :, 1, 2] = 0.0                       # an all-zero vector along dim 1
    x[1, 3] = 0.0                             # ... and along dim 2
    a = x.clone().requires_grad_(True)
    b = x.clone().requires_grad_(True)
    w = torch.randn_like(x)
    ya, yb = l2_normalize(a, dim), torch.nn.functional.normalize(b, p=2, dim=dim)
    torch.testing.assert_close(ya, yb, rtol=1e-12, atol=1e-15)
    (ya * w).sum().backward()
    (yb * w).sum().backward()
    assert torch.isfinite(a.grad).all()
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-10, atol=1e-12)
    norms = ya.pow(2).sum(dim)
    assert ((norms - 1).abs() < 1e-12).sum() + (norms == 0).sum() == norms.numel()


def test_l2_normalize_half_precision_zero_vector_is_finite():
    from kdlib.losses.common import l2_normalize

    x = torch.zeros(1, 4, 2, 2, dtype=torch.bfloat16, requires_grad=True)
    y = l2_normalize(x, 1)
    y.sum().backward()
    assert torch.equal(y, torch.zeros_like(y)) and torch.isfinite(x.grad.float()).all()


@pytest.mark.parametrize("big", [1, 7, 33, 97, 360, 375, 512, 513, 1024, 1025])
def test_resize_labels_nearest_picks_the_pixels_torch_interpolate_picks(big):
    """The direct row / column pick gives exactly the labels of the official float-interpolate resize."""
    from kdlib.losses.common import resize_labels_nearest

    g = torch.Generator().manual_seed(big)
    for small in (1, 2, 5, 8, 31, 45, 64, 65, 69, 128, 129):
        lab = torch.randint(-1, 255, (2, big, 3), generator=g)
        official = F.interpolate(lab[:, None].float(), size=(small, 2), mode="nearest")[:, 0].long()
        assert torch.equal(resize_labels_nearest(lab, (small, 2)), official), (big, small)
        lab = torch.randint(-1, 255, (2, 4, big), generator=g)
        official = F.interpolate(lab[:, None].float(), size=(3, small), mode="nearest")[:, 0].long()
        assert torch.equal(resize_labels_nearest(lab, (3, small)), official), (big, small)


def test_resize_labels_nearest_keeps_top_left_pixels_of_8x8_cells():
    from kdlib.losses.common import resize_labels_nearest

    lab = torch.arange(16 * 24).reshape(1, 16, 24)
    out = resize_labels_nearest(lab, (2, 3))
    assert out.tolist() == [[[0, 8, 16], [8 * 24, 8 * 24 + 8, 8 * 24 + 16]]]
    assert out.dtype == torch.int64
