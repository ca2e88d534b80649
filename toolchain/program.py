"""``Program``: the compiled artefact — integer parameters, sparse connectivity, placement, resource report.

A Program is a graph of :class:`NeuronGroup` (populations of Loihi CUBA-LIF compartments, one Lava ``LIF``
process each, possibly split over cores) joined by :class:`SynapseGroup` (one Lava ``Dense``/``Sparse``/
``DelayDense`` process each) and fed by :class:`InputPort` (one Lava ``RingBuffer`` each). A group with
``sdn`` set is a sigma-delta population instead (Lava's ``SigmaDelta``/``Sigma``/``Delta``, graded spikes:
:class:`SigmaDeltaParams`, arithmetic in :mod:`toolchain.fixedpoint_sdn`). Every integer field
names its dtype and bit width; the arithmetic that consumes them is written down in :mod:`toolchain.fixedpoint`.

Timing: a spike emitted by a group (or an input port) at step t reaches the ``u`` of the groups it projects to at
step ``t + 1 + delay`` — one step per synapse layer, as Lava's Dense buffers its output by one step.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from .errors import GraphError
from .ir.storage import WeightStorage

__all__ = ["NeuronGroup", "SigmaDeltaParams", "sigma_delta_group", "SynapseGroup", "InputPort", "Program", "SIGN_MODES", "INPUT_KINDS", "CoreUsage",
           "Placement", "programs_equal"]

SIGN_MODES = ("mixed", "excitatory", "inhibitory")


def _int_field(value: Any, n: int, dtype: Any, lo: int, hi: int, group: str, fname: str) -> np.ndarray:
    arr = np.asarray(value)
    if arr.size == 1:
        arr = np.full(n, arr.reshape(()))
    if arr.shape != (n,):
        raise GraphError(f"has shape {arr.shape}, expected ({n},)", node=group, field=fname)
    if not np.issubdtype(arr.dtype, np.integer):
        if not np.all(np.equal(np.mod(arr, 1), 0)):
            raise GraphError("must hold integers", node=group, field=fname)
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < lo or arr.max() > hi):
        raise GraphError(f"values [{arr.min()}, {arr.max()}] outside [{lo}, {hi}]", node=group, field=fname)
    out = arr.astype(dtype)
    out.setflags(write=False)
    return out


@dataclass(frozen=True, eq=False)
class NeuronGroup:
    """A population of CUBA-LIF compartments with Loihi integer parameters (one value per neuron).

    Fields (per neuron, length n = prod(shape)):
      du        int16, [-1, 4095] (12-bit unsigned, plus -1): current decay; Lava uses du + 1 (``ds_offset``),
                so -1 means no current decay at all — what lava-dl's netx reader builds for ``iDecay = 0``
                (``du = iDecay - 1``, ``netx/hdf5.py`` ``get_neuron_params``) and Lava's model computes as written.
      dv        uint16, [0, 4096]: voltage decay; 4096 (netx's ``vDecay`` of its default integrator neuron) keeps
                no voltage from one step to the next.
      vth       int32, [0, 131072] (17-bit unsigned, plus 2^17): threshold mantissa; spike when v > vth << 6.
                2^17 never spikes (v saturates at 2^23 - 1); netx's default neuron uses it (``1 << 18 - 1``).
      bias_mant int16, 13-bit signed [-4096, 4095]: bias mantissa.
      bias_exp  int16, 3-bit unsigned [0, 7]: effective bias = bias_mant << bias_exp (not shifted by 6).
    ``reset_mode``: "zero" (v = 0 after a spike, Lava's LIF) or "subtract" (v -= vth << 6).
    ``spiking``: False for a readout (NIR LI/CubaLI/Integrator) that must never spike; the compiler then sets
    ``vth`` to its maximum and reports the headroom of ``v`` below it.
    ``source``: the IR node this group was compiled from; ``shape``: that node's per-sample shape.
    ``v_init``  int32, 24-bit signed [-(2^23 - 1), 2^23 - 1]: ``v`` at step 0 (Lava LIF's ``v`` Var initial
              value). The quantiser sets it so that the bias stays hidden until the group's input arrives
              (:func:`toolchain.fixedpoint.bias_onset_voltage`); 0 otherwise.
    ``u_init``  int32, 24-bit signed [-(2^23 - 1), 2^23 - 1]: ``u`` before step 0 (Lava LIF's ``u`` Var initial
              value, decayed at step 0 like any state). The quantiser sets it for a CubaLIF whose Affine bias
              reaches the current (``cuba_bias="current"``): its decay carries the transient of the bias part the
              integer synapses cannot (:func:`toolchain.fixedpoint.bias_current_start`); 0 otherwise.
    ``sdn``: None for a CUBA LIF group; :class:`SigmaDeltaParams` for a sigma-delta (graded spike) group, whose
              LIF fields are then unused (build one with :func:`sigma_delta_group`).
    ``reset_interval``, ``reset_offset``: lava-dl's periodic state reset (Lava's ``LIFReset``,
              ``proc/lif/models.py`` L349-383): when ``reset_interval = R > 0``, at every 0-based step ``t`` with
              ``(t + 1) % R == reset_offset % R`` (Lava's ``time_step`` starts at 1) ``u`` and ``v`` are set to 0
              *before* the step's update. 0: never (Lava's ``LIF``).
    """

    name: str
    shape: Tuple[int, ...]
    du: np.ndarray
    dv: np.ndarray
    vth: np.ndarray
    bias_mant: np.ndarray
    bias_exp: np.ndarray
    reset_mode: str = "zero"
    spiking: bool = True
    source: str = ""
    v_init: Any = 0
    reset_interval: int = 0
    reset_offset: int = 0
    sdn: Optional["SigmaDeltaParams"] = None
    u_init: Any = 0

    def __post_init__(self) -> None:
        shape = tuple(int(s) for s in np.atleast_1d(self.shape))
        object.__setattr__(self, "shape", shape)
        n = int(np.prod(shape))
        if self.sdn is not None:
            if not isinstance(self.sdn, SigmaDeltaParams):
                raise GraphError("must be SigmaDeltaParams", node=self.name, field="sdn")
            object.__setattr__(self, "sdn", self.sdn.checked(n, self.name))
            if int(self.reset_interval) or self.reset_mode != "zero" or not self.spiking:
                raise GraphError("a sigma-delta group has no periodic reset, reset mode or readout flag (Lava's "
                                 "sdn processes have none)", node=self.name, field="sdn")
        object.__setattr__(self, "du", _int_field(self.du, n, np.int16, -1, 4095, self.name, "du"))
        object.__setattr__(self, "dv", _int_field(self.dv, n, np.uint16, 0, 4096, self.name, "dv"))
        object.__setattr__(self, "vth", _int_field(self.vth, n, np.int32, 0, 2 ** 17, self.name, "vth"))
        ri, ro = int(self.reset_interval), int(self.reset_offset)
        if ri < 0:
            raise GraphError(f"must be >= 0 (0: no periodic reset), got {ri}", node=self.name,
                             field="reset_interval")
        if ro < 0:
            raise GraphError(f"must be >= 0, got {ro}", node=self.name, field="reset_offset")
        object.__setattr__(self, "reset_interval", ri)
        object.__setattr__(self, "reset_offset", ro % ri if ri else 0)
        object.__setattr__(self, "bias_mant", _int_field(self.bias_mant, n, np.int16, -4096, 4095, self.name,
                                                         "bias_mant"))
        object.__setattr__(self, "bias_exp", _int_field(self.bias_exp, n, np.int16, 0, 7, self.name, "bias_exp"))
        object.__setattr__(self, "v_init", _int_field(self.v_init, n, np.int32, -(2 ** 23 - 1), 2 ** 23 - 1,
                                                      self.name, "v_init"))
        object.__setattr__(self, "u_init", _int_field(self.u_init, n, np.int32, -(2 ** 23 - 1), 2 ** 23 - 1,
                                                      self.name, "u_init"))
        if self.reset_mode not in ("zero", "subtract"):
            raise GraphError(f"must be 'zero' or 'subtract', got {self.reset_mode!r}", node=self.name,
                             field="reset_mode")
        if not self.source:
            object.__setattr__(self, "source", self.name)

    @property
    def size(self) -> int:
        """Number of neurons (compartments)."""
        return int(np.prod(self.shape))

    @property
    def neuron(self) -> str:
        """"lif" (CUBA LIF, binary spikes) or the sigma-delta kind ("sigma_delta", "sigma", "delta")."""
        return "lif" if self.sdn is None else self.sdn.kind

    @property
    def graded(self) -> bool:
        """True when the group sends graded payloads (a sigma-delta group)."""
        return self.sdn is not None


@dataclass(frozen=True, eq=False)
class SigmaDeltaParams:
    """A sigma-delta neuron group (Lava's ``SigmaDelta``, ``Sigma`` or ``Delta``, ``lava/proc/sdn``): graded spikes.

    Set as ``NeuronGroup.sdn``; the group's LIF fields are then unused (:func:`sigma_delta_group` fills them with
    neutral values). Arithmetic: :mod:`toolchain.fixedpoint_sdn`. Fields:
      kind       "sigma_delta" (ReLU/unit activation, delta encoder), "sigma" (accumulator readout: the payload is
                 sigma, netx's ``sigma_output``) or "delta" (the input encoder; its ``a_in`` is shifted by
                 ``spike_exp + state_exp``).
      vth        int64 per neuron, >= 0: threshold mantissa as given to Lava's process (netx ``vThMant``); the
                 model compares ``|delta| >= vth << (spike_exp + state_exp)``, which must fit int32.
      bias       int64 per neuron: bias mantissa (SigmaDelta only; netx layer ``bias``), scaled like ``vth``.
      spike_exp, state_exp   int in [0, 7] (3-bit Vars; netx uses 6 and 6).
      cum_error  bool: Lava's cumulative-error spike mechanism.
      act_mode   "relu" or "unit".
      num_message_bits   int in [1, 24]: the payload bits declared for the graded messages (netx ``messageBits``,
                 16 by default); Lava selects the graded synapse path with it but never checks payloads against it.
    Recorded state (:class:`~toolchain.sim.record.SimResult`): ``spikes`` holds the int32 payloads, ``u`` the
    ``sigma`` Var and ``v`` the ``act`` Var (``sigma`` again for a Sigma, which has no act; 0 for a Delta's u).
    """

    kind: str = "sigma_delta"
    vth: Any = 0
    bias: Any = 0
    spike_exp: int = 0
    state_exp: int = 0
    cum_error: bool = False
    act_mode: str = "relu"
    num_message_bits: int = 16

    def checked(self, n: int, group: str) -> "SigmaDeltaParams":
        """A copy with per-neuron int64 arrays of length ``n``, every field checked (errors name the group)."""
        from .fixedpoint_sdn import ACT_MODES, MAX_EXP, SDN_KINDS
        if self.kind not in SDN_KINDS:
            raise GraphError(f"must be one of {SDN_KINDS}, got {self.kind!r}", node=group, field="sdn.kind")
        if self.act_mode not in ACT_MODES:
            raise GraphError(f"must be one of {ACT_MODES}, got {self.act_mode!r}", node=group, field="sdn.act_mode")
        for f in ("spike_exp", "state_exp"):
            e = int(getattr(self, f))
            if not 0 <= e <= MAX_EXP:
                raise GraphError(f"must be in [0, {MAX_EXP}], got {e}", node=group, field=f"sdn.{f}")
        if not 1 <= int(self.num_message_bits) <= 24:
            raise GraphError(f"must be in [1, 24], got {self.num_message_bits}", node=group,
                             field="sdn.num_message_bits")
        k = int(self.spike_exp) + int(self.state_exp)
        lim = (2 ** 31 - 1) >> k
        vth = _int_field(self.vth, n, np.int64, 0, lim, group, "sdn.vth")
        bias = _int_field(self.bias, n, np.int64, -lim, lim, group, "sdn.bias")
        return SigmaDeltaParams(self.kind, vth, bias, int(self.spike_exp), int(self.state_exp),
                                bool(self.cum_error), self.act_mode, int(self.num_message_bits))


def sigma_delta_group(name: str, shape: Any, kind: str = "sigma_delta", vth: Any = 0, bias: Any = 0,
                      spike_exp: int = 6, state_exp: int = 6, cum_error: bool = False, act_mode: str = "relu",
                      num_message_bits: int = 16, source: str = "") -> NeuronGroup:
    """A :class:`NeuronGroup` of sigma-delta neurons (see :class:`SigmaDeltaParams`); the unused LIF fields are
    zero."""
    return NeuronGroup(name, shape, du=0, dv=0, vth=0, bias_mant=0, bias_exp=0, source=source,
                       sdn=SigmaDeltaParams(kind, vth, bias, spike_exp, state_exp, cum_error, act_mode,
                                            num_message_bits))


@dataclass(frozen=True, eq=False)
class SynapseGroup:
    """Synapses from ``src`` (a NeuronGroup or InputPort name) to ``dst`` (a NeuronGroup name).

    ``weight``: storage of shape (n_dst, n_src) holding integer weights exactly as handed to Lava's Dense
    (int16 container, 8-bit signed range [-256, 255] before Lava's clip and truncation, see
    :mod:`toolchain.fixedpoint`). ``weight_exp``: int, the *summed* activation is shifted left by it (right if
    negative). ``num_weight_bits``: 1..8, Lava truncates weights to this precision (9 with mixed sign: no
    truncation, the weights of a netx conv kernel as Lava's Conv uses them; see
    :func:`toolchain.fixedpoint.truncation_bits`). ``sign_mode``: "mixed",
    "excitatory" or "inhibitory" (Lava's SignMode, given explicitly). ``delay``: extra steps (0..62) beyond the
    inherent one-step synaptic delay (DelayDense on Lava). ``recurrent``: True when the edge closes a cycle.
    """

    name: str
    src: str
    dst: str
    weight: WeightStorage
    weight_exp: int = 0
    num_weight_bits: int = 8
    sign_mode: str = "mixed"
    delay: int = 0
    recurrent: bool = False

    def __post_init__(self) -> None:
        w = self.weight
        if not isinstance(w, WeightStorage):
            raise GraphError("must be a WeightStorage (Dense, Csr or Structured)", node=self.name, field="weight")
        vals = w.stored_values()
        if not np.issubdtype(vals.dtype, np.integer) and not np.all(np.equal(np.mod(vals, 1), 0)):
            raise GraphError("must hold integers", node=self.name, field="weight")
        if vals.size and (vals.min() < -256 or vals.max() > 255):
            raise GraphError(f"values [{vals.min()}, {vals.max()}] outside the 9-bit range [-256, 255]",
                             node=self.name, field="weight")
        if not 1 <= int(self.num_weight_bits) <= 8 and not (int(self.num_weight_bits) == 9
                                                           and self.sign_mode == "mixed"):
            raise GraphError(f"must be in [1, 8] (or 9 with mixed sign), got {self.num_weight_bits}",
                             node=self.name, field="num_weight_bits")
        if self.sign_mode not in SIGN_MODES:
            raise GraphError(f"must be one of {SIGN_MODES}, got {self.sign_mode!r}", node=self.name,
                             field="sign_mode")
        if not 0 <= int(self.delay) <= 62:
            raise GraphError(f"must be in [0, 62], got {self.delay}", node=self.name, field="delay")
        object.__setattr__(self, "weight_exp", int(self.weight_exp))
        object.__setattr__(self, "num_weight_bits", int(self.num_weight_bits))
        object.__setattr__(self, "delay", int(self.delay))
        object.__setattr__(self, "recurrent", bool(self.recurrent))


INPUT_KINDS = ("spikes", "bias")


@dataclass(frozen=True, eq=False)
class InputPort:
    """Where input enters: ``shape`` per sample and step.

    ``kind = "spikes"`` (default): spikes through synapse groups whose ``src`` is this port;
    ``num_message_bits`` 0 for binary spikes, otherwise graded spikes of that many bits (unsigned payloads).
    ``kind = "bias"``: the input is the ``bias_mant`` (int16, 13-bit signed [-4096, 4095]) of the neuron group
    ``target`` (same size), replacing the group's own bias at every step it is given — how lava-dl feeds a
    frame into a netx input layer (``net.in_layer.neuron.bias_mant.init = image``); the group's ``bias_exp``
    applies. No synapse leaves a bias port.
    """

    name: str
    shape: Tuple[int, ...]
    num_message_bits: int = 0
    kind: str = "spikes"
    target: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(s) for s in np.atleast_1d(self.shape)))
        if not 0 <= int(self.num_message_bits) <= 24:
            raise GraphError(f"must be in [0, 24], got {self.num_message_bits}", node=self.name,
                             field="num_message_bits")
        if self.kind not in INPUT_KINDS:
            raise GraphError(f"must be one of {INPUT_KINDS}, got {self.kind!r}", node=self.name, field="kind")
        if self.kind == "bias" and (not self.target or self.num_message_bits):
            raise GraphError("a bias port names its target group and carries no message bits", node=self.name,
                             field="target")

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))


@dataclass(eq=False)
class Program:
    """The compiled network for one target.

    ``groups``: neuron groups in execution order; ``synapses``: synapse groups; ``inputs``: input ports;
    ``output``: the neuron group whose spikes (or ``v`` when it does not spike) are the network's output;
    ``target``: the target's name; ``dt``: seconds per step; ``placement`` and ``report``: filled by the
    partition pass (core assignment and resource report); ``quant_report``: per-layer quantisation error and
    headroom; ``metadata``: provenance (source file, presets, pass list, ...).
    """

    groups: Dict[str, NeuronGroup]
    synapses: List[SynapseGroup]
    inputs: List[InputPort]
    output: str
    target: str = "loihi2"
    dt: float = 1e-3
    placement: Optional[Any] = None
    report: Dict[str, Any] = field(default_factory=dict)
    quant_report: Dict[str, Any] = field(default_factory=dict)
    metadata: Dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.groups, (list, tuple)):
            self.groups = {g.name: g for g in self.groups}
        names = set(self.groups) | {p.name for p in self.inputs}
        if len(names) != len(self.groups) + len(self.inputs):
            raise GraphError("neuron groups and input ports must have distinct names", field="groups")
        for s in self.synapses:
            if s.src not in names:
                raise GraphError(f"source '{s.src}' is neither a neuron group nor an input port", node=s.name,
                                 field="src")
            if s.dst not in self.groups:
                raise GraphError(f"target '{s.dst}' is not a neuron group", node=s.name, field="dst")
            n_src = self.groups[s.src].size if s.src in self.groups else self.input_port(s.src).size
            if s.weight.shape != (self.groups[s.dst].size, n_src):
                raise GraphError(f"weight shape {s.weight.shape} does not match ({self.groups[s.dst].size}, "
                                 f"{n_src}) for {s.src} -> {s.dst}", node=s.name, field="weight")
        if self.output not in self.groups:
            raise GraphError(f"output '{self.output}' is not a neuron group", field="output")
        for q in self.inputs:
            if q.kind != "bias":
                continue
            if q.target not in self.groups:
                raise GraphError(f"target '{q.target}' is not a neuron group", node=q.name, field="target")
            if self.groups[q.target].size != q.size:
                raise GraphError(f"has {q.size} values per step, group '{q.target}' has "
                                 f"{self.groups[q.target].size} neurons", node=q.name, field="shape")
            if self.synapses_from(q.name):
                raise GraphError("a bias port feeds its target's bias, not synapses", node=q.name,
                                 field="synapses")
            if self.groups[q.target].sdn is not None:
                raise GraphError("a bias port cannot feed a sigma-delta group (Lava's sdn processes take their "
                                 "input through a_in)", node=q.name, field="target")

    def input_port(self, name: str) -> InputPort:
        for p in self.inputs:
            if p.name == name:
                return p
        raise GraphError("no such input port", node=name)

    def message_bits(self, src: str) -> int:
        """The ``num_message_bits`` of the messages leaving ``src`` (a group or an input port): 0 for binary spikes
        (LIF groups, binary ports), the payload bits of graded ports and sigma-delta groups. Lava's synapse
        processes take it as their ``num_message_bits`` (only ``> 0`` matters: the graded product)."""
        if src in self.groups:
            g = self.groups[src]
            return 0 if g.sdn is None else g.sdn.num_message_bits
        return self.input_port(src).num_message_bits

    def synapses_into(self, group: str) -> List[SynapseGroup]:
        return [s for s in self.synapses if s.dst == group]

    def synapses_from(self, src: str) -> List[SynapseGroup]:
        return [s for s in self.synapses if s.src == src]

    @property
    def neuron_count(self) -> int:
        return sum(g.size for g in self.groups.values())

    @property
    def synapse_count(self) -> int:
        return sum(s.weight.nnz for s in self.synapses)

    # -------------------------------------------------------------------------------- save / load
    def save(self, path: "str | os.PathLike") -> Path:
        """Write the Program to the directory ``path`` (``program.json`` + ``arrays.npz``), atomically.

        Everything is written into a temporary sibling directory first and renamed into place only when complete,
        so a failure never leaves a half-written build. An existing build at ``path`` is replaced; any other
        non-empty directory (or a file) at ``path`` is refused with a :class:`ToolchainError`.
        """
        from ._program_io import save_program
        return save_program(self, path)

    @classmethod
    def load(cls, path: "str | os.PathLike") -> "Program":
        """Read a Program written by :meth:`save` (exact round trip); errors name the file."""
        from ._program_io import load_program
        return load_program(path)


@dataclass(frozen=True)
class CoreUsage:
    """Resources used on one core: ``neurons`` placed, ``synapse_bits`` of synapse memory (with the encoding
    actually chosen), ``state_bits`` (neuron state charged to the same memory on targets with shared memory),
    ``input_axons``/``output_axons`` and distinct neuron ``profiles``; ``groups``: the neuron groups with neurons
    here."""

    core: int
    chip: int
    neurons: int
    synapse_bits: int
    state_bits: int
    input_axons: int
    output_axons: int
    profiles: int
    groups: Tuple[str, ...]


@dataclass(eq=False)
class Placement:
    """Where every neuron lives. ``core_of[group]``: int32 array (one entry per neuron) with the core index, or -1
    for a neuron that is not placed because it can never spike (no stored input synapse from a live source, no
    bias: structurally pruned). ``cores``: the usage of every core used, by index."""

    core_of: Dict[str, np.ndarray]
    cores: List[CoreUsage]

    @property
    def cores_used(self) -> int:
        return len(self.cores)

    @property
    def chips_used(self) -> int:
        return len({c.chip for c in self.cores})


def programs_equal(a: Program, b: Program) -> bool:
    """True when two Programs hold the same groups, synapses, ports, placement, reports and metadata (exactly)."""
    from ._program_io import program_state
    return program_state(a) == program_state(b)
