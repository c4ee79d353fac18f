"""Holistic adversarial distillation on logits, as used by the CIRKD repository's SKD / IFVD / CWD baselines.

docs/reference.md §3.5 ([C1] ``losses/adv.py``, ``utils/sagan.py``): a SAGAN-style discriminator D scores (B, K, h, w)
logits; the student gets the generator term ``-mean(D(z^S))`` (weight 0.001 in the released scripts) and D is
trained with the hinge loss

    L_D = mean(ReLU(1 - D(z^T))) + mean(ReLU(1 + D(z^S.detach())))      (times d_loss_weight = 0.1)

by its **own** Adam (lr 4e-4, betas (0.9, 0.99), no weight decay, no schedule), one step per iteration after
the student's SGD step. In kdlib that step is :meth:`AdversarialTerm.discriminator_step`, which the trainer
reaches through :meth:`kdlib.methods.base.DistillLoss.after_student_step`; D's parameters are reported by
:meth:`~kdlib.methods.base.DistillLoss.separately_optimized_parameters` so that the student's SGD never
touches them. Adam's state is part of the module's ``state_dict`` (``_extra_state``), so resumable
checkpoints restore it.

Spectral norm (option ``spectral_norm`` / method option ``d_spectral_norm``):

* ``"official"`` (default; the paper datasets' default) — :class:`OfficialSpectralNorm`, the SAGAN reference
  implementation's power iteration that the CIRKD repository's ``utils/sagan.py`` copies: per forward one
  iteration *v first, then u*, from random unit vectors (no warm-up), and a gradient of sigma that uses the
  vectors of the *latest* forward (the official module overwrites them in place, so the backward of an earlier
  forward sees them). The discriminator step scores the student's (fake) logits first, then the teacher's
  (real) logits, as the official trainer does.
* ``"torch"`` — :func:`torch.nn.utils.parametrizations.spectral_norm` (u first, 15 warm-up iterations, plus the
  one its registration check runs; per-forward copies of u, v, hence the consistent gradient), and the real
  logits scored before the fake ones. This is what kdlib did before the official variant existed; the built-in
  dataset ``synthetic_streets`` keeps it by default (:func:`adversarial_paper_options`) so that its committed
  proxy study reproduces bit for bit.

Both variants draw the same random numbers at construction and store the same ``state_dict`` keys
(``...parametrizations.weight.original``, ``..._u``, ``..._v``), so the rest of a run is unaffected by the
switch and a checkpoint of one loads into the other.
"""
from __future__ import annotations

import contextlib
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from torch.nn.utils import parametrizations, parametrize

from kdlib import distributed
from kdlib.methods.base import DistillLoss

__all__ = ["SelfAttention", "SAGANDiscriminator", "AdversarialTerm", "AdversarialDistillLoss", "OfficialSpectralNorm",
           "official_spectral_norm", "SPECTRAL_NORMS", "ADVERSARIAL_PAPER_OPTIONS", "adversarial_paper_options"]

#: Values of the discriminator's spectral-norm switch (``spectral_norm=`` / method option ``d_spectral_norm``).
SPECTRAL_NORMS = ("official", "torch")


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


def _check_spectral_norm(variant: str) -> str:
    if variant not in SPECTRAL_NORMS:
        raise ValueError(f"spectral_norm must be one of {', '.join(map(repr, SPECTRAL_NORMS))}, got {variant!r}")
    return variant


class _SigmaOfLatestVectors(torch.autograd.Function):
    r"""``sigma = u^T W v`` (value from the vectors passed now) whose backward reads the vectors *at backward time*.

    ``u`` and ``v`` are the :class:`OfficialSpectralNorm` buffers themselves (kept in ``ctx``, not saved, so
    no version check): a later forward that updates them in place changes the gradient of this one,
    ``d sigma / d W = u_latest v_latest^T`` — the behaviour of the official module, whose autograd graph holds
    its ``u`` / ``v`` Parameters, which the next forward overwrites through ``.data``.
    """

    @staticmethod
    def forward(ctx: Any, weight_mat: Tensor, u: Tensor, v: Tensor) -> Tensor:
        ctx.vectors = (u, v)
        return torch.dot(u, torch.mv(weight_mat, v))

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: Tensor) -> Tuple[Tensor, None, None]:
        u, v = ctx.vectors
        # the official graph's order: dot -> grad * u, then mv -> outer(., v)
        return torch.outer(grad * u, v), None, None


