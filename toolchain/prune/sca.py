"""SCA: structured channel pruning of convolutional SNNs by spiking channel activity, with regrowth.

After Li et al., "Towards Efficient Deep Spiking Neural Networks Construction with Spiking Activity based
Pruning", ICML 2024 (arXiv 2406.01072), restated in ``shared/METHODS.md``:

* **Score.** A conv output channel ``c`` is scored by the mean absolute membrane potential of the neurons it
  drives, over batch, space and time: ``score_c = mean_{b,t,h,w} |U[b, t, c, h, w]|`` (voltage units). Channels
  that barely move their membranes carry little information and go first.
* **Prune and regrow.** At every ``interval``-th training step between ``start`` and ``end``, each prunable conv
  layer keeps ``n_keep = round((1 − s(t))·C)`` channels (at least ``min_channels``): of its active channels the
  ``n_keep − n_regrow`` with the highest score survive, and the ``n_regrow`` previously pruned channels whose
  batch-norm scale γ has the largest accumulated gradient magnitude ``|∂L/∂γ_c|`` come back (RigL style,
  Evci et al. 2020). Newly pruned channels are not eligible for regrowth in the same update (so that regrowth
  really swaps channels); at the first update nothing is pruned yet, so nothing regrows.
* **Schedule (ours).** Sparsity follows a cubic ramp (Zhu & Gupta 2017),
  ``s(t) = s_f + (s_0 − s_f)·(1 − (t − t_0)/(t_1 − t_0))³`` for ``t_0 ≤ t ≤ t_1`` (``s_0`` before, ``s_f`` after),
  and the regrowth fraction decays on a cosine, ``f(t) = f_0/2·(1 + cos(π·(t − t_0)/(t_1 − t_0)))``
  (0 after ``t_1``); ``n_regrow = round(f(t)·n_keep)``. Knobs: :class:`SCASchedule`.
* **Masking.** The channel mask multiplies the *batch-norm output* (:class:`MaskedBatchNorm2d`): masking the
  conv output before batch norm would let the BN bias β leak into a pruned channel. In the backward pass the
  mask stops the gradient into the conv path (pruned channels' conv weights stay as they were), but γ and β of a
  pruned channel still receive the gradient they would get if the channel were present, so regrowth can rank
  pruned channels by ``|∂L/∂γ|`` (:func:`masked_bn_affine`). With the mask applied, a pruned channel's neurons
  receive exactly zero input, their membranes stay at 0 and they never spike. **(ours)** γ and β of pruned
  channels keep being updated by the optimiser with that gradient; the conv weights of a pruned channel are
  frozen and come back unchanged when it regrows. Networks without batch norm (STOP cannot route errors through
  BN) put the mask on the conv output, bias included (:class:`MaskedConv2d`); there the regrowth signal is the
  mean ``|∂L/∂W_c|`` of the channel's weights, which STOP's forward traces give for pruned channels too.
* **Tied channels.** Channels joined by an identity residual connection are summed into the same neurons, so
  they are one :class:`ChannelGroup` with one mask (scores and γ-gradients summed over the members).
* **Deployment.** :func:`slice_channels` cuts the pruned channels out physically (conv output channels, BN, the
  neurons, the next conv's input channels, the first dense layer's inputs after a flatten); the sliced network
  produces the same spikes as the masked one. :func:`fold_batchnorm` folds (eval-mode) batch norm into the
  preceding conv's weight and bias, after which the network exports to NIR with plain Conv2d nodes.
  :func:`deploy` does both.

The scheduler is trainer-agnostic: call :meth:`SCAScheduler.step` once per optimisation step after the
backward pass (BPTT or STOP), with the step's records from ``SpikingNet.forward(x, record=True)`` or with ``None``
after :meth:`SCAScheduler.attach` has installed forward hooks that collect the membrane potentials.
:func:`with_sca` wraps any trainer batch function this way and :func:`train_sca` runs the shared training loop
(:func:`toolchain.train.loop.fit`) with BPTT or STOP.

On hardware a deployed network runs one step per synapse layer later than the float model, and a neuron's bias
(here: the folded BN shift) acts from the first step on, before the input reaches the layer; networks with large
biases therefore lose accuracy when compiled. Fine-tune the deployed network against its compiled integer form
(:func:`toolchain.nn.qat.quantisation_aware`) to recover it (``benchmarks/sca.py``, ``examples/sca_example.py``).
"""
from __future__ import annotations

import copy
import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from ..errors import ToolchainError

__all__ = [
    "cubic_sparsity", "cosine_regrow_fraction", "SCASchedule", "channel_scores", "MaskUpdate",
    "update_channel_mask", "masked_bn_affine", "masked_conv_output", "ChannelMasked", "MaskedBatchNorm2d",
    "MaskedConv2d", "plain_conv", "ChannelGroup", "find_channel_groups", "SCAEvent",
    "SCAScheduler", "fold_bn_params", "fold_batchnorm", "slice_channels", "deploy", "channel_report",
    "set_channel_mask", "parameter_count", "SCAError", "with_sca", "train_sca", "fold_pair_", "slice_sequence",
]


class SCAError(ToolchainError, ValueError):
    """Bad SCA input: an unknown layer name, mismatched channel counts, a schedule that cannot be met."""


# ============================================================================================== schedule (pure)
def cubic_sparsity(step: int, target: float, start: int, end: int, initial: float = 0.0) -> float:
    """Sparsity (fraction of channels pruned) at ``step`` on the cubic ramp from ``initial`` at ``start`` to
    ``target`` at ``end``: ``s = target + (initial − target)·(1 − (step − start)/(end − start))³``."""
    if end <= start:  # no ramp: a step from initial to target at ``end``
        return float(target) if step >= end else float(initial)
    if step <= start:
        return float(initial)
    if step >= end:
        return float(target)
    frac = (step - start) / float(end - start)
    return float(target + (initial - target) * (1.0 - frac) ** 3)


def cosine_regrow_fraction(step: int, initial: float, start: int, end: int) -> float:
    """Regrowth fraction at ``step``: ``initial/2·(1 + cos(π·(step − start)/(end − start)))``, ``initial`` before
    ``start`` and 0 from ``end`` on."""
    if step >= end or end <= start:
        return 0.0
    if step <= start:
        return float(initial)
    return float(0.5 * initial * (1.0 + math.cos(math.pi * (step - start) / float(end - start))))


