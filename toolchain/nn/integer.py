"""Hardware-aware integer mode: a compiled :class:`~toolchain.program.Program` evaluated with torch tensors.

:class:`IntegerNet` runs exactly the rules of :func:`toolchain.sim.reference.simulate` (which are Lava 0.10.0's
``fixed_pt`` rules, written down in :mod:`toolchain.fixedpoint`), batched, on float64 tensors that hold exact
integers (every intermediate value stays below 2^53; the int32 wrap-arounds Lava's numpy code makes are applied
explicitly). Its spikes and ``u``/``v`` equal the reference simulator's bit for bit; ``tests/test_nn_integer.py``
checks that on every step.

The same engine (``_run``) also runs the fake-quantised model of :mod:`toolchain.nn.qat`: there every
rounding step is a straight-through estimator and every integer parameter is tied to the float parameter it came
from, so the forward pass is the integer network and the backward pass is the float network's.

One step ``t`` (0-based), for every sample at once — the torch re-statement of the rules, each next to the
:mod:`toolchain.fixedpoint` function it follows:

1. ``a_in`` of a group: the int32-wrapping sum (:func:`~toolchain.fixedpoint.wrap_int32`) of the activations its
   synapse groups produced at step ``t − 1 − delay`` (zero before step ``1 + delay``).
2. LIF update (:func:`~toolchain.fixedpoint.lif_step`):
   ``u' = decay_rtz(u, du + 1) + wrap32(a_in << 6)`` (wrapping int32 sum), ``u = wrap_current(u')``,
   ``v' = wrap32(decay_rtz(v, dv) + u + (bias_mant << bias_exp))``, ``v = clip(v', −(2^23 − 1), 2^23 − 1)``,
   ``s = v > vth << 6``, then ``v = 0`` (zero reset) or ``v −= vth << 6`` (subtract reset).
3. Activation of a synapse group for the source's output at step ``t`` (input column ``t`` or the source group's
   spikes) (:func:`~toolchain.fixedpoint.synaptic_input` with :func:`~toolchain.fixedpoint.lava_weights`):
   binary spikes: ``wrap32(shift(W·s, weight_exp))``; graded payloads through Dense/Sparse: the product wraps at
   32 bits before the shift; through DelayDense each product wraps. ``shift`` is ``·2^e`` or ``floor(·2^−e)``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from .. import fixedpoint as fx
from ..errors import InputError
from ..program import Program
from ..sim.record import SimResult
from ..sim.reference import prepare_inputs, synapse_process
from . import functional as Fn

__all__ = ["IntegerNet", "wrap32", "wrap_current", "decay_rtz", "lif_subthreshold", "lif_step_int", "ste"]

_TWO31 = float(2 ** 31)
_TWO32 = float(2 ** 32)
_MAX_UV = float(fx.MAX_UV)
_F64_EXACT = 2 ** 53


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


def _through(x: torch.Tensor, exact_fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Apply ``exact_fn`` in the forward pass and the identity in the backward pass."""
    if not x.requires_grad:
        return exact_fn(x)
    return _Ste.apply(x, exact_fn(x.detach()))


# --------------------------------------------------------------------------- the integer rules, in torch
def wrap32(x: torch.Tensor) -> torch.Tensor:
    """Two's-complement wrap of exact integers into int32 (:func:`toolchain.fixedpoint.wrap_int32`).
    Works on int64 tensors and on float64 tensors holding integers below 2^53 (a no-op inside int32)."""
    if x.numel() == 0 or (float(x.max()) < _TWO31 and float(x.min()) >= -_TWO31):
        return x
    if x.is_floating_point():
        return x - _TWO32 * torch.floor((x + _TWO31) / _TWO32)
    return torch.remainder(x + 2 ** 31, 2 ** 32) - 2 ** 31


def wrap_current(x: torch.Tensor) -> torch.Tensor:
    """Lava's one-correction 24-bit wrap of ``u`` (:func:`toolchain.fixedpoint.wrap_current`):
    ``x − 2^24`` if ``x > 2^23``, ``x + 2^24`` if ``x <= −2^23``, else ``x``."""
    w = torch.where(x > _MAX_UV, x - 2 * _MAX_UV, x)
    return torch.where(w <= -_MAX_UV, x + 2 * _MAX_UV, w)


