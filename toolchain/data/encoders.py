"""Spike encoders: turn static intensities into binary spike trains (B, T, *shape).

Intensities ``x`` are dimensionless and read as firing probabilities per step after ``p = clip(gain·x, 0, 1)``.
Every encoder is a pure function of its arguments (and of ``seed`` for the random one); numpy or torch input,
torch float32 output with time as the second axis.

* :func:`rate_encode` ``mode="bernoulli"``: ``s[t] ~ Bernoulli(p)`` independently per step.
* :func:`rate_encode` ``mode="deterministic"``: evenly spaced spikes, ``s[t] = ⌊(t+1)·p⌋ − ⌊t·p⌋`` (an
  integrate-and-fire accumulator), so the count over T steps is exactly ``⌊T·p⌋`` and repeated calls agree.
  With ``T = 16`` and the digits' 0..16 grey levels (``p = v/16``) it is lossless.
* :func:`latency_encode`: at most one spike per input, brighter inputs first; inputs below ``threshold`` stay
  silent. ``"linear"``: ``t_s = round((1 − p)·(T − 1))``; ``"log"``: ``t_s = round((T − 1)·ln p / ln threshold)``
  (so ``p = 1`` fires at step 0 and ``p = threshold`` at the last step).
"""
from __future__ import annotations

from typing import Optional, Union

import numpy as np
import torch

from ..errors import InputError

__all__ = ["rate_encode", "latency_encode", "RateEncoder"]

ArrayLike = Union[np.ndarray, torch.Tensor]


def _prob(x: ArrayLike, gain: float) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    if not torch.is_floating_point(t):
        t = t.to(torch.float64)
    if not torch.all(torch.isfinite(t)):
        raise InputError("intensities contain NaN or infinite values", field="x")
    return (t.to(torch.float64) * float(gain)).clamp(0.0, 1.0)


def _check_steps(steps: int) -> int:
    if int(steps) != steps or steps <= 0:
        raise InputError(f"must be a positive integer, got {steps!r}", field="steps")
    return int(steps)


def rate_encode(x: ArrayLike, steps: int, mode: str = "bernoulli", gain: float = 1.0,
                seed: Optional[int] = 0, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Rate-code intensities ``x`` (B, *shape) into spikes (B, steps, *shape), float32 0/1.

    ``mode``: "bernoulli" (random, seeded by ``seed`` or drawn from ``generator``) or "deterministic" (evenly
    spaced, exact count ``⌊steps·p⌋``).
    """
    steps = _check_steps(steps)
    p = _prob(x, gain)
    if p.dim() < 1:
        raise InputError("expected a batch axis", field="x")
    shape = (p.shape[0], steps) + tuple(p.shape[1:])
    if mode == "bernoulli":
        gen = generator
        if gen is None:
            gen = torch.Generator()
            gen.manual_seed(0 if seed is None else int(seed))
        u = torch.rand(shape, generator=gen, dtype=torch.float64)
        return (u < p.unsqueeze(1)).to(torch.float32)
    if mode == "deterministic":
        t = torch.arange(steps + 1, dtype=torch.float64).view((1, steps + 1) + (1,) * (p.dim() - 1))
        # a tiny epsilon makes exact products like (t+1)·v/16 land on the right side of the floor
        acc = torch.floor(t * p.unsqueeze(1) + 1e-9)
        return (acc[:, 1:] - acc[:, :-1]).to(torch.float32)
    raise InputError(f"unknown mode {mode!r}; choose 'bernoulli' or 'deterministic'", field="mode")


def latency_encode(x: ArrayLike, steps: int, mode: str = "linear", gain: float = 1.0,
                   threshold: float = 0.01) -> torch.Tensor:
    """Latency-code intensities ``x`` (B, *shape) into at most one spike per input: (B, steps, *shape) float32."""
    steps = _check_steps(steps)
    if not 0.0 < threshold < 1.0:
        raise InputError(f"must be in (0, 1), got {threshold}", field="threshold")
    p = _prob(x, gain)
    active = p >= threshold
    if mode == "linear":
        ts = torch.round((1.0 - p) * (steps - 1))
    elif mode == "log":
        ts = torch.round((steps - 1) * torch.log(p.clamp_min(threshold)) / np.log(threshold))
    else:
        raise InputError(f"unknown mode {mode!r}; choose 'linear' or 'log'", field="mode")
    ts = ts.clamp(0, steps - 1).to(torch.int64)
    out = torch.zeros((p.shape[0], steps) + tuple(p.shape[1:]), dtype=torch.float32)
    onehot = torch.nn.functional.one_hot(ts, steps).to(torch.float32) * active.unsqueeze(-1)
    # one_hot puts time last: move it to axis 1
    out += onehot.movedim(-1, 1)
    return out


class RateEncoder:
    """A batch encoder for the training loop (``TrainConfig.encoder``) or :func:`iterate_batches`: fresh Bernoulli
    draws per call from a seeded generator (the same seed gives the same sequence of batches), or deterministic
    coding."""

    def __init__(self, steps: int, mode: str = "bernoulli", gain: float = 1.0, seed: int = 0) -> None:
        self.steps = _check_steps(steps)
        self.mode = mode
        self.gain = gain
        self.generator = torch.Generator()
        self.generator.manual_seed(int(seed))

    def __call__(self, x: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Encode a batch; ``generator`` (the training loop's per-epoch one) overrides the encoder's own."""
        return rate_encode(x, self.steps, self.mode, self.gain, generator=generator or self.generator)

    def __repr__(self) -> str:
        return f"RateEncoder(steps={self.steps}, mode={self.mode!r}, gain={self.gain})"
