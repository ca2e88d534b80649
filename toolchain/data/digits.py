"""scikit-learn's handwritten digits (8x8 grey images, 1797 samples, 10 classes), bundled with scikit-learn.

Pixels are integers 0..16 and are scaled to [0, 1] (``v / 16``). The train/test split is stratified and fixed by
``seed`` (default 0: 1347 training and 450 test samples). :func:`load_digits_spikes` rate-codes the images; with
``steps=16`` and deterministic coding a pixel of grey level ``v`` fires exactly ``v`` times, so nothing is lost.

``upsample=f`` (integer >= 1) enlarges every image by nearest-neighbour repetition to ``8f x 8f`` (each pixel becomes
an ``f x f`` block of the same grey level) before flattening and before rate coding, so a larger convolutional
network can be trained and deployed on the same task (``f = 2``: 16x16). The factor is recorded in ``info``.
"""
from __future__ import annotations

import numpy as np

from ..errors import InputError
from .base import SplitDataset
from .encoders import rate_encode

__all__ = ["load_digits", "load_digits_spikes", "upsample_nearest"]


def upsample_nearest(images: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upsampling of ``(..., H, W)`` images by an integer ``factor`` along both spatial axes:
    ``out[..., i, j] = images[..., i // factor, j // factor]``, shape ``(..., H·factor, W·factor)``, same dtype."""
    f = _check_upsample(factor)
    return np.repeat(np.repeat(np.asarray(images), f, axis=-2), f, axis=-1)


def _check_upsample(factor: int) -> int:
    if isinstance(factor, bool) or not isinstance(factor, (int, np.integer)) or factor < 1:
        raise InputError(f"must be an integer >= 1, got {factor!r}", field="upsample")
    return int(factor)


def load_digits(test_fraction: float = 0.25, seed: int = 0, flatten: bool = True, upsample: int = 1
                ) -> SplitDataset:
    """Digits as intensities in [0, 1]: x (N, 64·f²) when ``flatten`` else (N, 1, 8f, 8f), float32; y int64.

    ``upsample`` = f: nearest-neighbour enlargement by the integer factor f (default 1: the original 8x8)."""
    from sklearn.datasets import load_digits as _sk_load
    from sklearn.model_selection import train_test_split

    if not 0.0 < test_fraction < 1.0:
        raise InputError(f"must be in (0, 1), got {test_fraction}", field="test_fraction")
    f = _check_upsample(upsample)
    raw = _sk_load()
    x = upsample_nearest((raw.data / 16.0).astype(np.float32).reshape(-1, 1, 8, 8), f)
    y = raw.target.astype(np.int64)
    if flatten:
        x = x.reshape(len(x), -1)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_fraction, random_state=seed, stratify=y)
    return SplitDataset("digits", x_tr, y_tr, x_te, y_te, 10, False,
                        {"seed": seed, "test_fraction": test_fraction, "source": "sklearn.datasets.load_digits",
                         "upsample": f, "image_shape": (1, 8 * f, 8 * f)})


def load_digits_spikes(steps: int = 16, mode: str = "deterministic", test_fraction: float = 0.25, seed: int = 0,
                       flatten: bool = True, upsample: int = 1) -> SplitDataset:
    """Digits rate-coded into spikes: x (N, steps, 64·f²) (or (N, steps, 1, 8f, 8f)), float32 0/1, with
    ``upsample`` = f the nearest-neighbour enlargement applied before coding (see :func:`load_digits`)."""
    ds = load_digits(test_fraction, seed, flatten, upsample)
    # distinct Bernoulli streams for the two splits (deterministic coding ignores the seed)
    x_tr = rate_encode(ds.x_train, steps, mode, seed=2 * seed).numpy()
    x_te = rate_encode(ds.x_test, steps, mode, seed=2 * seed + 1).numpy()
    return SplitDataset("digits-spikes", x_tr, ds.y_train, x_te, ds.y_test, 10, True,
                        {**ds.info, "encoder": {"kind": "rate", "mode": mode, "steps": steps}})
