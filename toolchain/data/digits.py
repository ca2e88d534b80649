"""scikit-learn's handwritten digits (8x8 grey images, 1797 samples, 10 classes), bundled with scikit-learn.

Pixels are integers 0..16 and are scaled to [0, 1] (``v / 16``). The train/test split is stratified and fixed by
``seed`` (default 0: 1347 training and 450 test samples). :func:`load_digits_spikes` rate-codes the images; with
``steps=16`` and deterministic coding a pixel of grey level ``v`` fires exactly ``v`` times, so nothing is lost.
"""
from __future__ import annotations

import numpy as np

from ..errors import InputError
from .base import SplitDataset
from .encoders import rate_encode

__all__ = ["load_digits", "load_digits_spikes"]


def load_digits(test_fraction: float = 0.25, seed: int = 0, flatten: bool = True) -> SplitDataset:
    """Digits as intensities in [0, 1]: x (N, 64) when ``flatten`` else (N, 1, 8, 8), float32; y int64."""
    from sklearn.datasets import load_digits as _sk_load
    from sklearn.model_selection import train_test_split

    if not 0.0 < test_fraction < 1.0:
        raise InputError(f"must be in (0, 1), got {test_fraction}", field="test_fraction")
    raw = _sk_load()
    x = (raw.data / 16.0).astype(np.float32)
    y = raw.target.astype(np.int64)
    if not flatten:
        x = x.reshape(-1, 1, 8, 8)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_fraction, random_state=seed, stratify=y)
    return SplitDataset("digits", x_tr, y_tr, x_te, y_te, 10, False,
                        {"seed": seed, "test_fraction": test_fraction, "source": "sklearn.datasets.load_digits"})


def load_digits_spikes(steps: int = 16, mode: str = "deterministic", test_fraction: float = 0.25, seed: int = 0,
                       flatten: bool = True) -> SplitDataset:
    """Digits rate-coded into spikes: x (N, steps, 64) (or (N, steps, 1, 8, 8)), float32 0/1."""
    ds = load_digits(test_fraction, seed, flatten)
    # distinct Bernoulli streams for the two splits (deterministic coding ignores the seed)
    x_tr = rate_encode(ds.x_train, steps, mode, seed=2 * seed).numpy()
    x_te = rate_encode(ds.x_test, steps, mode, seed=2 * seed + 1).numpy()
    return SplitDataset("digits-spikes", x_tr, ds.y_train, x_te, ds.y_test, 10, True,
                        {**ds.info, "encoder": {"kind": "rate", "mode": mode, "steps": steps}})
