"""Registered method modules (kdlib.methods): building from paper_defaults, enabled terms, gradients, values
against the pure functions with the same random choices, CIRKD queues, Af-DCD masks, the SKD discriminator hook.

Tiny shapes; CPU; the whole file runs in well under a minute on one core.
"""
from __future__ import annotations

import copy
import json
import sys

import pytest
import torch
import torch.nn.functional as F

import kdlib.methods
from kdlib.losses import functional as Fn
from kdlib.methods import DistillLoss, PairSpec, build_distiller
from kdlib.methods.adversarial import SAGANDiscriminator
from kdlib.models.output import SegOutput
from kdlib.registry import METHODS as REGISTRY

METHODS = tuple(REGISTRY.names())   # every registered method: the generic tests are driven by its declarations
DATASETS = ("cityscapes", "camvid", "voc", "ade20k", "coco_stuff_164k", "synthetic_streets")
K = 5
PAIR = PairSpec(num_classes=K, student_feature=8, teacher_feature=16, student_c4=12, teacher_c4=32)
B, H, W = 2, 16, 16


def outputs(seed: int = 0, b: int = B, h: int = H, w: int = W, pair: PairSpec = PAIR):
    """(student, teacher, labels): leaf tensors that require grad (teacher too, to check none reaches it)."""
    g = torch.Generator().manual_seed(seed)

    def t(*shape):
        return torch.randn(*shape, generator=g).requires_grad_(True)

    student = SegOutput(t(b, pair.num_classes, h, w), t(b, pair.num_classes, h, w), t(b, pair.student_c4, h, w),
                        t(b, pair.student_feature, h, w))
    teacher = SegOutput(t(b, pair.num_classes, h, w), t(b, pair.num_classes, h, w), t(b, pair.teacher_c4, h, w),
                        t(b, pair.teacher_feature, h, w))
    labels = torch.randint(-1, pair.num_classes, (b, 4 * h, 4 * w), generator=g)
    return student, teacher, labels


def build(method: str, dataset: str = "cityscapes", pair: PairSpec = PAIR, weights=None, **options):
    defaults = REGISTRY.get(method).paper_defaults(dataset)
    w = dict(defaults["loss_weights"], **(weights or {}))
    opts = dict(defaults["method_options"], **options)
    return build_distiller(method, pair, w, opts), w


def enabled_terms(weights):
    return {k for k, v in weights.items() if v}


# ------------------------------------------------------------------------------------------- defaults / build
def test_registered_names():
    assert set(METHODS) | {"kd"} <= set(REGISTRY.names())


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dataset", DATASETS)
def test_paper_defaults_build(method, dataset):
    cls = REGISTRY.get(method)
    d = cls.paper_defaults(dataset)
    # config fields a method may set per dataset: Af-DCD selects its checkpoint on CamVid's test split
    assert {"loss_weights", "method_options"} <= set(d) <= {"loss_weights", "method_options", "val_split",
                                                            "final_split"}
    if method == "cirkd":   # the released pixel-queue indexing on the papers' data, corrected on the built-in
        assert d["method_options"]["pixel_queue_bug"] is (dataset != "synthetic_streets")
    if "val_split" in d:
        assert (method, dataset, d["val_split"], d["final_split"]) == ("afdcd", "camvid", "test", "test")
    assert set(d["loss_weights"]) <= set(cls.terms)
    module = build_distiller(method, PAIR, d["loss_weights"], d["method_options"])
    assert set(module.enabled) == enabled_terms(d["loss_weights"])


