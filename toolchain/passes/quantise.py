"""Quantise and lower: a normalised IR graph at a step ``dt`` -> a :class:`~toolchain.program.Program` of integers.

The integers are those Lava's ``fixed_pt`` models consume (DESIGN.md "Integer semantics"), per step:

    a_in = (sum_j W_ij s_j) << weight_exp            (arithmetic shift; right shift floors)
    u    = wrap24(rtz(u·(4096 − (du + 1))/4096) + (a_in << 6))
    v    = clip24(rtz(v·(4096 − dv)/4096) + u + (bias_mant << bias_exp))
    spike when v > vth << 6, then v = 0 (zero reset) or v −= vth << 6 (subtract reset)

and the float model is the IR's Euler step at ``dt`` (as :mod:`toolchain.sim.float` runs it). Each neuron i gets a
scale ``S_i`` (integer v units per float voltage unit) so that the integer state is ``v_int ≈ S_i · v``:

* LIF (tau dv/dt = v_leak − v + r I):  du = 4095 (u = a_in << 6: the current follows the input at once),
  dv = round(4096 dt/tau); one input spike through weight w adds c_i·w to v with c_i = dt/tau · r.
* CubaLIF:  du = round(4096 dt/tau_syn) − 1 (Lava adds 1), dv = round(4096 dt/tau_mem); the current is carried
  as u_int = S_i · (dt/tau_mem) · r · i, so c_i = (dt/tau_mem) · r · (dt/tau_syn) · w_in.
* IF (v += r I per step, the float executor's rule):  du = 4095, dv = 0, c_i = r.
* LI / CubaLI / Integrator: as LIF / CubaLIF / IF but ``spiking=False`` with vth at its maximum.
* v_leak becomes the bias current: B_i = S_i · dt/tau_mem · v_leak (the bias of an Affine feeding an IF or an
  Integrator: B_i = S_i · r · b).

For a spiking group one integer threshold mantissa ``vth`` is shared by all its neurons and ``S_i = 64·vth/θ_i``,
so per-neuron thresholds are folded into the weights and the threshold itself is exact. Weights become
``W_ij = round(vth · c_i · w_ij / θ_i / 2^e)`` with one exponent ``e`` per synapse group chosen to fill the 8-bit
mantissa (mixed sign: even values in [−256, 254], so that Lava's clip and truncation leave them unchanged;
excitatory: [0, 255]). ``vth`` is the largest value (up to the ``vth_max`` option) for which every synapse group
and bias fits and u cannot wrap nor v saturate below zero in the worst case (every input spiking every step;
``v_headroom`` replaces the v worst case by a number of thresholds); for small layers it is searched for the value
that represents the weights best. A readout (non-spiking) group gets one scale for all neurons, the largest for
which the worst-case |v| stays below ``vth_max_hw << 6`` (so it can neither saturate nor spike). With
``weight_split`` each synapse group gets a companion group ``<name>.lo`` (same synapses and delays) whose
mantissas, at an exponent >= 0, carry what the 8-bit mantissas rounded away: Lava sums both into the same a_in.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from .. import fixedpoint as fx
from ..errors import GraphError, QuantisationError
from ..ir.graph import Graph
from ..ir.nodes import (IF, LI, LIF, Affine, CubaLI, CubaLIF, Delay, Input, Integrator, Linear, Node, Output,
                        Threshold, _Population)
from ..ir.storage import Csr, Dense, Structured, WeightStorage
from ..program import InputPort, NeuronGroup, Program, SynapseGroup
from ..targets import TargetSpec
from . import storage_ops as so

__all__ = ["quantise", "QuantOptions", "stored_values", "with_values", "BIAS_GROUP", "CUBA_BIAS_MODES",
           "SPLIT_SUFFIX"]

#: Name of the always-on group (one neuron that spikes at every step) whose synapses carry CubaLIF biases into the
#: synaptic current (``QuantOptions.cuba_bias = "current"``).
BIAS_GROUP = "_bias_on"
CUBA_BIAS_MODES = ("current", "fold")
#: Name suffix of the companion synapse group that carries a group's weight rounding remainder (``weight_split``).
SPLIT_SUFFIX = ".lo"


@dataclass(frozen=True)
class QuantOptions:
    """Knobs of the quantise step.

    ``vth_max``: the largest threshold mantissa a spiking group may use (default 2^14: v then has 3 bits of
    headroom above the threshold before 24-bit saturation, i.e. it may reach ±8 thresholds). ``equalise_latency``:
    add synaptic delays so that paths of different depth stay aligned (default True). ``readout_horizon``: steps
    over which a non-leaky readout (Integrator) must not saturate at full input. ``reset``: override every spiking
    node's reset mode. ``search_vth``: search the threshold mantissa for the best weight representation when the
    group has few synapses. ``align_bias``: start every biased group at the voltage that hides its bias until its
    input arrives (``latency_steps`` steps, one per synapse layer), so that the compiled group runs the float
    model delayed by its latency instead of integrating the bias alone first (default True; see
    :func:`toolchain.fixedpoint.bias_onset_voltage`). ``cuba_bias``: how the bias of an Affine feeding a
    CubaLIF/CubaLI reaches the neuron: ``"current"`` (default, exact) through synapses from an always-on group
    (:data:`BIAS_GROUP`) into the synaptic current, as the float model filters it through ``tau_syn``: an
    integer a_in per step, and the rest as a voltage bias ``r`` (the current's steady state) whose rise is carried
    by the group's initial current ``u_init`` (:func:`toolchain.fixedpoint.bias_current_start`; with
    ``align_bias`` only), so the realised bias is exact on a grid ``64·4096/(du + 1)`` times finer than a_in;
    ``"fold"`` into the voltage bias (``r·w_in·b·dt/tau_mem`` per step), which saves the synapses but changes
    the neuron's trajectory: its first spike comes earlier and the phase shift is never undone.
    ``weight_split``: give every synapse group a companion group (same synapses, name ``<name>.lo``) that
    carries its rounding remainder at a smaller exponent (>= 0): about 7 more bits of weight precision where the
    group's exponent is >= 7, fewer below (down to the integer grid of a_in), for twice the synapses (default
    False here; :func:`toolchain.compile.compile_graph` decides with ``weight_split="auto"``). ``v_headroom``:
    how many thresholds below zero a spiking group's v may fall before it saturates at the 24-bit limit; None
    (default) takes the worst case (every inhibitory input spiking every step), which can force a small
    threshold mantissa (coarse weights, biases and decays). A number k caps vth at
    ``0.98·v_max/(64·k)`` instead, and the negative-headroom warning says when the worst case is not covered;
    :func:`toolchain.fidelity.fidelity` counts the steps at which v did saturate.
    """

    vth_max: int = 2 ** 14
    equalise_latency: bool = True
    readout_horizon: int = 1024
    reset: Optional[str] = None
    search_vth: bool = True
    align_bias: bool = True
    cuba_bias: str = "current"
    weight_split: bool = False
    v_headroom: Optional[float] = None


# ------------------------------------------------------------------------------------ storage helpers
def stored_values(w: WeightStorage) -> np.ndarray:
    """The stored synapse values (row-major order of the stored mask), float64."""
    if isinstance(w, Csr):
        return np.asarray(w.data, dtype=np.float64)
    if isinstance(w, Dense):
        return np.asarray(w.values, dtype=np.float64).reshape(-1)
    return np.asarray(w.values, dtype=np.float64)[w.stored_mask()]


def _stored_rows(w: WeightStorage) -> np.ndarray:
    if isinstance(w, Csr):
        return so.row_indices(w)
    if isinstance(w, Dense):
        return np.repeat(np.arange(w.shape[0]), w.shape[1])
    return np.nonzero(w.stored_mask())[0]


def _stored_cols(w: WeightStorage) -> np.ndarray:
    if isinstance(w, Csr):
        return np.asarray(w.indices)
    if isinstance(w, Dense):
        return np.tile(np.arange(w.shape[1]), w.shape[0])
    return np.nonzero(w.stored_mask())[1]


def with_values(w: WeightStorage, values: np.ndarray, dtype: Any = np.int16) -> WeightStorage:
    """The same sparsity structure holding ``values`` (given in :func:`stored_values` order)."""
    values = np.asarray(values).astype(dtype)
    if isinstance(w, Csr):
        return Csr(w.shape, w.indptr, w.indices, values)
    if isinstance(w, Dense):
        return Dense(values.reshape(w.shape))
    full = np.zeros(w.shape, dtype=dtype)
    full[w.stored_mask()] = values
    return Structured(full, w.row_mask, w.col_mask, w.block_shape, w.block_mask)


# --------------------------------------------------------------------------------------- graph walking
@dataclass
class _Chain:
    """One synapse node with the populations (or input) at its ends."""

    name: str
    node: Node
    src: str
    dst: str
    graph_delay: int
    src_delay: np.ndarray  # steps per source element (Delay nodes between src and the synapse node)
    dst_delay: np.ndarray  # steps per target element (Delay nodes between the synapse node and dst)


def _delay_steps(node: Delay, dt: float) -> np.ndarray:
    steps = np.asarray(node.delay, dtype=np.float64) / dt
    k = np.rint(steps).astype(np.int64)
    off = np.abs(steps - k)
    if np.any(off > 1e-6):
        i = int(np.argmax(off))
        warnings.warn(f"Delay '{node.name}': delay {node.delay.reshape(-1)[i]:g} s is not a whole number of steps "
                      f"at dt={dt:g} s; rounded to {k.reshape(-1)[i]} steps", stacklevel=3)
    return k.reshape(-1)


def _chains(graph: Graph, dt: float) -> List[_Chain]:
    out = []
    for name, node in graph.nodes.items():
        if not isinstance(node, (Linear, Affine)):
            continue
        n_out, n_in = node.weight.shape
        src_d, dst_d, g = np.zeros(n_in, np.int64), np.zeros(n_out, np.int64), 0
        cur = name
        while True:
            ins = graph.in_edges(cur)
            if len(ins) != 1:
                raise GraphError(f"expected one input edge, found {len(ins)} (run the normalise passes first)",
                                 node=cur, field="edges")
            g += ins[0].delay
            prev = graph[ins[0].src]
            if isinstance(prev, Delay):
                src_d = src_d + _delay_steps(prev, dt)
                cur = prev.name
                continue
            if not isinstance(prev, (Input, _Population)):
                raise GraphError(f"synapse node is fed by {prev.kind} '{prev.name}', expected a population or an "
                                 f"Input (run the normalise passes first)", node=name, field="edges")
            src = prev.name
            break
        cur = name
        while True:
            outs = graph.out_edges(cur)
            if len(outs) != 1:
                raise GraphError(f"expected one output edge, found {len(outs)} (run the normalise passes first)",
                                 node=cur, field="edges")
            g += outs[0].delay
            nxt = graph[outs[0].dst]
            if isinstance(nxt, Delay):
                dst_d = dst_d + _delay_steps(nxt, dt)
                cur = nxt.name
                continue
            if isinstance(nxt, Output):
                raise GraphError(f"Output '{nxt.name}' is fed by the synapse node '{name}': a Loihi program's output "
                                 f"must be a population (end the network with LIF, IF or an LI readout)",
                                 node=nxt.name, field="edges")
            if not isinstance(nxt, _Population):
                raise GraphError(f"synapse node feeds {nxt.kind} '{nxt.name}', expected a population",
                                 node=name, field="edges")
            dst = nxt.name
            break
        out.append(_Chain(name, node, src, dst, g, src_d, dst_d))
    return out


# ----------------------------------------------------------------------------------- neuron models
@dataclass
class _Model:
    """Float description of one population in the integer model's terms (all arrays per neuron)."""

    kind: str
    spiking: bool
    c: np.ndarray            # float v added per unit input through a weight of 1
    c_bias: np.ndarray       # float v per step added by a constant input current of 1 (Affine bias)
    bias_v: np.ndarray       # float v per step from v_leak
    theta: np.ndarray        # thresholds (ones for readouts)
    ratio_u: Optional[np.ndarray]  # dt/tau_syn, None when the current follows the input (du = 4095)
    ratio_v: np.ndarray      # dt/tau_mem (0 for IF/Integrator)
    reset_mode: str


