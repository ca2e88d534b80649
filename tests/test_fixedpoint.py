"""toolchain.fixedpoint against Lava 0.10.0's own bit-accurate process models, on random data.

The Lava process-model classes (``PyLifModelBitAcc``, ``PyDenseModelBitAcc``, ``PySparseModelBitAcc``,
``PyDelayDenseModelBitAcc``) are instantiated directly and driven through stand-in ports that hand them the
arrays Lava's runtime would (int32 channel data); their states and outputs are compared with our functions.
The full runtime (processes, channels, timing) is exercised in ``tests/test_lava_bitexact.py``.
"""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from toolchain import fixedpoint as fx

lava_lif = pytest.importorskip("lava.proc.lif.models")
lava_dense = pytest.importorskip("lava.proc.dense.models")
lava_sparse = pytest.importorskip("lava.proc.sparse.models")
from lava.utils.weightutils import SignMode, clip_weights, truncate_weights  # noqa: E402

_MODES = {"mixed": SignMode.MIXED, "excitatory": SignMode.EXCITATORY, "inhibitory": SignMode.INHIBITORY}


class _Port:
    """Stand-in for a Lava PyInPort/PyOutPort: ``recv`` returns what Lava's runtime would, ``send`` keeps it."""

    def __init__(self, data=None):
        self.data = data
        self.sent = None

    def recv(self):
        return self.data

    def send(self, x):
        self.sent = np.array(x, copy=True)


# ----------------------------------------------------------------------------------------------- weights
@pytest.mark.parametrize("mode", ["mixed", "excitatory", "inhibitory"])
@pytest.mark.parametrize("nwb", [1, 3, 6, 7, 8])
def test_lava_weights_matches_weightutils(mode: str, nwb: int) -> None:
    w = np.arange(-300, 301).reshape(1, -1)
    ref = truncate_weights(clip_weights(w, _MODES[mode], num_bits=8), _MODES[mode], nwb)
    got = fx.lava_weights(w, nwb, mode)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, ref)
    # sparse matrices take Lava's spmatrix branches; values must agree too
    ref_sp = truncate_weights(clip_weights(sp.csr_matrix(w), _MODES[mode], num_bits=8), _MODES[mode], nwb)
    np.testing.assert_array_equal(got, ref_sp.toarray())


def test_mixed_8bit_drops_lowest_bit() -> None:
    np.testing.assert_array_equal(fx.lava_weights([-256, -3, -1, 0, 1, 3, 255, 400]),
                                  [-256, -4, -2, 0, 0, 2, 254, 254])
    assert fx.truncation_bits(8, "mixed") == 1 and fx.truncation_bits(8, "excitatory") == 0


@pytest.mark.parametrize("mode", ["mixed", "excitatory", "inhibitory"])
@pytest.mark.parametrize("nwb", [1, 4, 8])
def test_representable_weights_are_fixed_points(mode: str, nwb: int) -> None:
    rep = fx.representable_weights(nwb, mode)
    lo, hi = fx.weight_range(mode)
    all_w = np.arange(lo - 5, hi + 6)
    fixed = all_w[fx.lava_weights(all_w, nwb, mode) == all_w]
    np.testing.assert_array_equal(rep, fixed)
    np.testing.assert_array_equal(fx.is_representable(all_w, nwb, mode), np.isin(all_w, rep))
    assert not fx.is_representable(np.array([rep[0] + 0.5]), nwb, mode).any()
    if mode == "mixed" and nwb == 8:
        np.testing.assert_array_equal(rep, np.arange(-256, 255, 2))


# --------------------------------------------------------------------------------------------- synapses
def _dense_model(weights, weight_exp, nwb, mode, nmb, cls=None):
    cls = cls or lava_dense.PyDenseModelBitAcc
    m = cls({"weight_exp": weight_exp, "num_weight_bits": nwb, "sign_mode": _MODES[mode]})
    m.weights = np.asarray(weights).astype(np.int32)
    m.a_buff = np.zeros(weights.shape[0], np.int32)
    m.num_message_bits = np.array([nmb])
    m.a_out = _Port()
    return m


