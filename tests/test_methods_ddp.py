"""CIRKD's queues under real DDP collectives: 2 CPU processes (gloo) vs 1 process with the whole batch.

Each rank holds half of the global batch. After a few forward passes (each enqueues the all-gathered teacher
embeddings, labels and keys of both ranks, in rank order), both ranks must hold identical queues and pointers,
equal to those of a single process that saw the concatenated batch with the same random keys and slot draws.
"""
from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from kdlib.methods import PairSpec
from kdlib.methods.cirkd import CIRKD
from kdlib.models.output import SegOutput

PAIR = PairSpec(num_classes=5, student_feature=8, teacher_feature=16, student_c4=8, teacher_c4=16)
OPTIONS = dict(pixel_memory_size=40, region_memory_size=7, pixel_contrast_size=10, region_contrast_size=5,
               pixels_per_class=4)
STEPS, LOCAL_B, H, W = 3, 2, 6, 8


def global_batch(step: int):
    g = torch.Generator().manual_seed(100 + step)
    b = 2 * LOCAL_B
    s = torch.randn(b, PAIR.student_feature, H, W, generator=g)
    t = torch.randn(b, PAIR.teacher_feature, H, W, generator=g).relu()
    labels = torch.randint(-1, PAIR.num_classes, (b, 2 * H, 2 * W), generator=g)
    keys = torch.rand(b, H, W, generator=g)
    return s, t, labels, keys


def module() -> CIRKD:
    torch.manual_seed(0)                      # identical queue initialisation everywhere
    m = CIRKD(PAIR, ("memory_p2p", "memory_p2r"), **OPTIONS)
    m.generator = torch.Generator().manual_seed(7)   # identical slot draws on every rank
    return m


def run(m: CIRKD, rank: int, world: int):
    """STEPS forward passes on this rank's share; the per-pixel keys are fixed (not drawn) to compare runs."""
    for step in range(STEPS):
        s, t, labels, keys = global_batch(step)
        part = slice(rank * LOCAL_B, (rank + 1) * LOCAL_B) if world > 1 else slice(None)
        m.draw_pixel_keys = lambda shape, device, k=keys[part]: k.to(device)      # type: ignore[method-assign]
        out = m(SegOutput(logits=None, aux_logits=None, c4=None, feature=s[part].requires_grad_(True)),
                SegOutput(logits=None, aux_logits=None, c4=None, feature=t[part]), labels[part])
        (out["memory_p2p"] + out["memory_p2r"]).backward()
    return [m.pixel_queue, m.region_queue, m.pixel_queue_ptr, m.region_queue_ptr]


def worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        torch.set_num_threads(1)
        state = run(module(), rank, world)
        torch.save([x.clone() for x in state], os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_cirkd_queues_identical_on_both_ranks_and_equal_to_one_process(tmp_path):
    mp.spawn(worker, args=(2, str(tmp_path / "store"), str(tmp_path)), nprocs=2, join=True)
    rank0 = torch.load(tmp_path / "rank0.pt")
    rank1 = torch.load(tmp_path / "rank1.pt")
    single = run(module(), 0, 1)
    names = ["pixel_queue", "region_queue", "pixel_queue_ptr", "region_queue_ptr"]
    for name, a, b, c in zip(names, rank0, rank1, single):
        assert torch.equal(a, b), f"{name} differs between the ranks"
        torch.testing.assert_close(a, c, rtol=1e-6, atol=1e-7, msg=lambda m: f"{name}: 2 ranks vs 1 process: {m}")
    # the pointers moved (3 steps x 4 images per class present: 12 % 7 = 5 for the region queue)
    assert int(single[2].sum()) > 0 and int(single[3].sum()) > 0
