"""Generated chaotic time series for next-step prediction: Lorenz-63, Rössler and Mackey-Glass.

Every generator is seeded (the seed perturbs the initial condition), integrates the system with a fixed-step
fourth-order Runge-Kutta scheme (Mackey-Glass: RK4 on the delay equation with a linearly interpolated history),
throws away a transient so that the trajectory lies on the attractor, samples it every ``sample_every`` integration
steps and returns a float64 array of shape ``(n_steps, d)`` (d = 3 for Lorenz and Rössler, 1 for Mackey-Glass).
The default sampling intervals (Lorenz 0.05, Rössler 0.25, Mackey-Glass 3 time units) make one-step prediction
non-trivial: predicting "no change" gives an NRMSE of about 0.37, 0.46 and 0.43, a linear AR(2) model about 0.12,
0.13 and 0.19.

Systems (time in the systems' own dimensionless units):

* Lorenz-63:   dx/dt = σ(y − x),  dy/dt = x(ρ − z) − y,  dz/dt = xy − βz;   σ = 10, ρ = 28, β = 8/3
* Rössler:     dx/dt = −y − z,    dy/dt = x + a·y,       dz/dt = b + z(x − c); a = 0.2, b = 0.2, c = 5.7
* Mackey-Glass: dx/dt = β·x(t−τ)/(1 + x(t−τ)^n) − γ·x;  β = 0.2, γ = 0.1, n = 10, τ = 17 (chaotic)

:func:`normalise` z-scores each dimension (statistics from a training slice, returned so that the same transform
can be applied to a test slice or undone). :func:`prediction_windows` cuts a series into windows for next-step
(or ``horizon``-step) prediction: inputs ``x[t]`` and targets ``x[t + horizon]`` at every step of the window, so a
recurrent network can be trained sequence-to-sequence and evaluated on every step or on the last one.
:func:`level_encode` turns values into binary spikes (one population of ``n_per_dim`` level-tuned input neurons
per dimension), the input layer of the HRSNN tasks. :func:`nrmse` is the error measure of the benchmarks.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple

import numpy as np

from ..errors import InputError

__all__ = ["lorenz63", "rossler", "mackey_glass", "generate", "SYSTEMS", "Normalisation", "normalise",
           "prediction_windows", "level_encode", "nrmse", "PredictionTask", "make_prediction_task"]


def _rk4(f: Callable[[float, float, float], Tuple[float, float, float]], x0: np.ndarray, h: float, n: int,
         every: int, skip: int) -> np.ndarray:
    """Integrate the 3-D system ``dx/dt = f(x)`` with RK4 step ``h``: ``skip`` samples of transient, then ``n``
    samples taken every ``every`` steps (plain float arithmetic: much faster than numpy on 3-vectors)."""
    a, b, c = (float(v) for v in x0)
    out = np.empty((n, 3))
    h2, h6 = 0.5 * h, h / 6.0
    for k in range(skip + n):
        for _ in range(every):
            k1 = f(a, b, c)
            k2 = f(a + h2 * k1[0], b + h2 * k1[1], c + h2 * k1[2])
            k3 = f(a + h2 * k2[0], b + h2 * k2[1], c + h2 * k2[2])
            k4 = f(a + h * k3[0], b + h * k3[1], c + h * k3[2])
            a += h6 * (k1[0] + 2 * k2[0] + 2 * k3[0] + k4[0])
            b += h6 * (k1[1] + 2 * k2[1] + 2 * k3[1] + k4[1])
            c += h6 * (k1[2] + 2 * k2[2] + 2 * k3[2] + k4[2])
        if k >= skip:
            out[k - skip] = (a, b, c)
    if not np.all(np.isfinite(out)):
        raise InputError("integration diverged; use a smaller step", field="h")
    return out


def _check_n(n_steps: int) -> int:
    n = int(n_steps)
    if n < 1:
        raise InputError(f"must be >= 1, got {n_steps}", field="n_steps")
    return n


def lorenz63(n_steps: int, *, h: float = 0.01, sample_every: int = 5, transient: int = 1000, seed: int = 0,
             sigma: float = 10.0, rho: float = 28.0, beta: float = 8.0 / 3.0) -> np.ndarray:
    """Lorenz-63 trajectory, shape ``(n_steps, 3)``, sampled every ``h·sample_every`` time units (default 0.05)."""
    n = _check_n(n_steps)
    rng = np.random.default_rng(seed)
    x0 = np.array([1.0, 1.0, 1.0]) + rng.normal(0.0, 1.0, 3)

    def f(x: float, y: float, z: float) -> Tuple[float, float, float]:
        return sigma * (y - x), x * (rho - z) - y, x * y - beta * z

    return _rk4(f, x0, h, n, sample_every, transient)


def rossler(n_steps: int, *, h: float = 0.025, sample_every: int = 10, transient: int = 1000, seed: int = 0,
            a: float = 0.2, b: float = 0.2, c: float = 5.7) -> np.ndarray:
    """Rössler trajectory, shape ``(n_steps, 3)``, sampled every ``h·sample_every`` time units (default 0.25)."""
    n = _check_n(n_steps)
    rng = np.random.default_rng(seed)
    x0 = np.array([1.0, 1.0, 0.5]) + rng.normal(0.0, 0.5, 3)

    def f(x: float, y: float, z: float) -> Tuple[float, float, float]:
        return -y - z, x + a * y, b + z * (x - c)

    return _rk4(f, x0, h, n, sample_every, transient)


def mackey_glass(n_steps: int, *, h: float = 0.1, sample_every: int = 30, transient: int = 500, seed: int = 0,
                 beta: float = 0.2, gamma: float = 0.1, n: float = 10.0, tau: float = 17.0) -> np.ndarray:
    """Mackey-Glass trajectory, shape ``(n_steps, 1)``, sampled every ``h·sample_every`` time units (default 3).

    The delay ``tau`` must be a multiple of ``h``; the history before t = 0 is a constant ``1.2 + noise(seed)``.
    RK4 evaluates the delayed term at half steps by linear interpolation of the stored history.
    """
    n_out = _check_n(n_steps)
    lag = int(round(tau / h))
    if lag < 1 or abs(lag * h - tau) > 1e-9 * max(1.0, tau):
        raise InputError(f"tau={tau} must be a positive multiple of h={h}", field="tau")
    rng = np.random.default_rng(seed)
    total = (transient + n_out) * sample_every
    x = np.empty(lag + total + 1)
    x[: lag + 1] = 1.2 + rng.normal(0.0, 0.05)

    def f(xt: float, xd: float) -> float:
        return beta * xd / (1.0 + xd ** n) - gamma * xt

    hist = x.tolist()
    for k in range(lag, lag + total):
        d0, d1 = hist[k - lag], hist[k - lag + 1]
        dm = 0.5 * (d0 + d1)
        xt = hist[k]
        k1 = f(xt, d0)
        k2 = f(xt + 0.5 * h * k1, dm)
        k3 = f(xt + 0.5 * h * k2, dm)
        k4 = f(xt + h * k3, d1)
        hist[k + 1] = xt + (h / 6.0) * (k1 + 2 * k2 + 2 * k3 + k4)
    x = np.asarray(hist)
    samples = x[lag + 1 + transient * sample_every:: sample_every][:n_out]
    if not np.all(np.isfinite(samples)):
        raise InputError("integration diverged; use a smaller step", field="h")
    return samples[:, None].copy()


SYSTEMS: Dict[str, Callable[..., np.ndarray]] = {"lorenz63": lorenz63, "rossler": rossler,
                                                 "mackey_glass": mackey_glass}


def generate(system: str, n_steps: int, seed: int = 0, **kwargs) -> np.ndarray:
    """Generate ``n_steps`` samples of ``system`` (one of :data:`SYSTEMS`)."""
    try:
        fn = SYSTEMS[system]
    except KeyError:
        raise InputError(f"unknown system {system!r}; choose one of {sorted(SYSTEMS)}", field="system") from None
    return fn(n_steps, seed=seed, **kwargs)


@dataclass(frozen=True)
class Normalisation:
    """Per-dimension z-score: ``z = (x − mean) / std``; ``invert`` maps back."""

    mean: np.ndarray
    std: np.ndarray

    def apply(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, dtype=np.float64) - self.mean) / self.std

    def invert(self, z: np.ndarray) -> np.ndarray:
        return np.asarray(z, dtype=np.float64) * self.std + self.mean


def normalise(series: np.ndarray, fit_slice: Optional[slice] = None) -> Tuple[np.ndarray, Normalisation]:
    """Z-score ``series`` (T, d) per dimension, statistics from ``series[fit_slice]`` (default: all of it)."""
    x = np.asarray(series, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise InputError(f"expected (T >= 2, d), got {x.shape}", field="series")
    ref = x if fit_slice is None else x[fit_slice]
    std = ref.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    norm = Normalisation(ref.mean(axis=0), std)
    return norm.apply(x), norm


def prediction_windows(series: np.ndarray, window: int, horizon: int = 1, stride: Optional[int] = None
                       ) -> Tuple[np.ndarray, np.ndarray]:
    """Windows for ``horizon``-step-ahead prediction.

    Returns ``inputs`` (n, window, d) with ``inputs[k, t] = series[k·stride + t]`` and ``targets`` (n, window, d)
    with ``targets[k, t] = series[k·stride + t + horizon]``. ``stride`` defaults to ``window`` (no overlap).
    """
    x = np.asarray(series, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    window, horizon = int(window), int(horizon)
    stride = window if stride is None else int(stride)
    if window < 1 or horizon < 1 or stride < 1:
        raise InputError(f"window, horizon and stride must be >= 1, got {window}, {horizon}, {stride}",
                         field="window")
    n = (x.shape[0] - window - horizon) // stride + 1
    if n < 1:
        raise InputError(f"series of length {x.shape[0]} is too short for window={window} and horizon={horizon}",
                         field="series")
    starts = np.arange(n) * stride
    idx = starts[:, None] + np.arange(window)[None, :]
    return x[idx], x[idx + horizon]


def level_encode(values: np.ndarray, n_per_dim: int = 16, lo: float = -2.5, hi: float = 2.5,
                 width: float = 1.0) -> np.ndarray:
    """Binary level (receptive-field) code: input neuron k of dimension d fires at a step when
    ``|x_d − c_k| ≤ width · spacing`` with centres ``c_k`` evenly spaced on [lo, hi].

    ``values`` (..., d) -> spikes (..., d·n_per_dim) float32 in {0, 1}; values outside [lo, hi] are clipped, so
    every value activates between 1 and 2·width + 1 neighbouring neurons. Deterministic (no sampling).
    """
    v = np.asarray(values, dtype=np.float64)
    if int(n_per_dim) < 2 or not hi > lo or not width > 0:
        raise InputError(f"need n_per_dim >= 2, hi > lo and width > 0, got {n_per_dim}, [{lo}, {hi}], {width}",
                         field="n_per_dim")
    centres = np.linspace(lo, hi, int(n_per_dim))
    spacing = centres[1] - centres[0]
    vc = np.clip(v, lo, hi)[..., None]
    s = (np.abs(vc - centres) <= width * spacing + 1e-12).astype(np.float32)
    return s.reshape(*v.shape[:-1], v.shape[-1] * int(n_per_dim))


def nrmse(prediction: np.ndarray, target: np.ndarray) -> float:
    """Normalised root-mean-square error: RMSE over all entries divided by the target's standard deviation
    (per dimension, averaged in quadrature). 0 is perfect; predicting the mean gives about 1."""
    p = np.asarray(prediction, dtype=np.float64)
    y = np.asarray(target, dtype=np.float64)
    if p.shape != y.shape:
        raise InputError(f"prediction {p.shape} and target {y.shape} differ", field="prediction")
    d = y.shape[-1]
    p2, y2 = p.reshape(-1, d), y.reshape(-1, d)
    var = y2.var(axis=0)
    var = np.where(var > 0, var, 1.0)
    return float(np.sqrt(np.mean(np.mean((p2 - y2) ** 2, axis=0) / var)))


@dataclass(frozen=True)
class PredictionTask:
    """A next-step prediction data set: normalised windows split into train and test, plus spike-encoded
    inputs. ``x_*``: (n, window, d) values; ``y_*``: (n, window, d) targets; ``s_*``: (n, window, d·n_per_dim)
    input spikes of ``x_*``."""

    system: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    s_train: np.ndarray
    s_test: np.ndarray
    norm: Normalisation


def make_prediction_task(system: str, *, n_train: int = 64, n_test: int = 16, window: int = 100,
                         horizon: int = 1, n_per_dim: int = 16, seed: int = 0) -> PredictionTask:
    """Generate ``system``, z-score it on the training part, cut non-overlapping windows (train first, test after
    in time, so the test windows are unseen), and level-encode the inputs into spikes."""
    n_total = (n_train + n_test) * window + horizon
    series = generate(system, n_total, seed=seed)
    split = n_train * window
    z, norm = normalise(series, slice(0, split + horizon))
    x_tr, y_tr = prediction_windows(z[: split + horizon], window, horizon)
    x_te, y_te = prediction_windows(z[split:], window, horizon)
    x_tr, y_tr, x_te, y_te = x_tr[:n_train], y_tr[:n_train], x_te[:n_test], y_te[:n_test]
    return PredictionTask(system, x_tr, y_tr, x_te, y_te, level_encode(x_tr, n_per_dim),
                          level_encode(x_te, n_per_dim), norm)
