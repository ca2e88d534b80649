"""Read a lava-dl 0.6.0 *netx* HDF5 network (``.net``) into an integer :class:`~toolchain.program.Program`.

A netx file is already integer: nothing is re-quantised. The Program computes exactly what lava-dl's reader
(``lava/lib/dl/netx/hdf5.py`` ``Network._create``, ``netx/blocks/process.py``, ``netx/utils.py``) builds from the
file on Lava — the same weights after ``optimize_weight_bits``, the same neuron parameters, the same timing —
so that the reference simulator, our Lava backend and lava-dl's own network give the same spikes, ``u`` and
``v`` at every step (``tests/test_netx_import.py``; Intel's Loihi 2 traces in ``benchmarks/netx.py``).

Layer by layer (``/layer/<i>``, in index order), as lava-dl builds it:

* ``input`` with a ``neuron`` group: a neuron per input (CUBA LIF, ``shape`` stored (C, H, W), ours (W, H, C)),
  driven through its bias — lava-dl's hardware test sets ``net.in_layer.neuron.bias_mant.init = image`` — so the
  Program gets a bias :class:`~toolchain.program.InputPort` named ``input`` whose data is that ``bias_mant``
  (``bias_exp`` = 6, as netx fixes it). The file's ``bias``/``weight`` of an input layer are *not* used by the
  reader (they go into an unused ``transform``), so they are not used here. ``input`` without ``neuron``: only
  the input shape; the first synaptic layer then reads binary (or ``input_message_bits``-bit graded) spikes from
  a spike port named ``input``.
* ``conv``: Lava's ``Conv`` with the file's kernel (truncated to int as netx's ``NetDict`` does), stride, padding,
  dilation, groups — no weight exponent, no clip, no truncation (``proc/conv/models.py`` L71-79): stored as a
  :class:`~toolchain.ir.storage.Conv` with ``num_weight_bits = 9`` (mixed sign: Lava's Dense rule that leaves
  weights in [-256, 255] unchanged). Kernels outside that range, or whose sums could reach Conv's 24-bit output
  clamp, are refused (field ``weight``).
* ``flatten``: the next dense layer reads the previous (W, H, C) grid in netx's order
  (``out.transpose([2, 1, 0]).flatten()``, i.e. (C, H, W) flattened); its columns are permuted to ours.
* ``dense`` / ``dense_rec``: ``optimize_weight_bits`` (:func:`toolchain.backends.netx.netx_optimize_weight_bits`)
  of the weights (of ``[weight, weight_rec]`` side by side for ``dense_rec``), Lava's Dense then derives its sign
  mode from the shifted matrix; ``delay`` (scalar, per output neuron, per input or per synapse; clamped to 62 as
  netx does) becomes one synapse group per distinct delay. A delayed ``dense_rec`` gets weight exponent 0 —
  lava-dl 0.6.0 does not pass it to its ``DelayDense`` pair (reproduced, with a warning). ``sparse_fc_layer``
  stores dense layers as :class:`~toolchain.ir.storage.Csr` (Lava's ``Sparse``: the same arithmetic).
* ``neuron``: ``type`` LOIHI or CUBA → ``du = iDecay - 1``, ``dv = vDecay``, ``vth = vThMant``, ``bias_mant`` =
  ``bias`` (scalar, per channel or per neuron; truncated to int), ``bias_exp = 6``; a missing ``neuron`` group is
  netx's non-leaky integrator (``iDecay`` 0, ``vDecay`` 4096, ``vThMant`` 2^17). ``reset_interval`` (a
  ``Network`` argument, not in the file) gives every layer Lava's ``LIFReset`` with offset
  ``reset_offset + 1 + k`` for the k-th layer built.

* ``neuron`` ``type`` SDNN (sigma-delta, graded spikes; ``hdf5.py`` ``get_neuron_params`` L164-189): an input
  layer is Lava's ``Delta`` (``vth = vThMant``, ``spike_exp`` = the Network's (6), ``state_exp = 6``); a layer with
  ``sigma_output`` is a ``Sigma`` (the readout: its payload is sigma); any other layer a ``SigmaDelta`` (ReLU,
  ``vth = vThMant``, ``bias`` = the layer's ``bias``, ``spike_exp`` 6, ``state_exp`` 6). ``messageBits`` (16 when
  absent) are the payload bits, and the ``num_message_bits`` of the next layer's synapse (graded Dense/Conv).
  lava-dl builds the SDNN input layer's ``Delta`` but leaves its input unconnected (the ``Input`` block's ``inp``
  is not wired to the neuron, ``netx/blocks/process.py`` L101-106), so SDNN networks are run with
  ``Network(skip_layers=1)`` and a host-side encoder: this Program holds that encoder — the ``Delta`` group, fed
  frame by frame through an identity synapse from a graded port ``input`` (``input_message_bits`` bits, 16 when
  0). Reset is ignored for SDNN layers, as lava-dl does (with a warning). lava-dl's SDNN conv layers use Lava's
  ``Conv`` (float32 sums clamped to 24 bits): the Program's graded Sparse product equals it while every sum stays
  below 2^23 in magnitude (the usual case; a note records the largest possible row sum per payload unit).

Refused, with one error naming the file, the layer (``layer/<i>``) and the field: ``pool``, ``convT``,
``unpool``, ``average``, ``concat``, ``dense_comp`` (lava-dl 0.6.0 cannot build them either, or not as CUBA
neurons), resonate-and-fire neurons (``neuron/type``), SDNN layers lava-dl cannot build (a per-neuron
``vThMant``: Lava's sdn threshold is one value; a ``bias`` on a ``sigma_output`` layer: Lava's Sigma takes none;
``messageBits`` 0), graded CUBA output
(``neuron/messageBits``), values outside Lava's fields (e.g. ``bias`` beyond 13 bits) and shapes that do not
chain.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np

from ..errors import ToolchainError
from ..ir.storage import Conv, Csr, Dense, conv_output_hw
from ..program import InputPort, NeuronGroup, Program, SynapseGroup
from ..textutil import table_lines

__all__ = ["load_netx", "NetxImportError", "NETX_SUFFIXES", "is_netx_file", "NETX_UNSUPPORTED", "format_netx_layers",
           "netx_inspect_text"]

NETX_SUFFIXES = (".net",)

#: layer types lava-dl 0.6.0's reader cannot build as CUBA networks (it raises NotImplementedError for most)
NETX_UNSUPPORTED = ("pool", "convT", "unpool", "average", "concat", "dense_comp")

#: netx's default neuron for a layer without a ``neuron`` group (``hdf5.py`` ``create_dense``): a non-leaky
#: integrator; ``'vThMant': 1 << 18 - 1`` is 1 << 17 by Python's precedence.
NETX_DEFAULT_NEURON = {"type": "CUBA", "iDecay": 0, "vDecay": 4096, "vThMant": 1 << 17}

#: netx fixes the bias exponent of every CUBA neuron (``hdf5.py`` ``get_neuron_params``).
NETX_BIAS_EXP = 6

#: datasets larger than this many elements are refused before they are read (a bad or hostile file)
MAX_DATASET_ELEMENTS = 2 ** 28


class NetxImportError(ToolchainError):
    """A netx file that cannot be read or represented exactly."""


def is_netx_file(path: Union[str, os.PathLike]) -> bool:
    """True for a path that names a netx file (``.net`` suffix)."""
    return Path(path).suffix.lower() in NETX_SUFFIXES


@dataclass
class _Layer:
    """What the reader built so far: the group name, its (W, H, C) or (n,) shape."""

    name: str
    shape: Tuple[int, ...]


@dataclass
class _Reader:
    path: str
    reset_interval: Optional[int]
    reset_offset: int
    groups: List[NeuronGroup] = field(default_factory=list)
    synapses: List[SynapseGroup] = field(default_factory=list)
    inputs: List[InputPort] = field(default_factory=list)
    table: List[Dict[str, Any]] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    simulation: Dict[str, Any] = field(default_factory=dict)
    spike_exp: int = 6

    def err(self, msg: str, layer: Optional[int] = None, fld: Optional[str] = None) -> NetxImportError:
        return NetxImportError(msg, file=self.path, node=None if layer is None else f"layer/{layer}", field=fld)


def _read(r: _Reader, grp: Any, key: str, i: int, as_int: bool = False) -> np.ndarray:
    """Read dataset ``key`` of layer ``i`` (sizes checked before reading); ``as_int``: truncate toward zero as
    netx's ``NetDict`` does for weights and biases (``.astype(int)``), refusing non-finite values."""
    import h5py
    obj = grp.get(key)
    if obj is None:
        raise r.err("missing", i, key)
    if not isinstance(obj, h5py.Dataset):
        raise r.err("is a group, expected a dataset", i, key)
    try:
        size = int(np.prod(obj.shape)) if obj.shape else 1
        if size > MAX_DATASET_ELEMENTS:
            raise r.err(f"has {size} elements, more than the {MAX_DATASET_ELEMENTS} this reader accepts", i, key)
        val = obj[()]
    except (OSError, RuntimeError, ValueError, TypeError) as exc:  # h5py on a damaged dataset
        raise r.err(f"cannot be read (damaged file?): {type(exc).__name__}: {exc}", i, key) from None
    if isinstance(val, (bytes, np.bytes_)):
        raise r.err("holds text, expected numbers", i, key)
    arr = np.asarray(val)
    if arr.dtype.kind not in "biuf":
        raise r.err(f"holds {arr.dtype}, expected numbers", i, key)
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise r.err("holds non-finite values", i, key)
    return arr.astype(np.int64) if as_int else arr