def test_per_dataset_weights():
    assert REGISTRY.get("cirkd").paper_defaults("voc")["loss_weights"]["memory_p2p"] == 0.01
    assert REGISTRY.get("cirkd").paper_defaults("cityscapes")["loss_weights"]["memory_p2r"] == 0.1
    lam = {ds: REGISTRY.get("afdcd").paper_defaults(ds)["loss_weights"] for ds in DATASETS}
    assert (lam["cityscapes"]["kd"], lam["cityscapes"]["fd"], lam["cityscapes"]["ctr"]) == (1.0, 2e-6, 0.005)
    assert (lam["camvid"]["fd"], lam["camvid"]["ctr"]) == (8e-6, 0.01)
    assert (lam["voc"]["fd"], lam["voc"]["ctr"]) == (1e-6, 0.005)
    assert (lam["ade20k"]["kd"], lam["ade20k"]["fd"], lam["ade20k"]["ctr"]) == (0.5, 1e-6, 0.04)
    assert (lam["coco_stuff_164k"]["kd"], lam["coco_stuff_164k"]["fd"]) == (0.5, 5e-6)
    assert REGISTRY.get("afdcd").paper_defaults("camvid")["method_options"]["pool"] is None
    assert REGISTRY.get("afdcd").paper_defaults("cityscapes")["method_options"]["pool"] == 4
    cwd = REGISTRY.get("cwd").paper_defaults("cityscapes")
    assert cwd["loss_weights"]["cwd_logits"] == 3.0 and cwd["loss_weights"]["cwd_feature"] == 50.0
    assert cwd["method_options"]["temperature"] == 4.0


# ------------------------------------------------------------------------------------------- terms / gradients
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dataset", ["cityscapes", "camvid"])
def test_enabled_terms_finite_and_gradients(method, dataset):
    torch.manual_seed(0)
    module, weights = build(method, dataset)
    module.train()
    student, teacher, labels = outputs(1)
    out = module(student, teacher, labels)
    assert set(out) == enabled_terms(weights)
    for name, value in out.items():
        assert value.dim() == 0 and torch.isfinite(value), name
    sum(out.values()).backward()
    distils = REGISTRY.get(method).distils   # what the method declares it distils, and nothing else
    assert distils and set(distils) <= set(SegOutput._fields)
    for name, x in zip(SegOutput._fields, student):
        assert (x.grad is not None) == (name in distils), f"{method}: gradient reaching the student's {name}"
    for name, x in zip(SegOutput._fields, teacher):
        assert x.grad is None, f"gradient reached the teacher's {name}"
    for name, p in module.named_parameters():
        assert p.grad is not None, f"no gradient for the module parameter {name}"


@pytest.mark.parametrize("method", METHODS)
def test_zero_weight_disables_term(method, monkeypatch):
    unique_fn = {"kd": "kd_loss", "at": "at_loss", "fitnet": "fitnet_loss", "ifv": "ifvd_loss",
                 "pairwise": "skd_pairwise_loss", "batch_p2p": "cirkd_batch_p2p_loss", "fd": "afdcd_fd_loss",
                 "ctr": "afdcd_omni_loss", "sc": "afdcd_spatial_loss", "cc": "afdcd_channel_loss"}
    _, base = build(method)
    terms = REGISTRY.get(method).terms
    mod = sys.modules[REGISTRY.get(method).__module__]
    if len(terms) == 1:   # its only term off: nothing to distil, refused with the weight to set
        with pytest.raises(ValueError, match="no term with a non-zero weight"):
            build_distiller(method, PAIR, {terms[0]: 0.0})
        return
    for term in terms:
        weights = {t: 1.0 for t in terms}
        weights[term] = 0.0
        with monkeypatch.context() as m:
            if term in unique_fn:
                def boom(*a, **k):
                    raise AssertionError(f"{term} computed although disabled")
                m.setattr(mod, unique_fn[term], boom)
            module = build_distiller(method, PAIR, weights, REGISTRY.get(method).paper_defaults("cityscapes")
                                     ["method_options"])
            out = module(*outputs(2))
        assert set(out) == set(terms) - {term}
        if term == "adv":
            assert module.adversarial is None and module.separately_optimized_parameters() == []
        if term == "cwd_feature":
            assert module.connector is None
        if term == "fitnet":
            assert module.connector is None
        if method == "cirkd" and term == "memory_p2p":
            assert not hasattr(module, "pixel_queue") and hasattr(module, "region_queue")
        if method == "cirkd" and term == "memory_p2r":
            assert not hasattr(module, "region_queue") and hasattr(module, "pixel_queue")
    if method == "cirkd":
        module = build_distiller("cirkd", PAIR, {"kd": 1.0, "batch_p2p": 1.0})
        assert module.projector is None and not hasattr(module, "pixel_queue")
    if method == "afdcd":
        module = build_distiller("afdcd", PAIR, {"kd": 1.0})
        assert module.align is None and module.projector is None and list(module.parameters()) == []


