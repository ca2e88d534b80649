"""Dynamics of a recurrent spiking layer for LNP: noise-driven runs, rate gains, linearisation, Lyapunov spectra.

All functions are pure numpy over a :class:`RecurrentNet` record. The network is the recurrent layer of the HRSNN
in the discrete-time convention of :mod:`toolchain.nn.functional` (one step = ``dt`` seconds; ``α = 1 − dt/τ``)::

    x[t]   = d[t] + W · s[t−1]                         (d: external drive per step; W[i, j]: synapse j -> i)
    I[t]   = α_s ⊙ I[t−1] + x[t]                       (CubaLIF; for LIF: I[t] = x[t])
    U[t]   = α_m ⊙ (U[t−1] − θ ⊙ s[t−1]) + I[t]        (reset "subtract";  "zero": α_m ⊙ U[t−1] ⊙ (1 − s[t−1]) + I[t])
    s[t]   = H(U[t] − θ)                               (strict: a spike when U > θ)

with zero state before t = 0. Units: U, θ and W in the network's voltage unit (W per spike), d and I in voltage
units per step, τ in seconds, rates in Hz.

**Noise drive (ours).** :func:`noise_drive` draws Gaussian white noise per neuron and step and scales it by each
neuron's own filter gains, so that the *free* membrane (no spikes, no recurrence) of every neuron, whatever its
time constants, has mean ``noise_mean·θ`` and standard deviation ``noise_std·θ``. With ``h_i`` the impulse response
from ``d`` to ``U`` of neuron i, ``G0_i = Σ_k h_i[k]`` (DC gain, = 1/((1−α_s)(1−α_m)) for CubaLIF) and
``G2_i = Σ_k h_i[k]²``, the drive is ``d_i[t] = θ_i·(noise_mean/G0_i + noise_std·ξ_i[t]/√G2_i)``, ξ ~ N(0, 1).

**Rate gain (ours).** :func:`rate_gain` measures the open-loop f–I slope of every neuron at its operating point in
the noise-driven network: one run of the recurrent network records each neuron's total input ``x_i[t]``; then all
neurons are re-run *uncoupled*, driven by that recorded input shifted by ``±δ·θ_i/G0_i`` (which moves the free
membrane by ``±δ·θ_i``), with common random numbers. Replaying the recorded input without a shift reproduces the
network's spikes exactly, so the estimate is the central difference of the neuron's own rate around its network
operating point::

    g_i = (r_i(+δ) − r_i(−δ)) / (2·δ·θ_i)        [Hz per voltage unit of free membrane]

**Linearisation.** With μ the free membrane (what a held input would make U settle to), the rate network
``dμ_i/dt = −μ_i/τ_m,i + κ_i Σ_j W_ij r_j`` linearised at ``r_j = r_j* + g_j δμ_j`` gives

    A = −D + L,   D = diag(1/τ_m),   L = W_eff ⊙ g (column j scaled by g_j),   W_eff = diag(κ) W

where ``κ_i = 1/(1 − α_s,i)`` is the DC gain of the receiving neuron's synaptic current (1 for LIF): the
synaptic filter is taken as quasi-static, only its gain is kept. Units of A: 1/s.

**Lyapunov spectrum.** :func:`lyapunov_spectrum` is Benettin's algorithm over any sequence of per-step Jacobians
(given as products ``J_t @ Q``): ``Q ← qr(J_t Q)``, ``λ_k = Σ_t log|R_kk[t]| / (T·dt)``. :func:`network_lyapunov`
applies it to the *surrogate-smoothed* network: the spike ``H(U − θ)`` is replaced by the Laplace CDF
``S(U − θ)`` whose density ``(1/2β)·exp(−|U − θ|/β)`` is the normalised ``"exp"`` surrogate of
:mod:`toolchain.nn.functional` with width ``β = smoothing·θ``; the smoothed network is run on the noise drive and
its exact Jacobians are used (state (I, U) for CubaLIF: 2N exponents; U for LIF: N). One exponent per neuron
(ours, :func:`local_exponents`): the Lyapunov vectors are orthonormal, so the time-averaged squared entries
``P[s, k] = ⟨Q[s, k]²⟩`` of the state rows s say how much of direction k lives on row s;
``λ_i = Σ_k P_ik λ_k / Σ_k P_ik`` with ``P_ik`` the participation on the neuron's *membrane* row (U: the state the
neuron's spikes are read from). For uncoupled neurons far below threshold this is ``log(α_m,i)/dt ≈ −1/τ_m,i``
(LIF, and CubaLIF whenever τ_m,i > τ_s,i). Until issue 17 the synaptic-current rows were averaged in as well; in the
benchmark's CubaLIF networks (τ_s of 1–5 ms, α_s down to 0) that made every neuron's exponent mostly its synaptic
filter's (median −670 1/s against a slowest membrane decay of −34 1/s) rather than how long the neuron remembers.

**Leak reference (ours).** ``leak`` holds, per neuron, the largest exponent of its own *uncoupled* tangent map
(W = 0) along the same smoothed trajectory: ``max(log α_s,i, ⟨log|∂U_i[t]/∂U_i[t−1]|⟩_t)/dt`` (the current row is a
pure leak, the membrane row the leak times the reset/threshold factor of the step). ``LyapunovSpectrum.excess`` =
``λ_max − max_i leak_i`` is how far the recurrent coupling moves the leading exponent from the slowest single-neuron
decay. In a weakly coupled heterogeneous network ``λ_max`` is, to within a few percent, the slowest neuron's leak
(dense HRSNN of the benchmark: λ_max −34.7 1/s, slowest membrane log(α_m)/dt −34.2 1/s), so comparing the raw λ_max
of two networks compares their slowest time constants; the excess compares their coupling.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Dict, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import InputError

__all__ = ["RecurrentNet", "filter_gains", "noise_drive", "simulate", "RateGain", "rate_gain", "linearise",
           "LyapunovSpectrum", "lyapunov_spectrum", "network_lyapunov", "local_exponents", "largest_lyapunov",
           "smooth_spike", "smooth_spike_derivative"]

RESETS = ("subtract", "zero")


@dataclass(frozen=True)
class RecurrentNet:
    """The recurrent layer LNP works on (numpy, float64).

    ``w_rec`` (N, N): ``w_rec[i, j]`` is the synapse from neuron j to neuron i (torch ``Linear`` layout), voltage
    units per spike. ``tau_mem``/``tau_syn`` (N,): time constants in seconds (``tau_syn=None``: LIF neurons, no
    synaptic current state). ``threshold`` (N,): θ > 0. ``dt``: step in seconds; every τ must be ≥ dt so that
    ``α = 1 − dt/τ ∈ [0, 1)``. ``w_in`` (N, n_in): optional input weights, kept in step with neuron removal.
    ``reset``: "subtract" or "zero".
    """

    w_rec: np.ndarray
    tau_mem: np.ndarray
    threshold: np.ndarray
    dt: float
    tau_syn: Optional[np.ndarray] = None
    w_in: Optional[np.ndarray] = None
    reset: str = "subtract"

    def __post_init__(self) -> None:
        w = np.array(self.w_rec, dtype=np.float64)
        if w.ndim != 2 or w.shape[0] != w.shape[1]:
            raise InputError(f"must be a square (N, N) matrix, got shape {w.shape}", field="w_rec")
        n = w.shape[0]
        if not np.all(np.isfinite(w)):
            raise InputError("contains NaN or infinite values", field="w_rec")
        object.__setattr__(self, "w_rec", w)
        dt = float(self.dt)
        if not (dt > 0 and np.isfinite(dt)):
            raise InputError(f"must be a positive number of seconds, got {self.dt}", field="dt")
        object.__setattr__(self, "dt", dt)
        for name in ("tau_mem", "tau_syn", "threshold"):
            v = getattr(self, name)
            if v is None:
                if name != "tau_syn":
                    raise InputError("missing", field=name)
                continue
            a = np.broadcast_to(np.asarray(v, dtype=np.float64), (n,)).copy()
            if not np.all(np.isfinite(a)) or np.any(a <= 0):
                raise InputError(f"must be finite and > 0 for all {n} neurons", field=name)
            if name != "threshold" and np.any(a < dt * (1 - 1e-9)):
                raise InputError(f"must be >= dt = {dt:g} s (smallest is {a.min():g} s)", field=name)
            object.__setattr__(self, name, a)
        if self.w_in is not None:
            wi = np.array(self.w_in, dtype=np.float64)
            if wi.ndim != 2 or wi.shape[0] != n:
                raise InputError(f"must have shape (N={n}, n_in), got {wi.shape}", field="w_in")
            object.__setattr__(self, "w_in", wi)
        if self.reset not in RESETS:
            raise InputError(f"must be one of {RESETS}, got {self.reset!r}", field="reset")

    @property
    def n(self) -> int:
        """Number of neurons N."""
        return self.w_rec.shape[0]

    @property
    def cuba(self) -> bool:
        """True for current-based neurons (a synaptic current state per neuron)."""
        return self.tau_syn is not None

    @property
    def alpha_mem(self) -> np.ndarray:
        """Membrane leak per step ``α_m = 1 − dt/τ_mem`` (N,)."""
        return 1.0 - self.dt / self.tau_mem

    @property
    def alpha_syn(self) -> np.ndarray:
        """Synaptic-current leak per step ``α_s = 1 − dt/τ_syn`` (N,); zeros for LIF (no current state)."""
        return np.zeros(self.n) if self.tau_syn is None else 1.0 - self.dt / self.tau_syn

    @property
    def synapse_gain(self) -> np.ndarray:
        """``κ = 1/(1 − α_s)``: DC gain of the synaptic current filter (N,); ones for LIF."""
        return 1.0 / (1.0 - self.alpha_syn)

    @property
    def mask(self) -> np.ndarray:
        """Boolean (N, N): where a recurrent synapse exists (``w_rec != 0``)."""
        return self.w_rec != 0

    @property
    def n_synapses(self) -> int:
        """Number of non-zero recurrent synapses."""
        return int(np.count_nonzero(self.w_rec))

    def subset(self, keep: Sequence[int]) -> "RecurrentNet":
        """The sub-network of neurons ``keep`` (in that order): rows and columns of W, rows of w_in."""
        k = np.asarray(keep, dtype=np.int64)
        return RecurrentNet(self.w_rec[np.ix_(k, k)], self.tau_mem[k], self.threshold[k], self.dt,
                            None if self.tau_syn is None else self.tau_syn[k],
                            None if self.w_in is None else self.w_in[k], self.reset)

    def with_weights(self, w_rec: np.ndarray) -> "RecurrentNet":
        """The same neurons with another recurrent weight matrix."""
        return replace(self, w_rec=np.asarray(w_rec, dtype=np.float64))

    def with_taus(self, tau_mem: np.ndarray, tau_syn: Optional[np.ndarray] = None) -> "RecurrentNet":
        """The same network with new time constants (``tau_syn`` unchanged when None)."""
        return replace(self, tau_mem=np.asarray(tau_mem, dtype=np.float64),
                       tau_syn=self.tau_syn if tau_syn is None else np.asarray(tau_syn, dtype=np.float64))


# --------------------------------------------------------------------------------------------- noise drive
def filter_gains(net: RecurrentNet, max_steps: int = 20000) -> Tuple[np.ndarray, np.ndarray]:
    """``(G0, G2)`` per neuron: the sum and the sum of squares of the impulse response from the drive ``d`` to the
    free membrane ``U`` (no spikes). G0 is exact (closed form); G2 sums the response over
    ``min(max_steps, 30·max τ/dt)`` steps."""
    a_m, a_s = net.alpha_mem, net.alpha_syn
    g0 = 1.0 / ((1.0 - a_m) * (1.0 - a_s))
    tau_max = max(float(net.tau_mem.max()), 0.0 if net.tau_syn is None else float(net.tau_syn.max()))
    k = int(min(max_steps, max(10, np.ceil(30 * tau_max / net.dt))))
    i = np.ones(net.n)
    u = np.zeros(net.n)
    g2 = np.zeros(net.n)
    for t in range(k):
        if t > 0:
            i = a_s * i
        u = a_m * u + i
        g2 += u * u
    return g0, g2


def noise_drive(net: RecurrentNet, steps: int, *, noise_mean: float = 0.5, noise_std: float = 0.5,
                batch: Optional[int] = None, seed: Union[int, np.random.Generator] = 0) -> np.ndarray:
    """Gaussian drive (steps, N) (or (batch, steps, N)) whose free-membrane response has mean ``noise_mean·θ`` and
    standard deviation ``noise_std·θ`` for every neuron (see the module docstring)."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    g0, g2 = filter_gains(net)
    shape = (int(steps), net.n) if batch is None else (int(batch), int(steps), net.n)
    xi = rng.standard_normal(shape)
    return net.threshold * (noise_mean / g0 + noise_std * xi / np.sqrt(g2))


