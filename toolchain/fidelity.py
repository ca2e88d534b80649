"""Conversion fidelity: how closely a compiled integer program follows the float network it came from, and why not.

:func:`fidelity` runs the float source (the IR graph in :mod:`toolchain.sim.float`, with the file's own reset
timing) and the integer program (:mod:`toolchain.sim.reference`) on the same input and compares every population
step by step, each compiled group shifted back by its latency (``program.metadata["latency_steps"]``):

* ``agreement``: fraction of (sample, step, neuron) entries whose spike (0/1) is the same;
* ``count_corr``: Pearson correlation of the per-(sample, neuron) spike counts;
* ``first_divergence``: the first float step at which any spike of the layer differs (None: never);
* for the output: ``argmax_agreement``, the fraction of samples whose most active neuron (spike count; the mean
  ``v`` for a readout) is the same.

**Attribution.** The integer program differs from the float one by a handful of causes. Each one can be put into
the float model alone (``effect_graph``): ``weights`` (each synapse gets the value its integer mantissa and
exponent realise), ``decays`` (tau from the 12-bit du/dv, the input gain kept), ``bias`` (the bias the
integers realise, and where: the voltage bias instead of the current when it was folded), ``reset`` (the
program's reset mode and Loihi's immediate reset timing instead of the file's), and ``all`` of them at once.
Each model's agreement with the float source says how much that cause alone costs; the agreement of the
integer program with the ``all`` model is what the integer arithmetic itself (rounding toward zero of each
decay, saturation, wrap-around) adds. ``saturation`` counts the neuron-steps at which the program's ``v`` sat at
the 24-bit limit.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import fixedpoint as fx
from . import ir
from .errors import InputError
from .ir.storage import Dense
from .program import Program

__all__ = ["fidelity", "FidelityReport", "LayerFidelity", "effect_graph", "normalised_graph", "compare_spikes",
           "EFFECTS", "format_fidelity"]

#: Causes the attribution switches on one at a time in the float model (plus "all").
EFFECTS = ("weights", "decays", "bias", "reset")


@dataclass
class LayerFidelity:
    """Agreement of one population between a reference (float) run and another run."""

    agreement: float
    count_corr: Optional[float]
    first_divergence: Optional[int]
    spikes_ref: int
    spikes_other: int
    argmax_agreement: Optional[float] = None

    def to_dict(self) -> Dict[str, Any]:
        return dict(vars(self))


@dataclass
class FidelityReport:
    """What :func:`fidelity` returns: per-layer figures, the output's, the attribution and provenance."""

    layers: Dict[str, LayerFidelity]
    output: str
    steps: int
    batch: int
    attribution: Dict[str, Dict[str, LayerFidelity]] = field(default_factory=dict)
    saturation: Dict[str, int] = field(default_factory=dict)
    warnings: List[str] = field(default_factory=list)
    source: str = ""
    precision: Dict[str, Any] = field(default_factory=dict)

    @property
    def agreement(self) -> float:
        """Output-layer spike agreement of the integer program with the float source."""
        return self.layers[self.output].agreement

    def to_dict(self) -> Dict[str, Any]:
        return {"source": self.source, "output": self.output, "steps": self.steps, "batch": self.batch,
                "layers": {k: v.to_dict() for k, v in self.layers.items()},
                "attribution": {e: {k: v.to_dict() for k, v in d.items()} for e, d in self.attribution.items()},
                "saturation": dict(self.saturation), "warnings": list(self.warnings),
                "precision": dict(self.precision)}


# ------------------------------------------------------------------------------------------------- metrics
def compare_spikes(ref: np.ndarray, other: np.ndarray, readout: bool = False) -> LayerFidelity:
    """Figures for two (batch, time, n) arrays aligned step for step (spikes 0/1; ``readout``: voltages, compared
    by the sign of their difference from each sample's mean is meaningless, so only argmax and correlation)."""
    ref = np.asarray(ref, dtype=np.float64).reshape(ref.shape[0], ref.shape[1], -1)
    other = np.asarray(other, dtype=np.float64).reshape(ref.shape)
    if readout:
        a, b = ref.mean(axis=1), other.mean(axis=1)
        corr = _corr(a, b)
        return LayerFidelity(float("nan"), corr, None, 0, 0, float(np.mean(a.argmax(1) == b.argmax(1))))
    diff = ref != other
    steps_bad = np.flatnonzero(diff.any(axis=(0, 2)))
    ca, cb = ref.sum(axis=1), other.sum(axis=1)
    am = float(np.mean(ca.argmax(1) == cb.argmax(1))) if ca.size else None
    return LayerFidelity(float(1.0 - diff.mean()) if diff.size else 1.0, _corr(ca, cb),
                         int(steps_bad[0]) if steps_bad.size else None, int(ca.sum()), int(cb.sum()), am)