#: a layer with more neurons than this is refused before anything is allocated (Loihi 2 systems hold ~1e9)
MAX_LAYER_NEURONS = 2 ** 27


def _shape(r: _Reader, grp: Any, i: int) -> Tuple[int, ...]:
    """A layer's ``shape`` in netx's stored order, reversed to ours ((W, H, C) for grids): positive integers
    whose product stays below :data:`MAX_LAYER_NEURONS`."""
    v = _read(r, grp, "shape", i).reshape(-1)
    if v.size == 0 or v.size > 3 or not np.all(np.equal(np.mod(v, 1), 0)) or v.min() < 1:
        raise r.err(f"must be 1 to 3 positive integers, got {v.tolist()}", i, "shape")
    shape = tuple(int(s) for s in v[::-1])
    if int(np.prod(np.asarray(shape, np.float64))) > MAX_LAYER_NEURONS:
        raise r.err(f"{shape} holds more than {MAX_LAYER_NEURONS} neurons", i, "shape")
    return shape


def _text(r: _Reader, grp: Any, key: str, i: int) -> str:
    import h5py
    obj = grp.get(key)
    if obj is None:
        raise r.err("missing", i, key)
    if not isinstance(obj, h5py.Dataset):
        raise r.err("is not a dataset", i, key)
    try:
        val = obj[()]
    except (OSError, RuntimeError, ValueError, TypeError) as exc:  # h5py on a damaged dataset
        raise r.err(f"cannot be read (damaged file?): {type(exc).__name__}: {exc}", i, key) from None
    if isinstance(val, np.ndarray):
        if val.size == 0:
            raise r.err("is empty", i, key)
        val = val.reshape(-1)[0]
    if isinstance(val, (bytes, np.bytes_)):
        return val.decode("ascii", errors="replace")
    if isinstance(val, str):
        return val
    raise r.err(f"expected text, got {type(val).__name__}", i, key)


