"""The torch backend of the reference simulator: the same integers as :func:`toolchain.sim.reference.simulate`
(Lava 0.10.0's ``fixed_pt`` rules), computed with torch tensors on any device (CPU or CUDA).

It is also the engine of :class:`toolchain.nn.IntegerNet` (a thin ``nn.Module`` over :func:`plan` and
:func:`run`) and of the fake-quantised model of :mod:`toolchain.nn.qat` (the same run with straight-through
estimators, :class:`Hooks`): one implementation, so the three cannot drift apart.

What is shared, and where it comes from
---------------------------------------
* Weights, bounds and delays: :func:`plan` takes every synapse group as the numpy simulator compiles it
  (:func:`toolchain.sim.reference._compile_synapse`: the weights Lava really uses — clipped and truncated by
  :func:`toolchain.fixedpoint.lava_weights` —, the bound on ``|W·s|`` and on the shifted activation, the
  per-product wrap of graded DelayDense, the Lava process) and every neuron group likewise
  (:func:`toolchain.sim.reference._compile_group`: decays, thresholds, biases, ``v_init``, periodic reset, and
  whether its summed input stays below 2^18 — the condition under which no int32 wrap can happen).
* The LIF update: :func:`toolchain.fixedpoint.lif_subthreshold` and :func:`toolchain.fixedpoint.lif_fire`, the
  one definition the numpy int32 emulation (:func:`toolchain.fixedpoint.lif_step`) runs as well.

Integer semantics on tensors
----------------------------
State ``u``, ``v``, the summed input ``a_in`` and the activations are float64 tensors holding exact integers
(every value below 2^53; the decays are exact in float64, see :mod:`toolchain.fixedpoint`); the int32 wraps Lava's
numpy code makes are applied explicitly (:meth:`toolchain.fixedpoint._TorchOps.wrap32`), and skipped where the
compiled bounds prove them identities (a group whose summed input stays below 2^18; activations whose bound is
below 2^31). Spikes are float64 0/1.

The synaptic product ``s @ W^T`` (``s`` binary spikes or graded payloads, ``W`` the int32 weights Lava uses) is
computed in float32 when the bound on every partial sum (``max_row |W| · max payload``) is below 2^24 — then every
partial sum is an integer float32 holds exactly, in any summation order (so also in cuBLAS's blocked and split-K
orders) — and in float64 below 2^53; programs beyond that are refused. On CUDA, TensorFloat-32 (``torch.backends
.cuda.matmul.allow_tf32``, or ``torch.set_float32_matmul_precision("high")``) rounds float32 operands to 11
significant bits, and precision "medium" to bfloat16's 8: 0/1 spikes and Lava's weights (at most 8 significant
bits) stay exact, but graded payloads of more bits do not, so such products are computed in float64 when the
plan is built under those settings. The activation is then shifted by ``weight_exp`` (``·2^e`` or ``floor(·2^e)``, exact powers of
two) and wrapped like Lava's (:func:`toolchain.fixedpoint.synaptic_input`: graded Dense/Sparse sums wrap before
the shift, graded DelayDense products one by one, the result into the int32 channel).

Timing is the numpy simulator's: an activation produced at step ``t`` enters ``a_in`` at step ``t + 1 + delay``;
``a_in`` of a group is the int32-wrapping sum of its synapse groups' activations. Without surrogates (simulate,
IntegerNet) all groups are updated side by side as one ``(batch, neurons)`` state, one LIF update per step (their
updates in a step are independent; per-neuron reset modes), which cuts the number of tensor operations — what
bounds a step on a GPU — by the number of groups; the fake-quantised model updates group by group (its
surrogates are per group).

Weights are held as dense ``(n_in, n_out)`` tensors, except sparse storage (CSR, structured, conv) with fewer than
10% of the entries stored or more than 2^24 entries, which is held as a sparse CSR tensor (``torch.sparse.mm``;
exact by the same bound, in any summation order). Sigma-delta groups are not supported (an
:class:`~toolchain.errors.InputError` names the group). ``tests/test_torch_backend.py`` compares every spike,
``u`` and ``v`` with the numpy simulator on the test corpus.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from .. import fixedpoint as fx
from ..errors import InputError
from ..program import Program
from . import reference as R
from .record import SimResult

__all__ = ["simulate", "plan", "run", "prepare", "Plan", "Hooks", "activation", "ste", "through"]

_TWO31 = 2 ** 31
_F32_EXACT = 2 ** 24
_F64_EXACT = 2 ** 53
#: significant bits of a float32 operand under TensorFloat-32 (10 stored + the implicit one)
_TF32_BITS = 11


# ------------------------------------------------------------------------------ straight-through estimators
class _Ste(torch.autograd.Function):
    """Forward: ``exact``; backward: the gradient goes to ``surrogate`` unchanged."""

    @staticmethod
    def forward(ctx, surrogate: torch.Tensor, exact: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return exact.clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        return grad, None


def ste(surrogate: Optional[torch.Tensor], exact: torch.Tensor) -> torch.Tensor:
    """``exact`` in the forward pass, ``surrogate``'s gradient in the backward pass (plain ``exact`` when the
    surrogate is None or needs no gradient). Shapes must broadcast to ``exact``'s."""
    if surrogate is None or not surrogate.requires_grad:
        return exact
    if surrogate.shape != exact.shape:
        surrogate = surrogate.expand_as(exact)
    return _Ste.apply(surrogate, exact)


