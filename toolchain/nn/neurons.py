"""Single-step spiking neuron modules: :class:`LIF`, :class:`CubaLIF`, :class:`LI`.

Each module holds its parameters and maps ``(input_t, state) -> (output_t, state)`` for one time step; the time
loop lives in :class:`toolchain.nn.SpikingNet`. State is a small NamedTuple; ``state=None`` means the zero state
at t = 0. The maths is in :mod:`toolchain.nn.functional` (equations and units are written there and repeated on
each class).

Parameter constraints: the leak factor ``α`` must lie in [0, 1] and the threshold ``θ`` must be positive. Both are
checked at construction; trainers that update them call :meth:`SpikingNeuron.clamp_` (or
:meth:`toolchain.nn.SpikingNet.clamp_`) after each optimiser step, which clamps ``θ ≥ THRESHOLD_MIN`` (1e-3) and
``α`` into [0, 1] in place. This is the one documented place where the constraint is enforced.
"""
from __future__ import annotations

from typing import Any, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import nn

from . import functional as Fn

__all__ = ["LIF", "CubaLIF", "LI", "LIFState", "CubaLIFState", "LIState", "SpikingNeuron", "THRESHOLD_MIN",
           "NEURON_MODULES"]

THRESHOLD_MIN = 1e-3
ShapeLike = Union[int, Sequence[int]]


class LIFState(NamedTuple):
    """State of a :class:`LIF` after step t: membrane ``u = U[t]`` and spikes ``s = s[t]`` (B, *shape)."""

    u: torch.Tensor
    s: torch.Tensor


class CubaLIFState(NamedTuple):
    """State of a :class:`CubaLIF` after step t: synaptic current ``i``, membrane ``u``, spikes ``s``."""

    i: torch.Tensor
    u: torch.Tensor
    s: torch.Tensor


class LIState(NamedTuple):
    """State of a :class:`LI` after step t: membrane ``u``."""

    u: torch.Tensor


def _shape(shape: ShapeLike) -> Tuple[int, ...]:
    shp = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(int(s) for s in shape)
    if not shp or any(s <= 0 for s in shp):
        raise ValueError(f"neuron shape must be a non-empty tuple of positive ints, got {shape!r}")
    return shp


class SpikingNeuron(nn.Module):
    """Common base: parameter set-up, shape checks, :meth:`clamp_`. ``spiking`` says whether it emits spikes."""

    spiking: bool = True
    _leak_names: Tuple[str, ...] = ("alpha",)
    _threshold_names: Tuple[str, ...] = ("threshold",)

    def __init__(self, shape: ShapeLike, per_neuron: bool) -> None:
        super().__init__()
        self.shape = _shape(shape)
        self.per_neuron = bool(per_neuron)

    def _add_param(self, name: str, value: Any, learn: bool, lo: float, hi: float) -> None:
        """Register ``name`` as a Parameter (learn) or buffer, with shape ``self.shape`` or () and checked range."""
        t = torch.as_tensor(value, dtype=torch.get_default_dtype()).detach().clone()
        target = self.shape if self.per_neuron else ()
        if t.shape != target:
            if t.numel() == 1:
                t = t.reshape(()).expand(target).clone()
            elif self.per_neuron:
                try:
                    t = t.expand(target).clone()
                except RuntimeError:
                    raise ValueError(f"{type(self).__name__}.{name} has shape {tuple(t.shape)}, expected "
                                     f"{target} or a scalar") from None
            else:
                raise ValueError(f"{type(self).__name__}.{name} must be a scalar when per_neuron=False, got shape "
                                 f"{tuple(t.shape)}")
        if not torch.all(torch.isfinite(t)) or t.min() < lo or t.max() > hi:
            raise ValueError(f"{type(self).__name__}.{name} must lie in [{lo}, {hi}], got values in "
                             f"[{t.min().item():g}, {t.max().item():g}]")
        if learn:
            setattr(self, name, nn.Parameter(t))
        else:
            self.register_buffer(name, t)

    def _check_input(self, x: torch.Tensor) -> None:
        if tuple(x.shape[1:]) != self.shape:
            raise ValueError(f"{type(self).__name__} of shape {self.shape} got input of shape {tuple(x.shape)}; "
                             f"expected (batch, *{self.shape})")

    @torch.no_grad()
    def clamp_(self) -> "SpikingNeuron":
        """Clamp in place: leaks ``α`` into [0, 1], thresholds ``θ ≥ THRESHOLD_MIN``. Call after every update."""
        for name in self._leak_names:
            getattr(self, name).clamp_(0.0, 1.0)
        if self.spiking:
            for name in self._threshold_names:
                getattr(self, name).clamp_(min=THRESHOLD_MIN)
        return self

    def extra_repr(self) -> str:
        parts = [f"shape={self.shape}"]
        for name in self._leak_names + (self._threshold_names if self.spiking else ()):
            t = getattr(self, name)
            val = f"{t.item():.4g}" if t.numel() == 1 else f"[{t.min().item():.4g}..{t.max().item():.4g}]"
            parts.append(f"{name}={val}" + (" (learnable)" if isinstance(t, nn.Parameter) else ""))
        if self.spiking:
            parts.append(f"reset={self.reset!r}, surrogate={self.surrogate!r}")
        return ", ".join(parts)


