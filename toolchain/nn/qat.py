"""Quantisation-aware fine-tuning: a float :class:`~toolchain.nn.SpikingNet` whose forward pass is its compiled
integer network.

``quantisation_aware(model, target, dt)`` wraps ``model`` (sharing its parameters) in :class:`QuantisationAware`.
Every forward pass

1. compiles the model with the compiler's own pipeline — ``compile_graph(to_graph(model, dt, input_shape),
   target)``, i.e. the quantise pass (:mod:`toolchain.passes.quantise`) chooses the threshold mantissas, the
   weight mantissas and exponents, the 12-bit decays and the bias exactly as it will for deployment — whenever a
   parameter changed since the last forward (so after each optimiser step), and
2. runs that Program with the integer engine of :class:`~toolchain.nn.IntegerNet` (float64 tensors holding exact
   integers, the same delays: one step per synapse layer), with straight-through estimators (STE) that tie each
   integer to the float parameter it was computed from.

So the forward pass equals the hardware (the reference simulator and Lava) bit for bit — spikes and ``u``/``v``
on every step — and the backward pass is the float network's, expressed in the integer network's units:

* voltage scale per neuron ``S_i`` (integer v units per float voltage unit): ``64·vth/θ_i`` for spiking groups
  (``vth``: the group's threshold mantissa, ``θ_i`` the float threshold — differentiable), the compiler's
  readout scale (``Program.metadata["v_scale"]``) for readouts;
* synapses: ``a_in`` (the activation, after the weight exponent) has the surrogate ``Σ_j (S_i/64)·M_ij·s_j``,
  with ``M`` the float synapse matrix of the torch modules between the two neuron layers (``nn.Linear``,
  ``nn.Conv2d``, :class:`~toolchain.nn.SumPool2d`, ``nn.Flatten``: their composition, differentiable; the
  recurrent weight of a :class:`~toolchain.nn.Recurrent`), restricted to the stored synapses;
* decays: the fraction ``(4096 − dv)/4096`` has the surrogate ``α`` (``α_mem``), ``(4096 − du − 1)/4096`` of a
  CubaLIF the surrogate ``α_syn``;
* bias (``b`` the float bias into the neuron): a CubaLIF's bias reaches its synaptic current as the compiler maps
  it by default (``cuba_bias="current"``): through synapses from the always-on group
  (:data:`toolchain.passes.quantise.BIAS_GROUP`, which runs exactly and has no parameters), whose ``a_in`` per
  step has the surrogate ``(S_i/64)·b_i``, like any other input to the current; the remainder the compiler
  leaves in the voltage bias (its rise in the initial current ``u_init``) passes no gradient. A LIF's bias (and
  a CubaLIF's compiled with ``cuba_bias="fold"``) is the voltage bias ``bias_mant << bias_exp``, surrogate
  ``S_i·c_i·b_i`` (``c = 1/(1 − α_syn)`` for a folded CubaLIF bias, else 1); a ``weight_split`` companion group
  (``<name>.lo``) passes no gradient either (its group's surrogate already covers the whole float weight);
* roundings (``rtz`` decays, floor shifts, int32 and 24-bit wraps) pass gradients straight through;
* spikes: ``s = H(v − vth·64)`` with the neuron's own surrogate at ``(v − vth·64)/S_i = U − θ``.

The compiled network lags the float one by :attr:`QuantisationAware.latency` steps (one per synapse layer);
by default ``forward`` runs the extra steps and returns the output on the float model's time axis.
"""
from __future__ import annotations

import warnings
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import nn

from ..errors import InputError
from ..passes.quantise import BIAS_GROUP, SPLIT_SUFFIX
from ..program import Program
from . import functional as Fn
from . import integer as I
from .layers import Recurrent
from .net import SpikingNet, is_stateful, neuron_of
from .neurons import CubaLIF
from .nir_map import node_names, to_graph

__all__ = ["QuantisationAware", "quantisation_aware"]


