"""Unit tests of toolchain.sim.reference.simulate: hand-computed tiny cases, timing, early exit, input checks,
and the vectorised fast paths against a plain per-sample loop over toolchain.fixedpoint."""
from __future__ import annotations

import numpy as np
import pytest

from toolchain import fixedpoint as fx
from toolchain.errors import InputError
from toolchain.ir.storage import Csr, Dense, Structured
from toolchain.program import InputPort, NeuronGroup, Program, SynapseGroup
from toolchain.sim.reference import simulate, synapse_process
from toolchain.testing import int_inputs, int_program


def _group(name, n=1, du=0, dv=0, vth=1000, bias_mant=0, bias_exp=0, reset_mode="zero", spiking=True):
    return NeuronGroup(name, (n,), du=du, dv=dv, vth=vth, bias_mant=bias_mant, bias_exp=bias_exp,
                       reset_mode=reset_mode, spiking=spiking)


def _chain(w1, group_kw=None, delay=0, weight_exp=0, nmb=0, n_in=None):
    w1 = np.atleast_2d(w1)
    n_in = w1.shape[1] if n_in is None else n_in
    g = _group("a", n=w1.shape[0], **(group_kw or {}))
    syn = SynapseGroup("s", "in", "a", Dense(w1), weight_exp=weight_exp, delay=delay)
    return Program([g], [syn], [InputPort("in", (n_in,), num_message_bits=nmb)], output="a")


# ---------------------------------------------------------------------------------------- hand-computed
def test_decay_and_timing_single_neuron() -> None:
    # weight 10 (even: survives mixed 8-bit truncation); du = 2047 -> u decays by (4096-2048)/4096 = 1/2
    p = _chain([[10]], dict(du=2047, dv=0, vth=10 ** 5))
    x = np.zeros((1, 6, 1), np.int32)
    x[0, 0, 0] = 1
    r = simulate(p, x, record=True)
    u = r.u["a"][0, :, 0]
    v = r.v["a"][0, :, 0]
    # spike at step 0 reaches u at step 1 (Dense buffers one step); a_in << 6 = 640
    np.testing.assert_array_equal(u, [0, 640, 320, 160, 80, 40])
    # dv = 0: decay factor 4096/4096 -> v integrates u
    np.testing.assert_array_equal(v, np.cumsum([0, 640, 320, 160, 80, 40]))