class LIF(SpikingNeuron):
    """Leaky integrate-and-fire neuron (the STOP neuron; Loihi-compatible), one step per call.

    ``U[t] = α·(U[t−1] − θ·s[t−1]) + I[t]`` (reset="subtract") or ``U[t] = α·U[t−1]·(1 − s[t−1]) + I[t]``
    (reset="zero"); ``s[t] = H(U[t] − θ)`` (strict: spike when U > θ). ``I[t]``: input current in voltage units
    per step; ``U``, ``θ``: voltage units (arbitrary, the network's); ``α = 1 − dt/τ`` ∈ [0, 1], dimensionless.

    ``alpha``/``threshold``: nn.Parameter when ``learn_leak``/``learn_threshold``, else buffers; shape ``shape`` if
    ``per_neuron`` else (). ``surrogate``/``surrogate_scale``: backward of the spike (see
    :func:`toolchain.nn.functional.surrogate_grad`). ``detach_reset``: no gradient through ``s[t−1]`` in the reset.
    Call: ``s, state = lif(i, state)`` with ``i`` (B, *shape); ``state=None`` at t = 0 (zeros).
    """

    def __init__(self, shape: ShapeLike, alpha: Any = 0.9, threshold: Any = 1.0, reset: str = "subtract",
                 learn_threshold: bool = False, learn_leak: bool = False, per_neuron: bool = True,
                 surrogate: str = "exp", surrogate_scale: float = 1.0, detach_reset: bool = False) -> None:
        super().__init__(shape, per_neuron)
        if reset not in Fn.RESETS:
            raise ValueError(f"LIF reset must be one of {Fn.RESETS}, got {reset!r}")
        if surrogate not in Fn.SURROGATES:
            raise ValueError(f"LIF surrogate must be one of {Fn.SURROGATES}, got {surrogate!r}")
        self.reset = reset
        self.surrogate = surrogate
        self.surrogate_scale = float(surrogate_scale)
        self.detach_reset = bool(detach_reset)
        self._add_param("alpha", alpha, learn_leak, 0.0, 1.0)
        self._add_param("threshold", threshold, learn_threshold, THRESHOLD_MIN, float("inf"))

    def forward(self, i: torch.Tensor, state: Optional[LIFState] = None) -> Tuple[torch.Tensor, LIFState]:
        self._check_input(i)
        u_prev, s_prev = (None, None) if state is None else (state.u, state.s)
        s, u = Fn.lif_step(i, u_prev, s_prev, self.alpha, self.threshold, self.reset, self.surrogate,
                           self.surrogate_scale, self.detach_reset)
        return s, LIFState(u, s)


