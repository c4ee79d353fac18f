"""Holistic adversarial distillation on logits, as used by the CIRKD repository's SKD / IFVD / CWD baselines.

SPEC §3.5 ([C1] ``losses/adv.py``, ``utils/sagan.py``): a SAGAN-style discriminator D scores (B, K, h, w)
logits; the student gets the generator term ``-mean(D(z^S))`` (weight 0.001 in the released scripts) and D is
trained with the hinge loss

    L_D = mean(ReLU(1 - D(z^T))) + mean(ReLU(1 + D(z^S.detach())))      (times d_loss_weight = 0.1)

by its **own** Adam (lr 4e-4, betas (0.9, 0.99), no weight decay, no schedule), one step per iteration after
the student's SGD step. In kdlib that step is :meth:`AdversarialTerm.discriminator_step`, which the trainer
reaches through :meth:`kdlib.losses.base.DistillLoss.after_student_step`; D's parameters are reported by
:meth:`~kdlib.losses.base.DistillLoss.separately_optimized_parameters` so that the student's SGD never
touches them. Adam's state is part of the module's ``state_dict`` (``_extra_state``), so resumable
checkpoints restore it.
"""
from __future__ import annotations

import contextlib
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from torch.nn.utils.parametrizations import spectral_norm

from kdlib.engine import distributed
from kdlib.losses.base import DistillLoss

__all__ = ["SelfAttention", "SAGANDiscriminator", "AdversarialTerm", "AdversarialDistillLoss"]


@contextlib.contextmanager
def _no_autocast(x: Tensor) -> Iterator[None]:
    with torch.autocast(device_type=x.device.type, enabled=False):
        yield