@pytest.mark.parametrize("seed", range(6))
def test_synaptic_input_matches_dense_and_sparse_models(seed: int) -> None:
    r = np.random.default_rng(seed)
    n_out, n_in = int(r.integers(1, 30)), int(r.integers(1, 40))
    mode = ["mixed", "excitatory", "inhibitory"][seed % 3]
    nwb = int(r.integers(1, 9))
    weight_exp = int(r.integers(-8, 8))
    graded = seed % 2 == 1
    nmb = int(r.integers(1, 25)) if graded else 0
    w = r.integers(-300, 300, size=(n_out, n_in))
    w_used = fx.lava_weights(w, nwb, mode)
    dense = _dense_model(w, weight_exp, nwb, mode, nmb)
    spm = lava_sparse.PySparseModelBitAcc({"weight_exp": weight_exp, "num_weight_bits": nwb,
                                            "sign_mode": _MODES[mode]})
    spm.weights = sp.csr_matrix(w)
    spm.a_buff = np.zeros(n_out, np.int32)
    spm.num_message_bits = np.array([nmb])
    spm.a_out = _Port()
    prev = np.zeros(n_out, np.int32)
    for _ in range(4):
        if graded:
            s = r.integers(0, 2 ** nmb, size=n_in).astype(np.int32)
        else:
            s = (r.random(n_in) < 0.5).astype(np.int32)
        for m in (dense, spm):
            m.s_in = _Port(s)
            m.run_spk()
            # buffered: what is sent now was accumulated from the previous step's input
            np.testing.assert_array_equal(fx.wrap_int32(m.a_out.sent), prev)
        want = fx.synaptic_input(w_used, s, weight_exp, graded=graded)
        np.testing.assert_array_equal(fx.wrap_int32(dense.a_buff), want)
        np.testing.assert_array_equal(fx.wrap_int32(spm.a_buff), want)
        prev = want
    np.testing.assert_array_equal(dense.weights, w_used)


@pytest.mark.parametrize("graded", [False, True])
def test_synaptic_input_matches_delay_dense_model(graded: bool) -> None:
    r = np.random.default_rng(7 + graded)
    n_out, n_in, delay = 5, 9, 3
    w = r.integers(-256, 256, size=(n_out, n_in))
    m = lava_dense.PyDelayDenseModelBitAcc({"weight_exp": -2, "num_weight_bits": 7, "sign_mode": SignMode.MIXED})
    m.weights = w.astype(np.int32)
    m.delays = np.full(w.shape, delay, np.int32)
    m.a_buff = np.zeros((n_out, delay + 1), np.int32)
    m.num_message_bits = np.array([24 if graded else 0])
    m.a_out = _Port()
    inputs, sent = [], []
    for _ in range(10):
        s = r.integers(0, 2 ** 24 if graded else 2, size=n_in).astype(np.int32)
        inputs.append(s)
        m.s_in = _Port(s)
        m.run_spk()
        sent.append(fx.wrap_int32(m.a_out.sent))
    w_used = fx.lava_weights(w, 7, "mixed")
    for t in range(10):  # input of step t leaves at step t + 1 + delay
        want = (fx.synaptic_input(w_used, inputs[t - 1 - delay], -2, graded, process="delay_dense")
                if t - 1 - delay >= 0 else np.zeros(n_out, np.int32))
        np.testing.assert_array_equal(sent[t], want)


def test_graded_sum_wraps_before_right_shift() -> None:
    w = np.array([[254, 254]])
    s = np.array([2 ** 24 - 1, 2 ** 24 - 1])  # 254 * 2 * (2^24 - 1) > 2^31: the int32 dot wraps
    got = fx.synaptic_input(w, s, weight_exp=-3, graded=True)
    exact = (254 * 2 * (2 ** 24 - 1))
    wrapped = ((exact + 2 ** 31) % 2 ** 32) - 2 ** 31
    assert got[0] == wrapped >> 3
    assert fx.synaptic_input(np.array([[-3]]), np.array([1]), weight_exp=-1)[0] == -2  # floor


# ------------------------------------------------------------------------------------------------- LIF
def _lif_model(n, u, v, du, dv, vth, bias_mant, bias_exp):
    m = lava_lif.PyLifModelBitAcc({})
    m.u = np.array(u, np.int32)
    m.v = np.array(v, np.int32)
    m.du, m.dv, m.vth = du, dv, vth  # python ints or per-neuron arrays, as the runtime hands them over
    m.bias_mant = np.array(bias_mant, np.int16)
    m.bias_exp = np.array(bias_exp, np.int16)
    m.s_out = _Port()
    return m