def test_unknown_term_rejected():
    with pytest.raises(ValueError, match="no loss term"):
        build_distiller("cwd", PAIR, {"cwd": 1.0})


# ------------------------------------------------------------------------------------------- values
def assert_close(a, b):
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_cwd_values():
    module, _ = build("cwd")
    ref = copy.deepcopy(module)
    s, t, y = outputs(3)
    out = module(s, t, y)
    assert module.connector.weight.shape == (16, 8, 1, 1) and module.connector.bias is None
    assert_close(out["kd"], Fn.kd_loss(s.logits, t.logits, 1.0))
    assert_close(out["cwd_logits"], Fn.cwd_loss(s.logits, t.logits, 4.0))
    # official normaliser: B * C_student (8), not B * C_teacher (16)
    assert_close(out["cwd_feature"], Fn.cwd_loss(ref.connector(s.feature), t.feature, 4.0, norm_channels=8))
    assert_close(out["adv"], -ref.adversarial.discriminator(s.logits).mean())
    other, _ = build("cwd", official_normaliser=False)
    other.load_state_dict(ref.state_dict())
    assert_close(other(s, t, y)["cwd_feature"] * 2, out["cwd_feature"])


def test_at_fitnet_ifvd_skd_values():
    s, t, y = outputs(4)
    at, _ = build("at")
    assert_close(at(s, t, y)["at"], Fn.at_loss(s.feature, t.feature))
    fit, _ = build("fitnet")
    assert_close(fit(s, t, y)["fitnet"], Fn.fitnet_loss(fit.connector(s.feature), t.feature))
    assert fit.connector.bias is None
    ifvd, _ = build("ifvd")
    assert_close(ifvd(s, t, y)["ifv"], Fn.ifvd_loss(s.feature, t.feature, y, K))
    skd, _ = build("skd")
    assert_close(skd(s, t, y)["pairwise"], Fn.skd_pairwise_loss(s.feature, t.feature))
    assert_close(skd(s, t, y)["kd"], Fn.kd_loss(s.logits, t.logits))


CIRKD_SMALL = dict(pixel_memory_size=64, region_memory_size=8, pixel_contrast_size=20, region_contrast_size=10)


@pytest.mark.parametrize("bug", [False, True])
def test_cirkd_values_with_replayed_randomness(bug):
    torch.manual_seed(0)
    module, _ = build("cirkd", pixel_queue_bug=bug, **CIRKD_SMALL)
    assert module.pixel_slots_per_class == 20 // K + 1 and module.region_slots_per_class == 10 // K + 1
    ref = copy.deepcopy(module)
    s, t, y = outputs(5)
    module.generator = torch.Generator().manual_seed(123)
    out = module(s, t, y)

    g = torch.Generator().manual_seed(123)
    keys = torch.rand((B, H, W), generator=g)
    pidx = torch.randperm(64, generator=g)[:5]
    ridx = torch.randperm(8, generator=g)[:3]
    t_hat = F.normalize(t.feature.detach(), dim=1)
    y_small = F.interpolate(y[:, None].float(), size=(H, W), mode="nearest")[:, 0].long()
    Fn.cirkd_enqueue(ref.pixel_queue, ref.region_queue, ref.pixel_queue_ptr, ref.region_queue_ptr, t_hat,
                     y_small, keys, pixels_per_class=16, pixel_queue_bug=bug)
    p2p, p2r = Fn.cirkd_memory_losses(ref.projector(s.feature), t.feature, y, ref.pixel_queue, ref.region_queue,
                                      pidx, ridx, 0.1, 1.0)
    assert_close(out["memory_p2p"], p2p)
    assert_close(out["memory_p2r"], p2r)
    assert_close(out["batch_p2p"], Fn.cirkd_batch_p2p_loss(s.feature, t.feature, 0.1, 2))
    assert_close(out["kd"], Fn.kd_loss(s.logits, t.logits))
    for name in ("pixel_queue_ptr", "region_queue_ptr"):
        assert torch.equal(getattr(module, name), getattr(ref, name)), name
    for name in ("pixel_queue", "region_queue"):   # same slots; values within rounding of F.normalize
        torch.testing.assert_close(getattr(module, name), getattr(ref, name), rtol=0, atol=1e-6, msg=name)