def _per_neuron(r: _Reader, val: np.ndarray, shape: Tuple[int, ...], i: int, fld: str) -> np.ndarray:
    """A neuron parameter as one value per neuron (flattened (W, H, C) C order): a scalar, one per channel (the
    last axis, as numpy broadcasts it in Lava's LIF), or one per neuron."""
    n = int(np.prod(shape))
    v = np.asarray(val).reshape(-1)
    if v.size == 1:
        return np.full(n, v[0])
    if v.size == n:
        return v.copy()
    if len(shape) > 1 and v.size == shape[-1]:
        return np.broadcast_to(v, shape).reshape(-1).copy()
    raise r.err(f"has {v.size} values; expected 1, {shape[-1]} (per channel) or {n} (per neuron) for layer "
                f"shape {shape}", i, fld)


#: lava-dl's SDNN defaults (``hdf5.py`` L168-188): 16 message bits, ``state_exp`` 6; ``spike_exp`` is the
#: ``Network`` argument (default 6)
NETX_SDNN_MESSAGE_BITS = 16
NETX_SDNN_STATE_EXP = 6
NETX_SDNN_SPIKE_EXP = 6


def _sdnn_neuron(r: _Reader, ng: Any, i: int, name: str, shape: Tuple[int, ...], bias: Optional[np.ndarray],
                 is_input: bool) -> NeuronGroup:
    """The Delta / Sigma / SigmaDelta group lava-dl builds for an SDNN neuron group (module docstring)."""
    from ..program import sigma_delta_group
    mb = NETX_SDNN_MESSAGE_BITS
    if "messageBits" in ng:
        v = _read(r, ng, "messageBits", i).reshape(-1)
        if v.size != 1 or v[0] != int(v[0]) or not 1 <= int(v[0]) <= 24:
            raise r.err(f"must be one integer in [1, 24] for SDNN neurons, got {v.tolist()}", i,
                        "neuron/messageBits")
        mb = int(v[0])
    sigma = "sigma_output" in ng and not is_input
    if sigma:
        if bias is not None and np.any(bias):
            raise r.err("a sigma_output layer with a bias: lava-dl 0.6.0 passes it to Lava's Sigma, which takes none",
                        i, "bias")
        r.notes.append(f"layer/{i}: SDNN sigma_output: Lava Sigma (payload = sigma)")
        return sigma_delta_group(name, shape, "sigma", num_message_bits=mb, source=f"layer/{i}")
    vth = _read(r, ng, "vThMant", i).reshape(-1)
    if vth.size != 1:
        raise r.err(f"{vth.size} values: Lava's sdn processes hold one threshold (lava-dl cannot build a per-neuron "
                    "one)", i, "neuron/vThMant")
    if vth[0] != int(vth[0]) or vth[0] < 0:
        raise r.err(f"must be a non-negative integer, got {vth[0]}", i, "neuron/vThMant")
    se, st = r.spike_exp, NETX_SDNN_STATE_EXP
    lim = (2 ** 31 - 1) >> (se + st)
    if int(vth[0]) > lim:
        raise r.err(f"{int(vth[0])} << {se + st} leaves Lava's int32 threshold (at most {lim})", i, "neuron/vThMant")
    if is_input:
        return sigma_delta_group(name, shape, "delta", vth=int(vth[0]), spike_exp=se, state_exp=st,
                                 num_message_bits=mb, source=f"layer/{i}")
    b = np.zeros(int(np.prod(shape)), np.int64) if bias is None else _per_neuron(r, bias, shape, i, "bias")
    if b.size and np.abs(b).max() > lim:
        raise r.err(f"|bias| up to {np.abs(b).max()}: bias << {se + st} leaves Lava's int32 (at most {lim})", i,
                    "bias")
    return sigma_delta_group(name, shape, "sigma_delta", vth=int(vth[0]), bias=b, spike_exp=se, state_exp=st,
                             num_message_bits=mb, source=f"layer/{i}")


