"""A generated event-camera (DVS-like) task, and binning of event streams into frames.

**Task ("moving squares").** A bright square (side 2..4 pixels, random) crosses a dark ``width × height`` sensor
in one of ``n_classes`` directions (2: right/left; 4: + down/up; 8: + the diagonals) at a random speed, from a
random start, during ``duration_us`` microseconds. The label is the direction. Every sample is a stream of events
with the same structured dtype tonic uses for cameras (``x``, ``y``: int16 pixel; ``t``: int64 µs; ``p``: int8
polarity, 1 = ON / brighter, 0 = OFF / darker), sorted by time.

**Sensor model (ours, a simple DVS).** The scene is rendered every ``sub_step_us`` with anti-aliased coverage
``c ∈ [0, 1]`` per pixel; the log intensity is ``L = ln(background + c)``. Each pixel keeps a reference level
``L_ref`` (initialised to the first frame); whenever ``|L − L_ref| ≥ C`` (``contrast``, in log units) it emits
``⌊|L − L_ref| / C⌋`` events of the sign of the change and moves ``L_ref`` by that many ``C``. Event times are
spread uniformly inside the sub-step. Background activity: every pixel also fires spontaneous events as a Poisson
process of ``noise_rate_hz`` with random polarity. Everything is drawn from one seeded numpy Generator.

**Binning.** :func:`bin_events` counts events per (time bin, polarity, y, x) over ``[t_start, t_start +
duration)`` with bins of equal length: a frame tensor (T, P, H, W) — tonic's frame layout.
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

import numpy as np

from ..errors import InputError
from .base import SplitDataset

__all__ = ["EVENT_DTYPE", "DIRECTIONS", "make_event_streams", "bin_events", "make_event_dataset"]

EVENT_DTYPE = np.dtype([("x", np.int16), ("y", np.int16), ("t", np.int64), ("p", np.int8)])
# unit direction vectors (dx, dy) in pixel coordinates, y pointing down
DIRECTIONS = [(1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (-1, -1), (1, -1), (-1, 1)]
DIRECTION_NAMES = ["right", "left", "down", "up", "down-right", "up-left", "up-right", "down-left"]


def _coverage(lo: np.ndarray, size: np.ndarray, n: int) -> np.ndarray:
    """Overlap of each pixel [k, k+1) with the interval [lo, lo+size): (K, n) for K positions."""
    k = np.arange(n)[None, :]
    a = np.maximum(k, lo[:, None])
    b = np.minimum(k + 1, (lo + size)[:, None])
    return np.clip(b - a, 0.0, 1.0)


def _one_stream(rng: np.random.Generator, label: int, width: int, height: int, duration_us: int, sub_step_us: int,
                contrast: float, background: float, noise_rate_hz: float) -> np.ndarray:
    dx, dy = DIRECTIONS[label]
    size = float(rng.integers(2, 5))
    k = max(2, duration_us // sub_step_us)
    frac = np.linspace(0.0, 1.0, k)
    # travel across most of the sensor along the motion axis; random offset across it
    span_x, span_y = width - size, height - size
    speed = rng.uniform(0.6, 1.0)

    def path(d: int, span: float) -> np.ndarray:
        if d == 0:
            return np.full(k, rng.uniform(0, span))
        start = rng.uniform(0, span * (1 - speed)) if d > 0 else rng.uniform(span * speed, span)
        return start + d * speed * span * frac

    xs, ys = path(dx, span_x), path(dy, span_y)
    cov = _coverage(ys, np.full(k, size), height)[:, :, None] * _coverage(xs, np.full(k, size), width)[:, None, :]
    log_i = np.log(background + cov)  # (K, H, W)
    ref = log_i[0].copy()
    chunks: List[np.ndarray] = []
    for step in range(1, k):
        diff = log_i[step] - ref
        n = np.floor(np.abs(diff) / contrast).astype(np.int64)
        if not n.any():
            continue
        ref += np.sign(diff) * n * contrast
        yy, xx = np.nonzero(n)
        reps = n[yy, xx]
        ev = np.empty(int(reps.sum()), EVENT_DTYPE)
        ev["x"] = np.repeat(xx, reps)
        ev["y"] = np.repeat(yy, reps)
        ev["p"] = np.repeat((diff[yy, xx] > 0).astype(np.int8), reps)
        t0 = (step - 1) * sub_step_us
        ev["t"] = t0 + rng.integers(0, sub_step_us, size=len(ev))
        chunks.append(ev)
    n_noise = rng.poisson(noise_rate_hz * duration_us * 1e-6 * width * height)
    noise = np.empty(n_noise, EVENT_DTYPE)
    noise["x"] = rng.integers(0, width, n_noise)
    noise["y"] = rng.integers(0, height, n_noise)
    noise["t"] = rng.integers(0, duration_us, n_noise)
    noise["p"] = rng.integers(0, 2, n_noise)
    chunks.append(noise)
    events = np.concatenate(chunks)
    return events[np.argsort(events["t"], kind="stable")]


def make_event_streams(n: int, sensor_size: Tuple[int, int] = (16, 16), n_classes: int = 4,
                       duration_us: int = 100_000, sub_step_us: int = 1000, contrast: float = 0.25,
                       background: float = 0.1, noise_rate_hz: float = 2.0,
                       seed: int = 0) -> Tuple[List[np.ndarray], np.ndarray]:
    """``n`` event streams of the moving-squares task with balanced, shuffled labels: (streams, labels int64).

    ``sensor_size``: (width, height) in pixels; see the module docstring for the sensor model and its knobs.
    """
    if n_classes not in (2, 4, 8):
        raise InputError(f"must be 2, 4 or 8, got {n_classes}", field="n_classes")
    width, height = int(sensor_size[0]), int(sensor_size[1])
    if width < 6 or height < 6:
        raise InputError(f"sensor must be at least 6x6 pixels, got {width}x{height}", field="sensor_size")
    if duration_us < 2 * sub_step_us or sub_step_us <= 0:
        raise InputError(f"duration {duration_us} us must cover at least two sub-steps of {sub_step_us} us",
                         field="duration_us")
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % n_classes).astype(np.int64)
    streams = [_one_stream(rng, int(lab), width, height, int(duration_us), int(sub_step_us), contrast,
                           background, noise_rate_hz) for lab in labels]
    return streams, labels


def bin_events(events: np.ndarray, sensor_size: Sequence[int], n_bins: int, duration: float,
               t_start: float = 0.0) -> np.ndarray:
    """Count events into frames (n_bins, P, H, W) float32 over ``[t_start, t_start + duration)``.

    ``sensor_size``: (width, height, polarities) as tonic writes it (polarities 1 counts every event in one
    channel). Events outside the window or the sensor are dropped. Bin ``b`` holds times in
    ``[t_start + b·duration/n_bins, t_start + (b+1)·duration/n_bins)``.
    """
    width, height, pols = (int(v) for v in sensor_size)
    if n_bins <= 0 or duration <= 0:
        raise InputError(f"need n_bins > 0 and duration > 0, got {n_bins}, {duration}", field="n_bins")
    frames = np.zeros((n_bins, pols, height, width), np.float32)
    if len(events) == 0:
        return frames
    names = events.dtype.names or ()
    t = events["t"].astype(np.float64) - t_start
    x = events["x"].astype(np.int64)
    y = events["y"].astype(np.int64) if "y" in names else np.zeros(len(events), np.int64)
    p = events["p"].astype(np.int64) if ("p" in names and pols > 1) else np.zeros(len(events), np.int64)
    b = np.floor(t * n_bins / duration).astype(np.int64)
    keep = (t >= 0) & (b < n_bins) & (x >= 0) & (x < width) & (y >= 0) & (y < height) & (p >= 0) & (p < pols)
    np.add.at(frames, (b[keep], p[keep], y[keep], x[keep]), 1.0)
    return frames


def make_event_dataset(n_train: int = 800, n_test: int = 200, steps: int = 20,
                       sensor_size: Tuple[int, int] = (16, 16), n_classes: int = 4, duration_us: int = 100_000,
                       binary: bool = True, flatten: bool = False, seed: int = 0, **sensor: float) -> SplitDataset:
    """The moving-squares task binned into ``steps`` frames: x (N, steps, 2, H, W) (or (N, steps, 2·H·W) when
    ``flatten``) float32; counts clipped to 1 when ``binary`` (spike input). Train and test streams come from
    different seeds of the same generator; ``sensor`` passes the sensor-model knobs of :func:`make_event_streams`.
    """
    out = []
    for split, n in (("train", n_train), ("test", n_test)):
        streams, labels = make_event_streams(n, sensor_size, n_classes, duration_us,
                                             seed=2 * seed + (split == "test"), **sensor)
        x = np.stack([bin_events(ev, (sensor_size[0], sensor_size[1], 2), steps, duration_us) for ev in streams]) \
            if n else np.zeros((0, steps, 2, sensor_size[1], sensor_size[0]), np.float32)
        if binary:
            x = np.minimum(x, 1.0)
        if flatten:
            x = x.reshape(len(x), steps, -1)
        out += [x.astype(np.float32), labels]
    return SplitDataset("moving-squares", out[0], out[1], out[2], out[3], n_classes, True,
                        {"seed": seed, "steps": steps, "sensor_size": tuple(sensor_size), "duration_us": duration_us,
                         "binary": binary, "directions": DIRECTION_NAMES[:n_classes], **sensor})
