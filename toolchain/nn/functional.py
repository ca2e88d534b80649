"""Pure tensor maths of the spiking layers: spike function with surrogate gradients and single-step neuron updates.

Every function here is stateless and works on tensors of any shape (a leading batch dimension and then the
neurons' shape); the modules in :mod:`toolchain.nn.neurons` are thin wrappers that hold parameters and pass state.

Discrete-time convention (one step = ``dt`` seconds; ``α ∈ [0, 1]`` is the per-step leak factor, dimensionless;
``θ > 0`` the threshold in the network's voltage unit; ``I[t]`` the input current of step ``t`` in the same unit
per step). It is the STOP neuron of Gao et al. (2024) and the dynamics of Loihi's CUBA compartment, whose voltage
is reset right after the spike:

* LIF, subtract reset:  ``U[t] = α·(U[t−1] − θ·s[t−1]) + I[t]``
* LIF, zero reset:      ``U[t] = α·U[t−1]·(1 − s[t−1]) + I[t]``
* spike:                ``s[t] = H(U[t] − θ)`` with the *strict* Heaviside ``H(x) = 1 if x > 0 else 0`` (as NIR's
  "spike when v > v_threshold" and Loihi's ``v > vth << 6``)
* CubaLIF:              ``I_s[t] = α_s·I_s[t−1] + x[t]`` then the LIF update with ``I[t] = I_s[t]`` (new current
  first, as Loihi)
* LI (readout):         ``U[t] = α·U[t−1] + I[t]``; no spikes

These are forward-Euler steps of NIR's continuous-time equations with ``tau = dt / (1 − α)``, ``r = tau / dt``,
``v_leak = 0``, ``v_reset = 0`` (see :mod:`toolchain.nn.nir_map`).

Surrogate gradients: the backward pass of the spike replaces ``dH/dx`` by ``φ(x)`` with steepness ``k``
(``surrogate_scale``), each peaking at ``φ(0) = 1``:

* ``"exp"``           ``φ(x) = exp(−k·|x|)``                  (STOP's ``φ(x) = exp(−|x|)`` at k = 1)
* ``"fast_sigmoid"``  ``φ(x) = 1 / (1 + k·|x|)²``
* ``"atan"``          ``φ(x) = 1 / (1 + (π/2·k·x)²)``
* ``"rectangular"``   ``φ(x) = 1 if |k·x| < 1/2 else 0``
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
import torch.nn.functional as F

__all__ = ["SURROGATES", "surrogate_grad", "spike", "lif_step", "cuba_lif_step", "li_step", "sum_pool2d",
           "RESETS"]

SURROGATES = ("exp", "fast_sigmoid", "atan", "rectangular")
RESETS = ("subtract", "zero")


def surrogate_grad(x: torch.Tensor, surrogate: str = "exp", scale: float = 1.0) -> torch.Tensor:
    """The surrogate derivative ``φ(x)`` of the Heaviside step at ``x = U − θ`` (see the module docstring)."""
    k = float(scale)
    if surrogate == "exp":
        return torch.exp(-k * x.abs())
    if surrogate == "fast_sigmoid":
        return 1.0 / (1.0 + k * x.abs()) ** 2
    if surrogate == "atan":
        return 1.0 / (1.0 + (0.5 * math.pi * k * x) ** 2)
    if surrogate == "rectangular":
        return ((k * x).abs() < 0.5).to(x.dtype)
    raise ValueError(f"unknown surrogate {surrogate!r}; choose one of {SURROGATES}")


class _Spike(torch.autograd.Function):
    """Strict Heaviside forward, surrogate derivative backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, surrogate: str, scale: float) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.surrogate = surrogate
        ctx.scale = scale
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return grad * surrogate_grad(x, ctx.surrogate, ctx.scale), None, None


def spike(x: torch.Tensor, surrogate: str = "exp", scale: float = 1.0) -> torch.Tensor:
    """``s = H(x)`` (1 where ``x > 0``), differentiable through the surrogate ``φ`` of :func:`surrogate_grad`."""
    if surrogate not in SURROGATES:
        raise ValueError(f"unknown surrogate {surrogate!r}; choose one of {SURROGATES}")
    return _Spike.apply(x, surrogate, float(scale))


def _reset_term(u_prev: torch.Tensor, s_prev: torch.Tensor, theta: torch.Tensor, reset: str,
                detach_reset: bool) -> torch.Tensor:
    """The membrane after the previous step's reset, before the leak: ``U − θ·s`` or ``U·(1 − s)``."""
    s = s_prev.detach() if detach_reset else s_prev
    if reset == "subtract":
        return u_prev - theta * s
    if reset == "zero":
        return u_prev * (1.0 - s)
    raise ValueError(f"unknown reset {reset!r}; choose one of {RESETS}")


def lif_step(i: torch.Tensor, u_prev: Optional[torch.Tensor], s_prev: Optional[torch.Tensor], alpha: torch.Tensor,
             theta: torch.Tensor, reset: str = "subtract", surrogate: str = "exp", scale: float = 1.0,
             detach_reset: bool = False) -> Tuple[torch.Tensor, torch.Tensor]:
    """One LIF step; returns ``(s[t], U[t])``.

    ``i``: input current ``I[t]`` (voltage units per step), shape (B, *shape). ``u_prev``/``s_prev``: ``U[t−1]``
    and ``s[t−1]`` (None at t = 0: zeros). ``alpha``: leak factor per step in [0, 1]; ``theta``: threshold > 0
    (both broadcast against the neuron shape). ``detach_reset``: cut the gradient through ``s[t−1]`` in the reset.
    """
    if u_prev is None:
        u = i.clone()  # zero state: U[0] = I[0]
    else:
        u = alpha * _reset_term(u_prev, s_prev, theta, reset, detach_reset) + i
    s = spike(u - theta, surrogate, scale)
    return s, u


def cuba_lif_step(x: torch.Tensor, i_prev: Optional[torch.Tensor], u_prev: Optional[torch.Tensor],
                  s_prev: Optional[torch.Tensor], alpha_syn: torch.Tensor, alpha_mem: torch.Tensor,
                  theta: torch.Tensor, reset: str = "subtract", surrogate: str = "exp", scale: float = 1.0,
                  detach_reset: bool = False) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One current-based LIF step; returns ``(s[t], I_s[t], U[t])``.

    ``I_s[t] = α_s·I_s[t−1] + x[t]`` (``x``: synaptic input per step), then :func:`lif_step` with ``I = I_s[t]``.
    """
    i = x.clone() if i_prev is None else alpha_syn * i_prev + x
    s, u = lif_step(i, u_prev, s_prev, alpha_mem, theta, reset, surrogate, scale, detach_reset)
    return s, i, u


def li_step(i: torch.Tensor, u_prev: Optional[torch.Tensor], alpha: torch.Tensor) -> torch.Tensor:
    """One leaky-integrator step: ``U[t] = α·U[t−1] + I[t]`` (``U[−1] = 0``); returns ``U[t]``."""
    return i.clone() if u_prev is None else alpha * u_prev + i


def sum_pool2d(x: torch.Tensor, kernel_size: Tuple[int, int], stride: Tuple[int, int],
               padding: Tuple[int, int] = (0, 0)) -> torch.Tensor:
    """Sum over each ``kernel_size`` window per channel (zero padding); x is (N, C, H, W)."""
    return F.avg_pool2d(x, kernel_size, stride, padding, ceil_mode=False, count_include_pad=True,
                        divisor_override=1)