@pytest.mark.parametrize("seed", range(8))
def test_lif_step_matches_pylifmodelbitacc(seed: int) -> None:
    r = np.random.default_rng(100 + seed)
    n = 64
    per_neuron = seed % 2 == 0
    du = r.integers(0, 4096, n) if per_neuron else int(r.integers(0, 4096))
    dv = r.integers(0, 4096, n) if per_neuron else int(r.integers(0, 4096))
    vth = r.integers(0, 2 ** 17, n) if per_neuron else int(r.integers(0, 2 ** 17))
    bias_mant = r.integers(-4096, 4096, n)
    bias_exp = r.integers(0, 8, n)
    # states spanning the 24-bit range and beyond (after the odd wrap u can leave it)
    u = r.integers(-2 ** 24, 2 ** 24, n).astype(np.int32)
    v = r.integers(fx.V_MIN, fx.V_MAX + 1, n).astype(np.int32)
    m = _lif_model(n, u, v, du, dv, vth, bias_mant, bias_exp)
    scale = [2 ** 8, 2 ** 16, 2 ** 20, 2 ** 27][seed % 4]  # 2^27: a_in << 6 wraps int32
    for _ in range(12):
        a_in = r.integers(-scale, scale, n).astype(np.int32)
        m.a_in = _Port(a_in)
        m.run_spk()
        u, v, s = fx.lif_step(u, v, a_in, du, dv, vth, bias_mant, bias_exp, "zero")
        np.testing.assert_array_equal(m.u, u)
        np.testing.assert_array_equal(m.v, v)
        np.testing.assert_array_equal(m.s_out.sent.astype(bool), s)
        assert u.dtype == np.int32 and v.dtype == np.int32


def test_lif_hand_computed_values() -> None:
    # decay toward zero: u = -100 with du = 2047 (factor (4096-2048)/4096 = 1/2) -> -50; odd -> toward zero
    u, v, s = fx.lif_step(np.array([-101, 101]), np.array([0, 0]), np.array([0, 0]), 2047, 4096 - 4096, 10 ** 5)
    np.testing.assert_array_equal(u, [-50, 50])
    # a_in is shifted by 6; bias is not; v = decay(v) + u + bias
    u, v, s = fx.lif_step(np.array([0]), np.array([0]), np.array([1]), 0, 0, 1000, bias_mant=3, bias_exp=2)
    assert (u[0], v[0], s[0]) == (64, 64 + 12, False)
    # strict threshold: v == vth << 6 does not spike, one more does; zero reset keeps u
    u, v, s = fx.lif_step(np.array([0, 0]), np.array([0, 0]), np.array([2, 2]), 4095, 4095, 2,
                          bias_mant=[0, 1])
    np.testing.assert_array_equal(s, [False, True])
    np.testing.assert_array_equal(v, [128, 0])
    np.testing.assert_array_equal(u, [128, 128])
    # subtract reset
    u, v, s = fx.lif_step(np.array([0]), np.array([0]), np.array([5]), 4095, 4095, 2, reset_mode="subtract")
    assert s[0] and v[0] == 5 * 64 - 128
    # v saturates at +-(2^23 - 1); even the largest threshold (2^17 - 1) << 6 = 2^23 - 64 lies below +2^23 - 1,
    # so a saturated neuron always spikes
    u, v, s = fx.lif_step(np.array([0]), np.array([fx.V_MIN]), np.array([-1000]), 0, 0, 0)
    assert v[0] == fx.V_MIN and not s[0]
    u, v, s = fx.lif_step(np.array([0]), np.array([fx.V_MAX]), np.array([1000]), 0, 0, 2 ** 17 - 1,
                          reset_mode="subtract")
    assert s[0] and v[0] == fx.V_MAX - ((2 ** 17 - 1) << 6)


def test_odd_current_wrap() -> None:
    x = np.array([2 ** 23, 2 ** 23 + 1, -2 ** 23, -2 ** 23 + 1, 3 * 2 ** 23 + 5, -3 * 2 ** 23 - 5], np.int32)
    np.testing.assert_array_equal(fx.wrap_current(x),
                                  [2 ** 23, -2 ** 23 + 1, 2 ** 23, -2 ** 23 + 1, 2 ** 23 + 5, -2 ** 23 - 5])


def test_threshold_is_read_once_bias_every_step() -> None:
    """Documented Lava behaviour our simulators rely on for static parameters: ``vth`` changes after the first
    step are ignored, ``bias_mant`` changes are not."""
    m = _lif_model(1, [0], [0], 4095, 4095, 1000, [0], [0])
    m.a_in = _Port(np.array([0], np.int32))
    m.run_spk()
    m.vth = 0
    m.bias_mant = np.array([5], np.int16)
    m.run_spk()
    assert m.v[0] == 5 and not m.s_out.sent[0]  # 5 > 0 but the threshold still is 1000 << 6