def decay_rtz(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """``trunc(x · factor)`` with ``factor = (4096 − decay)/4096`` (:func:`toolchain.fixedpoint.decay_rtz`);
    exact in float64 because ``|x| < 2^31`` and ``factor`` has 12 fractional bits."""
    return torch.trunc(x * factor)


def lif_subthreshold(u: torch.Tensor, v: torch.Tensor, a_in: Optional[torch.Tensor], fu: torch.Tensor,
                     fv: torch.Tensor, bias: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Steps 1-5 of :func:`toolchain.fixedpoint.lif_step` on float64 integer tensors: returns ``(u, v)`` before
    the spike test. ``fu = (4096 − du − 1)/4096``, ``fv = (4096 − dv)/4096``, ``bias = bias_mant << bias_exp``;
    ``a_in`` the summed activation (None: no input this step). Each rounding/wrap is a straight-through
    estimator when its input carries a gradient (the fake-quantised model), a plain exact operation otherwise."""
    cur = _through(u * fu, torch.trunc)                                    # decay_rtz(u, du + 1)
    if a_in is not None:
        a_in = _through(a_in, wrap32)                                      # int32 port sum
        cur = _through(cur + _through(a_in * 64.0, wrap32), wrap32)        # + (a_in << 6), int32
    u = _through(cur, wrap_current)                                        # wrap_current
    v = _through(_through(v * fv, torch.trunc) + u + bias, wrap32)         # decay_rtz(v, dv) + u + bias, int32
    v = torch.clamp(v, float(fx.V_MIN), float(fx.V_MAX))                   # saturate to 24 bits
    return u, v


def lif_step_int(u: torch.Tensor, v: torch.Tensor, a_in: Optional[torch.Tensor], fu: torch.Tensor,
                 fv: torch.Tensor, bias: torch.Tensor, vth64: torch.Tensor, subtract: bool
                 ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One exact Lava LIF step on float64 integer tensors (:func:`toolchain.fixedpoint.lif_step`); returns
    ``(u, v, s)`` with ``vth64 = vth << 6`` (strict spike test, then zero or subtract reset)."""
    u, v = lif_subthreshold(u, v, a_in, fu, fv, bias)
    s = (v > vth64).to(v.dtype)
    v = v - vth64 * s if subtract else v * (1.0 - s)
    return u, v, s


# -------------------------------------------------------------------------------------------- the plan
@dataclass
class _Syn:
    name: str
    src: str
    dst: str
    delay: int
    weight_exp: int
    graded: bool
    process: str
    w_t: torch.Tensor            # (n_in, n_out) float64: the weights Lava uses, transposed
    mask_t: torch.Tensor         # (n_in, n_out) bool: stored synapses
    per_product_wrap: bool       # graded DelayDense with |w·s| >= 2^31 possible
    recurrent: bool


@dataclass
class _Grp:
    name: str
    shape: Tuple[int, ...]
    n: int
    fu: torch.Tensor             # (n,) float64, (4096 − du − 1)/4096
    fv: torch.Tensor             # (n,) float64, (4096 − dv)/4096
    bias: torch.Tensor           # (n,) float64, bias_mant << bias_exp
    vth64: torch.Tensor          # (n,) float64, vth << 6
    subtract: bool
    spiking: bool
    v_init: torch.Tensor         # (n,) float64, v at step 0 (NeuronGroup.v_init)


@dataclass
class _Plan:
    groups: List[_Grp]
    syns: List[_Syn]
    ports: Dict[str, Tuple[Tuple[int, ...], int]]  # name -> (shape, num_message_bits)
    output: str
    by_name: Dict[str, _Grp] = field(default_factory=dict)


def _plan(program: Program) -> _Plan:
    """Turn a Program into tensors (the Lava-effective weights, decays as fractions, shifted bias/threshold)."""
    groups = []
    for g in program.groups.values():
        du = g.du.astype(np.float64)
        dv = g.dv.astype(np.float64)
        groups.append(_Grp(
            g.name, tuple(g.shape), g.size,
            torch.as_tensor((fx.DECAY_UNITY - (du + fx.DS_OFFSET)) / fx.DECAY_UNITY),
            torch.as_tensor((fx.DECAY_UNITY - (dv + fx.DM_OFFSET)) / fx.DECAY_UNITY),
            torch.as_tensor(fx.effective_bias(g.bias_mant, g.bias_exp).astype(np.float64)),
            torch.as_tensor(fx.effective_threshold(g.vth).astype(np.float64)),
            g.reset_mode == "subtract", bool(g.spiking), torch.as_tensor(g.v_init.astype(np.float64))))
    ports = {p.name: (tuple(p.shape), int(p.num_message_bits)) for p in program.inputs}
    syns = []
    for s in program.synapses:
        graded = s.src in ports and ports[s.src][1] > 0
        payload = 2 ** ports[s.src][1] - 1 if graded else 1
        w_eff = fx.lava_weights(s.weight.to_dense(), s.num_weight_bits, s.sign_mode).astype(np.int64)
        rowabs = int(np.abs(w_eff).sum(axis=1).max()) if w_eff.size else 0
        if rowabs * payload * 2.0 ** max(s.weight_exp, 0) >= _F64_EXACT:
            raise InputError(f"activations up to {rowabs * payload} << {s.weight_exp} exceed the exact float64 "
                             f"range of IntegerNet", node=s.name, field="weight")
        process = synapse_process(s)
        maxabs = int(np.abs(w_eff).max()) if w_eff.size else 0
        syns.append(_Syn(s.name, s.src, s.dst, int(s.delay), int(s.weight_exp), graded, process,
                         torch.as_tensor(w_eff.T.astype(np.float64)).contiguous(),
                         torch.as_tensor(s.weight.stored_mask().T.copy()),
                         graded and process == "delay_dense" and maxabs * payload >= 2 ** 31, bool(s.recurrent)))
    plan = _Plan(groups, syns, ports, program.output)
    plan.by_name = {g.name: g for g in groups}
    return plan


def _activation(syn: _Syn, s: torch.Tensor) -> torch.Tensor:
    """Exact int32 activation (float64) of ``syn`` for source output ``s`` (B, n_in): fixedpoint.synaptic_input."""
    if not syn.graded:
        s = (s != 0).to(torch.float64)
    if syn.per_product_wrap:
        acc = wrap32(s[:, :, None] * syn.w_t[None]).sum(dim=1)
    else:
        acc = s @ syn.w_t
        if syn.graded and syn.process in ("dense", "sparse"):
            acc = wrap32(acc)
    e = syn.weight_exp
    if e > 0:
        acc = acc * float(2 ** e)
    elif e < 0:
        acc = torch.floor(acc * 2.0 ** e)
    return wrap32(acc)


# ------------------------------------------------------------------------------------------- the engine
@dataclass
class _Hooks:
    """Differentiable surrogates that tie the integer network to float parameters (see :mod:`toolchain.nn.qat`).

    ``syn[name]``: (n_in, n_out) float64 tensor, the float model's contribution to ``a_in`` per unit source
    output (already in a_in units, after the weight exponent). ``fu``/``fv``/``bias``: per group (n,) surrogates
    of the decay fractions and of the bias (v units). ``scale``: per group (n,) ``S`` (v units per float voltage
    unit), for the spike surrogate ``φ((v − vth·64)/S)``. ``surrogate``: (name, steepness) per group.
    """

    syn: Dict[str, torch.Tensor] = field(default_factory=dict)
    fu: Dict[str, torch.Tensor] = field(default_factory=dict)
    fv: Dict[str, torch.Tensor] = field(default_factory=dict)
    bias: Dict[str, torch.Tensor] = field(default_factory=dict)
    scale: Dict[str, torch.Tensor] = field(default_factory=dict)
    surrogate: Dict[str, Tuple[str, float]] = field(default_factory=dict)


def _run(plan: _Plan, inputs: Dict[str, torch.Tensor], steps: int, record: Sequence[str],
         hooks: Optional[_Hooks] = None) -> Tuple[Dict[str, List[torch.Tensor]], Dict[str, Dict[str, list]]]:
    """Run ``steps`` steps. ``inputs``: port -> (B, T, n) float64. Returns per group the list of spikes and the
    records ``{"u": [...], "v": [...], "v_pre": [...]}`` (post-reset u, v as the reference simulator records them,
    and v before the reset) of the groups in ``record`` (and always the output group)."""
    h = hooks or _Hooks()
    batch = next(iter(inputs.values())).shape[0]
    keep = set(record) | {plan.output}
    state = {g.name: (torch.zeros(batch, g.n, dtype=torch.float64), g.v_init.expand(batch, g.n).clone())
             for g in plan.groups}
    queues: Dict[str, List[Optional[torch.Tensor]]] = {s.name: [None] * (s.delay + 1) for s in plan.syns}
    spikes: Dict[str, List[torch.Tensor]] = {g.name: [] for g in plan.groups if g.name in keep}
    rec: Dict[str, Dict[str, list]] = {g: {"u": [], "v": [], "v_pre": []} for g in keep}
    params = {}
    for g in plan.groups:
        params[g.name] = (ste(h.fu.get(g.name), g.fu), ste(h.fv.get(g.name), g.fv), ste(h.bias.get(g.name), g.bias))
    for t in range(steps):
        a_in: Dict[str, Optional[torch.Tensor]] = {g.name: None for g in plan.groups}
        for s in plan.syns:
            c = queues[s.name][t % (s.delay + 1)]
            if c is not None:
                a_in[s.dst] = c if a_in[s.dst] is None else a_in[s.dst] + c
        outs: Dict[str, torch.Tensor] = {}
        for g in plan.groups:
            u, v = state[g.name]
            fu, fv, bias = params[g.name]
            u, v = lif_subthreshold(u, v, a_in[g.name], fu, fv, bias)
            v_pre = v
            if g.spiking:
                if g.name in h.scale:
                    name, k = h.surrogate.get(g.name, ("exp", 1.0))
                    s = Fn.spike((v - g.vth64) / h.scale[g.name], name, k)
                else:
                    s = (v > g.vth64).to(torch.float64)
                v = v - g.vth64 * s if g.subtract else v * (1.0 - s)
            else:  # a readout never spikes (its vth is at the maximum; checked by the compiler)
                s = (v > g.vth64).to(torch.float64)
                if bool(s.any()):
                    v = v - g.vth64 * s if g.subtract else v * (1.0 - s)
            state[g.name] = (u, v)
            outs[g.name] = s
            if g.name in keep:
                spikes[g.name].append(s)
                r = rec[g.name]
                r["u"].append(u)
                r["v"].append(v)
                r["v_pre"].append(v_pre)
        for name, arr in inputs.items():
            outs[name] = arr[:, t]
        for s in plan.syns:
            src = outs[s.src]
            exact = _activation(s, src.detach())
            sur = h.syn.get(s.name)
            if sur is not None and (sur.requires_grad or src.requires_grad):
                exact = ste(src @ sur, exact)
            queues[s.name][t % (s.delay + 1)] = exact
    return spikes, rec


# ------------------------------------------------------------------------------------------- IntegerNet
class IntegerNet(torch.nn.Module):
    """A compiled :class:`~toolchain.program.Program` as a torch module, bit-exact with the reference simulator.

    ``forward(x, steps=None, record=False)``: ``x`` (B, T, *input_shape) integer/bool spikes (or graded payloads;
    a mapping port -> array for several ports) -> ``y`` (B, steps, *output_shape) int64: the output group's
    spikes, or its ``v`` when it is a readout. With ``record=True`` (or a list of group names) it returns
    ``(y, rec)`` with ``rec[group] = {"s", "u", "v"}`` int64 tensors (B, steps, *group_shape), ``u``/``v`` after
    the step's reset, exactly as :func:`toolchain.sim.reference.simulate` records them.
    :meth:`run` returns the same as a :class:`~toolchain.sim.record.SimResult` (numpy, flat groups) for
    :func:`~toolchain.sim.record.first_mismatch`.

    The compiled network lags the float model: its output at step t is the float model's at step
    ``t − latency`` (:attr:`latency`, one step per synapse layer); run ``T + latency`` steps to see all of it.
    """

    def __init__(self, program: Program) -> None:
        super().__init__()
        if not isinstance(program, Program):
            raise InputError(f"IntegerNet needs a toolchain.program.Program, got {type(program).__name__}",
                             field="program")
        self.program = program
        self._plan = _plan(program)

    @classmethod
    def from_model(cls, model: torch.nn.Module, target: Any = "loihi2", dt: float = 1e-3,
                   input_shape: Optional[Union[int, Sequence[int]]] = None, **compile_options: Any) -> "IntegerNet":
        """Compile a :class:`toolchain.nn.SpikingNet` (``compile_graph(to_graph(model, dt, input_shape), target)``)
        and wrap the Program. ``input_shape``: one sample at one step; inferred from a leading ``nn.Linear``."""
        from ..compile import compile_graph
        from .nir_map import to_graph
        shape = _input_shape(model, input_shape)
        return cls(compile_graph(to_graph(model, dt, shape), target, **compile_options))

    @property
    def latency(self) -> int:
        """Steps by which the output lags the float model (``program.metadata["output_latency_steps"]``)."""
        return int(self.program.metadata.get("output_latency_steps", 0))

    @property
    def output_shape(self) -> Tuple[int, ...]:
        return self._plan.by_name[self._plan.output].shape

    def _record_names(self, record: Union[bool, Sequence[str]]) -> List[str]:
        from ..sim.reference import recorded_groups
        return recorded_groups(self.program, record)

    @torch.no_grad()
    def forward(self, x: Any, steps: Optional[int] = None, record: Union[bool, Sequence[str]] = False):
        inputs, batch, steps = _prepare(self.program, x, steps)
        names = self._record_names(record)
        spikes, rec = _run(self._plan, inputs, steps, names)
        out = self._plan.by_name[self._plan.output]

        def stack(lst: List[torch.Tensor], shape: Tuple[int, ...]) -> torch.Tensor:
            if not lst:
                return torch.zeros((batch, 0) + shape, dtype=torch.int64)
            return torch.stack(lst, 1).to(torch.int64).reshape((batch, steps) + shape)

        y = stack(spikes[out.name] if out.spiking else rec[out.name]["v"], out.shape)
        if not names:
            return y
        result = {}
        for g in names:
            shp = self._plan.by_name[g].shape
            result[g] = {"s": stack(spikes[g], shp), "u": stack(rec[g]["u"], shp), "v": stack(rec[g]["v"], shp)}
        return y, result

    def run(self, x: Any, steps: Optional[int] = None, record: Union[bool, Sequence[str]] = False) -> SimResult:
        """The same run as :meth:`forward`, as a :class:`SimResult` (uint8 spikes, int32 u/v, (B, T, n))."""
        res = self.forward(x, steps, record=record if record else [])
        y, rec = res if isinstance(res, tuple) else (res, {})
        names = self._record_names(record)
        out = self._plan.by_name[self._plan.output]
        b, t = y.shape[:2]

        def flat(a: torch.Tensor, dt: Any) -> np.ndarray:
            return a.reshape(b, t, -1).numpy().astype(dt)

        spikes = {g: flat(rec[g]["s"], np.uint8) for g in names}
        u = {g: flat(rec[g]["u"], np.int32) for g in names}
        v = {g: flat(rec[g]["v"], np.int32) for g in names}
        output = flat(y, np.uint8 if out.spiking else np.int32)
        if out.spiking:
            spikes.setdefault(out.name, output)
        else:
            v.setdefault(out.name, output)
        return SimResult(spikes=spikes, u=u, v=v, output=output, output_group=out.name,
                         output_kind="spikes" if out.spiking else "v", steps_run=np.full(b, t, np.int64),
                         backend="torch", groups=[g for g in self.program.groups if g in spikes or g in v])

    def extra_repr(self) -> str:
        return (f"groups={list(self.program.groups)}, synapses={len(self.program.synapses)}, "
                f"target={self.program.target!r}, latency={self.latency}")


def _input_shape(model: torch.nn.Module, input_shape: Optional[Union[int, Sequence[int]]]) -> Tuple[int, ...]:
    if input_shape is not None:
        return (int(input_shape),) if isinstance(input_shape, (int, np.integer)) else tuple(int(s) for s in input_shape)
    first = next(iter(model.children()), None)
    if isinstance(first, torch.nn.Linear):
        return (first.in_features,)
    raise InputError("input_shape is needed (the first module does not fix it; e.g. (C, H, W) for a conv net)",
                     field="input_shape")


def _int_array(x: Any) -> np.ndarray:
    a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if np.issubdtype(a.dtype, np.floating):
        if not np.all(np.equal(np.mod(a, 1), 0)):
            raise InputError("the input must hold integers (spikes or graded payloads)", field="input")
        a = a.astype(np.int64)
    return a


def _prepare(program: Program, x: Any, steps: Optional[int]) -> Tuple[Dict[str, torch.Tensor], int, int]:
    """Check and convert the input with :func:`toolchain.sim.reference.prepare_inputs` (same rules and errors);
    returns ``({port: (B, steps, n) float64}, B, steps)``."""
    xs: Any = {k: _int_array(v) for k, v in x.items()} if isinstance(x, Mapping) else _int_array(x)
    arrays, batch, steps = prepare_inputs(program, xs, steps)
    return {k: torch.as_tensor(a, dtype=torch.float64) for k, a in arrays.items()}, batch, steps