@dataclass(frozen=True)
class SCASchedule:
    """When and how much SCA prunes and regrows (all steps are optimisation steps, counted from 0).

    ``target_sparsity``: fraction of each layer's channels pruned at the end, in [0, 1).
    ``start``/``end``: the ramp runs from ``start`` to ``end``; ``interval``: a mask update every ``interval``
    steps from ``start`` to ``end`` inclusive (the last update, at the largest such step, reaches ``target``
    when ``end − start`` is a multiple of ``interval``; :meth:`update_steps` lists them).
    ``regrow_fraction``: initial regrowth fraction ``f_0`` of the kept channels (cosine decay to 0 at ``end``).
    ``initial_sparsity``: ``s_0``; ``min_channels``: never keep fewer channels in a layer.
    """

    target_sparsity: float = 0.7
    start: int = 0
    end: int = 1000
    interval: int = 100
    regrow_fraction: float = 0.3
    initial_sparsity: float = 0.0
    min_channels: int = 1

    def __post_init__(self) -> None:
        if not 0.0 <= self.target_sparsity < 1.0:
            raise SCAError(f"must lie in [0, 1), got {self.target_sparsity}", field="target_sparsity")
        if not 0.0 <= self.initial_sparsity <= self.target_sparsity:
            raise SCAError(f"must lie in [0, target_sparsity={self.target_sparsity}], got "
                           f"{self.initial_sparsity}", field="initial_sparsity")
        if not 0.0 <= self.regrow_fraction < 1.0:
            raise SCAError(f"must lie in [0, 1), got {self.regrow_fraction}", field="regrow_fraction")
        if self.start < 0 or self.end < self.start:
            raise SCAError(f"need 0 <= start <= end, got start={self.start}, end={self.end}", field="end")
        if self.interval < 1:
            raise SCAError(f"must be >= 1, got {self.interval}", field="interval")
        if self.min_channels < 1:
            raise SCAError(f"must be >= 1, got {self.min_channels}", field="min_channels")

    def sparsity(self, step: int) -> float:
        """Target fraction of pruned channels at ``step`` (cubic ramp)."""
        return cubic_sparsity(step, self.target_sparsity, self.start, self.end, self.initial_sparsity)

    def regrow(self, step: int) -> float:
        """Regrowth fraction at ``step`` (cosine decay)."""
        return cosine_regrow_fraction(step, self.regrow_fraction, self.start, self.end)

    def is_update(self, step: int) -> bool:
        """True when masks are updated at ``step``."""
        return self.start <= step <= self.end and (step - self.start) % self.interval == 0

    def update_steps(self) -> List[int]:
        """All steps at which masks are updated."""
        return list(range(self.start, self.end + 1, self.interval))

    def keep_count(self, n_channels: int, step: int) -> int:
        """Channels a layer of ``n_channels`` keeps at ``step``: ``round((1 − s)·C)``, at least ``min_channels``."""
        keep = int(round((1.0 - self.sparsity(step)) * n_channels))
        return int(min(n_channels, max(self.min_channels, keep)))

    def regrow_count(self, n_keep: int, step: int) -> int:
        """Channels regrown at ``step`` in a layer keeping ``n_keep``: ``round(f(t)·n_keep)``, at most n_keep−1."""
        return int(max(0, min(n_keep - 1, round(self.regrow(step) * n_keep))))


