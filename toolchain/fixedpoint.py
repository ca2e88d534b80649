"""Lava 0.10.0 ``fixed_pt`` arithmetic, written down as pure numpy functions (the integer contract).

Every function here mirrors a named piece of the installed Lava source (paths relative to
``site-packages/lava/``; line numbers are those of lava-nc 0.10.0) and reproduces its numpy dtype flow, so that
wrap-around happens exactly where Lava's does. The reference simulator (:mod:`toolchain.sim.reference`), its torch
backend (:mod:`toolchain.sim.torch_backend`, also the engine of :class:`toolchain.nn.IntegerNet` and of the
fake-quantised model), and the quantiser call these rules; the LIF update is one definition, generic over numpy
arrays and torch tensors (:func:`lif_subthreshold`, :func:`lif_fire`; the reference simulator's float path runs
it with in-place primitives on its own buffers). ``tests/test_fixedpoint.py`` runs Lava's own process models
against these functions.

Fields, as Lava's bit-accurate models hold and compute them
-----------------------------------------------------------

=====================  ===========  ===========  ==========================  ===================================
field                  container    value bits   rounding                    overflow
=====================  ===========  ===========  ==========================  ===================================
weight (as given)      int16/int32  9 signed     —                           clipped to the sign mode's 8-bit
                                                                             range (clip_weights)
weight (used)          int32        num_weight_  truncated ``(w>>n)<<n``,    —
                                    bits (+sign)  n = 8-num_weight_bits+mixed
                                                  (floor; magnitude for
                                                  inhibitory)
weight_exp             python int   signed       right shift = floor         left shift wraps at 64 bits
                                                  (arithmetic shift)          (binary) / 32 bits (graded)
a_accum binary         int64        —            exact                       none in practice
a_accum graded         int32        —            exact                       wraps modulo 2^32 (int32 dot)
a_out / a_buff         int32        "16"         —                           wraps modulo 2^32 when written
                                                                             into the int32 channel; the 16-bit
                                                                             precision is *not* enforced
a_in (LIF input)       int32        "16"         —                           sum of all incoming a_out, wraps
                                                                             modulo 2^32; the int16 declared
                                                                             type is *not* applied
a_in << 6              int32        —            —                           wraps modulo 2^32
du, dv                 uint16       12 unsigned  —                           —
u (current)            int32        24 signed    decay toward zero (rtz)     the "odd 24-bit wrap": one
                                                                             correction of ±2^24 if u > 2^23 or
                                                                             u <= -2^23 (u may equal +2^23)
v (voltage)            int32        24 signed    decay toward zero (rtz)     saturates to [-(2^23-1), 2^23-1];
                                                                             the sum before the clip wraps at 32
bias_mant              int16        13 signed    —                           —
bias_exp               int16        3 unsigned   —                           —
effective bias         int32        —            ``bias_mant << bias_exp``   — (not shifted by 6)
vth                    int32        17 unsigned  —                           —
effective threshold    int64        23           ``vth << 6``                — (read once, first step)
s_out (spike)          int32 0/1    1            strict ``v > vth << 6``     —
input (RingBuffer)     int32        0 or 1..24   —                           binary: any non-zero is a spike
=====================  ===========  ===========  ==========================  ===================================

Timing (``lava/proc/dense/models.py`` L93-96 and ``lava/proc/io/source.py`` L41-43): at every step a Dense first
sends the activation it accumulated in the *previous* step, then receives this step's spikes; a RingBuffer sends
column ``t`` of its data at (0-based) step ``t``. A spike emitted at step ``t`` therefore reaches the next LIF's
``u`` at step ``t + 1`` (``t + 1 + d`` through a DelayDense with delay ``d``).
"""
from __future__ import annotations

import sys
from typing import Any, Callable, List, Optional, Tuple, Union

import numpy as np

__all__ = [
    "U_V_BITS", "MAX_UV", "V_MIN", "V_MAX", "DECAY_SHIFT", "DECAY_UNITY", "ACT_SHIFT", "VTH_SHIFT",
    "SIGN_MODES", "wrap_int32", "truncation_bits", "weight_range", "lava_weights", "representable_weights",
    "is_representable", "shift_activation", "synaptic_input", "decay_rtz", "wrap_current", "effective_bias",
    "effective_threshold", "decay_factor", "lif_subthreshold", "lif_fire", "lif_update", "lif_step",
    "bias_onset_voltage", "bias_current_start",
]

