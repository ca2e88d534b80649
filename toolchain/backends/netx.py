"""Write a compiled :class:`~toolchain.program.Program` as a lava-dl *netx* HDF5 network (``.net`` file).

    >>> from toolchain.backends.netx import export_netx
    >>> export_netx(program, "model.net")
    >>> from lava.lib.dl.netx.hdf5 import Network
    >>> net = Network(net_config="model.net")          # feed binary spikes into net.inp

The file is bit-exact: lava-dl 0.6.0's reader (``lava/lib/dl/netx/hdf5.py``, ``netx/utils.py``,
``netx/blocks/process.py``) builds from it Lava ``Dense``/``DelayDense``/``Conv`` and ``LIF``/``LIFReset``
processes whose ``fixed_pt`` models compute exactly the spikes, ``u`` and ``v`` of
:func:`toolchain.sim.reference.simulate` at every step (checked in ``tests/test_netx.py`` and
``tests/test_netx_export.py``), with **zero extra steps of delay** (:data:`NETX_EXTRA_DELAY`). Reading netx files
is :mod:`toolchain.netx_io`.

File layout (what the reader expects and how it maps it)
--------------------------------------------------------
The Program must be a chain ``input -> g0 -> g1 -> ... -> output`` (:func:`netx_chain`); each group is one
``/layer/<k>``, ``shape`` stored reversed as netx reads it (``[::-1]``), grids in (W, H, C) order:

* ``/layer/0`` ``input``: for a spike port, ``shape`` only and **no** ``neuron`` group — netx then builds no input
  layer, ``Network.inp`` feeds the first synapse directly, so input column ``t`` reaches ``g0``'s ``u`` at step
  ``t + 1`` as in the Program (:data:`NETX_EXTRA_DELAY` = 0). For a bias port, ``g0`` itself with its ``neuron``
  group: lava-dl feeds it through ``bias_mant`` (the group's own bias must be 0; the reader ignores a stored one).
* ``conv`` for a :class:`~toolchain.ir.storage.Conv` synapse: the kernel (C_out, C_in/groups, KH, KW), stride,
  padding, dilation (H, W) and groups. Lava's Conv uses the kernel unclipped, untruncated and without exponent,
  so the file holds ``lava_weights(kernel) << weight_exp`` (checked to stay in [-256, 255] and below the Conv's
  24-bit output clamp) and the conv's input grid must be the previous layer's.
* ``flatten`` before a dense layer that follows a grid: netx reads the grid in (C, H, W) order
  (``out.transpose([2, 1, 0]).flatten()``), so the columns are permuted (:func:`flatten_perm`).
* ``dense`` / ``dense_rec``: ``weight`` (and ``weight_rec`` for a self-recurrent group), optional per-synapse
  ``delay`` (several synapse groups between two layers with different delays are merged; netx builds a
  ``DelayDense``). netx's activation is ``sum(W' [s]) >> -e'`` with ``(W', b', e') = optimize_weight_bits(...)``
  (:func:`netx_optimize_weight_bits`) and Lava's Dense derives its own sign mode from ``W'`` before clipping and
  truncating (:func:`lava_dense_weights`); so the file holds ``lava_weights(w) * 2**weight_exp`` (for a negative
  exponent every weight must be divisible, else ``floor(sum / 2^k)`` has no per-weight form) and a matrix netx
  would not reproduce exactly is refused naming the synapse and the reason. For ``dense_rec`` lava-dl optimises
  ``[W, W_rec]`` jointly but builds two Dense processes: each part is checked on its own (an all-non-positive part
  beside a positive one can get ``num_weight_bits 9``, which Lava's inhibitory truncation turns into zeros).
  A delayed ``dense_rec`` is exact only with equal delays and unscaled weights (lava-dl passes its DelayDense pair
  no exponent).
* ``neuron``: ``CUBA`` with ``iDecay = du + 1``, ``vDecay = dv``, ``vThMant = vth`` (scalars when shared, else one
  value per neuron in the layer's shape); ``bias`` = ``(bias_mant << bias_exp) / 64`` (netx fixes
  ``bias_exp = 6``: effective biases must be multiples of 64). Zero reset only.
* Periodic reset is not in the file: lava-dl gives layer k the offset ``reset_offset + 1 + k`` of
  ``Network(reset_interval=...)``; the groups' resets must follow that schedule and :func:`netx_network_args`
  returns the arguments (also stored as root attributes ``reset_interval``/``reset_offset``).

Sigma-delta (SDNN) groups (:class:`~toolchain.program.SigmaDeltaParams`) are written as lava-dl's ``SDNN``
neuron (``hdf5.py`` ``get_neuron_params`` L164-189): ``vThMant`` = ``sdn.vth`` (one value: Lava's sdn threshold
Var has shape (1,)), ``messageBits`` = ``sdn.num_message_bits``, ``sigma_output`` for a Sigma readout, the layer
``bias`` = ``sdn.bias`` (a Sigma takes none). lava-dl fixes ``state_exp = 6``, ReLU and no cumulative error; every
group's ``spike_exp`` must be the one passed as ``Network(spike_exp=...)`` (:func:`netx_network_args`). A Delta
encoder fed through an identity synapse from a graded port is written as the SDNN ``input`` layer; lava-dl leaves
that layer unconnected, so the file is run with ``skip_layers=1`` and fed the encoder's payloads
(:func:`netx_network_args` says so). A graded port feeding an SDNN layer directly gives
``input_message_bits``.

Refused, each with a :class:`~toolchain.errors.ToolchainError` naming the port, group or synapse and the field:
more than one input port (``inputs``), graded input (``num_message_bits``), anything but a chain (``synapses`` /
``groups`` / ``output``: skip connections, fan-out), recurrence between different groups (``recurrent``),
subtractive reset (``reset_mode``), an initial voltage (``v_init``), biases off netx's grid (``bias_mant``),
weights netx would rescale lossily (``weight``) and negative exponents that do not fold (``weight_exp``).

Default builds: netx has no weight exponent (per-spike activations are at most 256), no initial voltage and a
fixed bias exponent, so the compiler's default (``vth_max`` 2^14, ``weight_exp`` of about 5-6, biases hidden by
``v_init``) cannot be written as is. :func:`compile_for_netx` (``snnc compile F.nir --netx F.net``) lowers
``vth_max`` until every layer folds, turns ``align_bias`` off and rounds biases to multiples of 64, and lists
each change in ``metadata["netx_changes"]``; the Program it returns is what the file computes, bit for bit
(``tests/test_netx_export.py`` runs lava-dl's reader against the reference simulator).
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Optional, Tuple, Union

import numpy as np

from .. import fixedpoint as fx
from ..errors import ToolchainError
from ..program import NeuronGroup, Program, SynapseGroup

__all__ = ["export_netx", "check_netx", "netx_dense_weights", "netx_optimize_weight_bits", "lava_sign_mode",
           "netx_chain", "netx_network_args", "flatten_perm", "compile_for_netx", "lava_dense_weights", "NETX_EXTRA_DELAY", "NetxWeights",
           "NetxLayer", "ChainLink"]

#: Steps netx adds between the Program's input and its groups with the layout written here: none (no input
#: neuron layer). Spikes of group k at step t in the Program are spikes of netx layer k at step t.
NETX_EXTRA_DELAY = 0

#: netx fixes the bias exponent of every CUBA neuron (``hdf5.py`` ``get_neuron_params``).
NETX_BIAS_EXP = 6


@dataclass(frozen=True)
class NetxWeights:
    """What netx + Lava make of a file's integer weight matrix ``weight``.

    ``weights``: int32 (n_out, n_in), the matrix Lava's Dense really multiplies with (after netx's left shift
    and Lava's clip and truncation); ``weight_exp``: the exponent netx passes (``-scale_bits``);
    ``num_weight_bits``: what netx passes; ``sign_mode``: what Lava's Dense derives from the shifted matrix;
    ``exact``: True when ``weights == weight << -weight_exp``, i.e. the activation is exactly ``sum(weight[s])``;
    ``reason``: why not, otherwise "".
    """

    weights: np.ndarray
    weight_exp: int
    num_weight_bits: int
    sign_mode: str
    exact: bool
    reason: str = ""


def lava_sign_mode(weights: np.ndarray) -> str:
    """The sign mode Lava's Dense derives when none is given (``utils/weightutils.py`` ``determine_sign_mode``
    L21-43): excitatory when every weight is >= 0, inhibitory when every weight is <= 0, else mixed."""
    w = np.asarray(weights)
    if w.size == 0 or w.min() >= 0:
        return "excitatory"
    if w.max() <= 0:
        return "inhibitory"
    return "mixed"


def netx_optimize_weight_bits(weight: np.ndarray) -> Tuple[np.ndarray, int, int]:
    """lava-dl 0.6.0's ``optimize_weight_bits`` (``netx/utils.py``), re-stated: returns ``(shifted weights
    (int64), num_weight_bits, weight_exp)`` exactly as netx hands them to Lava's Dense.

    Mixed-sign weights beyond 254 or below -256 are first clipped to [-256, 254] (netx prints a warning);
    sign: max < 0 inhibitory, min >= 0 excitatory, else mixed; ``scale`` = ``min(127/max, -128/min)`` (mixed),
    ``-256/min`` (inhibitory), ``255/max`` (excitatory); ``scale_bits = floor(log2(scale)) + mixed``; ``n`` = the
    largest power of two <= 8 dividing every weight, minus ``mixed``; ``num_weight_bits = 8 - scale_bits - n``;
    ``weight_exp = -scale_bits``; weights shifted left by ``scale_bits``. ``ValueError`` for an all-zero
    matrix (netx divides by zero) and for one-signed weights beyond 255 in magnitude (a negative shift).
    """
    w = np.asarray(weight).astype(np.int64)
    if w.size == 0 or not np.any(w):
        raise ValueError("all weights are zero (netx divides by the largest weight)")
    wmax, wmin = int(w.max()), int(w.min())
    if wmax > 254 and wmin < 0:
        w = np.clip(w, -256, 254)
        wmax = int(w.max())
    if wmin < -256 and wmax > 0:
        w = np.clip(w, -256, 254)
        wmin = int(w.min())
    if wmax < 0:
        mixed, scale = 0, -256.0 / wmin
    elif wmin >= 0:
        mixed, scale = 0, 255.0 / wmax
    else:
        mixed = 1
        scale = min(127.0 / wmax if wmax > 0 else np.inf, -128.0 / wmin)
    scale_bits = int(np.floor(np.log2(scale))) + mixed
    if scale_bits < 0:
        raise ValueError(f"weights in [{wmin}, {wmax}] exceed netx's one-signed range of 255 in magnitude")
    n = 8
    while n > 0 and np.any(w % (1 << n)):
        n -= 1
    n -= mixed
    return w << scale_bits, 8 - scale_bits - n, -scale_bits


def netx_dense_weights(weight: np.ndarray) -> NetxWeights:
    """Re-state lava-dl 0.6.0's ``optimize_weight_bits`` (``netx/utils.py``) followed by Lava 0.10.0's Dense
    weight preparation (``determine_sign_mode``, ``clip_weights`` to 8 bits, ``truncate_weights``) for one
    integer matrix, and say whether the resulting activation is exactly ``sum(weight[s])``.

    netx: sign mode from the raw matrix (max < 0: inhibitory; min >= 0: excitatory; else mixed);
    ``scale = min(127/max, 128/-min)`` (mixed), ``255/max`` (excitatory) or ``-256/min`` (inhibitory);
    ``scale_bits = floor(log2(scale)) + mixed``; ``n`` = the largest power of two (<= 8) dividing every weight,
    minus ``mixed``; ``num_weight_bits = 8 - scale_bits - n``; weights shifted left by ``scale_bits``;
    ``weight_exp = -scale_bits``. Mixed-sign matrices outside [-256, 254] are clipped by netx first.
    """
    w = np.asarray(weight).astype(np.int64)
    if w.size == 0 or not np.any(w):
        return NetxWeights(np.zeros(w.shape, np.int32), 0, 8, "excitatory", False,
                           "all weights are zero (netx divides by the largest weight and fails)")
    wmax, wmin = int(w.max()), int(w.min())
    if wmin < 0 <= wmax and (wmax > 254 or wmin < -256):
        return NetxWeights(np.clip(w, -256, 254).astype(np.int32), 0, 8, "mixed", False,
                           f"mixed-sign weights in [{wmin}, {wmax}] exceed netx's range [-256, 254]")
    try:
        shifted, num_weight_bits, weight_exp = netx_optimize_weight_bits(w)
    except ValueError as exc:
        return NetxWeights(w.astype(np.int32), 0, 8, lava_sign_mode(w), False, str(exc))
    return lava_dense_weights(shifted, num_weight_bits, weight_exp)


def lava_dense_weights(shifted: np.ndarray, num_weight_bits: int, weight_exp: int) -> NetxWeights:
    """What Lava 0.10.0's Dense makes of the weights netx hands it (``shifted``, with ``num_weight_bits``): its
    own sign mode from this matrix (``determine_sign_mode``), the clip to 8 bits and the truncation
    (``utils/weightutils.py``); ``exact`` when nothing changes. A truncation by a negative number of bits
    (inhibitory or excitatory weights with ``num_weight_bits = 9``, which netx gives a non-positive matrix whose
    largest weight is 0) is undefined in Lava's numpy code and counted as not exact."""
    shifted = np.asarray(shifted).astype(np.int64)
    sign = lava_sign_mode(shifted)
    lo, hi = fx.weight_range(sign)
    k = 8 - int(num_weight_bits) + int(sign == "mixed")
    if k < 0:
        return NetxWeights(shifted.astype(np.int32), weight_exp, num_weight_bits, sign, False,
                           f"netx gives num_weight_bits {num_weight_bits} to a matrix Lava's Dense treats as "
                           f"{sign} (a truncation by {k} bits, undefined in Lava)")
    used = np.clip(shifted, lo, hi)
    used = -((-used) >> k << k) if sign == "inhibitory" else (used >> k << k)
    exact = bool(np.array_equal(used, shifted))
    reason = "" if exact else (
        f"netx scales the weights by 2^{-weight_exp} to [{int(shifted.min())}, {int(shifted.max())}] and Lava's "
        f"{sign} clip/truncation to {num_weight_bits} bits changes {int(np.count_nonzero(used != shifted))} of them")
    return NetxWeights(used.astype(np.int32), weight_exp, num_weight_bits, sign, exact, reason)