class OfficialSpectralNorm(nn.Module):
    r"""Spectral normalisation exactly as the SAGAN reference ``SpectralNorm`` (copied into the CIRKD
    repository's ``utils/sagan.py``): a parametrization ``W -> W / sigma`` (register it with
    :func:`official_spectral_norm`).

    With :math:`W` the weight reshaped to (out, -1) and :math:`\mathrm{n}(x) = x / (\lVert x\rVert_2 + \epsilon)`,
    every forward (training *and* eval mode: the official module has no mode switch) runs one power iteration,
    right vector first, in place on the buffers ``_u`` (out) and ``_v`` (in):

    .. math::
        v \leftarrow \mathrm{n}(W^\top u), \qquad u \leftarrow \mathrm{n}(W v), \qquad
        \sigma = u^\top W v, \qquad W_{SN} = W / \sigma .

    Initialisation: ``_u``, ``_v`` are standard-normal draws (u first), normalised with n(.), and *no* warm-up
    iterations (torch's :func:`~torch.nn.utils.parametrizations.spectral_norm` draws the same numbers but then
    runs 15 + 1 iterations, and iterates u first).

    Gradient: sigma's backward uses the ``_u``, ``_v`` held at backward time,
    :math:`\partial\sigma/\partial W = u_{\mathrm{latest}} v_{\mathrm{latest}}^\top`. When several forwards share
    one backward (the discriminator's fake and real forwards) the earlier ones thus get the last forward's
    vectors, as in the official code (its ``u``/``v`` are Parameters overwritten via ``.data`` and referenced by
    the graph), where torch's implementation clones them per forward (the consistent gradient).
    """

    def __init__(self, weight: Tensor, eps: float = 1e-12) -> None:
        super().__init__()
        if weight.ndim < 2:
            raise ValueError(f"OfficialSpectralNorm needs a weight with >= 2 dims, got shape {tuple(weight.shape)}")
        self.eps = float(eps)
        height = weight.shape[0]
        with torch.no_grad():
            u = weight.new_empty(height).normal_(0, 1)
            v = weight.new_empty(weight[0].numel()).normal_(0, 1)
            self.register_buffer("_u", self._normalise(u))
            self.register_buffer("_v", self._normalise(v))

    def _normalise(self, x: Tensor) -> Tensor:
        return x / (x.norm() + self.eps)

    def forward(self, weight: Tensor) -> Tensor:
        weight_mat = weight.reshape(weight.shape[0], -1)
        with torch.no_grad():
            self._v.copy_(self._normalise(torch.mv(weight_mat.t(), self._u)))
            self._u.copy_(self._normalise(torch.mv(weight_mat, self._v)))
        sigma = _SigmaOfLatestVectors.apply(weight_mat, self._u, self._v)
        return weight / sigma


def official_spectral_norm(module: nn.Module, name: str = "weight", eps: float = 1e-12) -> nn.Module:
    """Register :class:`OfficialSpectralNorm` on ``module.<name>`` (in place; returns ``module``).

    Same ``state_dict`` layout as :func:`torch.nn.utils.parametrizations.spectral_norm`. Registered without
    torch's consistency check (``unsafe=True``), which would run one power iteration.
    """
    parametrize.register_parametrization(module, name, OfficialSpectralNorm(getattr(module, name), eps),
                                         unsafe=True)
    return module


def _pad_to(x: Tensor, min_size: int) -> Tensor:
    """Zero-pad (symmetrically, extra row/column at the bottom/right) so that h, w >= ``min_size``."""
    h, w = x.shape[-2:]
    dh, dw = max(0, min_size - h), max(0, min_size - w)
    if not (dh or dw):
        return x
    return F.pad(x, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2))