#: u and v are 24-bit signed state variables (``lif/models.py`` L101-102).
U_V_BITS = 24
#: 2^23, Lava's ``max_uv_val``.
MAX_UV = 2 ** (U_V_BITS - 1)
#: Saturation limits of v (``lif/models.py`` L176-177, L186).
V_MIN = -MAX_UV + 1
V_MAX = MAX_UV - 1
#: Decays are 12-bit fractions of 2^12 (``lif/models.py`` L104-105).
DECAY_SHIFT = 12
DECAY_UNITY = 2 ** DECAY_SHIFT
#: Synaptic input and threshold are MSB-aligned by 6 bits (``lif/models.py`` L107-108).
ACT_SHIFT = 6
VTH_SHIFT = 6
#: Lava's ``ds_offset`` (added to du) and ``dm_offset`` (added to dv) (``lif/models.py`` L94-95).
DS_OFFSET = 1
DM_OFFSET = 0

SIGN_MODES = ("mixed", "excitatory", "inhibitory")

ArrayLike = Union[np.ndarray, int]


def wrap_int32(x: np.ndarray) -> np.ndarray:
    """Two's-complement wrap of an integer array into int32 (what numpy does when an int64 array is written
    into an int32 buffer, e.g. a Lava channel: ``compiler/channels/pypychannel.py`` L142)."""
    return np.asarray(x).astype(np.int64).astype(np.int32)


def _check_sign_mode(sign_mode: str) -> str:
    mode = getattr(sign_mode, "name", sign_mode)
    mode = str(mode).lower()
    if mode not in SIGN_MODES:
        raise ValueError(f"sign_mode must be one of {SIGN_MODES}, got {sign_mode!r}")
    return mode


def truncation_bits(num_weight_bits: int = 8, sign_mode: str = "mixed") -> int:
    """Number of low bits Lava zeroes: ``n = 8 - num_weight_bits + (sign_mode == mixed)``
    (``utils/weightutils.py`` L235-236). ``num_weight_bits = 9`` with mixed sign gives ``n = 0``: the weights in
    [-256, 255] are used as given — what Lava's ``Conv`` model does with a netx conv kernel (no clip, no
    truncation, ``proc/conv/models.py`` L71-79), expressed as a Dense/Sparse rule (checked against Lava's Dense
    with ``num_weight_bits=9`` in ``tests/test_netx_import.py``)."""
    mode = _check_sign_mode(sign_mode)
    nwb = int(num_weight_bits)
    if not 1 <= nwb <= 8 and not (nwb == 9 and mode == "mixed"):
        raise ValueError(f"num_weight_bits must be in [1, 8] (9 with mixed sign), got {num_weight_bits}")
    return 8 - nwb + int(mode == "mixed")


def weight_range(sign_mode: str = "mixed") -> Tuple[int, int]:
    """The clip range Lava applies before truncation (``utils/weightutils.py`` L277-290 with ``num_bits=8``):
    mixed [-256, 255], excitatory [0, 255], inhibitory [-255, 0]."""
    mode = _check_sign_mode(sign_mode)
    return {"mixed": (-256, 255), "excitatory": (0, 255), "inhibitory": (-255, 0)}[mode]


def lava_weights(w: np.ndarray, num_weight_bits: int = 8, sign_mode: str = "mixed") -> np.ndarray:
    """The int32 weights a bit-accurate Lava Dense/Sparse/DelayDense really uses.

    Mirrors ``proc/dense/models.py`` L82-91 (same in ``proc/sparse/models.py`` L82-91 and the DelayDense model
    L319-328): first ``clip_weights(w, sign_mode, num_bits=8)`` (``utils/weightutils.py`` L250-295: for the
    inhibitory mode the weights are negated, clipped to [0, 255] and negated back), then
    ``truncate_weights(w, sign_mode, num_weight_bits)`` (``utils/weightutils.py`` L204-247:
    ``(w >> n) << n`` with ``n`` from :func:`truncation_bits`, an arithmetic shift, i.e. rounding toward minus
    infinity for mixed-sign weights; on the negated values, i.e. toward zero, for inhibitory weights).
    Example: mixed-sign 8-bit weights lose their lowest bit (``-3 -> -4``, ``3 -> 2``).
    """
    mode = _check_sign_mode(sign_mode)
    n = truncation_bits(num_weight_bits, mode)
    lo, hi = weight_range(mode)
    w = np.asarray(w)
    if not np.issubdtype(w.dtype, np.integer):
        if not np.all(np.equal(np.mod(w, 1), 0)):
            raise ValueError("weights must hold integers")
    w = np.clip(w.astype(np.int64), lo, hi).astype(np.int32)
    if mode == "inhibitory":
        return -((-w >> n) << n)
    return (w >> n) << n