@dataclass
class ChainLink:
    """One netx layer of a Program: the group, the synapse groups into it from the previous layer (``ff``, one
    per delay) and its self-recurrent synapse groups (``rec``)."""

    group: NeuronGroup
    ff: List[SynapseGroup]
    rec: List[SynapseGroup]


def netx_chain(program: Program) -> List[ChainLink]:
    """The Program as a netx chain of layers ``input -> g0 -> g1 -> ... -> output``.

    The input is one spike port (binary) feeding ``g0``, or one bias port whose target is ``g0`` (netx's input
    layer with neurons). Between consecutive groups any number of synapse groups (different delays) is allowed;
    a group may have self-recurrent synapse groups (netx's ``dense_rec``). Raises :class:`ToolchainError` naming
    the port, group or synapse and the field otherwise.
    """
    if len(program.inputs) != 1:
        raise ToolchainError(f"netx networks have one input; the program has {len(program.inputs)} input ports",
                             field="inputs")
    port = program.inputs[0]
    if port.num_message_bits and not any(g.sdn is not None for g in program.groups.values()):
        raise ToolchainError(f"graded input ({port.num_message_bits}-bit payloads) cannot be described in a netx "
                             "file (netx takes the input's message bits from Network(input_message_bits=...))",
                             node=port.name, field="num_message_bits")
    for s in program.synapses:
        if s.recurrent and s.src != s.dst:
            raise ToolchainError("recurrent synapses between different groups cannot be held by netx (only a "
                                 "layer's own recurrent matrix, dense_rec)", node=s.name, field="recurrent")
    chain: List[ChainLink] = []
    seen = set()
    if port.kind == "bias":
        first = program.groups[port.target]
        ins = [s for s in program.synapses_into(first.name) if s.src != first.name]
        if ins:
            raise ToolchainError("a group fed through its bias (netx's input layer) cannot also receive synapses",
                                 node=first.name, field="synapses")
        rec = [s for s in program.synapses_into(first.name) if s.src == first.name]
        if rec:
            raise ToolchainError("netx's input layer has no recurrent synapses", node=rec[0].name, field="recurrent")
        chain.append(ChainLink(first, [], []))
        seen.add(first.name)
        src = first.name
    else:
        src = port.name
    while True:
        outs = [s for s in program.synapses_from(src) if s.dst != src]
        if not outs:
            break
        dsts = sorted({s.dst for s in outs})
        if len(dsts) > 1:
            raise ToolchainError(f"'{src}' projects to {len(dsts)} groups ({', '.join(dsts)}); netx layers form a "
                                 "single chain (no fan-out or skip connections)", node=src, field="synapses")
        dst = dsts[0]
        ins = [s for s in program.synapses_into(dst) if s.src != dst]
        other = [s for s in ins if s.src != src]
        if other:
            raise ToolchainError(f"group receives synapses from '{other[0].src}' besides '{src}'; netx layers have "
                                 "one input each (no skip connections)", node=dst, field="synapses")
        if dst in seen:  # pragma: no cover - cycles other than self-loops are refused above
            raise ToolchainError("cycle in the synapse graph", node=dst, field="synapses")
        seen.add(dst)
        chain.append(ChainLink(program.groups[dst], ins, [s for s in program.synapses_into(dst) if s.src == dst]))
        src = dst
    if not chain:
        raise ToolchainError("the input port feeds no neuron group", node=port.name, field="synapses")
    if chain[-1].group.name != program.output:
        raise ToolchainError(f"the chain from the input ends at '{chain[-1].group.name}', not at the output "
                             f"'{program.output}'", node=chain[-1].group.name, field="output")
    missing = [g for g in program.groups if g not in seen]
    if missing:
        raise ToolchainError(f"group is not on the chain input -> ... -> output "
                             f"({' -> '.join([port.name] + [c.group.name for c in chain])}); netx cannot hold it",
                             node=missing[0], field="groups")
    return chain


