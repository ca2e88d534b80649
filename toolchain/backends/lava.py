"""Run a :class:`~toolchain.program.Program` on Lava 0.10.0's CPU simulator with the ``fixed_pt`` models.

Per sample, :func:`build_network` makes one Lava process graph:

* every :class:`~toolchain.program.InputPort` -> a ``RingBuffer`` (``lava.proc.io.source``; int32 data
  ``(n, steps)``; column ``t`` is sent at 0-based step ``t``);
* every :class:`~toolchain.program.NeuronGroup` -> a ``LIF`` (zero reset) or our :class:`LIFSubtract`
  (subtractive reset, :mod:`toolchain.backends.lava_procs.lif_subtract`). ``du``, ``dv`` and ``vth`` are
  shape-(1,) Vars in Lava; a per-neuron array given as their ``init`` is used as is by the bit-accurate model,
  whose arithmetic broadcasts it (checked by the per-neuron cases of ``tests/test_lava_bitexact.py``), so a
  group is never split (only ``Var.get()`` of such a Var fails, which we never call);
* every :class:`~toolchain.program.SynapseGroup` -> ``Dense`` (Dense storage), ``Sparse`` (Csr/Structured
  storage, scipy CSR weights) or ``DelayDense`` (``delay > 0``), with ``weight_exp``, ``num_weight_bits``,
  ``sign_mode`` and ``num_message_bits`` passed explicitly (see
  :func:`toolchain.sim.reference.synapse_process`);
* spikes of recorded groups -> ``lava.proc.io.sink.RingBuffer``; ``u`` and ``v`` of recorded groups -> Lava
  ``Monitor`` probes (read after every step, i.e. after the reset, like the reference simulator).

The network runs ``Loihi2SimCfg(select_tag="fixed_pt")`` for ``steps`` steps and the runtime is always stopped,
also on errors. The result has the format of :func:`toolchain.sim.reference.simulate`.

Batches (:func:`run_lava`'s ``batch_mode``, :func:`batch_plan`): by default a batch of two or more samples runs as
*one* Lava process graph per chunk of samples (:func:`build_batched_network`: B-wide processes, per-neuron
parameters tiled; groups of one LIF class pooled into one process, synapse groups of one source, destination and
parameter set into one synapse process — our ``BatchedSynapses``
(:mod:`toolchain.backends.lava_procs.batched_synapses`: one matrix product per synapse group over the batch) where
every row sum stays below 2^31, else Lava's ``Sparse`` with the block-diagonal CSR of the B copies, and
``DelaySparse`` for delayed groups; why each piece computes what the per-sample processes compute is in its
docstring), with records handed back through files by our recorder processes
(:mod:`toolchain.backends.lava_procs.recorder`; Lava's ``Var.get`` sends one channel message per value). Measured
on 784-256-256-10 (two shared cores): parallel per-sample process chains in one graph saturate at ~350
sample-steps/s (a process per layer and sample), block-diagonal ``Dense`` costs B^2 in memory and time,
block-diagonal ``Sparse`` grows linearly (Lava's CSR mat-vec, ~0.9 ns per stored synapse and copy: 7.5 ms per
step at B = 32, ~8x one network per sample), ``BatchedSynapses`` multiplies one copy's weights by the (B, n)
spike matrix (float32 BLAS GEMM: ~0.45 ms per step at B = 32; 20-37x one network per sample,
``benchmarks/sim_vs_lava.py``). Lava runs every process model in its own OS process and synchronises all of them
every step at a fixed cost per process (~0.4 ms CPU), now the largest share of a batched step; pooling cuts the
processes (8 -> 5 on 784-256-256-10). Not batched
(one network per sample, with a warning under "auto", an error under "batched"): sigma-delta groups, delayed
synapse groups whose sums can leave int32 (:func:`batch_blocker`), and networks of which two copies exceed
:data:`BATCH_SYNAPSE_BUDGET` stored synapses (a convolution is batched as its unrolled weights, so large conv
networks such as PilotNet, 14.1M unrolled synapses, run one network per sample, with Lava's ``Conv``).
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import warnings
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import ToolchainError
from ..program import Program
from ..sim.record import SimResult
from ..sim.reference import prepare_inputs, recorded_groups, synapse_process

__all__ = ["run_lava", "build_network", "build_batched_network", "batch_plan", "batch_blocker", "LavaNetwork",
           "LavaStepper", "run_config", "lava_conv_exact"]


def _allow_lava_start_method() -> None:
    """Lava's runtime module calls ``multiprocessing.set_start_method('fork')`` when it is first imported, which
    raises if anything fixed the start method before (tqdm does, by creating a multiprocessing lock for its first
    bar). When the method fixed is already "fork" (Linux's default) we clear the flag so that Lava's call
    succeeds and changes nothing."""
    import multiprocessing as mp
    if "lava.magma.runtime.message_infrastructure.multiprocessing" in sys.modules:
        return
    if mp.get_start_method(allow_none=True) == "fork":
        ctx = mp.context._default_context  # type: ignore[attr-defined]
        ctx._actual_context = None


def _lava():
    """Import Lava lazily (it is heavy) and give a clear error when it is missing."""
    _allow_lava_start_method()
    try:
        from lava.magma.core.run_conditions import RunSteps
        from lava.magma.core.run_configs import Loihi2SimCfg
        from lava.proc.dense.process import DelayDense, Dense
        from lava.proc.io.sink import RingBuffer as Sink
        from lava.proc.io.source import RingBuffer as Source
        from lava.proc.conv.process import Conv
        from lava.proc.lif.process import LIF, LIFReset
        from lava.proc.monitor.process import Monitor
        from lava.proc.sparse.process import Sparse
        from lava.proc.sdn.process import ActivationMode, Delta, Sigma, SigmaDelta
        from lava.utils.weightutils import SignMode
    except ImportError as exc:  # pragma: no cover - lava-nc is a dependency
        raise ToolchainError(f"Lava (lava-nc 0.10.0) is not importable: {exc}", field="backend") from exc
    from .lava_procs.lif_subtract import LIFSubtract, PyLifSubtractModelBitAcc
    return dict(RunSteps=RunSteps, Loihi2SimCfg=Loihi2SimCfg, Dense=Dense, DelayDense=DelayDense, Sparse=Sparse,
                Sink=Sink, Source=Source, LIF=LIF, LIFReset=LIFReset, Conv=Conv, Monitor=Monitor, SignMode=SignMode, LIFSubtract=LIFSubtract,
                PyLifSubtractModelBitAcc=PyLifSubtractModelBitAcc, Sigma=Sigma, Delta=Delta, SigmaDelta=SigmaDelta,
                ActivationMode=ActivationMode)


def run_config():
    """``Loihi2SimCfg(select_tag="fixed_pt")`` with our subtract-reset LIF model registered."""
    L = _lava()
    from .lava_procs.batched_synapses import BatchedSynapses, PyBatchedSynapsesModelBitAcc
    from .lava_procs.recorder import PySpikeRecorderModel, PyVarRecorderModel, SpikeRecorder, VarRecorder
    return L["Loihi2SimCfg"](select_tag="fixed_pt",
                             exception_proc_model_map={L["LIFSubtract"]: L["PyLifSubtractModelBitAcc"],
                                                       SpikeRecorder: PySpikeRecorderModel,
                                                       VarRecorder: PyVarRecorderModel,
                                                       BatchedSynapses: PyBatchedSynapsesModelBitAcc})


def _param(a: np.ndarray) -> Any:
    """A shared value as a python int (Lava's documented use), a per-neuron one as an int64 array."""
    a = np.asarray(a).astype(np.int64)
    return int(a[0]) if a.size and np.all(a == a[0]) else a


@dataclass
class LavaNetwork:
    """The Lava processes built for one sample (see :func:`build_network`)."""

    sources: Dict[str, Any]
    neurons: Dict[str, Any]
    synapses: Dict[str, Any]
    sinks: Dict[str, Any]
    monitors: Dict[str, Any]
    steps: int
    roots: List[Any] = field(default_factory=list)  # one process per connected component (each gets a run)
    started: List[Any] = field(default_factory=list)
    bias_schedule: Dict[str, np.ndarray] = field(default_factory=dict)  # group -> (steps, n) varying bias
    mon_vars: Dict[str, Dict[str, str]] = field(default_factory=dict)  # group -> {"u"/"v": probed Var name}

    def run(self) -> None:
        """Run every component for ``steps`` steps (blocking). Groups fed by a bias port whose value changes
        over time are run one step at a time, with ``bias_mant`` set before each step."""
        L = _lava()
        cfg = run_config()
        if not self.bias_schedule:
            for root in self.roots:
                self.started.append(root)
                root.run(condition=L["RunSteps"](num_steps=self.steps), run_cfg=cfg)
            return
        for t in range(self.steps):
            for g, sched in self.bias_schedule.items():
                if t > 0:
                    self.neurons[g].bias_mant.set(sched[t].astype(np.int64))
            for root in self.roots:
                if root not in self.started:
                    self.started.append(root)
                root.run(condition=L["RunSteps"](num_steps=1), run_cfg=cfg)

    def stop(self) -> None:
        """Stop every runtime that was started (safe to call more than once, never raises)."""
        while self.started:
            root = self.started.pop()
            try:
                root.stop()
            except Exception:  # noqa: BLE001 - best effort: a failed runtime may already be gone
                pass

    def spikes(self, group: str) -> np.ndarray:
        """(steps, n) int64 spikes of a group with a sink."""
        return np.asarray(self.sinks[group].data.get()).T.astype(np.int64)

    def states(self, group: str) -> Dict[str, np.ndarray]:
        """``{"u": (steps, n), "v": (steps, n)}`` int64 from the group's monitor."""
        name = self.neurons[group].name
        var = self.mon_vars.get(group, {})
        return {k: np.asarray(mon.get_data()[name][var.get(k, k)]).reshape(self.steps, -1).astype(np.int64)
                for k, mon in self.monitors[group].items()}


def _components(program: Program) -> List[List[str]]:
    parent: Dict[str, str] = {}

    def find(a: str) -> str:
        while parent.setdefault(a, a) != a:
            a = parent[a]
        return a

    for name in list(program.groups) + [p.name for p in program.inputs]:
        find(name)
    for s in program.synapses:
        parent[find(s.src)] = find(s.dst)
    comps: Dict[str, List[str]] = {}
    for name in list(program.groups) + [p.name for p in program.inputs]:
        comps.setdefault(find(name), []).append(name)
    return list(comps.values())


def _lif_class(L: Dict[str, Any], name: str, g: Any) -> Tuple[Any, Dict[str, Any]]:
    """The Lava LIF process class for group ``g`` and its extra keyword arguments: ``LIFReset`` (with
    ``reset_interval``/``reset_offset``) for a periodic reset, ``LIFSubtract`` or ``LIF`` otherwise."""
    if g.reset_interval:
        if g.reset_mode == "subtract":
            raise ToolchainError("periodic reset (LIFReset) with subtractive reset has no Lava model",
                                 node=name, field="reset_interval")
        return L["LIFReset"], dict(reset_interval=g.reset_interval, reset_offset=g.reset_offset)
    return (L["LIFSubtract"] if g.reset_mode == "subtract" else L["LIF"]), {}


def build_network(program: Program, inputs: Mapping[str, np.ndarray], steps: int,
                  record: Sequence[str] = (), monitor: bool = True) -> LavaNetwork:
    """Lava processes for one sample. ``inputs``: port name -> (steps, n) integers. ``record``: groups whose
    spikes (sink) and, with ``monitor``, ``u``/``v`` (a Monitor each) are read back; the output group always gets a sink
    (when it spikes) and a monitor (when it does not)."""
    L = _lava()
    sign = {"mixed": L["SignMode"].MIXED, "excitatory": L["SignMode"].EXCITATORY,
            "inhibitory": L["SignMode"].INHIBITORY}
    sources = {}
    for p in program.inputs:
        if p.kind == "bias":
            continue
        data = np.ascontiguousarray(np.asarray(inputs[p.name]).reshape(steps, -1).T.astype(np.int32))
        sources[p.name] = L["Source"](data=data)
    bias_in = {q.target: np.asarray(inputs[q.name]).reshape(steps, -1) for q in program.inputs
               if q.kind == "bias"}
    schedule = {g: b for g, b in bias_in.items() if steps > 1 and np.any(b != b[:1])}
    neurons = {}
    for name, g in program.groups.items():
        if g.sdn is not None:
            neurons[name] = _sdn_process(L, name, g)
            continue
        cls, kw = _lif_class(L, name, g)
        bias = bias_in[name][0] if name in bias_in and steps > 0 else g.bias_mant
        neurons[name] = cls(shape=(g.size,), u=_param(g.u_init), v=_param(g.v_init), du=_param(g.du),
                            dv=_param(g.dv),
                            vth=_param(g.vth), bias_mant=np.asarray(bias).astype(np.int64),
                            bias_exp=g.bias_exp.astype(np.int64), name=f"lif_{name}", **kw)
    synapses = {}
    for s in program.synapses:
        nmb = program.message_bits(s.src)
        kw = dict(weight_exp=s.weight_exp, num_weight_bits=s.num_weight_bits, sign_mode=sign[s.sign_mode],
                  num_message_bits=nmb, name=f"syn_{s.name}")
        kind = synapse_process(s)
        src = sources[s.src] if s.src in sources else neurons[s.src]
        if kind == "sparse" and lava_conv_exact(s, nmb):
            w = s.weight
            proc = L["Conv"](weight=np.ascontiguousarray(w.kernel[:, :, ::-1, ::-1].transpose(0, 3, 2, 1)
                                                         ).astype(np.int32),
                             input_shape=w.in_shape, stride=w.stride[::-1], padding=w.padding[::-1],
                             dilation=w.dilation[::-1], groups=w.groups, num_message_bits=nmb,
                             name=f"syn_{s.name}")
            src.s_out.reshape(w.in_shape).connect(proc.s_in)
            proc.a_out.reshape((w.shape[0],)).connect(neurons[s.dst].a_in)
            synapses[s.name] = proc
            continue
        if kind == "dense":
            proc = L["Dense"](weights=s.weight.to_dense().astype(np.int32), **kw)
        elif kind == "sparse":
            import scipy.sparse as sps
            if hasattr(s.weight, "to_scipy"):
                w = s.weight.to_scipy()
            else:
                w = s.weight.to_csr().to_scipy()
            proc = L["Sparse"](weights=sps.csr_matrix(w, dtype=np.int32), **kw)
        else:
            dense = s.weight.to_dense().astype(np.int32)
            proc = L["DelayDense"](weights=dense, delays=np.full(dense.shape, s.delay, dtype=int),
                                   max_delay=s.delay, **kw)
        src.s_out.connect(proc.s_in)
        proc.a_out.connect(neurons[s.dst].a_in)
        synapses[s.name] = proc
    sink_groups, mon_groups = _recorded_groups(program, record, monitor)
    sinks = {}
    for g in sink_groups:
        sinks[g] = L["Sink"](shape=(program.groups[g].size,), buffer=steps)
        neurons[g].s_out.connect(sinks[g].a_in)
    monitors: Dict[str, Dict[str, Any]] = {}
    mon_vars: Dict[str, Dict[str, str]] = {}
    for g in mon_groups:  # one Monitor per Var: a Monitor with two probes fails to compile in Lava 0.10.0
        monitors[g] = {}
        sdn = program.groups[g].sdn
        if sdn is not None:  # sigma-delta: u <- sigma, v <- act (a Sigma has no act: sigma again)
            mon_vars[g] = {"u": "sigma", "v": "sigma" if sdn.kind == "sigma" else "act"}
        for var in ("u", "v"):
            mon = L["Monitor"]()
            mon.probe(getattr(neurons[g], mon_vars.get(g, {}).get(var, var)), steps)
            monitors[g][var] = mon
    roots = _roots(program, sources, neurons)
    return LavaNetwork(sources, neurons, synapses, sinks, monitors, steps, roots, bias_schedule=schedule,
                       mon_vars=mon_vars)


def _recorded_groups(program: Program, record: Sequence[str], monitor: bool) -> Tuple[List[str], List[str]]:
    """The groups whose spikes are sunk and those whose u and v are monitored: the recorded groups, plus the
    output group (spikes when it spikes, its voltage when it is a non-spiking readout)."""
    out = program.groups[program.output]
    sink_groups = list(record) + ([program.output] if out.spiking and program.output not in record else [])
    mon_groups = (list(record) if monitor else []) + \
        ([program.output] if not out.spiking and not (monitor and program.output in record) else [])
    return sink_groups, mon_groups


def _roots(program: Program, sources: Mapping[str, Any], neurons: Mapping[str, Any]) -> List[Any]:
    """One process per connected component of the network (its first source or neuron group), for Lava to run."""
    roots = []
    for comp in _components(program):
        first = next((c for c in comp if c in sources or c in neurons), None)
        if first is not None:
            roots.append(sources[first] if first in sources else neurons[first])
    return roots


def _sdn_process(L: Dict[str, Any], name: str, g: Any) -> Any:
    """Lava's own ``SigmaDelta``/``Sigma``/``Delta`` (``lava/proc/sdn/process.py``) for a sigma-delta group: the
    threshold and bias mantissas as given (the process scales them by ``2^(spike_exp + state_exp)``)."""
    q = g.sdn
    if q.kind == "sigma":
        return L["Sigma"](shape=(g.size,))
    if np.any(q.vth != q.vth[0]):
        raise ToolchainError("Lava's sdn processes hold one threshold per process (a shape-(1,) Var); this group "
                             "has one per neuron", node=name, field="sdn.vth")
    if q.kind == "delta":
        return L["Delta"](shape=(g.size,), vth=_param(q.vth), cum_error=q.cum_error, spike_exp=q.spike_exp,
                          state_exp=q.state_exp)
    mode = L["ActivationMode"].RELU if q.act_mode == "relu" else L["ActivationMode"].UNIT
    return L["SigmaDelta"](shape=(g.size,), vth=_param(q.vth), bias=np.asarray(q.bias).astype(np.int64),
                           act_mode=mode, cum_error=q.cum_error, spike_exp=q.spike_exp, state_exp=q.state_exp,
                           name=f"sdn_{name}")


def lava_conv_exact(syn: Any, num_message_bits: int = 0) -> bool:
    """True when Lava's ``Conv`` process computes exactly the Program's rule for ``syn``: a
    :class:`~toolchain.ir.storage.Conv` storage without delay or weight exponent (Lava's Conv ignores
    ``weight_exp`` and ``num_weight_bits``, lava issue #803) whose kernel passes Lava's Dense clip/truncation
    unchanged (Conv applies none), binary input, and no row sum that could reach Conv's 24-bit output clamp
    (``proc/conv/models.py`` L71-79, ``utils.signed_clamp(x, bits=24)``)."""
    from ..fixedpoint import lava_weights
    from ..ir.storage import Conv as ConvStorage
    w = syn.weight
    if not isinstance(w, ConvStorage) or syn.delay or syn.weight_exp or num_message_bits:
        return False
    k = w.kernel.astype(np.int64)
    if not np.array_equal(lava_weights(k, syn.num_weight_bits, syn.sign_mode).astype(np.int64), k):
        return False
    per_out = np.abs(k).reshape(k.shape[0], -1).sum(axis=1)
    return bool(per_out.max(initial=0) < 2 ** 23)


# ----------------------------------------------------------------------------------------------- batched runs
#: Synapses (stored weights) one batched Lava network may hold: the block-diagonal CSR matrices take 8 bytes per
#: synapse (int32 value + int32 column) and Lava holds about four copies of each (the Var's initial value, the
#: process model's, and the clip and truncation results of ``proc/sparse/models.py`` L87-90): ~0.5 GB at the limit.
BATCH_SYNAPSE_BUDGET = 2 ** 24
BATCH_MODES = ("auto", "batched", "per_sample")
_INT32 = 2 ** 31


def _stored_csr(syn: Any) -> Any:
    """The synapse group's stored weights (before Lava's clip/truncation) as a scipy CSR int32 matrix
    (n_out, n_in): Dense storage without its zeros, Csr/Conv/Structured storage as stored."""
    import scipy.sparse as sps
    w = syn.weight
    if hasattr(w, "to_scipy"):
        m = w.to_scipy()
    elif hasattr(w, "to_csr"):
        m = w.to_csr().to_scipy()
    else:
        m = w.to_dense()
    return sps.csr_matrix(m, dtype=np.int32)


def _row_abs(program: Program, syn: Any) -> np.ndarray:
    """``sum |w| · payload`` of every row of one copy (int64, length n_out), with the weights Lava really uses
    (:func:`toolchain.fixedpoint.lava_weights`) and the largest payload of the source (1 for binary spikes)."""
    from ..fixedpoint import lava_weights
    m = _stored_csr(syn)
    if m.nnz == 0:
        return np.zeros(m.shape[0], np.int64)
    a = np.abs(lava_weights(m.data, syn.num_weight_bits, syn.sign_mode).astype(np.int64))
    rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
    payload = 1 if syn.src in program.groups else 2 ** program.input_port(syn.src).num_message_bits - 1
    sums = np.bincount(rows, weights=a, minlength=m.shape[0])  # float64: exact below 2^53 (|w| < 2^9, rows
    return sums.astype(np.int64) * max(payload, 1)               # of fewer than 2^44 synapses)


def _row_abs_bound(program: Program, syn: Any) -> int:
    """The largest ``sum |w| · payload`` over the rows of one copy (:func:`_row_abs`)."""
    return int(_row_abs(program, syn).max(initial=0))


def batch_blocker(program: Program) -> Optional[str]:
    """Why ``program`` cannot run as one batched Lava network (:func:`build_batched_network`), or None.

    * sigma-delta groups (graded spikes between groups) are not batched (their processes are built per sample);
    * a delayed synapse group whose sum can leave int32: the batched network uses Lava's ``DelaySparse``, which
      forms the sum in int32 (``csr.dot``, ``proc/sparse/models.py`` L226-230) before the shift (L365-369), while
      ``DelayDense`` sums int32 products in int64 (``np.sum``, ``proc/dense/models.py`` L212-217): the two agree
      only while no sum wraps.
    """
    for name, g in program.groups.items():
        if getattr(g, "sdn", None) is not None:
            return f"group '{name}' is a sigma-delta group (not batched)"
    for s in program.synapses:
        if s.delay > 0 and _row_abs_bound(program, s) >= _INT32:
            return (f"synapse group '{s.name}' has a delay and sums that can leave int32 (DelaySparse and "
                    f"DelayDense wrap them differently)")
    return None


def batch_plan(program: Program, batch: int, batch_mode: str = "auto",
               max_batch: Optional[int] = None) -> List[Tuple[int, int, bool]]:
    """How :func:`run_lava` splits a batch: ``[(first, stop, batched), ...]`` — sample ranges, each one Lava
    network: a batched one (``batched``, :func:`build_batched_network`) or one per sample.

    ``batch_mode``: "per_sample" (Lava's own processes per sample: Dense, Sparse, DelayDense, Conv), "batched"
    (raises when :func:`batch_blocker` names a reason) or "auto" (batched for two samples or more where possible;
    otherwise per sample, with a warning when the batch had more than one sample and a blocker prevented it).
    Chunks hold at most ``max_batch`` samples (default: as many as fit :data:`BATCH_SYNAPSE_BUDGET`; a network
    whose single copy does not fit runs per sample — e.g. PilotNet's unrolled convolutions), balanced in size."""
    if batch_mode not in BATCH_MODES:
        raise ToolchainError(f"must be one of {BATCH_MODES}, got {batch_mode!r}", field="batch_mode")
    if max_batch is not None and int(max_batch) < 1:
        raise ToolchainError(f"must be at least 1, got {max_batch}", field="max_batch")
    per_sample = [(b, b + 1, False) for b in range(batch)]
    if batch_mode == "per_sample" or (batch_mode == "auto" and batch < 2) or batch < 1:
        return per_sample
    reason = batch_blocker(program)
    if reason is not None:
        if batch_mode == "batched":
            raise ToolchainError(f"cannot run this program batched on Lava: {reason}", field="batch_mode")
        warnings.warn(f"Lava: {reason}; running one network per sample", stacklevel=3)
        return per_sample
    nnz = sum(int(s.weight.nnz) for s in program.synapses)
    size = int(max_batch) if max_batch is not None else BATCH_SYNAPSE_BUDGET // max(nnz, 1)
    if size < 1 or (size == 1 and batch_mode == "auto"):
        if batch_mode == "batched" and max_batch is None and size < 1:
            raise ToolchainError(f"cannot run this program batched on Lava: one copy has {nnz} synapses, more "
                                 f"than the batch budget of {BATCH_SYNAPSE_BUDGET}", field="batch_mode")
        warnings.warn(f"Lava: one copy of the network has {nnz} stored synapses (convolutions count unrolled), "
                      f"two do not fit the batch budget of {BATCH_SYNAPSE_BUDGET}; running one network per "
                      f"sample", stacklevel=3)
        return per_sample
    chunks = -(-batch // min(size, batch))
    edges = [round(i * batch / chunks) for i in range(chunks + 1)]
    return [(edges[i], edges[i + 1], True) for i in range(chunks)]


def _block_diagonal(m: Any, copies: int) -> Any:
    """``copies`` copies of the CSR matrix ``m`` on the diagonal (scipy CSR, int32 values)."""
    import scipy.sparse as sps
    n_out, n_in = m.shape
    k = np.arange(copies, dtype=np.int64)
    indices = (m.indices[None, :].astype(np.int64) + n_in * k[:, None]).ravel()
    indptr = np.concatenate([[0], (m.indptr[1:][None, :].astype(np.int64) + m.nnz * k[:, None]).ravel()])
    return sps.csr_matrix((np.tile(m.data.astype(np.int32), copies), indices.astype(np.int32),
                           indptr.astype(np.int32 if m.nnz * copies < _INT32 else np.int64)),
                          shape=(n_out * copies, n_in * copies))


def _tile(a: Any, n: int, copies: int) -> np.ndarray:
    """A per-neuron parameter (scalar or length n) repeated for ``copies`` samples (int64, length n·copies)."""
    return np.tile(np.broadcast_to(np.asarray(a).astype(np.int64), (n,)), copies)


def _csr32(m: Any) -> Any:
    """``m`` (scipy CSR) with int32 values and column indices, and int32 row pointers where they fit."""
    import scipy.sparse as sps
    return sps.csr_matrix((m.data.astype(np.int32), m.indices.astype(np.int32),
                           m.indptr.astype(np.int32 if m.nnz < _INT32 else np.int64)), shape=m.shape)


def _row_parts(m: Any, parts: int) -> List[Any]:
    """``m`` split by rows into ``parts`` matrices of its shape with about equal stored synapses: part ``k`` holds
    the rows of one contiguous row range, the other rows are empty (every row is in exactly one part)."""
    import scipy.sparse as sps
    if parts <= 1:
        return [m]
    n = m.shape[0]
    edges = [0] + [int(c) for c in np.searchsorted(m.indptr, np.linspace(0, m.nnz, parts + 1)[1:-1])] + [n]
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        a, b = int(m.indptr[lo]), int(m.indptr[hi])
        ptr = np.concatenate([np.zeros(lo, np.int64), m.indptr[lo:hi + 1].astype(np.int64) - a,
                              np.full(n - hi, b - a, np.int64)])
        out.append(_csr32(sps.csr_matrix((m.data[a:b], m.indices[a:b], ptr), shape=m.shape)))
    return out


#: Batched networks pool processes (:func:`build_batched_network`); False builds one process per group and per
#: synapse group (the layout before pooling; ``benchmarks/sim_vs_lava.py`` measures both).
BATCH_POOL = True
#: A pooled synapse matrix is split by rows into parts of at least this many stored synapses, one Lava ``Sparse``
#: process each (at most :data:`SPLIT_MAX_PARTS`): Lava runs every process model in its own OS process, so the
#: parts' mat-vecs can run on separate cores.
SPLIT_SYNAPSES = 2 ** 21
#: The most parts one matrix is split into (None: the number of CPU cores). 1 (no split) by default: on two
#: shared cores, nearly idle, the input matrix of 784-256-256-10 at B = 32 in two parts ran no faster (8.32x one
#: network per sample against 8.43x unsplit, 6.75x against 7.17x in a second run; 2026-12-03), one process more.
SPLIT_MAX_PARTS: Optional[int] = 1
#: Non-delayed synapse matrices of batched networks are our ``BatchedSynapses`` (one matrix product per synapse
#: group over the batch, :mod:`toolchain.backends.lava_procs.batched_synapses`) where every row sum stays below
#: 2^31; False: Lava's ``Sparse`` with the block-diagonal CSR of the B copies everywhere (the layout before;
#: ``benchmarks/sim_vs_lava.py`` measures both).
BATCH_GEMM = True
#: ``BatchedSynapses`` multiplies a synapse group's weights as a dense float matrix (one BLAS GEMM over the
#: batch) when they fill at least this fraction of their matrix, otherwise as scipy CSR x dense int32: measured
#: (B = 32, one core, 2026-12-04) on a 2000x2000 matrix, CSR x dense 1.6 / 5.1 / 23.5 ms at density 0.02 / 0.1 /
#: 0.3, the float32 GEMM 6.5 / 7.6 / 5.9 ms (Lava's block-diagonal CSR mat-vec: 2.3 / 9.8 / 29.8 ms).
GEMM_MIN_DENSITY = 0.125
#: The largest matrix (n_dst x n_src entries, one copy) multiplied densely (float64: 128 MB per copy at the limit).
GEMM_DENSE_MAX = 2 ** 24
#: BLAS threads of each ``BatchedSynapses`` model's OS process (None: BLAS's default). 1: Lava already runs every
#: process model in its own OS process, and extra BLAS threads compete with them for the cores.
GEMM_BLAS_THREADS: Optional[int] = 1


def _gemm_mode(w: Any) -> str:
    """"dense" (BLAS GEMM over the batch) when the stored weights ``w`` (scipy CSR, one copy) fill at least
    :data:`GEMM_MIN_DENSITY` of their matrix and it has at most :data:`GEMM_DENSE_MAX` entries, else "csr"
    (scipy CSR x dense)."""
    cells = int(w.shape[0]) * int(w.shape[1])
    return "dense" if cells <= GEMM_DENSE_MAX and w.nnz >= GEMM_MIN_DENSITY * cells else "csr"


def _gemm_process(program: Program, members: Sequence[Any], kind: str, start: Mapping[str, int], B: int,
                  n_in: int, n_out: int, weight_exp: int, num_weight_bits: int, sign_mode: Any, bound: int,
                  name: str) -> Any:
    """One :class:`~toolchain.backends.lava_procs.batched_synapses.BatchedSynapses` for the synapse groups
    ``members`` (same source, destination pool and Lava parameters): one block per group, at its destination
    group's rows and its source's columns in the pools' flat layout; float type from the row ``bound`` (< 2^31)."""
    from .lava_procs.batched_synapses import BatchedSynapses, exact_float_dtype
    blocks = []
    for m in members:
        w = _stored_csr(m)
        blocks.append((start[m.dst], 0 if kind == "port" else start[m.src], w, _gemm_mode(w)))
    return BatchedSynapses(n_in=n_in, n_out=n_out, batch=B, blocks=blocks, weight_exp=weight_exp,
                           num_weight_bits=num_weight_bits, sign_mode=sign_mode, dtype=exact_float_dtype(bound),
                           blas_threads=GEMM_BLAS_THREADS, name=name)


def _sparse_processes(program: Program, members: Sequence[Any], dst_groups: Sequence[str], kind: str,
                      start: Mapping[str, int], B: int, n_cols: int, weight_exp: int, num_weight_bits: int,
                      sign_mode: Any, delay: int, bound: int, pool: bool, L: Dict[str, Any], name: str) -> List[Any]:
    """Lava's ``Sparse`` (split by rows into parts, :data:`SPLIT_SYNAPSES`) or ``DelaySparse`` holding the
    block-diagonal CSR of the B copies of every group in ``members``, placed at their groups' rows and columns."""
    import scipy.sparse as sps
    rows = []
    for g in dst_groups:
        n_rows = B * program.groups[g].size
        block = sps.csr_matrix((n_rows, n_cols), dtype=np.int32)
        for m in members:
            if m.dst != g:
                continue
            bd = _block_diagonal(_stored_csr(m), B)
            col0 = 0 if kind == "port" else start[m.src]
            block = block + sps.csr_matrix((bd.data, bd.indices.astype(np.int64) + col0, bd.indptr),
                                           shape=(n_rows, n_cols))
        rows.append(block)
    w = _csr32(sps.vstack(rows, format="csr") if len(rows) > 1 else rows[0].tocsr())
    src = members[0].src
    nmb = program.input_port(src).num_message_bits if kind == "port" else 0
    if nmb == 0 and delay == 0 and bound < _INT32:
        nmb = 1  # binary spikes through the CSR mat-vec (see build_batched_network's docstring)
    kw = dict(weight_exp=weight_exp, num_weight_bits=num_weight_bits, sign_mode=sign_mode, num_message_bits=nmb)
    if delay > 0:
        delays = sps.csr_matrix((np.full(w.nnz, delay, dtype=int), w.indices, w.indptr), shape=w.shape)
        from lava.proc.sparse.process import DelaySparse  # imported once _lava() prepared the runtime
        return [DelaySparse(weights=w, delays=delays, max_delay=delay, name=name, **kw)]
    cap = SPLIT_MAX_PARTS if SPLIT_MAX_PARTS is not None else (os.cpu_count() or 1)
    n_parts = max(1, min(cap, w.nnz // SPLIT_SYNAPSES)) if pool else 1
    return [L["Sparse"](weights=m, name=f"{name}_{k}", **kw) for k, m in enumerate(_row_parts(w, n_parts))]


def build_batched_network(program: Program, inputs: Mapping[str, np.ndarray], steps: int,
                          record: Sequence[str] = (), monitor: bool = True, pool: Optional[bool] = None,
                          gemm: Optional[bool] = None) -> LavaNetwork:
    """One Lava network that runs B samples side by side. ``inputs``: port name -> (B, steps, n) integers.

    Layout (``pool``, default :data:`BATCH_POOL`): every group of a connected component whose Lava LIF class
    and class arguments are the same (``LIF``, ``LIFSubtract``, ``LIFReset`` with one interval and offset) is
    one B-wide LIF process (a *pool*: group-major, then sample-major — neuron ``i`` of sample ``b`` of group
    ``g`` is entry ``start(g) + b·n_g + i``; per-neuron parameters tiled and concatenated); synapse groups from
    the same source (an input port's ``RingBuffer`` or a pool) into the same pool with the same ``weight_exp``,
    ``num_weight_bits``, ``sign_mode``, payload and delay are one synapse process. Which one (``gemm``, default
    :data:`BATCH_GEMM`):

    * no delay and every row sum ``sum |w|·payload`` (over the merged groups of the row, Lava's clipped and
      truncated weights, :func:`_row_abs`) below 2^31: our ``BatchedSynapses``
      (:mod:`toolchain.backends.lava_procs.batched_synapses`), one block per synapse group at its destination
      group's rows and its source's columns, each computed as one product over the batch — a float GEMM
      (float32 below 2^24, float64 otherwise: exact) when the group's weights fill at least
      :data:`GEMM_MIN_DENSITY` of a matrix of at most :data:`GEMM_DENSE_MAX` entries, else scipy CSR x dense
      int32 (sparse and unrolled convolution weights); never split;
    * otherwise (row sums from 2^31 on — graded payloads with wide weights —, or ``gemm=False``): Lava's
      ``Sparse`` holding the block-diagonal CSR of the B copies of each group, placed at their groups' rows and
      columns; a matrix of more than :data:`SPLIT_SYNAPSES` stored synapses is split by rows into several
      ``Sparse`` processes (one per core at most, :data:`SPLIT_MAX_PARTS`; :data:`SPLIT_SYNAPSES` each at
      least), whose outputs Lava sums into the pool's ``a_in``;
    * delayed synapse groups: one ``DelaySparse`` each (never merged nor split).

    Without pooling every group is its own LIF process and every synapse group its own synapse process (chosen
    as above). Why this computes what the per-sample processes compute:

    * a ``Dense`` (per-sample) and a ``Sparse`` (batched) fixed_pt model compute the same integers: the same clip
      and truncation (``proc/dense/models.py`` L87-90, ``proc/sparse/models.py`` L87-90), elementwise with the
      shared ``num_weight_bits``/``sign_mode``; for binary input the sum of the active columns in int64 (L102),
      for graded input the int32 product ``weights.dot(s_in)`` (L99, wrapping the same way in numpy and scipy),
      then the shift by ``weight_exp`` (L103-107); the zero blocks add nothing;
    * merged synapse groups: a row holds the synapses of one destination neuron; two groups into the same
      destination group share rows only when ``weight_exp >= 0`` — the left shift of the int32 sum equals the sum
      of the shifted int32 sums modulo 2^32, which is what the LIF's ``a_in`` forms when it adds the messages of
      separate processes (``PyInPortVectorDense.recv``, ``magma/core/model/py/ports.py`` L346-351); with a right
      shift they go to separate processes, as per sample;
    * split matrices: every row is in one part, the others send 0 for it, and ``a_in`` adds the parts' messages;
    * ``BatchedSynapses``: Lava's clip and truncation (imported from ``lava.utils.weightutils``) on one copy's
      weights, ``a_buff`` sent a step later, the shift by ``weight_exp`` (Lava's own expression on the int32 sum);
      below 2^31 neither of Lava's sums (int32 dot, or the int64 column sum of binary input) wraps, so both are
      the exact integer sum, which the float GEMM (below 2^24 / 2^53) and the int32 CSR product form exactly
      (details in that module's docstring); blocks of different synapse groups into the same rows add up in the
      same int32 sum as the merged rows of a ``Sparse``;
    * binary sources are given ``num_message_bits=1``: Lava's Sparse then forms ``weights.dot(s_in)``
      (``proc/sparse/models.py`` L97-99, scipy's CSR mat-vec, work in proportion to the synapses) instead of the
      column selection of L101-102 (which copies the selected columns every step and costs several times more);
      for 0/1 inputs both are the sum of the active columns, identical while no row sum (over every merged group
      of the row) reaches 2^31 — checked per matrix (:func:`_row_abs`), otherwise the binary path is kept;
    * ``DelaySparse`` with every synapse's delay = the group's delay equals ``DelayDense`` while no sum leaves
      int32 (:func:`batch_blocker` refuses the rest);
    * a convolution (Conv storage) becomes the block-diagonal ``Sparse`` of its unrolled weights: where the
      per-sample network uses Lava's ``Conv`` (:func:`lava_conv_exact`) the kernel passes the clip and truncation
      unchanged, the weight exponent is 0 and no sum reaches Conv's 24-bit clamp, so both compute the same; the
      unrolled matrix can be large (:func:`batch_plan` keeps within :data:`BATCH_SYNAPSE_BUDGET`);
    * per-neuron ``du``, ``dv``, ``vth``, ``bias`` arrays are used elementwise by the LIF models (see the module
      docstring), so groups with different parameters share a pool;
    * bias ports: the ``bias_mant`` of the pool holds every sample's bias (set before each step when it
      changes over time, as per sample); ``LIFReset``'s interval and offset are shared by its pool.

    Records come from our recorders (:mod:`toolchain.backends.lava_procs.recorder`), one per pool and record
    kind, keeping the recorded groups' entries only.
    """
    L = _lava()
    pool = BATCH_POOL if pool is None else bool(pool)
    gemm = BATCH_GEMM if gemm is None else bool(gemm)
    sign = {"mixed": L["SignMode"].MIXED, "excitatory": L["SignMode"].EXCITATORY,
            "inhibitory": L["SignMode"].INHIBITORY}
    first = next(iter(inputs.values()))
    B = int(first.shape[0])
    sources = {}
    for p in program.inputs:
        if p.kind == "bias":
            continue
        a = np.asarray(inputs[p.name]).reshape(B, steps, -1)
        sources[p.name] = L["Source"](data=np.ascontiguousarray(a.transpose(0, 2, 1).reshape(-1, steps)
                                                                 ).astype(np.int32))
    bias_in = {q.target: np.asarray(inputs[q.name]).reshape(B, steps, -1).transpose(1, 0, 2).reshape(steps, -1)
               for q in program.inputs if q.kind == "bias"}
    # pools: component, LIF class and its arguments
    comp = {n: i for i, c in enumerate(_components(program)) for n in c}
    pools: Dict[Any, List[str]] = {}
    for name, g in program.groups.items():
        cls, kw = _lif_class(L, name, g)
        key = (comp[name], cls.__name__, tuple(sorted(kw.items()))) if pool else (name,)
        pools.setdefault(key, []).append(name)
    start: Dict[str, int] = {}
    neurons: Dict[str, Any] = {}
    schedule: Dict[str, np.ndarray] = {}
    width: Dict[Any, int] = {}
    pool_of: Dict[str, Any] = {}
    procs: Dict[Any, Any] = {}
    for key, names in pools.items():
        o = 0
        for g in names:
            start[g], pool_of[g] = o, key
            o += B * program.groups[g].size
        width[key] = o
        grp = [program.groups[g] for g in names]

        def cat(f, grp=grp):
            return np.concatenate([_tile(f(g), g.size, B) for g in grp])

        def bias_at(t, names=names):
            return np.concatenate([bias_in[g][t].astype(np.int64) if g in bias_in
                                   else _tile(program.groups[g].bias_mant, program.groups[g].size, B)
                                   for g in names])

        cls, kw = _lif_class(L, names[0], grp[0])
        proc = cls(shape=(o,), u=_param(cat(lambda g: g.u_init)), v=_param(cat(lambda g: g.v_init)),
                   du=_param(cat(lambda g: g.du)),
                   dv=_param(cat(lambda g: g.dv)), vth=_param(cat(lambda g: g.vth)),
                   bias_mant=bias_at(0) if steps > 0 else cat(lambda g: g.bias_mant),
                   bias_exp=cat(lambda g: g.bias_exp), name=f"lif_{names[0]}" + ("_pool" if len(names) > 1 else ""),
                   **kw)
        procs[key] = proc
        for g in names:
            neurons[g] = proc
        if steps > 1 and any(g in bias_in and np.any(bias_in[g] != bias_in[g][:1]) for g in names):
            schedule[names[0]] = np.stack([bias_at(t) for t in range(steps)])
    # synapse matrices: source, destination pool, Lava parameters (delayed groups alone; with a right shift,
    # groups into the same destination group in separate matrices)
    bundles: Dict[Any, List[List[Any]]] = {}
    for s in program.synapses:
        src = ("port", s.src) if s.src in sources else ("pool", pool_of[s.src])
        key = (src, pool_of[s.dst], s.weight_exp, s.num_weight_bits, s.sign_mode, s.delay,
               s.name if (s.delay > 0 or not pool) else "")
        lists = bundles.setdefault(key, [])
        for members in lists:
            if s.weight_exp >= 0 or all(m.dst != s.dst for m in members):
                members.append(s)
                break
        else:
            lists.append([s])
    synapses = {}
    for key, lists in bundles.items():
        (kind, src), dst_key, wexp, nwb, smode, delay, _ = key
        src_proc = sources[src] if kind == "port" else procs[src]
        n_cols = B * program.input_port(src).size if kind == "port" else width[src]
        for members in lists:
            bounds = []
            for g in pools[dst_key]:
                bound = np.zeros(program.groups[g].size, np.int64)
                for m in members:
                    if m.dst == g:
                        bound = bound + _row_abs(program, m)
                bounds.append(int(bound.max(initial=0)))
            label = members[0].name + (f"+{len(members) - 1}" if len(members) > 1 else "")
            if gemm and delay == 0 and max(bounds) < _INT32:
                parts = [_gemm_process(program, members, kind, start, B, n_cols, width[dst_key], wexp, nwb,
                                       sign[smode], max(bounds), f"syn_{label}")]
            else:
                parts = _sparse_processes(program, members, pools[dst_key], kind, start, B, n_cols, wexp, nwb,
                                          sign[smode], delay, max(bounds), pool, L, f"syn_{label}")
            for proc in parts:
                src_proc.s_out.connect(proc.s_in)
                proc.a_out.connect(procs[dst_key].a_in)
            for m in members:
                synapses[m.name] = parts[0] if len(parts) == 1 else parts
    from .lava_procs.recorder import SpikeRecorder, VarRecorder
    sink_groups, mon_groups = _recorded_groups(program, record, monitor)
    rec_dir = tempfile.mkdtemp(prefix="snnc_lava_")
    sinks: Dict[str, Any] = {}
    monitors: Dict[str, Dict[str, Any]] = {}
    cols: Dict[Tuple[str, str], Tuple[int, int]] = {}
    for i, key in enumerate(pools):
        for kind, groups in (("s", [g for g in sink_groups if pool_of[g] == key]),
                             ("m", [g for g in mon_groups if pool_of[g] == key])):
            if not groups:
                continue
            select, o = [], 0
            for g in groups:
                n = B * program.groups[g].size
                select.append((start[g], start[g] + n))
                cols[(kind, g)] = (o, o + n)
                o += n
            if kind == "s":
                rec = SpikeRecorder(shape=(width[key],), steps=steps, path=os.path.join(rec_dir, f"s{i}.npy"),
                                    select=select)
                procs[key].s_out.connect(rec.a_in)
                for g in groups:
                    sinks[g] = rec
                continue
            recs = {}
            for var in ("u", "v"):
                recs[var] = VarRecorder(shape=(width[key],), steps=steps,
                                        path=os.path.join(rec_dir, f"{var}{i}.npy"), select=select)
                recs[var].connect_var(getattr(procs[key], var))
            for g in groups:
                monitors[g] = recs
    roots = _roots(program, sources, neurons)
    return _FileRecordedNetwork(sources, neurons, synapses, sinks, monitors, steps, roots, bias_schedule=schedule,
                                record_dir=rec_dir, cols=cols)


@dataclass
class _FileRecordedNetwork(LavaNetwork):
    """A :class:`LavaNetwork` whose spikes and states come from our recorders
    (:mod:`toolchain.backends.lava_procs.recorder`: one file per record, written by the recorder's model after the
    last step) instead of ``Var.get()``, which sends one channel message per value; ``cols[("s"|"m", group)]``:
    the group's columns in its recorder's file. The files' folder is removed on :meth:`stop`."""

    record_dir: str = ""
    cols: Dict[Tuple[str, str], Tuple[int, int]] = field(default_factory=dict)

    def spikes(self, group: str) -> np.ndarray:
        """(steps, B·n) int64 spikes of a recorded group."""
        lo, hi = self.cols[("s", group)]
        return np.load(self.sinks[group].proc_params["path"])[:, lo:hi]

    def states(self, group: str) -> Dict[str, np.ndarray]:
        """``{"u": (steps, B·n), "v": (steps, B·n)}`` int64."""
        lo, hi = self.cols[("m", group)]
        return {k: np.load(rec.proc_params["path"])[:, lo:hi] for k, rec in self.monitors[group].items()}

    def stop(self) -> None:
        """Stop the runtimes, then remove the record files (never raises)."""
        super().stop()
        if self.record_dir:
            shutil.rmtree(self.record_dir, ignore_errors=True)


def _per_sample(a: np.ndarray, copies: int) -> np.ndarray:
    """(steps, copies·n) read back from a batched network -> (copies, steps, n)."""
    return a.reshape(a.shape[0], copies, -1).transpose(1, 0, 2)


def run_lava(program: Program, x: Union[np.ndarray, Mapping[str, np.ndarray]], steps: Optional[int] = None,
             record: Union[bool, Sequence[str]] = False, progress: Optional[bool] = None,
             on_sample: Optional[Any] = None, batch_mode: str = "auto",
             max_batch: Optional[int] = None) -> SimResult:
    """Run ``program`` on Lava (``fixed_pt``); same arguments and record format as
    :func:`toolchain.sim.reference.simulate` (no early exit). ``batch_mode`` (:func:`batch_plan`): "auto" runs a
    batch as batched networks (:func:`build_batched_network`, B samples in one Lava process graph) where it can,
    "batched" insists, "per_sample" builds one network per sample (:func:`build_network`); ``max_batch`` caps the
    samples per batched network. Lava's runtime is stopped after every network, also when it fails.
    ``on_sample(done, total)`` is called after each network (e.g. progress lines for a log)."""
    inputs, batch, steps = prepare_inputs(program, x, steps)
    rec = recorded_groups(program, record)
    out_name = program.output
    out_group = program.groups[out_name]
    out_kind = "spikes" if out_group.spiking else "v"
    sizes = {g: program.groups[g].size for g in program.groups}
    pdt = {g: np.int32 if program.groups[g].sdn is not None else np.uint8 for g in program.groups}
    spikes = {g: np.zeros((batch, steps, sizes[g]), pdt[g]) for g in rec}
    u = {g: np.zeros((batch, steps, sizes[g]), np.int32) for g in rec}
    v = {g: np.zeros((batch, steps, sizes[g]), np.int32) for g in rec}
    if out_kind == "spikes":
        spikes.setdefault(out_name, np.zeros((batch, steps, sizes[out_name]), pdt[out_name]))
    else:
        v.setdefault(out_name, np.zeros((batch, steps, sizes[out_name]), np.int32))
    if steps > 0:
        from tqdm.auto import tqdm
        show = (batch > 1 and sys.stderr.isatty()) if progress is None else progress
        plan = batch_plan(program, batch, batch_mode, max_batch)
        with tqdm(total=batch, desc="lava", unit="sample", disable=not show, leave=False) as bar:
            for lo, hi, batched in plan:
                k = hi - lo
                if batched:
                    net = build_batched_network(program, {n: a[lo:hi] for n, a in inputs.items()}, steps, rec)
                else:
                    net = build_network(program, {n: a[lo] for n, a in inputs.items()}, steps, rec)
                try:
                    with warnings.catch_warnings():  # inherited by Lava's forked processes: DelaySparse zeroes
                        # entries that the truncation removed (SparseEfficiencyWarning, harmless)
                        warnings.filterwarnings("ignore", message="Changing the sparsity structure")
                        net.run()
                    for g in spikes:
                        spikes[g][lo:hi] = _per_sample(net.spikes(g), k)
                    for g in net.monitors:
                        st = net.states(g)
                        if g in u:
                            u[g][lo:hi] = _per_sample(st["u"], k)
                        v[g][lo:hi] = _per_sample(st["v"], k)
                finally:
                    net.stop()
                bar.update(k)
                if on_sample is not None:
                    on_sample(hi, batch)
    output = spikes[out_name] if out_kind == "spikes" else v[out_name]
    return SimResult(spikes=spikes, u=u, v=v, output=output, output_group=out_name, output_kind=out_kind,
                     steps_run=np.full(batch, steps, dtype=np.int64), backend="lava",
                     groups=[g for g in program.groups if g in spikes or g in v])


class LavaStepper:
    """Step one sample through Lava by hand (``RunSteps(1)`` per call), e.g. for online early exit.

    ``with LavaStepper(program, x) as run: rec = run.step()`` — ``x``: (1, T, *shape) (or a mapping); each
    :meth:`step` advances one step and returns the output group's ``{"s": spikes, "u": u, "v": v}`` at that step
    (int64 arrays of length n, ``v`` after the reset). At most T steps; the runtime is stopped on exit.
    """

    def __init__(self, program: Program, x: Union[np.ndarray, Mapping[str, np.ndarray]],
                 steps: Optional[int] = None) -> None:
        inputs, batch, steps = prepare_inputs(program, x, steps)
        if batch != 1:
            raise ToolchainError(f"LavaStepper runs one sample, got a batch of {batch}", field="x")
        self.program = program
        self.steps = steps
        self.t = 0
        out = program.output
        self._net = build_network(program, {k: a[0] for k, a in inputs.items()}, steps,
                                  record=[out] if program.groups[out].spiking else [], monitor=False)
        if len(self._net.roots) != 1:
            raise ToolchainError("LavaStepper needs a connected network", field="program")

    def __enter__(self) -> "LavaStepper":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def step(self) -> Dict[str, np.ndarray]:
        """Advance one step; the output group's spikes, u and v at this step."""
        if self.t >= self.steps:
            raise ToolchainError(f"all {self.steps} steps have run", field="steps")
        L = _lava()
        root = self._net.roots[0]
        if not self._net.started:
            self._net.started.append(root)
        root.run(condition=L["RunSteps"](num_steps=1), run_cfg=run_config())
        self.t += 1
        out = self.program.output
        lif = self._net.neurons[out]
        n = self.program.groups[out].size
        if out in self._net.sinks:
            s = np.asarray(self._net.sinks[out].data.get())[:, self.t - 1].astype(np.int64)
        else:
            s = np.zeros(n, np.int64)
        return {"s": s, "u": np.asarray(lif.u.get()).reshape(n).astype(np.int64),
                "v": np.asarray(lif.v.get()).reshape(n).astype(np.int64)}

    def close(self) -> None:
        """Stop the runtime (idempotent)."""
        self._net.stop()
