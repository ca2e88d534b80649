"""A small Bayesian optimiser (maximisation): Gaussian-process surrogate + expected improvement, numpy/scipy only.

Model. Inputs are scaled to the unit box; outputs are standardised. The GP has a squared-exponential kernel
``k(x, x') = exp(−|x − x'|² / (2ℓ²))`` (unit signal variance after standardisation) plus a noise variance ``σ_n²``;
``ℓ`` and ``σ_n²`` are picked on a small grid by the largest log marginal likelihood (a closed-form, seed-free
fit: no gradient optimiser to get stuck). Acquisition: expected improvement over the best observed value,
``EI(x) = (μ − y* − ξ)·Φ(z) + s·φ(z)``, ``z = (μ − y* − ξ)/s``, maximised over a random candidate set (uniform in
the box plus Gaussian perturbations of the best points). The first ``n_init`` points are a Latin hypercube.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
from scipy.stats import norm

from ..errors import InputError

__all__ = ["GaussianProcess", "expected_improvement", "latin_hypercube", "BayesOptResult", "bayes_opt"]


class GaussianProcess:
    """Exact GP regression with a squared-exponential kernel on inputs in the unit box (see module docstring)."""

    LENGTHSCALES = (0.05, 0.1, 0.2, 0.3, 0.5, 0.8, 1.2, 2.0)
    NOISES = (1e-6, 1e-4, 1e-3, 1e-2, 1e-1)

    def __init__(self) -> None:
        self.x: Optional[np.ndarray] = None
        self.lengthscale = 0.3
        self.noise = 1e-4

    @staticmethod
    def _kernel(a: np.ndarray, b: np.ndarray, ell: float) -> np.ndarray:
        d2 = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
        return np.exp(-0.5 * d2 / (ell * ell))

    def fit(self, x: np.ndarray, y: np.ndarray) -> "GaussianProcess":
        """Fit to inputs ``x`` (n, d) in [0, 1]^d and outputs ``y`` (n,); chooses ℓ and σ_n² by marginal
        likelihood on the grids ``LENGTHSCALES`` × ``NOISES``."""
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        self.y_mean = float(y.mean())
        self.y_std = float(y.std()) if y.std() > 0 else 1.0
        z = (y - self.y_mean) / self.y_std
        best = (-np.inf, None)
        for ell in self.LENGTHSCALES:
            k0 = self._kernel(x, x, ell)
            for nz in self.NOISES:
                try:
                    chol = np.linalg.cholesky(k0 + (nz + 1e-10) * np.eye(len(x)))
                except np.linalg.LinAlgError:
                    continue
                alpha = np.linalg.solve(chol.T, np.linalg.solve(chol, z))
                lml = -0.5 * z @ alpha - np.log(np.diag(chol)).sum()
                if lml > best[0]:
                    best = (lml, (ell, nz, chol, alpha))
        if best[1] is None:
            raise InputError("GP fit failed: the kernel matrix is not positive definite", field="x")
        self.lengthscale, self.noise, self._chol, self._alpha = best[1]
        self.x = x
        return self

    def predict(self, xq: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Posterior mean and standard deviation (in the original units of y) at ``xq`` (m, d)."""
        if self.x is None:
            raise InputError("call fit() first", field="x")
        xq = np.atleast_2d(np.asarray(xq, dtype=np.float64))
        ks = self._kernel(xq, self.x, self.lengthscale)
        mu = ks @ self._alpha
        v = np.linalg.solve(self._chol, ks.T)
        var = np.maximum(1.0 - (v * v).sum(0), 1e-12)
        return mu * self.y_std + self.y_mean, np.sqrt(var) * self.y_std


