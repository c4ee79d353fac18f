"""Speed and peak memory of every kdlib distillation loss against a naive, official-structure reference.

For each loss term this times **forward + backward** of kdlib's registered method module (or, for Af-DCD's
OC term, the pure loss on a leaf "generated" map) and of ``benchmarks/naive_reference.py`` — a second
implementation written from docs/reference.md's description of the official code (per-image / per-class Python loops,
the official enqueue loop, Af-DCD's released formulation) — on identical inputs, and measures the peak memory
of one such step. Before timing, every case asserts that both give the same value (``--rtol``, default 1e-4,
float32) with the same random draws (queue slots, enqueued pixels, masks) and the same weights
(connectors, projectors, generator), plus gradients of the student tensors (looser tolerance) and, for CIRKD,
the queues and pointers after the enqueue.

Cases (``--only`` names): kd, cwd_logits, cwd_feature, skd, ifvd, at, fitnet, cirkd_batch_p2p,
cirkd_memory (memory p2p + p2r incl. the projector and the enqueue), cirkd_enqueue (the enqueue alone, no
backward), afdcd_fd (align conv + mask + 3x3 generator convs + L_fd), afdcd_ctr (Omni-Contrasting on a
leaf map).

Shapes (Cityscapes, DeepLabV3-R101 -> R18, 512x1024 crops): batch 8, maps 64x128, 19 classes, student /
teacher head feature 128 / 256, student / teacher c4 512 / 2048, CIRKD N_p 20000, N_r 2000, K_p 4096, K_r 1024,
2 images per relation group. ``--scale`` multiplies every channel width and queue / contrast size (student
widths rounded to multiples of 16, teacher widths kept at 2x / 4x). Defaults: on CUDA the paper shapes (batch
8, scale 1); on CPU a reduced setting (batch 2, scale 0.25, maps 64x128) that runs in about 2 minutes on 2
cores. Give ``--batch 8 --scale 1`` for the paper setting on CPU: about 27 minutes on 2 cores, most of it the
Af-DCD generator (two 3x3 convolutions 2048 -> 2048 over 8 x 64 x 128 positions, ~10 TFLOP forward; 78 s
per step) and the reference's mini-batch p2p (48 s per step, 9.5 GB).

Peak memory ("peak MB") = the largest amount of tensor memory allocated **on top of** what existed before
the step (inputs, weights, queues), over one forward + backward, gradients included:

* CUDA: ``torch.cuda.max_memory_allocated()`` after ``reset_peak_memory_stats()``, minus
  ``memory_allocated()`` before the step (caching-allocator blocks, not reserved memory);
* CPU: torch's profiler with ``profile_memory=True`` records every allocation and free of the CPU allocator
  (size in bytes) during the step; the peak is the maximum of their running sum. This is tensor memory only
  (like the CUDA figure), not process RSS: no allocator caching, no Python objects, no library workspaces.

Times are medians over ``--repeats`` steps (more for fast cases, until ``--min-time`` seconds) after
``--warmup`` steps (CUDA synchronised); kdlib's and the reference's steps alternate (A B A B ...), so a change
of machine state during the measurement affects both alike. Gradients of the
inputs and parameters are reset to None before every step. Stateful cases (the CIRKD queues) update their own
queues every step, the same work for both.

Examples::

    OMP_NUM_THREADS=1 python benchmarks/losses.py                    # CPU default (reduced setting)
    python benchmarks/losses.py --device cuda --out results/benchmarks/losses_cuda.md   # paper shapes
    python benchmarks/losses.py --only cirkd_memory cirkd_enqueue --batch 8 --scale 1 --repeats 3
    python benchmarks/losses.py --check-only --batch 2 --size 8 16 --scale 0.0625   # agreement only

Targets (methods issue): every kdlib term at least as fast as the reference; CIRKD memory (enqueue
included) and mini-batch p2p at least 5x faster; Af-DCD no more peak memory than the reference.

With the CIRKD memory case, a note under the table gives the time of the matrix products that every exact
implementation performs (the reference's too) and the speed-up bound that follows from it on this device.
"""
from __future__ import annotations

import argparse
import copy
import csv
import json
import math
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

sys.path.insert(0, str(Path(__file__).resolve().parent))
import naive_reference as ref  # noqa: E402

