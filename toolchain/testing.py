"""Seeded random factories used by the tests, benchmarks and examples (the one place for them).

Every factory takes an explicit ``seed`` (or ``numpy.random.Generator``) so that a failing case can be replayed.
"""
from __future__ import annotations

from typing import Union

import numpy as np

SeedLike = Union[int, np.random.Generator, None]


def rng(seed: SeedLike = 0) -> np.random.Generator:
    """A numpy Generator from a seed (or pass a Generator through)."""
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def random_spikes(batch: int, steps: int, n: int, rate: float = 0.2, seed: SeedLike = 0) -> np.ndarray:
    """Binary input spikes, layout (batch, time, n), dtype int32, each entry 1 with probability ``rate``."""
    return (rng(seed).random((batch, steps, n)) < rate).astype(np.int32)