def representable_weights(num_weight_bits: int = 8, sign_mode: str = "mixed") -> np.ndarray:
    """All integer weights that :func:`lava_weights` leaves unchanged, sorted (int32).

    They are the multiples of ``2**n`` (:func:`truncation_bits`) inside :func:`weight_range`; e.g. mixed-sign
    8-bit: the even numbers in [-256, 254]; excitatory 8-bit: [0, 255]; inhibitory 8-bit: [-255, 0].
    """
    lo, hi = weight_range(sign_mode)
    cand = np.arange(lo, hi + 1, dtype=np.int64)
    return cand[lava_weights(cand, num_weight_bits, sign_mode) == cand].astype(np.int32)


def is_representable(w: np.ndarray, num_weight_bits: int = 8, sign_mode: str = "mixed") -> np.ndarray:
    """Boolean mask: True where ``w`` passes Lava's clip and truncation unchanged."""
    w = np.asarray(w)
    lo, hi = weight_range(sign_mode)
    step = 1 << truncation_bits(num_weight_bits, sign_mode)
    wi = np.round(w).astype(np.int64) if not np.issubdtype(w.dtype, np.integer) else w.astype(np.int64)
    return (wi == w) & (wi >= lo) & (wi <= hi) & (wi % step == 0)


def shift_activation(a_accum: np.ndarray, weight_exp: int) -> np.ndarray:
    """``a_accum << weight_exp`` if ``weight_exp > 0`` else ``a_accum >> -weight_exp`` (arithmetic right shift:
    rounds toward minus infinity, ``-3 >> 1 == -2``), in the dtype of ``a_accum``
    (``proc/dense/models.py`` L103-107)."""
    a = np.asarray(a_accum)
    e = int(weight_exp)
    return np.left_shift(a, e) if e > 0 else np.right_shift(a, -e)


def synaptic_input(weights: np.ndarray, spikes: np.ndarray, weight_exp: int = 0, graded: bool = False,
                   process: str = "dense") -> np.ndarray:
    """The int32 activation ``a_out`` one Lava synapse process emits for one step of input spikes.

    ``weights``: (n_out, n_in) integers as Lava uses them (the output of :func:`lava_weights`).
    ``spikes``: (..., n_in) — binary (``graded=False``: any non-zero entry is a spike, as Lava's
    ``s_in.recv().astype(bool)``) or graded payloads (``graded=True``, i.e. ``num_message_bits > 0``).
    Returns (..., n_out) int32.

    Binary (``proc/dense/models.py`` L101-102, ``proc/sparse/models.py`` L101-102): the selected columns are
    summed in int64 (numpy/scipy promote the int32 sum), shifted by ``weight_exp`` in int64
    (:func:`shift_activation`), then wrapped into the int32 ``a_out`` channel.
    Graded, ``process`` "dense" or "sparse" (``proc/dense/models.py`` L97-99, ``proc/sparse/models.py`` L97-99):
    ``weights.dot(s_in)`` is an int32 product, so the sum wraps modulo 2^32 *before* the shift.
    Graded, ``process`` "delay_dense" (``proc/dense/models.py`` L202-218): each product ``w * s`` is an int32
    (wraps), the sum is int64.
    Lava does not apply the declared 16-bit precision of ``a_out`` nor the int16 type of the LIF's ``a_in``
    (``magma/core/model/py/ports.py`` L346-351 adds int32 data to an int16 zero vector, giving int32).
    """
    w = np.asarray(weights).astype(np.int64)
    s = np.asarray(spikes)
    if not graded:
        acc = (s != 0).astype(np.int64) @ w.T
        return wrap_int32(shift_activation(acc, weight_exp))
    s64 = s.astype(np.int64)
    if process in ("dense", "sparse"):
        acc = wrap_int32(s64 @ w.T)
        return wrap_int32(shift_activation(acc, weight_exp))
    if process == "delay_dense":
        prod = wrap_int32(s64[..., None, :] * w).astype(np.int64)
        return wrap_int32(shift_activation(prod.sum(axis=-1), weight_exp))
    raise ValueError(f"process must be 'dense', 'sparse' or 'delay_dense', got {process!r}")


def decay_rtz(x: np.ndarray, decay: ArrayLike) -> np.ndarray:
    """``int32(sign(p) * (|p| >> 12))`` with ``p = int64(x) * (4096 - decay)``: multiply by the 12-bit fraction
    and round toward zero (``lif/models.py`` L149-153 for u with ``decay = du + 1``, L180-184 for v with
    ``decay = dv``)."""
    p = np.asarray(x).astype(np.int64) * (DECAY_UNITY - np.asarray(decay).astype(np.int64))
    return (np.sign(p) * np.right_shift(np.abs(p), DECAY_SHIFT)).astype(np.int32)


