"""Graph-level LNP steps as pure numpy/networkx functions: noise pruning of synapses, the Lyapunov matrix,
betweenness-based neuron removal, eigenvector delocalisation by added edges, inverse participation ratios.

Conventions: ``W[i, j]`` is the synapse from neuron j to neuron i (torch ``Linear`` layout); a synapse exists where
``W[i, j] != 0``. ``A`` is the linearised dynamics matrix (1/s) of :func:`toolchain.prune.lyapunov.linearise`,
whose off-diagonal part ``L = A + D`` has the sparsity pattern of W. Self-connections (the diagonal) are never
pruned nor added: they are left as they are.

**Noise pruning** (Moore & Chaudhuri, NeurIPS 2020, extended by LNP). With ``C`` the stationary covariance of
``dx = A x dt + dB`` (white noise of unit intensity), i.e. the solution of ``A C + C Aᵀ + I = 0``, the importance of
synapse ij is ``s_ij = |L_ij|·(C_ii + C_jj − 2·sign(L_ij)·C_ij)`` (≥ 0 since C is positive semi-definite). We use
the *effective* weight ``L_ij = κ_i W_ij g_j`` of the linearised system (the weights the covariance argument is
about; its sign is the sign of W_ij since g ≥ 0): a synapse whose source neuron is silent under noise (g = 0)
has no linear effect and scores 0. If A is not stable (an eigenvalue with real part ≥ 0) the equation has no
positive-definite solution; we then solve it for ``A − (ρ + margin)·I`` where ρ is the largest real part, and
report the shift. Keep probabilities ``p_ij = clip(c·s_ij·f_ij, p_min, 1)``, with c found by bisection so that
``Σ p_ij`` equals the target synapse count; survivors are rescaled by ``min(1/p_ij, max_rescale)`` (so the
pruned network equals the dense one in expectation wherever the cap does not bind).

**Lyapunov matrix (ours).** ``Λ_ij = 2λ_iλ_j/(λ_i + λ_j)`` on connected pairs, from the per-neuron exponents λ of
:func:`toolchain.prune.lyapunov.local_exponents`. Sign handling: for two exponents of the same sign this is the
signed harmonic mean (its magnitude is the harmonic mean of |λ_i| and |λ_j|, a rate in 1/s); for exponents of
opposite sign or a zero exponent the formula is undefined or unbounded and we set ``Λ_ij = 0`` (a marginal
pair). The factor on the keep probability is ``f_ij = (Λ_ref / max(|Λ_ij|, Λ_floor))^γ`` with Λ_ref the median of
|Λ| over connected pairs and ``Λ_floor = floor_fraction·Λ_ref``: synapses between slowly contracting (long memory)
neurons are favoured, synapses between fast-forgetting neurons are pruned first; ``γ = 0`` switches it off.

**Delocalisation (ours).** The inverse participation ratio ``IPR(v) = Σ|v_i|⁴ / (Σ|v_i|²)²`` of a right
eigenvector lies in [1/N, 1]; ``N·IPR`` is O(1) for a delocalised vector and O(N) for one localised on a few
neurons. :func:`delocalise` looks at the ``n_leading`` eigenvectors of A with the largest real parts. While their
mean ``N·IPR`` exceeds ``target`` (by default the dense network's) and the budget of added synapses is not spent,
it takes the most localised vector v (eigenvalue μ), its *centre* (the fewest neurons holding half of its mass)
and adds synapses j -> i from centre neurons j to neurons i outside it, using the dense network's weights for those
pairs (a regrown synapse of the dense network, never a new value). Candidates are ranked by the first-order mass
the synapse moves onto i, ``|L_ij|·|v_j| / |μ − A_ii|``, divided by ``1 + k_i/mean(k)`` (k: degree) so that weakly
connected targets come first. A batch is kept only if the mean IPR of the leading vectors decreases. Linking the
(well connected) centre to weakly connected neurons raises the local degree heterogeneity
``h_i = mean_{j ∈ N(i)} |k_i − k_j|`` around the centre and opens paths along which the mode spreads. In a
network with heterogeneous time constants the leading modes sit on the slowest neurons; the gap term favours
targets with similar time constants, which the mode spreads onto most.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, List, Optional, Tuple

import networkx as nx
import numpy as np
import scipy.linalg

from ..errors import InputError

__all__ = ["noise_covariance", "noise_prune_scores", "keep_probabilities", "NoisePruneResult", "noise_prune",
           "lyapunov_matrix", "lyapunov_factor", "betweenness", "remove_low_betweenness",
           "inverse_participation_ratio", "leading_eigenvectors", "mean_leading_ipr", "local_degree_heterogeneity",
           "DelocaliseResult", "delocalise"]


def _square(a: np.ndarray, name: str) -> np.ndarray:
    m = np.asarray(a, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise InputError(f"must be a square matrix, got shape {m.shape}", field=name)
    if not np.all(np.isfinite(m)):
        raise InputError("contains NaN or infinite values", field=name)
    return m


# ------------------------------------------------------------------------------------------- noise pruning
def noise_covariance(a: np.ndarray, margin: float = 1.0) -> Tuple[np.ndarray, float]:
    """``(C, shift)``: C solves ``(A − shift·I) C + C (A − shift·I)ᵀ + I = 0``; ``shift = 0`` when A is stable,
    else ``max Re eig(A) + margin`` (1/s). C is symmetrised against round-off."""
    a = _square(a, "A")
    rho = float(np.max(np.linalg.eigvals(a).real))
    shift = 0.0 if rho < 0 else rho + float(margin)
    a_s = a - shift * np.eye(a.shape[0])
    c = scipy.linalg.solve_continuous_lyapunov(a_s, -np.eye(a.shape[0]))
    return 0.5 * (c + c.T), shift


def noise_prune_scores(l_eff: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """``s_ij = |L_ij|·(C_ii + C_jj − 2·sign(L_ij)·C_ij)`` for existing off-diagonal synapses, else 0 (≥ 0)."""
    l_eff = _square(l_eff, "L")
    c = _square(cov, "C")
    d = np.diag(c)
    s = np.abs(l_eff) * (d[:, None] + d[None, :] - 2.0 * np.sign(l_eff) * c)
    s = np.maximum(s, 0.0)
    np.fill_diagonal(s, 0.0)
    return s


def keep_probabilities(scores: np.ndarray, candidates: np.ndarray, n_keep: float, p_min: float = 0.02
                       ) -> Tuple[np.ndarray, float]:
    """``(p, c)``: ``p = clip(c·scores, p_min, 1)`` on ``candidates`` (0 elsewhere) with ``Σ p = n_keep``
    (bisection on c). When ``n_keep ≤ p_min·#candidates`` every candidate gets p_min; when it is at least the
    number of candidates, every candidate gets 1."""
    cand = np.asarray(candidates, dtype=bool)
    s = np.where(cand, np.maximum(np.asarray(scores, dtype=np.float64), 0.0), 0.0)
    m = int(cand.sum())
    if not 0 <= p_min <= 1:
        raise InputError(f"must be in [0, 1], got {p_min}", field="p_min")
    p = np.zeros_like(s)
    if m == 0:
        return p, 0.0
    if n_keep >= m:
        p[cand] = 1.0
        return p, float("inf")
    if n_keep <= p_min * m or not np.any(s > 0):
        p[cand] = max(p_min, n_keep / m)
        return p, 0.0

    def total(c: float) -> float:
        return float(np.clip(c * s[cand], p_min, 1.0).sum())

    lo, hi = 0.0, 1.0 / max(s[cand][s[cand] > 0].min(), 1e-300)
    while total(hi) < n_keep:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if total(mid) < n_keep:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-12 * hi:
            break
    c = 0.5 * (lo + hi)
    p[cand] = np.clip(c * s[cand], p_min, 1.0)
    return p, c


@dataclass(frozen=True)
class NoisePruneResult:
    """``weights``: pruned and rescaled W; ``mask``: kept synapses; ``prob``: keep probabilities;
    ``scores``: importance s_ij (before the Lyapunov factor); ``covariance``: C; ``shift``: the stabilising
    shift applied to A (0 when A was stable); ``n_before``/``n_after``: synapse counts."""

    weights: np.ndarray
    mask: np.ndarray
    prob: np.ndarray
    scores: np.ndarray
    covariance: np.ndarray
    shift: float
    n_before: int
    n_after: int


def noise_prune(w: np.ndarray, a: np.ndarray, n_keep: float, *, p_min: float = 0.02, max_rescale: float = 4.0,
                factor: Optional[np.ndarray] = None, rng: Optional[np.random.Generator] = None
                ) -> NoisePruneResult:
    """Noise pruning of the off-diagonal synapses of ``w`` to about ``n_keep`` synapses (see module docstring).

    ``a``: linearised A (its off-diagonal part gives L); ``factor``: optional multiplicative factor on the scores
    (the Lyapunov factor, same shape); ``rng``: the Bernoulli draws. The diagonal of ``w`` is kept unchanged.
    """
    w = _square(w, "W")
    a = _square(a, "A")
    if a.shape != w.shape:
        raise InputError(f"A has shape {a.shape}, W has {w.shape}", field="A")
    if max_rescale < 1:
        raise InputError(f"must be >= 1, got {max_rescale}", field="max_rescale")
    rng = rng if rng is not None else np.random.default_rng(0)
    off = ~np.eye(w.shape[0], dtype=bool)
    cand = (w != 0) & off
    l_eff = np.where(off, a, 0.0)
    cov, shift = noise_covariance(a)
    scores = noise_prune_scores(l_eff, cov)
    weighted = scores if factor is None else scores * np.asarray(factor, dtype=np.float64)
    prob, _ = keep_probabilities(weighted, cand, n_keep, p_min)
    keep = cand & (rng.random(w.shape) < prob)
    scale = np.minimum(1.0 / np.where(prob > 0, prob, 1.0), max_rescale)
    new_w = np.where(keep, w * scale, 0.0)
    new_w[~off] = np.diag(w)
    return NoisePruneResult(new_w, keep | ((w != 0) & ~off), prob, scores, cov, shift, int(cand.sum()),
                            int(keep.sum()))


def lyapunov_matrix(local: np.ndarray, mask: Optional[np.ndarray] = None) -> np.ndarray:
    """``Λ_ij = 2λ_iλ_j/(λ_i + λ_j)`` where λ_i, λ_j share their sign, 0 where they do not or one is 0 (ours,
    module docstring); restricted to ``mask`` (connected pairs) when given."""
    lam = np.asarray(local, dtype=np.float64).reshape(-1)
    li, lj = lam[:, None], lam[None, :]
    same = (li * lj) > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        h = np.where(same, 2.0 * li * lj / np.where(same, li + lj, 1.0), 0.0)
    if mask is not None:
        h = np.where(np.asarray(mask, dtype=bool), h, 0.0)
    return h


def lyapunov_factor(lam_matrix: np.ndarray, mask: np.ndarray, gamma: float = 1.0,
                    floor_fraction: float = 0.05) -> np.ndarray:
    """``f_ij = (Λ_ref / max(|Λ_ij|, floor_fraction·Λ_ref))^γ`` on ``mask``, 1 elsewhere (module docstring)."""
    m = np.asarray(mask, dtype=bool)
    mag = np.abs(np.asarray(lam_matrix, dtype=np.float64))
    if not np.any(m) or gamma == 0:
        return np.ones_like(mag)
    vals = mag[m]
    ref = float(np.median(vals[vals > 0])) if np.any(vals > 0) else 1.0
    f = (ref / np.maximum(mag, floor_fraction * ref)) ** float(gamma)
    return np.where(m, f, 1.0)


# ---------------------------------------------------------------------------------------- neuron removal
def _digraph(w: np.ndarray, weighted: bool) -> nx.DiGraph:
    g = nx.DiGraph()
    n = w.shape[0]
    g.add_nodes_from(range(n))
    rows, cols = np.nonzero(w)
    sel = rows != cols
    rows, cols = rows[sel], cols[sel]
    mag = np.abs(w[rows, cols])
    ref = float(mag.mean()) if mag.size else 1.0
    if weighted:
        g.add_weighted_edges_from(((int(j), int(i), ref / float(m)) for i, j, m in zip(rows, cols, mag)),
                                  weight="distance")
    else:
        g.add_edges_from((int(j), int(i)) for i, j in zip(rows, cols))
    return g


def betweenness(w: np.ndarray, *, k: Optional[int] = None, weighted: bool = True, seed: int = 0) -> np.ndarray:
    """Betweenness centrality (N,) of the synapse graph (edge j -> i for ``W[i, j] != 0``), networkx, normalised.

    ``weighted``: path length of a synapse is ``mean|W| / |W_ij|`` (strong synapses are short). ``k``: number of
    sampled source neurons (networkx's estimator; None or ≥ N: exact)."""
    w = _square(w, "W")
    n = w.shape[0]
    g = _digraph(w, weighted)
    kk = None if k is None or k >= n else int(k)
    bc = nx.betweenness_centrality(g, k=kk, weight="distance" if weighted else None, normalized=True, seed=seed)
    return np.array([bc[i] for i in range(n)])


def remove_low_betweenness(w: np.ndarray, n_remove: int, *, k: Optional[int] = None, weighted: bool = True,
                           seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """``(keep, centrality)``: indices (sorted) of the neurons left after removing the ``n_remove`` with the
    lowest betweenness; ties are broken by the smaller total synaptic strength ``Σ|W_i·| + Σ|W_·i|``."""
    w = _square(w, "W")
    n = w.shape[0]
    if not 0 <= n_remove < n:
        raise InputError(f"must be in [0, {n - 1}], got {n_remove}", field="n_remove")
    bc = betweenness(w, k=k, weighted=weighted, seed=seed)
    strength = np.abs(w).sum(0) + np.abs(w).sum(1)
    order = np.lexsort((strength, bc))  # primary key: betweenness, then strength
    keep = np.sort(order[int(n_remove):])
    return keep, bc


# ------------------------------------------------------------------------------------------- delocalisation
def inverse_participation_ratio(v: np.ndarray) -> np.ndarray:
    """IPR of each column of ``v`` (or of a vector): ``Σ|v|⁴ / (Σ|v|²)²`` ∈ [1/N, 1]."""
    x = np.abs(np.asarray(v))
    if x.ndim == 1:
        x = x[:, None]
    p2 = (x ** 2).sum(0)
    return (x ** 4).sum(0) / np.where(p2 > 0, p2 ** 2, 1.0)


def leading_eigenvectors(a: np.ndarray, n_leading: int = 5) -> Tuple[np.ndarray, np.ndarray]:
    """The ``n_leading`` eigenvalues of A with the largest real parts and their right eigenvectors (columns)."""
    vals, vecs = np.linalg.eig(_square(a, "A"))
    order = np.argsort(-vals.real, kind="stable")[: max(1, int(n_leading))]
    return vals[order], vecs[:, order]


def mean_leading_ipr(a: np.ndarray, n_leading: int = 5) -> float:
    """Mean IPR of the leading right eigenvectors of A."""
    _, vecs = leading_eigenvectors(a, n_leading)
    return float(inverse_participation_ratio(vecs).mean())


def local_degree_heterogeneity(w: np.ndarray) -> float:
    """Mean over neurons of ``mean_{j ∈ N(i)} |k_i − k_j|``, with k the total (in + out) degree and N(i) the
    neighbours of i in either direction (self-loops ignored); neurons without neighbours count 0."""
    m = (np.asarray(w) != 0)
    m = m & ~np.eye(m.shape[0], dtype=bool)
    und = m | m.T
    k = und.sum(1).astype(np.float64)
    deg = np.where(k > 0, k, 1.0)
    diff = np.abs(k[:, None] - k[None, :]) * und
    return float((diff.sum(1) / deg).mean())


@dataclass(frozen=True)
class DelocaliseResult:
    """``weights``: W with the added synapses; ``added``: list of (i, j) synapses j -> i added;
    ``ipr_before``/``ipr_after``: mean IPR of the leading eigenvectors; ``target``: the N·IPR aimed at;
    ``heterogeneity_before``/``_after``: :func:`local_degree_heterogeneity`; ``budget``."""

    weights: np.ndarray
    added: List[Tuple[int, int]]
    ipr_before: float
    ipr_after: float
    target: float
    heterogeneity_before: float
    heterogeneity_after: float
    budget: int
    history: List[float] = field(default_factory=list)


def delocalise(w: np.ndarray, pool: np.ndarray, a_of: Callable[[np.ndarray], np.ndarray], *, budget: int,
               target_nipr: Optional[float] = None, n_leading: int = 5, batch: int = 4, centre_mass: float = 0.5,
               max_rejects: int = 3) -> DelocaliseResult:
    """Add at most ``budget`` synapses from ``pool`` (the dense network's weights on the same neurons) so that the
    leading eigenvectors of ``A = a_of(W)`` become less localised (module docstring).

    ``target_nipr``: stop once the mean ``N·IPR`` of the leading vectors is at or below it (default: never stop
    early for this reason). ``batch``: synapses added per accepted step. A batch that does not lower the mean IPR
    is rejected, its candidates are skipped, and after ``max_rejects`` rejections in a row the search stops.
    """
    w = _square(w, "W").copy()
    pool = _square(pool, "pool")
    if pool.shape != w.shape:
        raise InputError(f"pool has shape {pool.shape}, W has {w.shape}", field="pool")
    n = w.shape[0]
    off = ~np.eye(n, dtype=bool)
    het0 = local_degree_heterogeneity(w)
    ipr0 = mean_leading_ipr(a_of(w), n_leading)
    cur = ipr0
    history = [ipr0]
    added: List[Tuple[int, int]] = []
    tried = np.zeros((n, n), dtype=bool)
    rejects = 0
    target = float("-inf") if target_nipr is None else float(target_nipr)
    a_zero = a_of(np.zeros_like(w))
    l_pool = a_of(pool) - a_zero  # the linear map's off-diagonal for every pool synapse (A is affine in W)
    while len(added) < budget and n * cur > target and rejects < max_rejects:
        a_cur = a_of(w)
        vals, vecs = leading_eigenvectors(a_cur, n_leading)
        iprs = inverse_participation_ratio(vecs)
        pick = int(np.argmax(iprs))
        mu = vals[pick]
        v = np.abs(vecs[:, pick]) ** 2
        v = v / v.sum()
        order = np.argsort(-v, kind="stable")
        n_centre = int(np.searchsorted(np.cumsum(v[order]), centre_mass) + 1)
        centre = order[:max(1, n_centre)]
        in_centre = np.zeros(n, dtype=bool)
        in_centre[centre] = True
        und = (w != 0) & off
        degree = (und | und.T).sum(1).astype(np.float64)
        # candidate synapses centre j -> target i (W[i, j]), target outside the centre, present in the pool
        cand = (~in_centre)[:, None] & in_centre[None, :] & (w == 0) & (pool != 0) & off & ~tried
        if not np.any(cand):
            break
        rows, cols = np.nonzero(cand)
        # first-order mass that the synapse moves onto the target, |L_ij|·|v_j| / |μ − A_ii|, discounted for
        # well-connected targets (low-degree targets raise the local degree heterogeneity around the centre)
        gap = np.maximum(np.abs(mu - np.diag(a_cur)[rows]), 1e-9)
        spread = np.abs(l_pool[rows, cols]) * np.sqrt(v[cols]) / gap
        score = spread / (1.0 + degree[rows] / max(degree.mean(), 1.0))
        key = np.argsort(-score, kind="stable")
        take = min(batch, budget - len(added))
        chosen = [(int(rows[q]), int(cols[q])) for q in key[:take]]
        trial = w.copy()
        for i, j in chosen:
            trial[i, j] = pool[i, j]
            tried[i, j] = True
        new = mean_leading_ipr(a_of(trial), n_leading)
        if new < cur:
            w, cur = trial, new
            added.extend(chosen)
            history.append(new)
            rejects = 0
        else:
            rejects += 1
    return DelocaliseResult(w, added, ipr0, cur, target, het0, local_degree_heterogeneity(w), int(budget), history)