class CubaLIF(SpikingNeuron):
    """Current-based LIF neuron (Loihi's CUBA compartment), one step per call.

    ``I_s[t] = α_s·I_s[t−1] + x[t]`` (synaptic current, voltage units per step; new current first, as Loihi),
    then ``U[t] = α_m·(U[t−1] − θ·s[t−1]) + I_s[t]`` (subtract) or ``U[t] = α_m·U[t−1]·(1 − s[t−1]) + I_s[t]``
    (zero), ``s[t] = H(U[t] − θ)``. ``α_s = 1 − dt/τ_syn``, ``α_m = 1 − dt/τ_mem`` ∈ [0, 1].
    Attributes ``alpha_syn``, ``alpha_mem`` (``alpha`` is an alias of ``alpha_mem``), ``threshold``, ``reset``.
    """

    _leak_names = ("alpha_syn", "alpha_mem")

    def __init__(self, shape: ShapeLike, alpha_syn: Any = 0.9, alpha_mem: Any = 0.9, threshold: Any = 1.0,
                 reset: str = "subtract", learn_threshold: bool = False, learn_leak: bool = False,
                 per_neuron: bool = True, surrogate: str = "exp", surrogate_scale: float = 1.0,
                 detach_reset: bool = False) -> None:
        super().__init__(shape, per_neuron)
        if reset not in Fn.RESETS:
            raise ValueError(f"CubaLIF reset must be one of {Fn.RESETS}, got {reset!r}")
        if surrogate not in Fn.SURROGATES:
            raise ValueError(f"CubaLIF surrogate must be one of {Fn.SURROGATES}, got {surrogate!r}")
        self.reset = reset
        self.surrogate = surrogate
        self.surrogate_scale = float(surrogate_scale)
        self.detach_reset = bool(detach_reset)
        self._add_param("alpha_syn", alpha_syn, learn_leak, 0.0, 1.0)
        self._add_param("alpha_mem", alpha_mem, learn_leak, 0.0, 1.0)
        self._add_param("threshold", threshold, learn_threshold, THRESHOLD_MIN, float("inf"))

    @property
    def alpha(self) -> torch.Tensor:
        """The membrane leak ``α_m`` (alias of ``alpha_mem``)."""
        return self.alpha_mem

    def forward(self, x: torch.Tensor, state: Optional[CubaLIFState] = None
                ) -> Tuple[torch.Tensor, CubaLIFState]:
        self._check_input(x)
        i_prev, u_prev, s_prev = (None, None, None) if state is None else state
        s, i, u = Fn.cuba_lif_step(x, i_prev, u_prev, s_prev, self.alpha_syn, self.alpha_mem, self.threshold,
                                   self.reset, self.surrogate, self.surrogate_scale, self.detach_reset)
        return s, CubaLIFState(i, u, s)


class LI(SpikingNeuron):
    """Leaky integrator readout (no spikes): ``U[t] = α·U[t−1] + I[t]``; the output is ``U[t]`` (voltage units).

    ``alpha = 1 − dt/τ`` ∈ [0, 1]: Parameter when ``learn_leak`` else buffer; shape ``shape`` if ``per_neuron``.
    """

    spiking = False

    def __init__(self, shape: ShapeLike, alpha: Any = 0.9, learn_leak: bool = False, per_neuron: bool = True) -> None:
        super().__init__(shape, per_neuron)
        self._add_param("alpha", alpha, learn_leak, 0.0, 1.0)

    def forward(self, i: torch.Tensor, state: Optional[LIState] = None) -> Tuple[torch.Tensor, LIState]:
        self._check_input(i)
        u = Fn.li_step(i, None if state is None else state.u, self.alpha)
        return u, LIState(u)


NEURON_MODULES = (LIF, CubaLIF, LI)
