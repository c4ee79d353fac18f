"""Af-DCD (Fan et al., NeurIPS 2023) pure losses — docs/reference.md §3.4, official ``losses/ocmgd.py``.

* :func:`afdcd_fd_loss` — masked feature reconstruction L_fd (the align conv, mask and generator are the
  caller's module: this function takes the generated map);
* :func:`afdcd_omni_loss` — Omni-Contrasting (OC), exactly the released loss;
* :func:`afdcd_spatial_loss`, :func:`afdcd_channel_loss` — Spatial / Channel Contrasting (SC / CC). These
  were **never released**; their definitions here are kdlib's reading of the paper's description (docs/reference.md §3.4
  candidate definitions), normalised like OC. See each docstring.

Contrastive terms share one recipe: similarity ``s(u, v)`` between a student sample u (row) and teacher samples
v (columns), logits ``s / tau``, and per row the cross-entropy
``-log(exp(s_pos/tau) / (exp(s_pos/tau) + sum_neg exp(s_neg/tau)))``; the row losses are **summed and divided
by B*h'*w'** (h' x w' = the contrasted map size after pooling / cropping), as the released OC does.
Similarities (``similarity=``): ``'l1'`` = -||u - v||_1 (official), ``'l2'`` = -||u - v||_2 (Euclidean, not
squared), ``'cosine'`` = u.v / (max(||u||, 1e-8) max(||v||, 1e-8)).
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from kdlib.losses.common import check_4d, check_same_shape, compute_dtype, fp32_region

# the losses, and the pre-processing steps they share with kdlib.figures.similarity's patch matrices
__all__ = ["afdcd_fd_loss", "afdcd_omni_loss", "afdcd_spatial_loss", "afdcd_channel_loss", "check_groups",
           "check_options", "crop_to_patch", "pairwise_similarity", "pool_pair", "to_patch_samples"]

_SIMILARITIES = ("l1", "l2", "cosine")
_CROPS = ("topleft", "error")
_COS_EPS = 1e-8


def afdcd_fd_loss(generated: Tensor, t_feat: Tensor) -> Tensor:
    r"""Masked-feature-reconstruction distance :math:`L_{fd} = \frac{1}{B}\sum_{b,c,i,j}(G - F^T)^2`.

    Sum of squared differences over C*h*w, divided by the batch size only (official: ``MSELoss(sum) / B``;
    large magnitudes — the published lambda_fd ~ 1e-6 were tuned with this normalisation).

    Args:
        generated: G = generator(align(F^S) * mask), (B, C_t, h, w).
        t_feat: teacher feature (B, C_t, h, w); detached.

    Returns:
        scalar tensor.
    """
    check_4d("generated", generated)
    check_same_shape(("generated", "t_feat"), generated, t_feat)
    with fp32_region(generated):
        # fused MSE (sum): no (B, C, h, w) difference tensor is allocated or kept for backward
        sq_sum = F.mse_loss(compute_dtype(generated), compute_dtype(t_feat.detach()), reduction="sum")
        return sq_sum / generated.shape[0]


# ----------------------------------------------------------------------------------------------- helpers
def check_options(similarity: str, crop: Optional[str] = None) -> None:
    """Raise ``ValueError`` unless ``similarity`` (and ``crop``, if given) is one the losses accept."""
    if similarity not in _SIMILARITIES:
        raise ValueError(f"similarity must be one of {_SIMILARITIES}, got {similarity!r}")
    if crop is not None and crop not in _CROPS:
        raise ValueError(f"crop must be one of {_CROPS}, got {crop!r}")


def pool_pair(s: Tensor, t: Tensor, pool: Optional[int], strict: bool) -> Tuple[Tensor, Tensor]:
    """Max-pool both maps with kernel = stride = ``pool`` (floor mode, as ``F.max_pool2d(x, pool)``).

    ``pool`` None / 0 / 1: no pooling. ``strict``: raise if h or w is not a multiple of ``pool`` (floor
    pooling would silently drop the last rows / columns).
    """
    if pool is None or pool in (0, 1):
        return s, t
    if pool < 0:
        raise ValueError(f"pool must be a positive integer or None, got {pool}")
    h, w = s.shape[-2:]
    if h < pool or w < pool:
        raise ValueError(f"feature map {h}x{w} is smaller than the pooling window {pool}")
    if strict and (h % pool or w % pool):
        raise ValueError(f"feature map {h}x{w} is not a multiple of pool={pool} (crop='error'); "
                         f"use crop='topleft' to drop the remainder as the official max-pool does")
    return F.max_pool2d(s, pool), _max_pool_constant(t, pool)


def _max_pool_constant(x: Tensor, pool: int) -> Tensor:
    """``F.max_pool2d(x, pool)`` (floor mode) for a tensor outside autograd (the detached teacher map): the same
    values (a max is exact), as two strided max-reductions, rows then columns, with no argmax indices (CPU: several
    times faster than the pooling kernel). Falls back to ``F.max_pool2d`` when ``x`` needs a gradient."""
    if x.requires_grad:
        return F.max_pool2d(x, pool)
    b, c, h, w = x.shape
    hp, wp = h // pool, w // pool
    x = x[..., :hp * pool, :wp * pool]
    return x.reshape(b, c, hp, pool, wp * pool).amax(3).reshape(b, c, hp, wp, pool).amax(4)


def crop_to_patch(s: Tensor, t: Tensor, patch: int, crop: str) -> Tuple[Tensor, Tensor]:
    """Crop both maps to the top-left largest multiple of ``patch`` (or raise with ``crop='error'``)."""
    if patch <= 0:
        raise ValueError(f"patch must be a positive integer, got {patch}")
    h, w = s.shape[-2:]
    hc, wc = (h // patch) * patch, (w // patch) * patch
    if hc == 0 or wc == 0:
        raise ValueError(f"feature map {h}x{w} (after pooling) is smaller than one {patch}x{patch} patch")
    if (hc, wc) != (h, w):
        if crop == "error":
            raise ValueError(f"feature map {h}x{w} (after pooling) is not a multiple of the {patch}x{patch} "
                             f"patch (crop='error'); use crop='topleft' to keep the top-left {hc}x{wc} "
                             f"(official CamVid behaviour: 45x45 -> 44x44)")
        s, t = s[..., :hc, :wc], t[..., :hc, :wc]
    return s, t


# Working-set budget (elements) of one block of contrast logits: the patches are processed in blocks of at most
# this many (rows x columns) logits, through two reused buffers, and the gradient w.r.t. the student samples
# is formed during the forward pass (as the CIRKD relation losses do), so no logit-sized tensor is kept for
# backward. CPU blocks stay small (cache-friendly, below glibc's mmap threshold); on GPU big blocks amortise
# kernel launches.
_CUDA_BLOCK_ELEMENTS = 1 << 26
_CPU_BLOCK_ELEMENTS = 1 << 20


def _block_patches(device: torch.device, per_patch: int) -> int:
    budget = _CUDA_BLOCK_ELEMENTS if device.type == "cuda" else _CPU_BLOCK_ELEMENTS
    return max(1, budget // max(per_patch, 1))


def _unit(x: Tensor) -> Tensor:
    return x / x.norm(dim=-1, keepdim=True).clamp_min(_COS_EPS)


def pairwise_similarity(a: Tensor, b: Tensor, kind: str) -> Tensor:
    """Batched similarity (..., R, D) x (..., R', D) -> (..., R, R') (reference form; the losses use the
    fused :class:`_PatchContrast`, which computes the same values block by block)."""
    if kind == "l1":
        return -torch.cdist(a, b, p=1)
    if kind == "l2":
        # exact pairwise differences (the matmul shortcut loses precision for near-identical vectors)
        return -torch.cdist(a, b, p=2, compute_mode="donot_use_mm_for_euclid_dist")
    return torch.matmul(_unit(a), _unit(b).transpose(-1, -2))


def _contrast_rows_sum(sim: Tensor, tau: float, valid: Optional[Tensor] = None) -> Tensor:
    """Sum over rows of CE with the positive on the diagonal: sum_r [logsumexp_{valid c}(sim_rc/tau) - sim_rr/tau].

    sim (..., R, R); ``valid`` (R, R) bool marks the columns entering the denominator (diagonal included);
    None = all columns. Reference (autograd) form of :class:`_PatchContrast`.
    """
    logits = sim / tau
    pos = torch.diagonal(logits, dim1=-2, dim2=-1)
    if valid is not None:
        logits = logits.masked_fill(~valid, float("-inf"))
    return (torch.logsumexp(logits, dim=-1) - pos).sum()


class _PatchContrast(torch.autograd.Function):
    """``_contrast_rows_sum(pairwise_similarity(xs, xt, kind), tau, valid)`` fused, gradient formed in the forward pass.

    xs (P, R, D) student samples, xt (P, R, D) teacher samples (constant). ``kind``: 'l1' / 'l2' (sim = -cdist)
    or 'dot' (sim = xs xt^T; cosine passes unit vectors, the normalisation stays on the autograd graph).
    Per block of patches: logits = sim / tau (masked columns -inf) into a reused buffer; the loss is
    -sum diag(log_softmax(logits)) (= sum_r logsumexp_r - pos_r); with D = softmax(logits) - I the gradient is
    d/dsim = D / tau, pulled back through cdist (``_cdist_backward``, the op autograd would call) or the bmm.
    Nothing logit-sized outlives a block (no -inf-filled (P, R, R) tensor, no logsumexp backward).
    """

    @staticmethod
    def forward(ctx, xs: Tensor, xt: Tensor, kind: str, tau: float, valid: Optional[Tensor],  # type: ignore[override]
                want_grad: bool) -> Tensor:
        n, r, rc = xs.shape[0], xs.shape[1], xt.shape[1]
        step = min(n, _block_patches(xs.device, r * rc))
        logits = xs.new_empty(step, r, rc)
        work = xs.new_empty(step, r, rc)
        invalid = None if valid is None else ~valid
        grad = xs.new_empty(xs.shape) if want_grad else None
        total = xs.new_zeros(())
        p_norm = 1.0 if kind == "l1" else 2.0
        for p0 in range(0, n, step):
            p1 = min(n, p0 + step)
            a, b = xs[p0:p1], xt[p0:p1]
            lg, wk = logits[:p1 - p0], work[:p1 - p0]
            if kind == "dot":
                dist = None
                torch.bmm(a, b.transpose(1, 2), out=lg)
                torch.div(lg, tau, out=lg)
            else:
                dist = torch.cdist(a, b, p=p_norm, compute_mode="donot_use_mm_for_euclid_dist")
                torch.div(dist, -tau, out=lg)                    # (-dist) / tau
            if invalid is not None:
                lg.masked_fill_(invalid, float("-inf"))
            torch.log_softmax(lg, -1, out=wk)
            total -= torch.diagonal(wk, dim1=-2, dim2=-1).sum()
            if grad is None:
                continue
            torch.softmax(lg, -1, out=wk)
            torch.diagonal(wk, dim1=-2, dim2=-1).sub_(1.0)
            if dist is None:
                torch.bmm(wk.div_(tau), b, out=grad[p0:p1])
            else:
                # d/d dist = -(softmax - I) / tau
                grad[p0:p1] = torch.ops.aten._cdist_backward(wk.div_(-tau), a, b, p_norm, dist)
        ctx.save_for_backward(grad)
        return total

    @staticmethod
    def backward(ctx, grad_out: Tensor):  # type: ignore[override]
        (grad,) = ctx.saved_tensors
        return grad * grad_out, None, None, None, None, None


def _contrast_loss_sum(xs: Tensor, xt: Tensor, kind: str, tau: float, valid: Optional[Tensor] = None) -> Tensor:
    """= ``_contrast_rows_sum(pairwise_similarity(xs, xt, kind), tau, valid)`` (xt constant), fused and row-blocked."""
    xt = xt.detach()
    if kind == "cosine":
        xs, xt, kind = _unit(xs), _unit(xt), "dot"
    want_grad = torch.is_grad_enabled() and xs.requires_grad
    return _PatchContrast.apply(xs.contiguous(), xt.contiguous(), kind, tau, valid, want_grad)


def to_patch_samples(x: Tensor, patch: int, groups: int) -> Tensor:
    """(B, C, H, W) -> (B * H/P * W/P, P*P*M, C/M); sample index n*M + g, n = row-major position in the patch."""
    b, c, h, w = x.shape
    p, m = patch, groups
    x = x.reshape(b, m, c // m, h // p, p, w // p, p)        # b, g, ch, py, iy, px, ix
    x = x.permute(0, 3, 5, 4, 6, 1, 2)                        # b, py, px, iy, ix, g, ch
    return x.reshape(b * (h // p) * (w // p), p * p * m, c // m)


def check_groups(c: int, groups: int) -> None:
    """Raise ``ValueError`` unless ``c`` channels split into ``groups`` equal groups (M divides C)."""
    if groups <= 0 or c % groups:
        raise ValueError(f"the channel count {c} must be divisible by groups={groups}")


# ------------------------------------------------------------------------------------------------ losses
def afdcd_omni_loss(s: Tensor, t: Tensor, groups: int = 16, patch: int = 4, pool: Optional[int] = 4,
                    tau: float = 0.07, similarity: str = "l1", crop: str = "topleft") -> Tensor:
    r"""Omni-Contrasting (OC), the released Af-DCD contrastive loss.

    1. Max-pool both maps with kernel = stride = ``pool`` (``None``: no pooling — the official CamVid path).
    2. Keep the top-left largest multiple of ``patch`` (``crop='topleft'``; the official CamVid 45x45 -> 44x44
       crop generalised) or raise a ValueError (``crop='error'``, which also rejects a map that is not a
       multiple of ``pool``). h' x w' = the resulting map size.
    3. Non-overlapping ``patch`` x ``patch`` patches; channels split into M = ``groups`` contiguous groups of
       C/M. Each patch gives N^2*M samples (position n row-major in the patch, group g), index n*M + g.
    4. Per patch, similarity s(student sample, teacher sample) (``'l1'`` = -L1 distance, official).
       Row (n, g): positive = teacher (n, g); negatives = every teacher sample with group != g (any position,
       position n included: N^2(M-1) of them); teacher samples of group g at other positions are excluded.
    5. :math:`L_{oc} = \frac{1}{B h' w'}\sum_{rows} -\log\frac{e^{s_{pos}/\tau}}{e^{s_{pos}/\tau} +
       \sum_{neg} e^{s_{neg}/\tau}}` (= M x mean row CE).

    Vectorised over all patches of the batch at once (one (P, N^2 M, N^2 M) similarity tensor).

    Args:
        s: generated student map G (B, C, h, w) (the official code contrasts the *reconstructed* map).
        t: teacher feature (B, C, h, w), no normalisation; detached.
        groups: M (16); C must be divisible by M.
        patch: N (4).
        pool: max-pool size (4); None (or 0) = no pooling.
        tau: temperature (0.07).
        similarity: 'l1' | 'l2' | 'cosine'.
        crop: 'topleft' | 'error'.

    Returns:
        scalar tensor.
    """
    check_4d("s", s)
    check_same_shape(("s", "t"), s, t)
    check_options(similarity, crop)
    check_groups(s.shape[1], groups)
    with fp32_region(s):
        s_, t_ = pool_pair(compute_dtype(s), compute_dtype(t.detach()), pool, strict=crop == "error")
        s_, t_ = crop_to_patch(s_, t_, patch, crop)
        b, _, h, w = s_.shape
        xs = to_patch_samples(s_, patch, groups)
        xt = to_patch_samples(t_, patch, groups)
        g = torch.arange(patch * patch * groups, device=xs.device) % groups
        valid = (g.view(-1, 1) != g.view(1, -1)) | torch.eye(g.numel(), dtype=torch.bool, device=xs.device)
        return _contrast_loss_sum(xs, xt, similarity, tau, valid) / (b * h * w)   # (n_patches, R, R) blocks


def afdcd_spatial_loss(s: Tensor, t: Tensor, patch: int = 4, pool: Optional[int] = 4, tau: float = 0.07,
                       similarity: str = "l1", crop: str = "topleft") -> Tensor:
    r"""Spatial Contrasting (SC) — **not released by the authors; kdlib's definition**.

    Definition (docs/reference.md §3.4 candidate, from the paper's description and README figure: SC samples are
    :math:`F_{i,j}`, positives the same absolute position, negatives the other positions of a local patch):
    pool and crop exactly as :func:`afdcd_omni_loss`; inside every non-overlapping N x N patch the samples are
    the full C-dim pixel vectors; for student pixel n the positive is the teacher vector at n and the negatives
    are the teacher vectors at the other N^2 - 1 pixels of the same patch:

    .. math::
        L_{sc} = \frac{1}{B h' w'}\sum_{patches}\sum_{n=1}^{N^2}
                 -\log\frac{e^{s(u_n, v_n)/\tau}}{\sum_{m=1}^{N^2} e^{s(u_n, v_m)/\tau}}

    Normalised like OC (row sum / (B h' w')); with one row per pixel this is the mean row CE.

    Args / returns: as :func:`afdcd_omni_loss` (no ``groups``).
    """
    check_4d("s", s)
    check_same_shape(("s", "t"), s, t)
    check_options(similarity, crop)
    with fp32_region(s):
        s_, t_ = pool_pair(compute_dtype(s), compute_dtype(t.detach()), pool, strict=crop == "error")
        s_, t_ = crop_to_patch(s_, t_, patch, crop)
        b, _, h, w = s_.shape
        xs = to_patch_samples(s_, patch, 1)                                  # (n_patches, N^2, C)
        xt = to_patch_samples(t_, patch, 1)
        return _contrast_loss_sum(xs, xt, similarity, tau) / (b * h * w)


def afdcd_channel_loss(s: Tensor, t: Tensor, groups: int = 16, pool: Optional[int] = 4, tau: float = 0.07,
                       similarity: str = "l1") -> Tensor:
    r"""Channel Contrasting (CC) — **not released by the authors; kdlib's definition**.

    Definition (docs/reference.md §3.4 candidate, from the paper's description: CC samples are :math:`F_{i,j,k}`, channel
    partitions of one pixel): max-pool both maps with kernel = stride = ``pool`` (floor mode, as OC's official
    pooling; None = none; no patch, so no crop is needed); split the C channels of every pixel into M = ``groups``
    contiguous groups of C/M; for student group g of pixel (i, j) the positive is the teacher's group g of the
    same pixel and the negatives are the teacher's other M - 1 groups of the same pixel:

    .. math::
        L_{cc} = \frac{1}{B h' w'}\sum_{b,i,j}\sum_{g=1}^{M}
                 -\log\frac{e^{s(u_g, v_g)/\tau}}{\sum_{k=1}^{M} e^{s(u_g, v_k)/\tau}}

    Normalised like OC (row sum / (B h' w') = M x mean row CE).

    Args / returns: as :func:`afdcd_omni_loss` (no ``patch`` / ``crop``).
    """
    check_4d("s", s)
    check_same_shape(("s", "t"), s, t)
    check_options(similarity)
    check_groups(s.shape[1], groups)
    with fp32_region(s):
        s_, t_ = pool_pair(compute_dtype(s), compute_dtype(t.detach()), pool, strict=False)
        b, c, h, w = s_.shape
        xs = s_.reshape(b, groups, c // groups, h * w).permute(0, 3, 1, 2).reshape(b * h * w, groups, -1)
        xt = t_.reshape(b, groups, c // groups, h * w).permute(0, 3, 1, 2).reshape(b * h * w, groups, -1)
        return _contrast_loss_sum(xs, xt, similarity, tau) / (b * h * w)       # (B*h'*w', M, M) blocks