def _model(node: _Population, dt: float, opts: QuantOptions, target: TargetSpec) -> _Model:
    n = node.size
    ones = np.ones(n)

    def ratio(tau: np.ndarray, fld: str) -> np.ndarray:
        r = dt / np.asarray(tau, dtype=np.float64)
        if np.any(r > 1.0 + 1e-12):
            i = int(np.argmax(r))
            raise QuantisationError(f"tau = {tau[i]:g} s is shorter than dt = {dt:g} s: the Euler step would "
                                    f"overshoot and the decay (4096·dt/tau = {4096 * r[i]:.0f}) does not fit "
                                    f"{target.decay_bits} bits; use a smaller dt, or, if the file holds tau·dt "
                                    f"as Norse >= 1.1 writes it, load it with preset='norse'", node=node.name,
                                    field=fld)
        return r

    if isinstance(node, (LIF, LI)):
        rv = ratio(node.tau, "tau")
        c = rv * node.r
        model = _Model(node.kind, isinstance(node, LIF), c, c.copy(), rv * node.v_leak,
                       node.v_threshold if isinstance(node, LIF) else ones, None, rv, "zero")
    elif isinstance(node, (CubaLIF, CubaLI)):
        ru = ratio(node.tau_syn, "tau_syn")
        rv = ratio(node.tau_mem, "tau_mem")
        c = rv * node.r * ru * node.w_in
        model = _Model(node.kind, isinstance(node, CubaLIF), c, rv * node.r * node.w_in, rv * node.v_leak,
                       node.v_threshold if isinstance(node, CubaLIF) else ones, ru, rv, "zero")
    elif isinstance(node, (IF, Integrator)):
        c = np.asarray(node.r, dtype=np.float64) * ones
        model = _Model(node.kind, isinstance(node, IF), c, c.copy(), np.zeros(n),
                       node.v_threshold if isinstance(node, IF) else ones, None, np.zeros(n), "zero")
    elif isinstance(node, Threshold):
        raise QuantisationError("a stateless Threshold node has no Loihi equivalent (a LIF neuron keeps its "
                                "voltage); use an IF or LIF population", node=node.name, field="kind")
    else:  # pragma: no cover - every population type is handled above
        raise QuantisationError(f"unsupported population type {node.kind}", node=node.name)
    if model.spiking:
        mode = opts.reset or node.reset_mode
        if not target.supports_reset(mode):
            raise QuantisationError(f"reset mode '{mode}' is not supported by target '{target.name}' (supported: "
                                    f"{', '.join(target.reset_modes)}); choose another target or reset mode",
                                    node=node.name, field="reset_mode")
        model.reset_mode = mode
        theta = np.asarray(model.theta, dtype=np.float64)
        if np.any(theta <= 0):
            raise QuantisationError(f"threshold {theta.min():g} <= 0 cannot be represented (Loihi's threshold "
                                    f"mantissa is unsigned and v starts at 0)", node=node.name, field="v_threshold")
        if mode == "zero" and np.any(node.v_reset != 0):
            raise QuantisationError(f"v_reset = {node.v_reset[node.v_reset != 0][0]:g}: Loihi resets v to 0 "
                                    f"(only v_reset = 0 is representable with reset_mode 'zero')",
                                    node=node.name, field="v_reset")
    return model


