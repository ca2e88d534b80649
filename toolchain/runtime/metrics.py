"""Inference metrics with NeuroBench's definitions, for a PyTorch run or for a compiled Program and its simulation.

Definitions (NeuroBench 2.x, ``neurobench.metrics``; re-derived here, no code taken; the NeuroBench name of each
figure in brackets, :data:`NEUROBENCH_NAMES`; ``tests/test_neurobench.py`` checks them against ``neurobench``
2.3.0 itself on snnTorch models):

* **Synaptic operations** [``SynapticOperations``: ``Effective_ACs``, ``Effective_MACs``, ``Dense``] (workload,
  per sample): for every connection layer and every time step, each *non-zero* input times each *non-zero*
  weight it meets is one operation. A call of a layer (one step, the whole batch) whose inputs are all in
  {-1, 0, 1} (spikes) performs **accumulates (ACs)**; any other input (analog values, graded spikes) makes that
  call's operations **multiply-accumulates (MACs)**. ``dense`` counts every weight against every input (zeros
  included): what a dense, non-event-driven implementation computes. Biases are not synaptic operations.
* **Activation sparsity** [``ActivationSparsity``] (workload): zeros over all entries of the spiking layers'
  outputs, over all layers, steps and samples. **(ours)** Non-spiking readouts (LI, which output a membrane value
  every step) are left out.
* **Membrane updates** [``MembraneUpdates``] (workload, per sample): neurons whose membrane potential changed in
  a step (the value after the step differs from the value before it), summed over neurons, steps and samples;
  every neuron counts at the first step. torch: the membrane of snnTorch neurons (``mem``) and of
  :mod:`toolchain.nn` neurons (``state.u``); Program: ``v`` as the simulator records it (after the step's reset).
* **Connection sparsity** [``ConnectionSparsity``] (static): zero weights over all weights of the connection
  layers (NeuroBench rounds it to 4 decimals; we do not).
* **Footprint** [``Footprint``] (static, bytes): torch: parameters + buffers (numel × element size). Program: the
  integer fields at their bit widths (weights at ``num_weight_bits``, a column index of ceil(log2 n_in) bits per
  stored synapse of sparse storage, 57 bits of neuron parameters: du 12, dv 12, vth 17, bias_mant 13, bias_exp 3),
  rounded up to whole bytes; ``state_bytes`` adds u and v (24 bits each) per neuron.

The torch functions accept :class:`toolchain.nn.SpikingNet` models and snnTorch networks (``snntorch`` neurons
with ``init_hidden=True`` in an ``nn.Sequential``, the last returning ``(spikes, mem)``: what NeuroBench's
``SNNTorchModel`` runs), stepped through time as NeuroBench steps them.

Beyond NeuroBench, for the energy and latency model: ``synaptic_events`` counts each spike against each *stored*
synapse of its fan-out (what the chip reads from synapse memory, zeros included), ``neuron_updates`` counts
compartment updates (every neuron, every step that runs) and ``spikes`` the spikes sent. With early exit, only
the steps a sample actually ran are counted (work stops at the exit step).

Energy and latency (:func:`energy_latency`) take per-operation figures from a target file
(``toolchain.targets.load_target``; the ``[energy]`` table in pJ and ns), with an optional fallback target for
figures the first lacks (Loihi 2 publishes none; Loihi 1's are in ``hw_targets/loihi1.toml``); a figure needed
and found nowhere is an error naming the target and the field.

Inter-chip messages (**ours**, an estimate): on a Program whose cores were assigned to several chips
(:mod:`toolchain.passes.multichip`, done by the compile pipeline on a system target), a spike of a neuron whose
axon reaches ``lambda`` chips (its own and those of the cores it has stored synapses into) sends ``lambda - 1``
messages over inter-chip links (``interchip_messages``; spikes from the host are not counted). A system target's
``interchip_link_cost`` ``c`` is the cost of one such message in within-chip spike messages (the bandwidth
ratio, ~700 on Loihi 2 systems), so :func:`energy_latency` charges each inter-chip message ``c`` within-chip
messages: ``c·E_spike`` of energy and ``c·T_spike`` of latency (the time one within-chip spike message takes,
``spike_ns``; serial, as the rest of the bound). ``E_spike`` is the within-chip spike figure above
(``spike_within_tile_pj``); a term whose figure is unknown is left out and named in ``missing``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..errors import InputError, ToolchainError

__all__ = [
    "LayerOps", "Workload", "static_metrics_torch", "workload_torch", "static_metrics_program",
    "workload_program", "energy_latency", "ENERGY_FIELDS", "LATENCY_FIELDS", "NEUROBENCH_NAMES",
]

#: Our metric keys and the names NeuroBench 2.x reports them under (metric class, and its result key where the
#: class returns several); keys not listed are ours, beyond NeuroBench.
NEUROBENCH_NAMES: Dict[str, str] = {
    "footprint_bytes": "Footprint",
    "connection_sparsity": "ConnectionSparsity",
    "parameter_count": "ParameterCount",
    "effective_acs": "SynapticOperations.Effective_ACs",
    "effective_macs": "SynapticOperations.Effective_MACs",
    "dense_synops": "SynapticOperations.Dense",
    "activation_sparsity": "ActivationSparsity",
    "membrane_updates": "MembraneUpdates",
}

NEURON_PARAM_BITS = 12 + 12 + 17 + 13 + 3   # du, dv, vth, bias_mant, bias_exp (see toolchain.program.NeuronGroup)
NEURON_STATE_BITS = 24 + 24                 # u, v


@dataclass
class LayerOps:
    """Operation counts of one connection layer, summed over samples and steps (divide by ``samples``)."""

    name: str
    spiking_input: bool = True   # every call's input was spikes
    effective: float = 0.0       # non-zero input x non-zero weight
    mac: float = 0.0             # the part of ``effective`` from calls whose input was not spikes (MACs)
    dense: float = 0.0           # every input x every weight
    events: float = 0.0          # non-zero input x stored synapse (hardware synapse-memory reads)


@dataclass
class Workload:
    """Workload metrics of one run; per-sample figures are totals divided by ``samples``."""

    samples: int
    layers: Dict[str, LayerOps] = field(default_factory=dict)
    activations: int = 0         # entries of spiking-layer outputs seen
    spikes: int = 0              # non-zero entries among them
    neuron_updates: int = 0      # neuron (compartment) updates
    membrane_updates: Optional[int] = None  # neurons whose membrane changed in a step (None: not measured)
    sample_steps: int = 0        # sum over samples of the steps each ran
    steps_max: int = 0           # the time budget T
    interchip_messages: float = 0.0  # spike messages over inter-chip links (module docstring; 0 on one chip)

    def as_dict(self) -> Dict[str, Any]:
        """Per-sample NeuroBench figures plus the hardware counts."""
        n = max(self.samples, 1)
        acs = sum(l.effective - l.mac for l in self.layers.values())
        macs = sum(l.mac for l in self.layers.values())
        return {
            "samples": self.samples,
            "effective_acs": acs / n,
            "effective_macs": macs / n,
            "dense_synops": sum(l.dense for l in self.layers.values()) / n,
            "synaptic_events": sum(l.events for l in self.layers.values()) / n,
            "activation_sparsity": (1.0 - self.spikes / self.activations) if self.activations else 0.0,
            "spikes": self.spikes / n,
            "neuron_updates": self.neuron_updates / n,
            "membrane_updates": None if self.membrane_updates is None else self.membrane_updates / n,
            "mean_steps": self.sample_steps / n,
            "interchip_messages": self.interchip_messages / n,
            "steps": self.steps_max,
            "per_layer": {k: {"spiking_input": l.spiking_input, "effective": l.effective / n,
                              "dense": l.dense / n, "events": l.events / n} for k, l in self.layers.items()},
        }


def _is_spiking_values(a: np.ndarray) -> bool:
    return bool(np.all((a == 0) | (a == 1) | (a == -1)))


# ----------------------------------------------------------------------------------------------------------
# PyTorch models
# ----------------------------------------------------------------------------------------------------------

def _connection_modules(model: Any) -> List[Tuple[str, Any]]:
    import torch.nn as tnn
    from ..nn import SumPool2d

    kinds = (tnn.Linear, tnn.Conv1d, tnn.Conv2d, tnn.Conv3d, SumPool2d)
    return [(n, m) for n, m in model.named_modules() if isinstance(m, kinds)]


def static_metrics_torch(model: Any) -> Dict[str, Any]:
    """Footprint (bytes of parameters and buffers), parameter count and connection sparsity of a torch model."""
    params = list(model.parameters())
    buffers = list(model.buffers())
    footprint = sum(p.numel() * p.element_size() for p in params) + sum(b.numel() * b.element_size()
                                                                         for b in buffers)
    zeros = total = 0
    for _, m in _connection_modules(model):
        w = getattr(m, "weight", None)
        if w is None:
            continue
        zeros += int((w == 0).sum())
        total += int(w.numel())
    return {"footprint_bytes": int(footprint), "parameter_count": int(sum(p.numel() for p in params)),
            "connection_sparsity": zeros / total if total else 0.0, "weights": total}


def _layer_counts(module: Any, x: Any) -> Tuple[float, float, float]:
    """(effective, dense, events) operations of one call of a connection module on input ``x``."""
    import torch
    import torch.nn as tnn
    import torch.nn.functional as F
    from ..nn import SumPool2d

    nz = (x != 0).to(torch.float64)
    if isinstance(module, tnn.Linear):
        w = module.weight.detach()
        col_nz = (w != 0).sum(0).to(torch.float64)               # non-zero fan-out of each input
        per_in = nz.reshape(-1, w.shape[1]).sum(0)
        rows = nz.numel() // w.shape[1]
        return float(per_in @ col_nz), float(rows * w.numel()), float(per_in.sum() * w.shape[0])
    if isinstance(module, (tnn.Conv1d, tnn.Conv2d, tnn.Conv3d)):
        conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[module.weight.dim() - 2]
        w = module.weight.detach()
        kw = dict(stride=module.stride, padding=module.padding, dilation=module.dilation, groups=module.groups)
        if isinstance(module.padding, str):
            kw["padding"] = module.padding
        eff = conv(nz, (w != 0).to(torch.float64), None, **kw).sum()
        ones_w = torch.ones_like(w, dtype=torch.float64)
        dense = conv(torch.ones_like(nz), ones_w, None, **kw).sum()
        events = conv(nz, ones_w, None, **kw).sum()
        return float(eff), float(dense), float(events)
    if isinstance(module, SumPool2d):
        # the pure function, not module(...): calling the module would re-enter this forward hook
        from ..nn.functional import sum_pool2d
        pool = lambda a: sum_pool2d(a, module.kernel_size, module.stride, module.padding)  # noqa: E731
        eff = pool(nz).sum()
        return float(eff), float(pool(torch.ones_like(nz)).sum()), float(eff)
    raise TypeError(f"not a connection module: {type(module).__name__}")  # pragma: no cover


def _snntorch_neuron_type() -> Any:
    """``snntorch.SpikingNeuron`` when snnTorch is installed, else None."""
    try:
        import snntorch
    except ImportError:  # pragma: no cover - snnTorch is a dependency of the dev extra
        return None
    return snntorch.SpikingNeuron


class _Recorder:
    """Forward hooks that count operations of connection modules and the spikes and membrane updates of spiking
    neurons (:mod:`toolchain.nn` neurons and snnTorch neurons)."""

    def __init__(self, model: Any, samples: int) -> None:
        from ..nn import SpikingNeuron

        self.work = Workload(samples=samples, membrane_updates=0)
        self.handles = []
        self.calls: Dict[int, int] = {}      # neuron module -> calls so far (the first step counts every neuron)
        self.pre_mem: Dict[int, Any] = {}    # snnTorch neuron -> its mem before this call
        snn_type = _snntorch_neuron_type()
        for name, m in _connection_modules(model):
            self.work.layers[name] = LayerOps(name)
            self.handles.append(m.register_forward_hook(self._conn_hook(name)))
        for name, m in model.named_modules():
            if isinstance(m, SpikingNeuron):
                self.handles.append(m.register_forward_hook(self._neuron_hook(bool(m.spiking))))
            elif snn_type is not None and isinstance(m, snn_type):
                self.handles.append(m.register_forward_pre_hook(self._snn_pre_hook))
                self.handles.append(m.register_forward_hook(self._snn_hook))

    def _conn_hook(self, name: str):
        def hook(module, inputs, output):
            x = inputs[0].detach()
            lo = self.work.layers[name]
            e, d, v = _layer_counts(module, x)
            if not _is_spiking_values(x.cpu().numpy()):  # this call's operations are MACs
                lo.spiking_input = False
                lo.mac += e
            lo.effective += e
            lo.dense += d
            lo.events += v
        return hook

    def _count(self, module: Any, y: Any, spiking: bool, before: Any, after: Any) -> None:
        """Spikes (``y``: this call's output), neuron updates, and membrane updates (``before``/``after``: the
        membrane around this call; every neuron at a module's first call)."""
        import torch
        self.work.neuron_updates += int(y.numel())
        if spiking:
            self.work.activations += int(y.numel())
            self.work.spikes += int((y != 0).sum())
        k = self.calls.get(id(module), 0)
        self.calls[id(module)] = k + 1
        if after is None:
            return
        if k == 0 or before is None or not isinstance(before, torch.Tensor) or before.shape != after.shape:
            self.work.membrane_updates += int(after.numel())
        else:
            self.work.membrane_updates += int(torch.count_nonzero(after.detach() - before.detach()))

    def _neuron_hook(self, spiking: bool):
        def hook(module, inputs, output):
            y = output[0].detach() if isinstance(output, tuple) else output.detach()
            state_in = inputs[1] if len(inputs) > 1 else None
            state_out = output[1] if isinstance(output, tuple) and len(output) > 1 else None
            before = getattr(state_in, "u", None)
            self._count(module, y, spiking, before, getattr(state_out, "u", None))
        return hook

    def _snn_pre_hook(self, module, inputs):
        self.pre_mem[id(module)] = getattr(module, "mem", None)

    def _snn_hook(self, module, inputs, output):
        y = output[0].detach() if isinstance(output, tuple) else output.detach()
        self._count(module, y, True, self.pre_mem.pop(id(module), None), getattr(module, "mem", None))

    def close(self) -> None:
        for h in self.handles:
            h.remove()


def _is_snntorch_net(model: Any) -> bool:
    from ..nn import SpikingNet
    snn_type = _snntorch_neuron_type()
    return not isinstance(model, SpikingNet) and snn_type is not None and \
        any(isinstance(m, snn_type) for m in model.modules())


def _run_snntorch(model: Any, xt: Any) -> Any:
    """Step an snnTorch network through time as NeuroBench's ``SNNTorchModel`` does: reset its neurons, then
    ``net(x[:, t])`` for every step (the first element of a tuple output is the step's output); (B, T, ...)."""
    import torch
    from snntorch import utils as snn_utils
    if hasattr(model, "reset"):
        model.reset()
    else:
        snn_utils.reset(model)
    outs = []
    for t in range(xt.shape[1]):
        y = model(xt[:, t])
        outs.append(y[0] if isinstance(y, tuple) else y)
    return torch.stack(outs, 1)


def workload_torch(model: Any, x: Any, policy: Any = None) -> Tuple[Workload, Dict[str, Any]]:
    """Run a ``SpikingNet`` (or an snnTorch network, see the module docstring) on ``x`` (B, T, *in_shape) and
    count its work with forward hooks.

    Without ``policy`` the full ``forward`` runs; with a :class:`~toolchain.runtime.cutoff.CutoffPolicy` the
    per-sample early-exit run :func:`~toolchain.runtime.cutoff.run_with_cutoff` runs, so only the steps each
    sample really computed are counted (``SpikingNet`` only). Returns the :class:`Workload` and the run's result
    (``predictions``, ``steps``; ``outputs`` (B, T, C) for the full run).
    """
    import torch
    from .cutoff import run_with_cutoff

    xt = torch.as_tensor(x)
    if xt.dim() < 3:
        raise InputError(f"must have shape (B, T, *in_shape), got {tuple(xt.shape)}", field="x")
    b, steps = int(xt.shape[0]), int(xt.shape[1])
    snn = _is_snntorch_net(model)
    if snn and policy is not None:
        raise InputError("early exit (policy) needs a toolchain.nn.SpikingNet, not an snnTorch network",
                         field="policy")
    rec = _Recorder(model, b)
    try:
        if policy is None:
            with torch.no_grad():
                y = _run_snntorch(model, xt) if snn else model(xt)
            out = y.reshape(b, steps, -1).to(torch.float64).numpy()
            res = {"outputs": out, "predictions": np.argmax(out.sum(1), axis=1),
                   "steps": np.full(b, steps, dtype=np.int64)}
            rec.work.sample_steps = b * steps
        else:
            res = run_with_cutoff(model, xt, policy)
            rec.work.sample_steps = int(res["sample_steps"])
    finally:
        rec.close()
    rec.work.steps_max = steps
    return rec.work, res


# ----------------------------------------------------------------------------------------------------------
# Compiled Programs
# ----------------------------------------------------------------------------------------------------------

def _index_bits(n_in: int) -> int:
    return max(1, int(math.ceil(math.log2(max(n_in, 2)))))


def _nonzero_fan_out(w: Any) -> np.ndarray:
    """Non-zero stored synapses out of each input (float64, length n_in), without a dense matrix for sparse
    storage (a PilotNet conv layer would need gigabytes)."""
    from ..ir.storage import Csr
    if isinstance(w, Csr):
        return np.bincount(np.asarray(w.indices)[np.asarray(w.data) != 0], minlength=w.shape[1]).astype(np.float64)
    return (w.to_dense() != 0).sum(axis=0).astype(np.float64)


def static_metrics_program(program: Any) -> Dict[str, Any]:
    """Footprint (bytes at the integer fields' bit widths), connection sparsity, neuron and synapse counts."""
    weight_bits = index_bits = 0
    zeros = total = stored = 0
    for s in program.synapses:
        w = s.weight
        nnz = int(w.nnz)
        stored += nnz
        weight_bits += nnz * int(s.num_weight_bits)
        if w.kind != "dense":
            index_bits += nnz * _index_bits(int(w.shape[1]))
        total += int(w.shape[0]) * int(w.shape[1])  # zeros: the stored zero weights plus the entries not stored
        zeros += int(w.shape[0]) * int(w.shape[1]) - int(np.count_nonzero(w.stored_values()))
    neurons = int(sum(g.size for g in program.groups.values()))
    param_bits = weight_bits + index_bits + neurons * NEURON_PARAM_BITS
    return {
        "footprint_bytes": int(math.ceil(param_bits / 8)),
        "state_bytes": int(math.ceil(neurons * NEURON_STATE_BITS / 8)),
        "weight_bytes": int(math.ceil(weight_bits / 8)),
        "index_bytes": int(math.ceil(index_bits / 8)),
        "connection_sparsity": zeros / total if total else 0.0,
        "neurons": neurons, "synapses": stored, "weights": total,
    }


def _sim_spikes(sim: Any) -> Mapping[str, np.ndarray]:
    """Per-group spike arrays (B, T, n) from a SimResult (or a plain mapping)."""
    if isinstance(sim, Mapping):
        return sim
    for attr in ("spikes", "s"):
        d = getattr(sim, attr, None)
        if isinstance(d, Mapping):
            return d
    raise ToolchainError("simulation result holds no per-group spikes", field="spikes")


def workload_program(program: Any, sim: Any, inputs: Any, steps: Optional[Any] = None) -> Workload:
    """Work of a compiled Program on a simulation record.

    ``sim``: a :class:`toolchain.sim.reference.SimResult` run with ``record=True`` (or with every spiking group
    that feeds a synapse group recorded), or a mapping group name -> spikes (B, T, n); ``inputs``: the input
    array (B, T, *shape) of a single-port program, or a mapping port name -> array; ``steps``: (B,) 1-based
    exit steps (default: the record's ``steps_run``, else all T): only spikes sent at 0-based steps
    ``< steps[b]`` count, and neurons update ``steps[b]`` times (work stops at the exit step). Synaptic
    operations are spikes × fan-out from the Program's synapse storage (non-zero weights for NeuroBench's
    effective count, stored synapses for ``events``, n_out per input and step for ``dense``). With ``v`` of every
    group in the record, also NeuroBench's membrane updates (module docstring).
    """
    spikes = _sim_spikes(sim)
    if steps is None and getattr(sim, "steps_run", None) is not None:
        steps = sim.steps_run
    if not isinstance(inputs, Mapping):
        if len(program.inputs) != 1:
            raise InputError(f"the program has {len(program.inputs)} input ports; pass a mapping name -> array",
                             field="inputs")
        inputs = {program.inputs[0].name: inputs}
    sources: Dict[str, Tuple[np.ndarray, bool]] = {}
    for port in program.inputs:
        if port.name not in inputs:
            raise InputError("no data for this input port", node=port.name, field="inputs")
        a = np.asarray(inputs[port.name])
        sources[port.name] = (a.reshape(a.shape[0], a.shape[1], -1),
                              port.num_message_bits == 0 and _is_spiking_values(a))
    for name, g in program.groups.items():
        if not g.spiking:
            continue
        if name in spikes:
            a = np.asarray(spikes[name])
            sources[name] = (a.reshape(a.shape[0], a.shape[1], -1), True)
        elif program.synapses_from(name):
            raise InputError("the spikes of this group are not in the record; simulate with record=True",
                             node=name, field="spikes")
    # the simulation may run longer than the input (drain steps): pad the input with silence
    t_sim = max(a.shape[1] for a in (np.asarray(v) for v in spikes.values())) if spikes else None
    for port in program.inputs:
        a, spk = sources[port.name]
        if t_sim is not None and a.shape[1] != t_sim:
            a = np.concatenate([a, np.zeros((a.shape[0], t_sim - a.shape[1], a.shape[2]), a.dtype)], axis=1) \
                if a.shape[1] < t_sim else a[:, :t_sim]
            sources[port.name] = (a, spk)
    first = next(iter(sources.values()))[0]
    b, t_total = first.shape[:2]
    if steps is None:
        run_steps = np.full(b, t_total, dtype=np.int64)
    else:
        run_steps = np.asarray(steps, dtype=np.int64).reshape(-1)
        if run_steps.shape != (b,) or run_steps.min() < 1 or run_steps.max() > t_total:
            raise InputError(f"exit steps must be (B,) = ({b},) in [1, {t_total}]", field="steps")
    live = np.arange(t_total)[None, :] < run_steps[:, None]          # (B, T)

    work = Workload(samples=b, steps_max=t_total, sample_steps=int(run_steps.sum()))
    counted: Dict[str, np.ndarray] = {}
    for name, (a, _) in sources.items():
        if a.shape[:2] != (b, t_total):
            raise InputError(f"spikes of shape {a.shape[:2]} do not match ({b}, {t_total})", node=name,
                             field="spikes")
        counted[name] = ((a != 0) & live[:, :, None]).sum(axis=(0, 1)).astype(np.float64)   # per source neuron
    for s in program.synapses:
        if s.src not in counted:
            continue
        nz_fan = _nonzero_fan_out(s.weight)
        stored_fan = s.weight.col_fan_out().astype(np.float64)
        per_in = counted[s.src]
        lo = LayerOps(s.name, spiking_input=sources[s.src][1])
        lo.effective = float(per_in @ nz_fan)
        lo.mac = 0.0 if lo.spiking_input else lo.effective  # graded payloads: every operation is a MAC
        lo.events = float(per_in @ stored_fan)
        lo.dense = float(work.sample_steps * int(s.weight.shape[0]) * int(s.weight.shape[1]))
        work.layers[s.name] = lo
    placement = getattr(program, "placement", None)
    if placement is not None and placement.chips_used > 1:
        from ..passes.multichip import interchip_fanout
        fan = interchip_fanout(program)
        work.interchip_messages = float(sum(counted[g] @ fan[g].astype(np.float64)
                                            for g in fan if g in counted))
    for name, g in program.groups.items():
        work.neuron_updates += int(g.size) * work.sample_steps
        if g.spiking and name in counted:
            work.activations += int(g.size) * work.sample_steps
            work.spikes += int(counted[name].sum())
    v_rec = getattr(sim, "v", None)
    if isinstance(v_rec, Mapping) and program.groups and all(g in v_rec for g in program.groups):
        # NeuroBench's MembraneUpdates on the recorded v (after each step's reset): every neuron at step 0, then
        # the neurons whose v changed in the step, within each sample's steps
        mu = 0
        for name in program.groups:
            a = np.asarray(v_rec[name])
            a = a.reshape(a.shape[0], a.shape[1], -1)
            if a.shape[:2] != (b, t_total):
                raise InputError(f"v of shape {a.shape[:2]} does not match ({b}, {t_total})", node=name, field="v")
            changed = np.ones(a.shape, bool)
            changed[:, 1:] = a[:, 1:] != a[:, :-1]
            mu += int((changed & live[:, :, None]).sum())
        work.membrane_updates = mu
    return work


# ----------------------------------------------------------------------------------------------------------
# Energy and latency from target figures
# ----------------------------------------------------------------------------------------------------------

# Accepted names of each figure in a target (first found wins) with the factor to SI units (J, s); the first
# name is the one errors cite. The target files (hw_targets/*.toml) keep them in an [energy] table in pJ and ns.
ENERGY_FIELDS: Dict[str, Tuple[Tuple[str, float], ...]] = {
    "synop": (("synop_pj", 1e-12), ("energy_per_synop_j", 1.0)),
    "neuron": (("neuron_update_pj", 1e-12), ("energy_per_neuron_update_j", 1.0)),
    "spike": (("spike_within_tile_pj", 1e-12), ("spike_pj", 1e-12), ("energy_per_spike_j", 1.0)),
}
LATENCY_FIELDS: Dict[str, Tuple[Tuple[str, float], ...]] = {
    "synop": (("synop_ns", 1e-9), ("time_per_synop_s", 1.0)),
    "neuron": (("neuron_update_ns", 1e-9), ("time_per_neuron_update_s", 1.0)),
    "step": (("step_overhead_ns", 1e-9), ("barrier_sync_ns", 1e-9), ("time_per_step_s", 1.0)),
}
#: the time of one within-chip spike message (for the inter-chip term only; no target publishes it yet)
SPIKE_LATENCY_FIELDS: Tuple[Tuple[str, float], ...] = (("spike_ns", 1e-9), ("spike_within_tile_ns", 1e-9),
                                                       ("time_per_spike_s", 1.0))


def _link_cost(target: Any) -> Optional[float]:
    """The target's ``interchip_link_cost`` (TargetSpec attribute or ``[system]`` table), or None."""
    v = _get(target, "interchip_link_cost")
    raw = _get(target, "raw")
    for c in (_get(target, "system"), raw.get("system") if isinstance(raw, Mapping) else None):
        if v is None and isinstance(c, Mapping):
            v = c.get("interchip_link_cost")
    return None if v is None else float(v)


def _get(c: Any, name: str) -> Any:
    return c.get(name) if isinstance(c, Mapping) else getattr(c, name, None)


def _lookup(target: Any, names: Sequence[Tuple[str, float]]) -> Optional[float]:
    """The first figure of ``names`` found on the target itself or in its ``energy`` (or ``raw["energy"]``)
    section, in SI units."""
    containers = [target]
    for sub in ("energy", "timing", "latency"):
        c = _get(target, sub)
        if c is not None:
            containers.append(c)
    raw = _get(target, "raw")
    if isinstance(raw, Mapping):
        containers += [raw] + [raw[k] for k in ("energy", "timing", "latency") if isinstance(raw.get(k), Mapping)]
    for c in containers:
        for n, scale in names:
            v = _get(c, n)
            if isinstance(v, (int, float, np.number)) and not isinstance(v, bool):
                return float(v) * scale
    return None


def _target_name(target: Any) -> str:
    return str(_get(target, "name") or _get(_get(target, "target") or {}, "name") or "target")


def _load(target: Any) -> Any:
    if isinstance(target, str):
        from ..targets import load_target  # the compiler engineer's module
        return load_target(target)
    return target


def energy_latency(work: Workload, target: Any, *, fallback: Any = None,
                   required: Iterable[str] = ("synop",)) -> Dict[str, Any]:
    """Energy (J per sample) and latency (s per sample) estimates from a target's per-operation figures.

    ``energy = synaptic_events·E_synop + neuron_updates·E_neuron + spikes·E_spike`` and ``latency =
    synaptic_events·T_synop + neuron_updates·T_neuron + mean_steps·T_step`` — a serial bound (all operations of
    a step one after another, as on a single core); each term is present only when its figure is known.
    ``target``/``fallback``: a TargetSpec, a mapping (e.g. a parsed target TOML) or a name for
    ``toolchain.targets.load_target``; a figure the target lacks is taken from ``fallback`` when given (Loihi 2
    publishes no per-operation figures; use ``fallback="loihi1"``), and ``sources`` says where each came from.
    A figure named in ``required`` found in neither raises :class:`ToolchainError` naming the target and field.

    Inter-chip messages (``work.interchip_messages`` > 0: a Program spread over chips) add
    ``interchip_messages·c·E_spike`` to the energy and ``interchip_messages·c·T_spike`` to the latency, with
    ``c`` the target's ``interchip_link_cost`` (module docstring); the result also holds ``interchip_messages``
    (per sample), ``interchip_link_cost`` and ``interchip_energy_j`` / ``interchip_latency_s`` (None when a
    figure is unknown).
    """
    target = _load(target)
    fb = _load(fallback) if fallback is not None else None
    tname = _target_name(target)
    d = work.as_dict()
    counts = {"synop": d["synaptic_events"], "neuron": d["neuron_updates"], "spike": d["spikes"]}
    energy = latency = 0.0
    sources: Dict[str, str] = {}
    missing: List[str] = []
    have_energy = have_latency = False
    for table, is_energy in ((ENERGY_FIELDS, True), (LATENCY_FIELDS, False)):
        for key, names in table.items():
            v, src = _lookup(target, names), tname
            if v is None and fb is not None:
                v, src = _lookup(fb, names), _target_name(fb)
            label = names[0][0]
            if v is None:
                if is_energy and key in required:
                    raise ToolchainError(f"target has no per-operation energy figure for {key} operations"
                                         + (f" (nor has fallback '{_target_name(fb)}')" if fb is not None else ""),
                                         node=tname, field=f"energy.{label}")
                missing.append(label)
                continue
            sources[label] = src
            if is_energy:
                energy += counts[key] * v
                have_energy = True
            else:
                latency += (d["mean_steps"] * v) if key == "step" else counts[key] * v
                have_latency = True
    msgs = float(d.get("interchip_messages") or 0.0)
    cost = _link_cost(target)
    e_ic = t_ic = None
    if msgs > 0:
        if cost is None:
            missing.append("interchip_link_cost")
        else:
            sources["interchip_link_cost"] = tname
            for names, is_energy in ((ENERGY_FIELDS["spike"], True), (SPIKE_LATENCY_FIELDS, False)):
                v, src = _lookup(target, names), tname
                if v is None and fb is not None:
                    v, src = _lookup(fb, names), _target_name(fb)
                label = names[0][0]
                if v is None:
                    if label not in missing:
                        missing.append(label)
                    continue
                sources[label] = src
                if is_energy:
                    e_ic = msgs * cost * v
                    energy += e_ic
                    have_energy = True
                else:
                    t_ic = msgs * cost * v
                    latency += t_ic
                    have_latency = True
    return {"energy_j": energy if have_energy else None, "latency_s": latency if have_latency else None,
            "sources": sources, "missing": missing, "interchip_messages": msgs, "interchip_link_cost": cost,
            "interchip_energy_j": e_ic, "interchip_latency_s": t_ic}