def _neuron(r: _Reader, lay: Any, i: int, name: str, shape: Tuple[int, ...], bias: Optional[np.ndarray],
            k: int, is_input: bool = False) -> NeuronGroup:
    """The CUBA LIF group netx builds for layer ``i`` (the ``k``-th layer built, for the reset offset), or the
    sigma-delta group of an SDNN neuron (:func:`_sdnn_neuron`)."""
    import h5py
    ng = lay.get("neuron")
    if ng is None:
        cfg: Dict[str, Any] = dict(NETX_DEFAULT_NEURON)
        r.notes.append(f"layer/{i}: no neuron group, netx's default integrator (iDecay 0, vDecay 4096, "
                       "vThMant 2^17)")
    else:
        if not isinstance(ng, h5py.Group):
            raise r.err("is not a group", i, "neuron")
        ntype = _text(r, ng, "type", i)
        if ntype == "SDNN":
            return _sdnn_neuron(r, ng, i, name, shape, bias, is_input)
        if ntype not in ("LOIHI", "CUBA"):
            raise r.err(f"neuron type {ntype!r} is not supported (CUBA/LOIHI LIF or SDNN only)", i, "neuron/type")
        if "messageBits" in ng and np.any(_read(r, ng, "messageBits", i) != 0):
            raise r.err("graded output spikes of CUBA neurons are not supported", i, "neuron/messageBits")
        cfg = {key: _read(r, ng, key, i) for key in ("iDecay", "vDecay", "vThMant")}
    n = int(np.prod(shape))
    fields = {}
    for key, lo, hi in (("iDecay", 0, 4096), ("vDecay", 0, 4096), ("vThMant", 0, None)):
        v = _per_neuron(r, np.asarray(cfg[key]), shape, i, f"neuron/{key}")
        if not np.all(np.equal(np.mod(v, 1), 0)):
            raise r.err("must hold integers", i, f"neuron/{key}")
        v = v.astype(np.int64)
        if v.min() < lo or (hi is not None and v.max() > hi):
            raise r.err(f"values [{v.min()}, {v.max()}] outside [{lo}, {hi if hi is not None else 'inf'}]", i,
                        f"neuron/{key}")
        fields[key] = v
    # vth >= 2^17 can never be crossed (v saturates at 2^23 - 1 < vth << 6): all such values act alike
    vth = np.minimum(fields["vThMant"], 1 << 17)
    if bias is None:
        bias_mant = np.zeros(n, np.int64)
    else:
        bias_mant = _per_neuron(r, bias, shape, i, "bias")
        if bias_mant.min() < -4096 or bias_mant.max() > 4095:
            raise r.err(f"values [{bias_mant.min()}, {bias_mant.max()}] outside Lava's 13-bit bias_mant "
                        "[-4096, 4095]", i, "bias")
    ri = 0 if r.reset_interval is None else int(r.reset_interval)
    return NeuronGroup(name, shape, du=fields["iDecay"] - 1, dv=fields["vDecay"], vth=vth, bias_mant=bias_mant,
                       bias_exp=NETX_BIAS_EXP, reset_mode="zero", spiking=True, source=f"layer/{i}",
                       reset_interval=ri, reset_offset=(r.reset_offset + 1 + k) if ri else 0)


def _delay_matrix(r: _Reader, delay: np.ndarray, n_out: int, n_in: int, i: int) -> np.ndarray:
    """netx's delay forms (``hdf5.py`` ``create_dense``): scalar, per output neuron, per input, or per synapse;
    clamped to [0, 62] with a warning as netx does."""
    d = np.asarray(delay)
    if not np.all(np.equal(np.mod(d, 1), 0)):
        raise r.err("must hold integers", i, "delay")
    d = d.astype(np.int64)
    if d.size and d.min() < 0:
        raise r.err(f"negative delay {d.min()}", i, "delay")
    if d.size and d.max() > 62:
        warnings.warn(f"{r.path}: layer/{i}: delays up to {d.max()} clamped to 62 (as netx does)", stacklevel=3)
        d = np.clip(d, 0, 62)
    if d.ndim == 0 or d.size == 1:
        return np.full((n_out, n_in), int(d.reshape(-1)[0]), np.int64)
    if d.ndim == 1:
        if d.size == n_out:
            return np.repeat(d.reshape(-1, 1), n_in, axis=1)
        if d.size == n_in:
            return np.repeat(d.reshape(1, -1), n_out, axis=0)
        raise r.err(f"{d.size} delays fit neither the {n_out} neurons nor the {n_in} inputs", i, "delay")
    if d.shape == (n_out, n_in):
        return d
    raise r.err(f"shape {d.shape} does not match the weight shape {(n_out, n_in)}", i, "delay")