# ---------------------------------------------------------------------------------------------- simulation
def smooth_spike(x: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """Laplace CDF ``S(x) = ½·exp(x/β)`` (x < 0), ``1 − ½·exp(−x/β)`` (x ≥ 0): a smooth spike of width β."""
    e = 0.5 * np.exp(-np.abs(x) / beta)
    return np.where(x < 0, e, 1.0 - e)


def smooth_spike_derivative(x: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """``S'(x) = exp(−|x|/β) / (2β)``: the ``"exp"`` surrogate, normalised to unit area."""
    return np.exp(-np.abs(x) / beta) / (2.0 * beta)


def simulate(net: RecurrentNet, drive: np.ndarray, *, smoothing: Optional[float] = None,
             w_rec: Optional[np.ndarray] = None, record_input: bool = False) -> Dict[str, np.ndarray]:
    """Run the recurrent layer on ``drive`` (T, N) or (B, T, N) from the zero state.

    ``smoothing=None``: spiking network (``s = H(U − θ)``, strict). ``smoothing=β/θ``: the surrogate-smoothed
    network (``s = S(U − θ)`` with width ``β = smoothing·θ``). ``w_rec`` overrides the recurrent weights (zeros:
    uncoupled neurons). Returns ``{"s", "u", "i"}`` arrays of the drive's shape (``"i"`` only for CubaLIF) and,
    with ``record_input``, ``"x"``: the total input ``d[t] + W·s[t−1]`` of every step.
    """
    d = np.asarray(drive, dtype=np.float64)
    squeeze = d.ndim == 2
    if squeeze:
        d = d[None]
    if d.ndim != 3 or d.shape[2] != net.n:
        raise InputError(f"expected (T, N={net.n}) or (B, T, N={net.n}), got {np.shape(drive)}", field="drive")
    w = net.w_rec if w_rec is None else np.asarray(w_rec, dtype=np.float64)
    wt = w.T.copy()
    b, steps, n = d.shape
    a_m, a_s, th = net.alpha_mem, net.alpha_syn, net.threshold
    beta = None if smoothing is None else float(smoothing) * th
    coupled = np.any(w != 0)
    s_out = np.empty_like(d)
    u_out = np.empty_like(d)
    i_out = np.empty_like(d) if net.cuba else None
    x_out = np.empty_like(d) if record_input else None
    i = np.zeros((b, n))
    u = np.zeros((b, n))
    s = np.zeros((b, n))
    for t in range(steps):
        x = d[:, t] + (s @ wt if coupled else 0.0)
        i = a_s * i + x if net.cuba else x
        if net.reset == "subtract":
            u = a_m * (u - th * s) + i
        else:
            u = a_m * u * (1.0 - s) + i
        s = (u > th).astype(np.float64) if beta is None else smooth_spike(u - th, beta)
        s_out[:, t] = s
        u_out[:, t] = u
        if i_out is not None:
            i_out[:, t] = i
        if x_out is not None:
            x_out[:, t] = x
    out = {"s": s_out, "u": u_out}
    if i_out is not None:
        out["i"] = i_out
    if x_out is not None:
        out["x"] = x_out
    if squeeze:
        out = {k: v[0] for k, v in out.items()}
    return out


# ------------------------------------------------------------------------------------------------ rate gain
@dataclass(frozen=True)
class RateGain:
    """Result of :func:`rate_gain`: ``gain`` (N,) in Hz per voltage unit of free membrane, ``rate`` (N,) Hz in the
    noise-driven network, ``rate_plus``/``rate_minus`` (N,) Hz of the shifted open-loop replays, ``delta``."""

    gain: np.ndarray
    rate: np.ndarray
    rate_plus: np.ndarray
    rate_minus: np.ndarray
    delta: float


def rate_gain(net: RecurrentNet, *, steps: int = 2000, transient: int = 200, noise_mean: float = 0.5,
              noise_std: float = 0.5, delta: float = 0.05, seed: int = 0) -> RateGain:
    """Open-loop rate gain of each neuron around its operating point in the noise-driven network (see the module
    docstring): ``g_i = (r_i(+δ) − r_i(−δ)) / (2δθ_i)``; rates count spikes after ``transient`` steps. A negative
    estimate (possible only through spike-count noise) is clipped to 0."""
    if delta <= 0:
        raise InputError(f"must be > 0, got {delta}", field="delta")
    if steps <= transient:
        raise InputError(f"steps={steps} must exceed transient={transient}", field="steps")
    d = noise_drive(net, steps, noise_mean=noise_mean, noise_std=noise_std, seed=seed)
    run = simulate(net, d, record_input=True)
    g0, _ = filter_gains(net)
    shift = delta * net.threshold / g0
    x = run["x"]
    replay = simulate(net, np.stack([x + shift, x - shift]), w_rec=np.zeros((net.n, net.n)))
    dur = (steps - transient) * net.dt
    rate = run["s"][transient:].sum(0) / dur
    r_plus = replay["s"][0, transient:].sum(0) / dur
    r_minus = replay["s"][1, transient:].sum(0) / dur
    gain = (r_plus - r_minus) / (2.0 * delta * net.threshold)
    return RateGain(np.maximum(gain, 0.0), rate, r_plus, r_minus, float(delta))


def linearise(net: RecurrentNet, gain: np.ndarray) -> np.ndarray:
    """``A = −diag(1/τ_m) + diag(κ)·W·diag(g)`` (1/s): the linearised rate dynamics (module docstring)."""
    g = np.asarray(gain, dtype=np.float64)
    if g.shape != (net.n,):
        raise InputError(f"must have shape ({net.n},), got {g.shape}", field="gain")
    return -np.diag(1.0 / net.tau_mem) + (net.synapse_gain[:, None] * net.w_rec) * g[None, :]


# ----------------------------------------------------------------------------------------- Lyapunov spectra
@dataclass(frozen=True)
class LyapunovSpectrum:
    """Benettin result: ``exponents`` (k,) in 1/s, sorted as the QR keeps them (descending up to noise);
    ``participation`` (n_state, k): time-averaged squared entries of the orthonormal Lyapunov vectors;
    ``vectors`` (n_state, k): the last orthonormal basis; ``steps``: measured steps; ``dt``."""

    exponents: np.ndarray
    participation: np.ndarray
    vectors: np.ndarray
    steps: int
    dt: float
    local: Optional[np.ndarray] = field(default=None)
    leak: Optional[np.ndarray] = field(default=None)

    @property
    def max(self) -> float:
        """The largest Lyapunov exponent (1/s)."""
        return float(np.max(self.exponents))

    @property
    def excess(self) -> float:
        """``λ_max − max(leak)`` (1/s): the leading exponent above the slowest uncoupled neuron's (module
        docstring); NaN when no leak reference was measured."""
        if self.leak is None or self.leak.size == 0:
            return float("nan")
        return self.max - float(np.max(self.leak))


def lyapunov_spectrum(jvp: Callable[[int, np.ndarray], np.ndarray], n_state: int, steps: int, dt: float, *,
                      k: Optional[int] = None, transient: int = 0, reortho_every: int = 1,
                      seed: int = 0) -> LyapunovSpectrum:
    """Benettin's algorithm: the ``k`` leading Lyapunov exponents of a sequence of per-step Jacobians.

    ``jvp(t, Q)`` must return ``J_t @ Q`` for step ``t = 0, 1, …, transient + steps − 1`` (and may advance the
    system's state as a side effect; it is called exactly once per step, in order). Every ``reortho_every`` steps
    ``Q R = J Q`` is re-orthonormalised (signs fixed so that ``R_kk > 0``); after the transient,
    ``λ_k = Σ log R_kk / (steps·dt)``. ``participation`` averages ``Q²`` over the measured re-orthonormalisations.
    """
    k = n_state if k is None else int(k)
    if not 1 <= k <= n_state:
        raise InputError(f"k must be in [1, {n_state}], got {k}", field="k")
    if steps < 1 or reortho_every < 1 or transient < 0:
        raise InputError(f"need steps >= 1, reortho_every >= 1, transient >= 0; got {steps}, {reortho_every}, "
                         f"{transient}", field="steps")
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((n_state, k)))
    log_sum = np.zeros(k)
    part = np.zeros((n_state, k))
    n_part = 0
    total = transient + steps
    for t in range(total):
        q = jvp(t, q)
        last = t == total - 1
        if (t + 1) % reortho_every == 0 or last or t + 1 == transient:
            q, r = np.linalg.qr(q)
            diag = np.diag(r).copy()
            sign = np.where(diag < 0, -1.0, 1.0)
            q = q * sign
            if t >= transient:
                with np.errstate(divide="ignore"):
                    log_sum += np.log(np.abs(diag))
                part += q * q
                n_part += 1
    exps = log_sum / (steps * dt)
    return LyapunovSpectrum(exps, part / max(n_part, 1), q, int(steps), float(dt))


def local_exponents(spectrum: LyapunovSpectrum, n_neurons: int) -> np.ndarray:
    """One exponent per neuron: ``λ_i = Σ_k P_ik λ_k / Σ_k P_ik`` with ``P_ik`` the participation of direction k
    on the membrane row of neuron i: the last of the neuron's state rows (rows i, i + N, … for states stacked per
    variable, U last: the U row for LIF, rows (I, U) for CubaLIF; module docstring)."""
    p = spectrum.participation
    if p.shape[0] % n_neurons:
        raise InputError(f"{p.shape[0]} state rows do not split into {n_neurons} neurons", field="n_neurons")
    p_n = p[p.shape[0] - n_neurons:]
    ex = np.where(np.isfinite(spectrum.exponents), spectrum.exponents, -1e6)
    w = p_n.sum(1)
    return (p_n @ ex) / np.where(w > 0, w, 1.0)


def _network_jvp(net: RecurrentNet, drive: np.ndarray, smoothing: float, transient: int = 0
                 ) -> Tuple[Callable[[int, np.ndarray], np.ndarray], Dict[str, np.ndarray]]:
    """``(jvp, state)``: the closure ``jvp(t, Q)`` advances the smoothed network by step t and returns
    ``J_t @ Q``; ``state["log_diag"]`` sums ``log|diag_U[t]|`` (the membrane's own factor below) over the steps
    ``t ≥ transient`` (the leak reference of the module docstring).

    State z = (I, U) for CubaLIF (I rows first), U for LIF. With ``σ' = S'(U[t−1] − θ)``::

        dI[t] = α_s dI[t−1] + W (σ' ⊙ dU[t−1])
        dU[t] = α_m ⊙ (1 − θσ') ⊙ dU[t−1] + dI[t]              (subtract reset)
        dU[t] = α_m ⊙ (1 − S − U σ') ⊙ dU[t−1] + dI[t]         (zero reset)
    """
    n = net.n
    w = net.w_rec
    wt = w.T.copy()
    a_m, a_s, th = net.alpha_mem, net.alpha_syn, net.threshold
    beta = float(smoothing) * th
    st = {"i": np.zeros(n), "u": np.zeros(n), "s": np.zeros(n), "ds": np.zeros(n), "log_diag": np.zeros(n)}

    def jvp(t: int, q: np.ndarray) -> np.ndarray:
        u_prev, s_prev, ds_prev = st["u"], st["s"], st["ds"]
        # tangent map first (it uses the state of step t−1)
        if net.cuba:
            qi, qu = q[:n], q[n:]
            syn = w @ (ds_prev[:, None] * qu)
            new_qi = a_s[:, None] * qi + syn
        else:
            qu = q
            new_qi = w @ (ds_prev[:, None] * qu)
        if net.reset == "subtract":
            diag = a_m * (1.0 - th * ds_prev)
        else:
            diag = a_m * (1.0 - s_prev - u_prev * ds_prev)
        new_qu = diag[:, None] * qu + new_qi
        if t >= transient:
            st["log_diag"] += np.log(np.maximum(np.abs(diag), 1e-300))
        # state update
        x = drive[t] + s_prev @ wt
        i = a_s * st["i"] + x if net.cuba else x
        if net.reset == "subtract":
            u = a_m * (u_prev - th * s_prev) + i
        else:
            u = a_m * u_prev * (1.0 - s_prev) + i
        st["i"], st["u"] = i, u
        st["s"] = smooth_spike(u - th, beta)
        st["ds"] = smooth_spike_derivative(u - th, beta)
        return np.concatenate([new_qi, new_qu]) if net.cuba else new_qu

    return jvp, st


def network_lyapunov(net: RecurrentNet, *, steps: int = 1000, transient: int = 200, k: Optional[int] = None,
                     noise_mean: float = 0.5, noise_std: float = 0.5, smoothing: float = 0.2,
                     reortho_every: int = 4, seed: int = 0) -> LyapunovSpectrum:
    """Lyapunov spectrum of the surrogate-smoothed network driven by noise (module docstring). The state has
    2N dimensions for CubaLIF and N for LIF; ``k`` leading exponents (all by default). The result's ``local``
    holds one exponent per neuron (:func:`local_exponents`), ``leak`` the uncoupled reference per neuron."""
    if smoothing <= 0:
        raise InputError(f"must be > 0, got {smoothing}", field="smoothing")
    n_state = 2 * net.n if net.cuba else net.n
    d = noise_drive(net, transient + steps, noise_mean=noise_mean, noise_std=noise_std, seed=seed)
    jvp, st = _network_jvp(net, d, smoothing, transient)
    spec = lyapunov_spectrum(jvp, n_state, steps, net.dt, k=k, transient=transient, reortho_every=reortho_every,
                             seed=seed + 1)
    leak = st["log_diag"] / (steps * net.dt)
    if net.cuba:
        with np.errstate(divide="ignore"):
            leak = np.maximum(leak, np.log(net.alpha_syn) / net.dt)
    return replace(spec, local=local_exponents(spec, net.n), leak=leak)


def largest_lyapunov(net: RecurrentNet, **kwargs) -> LyapunovSpectrum:
    """Only the leading exponent (k = 1) of :func:`network_lyapunov`; its ``participation[:, 0]`` says which
    neurons carry the most expanding (least contracting) direction."""
    kwargs.setdefault("k", 1)
    return network_lyapunov(net, **kwargs)
