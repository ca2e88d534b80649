"""Surrogate-gradient backpropagation through time (BPTT) for a :class:`toolchain.nn.SpikingNet`.

The whole sequence is unrolled (``model(x)`` keeps every step's activations for the backward pass: memory grows
linearly with T) and the spike's derivative is the neuron's surrogate ``φ(U − θ)``. Every ``nn.Parameter`` of the
model is trained (weights, biases, and thresholds/leaks where the neurons make them learnable).

Loss on the output ``y`` (B, T, C) — ``U`` of an :class:`~toolchain.nn.LI` readout or the spikes of a spiking
output layer — over the steps ``t ≥ loss_start``:

* ``"mean"``: ``CE(mean_t y[t])`` (the time-averaged readout; default for LI outputs);
* ``"sum"``: ``CE(Σ_t y[t])`` (spike counts as logits; default for spiking outputs);
* ``"per_step"``: ``mean_t CE(y[t])`` (STOP's objective, for side-by-side comparisons).

The prediction is ``argmax Σ_t y[t]`` in every case. An optional ``regularizer(model, records, output, labels)``
(e.g. :class:`toolchain.train.rcs.RCSRegulariser`) adds a term computed from ``model(x, record=True)``.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..data.base import SplitDataset
from ..errors import ToolchainError
from .loop import History, TrainConfig, fit

__all__ = ["LOSSES", "sequence_loss", "bptt_step", "train_bptt", "output_is_spiking"]

LOSSES = ("auto", "mean", "sum", "per_step")
Regularizer = Callable[[nn.Module, Any, torch.Tensor, torch.Tensor], torch.Tensor]


def output_is_spiking(model: nn.Module) -> bool:
    """True when the last neuron module of the network emits spikes (False for an LI readout)."""
    last = None
    for m in model.children():
        if hasattr(m, "spiking"):
            last = m
    return bool(getattr(last, "spiking", True))


def sequence_loss(output: torch.Tensor, labels: torch.Tensor, kind: str = "mean", loss_start: int = 0) -> torch.Tensor:
    """The BPTT loss of ``output`` (B, T, C) against ``labels`` (B,); ``kind`` as in the module docstring."""
    y = output[:, loss_start:]
    if y.shape[1] == 0:
        raise ToolchainError(f"loss_start {loss_start} leaves no time steps of {output.shape[1]}", field="loss_start")
    if kind == "mean":
        return F.cross_entropy(y.mean(1), labels)
    if kind == "sum":
        return F.cross_entropy(y.sum(1), labels)
    if kind == "per_step":
        B, T, C = y.shape
        return F.cross_entropy(y.reshape(B * T, C), labels.repeat_interleave(T))
    raise ToolchainError(f"unknown loss {kind!r}; choose one of {LOSSES}", field="loss")


def bptt_step(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, loss: str = "mean", loss_start: int = 0,
              regularizer: Optional[Regularizer] = None) -> Tuple[float, torch.Tensor]:
    """Forward the batch, backpropagate through time (writes ``param.grad``); returns (loss, Σ_t y[t])."""
    if regularizer is not None:
        out, records = model(x, record=True)
    else:
        out, records = model(x), None
    total = sequence_loss(out, labels, loss, loss_start)
    if regularizer is not None:
        total = total + regularizer(model, records, out, labels)
    total.backward()
    return float(total.detach()), out[:, loss_start:].sum(1).detach()


def train_bptt(model: nn.Module, data: SplitDataset, config: Optional[TrainConfig] = None, loss: str = "auto",
               regularizer: Optional[Regularizer] = None) -> History:
    """Train ``model`` with surrogate-gradient BPTT and Adam (see :func:`toolchain.train.loop.fit` for the loop:
    seeding, clamps, checkpoints, progress). Returns the per-epoch :class:`History`."""
    config = config or TrainConfig()
    if loss not in LOSSES:
        raise ToolchainError(f"unknown loss {loss!r}; choose one of {LOSSES}", field="loss")
    kind = ("sum" if output_is_spiking(model) else "mean") if loss == "auto" else loss
    params = [p for p in model.parameters() if p.requires_grad]

    def batch_fn(m: nn.Module, xb: torch.Tensor, yb: torch.Tensor) -> Tuple[float, torch.Tensor]:
        return bptt_step(m, xb, yb, kind, config.loss_start, regularizer)

    idle = getattr(regularizer, "idle", None)  # a regulariser with collectives (RCS) on a rank without a share
    if idle is not None:
        batch_fn.idle = idle  # type: ignore[attr-defined]
    return fit(model, data, config, batch_fn, params, trainer=f"bptt-{kind}")