def _corr(a: np.ndarray, b: np.ndarray) -> Optional[float]:
    a, b = a.reshape(-1), b.reshape(-1)
    if a.size < 2 or a.std() == 0 or b.std() == 0:
        return 1.0 if np.array_equal(a, b) else None
    return float(np.corrcoef(a, b)[0, 1])


# -------------------------------------------------------------------------------------------- float models
def normalised_graph(graph: ir.Graph, target: Any = "loihi2") -> ir.Graph:
    """The graph after the compile pipeline's graph passes (what :func:`toolchain.passes.quantise` reads)."""
    from .passes.pipeline import CompileContext, pipeline_for, run_pipeline
    from .targets import load_target
    spec = load_target(target)
    passes = [p for p in pipeline_for(spec, partition=False) if p.name != "quantise"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return run_pipeline(graph, passes, CompileContext(spec))


def _scale(program: Program, name: str, n: int) -> np.ndarray:
    s = program.metadata.get("v_scale", {}).get(name)
    if s is None:
        raise InputError("the program records no v_scale for this group (compiled by an older toolchain?)",
                         node=name, field="v_scale")
    return np.broadcast_to(np.asarray(s, dtype=np.float64), (n,)).copy()


def _realised(program: Program, prefix: str) -> Optional[Tuple[np.ndarray, List[str]]]:
    """Sum of the a_in contributions (W_lava << exp, float64) of synapse groups named ``prefix`` or
    ``prefix@d<k>``, and of their ``weight_split`` companions (``prefix.lo``, ``prefix.lo@d<k>``); None when there
    is none."""
    from .passes.quantise import SPLIT_SUFFIX
    tot, names = None, []
    lo = prefix + SPLIT_SUFFIX
    for s in program.synapses:
        if s.name in (prefix, lo) or s.name.startswith(prefix + "@d") or s.name.startswith(lo + "@d"):
            w = fx.lava_weights(s.weight.to_dense().astype(np.int64), num_weight_bits=s.num_weight_bits,
                                sign_mode=s.sign_mode).astype(np.float64) * 2.0 ** s.weight_exp
            tot = w if tot is None else tot + w
            names.append(s.name)
    return None if tot is None else (tot, names)


def effect_graph(gn: ir.Graph, program: Program, effects: Sequence[str]) -> ir.Graph:
    """The normalised float graph ``gn`` with the integer program's ``effects`` (names from :data:`EFFECTS`) put
    in: the float model that has exactly those causes of drift and no other."""
    from .passes.quantise import QuantOptions, _model
    from .targets import load_target
    unknown = sorted(set(effects) - set(EFFECTS))
    if unknown:
        raise InputError(f"unknown effect(s) {unknown}; effects are {', '.join(EFFECTS)}", field="effects")
    target = load_target(program.target)
    dt = float(program.dt)
    nodes = dict(gn.nodes)
    meta = dict(gn.metadata)
    into: Dict[str, List[str]] = {}
    for name, node in gn.nodes.items():
        if isinstance(node, ir.Linear):
            cur = name
            while True:  # follow Delay nodes to the population
                nxt = gn.successors(cur)[0]
                if isinstance(gn[nxt], ir.Delay):
                    cur = nxt
                    continue
                break
            into.setdefault(nxt, []).append(name)
    for p, node in gn.nodes.items():
        if not isinstance(node, ir.nodes._Population) or p not in program.groups:
            continue
        grp = program.groups[p]
        opts = QuantOptions(reset=grp.reset_mode if grp.spiking else None)
        m = _model(node, dt, opts, target)
        S = _scale(program, p, node.size)
        gain = S * m.c / 64.0  # a_in per unit float weight
        gain = np.where(gain == 0, 1.0, gain)
        affs = [a for a in into.get(p, []) if isinstance(gn[a], ir.Affine)]
        if "weights" in effects:
            for lin in into.get(p, []):
                got = _realised(program, lin)
                if got is None:
                    continue
                w_eff = got[0] / gain[:, None]
                old = nodes[lin]
                nodes[lin] = old.replace(weight=Dense(w_eff))
        changes: Dict[str, Any] = {}
        if "bias" in effects:
            parts = [r for r in (_realised(program, f"{p}.bias{sfx}") for sfx in ("", "_pos", "_neg"))
                     if r is not None]
            B = fx.effective_bias(grp.bias_mant, grp.bias_exp).astype(np.float64)  # v units per step
            rem = program.quant_report.get("groups", {}).get(p, {}).get("bias_current_remainder")
            if parts:  # carried by the current: the Affine bias the synapses realise (exponents >= 0: exact)
                a = np.sum([r[0][:, 0] for r in parts], axis=0)
                if rem is not None:  # the remainder r (v units per step) the voltage bias and u_init carry for it:
                    # a current input of r·(1 − k) per step, k the current's decay (the float model's own here)
                    r = np.asarray(rem, dtype=np.float64)
                    a = a + r * (m.ratio_u if m.ratio_u is not None else 1.0) / 64.0
                    B = B - r
                for k, aff in enumerate(affs):
                    nodes[aff] = nodes[aff].replace(bias=a / gain if k == 0 else np.zeros(node.size))
            elif affs and isinstance(node, (ir.CubaLIF, ir.CubaLI, ir.LIF, ir.LI)):
                for aff in affs:  # folded into the voltage bias by the quantiser
                    nodes[aff] = nodes[aff].replace(bias=np.zeros(node.size))
            elif affs:  # IF / Integrator: the bias current is the Affine's bias times r
                c_bias = np.where(m.c_bias == 0, 1.0, m.c_bias)
                for k, aff in enumerate(affs):
                    nodes[aff] = nodes[aff].replace(bias=B / S / c_bias if k == 0 else np.zeros(node.size))
            if hasattr(node, "v_leak") and m.ratio_v is not None:
                rv = np.where(m.ratio_v == 0, 1.0, m.ratio_v)
                changes["v_leak"] = np.where(m.ratio_v == 0, node.v_leak, B / S / rv)
        if "decays" in effects:
            dv = grp.dv.astype(np.float64)
            if isinstance(node, (ir.LIF, ir.LI, ir.CubaLIF, ir.CubaLI)):
                rv_old = m.ratio_v
                rv_new = np.maximum(dv, 1e-9) / target.decay_unity
                tau_key = "tau" if isinstance(node, (ir.LIF, ir.LI)) else "tau_mem"
                changes[tau_key] = dt / rv_new
                changes["r"] = node.r * rv_old / rv_new
                if "v_leak" in changes:
                    changes["v_leak"] = changes["v_leak"] * rv_old / rv_new
                else:
                    changes["v_leak"] = node.v_leak * rv_old / rv_new
            if isinstance(node, (ir.CubaLIF, ir.CubaLI)):
                ru_new = (grp.du.astype(np.float64) + 1) / target.decay_unity
                changes["tau_syn"] = dt / ru_new
                changes["w_in"] = node.w_in * m.ratio_u / ru_new
        if "reset" in effects and hasattr(node, "reset_mode") and grp.spiking:
            changes["reset_mode"] = grp.reset_mode
        if changes:
            nodes[p] = nodes[p].replace(**changes)
    if "reset" in effects:
        meta["reset_timing"] = "immediate"
    out = ir.Graph(list(nodes.values()), list(gn.edges), dt=gn.dt, metadata=meta)
    return out


# ------------------------------------------------------------------------------------------------ the runs
def _float_run(graph: ir.Graph, x: np.ndarray) -> Dict[str, np.ndarray]:
    from .sim.float import simulate_float
    shape = tuple(graph[graph.inputs[0]].shape)  # normalised graphs hold flattened shapes
    res = simulate_float(graph, x.reshape(x.shape[:2] + shape).astype(np.float64), record=True)
    return res.values


def _int_run(program: Program, x: np.ndarray, steps: int) -> Tuple[Dict[str, np.ndarray], Dict[str, int]]:
    """Every group's output (spikes, or v for readouts) shifted back by its latency, and saturation counts."""
    from .sim.reference import simulate
    lat = {k: int(v) for k, v in program.metadata.get("latency_steps", {}).items()}
    pad = max(lat.values(), default=0)
    xi = np.concatenate([x, np.zeros((x.shape[0], pad) + x.shape[2:], x.dtype)], axis=1)
    port = program.inputs[0]
    xi = xi.reshape(xi.shape[:2] + tuple(port.shape))  # the program's port may hold the flattened shape
    res = simulate(program, xi.astype(np.int32), record=True)
    out: Dict[str, np.ndarray] = {}
    sat: Dict[str, int] = {}
    for g, grp in program.groups.items():
        if g not in lat:
            continue
        L = lat[g]
        arr = res.spikes[g] if grp.spiking else res.v[g]
        out[g] = np.asarray(arr)[:, L:L + steps]
        v = np.asarray(res.v[g])[:, L:L + steps]
        sat[g] = int(np.sum(np.abs(v.astype(np.int64)) >= fx.V_MAX))
    return out, sat


def _compare_all(ref: Dict[str, np.ndarray], other: Dict[str, np.ndarray], program: Program,
                 names: Sequence[str]) -> Dict[str, LayerFidelity]:
    out = {}
    for n in names:
        if n in ref and n in other:
            out[n] = compare_spikes(ref[n], other[n], readout=not program.groups[n].spiking)
    return out


def _with_readout(values: Dict[str, np.ndarray], graph: ir.Graph, program: Program) -> Dict[str, np.ndarray]:
    """When the compiler added an integrating readout for a graph ending in a linear layer, the float source's
    counterpart of its voltage is the running sum of the Output node's value."""
    ro, node = program.output, program.metadata.get("output_node")
    if ro not in graph.nodes and node in values and ro not in values:
        values = dict(values)
        values[ro] = np.cumsum(values[node], axis=1)
    return values


def _load_source(source: Union[str, os.PathLike, ir.Graph, Program], program: Optional[Program], dt: Optional[float],
                 reset: Optional[str], preset: Optional[str], target: Any, options: Dict[str, Any],
                 source_dt: Optional[float] = None) -> Tuple[ir.Graph, Program, str]:
    from .compile import compile_graph
    from .nir_io import load
    label = ""
    if isinstance(source, Program):
        program, source = source, None
    elif isinstance(source, (str, os.PathLike)) and Path(source).is_dir():
        program = Program.load(source)
        label = os.fspath(source)
        source = None
    if source is None:
        f = program.metadata.get("file")
        if not f or not Path(f).exists():
            raise InputError(f"the build does not name a readable source file ({f!r}); pass the .nir file as well",
                             file=label or None, field="metadata.file")
        co = program.metadata.get("compile_options", {})
        graph = load(f, dt=program.dt, reset=co.get("reset"), preset=program.metadata.get("preset"),
                     source_dt=source_dt)
        return graph, program, label or f
    if isinstance(source, ir.Graph):
        graph = source if dt is None else source.replace(dt=dt)
        label = graph.metadata.get("file") or "<graph>"
    else:
        label = os.fspath(source)
        graph = load(source, dt=dt, reset=reset, preset=preset, source_dt=source_dt)
    if program is None:
        program = compile_graph(graph, target, reset=reset, partition=False, **options)
    return graph, program, label


def fidelity(source: Union[str, os.PathLike, ir.Graph, Program], x: Optional[np.ndarray] = None, *,
             program: Optional[Program] = None, steps: Optional[int] = None, random: int = 8, rate: float = 0.2,
             seed: int = 0, dt: Optional[float] = None, reset: Optional[str] = None, preset: Optional[str] = None,
             target: Any = "loihi2", attribution: bool = True, source_dt: Optional[float] = None,
             **options: Any) -> FidelityReport:
    """Float source vs integer program, per layer, with the attribution of the drift (see the module docstring).

    ``source``: a ``.nir`` file (loaded with ``dt``/``reset``/``preset`` and compiled for ``target`` with
    ``options``), an IR graph, a build folder or a :class:`Program` (the source file named in its metadata is
    loaded again; ``source_dt``: see :func:`toolchain.nir_io.load`). ``x``: integer spikes (batch, time, *input shape); without it ``random`` samples of Bernoulli
    spikes at ``rate``. ``steps``: how many steps to compare (default: the input's length, else 100).
    """
    graph, program, label = _load_source(source, program, dt, reset, preset, target, options, source_dt)
    if len(graph.inputs) != 1:
        raise InputError(f"the graph has {len(graph.inputs)} inputs; fidelity drives exactly one", field="inputs")
    in_shape = graph[graph.inputs[0]].shape
    if x is None:
        T = int(steps or 100)
        x = (np.random.default_rng(seed).random((int(random), T) + tuple(in_shape)) < rate).astype(np.int32)
    else:
        x = np.asarray(x)
        if x.ndim != 2 + len(in_shape) or tuple(x.shape[2:]) != tuple(in_shape):
            raise InputError(f"expected shape (batch, time, {', '.join(map(str, in_shape))}), got {x.shape}",
                             field="input")
        if steps is not None:
            if steps > x.shape[1]:
                x = np.concatenate([x, np.zeros((x.shape[0], steps - x.shape[1]) + x.shape[2:], x.dtype)], 1)
            x = x[:, :steps]
    T = int(x.shape[1])
    pops = [n for n in graph.topological_order() if isinstance(graph[n], ir.nodes._Population)
            and n in program.groups]
    out_name = program.output
    if out_name not in pops:
        pops.append(out_name)
    ref = _with_readout(_float_run(graph, x), graph, program)
    got, sat = _int_run(program, x, T)
    rep = FidelityReport(_compare_all(ref, got, program, pops), out_name, T, int(x.shape[0]), saturation=sat,
                         source=label, warnings=list(program.quant_report.get("warnings", [])),
                         precision=dict(program.metadata.get("precision", {})))
    if attribution:
        gn = normalised_graph(graph, program.target)
        for eff in list(EFFECTS) + ["all"]:
            eg = effect_graph(gn, program, EFFECTS if eff == "all" else [eff])
            rep.attribution[eff] = _compare_all(ref, _float_run(eg, x), program, pops)
        eg = effect_graph(gn, program, EFFECTS)
        rep.attribution["integer_vs_all"] = _compare_all(_float_run(eg, x), got, program, pops)
    return rep


def _f(v: Optional[float], nd: int = 4) -> str:
    return "-" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.{nd}f}"


