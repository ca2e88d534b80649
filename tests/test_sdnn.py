"""Sigma-delta (SDNN) groups: the reference simulator against Lava 0.10.0's own ``lava.proc.sdn`` processes
(``SigmaDelta``, ``Sigma``, ``Delta``) with graded Dense/Sparse synapses — every payload, ``sigma`` (``u``) and
``act`` (``v``) of every group at every step — plus the IR's checks and the build format.

Random Programs: a graded input port -> identity -> Delta encoder -> SigmaDelta layer(s) -> Sigma readout, with a
LIF group fed by graded messages on the side (mixed programs), parameters drawn over the documented ranges
(thresholds 0.., biases of both signs, exponents 0..7, cumulative error, ReLU/unit activation, weight exponents;
large ones make sigma wrap at 32 bits). Lava runs cost seconds each, so the default run draws few examples.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from toolchain import fixedpoint_sdn as fxs
from toolchain.errors import ToolchainError
from toolchain.ir.storage import Csr, Dense
from toolchain.program import (InputPort, NeuronGroup, Program, SigmaDeltaParams, SynapseGroup, programs_equal,
                               sigma_delta_group)
from toolchain.sim.reference import simulate


def identity(n: int) -> Csr:
    return Csr.from_dense(np.eye(n, dtype=np.int64))


def sdnn_program(rng: np.random.Generator, n_in: int = 6, hidden=(5,), n_out: int = 3, vth: int = 2, bias: int = 3,
                 spike_exp: int = 2, state_exp: int = 3, cum_error: bool = False, act_mode: str = "relu",
                 weight_exp: int = -2, w_max: int = 100, lif: bool = True, in_bits: int = 8,
                 sparse: bool = False) -> Program:
    """Graded port -> identity (excitatory: no truncation) -> Delta -> SigmaDelta layers -> Sigma (+ a LIF)."""
    groups = [sigma_delta_group("enc", (n_in,), "delta", vth=vth, spike_exp=spike_exp, state_exp=state_exp,
                                cum_error=cum_error)]
    syns = [SynapseGroup("in", "x", "enc", identity(n_in), sign_mode="excitatory")]
    src, n_src = "enc", n_in
    for k, n in enumerate(hidden):
        name = f"h{k}"
        groups.append(sigma_delta_group(name, (n,), "sigma_delta", vth=vth, bias=rng.integers(-bias, bias + 1, n),
                                        spike_exp=spike_exp, state_exp=state_exp, cum_error=cum_error,
                                        act_mode=act_mode))
        w = rng.integers(-w_max, w_max + 1, (n, n_src))
        syns.append(SynapseGroup(f"w{k}", src, name, Csr.from_dense(w) if sparse else Dense(w),
                                 weight_exp=weight_exp))
        src, n_src = name, n
    groups.append(sigma_delta_group("out", (n_out,), "sigma"))
    syns.append(SynapseGroup("wo", src, "out", Dense(rng.integers(-w_max, w_max + 1, (n_out, n_src))),
                             weight_exp=weight_exp))
    if lif:
        groups.append(NeuronGroup("lif", (2,), du=300, dv=200, vth=40, bias_mant=0, bias_exp=0))
        syns.append(SynapseGroup("wl", src, "lif", Dense(rng.integers(-w_max, w_max + 1, (2, n_src))),
                                 weight_exp=weight_exp - 3))
    return Program(groups, syns, [InputPort("x", (n_in,), in_bits)], "out")


def video(rng: np.random.Generator, batch: int, steps: int, n: int, hi: int = 255, hold: int = 3) -> np.ndarray:
    """Frames that change every ``hold`` steps (temporally redundant input)."""
    f = rng.integers(0, hi + 1, (batch, (steps + hold - 1) // hold, n))
    return np.repeat(f, hold, axis=1)[:, :steps]


def assert_sdnn_exact(program: Program, x: np.ndarray) -> None:
    from toolchain.backends.lava import run_lava
    ref = simulate(program, x, record=True)
    sent = [g for g, grp in program.groups.items() if grp.sdn is not None and grp.sdn.kind != "sigma"
            and not ref.spikes[g].any()]
    assert not sent, f"groups {sent} send nothing: the comparison would show little"
    lav = run_lava(program, x, record=True)
    mm = ref.first_mismatch(lav)
    assert mm is None, f"reference vs Lava: first mismatch at {mm}"
    for g in program.groups:
        for f in ("spikes", "u", "v"):
            assert g in getattr(ref, f) and g in getattr(lav, f)
            assert np.array_equal(getattr(ref, f)[g], getattr(lav, f)[g])


# --------------------------------------------------------------------------------------- pure semantics
def test_sigma_delta_step_by_hand():
    """Lava's dynamics written out for one neuron: sigma accumulates, ReLU(sigma + bias), the delta against the
    last act plus residue, sent when |delta| >= vth, payload >> state_exp."""
    z = np.zeros(1, np.int32)
    sigma, act, res, err = z, z, z, z
    outs = []
    for a in (10, 0, -3, 100, -200):
        sigma, act, res, err, s = fxs.sigma_delta_step(sigma, act, res, err, np.array([a], np.int32), 8, 1, 1)
        outs.append((int(sigma[0]), int(act[0]), int(res[0]), int(s[0])))
    # sigma 10 -> act 11, delta 11 >= 8: sent 11 >> 1 = 5; residue 0
    # sigma 10 -> act 11, delta 0; sigma 7 -> act 8, delta -3: not sent, residue -3
    # sigma 107 -> act 108, delta 100 - 3 = 97: sent 48; sigma -93 -> act 0, delta -108 sent -54
    assert outs == [(10, 11, 0, 5), (10, 11, 0, 0), (7, 8, -3, 0), (107, 108, 0, 48), (-93, 0, 0, -54)]


def test_int32_wraps_like_lava():
    sigma = np.array([2 ** 31 - 5], np.int32)
    z = np.zeros(1, np.int32)
    s2, act, res, err, out = fxs.sigma_delta_step(sigma, z, z, z, np.array([10], np.int32), 0, 0, 0, "unit")
    assert s2[0] == -(2 ** 31) + 5 and act[0] == s2[0] and out[0] == s2[0]


def test_delta_encode_matches_delta_group():
    rng = np.random.default_rng(3)
    frames = video(rng, 2, 12, 4)
    p = Program([sigma_delta_group("enc", (4,), "delta", vth=5, spike_exp=3, state_exp=2)],
                [SynapseGroup("in", "x", "enc", identity(4), sign_mode="excitatory")], [InputPort("x", (4,), 8)],
                "enc")
    ref = simulate(p, frames, record=True)
    enc = fxs.delta_encode(frames, 5, 3, 2)
    # the identity synapse delays by one step
    assert np.array_equal(ref.spikes["enc"][:, 1:], enc[:, :-1])
    assert np.count_nonzero(enc) < enc.size


def test_payload_bits():
    assert fxs.payload_bits(np.array([0, 1, -1, 2, 255, -256])).tolist() == [0, 2, 1, 3, 9, 9]


# ------------------------------------------------------------------------------------------- IR / build
def test_group_checks():
    with pytest.raises(ToolchainError, match="sdn.kind"):
        sigma_delta_group("a", (2,), "lif")
    with pytest.raises(ToolchainError, match="sdn.spike_exp"):
        sigma_delta_group("a", (2,), spike_exp=8)
    with pytest.raises(ToolchainError, match="sdn.vth"):
        sigma_delta_group("a", (2,), vth=2 ** 20, spike_exp=6, state_exp=6)
    with pytest.raises(ToolchainError, match="sdn.vth"):
        sigma_delta_group("a", (2,), vth=-1)
    with pytest.raises(ToolchainError, match="sdn"):
        NeuronGroup("a", (2,), 0, 0, 0, 0, 0, reset_interval=4, sdn=SigmaDeltaParams())
    g = sigma_delta_group("a", (3,), vth=[1, 2, 3], bias=-4)
    assert g.neuron == "sigma_delta" and g.graded and g.sdn.bias.tolist() == [-4, -4, -4]


def test_build_round_trip(tmp_path):
    p = sdnn_program(np.random.default_rng(0), cum_error=True, act_mode="unit")
    p.save(tmp_path / "b")
    q = Program.load(tmp_path / "b")
    assert programs_equal(p, q)
    assert q.groups["h0"].sdn.cum_error and q.groups["h0"].sdn.act_mode == "unit"
    import json
    assert json.loads((tmp_path / "b" / "program.json").read_text())["version"] == 4
    lif = Program([NeuronGroup("a", (2,), 0, 0, 10, 0, 0)], [SynapseGroup("s", "x", "a", Dense(np.ones((2, 2))))],
                  [InputPort("x", (2,))], "a")
    lif.save(tmp_path / "c")
    assert json.loads((tmp_path / "c" / "program.json").read_text())["version"] == 3  # old readers still read it
    x = video(np.random.default_rng(1), 1, 10, 6)
    assert simulate(p, x, record=True).first_mismatch(simulate(q, x, record=True)) is None


def test_reference_paths_agree():
    """Event-driven and dense products, batch and single samples, give the same payloads."""
    rng = np.random.default_rng(5)
    p = sdnn_program(rng, hidden=(7, 5), sparse=True)
    x = video(rng, 3, 16, 6)
    a = simulate(p, x, record=True, event=True)
    b = simulate(p, x, record=True, event=False)
    assert a.first_mismatch(b) is None
    c = simulate(p, x[1:2], record=True)
    for g in p.groups:
        assert np.array_equal(a.spikes[g][1:2], c.spikes[g]) and np.array_equal(a.u[g][1:2], c.u[g])


# --------------------------------------------------------------------------------------- against Lava
lava = pytest.importorskip("lava.proc.sdn.process")


def test_lava_mixed_program():
    rng = np.random.default_rng(0)
    p = sdnn_program(rng)
    assert_sdnn_exact(p, video(rng, 1, 14, 6))


def test_lava_refuses_per_neuron_threshold():
    from toolchain.backends.lava import run_lava
    p = Program([sigma_delta_group("h", (2,), vth=[1, 2])], [SynapseGroup("s", "x", "h", Dense(np.ones((2, 2))))],
                [InputPort("x", (2,), 4)], "h")
    with pytest.raises(ToolchainError, match="sdn.vth"):
        run_lava(p, np.ones((1, 3, 2), int))


@st.composite
def sdnn_cases(draw):
    seed = draw(st.integers(0, 2 ** 16))
    rng = np.random.default_rng(seed)
    extreme = draw(st.booleans())
    opts = dict(n_in=draw(st.integers(1, 8)), hidden=tuple(draw(st.lists(st.integers(1, 8), min_size=1,
                                                                         max_size=2))),
                n_out=draw(st.integers(1, 4)), vth=draw(st.integers(0, 40)), bias=draw(st.integers(0, 50)),
                spike_exp=draw(st.integers(0, 7 if not extreme else 3)), state_exp=draw(st.integers(0, 7)),
                cum_error=draw(st.booleans()), act_mode=draw(st.sampled_from(["relu", "unit"])),
                weight_exp=draw(st.integers(-6, 4 if extreme else 0)), w_max=draw(st.sampled_from([3, 60, 255])),
                lif=draw(st.booleans()), sparse=draw(st.booleans()), in_bits=draw(st.sampled_from([4, 8, 16])))
    if extreme:  # large inputs and exponents: sigma and the graded sums wrap at 32 bits
        opts.update(in_bits=16, w_max=255)
    p = sdnn_program(rng, **opts)
    x = video(rng, 1, draw(st.integers(6, 16)), opts["n_in"], hi=2 ** opts["in_bits"] - 1,
              hold=draw(st.integers(1, 4)))
    return p, x


@settings(max_examples=3, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(sdnn_cases())
def test_lava_bit_exact_random(case):
    assert_lava_equals_reference(*case)


def assert_lava_equals_reference(p: Program, x: np.ndarray) -> None:
    """Every payload (spikes), sigma (u) and act (v) of every group at every step: reference = Lava."""
    from toolchain.backends.lava import run_lava
    ref = simulate(p, x, record=True)
    lav = run_lava(p, x, record=True)
    mm = ref.first_mismatch(lav)
    assert mm is None, f"reference vs Lava: first mismatch at {mm}"
    for g in p.groups:
        assert np.array_equal(ref.spikes[g], lav.spikes[g]) and np.array_equal(ref.v[g], lav.v[g])


@pytest.mark.slow
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(sdnn_cases())
def test_lava_bit_exact_random_many(case):
    assert_lava_equals_reference(*case)


def test_report_graded_activity():
    """``snnc report``'s graded-spike metrics: non-zero payloads of the sigma-delta senders and their bits."""
    from toolchain.cli.report import graded_activity
    rng = np.random.default_rng(2)
    p = sdnn_program(rng, lif=False)
    x = video(rng, 2, 12, 6)
    res = simulate(p, x, record=True)
    got = graded_activity(p, res)
    senders = ["enc", "h0"]
    msgs = sum(np.count_nonzero(res.spikes[g]) for g in senders)
    bits = sum(int(fxs.payload_bits(res.spikes[g]).sum()) for g in senders)
    assert got == {"graded_messages": msgs / 2, "graded_payload_bits": bits / 2} and msgs > 0
    lif = Program([NeuronGroup("a", (2,), 0, 0, 10, 0, 0)], [SynapseGroup("s", "x", "a", Dense(np.ones((2, 2))))],
                  [InputPort("x", (2,))], "a")
    assert graded_activity(lif, simulate(lif, np.ones((1, 3, 2), np.uint8))) == {}
