"""Naive reference implementations of every kdlib distillation loss, structured like the official code.

Written for ``benchmarks/losses.py`` from the description of the official code in docs/reference.md (§3.2 KD,
§3.3 CIRKD, §3.4 Af-DCD, §3.5 baselines, §6.4 "Python loops"); nothing here is copied from the official
repositories and nothing is imported from kdlib. The point is a *structural* baseline for the speed / memory
comparison, and an independent second implementation for a value check:

* CIRKD mini-batch p2p: one Python loop over the relation groups (one "GPU" = 2 images each) and a double
  loop over the ordered image pairs (i, j), each pair an (A x A) similarity map and ``F.kl_div(batchmean)``;
* CIRKD memory: the official per-image, per-class enqueue loop (``torch.unique`` of the labels, one region mean
  and one pixel write per class present, ``int(ptr)`` host reads, the "write the last K slots and reset"
  overflow rule), then a per-class loop concatenating the sampled queue slots, then KL(batchmean) on the
  anchors;
* IFVD: a loop over the K classes building the prototype map (``(1 - m) * centre + m * proto``), then
  ``F.cosine_similarity`` and MSE;
* Af-DCD fd: align -> ``torch.where(u > 1 - ratio, 0, 1)`` spatial mask -> generator
  ``Sequential(conv3x3, ReLU(inplace=True), conv3x3)`` -> ``MSELoss(reduction='sum') / B`` (MGD form);
* Af-DCD OC: max-pool, 4x4 patches x M channel groups, ``-torch.cdist(p=1)`` per patch, the positive (diagonal)
  and the 240 cross-group negatives gathered into ``[pos | neg]`` logits, ``cross_entropy(reduction='sum')``
  divided by h'w' and B;
* KD / CWD / AT / FitNet / SKD: the straightforward formulas (the official code has no loop there).

Random choices are *inputs* (per-pixel keys for the enqueue, the queue slot permutations, the mask's uniform
draws), so that the benchmark can feed both implementations the same draws. The official code draws
``torch.randperm(n_c)`` per (image, class); here the permutation is ``argsort`` of the given keys of those
n_c pixels, which is the same amount of work and the same distribution.
"""
from __future__ import annotations

from typing import Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "kd", "cwd", "skd_pairwise", "ifvd", "at", "fitnet", "cirkd_batch_p2p", "CirkdMemory", "afdcd_generator",
    "afdcd_fd", "afdcd_omni",
]


def _nearest_labels(labels: Tensor, size: Tuple[int, int]) -> Tensor:
    """(B, H, W) -> (B, h, w) by ``F.interpolate(mode='nearest')`` of the float labels, as the official code."""
    return F.interpolate(labels[:, None].float(), size=size, mode="nearest")[:, 0].long()


# ------------------------------------------------------------------------------------------- KD family
def kd(s_logits: Tensor, t_logits: Tensor, temperature: float = 1.0) -> Tensor:
    """Pixel-wise KD: rows = B*h*w pixels, KL(teacher || student) with reduction 'batchmean', times T^2."""
    k = s_logits.shape[1]
    s = s_logits.permute(0, 2, 3, 1).reshape(-1, k)
    t = t_logits.permute(0, 2, 3, 1).reshape(-1, k)
    return F.kl_div(F.log_softmax(s / temperature, dim=1), F.softmax(t / temperature, dim=1),
                    reduction="batchmean") * temperature ** 2


def cwd(s: Tensor, t: Tensor, temperature: float = 4.0, norm_channels: int | None = None) -> Tensor:
    """Channel-wise distillation: rows = (image, channel), softmax over h*w; sum / (B * C_norm) * T^2."""
    b, c, h, w = t.shape
    c_norm = c if norm_channels is None else norm_channels
    s_rows = s.reshape(-1, h * w) / temperature
    t_rows = t.reshape(-1, h * w) / temperature
    p_t = F.softmax(t_rows, dim=1)
    loss = torch.sum(p_t * F.log_softmax(t_rows, dim=1) - p_t * F.log_softmax(s_rows, dim=1)) * temperature ** 2
    return loss / (b * c_norm)


def skd_pairwise(s_feat: Tensor, t_feat: Tensor) -> Tensor:
    """SKD pair-wise: 2x2 max-pool (ceil), per-node L2 normalisation, Gram matrices, mean squared difference."""
    def gram(x: Tensor) -> Tensor:
        x = F.max_pool2d(x, kernel_size=2, stride=2, padding=0, ceil_mode=True)
        x = F.normalize(x, p=2, dim=1).reshape(x.shape[0], x.shape[1], -1)
        return torch.bmm(x.transpose(1, 2), x)
    return ((gram(s_feat) - gram(t_feat)) ** 2).mean()


