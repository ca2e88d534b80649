"""Loaders for N-MNIST, SHD and DVS-Gesture from files the user already has (never downloads).

tonic's dataset classes download when their folders are incomplete, so we walk the user's folders ourselves and
use tonic for what it is good at: its file readers (``tonic.io.read_mnist_file``), its event dtypes and its
``Downsample`` transform. Binning is :func:`toolchain.data.events.bin_events` (fixed windows: tonic's ``ToFrame``
drops the last event with ``n_time_bins`` and returns one frame for an empty stream).

Expected layouts (the datasets' published formats, as tonic unpacks them):

* **N-MNIST** (Orchard et al. 2015): ``root/Train/<digit>/<id>.bin`` and ``root/Test/<digit>/<id>.bin`` (also
  accepted under ``root/NMNIST/``). Each event is 40 bits: x (8), y (8), polarity (1), time in µs (23); a y of 240
  marks a timer overflow (+2^13 µs). Sensor 34 × 34 × 2.
* **SHD** (Cramer et al. 2020): HDF5 ``shd_train.h5`` / ``shd_test.h5`` (a file or a folder holding it) with
  ``spikes/times`` (variable-length float, seconds), ``spikes/units`` (variable-length int, 0..699) and
  ``labels``. 700 channels, one polarity.
* **DVS-Gesture** (Amir et al. 2017), tonic's preprocessed release: ``root/ibmGestureTrain/user<NN>_<light>/
  <label>.npy`` (and ``ibmGestureTest``), each an (n, 4) array of x, y, polarity, time in ms. Sensor 128 × 128 × 2,
  11 classes.

Each loader returns an :class:`EventFileDataset`: ``len()``, ``ds[i] -> (frames float32 tensor, label)`` with
frames (T, P, H, W) (SHD: (T, 700)), reading files lazily; ``to_split_arrays()`` materialises numpy arrays.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from ..errors import InputError
from .events import bin_events

__all__ = ["EventFileDataset", "load_nmnist", "load_shd", "load_dvs_gesture", "read_nmnist_bin", "write_nmnist_bin"]

PathLike = Union[str, os.PathLike]
NMNIST_SENSOR = (34, 34, 2)
SHD_CHANNELS = 700
GESTURE_SENSOR = (128, 128, 2)


class EventFileDataset:
    """A list of (source, label) read lazily by ``reader`` into events, binned into ``n_bins`` frames.

    ``reader(source) -> structured events`` (fields x[, y], t in µs[, p]); ``sensor_size`` (W, H, P) after
    ``transform`` (e.g. tonic's ``Downsample``); ``duration``: window length in µs from ``t_start`` (None: each
    sample's own last event time + 1); ``binary``: clip counts to 1; ``squeeze``: drop the unit P and H axes.
    """

    def __init__(self, name: str, items: List[Tuple[object, int]], reader: Callable[[object], np.ndarray],
                 sensor_size: Tuple[int, int, int], n_bins: int, duration: Optional[float],
                 transform: Optional[Callable[[np.ndarray], np.ndarray]] = None, binary: bool = False,
                 squeeze: bool = False, n_classes: Optional[int] = None) -> None:
        if n_bins <= 0:
            raise InputError(f"must be positive, got {n_bins}", node=name, field="n_bins")
        self.name = name
        self.items = items
        self.reader = reader
        self.sensor_size = tuple(int(v) for v in sensor_size)
        self.n_bins = int(n_bins)
        self.duration = duration
        self.transform = transform
        self.binary = binary
        self.squeeze = squeeze
        self.n_classes = n_classes if n_classes is not None else (max((lab for _, lab in items), default=-1) + 1)

    def __len__(self) -> int:
        return len(self.items)

    def events(self, index: int) -> np.ndarray:
        """The (transformed) events of sample ``index``."""
        ev = self.reader(self.items[index][0])
        return self.transform(ev) if self.transform is not None else ev

    def frames(self, index: int) -> np.ndarray:
        """Sample ``index`` binned: (T, P, H, W) float32, or (T, W) when ``squeeze`` (SHD)."""
        ev = self.events(index)
        duration = self.duration
        if duration is None:
            duration = float(ev["t"].max()) + 1.0 if len(ev) else 1.0
        f = bin_events(ev, self.sensor_size, self.n_bins, duration)
        if self.binary:
            f = np.minimum(f, 1.0)
        if self.squeeze:
            f = f.reshape(self.n_bins, -1)
        return f

    def __getitem__(self, index: int) -> Tuple[torch.Tensor, int]:
        return torch.from_numpy(self.frames(index)), int(self.items[index][1])

    def to_arrays(self, limit: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
        """The first ``limit`` samples (all by default) as ``(x (N, T, ...) float32, y int64)``."""
        n = len(self) if limit is None else min(limit, len(self))
        if n == 0:
            raise InputError("the data set is empty", node=self.name)
        x = np.stack([self.frames(i) for i in range(n)])
        y = np.asarray([self.items[i][1] for i in range(n)], np.int64)
        return x, y


# ----------------------------------------------------------------------------------------------------------- N-MNIST
def read_nmnist_bin(path: PathLike) -> np.ndarray:
    """Events of one N-MNIST ``.bin`` file (tonic's reader and dtype: x, y, t in µs, p)."""
    from tonic.datasets import NMNIST
    from tonic.io import read_mnist_file

    try:
        size = os.path.getsize(path)
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", file=str(path)) from None
    if size % 5:
        raise InputError(f"size {size} bytes is not a multiple of 5 (40-bit events)", file=str(path))
    return read_mnist_file(str(path), dtype=NMNIST.dtype)


def write_nmnist_bin(path: PathLike, x: Sequence[int], y: Sequence[int], t: Sequence[int], p: Sequence[int]) -> None:
    """Write events in the N-MNIST 40-bit format (times in µs below 2^23; for tests and converters)."""
    x, y, t, p = (np.asarray(v, np.int64) for v in (x, y, t, p))
    if np.any((x < 0) | (x > 255) | (y < 0) | (y > 239)) or np.any((t < 0) | (t >= 2 ** 23)):
        raise InputError("x must be in [0, 255], y in [0, 239], t in [0, 2^23)", file=str(path))
    raw = np.empty((len(x), 5), np.uint8)
    raw[:, 0] = x
    raw[:, 1] = y
    raw[:, 2] = ((p & 1) << 7) | ((t >> 16) & 0x7F)
    raw[:, 3] = (t >> 8) & 0xFF
    raw[:, 4] = t & 0xFF
    Path(path).write_bytes(raw.tobytes())


def _split_root(root: Path, names: Sequence[str], what: str) -> Path:
    if not root.exists():
        raise InputError(f"{what} folder not found (we never download; point to your copy)", file=str(root))
    for base in (root, root / "NMNIST"):
        for name in names:
            if (base / name).is_dir():
                return base / name
    raise InputError(f"no {'/'.join(names)} folder inside", file=str(root))


def load_nmnist(root: PathLike, train: bool = True, n_bins: int = 30, duration_us: Optional[float] = 300_000,
                first_saccade_only: bool = False, binary: bool = True) -> EventFileDataset:
    """N-MNIST from ``root`` (see the module docstring): frames (n_bins, 2, 34, 34) over ``duration_us``.

    ``first_saccade_only`` keeps events before 100 ms (tonic's convention).
    """
    folder = _split_root(Path(root), ["Train", "train"] if train else ["Test", "test"], "N-MNIST")
    items: List[Tuple[object, int]] = []
    for digit_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        if not digit_dir.name.isdigit():
            continue
        for f in sorted(digit_dir.glob("*.bin")):
            items.append((f, int(digit_dir.name)))
    if not items:
        raise InputError("no <digit>/*.bin files", file=str(folder))

    def reader(path: object) -> np.ndarray:
        ev = read_nmnist_bin(path)  # type: ignore[arg-type]
        return ev[ev["t"] < 100_000] if first_saccade_only else ev

    return EventFileDataset("nmnist", items, reader, NMNIST_SENSOR, n_bins, duration_us, binary=binary,
                            n_classes=10)


# --------------------------------------------------------------------------------------------------------------- SHD
def _shd_file(path: Path, train: bool) -> Path:
    if path.is_dir():
        name = "shd_train.h5" if train else "shd_test.h5"
        path = path / name
    if not path.is_file():
        raise InputError("SHD file not found (we never download; point to shd_train.h5 / shd_test.h5)",
                         file=str(path))
    return path


def load_shd(path: PathLike, train: bool = True, n_bins: int = 100, duration_us: Optional[float] = 1_000_000,
             binary: bool = False) -> EventFileDataset:
    """SHD from an HDF5 file or a folder holding ``shd_train.h5``/``shd_test.h5``: frames (n_bins, 700)."""
    import h5py
    from tonic.datasets.hsd import HSD
    from tonic.io import make_structured_array

    file = _shd_file(Path(path), train)
    try:
        with h5py.File(file, "r") as h5:
            for key in ("spikes/times", "spikes/units", "labels"):
                if key not in h5:
                    raise InputError(f"missing dataset '{key}'", file=str(file), field=key)
            n = len(h5["labels"])
            if len(h5["spikes/times"]) != n or len(h5["spikes/units"]) != n:
                raise InputError("spikes/times, spikes/units and labels differ in length", file=str(file))
            labels = np.asarray(h5["labels"][()], np.int64)
    except OSError as exc:
        raise InputError(f"not a readable HDF5 file ({exc})", file=str(file)) from None

    def reader(index: object) -> np.ndarray:
        with h5py.File(file, "r") as h5:
            times = np.asarray(h5["spikes/times"][index], np.float64)
            units = np.asarray(h5["spikes/units"][index], np.int64)
        if len(times) != len(units):
            raise InputError(f"sample {index}: {len(times)} times but {len(units)} units", file=str(file))
        if len(units) and (units.min() < 0 or units.max() >= SHD_CHANNELS):
            raise InputError(f"sample {index}: unit ids outside [0, {SHD_CHANNELS})", file=str(file),
                             field="spikes/units")
        return make_structured_array(times * 1e6, units, 1, dtype=HSD.dtype)

    items = [(i, int(labels[i])) for i in range(n)]
    return EventFileDataset("shd", items, reader, (SHD_CHANNELS, 1, 1), n_bins, duration_us, binary=binary,
                            squeeze=True, n_classes=20)


# ------------------------------------------------------------------------------------------------------- DVS-Gesture
def load_dvs_gesture(root: PathLike, train: bool = True, n_bins: int = 20, duration_us: Optional[float] = 1_500_000,
                     downsample: int = 4, binary: bool = True) -> EventFileDataset:
    """DVS-Gesture (tonic's preprocessed ``.npy`` release) from ``root``: frames (n_bins, 2, 128/d, 128/d).

    ``downsample``: integer spatial factor d (tonic's ``Downsample``), 1 keeps 128 × 128.
    """
    from tonic.datasets import DVSGesture
    from tonic.transforms import Downsample

    root = Path(root)
    if not root.exists():
        raise InputError("DVS-Gesture folder not found (we never download; point to your copy)", file=str(root))
    name = "ibmGestureTrain" if train else "ibmGestureTest"
    folder = root / name if (root / name).is_dir() else root / "DVSGesture" / name
    if not folder.is_dir():
        raise InputError(f"no {name} folder inside", file=str(root))
    items: List[Tuple[object, int]] = []
    for user_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        for f in sorted(user_dir.glob("*.npy")):
            if f.stem.isdigit():
                items.append((f, int(f.stem)))
    if not items:
        raise InputError("no user*/<label>.npy files", file=str(folder))
    if downsample < 1 or 128 % downsample:
        raise InputError(f"must divide 128, got {downsample}", field="downsample")

    def reader(path: object) -> np.ndarray:
        arr = np.load(path)  # type: ignore[arg-type]
        if arr.ndim != 2 or arr.shape[1] != 4:
            raise InputError(f"expected an (n, 4) array of x, y, p, t[ms], got shape {arr.shape}", file=str(path))
        ev = np.empty(len(arr), DVSGesture.dtype)
        ev["x"], ev["y"] = arr[:, 0], arr[:, 1]
        ev["p"] = arr[:, 2] > 0
        ev["t"] = np.round(arr[:, 3].astype(np.float64) * 1000).astype(np.int64)
        return ev

    size = 128 // downsample
    transform = Downsample(spatial_factor=1.0 / downsample) if downsample > 1 else None

    return EventFileDataset("dvs-gesture", items, reader, (size, size, 2), n_bins, duration_us, transform,
                            binary=binary, n_classes=11)