# ================================================================================================ scores (pure)
def channel_scores(u: torch.Tensor, channel_dim: int = 2) -> torch.Tensor:
    """Mean absolute membrane potential per channel: ``mean |u|`` over every dimension but ``channel_dim``.

    ``u``: membrane record, (B, T, C, H, W) as ``SpikingNet.forward(..., record=True)`` gives it (or any layout
    with the channel at ``channel_dim``). Returns a float64 tensor of length C (voltage units).
    """
    if u.dim() <= channel_dim:
        raise SCAError(f"membrane record of shape {tuple(u.shape)} has no channel dimension {channel_dim}",
                       field="u")
    dims = [d for d in range(u.dim()) if d != channel_dim]
    return torch.sum(u.detach().abs(), dim=dims, dtype=torch.float64) / float(u.numel() // u.shape[channel_dim])


@dataclass(frozen=True)
class MaskUpdate:
    """Result of :func:`update_channel_mask`: the new boolean ``mask`` and which channels were ``pruned`` (active
    before, inactive now) and ``regrown`` (inactive before, active now), as sorted index arrays."""

    mask: np.ndarray
    pruned: np.ndarray
    regrown: np.ndarray


def _top(indices: np.ndarray, values: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` entries of ``indices`` with the largest ``values`` (ties: lower index first)."""
    if k <= 0 or indices.size == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort((indices, -values[indices]))
    return np.sort(indices[order[:k]])


def update_channel_mask(mask: np.ndarray, scores: np.ndarray, grow_scores: np.ndarray, n_keep: int,
                        n_regrow: int) -> MaskUpdate:
    """One prune-and-regrow update of one layer's channel mask (pure).

    ``mask``: bool (C,), True = channel active. ``scores``: activity score per channel (higher = keep);
    ``grow_scores``: regrowth criterion per channel, e.g. accumulated ``|∂L/∂γ|`` (higher = regrow first).
    The new mask has exactly ``n_keep`` active channels: ``n_grow = min(n_regrow, #inactive)`` previously inactive
    channels with the largest ``grow_scores`` plus the ``n_keep − n_grow`` active channels with the largest
    ``scores`` (when fewer are active, all of them stay and more inactive channels regrow).
    """
    mask = np.asarray(mask, dtype=bool)
    c = mask.size
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    grow_scores = np.asarray(grow_scores, dtype=np.float64).reshape(-1)
    if mask.ndim != 1 or scores.shape != (c,) or grow_scores.shape != (c,):
        raise SCAError(f"mask {mask.shape}, scores {scores.shape} and grow_scores {grow_scores.shape} must all "
                       f"have shape ({c},)", field="scores")
    if not 1 <= n_keep <= c:
        raise SCAError(f"n_keep must lie in [1, {c}], got {n_keep}", field="n_keep")
    active = np.flatnonzero(mask)
    inactive = np.flatnonzero(~mask)
    n_grow = int(min(max(n_regrow, 0), inactive.size, n_keep))
    n_survive = n_keep - n_grow
    if n_survive > active.size:  # not enough active channels: regrow the rest
        n_survive = active.size
        n_grow = n_keep - n_survive
    survivors = _top(active, scores, n_survive)
    grown = _top(inactive, grow_scores, n_grow)
    new = np.zeros(c, dtype=bool)
    new[survivors] = True
    new[grown] = True
    return MaskUpdate(new, np.flatnonzero(mask & ~new), np.flatnonzero(~mask & new))


# ============================================================================================ masking (torch)
def masked_bn_affine(xhat: torch.Tensor, gamma: Optional[torch.Tensor], beta: Optional[torch.Tensor],
                     mask: torch.Tensor, keep_grad: bool = True) -> torch.Tensor:
    """Masked batch-norm affine map ``y = m ⊙ (γ·x̂ + β)`` per channel (channel dimension 1).

    Forward: exactly ``m·(γ·x̂ + β)`` (a pruned channel, ``m_c = 0``, outputs exactly 0). Backward:
    ``∂y/∂x̂ = m·γ`` (no gradient into a pruned channel's conv path), and with ``keep_grad`` ``∂y/∂γ = x̂`` and
    ``∂y/∂β = 1`` for *every* channel, i.e. γ and β of a pruned channel get the gradient they would have if it
    were present (the regrowth signal). The extra term ``t − t.detach()`` is exactly 0 in the forward pass.
    """
    shape = (1, -1) + (1,) * (xhat.dim() - 2)
    m = mask.to(xhat.dtype).reshape(shape)
    g = gamma.reshape(shape) if gamma is not None else None
    b = beta.reshape(shape) if beta is not None else None
    full = xhat if g is None else g * xhat
    if b is not None:
        full = full + b
    y = m * full
    if keep_grad and (g is not None or b is not None):
        shadow = xhat.detach() if g is None else g * xhat.detach()
        if b is not None:
            shadow = shadow + b
        y = y + (1.0 - m) * (shadow - shadow.detach())
    return y


def masked_conv_output(y: torch.Tensor, shadow: Optional[torch.Tensor], mask: torch.Tensor,
                       masked_idx: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Mask conv output channels: forward exactly ``m ⊙ y``; ``shadow`` (the masked channels' output computed from
    a *detached* input, shape (B, len(masked_idx), H, W)) adds ``shadow − shadow.detach()`` (exactly 0) at the
    masked channels so that their weights and bias still get the gradient they would get if present, while no
    gradient flows from a masked channel into the layer's input."""
    m = mask.to(y.dtype).reshape((1, -1) + (1,) * (y.dim() - 2))
    out = y * m
    if shadow is not None and masked_idx is not None and masked_idx.numel():
        out = out.index_add(1, masked_idx, shadow - shadow.detach())
    return out


class ChannelMasked:
    """Mixin of the modules that own an SCA channel mask (buffer ``channel_mask``: 1.0 kept, 0.0 pruned).

    ``regrowth_signal()`` gives the per-channel magnitude of the current gradient that regrowth ranks pruned
    channels by (None when no gradient is there).
    """

    channel_mask: torch.Tensor

    @property
    def num_channels(self) -> int:
        return int(self.channel_mask.numel())

    @property
    def kept(self) -> torch.Tensor:
        """Indices of the active channels."""
        return torch.nonzero(self.channel_mask > 0.5).flatten()

    def regrowth_signal(self) -> Optional[torch.Tensor]:  # pragma: no cover - overridden
        raise NotImplementedError

    def magnitude_signal(self) -> torch.Tensor:  # pragma: no cover - overridden
        """Fallback regrowth criterion when there are no gradients."""
        raise NotImplementedError


class MaskedBatchNorm2d(ChannelMasked, nn.BatchNorm2d):
    """``torch.nn.BatchNorm2d`` whose output is multiplied by a per-channel 0/1 mask (buffer ``channel_mask``).

    Behaves like BatchNorm2d while every channel is kept (same statistics and running averages, same outputs up
    to floating-point rounding — BN's affine step is computed separately here; state dict plus the mask). See :func:`masked_bn_affine` for the forward/backward rules of pruned channels; ``keep_grad``
    (default True) keeps γ/β gradients of pruned channels. Regrowth signal: ``|∂L/∂γ|``.
    """

    #: in a torch.distributed group, training mode normalises with the global batch's statistics (fit checks it)
    global_batch_stats = True

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: Optional[float] = 0.1, affine: bool = True,
                 track_running_stats: bool = True, keep_grad: bool = True, **kw: Any) -> None:
        super().__init__(num_features, eps=eps, momentum=momentum, affine=affine,
                         track_running_stats=track_running_stats, **kw)
        self.keep_grad = bool(keep_grad)
        self.register_buffer("channel_mask", torch.ones(num_features, dtype=self.weight.dtype
                                                        if self.weight is not None else torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        if self.training:
            from ..train import distributed as _dist
            ctx = _dist.current()
            if ctx is not None:
                return self._forward_global(x, ctx)
        if bool(torch.all(self.channel_mask > 0.5)):  # nothing pruned: plain batch norm (fused, faster)
            return super().forward(x)
        self._check_input_dim(x)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        use_batch = self.training or (self.running_mean is None and self.running_var is None)
        track = not self.training or self.track_running_stats
        xhat = nn.functional.batch_norm(x, self.running_mean if track else None,
                                        self.running_var if track else None, None, None, use_batch, factor,
                                        self.eps)
        return masked_bn_affine(xhat, self.weight, self.bias, self.channel_mask, self.keep_grad)

    def _forward_global(self, x: torch.Tensor, ctx: Any) -> torch.Tensor:
        """Training mode in a process group: normalise with the statistics of the global batch
        (:func:`toolchain.train.distributed.batch_norm_stats`) and update the running averages with them as one
        process does (momentum, unbiased variance ``var·N/(N − 1)``), so every rank keeps the one-process
        running statistics and gradients."""
        from ..train.distributed import batch_norm_stats
        self._check_input_dim(x)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        mean, var, n = batch_norm_stats(x, ctx)
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                self.running_mean.mul_(1 - factor).add_(factor * mean.detach().to(self.running_mean.dtype))
                unbiased = var.detach() * (n / max(n - 1, 1))
                self.running_var.mul_(1 - factor).add_(factor * unbiased.to(self.running_var.dtype))
        shape = (1, -1) + (1,) * (x.dim() - 2)
        xhat = ((x.to(torch.float64) - mean.reshape(shape)) / torch.sqrt(var.reshape(shape) + self.eps)).to(x.dtype)
        return masked_bn_affine(xhat, self.weight, self.bias, self.channel_mask, self.keep_grad)

    def regrowth_signal(self) -> Optional[torch.Tensor]:
        if self.weight is None or self.weight.grad is None:
            return None
        return self.weight.grad.detach().abs().to(torch.float64).cpu()

    def magnitude_signal(self) -> torch.Tensor:
        if self.weight is None:
            return torch.zeros(self.num_features, dtype=torch.float64)
        return self.weight.detach().abs().to(torch.float64).cpu()

    def extra_repr(self) -> str:
        return super().extra_repr() + f", kept={int((self.channel_mask > 0.5).sum())}/{self.num_features}"


class MaskedConv2d(ChannelMasked, nn.Conv2d):
    """``torch.nn.Conv2d`` with a per-output-channel mask applied to its output, bias included (for networks
    without batch norm, e.g. trained with STOP): a pruned channel outputs exactly 0.

    With ``keep_grad`` (default) a pruned channel's weights and bias still receive their gradient (computed from
    a detached copy of the input, :func:`masked_conv_output`), which is the regrowth signal
    ``mean_{c_in,k} |∂L/∂W_c|`` (RigL's dense gradient, per channel); no gradient flows from a pruned channel to
    the layer's input. Trainers that write ``weight.grad`` themselves (STOP) give this signal directly.
    """

    def __init__(self, *args: Any, keep_grad: bool = True, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.keep_grad = bool(keep_grad)
        self.register_buffer("channel_mask", torch.ones(self.out_channels, dtype=self.weight.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        y = super().forward(x)
        if bool(torch.all(self.channel_mask > 0.5)):
            return y
        shadow, idx = None, None
        if self.keep_grad and torch.is_grad_enabled():
            idx = torch.nonzero(self.channel_mask < 0.5).flatten()
            b = self.bias[idx] if self.bias is not None else None
            shadow = self._conv_forward(x.detach(), self.weight[idx], b)
        return masked_conv_output(y, shadow, self.channel_mask, idx)

    def regrowth_signal(self) -> Optional[torch.Tensor]:
        if self.weight.grad is None:
            return None
        g = self.weight.grad.detach().abs().to(torch.float64).reshape(self.out_channels, -1).mean(dim=1)
        if self.bias is not None and self.bias.grad is not None:
            g = g + self.bias.grad.detach().abs().to(torch.float64)
        return g.cpu()

    def magnitude_signal(self) -> torch.Tensor:
        return self.weight.detach().abs().to(torch.float64).reshape(self.out_channels, -1).mean(dim=1).cpu()


def set_channel_mask(layer: ChannelMasked, mask: Any) -> None:
    """Write a boolean/0-1 ``mask`` of length C into ``layer.channel_mask`` (in place)."""
    m = torch.as_tensor(np.asarray(mask, dtype=bool))
    if m.shape != layer.channel_mask.shape:
        raise SCAError(f"mask of shape {tuple(m.shape)} for {layer.num_channels} channels", field="channel_mask")
    with torch.no_grad():
        layer.channel_mask.copy_(m.to(layer.channel_mask.dtype))


# ================================================================================================ channel groups
@dataclass(frozen=True)
class ChannelGroup:
    """Channels that are pruned together: ``layers`` are the names (``model.named_modules()``) of the
    mask-owning layers (:class:`MaskedBatchNorm2d` or :class:`MaskedConv2d`) that share one mask (several when
    tied by residual connections); ``neurons``
    the names of the neuron modules whose membranes score these channels (forward hooks); ``records``: where
    the same membranes are in ``SpikingNet.forward(x, record=True)`` records, as ``(record name, field)``
    pairs (default ``(neuron, "u")`` for each neuron); ``name``: a label for reports (default: the first layer)."""

    layers: Tuple[str, ...]
    neurons: Tuple[str, ...]
    name: str = ""
    records: Tuple[Tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))
        object.__setattr__(self, "neurons", tuple(self.neurons))
        recs = tuple((str(a), str(b)) for a, b in self.records) or tuple((n, "u") for n in self.neurons)
        object.__setattr__(self, "records", recs)
        if not self.layers:
            raise SCAError("a channel group needs at least one masked layer", field="layers")
        if not self.name:
            object.__setattr__(self, "name", self.layers[0])


def _is_neuron(m: nn.Module) -> bool:
    try:
        from ..nn.neurons import SpikingNeuron
        if isinstance(m, SpikingNeuron):
            return True
    except ImportError:  # pragma: no cover - toolchain.nn not there
        pass
    return hasattr(m, "shape") and hasattr(m, "alpha") and callable(getattr(m, "forward", None))


def find_channel_groups(model: nn.Module) -> List[ChannelGroup]:
    """The prunable channel groups of ``model``.

    A model that knows its own ties (residual networks) defines ``sca_groups() -> list of ChannelGroup``.
    Otherwise every mask-owning layer (:class:`MaskedBatchNorm2d`, :class:`MaskedConv2d`) is its own group,
    scored by the first neuron module registered after it (sequential networks: conv → BN → LIF).
    """
    if hasattr(model, "sca_groups"):
        return list(model.sca_groups())
    named = list(model.named_modules())
    groups = []
    for i, (name, mod) in enumerate(named):
        if isinstance(mod, ChannelMasked):
            neuron = next((n for n, m in named[i + 1:] if _is_neuron(m)), None)
            if neuron is None:
                raise SCAError("no neuron module follows this masked layer; pass the groups explicitly", node=name)
            groups.append(ChannelGroup((name,), (neuron,), name))
    return groups


# ====================================================================================================== scheduler
@dataclass
class SCAEvent:
    """One mask update: ``step``, target ``sparsity`` and ``regrow`` fraction, and per group the kept count,
    the pruned and regrown channel indices, the activity ``scores`` the update ranked (mean |U| per channel over
    the steps since the previous update) and the regrowth criterion used."""

    step: int
    sparsity: float
    regrow: float
    kept: Dict[str, int] = field(default_factory=dict)
    total: Dict[str, int] = field(default_factory=dict)
    pruned: Dict[str, List[int]] = field(default_factory=dict)
    regrown: Dict[str, List[int]] = field(default_factory=dict)
    criterion: str = "grad"
    scores: Dict[str, List[float]] = field(default_factory=dict)


class SCAScheduler:
    """Prune and regrow conv channels during training (trainer-agnostic; see the module docstring).

    ``model``: a network with :class:`MaskedBatchNorm2d` (or :class:`MaskedConv2d`) layers;
    ``schedule``: :class:`SCASchedule`;
    ``groups``: channel groups (default :func:`find_channel_groups`). Use::

        sca = SCAScheduler(model, SCASchedule(target_sparsity=0.75, end=600, interval=50))
        for step, (x, y) in enumerate(batches):
            out, rec = model(x, record=True); loss = ...; loss.backward()
            sca.step(model, rec, step)         # after backward, before optimizer.zero_grad()
            optimizer.step(); optimizer.zero_grad()

    or ``sca.attach(model)`` once and ``sca.step(model, None, step)`` (hooks collect the membranes; only in
    training mode). Scores and γ-gradient magnitudes are averaged over all steps since the previous update.
    """

    def __init__(self, model: nn.Module, schedule: SCASchedule,
                 groups: Optional[Sequence[ChannelGroup]] = None) -> None:
        self.schedule = schedule
        self.groups: List[ChannelGroup] = list(groups) if groups is not None else find_channel_groups(model)
        if not self.groups:
            raise SCAError("model has no MaskedBatchNorm2d or MaskedConv2d layer to prune", field="model")
        modules = dict(model.named_modules())
        self._channels: Dict[str, int] = {}
        for g in self.groups:
            counts = set()
            for b in g.layers:
                layer = modules.get(b)
                if not isinstance(layer, ChannelMasked):
                    raise SCAError("is not a MaskedBatchNorm2d or MaskedConv2d of the model", node=b,
                                   field="layers")
                counts.add(layer.num_channels)
            for n in g.neurons:
                if n not in modules:
                    raise SCAError("is not a module of the model", node=n, field="neurons")
            if len(counts) != 1:
                raise SCAError(f"tied layers {g.layers} have different channel counts {sorted(counts)}",
                               node=g.name, field="layers")
            self._channels[g.name] = counts.pop()
        self._reset_accumulators()
        self.history: List[SCAEvent] = []
        self._hooks: List[Any] = []

    # --------------------------------------------------------------------------------------- accumulation
    def _reset_accumulators(self) -> None:
        self._score_sum = {g.name: torch.zeros(self._channels[g.name], dtype=torch.float64)
                           for g in self.groups}
        self._score_n = {g.name: 0.0 for g in self.groups}
        self._grad_sum = {g.name: torch.zeros(self._channels[g.name], dtype=torch.float64) for g in self.groups}
        self._grad_n = {g.name: 0 for g in self.groups}

    def _add_membrane(self, group: str, u: torch.Tensor, channel_dim: int) -> None:
        c = self._channels[group]
        if u.dim() <= channel_dim or u.shape[channel_dim] != c:
            raise SCAError(f"membrane of shape {tuple(u.shape)} has no {c} channels at dim {channel_dim}",
                           node=group, field="u")
        dims = [d for d in range(u.dim()) if d != channel_dim]
        self._score_sum[group] += torch.sum(u.detach().abs(), dim=dims, dtype=torch.float64).cpu()
        self._score_n[group] += float(u.numel() // c)

    def observe(self, records: Mapping[str, Mapping[str, torch.Tensor]]) -> None:
        """Add one batch's membrane records (name -> {"u": (B, T, C, H, W)}) to the channel scores."""
        for g in self.groups:
            for n, key in g.records:
                if n not in records or key not in records[n]:
                    raise SCAError(f"records have no membrane '{key}' for this module (have "
                                   f"{sorted(records)[:8]})", node=n, field="records")
                self._add_membrane(g.name, records[n][key], channel_dim=2)

    def observe_gradients(self, model: nn.Module) -> bool:
        """Add the current regrowth signal of every group (``|∂L/∂γ|`` of a masked BN, the mean ``|∂L/∂W_c|``
        of a masked conv; summed over tied layers). Returns False if no layer has a gradient."""
        modules = dict(model.named_modules())
        found = False
        for g in self.groups:
            acc = torch.zeros(self._channels[g.name], dtype=torch.float64)
            have = False
            for b in g.layers:
                sig = modules[b].regrowth_signal()
                if sig is not None:
                    acc += sig
                    have = True
            if have:
                self._grad_sum[g.name] += acc
                self._grad_n[g.name] += 1
                found = True
        return found

    def attach(self, model: nn.Module) -> "SCAScheduler":
        """Install forward hooks on the scoring neuron modules: in training mode each call (one time step)
        adds ``|U[t]|`` of its state to the scores. :meth:`detach` removes them."""
        self.detach()
        modules = dict(model.named_modules())
        for g in self.groups:
            for n in g.neurons:
                self._hooks.append(modules[n].register_forward_hook(self._make_hook(g.name)))
        return self

    def _make_hook(self, group: str) -> Callable:
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            if not module.training:
                return
            state = output[1] if isinstance(output, tuple) and len(output) == 2 else None
            u = getattr(state, "u", None)
            if u is None:
                raise SCAError("neuron output has no state with a membrane 'u'", node=group, field="u")
            self._add_membrane(group, u, channel_dim=1)
        return hook

    def detach(self) -> None:
        """Remove the hooks installed by :meth:`attach`."""
        for h in self._hooks:
            h.remove()
        self._hooks = []

    # ------------------------------------------------------------------------------------------- updates
    def step(self, model: nn.Module, batch_records: Optional[Mapping[str, Mapping[str, torch.Tensor]]],
             step: int) -> Optional[SCAEvent]:
        """Trainer callback, once per optimisation step after ``loss.backward()``: accumulate scores (from
        ``batch_records`` unless hooks are attached) and γ-gradients, and update the masks when
        ``schedule.is_update(step)``. Returns the :class:`SCAEvent` of an update, else None."""
        if batch_records is not None and not self._hooks:
            self.observe(batch_records)
        self.observe_gradients(model)
        if not self.schedule.is_update(step):
            return None
        return self.update(model, step)

    def masks(self, model: nn.Module) -> Dict[str, np.ndarray]:
        """Current boolean mask of every group (from its first layer)."""
        modules = dict(model.named_modules())
        return {g.name: (modules[g.layers[0]].channel_mask > 0.5).cpu().numpy() for g in self.groups}

    def _reduce_scores(self) -> None:
        """In a process group of more than one process: replace every group's score sums and counts by their
        sums over the ranks (one all-reduce), i.e. the sums one process computes over the global batches. The
        regrowth gradients need no reduction: read after the gradient average (``with_sca`` under ``fit``), they
        are the global batch's on every rank."""
        from ..train import distributed as _dist
        ctx = _dist.current()
        if ctx is None:
            return
        names = [g.name for g in self.groups]
        buf = torch.cat([self._score_sum[n] for n in names]
                        + [torch.tensor([self._score_n[n] for n in names], dtype=torch.float64)])
        buf = _dist.all_reduce(buf, "sum", ctx)
        off = 0
        for n in names:
            c = self._channels[n]
            self._score_sum[n] = buf[off:off + c].clone()
            off += c
        for i, n in enumerate(names):
            self._score_n[n] = float(buf[off + i])

    def update(self, model: nn.Module, step: int) -> SCAEvent:
        """Prune and regrow every group now, with the scores and gradients accumulated so far."""
        modules = dict(model.named_modules())
        sched = self.schedule
        self._reduce_scores()
        event = SCAEvent(step=step, sparsity=sched.sparsity(step), regrow=sched.regrow(step))
        no_grad = []
        for g in self.groups:
            c = self._channels[g.name]
            mask = (modules[g.layers[0]].channel_mask > 0.5).cpu().numpy()
            n = self._score_n[g.name]
            scores = (self._score_sum[g.name] / n).numpy() if n > 0 else np.zeros(c)
            if self._grad_n[g.name] > 0:
                grow = (self._grad_sum[g.name] / self._grad_n[g.name]).numpy()
            else:  # no gradients reached the masked layers: fall back to parameter magnitudes
                no_grad.append(g.name)
                grow = sum(modules[b].magnitude_signal() for b in g.layers).numpy()
            n_keep = sched.keep_count(c, step)
            n_regrow = sched.regrow_count(n_keep, step)
            res = update_channel_mask(mask, scores, grow, n_keep, n_regrow)
            for b in g.layers:
                set_channel_mask(modules[b], res.mask)
            event.kept[g.name] = int(res.mask.sum())
            event.total[g.name] = c
            event.pruned[g.name] = res.pruned.tolist()
            event.regrown[g.name] = res.regrown.tolist()
            event.scores[g.name] = [float(v) for v in scores]
        if no_grad:
            event.criterion = "magnitude"
            warnings.warn(f"SCA: no gradients for {no_grad}; regrowing by |γ| (or |W|) instead", RuntimeWarning,
                          stacklevel=2)
        self._reset_accumulators()
        self.history.append(event)
        return event


# ============================================================================================ trainer wrappers
def with_sca(batch_fn: Callable[[nn.Module, torch.Tensor, torch.Tensor], Tuple[float, torch.Tensor]],
             sca: "SCAScheduler", first_step: int = 0
             ) -> Callable[[nn.Module, torch.Tensor, torch.Tensor], Tuple[float, torch.Tensor]]:
    """Wrap a trainer's batch function (``batch_fn(model, x, y) -> (loss, output_sum)``, which writes
    ``param.grad``: :func:`toolchain.train.bptt.bptt_step`, :func:`toolchain.train.stop.stop_gradients`, ...) so
    that :meth:`SCAScheduler.step` runs after every batch's gradients, before the optimiser step. Scores come from
    the hooks :meth:`SCAScheduler.attach` installs (attached here if not yet). Steps count from ``first_step``.

    In a ``torch.distributed`` group of more than one process the step runs instead in the wrapper's
    ``after_gradients`` hook, which :func:`toolchain.train.loop.fit` calls on every rank (an idle rank of a short
    last batch included) after the gradients are averaged: the regrowth gradients are then the global batch's
    and the score sums are all-reduced at each update, so every rank sets the one-process masks."""
    from ..train import distributed as _dist
    counter = [int(first_step)]

    def _step(model: nn.Module) -> None:
        if not sca._hooks:
            sca.attach(model)
        sca.step(model, None, counter[0])
        counter[0] += 1

    def wrapped(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Tuple[float, torch.Tensor]:
        if not sca._hooks:
            sca.attach(model)
        out = batch_fn(model, x, y)
        if _dist.current() is None:
            _step(model)
        return out

    def after_gradients(model: nn.Module) -> None:
        if _dist.current() is not None:
            _step(model)

    wrapped.sca = sca  # type: ignore[attr-defined]
    wrapped.after_gradients = after_gradients  # type: ignore[attr-defined]
    return wrapped


def train_sca(model: nn.Module, data: Any, schedule: SCASchedule, config: Any = None, trainer: str = "bptt",
              groups: Optional[Sequence[ChannelGroup]] = None, **trainer_kw: Any) -> Tuple[Any, "SCAScheduler"]:
    """Train ``model`` on ``data`` (a :class:`toolchain.data.SplitDataset`) with SCA pruning, using the shared
    training loop :func:`toolchain.train.loop.fit` and ``trainer`` "bptt" (``trainer_kw``: ``loss``) or "stop"
    (``variant``, ``leak_reduction``). Returns ``(history, scheduler)``; the model keeps its masks (call
    :func:`deploy` for the sliced, BN-folded network)."""
    from ..train.loop import TrainConfig, fit

    config = config or TrainConfig()
    sca = SCAScheduler(model, schedule, groups)
    if trainer == "bptt":
        from ..train.bptt import bptt_step, output_is_spiking
        kind = trainer_kw.get("loss", "auto")
        kind = ("sum" if output_is_spiking(model) else "mean") if kind == "auto" else kind
        params = [p for p in model.parameters() if p.requires_grad]

        def base(m: nn.Module, xb: torch.Tensor, yb: torch.Tensor) -> Tuple[float, torch.Tensor]:
            return bptt_step(m, xb, yb, kind, config.loss_start)
        name = f"bptt-{kind}+sca"
    elif trainer == "stop":
        from ..train.stop import stop_gradients, stop_parameters
        variant = trainer_kw.get("variant", "W")
        reduction = trainer_kw.get("leak_reduction", "sum")
        params = stop_parameters(model, variant)

        def base(m: nn.Module, xb: torch.Tensor, yb: torch.Tensor) -> Tuple[float, torch.Tensor]:
            res = stop_gradients(m, xb, yb, variant, config.loss_start, reduction)
            return res.loss, res.output_sum
        name = f"stop-{variant.upper()}+sca"
    else:
        raise SCAError(f"trainer must be 'bptt' or 'stop', got {trainer!r}", field="trainer")
    sca.attach(model)
    try:
        history = fit(model, data, config, with_sca(base, sca), params, trainer=name)
    finally:
        sca.detach()
    return history, sca


# ================================================================================================== deployment
def fold_bn_params(weight: torch.Tensor, bias: Optional[torch.Tensor], gamma: Optional[torch.Tensor],
                   beta: Optional[torch.Tensor], mean: torch.Tensor, var: torch.Tensor, eps: float,
                   mask: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """Fold eval-mode batch norm (and an optional channel mask) into the preceding conv/linear layer (pure).

    ``BN(W∗x + b) = m·(γ·(W∗x + b − μ)/√(σ² + ε) + β) = W'∗x + b'`` with ``k = m·γ/√(σ² + ε)``,
    ``W' = k·W`` (per output channel, dimension 0), ``b' = k·(b − μ) + m·β``. Returns ``(W', b')``.
    """
    c = weight.shape[0]
    g = gamma if gamma is not None else torch.ones(c, dtype=weight.dtype)
    bt = beta if beta is not None else torch.zeros(c, dtype=weight.dtype)
    b0 = bias if bias is not None else torch.zeros(c, dtype=weight.dtype)
    m = torch.ones(c, dtype=weight.dtype) if mask is None else mask.to(weight.dtype)
    k = m * g / torch.sqrt(var + eps)
    w = weight * k.reshape((-1,) + (1,) * (weight.dim() - 1))
    b = k * (b0 - mean) + m * bt
    return w, b


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` (in eval mode) with every (Conv2d | Linear) → BatchNorm pair folded into the conv's
    weight and bias (:func:`fold_bn_params`; masks included) and the BN replaced by ``nn.Identity``; every
    :class:`MaskedConv2d` becomes a plain ``nn.Conv2d`` with its mask multiplied into weights and bias.

    Pairs are found among the children of every container in registration order (a BN directly after its conv);
    in ``nn.Sequential`` containers (``SpikingNet``) the BN is removed. A model can override this with
    ``sca_fold_()`` (called on the copy) for other wiring.
    """
    out = copy.deepcopy(model).eval()
    if hasattr(out, "sca_fold_"):
        out.sca_fold_()
        return out
    _fold_children(out)
    return out


def fold_pair_(conv: nn.Module, bn: nn.modules.batchnorm._BatchNorm) -> None:
    """Fold ``bn`` (eval statistics, mask) into ``conv`` in place (conv gains a bias if it had none)."""
    if bn.running_mean is None or bn.running_var is None:
        raise SCAError("batch norm without running statistics cannot be folded", field="track_running_stats")
    mask = getattr(bn, "channel_mask", None)
    with torch.no_grad():
        w, b = fold_bn_params(conv.weight, conv.bias, bn.weight, bn.bias, bn.running_mean, bn.running_var,
                              bn.eps, mask)
        conv.weight.copy_(w)
        if conv.bias is None:
            conv.bias = nn.Parameter(b.clone())
        else:
            conv.bias.copy_(b)


def _fold_children(module: nn.Module) -> None:
    prev: Optional[nn.Module] = None
    for name, child in list(module.named_children()):
        if isinstance(child, MaskedConv2d):  # mask into the weights: a plain conv
            child = plain_conv(child)
            setattr(module, name, child)
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            if not isinstance(prev, (nn.Conv2d, nn.Linear, nn.Conv1d)):
                raise SCAError(f"batch norm follows {type(prev).__name__}, not a conv or linear layer; "
                               f"cannot fold", node=name)
            fold_pair_(prev, child)
            if isinstance(module, nn.Sequential):  # drop it (to_graph maps no Identity)
                del module._modules[name]
            else:
                setattr(module, name, nn.Identity())
            prev = None
            continue
        _fold_children(child)
        prev = child


def _slice_neuron(neuron: nn.Module, keep: torch.Tensor) -> nn.Module:
    """A copy of a neuron module restricted to channels ``keep`` (dimension 0 of its shape)."""
    new = copy.deepcopy(neuron)
    shape = tuple(getattr(neuron, "shape", ()))
    if not shape:
        return new
    new_shape = (int(keep.numel()),) + shape[1:]
    for pname, p in list(new.named_parameters(recurse=False)):
        if tuple(p.shape) == shape:
            setattr(new, pname, nn.Parameter(p.detach()[keep].clone(), requires_grad=p.requires_grad))
    for bname, b in list(new.named_buffers(recurse=False)):
        if b is not None and tuple(b.shape) == shape:
            new.register_buffer(bname, b[keep].clone())
    new.shape = new_shape
    return new


def plain_conv(conv: nn.Conv2d) -> nn.Conv2d:
    """A plain ``nn.Conv2d`` copy of ``conv``; for a :class:`MaskedConv2d` the mask is multiplied into the
    weights and bias (pruned output channels get zero weights and bias), so it computes the same output."""
    if not isinstance(conv, MaskedConv2d):
        return copy.deepcopy(conv)
    new = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                    conv.dilation, conv.groups, conv.bias is not None, conv.padding_mode)
    new = new.to(dtype=conv.weight.dtype, device=conv.weight.device)
    m = conv.channel_mask.to(conv.weight.dtype)
    with torch.no_grad():
        new.weight.copy_(conv.weight * m.reshape(-1, 1, 1, 1))
        if conv.bias is not None:
            new.bias.copy_(conv.bias * m)
    new.train(conv.training)
    return new


def _slice_conv_in(conv: nn.Conv2d, keep: torch.Tensor) -> nn.Conv2d:
    if conv.groups != 1:
        raise SCAError("grouped convolutions cannot be sliced", field="groups")
    new = copy.deepcopy(conv)
    new.weight = nn.Parameter(conv.weight.detach()[:, keep].clone())
    new.in_channels = int(keep.numel())
    return new


def _slice_conv_out(conv: nn.Module, keep: torch.Tensor) -> nn.Module:
    new = plain_conv(conv) if isinstance(conv, nn.Conv2d) else copy.deepcopy(conv)
    new.weight = nn.Parameter(new.weight.detach()[keep].clone())
    if new.bias is not None:
        new.bias = nn.Parameter(new.bias.detach()[keep].clone())
    if isinstance(new, nn.Conv2d):
        new.out_channels = int(keep.numel())
    else:
        new.out_features = int(keep.numel())
    return new


def _slice_bn(bn: nn.modules.batchnorm._BatchNorm, keep: torch.Tensor) -> nn.BatchNorm2d:
    """A plain BatchNorm2d with the kept channels (the mask is all ones afterwards, so it is dropped)."""
    new = nn.BatchNorm2d(int(keep.numel()), eps=bn.eps, momentum=bn.momentum, affine=bn.affine,
                         track_running_stats=bn.track_running_stats)
    new = new.to(dtype=bn.running_mean.dtype if bn.running_mean is not None else torch.float32)
    with torch.no_grad():
        if bn.affine:
            new.weight.copy_(bn.weight[keep])
            new.bias.copy_(bn.bias[keep])
        if bn.running_mean is not None:
            new.running_mean.copy_(bn.running_mean[keep])
            new.running_var.copy_(bn.running_var[keep])
            new.num_batches_tracked.copy_(bn.num_batches_tracked)
    new.train(bn.training)
    return new


def _slice_linear_in(lin: nn.Linear, keep_feat: torch.Tensor) -> nn.Linear:
    new = copy.deepcopy(lin)
    new.weight = nn.Parameter(lin.weight.detach()[:, keep_feat].clone())
    new.in_features = int(keep_feat.numel())
    return new


@dataclass
class _Flow:
    """What the sequential slicer knows about the tensor flowing between modules."""

    keep: Optional[torch.Tensor] = None  # kept channel (or feature) indices of the *unsliced* layout
    channels: Optional[int] = None  # channel count of the unsliced layout
    flat: bool = False  # True once flattened: keep indexes features


def slice_sequence(modules: List[Tuple[str, nn.Module]], flow: _Flow) -> Tuple[List[Tuple[str, nn.Module]], _Flow]:
    """Slice a chain of modules given which channels of its input are kept; returns new modules and flow.

    Handles Conv2d (in-channels, and out-channels when it is a MaskedConv2d or the next module is a
    MaskedBatchNorm2d; masked layers become plain ones), BatchNorm2d after a conv, neurons
    (per-channel parameters), channel-preserving modules (pooling, dropout, identity), Flatten (channels →
    feature indices) and Linear (input features). A module with ``sca_slice(flow) -> (module, flow)`` slices
    itself (residual blocks).
    """
    out: List[Tuple[str, nn.Module]] = []
    i = 0
    while i < len(modules):
        name, m = modules[i]
        if hasattr(m, "sca_slice"):
            m, flow = m.sca_slice(flow)
            out.append((name, m))
        elif isinstance(m, nn.Conv2d):
            if flow.keep is not None:
                if flow.flat:
                    raise SCAError("a conv after a flatten cannot be sliced", node=name)
                m = _slice_conv_in(m, flow.keep)
            nxt_name, nxt = modules[i + 1] if i + 1 < len(modules) else (None, None)
            owner = m if isinstance(m, MaskedConv2d) else None
            if isinstance(nxt, MaskedBatchNorm2d):
                if owner is not None:
                    raise SCAError("a MaskedConv2d followed by a MaskedBatchNorm2d has two masks; use one",
                                   node=name, field="channel_mask")
                owner = nxt
            keep = owner.kept if owner is not None else torch.arange(m.out_channels)
            if keep.numel() == 0:
                raise SCAError("every channel is pruned", node=name if owner is m else nxt_name,
                               field="channel_mask")
            pruned = keep.numel() < m.out_channels
            flow = _Flow(keep if pruned else None, m.out_channels)
            out.append((name, _slice_conv_out(m, keep) if pruned else plain_conv(m)))
            if isinstance(nxt, nn.modules.batchnorm._BatchNorm):
                out.append((nxt_name, _slice_bn(nxt, keep)))
                i += 2
                continue
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            if flow.keep is not None:
                m = _slice_bn(m, flow.keep)
            out.append((name, m))
        elif _is_neuron(m):
            if flow.keep is not None:
                if flow.flat:
                    raise SCAError("a neuron layer directly after a flatten of pruned channels cannot be "
                                   "sliced; put a dense layer first", node=name)
                m = _slice_neuron(m, flow.keep)
            out.append((name, m))
        elif isinstance(m, nn.Flatten):
            if flow.keep is not None:
                flow = _Flow(flow.keep, flow.channels, flat=True)
            out.append((name, m))
        elif isinstance(m, nn.Linear):
            if flow.keep is not None:
                if not flow.flat:
                    raise SCAError("a dense layer on an unflattened channel tensor cannot be sliced", node=name)
                n_in = m.in_features
                if n_in % flow.channels:
                    raise SCAError(f"{n_in} input features are not a multiple of {flow.channels} channels",
                                   node=name, field="in_features")
                per = n_in // flow.channels
                feat = (flow.keep[:, None] * per + torch.arange(per)[None, :]).reshape(-1)
                m = _slice_linear_in(m, feat)
            out.append((name, m))
            flow = _Flow(None, m.out_features, flat=True)
        elif isinstance(m, (nn.Sequential, nn.ModuleList)):
            sub, flow = slice_sequence(list(m.named_children()), flow)
            new = copy.deepcopy(m)
            for n2, c2 in sub:
                setattr(new, n2, c2)
            out.append((name, new))
        else:
            # channel-preserving modules (pooling, dropout, identity, activation functions) pass through
            if not _channel_preserving(m):
                raise SCAError(f"do not know how {type(m).__name__} maps channels; give it an sca_slice method",
                               node=name)
            out.append((name, copy.deepcopy(m)))
        i += 1
    return out, flow


def _channel_preserving(m: nn.Module) -> bool:
    names = {"SumPool2d", "AvgPool2d", "MaxPool2d", "Dropout", "Dropout2d", "Identity", "ReLU"}
    return type(m).__name__ in names or isinstance(m, (nn.Identity, nn.Dropout, nn.AvgPool2d, nn.MaxPool2d))


def slice_channels(model: nn.Module) -> nn.Module:
    """A physically smaller copy of ``model`` without its pruned channels (same spikes as the masked model).

    Removes the masked output channels of each conv (weights, bias), their BN entries (the BN becomes a plain
    BatchNorm2d), their neurons (per-neuron parameters), the matching input channels of the next conv and the
    matching input features of the first dense layer after a flatten. Works on sequential containers (the
    children of ``model`` in order, nested Sequentials, modules with ``sca_slice``); a model can override it
    with ``sca_sliced() -> nn.Module``.
    """
    if hasattr(model, "sca_sliced"):
        return model.sca_sliced()
    new = copy.deepcopy(model)
    sub, _ = slice_sequence(list(model.named_children()), _Flow())
    for name, child in sub:
        setattr(new, name, child)
    if hasattr(new, "sca_after_slice_"):
        new.sca_after_slice_()
    return new


def deploy(model: nn.Module) -> nn.Module:
    """Slice out pruned channels, then fold batch norm: the network to export (eval mode)."""
    return fold_batchnorm(slice_channels(model))


def channel_report(model: nn.Module) -> Dict[str, Tuple[int, int]]:
    """``{layer name: (kept channels, total channels)}`` for every masked layer (MaskedBatchNorm2d,
    MaskedConv2d) of ``model``."""
    return {n: (int((m.channel_mask > 0.5).sum()), m.num_channels) for n, m in model.named_modules()
            if isinstance(m, ChannelMasked)}


def parameter_count(model: nn.Module, nonzero: bool = False) -> int:
    """Weights and biases of the synapse layers (Conv*, Linear) of ``model``; ``nonzero`` counts only entries
    that are not exactly 0 (for unstructured pruning). BN and neuron parameters are not counted (BN folds away)."""
    total = 0
    for m in model.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)):
            for p in (m.weight, m.bias):
                if p is not None:
                    total += int((p != 0).sum()) if nonzero else p.numel()
    return total