def _folded(syn: SynapseGroup, w: np.ndarray) -> np.ndarray:
    """Lava's effective weights ``w`` (int64) with the synapse's ``weight_exp`` folded in (netx has no exponent)."""
    e = syn.weight_exp
    if e >= 0:
        return w << e
    k = -e
    if np.any(w % (1 << k)):
        raise ToolchainError(f"weight_exp {e} cannot be folded into the weights (netx has no weight exponent "
                             f"field): floor(sum / 2^{k}) is not a per-weight sum unless every weight is a "
                             f"multiple of 2^{k}", node=syn.name, field="weight_exp")
    return w >> k


#: lava-dl's fixed SDNN state exponent (``hdf5.py`` L176, L187)
NETX_SDNN_STATE_EXP = 6


def _sdnn_spike_exp(program: Program) -> Optional[int]:
    """The one ``spike_exp`` of the program's sigma-delta groups (None without any); refused when they differ."""
    exps = {g.sdn.spike_exp for g in program.groups.values() if g.sdn is not None and g.sdn.kind != "sigma"}
    if len(exps) > 1:
        g = next(g for g in program.groups.values() if g.sdn is not None and g.sdn.kind != "sigma")
        raise ToolchainError(f"sigma-delta groups with spike_exp {sorted(exps)}: netx has one (Network(spike_exp=))",
                             node=g.name, field="sdn.spike_exp")
    return exps.pop() if exps else None