from kdlib.losses.common import resize_labels_nearest  # noqa: E402
from kdlib.losses.functional import afdcd_omni_loss  # noqa: E402
from kdlib.methods import PairSpec  # noqa: E402
from kdlib.methods.afdcd import AfDCD  # noqa: E402
from kdlib.methods.at import AT  # noqa: E402
from kdlib.methods.cirkd import CIRKD  # noqa: E402
from kdlib.methods.cwd import CWD  # noqa: E402
from kdlib.methods.fitnet import FitNet  # noqa: E402
from kdlib.methods.ifvd import IFVD  # noqa: E402
from kdlib.methods.kd import KD  # noqa: E402
from kdlib.methods.skd import SKD  # noqa: E402
from kdlib.models.output import SegOutput  # noqa: E402

CASES = ("kd", "cwd_logits", "cwd_feature", "skd", "ifvd", "at", "fitnet", "cirkd_batch_p2p", "cirkd_memory",
         "cirkd_enqueue", "afdcd_fd", "afdcd_ctr")


# ------------------------------------------------------------------------------------------------ config
@dataclass(frozen=True)
class Config:
    device: torch.device
    batch: int = 8
    h: int = 64
    w: int = 128
    scale: float = 1.0
    num_classes: int = 19
    seed: int = 0
    pixel_queue_bug: bool = False   # CIRKD: reproduce the released pixel-queue indexing bug (both sides)

    def width(self, c: int) -> int:
        """Channel width scaled, rounded to a multiple of 16, at least 16 (so C_t4 is divisible by M = 16)."""
        return max(16, int(round(c * self.scale / 16)) * 16)

    def size(self, n: int, minimum: int = 16) -> int:
        return max(minimum, int(round(n * self.scale)))

    @property
    def pair(self) -> PairSpec:
        # teacher widths stay 2x (head feature) and 4x (c4) the student's, as in the papers
        s_feat, s_c4 = self.width(128), self.width(512)
        return PairSpec(self.num_classes, s_feat, 2 * s_feat, s_c4, 4 * s_c4)

    @property
    def cirkd_options(self) -> Dict[str, object]:
        return {"pixel_memory_size": self.size(20000), "region_memory_size": self.size(2000),
                "pixel_contrast_size": self.size(4096), "region_contrast_size": self.size(1024),
                "images_per_group": 2, "pixel_queue_bug": self.pixel_queue_bug}

    def describe(self) -> str:
        p, o = self.pair, self.cirkd_options
        threads = torch.get_num_threads() if self.device.type == "cpu" else "-"
        return (f"device {self.device} (threads {threads}), float32, batch {self.batch}, maps {self.h}x{self.w}, "
                f"scale {self.scale:g}: K {p.num_classes}, feature {p.student_feature}/{p.teacher_feature}, "
                f"c4 {p.student_c4}/{p.teacher_c4}, N_p {o['pixel_memory_size']}, N_r {o['region_memory_size']}, "
                f"K_p {o['pixel_contrast_size']}, K_r {o['region_contrast_size']}, 2 images per p2p group")


# -------------------------------------------------------------------------------------------------- cases
@dataclass
class Side:
    """One implementation of a case: ``run()`` returns named scalar terms; ``leaves`` get gradients."""

    run: Callable[[], Dict[str, Tensor]]
    leaves: List[Tensor]
    params: List[nn.Parameter] = field(default_factory=list)
    state: Callable[[], Dict[str, Tensor]] = lambda: {}


@dataclass
class Case:
    name: str
    method: str
    term: str
    target: str               # 'speed' (>= 1x), 'speed5' (>= 5x), 'speed+mem' (>= 1x and peak <= reference)
    kdlib: Side
    reference: Side
    backward: bool = True
    grad_rtol: float = 1e-3


def _gen(cfg: Config, offset: int = 0) -> torch.Generator:
    return torch.Generator(device=cfg.device).manual_seed(cfg.seed + 1000 + offset)


