"""The container every built-in data set returns, and a seeded mini-batch iterator.

Layouts (the ``toolchain.nn`` convention, batch first and time second):

* static samples (digits images, mnist1d signals): ``x`` is (N, *feature_shape), float32;
* sequences (encoded spikes, event frames, mnist1d as a sequence): ``x`` is (N, T, *feature_shape), float32;
* labels ``y`` are int64 class indices in ``[0, n_classes)``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, Optional, Tuple

import numpy as np
import torch

from ..errors import InputError

__all__ = ["SplitDataset", "iterate_batches"]


@dataclass(frozen=True)
class SplitDataset:
    """A fixed train/test split held in memory as numpy arrays.

    ``x_train``/``x_test``: float32 arrays with the sample axis first; ``y_train``/``y_test``: int64 labels.
    ``name``: a short identifier; ``n_classes``: number of classes; ``time_major``: True when the second axis of
    ``x`` is time (sequence data); ``info``: provenance (seed, split fractions, encoder settings ...).
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    time_major: bool = False
    info: Dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for split in ("train", "test"):
            x = getattr(self, f"x_{split}")
            y = getattr(self, f"y_{split}")
            if len(x) != len(y):
                raise InputError(f"{len(x)} samples but {len(y)} labels", node=self.name, field=f"x_{split}")
            if len(y) and (y.min() < 0 or y.max() >= self.n_classes):
                raise InputError(f"labels outside [0, {self.n_classes})", node=self.name, field=f"y_{split}")
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise InputError(f"train samples have shape {self.x_train.shape[1:]}, test samples "
                             f"{self.x_test.shape[1:]}", node=self.name, field="x_test")

    @property
    def sample_shape(self) -> Tuple[int, ...]:
        """Shape of one sample (including the time axis for sequence data)."""
        return tuple(self.x_train.shape[1:])

    @property
    def feature_shape(self) -> Tuple[int, ...]:
        """Shape of one sample at one time step (``sample_shape`` without time for sequence data)."""
        return self.sample_shape[1:] if self.time_major else self.sample_shape

    @property
    def steps(self) -> Optional[int]:
        """Number of time steps of sequence data (None for static data)."""
        return self.sample_shape[0] if self.time_major else None

    def map(self, fn: Callable[[np.ndarray], np.ndarray], *, name: Optional[str] = None, time_major: bool = True,
            **info: Any) -> "SplitDataset":
        """A new split with ``fn`` applied to ``x_train`` and ``x_test`` (e.g. an encoder); labels are kept."""
        return SplitDataset(name or self.name, np.asarray(fn(self.x_train), dtype=np.float32), self.y_train,
                            np.asarray(fn(self.x_test), dtype=np.float32), self.y_test, self.n_classes,
                            time_major, {**self.info, **info})

    def subset(self, n_train: Optional[int] = None, n_test: Optional[int] = None) -> "SplitDataset":
        """The first ``n_train`` training and ``n_test`` test samples (the split is already shuffled)."""
        return SplitDataset(self.name, self.x_train[:n_train], self.y_train[:n_train], self.x_test[:n_test],
                            self.y_test[:n_test], self.n_classes, self.time_major,
                            {**self.info, "subset": (n_train, n_test)})


def iterate_batches(x: np.ndarray, y: np.ndarray, batch_size: int, *, shuffle: bool = False,
                    seed: Optional[int] = None, transform: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
                    drop_last: bool = False) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(x_batch, y_batch)`` torch tensors (float32, int64) in order or in a seeded random order.

    ``transform`` (e.g. a Bernoulli rate encoder) is applied to each ``x`` batch; ``seed`` fixes the shuffle so
    that the same seed gives the same batches.
    """
    if batch_size <= 0:
        raise InputError(f"must be positive, got {batch_size}", field="batch_size")
    n = len(x)
    order = np.random.default_rng(seed).permutation(n) if shuffle else np.arange(n)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        idx = order[start:start + batch_size]
        xb = torch.as_tensor(np.asarray(x[idx]), dtype=torch.float32)
        yb = torch.as_tensor(np.asarray(y[idx]), dtype=torch.int64)
        if transform is not None:
            xb = transform(xb)
        yield xb, yb
