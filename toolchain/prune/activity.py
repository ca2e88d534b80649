"""Activity-based pruning (AP): the baseline LNP is compared against.

Unlike LNP, AP needs a *trained* dense network: (1) train the dense HRSNN on the task, (2) measure each recurrent
neuron's firing activity on the training inputs, (3) remove the least active neurons, (4) among the surviving
recurrent synapses remove the weakest (smallest |w|) until a target count is left — chosen equal to the LNP
network's so that both are compared at equal sparsity — then (5) fine-tune the pruned network on the task (the
caller's training loop; the mask stays fixed). Ties in activity are broken by total synaptic strength
(weaker first), ties in |w| by position (stable sort), so the result is deterministic.

:func:`activity_prune_weights` is the pure numpy core; :func:`neuron_activity` records the mean spike count per
neuron per step; :func:`activity_prune` applies both to an HRSNN and returns the smaller model.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Tuple

import numpy as np
import torch

from ..errors import InputError

__all__ = ["neuron_activity", "activity_prune_weights", "magnitude_prune_weights", "APResult", "activity_prune"]


def neuron_activity(model: Any, spikes: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Mean spikes per step of every recurrent neuron of an HRSNN over the inputs ``spikes`` (n, T, n_in)."""
    tot = None
    count = 0
    with torch.no_grad():
        for b in range(0, len(spikes), batch_size):
            _, rec = model(torch.as_tensor(spikes[b:b + batch_size], dtype=torch.float32), record=True)
            s = rec["rec"]["s"].double()
            part = s.sum((0, 1)).numpy()
            tot = part if tot is None else tot + part
            count += s.shape[0] * s.shape[1]
    return tot / max(count, 1)


def activity_prune_weights(w_rec: np.ndarray, activity: np.ndarray, n_neurons: int, n_synapses: int
                           ) -> Tuple[np.ndarray, np.ndarray]:
    """``(keep, w)``: the ``n_neurons`` most active neurons (sorted indices) and their recurrent weights with only
    the ``n_synapses`` largest-magnitude off-diagonal synapses left (all of them if fewer exist)."""
    w = np.asarray(w_rec, dtype=np.float64)
    act = np.asarray(activity, dtype=np.float64)
    n = w.shape[0]
    if w.shape != (n, n) or act.shape != (n,):
        raise InputError(f"need W (N, N) and activity (N,), got {w.shape} and {act.shape}", field="w_rec")
    if not 1 <= n_neurons <= n:
        raise InputError(f"must be in [1, {n}], got {n_neurons}", field="n_neurons")
    if n_synapses < 0:
        raise InputError(f"must be >= 0, got {n_synapses}", field="n_synapses")
    strength = np.abs(w).sum(0) + np.abs(w).sum(1)
    order = np.lexsort((strength, act))  # ascending activity, then strength
    keep = np.sort(order[n - int(n_neurons):])
    sub = w[np.ix_(keep, keep)].copy()
    off = ~np.eye(keep.size, dtype=bool)
    mags = np.where(off & (sub != 0), np.abs(sub), -1.0).reshape(-1)
    n_exist = int((mags >= 0).sum())
    if int(n_synapses) < n_exist:
        ranked = np.argsort(-mags, kind="stable")
        drop = ranked[int(n_synapses):n_exist]
        flat = sub.reshape(-1)
        flat[drop] = 0.0
        sub = flat.reshape(sub.shape)
    return keep, sub


def magnitude_prune_weights(w_rec: np.ndarray, n_neurons: int, n_synapses: int) -> Tuple[np.ndarray, np.ndarray]:
    """Magnitude pruning of a recurrent layer, the baseline without activity: ``(keep, w)`` with the ``n_neurons``
    neurons of the largest total recurrent weight magnitude (incoming + outgoing ``|w|``) and their
    ``n_synapses`` largest-magnitude off-diagonal synapses (:func:`activity_prune_weights` with the strength as
    the score)."""
    w = np.asarray(w_rec, dtype=np.float64)
    if w.ndim != 2 or w.shape[0] != w.shape[1]:
        raise InputError(f"need W (N, N), got {w.shape}", field="w_rec")
    return activity_prune_weights(w, np.abs(w).sum(0) + np.abs(w).sum(1), n_neurons, n_synapses)


@dataclass(frozen=True)
class APResult:
    """``model``: the pruned HRSNN; ``keep``: surviving neuron indices; ``activity``: the measured activity."""

    model: Any
    keep: np.ndarray
    activity: np.ndarray


def activity_prune(model: Any, spikes: np.ndarray, n_neurons: int, n_synapses: int) -> APResult:
    """Prune a trained HRSNN by activity (module docstring, steps 2–4); fine-tune the returned model next."""
    act = neuron_activity(model, spikes)
    net = model.recurrent_net()
    keep, w = activity_prune_weights(net.w_rec, act, n_neurons, n_synapses)
    pruned_net = net.subset(keep).with_weights(w)
    return APResult(model.pruned(pruned_net, keep), keep, act)