def _check_sdnn(group: NeuronGroup) -> None:
    q = group.sdn
    if q.kind == "sigma":
        if np.any(q.bias):
            raise ToolchainError("a Sigma readout has no bias", node=group.name, field="sdn.bias")
        if q.num_message_bits != 16:
            raise ToolchainError(f"{q.num_message_bits} message bits: lava-dl 0.6.0 builds SDNN layers with 16",
                                 node=group.name, field="sdn.num_message_bits")
        return
    if q.state_exp != NETX_SDNN_STATE_EXP:
        raise ToolchainError(f"lava-dl builds SDNN neurons with state_exp {NETX_SDNN_STATE_EXP}, this group has "
                             f"{q.state_exp}", node=group.name, field="sdn.state_exp")
    if q.cum_error or q.act_mode != "relu":
        raise ToolchainError("lava-dl builds SDNN neurons with ReLU and without cumulative error", node=group.name,
                             field="sdn.act_mode" if q.act_mode != "relu" else "sdn.cum_error")
    if q.num_message_bits != 16:
        raise ToolchainError(f"{q.num_message_bits} message bits: lava-dl 0.6.0 builds SDNN layers with 16 (a "
                             "messageBits dataset makes its reader fail in Lava's builder)", node=group.name,
                             field="sdn.num_message_bits")
    if np.any(q.vth != q.vth[0]):
        raise ToolchainError("netx's vThMant of an SDNN neuron is one value (Lava's sdn threshold is a shape-(1,) "
                             "Var)", node=group.name, field="sdn.vth")


def _layer_bias(group: NeuronGroup) -> np.ndarray:
    """The file's ``bias`` of a layer: the SDNN bias mantissa, or the CUBA bias (:func:`_file_bias`)."""
    if group.sdn is not None:
        return group.sdn.bias.astype(np.int64)
    return _file_bias(group)


def _is_encoder(link: "ChainLink", port: Any) -> bool:
    """A Delta group fed only through an identity synapse (weights 1 as Lava uses them, no exponent or delay)
    from the spike port: netx's SDNN input layer."""
    g = link.group
    if g.sdn is None or g.sdn.kind != "delta" or len(link.ff) != 1 or link.rec:
        return False
    s = link.ff[0]
    if s.src != port.name or s.delay or s.weight_exp or port.size != g.size:
        return False
    w = fx.lava_weights(s.weight.to_dense(), s.num_weight_bits, s.sign_mode)
    return bool(np.array_equal(w, np.eye(g.size, dtype=w.dtype)))