def test_cirkd_enqueue_after_loss_option():
    torch.manual_seed(0)
    first, _ = build("cirkd", **dict(CIRKD_SMALL, region_contrast_size=100))   # every region slot drawn
    after = copy.deepcopy(first)
    after.enqueue_first = False
    s, t, y = outputs(6)
    first.generator = torch.Generator().manual_seed(1)
    after.generator = torch.Generator().manual_seed(1)
    o1, o2 = first(s, t, y), after(s, t, y)
    assert not torch.allclose(o1["memory_p2r"], o2["memory_p2r"])   # the contrast sets differ
    assert torch.equal(first.region_queue, after.region_queue)      # the same writes either way
    assert torch.equal(first.pixel_queue, after.pixel_queue)


def test_cirkd_images_per_group():
    module, _ = build("cirkd", weights={"memory_p2p": 0.0, "memory_p2r": 0.0}, images_per_group=2)
    s, t, y = outputs(7, b=4)
    halves = [Fn.cirkd_batch_p2p_loss(s.feature[i:i + 2], t.feature[i:i + 2], 0.1) for i in (0, 2)]
    assert_close(module(s, t, y)["batch_p2p"], (halves[0] + halves[1]) / 2)
    whole, _ = build("cirkd", weights={"memory_p2p": 0.0, "memory_p2r": 0.0}, images_per_group=None)
    assert_close(whole(s, t, y)["batch_p2p"], Fn.cirkd_batch_p2p_loss(s.feature, t.feature, 0.1))


def naive_enqueue(pq, rq, pptr, rptr, feat, lab, keys, per_class, bug):
    """Official per-image, per-class loop (docs/reference.md §3.3), with the pixel choice 'smallest keys first'."""
    n_p, n_r = pq.shape[1], rq.shape[1]
    for b in range(feat.shape[0]):
        f = F.normalize(feat[b].reshape(feat.shape[1], -1), dim=0)
        yb, kb = lab[b].reshape(-1), keys[b].reshape(-1)
        for c in range(pq.shape[0]):
            idxs = (yb == c).nonzero().flatten()
            n = idxs.numel()
            if n == 0:
                continue
            rq[c, rptr[c]] = F.normalize(f[:, idxs].mean(dim=1), dim=0)
            rptr[c] = (rptr[c] + 1) % n_r
            k = min(n, per_class)
            cand = torch.arange(n) if bug else idxs
            picked = cand[torch.argsort(kb[cand])[:k]]
            vec = F.normalize(f[:, picked].t(), dim=1)
            p = int(pptr[c])
            if p + k >= n_p:
                pq[c, n_p - k:] = vec
                pptr[c] = 0
            else:
                pq[c, p:p + k] = vec
                pptr[c] = (p + k) % n_p


