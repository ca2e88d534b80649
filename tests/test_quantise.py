"""Quantise: NIR parameters at dt -> Lava fixed_pt integers; the integers satisfy Lava's constraints."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from toolchain.compile import compile_graph
from toolchain.errors import GraphError, QuantisationError
from toolchain.fixedpoint import lava_weights
from toolchain.ir import (IF, LI, LIF, Affine, CubaLI, CubaLIF, Delay, Graph, Input, Integrator, Linear,
                          Output)
from toolchain.targets import load_target

DT = 1e-3
L2 = load_target("loihi2")


def _one_layer(pop, w, n_in=None, affine_bias=None):
    n_out = pop.size
    w = np.asarray(w, dtype=np.float64).reshape(n_out, -1)
    syn = Affine("w", weight=w, bias=affine_bias) if affine_bias is not None else Linear("w", weight=w)
    return Graph([Input("in", shape=(w.shape[1],)), syn, pop, Output("out", shape=(n_out,))],
                 [("in", "w"), ("w", pop.name), (pop.name, "out")], dt=DT)


def _compile(g, **kw):
    return compile_graph(g, "loihi2", partition=False, **kw)


def _effective(prog, syn="w"):
    """Float weight each integer synapse stands for: W * 2^(e+6) / S_i (v units per spike / scale)."""
    s = next(x for x in prog.synapses if x.name == syn)
    S = np.broadcast_to(np.asarray(prog.metadata["v_scale"][s.dst], dtype=np.float64), (s.weight.shape[0],))
    return s.weight.to_dense() * 2.0 ** (s.weight_exp + 6) / S[:, None], s


def test_lif_mapping():
    tau = np.array([0.01, 0.02, 0.05])
    theta = np.array([0.5, 2.0, 1.0])
    r = np.array([1.0, 0.5, 2.0])
    w = np.random.default_rng(0).normal(0, 1, (3, 4))
    p = _compile(_one_layer(LIF("lif", shape=(3,), tau=tau, r=r, v_threshold=theta), w))
    g = p.groups["lif"]
    assert np.all(g.du == 4095)  # u = a_in << 6 every step: the current follows the input
    np.testing.assert_array_equal(g.dv, np.rint(4096 * DT / tau))
    assert np.unique(g.vth).size == 1 and g.spiking and g.reset_mode == "zero"
    S = np.asarray(p.metadata["v_scale"]["lif"])
    np.testing.assert_allclose(64.0 * g.vth / S, theta, rtol=1e-12)  # thresholds exact (folded into weights)
    eff, s = _effective(p)
    ideal = (DT / tau * r)[:, None] * w
    # errors in units of each neuron's threshold (what decides spikes) stay within half a mantissa step
    err = np.abs(eff - ideal) / theta[:, None]
    assert err.max() <= (np.abs(ideal) / theta[:, None]).max() * 2.0 ** -7
    assert s.sign_mode == "mixed" and np.abs(s.weight.to_dense()).max() >= 128  # mantissa well used
    q = p.quant_report["groups"]["lif"]
    assert q["threshold_rel_error"] == 0.0 and q["decay_u_rel_error"] == 0.0
    assert 0 < q["decay_v_rel_error"] < 1e-2 and q["latency_steps"] == 1
    assert p.quant_report["synapses"]["w"]["weight_rel_error_max"] <= 2.0 ** -7


def test_cubalif_mapping_uses_lavas_du_offset():
    tau_syn, tau_mem = 5e-3, 2e-2
    pop = CubaLIF("c", shape=(2,), tau_syn=tau_syn, tau_mem=tau_mem, r=3.0, w_in=0.5, v_threshold=1.0)
    w = np.array([[0.4, -0.2], [0.1, 0.3]])
    p = _compile(_one_layer(pop, w))
    g = p.groups["c"]
    assert np.all(g.du == round(4096 * DT / tau_syn) - 1)  # Lava decays u by du + 1
    assert np.all(g.dv == round(4096 * DT / tau_mem))
    eff, _ = _effective(p)
    ideal = (DT / tau_mem) * 3.0 * (DT / tau_syn) * 0.5 * w
    assert np.max(np.abs(eff - ideal)) <= np.abs(ideal).max() * 2.0 ** -7


def test_if_and_readouts():
    p = _compile(_one_layer(IF("i", shape=(2,), r=2.0, v_threshold=1.5), [[0.3, 0.7], [0.2, -0.1]]))
    g = p.groups["i"]
    assert np.all(g.dv == 0) and np.all(g.du == 4095)
    eff, _ = _effective(p)
    np.testing.assert_allclose(eff, 2.0 * np.array([[0.3, 0.7], [0.2, -0.1]]), atol=0.71 * 2.0 ** -7 * 2)
    for pop in (LI("ro", shape=(2,), tau=0.01), CubaLI("ro", shape=(2,), tau_syn=0.004, tau_mem=0.01),
                Integrator("ro", shape=(2,))):
        p = _compile(_one_layer(pop, [[0.3, 0.7], [0.2, -0.1]]))
        g, q = p.groups["ro"], p.quant_report["groups"]["ro"]
        assert not g.spiking and np.all(g.vth == L2.vth_max)
        if not isinstance(pop, Integrator):
            assert q["v_bound"] <= L2.vth_max * 64  # the readout can neither spike nor saturate
        assert q["threshold_rel_error"] is None


def test_bias_from_v_leak_and_from_an_affine_into_if():
    pop = LIF("lif", shape=(2,), tau=0.01, v_leak=[0.3, -0.2], v_threshold=1.0)
    p = _compile(_one_layer(pop, [[0.5], [0.4]]))
    g = p.groups["lif"]
    S = np.asarray(p.metadata["v_scale"]["lif"])
    real = g.bias_mant.astype(np.float64) * 2.0 ** g.bias_exp
    np.testing.assert_allclose(real, S * DT / 0.01 * np.array([0.3, -0.2]), rtol=2e-3)
    p = _compile(_one_layer(IF("i", shape=(2,), r=1.0, v_threshold=1.0), [[0.5], [0.4]], affine_bias=[0.25, 0.0]))
    g = p.groups["i"]
    S = np.broadcast_to(np.asarray(p.metadata["v_scale"]["i"]), (2,))
    real = g.bias_mant.astype(np.float64) * 2.0 ** g.bias_exp
    np.testing.assert_allclose(real, S * np.array([0.25, 0.0]), rtol=2e-3)


def test_single_weight_is_represented_exactly():
    """The threshold mantissa is searched so that a one-synapse layer (like the NIR paper's LIF task) is exact."""
    p = _compile(_one_layer(LIF("lif", shape=(1,), tau=0.0025, v_threshold=0.1), [[1.0]]))
    assert p.quant_report["synapses"]["w"]["weight_rel_error_max"] < 1e-9


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(log_scale=st.floats(-3.0, 1.5), n_in=st.integers(1, 40), n_out=st.integers(1, 20),
       positive=st.booleans(), seed=st.integers(0, 10 ** 6), tau=st.floats(2e-3, 0.2),
       theta=st.floats(0.05, 20.0))
def test_quantised_weights_satisfy_lavas_constraints(log_scale, n_in, n_out, positive, seed, tau, theta):
    rng = np.random.default_rng(seed)
    w = rng.normal(0, 10.0 ** log_scale, (n_out, n_in))
    if positive:
        w = np.abs(w)
    pop = LIF("lif", shape=(n_out,), tau=tau, v_threshold=theta * rng.uniform(0.5, 2.0, n_out))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = _compile(_one_layer(pop, w))
    s = p.synapses[0]
    vals = s.weight.to_dense().astype(np.int64)
    np.testing.assert_array_equal(lava_weights(vals, num_weight_bits=8, sign_mode=s.sign_mode), vals)
    assert L2.weight_exp_min <= s.weight_exp <= L2.weight_exp_max
    assert s.sign_mode == ("excitatory" if w.min() >= 0 else "mixed")
    assert np.abs(vals).max() >= 64 or s.weight_exp == L2.weight_exp_min  # the mantissa is used, or cannot be
    g = p.groups["lif"]
    assert 1 <= g.vth.min() and g.vth.max() <= 2 ** 14 and np.unique(g.vth).size == 1
    eff, _ = _effective(p)
    th = pop.v_threshold[:, None]
    ideal = (DT / tau) * w / th
    if s.weight_exp > L2.weight_exp_min:
        assert np.max(np.abs(eff / th - ideal)) <= np.abs(ideal).max() * 2.0 ** -7 * 1.01


@pytest.mark.parametrize("pop,field,words", [
    (LIF("lif", shape=(1,), tau=5e-4, v_threshold=1.0), "tau", "shorter than dt"),
    (LIF("lif", shape=(1,), tau=0.01, v_threshold=-1.0), "v_threshold", "<= 0"),
    (LIF("lif", shape=(1,), tau=0.01, v_threshold=1.0, v_reset=0.2), "v_reset", "resets v to 0"),
    (CubaLIF("lif", shape=(1,), tau_syn=1e-4, tau_mem=0.01, v_threshold=1.0), "tau_syn", "shorter than dt"),
])
def test_unrepresentable_parameters_raise(pop, field, words):
    with pytest.raises(QuantisationError, match=words) as ei:
        _compile(_one_layer(pop, [[1.0]]))
    assert ei.value.node == "lif" and ei.value.field == field


def test_reset_mode_must_be_supported_and_weights_must_fit():
    g = _one_layer(LIF("lif", shape=(1,), tau=0.01, v_threshold=1.0, reset_mode="subtract"), [[1.0]])
    assert _compile(g).groups["lif"].reset_mode == "subtract"
    assert _compile(g, reset="zero").groups["lif"].reset_mode == "zero"
    with pytest.raises(QuantisationError, match="not supported by target 'loihi1'") as ei:
        compile_graph(g, "loihi1", partition=False)
    assert ei.value.field == "reset_mode"
    huge = _one_layer(LIF("lif", shape=(1,), tau=0.01, v_threshold=1e-9), [[1e3]])
    with pytest.raises(QuantisationError, match="too large") as ei:
        _compile(huge)
    assert ei.value.node == "lif"


def test_lost_or_clipped_decays_warn():
    with pytest.warns(UserWarning, match="leak is lost"):
        p = _compile(_one_layer(LIF("lif", shape=(1,), tau=100.0, v_threshold=1.0), [[1.0]]))
    assert p.groups["lif"].dv[0] == 0 and p.quant_report["groups"]["lif"]["decay_v_rel_error"] == 1.0
    with pytest.warns(UserWarning, match="clipped to dv = 4095"):
        p = _compile(_one_layer(LIF("lif", shape=(1,), tau=DT, v_threshold=1.0), [[1.0]]))
    assert p.groups["lif"].dv[0] == 4095 and p.quant_report["warnings"]


def _chain_with_skip(delay_s=None):
    rng = np.random.default_rng(3)
    nodes = [Input("in", shape=(3,))]
    edges = []
    prev = "in"
    for k in range(3):
        nodes += [Linear(f"w{k}", weight=rng.normal(0, 1, (3, 3))),
                  LIF(f"l{k}", shape=(3,), tau=0.01, v_threshold=0.05)]
        edges += [(prev, f"w{k}"), (f"w{k}", f"l{k}")]
        prev = f"l{k}"
    nodes += [Linear("skip", weight=rng.normal(0, 1, (3, 3))), Linear("rec", weight=rng.normal(0, 1, (3, 3))),
              Output("out", shape=(3,))]
    edges += [("in", "skip"), ("skip", "l2"), ("l0", "rec"), ("rec", "l0"), ("l2", "out")]
    if delay_s is not None:
        nodes.append(Delay("d", delay=delay_s, shape=(3,)))
        edges = [e for e in edges if e != ("l1", "w2")] + [("l1", "d"), ("d", "w2")]
    return Graph(nodes, edges, dt=DT)


def test_latency_is_recorded_and_skip_paths_are_equalised():
    p = _compile(_chain_with_skip())
    assert p.metadata["latency_steps"] == {"l0": 1, "l1": 2, "l2": 3} and p.metadata["output_latency_steps"] == 3
    syn = {s.name: s for s in p.synapses}
    assert syn["skip"].delay == 2  # input -> l2 directly: two steps shorter than the main path
    assert syn["rec"].recurrent and syn["rec"].delay == 0 and syn["w1"].delay == 0
    p = _compile(_chain_with_skip(), equalise_latency=False)
    assert p.metadata["latency_steps"]["l2"] == 1
    syn = {s.name: s for s in p.synapses}
    assert syn["skip"].delay == 0 and syn["rec"].delay == 0  # a self-loop keeps the one-step recurrence


def test_delay_nodes_become_synaptic_delays():
    p = _compile(_chain_with_skip(delay_s=4 * DT))
    assert {s.name: s.delay for s in p.synapses}["w2"] == 4
    p = _compile(_chain_with_skip(delay_s=np.array([1, 2, 2]) * DT))  # per-source delays: one group per value
    split = sorted((s.name, s.delay, s.weight.nnz) for s in p.synapses if s.name.startswith("w2"))
    # (the default weight_split="auto" gives each its remainder companion "w2.lo@d<k>", same delays)
    assert [t for t in split if ".lo" not in t[0]] == [("w2@d1", 1, 3), ("w2@d2", 2, 6)]
    assert [t for t in split if ".lo" in t[0]] in ([], [("w2.lo@d1", 1, 3), ("w2.lo@d2", 2, 6)])
    with pytest.raises(QuantisationError, match="allows 62") as ei:
        _compile(_chain_with_skip(delay_s=80 * DT))
    assert ei.value.field == "delay"


def test_output_must_be_a_population():
    g = Graph([Input("in", shape=(2,)), Output("out", shape=(2,))], [("in", "out")], dt=DT)
    with pytest.raises(GraphError, match="fed by exactly one population"):
        _compile(g)
    # an Output fed by a linear layer gets an integrating readout population (issue 12)
    g = Graph([Input("in", shape=(2,)), Linear("w", weight=np.eye(2)), Output("out", shape=(2,))],
              [("in", "w"), ("w", "out")], dt=DT)
    prog = _compile(g)
    assert prog.output == "out.readout" and not prog.groups["out.readout"].spiking


def test_a_loop_through_two_populations_warns_about_its_extra_step():
    rng = np.random.default_rng(1)
    g = Graph([Input("in", shape=(2,)), Linear("w0", weight=rng.normal(size=(3, 2))),
               LIF("a", shape=(3,), tau=0.01, v_threshold=0.1), Linear("ab", weight=rng.normal(size=(3, 3))),
               LIF("b", shape=(3,), tau=0.01, v_threshold=0.1), Linear("ba", weight=rng.normal(size=(3, 3))),
               Output("out", shape=(3,))],
              [("in", "w0"), ("w0", "a"), ("a", "ab"), ("ab", "b"), ("b", "ba"), ("ba", "a"), ("b", "out")], dt=DT)
    with pytest.warns(UserWarning, match="arrives 1 step"):
        p = _compile(g)
    back = next(s for s in p.synapses if s.name == "ba")
    assert back.recurrent and back.delay == 0 and p.metadata["latency_steps"] == {"a": 1, "b": 2}