def expected_improvement(mu: np.ndarray, sd: np.ndarray, best: float, xi: float = 0.0) -> np.ndarray:
    """EI for maximisation: ``(μ − best − ξ)Φ(z) + s·φ(z)``, ``z = (μ − best − ξ)/s`` (0 where s = 0 and μ ≤ best)."""
    mu = np.asarray(mu, dtype=np.float64)
    sd = np.asarray(sd, dtype=np.float64)
    imp = mu - best - xi
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(sd > 0, imp / sd, 0.0)
    ei = imp * norm.cdf(z) + sd * norm.pdf(z)
    return np.where(sd > 0, np.maximum(ei, 0.0), np.maximum(imp, 0.0))


def latin_hypercube(n: int, d: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` points in [0, 1]^d, one in each of n equal strata per dimension."""
    u = (np.arange(n)[:, None] + rng.random((n, d))) / n
    for j in range(d):
        u[:, j] = u[rng.permutation(n), j]
    return u


@dataclass(frozen=True)
class BayesOptResult:
    """``x_best`` (d,) and ``y_best``; ``x`` (n, d) and ``y`` (n,) every evaluation in order; ``n_init``."""

    x_best: np.ndarray
    y_best: float
    x: np.ndarray
    y: np.ndarray
    n_init: int
    lengthscales: List[float] = field(default_factory=list)


def bayes_opt(f: Callable[[np.ndarray], float], bounds: Sequence[Tuple[float, float]], *, n_init: int = 5,
              n_iter: int = 10, x0: Optional[Sequence[np.ndarray]] = None, n_candidates: int = 2000,
              xi: float = 0.01, seed: int = 0, progress: Optional[Callable[[int, float, float], None]] = None
              ) -> BayesOptResult:
    """Maximise ``f`` over the box ``bounds`` with ``n_init`` Latin-hypercube points (after any given ``x0``
    points) and ``n_iter`` GP-EI steps. ``progress(i, y_i, y_best)`` is called after every evaluation.
    Non-finite objective values are recorded as the worst finite value seen (or −1e9)."""
    b = np.asarray(bounds, dtype=np.float64)
    if b.ndim != 2 or b.shape[1] != 2 or np.any(b[:, 1] <= b[:, 0]):
        raise InputError(f"bounds must be a list of (low, high) with high > low, got {bounds}", field="bounds")
    d = b.shape[0]
    rng = np.random.default_rng(seed)
    lo, span = b[:, 0], b[:, 1] - b[:, 0]
    xs: List[np.ndarray] = []
    ys: List[float] = []
    ells: List[float] = []

    def evaluate(u: np.ndarray) -> None:
        val = float(f(lo + span * u))
        if not np.isfinite(val):
            finite = [v for v in ys if np.isfinite(v)]
            val = min(finite) if finite else -1e9
        xs.append(u)
        ys.append(val)
        if progress is not None:
            progress(len(ys) - 1, val, max(ys))

    for p in (x0 or []):
        evaluate(np.clip((np.asarray(p, dtype=np.float64) - lo) / span, 0.0, 1.0))
    for u in latin_hypercube(int(n_init), d, rng):
        evaluate(u)
    gp = GaussianProcess()
    for _ in range(int(n_iter)):
        x_arr, y_arr = np.array(xs), np.array(ys)
        gp.fit(x_arr, y_arr)
        ells.append(gp.lengthscale)
        top = x_arr[np.argsort(-y_arr)[:3]]
        local = np.clip(top[rng.integers(0, len(top), n_candidates // 2)]
                        + rng.normal(0.0, 0.1, (n_candidates // 2, d)), 0.0, 1.0)
        cand = np.vstack([rng.random((n_candidates - n_candidates // 2, d)), local])
        mu, sd = gp.predict(cand)
        ei = expected_improvement(mu, sd, float(y_arr.max()), xi * gp.y_std)
        evaluate(cand[int(np.argmax(ei))])
    x_arr, y_arr = np.array(xs), np.array(ys)
    i = int(np.argmax(y_arr))
    return BayesOptResult(lo + span * x_arr[i], float(y_arr[i]), lo + span * x_arr, y_arr,
                          int(n_init) + len(x0 or []), ells)