def _dense_synapses(r: _Reader, name: str, src: str, dst: str, w: np.ndarray, nwb: int, exp: int,
                    delays: Optional[np.ndarray], sparse: bool, recurrent: bool, i: int) -> List[SynapseGroup]:
    """One synapse group per distinct delay (weights where that delay applies, zeros elsewhere)."""
    from ..backends.netx import lava_sign_mode
    sign = lava_sign_mode(w)
    if sign != "mixed" and nwb > 8:
        raise r.err(f"netx gives num_weight_bits {nwb} to weights Lava's Dense treats as {sign}: a truncation by "
                    f"{8 - nwb} bits, undefined in Lava (lava-dl's result is not defined)", i, "weight")
    # Lava clips to the sign mode's range before it truncates; storing the clipped matrix changes nothing
    from ..fixedpoint import weight_range
    lo, hi = weight_range(sign)
    wc = np.clip(w, lo, hi)

    def storage(m: np.ndarray, mask: Optional[np.ndarray] = None) -> Any:
        if mask is not None:
            return Csr.from_dense(np.where(mask, m, 0), mask=mask)
        return Csr.from_dense(m, mask=np.ones(m.shape, bool)) if sparse else Dense(m)

    if delays is None:
        return [SynapseGroup(name, src, dst, storage(wc), weight_exp=exp, num_weight_bits=nwb, sign_mode=sign,
                             recurrent=recurrent)]
    out = []
    values = np.unique(delays)
    for d in values:
        mask = delays == d
        nm = name if len(values) == 1 else f"{name}_d{int(d)}"
        st = storage(wc) if len(values) == 1 else storage(wc, mask)
        out.append(SynapseGroup(nm, src, dst, st, weight_exp=exp, num_weight_bits=nwb, sign_mode=sign,
                                delay=int(d), recurrent=recurrent))
    return out


def load_netx(path: Union[str, os.PathLike], reset_interval: Optional[int] = None, reset_offset: int = 0,
              input_message_bits: int = 0, sparse_fc_layer: bool = False, target: str = "loihi2",
              spike_exp: int = NETX_SDNN_SPIKE_EXP) -> Program:
    """Read a netx ``.net`` file into a Program (unpartitioned; :func:`compile_netx` places it on cores).

    ``reset_interval``, ``reset_offset``, ``input_message_bits``, ``sparse_fc_layer``, ``spike_exp``: the arguments of
    lava-dl's ``netx.hdf5.Network`` of the same names (the file does not hold them). Returns a Program whose
    ``metadata["netx"]`` holds the layer table (``layers``), the file's ``simulation`` group and notes.
    Raises :class:`NetxImportError` naming the file, the layer and the field.
    """
    import h5py
    p = os.fspath(path)
    if not os.path.exists(p):
        raise NetxImportError("no such file", file=p)
    if os.path.isdir(p):
        raise NetxImportError("is a directory, expected a netx .net file", file=p)
    if reset_interval is not None and int(reset_interval) < 1:
        raise NetxImportError(f"reset_interval must be >= 1 (or None), got {reset_interval}", file=p,
                              field="reset_interval")
    if not 0 <= int(input_message_bits) <= 24:
        raise NetxImportError(f"input_message_bits must be in [0, 24], got {input_message_bits}", file=p,
                              field="input_message_bits")
    try:
        fh = h5py.File(p, "r")
    except OSError as exc:
        raise NetxImportError(f"not a netx (HDF5) file: {exc}", file=p) from None
    if not 0 <= int(spike_exp) <= 7:
        raise NetxImportError(f"spike_exp must be in [0, 7], got {spike_exp}", file=p, field="spike_exp")
    r = _Reader(p, None if reset_interval is None else int(reset_interval), int(reset_offset),
                spike_exp=int(spike_exp))
    try:
        _read_file(fh, r, int(input_message_bits), bool(sparse_fc_layer))
    except (OSError, RuntimeError, KeyError) as exc:  # h5py on a damaged file (truncated, flipped bytes)
        raise NetxImportError(f"damaged HDF5 file, cannot be read: {type(exc).__name__}: {exc}", file=p) from None
    if not r.groups:
        raise NetxImportError("the file has no layer with neurons", file=p, field="layer")
    sim = r.simulation
    meta = {"source_format": "netx", "file": p,
            "netx": {"layers": r.table, "simulation": sim, "reset_interval": r.reset_interval,
                     "reset_offset": r.reset_offset, "input_message_bits": int(input_message_bits),
                     "sparse_fc_layer": bool(sparse_fc_layer), "spike_exp": r.spike_exp,
                     "notes": r.notes}}
    try:
        return Program(r.groups, r.synapses, r.inputs, r.groups[-1].name, target=target, metadata=meta)
    except ToolchainError as exc:
        raise NetxImportError(exc.message, file=p, node=exc.node, field=exc.field) from None