class SelfAttention(nn.Module):
    r"""SAGAN self-attention block: ``x + gamma * V softmax(Q^T K)^T`` over the h*w positions.

    Q, K: 1x1 convs C -> C/8; V: 1x1 conv C -> C; ``gamma`` a learnable scalar initialised to 0 (the block
    starts as the identity). (B, C, h, w) -> (B, C, h, w).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        inner = max(1, channels // 8)
        self.query = nn.Conv2d(channels, inner, 1)
        self.key = nn.Conv2d(channels, inner, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        q = self.query(x).flatten(2).transpose(1, 2)                 # (B, N, C/8)
        k = self.key(x).flatten(2)                                   # (B, C/8, N)
        attn = torch.softmax(torch.bmm(q, k), dim=-1)                # (B, N, N): row = query position
        v = self.value(x).flatten(2)                                 # (B, C, N)
        out = torch.bmm(v, attn.transpose(1, 2)).view(b, c, h, w)
        return self.gamma * out + x


def _pad_to(x: Tensor, min_size: int) -> Tensor:
    """Zero-pad (symmetrically, extra row/column at the bottom/right) so that h, w >= ``min_size``."""
    h, w = x.shape[-2:]
    dh, dw = max(0, min_size - h), max(0, min_size - w)
    if not (dh or dw):
        return x
    return F.pad(x, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2))


class SAGANDiscriminator(nn.Module):
    """The baselines' discriminator on (B, K, h, w) logits -> (B, 1, h', w') score map (SPEC §3.5).

    BatchNorm(K) input normalisation -> four spectral-norm 4x4 stride-2 pad-1 convs (K -> d -> 2d -> 4d -> 8d,
    d = ``conv_dim`` = 64), each followed by LeakyReLU(0.1), with a :class:`SelfAttention` after the 4d and 8d
    stages -> final plain 4x4 valid conv (8d -> 1). Spectral norm: one power iteration per training forward.

    Size safety (SPEC §6 item 22): the official layout needs h, w >= 64 (its last 4x4 valid conv fails on the
    2x2 map of CamVid's 45x45 logits). With ``size_safe=True`` (default) every conv input smaller than the
    conv needs (2 for the strided convs, 4 for the final one) is zero-padded up to that size; for maps large
    enough (logits >= 64x64, e.g. 64x128 -> score map 1x5) nothing is padded and the result is exactly the
    official one. ``size_safe=False`` keeps the official failure.
    """

    def __init__(self, in_channels: int, conv_dim: int = 64, size_safe: bool = True) -> None:
        super().__init__()
        dims = [in_channels, conv_dim, conv_dim * 2, conv_dim * 4, conv_dim * 8]
        self.input_norm = nn.BatchNorm2d(in_channels)
        self.convs = nn.ModuleList(spectral_norm(nn.Conv2d(dims[i], dims[i + 1], 4, stride=2, padding=1))
                                   for i in range(4))
        self.attn1 = SelfAttention(dims[3])
        self.attn2 = SelfAttention(dims[4])
        self.last = nn.Conv2d(dims[4], 1, 4)
        self.size_safe = bool(size_safe)

    def forward(self, logits: Tensor) -> Tensor:
        x = self.input_norm(logits)
        for i, conv in enumerate(self.convs):
            if self.size_safe:
                x = _pad_to(x, 2)
            x = F.leaky_relu(conv(x), 0.1)
            if i == 2:
                x = self.attn1(x)
        x = self.attn2(x)
        if self.size_safe:
            x = _pad_to(x, 4)
        return self.last(x)


class AdversarialTerm(nn.Module):
    """Discriminator + its Adam; the student-side term and the discriminator's own step.

    Args:
        num_classes: K (the discriminator scores logits).
        lr: Adam learning rate of D (official 4e-4).
        betas: Adam betas (official (0.9, 0.99)).
        d_loss_weight: factor of the hinge loss before D's backward (official lambda_d = 0.1).
        conv_dim: D's base width (64).
        size_safe: see :class:`SAGANDiscriminator`.
    """

    def __init__(self, num_classes: int, lr: float = 4e-4, betas: Sequence[float] = (0.9, 0.99),
                 d_loss_weight: float = 0.1, conv_dim: int = 64, size_safe: bool = True) -> None:
        super().__init__()
        if lr <= 0:
            raise ValueError(f"discriminator lr must be positive, got {lr}")
        if len(tuple(betas)) != 2:
            raise ValueError(f"discriminator betas must be two numbers, got {betas!r}")
        self.discriminator = SAGANDiscriminator(num_classes, conv_dim, size_safe)
        self.lr = float(lr)
        self.betas: Tuple[float, float] = (float(betas[0]), float(betas[1]))
        self.d_loss_weight = float(d_loss_weight)
        self._optimizer: Optional[torch.optim.Adam] = None
        self._cache: Optional[Tuple[Tensor, Tensor]] = None

    def generator_loss(self, s_logits: Tensor, t_logits: Tensor) -> Tensor:
        """``-mean(D(z^S))`` (fp32); remembers the detached logits for :meth:`discriminator_step`."""
        self._cache = (s_logits.detach(), t_logits.detach())
        with _no_autocast(s_logits):
            return -self.discriminator(s_logits.float()).mean()

    def optimizer(self) -> torch.optim.Adam:
        """D's Adam over D's *current* parameters (built lazily: BatchNorm conversion for DDP replaces them)."""
        params = list(self.discriminator.parameters())
        if self._optimizer is None or [id(p) for p in self._optimizer.param_groups[0]["params"]] != \
                [id(p) for p in params]:
            old = self._optimizer.state_dict() if self._optimizer is not None else None
            self._optimizer = torch.optim.Adam(params, lr=self.lr, betas=self.betas, weight_decay=0.0)
            if old is not None:
                self._optimizer.load_state_dict(old)
        return self._optimizer

    def discriminator_step(self) -> Dict[str, Tensor]:
        """One hinge-loss Adam step of D on the logits of the last forward; returns ``{'adv_d': L_D}``.

        Gradients are averaged over DDP ranks (identity in one process). No-op (``{}``) if no forward
        happened since the last step.
        """
        if self._cache is None:
            return {}
        s_logits, t_logits = self._cache
        self._cache = None
        opt = self.optimizer()
        opt.zero_grad(set_to_none=True)
        with _no_autocast(s_logits), torch.enable_grad():
            d_real = self.discriminator(t_logits.float())
            d_fake = self.discriminator(s_logits.float())
            loss = F.relu(1.0 - d_real).mean() + F.relu(1.0 + d_fake).mean()
            (self.d_loss_weight * loss).backward()
        world = distributed.world_size()
        if world > 1:
            for p in self.discriminator.parameters():
                if p.grad is not None:
                    distributed.all_reduce_sum(p.grad).div_(world)
        opt.step()
        return {"adv_d": loss.detach()}

    def get_extra_state(self) -> Dict[str, Any]:
        return {"optimizer": self.optimizer().state_dict()}

    def set_extra_state(self, state: Dict[str, Any]) -> None:
        if state and "optimizer" in state:
            self.optimizer().load_state_dict(state["optimizer"])


#: The official discriminator settings (CIRKD-repo baselines): Adam lr 4e-4, betas (0.9, 0.99), lambda_d 0.1.
ADVERSARIAL_PAPER_OPTIONS: Dict[str, Any] = {"d_lr": 4e-4, "d_betas": [0.9, 0.99], "d_loss_weight": 0.1}


class AdversarialDistillLoss(DistillLoss):
    """A :class:`DistillLoss` with an optional ``adv`` term (built only when enabled) delegating the hooks."""

    adversarial: Optional[AdversarialTerm]

    def _build_adversarial(self, d_lr: float, d_betas: Sequence[float], d_loss_weight: float,
                           d_conv_dim: int, d_size_safe: bool) -> None:
        self.adversarial = (AdversarialTerm(self.pair.num_classes, d_lr, d_betas, d_loss_weight, d_conv_dim,
                                            d_size_safe) if "adv" in self.enabled else None)

    def separately_optimized_parameters(self) -> List[nn.Parameter]:
        return [] if self.adversarial is None else list(self.adversarial.parameters())

    def after_student_step(self) -> Dict[str, Tensor]:
        return {} if self.adversarial is None else self.adversarial.discriminator_step()
