"""MNIST-1D (Greydanus, 2020), generated locally with the ``mnist1d`` package's own generator (no download).

The default arguments of ``mnist1d.data.get_dataset_args()`` give 5000 signals of length 40 (4000 train,
1000 test, 10 classes, generator seed 42), centred and scaled to unit standard deviation by the generator.
:func:`load_mnist1d` returns them as a 40-step sequence with one input channel per step: x (N, 40, 1) float32,
which a spiking network reads as an input current (the first synapse maps it to its neurons each step).

Generation takes a few seconds; results are cached in memory per argument set and optionally on disk
(``cache_dir``). The generator seeds numpy's global RNG: we save and restore that state so that loading the data
set does not change anyone else's random numbers.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import numpy as np

from ..errors import InputError
from .base import SplitDataset

__all__ = ["load_mnist1d", "mnist1d_args"]

_CACHE: Dict[str, Tuple[np.ndarray, ...]] = {}


def mnist1d_args(**overrides: Any) -> Dict[str, Any]:
    """The package's default generator arguments (as a dict) with ``overrides`` applied (e.g. num_samples)."""
    from mnist1d.data import get_dataset_args

    args = get_dataset_args(as_dict=True)
    unknown = set(overrides) - set(args)
    if unknown:
        raise InputError(f"unknown mnist1d arguments {sorted(unknown)}; known: {sorted(args)}", field="overrides")
    args.update(overrides)
    return args


def _key(args: Dict[str, Any]) -> str:
    return hashlib.sha1(json.dumps(args, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _generate(args: Dict[str, Any]) -> Tuple[np.ndarray, ...]:
    from mnist1d.data import make_dataset
    from mnist1d.utils import ObjectView

    state = np.random.get_state()
    try:
        data = make_dataset(ObjectView(dict(args)))
    finally:
        np.random.set_state(state)
    return (np.asarray(data["x"], np.float32), np.asarray(data["y"], np.int64),
            np.asarray(data["x_test"], np.float32), np.asarray(data["y_test"], np.int64))


def load_mnist1d(as_sequence: bool = True, cache_dir: Optional[str] = None, **overrides: Any) -> SplitDataset:
    """MNIST-1D: x (N, 40, 1) as a sequence (``as_sequence``) or (N, 40) as static vectors; y int64.

    ``overrides`` change the generator's arguments (``num_samples``, ``seed``, ...); the defaults are the
    package's. ``cache_dir``: where to keep an ``.npz`` of the generated arrays between runs.
    """
    args = mnist1d_args(**overrides)
    key = _key(args)
    if key not in _CACHE:
        path = Path(cache_dir) / f"mnist1d_{key}.npz" if cache_dir else None
        if path is not None and path.exists():
            with np.load(path) as f:
                _CACHE[key] = (f["x"], f["y"], f["x_test"], f["y_test"])
        else:
            _CACHE[key] = _generate(args)
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".tmp.npz")
                x, y, xt, yt = _CACHE[key]
                np.savez(tmp, x=x, y=y, x_test=xt, y_test=yt)
                tmp.replace(path)
    x, y, xt, yt = _CACHE[key]
    if as_sequence:
        x, xt = x[..., None], xt[..., None]
    info = {"generator_args": {k: v for k, v in args.items() if k != "url"}, "as_sequence": as_sequence}
    return SplitDataset("mnist1d", x.copy(), y.copy(), xt.copy(), yt.copy(), 10, as_sequence, info)
