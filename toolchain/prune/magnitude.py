"""Unstructured magnitude pruning: the baseline SCA is compared against at an equal parameter count.

The weights of the synapse layers (``nn.Conv2d``, ``nn.Linear``) with the smallest absolute values are set to
zero — globally across layers (``scope="global"``, default) or the same fraction in each layer (``"layer"``) —
gradually during training on the same cubic ramp SCA uses (Zhu & Gupta 2017), or at once
(:func:`prune_magnitude`). Pruned weights stay exactly zero: their gradients are masked and the masks are
re-applied in place at every :meth:`MagnitudePruner.step`. Pruned weights never come back (no regrowth).

On export (:func:`sparse_graph`) every ``Linear``/``Affine`` node with zeros stores its weights as
:class:`toolchain.ir.Csr` (only the surviving synapses); ``Conv2d`` kernels keep their zeros, which the compiler's
conv lowering turns into missing synapses. So the compiler sees exactly the synapses that are left. The
unstructured sparsity removes synapses but, unlike SCA, no neurons.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

import numpy as np
import torch
from torch import nn

from ..errors import ToolchainError
from ..ir import nodes as N
from ..ir.graph import Graph
from ..ir.storage import Csr, Dense, Structured
from .sca import cubic_sparsity

__all__ = ["MagnitudeError", "prunable_weights", "magnitude_masks", "prune_magnitude", "MagnitudePruner",
           "train_magnitude", "sparse_graph"]


class MagnitudeError(ToolchainError, ValueError):
    """Bad magnitude-pruning input (keep count out of range, unknown scope, mismatched masks)."""


def prunable_weights(model: nn.Module) -> Dict[str, nn.Parameter]:
    """``{module name: weight}`` of every ``nn.Conv2d``/``nn.Conv1d``/``nn.Linear`` of ``model`` (in order).
    Recurrent weights are included; batch-norm and neuron parameters are not."""
    return {name: m.weight for name, m in model.named_modules()
            if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear))}


def magnitude_masks(weights: Mapping[str, torch.Tensor], n_keep: int, scope: str = "global",
                    current: Optional[Mapping[str, torch.Tensor]] = None) -> Dict[str, torch.Tensor]:
    """Boolean masks keeping the ``n_keep`` weights of largest magnitude (pure).

    ``scope="global"``: one ranking over all weights; ``"layer"``: each layer keeps the same fraction
    ``n_keep / total`` (rounded, at least one weight). ``current``: masks already applied — weights outside them
    are never kept again. Ties are broken by position (earlier layers and lower flat indices first).
    """
    names = list(weights)
    total = sum(int(weights[n].numel()) for n in names)
    if not 1 <= n_keep <= total:
        raise MagnitudeError(f"n_keep must lie in [1, {total}], got {n_keep}", field="n_keep")
    mags = {}
    for n in names:
        a = weights[n].detach().abs().to(torch.float64).reshape(-1).cpu()
        if current is not None and n in current:
            a = torch.where(current[n].reshape(-1).cpu(), a, torch.full_like(a, -1.0))
        mags[n] = a
    out: Dict[str, torch.Tensor] = {}
    if scope == "global":
        flat = torch.cat([mags[n] for n in names])
        # stable ordering: sort by (-magnitude, position)
        order = np.lexsort((np.arange(flat.numel()), -flat.numpy()))
        keep = np.zeros(flat.numel(), dtype=bool)
        keep[order[:n_keep]] = True
        start = 0
        for n in names:
            k = weights[n].numel()
            out[n] = torch.as_tensor(keep[start:start + k]).reshape(weights[n].shape)
            start += k
    elif scope == "layer":
        frac = n_keep / float(total)
        for n in names:
            a = mags[n].numpy()
            k = int(min(a.size, max(1, round(frac * a.size))))
            order = np.lexsort((np.arange(a.size), -a))
            keep = np.zeros(a.size, dtype=bool)
            keep[order[:k]] = True
            out[n] = torch.as_tensor(keep).reshape(weights[n].shape)
    else:
        raise MagnitudeError(f"scope must be 'global' or 'layer', got {scope!r}", field="scope")
    return out


@torch.no_grad()
def _apply(weights: Mapping[str, nn.Parameter], masks: Mapping[str, torch.Tensor]) -> None:
    for n, m in masks.items():
        w = weights[n]
        w.mul_(m.to(device=w.device, dtype=w.dtype))


def prune_magnitude(model: nn.Module, n_keep: int, scope: str = "global") -> Dict[str, torch.Tensor]:
    """One-shot: zero all but the ``n_keep`` largest-magnitude synapse weights of ``model`` in place; returns
    the masks."""
    weights = prunable_weights(model)
    masks = magnitude_masks(weights, n_keep, scope)
    _apply(weights, masks)
    return masks


@dataclass
class MagnitudeEvent:
    """One pruning update: ``step``, weights ``kept`` of ``total``."""

    step: int
    kept: int
    total: int


class MagnitudePruner:
    """Gradual magnitude pruning during training, with the same trainer callback as SCA.

    ``n_keep``: weights left at the end (e.g. the parameter count of an SCA-pruned network) — or ``sparsity``,
    the pruned fraction; ``start``/``end``/``interval``: cubic ramp from dense to the target; ``scope``: see
    :func:`magnitude_masks`. Call :meth:`step` once per optimisation step (after ``loss.backward()``). Gradient
    hooks zero the gradients of pruned weights, and every call re-applies the masks in place.
    """

    def __init__(self, model: nn.Module, n_keep: Optional[int] = None, sparsity: Optional[float] = None,
                 start: int = 0, end: int = 1000, interval: int = 100, scope: str = "global") -> None:
        self.weights = prunable_weights(model)
        if not self.weights:
            raise MagnitudeError("model has no Conv/Linear weights to prune", field="model")
        self.total = sum(int(w.numel()) for w in self.weights.values())
        if (n_keep is None) == (sparsity is None):
            raise MagnitudeError("give exactly one of n_keep and sparsity", field="n_keep")
        if n_keep is None:
            if not 0.0 <= float(sparsity) < 1.0:
                raise MagnitudeError(f"must lie in [0, 1), got {sparsity}", field="sparsity")
            n_keep = int(round((1.0 - float(sparsity)) * self.total))
        if not 1 <= int(n_keep) <= self.total:
            raise MagnitudeError(f"must lie in [1, {self.total}], got {n_keep}", field="n_keep")
        if interval < 1 or end < start or start < 0:
            raise MagnitudeError(f"need 0 <= start <= end and interval >= 1, got start={start}, end={end}, "
                                 f"interval={interval}", field="interval")
        self.n_keep = int(n_keep)
        self.start, self.end, self.interval = int(start), int(end), int(interval)
        self.scope = scope
        self.masks: Dict[str, torch.Tensor] = {n: torch.ones_like(w, dtype=torch.bool)
                                               for n, w in self.weights.items()}
        self.history: List[MagnitudeEvent] = []
        self._handles = [w.register_hook(self._grad_hook(n)) for n, w in self.weights.items()]

    def _grad_hook(self, name: str):
        def hook(grad: torch.Tensor) -> torch.Tensor:
            return grad * self.masks[name].to(device=grad.device, dtype=grad.dtype)
        return hook

    def keep_at(self, step: int) -> int:
        """Weights kept at ``step`` on the cubic ramp."""
        target = 1.0 - self.n_keep / float(self.total)
        s = cubic_sparsity(step, target, self.start, self.end, 0.0)
        return int(max(self.n_keep, round((1.0 - s) * self.total)))

    def is_update(self, step: int) -> bool:
        return self.start <= step <= self.end and (step - self.start) % self.interval == 0

    def step(self, model: nn.Module, batch_records: Optional[Mapping] = None, step: int = 0
             ) -> Optional[MagnitudeEvent]:
        """Trainer callback: prune further at update steps; always re-apply the masks."""
        event = None
        if self.is_update(step) or step > self.end and self.kept() > self.n_keep:
            k = self.keep_at(step) if step <= self.end else self.n_keep
            self.masks = magnitude_masks(self.weights, k, self.scope, current=self.masks)
            event = MagnitudeEvent(step, self.kept(), self.total)
            self.history.append(event)
        _apply(self.weights, self.masks)
        return event

    @torch.no_grad()
    def apply(self) -> None:
        """Multiply the masks into the weights in place (undoes any optimiser drift of pruned weights)."""
        _apply(self.weights, self.masks)

    def wrap(self, batch_fn: Callable[[nn.Module, torch.Tensor, torch.Tensor], Tuple[float, torch.Tensor]],
             first_step: int = 0) -> Callable[[nn.Module, torch.Tensor, torch.Tensor], Tuple[float, torch.Tensor]]:
        """A trainer batch function (``(model, x, y) -> (loss, output_sum)``, writes ``param.grad``) that applies
        the masks before the forward pass and calls :meth:`step` after the gradients (see
        :func:`toolchain.prune.sca.with_sca`)."""
        counter = [int(first_step)]

        def wrapped(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Tuple[float, torch.Tensor]:
            self.apply()
            out = batch_fn(model, x, y)
            self.step(model, None, counter[0])
            counter[0] += 1
            return out
        return wrapped

    def kept(self) -> int:
        """Weights currently kept."""
        return int(sum(int(m.sum()) for m in self.masks.values()))

    def finalize(self) -> Dict[str, torch.Tensor]:
        """Prune to the final ``n_keep`` now (if not yet there), apply the masks, remove the hooks."""
        if self.kept() > self.n_keep:
            self.masks = magnitude_masks(self.weights, self.n_keep, self.scope, current=self.masks)
        _apply(self.weights, self.masks)
        for h in self._handles:
            h.remove()
        self._handles = []
        return self.masks


def train_magnitude(model: nn.Module, data: Any, n_keep: Optional[int] = None, sparsity: Optional[float] = None,
                    config: Any = None, start: int = 0, end: int = 1000, interval: int = 100,
                    scope: str = "global", loss: str = "auto") -> Tuple[Any, MagnitudePruner]:
    """Train ``model`` with BPTT (:func:`toolchain.train.loop.fit`) while pruning it gradually by magnitude to
    ``n_keep`` weights (or ``sparsity``); returns ``(history, pruner)`` with the masks final and applied."""
    from ..train.bptt import bptt_step, output_is_spiking
    from ..train.loop import TrainConfig, fit

    config = config or TrainConfig()
    pruner = MagnitudePruner(model, n_keep=n_keep, sparsity=sparsity, start=start, end=end, interval=interval,
                             scope=scope)
    kind = ("sum" if output_is_spiking(model) else "mean") if loss == "auto" else loss

    def base(m: nn.Module, xb: torch.Tensor, yb: torch.Tensor) -> Tuple[float, torch.Tensor]:
        return bptt_step(m, xb, yb, kind, config.loss_start)
    try:
        history = fit(model, data, config, pruner.wrap(base), [p for p in model.parameters() if p.requires_grad],
                      trainer=f"bptt-{kind}+magnitude")
    finally:
        pruner.finalize()
    return history, pruner


# ================================================================================================== export
def sparse_graph(graph: Graph) -> Graph:
    """Store unstructured sparsity explicitly so the compiler sees only the surviving synapses (pure pass).

    Every ``Linear``/``Affine`` node whose ``Dense`` (or ``Structured``) weights contain exact zeros gets ``Csr``
    storage of its non-zero (stored) entries. ``Conv2d`` nodes keep their kernels: the compiler's conv lowering
    (:func:`toolchain.passes.normalise.conv_to_csr`) already makes no synapse for a kernel tap that is exactly 0.
    """
    nodes = dict(graph.nodes)
    for name, n in nodes.items():
        if isinstance(n, N.Linear) and isinstance(n.weight, (Dense, Structured)):
            d = n.weight.to_dense()
            if np.any(d == 0):
                nodes[name] = n.replace(weight=Csr.from_dense(d, mask=(d != 0) & n.weight.stored_mask()))
    return graph.replace(nodes=nodes, metadata={**graph.metadata, "sparse_graph": True})