def _file_bias(group: NeuronGroup) -> np.ndarray:
    eff = fx.effective_bias(group.bias_mant, group.bias_exp).astype(np.int64)
    step = 1 << NETX_BIAS_EXP
    bad = np.flatnonzero(eff % step)
    if bad.size:
        i = int(bad[0])
        raise ToolchainError(f"netx fixes bias_exp = {NETX_BIAS_EXP}, so the effective bias bias_mant << bias_exp "
                             f"must be a multiple of {step}; neuron {i} has {int(group.bias_mant[i])} << "
                             f"{int(group.bias_exp[i])} = {int(eff[i])} ({bad.size} neuron(s) affected)",
                             node=group.name, field="bias_mant")
    return (eff // step).astype(np.int32)


def _neuron_field(values: np.ndarray, shape: Tuple[int, ...] = ()) -> np.ndarray:
    """A scalar when every neuron shares the value, else one value per neuron in the layer's netx shape."""
    v = np.asarray(values).astype(np.int32)
    if v.size and np.all(v == v[0]):
        return np.array(v[0], np.int32)
    return v.reshape(shape) if shape and len(shape) > 1 else v


def _check_group(group: NeuronGroup) -> None:
    if group.sdn is not None:
        _check_sdnn(group)
        return
    if group.reset_mode != "zero":
        raise ToolchainError(f"reset_mode '{group.reset_mode}': netx's CUBA neuron is Lava's LIF, which resets "
                             "v to zero (compile with --reset zero)", node=group.name, field="reset_mode")
    if np.any(group.v_init):
        raise ToolchainError("a netx file cannot set an initial voltage (the group starts below zero to hide its "
                             "bias until its input arrives); compile with align_bias=False (snnc compile "
                             "--no-align-bias), or use compile_for_netx, to export it", node=group.name,
                             field="v_init")
    if np.any(group.u_init):
        raise ToolchainError("a netx file cannot set an initial current (the group starts its current so that the "
                             "part of its bias the synapses cannot carry rises as in the float model); compile "
                             "with align_bias=False (snnc compile --no-align-bias), or use compile_for_netx, to "
                             "export it", node=group.name, field="u_init")


@dataclass
class NetxLayer:
    """One ``/layer/<k>`` entry to write: ``kind`` input | conv | flatten | dense | dense_rec; ``group`` (None for
    flatten and for an input layer without neurons); ``shape`` in netx order (W, H, C) or (n,); the file's
    ``weight``/``weight_rec``/``bias``/``delay`` (already folded and checked) and conv geometry in ``extra``."""

    kind: str
    shape: Tuple[int, ...]
    group: "NeuronGroup | None" = None
    weight: "np.ndarray | None" = None
    weight_rec: "np.ndarray | None" = None
    bias: "np.ndarray | None" = None
    delay: "np.ndarray | None" = None
    extra: "dict | None" = None


def _is_grid(shape: Tuple[int, ...]) -> bool:
    return len(shape) == 3


def _reset_schedule(chain: List[ChainLink]) -> Tuple[int, int]:
    """The ``(reset_interval, reset_offset)`` to pass to ``netx.hdf5.Network`` so that the k-th layer gets the
    Program's reset (lava-dl gives layer k the offset ``reset_offset + 1 + k``); (0, 0) when no group resets."""
    groups = [c.group for c in chain]
    ri = {g.reset_interval for g in groups}
    if ri == {0}:
        return 0, 0
    if len(ri) != 1:
        raise ToolchainError(f"groups reset with different intervals {sorted(ri)}; netx has one reset_interval",
                             node=groups[0].name, field="reset_interval")
    interval = ri.pop()
    base = (groups[0].reset_offset - 1) % interval
    for k, g in enumerate(groups):
        if g.reset_offset != (base + 1 + k) % interval:
            raise ToolchainError(f"reset_offset {g.reset_offset} is not lava-dl's reset_offset + 1 + {k} "
                                 f"(= {(base + 1 + k) % interval})", node=g.name, field="reset_offset")
    return interval, base


def _dense_file(link: ChainLink, n_in: int) -> Tuple[np.ndarray, "np.ndarray | None"]:
    """The merged file matrix (weight_exp folded) and its per-synapse delays (None when all are 0)."""
    n_out = link.group.size
    w = np.zeros((n_out, n_in), np.int64)
    d = np.zeros((n_out, n_in), np.int64)
    taken = np.zeros((n_out, n_in), bool)
    for syn in link.ff:
        if syn.weight.shape[1] != n_in:  # pragma: no cover - Program checks shapes
            raise ToolchainError("weight shape does not match the previous layer", node=syn.name, field="weight")
        mask = syn.weight.stored_mask()
        if np.any(taken & mask):
            raise ToolchainError("two synapse groups store the same synapse; netx has one weight and one delay per "
                                 "synapse", node=syn.name, field="weight")
        eff = fx.lava_weights(syn.weight.to_dense(), syn.num_weight_bits, syn.sign_mode).astype(np.int64)
        w += np.where(mask, _folded(syn, eff), 0)
        d[mask] = syn.delay
        taken |= mask
    return w, (d if np.any(d) else None)


def _rec_file(link: ChainLink) -> Tuple[np.ndarray, "np.ndarray | None"]:
    n = link.group.size
    return _dense_file(ChainLink(link.group, link.rec, []), n)


def _exact_or_raise(m: np.ndarray, name: str, fld: str, syns: List[SynapseGroup]) -> NetxWeights:
    nx = netx_dense_weights(m)
    if not nx.exact:
        e = max((s.weight_exp for s in syns), default=0)
        hint = ""
        if e > 0:
            need = int(np.ceil(np.log2(max(float(np.abs(m).max()) / 254.0, 1.0))))
            hint = (f" (weight_exp {e} is folded into the weights because netx files carry no weight exponent; "
                    f"compile with a vth_max about 2^{max(need, 1)} times smaller, or with "
                    "toolchain.backends.netx.compile_for_netx / snnc compile --netx, which chooses it)")
        raise ToolchainError(f"netx would not reproduce these weights: {nx.reason}{hint}", node=name, field=fld)
    return nx


def _conv_layer(link: ChainLink, prev_shape: Tuple[int, ...]) -> NetxLayer:
    from ..ir.storage import Conv
    if len(link.ff) != 1 or link.rec:
        raise ToolchainError("a convolution layer takes exactly one synapse group without delay or recurrence",
                             node=link.group.name, field="synapses")
    syn = link.ff[0]
    w = syn.weight
    assert isinstance(w, Conv)
    if syn.delay:
        raise ToolchainError("netx conv layers have no synaptic delay", node=syn.name, field="delay")
    if tuple(w.in_shape) != tuple(prev_shape):  # lava-dl takes a conv's input grid from the previous layer
        raise ToolchainError(f"convolves a (W, H, C) = {w.in_shape} grid, the previous netx layer is "
                             f"{prev_shape}", node=syn.name, field="weight")
    k = _folded(syn, fx.lava_weights(w.kernel, syn.num_weight_bits, syn.sign_mode).astype(np.int64))
    if k.min(initial=0) < -256 or k.max(initial=0) > 255:
        raise ToolchainError(f"kernel values [{k.min()}, {k.max()}] after folding weight_exp {syn.weight_exp} "
                             "leave Loihi's 9-bit signed weights", node=syn.name, field="weight")
    if np.abs(k).reshape(k.shape[0], -1).sum(axis=1).max(initial=0) >= 2 ** 23:
        raise ToolchainError("kernel sums could reach Lava Conv's 24-bit output clamp", node=syn.name, field="weight")
    g = link.group
    _check_group(g)
    bias = _layer_bias(g).reshape(w.out_shape)
    per_channel = bias.reshape(-1, w.out_shape[2])
    bias_out = per_channel[0] if np.all(per_channel == per_channel[0]) else bias
    return NetxLayer("conv", tuple(w.out_shape), g, weight=k.astype(np.int32),
                     bias=bias_out if np.any(bias_out) else None,
                     extra={"stride": w.stride, "padding": w.padding, "dilation": w.dilation, "groups": w.groups,
                            "in_shape": w.in_shape})


def _netx_layers(program: Program) -> Tuple[List[NetxLayer], Tuple[int, int]]:
    """Every check, and the layers to write; plus ``(reset_interval, reset_offset)`` for ``Network``."""
    from ..ir.storage import Conv
    from ..passes.quantise import SPLIT_SUFFIX
    split = [s.name for s in program.synapses if s.name.endswith(SPLIT_SUFFIX)]
    if split:  # weight_split companions (the compile default where they cost no cores): two weights per synapse
        raise ToolchainError(f"this build carries weight-split companion groups ({', '.join(split[:4])}"
                             f"{', ...' if len(split) > 4 else ''}); netx holds one weight per synapse: compile "
                             f"with compile_for_netx / `snnc compile --netx FILE.net`, or with weight_split=False "
                             f"(--no-weight-split)", node=split[0], field="weight_split")
    chain = netx_chain(program)
    schedule = _reset_schedule(chain)
    port = program.inputs[0]
    layers: List[NetxLayer] = []
    if port.kind == "bias":
        g = chain[0].group
        _check_group(g)
        if np.any(g.bias_mant):
            raise ToolchainError("netx's input layer takes its bias from the input (the reader ignores a stored "
                                 "one); this group has a bias of its own", node=g.name, field="bias_mant")
        shape = tuple(port.shape) if len(port.shape) in (1, 3) else (g.size,)
        layers.append(NetxLayer("input", shape, g))
        prev_shape, links = shape, chain[1:]
    elif _is_encoder(chain[0], port):  # netx's SDNN input layer (a Delta)
        g = chain[0].group
        _check_group(g)
        shape = tuple(g.shape) if len(g.shape) in (1, 3) else (g.size,)
        layers.append(NetxLayer("input", shape, g))
        prev_shape, links = shape, chain[1:]
    else:
        first = chain[0].ff
        conv_first = len(first) == 1 and isinstance(first[0].weight, Conv)
        shape = tuple(first[0].weight.in_shape) if conv_first else (port.size,)
        layers.append(NetxLayer("input", shape))
        prev_shape, links = shape, chain
    _sdnn_spike_exp(program)
    for link in links:
        g = link.group
        if g.sdn is not None and g.sdn.kind == "delta":
            raise ToolchainError("a Delta encoder is netx's SDNN input layer only (first, fed through an identity "
                                 "synapse from the input port)", node=g.name, field="sdn.kind")
        if any(isinstance(s.weight, Conv) for s in link.ff):
            lay = _conv_layer(link, prev_shape)
            layers.append(lay)
            prev_shape = lay.shape
            continue
        _check_group(g)
        n_in = int(np.prod(prev_shape))
        wff, dff = _dense_file(link, n_in)
        if _is_grid(prev_shape):  # netx flattens a grid in (C, H, W) order: permute our (W, H, C) columns
            layers.append(NetxLayer("flatten", (n_in,)))
            perm = flatten_perm(prev_shape)
            wf = np.zeros_like(wff)
            wf[:, perm] = wff
            wff = wf
            if dff is not None:
                df = np.zeros_like(dff)
                df[:, perm] = dff
                dff = df
        lay = NetxLayer("dense", (g.size,), g, weight=None, bias=_layer_bias(g), delay=dff)
        if link.rec:
            wrec, drec = _rec_file(link)
            nx = _exact_or_raise(np.hstack([wff, wrec]), link.rec[0].name, "weight", link.ff + link.rec)
            # lava-dl optimises [W, W_rec] jointly but builds two Dense processes: each derives its own sign
            # mode and truncates with the joint num_weight_bits, so each part must pass on its own
            for part, syn in ((wff, link.ff[0] if link.ff else link.rec[0]), (wrec, link.rec[0])):
                got = lava_dense_weights(part.astype(np.int64) << -nx.weight_exp, nx.num_weight_bits,
                                         nx.weight_exp)
                if not got.exact:
                    raise ToolchainError(f"netx would not reproduce these weights in its dense_rec layer: "
                                         f"{got.reason}", node=syn.name, field="weight")
            if dff is not None or drec is not None:
                same = dff is not None and drec is not None and dff.shape == drec.shape and np.array_equal(dff, drec)
                if not same or nx.weight_exp != 0:
                    raise ToolchainError("a delayed recurrent layer: lava-dl 0.6.0 gives its dense_rec DelayDense "
                                         "pair the feed-forward delay matrix and no weight exponent, so only equal "
                                         "delays with unscaled weights are exact", node=link.rec[0].name,
                                         field="delay")
            lay.kind, lay.weight, lay.weight_rec = "dense_rec", wff.astype(np.int32), wrec.astype(np.int32)
        else:
            _exact_or_raise(wff, link.ff[0].name if link.ff else g.name, "weight", link.ff)
            lay.weight = wff.astype(np.int32)
        layers.append(lay)
        prev_shape = (g.size,)
    return layers, schedule


def flatten_perm(shape: Tuple[int, int, int]) -> np.ndarray:
    """For each neuron of a (W, H, C) grid in the Program's order, its index in netx's (C, H, W) flattening."""
    w, h, c = shape
    x, y, ch = np.unravel_index(np.arange(w * h * c), (w, h, c))
    return (ch * h + y) * w + x


def _check_path(path: Path) -> Path:
    if path.is_dir():
        raise ToolchainError("is a directory; give a file name such as model.net", file=str(path), field="path")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise ToolchainError("the directory does not exist", file=str(parent), field="path")
    return parent


def check_netx(program: Program, path: Union[str, os.PathLike, None] = None) -> None:
    """Raise the :class:`ToolchainError` that :func:`export_netx` would raise for ``program`` (and ``path``, when
    given), writing nothing: e.g. to refuse a CLI build before any output is written."""
    _netx_layers(program)
    if path is not None:
        _check_path(Path(path))


def export_netx(program: Program, path: Union[str, os.PathLike]) -> Path:
    """Write ``program`` to ``path`` as a lava-dl netx HDF5 network (see the module docstring for the layout
    and what is refused); returns the path.

    Everything is checked before anything is written; the file is written to a temporary sibling and renamed
    into place, so an error never leaves a partial file (an existing file at ``path`` is replaced only on
    success). Raises :class:`ToolchainError` naming the group or synapse and the field that netx cannot hold.
    The file's root attributes ``reset_interval``/``reset_offset`` say what to pass to ``netx.hdf5.Network``
    (lava-dl's reader ignores them; :mod:`toolchain.backends.deploy` writes them into the run script).
    """
    import h5py

    path = Path(path)
    layers, (interval, offset) = _netx_layers(program)
    parent = _check_path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent)
    os.close(fd)
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["generator"] = "toolchain.backends.netx"
            f.attrs["target"] = program.target
            f.attrs["dt"] = float(program.dt)
            f.attrs["input"] = program.inputs[0].name
            f.attrs["input_kind"] = program.inputs[0].kind
            f.attrs["groups"] = [lay.group.name for lay in layers if lay.group is not None]
            f.attrs["reset_interval"] = int(interval)
            f.attrs["reset_offset"] = int(offset)
            top = f.create_group("layer")
            for k, lay in enumerate(layers):
                h = top.create_group(str(k))
                h.create_dataset("type", (1,), "S10", [lay.kind.encode()])
                h.create_dataset("shape", data=np.asarray(lay.shape[::-1], np.int64))  # netx reverses it
                if lay.group is not None:
                    h.attrs["group"] = lay.group.name
                if lay.kind == "conv":
                    e = lay.extra or {}
                    h.create_dataset("weight", data=lay.weight.astype(np.float32))
                    for key in ("stride", "padding", "dilation"):  # (H, W): netx reverses to (x, y)
                        h.create_dataset(key, data=np.asarray(e[key], np.int64))
                    h.create_dataset("groups", data=np.int64(e["groups"]))
                    h.create_dataset("inChannels", data=np.int64(e["in_shape"][2]))
                    h.create_dataset("outChannels", data=np.int64(lay.shape[2]))
                    h.create_dataset("kernelSize", data=np.asarray(lay.weight.shape[2:], np.int64))
                elif lay.kind in ("dense", "dense_rec"):
                    h.create_dataset("weight", data=lay.weight)
                    if lay.weight_rec is not None:
                        h.create_dataset("weight_rec", data=lay.weight_rec)
                    if lay.delay is not None:  # netx builds a DelayDense with these per-synapse delays
                        d = lay.delay
                        h.create_dataset("delay", data=np.int64(d.flat[0]) if np.all(d == d.flat[0]) else d)
                if lay.bias is not None and np.any(lay.bias):
                    h.create_dataset("bias", data=np.asarray(lay.bias, np.float32))
                if lay.group is not None:
                    g = lay.group
                    shp = lay.shape
                    neu = h.create_group("neuron")
                    if g.sdn is not None:  # lava-dl's SDNN neuron (module docstring)
                        neu.create_dataset("type", (1,), "S10", [b"SDNN"])
                        neu.create_dataset("vThMant", data=np.int64(g.sdn.vth[0]))
                        neu.create_dataset("gradedSpike", data=True)
                        if g.sdn.kind == "sigma":
                            neu.create_dataset("sigma_output", data=True)
                        continue
                    neu.create_dataset("type", (1,), "S10", [b"CUBA"])
                    neu.create_dataset("iDecay", data=_neuron_field(g.du.astype(np.int64) + 1, shp))
                    neu.create_dataset("vDecay", data=_neuron_field(g.dv, shp))
                    neu.create_dataset("vThMant", data=_neuron_field(g.vth, shp))
                    neu.create_dataset("refDelay", data=np.int32(1))
                    neu.create_dataset("gradedSpike", data=False)
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)  # mkstemp creates 0600; a netx file follows the umask like any file we write
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def netx_network_args(program: Program) -> dict:
    """The arguments to pass to ``lava.lib.dl.netx.hdf5.Network`` besides ``net_config`` so that it computes
    ``program``: ``{"reset_interval": R or None, "reset_offset": o}`` (checked like :func:`export_netx`)."""
    layers, (interval, offset) = _netx_layers(program)
    out: dict = {"reset_interval": interval or None, "reset_offset": offset}
    se = _sdnn_spike_exp(program)
    if se is not None:  # SDNN: the spike exponent, and the unconnected Delta input layer is skipped
        out["spike_exp"] = se
        if layers[0].group is not None and layers[0].group.sdn is not None:
            out["skip_layers"] = 1
        elif program.inputs[0].num_message_bits:
            out["input_message_bits"] = program.inputs[0].num_message_bits
    return out


