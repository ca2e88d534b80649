"""HRSNN: a heterogeneous recurrent spiking network (the network LNP prunes; Chakraborty et al., ICLR 2024).

``HRSNN(n_in, n_rec, n_out)`` is a :class:`~toolchain.nn.SpikingNet` of four modules (names in brackets)::

    [inp] nn.Linear(n_in, n_rec, bias=False)      input synapses
    [rec] Recurrent(CubaLIF(n_rec) | LIF(n_rec))   recurrent layer, I[t] = x[t] + W_rec·s[t−1]
    [out] nn.Linear(n_rec, n_out)                  dense readout synapses (+ bias)
    [readout] LI(n_out)                            leaky-integrator readout (default α = 1/4096: memoryless)

so it trains with the project's BPTT trainer (and STOP when ``neuron="lif"``: STOP trains LIF, not CubaLIF) and
exports to NIR with :func:`toolchain.nn.to_graph` (``rec`` becomes a neuron node plus a ``rec_rec`` weight node
in a cycle). Per-neuron time constants are drawn from configurable distributions (:func:`sample_timescales`):
``α_mem = 1 − dt/τ_mem``, ``α_syn = 1 − dt/τ_syn`` (every τ ≥ dt). Neuron equations: see
:class:`toolchain.nn.CubaLIF` (U and θ in voltage units, x in voltage units per step).

Sparsity: the buffer ``rec_mask`` (n_rec, n_rec, bool) says which recurrent synapses exist. It is applied in
place to ``rec.rec.weight`` before every :meth:`forward` and :meth:`step`, and by :meth:`apply_masks_`, so a
pruned synapse stays exactly zero during training whatever the optimiser does to it (its gradient may be non-zero;
its value is re-zeroed before it is ever used). The dense network has no self-connections (zero diagonal).

LNP interface: :meth:`recurrent_net` reads the recurrent layer out as a numpy
:class:`~toolchain.prune.lyapunov.RecurrentNet`; :meth:`pruned` builds a smaller HRSNN from a pruned
``RecurrentNet`` and the indices of the surviving neurons (input rows and readout columns follow).
:meth:`to_graph` exports to the IR with the recurrent weight stored sparse (:class:`~toolchain.ir.Csr`) when it
has zeros.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import nn

from .layers import Recurrent
from .net import SpikingNet
from .neurons import LI, LIF, CubaLIF

__all__ = ["HRSNN", "sample_timescales", "TIMESCALE_DISTRIBUTIONS"]

READOUT_ALPHA_MIN = 1.0 / 4096.0
TIMESCALE_DISTRIBUTIONS = ("loguniform", "lognormal", "gamma", "uniform", "constant")
DistSpec = Union[Tuple[Any, ...], float]


def sample_timescales(dist: DistSpec, n: int, dt: float, rng: np.random.Generator) -> np.ndarray:
    """``n`` time constants (s) from ``dist``, clipped below at ``dt``:

    * ``("loguniform", lo, hi)``: log τ uniform on [log lo, log hi]
    * ``("lognormal", median, sigma)``: log τ ~ N(log median, sigma²)
    * ``("gamma", shape, scale)``: τ ~ Gamma(shape, scale) (mean shape·scale)
    * ``("uniform", lo, hi)``; ``("constant", tau)`` or a plain number.
    """
    if isinstance(dist, (int, float)):
        dist = ("constant", float(dist))
    kind, *args = dist
    if kind not in TIMESCALE_DISTRIBUTIONS:
        raise ValueError(f"unknown timescale distribution {kind!r}; choose one of {TIMESCALE_DISTRIBUTIONS}")
    need = 1 if kind == "constant" else 2
    vals = [float(a) for a in args]
    if len(vals) != need or not all(np.isfinite(vals)) or vals[0] <= 0 \
            or (need == 2 and (vals[1] < 0 if kind == "lognormal" else vals[1] <= 0)):
        raise ValueError(f"timescale distribution {dist!r} needs {need} positive parameter(s)")
    if kind == "loguniform":
        lo, hi = float(args[0]), float(args[1])
        tau = np.exp(rng.uniform(np.log(lo), np.log(max(hi, lo)), n))
    elif kind == "lognormal":
        tau = float(args[0]) * np.exp(float(args[1]) * rng.standard_normal(n))
    elif kind == "gamma":
        tau = rng.gamma(float(args[0]), float(args[1]), n)
    elif kind == "uniform":
        tau = rng.uniform(float(args[0]), float(args[1]), n)
    else:
        tau = np.full(n, float(args[0]))
    return np.maximum(tau, float(dt))


def _alpha(tau: np.ndarray, dt: float) -> np.ndarray:
    return 1.0 - float(dt) / np.asarray(tau, dtype=np.float64)


class HRSNN(SpikingNet):
    """Heterogeneous recurrent SNN (module docstring).

    ``n_in``/``n_rec``/``n_out``: sizes. ``tau_mem_dist``/``tau_syn_dist``: distributions of
    :func:`sample_timescales` (s). ``neuron``: "cuba" (CubaLIF, both time constants) or "lif" (LIF: membrane
    only; ``tau_syn_dist`` is ignored). ``dt``: step (s). ``threshold``: θ. ``reset``: "zero" (Loihi's) or
    "subtract". ``connectivity``: probability of each recurrent synapse (no self-connections). Initial weights:
    ``W_rec ~ N(0, (rec_gain·θ)²/(p·n_rec))``, ``W_in ~ N(0, (in_gain·θ)²/n_in)``, readout as torch initialises
    ``nn.Linear``. ``tau_out``: readout time constant (None: α = 1/4096, a memoryless linear readout that Loihi's
    12-bit decay represents exactly). ``surrogate``/
    ``surrogate_scale``: the spike's surrogate. ``seed``: all of the above randomness (timescales, mask, weights).
    """

    def __init__(self, n_in: int, n_rec: int, n_out: int, *,
                 tau_mem_dist: DistSpec = ("loguniform", 2e-3, 30e-3),
                 tau_syn_dist: DistSpec = ("loguniform", 1e-3, 5e-3), neuron: str = "cuba", dt: float = 1e-3,
                 threshold: float = 1.0, reset: str = "zero", connectivity: float = 1.0, rec_gain: float = 1.0,
                 in_gain: float = 1.0, tau_out: Optional[float] = None, surrogate: str = "exp",
                 surrogate_scale: float = 1.0, seed: int = 0) -> None:
        if neuron not in ("cuba", "lif"):
            raise ValueError(f"HRSNN neuron must be 'cuba' or 'lif', got {neuron!r}")
        if not 0 < connectivity <= 1:
            raise ValueError(f"HRSNN connectivity must be in (0, 1], got {connectivity}")
        n_in, n_rec, n_out = int(n_in), int(n_rec), int(n_out)
        rng = np.random.default_rng(seed)
        tau_m = sample_timescales(tau_mem_dist, n_rec, dt, rng)
        tau_s = sample_timescales(tau_syn_dist, n_rec, dt, rng) if neuron == "cuba" else None
        mask = rng.random((n_rec, n_rec)) < connectivity
        np.fill_diagonal(mask, False)
        w_rec = rng.normal(0.0, rec_gain * threshold / np.sqrt(max(connectivity * n_rec, 1.0)), (n_rec, n_rec))
        w_in = rng.normal(0.0, in_gain * threshold / np.sqrt(n_in), (n_rec, n_in))
        g = torch.Generator().manual_seed(int(seed))
        out = nn.Linear(n_rec, n_out)
        with torch.no_grad():
            bound = 1.0 / np.sqrt(n_rec)
            out.weight.uniform_(-bound, bound, generator=g)
            out.bias.uniform_(-bound, bound, generator=g)
        self._build(n_in, n_rec, n_out, tau_m, tau_s, w_in, w_rec * mask, mask, out, dt=dt, threshold=threshold,
                    reset=reset, tau_out=tau_out, surrogate=surrogate, surrogate_scale=surrogate_scale)

    # construction shared by __init__ and pruned()
    def _build(self, n_in: int, n_rec: int, n_out: int, tau_m: np.ndarray, tau_s: Optional[np.ndarray],
               w_in: np.ndarray, w_rec: np.ndarray, mask: np.ndarray, out: nn.Linear, *, dt: float,
               threshold: Any, reset: str, tau_out: Optional[float], surrogate: str,
               surrogate_scale: float) -> None:
        dtype = torch.get_default_dtype()
        inp = nn.Linear(n_in, n_rec, bias=False)
        with torch.no_grad():
            inp.weight.copy_(torch.as_tensor(w_in, dtype=dtype))
        if tau_s is None:
            cell: nn.Module = LIF(n_rec, alpha=torch.as_tensor(_alpha(tau_m, dt), dtype=dtype), threshold=threshold,
                                  reset=reset, surrogate=surrogate, surrogate_scale=surrogate_scale)
        else:
            cell = CubaLIF(n_rec, alpha_syn=torch.as_tensor(_alpha(tau_s, dt), dtype=dtype),
                           alpha_mem=torch.as_tensor(_alpha(tau_m, dt), dtype=dtype), threshold=threshold,
                           reset=reset, surrogate=surrogate, surrogate_scale=surrogate_scale)
        rec = Recurrent(cell, n_rec, weight=torch.as_tensor(w_rec, dtype=dtype))
        # memoryless readout by default: α = 1/4096, the smallest leak a 12-bit Loihi decay holds (dv = 4095), so
        # that the float model and the compiled one agree (α = 0 would need dv = 4096)
        a_out = READOUT_ALPHA_MIN if tau_out is None else float(_alpha(np.array([max(tau_out, dt)]), dt)[0])
        super().__init__(OrderedDict([("inp", inp), ("rec", rec), ("out", out), ("readout", LI(n_out, alpha=a_out))]))
        self.register_buffer("rec_mask", torch.as_tensor(np.asarray(mask, dtype=bool)))
        self.dt = float(dt)
        self.n_in, self.n_rec, self.n_out = n_in, n_rec, n_out
        self.neuron_kind = "lif" if tau_s is None else "cuba"
        self.tau_out = tau_out
        self.apply_masks_()

    # ---------------------------------------------------------------------------------------------- masks
    @torch.no_grad()
    def apply_masks_(self) -> "HRSNN":
        """Zero the recurrent weights outside ``rec_mask`` (in place)."""
        w = self.rec.rec.weight
        w.mul_(self.rec_mask.to(w.dtype))
        return self

    def forward(self, x: torch.Tensor, record: bool = False):  # type: ignore[override]
        self.apply_masks_()
        return super().forward(x, record=record)

    def step(self, x_t: torch.Tensor, states: Optional[list] = None):  # type: ignore[override]
        self.apply_masks_()
        return super().step(x_t, states)

    @property
    def n_synapses(self) -> int:
        """Recurrent synapses in the mask."""
        return int(self.rec_mask.sum())

    def synapse_counts(self) -> dict:
        """Synapses per part: ``input`` (n_rec·n_in, dense), ``recurrent`` (mask), ``readout`` (n_out·n_rec)."""
        return {"input": self.n_rec * self.n_in, "recurrent": self.n_synapses, "readout": self.n_out * self.n_rec,
                "total": self.n_rec * self.n_in + self.n_synapses + self.n_out * self.n_rec}

    # ------------------------------------------------------------------------------------------ timescales
    @property
    def tau_mem(self) -> np.ndarray:
        """Membrane time constants (s), from α_mem."""
        a = self.rec.neuron.alpha_mem if self.neuron_kind == "cuba" else self.rec.neuron.alpha
        return self.dt / (1.0 - a.detach().cpu().double().numpy())

    @property
    def tau_syn(self) -> Optional[np.ndarray]:
        """Synaptic time constants (s), from α_syn (None for LIF)."""
        if self.neuron_kind != "cuba":
            return None
        return self.dt / (1.0 - self.rec.neuron.alpha_syn.detach().cpu().double().numpy())

    # ----------------------------------------------------------------------------------------- LNP bridge
    def recurrent_net(self):
        """The recurrent layer as a numpy :class:`~toolchain.prune.lyapunov.RecurrentNet` (masked W, taus,
        thresholds, input weights, reset)."""
        from ..prune.lyapunov import RecurrentNet

        self.apply_masks_()
        th = self.rec.neuron.threshold.detach().cpu().double().numpy()
        return RecurrentNet(self.rec.rec.weight.detach().cpu().double().numpy(), self.tau_mem,
                            np.broadcast_to(th, (self.n_rec,)).copy(), self.dt, tau_syn=self.tau_syn,
                            w_in=self.inp.weight.detach().cpu().double().numpy(), reset=self.rec.neuron.reset)

    def pruned(self, net, keep: Sequence[int]) -> "HRSNN":
        """A new HRSNN with the neurons ``keep`` (original indices, in ``net``'s order) and ``net``'s recurrent
        weights, mask (``net.w_rec != 0``), time constants and thresholds; the input weights are ``net.w_in`` when
        given (else this model's rows ``keep``), the readout keeps this model's columns ``keep`` and its bias."""
        keep = np.asarray(keep, dtype=np.int64)
        if net.n != keep.size:
            raise ValueError(f"pruned network has {net.n} neurons but keep lists {keep.size}")
        if (net.tau_syn is None) != (self.neuron_kind == "lif"):
            raise ValueError("the pruned network's neuron type (CubaLIF/LIF) differs from this model's")
        new = HRSNN.__new__(HRSNN)
        w_in = net.w_in if net.w_in is not None else self.inp.weight.detach().cpu().double().numpy()[keep]
        out = nn.Linear(net.n, self.n_out)
        with torch.no_grad():
            out.weight.copy_(self.out.weight.detach()[:, torch.as_tensor(keep)])
            out.bias.copy_(self.out.bias.detach())
        th = np.asarray(net.threshold, dtype=np.float64)
        threshold = float(th[0]) if np.all(th == th[0]) else torch.as_tensor(th, dtype=torch.get_default_dtype())
        nrn = self.rec.neuron
        new._build(self.n_in, net.n, self.n_out, net.tau_mem, net.tau_syn, w_in, net.w_rec, net.w_rec != 0, out,
                   dt=self.dt, threshold=threshold, reset=nrn.reset, tau_out=self.tau_out,
                   surrogate=nrn.surrogate, surrogate_scale=nrn.surrogate_scale)
        return new

    def set_recurrent(self, w_rec: np.ndarray, mask: Optional[np.ndarray] = None) -> "HRSNN":
        """Write recurrent weights (and a new mask; default ``w_rec != 0``) back into the model, in place."""
        w = np.asarray(w_rec, dtype=np.float64)
        m = (w != 0) if mask is None else np.asarray(mask, dtype=bool)
        if w.shape != (self.n_rec, self.n_rec) or m.shape != w.shape:
            raise ValueError(f"recurrent weights and mask must be ({self.n_rec}, {self.n_rec}), got {w.shape}, "
                             f"{m.shape}")
        with torch.no_grad():
            self.rec.rec.weight.copy_(torch.as_tensor(w, dtype=self.rec.rec.weight.dtype))
            self.rec_mask.copy_(torch.as_tensor(m))
        return self.apply_masks_()

    # ------------------------------------------------------------------------------------------------- NIR
    def to_graph(self, input_shape: Optional[int] = None, sparse: bool = True):
        """The IR graph (:func:`toolchain.nn.to_graph` at this model's ``dt``); with ``sparse`` the recurrent weight
        node ``rec_rec`` stores :class:`~toolchain.ir.Csr` weights (only the synapses in the mask)."""
        from ..ir.storage import Csr
        from .nir_map import to_graph

        self.apply_masks_()
        g = to_graph(self, self.dt, self.n_in if input_shape is None else input_shape)
        if sparse and "rec_rec" in g:
            node = g["rec_rec"]
            w = node.weight.to_dense()
            g = g.with_node(node.replace(weight=Csr.from_dense(w, mask=self.rec_mask.cpu().numpy())))
        return g