def wrap_current(x: np.ndarray) -> np.ndarray:
    """Lava's 24-bit "wrap" of the current, exactly as written (``lif/models.py`` L161-170)::

        w = x - 2^24 if x > 2^23 else x
        w = x + 2^24 if w <= -2^23 else w

    One correction only (not a modulo): ``+2^23`` is kept, ``-2^23`` becomes ``+2^23``, and a value beyond
    ``±3·2^23`` stays outside the 24-bit range. Input and output int32.
    """
    x = np.asarray(x, dtype=np.int32)
    w = np.where(x > MAX_UV, x - np.int32(2 * MAX_UV), x)
    return np.where(w <= -MAX_UV, x + np.int32(2 * MAX_UV), w).astype(np.int32)


def effective_bias(bias_mant: ArrayLike, bias_exp: ArrayLike) -> np.ndarray:
    """``int32(bias_mant) << bias_exp`` (``lif/models.py`` L110-122; a negative exponent would shift right, but
    bias_exp is 3-bit unsigned). Lava recomputes it at every step (L202). It is *not* shifted by 6."""
    m = np.asarray(bias_mant).astype(np.int32)
    e = np.asarray(bias_exp).astype(np.int16)
    return np.where(e >= 0, np.left_shift(m, np.maximum(e, 0)), np.right_shift(m, np.maximum(-e, 0))
                    ).astype(np.int32)


def effective_threshold(vth: ArrayLike) -> np.ndarray:
    """``vth << 6`` as int64 (``lif/models.py`` L268-274). Lava computes it once, on the first step
    (``isthrscaled``, L207-208): a threshold changed after the first step has no effect."""
    return np.left_shift(np.asarray(vth).astype(np.int64), VTH_SHIFT)


# ------------------------------------------------------------------------------------------ the LIF update
# The one definition of Lava's bit-accurate LIF update, generic over the array kind it runs on: numpy integer
# arrays (the int32 emulation of the reference simulator, :func:`lif_step`), the reference simulator's float path
# (in-place numpy primitives on its state buffers, ``toolchain.sim.reference._InPlaceOps``) and torch tensors
# holding exact integers, float64 or int64, on any device (the torch backend :mod:`toolchain.sim.torch_backend`,
# hence :class:`toolchain.nn.IntegerNet` and the fake-quantised model of :mod:`toolchain.nn.qat`). Each array kind
# only supplies the primitives of :class:`_NumpyOps` / :class:`_TorchOps` (multiply, add, truncation, int32 wrap,
# the 24-bit current wrap, clip, spike test and reset); the order of the operations and where each wrap happens is
# written once, in :func:`lif_subthreshold` and :func:`lif_fire`.
#
# The decay is written as ``trunc(x · f)`` with the float64 fraction ``f = (4096 - decay) / 4096``
# (:func:`decay_factor`). It equals :func:`decay_rtz` (Lava's ``sign(p) · (|p| >> 12)``, ``p = x · (4096 -
# decay)``) for every int32 ``x`` and ``decay`` in [0, 4096]: ``x · (4096 - decay)`` has at most 31 + 13 bits, so
# ``x · f`` (that product times the power of two 2^-12) is exact in float64's 53-bit significand, and ``trunc``
# rounds it toward zero exactly as the shift of the magnitude does (``tests/test_fixedpoint.py`` checks both on
# the edges of the range). Sums of at most three int32 values stay below 2^33, exact in float64 as well.

def decay_factor(decay: ArrayLike) -> np.ndarray:
    """``(4096 - decay) / 4096`` as float64: the multiplier of :func:`lif_subthreshold`'s decays (``decay = du +
    1`` for u, ``dv`` for v; 12 fractional bits, exact)."""
    return (DECAY_UNITY - np.asarray(decay, dtype=np.float64)) / float(DECAY_UNITY)


class _ArithOps:
    """Multiply and add (``None`` adds nothing): the same on numpy arrays and torch tensors."""

    @staticmethod
    def mul(x: Any, y: Any) -> Any:
        return x * y

    @staticmethod
    def add(x: Any, y: Any) -> Any:
        return x if y is None else x + y


class _NumpyOps(_ArithOps):
    """The primitives on numpy arrays: int32 results, Lava's numpy dtype flow (wraps by casting through int64)."""

    trunc = staticmethod(np.trunc)

    @staticmethod
    def wrap32(x: Any) -> np.ndarray:
        # float64 (exact integers below 2^53) or integer input: int64 is exact, int64 -> int32 wraps
        return np.asarray(x).astype(np.int64).astype(np.int32)

    @staticmethod
    def wrap_current(x: Any) -> np.ndarray:
        return wrap_current(x)

    @staticmethod
    def clip(x: Any, lo: int, hi: int) -> np.ndarray:
        return np.clip(x, lo, hi).astype(np.int32)

    @staticmethod
    def fire(v: Any, vth_eff: Any) -> np.ndarray:
        return np.asarray(v > vth_eff)

    @staticmethod
    def reset(v: Any, s: Any, vth_eff: Any, subtract: bool) -> np.ndarray:
        return np.where(s, v - vth_eff if subtract else 0, v).astype(np.int32)