def _inputs(cfg: Config) -> Dict[str, Tensor]:
    """Random, reproducible inputs (CPU generator, then moved): logits, features, c4, labels at 8x size."""
    g = torch.Generator().manual_seed(cfg.seed)
    p, b, h, w = cfg.pair, cfg.batch, cfg.h, cfg.w

    def randn(*shape: int, scale: float = 1.0, relu: bool = False) -> Tensor:
        x = torch.randn(*shape, generator=g) * scale
        return (x.clamp_min(0) if relu else x).to(cfg.device)

    # labels: blocky class regions (8x8 cells of the feature map) + ~10% ignore, at input resolution (8x)
    cells = torch.randint(0, p.num_classes, (b, max(1, h // 8), max(1, w // 8)), generator=g)
    lab = F.interpolate(cells[:, None].float(), size=(h, w), mode="nearest")[:, 0].long()
    noise = torch.randint(0, p.num_classes, (b, h, w), generator=g)
    lab = torch.where(torch.rand(b, h, w, generator=g) < 0.3, noise, lab)
    lab[torch.rand(b, h, w, generator=g) < 0.1] = -1
    labels = lab.repeat_interleave(8, dim=1).repeat_interleave(8, dim=2).to(cfg.device)
    return {
        "s_logits": randn(b, p.num_classes, h, w, scale=3.0), "t_logits": randn(b, p.num_classes, h, w, scale=3.0),
        "s_feat": randn(b, p.student_feature, h, w, relu=True), "t_feat": randn(b, p.teacher_feature, h, w, relu=True),
        "s_c4": randn(b, p.student_c4, h, w, relu=True), "t_c4": randn(b, p.teacher_c4, h, w, relu=True),
        "labels": labels,
    }


def _leaf(x: Tensor) -> Tensor:
    return x.detach().clone().requires_grad_(True)


def _seg(logits: Optional[Tensor] = None, feature: Optional[Tensor] = None, c4: Optional[Tensor] = None
         ) -> SegOutput:
    return SegOutput(logits=logits, aux_logits=None, c4=c4, feature=feature)  # type: ignore[arg-type]


def _stateless(cfg: Config, x: Dict[str, Tensor], name: str) -> Case:
    pair = cfg.pair
    k_s_logits, r_s_logits = _leaf(x["s_logits"]), _leaf(x["s_logits"])
    k_s_feat, r_s_feat = _leaf(x["s_feat"]), _leaf(x["s_feat"])
    t_logits, t_feat, labels = x["t_logits"], x["t_feat"], x["labels"]
    if name == "kd":
        mod = KD(pair, ("kd",)).to(cfg.device)
        return Case(name, "kd", "kd", "speed",
                    Side(lambda: mod(_seg(k_s_logits), _seg(t_logits), labels), [k_s_logits]),
                    Side(lambda: {"kd": ref.kd(r_s_logits, t_logits)}, [r_s_logits]))
    if name == "cwd_logits":
        mod = CWD(pair, ("cwd_logits",)).to(cfg.device)
        return Case(name, "cwd", "cwd_logits", "speed",
                    Side(lambda: mod(_seg(k_s_logits), _seg(t_logits), labels), [k_s_logits]),
                    Side(lambda: {"cwd_logits": ref.cwd(r_s_logits, t_logits, 4.0)}, [r_s_logits]))
    if name == "cwd_feature":
        mod = CWD(pair, ("cwd_feature",)).to(cfg.device)
        conn = copy.deepcopy(mod.connector)
        c_s = pair.student_feature
        return Case(name, "cwd", "cwd_feature", "speed",
                    Side(lambda: mod(_seg(feature=k_s_feat), _seg(feature=t_feat), labels), [k_s_feat],
                         list(mod.parameters())),
                    Side(lambda: {"cwd_feature": ref.cwd(conn(r_s_feat), t_feat, 4.0, norm_channels=c_s)},
                         [r_s_feat], list(conn.parameters())))
    if name == "skd":
        mod = SKD(pair, ("pairwise",)).to(cfg.device)
        return Case(name, "skd", "pairwise", "speed",
                    Side(lambda: mod(_seg(feature=k_s_feat), _seg(feature=t_feat), labels), [k_s_feat]),
                    Side(lambda: {"pairwise": ref.skd_pairwise(r_s_feat, t_feat)}, [r_s_feat]))
    if name == "ifvd":
        mod = IFVD(pair, ("ifv",)).to(cfg.device)
        return Case(name, "ifvd", "ifv", "speed",
                    Side(lambda: mod(_seg(feature=k_s_feat), _seg(feature=t_feat), labels), [k_s_feat]),
                    Side(lambda: {"ifv": ref.ifvd(r_s_feat, t_feat, labels, pair.num_classes)}, [r_s_feat]))
    if name == "at":
        mod = AT(pair, ("at",)).to(cfg.device)
        return Case(name, "at", "at", "speed",
                    Side(lambda: mod(_seg(feature=k_s_feat), _seg(feature=t_feat), labels), [k_s_feat]),
                    Side(lambda: {"at": ref.at(r_s_feat, t_feat)}, [r_s_feat]))
    if name == "fitnet":
        mod = FitNet(pair, ("fitnet",)).to(cfg.device)
        conn = copy.deepcopy(mod.connector)
        return Case(name, "fitnet", "fitnet", "speed",
                    Side(lambda: mod(_seg(feature=k_s_feat), _seg(feature=t_feat), labels), [k_s_feat],
                         list(mod.parameters())),
                    Side(lambda: {"fitnet": ref.fitnet(conn(r_s_feat), t_feat)}, [r_s_feat],
                         list(conn.parameters())))
    raise KeyError(name)


def _cirkd_batch(cfg: Config, x: Dict[str, Tensor]) -> Case:
    mod = CIRKD(cfg.pair, ("batch_p2p",), **cfg.cirkd_options).to(cfg.device)  # type: ignore[arg-type]
    k_s, r_s = _leaf(x["s_feat"]), _leaf(x["s_feat"])
    t_feat, labels = x["t_feat"], x["labels"]
    return Case("cirkd_batch_p2p", "cirkd", "batch_p2p", "speed5",
                Side(lambda: mod(_seg(feature=k_s), _seg(feature=t_feat), labels), [k_s]),
                Side(lambda: {"batch_p2p": ref.cirkd_batch_p2p(r_s, t_feat, 0.1, 2)}, [r_s]))


def _cirkd_memory(cfg: Config, x: Dict[str, Tensor], enqueue_only: bool) -> Case:
    mod = CIRKD(cfg.pair, ("memory_p2p", "memory_p2r"), **cfg.cirkd_options).to(cfg.device)  # type: ignore
    mod.generator = _gen(cfg)
    g_ref = _gen(cfg)
    naive = ref.CirkdMemory(mod.pixel_queue, mod.region_queue, mod.pixel_queue_ptr, mod.region_queue_ptr,
                            mod.pixel_slots_per_class, mod.region_slots_per_class, mod.contrast_temperature,
                            mod.contrast_kd_temperature, mod.pixels_per_class, mod.pixel_queue_bug,
                            mod.ignore_index)
    projector = copy.deepcopy(mod.projector)
    k_s, r_s = _leaf(x["s_feat"]), _leaf(x["s_feat"])
    t_feat, labels = x["t_feat"], x["labels"]
    b, _, h, w = t_feat.shape
    n_p, n_r = mod.pixel_memory_size, mod.region_memory_size

    def k_state() -> Dict[str, Tensor]:
        return {"pixel_queue": mod.pixel_queue, "region_queue": mod.region_queue,
                "pixel_ptr": mod.pixel_queue_ptr, "region_ptr": mod.region_queue_ptr}

    def r_state() -> Dict[str, Tensor]:
        return {"pixel_queue": naive.pixel_queue, "region_queue": naive.region_queue,
                "pixel_ptr": naive.pixel_ptr, "region_ptr": naive.region_ptr}

    if enqueue_only:
        def k_run() -> Dict[str, Tensor]:
            with torch.no_grad():
                keys = mod.draw_pixel_keys((b, h, w), t_feat.device)
                mod.enqueue(t_feat, labels, keys)
            return {}

        def r_run() -> Dict[str, Tensor]:
            with torch.no_grad():
                keys = torch.rand((b, h, w), generator=g_ref, device=g_ref.device)
                t_hat = F.normalize(t_feat, p=2, dim=1)
                lab = F.interpolate(labels[:, None].float(), size=(h, w), mode="nearest")[:, 0].long()
                naive.enqueue(t_hat, lab, keys)
            return {}

        return Case("cirkd_enqueue", "cirkd", "enqueue only (no grad)", "speed5",
                    Side(k_run, [], [], k_state), Side(r_run, [], [], r_state), backward=False)

    def r_run_loss() -> Dict[str, Tensor]:
        keys = torch.rand((b, h, w), generator=g_ref, device=g_ref.device)
        pixel_perm = torch.randperm(n_p, generator=g_ref, device=g_ref.device)
        region_perm = torch.randperm(n_r, generator=g_ref, device=g_ref.device)
        p2p, p2r = naive.forward(projector(r_s), t_feat, labels, keys, pixel_perm, region_perm)
        return {"memory_p2p": p2p, "memory_p2r": p2r}

    return Case("cirkd_memory", "cirkd", "memory_p2p + memory_p2r (+ enqueue)", "speed5",
                Side(lambda: mod(_seg(feature=k_s), _seg(feature=t_feat), labels), [k_s],
                     list(mod.parameters()), k_state),
                Side(r_run_loss, [r_s], list(projector.parameters()), r_state))


def _afdcd_fd(cfg: Config, x: Dict[str, Tensor]) -> Case:
    mod = AfDCD(cfg.pair, ("fd",)).to(cfg.device)
    mod.generator = _gen(cfg, 1)
    g_ref = _gen(cfg, 1)
    c_t = cfg.pair.teacher_c4
    align = copy.deepcopy(mod.align)
    generation = ref.afdcd_generator(c_t).to(cfg.device)
    with torch.no_grad():
        for dst, src in ((generation[0], mod.projector.conv1), (generation[2], mod.projector.conv2)):
            dst.weight.copy_(src.weight)
            dst.bias.copy_(src.bias)
    k_s, r_s = _leaf(x["s_c4"]), _leaf(x["s_c4"])
    t_c4, labels = x["t_c4"], x["labels"]
    b, _, h, w = t_c4.shape

    def r_run() -> Dict[str, Tensor]:
        u = torch.rand((b, 1, h, w), generator=g_ref, device=g_ref.device)
        return {"fd": ref.afdcd_fd(align, generation, r_s, t_c4, u, mod.mask_ratio)}

    return Case("afdcd_fd", "afdcd", "fd (align + mask + generator)", "speed+mem",
                Side(lambda: mod(_seg(c4=k_s), _seg(c4=t_c4), labels), [k_s], list(mod.parameters())),
                Side(r_run, [r_s], list(align.parameters()) + list(generation.parameters())))


def _afdcd_ctr(cfg: Config, x: Dict[str, Tensor]) -> Case:
    # the OC term consumes the generated map G (B, C_t, h, w); a leaf stands in for it
    gen = torch.Generator().manual_seed(cfg.seed + 7)
    g0 = (x["t_c4"].cpu() + 0.5 * torch.randn(x["t_c4"].shape, generator=gen)).to(cfg.device)
    k_g, r_g = _leaf(g0), _leaf(g0)
    t_c4 = x["t_c4"]
    return Case("afdcd_ctr", "afdcd", "ctr (Omni-Contrasting, on G)", "speed+mem",
                Side(lambda: {"ctr": afdcd_omni_loss(k_g, t_c4, 16, 4, 4, 0.07, "l1", "topleft")}, [k_g]),
                Side(lambda: {"ctr": ref.afdcd_omni(r_g, t_c4, 16, 4, 4, 0.07)}, [r_g]))


def build_case(cfg: Config, name: str, x: Optional[Dict[str, Tensor]] = None) -> Case:
    """Fresh case ``name`` (new modules, queues, generators) on the inputs ``x`` (default: :func:`_inputs`)."""
    torch.manual_seed(cfg.seed)   # module initialisation (connectors, projectors, queues)
    x = _inputs(cfg) if x is None else x
    if name in ("kd", "cwd_logits", "cwd_feature", "skd", "ifvd", "at", "fitnet"):
        return _stateless(cfg, x, name)
    if name == "cirkd_batch_p2p":
        return _cirkd_batch(cfg, x)
    if name in ("cirkd_memory", "cirkd_enqueue"):
        return _cirkd_memory(cfg, x, enqueue_only=name == "cirkd_enqueue")
    if name == "afdcd_fd":
        return _afdcd_fd(cfg, x)
    if name == "afdcd_ctr":
        return _afdcd_ctr(cfg, x)
    raise KeyError(f"unknown case {name!r}; choose from {CASES}")


# ---------------------------------------------------------------------------------------------- measuring
def _step(side: Side, backward: bool) -> Dict[str, Tensor]:
    for t in side.leaves + side.params:
        t.grad = None
    out = side.run()
    if backward:
        sum(out.values()).backward()  # type: ignore[union-attr]
    return out


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def check_case(cfg: Config, name: str, rtol: float = 1e-4, x: Optional[Dict[str, Tensor]] = None) -> Dict[str, float]:
    """Assert kdlib == reference for case ``name`` (values, student gradients, queue state). Returns the values."""
    case = build_case(cfg, name, x)
    k_out = _step(case.kdlib, case.backward)
    r_out = _step(case.reference, case.backward)
    values: Dict[str, float] = {}
    if set(k_out) != set(r_out):
        raise AssertionError(f"{name}: kdlib terms {sorted(k_out)} != reference terms {sorted(r_out)}")
    for term in k_out:
        kv, rv = float(k_out[term].detach()), float(r_out[term].detach())
        values[term] = kv
        if not math.isclose(kv, rv, rel_tol=rtol, abs_tol=1e-7):
            raise AssertionError(f"{name}/{term}: kdlib {kv!r} != reference {rv!r} (rtol {rtol})")
    for i, (kl, rl) in enumerate(zip(case.kdlib.leaves, case.reference.leaves)):
        if kl.grad is None or rl.grad is None:
            raise AssertionError(f"{name}: no gradient reached student input {i}")
        scale = float(rl.grad.abs().max())
        torch.testing.assert_close(kl.grad, rl.grad, rtol=case.grad_rtol, atol=case.grad_rtol * scale + 1e-12,
                                   msg=lambda m: f"{name}: student gradient {i} differs: {m}")
    k_state, r_state = case.kdlib.state(), case.reference.state()
    for key in k_state:
        torch.testing.assert_close(k_state[key], r_state[key], rtol=1e-5, atol=1e-6,
                                   msg=lambda m: f"{name}: {key} after the enqueue differs: {m}")
    return values


def time_sides(sides: Sequence[Side], backward: bool, device: torch.device, warmup: int, repeats: int,
               min_time: float = 0.0, max_repeats: int = 200) -> List[float]:
    """Median seconds per step of each side, the sides' steps **interleaved** (A B A B ...).

    Interleaving exposes every side to the same machine state (clock, cache, other processes) over the same
    period, so a drift during the measurement cannot favour whichever side runs second. Each side runs
    ``warmup`` untimed steps, then at least ``repeats`` timed steps, more (up to ``max_repeats``) until every
    side has ``min_time`` seconds of timed steps.
    """
    for side in sides:
        for _ in range(warmup):
            _step(side, backward)
    times: List[List[float]] = [[] for _ in sides]

    def more() -> bool:
        return any(len(t) < repeats or (sum(t) < min_time and len(t) < max_repeats) for t in times)

    while more():
        for side, t in zip(sides, times):
            _sync(device)
            start = time.perf_counter()
            _step(side, backward)
            _sync(device)
            t.append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def cirkd_memory_gemm_floor(cfg: Config, repeats: int = 3) -> Tuple[float, str]:
    """Seconds of the matrix products any exact CIRKD memory loss performs, the reference included.

    For each contrast set V (K k_p and K k_r rows): student logits s V^T, teacher logits t V^T and the student
    gradient D V, with N_a ~ 0.9 B h w anchors (the inputs' labelled share), d = the teacher feature width.
    Timed as plain ``torch.mm`` on random tensors of those shapes, whole and in row blocks of 512 into reused
    buffers; the faster (median of ``repeats``) is the floor. ``reference time / floor`` bounds the speed-up any
    exact implementation can reach on this device.
    """
    mod_opts = cfg.cirkd_options
    k = cfg.num_classes
    d = cfg.pair.teacher_feature
    n_a = int(round(0.9 * cfg.batch * cfg.h * cfg.w))
    cols = [(int(mod_opts["pixel_contrast_size"]) // k + 1) * k, (int(mod_opts["region_contrast_size"]) // k + 1) * k]
    g = torch.Generator().manual_seed(cfg.seed)
    rows = torch.randn(n_a, d, generator=g).to(cfg.device)
    mats = [(torch.randn(c, d, generator=g).to(cfg.device), torch.randn(n_a, c, generator=g).to(cfg.device))
            for c in cols]

    def products_whole() -> None:
        for v, diff in mats:
            torch.mm(rows, v.t())
            torch.mm(rows, v.t())
            torch.mm(diff, v)

    block = 512
    bufs = [(torch.empty(block, v.shape[0], device=cfg.device), torch.empty(block, d, device=cfg.device))
            for v, _ in mats]

    def products_blocked() -> None:   # row blocks into reused buffers (cache-resident outputs, no allocation)
        for (v, diff), (out, grad) in zip(mats, bufs):
            for r0 in range(0, n_a, block):
                r1 = min(n_a, r0 + block)
                torch.mm(rows[r0:r1], v.t(), out=out[:r1 - r0])
                torch.mm(rows[r0:r1], v.t(), out=out[:r1 - r0])
                torch.mm(diff[r0:r1], v, out=grad[:r1 - r0])

    best = math.inf
    for products in (products_whole, products_blocked):
        products()
        times = []
        for _ in range(repeats):
            _sync(cfg.device)
            start = time.perf_counter()
            products()
            _sync(cfg.device)
            times.append(time.perf_counter() - start)
        best = min(best, statistics.median(times))
    what = f"3 products of ({n_a} x {d}) with ({d} x {cols[0]}) and 3 with ({d} x {cols[1]})"
    return best, what


def _cpu_peak_bytes(fn: Callable[[], object]) -> int:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "trace.json")
        prof.export_chrome_trace(path)
        with open(path) as fh:
            events = json.load(fh)["traceEvents"]
    mem = [e for e in events if e.get("name") == "[memory]" and e.get("args", {}).get("Device Type", 0) == 0]
    mem.sort(key=lambda e: (e["ts"], e["args"].get("Ev Idx", 0)))
    running = peak = 0
    for e in mem:
        running += int(e["args"].get("Bytes", 0))
        peak = max(peak, running)
    return peak


def peak_bytes(side: Side, backward: bool, device: torch.device) -> int:
    """Peak tensor memory of one step above what was allocated before it (see the module docstring)."""
    for t in side.leaves + side.params:
        t.grad = None
    if device.type == "cuda":
        _sync(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        _step(side, backward)
        _sync(device)
        return torch.cuda.max_memory_allocated(device) - before
    return _cpu_peak_bytes(lambda: _step(side, backward))


@dataclass
class Row:
    method: str
    term: str
    kdlib_ms: float
    reference_ms: float
    kdlib_peak_mb: float
    reference_peak_mb: float
    target: str

    @property
    def ratio(self) -> float:
        return self.reference_ms / self.kdlib_ms if self.kdlib_ms > 0 else float("inf")

    @property
    def verdict(self) -> str:
        need = 5.0 if self.target == "speed5" else 1.0
        speed_ok = self.ratio >= need
        tie = not speed_ok and need == 1.0 and self.ratio >= 0.95
        mem_ok = self.target != "speed+mem" or self.kdlib_peak_mb <= self.reference_peak_mb
        if speed_ok and mem_ok:
            return "met"
        if tie and mem_ok:
            return "tie (within 5%)"
        return "NOT met" + ("" if mem_ok else " (memory)")

    @property
    def target_text(self) -> str:
        return {"speed": ">=1x", "speed5": ">=5x", "speed+mem": ">=1x, peak <= ref"}[self.target]

    def cells(self) -> List[str]:
        return [self.method, self.term, f"{self.kdlib_ms:.2f}", f"{self.reference_ms:.2f}", f"{self.ratio:.2f}",
                f"{self.kdlib_peak_mb:.1f}", f"{self.reference_peak_mb:.1f}", self.target_text, self.verdict]


HEADER = ["method", "term", "kdlib ms", "reference ms", "ratio ref/kdlib", "kdlib peak MB", "reference peak MB",
          "target", "verdict"]


def format_table(rows: Sequence[Row]) -> str:
    cells = [HEADER] + [r.cells() for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(HEADER))]
    lines = ["  ".join(c[i].ljust(widths[i]) for i in range(len(HEADER))) for c in cells]
    lines.insert(1, "  ".join("-" * wd for wd in widths))
    return "\n".join(lines)


def format_markdown(rows: Sequence[Row], setting: str, notes: Sequence[str] = ()) -> str:
    from kdlib.engine.rundir import machine

    where = machine()
    out = [f"Setting: {setting}", "",
           f"Machine: {where['kind']}, {where['cpu_count']} cores, torch {where['torch']}, oneDNN {where['onednn']}"
           f" ({time.strftime('%Y-%m-%d')})", "", "| " + " | ".join(HEADER) + " |", "|" + " --- |" * len(HEADER)]
    out += ["| " + " | ".join(r.cells()) + " |" for r in rows]
    out += [line for note in notes for line in ("", note)]
    return "\n".join(out) + "\n"


def write_out(path: str, rows: Sequence[Row], setting: str, notes: Sequence[str] = ()) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if p.suffix.lower() == ".csv":
        with open(p, "w", newline="") as fh:
            wr = csv.writer(fh)
            wr.writerow(["# " + setting])
            wr.writerow(HEADER)
            wr.writerows(r.cells() for r in rows)
            wr.writerows(["# " + note] for note in notes)
    else:
        p.write_text(format_markdown(rows, setting, notes))


# ------------------------------------------------------------------------------------------------- main
def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:N (default auto)")
    p.add_argument("--batch", type=int, default=None, help="batch size (default: 8 on CUDA, 2 on CPU)")
    p.add_argument("--size", type=int, nargs=2, default=[64, 128], metavar=("H", "W"),
                   help="feature-map size h w (default 64 128 = a 512x1024 crop at 1/8)")
    p.add_argument("--scale", type=float, default=None,
                   help="factor on channel widths and CIRKD queue / contrast sizes (default: 1 on CUDA, 0.25 on CPU)")
    p.add_argument("--only", nargs="+", choices=CASES, metavar="NAME", help=f"run only these cases: {', '.join(CASES)}")
    p.add_argument("--repeats", type=int, default=3, help="timed steps per implementation (median; default 3)")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps first (default 1)")
    p.add_argument("--min-time", type=float, default=0.5,
                   help="keep repeating (up to 200 steps) until this many seconds were timed (default 0.5)")
    p.add_argument("--rtol", type=float, default=1e-4, help="relative tolerance of the value check (default 1e-4)")
    p.add_argument("--seed", type=int, default=0, help="seed of inputs, weights and random draws (default 0)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--check-only", action="store_true", help="run the agreement checks only, no timing")
    p.add_argument("--no-check", action="store_true", help="skip the agreement checks")
    p.add_argument("--out", default=None, help="also write the table here (.csv -> CSV, anything else -> markdown)")
    return p.parse_args(argv)


def make_config(args: argparse.Namespace) -> Config:
    if args.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(args.device)
    gpu = device.type == "cuda"
    batch = args.batch if args.batch is not None else (8 if gpu else 2)
    scale = args.scale if args.scale is not None else (1.0 if gpu else 0.25)
    return Config(device=device, batch=batch, h=args.size[0], w=args.size[1], scale=scale, seed=args.seed)


def main(argv: Optional[Sequence[str]] = None) -> List[Row]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = make_config(args)
    names = list(args.only or CASES)
    setting = cfg.describe()
    print(setting, flush=True)
    x = _inputs(cfg)
    if not args.no_check:
        for name in names:
            values = check_case(cfg, name, args.rtol, x)
            shown = ", ".join(f"{k} {v:.6g}" for k, v in values.items()) or "queues and pointers equal"
            print(f"check {name}: kdlib == reference ({shown})", flush=True)
    if args.check_only:
        return []
    rows: List[Row] = []
    for name in names:
        case = build_case(cfg, name, x)
        t_k, t_r = time_sides([case.kdlib, case.reference], case.backward, cfg.device, args.warmup, args.repeats,
                              args.min_time)
        m_k = peak_bytes(case.kdlib, case.backward, cfg.device)
        m_r = peak_bytes(case.reference, case.backward, cfg.device)
        row = Row(case.method, case.term, 1000 * t_k, 1000 * t_r, m_k / 2 ** 20, m_r / 2 ** 20, case.target)
        rows.append(row)
        print(f"  {name}: kdlib {row.kdlib_ms:.2f} ms, reference {row.reference_ms:.2f} ms, "
              f"x{row.ratio:.2f}, peak {row.kdlib_peak_mb:.1f} / {row.reference_peak_mb:.1f} MB", flush=True)
        del case
    notes: List[str] = []
    memory_rows = [r for r in rows if r.term.startswith("memory_p2p")]
    if memory_rows:
        floor, what = cirkd_memory_gemm_floor(cfg)
        ref_ms = memory_rows[0].reference_ms
        notes.append(f"CIRKD memory: the matrix products every exact implementation (the reference included) performs "
                     f"- {what} - take {1000 * floor:.2f} ms alone on this device, so no exact implementation can "
                     f"be more than {ref_ms / (1000 * floor):.2f}x faster than the reference here.")
    print()
    print(format_table(rows))
    for note in notes:
        print("\n" + note)
    if args.out:
        write_out(args.out, rows, setting, notes)
        print(f"\nwritten {args.out}")
    return rows


if __name__ == "__main__":
    main()