def format_fidelity(rep: FidelityReport) -> str:
    """A readable table: per layer, then the attribution of the output's drift."""
    lines = [f"fidelity of {rep.source}: {rep.batch} sample(s) x {rep.steps} steps, float source vs integer program"]
    lines.append(f"{'layer':<24}{'agreement':>10}{'count r':>9}{'argmax':>8}{'first div':>10}{'float sp':>10}"
                 f"{'int sp':>9}{'v sat':>7}")
    for n, lf in rep.layers.items():
        fd = "-" if lf.first_divergence is None else str(lf.first_divergence)
        lines.append(f"{n:<24}{_f(lf.agreement):>10}{_f(lf.count_corr, 3):>9}{_f(lf.argmax_agreement, 3):>8}"
                     f"{fd:>10}{lf.spikes_ref:>10}{lf.spikes_other:>9}{rep.saturation.get(n, 0):>7}")
    if rep.attribution:
        lines.append("")
        lines.append("attribution (float model with one cause of drift switched on, vs the float source):")
        head = f"{'cause':<16}" + "".join(f"{n[:14]:>16}" for n in rep.layers)
        lines.append(head)
        for eff, d in rep.attribution.items():
            label = "integer vs all" if eff == "integer_vs_all" else eff
            lines.append(f"{label:<16}" + "".join(f"{_f(d[n].agreement if n in d else None):>16}"
                                                   for n in rep.layers))
        lines.append("(integer vs all: what the integer arithmetic adds beyond the causes above: rounding toward "
                     "zero, saturation, wrap-around)")
    return "\n".join(lines)
