"""Bias onset: a compiled group starts at the voltage that hides its bias until its input arrives.

A compiled network delays every layer by one step per synapse layer (its ``latency_steps``), but a bias acts from
step 0. Without a correction a deep layer integrates its bias alone for ``latency`` steps and then runs from a
different state than the float model. The quantiser sets ``NeuronGroup.v_init``
(:func:`toolchain.fixedpoint.bias_onset_voltage`) so that the group reaches its first input step in the state the
float model starts from: the compiled network is then the float network's integer dynamics delayed, spike for
spike and state for state.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from toolchain import fixedpoint as fx
from toolchain.compile import compile_graph
from toolchain.errors import ToolchainError
from toolchain.ir import LI, LIF, Affine, Dense, Graph, Input, Output
from toolchain.program import Program
from toolchain.sim.reference import simulate
from toolchain.testing import int_inputs, int_program, rng


def _run_from(v0, steps, dv, vth, bm, be, reset="zero"):
    """``steps`` LIF steps with no input from (u = 0, v = v0): final v and whether any neuron spiked."""
    n = np.asarray(bm).size
    u, v = np.zeros(n, np.int32), np.asarray(v0, np.int32)
    hit = np.zeros(n, bool)
    for _ in range(steps):
        u, v, s = fx.lif_step(u, v, np.zeros(n, np.int32), 0, dv, vth, bm, be, reset)
        hit |= s
    return v, hit


@pytest.mark.parametrize("steps", [1, 2, 5])
@pytest.mark.parametrize("reset", ["zero", "subtract"])
def test_start_voltage_hides_the_bias_exactly(steps, reset):
    r = rng(steps)
    n = 400
    dv = r.integers(0, 1500, n)
    vth = r.integers(200, 5000, n)
    bm = r.integers(-4096, 4096, n)
    be = r.integers(0, 3, n)
    # biases small enough against the threshold that the negative ones can start high without spiking
    bm = np.where(np.abs(fx.effective_bias(bm, be)) * steps > (vth << 6) // 4, bm // 64, bm)
    v0, res, early = fx.bias_onset_voltage(dv, vth, bm, be, steps, reset)
    assert v0.dtype == np.int32 and res.dtype == np.int32
    assert np.all(res == 0) and not early.any()
    v_end, spiked = _run_from(v0, steps, dv, vth, bm, be, reset)
    assert not spiked.any()
    assert np.all(fx.decay_rtz(v_end, dv) == 0)  # the first input step inherits nothing
    assert np.any(v0 < 0) and np.any(v0 > 0)  # both signs of bias were really compensated
    # a plain start at 0 would not have hidden them
    v_plain, _ = _run_from(np.zeros(n), steps, dv, vth, bm, be, reset)
    assert np.any(fx.decay_rtz(v_plain, dv) != 0)


def test_start_voltage_edge_cases():
    dv = np.array([0, 4096, 500, 4095, 300, 0])
    vth = np.array([100, 100, 100, 100, 100, 2 ** 17 - 1])
    bm = np.array([0, 1000, 40, 3000, -4000, 4000])
    be = np.array([0, 0, 0, 7, 7, 7])
    v0, res, early = fx.bias_onset_voltage(dv, vth, bm, be, 3)
    assert v0[0] == 0 and res[0] == 0           # no bias: nothing to hide
    assert v0[1] == 0 and res[1] == 0           # dv = 4096 forgets v every step: already exact
    assert res[2] == 0 and v0[2] < 0
    # dv = 4095 keeps 1/4096 of a bias of 3000 << 7, far above the threshold: it fires from any start
    assert res[3] != 0 and early[3]
    # a negative bias of 4000 << 7 per step would have to start far above the threshold: it starts as high as it
    # can without spiking, and says so in its residual
    _, spiked = _run_from(v0, 3, dv, vth, bm, be)
    assert list(spiked) == list(early) == [False, False, False, True, False, False] and res[4] < 0
    assert v0[5] == -3 * (4000 << 7) and res[5] == 0  # no leak: start at minus three steps of bias
    v0_long, res_long, _ = fx.bias_onset_voltage(dv[5:], vth[5:], bm[5:], be[5:], 20)
    assert v0_long[0] == fx.V_MIN and res_long[0] > 0    # 20 x 512000 does not fit 24 bits: saturates
    assert np.all(fx.bias_onset_voltage(dv, vth, bm, be, 0)[0] == 0)


# ------------------------------------------------------------------------------ compiled network = delayed float
def _biased_graph(seed: int, reset: str) -> Graph:
    """Input(10) -> Affine -> LIF(12) -> Affine -> LIF(9) -> Affine -> LI(4), biases of both signs."""
    r = rng(seed)
    nodes, edges, prev, n_prev = [Input("input", shape=(10,))], [], "input", 10
    for k, (n, kind) in enumerate([(12, "lif"), (9, "lif"), (4, "li")]):
        w = r.normal(0.0, 6.0 / np.sqrt(n_prev), (n, n_prev))
        b = r.uniform(-0.15, 0.25, n)
        nodes.append(Affine(f"fc{k}", weight=Dense(w), bias=b))
        if kind == "lif":
            nodes.append(LIF(f"p{k}", shape=(n,), tau=r.uniform(0.004, 0.03, n), v_threshold=1.0,
                             reset_mode=reset))
        else:
            nodes.append(LI(f"p{k}", shape=(n,), tau=0.02))
        edges += [(prev, f"fc{k}"), (f"fc{k}", f"p{k}")]
        prev, n_prev = f"p{k}", n
    nodes.append(Output("output", shape=(4,)))
    edges.append((prev, "output"))
    return Graph(nodes, edges, dt=1e-3)


def _undelayed(program: Program, x: np.ndarray):
    """The Program's integer dynamics without the synaptic delay: every group receives its sources' spikes of
    the same step (what the float graph computes, with the compiled integers). Feed-forward chains only."""
    batch, steps = x.shape[:2]
    groups = list(program.groups.values())
    out = {g.name: {"s": [], "u": [], "v": []} for g in groups}
    state = {g.name: (np.zeros((batch, g.size), np.int32), np.zeros((batch, g.size), np.int32)) for g in groups}
    for t in range(steps):
        now = {program.inputs[0].name: x[:, t].reshape(batch, -1)}
        for g in groups:  # groups are in execution (topological) order
            a = np.zeros((batch, g.size), np.int64)
            for syn in program.synapses_into(g.name):
                assert syn.delay == 0 and not syn.recurrent
                w = fx.lava_weights(syn.weight.to_dense(), syn.num_weight_bits, syn.sign_mode)
                a += fx.synaptic_input(w, now[syn.src], syn.weight_exp)
            u, v = state[g.name]
            u, v, s = fx.lif_step(u, v, fx.wrap_int32(a), g.du, g.dv, g.vth, g.bias_mant, g.bias_exp, g.reset_mode)
            state[g.name] = (u, v)
            now[g.name] = s
            for k, val in (("s", s), ("u", u), ("v", v)):
                out[g.name][k].append(val)
    return {g: {k: np.stack(v, 1) for k, v in d.items()} for g, d in out.items()}


@pytest.mark.parametrize("reset", ["zero", "subtract"])
def test_compiled_network_is_the_undelayed_network_delayed_by_its_latency(reset):
    """Every spike, u and v of every group at step t + latency equals the undelayed integer network at step t —
    with ``align_bias`` (the default); without it the biased deep layers start from another state and differ."""
    import warnings
    graph = _biased_graph(3, reset)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every group can hide its bias: no warning
        prog = compile_graph(graph, "loihi2")
    onsets = {g: d["bias_onset"] for g, d in prog.quant_report["groups"].items()}
    assert onsets == {"p0": "aligned", "p1": "aligned", "p2": "aligned"}
    lat = prog.metadata["latency_steps"]
    assert lat == {"p0": 1, "p1": 2, "p2": 3}
    assert all(np.any(prog.groups[g].v_init) for g in lat)
    T = 25
    x = int_inputs(prog, 3, T, rate=0.3, seed=4)
    steps = T + max(lat.values())
    xin = np.concatenate([x, np.zeros((3, steps - T, x.shape[2]), x.dtype)], axis=1)
    ref = simulate(prog, xin, record=True)
    want = _undelayed(prog, x)
    for g, L in lat.items():
        assert np.array_equal(ref.spikes[g][:, L:L + T], want[g]["s"]), g
        assert np.array_equal(ref.u[g][:, L:L + T], want[g]["u"]), g
        assert np.array_equal(ref.v[g][:, L:L + T], want[g]["v"]), g
        assert not ref.spikes[g][:, :L].any()  # nothing fires before the input arrives
    assert sum(int(want[g]["s"].sum()) for g in ("p0", "p1")) > 20  # the layers are really active
    # the same network compiled without the alignment integrates its biases early: it differs
    plain = compile_graph(graph, "loihi2", align_bias=False)
    assert all(not np.any(g.v_init) for g in plain.groups.values())
    ref0 = simulate(plain, xin, record=True)
    assert not np.array_equal(ref0.v["p2"][:, 3:3 + T], want["p2"]["v"])


def test_v_init_survives_save_and_load_and_old_builds_read_as_zero(tmp_path):
    prog = compile_graph(_biased_graph(5, "zero"), "loihi2")
    assert any(np.any(g.v_init) for g in prog.groups.values())
    back = Program.load(prog.save(tmp_path / "b"))
    for name, g in prog.groups.items():
        assert np.array_equal(back.groups[name].v_init, g.v_init) and back.groups[name].v_init.dtype == np.int32
    # a version-1 build (before v_init existed) loads with v_init = 0
    old = tmp_path / "old"
    compile_graph(_biased_graph(5, "zero"), "loihi2", align_bias=False).save(old)
    doc = json.loads((old / "program.json").read_text())
    doc["version"] = 1
    (old / "program.json").write_text(json.dumps(doc))
    arrays = dict(np.load(old / "arrays.npz"))
    np.savez(old / "arrays.npz", **{k: v for k, v in arrays.items() if not k.endswith("/v_init")})
    assert all(not np.any(g.v_init) for g in Program.load(old).groups.values())


def test_v_init_out_of_range_names_the_group_and_field():
    p = int_program((4, 3), seed=0)
    g = next(iter(p.groups.values()))
    import dataclasses
    with pytest.raises(ToolchainError) as ei:
        dataclasses.replace(g, v_init=np.full(g.size, 2 ** 23))
    assert ei.value.node == g.name and ei.value.field == "v_init"


def test_netx_refuses_an_initial_voltage_and_accepts_the_unaligned_build(tmp_path):
    from toolchain.backends.netx import check_netx
    graph = _biased_graph(7, "zero")
    prog = compile_graph(graph, "loihi2", vth_max=256)
    with pytest.raises(ToolchainError) as ei:
        check_netx(prog, tmp_path / "a.net")
    assert ei.value.field == "v_init" and "align_bias=False" in str(ei.value)
    assert not (tmp_path / "a.net").exists()
    plain = compile_graph(graph, "loihi2", vth_max=256, align_bias=False)
    try:
        check_netx(plain, tmp_path / "b.net")
    except ToolchainError as exc:  # anything else netx cannot hold is fine here, but not the initial voltage
        assert exc.field != "v_init"
