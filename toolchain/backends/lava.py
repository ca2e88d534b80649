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
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np

from ..errors import ToolchainError
from ..program import Program
from ..sim.record import SimResult
from ..sim.reference import prepare_inputs, recorded_groups, synapse_process

__all__ = ["run_lava", "build_network", "LavaNetwork", "LavaStepper", "run_config", "lava_conv_exact"]


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
        from lava.utils.weightutils import SignMode
    except ImportError as exc:  # pragma: no cover - lava-nc is a dependency
        raise ToolchainError(f"Lava (lava-nc 0.10.0) is not importable: {exc}", field="backend") from exc
    from .lava_procs.lif_subtract import LIFSubtract, PyLifSubtractModelBitAcc
    return dict(RunSteps=RunSteps, Loihi2SimCfg=Loihi2SimCfg, Dense=Dense, DelayDense=DelayDense, Sparse=Sparse,
                Sink=Sink, Source=Source, LIF=LIF, LIFReset=LIFReset, Conv=Conv, Monitor=Monitor, SignMode=SignMode, LIFSubtract=LIFSubtract,
                PyLifSubtractModelBitAcc=PyLifSubtractModelBitAcc)


def run_config():
    """``Loihi2SimCfg(select_tag="fixed_pt")`` with our subtract-reset LIF model registered."""
    L = _lava()
    return L["Loihi2SimCfg"](select_tag="fixed_pt",
                             exception_proc_model_map={L["LIFSubtract"]: L["PyLifSubtractModelBitAcc"]})


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
        return {k: np.asarray(mon.get_data()[name][k]).reshape(self.steps, -1).astype(np.int64)
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
        kw: Dict[str, Any] = {}
        if g.reset_interval:
            if g.reset_mode == "subtract":
                raise ToolchainError("periodic reset (LIFReset) with subtractive reset has no Lava model",
                                     node=name, field="reset_interval")
            cls = L["LIFReset"]
            kw = dict(reset_interval=g.reset_interval, reset_offset=g.reset_offset)
        else:
            cls = L["LIFSubtract"] if g.reset_mode == "subtract" else L["LIF"]
        bias = bias_in[name][0] if name in bias_in and steps > 0 else g.bias_mant
        neurons[name] = cls(shape=(g.size,), v=_param(g.v_init), du=_param(g.du), dv=_param(g.dv),
                            vth=_param(g.vth), bias_mant=np.asarray(bias).astype(np.int64),
                            bias_exp=g.bias_exp.astype(np.int64), name=f"lif_{name}", **kw)
    synapses = {}
    for s in program.synapses:
        nmb = 0 if s.src in program.groups else program.input_port(s.src).num_message_bits
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
    out = program.groups[program.output]
    sink_groups = list(record) + ([program.output] if out.spiking and program.output not in record else [])
    mon_groups = (list(record) if monitor else []) + \
        ([program.output] if not out.spiking and not (monitor and program.output in record) else [])
    sinks = {}
    for g in sink_groups:
        sinks[g] = L["Sink"](shape=(program.groups[g].size,), buffer=steps)
        neurons[g].s_out.connect(sinks[g].a_in)
    monitors: Dict[str, Dict[str, Any]] = {}
    for g in mon_groups:  # one Monitor per Var: a Monitor with two probes fails to compile in Lava 0.10.0
        monitors[g] = {}
        for var in ("u", "v"):
            mon = L["Monitor"]()
            mon.probe(getattr(neurons[g], var), steps)
            monitors[g][var] = mon
    roots = []
    for comp in _components(program):
        first = next((c for c in comp if c in sources or c in neurons), None)
        if first is not None:
            roots.append(sources[first] if first in sources else neurons[first])
    return LavaNetwork(sources, neurons, synapses, sinks, monitors, steps, roots, bias_schedule=schedule)


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


def run_lava(program: Program, x: Union[np.ndarray, Mapping[str, np.ndarray]], steps: Optional[int] = None,
             record: Union[bool, Sequence[str]] = False, progress: Optional[bool] = None,
             on_sample: Optional[Any] = None) -> SimResult:
    """Run ``program`` on Lava (``fixed_pt``), one network per sample; same arguments and record format as
    :func:`toolchain.sim.reference.simulate` (no early exit). Lava's runtime is stopped after every sample, also
    when it fails. ``on_sample(done, total)`` is called after each sample (e.g. progress lines for a log)."""
    inputs, batch, steps = prepare_inputs(program, x, steps)
    rec = recorded_groups(program, record)
    out_name = program.output
    out_group = program.groups[out_name]
    out_kind = "spikes" if out_group.spiking else "v"
    sizes = {g: program.groups[g].size for g in program.groups}
    spikes = {g: np.zeros((batch, steps, sizes[g]), np.uint8) for g in rec}
    u = {g: np.zeros((batch, steps, sizes[g]), np.int32) for g in rec}
    v = {g: np.zeros((batch, steps, sizes[g]), np.int32) for g in rec}
    if out_kind == "spikes":
        spikes.setdefault(out_name, np.zeros((batch, steps, sizes[out_name]), np.uint8))
    else:
        v.setdefault(out_name, np.zeros((batch, steps, sizes[out_name]), np.int32))
    if steps > 0:
        from tqdm.auto import tqdm
        show = (batch > 1 and sys.stderr.isatty()) if progress is None else progress
        for b in tqdm(range(batch), desc="lava", unit="sample", disable=not show, leave=False):
            net = build_network(program, {k: a[b] for k, a in inputs.items()}, steps, rec)
            try:
                net.run()
                for g in spikes:
                    spikes[g][b] = net.spikes(g)
                for g in net.monitors:
                    st = net.states(g)
                    if g in u:
                        u[g][b] = st["u"]
                    v[g][b] = st["v"]
            finally:
                net.stop()
            if on_sample is not None:
                on_sample(b + 1, batch)
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