@pytest.mark.parametrize("bug", [False, True])
def test_cirkd_queue_contents_match_naive_loop(bug):
    torch.manual_seed(0)
    module, _ = build("cirkd", pixel_queue_bug=bug, pixel_memory_size=40, region_memory_size=3)
    g = torch.Generator().manual_seed(9)
    b, h, w = 3, 8, 8
    y = torch.randint(-1, K, (b, h, w), generator=g)
    y[0, :6] = 2                                              # a big class (more than 16 pixels)
    for step in range(3):                                     # several calls: pointers wrap and reset
        feat = torch.randn(b, 16, h, w, generator=g)
        keys = torch.rand(b, h, w, generator=g)
        expected = [module.pixel_queue.clone(), module.region_queue.clone(), module.pixel_queue_ptr.clone(),
                    module.region_queue_ptr.clone()]
        naive_enqueue(*expected, feat, y, keys, 16, bug)
        module.enqueue(feat, y, keys)
        torch.testing.assert_close(module.pixel_queue, expected[0], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(module.region_queue, expected[1], rtol=1e-5, atol=1e-6)
        assert torch.equal(module.pixel_queue_ptr, expected[2])
        assert torch.equal(module.region_queue_ptr, expected[3])


def test_cirkd_state_dict_round_trip():
    torch.manual_seed(0)
    module, _ = build("cirkd", **CIRKD_SMALL)
    for seed in range(3):
        module(*outputs(seed))
    sd = module.state_dict()
    for name in ("pixel_queue", "pixel_queue_ptr", "region_queue", "region_queue_ptr"):
        assert name in sd
    assert int(module.pixel_queue_ptr.sum()) > 0 and int(module.region_queue_ptr.sum()) > 0
    torch.manual_seed(1)
    fresh, _ = build("cirkd", **CIRKD_SMALL)
    assert not torch.equal(fresh.pixel_queue, module.pixel_queue)
    fresh.load_state_dict(sd)
    for name in ("pixel_queue", "pixel_queue_ptr", "region_queue", "region_queue_ptr"):
        assert torch.equal(getattr(fresh, name), getattr(module, name)), name
    # queues stay unit vectors
    torch.testing.assert_close(module.pixel_queue.norm(dim=2), torch.ones(K, 64))


@pytest.mark.parametrize("options", [{}, {"enhance_projector": True}, {"rand_mask": False}])
def test_afdcd_values_with_replayed_mask(options):
    torch.manual_seed(0)
    module, _ = build("afdcd", weights={"sc": 1.0, "cc": 1.0}, **options)
    assert module.clip_grad_norm == 15.0
    ref = copy.deepcopy(module)
    s, t, y = outputs(8)
    module.generator = torch.Generator().manual_seed(5)
    out = module(s, t, y)
    if module.rand_mask:
        u = torch.rand((B, 1, H, W), generator=torch.Generator().manual_seed(5))
        mask = (u <= 0.25).float()
    else:
        mask = torch.ones(B, 1, H, W)
        mask[..., 5:10, 5:10] = 0
    g = ref.projector(ref.align(s.c4) * mask)
    assert_close(out["fd"], Fn.afdcd_fd_loss(g, t.c4))
    assert_close(out["ctr"], Fn.afdcd_omni_loss(g, t.c4, 16, 4, 4, 0.07, "l1", "topleft"))
    assert_close(out["sc"], Fn.afdcd_spatial_loss(g, t.c4, 4, 4, 0.07, "l1", "topleft"))
    assert_close(out["cc"], Fn.afdcd_channel_loss(g, t.c4, 16, 4, 0.07, "l1"))
    assert_close(out["kd"], Fn.kd_loss(s.logits, t.logits))
    n_params = sum(p.numel() for p in module.projector.parameters())
    assert n_params == (4 if options.get("enhance_projector") else 2) * (32 * 32 * 9 + 32)


def test_afdcd_camvid_45x45_crop():
    module, _ = build("afdcd", "camvid")
    s, t, y = outputs(9, h=45, w=45)
    module.generator = torch.Generator().manual_seed(0)
    out = module(s, t, y)
    ref_mask = (torch.rand((B, 1, 45, 45), generator=torch.Generator().manual_seed(0)) <= 0.25).float()
    g = module.projector(module.align(s.c4) * ref_mask)
    assert_close(out["ctr"], Fn.afdcd_omni_loss(g[..., :44, :44], t.c4[..., :44, :44], 16, 4, None))


def test_afdcd_mask_ratio():
    module, _ = build("afdcd")
    module.generator = torch.Generator().manual_seed(0)
    for ratio in (0.75, 0.5, 0.0):
        module.mask_ratio = ratio
        m = module.draw_mask(8, 64, 64, torch.device("cpu"))
        assert m.shape == (8, 1, 64, 64) and set(m.unique().tolist()) <= {0.0, 1.0}
        assert abs(float((m == 0).float().mean()) - ratio) < 0.01
        assert not torch.equal(m[0], m[1]) or ratio == 0.0       # drawn per image
    module.rand_mask = False
    m = module.draw_mask(2, 12, 9, torch.device("cpu"))
    zero = torch.zeros(12, 9, dtype=torch.bool)
    zero[4:8, 3:6] = True
    assert torch.equal(m[0, 0] == 0, zero) and torch.equal(m[0], m[1])


# ------------------------------------------------------------------------------------------- adversarial
def test_skd_discriminator_updated_only_by_hook():
    torch.manual_seed(0)
    module, weights = build("skd")
    assert weights["adv"] > 0 and module.adversarial is not None
    own = module.separately_optimized_parameters()
    d_params = list(module.adversarial.discriminator.parameters())
    assert {id(p) for p in own} == {id(p) for p in d_params}
    # the trainer's SGD over everything but the discriminator (SKD has no other parameter: a stand-in student)
    student_param = torch.nn.Parameter(torch.ones(1))
    rest = [p for p in module.parameters() if id(p) not in {id(q) for q in own}]
    assert rest == []
    sgd = torch.optim.SGD([student_param] + rest, lr=0.1, weight_decay=1e-4)
    before = [p.detach().clone() for p in d_params]
    s, t, y = outputs(10)
    out = module(s, t, y)
    (sum(out.values()) * student_param).sum().backward()
    sgd.step()
    assert all(torch.equal(p, q) for p, q in zip(d_params, before)), "the student's SGD moved D"
    diag = module.after_student_step()
    assert set(diag) == {"adv_d"} and torch.isfinite(diag["adv_d"])
    assert any(not torch.equal(p, q) for p, q in zip(d_params, before)), "the hook did not update D"
    assert module.after_student_step() == {}                     # nothing cached: no second step
    opt = module.adversarial.optimizer()
    assert isinstance(opt, torch.optim.Adam) and opt.defaults["lr"] == 4e-4 and opt.defaults["betas"] == (0.9, 0.99)
    assert len(opt.state) == len(d_params)

    # Adam's state travels with the module's state_dict (resumable checkpoints)
    sd = module.state_dict()
    torch.manual_seed(1)
    fresh, _ = build("skd")
    fresh.load_state_dict(sd)
    st_a = module.adversarial.optimizer().state_dict()["state"]
    st_b = fresh.adversarial.optimizer().state_dict()["state"]
    assert st_a.keys() == st_b.keys()
    for k in st_a:
        assert torch.equal(st_a[k]["exp_avg"], st_b[k]["exp_avg"])


def test_default_hooks_do_nothing():
    module, _ = build("cirkd", **CIRKD_SMALL)
    assert module.separately_optimized_parameters() == [] and module.after_student_step() == {}


def test_discriminator_size_safe():
    torch.manual_seed(0)
    d = SAGANDiscriminator(K, conv_dim=8).eval()
    x = torch.randn(2, K, 64, 96)
    official = copy.deepcopy(d)
    official.size_safe = False
    assert torch.equal(d(x), official(x)) and d(x).shape == (2, 1, 1, 3)   # official layout kept for >= 64
    small = torch.randn(2, K, 45, 45)                                        # CamVid 360x360 crops
    with pytest.raises(RuntimeError):
        official(small)
    assert d(small).shape == (2, 1, 1, 1)
    assert d(torch.randn(1, K, 8, 16)).shape == (1, 1, 1, 1)


@pytest.mark.parametrize("method", ["ifvd", "cwd"])
def test_adversarial_term_in_other_baselines(method):
    module, weights = build(method)
    assert weights["adv"] == 0.001 and module.adversarial is not None
    out = module(*outputs(11))
    sum(out.values()).backward()
    assert "adv_d" in module.after_student_step()


def test_cirkd_enqueue_uses_all_ranks_in_rank_order(monkeypatch):
    """Simulated 2-rank all-gather: the queues receive both ranks' images (rank 0 first), keys included."""
    torch.manual_seed(0)
    module, _ = build("cirkd", pixel_memory_size=40, region_memory_size=3, pixel_queue_bug=False)
    g = torch.Generator().manual_seed(3)
    b, h, w = 2, 8, 8
    mine = (torch.randn(b, 16, h, w, generator=g), torch.randint(-1, K, (b, h, w), generator=g),
            torch.rand(b, h, w, generator=g))
    other = (F.normalize(torch.randn(b, 16, h, w, generator=g), dim=1), torch.randint(-1, K, (b, h, w), generator=g),
             torch.rand(b, h, w, generator=g))
    calls = []

    def fake_gather(x):   # this process is rank 1: the other rank's tensors come first
        calls.append(x.shape)
        return torch.cat([other[len(calls) - 1].to(x.dtype), x])

    monkeypatch.setattr(kdlib.methods.cirkd, "all_gather_cat", fake_gather)
    expected = [module.pixel_queue.clone(), module.region_queue.clone(), module.pixel_queue_ptr.clone(),
                module.region_queue_ptr.clone()]
    naive_enqueue(*expected, torch.cat([other[0], mine[0]]), torch.cat([other[1], mine[1]]),
                  torch.cat([other[2], mine[2]]), 16, False)
    module.enqueue(*mine)
    assert len(calls) == 3
    torch.testing.assert_close(module.pixel_queue, expected[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(module.region_queue, expected[1], rtol=1e-5, atol=1e-6)
    assert torch.equal(module.pixel_queue_ptr, expected[2]) and torch.equal(module.region_queue_ptr, expected[3])


def test_at_scale_to_positions_rescales_by_map_size():
    """scale_to_positions=N multiplies the released AT loss by h*w/N (16x16 map: 256/8192 = 1/32)."""
    s, t, y = outputs(3)
    released, _ = build("at")
    scaled, _ = build("at", scale_to_positions=8192)
    a = released(s, t, y)["at"]
    assert scaled(s, t, y)["at"].item() == pytest.approx(a.item() * 256 / 8192, rel=1e-6)
    # the released loss itself shrinks like 1/(h w): a 2x2 upsampled copy of the same maps gives 1/4
    up = [F.interpolate(x, scale_factor=2, mode="nearest") for x in (s.feature, t.feature)]
    assert Fn.at_loss(*up).item() == pytest.approx(Fn.at_loss(s.feature, t.feature).item() / 4, rel=1e-5)
    with pytest.raises(ValueError, match="scale_to_positions"):
        build("at", scale_to_positions=0)


# ------------------------------------------------------------------------------------------- adding a method
class L1Logits(DistillLoss):
    """A method defined outside kdlib: the mean absolute difference of the logits (one term, stateless)."""

    terms = ("l1",)
    distils = ("logits",)
    display_name = "L1 logits"
    paper_weights = {"l1": 1.0}

    def __init__(self, pair, enabled, scale: float = 1.0) -> None:
        super().__init__(pair, enabled)
        if scale <= 0:
            raise ValueError(f"scale must be positive, got {scale}")
        self.scale = float(scale)

    def forward(self, student, teacher, labels):
        return {"l1": self.scale * (student.logits - teacher.logits.detach()).abs().mean()}


@pytest.fixture
def l1_logits():
    REGISTRY.register("l1_logits")(L1Logits)
    try:
        yield "l1_logits"
    finally:
        REGISTRY.unregister("l1_logits")


def test_a_method_defined_elsewhere_passes_the_generic_tests_and_trains(l1_logits, monkeypatch,
                                                                       tiny_data_and_teacher, tmp_path):
    """Registering one class is all it takes: paper defaults, display name, the generic tests and a run."""
    from kdlib.engine.config import resolve_config
    from kdlib.engine.trainer import train
    from kdlib.methods import method_label
    from kdlib.studies.notebook import parse_extra

    assert L1Logits.paper_defaults("voc") == {"loss_weights": {"l1": 1.0}, "method_options": {"scale": 1.0}}
    assert method_label(l1_logits) == "L1 logits"
    for dataset in DATASETS:
        test_paper_defaults_build(l1_logits, dataset)
    test_enabled_terms_finite_and_gradients(l1_logits, "cityscapes")
    test_zero_weight_disables_term(l1_logits, monkeypatch)
    with pytest.raises(ValueError, match="no option.*scael.*did you mean scale"):
        build_distiller(l1_logits, PAIR, {"l1": 1.0}, {"scael": 2.0})

    extra, teacher = tiny_data_and_teacher
    cfg = resolve_config("quick", {**parse_extra(extra), "method": l1_logits, "teacher_checkpoint": str(teacher),
                                   "run_dir": str(tmp_path / "run")})
    assert cfg.loss_weights == {"l1": 1.0} and cfg.method_options == {"scale": 1.0}
    result = train(cfg, progress=False)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert all(r["l1"] > 0 for r in log if "l1" in r) and any("l1" in r for r in log)
    assert 0.0 <= result["miou"] <= 1.0