def _decays(node: _Population, m: _Model, target: TargetSpec, warn: List[str]) -> Tuple[np.ndarray, np.ndarray,
                                                                                          Dict[str, Any]]:
    unity, dmax = target.decay_unity, target.decay_max
    info: Dict[str, Any] = {}
    dv_f = unity * m.ratio_v
    dv = np.rint(dv_f).astype(np.int64)
    if np.any(dv > dmax):
        warn.append(f"{node.kind} '{node.name}': tau_mem = dt gives dv = {unity}, which {target.decay_bits} bits "
                    f"cannot hold; clipped to dv = {dmax} (v keeps 1/{unity} of itself per step instead of 0)")
        dv = np.minimum(dv, dmax)
    lost = (dv == 0) & (m.ratio_v > 0)
    if np.any(lost):
        warn.append(f"{node.kind} '{node.name}': leak dt/tau = {m.ratio_v[lost].max():.3g} rounds to dv = 0 (no "
                    f"leak); the membrane leak is lost (100% decay error)")
    with np.errstate(divide="ignore", invalid="ignore"):
        ev = np.where(m.ratio_v > 0, np.abs(dv / unity - m.ratio_v) / np.where(m.ratio_v > 0, m.ratio_v, 1), 0.0)
    info["decay_v_rel_error"] = float(ev.max()) if ev.size else 0.0
    if m.ratio_u is None:
        du = np.full(node.size, dmax, dtype=np.int64)
        info["decay_u_rel_error"] = 0.0
    else:
        du1 = np.rint(unity * m.ratio_u).astype(np.int64)
        if np.any(du1 < 1):
            warn.append(f"{node.kind} '{node.name}': current decay dt/tau_syn = {m.ratio_u.min():.3g} rounds below "
                        f"Lava's smallest decay 1/{unity} (du = 0, plus Lava's offset 1); the current decays by "
                        f"1/{unity} per step instead")
            du1 = np.maximum(du1, 1)
        du = du1 - 1
        info["decay_u_rel_error"] = float(np.max(np.abs(du1 / unity - m.ratio_u) / m.ratio_u))
    return du, dv, info


# ----------------------------------------------------------------------------------- weight quantiser
@dataclass
class _WQ:
    """Result of quantising one synapse group at a given scale."""

    values: np.ndarray  # integer mantissas in stored order
    exp: int
    sign_mode: str
    rel_err_max: float
    rel_err_rms: float


def _fit_exp(maxp: float, maxn: float, target: TargetSpec) -> Tuple[int, str, int, int, int]:
    """Weight exponent filling the mantissa, sign mode and (hi, lo, step) of the mantissa grid."""
    wb = target.weight_bits
    if maxn == 0:
        hi, lo, step, mode = 2 ** wb - 1, 0, 1, "excitatory"
    else:
        hi, lo, step, mode = 2 ** wb - 2, 2 ** wb, 2, "mixed"
    ratio = max(maxp / hi, (maxn / lo) if lo else 0.0)
    e = 0 if ratio == 0 else int(math.ceil(math.log2(ratio) - 1e-12))
    e = int(min(max(e, target.weight_exp_min), target.weight_exp_max))
    return e, mode, hi, lo, step


def _quantise_values(x: np.ndarray, target: TargetSpec) -> _WQ:
    """Integer mantissas for the ideal a_in contributions ``x`` (at exponent 0)."""
    maxp = float(max(x.max(), 0.0)) if x.size else 0.0
    maxn = float(max(-x.min(), 0.0)) if x.size else 0.0
    e, mode, hi, lo, step = _fit_exp(maxp, maxn, target)
    w = np.clip(step * np.rint(x / (2.0 ** e) / step), -lo, hi).astype(np.int64)
    real = w * (2.0 ** e)
    scale = max(maxp, maxn)
    if scale > 0 and x.size:
        err = np.abs(real - x) / scale
        emax, erms = float(err.max()), float(np.sqrt(np.mean(err ** 2)))
    else:
        emax = erms = 0.0
    return _WQ(w, e, mode, emax, erms)


def _remainder_values(x: np.ndarray, hi: _WQ, target: TargetSpec) -> Optional[_WQ]:
    """Mantissas of a companion synapse group carrying what ``hi`` rounded away from ``x`` (``weight_split``), at
    the exponent that fills the mantissa but not below 0, so that every spike's contribution stays exact (a
    negative exponent would floor the per-step sum); None when nothing is left to carry. Its errors are those of
    the pair, relative to the largest |x|."""
    if not x.size:
        return None
    r = x - hi.values * 2.0 ** hi.exp
    maxp, maxn = float(max(r.max(), 0.0)), float(max(-r.min(), 0.0))
    e, mode, top, bot, step = _fit_exp(maxp, maxn, target)
    e = max(e, 0)
    w = np.clip(step * np.rint(r / 2.0 ** e / step), -bot, top).astype(np.int64)
    if not np.any(w):
        return None
    scale = float(np.max(np.abs(x)))
    err = np.abs(r - w * 2.0 ** e) / (scale or 1.0)
    return _WQ(w, e, mode, float(err.max()), float(np.sqrt(np.mean(err ** 2))))