def round_biases_for_netx(program: Program) -> Tuple[Program, List[str]]:
    """netx fixes ``bias_exp = 6``: give every group whose effective bias is not a multiple of 64 the nearest one
    (``bias_mant = round(bias / 64)``, clipped to 13 bits, ``bias_exp = 6``). Returns the new Program (a copy;
    the input is unchanged) and one line per changed group with the largest change relative to the threshold."""
    import dataclasses
    changes: List[str] = []
    groups = []
    for g in program.groups.values():
        eff = fx.effective_bias(g.bias_mant, g.bias_exp).astype(np.int64)
        if not np.any(eff % (1 << NETX_BIAS_EXP)):
            groups.append(g)
            continue
        mant = np.clip(np.round(eff / float(1 << NETX_BIAS_EXP)), -4096, 4095).astype(np.int64)
        err = np.abs((mant << NETX_BIAS_EXP) - eff)
        thr = np.maximum(fx.effective_threshold(g.vth), 1)
        changes.append(f"group '{g.name}': biases rounded to multiples of 64 (netx fixes bias_exp = 6); largest "
                       f"change {int(err.max())} = {float((err / thr).max()):.2%} of the threshold")
        groups.append(dataclasses.replace(g, bias_mant=mant, bias_exp=NETX_BIAS_EXP))
    if not changes:
        return program, changes
    out = Program(groups, program.synapses, program.inputs, program.output, target=program.target, dt=program.dt,
                  placement=program.placement, report=dict(program.report), quant_report=program.quant_report,
                  metadata=dict(program.metadata))
    return out, changes