def test_rounding_toward_zero_and_bias() -> None:
    p = _chain([[-2]], dict(du=2047, dv=4095, vth=10 ** 5, bias_mant=-3, bias_exp=2))
    x = np.zeros((1, 4, 1), np.int32)
    x[0, 0, 0] = 1
    r = simulate(p, x, record=True)
    np.testing.assert_array_equal(r.u["a"][0, :, 0], [0, -128, -64, -32])
    # dv = 4095: v decays to trunc(v / 4096) (toward zero); bias = -3 << 2 = -12, not shifted by 6
    v = [0]
    for t, u in enumerate([0, -128, -64, -32]):
        prev = v[-1]
        dec = -((-prev * 1) // 4096) if prev < 0 else prev // 4096  # (4096 - 4095) / 4096, toward zero
        v.append(dec + u - 12)
    np.testing.assert_array_equal(r.v["a"][0, :, 0], v[1:])


def test_threshold_strict_and_zero_reset() -> None:
    # a_in = 2 -> u = 128 = vth << 6 for vth = 2: no spike at v == 128, spike once v > 128
    p = _chain([[2]], dict(du=4095, dv=4095, vth=2, bias_mant=[0]))
    x = np.zeros((1, 4, 1), np.int32)
    x[0, 0, 0] = 1
    r = simulate(p, x, record=True)
    assert r.spikes["a"][0, :, 0].tolist() == [0, 0, 0, 0]
    np.testing.assert_array_equal(r.v["a"][0, :, 0], [0, 128, 0, 0])
    p = _chain([[2]], dict(du=4095, dv=4095, vth=2, bias_mant=[1]))
    r = simulate(p, x, record=True)
    assert r.spikes["a"][0, :, 0].tolist() == [0, 1, 0, 0]
    np.testing.assert_array_equal(r.v["a"][0, :, 0], [1, 0, 1, 1])
    np.testing.assert_array_equal(r.u["a"][0, :, 0], [0, 128, 0, 0])  # u kept at the spike, then decays


def test_subtract_reset() -> None:
    p = _chain([[10]], dict(du=4095, dv=0, vth=4, reset_mode="subtract"))
    x = np.zeros((1, 3, 1), np.int32)
    x[0, 0, 0] = 1
    r = simulate(p, x, record=True)
    # u = 640 at step 1; v = 640 > 256 -> spike, v = 640 - 256 = 384; step 2: u = trunc(640/4096) = 0
    # step 2: u = trunc(640 / 4096) = 0, v = 384 + 0 > 256 -> spike again, v = 128
    np.testing.assert_array_equal(r.v["a"][0, :, 0], [0, 384, 128])
    assert r.spikes["a"][0, :, 0].tolist() == [0, 1, 1]


def test_current_wrap_and_voltage_clip() -> None:
    # 8 inputs x weight 254 << 7 = 260096 (exact path); a_in << 6 = 16646144 > 2^23 -> wraps to -131072
    p = _chain(np.full((1, 8), 254), dict(du=4095, dv=0, vth=2 ** 17 - 1), weight_exp=7)
    x = np.zeros((1, 3, 8), np.int32)
    x[0, 0] = 1
    r = simulate(p, x, record=True)
    assert r.u["a"][0, 1, 0] == 260096 * 64 - 2 ** 24
    # v saturates at -(2^23 - 1)
    p = _chain(np.full((1, 8), -256), dict(du=4095, dv=0, vth=0), weight_exp=5)
    x = np.ones((1, 6, 8), np.int32)
    r = simulate(p, x, record=True)
    assert r.v["a"][0, -1, 0] == fx.V_MIN


def test_delay_and_layer_timing() -> None:
    g1, g2 = _group("a", du=4095, dv=4095, vth=1), _group("b", du=4095, dv=4095, vth=10 ** 5)
    syns = [SynapseGroup("s1", "in", "a", Dense([[10]]), delay=3),
            SynapseGroup("s2", "a", "b", Dense([[6]]))]
    p = Program([g1, g2], syns, [InputPort("in", (1,))], output="b")
    x = np.zeros((1, 8, 1), np.int32)
    x[0, 0, 0] = 1
    r = simulate(p, x, record=True)
    assert np.flatnonzero(r.u["a"][0, :, 0]).tolist() == [4]          # 1 + delay 3
    assert np.flatnonzero(r.spikes["a"][0, :, 0]).tolist() == [4]
    assert np.flatnonzero(r.u["b"][0, :, 0]).tolist() == [5]          # next layer one step later
    assert r.u["b"][0, 5, 0] == 6 * 64


def test_recurrent_self_connection_timing() -> None:
    g = _group("a", du=4095, dv=4095, vth=1, bias_mant=[100])
    syns = [SynapseGroup("inp", "in", "a", Dense([[0]])),
            SynapseGroup("rec", "a", "a", Dense([[-4]]), recurrent=True)]
    p = Program([g], syns, [InputPort("in", (1,))], output="a")
    r = simulate(p, np.zeros((1, 4, 1), np.int32), record=True)
    # bias 100 > 64 -> spike at step 0; its recurrent input (-4 << 6) arrives at step 1
    assert r.spikes["a"][0, 0, 0] == 1
    assert r.u["a"][0, 0, 0] == 0 and r.u["a"][0, 1, 0] == -256


def test_weights_are_clipped_and_truncated_like_lava() -> None:
    p = _chain([[3], [-3], [255]], dict(du=4095, dv=4095, vth=10 ** 5))
    r = simulate(p, np.ones((1, 2, 1), np.int32), record=True)
    np.testing.assert_array_equal(r.u["a"][0, 1], np.array([2, -4, 254]) * 64)


def test_graded_input_and_weight_exp_floor() -> None:
    p = _chain([[6, -2]], dict(du=4095, dv=4095, vth=10 ** 5), weight_exp=-2, nmb=8)
    x = np.array([[[0, 0], [5, 3]]], np.int32)
    r = simulate(p, x, steps=3, record=True)
    # (6*5 - 2*3) = 24 >> 2 = 6 ; steps=3 pads a zero column
    assert r.u["a"][0, 2, 0] == 6 * 64
    p = _chain([[-2]], dict(du=4095, dv=4095, vth=10 ** 5), weight_exp=-2)
    r = simulate(p, np.array([[[1], [0]]], np.int32), record=True)
    assert r.u["a"][0, 1, 0] == (-2 >> 2) * 64 == -64  # floor, not toward zero


def test_sparse_storage_same_as_dense() -> None:
    r = np.random.default_rng(0)
    w = r.integers(-256, 256, (7, 9)) * (r.random((7, 9)) < 0.3)
    outs = []
    for storage in (Dense(w), Csr.from_dense(w), Structured(w)):
        p = _chain(w, dict(du=100, dv=200, vth=30))
        p = Program(p.groups, [SynapseGroup("s", "in", "a", storage)], p.inputs, output="a")
        outs.append(simulate(p, int_inputs(p, 3, 12, seed=1), record=True))
    assert synapse_process(SynapseGroup("x", "in", "a", Csr.from_dense(w))) == "sparse"
    assert outs[0].first_mismatch(outs[1]) is None and outs[0].first_mismatch(outs[2]) is None


# ----------------------------------------------------------------------------------------- early exit
def test_early_exit_removes_samples_and_keeps_others_identical() -> None:
    p = int_program((10, 8, 5), seed=2, recurrent=True)
    x = int_inputs(p, 6, 20, seed=3)
    full = simulate(p, x, record=True)
    seen = []

    def exit_fn(t, acc):
        seen.append(acc.shape[0])
        stop = np.zeros(acc.shape[0], bool)
        if t == 4:
            stop[[0, 2]] = True  # samples 0 and 2 of the 6
        if t == 9:
            stop[0] = True       # the first still running: sample 1
        return stop

    r = simulate(p, x, record=True, early_exit=exit_fn)
    assert r.steps_run.tolist() == [5, 10, 5, 20, 20, 20]
    assert seen[:5] == [6] * 5 and seen[5:10] == [4] * 5 and seen[10:] == [3] * 10  # really removed
    for b, n in enumerate(r.steps_run):
        for g in p.groups:
            for f in ("spikes", "u", "v"):
                a, ref = getattr(r, f)[g][b], getattr(full, f)[g][b]
                np.testing.assert_array_equal(a[:n], ref[:n])
                assert not a[n:].any()


def test_early_exit_receives_accumulated_output() -> None:
    p = int_program((10, 8, 5), seed=4)
    x = int_inputs(p, 3, 6, seed=0)
    full = simulate(p, x)
    got = {}

    def exit_fn(t, acc):
        got[t] = acc
        return np.zeros(acc.shape[0], bool)

    simulate(p, x, early_exit=exit_fn)
    for t in range(6):
        np.testing.assert_array_equal(got[t], full.output[:, :t + 1].astype(np.int64).sum(axis=1))


# ------------------------------------------------------------------------------------------ input checks
def test_input_validation_names_port() -> None:
    p = _chain([[2, 2]])
    with pytest.raises(InputError, match="node 'in'.*expected shape"):
        simulate(p, np.zeros((1, 4, 3), np.int32))
    with pytest.raises(InputError, match="integer or bool"):
        simulate(p, np.zeros((1, 4, 2), np.float32))
    with pytest.raises(InputError, match=r"binary spikes in \[0, 1\], got values in \[2, 2\]"):
        simulate(p, np.full((1, 4, 2), 2, np.int32))
    with pytest.raises(InputError, match="no such input port"):
        simulate(p, {"bogus": np.zeros((1, 4, 2), np.int32)})
    pg = _chain([[2, 2]], nmb=3)
    with pytest.raises(InputError, match=r"3-bit graded payloads in \[0, 7\]"):
        simulate(pg, np.full((1, 4, 2), 8, np.int32))
    simulate(pg, np.full((1, 4, 2), 7, np.int32))
    with pytest.raises(InputError, match="no such neuron group"):
        simulate(p, np.zeros((1, 4, 2), np.int32), record=["nope"])


def test_two_input_ports_by_name() -> None:
    g = _group("a", n=2, du=4095, dv=4095, vth=10 ** 5)
    syns = [SynapseGroup("s1", "p", "a", Dense([[2], [0]])), SynapseGroup("s2", "q", "a", Dense([[0, 0], [4, 4]]))]
    prog = Program([g], syns, [InputPort("p", (1,)), InputPort("q", (2,))], output="a")
    r = simulate(prog, {"p": np.ones((1, 2, 1), np.int32), "q": np.ones((1, 2, 2), np.int32)}, record=True)
    np.testing.assert_array_equal(r.u["a"][0, 1], [128, 512])
    with pytest.raises(InputError, match="mapping"):
        simulate(prog, np.ones((1, 2, 1), np.int32))


# ------------------------------------------------------------------- vectorised paths vs a plain loop
def _naive_simulate(program: Program, x: np.ndarray, steps: int):
    """Per sample, per step, straight from toolchain.fixedpoint (no batching, no float paths); v starts at
    ``v_init``."""
    port = program.inputs[0]
    B = x.shape[0]
    res = {f: {g: np.zeros((B, steps, program.groups[g].size), np.int64) for g in program.groups}
           for f in ("spikes", "u", "v")}
    for b in range(B):
        u = {g: np.zeros(grp.size, np.int32) for g, grp in program.groups.items()}
        v = {g: np.broadcast_to(np.asarray(grp.v_init), (grp.size,)).astype(np.int32).copy()
             for g, grp in program.groups.items()}
        pending = {}  # (step, group) -> list of int32 activations
        for t in range(steps):
            outs = {}
            for g, grp in program.groups.items():
                a = np.zeros(grp.size, np.int32)
                for c in pending.pop((t, g), []):
                    a = (a + c).astype(np.int32)
                u[g], v[g], s = fx.lif_step(u[g], v[g], a, grp.du, grp.dv, grp.vth, grp.bias_mant, grp.bias_exp,
                                            grp.reset_mode)
                outs[g] = s
                res["spikes"][g][b, t], res["u"][g][b, t], res["v"][g][b, t] = s, u[g], v[g]
            outs[port.name] = x[b, t].reshape(-1) if t < x.shape[1] else np.zeros(port.size, np.int64)
            for syn in program.synapses:
                w = fx.lava_weights(syn.weight.to_dense(), syn.num_weight_bits, syn.sign_mode)
                graded = syn.src == port.name and port.num_message_bits > 0
                c = fx.synaptic_input(w, outs[syn.src], syn.weight_exp, graded, synapse_process(syn))
                pending.setdefault((t + 1 + syn.delay, syn.dst), []).append(c)
    return res


@pytest.mark.parametrize("seed", range(10))
def test_simulate_matches_plain_fixedpoint_loop(seed: int) -> None:
    r = np.random.default_rng(seed)
    opts = dict(storage=["dense", "csr", "structured", "mixed"][seed % 4], recurrent=bool(seed % 2),
                skip=seed % 3 == 0, graded_bits=[0, 0, 4, 24][seed % 4], max_delay=[0, 2, 5][seed % 3],
                reset_mode=["zero", "subtract", "mixed"][seed % 3], per_neuron=seed % 4 != 1,
                extreme=seed >= 6, readout=seed % 5 == 0, sign_modes=("mixed", "excitatory", "inhibitory"),
                weight_bits=(3, 6, 8), weight_exp=(-8, 7) if seed >= 6 else (-2, 1))
    sizes = [int(r.integers(2, 14))] + [int(r.integers(1, 10)) for _ in range(int(r.integers(1, 4)))]
    p = int_program(sizes, seed=seed, **opts)
    x = int_inputs(p, 3, 12, seed=seed)
    got = simulate(p, x, steps=14, record=True)
    want = _naive_simulate(p, x, 14)
    for f in ("spikes", "u", "v"):
        for g in p.groups:
            np.testing.assert_array_equal(getattr(got, f)[g], want[f][g], err_msg=f"{f} of {g}")
    exact = simulate(p, x, steps=14, record=True, force_exact=True)
    assert got.first_mismatch(exact) is None


def test_output_is_v_for_a_readout() -> None:
    p = int_program((6, 5, 3), seed=1, readout=True)
    r = simulate(p, int_inputs(p, 2, 8))
    assert r.output_kind == "v" and r.output.dtype == np.int32
    assert set(r.v) == {p.output} and not r.spikes
    assert r.output.shape == (2, 8, 3)


# ------------------------------------------------------------------------------------------ snnc simulate
def test_cli_simulate_reference_writes_npz(tmp_path, capsys) -> None:
    from toolchain.cli.main import main
    p = int_program((8, 6, 4), seed=3, recurrent=True)
    build = tmp_path / "build"
    p.save(build)
    x = int_inputs(p, 3, 7, seed=1)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "out.npz"
    assert main(["simulate", str(build), "--input", str(tmp_path / "x.npy"), "--steps", "9", "-o", str(out),
                 "--record"]) == 0
    ref = simulate(p, x, steps=9, record=True)
    with np.load(out) as z:
        np.testing.assert_array_equal(z["spikes"], ref.output)
        for g in p.groups:
            np.testing.assert_array_equal(z[f"u/{g}"], ref.u[g])
            np.testing.assert_array_equal(z[f"v/{g}"], ref.v[g])
            np.testing.assert_array_equal(z[f"spikes/{g}"], ref.spikes[g])
    assert "3 samples x 9 steps" in capsys.readouterr().out
    # a bad input: one error line naming the port, nothing written
    np.save(tmp_path / "bad.npy", np.full((1, 4, 8), 3, np.int32))
    assert main(["simulate", str(build), "--input", str(tmp_path / "bad.npy"), "-o",
                 str(tmp_path / "bad_out.npz")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: node 'in'") and "binary spikes" in err
    assert not (tmp_path / "bad_out.npz").exists()


@pytest.mark.parametrize("delay", [0, 2])
@pytest.mark.parametrize("wmax", [2, 254])
def test_graded_24bit_sums_beyond_int32(delay: int, wmax: int) -> None:
    """Graded 24-bit payloads: the sum of a row leaves int32 (Dense/Sparse wrap it before the shift, DelayDense
    sums in int64) and, for wmax = 254, single DelayDense products leave int32 too."""
    r = np.random.default_rng(delay + wmax)
    w = r.integers(-wmax, wmax + 1, (3, 200))
    g = _group("a", n=3, du=4095, dv=4095, vth=2 ** 17 - 1)
    for storage in (Dense(w), Csr.from_dense(w)):
        p = Program([g], [SynapseGroup("s", "in", "a", storage, weight_exp=-3, delay=delay)],
                    [InputPort("in", (200,), num_message_bits=24)], output="a")
        x = r.integers(2 ** 23, 2 ** 24, (2, 3, 200)).astype(np.int32)
        got = simulate(p, x, steps=4 + delay, record=True)
        want = _naive_simulate(p, x, 4 + delay)
        for f in ("u", "v", "spikes"):
            np.testing.assert_array_equal(getattr(got, f)["a"], want[f]["a"])


def test_first_mismatch_counts_a_group_missing_from_one_record() -> None:
    """A group (or field) recorded by one side only is a mismatch: what was not recorded was not shown equal."""
    p = int_program((6, 5, 4), seed=1)
    x = int_inputs(p, 2, 6, seed=1)
    a = simulate(p, x, record=True)
    assert a.first_mismatch(simulate(p, x, record=True)) is None
    for f in ("spikes", "u", "v"):
        b = simulate(p, x, record=True)
        del getattr(b, f)["g0"]
        mm = a.first_mismatch(b)
        assert mm is not None and mm.missing and (mm.group, mm.field, mm.a, mm.b) == ("g0", f, 1, 0)
        assert "recorded by only one side" in str(mm)
        mm = b.first_mismatch(a)  # and the other way round
        assert mm is not None and (mm.a, mm.b) == (0, 1)
    only_out = simulate(p, x, record=False)
    assert a.first_mismatch(only_out).missing  # a full record is not "equal" to an output-only one


# ------------------------------------------------- event-driven products, int32/float64 state (issue 14)
def _every_path(p, x, steps, **kw):
    """The same run computed every way the simulator can: the product chosen by activity, always event-driven,
    always dense, and the int32 emulation of every group (with both product paths)."""
    runs = {f"event={ev}": simulate(p, x, steps=steps, record=True, event=ev, **kw) for ev in (None, True, False)}
    for ev in (True, False):
        runs[f"int32 emulation, event={ev}"] = simulate(p, x, steps=steps, record=True, force_exact=True, event=ev,
                                                         **kw)
    return runs


def _assert_same(runs) -> None:
    names = list(runs)
    for n in names[1:]:
        mm = runs[names[0]].first_mismatch(runs[n])
        assert mm is None, f"{names[0]} vs {n}: {mm}"


@pytest.mark.parametrize("seed", range(16))
def test_event_dense_and_int32_paths_equal_on_every_spike_u_v(seed: int) -> None:
    """Random programs at low (2%) and high (50%) input activity, batches below and above the int32-state
    threshold, graded inputs, delays, skip connections, recurrence, extreme parameters, saturation: every spike,
    u and v of every group at every step is the same on the event-driven, dense and int32-emulation paths, and
    equals the plain per-sample fixedpoint loop."""
    from toolchain.sim import reference as R
    from toolchain.testing import random_path_case
    p, x = random_path_case(seed, batches=(3, R._INT_STATE_BATCH + 2))
    runs = _every_path(p, x, 18)
    _assert_same(runs)
    if seed < 6:  # the plain loop is slow: a subset
        want = _naive_simulate(p, x, 18)
        got = runs["event=True"]
        for f in ("spikes", "u", "v"):
            for g in p.groups:
                np.testing.assert_array_equal(getattr(got, f)[g], want[f][g], err_msg=f"{f} of {g}")


@pytest.mark.parametrize("int_from", [1, 10 ** 9])
def test_float_path_state_int32_and_float64_agree(monkeypatch, int_from: int) -> None:
    """The float LIF path keeps its state in int32 (large batches) or float64 (small ones): forced either way,
    both equal the int32 emulation at every step, wrap and clip included."""
    from toolchain.sim import reference as R
    from toolchain.testing import make_active
    monkeypatch.setattr(R, "_INT_STATE_BATCH", int_from)
    for seed in range(4):
        p = int_program((30, 20, 12, 6), seed=seed, recurrent=True, max_delay=2, reset_mode="mixed",
                        extreme=seed % 2 == 1, v_init=True, weight_exp=(-3, 2))
        x = int_inputs(p, 5, 20, rate=0.3, seed=seed)
        p = make_active(p, x, saturate=True)
        _assert_same(_every_path(p, x, 22))


def test_event_path_chosen_by_activity(monkeypatch) -> None:
    """``event=None`` takes the event-driven product for sparse activity and the dense one for dense activity
    (a behavioural check of the choice, not a timing)."""
    from toolchain.sim import reference as R
    calls = {"event": 0}
    orig = R._Synapse._event_product

    def counting(self, s):
        calls["event"] += 1
        return orig(self, s)

    monkeypatch.setattr(R._Synapse, "_event_product", counting)
    p = int_program((300, 40, 5), seed=1)
    for rate, expect_event in ((0.01, True), (0.6, False)):
        calls["event"] = 0
        x = int_inputs(p, 40, 6, rate=rate, seed=2)
        simulate(p, x, event=None)
        first_layer = 6  # one product per step for the input synapse group
        assert (calls["event"] >= first_layer) == expect_event, (rate, calls)


@pytest.mark.parametrize("event", [True, False])
def test_early_exit_on_event_and_int_state_paths(event: bool) -> None:
    """Samples leaving the batch mid-run (the ring buffer, int32 state and event-driven products shrink with it):
    the others' records equal the full run's, on both product paths and both state types."""
    from toolchain.sim import reference as R
    p = int_program((40, 16, 8), seed=5, recurrent=True, max_delay=3)
    batch = R._INT_STATE_BATCH + 4
    x = int_inputs(p, batch, 24, rate=0.05, seed=5)
    full = simulate(p, x, record=True, event=event)
    assert full.first_mismatch(simulate(p, x, record=True, force_exact=True)) is None

    def exit_fn(t, acc):
        stop = np.zeros(acc.shape[0], bool)
        if t in (3, 9):
            stop[: max(1, acc.shape[0] // 3)] = True
        return stop

    for exact in (False, True):  # the float path's ring buffer / the int32 path's per-synapse queues
        r = simulate(p, x, record=True, event=event, early_exit=exit_fn, force_exact=exact)
        assert r.steps_run.min() == 4 and r.steps_run.max() == 24
        for b, n in enumerate(r.steps_run):
            for g in p.groups:
                for f in ("spikes", "u", "v"):
                    np.testing.assert_array_equal(getattr(r, f)[g][b, :n], getattr(full, f)[g][b, :n])
                    assert not getattr(r, f)[g][b, n:].any()


def test_event_paths_with_bias_port_and_periodic_reset() -> None:
    """A bias input port (replacing a group's bias, per sample and per step) and lava-dl's periodic reset on the
    float LIF path, at both state types and on every product path."""
    import dataclasses
    from toolchain.sim import reference as R
    p = int_program((30, 12, 6), seed=3, recurrent=True)
    g0, g1 = p.groups["g0"], p.groups["g1"]
    groups = [dataclasses.replace(g0, reset_interval=4, reset_offset=1), dataclasses.replace(g1, reset_interval=3)]
    ports = list(p.inputs) + [InputPort("b", (g0.size,), kind="bias", target="g0")]
    q = Program(groups, list(p.synapses), ports, output="g1")
    r = np.random.default_rng(0)
    for batch in (2, R._INT_STATE_BATCH + 1):
        x = int_inputs(q, batch, 15, rate=0.1, seed=1)
        for bias in (r.integers(-4096, 4096, (batch, g0.size)), r.integers(-300, 300, (batch, 15, g0.size))):
            runs = _every_path(q, {"in": x, "b": bias}, 15)
            _assert_same(runs)
            assert any(runs["event=None"].spikes[g].any() for g in q.groups)


def test_event_path_graded_and_float64_products() -> None:
    """Graded payloads weight the gathered rows; 24-bit payloads push the product to float64 (bound >= 2^24) or
    int64-wrapping Lava semantics; the event path equals the dense path and the plain loop there too."""
    r = np.random.default_rng(7)
    for bits, wmax in ((4, 120), (16, 254), (24, 254)):
        w = r.integers(-wmax, wmax + 1, (5, 64))
        for storage in (Dense(w), Csr.from_dense(w)):
            for delay in (0, 2):
                g = _group("a", n=5, du=300, dv=100, vth=2 ** 17 - 1)
                p = Program([g], [SynapseGroup("s", "in", "a", storage, weight_exp=-7, delay=delay)],
                            [InputPort("in", (64,), num_message_bits=bits)], output="a")
                x = (r.integers(0, 2 ** bits, (3, 6, 64)) * (r.random((3, 6, 64)) < 0.05)).astype(np.int32)
                runs = _every_path(p, x, 8 + delay)
                _assert_same(runs)
                want = _naive_simulate(p, x, 8 + delay)
                for f in ("u", "v", "spikes"):
                    np.testing.assert_array_equal(getattr(runs["event=True"], f)["a"], want[f]["a"])


@pytest.mark.parametrize("batch", [1, 70])
def test_event_choice_single_sample_and_sampled_activity(batch: int) -> None:
    """Batch 1 (the event path's one-row CSR, the matrix-vector dense path) and a batch above 64 (the activity
    estimate from every k-th sample) on every path, sparse and dense input, a readout group stopped early."""
    p = int_program((300, 30, 6), seed=9, recurrent=True, readout=True, max_delay=1)
    for rate in (0.01, 0.3):
        x = int_inputs(p, batch, 10, rate=rate, seed=batch)
        _assert_same(_every_path(p, x, 12))
        full = simulate(p, x, record=True)

        def exit_fn(t, acc):  # acc: summed v of the readout
            return np.arange(acc.shape[0]) % 2 == (t % 2) if t in (4, 7) else np.zeros(acc.shape[0], bool)

        for ev in (True, False):
            r = simulate(p, x, record=True, event=ev, early_exit=exit_fn)
            for b, n in enumerate(r.steps_run):
                for f in ("spikes", "u", "v"):
                    for g in p.groups:
                        np.testing.assert_array_equal(getattr(r, f)[g][b, :n], getattr(full, f)[g][b, :n])


@pytest.mark.parametrize("delay", [0, 2])
@pytest.mark.parametrize("sparse", [False, True])
def test_graded_sums_beyond_int32_into_the_float_path(delay: int, sparse: bool) -> None:
    """Graded 24-bit payloads whose Dense/Sparse sums (delay 0: Lava wraps the int32 dot product before the
    shift) or DelayDense products (delay 2: Lava wraps each product) leave int32, shifted so far right that the
    destination still runs the float LIF path: the int32 activation, wrapped as Lava wraps it, enters the float
    ring buffer exactly."""
    r = np.random.default_rng(11 + delay)
    w = r.integers(-254, 255, (4, 32))
    g = _group("a", n=4, du=100, dv=50, vth=300)
    storage = Csr.from_dense(w) if sparse else Dense(w)
    for e in (-28, -30):
        p = Program([g], [SynapseGroup("s", "in", "a", storage, weight_exp=e, delay=delay)],
                    [InputPort("in", (32,), num_message_bits=24)], output="a")
        x = r.integers(2 ** 23, 2 ** 24, (3, 6, 32)).astype(np.int32)
        runs = _every_path(p, x, 9)
        _assert_same(runs)
        want = _naive_simulate(p, x, 9)
        for f in ("u", "v", "spikes"):
            np.testing.assert_array_equal(getattr(runs["event=None"], f)["a"], want[f]["a"], err_msg=f"{f}, e={e}")


@pytest.mark.parametrize("int_from", [1, 10 ** 9])
def test_float_path_range_bounds_hold(monkeypatch, int_from: int) -> None:
    """The scalar bounds that let the float LIF path skip its wrap/clip reductions hold every value of u and v
    after every update and reset (extreme parameters: wraps and clips happen), and the records still equal the
    int32 emulation."""
    from toolchain.sim import reference as R
    from toolchain.testing import make_active
    monkeypatch.setattr(R, "_INT_STATE_BATCH", int_from)
    checked = {"u": 0, "v": 0, "max_calls": 0}
    ops_cls = R._InPlaceOps
    wrap, clip, reset = ops_cls.wrap_current, ops_cls.clip, ops_cls.reset
    orig_max = R._max

    def counting_max(*a, **k):
        checked["max_calls"] += 1
        return orig_max(*a, **k)

    def wrap_checked(self, x):
        out = wrap(self, x)
        if x.size:
            assert self.u_lo <= x.min() and x.max() <= self.u_hi, (self.u_lo, x.min(), x.max(), self.u_hi)
            checked["u"] += 1
        return out

    def clip_checked(self, x, lo, hi):
        out = clip(self, x, lo, hi)
        if x.size:
            assert self.v_lo <= x.min() and x.max() <= self.v_hi
            checked["v"] += 1
        return out

    def reset_checked(self, v, s, vth, subtract):
        out = reset(self, v, s, vth, subtract)
        if v.size:
            assert self.v_lo <= v.min() and v.max() <= self.v_hi
        return out

    monkeypatch.setattr(ops_cls, "wrap_current", wrap_checked)
    monkeypatch.setattr(ops_cls, "clip", clip_checked)
    monkeypatch.setattr(ops_cls, "reset", reset_checked)
    monkeypatch.setattr(R, "_max", counting_max)
    for seed in range(4):
        p = int_program((30, 20, 12, 6), seed=seed, recurrent=True, max_delay=2, reset_mode="mixed",
                        extreme=seed % 2 == 1, v_init=True, weight_exp=(-3, 2))
        x = int_inputs(p, 5, 20, rate=0.3, seed=seed)
        if seed % 2:
            p = make_active(p, x, saturate=True)
        want = simulate(p, x, record=True, force_exact=True)
        got = simulate(p, x, record=True)
        assert want.first_mismatch(got) is None
    assert checked["u"] > 0 and checked["v"] > 0
    # without the bounds every wrap would run its max reduction: some were skipped
    assert checked["max_calls"] < checked["u"]