def _check_lava(w: np.ndarray, mode: str, name: str, target: TargetSpec) -> None:
    """The mantissas must pass Lava's clip and truncation unchanged (toolchain.fixedpoint.lava_weights)."""
    from ..fixedpoint import lava_weights
    got = np.asarray(lava_weights(w, num_weight_bits=target.weight_bits, sign_mode=mode))
    if not np.array_equal(got, w):
        bad = int(np.flatnonzero(got != w)[0])
        raise QuantisationError(f"weight {w[bad]} would become {got[bad]} under Lava's clip/truncation "
                                f"(sign mode {mode})", node=name, field="weight")


def _bias_split(b: np.ndarray, target: TargetSpec) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mantissa and exponent per neuron for bias ``b`` (integer v units); returns (mant, exp, realised)."""
    mmax, mmin, emax = target.bias_mant_max, target.bias_mant_min, target.bias_exp_max
    mant = np.zeros(b.shape, np.int64)
    exp = np.zeros(b.shape, np.int64)
    todo = np.ones(b.shape, bool)
    for e in range(emax + 1):
        m = np.rint(b / 2.0 ** e).astype(np.int64)
        ok = todo & (m <= mmax) & (m >= mmin)
        mant[ok], exp[ok] = m[ok], e
        todo &= ~ok
    if np.any(todo):
        m = np.clip(np.rint(b / 2.0 ** emax), mmin, mmax).astype(np.int64)
        mant[todo], exp[todo] = m[todo], emax
    return mant, exp, mant * 2.0 ** exp


# ----------------------------------------------------------------------------------------- quantise
def quantise(graph: Graph, target: TargetSpec, options: Optional[QuantOptions] = None) -> Program:
    """Lower a normalised graph to a quantised :class:`Program` for ``target`` at ``graph.dt`` (see module doc).

    Raises :class:`QuantisationError` for parameters the integers cannot represent (naming node, field and
    limit); warns (and records in ``quant_report["warnings"]``) for what it had to clip or round away.
    """
    opts = options or QuantOptions()
    if graph.dt is None:
        raise QuantisationError("the graph has no dt; give compile_graph(..., dt=...)", field="dt")
    dt = float(graph.dt)
    if not 1 <= opts.vth_max <= target.vth_max:
        raise QuantisationError(f"vth_max must be in [1, {target.vth_max}], got {opts.vth_max}", field="vth_max")
    warn: List[str] = []
    notes: List[str] = list(graph.metadata.get("notes", []))
    timing = graph.metadata.get("reset_timing", "immediate")
    if timing not in (None, "immediate"):
        warn.append(f"the graph's float model resets with timing '{timing}'; Loihi resets in the same step as the "
                    f"spike (immediate), so spike times may differ from that float model")
    pops = [n for n in graph.topological_order() if isinstance(graph[n], _Population)]
    inputs = graph.inputs
    for n in graph.nodes:
        node = graph[n]
        if not isinstance(node, (Input, Output, _Population, Linear, Affine, Delay)):
            raise GraphError(f"{node.kind} node left after normalisation (run the normalise passes first)", node=n)
    chains = _chains(graph, dt)
    into: Dict[str, List[_Chain]] = {p: [] for p in pops}
    for ch in chains:
        into[ch.dst].append(ch)

    # latency: steps by which each compiled population lags the float graph
    lat: Dict[str, int] = {i: 0 for i in inputs}
    for p in pops:
        ff = [lat[ch.src] + 1 for ch in into[p] if ch.graph_delay == 0 and ch.src in lat]
        if not ff:
            raise GraphError("population is only reached through recurrent edges", node=p, field="edges")
        lat[p] = max(ff) if opts.equalise_latency else min(ff)

    models = {p: _model(graph[p], dt, opts, target) for p in pops}
    if opts.cuba_bias not in CUBA_BIAS_MODES:
        raise QuantisationError(f"cuba_bias must be one of {CUBA_BIAS_MODES}, got {opts.cuba_bias!r}",
                                field="cuba_bias")
    bias_chains = _cuba_bias_chains(graph, pops, into, opts, dt, warn)
    if bias_chains:
        lat[BIAS_GROUP] = 0
        for ch in bias_chains:
            into[ch.dst].append(ch)
    groups: Dict[str, NeuronGroup] = {}
    synapses: List[SynapseGroup] = []
    qrep_g: Dict[str, Dict[str, Any]] = {}
    qrep_s: Dict[str, Dict[str, Any]] = {}
    v_scale: Dict[str, Any] = {}
    shapes = graph.metadata.get("original_shapes", {})
    per_group_w: Dict[str, List[Tuple[_Chain, _WQ]]] = {}

    for p in pops:
        node, m = graph[p], models[p]
        n = node.size
        # ideal a_in per unit of "vth" (spiking: S_i = 64 vth / theta_i; readout: S_i = 64 q)
        unit = m.c / m.theta  # a_in per synapse weight per unit vth is unit_i * w_ij
        xs = []
        for ch in into[p]:
            vals = stored_values(ch.node.weight)
            rows = _stored_rows(ch.node.weight)
            xs.append(vals * unit[rows])
        bias_aff = np.zeros(n)
        carried = any(ch.src == BIAS_GROUP for ch in into[p])  # Affine biases go through the current instead
        for ch in into[p]:
            if isinstance(ch.node, Affine) and not carried:
                bias_aff = bias_aff + np.asarray(ch.node.bias, dtype=np.float64)
        bias_unit = 64.0 * (m.bias_v + m.c_bias * bias_aff) / m.theta  # integer bias per unit vth
        bounds: List[Tuple[float, str]] = [(float(opts.vth_max if m.spiking else target.vth_max), "vth_max")]
        wb = target.weight_bits
        for ch, x in zip(into[p], xs):
            if not x.size:
                continue
            mp, mn = float(max(x.max(), 0)), float(max(-x.min(), 0))
            hi, lo = (2 ** wb - 1, 0) if mn == 0 else (2 ** wb - 2, 2 ** wb)
            if mp > 0:
                bounds.append((hi * 2.0 ** target.weight_exp_max / mp, f"weights of '{ch.name}'"))
            if mn > 0:
                bounds.append((lo * 2.0 ** target.weight_exp_max / mn, f"weights of '{ch.name}'"))
        bmax = float(np.max(np.abs(bias_unit))) if n else 0.0
        if bmax > 0:
            bounds.append((target.bias_mant_max * 2.0 ** target.bias_exp_max / bmax, "bias"))
        beta_u = _u_bound_per_unit(m, xs, into[p], n, target)
        if m.spiking and beta_u > 0:
            # u must not wrap even if every excitatory (or every inhibitory) input spikes at once, every step;
            # this bound never pushes vth below 64 (6 bits of threshold resolution): then it only warns
            cap = 0.98 * target.u_max / beta_u
            floor = min(64.0, min(b for b, _ in bounds))
            if cap < floor:
                warn.append(f"{node.kind} '{p}': with every input spiking at once u could reach "
                            f"{beta_u * floor:.3g} > {target.u_max} and wrap around (24-bit u); the worst case is "
                            f"not guaranteed")
            bounds.append((max(cap, floor), "u headroom"))
        beta_v = _v_neg_bound_per_unit(m, xs, into[p], bias_unit, target) if m.spiking else 0.0
        if opts.v_headroom is not None and m.spiking:
            # the user's budget: v may fall to -v_headroom thresholds before it saturates
            bounds.append((max(0.98 * target.v_max / (64.0 * float(opts.v_headroom)), 1.0), "v headroom (option)"))
        elif beta_v > 0:
            # v must not saturate below: every inhibitory input spiking every step, against the bias (v above the
            # threshold resets, so only the negative side can run away); like u, never below vth = 64
            cap = 0.98 * target.v_max / beta_v
            floor = min(64.0, min(b for b, _ in bounds))
            bounds.append((max(cap, floor), "v headroom"))
        if not m.spiking:
            beta = _v_bound_per_unit(m, xs, into[p], bias_unit, opts, target)
            if beta > 0:
                bounds.append((0.95 * target.vth_max * 64 / beta, "readout headroom"))
        vth_f, why = min(bounds, key=lambda t: t[0])
        if m.spiking:
            vth = int(math.floor(vth_f))
            if vth < 1:
                raise QuantisationError(f"{why} are too large for the threshold: with {wb}-bit weight mantissas "
                                        f"and weight_exp <= {target.weight_exp_max} the threshold mantissa would "
                                        f"have to be {vth_f:.3g} < 1; scale the layer's weights down (or its "
                                        f"threshold up)", node=p, field="v_threshold")
            if opts.search_vth:
                vth = _search_vth(vth, [x for ch, x in zip(into[p], xs) if ch.src != BIAS_GROUP], bias_unit,
                                  target)
            q = float(vth)
        else:
            q = vth_f
            vth = target.vth_max
        S = 64.0 * q / m.theta
        v_scale[p] = float(S[0]) if np.all(S == S[0]) else S.tolist()
        per_group_w[p] = []
        du, dv, dinfo = _decays(node, m, target, warn)
        frac = np.zeros(n)  # a_in per step the current-bias synapses leave to the voltage bias and u_init
        for ch, x in zip(into[p], xs):
            if ch.src == BIAS_GROUP:
                shift = _bias_shift(x * q, bias_unit * q, du, target) if opts.align_bias else None
                entries, f = _bias_synapses(ch, x * q, target, shift)
                per_group_w[p] += entries
                frac += f
            else:
                wq = _quantise_values(x * q, target)
                per_group_w[p].append((ch, wq))
                lo = _remainder_values(x * q, wq, target) if opts.weight_split else None
                if lo is not None:
                    name = ch.name + SPLIT_SUFFIX
                    per_group_w[p].append((_Chain(name, Linear(name, weight=ch.node.weight), ch.src, ch.dst,
                                                  ch.graph_delay, ch.src_delay, ch.dst_delay), lo))
        wqs = [wq for _, wq in per_group_w[p]]
        # the sub-unit remainder of a current bias goes into the voltage bias at its steady-state value
        # (u gains 64 f per step and keeps (4095 - du)/4096 of itself: it settles at 64 f 4096/(du + 1))
        B = bias_unit * q + 64.0 * frac * target.decay_unity / (du + 1.0)
        bm, be, breal = _bias_split(B, target)
        bscale = float(np.max(np.abs(B))) if n else 0.0
        if bscale > 0 and np.any(np.abs(breal - B) > 0.5 * 2 ** target.bias_exp_max + 1e-9):
            warn.append(f"{node.kind} '{p}': bias clipped to the {target.bias_mant_bits}-bit mantissa")
        u_init, rem = _bias_transient(p, node.kind, carried, bias_unit * q, breal, du, lat[p], opts, target, warn)
        v_init, onset = _bias_onset(p, node.kind, dv, vth, bm, be, lat[p], m.reset_mode, m.spiking, opts, warn,
                                    u_init, du)
        groups[p] = NeuronGroup(p, tuple(shapes.get(p, node.shape)), du, dv, np.full(n, vth), bm, be,
                                reset_mode=m.reset_mode, spiking=m.spiking, source=p, v_init=v_init,
                                u_init=u_init)
        u_bound, v_bound = _bounds(wqs, [ch for ch, _ in per_group_w[p]], du, dv, breal, target, opts)
        if m.spiking:
            # above the threshold v resets: it reaches at most vth << 6 plus one step's u and bias; below, the
            # inhibitory worst case (beta_v per unit of vth)
            v_bound = max(beta_v * q, 64.0 * vth + u_bound + float(np.max(np.abs(breal))) if n else 0.0)
            if v_bound > target.v_max:
                warn.append(f"{node.kind} '{p}': negative v headroom ({_headroom(target.v_max, v_bound):.2f} bits): "
                            f"with every inhibitory input spiking at once v could reach -{v_bound:.3g}, beyond the "
                            f"24-bit limit {target.v_max}, and saturate there (the float model does not), so the "
                            f"neuron would recover from inhibition sooner")
        qrep_g[p] = {
            "kind": node.kind, "neurons": n, "spiking": m.spiking, "reset_mode": m.reset_mode, "vth": int(vth),
            "vth_limited_by": why if (m.spiking and vth_f < opts.vth_max) or not m.spiking else "vth_max",
            "du": _uniq(du), "dv": _uniq(dv), "threshold_rel_error": 0.0 if m.spiking else None,
            "decay_u_rel_error": dinfo["decay_u_rel_error"], "decay_v_rel_error": dinfo["decay_v_rel_error"],
            "bias_rel_error": float(np.max(np.abs(breal - B)) / bscale) if bscale > 0 else 0.0,
            "u_bound": u_bound, "v_bound": v_bound,
            "headroom_u_bits": _headroom(target.u_max, u_bound), "headroom_v_bits": _headroom(target.v_max, v_bound),
            "latency_steps": lat[p], **onset,
            "cuba_bias": ("current" if carried else "fold" if isinstance(node, (CubaLIF, CubaLI))
                          and np.any(bias_aff != 0) else None),
        }
        if rem is not None:  # the current's sub-unit bias: constant in the voltage bias, transient in u_init
            qrep_g[p]["bias_current_remainder"] = [int(r) for r in rem]
        if not m.spiking and v_bound is not None and v_bound > target.vth_max * 64:
            warn.append(f"readout '{p}': worst-case |v| {v_bound:.3g} exceeds vth << 6; it could spike or saturate")

    # synapse groups (split by delay value where Delay nodes make it vary)
    for p in pops:
        for ch, wq in per_group_w[p]:
            w = ch.node.weight
            # feed-forward: align with the deepest path (equalise_latency) or only the Delay nodes' steps;
            # recurrent: the float graph's one-step delay minus the compiled populations' lag difference
            base = (lat[p] - lat[ch.src] - 1) if (opts.equalise_latency or ch.graph_delay) else 0
            if ch.src == BIAS_GROUP:  # the bias reaches u at the compiled step of float step 0
                base = lat[p] - 1
            rows, cols = _stored_rows(w), _stored_cols(w)
            s = base + ch.graph_delay + ch.src_delay[cols] + ch.dst_delay[rows]
            if ch.graph_delay and np.any(s < 0):
                msg = (f"recurrent synapse '{ch.name}' ({ch.src} -> {p}) arrives {int(-s.min())} step(s) later than "
                       f"in the float graph (the populations on its loop lag by different amounts)")
                warn.append(msg)
                s = np.maximum(s, 0)
            if np.any(s > target.max_delay):
                raise QuantisationError(f"needs a synaptic delay of {int(s.max())} steps; target '{target.name}' "
                                        f"allows {target.max_delay}", node=ch.name, field="delay")
            _check_lava(wq.values, wq.sign_mode, ch.name, target)
            full = with_values(w, wq.values)
            values = np.unique(s) if s.size else np.array([max(base + ch.graph_delay, 0)])
            for d in values:
                name = ch.name if values.size == 1 else f"{ch.name}@d{int(d)}"
                wt = full if values.size == 1 else _entry_subset(full, s == d)
                synapses.append(SynapseGroup(name, ch.src, p, wt, weight_exp=wq.exp,
                                             num_weight_bits=target.weight_bits, sign_mode=wq.sign_mode,
                                             delay=int(d), recurrent=bool(ch.graph_delay)))
                qrep_s[name] = {"src": ch.src, "dst": p, "weight_exp": wq.exp, "sign_mode": wq.sign_mode,
                                "synapses": int(wt.nnz), "storage": wt.kind, "delay": int(d),
                                "mantissa_max": int(np.abs(wq.values).max()) if wq.values.size else 0,
                                "weight_rel_error_max": wq.rel_err_max, "weight_rel_error_rms": wq.rel_err_rms,
                                "source_nodes": ch.name.split("+")}

    outs = graph.outputs
    if len(outs) != 1:
        raise GraphError(f"a Program has one output; the graph has {len(outs)}: {outs}", field="outputs")
    preds = graph.predecessors(outs[0])
    if len(preds) != 1 or not isinstance(graph[preds[0]], _Population):
        raise GraphError("the Output must be fed by exactly one population", node=outs[0], field="edges")
    out_group = preds[0]
    if bias_chains:
        groups = {BIAS_GROUP: always_on_group(target), **groups}
        qrep_g[BIAS_GROUP] = {"kind": "always-on", "neurons": 1, "spiking": True, "reset_mode": "zero",
                              "vth": 1, "latency_steps": 0,
                              "feeds": sorted({ch.dst for ch in bias_chains})}
    ports = [InputPort(i, tuple(shapes.get(i, graph[i].shape))) for i in inputs]
    for msg in warn:
        warnings.warn(msg, stacklevel=2)
    meta = {"dt": dt, "latency_steps": {p: lat[p] for p in pops}, "output_latency_steps": lat[out_group],
            "v_scale": v_scale, "original_shapes": {k: list(v) for k, v in shapes.items()},
            "notes": notes + warn, "output_node": outs[0]}
    for key in ("file", "preset", "reset_timing"):
        if key in graph.metadata:
            meta[key] = graph.metadata[key]
    prog = Program(groups, synapses, ports, out_group, target=target.name, dt=dt,
                   quant_report={"groups": qrep_g, "synapses": qrep_s, "warnings": list(warn)}, metadata=meta)
    return prog


def always_on_group(target: TargetSpec) -> NeuronGroup:
    """One neuron that spikes at every step from step 0: u stays 0 (no input), the bias ``1 << 7 = 128`` exceeds
    ``vth << 6 = 64`` at every step and the zero reset forgets v (dv = 4095 as well)."""
    return NeuronGroup(BIAS_GROUP, (1,), du=target.decay_max, dv=target.decay_max, vth=1, bias_mant=1,
                       bias_exp=min(7, target.bias_exp_max), reset_mode="zero", spiking=True, source=BIAS_GROUP)


def _cuba_bias_chains(graph: Graph, pops: List[str], into: Dict[str, List[_Chain]], opts: QuantOptions, dt: float,
                      warn: List[str]) -> List[_Chain]:
    """Pseudo synapse nodes (one column: the summed Affine bias) from :data:`BIAS_GROUP` to every CubaLIF/CubaLI fed
    by a biased Affine (``cuba_bias="current"``); with ``"fold"`` only the warning that the fold is inexact."""
    out: List[_Chain] = []
    for p in pops:
        node = graph[p]
        if not isinstance(node, (CubaLIF, CubaLI)):
            continue
        affs = [ch for ch in into[p] if isinstance(ch.node, Affine) and np.any(ch.node.bias != 0)]
        if not affs:
            continue
        if opts.cuba_bias == "fold":
            steps = float(np.max(node.tau_syn)) / dt
            warn.append(f"{node.kind} '{p}': the bias of {', '.join(repr(c.name) for c in affs)} is folded into the "
                        f"voltage bias (cuba_bias='fold'); the float model filters it through tau_syn "
                        f"(~{steps:.1f} steps), so the neuron's first spikes come at other steps and, since a reset "
                        f"does not undo a phase shift, its spike times can differ for the whole run; "
                        f"cuba_bias='current' maps the bias exactly")
            continue
        b = np.sum([np.asarray(c.node.bias, dtype=np.float64) for c in affs], axis=0)
        name = f"{p}.bias"
        out.append(_Chain(name, Linear(name, weight=Dense(b.reshape(-1, 1))), BIAS_GROUP, p, 0,
                          np.zeros(1, np.int64), np.zeros(node.size, np.int64)))
    return out


#: How far (a_in units) :func:`_bias_shift` may move a bias synapse's integer from the nearest one.
BIAS_SHIFT_MAX = 4


def _bias_shift(a: np.ndarray, volt: np.ndarray, du: np.ndarray, target: TargetSpec) -> np.ndarray:
    """Per neuron, the integer ``j`` (|j| <= :data:`BIAS_SHIFT_MAX`) to add to ``rint(a)`` so that the remainder
    the voltage bias must hold, ``(a − a')·64·4096/(du + 1)`` v units per step plus the group's own voltage bias
    ``volt``, lies nearest an integer: u_init carries the remainder's transient exactly whatever its size
    (:func:`toolchain.fixedpoint.bias_current_start`), so only the voltage bias's rounding is left, and with a
    step ``64·4096/(du + 1)`` that is not an integer some nearby ``a'`` rounds far less (ties: smallest |j|)."""
    j = np.arange(-BIAS_SHIFT_MAX, BIAS_SHIFT_MAX + 1)[np.argsort(np.abs(np.arange(-BIAS_SHIFT_MAX,
                                                                                     BIAS_SHIFT_MAX + 1)),
                                                                  kind="stable")]
    base = np.rint(a)
    step = 64.0 * target.decay_unity / (du.astype(np.float64) + 1.0)
    r = (a[None, :] - base[None, :] - j[:, None]) * step[None, :] + volt[None, :]
    err = np.abs(r - np.rint(r))
    ok = np.abs(base[None, :] + j[:, None]) <= 255 * 2.0 ** target.weight_exp_max  # stays representable
    err = np.where(ok, err, np.inf)
    best = np.argmin(err, axis=0)  # first minimum: the smallest |j| among ties
    return j[best].astype(np.float64)


def _bias_synapses(ch: _Chain, a: np.ndarray, target: TargetSpec, shift: Optional[np.ndarray] = None
                   ) -> Tuple[List[Tuple[_Chain, _WQ]], np.ndarray]:
    """Synapse groups from :data:`BIAS_GROUP` that add an integer ``a'`` near ``a`` (a_in per step, per neuron;
    ``rint(a) + shift``, default the nearest) to the current exactly: one mixed-sign group with exponent >= 1 for
    the bulk (when some |a'| exceeds 255) and exponent-0 excitatory / inhibitory groups (any integer in
    [-255, 255]) for the rest; every group's shift is then exact for the single always-on spike. Returns the
    groups and the remainder ``a - realised`` (|.| <= 1/2 + |shift| unless the bias exceeds the 8-bit range at
    the largest exponent)."""
    a_int = np.rint(a) + (0.0 if shift is None else shift)
    out: List[Tuple[_Chain, _WQ]] = []
    real = np.zeros_like(a)
    scale = float(np.max(np.abs(a))) if a.size else 0.0
    if scale > 255.5:
        hi = _quantise_values(a_int, target)  # exponent >= 1 here: a single spike's shift is exact
        out.append((ch, hi))
        real = real + hi.values * 2.0 ** hi.exp
    rem = np.clip(a_int - real, -255, 255)
    for mode, part in (("excitatory", np.maximum(rem, 0)), ("inhibitory", np.minimum(rem, 0))):
        if not np.any(part):
            continue
        name = f"{ch.name}_{'pos' if mode == 'excitatory' else 'neg'}"
        out.append((_Chain(name, Linear(name, weight=ch.node.weight), ch.src, ch.dst, 0, ch.src_delay,
                           ch.dst_delay), _WQ(part.astype(np.int64), 0, mode, 0.0, 0.0)))
        real = real + part
    err = np.abs(a - real) / (scale or 1.0)
    for _, wq in out:
        wq.rel_err_max, wq.rel_err_rms = float(err.max()), float(np.sqrt(np.mean(err ** 2)))
    return out, a - real


def _bias_transient(name: str, kind: str, carried: bool, volt: np.ndarray, breal: np.ndarray, du: np.ndarray,
                    latency: int, opts: QuantOptions, target: TargetSpec, warn: List[str]
                    ) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """``u_init`` of a group whose Affine bias reaches the current (``carried``) and the integer remainder ``r``
    (v units per step) the voltage bias holds for the current: the realised voltage bias ``breal`` less the
    group's own voltage bias ``volt`` (v_leak; rounded). With ``u_init`` from
    :func:`toolchain.fixedpoint.bias_current_start` the current then rises from rest as the float model's does,
    for the bias ``a' + r·(du + 1)/(64·4096)`` (a_in units; ``a'`` the synapses' integer part): exact on that grid
    instead of a one-time voltage offset. Only with ``align_bias`` (netx cannot set initial states); else zeros and
    ``None``."""
    n = du.size
    if not carried or not opts.align_bias:
        return np.zeros(n, np.int32), None
    rem = np.rint(breal - np.rint(volt)).astype(np.int64)
    if not np.any(rem):
        return np.zeros(n, np.int32), rem
    u0, res = fx.bias_current_start(du, rem, latency)
    if np.any(res):
        warn.append(f"{kind} '{name}': {int(np.count_nonzero(res))} of {n} neuron(s) cannot start their current so "
                    f"that the bias remainder rises as in the float model (|u_init| would pass 2^23 - 1); up to "
                    f"{int(np.abs(res).max())} (u units) is left in their first input step")
    return u0, rem


def _bias_onset(name: str, kind: str, dv: np.ndarray, vth: int, bm: np.ndarray, be: np.ndarray,
                latency: int, reset_mode: str, spiking: bool, opts: QuantOptions, warn: List[str],
                u_init: Optional[np.ndarray] = None, du: Any = 0) -> Tuple[np.ndarray, Dict[str, Any]]:
    """``v_init`` of one group and its account for the quantisation report: ``bias_onset`` "none" (no bias or no
    latency), "off" (option), "aligned" (every neuron exact) or "partial", and ``bias_onset_residual_max`` (the
    largest voltage offset, in v units, a neuron carries into its first input step). Warns when a neuron's
    offset exceeds 1% of its threshold (spiking) or of its bias (readout)."""
    n = bm.size
    has_u = u_init is not None and np.any(u_init)
    if not (np.any(bm) or has_u) or latency <= 0:
        return np.zeros(n, np.int32), {"bias_onset": "none", "bias_onset_residual_max": 0}
    if not opts.align_bias:
        return np.zeros(n, np.int32), {"bias_onset": "off", "bias_onset_residual_max": None}
    v0, res, early = fx.bias_onset_voltage(dv, np.full(n, vth), bm, be, latency, reset_mode,
                                           u_init if has_u else None, du)
    res = np.abs(res.astype(np.int64))
    scale = fx.effective_threshold(np.full(n, vth)) if spiking else np.abs(fx.effective_bias(bm, be))
    big = int((res > 0.01 * scale).sum())
    if early.any():
        warn.append(f"{kind} '{name}': {int(early.sum())} of {n} neuron(s) have a bias above the threshold and spike "
                    f"in the {latency} step(s) before their input arrives, whatever their start; those spikes reach "
                    f"the next layer earlier than in the float model")
    if big:
        warn.append(f"{kind} '{name}': {big} of {n} neuron(s) cannot start so that their bias stays hidden for the "
                    f"{latency} step(s) before their input arrives (voltage decay near 4096, saturation, or a bias "
                    f"large enough to spike on the way); they carry up to {int(res.max())} (v units) into their "
                    f"first input step, so their first steps differ from the float model")
    acc = {"bias_onset": "aligned" if not (res.any() or early.any()) else "partial",
           "bias_onset_residual_max": int(res.max()), "bias_onset_early_spikers": int(early.sum())}
    return v0, acc


def _uniq(a: np.ndarray) -> Any:
    u = np.unique(a)
    return int(u[0]) if u.size == 1 else [int(v) for v in u]


def _headroom(limit: int, bound: Optional[float]) -> Optional[float]:
    if bound is None:
        return None
    if bound <= 0:
        return float(math.log2(limit))
    return float(math.log2(limit / bound))


def _entry_subset(w: WeightStorage, keep: np.ndarray) -> WeightStorage:
    """Keep only the stored entries flagged in ``keep`` (stored order)."""
    if isinstance(w, Csr):
        rows = so.row_indices(w)
        return Csr.from_coo(w.shape, rows[keep], w.indices[keep], w.data[keep]) if keep.any() else \
            Csr(w.shape, np.zeros(w.shape[0] + 1, np.int64), np.zeros(0, np.int64), np.zeros(0, w.data.dtype))
    mask = np.zeros(w.shape, bool)
    stored = w.stored_mask()
    mask[stored] = keep
    return Structured(w.to_dense(), block_shape=(1, 1), block_mask=mask)


def _search_vth(vth: int, xs: List[np.ndarray], bias_unit: np.ndarray, target: TargetSpec) -> int:
    """The threshold mantissa in [vth/2, vth] that represents the weights (and bias) best; ties -> larger."""
    nnz = sum(x.size for x in xs) + int(np.count_nonzero(bias_unit))
    if nnz == 0 or vth < 2 or nnz > 65536:
        return vth
    n_cand = int(min(vth - vth // 2, max(16, 2_000_000 // max(nnz, 1))))
    if n_cand < 2:
        return vth
    cands = np.unique(np.linspace(max(1, vth // 2), vth, n_cand).astype(np.int64))[::-1]
    c = cands.astype(np.float64)[:, None]
    err = np.zeros(cands.size)
    for x in xs:
        if not x.size:
            continue
        maxp, maxn = float(max(x.max(), 0.0)), float(max(-x.min(), 0.0))
        _, mode, hi, lo, step = _fit_exp(maxp, maxn, target)
        ratio = np.maximum(c[:, 0] * maxp / hi, (c[:, 0] * maxn / lo) if lo else 0.0)
        e = np.clip(np.ceil(np.log2(np.maximum(ratio, 1e-300)) - 1e-12), target.weight_exp_min,
                    target.weight_exp_max)[:, None]
        X = c * x[None, :]
        real = np.clip(step * np.rint(X / 2.0 ** e / step), -lo, hi) * 2.0 ** e
        err = np.maximum(err, np.abs(real - X).max(axis=1) / (c[:, 0] * max(maxp, maxn)))
    b = c * bias_unit[None, :]
    bmax = np.abs(b).max(axis=1) if bias_unit.size else np.zeros(cands.size)
    if np.any(bmax > 0):
        berr = np.abs(_bias_split(b, target)[2] - b).max(axis=1) / np.where(bmax > 0, bmax, 1.0)
        err = np.maximum(err, berr)
    best = int(np.flatnonzero(err <= err.min() + 1e-12)[0])  # candidates run downwards: ties -> larger vth
    return int(cands[best])


def _u_bound_per_unit(m: _Model, xs: List[np.ndarray], chains: List[_Chain], n: int, target: TargetSpec) -> float:
    """Worst-case |u| (integer units) per unit of vth: all excitatory (or all inhibitory) inputs spiking every step,
    the current summing up geometrically with its decay."""
    pos, neg = np.zeros(n), np.zeros(n)
    for ch, x in zip(chains, xs):
        rows = _stored_rows(ch.node.weight)
        pos += np.bincount(rows, weights=np.maximum(x, 0), minlength=n)
        neg += np.bincount(rows, weights=np.maximum(-x, 0), minlength=n)
    u = 64.0 * np.maximum(pos, neg)
    if m.ratio_u is not None:
        u = u / np.maximum(m.ratio_u, 1.0 / target.decay_unity)
    return float(u.max()) if n else 0.0


def _v_neg_bound_per_unit(m: _Model, xs: List[np.ndarray], chains: List[_Chain], bias_unit: np.ndarray,
                          target: TargetSpec) -> float:
    """Worst-case -v (integer units) per unit of vth for a spiking group: every inhibitory input spiking every
    step, less the always-on bias (voltage bias, and the current bias synapses at their steady state); 0 for a
    group without leak (IF), whose float model is unbounded as well."""
    n = bias_unit.size
    neg, on = np.zeros(n), np.zeros(n)
    for ch, x in zip(chains, xs):
        rows = _stored_rows(ch.node.weight)
        if ch.src == BIAS_GROUP:
            on += np.bincount(rows, weights=x, minlength=n)
        else:
            neg += np.bincount(rows, weights=np.maximum(-x, 0), minlength=n)
    gain = 64.0 if m.ratio_u is None else 64.0 / np.maximum(m.ratio_u, 1.0 / target.decay_unity)
    per_step = np.maximum(neg * gain - on * gain - bias_unit, 0.0)
    ok = m.ratio_v > 0
    if not np.any(ok):
        return 0.0
    return float(np.max(per_step[ok] / m.ratio_v[ok]))


def _v_bound_per_unit(m: _Model, xs: List[np.ndarray], chains: List[_Chain], bias_unit: np.ndarray,
                      opts: QuantOptions, target: TargetSpec) -> float:
    """Worst-case |v| (integer units) per unit scale q for a readout, all inputs spiking every step."""
    n = bias_unit.size
    a = np.zeros(n)
    for ch, x in zip(chains, xs):
        a += np.bincount(_stored_rows(ch.node.weight), weights=np.abs(x), minlength=n)
    u = 64.0 * a
    if m.ratio_u is not None:
        u = u / np.maximum(m.ratio_u, 1.0 / target.decay_unity)
    per_step = u + np.abs(bias_unit)
    with np.errstate(divide="ignore"):
        v = np.where(m.ratio_v > 0, per_step / np.where(m.ratio_v > 0, m.ratio_v, 1), per_step * opts.readout_horizon)
    return float(v.max()) if v.size else 0.0


def _bounds(wqs: List[_WQ], chains: List[_Chain], du: np.ndarray, dv: np.ndarray, bias: np.ndarray,
            target: TargetSpec, opts: QuantOptions) -> Tuple[float, Optional[float]]:
    """Worst-case |u| and |v| (integer units) when every input spikes every step (v: None when unbounded)."""
    n = du.size
    pos, neg = np.zeros(n), np.zeros(n)
    for ch, wq in zip(chains, wqs):
        rows = _stored_rows(ch.node.weight)
        w = wq.values * 2.0 ** wq.exp
        pos += np.bincount(rows, weights=np.maximum(w, 0), minlength=n)
        neg += np.bincount(rows, weights=np.maximum(-w, 0), minlength=n)
    a = np.maximum(pos, neg) * 64.0
    keep = target.decay_unity - (du + 1)
    u = np.where(keep > 0, a * target.decay_unity / (target.decay_unity - keep), a)
    per_step = u + np.abs(bias)
    v = np.where(dv > 0, per_step * target.decay_unity / np.maximum(dv, 1), np.inf)
    u_b = float(u.max()) if n else 0.0
    v_b = float(v.max()) if n else 0.0
    return u_b, (None if not np.isfinite(v_b) else v_b)