class SAGANDiscriminator(nn.Module):
    """The baselines' discriminator on (B, K, h, w) logits -> (B, 1, h', w') score map (docs/reference.md §3.5).

    BatchNorm(K) input normalisation -> four spectral-norm 4x4 stride-2 pad-1 convs (K -> d -> 2d -> 4d -> 8d,
    d = ``conv_dim`` = 64), each followed by LeakyReLU(0.1), with a :class:`SelfAttention` after the 4d and 8d
    stages -> final plain 4x4 valid conv (8d -> 1). Spectral norm: one power iteration per forward (see
    ``spectral_norm`` below).

    Size safety (docs/reference.md §6 item 22): the official layout needs h, w >= 64 (its last 4x4 valid conv fails on the
    2x2 map of CamVid's 45x45 logits). With ``size_safe=True`` (default) every conv input smaller than the
    conv needs (2 for the strided convs, 4 for the final one) is zero-padded up to that size; for maps large
    enough (logits >= 64x64, e.g. 64x128 -> score map 1x5) nothing is padded and the result is exactly the
    official one. ``size_safe=False`` keeps the official failure.

    ``spectral_norm``: ``"official"`` (default) — :class:`OfficialSpectralNorm` on the four strided convs;
    ``"torch"`` — :func:`torch.nn.utils.parametrizations.spectral_norm` (see the module docstring).
    """

    def __init__(self, in_channels: int, conv_dim: int = 64, size_safe: bool = True,
                 spectral_norm: str = "official") -> None:
        super().__init__()
        self.spectral_norm = _check_spectral_norm(spectral_norm)
        wrap = official_spectral_norm if spectral_norm == "official" else parametrizations.spectral_norm
        dims = [in_channels, conv_dim, conv_dim * 2, conv_dim * 4, conv_dim * 8]
        self.input_norm = nn.BatchNorm2d(in_channels)
        self.convs = nn.ModuleList(wrap(nn.Conv2d(dims[i], dims[i + 1], 4, stride=2, padding=1))
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
        spectral_norm: ``"official"`` (default): :class:`OfficialSpectralNorm`, and the discriminator step
            scores the fake (student) logits before the real (teacher) ones, as the official trainer;
            ``"torch"``: torch's spectral norm, real before fake. With one power iteration per forward the
            order decides which normalisation each forward sees.
    """

    def __init__(self, num_classes: int, lr: float = 4e-4, betas: Sequence[float] = (0.9, 0.99),
                 d_loss_weight: float = 0.1, conv_dim: int = 64, size_safe: bool = True,
                 spectral_norm: str = "official") -> None:
        super().__init__()
        if lr <= 0:
            raise ValueError(f"discriminator lr must be positive, got {lr}")
        if len(tuple(betas)) != 2:
            raise ValueError(f"discriminator betas must be two numbers, got {betas!r}")
        self.spectral_norm = _check_spectral_norm(spectral_norm)
        self.discriminator = SAGANDiscriminator(num_classes, conv_dim, size_safe, spectral_norm)
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

        Forward order: fake (student) then real (teacher) with ``spectral_norm="official"``, real then fake
        with ``"torch"``. Gradients are averaged over DDP ranks (identity in one process). No-op (``{}``) if no
        forward happened since the last step.
        """
        if self._cache is None:
            return {}
        s_logits, t_logits = self._cache
        self._cache = None
        opt = self.optimizer()
        opt.zero_grad(set_to_none=True)
        with _no_autocast(s_logits), torch.enable_grad():
            if self.spectral_norm == "official":
                d_fake = self.discriminator(s_logits.float())
                d_real = self.discriminator(t_logits.float())
            else:
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


#: The official discriminator settings (CIRKD-repo baselines): Adam lr 4e-4, betas (0.9, 0.99), lambda_d 0.1,
#: the official spectral norm and forward order.
ADVERSARIAL_PAPER_OPTIONS: Dict[str, Any] = {"d_lr": 4e-4, "d_betas": [0.9, 0.99], "d_loss_weight": 0.1,
                                             "d_spectral_norm": "official"}

#: Built-in datasets whose committed proxy study was run with torch's spectral norm (kept as their default).
_TORCH_SPECTRAL_NORM_DATASETS = ("synthetic_streets",)


def adversarial_paper_options(dataset: str) -> Dict[str, Any]:
    """The discriminator's ``method_options`` for ``dataset``: :data:`ADVERSARIAL_PAPER_OPTIONS`, with
    ``d_spectral_norm="official"`` on the paper datasets and ``"torch"`` on the built-in ``synthetic_streets``
    (the behaviour its committed proxy study was run with, so ``kdlib proxy --verify`` reproduces it bit for
    bit). Either is one option away (``method_options.d_spectral_norm``)."""
    return {**ADVERSARIAL_PAPER_OPTIONS,
            "d_spectral_norm": "torch" if dataset in _TORCH_SPECTRAL_NORM_DATASETS else "official"}


class AdversarialDistillLoss(DistillLoss):
    """A :class:`DistillLoss` with an optional ``adv`` term (built only when enabled) delegating the hooks."""

    adversarial: Optional[AdversarialTerm]

    def _build_adversarial(self, d_lr: float, d_betas: Sequence[float], d_loss_weight: float,
                           d_conv_dim: int, d_size_safe: bool, d_spectral_norm: str = "official") -> None:
        _check_spectral_norm(d_spectral_norm)
        self.adversarial = (AdversarialTerm(self.pair.num_classes, d_lr, d_betas, d_loss_weight, d_conv_dim,
                                            d_size_safe, d_spectral_norm) if "adv" in self.enabled else None)

    def separately_optimized_parameters(self) -> List[nn.Parameter]:
        return [] if self.adversarial is None else list(self.adversarial.parameters())

    def after_student_step(self) -> Dict[str, Tensor]:
        return {} if self.adversarial is None else self.adversarial.discriminator_step()

    @classmethod
    def dataset_differences(cls, dataset: str) -> Dict[str, Any]:
        """The discriminator's spectral norm: torch's on the built-in data (:func:`adversarial_paper_options`)."""
        official = ADVERSARIAL_PAPER_OPTIONS["d_spectral_norm"]
        chosen = adversarial_paper_options(dataset)["d_spectral_norm"]
        return {} if chosen == official else {"method_options": {"d_spectral_norm": chosen}}