def through(x: torch.Tensor, exact_fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Apply ``exact_fn`` (a rounding or wrap) in the forward pass and the identity in the backward pass: the
    ``through`` argument of :func:`toolchain.fixedpoint.lif_subthreshold` for the fake-quantised model."""
    if not x.requires_grad:
        return exact_fn(x)
    return _Ste.apply(x, exact_fn(x.detach()))


def _wrap32(x: torch.Tensor) -> torch.Tensor:
    return fx._ops(x).wrap32(x)


# -------------------------------------------------------------------------------------------- the plan
@dataclass
class Syn:
    """One synapse group on tensors. ``w_t``: (n_in, n_out) the weights Lava uses, transposed, in the product's
    dtype (float32 or float64); ``mask_t``: (n_in, n_out) bool stored synapses (None unless asked for: the
    fake-quantised model's surrogate needs it); ``per_product_wrap``: graded DelayDense whose single products can
    leave int32; ``acc_bound`` / ``out_bound``: bounds on ``|W·s|`` and on the shifted activation (None:
    unknown, every wrap applied). ``w_csr``: for sparse storage held sparse, the (n_out, n_in) sparse CSR weights;
    ``w_t`` is then its transposed view."""

    name: str
    src: str
    dst: str
    delay: int
    weight_exp: int
    graded: bool
    process: str
    w_t: torch.Tensor
    mask_t: Optional[torch.Tensor]
    per_product_wrap: bool
    recurrent: bool
    acc_bound: Optional[int] = None
    out_bound: Optional[int] = None
    w_csr: Optional[torch.Tensor] = None


@dataclass
class Grp:
    """One neuron group on tensors (per-neuron (n,) float64 parameters, broadcast over the batch).

    ``fu = (4096 − du − 1)/4096``, ``fv = (4096 − dv)/4096`` (:func:`toolchain.fixedpoint.decay_factor`),
    ``bias = bias_mant << bias_exp``, ``vth64 = vth << 6``; ``bias_scale = 2^bias_exp`` (for a bias input port's
    mantissas); ``wrap_free``: the summed input stays below 2^18 (no int32 wrap can happen, see
    :func:`toolchain.fixedpoint.lif_subthreshold`); ``has_bias``: some neuron's own bias is not zero."""

    name: str
    shape: Tuple[int, ...]
    n: int
    fu: torch.Tensor
    fv: torch.Tensor
    bias: torch.Tensor
    vth64: torch.Tensor
    subtract: bool
    spiking: bool
    v_init: torch.Tensor
    bias_scale: torch.Tensor
    reset_interval: int = 0
    reset_offset: int = 0
    wrap_free: bool = False
    bias_port: Optional[str] = None
    has_bias: bool = True
    u_init: Optional[torch.Tensor] = None  # u before step 0 (NeuronGroup.u_init); None: zeros

    def resets_at(self, t: int) -> bool:
        """Lava's ``LIFReset``: u = v = 0 before the update of 0-based step ``t`` (as the numpy simulator)."""
        return self.reset_interval > 0 and (t + 1) % self.reset_interval == self.reset_offset


@dataclass
class Plan:
    """A Program as tensors on ``device``: groups and synapse groups in program order, input ports
    ``name -> (shape, num_message_bits, kind)``, the output group."""

    groups: List[Grp]
    syns: List[Syn]
    ports: Dict[str, Tuple[Tuple[int, ...], int]]
    output: str
    device: torch.device
    port_kind: Dict[str, str] = field(default_factory=dict)
    by_name: Dict[str, Grp] = field(default_factory=dict)
    merged: Optional[Grp] = None                       # every group side by side (runs without hooks)
    slices: Dict[str, slice] = field(default_factory=dict)  # group -> its neurons in ``merged``


def _device(device: Union[str, torch.device, None]) -> torch.device:
    dev = torch.device("cpu" if device is None else device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError("CUDA is not available on this machine (torch.cuda.is_available() is False)",
                         field="device")
    return dev


def plan(program: Program, device: Union[str, torch.device, None] = "cpu", masks: bool = False) -> Plan:
    """Compile ``program`` into tensors on ``device`` (see the module docstring for what is shared with the numpy
    simulator). ``masks``: also keep every synapse group's stored-synapse mask (the fake-quantised model)."""
    if not isinstance(program, Program):
        raise InputError(f"expected a toolchain.program.Program, got {type(program).__name__}", field="program")
    dev = _device(device)
    for g in program.groups.values():
        if getattr(g, "sdn", None) is not None:
            raise InputError("sigma-delta groups are not supported by the torch backend (use the numpy "
                             "reference simulator)", node=g.name)
    f64 = dict(dtype=torch.float64, device=dev)
    # float32 products at reduced internal precision (TF32 on CUDA: 11 significant bits; "medium" matmul
    # precision: bfloat16, 8): 0/1 spikes and Lava's weights (8 significant bits at most) stay exact, wider graded
    # payloads do not
    precision = torch.get_float32_matmul_precision()
    op_bits = 8 if precision == "medium" else (_TF32_BITS if precision == "high" or (
        dev.type == "cuda" and bool(torch.backends.cuda.matmul.allow_tf32)) else 24)
    ports = {p.name: (tuple(p.shape), int(p.num_message_bits)) for p in program.inputs}
    syns: List[Syn] = []
    in_bound = {g: 0 for g in program.groups}
    for s in program.synapses:
        c = R._compile_synapse(program, s)
        in_bound[c.dst] += c.out_bound
        payload_bits = ports[s.src][1] if s.src in ports else 1
        if c.acc_bound * 2.0 ** max(c.weight_exp, 0) >= _F64_EXACT:
            raise InputError(f"activations up to {c.acc_bound} << {c.weight_exp} exceed the exact float64 range "
                             "of the torch backend", node=s.name, field="weight")
        f32 = c.acc_bound < _F32_EXACT and payload_bits <= op_bits
        dt = torch.float32 if f32 else torch.float64
        n_out, n_in = c.w_eff.shape
        w_csr = None
        if hasattr(c.w_eff, "toarray") and (n_out * n_in > R._DENSE_MAX or c.w_eff.nnz < 0.1 * n_out * n_in):
            # sparse storage, sparse or too large to hold dense (the numpy simulator's rule): CSR on the device
            csr = c.w_eff.tocsr()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta state"
                w_csr = torch.sparse_csr_tensor(torch.as_tensor(csr.indptr.astype(np.int64)),
                                                torch.as_tensor(csr.indices.astype(np.int64)),
                                                torch.as_tensor(csr.data, dtype=dt), size=(n_out, n_in),
                                                device=dev)
            w_t = w_csr.t()
        else:
            w = c.w_eff.toarray() if hasattr(c.w_eff, "toarray") else np.asarray(c.w_eff)
            w_t = torch.as_tensor(np.ascontiguousarray(w.T), dtype=dt, device=dev)
        mask = torch.as_tensor(s.weight.stored_mask().T.copy(), device=dev) if masks else None
        syns.append(Syn(s.name, s.src, s.dst, int(s.delay), int(c.weight_exp), bool(c.graded), c.process, w_t, mask,
                        bool(c.per_product), bool(s.recurrent), int(c.acc_bound), int(c.out_bound), w_csr))
    bias_port = {p.target: p.name for p in program.inputs if p.kind == "bias"}
    groups: List[Grp] = []
    for name, g in program.groups.items():
        c = R._compile_group(program, name, in_bound[name])
        n = g.size

        def vec(a: Any) -> torch.Tensor:
            return torch.as_tensor(np.broadcast_to(np.asarray(a, dtype=np.float64), (n,)).copy(), **f64)

        groups.append(Grp(name, tuple(g.shape), n, vec(fx.decay_factor(c.du + fx.DS_OFFSET)),
                          vec(fx.decay_factor(c.dv + fx.DM_OFFSET)),
                          vec(0 if name in bias_port else fx.effective_bias(c.bias_mant, c.bias_exp)),
                          vec(fx.effective_threshold(c.vth)), bool(c.subtract), bool(g.spiking), vec(c.v_init),
                          vec(2.0 ** c.bias_exp.astype(np.float64)), int(c.reset_interval), int(c.reset_offset),
                          in_bound[name] < R._FAST_LIF_BOUND, bias_port.get(name),
                          name not in bias_port and bool(np.any(fx.effective_bias(c.bias_mant, c.bias_exp))),
                          vec(c.u_init)))
    p = Plan(groups, syns, ports, program.output, dev, {q.name: q.kind for q in program.inputs})
    p.by_name = {g.name: g for g in groups}
    if len(groups) > 1:
        p.merged, p.slices = _merge(groups)
    return p


def _merge(groups: Sequence[Grp]) -> Tuple[Grp, Dict[str, slice]]:
    """All groups as one (their updates in a step are independent: each reads only activations of earlier
    steps), so that a step runs one LIF update on (B, N) instead of one per group. Per-neuron parameters are
    concatenated; the reset mode becomes a per-neuron bool tensor where groups differ; no int32 wrap is skipped
    unless no group needs one."""
    slices, off = {}, 0
    for g in groups:
        slices[g.name] = slice(off, off + g.n)
        off += g.n
    cat = torch.cat
    modes = {g.subtract for g in groups}
    subtract: Any = modes.pop() if len(modes) == 1 else cat([torch.full((g.n,), g.subtract, device=g.fu.device)
                                                              for g in groups])
    m = Grp("*", (off,), off, cat([g.fu for g in groups]), cat([g.fv for g in groups]),
            cat([g.bias for g in groups]), cat([g.vth64 for g in groups]), subtract, True,
            cat([g.v_init for g in groups]), cat([g.bias_scale for g in groups]), 0, 0,
            all(g.wrap_free for g in groups), None, any(g.has_bias for g in groups),
            cat([g.u_init if g.u_init is not None else torch.zeros_like(g.v_init) for g in groups]))
    return m, slices


# ------------------------------------------------------------------------------------------- activations
def activation(syn: Syn, s: torch.Tensor, zero_one: bool = False) -> torch.Tensor:
    """Lava's int32 activation (as float64) of ``syn`` for the source's output ``s`` (B, n_in) at one step:
    :func:`toolchain.fixedpoint.synaptic_input` with the weights ``syn.w_t`` (exact; module docstring).
    ``zero_one``: a binary source's ``s`` is known to hold only 0 and 1 (spikes of a group, checked binary input),
    so Lava's "any non-zero is a spike" needs no test."""
    dt = syn.w_t.dtype
    s = (s != 0).to(dt) if not (syn.graded or zero_one) else s.to(dt)
    if syn.per_product_wrap:  # graded DelayDense: every product wraps into int32, the sum is int64
        acc = _wrap32(s.to(torch.float64)[:, :, None] * syn.w_t.to(torch.float64)[None]).sum(dim=1)
    else:
        if syn.w_csr is not None:  # sparse weights: (W @ s^T)^T
            acc = torch.sparse.mm(syn.w_csr, s.t().contiguous()).t().to(torch.float64)
        else:
            acc = (s @ syn.w_t).to(torch.float64)
        if syn.graded and syn.process in ("dense", "sparse") and (syn.acc_bound is None or
                                                                  syn.acc_bound >= _TWO31):
            acc = _wrap32(acc)  # Lava's int32 dot product wraps before the shift
    e = syn.weight_exp
    if e > 0:
        acc = acc * float(2 ** e)
    elif e < 0:
        acc = torch.floor(acc * 2.0 ** e)  # arithmetic right shift
    if syn.out_bound is None or syn.out_bound >= _TWO31 or syn.per_product_wrap:
        acc = _wrap32(acc)  # into the int32 channel
    return acc


# ------------------------------------------------------------------------------------------- the engine
@dataclass
class Hooks:
    """Differentiable surrogates that tie the integer network to float parameters (see :mod:`toolchain.nn.qat`).

    ``syn[name]``: (n_in, n_out) float64 tensor, the float model's contribution to ``a_in`` per unit source
    output (already in a_in units, after the weight exponent). ``fu``/``fv``/``bias``: per group (n,) surrogates
    of the decay fractions and of the bias (v units). ``scale``: per group (n,) ``S`` (v units per float voltage
    unit), for the spike surrogate ``φ((v − vth·64)/S)``. ``surrogate``: (name, steepness) per group.
    ``spike_fn(x, name, steepness)``: the spike function with that surrogate gradient (forward ``x > 0``;
    :func:`toolchain.nn.functional.spike`), used for the groups in ``scale``.
    """

    syn: Dict[str, torch.Tensor] = field(default_factory=dict)
    fu: Dict[str, torch.Tensor] = field(default_factory=dict)
    fv: Dict[str, torch.Tensor] = field(default_factory=dict)
    bias: Dict[str, torch.Tensor] = field(default_factory=dict)
    scale: Dict[str, torch.Tensor] = field(default_factory=dict)
    surrogate: Dict[str, Tuple[str, float]] = field(default_factory=dict)
    spike_fn: Optional[Callable[[torch.Tensor, str, float], torch.Tensor]] = None


@dataclass
class Trace:
    """What :func:`run` returns. ``spikes[g]``, ``u[g]``, ``v[g]``, ``v_pre[g]``: per step ``t`` a tensor of the
    samples still running at ``t`` (rows of ``rows[t]``; ``rows[t]`` None: all samples); ``u``/``v`` after the
    step's reset (as the numpy simulator records them), ``v_pre`` before the spike test (only with hooks).
    ``compact`` runs hold uint8 spikes and int32 ``u``/``v``; otherwise float64 (differentiable).
    ``steps_run``: (B,) int64 steps each sample ran."""

    spikes: Dict[str, List[torch.Tensor]]
    u: Dict[str, List[torch.Tensor]]
    v: Dict[str, List[torch.Tensor]]
    v_pre: Dict[str, List[torch.Tensor]]
    rows: List[Optional[torch.Tensor]]
    steps_run: np.ndarray


def run(p: Plan, inputs: Mapping[str, torch.Tensor], steps: int, record: Sequence[str] = (),
        hooks: Optional[Hooks] = None, compact: bool = False,
        early_exit: Optional[Callable[[int, np.ndarray], Any]] = None) -> Trace:
    """Run ``steps`` steps of plan ``p``. ``inputs``: port -> (B, T >= steps, n) tensor on ``p.device`` (binary
    spikes, graded payloads, or bias mantissas; a bias port may be (B, n): the same every step). ``record``:
    groups whose spikes, ``u`` and ``v`` are kept (the output group's always are). ``hooks``: the fake-quantised
    model's surrogates. ``compact``: keep records as uint8/int32 (no gradients). ``early_exit``: as
    :func:`toolchain.sim.reference.simulate`'s (samples whose mask entry is True stop)."""
    h = hooks or Hooks()
    dev = p.device
    batch = next(iter(inputs.values())).shape[0]
    keep = set(record) | {p.output}
    f64 = dict(dtype=torch.float64, device=dev)
    # the units updated: every group side by side (p.merged) unless surrogates are tied per group (hooks)
    merged = p.merged if hooks is None and p.merged is not None else None
    units = [merged] if merged is not None else p.groups
    unit_of = {g.name: ("*" if merged is not None else g.name) for g in p.groups}
    sl_of = {g.name: (p.slices[g.name] if merged is not None else slice(None)) for g in p.groups}
    state = {u.name: (torch.zeros(batch, u.n, **f64) if u.u_init is None else u.u_init.expand(batch, u.n).clone(),
                      u.v_init.expand(batch, u.n).clone()) for u in units}
    queues: Dict[str, List[Optional[torch.Tensor]]] = {s.name: [None] * (s.delay + 1) for s in p.syns}
    tr = Trace({g: [] for g in keep}, {g: [] for g in keep}, {g: [] for g in keep}, {g: [] for g in keep}, [],
               np.full(batch, steps, np.int64))
    params = {g.name: (ste(h.fu.get(g.name), g.fu), ste(h.fv.get(g.name), g.fv),
                      ste(h.bias.get(g.name), g.bias) if g.has_bias or g.name in h.bias else None)
              for g in units}
    th = through if hooks is not None else None
    spike_ports = [k for k in inputs if p.port_kind.get(k, "spikes") == "spikes"]
    resetting = [g for g in p.groups if g.reset_interval > 0]
    port_groups = [g for g in p.groups if g.bias_port is not None]
    active: Optional[torch.Tensor] = None      # rows still running (None: all)
    active_np = np.arange(batch)
    out_grp = p.by_name[p.output]
    acc_out = np.zeros((batch, out_grp.n), np.int64) if early_exit is not None else None

    def at(a: torch.Tensor, t: int) -> torch.Tensor:
        a = a[:, t] if a.dim() == 3 else a
        return a if active is None else a[active]

    for t in range(steps):
        if active is not None and active.numel() == 0:
            break
        rows = batch if active is None else int(active.numel())
        a_in: Dict[str, Optional[torch.Tensor]] = {u.name: None for u in units}
        for s in p.syns:  # 1. input due now: the (int32-wrapping, in lif_subthreshold) sum of activations
            c = queues[s.name][t % (s.delay + 1)]
            if c is None:
                continue
            key = unit_of[s.dst]
            if merged is None:
                a_in[key] = c if a_in[key] is None else a_in[key] + c
            else:
                if a_in[key] is None:
                    a_in[key] = torch.zeros(rows, merged.n, **f64)
                a_in[key][:, sl_of[s.dst]] += c
        outs: Dict[str, torch.Tensor] = {}
        for g in units:  # 2. the LIF update
            u, v = state[g.name]
            fu, fv, bias = params[g.name]
            due = [r for r in resetting if r.resets_at(t) and unit_of[r.name] == g.name]
            if due:  # lava-dl's periodic reset: u = v = 0 before the update
                u, v = u.clone(), v.clone()
                for r in due:
                    u[:, sl_of[r.name]] = 0
                    v[:, sl_of[r.name]] = 0
            ports = [r for r in port_groups if unit_of[r.name] == g.name]
            if ports:  # bias input ports: the mantissas of this step, shifted by the group's bias_exp
                full = torch.zeros(rows, g.n, **f64) if bias is None else bias.expand(rows, g.n).clone()
                for r in ports:
                    full[:, sl_of[r.name]] += torch.floor(at(inputs[r.bias_port], t).to(torch.float64) *
                                                          r.bias_scale)
                bias = full
            u, v = fx.lif_subthreshold(u, v, a_in[g.name], fu, fv, bias, through=th, wrap_free=g.wrap_free)
            v_pre = v
            sur = None
            if g.spiking and g.name in h.scale and h.spike_fn is not None:
                name, k = h.surrogate.get(g.name, ("exp", 1.0))
                sur = h.spike_fn((v - g.vth64) / h.scale[g.name], name, k)
            v, s = fx.lif_fire(v, g.vth64, g.subtract, sur)
            state[g.name] = (u, v)
            outs[g.name] = s
            if hooks is not None and g.name in keep:
                tr.v_pre[g.name].append(v_pre)
        for g in p.groups:  # this step's records and outputs, per group
            key, sl = unit_of[g.name], sl_of[g.name]
            if merged is not None:
                outs[g.name] = outs[key][:, sl]
            if g.name in keep:
                u, v = state[key]
                s = outs[g.name]
                if compact:
                    tr.spikes[g.name].append(s.to(torch.uint8))
                    tr.u[g.name].append(u[:, sl].to(torch.int32))
                    tr.v[g.name].append(v[:, sl].to(torch.int32))
                else:
                    tr.spikes[g.name].append(s)
                    tr.u[g.name].append(u[:, sl])
                    tr.v[g.name].append(v[:, sl])
        tr.rows.append(active)
        for name in spike_ports:
            outs[name] = at(inputs[name], t)
        for s in p.syns:  # 3. activations leaving now, due at t + 1 + delay
            src = outs[s.src]
            exact = activation(s, src.detach(), zero_one=True)
            sur = h.syn.get(s.name)
            if sur is not None and (sur.requires_grad or src.requires_grad):
                exact = ste(src.to(sur.dtype) @ sur, exact)
            queues[s.name][t % (s.delay + 1)] = exact
        if early_exit is not None:
            y = outs[p.output] if out_grp.spiking else state[unit_of[p.output]][1][:, sl_of[p.output]]
            acc_out[active_np] += y.detach().to(torch.int64).cpu().numpy()
            stop = np.asarray(early_exit(t, acc_out[active_np].copy()), dtype=bool).reshape(-1)
            if stop.shape != (active_np.size,):
                raise InputError(f"early_exit returned shape {stop.shape}, expected ({active_np.size},)",
                                 field="early_exit")
            if stop.any():
                tr.steps_run[active_np[stop]] = t + 1
                kept = torch.as_tensor(np.flatnonzero(~stop), device=dev)
                active_np = active_np[~stop]
                active = torch.as_tensor(active_np, device=dev)
                state = {k: (u[kept], v[kept]) for k, (u, v) in state.items()}
                for k in queues:
                    queues[k] = [None if c is None else c[kept] for c in queues[k]]
    return tr


def stack(tr_list: List[torch.Tensor], rows: List[Optional[torch.Tensor]], batch: int) -> torch.Tensor:
    """(B, T, n) from per-step tensors of the running samples (zero after a sample's exit)."""
    if all(r is None for r in rows[:len(tr_list)]):
        return torch.stack(tr_list, 1) if tr_list else torch.zeros(batch, 0, 0)
    first = tr_list[0]
    out = torch.zeros((batch, len(tr_list)) + tuple(first.shape[1:]), dtype=first.dtype, device=first.device)
    for t, (a, r) in enumerate(zip(tr_list, rows)):
        if r is None:
            out[:, t] = a
        else:
            out[r, t] = a
    return out


# ------------------------------------------------------------------------------------------- simulate
def prepare(program: Program, x: Any, steps: Optional[int], device: Union[str, torch.device, None] = "cpu"
            ) -> Tuple[Dict[str, torch.Tensor], int, int]:
    """Check and convert the input with :func:`toolchain.sim.reference.prepare_inputs` (same rules and errors;
    torch tensors are accepted and must hold integers); returns ``({port: (B, steps, n) tensor on device},
    B, steps)`` — uint8 binary spikes, int32 graded payloads and bias mantissas (a bias given once per sample
    stays (B, n))."""
    def arr(a: Any) -> np.ndarray:
        a = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
        if np.issubdtype(a.dtype, np.floating):
            if not np.all(np.equal(np.mod(a, 1), 0)):
                raise InputError("the input must hold integers (spikes, graded payloads or bias mantissas)",
                                 field="input")
            a = a.astype(np.int64)
        return a
    xs: Any = {k: arr(v) for k, v in x.items()} if isinstance(x, Mapping) else arr(x)
    arrays, batch, steps = R.prepare_inputs(program, xs, steps)
    dev = _device(device)
    out = {}
    for k, a in arrays.items():
        if a.ndim == 3 and a.shape[1] > 0 and a.strides[1] == 0:  # a bias held for every step: (B, n)
            a = a[:, 0]
        out[k] = torch.as_tensor(np.ascontiguousarray(a), device=dev)
    return out, batch, steps


def simulate(program: Program, x: Union[np.ndarray, Mapping[str, np.ndarray]], steps: Optional[int] = None,
             record: Union[bool, Sequence[str]] = False, early_exit: Optional[Callable[[int, np.ndarray], Any]] = None,
             device: Union[str, torch.device, None] = "cpu", compiled: Optional[Plan] = None) -> SimResult:
    """Run ``program`` with torch tensors on ``device`` ("cpu", "cuda", "cuda:1", ...): the same arguments and the
    same :class:`SimResult` (``backend="torch"``) as :func:`toolchain.sim.reference.simulate`, bit-exact with it.
    ``compiled``: a :func:`plan` of ``program`` on ``device`` to reuse (skips the weight preparation)."""
    p = compiled if compiled is not None else plan(program, device)
    inputs, batch, steps = prepare(program, x, steps, p.device)
    names = R.recorded_groups(program, record)
    out_name = program.output
    out_group = program.groups[out_name]
    with torch.no_grad():
        tr = run(p, inputs, steps, names, compact=True, early_exit=early_exit)

    def grab(lst: List[torch.Tensor], n: int, dt: Any) -> np.ndarray:
        if not lst:
            return np.zeros((batch, steps, n), dt)
        a = stack(lst, tr.rows, batch).cpu().numpy()
        if a.shape[1] < steps:  # every sample exited early
            a = np.concatenate([a, np.zeros((batch, steps - a.shape[1], n), a.dtype)], axis=1)
        return a.astype(dt, copy=False)

    spikes = {g: grab(tr.spikes[g], program.groups[g].size, np.uint8) for g in names}
    u = {g: grab(tr.u[g], program.groups[g].size, np.int32) for g in names}
    v = {g: grab(tr.v[g], program.groups[g].size, np.int32) for g in names}
    if out_group.spiking:
        spikes.setdefault(out_name, grab(tr.spikes[out_name], out_group.size, np.uint8))
        output, kind = spikes[out_name], "spikes"
    else:
        v.setdefault(out_name, grab(tr.v[out_name], out_group.size, np.int32))
        output, kind = v[out_name], "v"
    return SimResult(spikes=spikes, u=u, v=v, output=output, output_group=out_name, output_kind=kind,
                     steps_run=tr.steps_run, backend="torch",
                     groups=[g for g in program.groups if g in spikes or g in v])
