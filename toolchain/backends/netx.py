"""Write a compiled :class:`~toolchain.program.Program` as a lava-dl *netx* HDF5 network (``.net`` file).

    >>> from toolchain.backends.netx import export_netx
    >>> export_netx(program, "model.net")
    >>> from lava.lib.dl.netx.hdf5 import Network
    >>> net = Network(net_config="model.net")          # feed binary spikes into net.inp

The file is bit-exact: lava-dl 0.6.0's reader (``lava/lib/dl/netx/hdf5.py``, ``netx/utils.py``,
``netx/blocks/process.py``) builds from it Lava ``Dense`` and ``LIF`` processes whose ``fixed_pt`` models compute
exactly the spikes, ``u`` and ``v`` of :func:`toolchain.sim.reference.simulate` at every step (checked in
``tests/test_netx.py``), with **zero extra steps of delay** (:data:`NETX_EXTRA_DELAY`).

File layout (what the reader expects and how it maps it)
--------------------------------------------------------
``/layer/0``: ``type`` = ``"input"`` and ``shape`` (the input port's per-sample shape, as stored in the Program)
and **no** ``neuron`` group. netx then creates no input layer at all (``Network._create``): ``Network.inp``
connects straight to the first dense layer's synapse, so input column ``t`` reaches the first group's ``u`` at
step ``t + 1``, as in the Program. (An input layer *with* a neuron would add one LIF and one step of delay, and
its ``inp`` port is not even connected to that neuron in lava-dl 0.6.0 — the input has to go through its bias.)
Input is fed flattened in C order of the port's shape (Dense layers are flat).

``/layer/k`` (k >= 1), one per neuron group of the chain: ``type`` = ``"dense"``, ``shape`` = [n],
``weight`` (n_out, n_in) int32, optional ``bias`` (n,) int32, and ``neuron`` with ``type`` = ``"CUBA"``,
``iDecay``, ``vDecay``, ``vThMant`` (int32 scalars when shared, else one value per neuron), ``refDelay`` = 1
and ``gradedSpike`` = False (both ignored by the CUBA path). netx builds
``LIF(vth=vThMant, du=iDecay - 1, dv=vDecay, bias_mant=bias, bias_exp=6)`` (zero reset; ``reset_interval``
must stay None) and ``Dense(weights=W', weight_exp=e', num_weight_bits=b')``, where ``(W', b', e', sign)`` =
``optimize_weight_bits(weight)`` (``netx/utils.py``) — note that the sign mode it computes is *not* passed on:
Lava's Dense model then derives its own one from ``W'`` (``determine_sign_mode``) before clipping and
truncating. Hence, per field:

* ``iDecay = du + 1`` (Lava adds no offset here; netx subtracts one), ``vDecay = dv``, ``vThMant = vth``.
  Per-neuron values are written as arrays, which Lava's bit-accurate LIF broadcasts (as our Lava backend does).
* ``bias``: netx fixes ``bias_exp = 6``, so the file holds ``b = (bias_mant << bias_exp) / 64``. A group whose
  effective bias is not a multiple of 64 cannot be written (:class:`ToolchainError` on ``bias_mant``). Lava
  stores ``bias_mant`` as int16, so ``|b| <= 8190`` always fits.
* ``weight``: netx's activation is always ``sum(W' [s]) >> -e'`` with ``W' = weight << -e'``, i.e. exactly
  ``sum(weight[s])`` *when Lava's clip and truncation leave W' unchanged*. So the file holds
  ``weight = lava_weights(w) * 2**weight_exp`` (the Program's ``weight_exp`` folded in; for a negative
  exponent every weight must be divisible by ``2**-weight_exp``, else ``floor(sum / 2^k)`` has no per-weight
  form). :func:`netx_dense_weights` re-states netx's and Lava's rescaling; a matrix it does not reproduce
  exactly is refused, naming the synapse and the reason. Matrices that are lost this way: all zeros (netx
  divides by the maximum and crashes), values beyond netx's range (mixed-sign beyond [-256, 254], one-signed
  beyond 255 in magnitude), and non-positive matrices whose most negative weight is a power of two: netx
  scales it to -256 but Lava's inhibitory clip stops at -255.
* ``sign_mode`` and ``num_weight_bits`` of the Program are *not* written: they only matter through the weights
  Lava really uses (``lava_weights``), which is what is written.
* ``delay``: a synapse group with ``delay = d > 0`` gets a scalar ``delay`` dataset; netx then builds a
  ``DelayDense`` with delay ``d`` on every synapse (spike at ``t`` -> ``u`` at ``t + 1 + d``, as in the Program).

Consequence for compiled networks: netx has no weight-exponent field and its activation per spike is at most
256 in magnitude, so a layer compiled with ``weight_exp > 0`` fits only if ``|w| << weight_exp`` stays within
netx's range. With the compiler's default ``vth_max`` (2^14) layers get ``weight_exp`` of about 5-6 and are
refused (the error names the synapse and says by how much to lower ``vth_max``); ``compile_graph(...,
vth_max=256)`` gives ``weight_exp <= 0`` and an exportable, bit-exact file (``tests/test_netx.py``) at the cost of
coarser thresholds and decays relative to the weights.

Not expressible in the netx layer set (each raises :class:`~toolchain.errors.ToolchainError` naming the group
or synapse and the field): more than one input port (``inputs``), graded input (``num_message_bits`` > 0: netx
takes the input's message bits from a constructor argument, not from the file), anything but a single chain
``input -> g0 -> g1 -> ... -> output`` (``synapses``/``groups``/``output``: skip connections, fan-out, groups off
the chain), recurrent synapses (``recurrent``; netx's ``dense_rec`` optimises the feed-forward and recurrent
matrices jointly and is not used here), subtractive reset (``reset_mode``), an initial voltage (``v_init``: compile with
``align_bias=False``), biases that are not multiples of 64 (``bias_mant``), weights netx would rescale lossily (``weight``) and negative exponents that do not fold
(``weight_exp``).

``snnc compile F.nir -o BUILD --netx F.net`` writes the file next to the build (:func:`check_netx` refuses the
network before anything is written).
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import List, Tuple, Union

import numpy as np

from .. import fixedpoint as fx
from ..errors import ToolchainError
from ..program import NeuronGroup, Program, SynapseGroup

__all__ = ["export_netx", "check_netx", "netx_dense_weights", "netx_optimize_weight_bits", "lava_sign_mode",
           "netx_chain", "NETX_EXTRA_DELAY", "NetxWeights"]

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
    if wmax < 0:
        mixed, scale = 0, 256.0 / -wmin
    elif wmin >= 0:
        mixed, scale = 0, 255.0 / wmax
    else:
        mixed = 1
        scale = min(127.0 / wmax if wmax > 0 else np.inf, 128.0 / -wmin)
    scale_bits = int(np.floor(np.log2(scale))) + mixed
    if scale_bits < 0:
        return NetxWeights(w.astype(np.int32), 0, 8, "mixed" if mixed else "one-signed", False,
                           f"weights in [{wmin}, {wmax}] exceed netx's one-signed range of 255 in magnitude")
    n = 8
    while n > 0 and np.any(w % (1 << n)):
        n -= 1
    n -= mixed
    num_weight_bits = 8 - scale_bits - n
    shifted = w << scale_bits
    sign = lava_sign_mode(shifted)  # Lava's Dense: its own sign mode, clip to 8 bits, truncate
    lo, hi = fx.weight_range(sign)
    used = np.clip(shifted, lo, hi)
    k = 8 - num_weight_bits + int(sign == "mixed")
    used = -((-used) >> k << k) if sign == "inhibitory" else (used >> k << k)
    used = used.astype(np.int32)
    exact = bool(np.array_equal(used.astype(np.int64), shifted))
    reason = "" if exact else (
        f"netx scales the weights by 2^{scale_bits} to [{int(shifted.min())}, {int(shifted.max())}] and Lava's "
        f"{sign} clip/truncation to {num_weight_bits} bits changes "
        f"{int(np.count_nonzero(used != shifted))} of them")
    return NetxWeights(used, -scale_bits, num_weight_bits, sign, exact, reason)


def netx_chain(program: Program) -> List[Tuple[SynapseGroup, NeuronGroup]]:
    """The Program as a netx chain: ``[(synapse into g0, g0), (synapse into g1, g1), ...]`` ending at the output.

    Raises :class:`ToolchainError` naming the port, group or synapse and the field when the Program is not a
    single feed-forward chain from one binary input port (see the module docstring).
    """
    if len(program.inputs) != 1:
        raise ToolchainError(f"netx networks have one input; the program has {len(program.inputs)} input ports",
                             field="inputs")
    port = program.inputs[0]
    if port.num_message_bits:
        raise ToolchainError(f"graded input ({port.num_message_bits}-bit payloads) cannot be described in a netx "
                             "file (netx takes the input's message bits from Network(input_message_bits=...))",
                             node=port.name, field="num_message_bits")
    for s in program.synapses:
        if s.recurrent or s.src == s.dst:
            raise ToolchainError("recurrent synapses are not supported by the netx export (dense chain only)",
                                 node=s.name, field="recurrent")
    chain: List[Tuple[SynapseGroup, NeuronGroup]] = []
    src = port.name
    seen = set()
    while True:
        outs = program.synapses_from(src)
        if not outs:
            break
        if len(outs) > 1:
            raise ToolchainError(f"'{src}' projects to {len(outs)} groups ({', '.join(s.dst for s in outs)}); "
                                 "netx layers form a single chain (no fan-out or skip connections)",
                                 node=src, field="synapses")
        syn = outs[0]
        ins = program.synapses_into(syn.dst)
        if len(ins) > 1:
            raise ToolchainError(f"group receives {len(ins)} synapse groups "
                                 f"({', '.join(s.name for s in ins)}); netx layers have one input each "
                                 "(no skip connections)", node=syn.dst, field="synapses")
        if syn.dst in seen:  # pragma: no cover - cycles are recurrent synapses, refused above
            raise ToolchainError("cycle in the synapse graph", node=syn.dst, field="synapses")
        seen.add(syn.dst)
        chain.append((syn, program.groups[syn.dst]))
        src = syn.dst
    if not chain:
        raise ToolchainError("the input port feeds no neuron group", node=port.name, field="synapses")
    if chain[-1][1].name != program.output:
        raise ToolchainError(f"the chain from the input ends at '{chain[-1][1].name}', not at the output "
                             f"'{program.output}'", node=chain[-1][1].name, field="output")
    missing = [g for g in program.groups if g not in seen]
    if missing:
        raise ToolchainError(f"group is not on the chain input -> ... -> output "
                             f"({' -> '.join([port.name] + [g.name for _, g in chain])}); netx cannot hold it",
                             node=missing[0], field="groups")
    return chain


def _file_weights(syn: SynapseGroup) -> np.ndarray:
    """The integer matrix to write for one synapse group: Lava's effective weights with ``weight_exp`` folded
    in, checked to pass netx's rescaling unchanged."""
    w = fx.lava_weights(syn.weight.to_dense(), syn.num_weight_bits, syn.sign_mode).astype(np.int64)
    e = syn.weight_exp
    if e >= 0:
        wf = w << e
    else:
        k = -e
        if np.any(w % (1 << k)):
            raise ToolchainError(f"weight_exp {e} cannot be folded into the weights (netx has no weight exponent "
                                 f"field): floor(sum / 2^{k}) is not a per-weight sum unless every weight is a "
                                 f"multiple of 2^{k}", node=syn.name, field="weight_exp")
        wf = w >> k
    nx = netx_dense_weights(wf)
    if not nx.exact:
        hint = ""
        if e > 0:
            need = int(np.ceil(np.log2(max(float(np.abs(wf).max()) / 254.0, 1.0))))
            hint = (f" (weight_exp {e} is folded into the weights because netx files carry no weight exponent; "
                    f"compile with a vth_max about 2^{max(need, 1)} times smaller: the compiler scales weights "
                    "with the threshold)")
        raise ToolchainError(f"netx would not reproduce these weights: {nx.reason}{hint}", node=syn.name,
                             field="weight")
    return wf.astype(np.int32)


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


