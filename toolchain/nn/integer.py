"""Hardware-aware integer mode: a compiled :class:`~toolchain.program.Program` evaluated with torch tensors.

:class:`IntegerNet` is a thin ``nn.Module`` over the torch backend of the reference simulator
(:mod:`toolchain.sim.torch_backend`): the same plan (the weights, bounds and delays the numpy simulator compiles,
:func:`toolchain.sim.reference._compile_synapse` / ``_compile_group``), the same engine and the one LIF update
(:func:`toolchain.fixedpoint.lif_subthreshold` / :func:`toolchain.fixedpoint.lif_fire`) that the numpy int32
emulation runs. Its spikes and ``u``/``v`` equal the reference simulator's bit for bit on every step
(``tests/test_nn_integer.py``, ``tests/test_torch_backend.py``); it runs on any torch device.

The same engine (:func:`toolchain.sim.torch_backend.run` with :class:`~toolchain.sim.torch_backend.Hooks`) runs
the fake-quantised model of :mod:`toolchain.nn.qat`: there every rounding step is a straight-through estimator and
every integer parameter is tied to the float parameter it came from, so the forward pass is the integer network
and the backward pass is the float network's.

The integer rules (Lava 0.10.0's ``fixed_pt``, written down in :mod:`toolchain.fixedpoint`): one step ``t``
(0-based), for every sample at once —

1. ``a_in`` of a group: the int32-wrapping sum of the activations its synapse groups produced at step
   ``t − 1 − delay`` (zero before step ``1 + delay``).
2. LIF update (:func:`toolchain.fixedpoint.lif_subthreshold`, :func:`toolchain.fixedpoint.lif_fire`):
   ``u' = decay_rtz(u, du + 1) + wrap32(a_in << 6)`` (wrapping int32 sum), ``u = wrap_current(u')``,
   ``v' = wrap32(decay_rtz(v, dv) + u + (bias_mant << bias_exp))``, ``v = clip(v', −(2^23 − 1), 2^23 − 1)``,
   ``s = v > vth << 6``, then ``v = 0`` (zero reset) or ``v −= vth << 6`` (subtract reset).
3. Activation of a synapse group for the source's output at step ``t``
   (:func:`toolchain.sim.torch_backend.activation`, i.e. :func:`~toolchain.fixedpoint.synaptic_input` with
   :func:`~toolchain.fixedpoint.lava_weights`).
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from .. import fixedpoint as fx
from ..errors import InputError
from ..program import Program
from ..sim import torch_backend as TB
from ..sim.record import SimResult

__all__ = ["IntegerNet", "wrap32", "wrap_current", "decay_rtz", "lif_subthreshold", "lif_step_int", "ste"]

ste = TB.ste
_through = TB.through
# the torch backend's plan and engine, under the names the fake-quantised model (toolchain.nn.qat) uses
_Syn, _Grp, _Plan, _Hooks = TB.Syn, TB.Grp, TB.Plan, TB.Hooks
_activation = TB.activation


# --------------------------------------------------------------------------- the integer rules, in torch
def wrap32(x: torch.Tensor) -> torch.Tensor:
    """Two's-complement wrap of exact integers into int32 (:func:`toolchain.fixedpoint.wrap_int32`); float64
    tensors holding integers below 2^53 or int64 tensors (the torch primitive of :mod:`toolchain.fixedpoint`)."""
    return fx._ops(x).wrap32(x)


def wrap_current(x: torch.Tensor) -> torch.Tensor:
    """Lava's one-correction 24-bit wrap of ``u`` (:func:`toolchain.fixedpoint.wrap_current`) on tensors."""
    return fx._ops(x).wrap_current(x)