class _TorchOps(_ArithOps):
    """The primitives on torch tensors holding exact integers (float64, or int64), on any device: results keep
    the input's dtype and device; spikes are 0/1 of ``v``'s dtype (so that a surrogate can stand in for them)."""

    _TWO31, _TWO32 = float(2 ** 31), float(2 ** 32)

    def __init__(self) -> None:
        import torch
        self.torch = torch
        self.trunc = torch.trunc

    def wrap32(self, x: Any) -> Any:
        if x.numel() == 0:
            return x
        if not x.is_cuda and float(x.max()) < self._TWO31 and float(x.min()) >= -self._TWO31:
            return x  # the common case on CPU, tested cheaply (on a GPU the test would synchronise: always wrap)
        if x.is_floating_point():
            return x - self._TWO32 * self.torch.floor((x + self._TWO31) / self._TWO32)
        return self.torch.remainder(x + 2 ** 31, 2 ** 32) - 2 ** 31

    def wrap_current(self, x: Any) -> Any:
        w = self.torch.where(x > MAX_UV, x - 2 * MAX_UV, x)
        return self.torch.where(w <= -MAX_UV, x + 2 * MAX_UV, w)

    def clip(self, x: Any, lo: int, hi: int) -> Any:
        return self.torch.clamp(x, lo, hi)

    @staticmethod
    def fire(v: Any, vth_eff: Any) -> Any:
        return (v > vth_eff).to(v.dtype)

    def reset(self, v: Any, s: Any, vth_eff: Any, subtract: Any) -> Any:
        if isinstance(subtract, bool):
            return v - vth_eff * s if subtract else v * (1 - s)
        return v - s * self.torch.where(subtract, vth_eff, v)  # per-neuron mode: v - vth or v - v where s


_NUMPY_OPS = _NumpyOps()
_TORCH_OPS: List[Any] = []


