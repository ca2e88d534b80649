"""Lava 0.10.0 sigma-delta (SDNN) ``fixed_pt`` arithmetic, written down as pure numpy functions.

Loihi 2's graded spikes: a message carries a signed integer payload, and a sigma-delta neuron sends only the
*change* of its activation once that change is large enough. This module is to ``lava/proc/sdn`` what
:mod:`toolchain.fixedpoint` is to the LIF: every function mirrors a named piece of the installed Lava source (paths
relative to ``site-packages/lava/``, line numbers of lava-nc 0.10.0) and reproduces its numpy dtype flow, so that
wrap-around happens exactly where Lava's does. ``tests/test_sdnn.py`` runs Lava's own processes against them.

The three processes (``proc/sdn/process.py``, models in ``proc/sdn/models.py``)
------------------------------------------------------------------------------

``SigmaDelta`` (``PySigmaDeltaModelFixed``, models.py L260-284; dynamics L39-57, L72-100, L121-156)::

    sigma   = sigma + a_in                          int32, wraps            (L52)
    act_new = relu(sigma + bias)  (or sigma + bias with act_mode UNIT)      (L140-143)
    delta   = act_new - act + residue              int32, wraps             (L85)
    s       = delta where |delta| >= vth else 0    (cum_error: |error| >= vth, error += delta first, error = 0
                                                    where s != 0)           (L87-98)
    residue = delta - s ;  act = act_new                                    (L99, L154)
    payload = s >> state_exp                        arithmetic shift (floor) (L283)

``Sigma`` (``PySigmaModelFixed``, L169-176 with L54-57): ``sigma = sigma + a_in``; the payload *is* ``sigma``
(the ``sigma_output`` readout of a netx SDNN network).

``Delta`` (``PyDeltaModelFixed``, L205-231): the encoder. ``x = a_in << (spike_exp + state_exp)`` (int32,
wraps), then the delta rule above on ``x`` in place of ``act_new`` (no sigma, no bias, no activation); ``act = x``;
payload ``s >> state_exp``.

The process constructors scale the threshold and bias once (``process.py`` L99 and L179-180)::

    vth_eff  = vth  * 2**(spike_exp + state_exp)
    bias_eff = bias * 2**(spike_exp + state_exp)

so that, with ``spike_exp = e_s`` and ``state_exp = e_t``, the state holds ``e_s + e_t`` fractional bits and a
payload ``e_s`` fractional bits. Note that ``SigmaDelta`` does *not* shift its ``a_in`` (only ``Delta`` does):
the synapses feeding it must carry the scale (lava-dl's SDNN weights hold 6 fractional bits).

Fields
------

=============  =========  ==========  ==================================  ========================================
field          container  value bits  rounding                            overflow
=============  =========  ==========  ==================================  ========================================
a_in           int32      "24"        —                                   sum of the incoming a_out, wraps at 32
                                                                          bits (the 24-bit precision is not
                                                                          enforced)
sigma          int32      "24"        exact                               wraps modulo 2^32
bias_eff       int32      "16"        ``bias << (e_s + e_t)``             must fit int32 (checked when built)
act            int32      "24"        ReLU: ``max(x, 0)``                 wraps modulo 2^32
residue,error  int32      "24"        exact                               wraps modulo 2^32
vth_eff        int32      "24"        ``vth << (e_s + e_t)``              must fit int32 (checked when built)
|delta|        int32      —           ``np.abs``: ``|-2^31| = -2^31``     (never crosses a threshold >= 0)
comparison     —          —           ``>=`` (the docstring's ``>`` is    —
                                      not what the model computes)
payload        int32      "24"        ``s >> e_t`` (floor)                none: the int32 channel carries it all
spike_exp      int32      3           —                                   —
state_exp      int32      3           —                                   —
=============  =========  ==========  ==================================  ========================================

Graded synapses (``proc/dense/models.py`` L97-99, :func:`toolchain.fixedpoint.synaptic_input` with
``graded=True``): a Dense/Sparse with ``num_message_bits > 0`` computes ``weights.dot(s_in)`` in int32 (wraps before
the ``weight_exp`` shift); ``num_message_bits`` only selects that path — Lava never checks a payload against it.
Timing is the LIF's: a payload sent at step ``t`` reaches the next neuron's ``a_in`` at ``t + 1``.
"""
from __future__ import annotations

from typing import Tuple, Union

import numpy as np

__all__ = ["SDN_KINDS", "ACT_MODES", "MAX_EXP", "scaled_param", "sigma_delta_step", "sigma_step", "delta_step",
           "delta_encode", "payload_bits", "message_stats"]

#: the neuron kinds of the IR (``NeuronGroup.neuron``) that follow this module
SDN_KINDS = ("sigma_delta", "sigma", "delta")
#: Lava's ``ActivationMode`` (``proc/sdn/process.py`` L13-20): UNIT = 0, RELU = 1
ACT_MODES = ("relu", "unit")
#: ``spike_exp`` and ``state_exp`` are 3-bit Vars (``models.py`` L275-276)
MAX_EXP = 7

ArrayLike = Union[np.ndarray, int]
_I32 = np.int32


def scaled_param(value: ArrayLike, spike_exp: int, state_exp: int) -> np.ndarray:
    """``value * (1 << (spike_exp + state_exp))`` as int64 (``process.py`` L99, L179-180): the threshold or bias
    Lava's fixed-point model really uses."""
    return np.asarray(value).astype(np.int64) * (1 << (int(spike_exp) + int(state_exp)))


