"""A generated spike-stream task whose class evidence starts at a sample-dependent time ("late onset").

The regime per-sample early exit is meant for: in event streams (a gesture, a spoken word) the informative part
starts at different times in different recordings, so a fixed budget must wait for the latest one while an exit
rule can stop each sample once its own evidence is in.

**Task.** ``channels`` input neurons, ``steps`` time steps, ``n_classes`` classes. Each class owns a fixed random
set of ``active`` channels (the *template*; drawn once from ``seed``, shared by the train and test splits;
templates of different classes may share channels). A sample of class ``c``:

* background: every channel fires with probability ``noise`` at every step (Bernoulli, independent);
* signal: from its onset step ``o`` (uniform integer in ``[0, steps - burst]``) for ``burst`` steps, the channels
  of ``c``'s template also fire with probability ``s`` (the sample's strength, uniform in ``strength``), so a
  template channel fires with probability ``1 - (1 - noise)(1 - s)`` during the burst;
* nothing else: before the onset and after the burst the stream is background only.

Samples therefore differ in *when* (onset) and *how fast* (strength) their evidence arrives. Output: spikes
``(N, steps, channels)`` uint8 (0/1), labels int64 (balanced, shuffled), onsets and strengths per sample. All
randomness comes from seeded numpy Generators: the templates from ``seed``, each split from its own sub-seed.
"""
from __future__ import annotations

from typing import Dict, Tuple

import numpy as np

from ..errors import InputError
from .base import SplitDataset

__all__ = ["onset_templates", "make_onset_streams", "make_onset_dataset"]


def _check(steps: int, channels: int, n_classes: int, active: int, burst: int, noise: float,
           strength: Tuple[float, float]) -> None:
    if n_classes < 2:
        raise InputError(f"needs at least 2 classes, got {n_classes}", field="n_classes")
    if not 1 <= active <= channels:
        raise InputError(f"must be in [1, channels={channels}], got {active}", field="active")
    if not 1 <= burst <= steps:
        raise InputError(f"must be in [1, steps={steps}], got {burst}", field="burst")
    if not 0.0 <= noise < 1.0:
        raise InputError(f"must be in [0, 1), got {noise}", field="noise")
    lo, hi = (float(v) for v in strength)
    if not 0.0 < lo <= hi <= 1.0:
        raise InputError(f"must satisfy 0 < lo <= hi <= 1, got ({lo}, {hi})", field="strength")


def onset_templates(n_classes: int, channels: int, active: int, seed: int = 0) -> np.ndarray:
    """The class templates: bool ``(n_classes, channels)`` with ``active`` channels set per class (drawn from a
    Generator seeded with ``seed``)."""
    if not 1 <= active <= channels:
        raise InputError(f"must be in [1, channels={channels}], got {active}", field="active")
    rng = np.random.default_rng([int(seed), 0x0E5E7])
    tmpl = np.zeros((int(n_classes), int(channels)), dtype=bool)
    for c in range(int(n_classes)):
        tmpl[c, rng.choice(int(channels), size=int(active), replace=False)] = True
    return tmpl


def make_onset_streams(n: int, templates: np.ndarray, steps: int = 48, burst: int = 12, noise: float = 0.04,
                       strength: Tuple[float, float] = (0.1, 0.4), seed: int = 0
                       ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``n`` streams of the late-onset task for the given ``templates`` (see the module docstring):
    ``(spikes uint8 (n, steps, channels), labels int64 (n,), onsets int64 (n,), strengths float64 (n,))``."""
    tmpl = np.asarray(templates, dtype=bool)
    if tmpl.ndim != 2:
        raise InputError(f"must have shape (n_classes, channels), got {tmpl.shape}", field="templates")
    n_classes, channels = tmpl.shape
    _check(steps, channels, n_classes, max(1, int(tmpl.sum(1).min())), burst, noise, strength)
    rng = np.random.default_rng([int(seed), 0x57EA4])
    labels = rng.permutation(np.arange(int(n)) % n_classes).astype(np.int64)
    onsets = rng.integers(0, steps - burst + 1, size=int(n)).astype(np.int64)
    strengths = rng.uniform(float(strength[0]), float(strength[1]), size=int(n))
    t = np.arange(steps)
    in_burst = (t[None, :] >= onsets[:, None]) & (t[None, :] < onsets[:, None] + burst)          # (n, steps)
    p_signal = in_burst[:, :, None] * tmpl[labels][:, None, :] * strengths[:, None, None]       # (n, steps, ch)
    p = 1.0 - (1.0 - noise) * (1.0 - p_signal)
    spikes = (rng.random(p.shape) < p).astype(np.uint8)
    return spikes, labels, onsets, strengths


def make_onset_dataset(n_train: int = 3000, n_test: int = 1000, steps: int = 48, channels: int = 64,
                       n_classes: int = 10, active: int = 12, burst: int = 12, noise: float = 0.04,
                       strength: Tuple[float, float] = (0.1, 0.4), seed: int = 0) -> SplitDataset:
    """The late-onset task as a :class:`SplitDataset` (x: (N, steps, channels) float32 0/1). ``info`` holds the
    generator settings and the per-sample ``onsets_train`` / ``onsets_test`` and strengths."""
    _check(steps, channels, n_classes, active, burst, noise, strength)
    tmpl = onset_templates(n_classes, channels, active, seed)
    parts: Dict[str, Tuple[np.ndarray, ...]] = {}
    for split, n, sub in (("train", n_train, 1), ("test", n_test, 2)):
        parts[split] = make_onset_streams(n, tmpl, steps, burst, noise, strength, seed=2 * int(seed) + sub)
    info = {"generator": "toolchain.data.onset", "seed": int(seed), "steps": int(steps), "channels": int(channels),
            "active": int(active), "burst": int(burst), "noise": float(noise),
            "strength": [float(strength[0]), float(strength[1])],
            "onsets_train": parts["train"][2], "onsets_test": parts["test"][2],
            "strengths_train": parts["train"][3], "strengths_test": parts["test"][3]}
    return SplitDataset("late-onset", parts["train"][0].astype(np.float32), parts["train"][1],
                        parts["test"][0].astype(np.float32), parts["test"][1], int(n_classes), True, info)