def _read_file(fh: Any, r: "_Reader", input_message_bits: int, sparse_fc_layer: bool) -> None:
    """The layers and the ``simulation`` group of an open netx file into ``r``."""
    import h5py
    p = r.path
    with fh:
        layers = fh.get("layer")
        if not isinstance(layers, h5py.Group) or len(layers) == 0:
            raise NetxImportError("no 'layer' group with layers: not a netx network", file=p, field="layer")
        keys = list(layers.keys())
        if sorted(keys, key=lambda s: (len(s), s)) != [str(j) for j in range(len(keys))]:
            raise NetxImportError(f"layers must be named 0..{len(keys) - 1}, got {sorted(keys)[:5]}...", file=p,
                                  field="layer")
        if isinstance(fh.get("simulation"), h5py.Group):
            for key, ds in fh["simulation"].items():
                if isinstance(ds, h5py.Dataset) and ds.size == 1 and ds.dtype.kind in "biuf":
                    r.simulation[key] = np.asarray(ds[()]).reshape(-1)[0].item()
        try:
            _build(r, layers, input_message_bits, sparse_fc_layer)
        except NetxImportError:
            raise
        except ToolchainError as exc:  # a field the Program itself refuses: keep the file's name
            raise NetxImportError(exc.message, file=p, node=exc.node, field=exc.field) from None