def _delta(act_new: np.ndarray, act: np.ndarray, residue: np.ndarray, error: np.ndarray, vth_eff: ArrayLike,
           cum_error: bool) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``AbstractDeltaModel.delta_dynamics`` (``models.py`` L72-100) in int32: returns ``(s, residue, error)``."""
    with np.errstate(over="ignore"):
        delta = (act_new.astype(_I32) - act.astype(_I32) + residue.astype(_I32)).astype(_I32)
        vth = np.asarray(vth_eff).astype(_I32)
        if cum_error:
            error = (error.astype(_I32) + delta).astype(_I32)
            s = np.where(np.abs(error) >= vth, delta, 0).astype(_I32)
            error = np.where(s != 0, 0, error).astype(_I32)
        else:
            s = np.where(np.abs(delta) >= vth, delta, 0).astype(_I32)
        residue = (delta - s).astype(_I32)
    return s, residue, error


def sigma_delta_step(sigma: np.ndarray, act: np.ndarray, residue: np.ndarray, error: np.ndarray,
                     a_in: np.ndarray, vth_eff: ArrayLike, bias_eff: ArrayLike, state_exp: int,
                     act_mode: str = "relu", cum_error: bool = False
                     ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One step of ``PySigmaDeltaModelFixed``; returns ``(sigma, act, residue, error, payload)`` (int32).

    ``vth_eff``/``bias_eff``: the scaled values (:func:`scaled_param`). Order as ``models.py`` L150-156 and
    L279-284: sigma (wraps), activation, delta rule, ``act = act_new``, payload ``= s >> state_exp``."""
    with np.errstate(over="ignore"):
        sigma = (sigma.astype(_I32) + np.asarray(a_in).astype(_I32)).astype(_I32)
        x = (sigma + np.asarray(bias_eff).astype(_I32)).astype(_I32)
    if act_mode == "relu":
        act_new = np.maximum(x, 0).astype(_I32)
    elif act_mode == "unit":
        act_new = x
    else:
        raise ValueError(f"act_mode must be one of {ACT_MODES}, got {act_mode!r}")
    s, residue, error = _delta(act_new, act, residue, error, vth_eff, cum_error)
    return sigma, act_new, residue, error, np.right_shift(s, int(state_exp)).astype(_I32)


def sigma_step(sigma: np.ndarray, a_in: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """One step of ``PySigmaModelFixed`` (``models.py`` L52-57): ``sigma += a_in`` (int32, wraps); the payload
    is the new sigma. Returns ``(sigma, payload)``."""
    with np.errstate(over="ignore"):
        sigma = (sigma.astype(_I32) + np.asarray(a_in).astype(_I32)).astype(_I32)
    return sigma, sigma.copy()


def delta_step(act: np.ndarray, residue: np.ndarray, error: np.ndarray, a_in: np.ndarray, vth_eff: ArrayLike,
               spike_exp: int, state_exp: int, cum_error: bool = False
               ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One step of ``PyDeltaModelFixed`` (``models.py`` L223-231); returns ``(act, residue, error, payload)``:
    ``x = a_in << (spike_exp + state_exp)`` (int32, wraps), the delta rule on ``x``, ``act = x``, payload
    ``s >> state_exp``."""
    x = np.left_shift(np.asarray(a_in).astype(_I32), _I32(int(spike_exp) + int(state_exp))).astype(_I32)
    s, residue, error = _delta(x, act, residue, error, vth_eff, cum_error)
    return x, residue, error, np.right_shift(s, int(state_exp)).astype(_I32)


def delta_encode(frames: np.ndarray, vth: int, spike_exp: int = 6, state_exp: int = 6,
                 cum_error: bool = False) -> np.ndarray:
    """Delta-encode a stream (..., T, n) of integer frames as Lava's ``Delta`` process would, frame ``t`` given
    as its ``a_in`` at step ``t``: the graded payloads (..., T, n) int32 (zero where nothing is sent). The host-side
    encoder of an SDNN (lava-dl's PilotNet SDNN feeds its network this way)."""
    f = np.asarray(frames)
    shape = f.shape[:-2] + f.shape[-1:]
    act, residue, error = (np.zeros(shape, _I32) for _ in range(3))
    out = np.zeros(f.shape, _I32)
    vth_eff = scaled_param(vth, spike_exp, state_exp)
    for t in range(f.shape[-2]):
        act, residue, error, out[..., t, :] = delta_step(act, residue, error, f[..., t, :], vth_eff, spike_exp,
                                                         state_exp, cum_error)
    return out


def payload_bits(payload: np.ndarray) -> np.ndarray:
    """Bits of a signed payload in two's complement (``m.bit_length() + 1`` with ``m = p`` for ``p > 0`` and
    ``m = -p - 1`` for ``p < 0``: 1 -> 2, -1 -> 1, -256 -> 9), 0 for no message. For activity metrics."""
    p = np.asarray(payload).astype(np.int64)
    m = np.where(p >= 0, p, -p - 1)
    length = np.zeros(p.shape, np.int64)
    pos = m > 0
    length[pos] = np.floor(np.log2(m[pos])).astype(np.int64) + 1
    return np.where(p != 0, length + 1, 0)


def message_stats(payloads: np.ndarray) -> Tuple[int, int]:
    """``(messages, payload_bits)`` of a record of graded payloads (any shape): messages are the non-zero
    payloads (a zero is not sent), bits their two's-complement widths summed (:func:`payload_bits`)."""
    p = np.asarray(payloads)
    return int(np.count_nonzero(p)), int(payload_bits(p).sum())
