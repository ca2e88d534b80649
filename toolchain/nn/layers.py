"""Synapse-side layers that torch lacks: :class:`SumPool2d` and the :class:`Recurrent` wrapper."""
from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from . import functional as Fn
from .neurons import CubaLIF, LIF, SpikingNeuron

__all__ = ["SumPool2d", "Recurrent"]

IntPair = Union[int, Sequence[int]]


def _pair(v: IntPair, what: str, minimum: int) -> Tuple[int, int]:
    t = (int(v), int(v)) if isinstance(v, int) else tuple(int(x) for x in v)
    if len(t) != 2 or min(t) < minimum:
        raise ValueError(f"SumPool2d {what} must be one or two ints >= {minimum}, got {v!r}")
    return t  # type: ignore[return-value]


class SumPool2d(nn.Module):
    """Sum (not mean) over ``kernel_size`` windows per channel: ``y[c, i, j] = Σ_{window} x[c, ·, ·]``.

    ``stride`` defaults to ``kernel_size``; ``padding`` adds zeros. Input (N, C, H, W). Spike counts stay integers,
    which is what a Loihi synapse with unit weights computes (NIR ``SumPool2d``).
    """

    def __init__(self, kernel_size: IntPair, stride: Optional[IntPair] = None, padding: IntPair = 0) -> None:
        super().__init__()
        self.kernel_size = _pair(kernel_size, "kernel_size", 1)
        self.stride = _pair(self.kernel_size if stride is None else stride, "stride", 1)
        self.padding = _pair(padding, "padding", 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return Fn.sum_pool2d(x, self.kernel_size, self.stride, self.padding)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class Recurrent(nn.Module):
    """A spiking neuron population with all-to-all recurrent synapses and a one-step delay.

    ``I[t] = x[t] + W_rec · s[t−1]`` (``s[−1] = 0``), then the wrapped neuron's step with input ``I[t]``.
    ``neuron``: a :class:`LIF` or :class:`CubaLIF` of shape ``(n,)``; ``W_rec``: ``self.rec.weight`` (n, n),
    dimensionless (voltage units per spike), an ``nn.Linear(n, n, bias=False)`` initialised as torch does unless
    ``weight`` is given. State: the neuron's state. In NIR this is the cycle neuron -> Linear(W_rec) -> neuron.

    ``bias=True`` adds a constant ``b_rec``: ``I[t] = x[t] + W_rec·s[t−1] + b_rec`` at every step including t = 0
    — the semantics of a NIR cycle through an ``Affine`` (the float executor's virtual step −1 delivers the bias,
    as snnTorch's recurrent ``Linear`` does), as in snnTorch exports.
    """

    def __init__(self, neuron: SpikingNeuron, n: int, weight: Optional[Any] = None, bias: bool = False) -> None:
        super().__init__()
        if not isinstance(neuron, (LIF, CubaLIF)):
            raise ValueError(f"Recurrent wraps a spiking LIF or CubaLIF, got {type(neuron).__name__}")
        if neuron.shape != (int(n),):
            raise ValueError(f"Recurrent(n={n}) needs a neuron of shape ({n},), got {neuron.shape}")
        self.neuron = neuron
        self.rec = nn.Linear(int(n), int(n), bias=bool(bias))
        if weight is not None:
            w = torch.as_tensor(weight, dtype=self.rec.weight.dtype)
            if w.shape != self.rec.weight.shape:
                raise ValueError(f"Recurrent weight must have shape ({n}, {n}), got {tuple(w.shape)}")
            with torch.no_grad():
                self.rec.weight.copy_(w)

    @property
    def shape(self) -> Tuple[int, ...]:
        return self.neuron.shape

    @property
    def spiking(self) -> bool:
        return True

    def forward(self, x: torch.Tensor, state: Optional[Any] = None) -> Tuple[torch.Tensor, Any]:
        if state is None:  # s[−1] = 0: only the bias, if any
            i = x if self.rec.bias is None else x + self.rec.bias
        else:
            i = x + self.rec(state.s)
        return self.neuron(i, state)

    def clamp_(self) -> "Recurrent":
        """Clamp the wrapped neuron's parameters (see :meth:`SpikingNeuron.clamp_`)."""
        self.neuron.clamp_()
        return self
