"""CIRKD (Yang et al., CVPR 2022) pure losses — docs/reference.md §3.3.

* :func:`cirkd_batch_p2p_loss` — mini-batch pixel-to-pixel relation distillation over all ordered image pairs
  of a relation group, as one batched computation;
* :func:`cirkd_memory_losses` — memory-based pixel-to-pixel and pixel-to-region distillation against the
  teacher's class-wise queues (sampling of the queue slots and the enqueue are the caller's job).
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from kdlib.losses.common import (check_4d, check_same_shape, compute_dtype, fp32_region, l2_normalize,
                                  pixel_rows, resize_labels_nearest)

__all__ = ["cirkd_batch_p2p_loss", "cirkd_memory_losses", "cirkd_enqueue"]

# Working-set budget (elements) of one block of relation logits. The relation losses below never build a whole
# (rows x columns) logit matrix: rows are processed in blocks of at most this many logits, through three
# reused buffers, and the gradient is accumulated on the (rows, C) features during the forward pass, so no
# logit-sized tensor is kept for backward. CPU blocks are small (2^19 floats = 2 MiB; three buffers 6 MiB):
# the ~8 element-wise passes over a block (log-softmax, exp, difference, ...) then run from cache instead of
# DRAM - measured on a 2-core EPYC (2 MiB L2 per core, 32 MiB L3): the memory KL at 16384 x 1026 logits
# 80 ms with 2^22-element blocks, 54 ms with 2^19; 2^18 .. 2^20 are within 5 %. On GPU big blocks amortise
# kernel launches.
_P2P_CHUNK_ELEMENTS = 1 << 26
_CPU_BLOCK_ELEMENTS = 1 << 19


def _block_rows(device: torch.device, n_cols: int) -> int:
    budget = _P2P_CHUNK_ELEMENTS if device.type == "cuda" else min(_P2P_CHUNK_ELEMENTS, _CPU_BLOCK_ELEMENTS)
    return max(1, budget // max(n_cols, 1))


def _relation_kl(s_rows: Tensor, t_rows: Tensor, s_cols: Tensor, t_cols: Tensor, scale: float,
                 grad_rows: Optional[Tensor], grad_cols: Optional[Tensor]) -> Tensor:
    """sum_a KL(softmax(scale t_rows[a] t_cols^T) || softmax(scale s_rows[a] s_cols^T)), in row blocks.

    s_rows (R, C_s), s_cols (N, C_s), t_rows (R, C_t), t_cols (N, C_t), all plain tensors (no autograd).
    If given, ``grad_rows`` (R, C_s) / ``grad_cols`` (N, C_s) are incremented in place by the gradient of the
    sum w.r.t. s_rows / s_cols: with D = softmax(student logits) - softmax(teacher logits) (per row),
    d/ds_rows = scale D s_cols and d/ds_cols = scale D^T s_rows. Returns the sum as a 0-dim tensor.
    """
    n_rows, n_cols = s_rows.shape[0], s_cols.shape[0]
    step = min(n_rows, _block_rows(s_rows.device, n_cols))
    bufs = [s_rows.new_empty(step, n_cols) for _ in range(3)]
    total = s_rows.new_zeros(())
    for r0 in range(0, n_rows, step):
        r1 = min(n_rows, r0 + step)
        logits, log_ps, log_pt = (b[:r1 - r0] for b in bufs)
        torch.addmm(logits, s_rows[r0:r1], s_cols.t(), beta=0, alpha=scale, out=logits)
        torch.log_softmax(logits, 1, out=log_ps)
        torch.addmm(logits, t_rows[r0:r1], t_cols.t(), beta=0, alpha=scale, out=logits)
        torch.log_softmax(logits, 1, out=log_pt)
        pt = torch.exp(log_pt, out=logits)
        total += log_pt.sub_(log_ps).mul_(pt).sum()    # sum pt (log pt - log ps), element-wise difference first
        if grad_rows is None and grad_cols is None:
            continue
        diff = log_ps.exp_().sub_(pt)                   # ps - pt
        if grad_rows is not None:
            grad_rows[r0:r1].addmm_(diff, s_cols, alpha=scale)
        if grad_cols is not None:
            grad_cols.addmm_(diff.t(), s_rows[r0:r1], alpha=scale)
    return total


class _BatchP2PKL(torch.autograd.Function):
    """Sum over n groups of the per-group mini-batch p2p losses; s (n, G, A, C_s) normalised, t constant."""

    @staticmethod
    def forward(ctx, s: Tensor, t: Tensor, tau: float, want_grad: bool) -> Tensor:  # type: ignore[override]
        n, g_size, a = s.shape[:3]
        grad = torch.zeros_like(s) if want_grad else None
        total = s.new_zeros(())
        for gi in range(n):
            for i in range(g_size):
                for j in range(g_size):
                    gr = None if grad is None else grad[gi, i]
                    gc = None if grad is None else grad[gi, j]
                    total += _relation_kl(s[gi, i], t[gi, i], s[gi, j], t[gi, j], 1.0 / tau, gr, gc)
        norm = g_size * g_size * a
        if grad is not None:
            grad.div_(norm)
        ctx.save_for_backward(grad)
        return total / norm

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor):  # type: ignore[override]
        (grad,) = ctx.saved_tensors
        return grad * grad_out, None, None, None


class _MemoryKL(torch.autograd.Function):
    """T_c^2 / N_a * sum_a KL(softmax(t_a V^T / (tau T_c)) || softmax(s_a V^T / (tau T_c))); V, t constant."""

    @staticmethod
    def forward(ctx, s: Tensor, t: Tensor, v: Tensor, tau: float, kd_temperature: float,  # type: ignore[override]
                want_grad: bool) -> Tensor:
        grad = torch.zeros_like(s) if want_grad else None
        total = _relation_kl(s, t, v, v, 1.0 / (tau * kd_temperature), grad, None)
        norm = kd_temperature ** 2 / s.shape[0]
        if grad is not None:
            grad.mul_(norm)
        ctx.save_for_backward(grad)
        return total * norm

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor):  # type: ignore[override]
        (grad,) = ctx.saved_tensors
        return grad * grad_out, None, None, None, None, None


def cirkd_batch_p2p_loss(s_feat: Tensor, t_feat: Tensor, tau: float = 0.1,
                         group_size: Optional[int] = None) -> Tensor:
    r"""CIRKD mini-batch pixel-to-pixel relation distillation.

    Per-pixel L2 normalisation over channels (``F.normalize``, eps 1e-12) gives :math:`\hat F^S_i, \hat F^T_i
    \in R^{A \times C}` (A = h*w; student and teacher widths may differ, no projection). For every **ordered**
    pair (i, j) of images of a relation group of G images, self pairs included:
    :math:`S^S_{ij} = \hat F^S_i (\hat F^S_j)^\top \in R^{A\times A}` (likewise :math:`S^T_{ij}`), and

    .. math::
        L_{group} = \frac{1}{G^2}\sum_{i,j}\frac{1}{A}\sum_{a=1}^{A}
            \mathrm{KL}\big(\sigma(S^T_{ij,a,:}/\tau)\,\|\,\sigma(S^S_{ij,a,:}/\tau)\big)

    — KL(teacher || student) as in the official code (the paper writes the other direction), batchmean over
    the A rows, mean over the G^2 pairs, **no** tau^2 factor.

    Computed by a fused autograd function: per pair, blocks of rows of the A x A logits (at most 2^22 on CPU,
    2^26 on CUDA) go through three reused buffers, and the gradient w.r.t. the normalised features is
    accumulated during the forward pass, so memory is O(block + B*A*C) instead of O(pairs * A^2) and backward
    is one multiplication.

    Args:
        s_feat: student feature (B, C_s, h, w).
        t_feat: teacher feature (B, C_t, h, w); detached.
        tau: temperature (0.1).
        group_size: images per relation group. The batch is split into consecutive groups of that many
            images (the last one may be smaller) and the per-group losses are averaged with equal weights.
            The official setting is the 2 images on one GPU (``group_size=2`` for a batch holding several GPUs'
            worth); ``None`` = the whole batch is one group.

    Returns:
        scalar tensor.
    """
    check_4d("s_feat", s_feat)
    check_4d("t_feat", t_feat)
    check_same_shape(("s_feat", "t_feat"), s_feat, t_feat, dims=(0, 2, 3))
    if group_size is not None and group_size <= 0:
        raise ValueError(f"group_size must be a positive integer or None, got {group_size}")
    b = s_feat.shape[0]
    g = b if group_size is None else min(int(group_size), b)
    with fp32_region(s_feat):
        s = l2_normalize(compute_dtype(s_feat), dim=1).flatten(2).transpose(1, 2)           # (B, A, C_s)
        t = l2_normalize(compute_dtype(t_feat.detach()), dim=1).flatten(2).transpose(1, 2)  # (B, A, C_t)
        s, t = s.contiguous(), t.contiguous()
        want_grad = torch.is_grad_enabled() and s.requires_grad
        n_full, rem = divmod(b, g)
        total = s.new_zeros(())
        if n_full:
            m = n_full * g
            total = total + _BatchP2PKL.apply(s[:m].reshape(n_full, g, *s.shape[1:]),
                                              t[:m].reshape(n_full, g, *t.shape[1:]), tau, want_grad)
        if rem:
            total = total + _BatchP2PKL.apply(s[b - rem:].unsqueeze(0), t[b - rem:].unsqueeze(0), tau, want_grad)
        return total / (n_full + (1 if rem else 0))


def _gather_contrast(queue: Tensor, idx: Tensor) -> Tensor:
    """queue (K, N, d), idx (k,) -> (K*k, d): slots ``idx`` of every class, class-major; detached."""
    if queue.dim() != 3:
        raise ValueError(f"queues must be (K, N, d), got shape {tuple(queue.shape)}")
    if idx.dim() != 1:
        raise ValueError(f"slot indices must be 1-D, got shape {tuple(idx.shape)}")
    q = queue.detach().index_select(1, idx.to(device=queue.device, dtype=torch.long))
    return q.reshape(-1, q.shape[-1])


def cirkd_memory_losses(s_emb: Tensor, t_emb: Tensor, labels: Tensor, pixel_queue: Tensor,
                        region_queue: Tensor, pixel_idx: Tensor, region_idx: Tensor, tau: float = 0.1,
                        kd_temperature: float = 1.0, ignore_index: int = -1) -> Tuple[Tensor, Tensor]:
    r"""CIRKD memory-based pixel-to-pixel (p2p) and pixel-to-region (p2r) distillation.

    1. :math:`\hat s = \mathrm{normalize}(s_{emb})`, :math:`\hat t = \mathrm{normalize}(t_{emb})` per pixel
       over the d channels (``F.normalize``, eps 1e-12).
    2. Labels resized to (h, w) by nearest (official); anchors = the N_a pixels of the whole batch with
       label != ``ignore_index``.
    3. Contrast sets :math:`V_p = [Q_p[0, idx_p]; \dots; Q_p[K-1, idx_p]] \in R^{K k_p \times d}` (class-major,
       the same slot indices for every class) and likewise :math:`V_r` from the region queue.
    4. :math:`P^S = \hat s V^\top/\tau`, :math:`P^T = \hat t V^\top/\tau` (anchors as rows), and with
       :math:`T_c` = ``kd_temperature``:

    .. math::
        L = T_c^2\,\frac{1}{N_a}\sum_{a}\mathrm{KL}\big(\sigma(P^T_a/T_c)\,\|\,\sigma(P^S_a/T_c)\big)

    for V_p (-> p2p) and V_r (-> p2r). Effective temperature tau*T_c. No enqueue happens here; the official
    module enqueues the current teacher embeddings *before* sampling, which the caller reproduces by
    enqueueing first.

    If no pixel is a valid anchor both terms are ``0 * (s_emb ** 2).mean()``: zero, yet connected to the
    graph so that ``backward()`` works (official behaviour, with the [C0] arity bug fixed).

    Args:
        s_emb: student embedding after the projection head, **before** normalisation, (B, d, h, w).
        t_emb: teacher feature (B, d, h, w), un-normalised; detached.
        labels: (B, H, W) int64 at any resolution.
        pixel_queue: (K, N_p, d) pixel queue of normalised teacher embeddings; detached.
        region_queue: (K, N_r, d) region queue; detached.
        pixel_idx: (k_p,) int64 sampled pixel-queue slots (shared by all classes).
        region_idx: (k_r,) int64 sampled region-queue slots.
        tau: contrast temperature (0.1).
        kd_temperature: KD temperature T_c (1.0).
        ignore_index: ignore label (-1).

    Returns:
        (p2p, p2r) scalar tensors.
    """
    check_4d("s_emb", s_emb)
    check_4d("t_emb", t_emb)
    check_same_shape(("s_emb", "t_emb"), s_emb, t_emb)
    d = s_emb.shape[1]
    for name, q in (("pixel_queue", pixel_queue), ("region_queue", region_queue)):
        if q.dim() != 3 or q.shape[-1] != d:
            raise ValueError(f"{name} must be (K, N, d) with d={d}, got {tuple(q.shape)}")
    if labels.dim() != 3 or labels.shape[0] != s_emb.shape[0]:
        raise ValueError(f"labels must be (B, H, W) with B={s_emb.shape[0]}, got {tuple(labels.shape)}")
    with fp32_region(s_emb):
        t_hat = l2_normalize(compute_dtype(t_emb.detach()), dim=1)
        lab = resize_labels_nearest(labels.to(s_emb.device), tuple(s_emb.shape[-2:]))
        return memory_losses_normalised(s_emb, t_hat, lab, pixel_queue, region_queue, pixel_idx, region_idx, tau,
                                        kd_temperature, ignore_index)


def memory_losses_normalised(s_emb: Tensor, t_hat: Tensor, labels_small: Tensor, pixel_queue: Tensor,
                             region_queue: Tensor, pixel_idx: Tensor, region_idx: Tensor, tau: float = 0.1,
                             kd_temperature: float = 1.0, ignore_index: int = -1) -> Tuple[Tensor, Tensor]:
    """:func:`cirkd_memory_losses` after its input preparation (no checks): ``t_hat`` (B, d, h, w) is the teacher
    map already L2-normalised per pixel and ``labels_small`` (B, h, w) the labels already resized to it.

    Lets the CIRKD module normalise the teacher map and resize the labels once for both the enqueue and the
    losses (the values are those :func:`cirkd_memory_losses` computes itself).
    """
    d = s_emb.shape[1]
    with fp32_region(s_emb):
        s = compute_dtype(s_emb)
        anchors = (labels_small.reshape(-1) != ignore_index).nonzero().squeeze(1)
        if anchors.numel() == 0:
            zero = 0.0 * s.pow(2).mean()
            return zero, zero.clone()
        # index_select, not boolean-mask indexing: the same rows, but its backward is an index_add instead of an
        # accumulating index_put (measured 0.25 vs 3.5 ms for 16k x 64 rows on 2 CPU cores)
        s_hat = pixel_rows(l2_normalize(s, dim=1)).index_select(0, anchors)                  # (N_a, d)
        t_rows = pixel_rows(t_hat.detach().to(s_hat.dtype)).index_select(0, anchors)
        losses = []
        for queue, idx in ((pixel_queue, pixel_idx), (region_queue, region_idx)):
            v = compute_dtype(_gather_contrast(queue, idx)).to(s_hat.dtype).contiguous()         # (K*k, d)
            # fused: row blocks of the (N_a, K*k) logits, gradient w.r.t. s_hat formed in the forward pass
            losses.append(_MemoryKL.apply(s_hat, t_rows, v, tau, kd_temperature,
                                          torch.is_grad_enabled() and s_hat.requires_grad))
        return losses[0], losses[1]


def _last_write_wins(rows: Tensor, cols: Tensor, order: Tensor, n_cols: int) -> Tensor:
    """Mask keeping, among writes aimed at the same (row, col) slot, only the one with the largest ``order``.

    Reproduces the sequential semantics of the official per-image loop (a later image overwrites an earlier
    one) with a single scatter; ``index_put_`` alone is undefined for duplicate indices.
    """
    flat = rows * n_cols + cols
    winner = torch.full((int(flat.max().item()) + 1,), -1, dtype=order.dtype, device=order.device)
    winner.scatter_reduce_(0, flat, order, reduce="amax")
    return order == winner[flat]


@torch.no_grad()
def cirkd_enqueue(pixel_queue: Tensor, region_queue: Tensor, pixel_ptr: Tensor, region_ptr: Tensor,
                  t_emb_normalised: Tensor, labels_small: Tensor, pixel_choice: Tensor, ignore_index: int = -1,
                  pixels_per_class: int = 16, pixel_queue_bug: bool = False) -> None:
    r"""Enqueue teacher embeddings into CIRKD's class-wise queues, in place (docs/reference.md §3.3 (b)/(c)).

    Semantics = the official per-image, per-class loop, processed in image order b = 0..B-1 (pass the
    all-gathered tensors under DDP), vectorised over images and classes:

    * **region queue**: for every image b and class c present in it (c in [0, K); other labels, the ignore
      label included, are skipped), the mean of that image's normalised class-c embeddings, re-normalised, is
      written at ``region_ptr[c]``, then ``region_ptr[c] = (region_ptr[c] + 1) % N_r``.
    * **pixel queue**: K_c = min(n_c, ``pixels_per_class``) embeddings of class c (n_c = its pixel count in
      image b), normalised, are written at slots [ptr, ptr + K_c) with ``ptr = pixel_ptr[c]``; if
      ``ptr + K_c >= N_p`` they go to the **last K_c slots** instead and ``pixel_ptr[c] = 0``, otherwise
      ``pixel_ptr[c] = (ptr + K_c) % N_p``.
    * **which pixels**: ``pixel_choice`` (B, h, w) holds one random key per pixel (e.g. ``torch.rand``) drawn
      by the caller. Intended behaviour (default): the K_c class-c pixels with the smallest keys, in increasing
      key order — the first K_c of a uniform random permutation of the class-c pixels.
      ``pixel_queue_bug=True`` reproduces the released code, which draws a permutation of 0..n_c-1 and uses it
      as raster positions of the whole image: the K_c positions among 0..n_c-1 with the smallest keys,
      whatever their labels. The region queue is correct in both modes.

    Writes that hit the same slot within one call keep the later one (image order, then key order), as the
    sequential loop does.

    Args:
        pixel_queue: (K, N_p, d) buffer, modified in place.
        region_queue: (K, N_r, d) buffer, modified in place.
        pixel_ptr: (K,) int64 write pointers, modified in place.
        region_ptr: (K,) int64 write pointers, modified in place.
        t_emb_normalised: teacher embeddings (B, d, h, w), L2-normalised per pixel by the caller (not
            normalised again here: a whole-map pass; every *written* vector - pixel embedding or region mean -
            is re-normalised, as in the official code).
        labels_small: (B, h, w) int64 labels at embedding resolution (nearest-resized by the caller).
        pixel_choice: (B, h, w) float random keys.
        ignore_index: ignore label (-1).
        pixels_per_class: pixels per class per image (official 16).
        pixel_queue_bug: reproduce the official pixel-position bug.
    """
    check_4d("t_emb_normalised", t_emb_normalised)
    k_cls, n_p, d = pixel_queue.shape
    n_r = region_queue.shape[1]
    b, d_t, h, w = t_emb_normalised.shape
    if d_t != d or region_queue.shape[0] != k_cls or region_queue.shape[2] != d:
        raise ValueError(f"queues {tuple(pixel_queue.shape)} / {tuple(region_queue.shape)} do not match "
                         f"embeddings {tuple(t_emb_normalised.shape)}")
    if tuple(labels_small.shape) != (b, h, w) or tuple(pixel_choice.shape) != (b, h, w):
        raise ValueError(f"labels_small and pixel_choice must be (B, h, w) = {(b, h, w)}, got "
                         f"{tuple(labels_small.shape)} and {tuple(pixel_choice.shape)}")
    if pixels_per_class <= 0:
        raise ValueError(f"pixels_per_class must be positive, got {pixels_per_class}")
    dev = pixel_queue.device
    a = h * w
    with fp32_region(t_emb_normalised):
        f = compute_dtype(t_emb_normalised).to(dev).flatten(2).transpose(1, 2)  # (B, A, d), already normalised
        lab = labels_small.to(dev).reshape(b, a)
        lab = torch.where(lab == ignore_index, torch.full_like(lab, -1), lab)
        classes = torch.arange(k_cls, device=dev)
        member = lab.unsqueeze(1) == classes.view(1, -1, 1)                  # (B, K, A)
        counts = member.sum(dim=2)                                           # (B, K)
        present = counts > 0

        # ---- region queue: one re-normalised class mean per (image, class present)
        means = torch.bmm(member.to(f.dtype), f) / counts.clamp_min(1).unsqueeze(-1).to(f.dtype)   # (B, K, d)
        regions = l2_normalize(means, dim=2)
        seq = torch.cumsum(present.long(), dim=0) - present.long()          # earlier images holding class c
        r_slots = (region_ptr.to(dev).view(1, -1) + seq) % n_r                # (B, K)
        bi, ci = present.nonzero(as_tuple=True)                              # image-major order
        if bi.numel():
            rs = r_slots[bi, ci]
            keep = _last_write_wins(ci, rs, bi, n_r)
            region_queue.index_put_((ci[keep], rs[keep]), regions[bi[keep], ci[keep]].to(region_queue.dtype))
        region_ptr.copy_((region_ptr.to(dev) + present.sum(dim=0)) % n_r)

        # ---- pixel queue: which pixels
        k_take = counts.clamp(max=pixels_per_class)                          # (B, K)
        m = min(pixels_per_class, a)
        positions = torch.arange(a, device=dev)
        eligible = (positions.view(1, 1, -1) < counts.unsqueeze(-1)) if pixel_queue_bug else member
        keys = compute_dtype(pixel_choice).to(dev).reshape(b, 1, a).expand(b, k_cls, a)
        keys = keys.masked_fill(~eligible, float("inf"))
        chosen = keys.topk(m, dim=-1, largest=False, sorted=True).indices    # (B, K, m) raster positions
        valid = torch.arange(m, device=dev).view(1, 1, -1) < k_take.unsqueeze(-1)

        # ---- pixel queue: where (the official pointer rule, scanned over images, vectorised over classes;
        # one round per pointer reset, usually a single round)
        ptr = pixel_ptr.to(dev).clone()
        kk = k_take.t()                                                      # (K, B)
        start = torch.zeros_like(kk)
        done = kk == 0
        img = torch.arange(b, device=dev).view(1, -1)
        while not bool(done.all()):
            k_rem = torch.where(done, torch.zeros_like(kk), kk)
            cum = ptr.view(-1, 1) + torch.cumsum(k_rem, dim=1) - k_rem      # start if no reset
            reset = (~done) & (cum + kk >= n_p)
            has_reset = reset.any(dim=1)
            first = torch.where(has_reset, reset.long().argmax(dim=1), torch.full_like(ptr, b))
            before = (~done) & (img < first.view(-1, 1))
            at = (~done) & (img == first.view(-1, 1))
            start = torch.where(before, cum, start)
            start = torch.where(at, n_p - kk, start)
            ptr = torch.where(has_reset, torch.zeros_like(ptr), (ptr + (k_rem * before).sum(dim=1)) % n_p)
            done = done | before | at
        pixel_ptr.copy_(ptr)

        bi, ci, ji = valid.nonzero(as_tuple=True)
        if bi.numel():
            slots = start[ci, bi] + ji
            order = bi * m + ji
            keep = _last_write_wins(ci, slots, order, n_p)
            bi, ci, ji, slots = bi[keep], ci[keep], ji[keep], slots[keep]
            vec = f[bi, chosen[bi, ci, ji]]                                  # (n, d)
            pixel_queue.index_put_((ci, slots), l2_normalize(vec, dim=1).to(pixel_queue.dtype))