def _flat(t: torch.Tensor, n: int) -> torch.Tensor:
    """A per-layer (0-d) or per-neuron parameter as a flat float64 (n,) tensor (differentiable)."""
    t = t.to(torch.float64).reshape(-1)
    return t.expand(n) if t.numel() == 1 else t.reshape(n)


class QuantisationAware(nn.Module):
    """Fake-quantised view of a :class:`SpikingNet` for a target (see the module docstring).

    ``model``: the float network (its parameters are this module's parameters; train them with any optimiser and
    call ``model.clamp_()`` after each step as usual). ``target``, ``dt``: as for ``compile_graph``.
    ``input_shape``: one sample at one step (default: from the first input). ``compile_options``: passed to
    :func:`toolchain.compile.compile_graph` (``partition`` defaults to False here: placement does not change the
    arithmetic and costs time on every re-quantisation).

    ``forward(x, steps=None, record=False, align=True)``: ``x`` (B, T, *input_shape) integer-valued spikes ->
    ``y`` (B, steps, *output_shape) float64: the output layer's spikes, or a readout's ``v/S`` (float voltage
    units); ``steps`` defaults to T. With ``align=True`` (default) the integer network runs ``steps + latency``
    steps (the input padded with zeros) and every layer's record is cut to the float model's time axis (layer
    ``g`` from its own latency on), so ``y[:, t]`` is what the float model computes at step t: a drop-in
    replacement for the float model in a training loop. ``align=False`` gives the raw hardware time line
    (``steps`` steps from the first input). With ``record=True`` returns ``(y, rec)``; ``rec[module_name]``
    holds ``"s"`` (spikes), ``"u"`` (``v/S`` before the reset, the float model's ``U``), ``"hw_u"``/``"hw_v"``
    (the integer u, v after the reset, as the reference simulator records them) for every neuron module.
    ``clamp_()`` and ``spiking`` forward to the wrapped model (what the trainers use).
    """

    def __init__(self, model: SpikingNet, target: Any = "loihi2", dt: float = 1e-3,
                 input_shape: Optional[Union[int, Sequence[int]]] = None, **compile_options: Any) -> None:
        super().__init__()
        if not isinstance(model, SpikingNet):
            raise InputError(f"quantisation_aware expects a toolchain.nn.SpikingNet, got {type(model).__name__}",
                             field="model")
        self.model = model
        self.target = target
        self.dt = float(dt)
        self.compile_options = {"partition": False, **compile_options}
        self.input_shape = None if input_shape is None else I._input_shape(model, input_shape)
        self.program: Optional[Program] = None
        self._plan: Optional[I._Plan] = None
        self._fingerprint: Optional[Tuple] = None
        self._compiles = 0

    # ----------------------------------------------------------------------------------------- compiling
    def _current_fingerprint(self) -> Tuple:
        return tuple((id(t), t._version) for t in list(self.model.parameters()) + list(self.model.buffers()))

    def requantise(self) -> Program:
        """Compile the model as it is now (what :meth:`forward` does when a parameter changed)."""
        from ..compile import compile_graph
        if self.input_shape is None:
            self.input_shape = I._input_shape(self.model, None)
        graph = to_graph(self.model, self.dt, self.input_shape)
        with warnings.catch_warnings():
            if self._compiles:  # the compiler's notes were shown on the first compile
                warnings.simplefilter("ignore")
            prog = compile_graph(graph, self.target, **self.compile_options)
        self.program = prog
        self._plan = I._plan(prog)
        self._fingerprint = self._current_fingerprint()
        self._compiles += 1
        return prog

    @property
    def latency(self) -> int:
        """Steps by which the compiled output lags the float model."""
        if self.program is None:
            self.requantise()
        return int(self.program.metadata.get("output_latency_steps", 0))

    # ------------------------------------------------------------------------------------------ surrogates
    def _hooks(self) -> Tuple[I._Hooks, Dict[str, Tuple[str, torch.Tensor]]]:
        """Differentiable surrogates for every group and synapse group, and group -> (module name, S)."""
        prog, plan = self.program, self._plan
        names = node_names(self.model)
        mods = list(self.model.named_children())
        index = {names[m]: i for i, (m, _) in enumerate(mods)}
        shapes = self._shapes()
        hooks = I._Hooks(spike_fn=Fn.spike)
        info: Dict[str, Tuple[str, torch.Tensor]] = {}
        v_scale = prog.metadata.get("v_scale", {})
        for g in plan.groups:
            if g.name == BIAS_GROUP:  # the always-on neuron: no parameters, runs exactly
                continue
            if g.name not in index:
                raise InputError(f"compiled group '{g.name}' has no module in the model (modules: "
                                 f"{list(index)})", node=g.name)
            mname, mod = mods[index[g.name]]
            neuron = neuron_of(mod)
            n = g.n
            if g.spiking:
                vth = torch.as_tensor(prog.groups[g.name].vth.astype(np.float64))
                S = 64.0 * vth / _flat(neuron.threshold, n)
            else:
                S = torch.as_tensor(np.broadcast_to(np.asarray(v_scale[g.name], dtype=np.float64), (n,)).copy())
            info[g.name] = (mname, S)
            hooks.scale[g.name] = S
            hooks.surrogate[g.name] = (getattr(neuron, "surrogate", "exp"), getattr(neuron, "surrogate_scale", 1.0))
            alpha_m = neuron.alpha_mem if isinstance(neuron, CubaLIF) else neuron.alpha
            hooks.fv[g.name] = _flat(alpha_m, n)
            c_bias = torch.ones(n, dtype=torch.float64)
            if isinstance(neuron, CubaLIF):
                a_s = _flat(neuron.alpha_syn, n)
                hooks.fu[g.name] = a_s
                c_bias = 1.0 / torch.clamp(1.0 - a_s, min=1.0 / 4096)
            bias = torch.zeros(n, dtype=torch.float64)
            seen = set()
            bias_syns = []
            for s in plan.syns:
                if s.dst != g.name:
                    continue
                if s.src == BIAS_GROUP:
                    bias_syns.append(s.name)
                    continue
                if _is_split(s.name):
                    continue
                if s.recurrent and s.src == s.dst:
                    if not isinstance(mod, Recurrent):
                        raise InputError("recurrent synapse group into a module that is not Recurrent",
                                         node=s.name)
                    mt = mod.rec.weight.to(torch.float64).t()
                    b = mod.rec.bias
                else:
                    start = 0 if s.src in plan.ports else index[s.src] + 1
                    seg = [m for _, m in mods[start:index[g.name]]]
                    if any(is_stateful(m) for m in seg):
                        raise InputError(f"synapse group {s.src} -> {g.name} spans a neuron module", node=s.name)
                    mt, b = _segment_matrix(seg, shapes[s.src])
                if mt.shape != s.w_t.shape:
                    raise InputError(f"float synapse matrix {tuple(mt.shape)} does not match the compiled "
                                     f"{tuple(s.w_t.shape)}", node=s.name, field="weight")
                hooks.syn[s.name] = mt * s.mask_t.to(mt.dtype) * (S / 64.0)[None, :]
                key = (s.src, s.recurrent)
                if b is not None and key not in seen:
                    seen.add(key)
                    bias = bias + b.to(torch.float64).reshape(n)
            if bias_syns:  # the bias goes into the current (cuba_bias="current"): one surrogate for all its parts
                hooks.syn[bias_syns[0]] = ((S / 64.0) * bias)[None, :]
            else:
                hooks.bias[g.name] = S * c_bias * bias
        return hooks, info

    def _shapes(self) -> Dict[str, Tuple[int, ...]]:
        shapes = {p: tuple(shp) for p, (shp, _) in self._plan.ports.items()}
        shapes.update({g.name: g.shape for g in self._plan.groups})
        return shapes

    # ---------------------------------------------------------------------------------------------- run
    def forward(self, x: Any, steps: Optional[int] = None, record: bool = False, align: bool = True):
        if self.input_shape is None and not isinstance(x, Mapping):
            self.input_shape = tuple(int(s) for s in x.shape[2:])
        if self.program is None or self._fingerprint != self._current_fingerprint():
            self.requantise()
        plan = self._plan
        lat = {g.name: int(self.program.metadata.get("latency_steps", {}).get(g.name, 0)) for g in plan.groups}
        n_steps = _time_steps(x) if steps is None else int(steps)
        run_steps = n_steps + (max(lat.values(), default=0) if align else 0)
        inputs, batch, _ = I._prepare(self.program, x, run_steps)
        hooks, info = self._hooks()
        names = [g.name for g in plan.groups] if record else []
        spikes, rec = I._run(plan, inputs, run_steps, names, hooks)
        out = plan.by_name[plan.output]

        def stack(lst: List[torch.Tensor], g: I._Grp) -> torch.Tensor:
            a = lat[g.name] if align else 0
            return torch.stack(lst[a:a + n_steps], 1).reshape((batch, n_steps) + g.shape)

        if out.spiking:
            y = stack(spikes[out.name], out)
        else:
            y = stack([v / info[out.name][1] for v in rec[out.name]["v_pre"]], out)
        if not record:
            return y
        result: Dict[str, Dict[str, torch.Tensor]] = {}
        for g in plan.groups:
            if g.name not in info:  # the always-on bias group
                continue
            mname, S = info[g.name]
            result[mname] = {"s": stack(spikes[g.name], g),
                             "u": stack([v / S for v in rec[g.name]["v_pre"]], g),
                             "hw_u": stack(rec[g.name]["u"], g).detach(),
                             "hw_v": stack(rec[g.name]["v"], g).detach()}
        return y, result

    @property
    def spiking(self) -> bool:
        """Whether the output is spikes (False for a readout), as the wrapped model's."""
        return self.model.spiking

    def clamp_(self) -> "QuantisationAware":
        """Clamp the wrapped model's leaks and thresholds (see :meth:`toolchain.nn.SpikingNet.clamp_`)."""
        self.model.clamp_()
        return self

    def extra_repr(self) -> str:
        return f"target={self.target!r}, dt={self.dt:g}, input_shape={self.input_shape}, compiles={self._compiles}"