def compile_for_netx(graph: Any, target: Any = "loihi2", dt: Optional[float] = None, reset: Optional[str] = None,
                     **options: Any) -> Program:
    """:func:`toolchain.compile.compile_graph` with the representation a netx file can hold, instead of refusing.

    netx has no weight exponent, no initial voltage and a fixed bias exponent, so: ``align_bias`` is turned off
    (unless given), ``vth_max`` is halved from the requested value (default 2^14) until every layer's weights
    fold into netx's range with ``weight_exp <= 0`` (the compiler scales weights with the threshold), and
    biases are rounded to multiples of 64 (:func:`round_biases_for_netx`). What was changed is listed in
    ``program.metadata["netx_changes"]`` (and printed by ``snnc compile --netx``); the returned Program is what
    the file computes, bit for bit. Errors other than weight range (e.g. subtractive reset, recurrence between
    groups) are raised as :func:`export_netx` would.
    """
    from ..compile import compile_graph
    from ..passes.partition import partition as place
    from ..targets import load_target
    changes: List[str] = []
    opts = dict(options)
    if "align_bias" not in opts:
        opts["align_bias"] = False
        changes.append("align_bias off: netx cannot set initial voltages, so biased groups integrate their bias "
                       "from step 0, not from their input's arrival")
    if "weight_split" not in opts:  # one synapse matrix per connection in a netx layer: no companion groups
        opts["weight_split"] = False
    requested = int(opts.pop("vth_max", 2 ** 14))
    vth = requested
    while True:
        prog = compile_graph(graph, target, dt=dt, reset=reset, vth_max=vth, **opts)
        prog, bias_changes = round_biases_for_netx(prog)
        try:
            _netx_layers(prog)
            break
        except ToolchainError as exc:
            if exc.field in ("weight", "weight_exp") and vth > 2:
                vth //= 2
                continue
            raise
    if vth != requested:
        changes.append(f"vth_max {requested} -> {vth}: netx files have no weight exponent, so weights and "
                       "thresholds were scaled until every layer's weights fit netx's 8-bit range")
    changes += bias_changes
    if bias_changes and prog.placement is not None:
        prog = place(prog, load_target(target))
    prog.metadata["netx_changes"] = changes
    prog.metadata.setdefault("compile_options", {})["vth_max"] = vth
    return prog