def _ops(x: Any) -> Any:
    """The primitives for ``x``'s array kind (torch is imported only when a tensor is given)."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(x, torch.Tensor):
        if not _TORCH_OPS:
            _TORCH_OPS.append(_TorchOps())
        return _TORCH_OPS[0]
    return _NUMPY_OPS


def lif_subthreshold(u: Any, v: Any, a_in: Any, fu: Any, fv: Any, bias: Any, *,
                     through: Optional[Callable[[Any, Callable[[Any], Any]], Any]] = None,
                     wrap_free: bool = False, ops: Any = None, a_in_shifted: bool = False) -> Tuple[Any, Any]:
    """Steps 1-5 of Lava's bit-accurate CUBA LIF (``PyLifModelBitAcc``, ``lif/models.py`` L138-186): ``(u, v)``
    before the spike test. The one definition used by every simulator of this package (see above).

    ``u``, ``v``: state (numpy int32 arrays, or torch tensors of exact integers — float64 or int64 — on any
    device); ``a_in``: the summed synaptic input (None: none this step); ``fu = decay_factor(du + 1)``,
    ``fv = decay_factor(dv)`` (float64 arrays or tensors); ``bias = bias_mant << bias_exp``
    (:func:`effective_bias`). Shapes broadcast. Returns int32 arrays for numpy input, float64 tensors (exact
    integers) for torch input.

    1. ``u' = decay_rtz(u, du + 1)``                                   (L145-153, ``ds_offset = 1``)
    2. ``u' = wrap32(u' + wrap32(wrap32(a_in) << 6))``   a_in is the int32 port sum (L155-157)
    3. ``u = wrap_current(u')``                          the odd 24-bit wrap (L161-171)
    4. ``v' = wrap32(decay_rtz(v, dv) + u + bias)``                     (L174-185)
    5. ``v = clip(v', -(2^23 - 1), 2^23 - 1)``                          (L186)

    ``through(x, fn)``: how each rounding or wrap ``fn`` is applied to ``x`` (default ``fn(x)``; the
    fake-quantised model passes a straight-through estimator). ``wrap_free``: the caller guarantees
    ``|a_in| < 2^18``, ``u`` in [-2^23, 2^23] and ``v`` in 24 bits (the reference simulator's float-path
    condition): then no int32 wrap can change a value (``|a_in << 6| < 2^24``, ``|u'| < 3·2^23``, ``|v'| < 2^25``)
    and the three wraps are skipped; ``a_in_shifted`` (only with ``wrap_free``): ``a_in`` already holds
    ``a_in << 6``. ``bias`` None: no bias. ``ops``: the primitives to use (default: those of ``u``'s array kind;
    the reference simulator's float path passes in-place numpy primitives on its own state buffers).
    """
    X = ops if ops is not None else _ops(u)
    mul, add = X.mul, X.add
    if through is None:  # the roundings and wraps as they are (no wrapper call: this runs every step)
        trunc, wrap_current = X.trunc, X.wrap_current
        wrap32 = None if wrap_free else X.wrap32
    else:
        def trunc(x: Any) -> Any:
            return through(x, X.trunc)

        def wrap_current(x: Any) -> Any:
            return through(x, X.wrap_current)

        def wrap32(x: Any) -> Any:
            return through(x, X.wrap32)
    cur = trunc(mul(u, fu))                                        # 1. decay_rtz(u, du + 1)
    if a_in is not None:
        if wrap_free:                                              # 2. exact, no wrap possible
            cur = add(cur, a_in if a_in_shifted else mul(a_in, 64))
        else:
            cur = wrap32(add(cur, wrap32(mul(wrap32(a_in), 64))))  # 2. + (a_in << 6), int32
    u = wrap_current(cur)                                          # 3. the 24-bit wrap
    vol = add(add(trunc(mul(v, fv)), u), bias)                     # 4. decay_rtz(v, dv) + u + bias
    if not wrap_free:
        vol = wrap32(vol)
    return u, X.clip(vol, V_MIN, V_MAX)                            # 5. saturate to 24 bits


def lif_fire(v: Any, vth_eff: Any, subtract: bool, s: Any = None, ops: Any = None) -> Tuple[Any, Any]:
    """Steps 6-7 of the LIF update on ``v`` from :func:`lif_subthreshold`: ``s = v > vth << 6`` (strict,
    ``lif/models.py`` L276-278; ``vth_eff`` from :func:`effective_threshold`), then the reset: ``v = 0`` where
    ``s`` (``subtract`` False: Lava's LIF, L188-192, ``u`` kept) or ``v -= vth << 6`` where ``s`` (ours:
    :class:`toolchain.backends.lava.LIFSubtract`; for torch tensors ``subtract`` may also be a per-neuron bool
    tensor). Returns ``(v, s)``: bool spikes for numpy, 0/1 of ``v``'s dtype
    for torch. ``s`` given: use it as the spikes (a surrogate whose forward value is the spike test). ``ops``: as
    for :func:`lif_subthreshold`."""
    X = ops if ops is not None else _ops(v)
    if s is None:
        s = X.fire(v, vth_eff)
    return X.reset(v, s, vth_eff, subtract), s


def lif_update(u: Any, v: Any, a_in: Any, fu: Any, fv: Any, bias: Any, vth_eff: Any, subtract: bool, *,
               wrap_free: bool = False) -> Tuple[Any, Any, Any]:
    """One whole LIF step (:func:`lif_subthreshold` then :func:`lif_fire`) on effective parameters; returns
    ``(u, v, s)``."""
    u, v = lif_subthreshold(u, v, a_in, fu, fv, bias, wrap_free=wrap_free)
    v, s = lif_fire(v, vth_eff, subtract)
    return u, v, s


def lif_step(u: np.ndarray, v: np.ndarray, a_in: np.ndarray, du: ArrayLike, dv: ArrayLike, vth: ArrayLike,
             bias_mant: ArrayLike = 0, bias_exp: ArrayLike = 0, reset_mode: str = "zero"
             ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One step of Lava's bit-accurate CUBA LIF (``PyLifModelBitAcc``) from the Lava parameters; returns
    ``(u, v, s)``: :func:`lif_update` with ``fu = decay_factor(du + 1)``, ``fv = decay_factor(dv)``,
    ``bias = effective_bias(bias_mant, bias_exp)``, ``vth_eff = effective_threshold(vth)``.

    Shapes broadcast (state ``(..., n)``, per-neuron parameters ``(n,)`` or scalars). ``u``, ``v``, ``a_in``
    int32; returns int32 ``u``, ``v`` and a bool spike array. Order, as ``lif/models.py`` L138-216:

    1. ``u' = decay_rtz(u, du + 1)``                       (L145-153, ``ds_offset = 1``)
    2. ``u' = u' + (a_in << 6)``      int32, wraps at 32 bits (L155-157)
    3. ``u = wrap_current(u')``       the odd 24-bit wrap    (L161-171)
    4. ``v' = decay_rtz(v, dv) + u + (bias_mant << bias_exp)``  int32 (L174-185)
    5. ``v = clip(v', -(2^23 - 1), 2^23 - 1)``                 (L186)
    6. ``s = v > vth << 6``           strict                (L276-278)
    7. reset: ``"zero"``: ``v = 0`` where s, ``u`` kept (L188-192, Lava's LIF);
       ``"subtract"``: ``v -= vth << 6`` where s (ours: :class:`toolchain.backends.lava.LIFSubtract`).

    In units: ``u`` and ``v`` are in 2^-6 of the weight unit (a weight of 1 adds 64 to u); decays are
    fractions of 4096 per step; ``vth << 6`` is in the same units as ``v``.
    """
    if reset_mode not in ("zero", "subtract"):
        raise ValueError(f"reset_mode must be 'zero' or 'subtract', got {reset_mode!r}")
    u = np.asarray(u, dtype=np.int32)
    v = np.asarray(v, dtype=np.int32)
    a = np.asarray(a_in)
    return lif_update(u, v, a, decay_factor(np.asarray(du).astype(np.int64) + DS_OFFSET),
                      decay_factor(np.asarray(dv).astype(np.int64) + DM_OFFSET), effective_bias(bias_mant, bias_exp),
                      effective_threshold(vth), reset_mode == "subtract")


def bias_current_start(du: ArrayLike, remainder: ArrayLike, steps: int) -> Tuple[np.ndarray, np.ndarray]:
    """Initial currents ``u_init`` that carry the transient of the bias part the integer synapses cannot; returns
    ``(u_init, residual)``.

    Why: a CubaLIF's Affine bias ``a`` (a_in units per step, which the float model filters through ``tau_syn``)
    reaches the current through synapses from an always-on neuron, but those carry only an integer ``a'``. The
    rest is given as a constant voltage bias ``r`` (integer v units per step: the value ``u`` would settle at).
    The float current it stands for rises from rest as ``r·(1 − k^(t+1))`` (``k = (4095 − du)/4096``): the
    constant ``r`` less a transient ``r·k^(t+1)``, which is what ``u`` does by itself when it enters the
    group's first input step (``steps`` steps after step 0: its latency) at ``−r``. So ``u_init`` (the current
    before step 0, no input until then) is chosen per neuron such that ``u`` decayed ``steps + 1`` times (what
    the first input step inherits) equals ``decay_rtz(−r, du + 1)``; each decay maps the integers onto a
    contiguous range and is monotone, so a bisection finds an exact start unless it would exceed 2^23 − 1.
    ``remainder``: ``r`` (int); ``residual``: int32, reached minus wanted (0: exact).
    """
    r = np.asarray(remainder).astype(np.int64)
    du = np.broadcast_to(np.asarray(du).astype(np.int64), r.shape)
    steps = max(int(steps), 0)
    want = decay_rtz(-r, du + DS_OFFSET).astype(np.int64)

    def end(u0: np.ndarray) -> np.ndarray:
        u = u0.astype(np.int64)
        for _ in range(steps + 1):
            u = decay_rtz(u, du + DS_OFFSET).astype(np.int64)
        return u

    lo, hi = np.full(r.shape, V_MIN, np.int64), np.full(r.shape, V_MAX, np.int64)
    while np.any(lo < hi):  # smallest start with end >= want (V_MAX where none)
        mid = (lo + hi) // 2
        ge = end(mid) >= want
        hi, lo = np.where((lo < hi) & ge, mid, hi), np.where((lo < hi) & ~ge, mid + 1, lo)
    best = np.zeros(r.shape, np.int64)
    for c in (lo, np.maximum(lo - 1, V_MIN)):
        e_c, e_b = np.abs(end(c) - want), np.abs(end(best) - want)
        best = np.where((e_c < e_b) | ((e_c == e_b) & (np.abs(c) < np.abs(best))), c, best)
    best = np.where(r == 0, 0, best)
    return best.astype(np.int32), (end(best) - want).astype(np.int32)


def bias_onset_voltage(dv: ArrayLike, vth: ArrayLike, bias_mant: ArrayLike, bias_exp: ArrayLike, steps: int,
                       reset_mode: str = "zero", u_init: Optional[ArrayLike] = None, du: ArrayLike = 0
                       ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Initial voltages that hide a neuron's bias for its first ``steps`` steps; returns
    ``(v_init, residual, early)``.

    Why: a compiled group whose input arrives ``steps`` steps late (one step per synapse layer, the group's
    latency) would integrate its bias alone for those steps, while the float model it was compiled from starts
    at ``v = 0`` with bias and input together. Started at ``v_init`` instead (``u = 0``, no input), the group
    reaches a voltage ``v_L`` after ``steps`` steps of :func:`lif_step` whose decayed value
    ``residual = decay_rtz(v_L, dv)`` is all that step ``steps`` (the first one with input) inherits. With
    ``residual == 0`` and no spike on the way the group then computes exactly what it computes from ``v = 0`` at
    step 0, so from then on it runs the float model's integer dynamics delayed by ``steps``.

    ``v_init``: int32, 24-bit signed in ``[V_MIN, V_MAX]`` (Lava LIF's ``v`` Var at step 0). Found per neuron by
    bisection on the sub-threshold map ``v ↦ clip(decay_rtz(v, dv) + bias)`` iterated ``steps`` times (monotone
    non-decreasing in the start value): the smallest start whose ``v_L ≥ 0``, or the one below it, or 0 —
    whichever leaves the smallest ``|residual|`` (then the smallest ``|v_L|``). A start that would spike on the way
    (a bias large against the threshold) is lowered to the largest start that does not. With ``u_init`` (and the
    group's ``du``) the current starts there and decays on the way (no input), adding to ``v`` at every step as
    Lava's LIF does (:func:`bias_current_start`). ``residual``: int32, the
    voltage offset carried into the first input step (0: exact). It is not 0 when no start can hide the bias —
    ``dv`` near 4096 with a bias of more than ``4096 / (4096 − dv)``, saturation at ±(2^23 − 1), rounding gaps, or
    a start lowered to avoid a spike. ``early``: bool, the neuron spikes during those steps from every start (a
    bias above the threshold): its float model fires at once too, but these spikes reach the next layer before
    its input does. Neurons with no bias or ``steps == 0`` get 0 (exact).
    """
    steps = int(steps)
    bias = effective_bias(bias_mant, bias_exp).astype(np.int64)
    n = bias.shape
    dv = np.broadcast_to(np.asarray(dv).astype(np.int64), n)
    vth = np.broadcast_to(np.asarray(vth).astype(np.int64), n)
    du = np.broadcast_to(np.asarray(du).astype(np.int64), n)
    u0 = np.zeros(n, np.int64) if u_init is None else np.broadcast_to(np.asarray(u_init).astype(np.int64), n)
    zero = np.zeros(n, np.int64)
    if steps <= 0 or not (np.any(bias) or np.any(u0)):
        return np.zeros(n, np.int32), np.zeros(n, np.int32), np.zeros(n, bool)
    us = []  # the current at each of those steps: u_init decayed, no input (Lava's 24-bit wrap)
    u = u0.astype(np.int32)
    for _ in range(steps):
        u = wrap_current(decay_rtz(u, du + DS_OFFSET)).astype(np.int32)
        us.append(u.astype(np.int64))

    def end(v0: np.ndarray) -> np.ndarray:  # the sub-threshold map, ``steps`` times (int64, exact)
        v = v0.astype(np.int64)
        for k in range(steps):
            v = np.clip(decay_rtz(v, dv + DM_OFFSET).astype(np.int64) + us[k] + bias, V_MIN, V_MAX)
        return v

    def spikes_on_way(start: np.ndarray) -> np.ndarray:
        u, v = u0.astype(np.int32), start.astype(np.int32)
        hit = np.zeros(n, bool)
        for _ in range(steps):
            u, v, s = lif_step(u, v, np.zeros(n, np.int32), du, dv, vth, bias_mant, bias_exp, reset_mode)
            hit |= s
        return hit

    lo, hi = np.full(n, V_MIN, np.int64), np.full(n, V_MAX, np.int64)
    while np.any(lo < hi):  # smallest start with v_L >= 0 (V_MAX where none)
        mid = (lo + hi) // 2
        ge = end(mid) >= 0
        hi, lo = np.where((lo < hi) & ge, mid, hi), np.where((lo < hi) & ~ge, mid + 1, lo)
    best = zero.copy()
    for cand in (np.maximum(lo - 1, V_MIN), lo):  # 0 first, so it wins ties
        e_c, e_b = end(cand), end(best)
        r_c, r_b = np.abs(decay_rtz(e_c, dv + DM_OFFSET)), np.abs(decay_rtz(e_b, dv + DM_OFFSET))
        better = (r_c < r_b) | ((r_c == r_b) & (np.abs(e_c) < np.abs(e_b)))
        best = np.where(better, cand, best)
    best = np.where((bias == 0) & (u0 == 0), 0, best)
    bad = spikes_on_way(best)
    if np.any(bad):  # largest start below that does not spike (spiking on the way is monotone in the start)
        lo, hi = np.where(bad, V_MIN, best), best.copy()
        while np.any(bad & (lo < hi)):
            mid = (lo + hi + 1) // 2
            ok = ~spikes_on_way(mid)
            act = bad & (lo < hi)
            lo, hi = np.where(act & ok, mid, lo), np.where(act & ~ok, mid - 1, hi)
        best = np.where(bad, lo, best)
    residual = decay_rtz(end(best), dv + DM_OFFSET)
    return best.astype(np.int32), residual.astype(np.int32), spikes_on_way(best)