def _is_split(name: str) -> bool:
    """A ``weight_split`` companion group (``<name>.lo`` or ``<name>.lo@d<k>``)."""
    return name.endswith(SPLIT_SUFFIX) or (SPLIT_SUFFIX + "@d") in name


def _time_steps(x: Any) -> int:
    if isinstance(x, Mapping):
        x = next(iter(x.values()))
    return int(np.shape(x)[1]) if not isinstance(x, torch.Tensor) else int(x.shape[1])


def _segment_matrix(seg: List[nn.Module], src_shape: Tuple[int, ...]
                    ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """(n_src, n_dst) float matrix ``Mᵀ`` and bias ``b`` of the stateless modules ``seg`` (differentiable):
    ``f(x) = M x + b`` evaluated on the basis of the source's (C-order) flat units."""
    n_src = int(np.prod(src_shape))
    dtype = torch.float64
    for m in seg:
        for p in m.parameters():
            dtype = p.dtype
            break
    basis = torch.cat([torch.zeros(1, n_src, dtype=dtype), torch.eye(n_src, dtype=dtype)]).reshape(
        (n_src + 1,) + tuple(src_shape))
    h = basis
    for m in seg:
        h = m(h)
    h = h.reshape(n_src + 1, -1).to(torch.float64)
    b = h[0]
    has_bias = any(getattr(m, "bias", None) is not None for m in seg)
    return h[1:] - b[None, :], (b if has_bias else None)


def quantisation_aware(model: SpikingNet, target: Any = "loihi2", dt: float = 1e-3,
                       input_shape: Optional[Union[int, Sequence[int]]] = None,
                       **compile_options: Any) -> QuantisationAware:
    """Wrap ``model`` for quantisation-aware fine-tuning on ``target`` at step ``dt`` seconds: a module whose
    forward pass is the compiled integer network (bit-exact with the reference simulator, same delays) and whose
    backward pass reaches ``model``'s float parameters through straight-through estimators. See
    :class:`QuantisationAware`."""
    return QuantisationAware(model, target, dt, input_shape, **compile_options)