def _build(r: _Reader, layers: Any, input_message_bits: int, sparse_fc_layer: bool) -> None:
    """Follow ``Network._create`` layer by layer."""
    import h5py
    from ..backends.netx import flatten_perm, netx_optimize_weight_bits
    prev: Optional[_Layer] = None          # the last layer built (a group)
    in_shape: Optional[Tuple[int, ...]] = None
    flatten_next = False
    k = 0                                  # layers built (reset offsets)
    for i in range(len(layers)):
        lay = layers[str(i)]
        if not isinstance(lay, h5py.Group):
            raise r.err("is not a group", i)
        ltype = _text(r, lay, "type", i)
        if ltype in NETX_UNSUPPORTED:
            raise r.err(f"layer type {ltype!r} is not supported (lava-dl 0.6.0's reader cannot build it as a CUBA "
                        "network either)", i, "type")
        if ltype == "input":
            if "shape" in lay:
                in_shape = _shape(r, lay, i)
            if "neuron" in lay:
                if in_shape is None:
                    raise r.err("an input layer with neurons needs a shape", i, "shape")
                if prev is not None:
                    raise r.err("an input layer after other layers", i, "type")
                g = _neuron(r, lay, i, f"input{i}", in_shape, None, k, is_input=True)
                r.groups.append(g)
                if g.sdn is not None:  # the SDNN encoder (Delta), fed frame by frame (module docstring)
                    n_in = g.size
                    r.inputs.append(InputPort("input", in_shape, input_message_bits or NETX_SDNN_MESSAGE_BITS))
                    r.synapses.append(SynapseGroup(f"w{i}", "input", g.name, Csr.from_dense(
                        np.eye(n_in, dtype=np.int64)), sign_mode="excitatory"))
                    r.notes.append(f"layer/{i}: SDNN input layer: a Delta encoder fed frame by frame through an "
                                   "identity synapse (lava-dl builds it unconnected: run lava-dl with "
                                   "skip_layers=1 and feed it the encoder's payloads)")
                else:
                    r.inputs.append(InputPort("input", in_shape, kind="bias", target=g.name))
                prev = _Layer(g.name, in_shape)
                k += 1
                r.table.append({"layer": i, "type": "input", "group": g.name, "shape": list(in_shape),
                                "neurons": g.size, "synapses": 0})
            continue
        if ltype == "flatten":
            flatten_next = True
            continue
        if ltype == "conv":
            shape = _shape(r, lay, i)
            src_shape = prev.shape if prev is not None else in_shape
            if src_shape is None:
                raise r.err("input shape could not be inferred (no input layer with a shape before the first "
                            "conv layer)", i, "shape")
            if len(src_shape) != 3 or len(shape) != 3:
                raise r.err(f"conv between {src_shape} and {shape}: both must be (W, H, C) grids", i, "shape")
            wt = _read(r, lay, "weight", i, as_int=True)
            if wt.ndim < 4 or any(int(s) != 1 for s in wt.shape[4:]):
                raise r.err(f"conv weight of shape {wt.shape}, expected (C_out, C_in/groups, KH, KW)", i, "weight")
            kern = wt.reshape(wt.shape[:4])

            def ints(key: str, default: int, n: Tuple[int, ...] = (1, 2), lo: int = 0) -> Tuple[int, ...]:
                if key not in lay:
                    return (default, default)
                v = _read(r, lay, key, i).reshape(-1)
                if v.size not in n or not np.all(np.equal(np.mod(v, 1), 0)) or v.min() < lo or v.max() > 2 ** 16:
                    raise r.err(f"must be {' or '.join(map(str, n))} integer(s) in [{lo}, 65536], got {v.tolist()}",
                                i, key)
                v = v.astype(np.int64)
                return (int(v[0]), int(v[-1]))

            stride, padding, dilation = ints("stride", 1, lo=1), ints("padding", 0), ints("dilation", 1, lo=1)
            groups = ints("groups", 1, (1,), lo=1)[0]
            if kern.min(initial=0) < -256 or kern.max(initial=0) > 255:
                raise r.err(f"kernel values [{kern.min()}, {kern.max()}] outside [-256, 255]: Lava's Conv would use "
                            "them unclipped, this toolchain's synapses hold 9-bit signed weights", i, "weight")
            per_out = np.abs(kern).reshape(kern.shape[0], -1).sum(axis=1)
            if per_out.max(initial=0) >= 2 ** 23:
                raise r.err("a kernel whose sums can reach Lava Conv's 24-bit output clamp", i, "weight")
            if groups < 1 or kern.shape[0] % groups or src_shape[2] != kern.shape[1] * groups:
                raise r.err(f"kernel {kern.shape} with groups={groups} does not take the {src_shape[2]} input "
                            "channels", i, "weight")
            hw = conv_output_hw((src_shape[1], src_shape[0]), kern.shape[2:], stride, padding, dilation)
            if (hw[1], hw[0], kern.shape[0]) != shape:
                raise r.err(f"the convolution gives (W, H, C) = {(hw[1], hw[0], kern.shape[0])}, the layer says "
                            f"{shape}", i, "shape")
            bias = _read(r, lay, "bias", i, as_int=True) if "bias" in lay else None
            g = _neuron(r, lay, i, f"conv{i}", shape, bias, k)
            src = prev.name if prev is not None else _spike_port(r, src_shape, input_message_bits)
            w = Conv(src_shape, shape, kern, stride, padding, dilation, groups)
            r.groups.append(g)
            r.synapses.append(SynapseGroup(f"w{i}", src, g.name, w, weight_exp=0, num_weight_bits=9,
                                           sign_mode="mixed"))
            prev = _Layer(g.name, shape)
            k += 1
            flatten_next = False
            r.table.append({"layer": i, "type": "conv", "group": g.name, "shape": list(shape), "neurons": g.size,
                            "synapses": w.nnz, "kernel": list(kern.shape), "stride": list(stride),
                            "padding": list(padding), "dilation": list(dilation), "groups": groups})
            continue
        if ltype in ("dense", "dense_rec"):
            rec = ltype == "dense_rec"
            n_out = int(np.prod(_shape(r, lay, i)))
            w = _read(r, lay, "weight", i, as_int=True)
            if w.ndim == 1:
                w = w.reshape(n_out, -1) if n_out and w.size % n_out == 0 else w
            if w.ndim != 2 or w.shape[0] != n_out:
                raise r.err(f"weight of shape {w.shape} does not give {n_out} neurons", i, "weight")
            n_in = w.shape[1]
            if prev is not None:
                src, src_shape = prev.name, prev.shape
            else:
                src_shape = in_shape if in_shape is not None and int(np.prod(in_shape)) == n_in else (n_in,)
                src = _spike_port(r, src_shape, input_message_bits)
            if int(np.prod(src_shape)) != n_in:
                raise r.err(f"weight takes {n_in} inputs, the previous layer has {int(np.prod(src_shape))}", i,
                            "weight")
            if len(src_shape) > 1 and prev is not None:
                if not flatten_next:
                    raise r.err(f"a dense layer after the {src_shape} grid of '{prev.name}' needs a flatten layer "
                                "in between", i, "type")
                w = w[:, flatten_perm(src_shape)]
            elif len(src_shape) > 1:  # the input port is fed flat in netx's (C, H, W) order: keep it flat
                r.inputs[-1] = InputPort("input", (n_in,), input_message_bits)
            flatten_next = False
            wr = None
            if rec:
                wr = _read(r, lay, "weight_rec", i, as_int=True)
                if wr.ndim == 1 and wr.size == n_out * n_out:
                    wr = wr.reshape(n_out, n_out)
                if wr.shape != (n_out, n_out):
                    raise r.err(f"recurrent weight of shape {wr.shape}, expected {(n_out, n_out)}", i,
                                "weight_rec")
            both = np.hstack([w, wr]) if rec else w
            if not np.any(both):
                raise r.err("all weights are zero (netx's optimize_weight_bits divides by the largest weight)", i,
                            "weight")
            try:
                shifted, nwb, exp = netx_optimize_weight_bits(both)
            except ValueError as exc:
                raise r.err(str(exc), i, "weight") from None
            if not 1 <= nwb <= 8:
                raise r.err(f"netx's optimize_weight_bits gives num_weight_bits {nwb}, outside Lava's [1, 8]", i,
                            "weight")
            delays = None
            if "delay" in lay:
                delays = _delay_matrix(r, _read(r, lay, "delay", i), n_out, n_in, i)
                if rec:
                    r.notes.append(f"layer/{i}: delayed dense_rec: lava-dl 0.6.0 passes no weight exponent to its "
                                   f"DelayDense pair, so weight_exp is 0 (not {exp}) — reproduced")
                    warnings.warn(f"{r.path}: layer/{i}: delayed dense_rec runs with weight exponent 0 in lava-dl "
                                  f"0.6.0 (the file's weights are scaled by 2^{-exp}); reproduced as is",
                                  stacklevel=2)
                    exp = 0
            bias = _read(r, lay, "bias", i, as_int=True) if "bias" in lay else None
            g = _neuron(r, lay, i, f"dense{i}", (n_out,), bias, k)
            r.groups.append(g)
            r.synapses.extend(_dense_synapses(r, f"w{i}", src, g.name, shifted[:, :n_in], nwb, exp, delays,
                                              sparse_fc_layer, False, i))
            n_syn = n_out * n_in
            if rec:
                rec_delays = None if delays is None else _rec_delays(r, delays, n_out, i)
                r.synapses.extend(_dense_synapses(r, f"w{i}_rec", g.name, g.name, shifted[:, n_in:], nwb, exp,
                                                  rec_delays, sparse_fc_layer, True, i))
                n_syn += n_out * n_out
            prev = _Layer(g.name, (n_out,))
            k += 1
            r.table.append({"layer": i, "type": ltype, "group": g.name, "shape": [n_out], "neurons": n_out,
                            "synapses": n_syn, "weight_exp": exp, "num_weight_bits": nwb,
                            "delay": None if delays is None else [int(delays.min()), int(delays.max())]})
            continue
        raise r.err(f"unknown layer type {ltype!r}", i, "type")


