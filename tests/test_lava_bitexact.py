"""Bit-exactness: the reference simulator against Lava 0.10.0 (``Loihi2SimCfg(select_tag="fixed_pt")``).

Every spike and every u, v of every group at every step are compared; a failure names the first mismatch
(layer, neuron, step, field). Random Programs come from :func:`toolchain.testing.int_program` with parameters
drawn by hypothesis over the documented ranges (saturation and wrap-around included). Each Lava run costs about
a second (process start-up), so the default run draws few, small examples; ``-m slow`` draws many more.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("lava.proc.lif.process")

from toolchain.backends.lava import LavaStepper, run_lava  # noqa: E402
from toolchain.ir.storage import Dense  # noqa: E402
from toolchain.program import InputPort, NeuronGroup, Program, SynapseGroup  # noqa: E402
from toolchain.sim.reference import simulate  # noqa: E402
from toolchain.testing import activity, int_inputs, int_program, make_active  # noqa: E402


def assert_bit_exact(program: Program, x: np.ndarray, steps=None, active: bool = False,
                     saturated: bool = False) -> None:
    """Every spike, u and v of every group equal on both backends; with ``active`` every spiking group spiked,
    with ``saturated`` some ``v`` reached the 24-bit bound (so the comparison covered those paths)."""
    ref = simulate(program, x, steps=steps, record=True)
    if active:
        silent = [g for g, grp in program.groups.items() if grp.spiking and not ref.spikes[g].any()]
        assert not silent, f"groups {silent} never spike: the comparison would show nothing"
    if saturated:
        assert any((np.abs(ref.v[g].astype(np.int64)) >= 2 ** 23 - 1).any() for g in program.groups), \
            "no v reached the 24-bit bound in a saturation case"
    lav = run_lava(program, x, steps=steps, record=True)
    mm = ref.first_mismatch(lav)
    assert mm is None, f"reference vs Lava: first mismatch at {mm}"
    for g in program.groups:  # the comparison really covered every group and field
        for f in ("spikes", "u", "v"):
            assert g in getattr(ref, f) and g in getattr(lav, f)


_SIGN_SETS = [("mixed",), ("excitatory",), ("inhibitory",), ("mixed", "excitatory", "inhibitory")]


@st.composite
def programs(draw, max_n: int = 10, max_layers: int = 3, max_steps: int = 14, max_batch: int = 1):
    """A random integer Program plus an input, steps drawn small; every spiking group spikes on the input and
    the extreme-parameter cases saturate (:func:`toolchain.testing.make_active`). Returns (program, x, extreme)."""
    n_layers = draw(st.integers(1, max_layers))
    extreme = draw(st.booleans())
    lo = 2 if extreme else 1  # a saturating neuron and an active one fit in a group of two
    sizes = [draw(st.integers(1, max_n + 2))] + [draw(st.integers(lo, max_n)) for _ in range(n_layers)]
    opts = dict(
        storage=draw(st.sampled_from(["dense", "csr", "structured", "mixed"])),
        density=draw(st.sampled_from([0.2, 0.5, 0.9])),
        recurrent=draw(st.booleans()),
        skip=draw(st.booleans()),
        graded_bits=draw(st.sampled_from([0, 0, 1, 5, 16, 24])),
        max_delay=draw(st.sampled_from([0, 0, 1, 3])),
        reset_mode=draw(st.sampled_from(["zero", "subtract", "mixed"])),
        per_neuron=draw(st.booleans()),
        extreme=extreme,
        readout=draw(st.booleans()),
        sign_modes=draw(st.sampled_from(_SIGN_SETS)),
        weight_bits=(draw(st.integers(1, 8)), 8),
        weight_exp=(-8, 7) if extreme else (draw(st.integers(-3, 0)), draw(st.integers(0, 2))),
        v_init=draw(st.booleans()),
    )
    seed = draw(st.integers(0, 2 ** 16))
    program = int_program(sizes, seed=seed, **opts)
    steps = draw(st.integers(4, max_steps))
    rate = draw(st.sampled_from([0.1, 0.4, 0.9]))
    x = int_inputs(program, draw(st.integers(1, max_batch)), steps, rate=rate, seed=seed)
    return make_active(program, x, saturate=extreme), x, extreme


# The default run: 12 programs (was 10) of up to 16 neurons per group (was 10), 4-24 steps (was 4-14), batches of
# 1-2 (was 1), every one active (about 15-25 s of Lava start-ups on 2 idle cores); derandomized so that it is the
# same 12 every run. ``-m slow`` draws 120 larger ones at random.
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(programs(max_n=16, max_steps=24, max_batch=2))
def test_random_programs_bit_exact(case) -> None:
    program, x, extreme = case
    assert_bit_exact(program, x, active=True, saturated=extreme)


@pytest.mark.slow
@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(programs(max_n=24, max_layers=4, max_steps=40, max_batch=3))
def test_random_programs_bit_exact_slow(case) -> None:
    program, x, extreme = case
    assert_bit_exact(program, x, active=True, saturated=extreme)


def test_make_active_turns_silent_programs_into_active_ones() -> None:
    """The repair the generator relies on: a program that never spikes (thresholds out of reach) spikes in
    every group afterwards, and a saturation case reaches the bound; what was active stays untouched."""
    p = int_program((6, 5, 4), seed=3, vth_range=(2 ** 16, 2 ** 16 + 1))
    x = int_inputs(p, 1, 8, rate=0.3, seed=3)
    assert activity(p, x)["silent"] == ["g0", "g1"]
    q = make_active(p, x, saturate=True)
    assert activity(q, x)["silent"] == [] and activity(q, x)["saturated"]
    assert all(np.array_equal(q.groups[g].vth[1:-1], p.groups[g].vth[1:-1]) for g in p.groups)
    active = int_program((6, 5, 4), seed=3)
    assert activity(active, int_inputs(active, 1, 8, seed=3))["silent"] == []
    same = make_active(active, int_inputs(active, 1, 8, seed=3))
    assert all(np.array_equal(same.groups[g].vth, active.groups[g].vth) for g in active.groups)


# --------------------------------------------------------------------------- named cases (always run)
def test_feedforward_batch_of_two_dense_multilayer() -> None:
    p = int_program((16, 12, 10, 6), seed=11)
    assert_bit_exact(p, int_inputs(p, 2, 12, seed=1))


def test_initial_voltages_are_lava_v_at_step_zero() -> None:
    """``NeuronGroup.v_init`` (the compiler's bias-onset alignment) is Lava's ``v`` Var before the first step:
    random starting voltages, zero and subtract reset, biases and a readout, bit-exact at every step."""
    p = int_program((9, 7, 6, 4), seed=12, reset_mode="mixed", readout=True, v_init=True)
    assert all(np.any(g.v_init) for g in p.groups.values())
    assert_bit_exact(p, int_inputs(p, 2, 10, seed=3))


def test_recurrent_sparse_delays_subtract_per_neuron() -> None:
    p = int_program((10, 9, 7), seed=5, storage="mixed", recurrent=True, skip=True, max_delay=4,
                    reset_mode="subtract", per_neuron=True, sign_modes=("mixed", "excitatory", "inhibitory"),
                    weight_bits=(2, 5, 8))
    assert_bit_exact(p, int_inputs(p, 1, 16, seed=2), steps=18)


def test_extreme_parameters_wrap_and_saturate() -> None:
    """Full-range parameters and large weight exponents: u wraps, v saturates, graded 24-bit payloads make the
    int32 graded sums wrap; checks that some of that really happened."""
    p = int_program((8, 6, 5), seed=3, extreme=True, graded_bits=24, weight_exp=(5, 7), storage="mixed")
    x = int_inputs(p, 1, 10, rate=0.9, seed=4)
    assert_bit_exact(p, x)
    r = simulate(p, x, record=True)
    states = np.concatenate([np.abs(r.u[g].astype(np.int64)).ravel() for g in p.groups])
    assert states.max() > 2 ** 22


def test_activation_beyond_int16_passes_lava_port() -> None:
    """Lava declares ``a_in`` int16 but adds int32 channel data to an int16 zero vector: nothing is cut at
    16 bits. 20 inputs x 254 << 3 = 40640 > 32767 reaches u exactly."""
    g = NeuronGroup("a", (1,), du=4095, dv=4095, vth=2 ** 17 - 1, bias_mant=0, bias_exp=0)
    p = Program([g], [SynapseGroup("s", "in", "a", Dense(np.full((1, 20), 254)), weight_exp=3)],
                [InputPort("in", (20,))], output="a")
    x = np.zeros((1, 3, 20), np.int32)
    x[0, 0] = 1
    assert_bit_exact(p, x)
    assert simulate(p, x, record=True).u["a"][0, 1, 0] == 40640 * 64


def test_lava_stepper_matches_reference() -> None:
    p = int_program((8, 6, 4), seed=9, recurrent=True)
    x = int_inputs(p, 1, 6, seed=0)
    ref = simulate(p, x, record=True)
    with LavaStepper(p, x) as run:
        for t in range(6):
            rec = run.step()
            np.testing.assert_array_equal(rec["s"], ref.spikes[p.output][0, t])
            np.testing.assert_array_equal(rec["v"], ref.v[p.output][0, t])
            np.testing.assert_array_equal(rec["u"], ref.u[p.output][0, t])


def test_run_lava_output_only_readout() -> None:
    p = int_program((6, 5, 3), seed=2, readout=True)
    x = int_inputs(p, 1, 8, seed=0)
    lav = run_lava(p, x)
    ref = simulate(p, x)
    assert lav.output_kind == "v" and set(lav.v) == {p.output}
    np.testing.assert_array_equal(lav.output, ref.output)


# ------------------------------------------------------------------------------------------ snnc verify
def test_cli_verify_bit_exact_and_mismatch(tmp_path, capsys, monkeypatch) -> None:
    from toolchain.cli.main import main
    p = int_program((8, 6, 4), seed=7, storage="csr", recurrent=True, reset_mode="subtract")
    build = tmp_path / "build"
    p.save(build)
    assert main(["verify", str(build), "--random", "1", "--steps", "8", "--seed", "3"]) == 0
    assert "bit-exact: yes" in capsys.readouterr().out

    import toolchain.backends.lava as lava_backend
    real = lava_backend.run_lava

    def tampered(*args, **kwargs):
        res = real(*args, **kwargs)
        res.v["g0"][0, 5, 2] += 1
        return res

    monkeypatch.setattr(lava_backend, "run_lava", tampered)
    assert main(["verify", str(build), "--random", "1", "--steps", "8", "--seed", "3"]) == 1
    out = capsys.readouterr().out
    assert "bit-exact: no" in out and "layer 'g0', neuron 2, step 5, field 'v'" in out


def test_runtime_stopped_when_reading_fails(monkeypatch) -> None:
    import toolchain.backends.lava as lava_backend
    built = []
    real_build = lava_backend.build_network

    def build(*args, **kwargs):
        built.append(real_build(*args, **kwargs))
        return built[-1]

    def broken(self, group):
        raise RuntimeError("read failed")

    monkeypatch.setattr(lava_backend, "build_network", build)
    monkeypatch.setattr(lava_backend.LavaNetwork, "spikes", broken)
    p = int_program((5, 4, 3), seed=1)
    with pytest.raises(RuntimeError, match="read failed"):
        run_lava(p, int_inputs(p, 1, 4))
    runtime = built[0].roots[0].runtime
    assert runtime is not None and not runtime._is_started  # Lava's flag: the runtime was stopped


@pytest.mark.parametrize("delay,sparse", [(0, True), (2, False)])
def test_graded_24bit_sums_beyond_int32_on_lava(delay: int, sparse: bool) -> None:
    """Graded 24-bit payloads whose row sums (and, with a delay, single products) leave int32: Lava's
    Sparse wraps the int32 dot product before the shift, DelayDense wraps each product and sums in int64."""
    from toolchain.ir.storage import Csr
    r = np.random.default_rng(delay)
    w = r.integers(-254, 255, (3, 60))
    g = NeuronGroup("a", (3,), du=4095, dv=4095, vth=2 ** 17 - 1, bias_mant=0, bias_exp=0)
    p = Program([g], [SynapseGroup("s", "in", "a", Csr.from_dense(w) if sparse else Dense(w), weight_exp=-3,
                                   delay=delay)],
                [InputPort("in", (60,), num_message_bits=24)], output="a")
    x = r.integers(2 ** 23, 2 ** 24, (1, 3, 60)).astype(np.int32)
    assert_bit_exact(p, x, steps=4 + delay)