def decay_rtz(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """``trunc(x · factor)`` with ``factor = decay_factor(decay)``: :func:`toolchain.fixedpoint.decay_rtz`
    (exact in float64, see :mod:`toolchain.fixedpoint`)."""
    return torch.trunc(x * factor)


def lif_subthreshold(u: torch.Tensor, v: torch.Tensor, a_in: Optional[torch.Tensor], fu: torch.Tensor,
                     fv: torch.Tensor, bias: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """:func:`toolchain.fixedpoint.lif_subthreshold` with a straight-through estimator around every rounding and
    wrap (for inputs that carry a gradient)."""
    return fx.lif_subthreshold(u, v, a_in, fu, fv, bias, through=_through)


def lif_step_int(u: torch.Tensor, v: torch.Tensor, a_in: Optional[torch.Tensor], fu: torch.Tensor,
                 fv: torch.Tensor, bias: torch.Tensor, vth64: torch.Tensor, subtract: bool
                 ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One exact Lava LIF step on tensors: :func:`toolchain.fixedpoint.lif_update`; returns ``(u, v, s)``."""
    return fx.lif_update(u, v, a_in, fu, fv, bias, vth64, subtract)


def _plan(program: Program, device: Union[str, torch.device, None] = "cpu") -> TB.Plan:
    """The torch backend's plan with the stored-synapse masks (the fake-quantised model's surrogates use them)."""
    return TB.plan(program, device, masks=True)


def _run(plan: TB.Plan, inputs: Dict[str, torch.Tensor], steps: int, record: Sequence[str],
         hooks: Optional[TB.Hooks] = None) -> Tuple[Dict[str, List[torch.Tensor]], Dict[str, Dict[str, list]]]:
    """:func:`toolchain.sim.torch_backend.run` (float64 records, differentiable with ``hooks``); returns per group
    the list of spikes and ``{"u": [...], "v": [...], "v_pre": [...]}``."""
    tr = TB.run(plan, inputs, steps, record, hooks)
    return tr.spikes, {g: {"u": tr.u[g], "v": tr.v[g], "v_pre": tr.v_pre[g]} for g in tr.u}


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

    def __init__(self, program: Program, device: Union[str, torch.device, None] = "cpu") -> None:
        super().__init__()
        if not isinstance(program, Program):
            raise InputError(f"IntegerNet needs a toolchain.program.Program, got {type(program).__name__}",
                             field="program")
        self.program = program
        self._plan = TB.plan(program, device)

    @property
    def device(self) -> torch.device:
        """The torch device the network runs on (``IntegerNet(program, device="cuda")`` or ``net.to("cuda")``)."""
        return self._plan.device

    def to(self, *args: Any, **kwargs: Any) -> "IntegerNet":
        """``nn.Module.to``; a device moves the network (its plan is rebuilt there). Dtypes do not apply: the
        integers are held as the torch backend holds them."""
        device = torch._C._nn._parse_to(*args, **kwargs)[0]
        if device is not None and torch.device(device) != self._plan.device:
            self._plan = TB.plan(self.program, device)
        return self

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
        inputs, batch, steps = TB.prepare(self.program, x, steps, self._plan.device)
        names = self._record_names(record)
        tr = TB.run(self._plan, inputs, steps, names, compact=True)
        out = self._plan.by_name[self._plan.output]

        def stack(lst: List[torch.Tensor], shape: Tuple[int, ...]) -> torch.Tensor:
            if not lst:
                return torch.zeros((batch, 0) + shape, dtype=torch.int64)
            return TB.stack(lst, tr.rows, batch).to(torch.int64).reshape((batch, steps) + shape).cpu()

        y = stack(tr.spikes[out.name] if out.spiking else tr.v[out.name], out.shape)
        if not names:
            return y
        result = {}
        for g in names:
            shp = self._plan.by_name[g].shape
            result[g] = {"s": stack(tr.spikes[g], shp), "u": stack(tr.u[g], shp), "v": stack(tr.v[g], shp)}
        return y, result

    def run(self, x: Any, steps: Optional[int] = None, record: Union[bool, Sequence[str]] = False) -> SimResult:
        """The same run as :meth:`forward`, as a :class:`SimResult` (uint8 spikes, int32 u/v, (B, T, n)):
        :func:`toolchain.sim.torch_backend.simulate` on this network's plan."""
        return TB.simulate(self.program, x, steps, record, device=self._plan.device, compiled=self._plan)

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


def _prepare(program: Program, x: Any, steps: Optional[int]) -> Tuple[Dict[str, torch.Tensor], int, int]:
    """:func:`toolchain.sim.torch_backend.prepare` on the CPU (same rules and errors as the reference simulator)."""
    return TB.prepare(program, x, steps, "cpu")