def _rec_delays(r: _Reader, delays: np.ndarray, n_out: int, i: int) -> np.ndarray:
    """lava-dl builds the recurrent DelayDense with the *same* delay matrix as the feed-forward one
    (``RecurrentDense``: ``delays=delay.astype(int)``), which only fits when it is square (n_in == n_out)."""
    if delays.shape != (n_out, n_out):
        raise r.err(f"a delayed dense_rec uses its delay matrix {delays.shape} for the recurrent synapses too "
                    f"(lava-dl 0.6.0), which needs n_in == n_out == {n_out}", i, "delay")
    return delays


def _spike_port(r: _Reader, shape: Tuple[int, ...], input_message_bits: int) -> str:
    """The spike input port (created once)."""
    if not r.inputs:
        r.inputs.append(InputPort("input", tuple(shape), input_message_bits))
    return r.inputs[0].name


def format_netx_layers(program: Program) -> str:
    """The netx file's layers as read: type, group, shape, neurons, synapses, weight exponent/bits, delays."""
    rows = [("layer", "type", "group", "shape", "neurons", "synapses", "w exp/bits", "delay")]
    for d in program.metadata.get("netx", {}).get("layers", []):
        wb = (f"{d['weight_exp']}/{d['num_weight_bits']}" if "weight_exp" in d
              else "0/9 (conv)" if d["type"] == "conv" else "-")
        rows.append((str(d["layer"]), d["type"], d["group"], "x".join(map(str, d["shape"])), str(d["neurons"]),
                     str(d["synapses"]), wb, "-" if not d.get("delay") else "{}..{}".format(*d["delay"])))
    return "\n".join(table_lines(rows))


def netx_inspect_text(path: Union[str, os.PathLike], reset_interval: Optional[int] = None) -> str:
    """What ``snnc inspect`` prints for a netx file: the chain, the layer table, neuron parameter ranges per
    group, the input and the reader's notes."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        prog = load_netx(path, reset_interval=reset_interval)
    port = prog.inputs[0]
    inp = (f"input '{port.name}': {'x'.join(map(str, port.shape))} "
           + ("bias mantissas of the input layer (one frame per sample, as lava-dl's PilotNet test feeds it)"
              if port.kind == "bias" else
              f"{'binary' if not port.num_message_bits else f'{port.num_message_bits}-bit'} spikes per step"))
    chain = " -> ".join([f"in {port.size}"] + [f"{g.size}{' (recurrent)' if any(s.src == s.dst == g.name for s in prog.synapses) else ''}"
                                               for g in prog.groups.values()])

    def rng(a: np.ndarray) -> str:
        lo, hi = int(np.min(a)), int(np.max(a))
        return str(lo) if lo == hi else f"{lo}..{hi}"

    params = [f"  {g.name:8s} du {rng(g.du)}  dv {rng(g.dv)}  vth {rng(g.vth)}  bias {rng(g.bias_mant)}<<"
              f"{rng(g.bias_exp)}" + (f"  reset every {g.reset_interval} (offset {g.reset_offset})"
                                      if g.reset_interval else "") if g.sdn is None else
              f"  {g.name:8s} SDNN {g.sdn.kind}  vth {rng(g.sdn.vth)}  bias {rng(g.sdn.bias)}  spike_exp "
              f"{g.sdn.spike_exp}  state_exp {g.sdn.state_exp}  {g.sdn.num_message_bits}-bit messages"
              for g in prog.groups.values()]
    notes = list(prog.metadata["netx"]["notes"]) + [str(w.message) for w in caught]
    sim = prog.metadata["netx"]["simulation"]
    return "\n".join([f"file: {os.fspath(path)} (lava-dl netx, already integer: nothing is re-quantised)",
                      f"network: {chain}", inp, f"neurons {prog.neuron_count}, synapses {prog.synapse_count}"
                      + (f", simulation {sim}" if sim else ""), "", format_netx_layers(prog), "",
                      "neuron parameters (Lava LIF fields):", *params, "",
                      f"notes ({len(notes)}):" if notes else "notes: none", *[f"  - {n}" for n in notes]])