def ifvd(s_feat: Tensor, t_feat: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    """IFVD with the official per-class loop: prototype map, cosine to it, MSE between student and teacher."""
    lab = _nearest_labels(labels, tuple(s_feat.shape[-2:]))[:, None]      # (B, 1, h, w)

    def ifv(feat: Tensor) -> Tensor:
        centre = feat.clone()
        for c in range(num_classes):
            m = (lab == c).float()
            proto = (feat * m).sum(-1).sum(-1) / (m.sum(-1).sum(-1) + 1e-6)  # (B, C)
            centre = (1 - m) * centre + m * proto[:, :, None, None]
        return F.cosine_similarity(feat, centre, dim=1)

    return F.mse_loss(ifv(s_feat), ifv(t_feat))


def at(s_feat: Tensor, t_feat: Tensor) -> Tensor:
    """Attention transfer: a(F) = normalize(mean_c F^2) per image; mean squared difference."""
    def att(x: Tensor) -> Tensor:
        return F.normalize(x.pow(2).mean(1).view(x.size(0), -1))
    return (att(s_feat) - att(t_feat)).pow(2).mean()


def fitnet(s_projected: Tensor, t_feat: Tensor) -> Tensor:
    """FitNet: MSE (mean) between the connected student feature and the teacher feature."""
    return nn.MSELoss()(s_projected, t_feat)


# -------------------------------------------------------------------------------------------------- CIRKD
def cirkd_batch_p2p(s_feat: Tensor, t_feat: Tensor, tau: float = 0.1, images_per_gpu: int = 2) -> Tensor:
    """Mini-batch pixel-to-pixel: per "GPU" (group of images), loop over ordered pairs (i, j).

    The groups' losses are averaged (what DDP's gradient averaging does with one group per GPU).
    """
    group_losses = []
    for g0 in range(0, s_feat.shape[0], images_per_gpu):
        fs = F.normalize(s_feat[g0:g0 + images_per_gpu], p=2, dim=1)
        ft = F.normalize(t_feat[g0:g0 + images_per_gpu], p=2, dim=1)
        bg = fs.shape[0]
        fs = fs.reshape(bg, fs.shape[1], -1).transpose(1, 2)             # (bg, A, C_s)
        ft = ft.reshape(bg, ft.shape[1], -1).transpose(1, 2)
        loss = 0.0
        for i in range(bg):
            for j in range(bg):
                sim_s = torch.mm(fs[i], fs[j].t())
                with torch.no_grad():
                    sim_t = torch.mm(ft[i], ft[j].t())
                loss = loss + F.kl_div(F.log_softmax(sim_s / tau, dim=1), F.softmax(sim_t / tau, dim=1),
                                       reduction="batchmean")
        group_losses.append(loss / (bg * bg))
    return torch.stack(group_losses).mean()


class CirkdMemory:
    """Memory-based p2p / p2r with the official enqueue loop. Holds its own copies of the queues and pointers.

    ``forward`` order as the official module: normalise, resize labels, **enqueue** (teacher embeddings, no
    gradient; the all-gather is the identity in one process), select the anchors, sample the contrast sets
    (a per-class loop over the shared slot indices), KL(batchmean) x T_c^2.
    """

    def __init__(self, pixel_queue: Tensor, region_queue: Tensor, pixel_ptr: Tensor, region_ptr: Tensor,
                 pixel_slots: int, region_slots: int, tau: float = 0.1, kd_temperature: float = 1.0,
                 pixels_per_class: int = 16, pixel_queue_bug: bool = False, ignore_index: int = -1) -> None:
        self.pixel_queue = pixel_queue.clone()
        self.region_queue = region_queue.clone()
        self.pixel_ptr = pixel_ptr.clone()
        self.region_ptr = region_ptr.clone()
        self.pixel_slots = pixel_slots
        self.region_slots = region_slots
        self.tau = tau
        self.kd_temperature = kd_temperature
        self.pixels_per_class = pixels_per_class
        self.pixel_queue_bug = pixel_queue_bug
        self.ignore_index = ignore_index

    @torch.no_grad()
    def enqueue(self, keys: Tensor, labels: Tensor, choice: Tensor) -> None:
        """keys (B, d, h, w) normalised teacher embeddings, labels (B, h, w), choice (B, h, w) random keys."""
        b, d = keys.shape[:2]
        n_p = self.pixel_queue.shape[1]
        n_r = self.region_queue.shape[1]
        for bs in range(b):
            this_feat = keys[bs].reshape(d, -1)
            this_label = labels[bs].reshape(-1)
            this_choice = choice[bs].reshape(-1)
            label_ids = [int(x) for x in torch.unique(this_label) if int(x) != self.ignore_index]
            for lb in label_ids:
                idxs = (this_label == lb).nonzero(as_tuple=True)[0]
                # region queue: class mean of this image, re-normalised
                feat = torch.mean(this_feat[:, idxs], dim=1)
                ptr = int(self.region_ptr[lb])
                self.region_queue[lb, ptr, :] = F.normalize(feat.view(-1), p=2, dim=0)
                self.region_ptr[lb] = (ptr + 1) % n_r
                # pixel queue: K = min(n, 16) random pixels
                num_pixel = idxs.shape[0]
                k = min(num_pixel, self.pixels_per_class)
                if self.pixel_queue_bug:   # the released code: a permutation of 0..n-1 used as raster positions
                    chosen = torch.argsort(this_choice[:num_pixel])[:k]
                else:                      # intended: k random pixels of the class
                    chosen = idxs[torch.argsort(this_choice[idxs])[:k]]
                feat = F.normalize(this_feat[:, chosen].t(), p=2, dim=1)
                ptr = int(self.pixel_ptr[lb])
                if ptr + k >= n_p:
                    self.pixel_queue[lb, -k:, :] = feat
                    self.pixel_ptr[lb] = 0
                else:
                    self.pixel_queue[lb, ptr:ptr + k, :] = feat
                    self.pixel_ptr[lb] = (ptr + k) % n_p

    def _sample(self, queue: Tensor, perm: Tensor, slots: int) -> Tensor:
        idx = perm[:slots]
        parts = []
        for c in range(queue.shape[0]):
            parts.append(queue[c][idx, :])
        return torch.cat(parts, dim=0)

    def _contrast_kd(self, s: Tensor, t: Tensor, contrast: Tensor) -> Tensor:
        s_logits = torch.div(torch.mm(s, contrast.t()), self.tau)
        t_logits = torch.div(torch.mm(t, contrast.t()), self.tau)
        tc = self.kd_temperature
        return F.kl_div(F.log_softmax(s_logits / tc, dim=1), F.softmax(t_logits / tc, dim=1),
                        reduction="batchmean") * tc ** 2

    def forward(self, s_emb: Tensor, t_feat: Tensor, labels: Tensor, choice: Tensor, pixel_perm: Tensor,
                region_perm: Tensor) -> Tuple[Tensor, Tensor]:
        b, d, h, w = s_emb.shape
        s = F.normalize(s_emb, p=2, dim=1)
        t = F.normalize(t_feat.detach(), p=2, dim=1)
        lab = _nearest_labels(labels, (h, w))
        self.enqueue(t.detach(), lab, choice)
        lab = lab.reshape(-1)
        s = s.permute(0, 2, 3, 1).reshape(-1, d)
        t = t.permute(0, 2, 3, 1).reshape(-1, d)
        idx = lab != self.ignore_index
        s, t = s[idx], t[idx]
        pixel_contrast = self._sample(self.pixel_queue, pixel_perm, self.pixel_slots)
        region_contrast = self._sample(self.region_queue, region_perm, self.region_slots)
        return self._contrast_kd(s, t, pixel_contrast), self._contrast_kd(s, t, region_contrast)


# ------------------------------------------------------------------------------------------------- Af-DCD
def afdcd_generator(channels: int) -> nn.Sequential:
    """The Af-DCD (MGD-style) generator: conv3x3 (bias) -> ReLU(inplace) -> conv3x3 (bias), C -> C."""
    return nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True),
                         nn.Conv2d(channels, channels, 3, padding=1))


