"""``SpikingNet``: a time-major sequential container of synapse layers and single-step neuron modules."""
from __future__ import annotations

from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

import torch
from torch import nn

from .layers import Recurrent, SumPool2d
from .neurons import SpikingNeuron

__all__ = ["SpikingNet", "is_stateful", "neuron_of", "SYNAPSE_MODULES"]

SYNAPSE_MODULES = (nn.Linear, nn.Conv2d, SumPool2d)


def is_stateful(module: nn.Module) -> bool:
    """True for the modules that carry state across time steps (neurons and :class:`Recurrent`)."""
    return isinstance(module, (SpikingNeuron, Recurrent))


class SpikingNet(nn.Sequential):
    """Sequential spiking network run over time.

    ``SpikingNet(*modules)`` (or one ``OrderedDict`` of named modules), e.g.
    ``SpikingNet(nn.Linear(10, 20), LIF(20), nn.Linear(20, 3), LI(3))``. Stateless modules (``nn.Linear``,
    ``nn.Conv2d``, :class:`SumPool2d`, ``nn.Flatten`` with ``start_dim >= 1``, ...) see one time step as a batch
    item; neuron modules (:class:`LIF`, :class:`CubaLIF`, :class:`LI`, :class:`Recurrent`) step through time.

    * ``forward(x)``: ``x`` (B, T, *in_shape) -> (B, T, *out_shape). Every call starts from the zero state: no
      state is kept on the module, so nothing leaks between samples or batches.
    * ``forward(x, record=True)`` -> ``(y, rec)`` with ``rec[name] = {"s": (B, T, ...), "u": (B, T, ...)}`` for
      every neuron module (``"i"`` too for CubaLIF; LI readouts record ``"u"`` only, they have no spikes).
    * ``step(x_t, states)`` -> ``(y_t, states)``: one step for online use; ``states=None`` at t = 0.
    * ``blocks()``: (synapse_module, neuron_module) pairs in order; ``clamp_()``: clamp every neuron's α and θ.

    Within one step all layers update in order, so an input at step t reaches the last layer at step t (no
    per-layer delay); the compiled hardware network adds one step per synapse layer (see
    :class:`toolchain.nn.IntegerNet` and :func:`toolchain.nn.quantisation_aware`).
    """

    def _dtype(self) -> torch.dtype:
        for t in list(self.parameters()) + list(self.buffers()):
            if t.is_floating_point():
                return t.dtype
        return torch.get_default_dtype()

    def _check_input(self, x: torch.Tensor, min_dim: int) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            x = torch.as_tensor(x)
        if x.dim() < min_dim:
            raise ValueError(f"SpikingNet input must have shape (batch, time, *in_shape), got {tuple(x.shape)}")
        return x.to(self._dtype()) if not x.is_floating_point() or x.dtype != self._dtype() else x

    def forward(self, x: torch.Tensor, record: bool = False
                ) -> Union[torch.Tensor, Tuple[torch.Tensor, Dict[str, Dict[str, torch.Tensor]]]]:
        h = self._check_input(x, 3)
        B, T = h.shape[:2]
        rec: Dict[str, Dict[str, torch.Tensor]] = {}
        for name, m in self.named_children():
            if is_stateful(m):
                outs: List[torch.Tensor] = []
                states: List[Any] = []
                state = None
                for t in range(T):
                    y, state = m(h[:, t], state)
                    outs.append(y)
                    if record:
                        states.append(state)
                h = torch.stack(outs, 1)
                if record:
                    keys = states[0]._fields
                    rec[name] = {k: torch.stack([getattr(s, k) for s in states], 1) for k in keys}
            else:
                if isinstance(m, nn.Flatten) and m.start_dim == 0:
                    raise ValueError(f"module '{name}': nn.Flatten(start_dim=0) would mix the batch into the "
                                     f"features; use start_dim >= 1")
                y = m(h.reshape(B * T, *h.shape[2:]))
                h = y.reshape(B, T, *y.shape[1:])
        return (h, rec) if record else h

    def step(self, x_t: torch.Tensor, states: Optional[List[Any]] = None) -> Tuple[torch.Tensor, List[Any]]:
        """One time step: ``x_t`` (B, *in_shape) -> ``(y_t, states)``; ``states`` holds one entry per module
        (None for stateless ones); pass ``None`` at t = 0 and the returned list afterwards."""
        h = self._check_input(x_t, 2)
        mods = list(self.children())
        if states is None:
            states = [None] * len(mods)
        if len(states) != len(mods):
            raise ValueError(f"states has {len(states)} entries, the network has {len(mods)} modules")
        new: List[Any] = []
        for m, st in zip(mods, states):
            if is_stateful(m):
                h, st = m(h, st)
            else:
                h = m(h)
            new.append(st)
        return h, new

    @property
    def spiking(self) -> bool:
        """True when the network's output is spikes (its last neuron module spikes), False for a readout."""
        last = None
        for _, m in self.neurons():
            last = m
        return bool(getattr(last, "spiking", True))

    def neurons(self) -> Iterator[Tuple[str, nn.Module]]:
        """``(name, module)`` for every neuron module (LIF, CubaLIF, LI, Recurrent), in order."""
        for name, m in self.named_children():
            if is_stateful(m):
                yield name, m

    def blocks(self) -> Iterator[Tuple[Optional[nn.Module], nn.Module]]:
        """``(synapse, neuron)`` pairs in order, what STOP walks.

        ``synapse`` is the last weighted or pooling module (``nn.Linear``, ``nn.Conv2d``, :class:`SumPool2d`)
        before the neuron, or None when the neuron follows the input or another neuron directly. Reshapes
        (``nn.Flatten``) and pooling that precede the synapse are in :meth:`segments`.
        """
        for pre, neuron in self.segments():
            syn = None
            for m in pre:
                if isinstance(m, SYNAPSE_MODULES):
                    syn = m
            yield syn, neuron

    def segments(self) -> Iterator[Tuple[List[nn.Module], nn.Module]]:
        """``(stateless_modules, neuron)``: every stateless module between the previous neuron and this one.
        Stateless modules after the last neuron are not yielded."""
        pre: List[nn.Module] = []
        for m in self.children():
            if is_stateful(m):
                yield pre, m
                pre = []
            else:
                pre.append(m)

    @torch.no_grad()
    def clamp_(self) -> "SpikingNet":
        """Clamp every neuron's leaks into [0, 1] and thresholds to >= 1e-3 (call after each optimiser step)."""
        for _, m in self.neurons():
            m.clamp_()
        return self


def neuron_of(module: nn.Module) -> SpikingNeuron:
    """The neuron inside a neuron module (the module itself, or the one a :class:`Recurrent` wraps)."""
    return module.neuron if isinstance(module, Recurrent) else module  # type: ignore[return-value]