def _neuron_field(values: np.ndarray) -> np.ndarray:
    v = np.asarray(values).astype(np.int32)
    return np.array(v[0], np.int32) if v.size and np.all(v == v[0]) else v


def _check_group(group: NeuronGroup) -> None:
    if group.reset_mode != "zero":
        raise ToolchainError(f"reset_mode '{group.reset_mode}': netx's CUBA neuron is Lava's LIF, which resets "
                             "v to zero", node=group.name, field="reset_mode")
    if np.any(group.v_init):
        raise ToolchainError("a netx file cannot set an initial voltage (the group starts below zero to hide its "
                             "bias until its input arrives); compile with align_bias=False (snnc compile "
                             "--no-align-bias) to export it", node=group.name, field="v_init")


def _netx_layers(program: Program) -> List[Tuple[NeuronGroup, np.ndarray, np.ndarray, int]]:
    """Every check, and per layer ``(group, file weights, file bias, delay)``."""
    layers = []
    for syn, group in netx_chain(program):
        _check_group(group)
        layers.append((group, _file_weights(syn), _file_bias(group), int(syn.delay)))
    return layers


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
    """
    import h5py

    path = Path(path)
    layers = _netx_layers(program)
    parent = _check_path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent)
    os.close(fd)
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["generator"] = "toolchain.backends.netx"
            f.attrs["target"] = program.target
            f.attrs["dt"] = float(program.dt)
            f.attrs["input"] = program.inputs[0].name
            f.attrs["groups"] = [lay[0].name for lay in layers]
            top = f.create_group("layer")
            inp = top.create_group("0")
            inp.create_dataset("type", (1,), "S10", [b"input"])
            inp.create_dataset("shape", data=np.asarray(program.inputs[0].shape, np.int64))
            for k, (group, wf, bias, delay) in enumerate(layers, start=1):
                lay = top.create_group(str(k))
                lay.attrs["group"] = group.name
                lay.create_dataset("type", (1,), "S10", [b"dense"])
                lay.create_dataset("shape", data=np.asarray([group.size], np.int64))
                lay.create_dataset("weight", data=wf)
                if np.any(bias):
                    lay.create_dataset("bias", data=bias)
                if delay:  # netx then builds a DelayDense with this delay on every synapse
                    lay.create_dataset("delay", data=np.int64(delay))
                neu = lay.create_group("neuron")
                neu.create_dataset("type", (1,), "S10", [b"CUBA"])
                neu.create_dataset("iDecay", data=_neuron_field(group.du.astype(np.int64) + 1))
                neu.create_dataset("vDecay", data=_neuron_field(group.dv))
                neu.create_dataset("vThMant", data=_neuron_field(group.vth))
                neu.create_dataset("refDelay", data=np.int32(1))
                neu.create_dataset("gradedSpike", data=False)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path