def afdcd_fd(align: nn.Module, generation: nn.Module, s_c4: Tensor, t_c4: Tensor, u: Tensor,
             mask_ratio: float = 0.75) -> Tensor:
    """Masked feature reconstruction: MSELoss(sum)(generation(align(F^S) * mask), F^T) / B.

    ``u`` (B, 1, h, w) are the uniform draws of the mask (``torch.rand`` in the official code).
    """
    preds = align(s_c4)
    mat = torch.where(u > 1 - mask_ratio, 0, 1).to(preds.dtype)
    new_fea = generation(torch.mul(preds, mat))
    return nn.MSELoss(reduction="sum")(new_fea, t_c4) / s_c4.shape[0]


def afdcd_omni(s: Tensor, t: Tensor, groups: int = 16, patch: int = 4, pool: int | None = 4,
               tau: float = 0.07) -> Tensor:
    """Released Omni-Contrasting loss: -L1 similarities per patch, [positive | cross-group negatives] CE."""
    if pool:
        s, t = F.max_pool2d(s, pool), F.max_pool2d(t, pool)
    h, w = (s.shape[2] // patch) * patch, (s.shape[3] // patch) * patch
    s, t = s[:, :, :h, :w], t[:, :, :h, :w]
    b, c = s.shape[:2]

    def samples(x: Tensor) -> Tensor:   # (B*nh*nw, patch*patch*groups, c/groups), index n*groups + g
        x = x.reshape(b, groups, c // groups, h // patch, patch, w // patch, patch)
        x = x.permute(0, 3, 5, 4, 6, 1, 2)
        return x.reshape(-1, patch * patch * groups, c // groups)

    xs, xt = samples(s), samples(t)
    r = patch * patch * groups
    dist = -torch.cdist(xs, xt, p=1)                                         # (P, r, r)
    group = torch.arange(r, device=s.device) % groups
    neg_mask = group.view(-1, 1) != group.view(1, -1)                         # (r, r): r - patch^2 per row
    pos = torch.diagonal(dist, dim1=1, dim2=2).unsqueeze(-1)                 # (P, r, 1)
    neg = dist[:, neg_mask].view(dist.shape[0], r, r - patch * patch)        # (P, r, r - patch^2)
    logits = torch.cat([pos, neg], dim=2) / tau
    target = torch.zeros(logits.shape[0] * r, dtype=torch.long, device=s.device)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[2]), target, reduction="sum")
    return loss / (h * w) / b
