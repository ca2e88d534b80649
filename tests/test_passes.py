"""Each normalising/fusing pass: a small before/after test, and float-executor equivalence (the passes are exact)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from toolchain.errors import GraphError, QuantisationError
from toolchain.ir import (IF, LI, LIF, Affine, AvgPool2d, Conv1d, Conv2d, Csr, CubaLIF, Dense, Flatten, Graph,
                          Input, Integrator, Linear, Output, Scale, Structured, SumPool2d, Threshold, synapse_count,
                          verify)
from toolchain.passes import (CompileContext, check_normalised, conv_to_csr, flatten_shapes,
                              fold_affine_bias_into_neuron, fold_scale_into_linear, insert_identity_synapses,
                              lower_conv_and_pool, merge_linear_chains, merge_parallel_linear, pipeline_for,
                              pool_to_csr, run_pipeline, split_linear_fan)
from toolchain.passes import storage_ops as so
from toolchain.sim.float import simulate_float
from toolchain.targets import load_target

RNG = np.random.default_rng(7)
DT = 1e-3


def _run(g: Graph, x: np.ndarray) -> np.ndarray:
    name = g.inputs[0]
    x = x.reshape(x.shape[:2] + tuple(g[name].shape))
    out = simulate_float(g, x).output
    return out.reshape(out.shape[:2] + (-1,))


def _same(g1: Graph, g2: Graph, steps: int = 12, rate: float = 0.4) -> None:
    shape = g1[g1.inputs[0]].shape
    x = (RNG.random((2, steps) + tuple(shape)) < rate).astype(np.float64)
    np.testing.assert_allclose(_run(g2, x), _run(g1, x), rtol=1e-9, atol=1e-9)


def _li(name, n, tau=5e-3):
    return LI(name, shape=(n,), tau=tau)


# ---------------------------------------------------------------------------------------- flatten_shapes
def test_flatten_shapes_makes_populations_flat_and_drops_flatten():
    g = Graph([Input("in", shape=(2, 3)), Flatten("fl", input_shape=(2, 3)), Linear("w", weight=RNG.normal(size=(4, 6))),
               LIF("lif", shape=(4,), tau=0.01, v_threshold=0.5), Output("out", shape=(4,))],
              [("in", "fl"), ("fl", "w"), ("w", "lif"), ("lif", "out")], dt=DT)
    h = flatten_shapes(g)
    assert "fl" not in h.nodes and h["in"].shape == (6,)
    assert ("in", "w") in [(e.src, e.dst) for e in h.edges]
    assert h.metadata["original_shapes"]["in"] == [2, 3]
    verify(h)
    _same(g, h)


# ------------------------------------------------------------------------------------- conv and pooling
@pytest.mark.parametrize("stride,padding,dilation,groups", [(1, 0, 1, 1), (2, 1, 1, 1), (1, 2, 2, 2), (2, 1, 1, 4)])
def test_conv2d_to_csr_matches_torch(stride, padding, dilation, groups):
    cin, cout, h, w = 4, 8, 7, 6
    k = RNG.normal(size=(cout, cin // groups, 3, 3))
    node = Conv2d("c", weight=k, stride=stride, padding=padding, dilation=dilation, groups=groups,
                  input_shape=(cin, h, w))
    m = conv_to_csr(node)
    assert m.shape == (int(np.prod(node.out_shape)), cin * h * w)
    assert m.nnz == synapse_count(node)  # one synapse per valid tap, none for the padding
    x = RNG.normal(size=(cin, h, w))
    ref = F.conv2d(torch.tensor(x[None]), torch.tensor(k), stride=stride, padding=padding, dilation=dilation,
                   groups=groups).numpy().reshape(-1)
    np.testing.assert_allclose(so.to_scipy(m) @ x.reshape(-1), ref, rtol=1e-12, atol=1e-12)


def test_zero_kernel_taps_are_not_synapses():
    k = RNG.normal(size=(2, 1, 3, 3))
    k[:, :, 0, :] = 0.0  # a pruned kernel row
    node = Conv2d("c", weight=k, input_shape=(1, 5, 5))
    assert conv_to_csr(node).nnz == synapse_count(node) * 2 // 3


def test_conv1d_and_pooling_to_csr_match_torch():
    k = RNG.normal(size=(6, 2, 3))
    node = Conv1d("c", weight=k, stride=2, padding=1, dilation=1, groups=2, input_shape=(4, 9))
    x = RNG.normal(size=(4, 9))
    ref = F.conv1d(torch.tensor(x[None]), torch.tensor(k), stride=2, padding=1, groups=2).numpy().reshape(-1)
    np.testing.assert_allclose(so.to_scipy(conv_to_csr(node)) @ x.reshape(-1), ref, rtol=1e-12)
    x = RNG.normal(size=(3, 6, 6))
    sp = SumPool2d("p", kernel_size=2, stride=2, padding=1, input_shape=(3, 6, 6))
    ap = AvgPool2d("a", kernel_size=2, stride=2, padding=1, input_shape=(3, 6, 6))
    ref = F.avg_pool2d(torch.tensor(x[None]), 2, 2, padding=1, count_include_pad=True).numpy().reshape(-1)
    np.testing.assert_allclose(so.to_scipy(pool_to_csr(ap)) @ x.reshape(-1), ref, rtol=1e-12)
    np.testing.assert_allclose(so.to_scipy(pool_to_csr(sp)) @ x.reshape(-1), 4 * ref, rtol=1e-12)


def _cnn() -> Graph:
    return Graph([
        Input("in", shape=(2, 8, 8)),
        Conv2d("c1", weight=RNG.normal(0, 0.8, (4, 2, 3, 3)), bias=RNG.normal(0, 0.1, 4), padding=1,
               input_shape=(2, 8, 8)),
        IF("if1", shape=(4, 8, 8), v_threshold=1.0),
        SumPool2d("pool", kernel_size=2, stride=2, input_shape=(4, 8, 8)),
        Conv2d("c2", weight=RNG.normal(0, 0.5, (3, 4, 3, 3)), padding=1, input_shape=(4, 4, 4)),
        IF("if2", shape=(3, 4, 4), v_threshold=1.0),
        Flatten("fl", input_shape=(3, 4, 4)),
        Affine("fc", weight=RNG.normal(0, 0.3, (5, 48)), bias=RNG.normal(0, 0.1, 5)),
        LI("ro", shape=(5,), tau=4e-3),
        Output("out", shape=(5,))],
        [("in", "c1"), ("c1", "if1"), ("if1", "pool"), ("pool", "c2"), ("c2", "if2"), ("if2", "fl"), ("fl", "fc"),
         ("fc", "ro"), ("ro", "out")], dt=DT)


def test_lower_conv_and_pool_keeps_the_network():
    g = _cnn()
    h = lower_conv_and_pool(flatten_shapes(g))
    assert isinstance(h["c1"], Affine) and isinstance(h["c1"].weight, Csr)
    assert isinstance(h["pool"], Linear) and isinstance(h["c2"], Linear)
    verify(h)
    _same(g, h, steps=15, rate=0.6)


# ------------------------------------------------------------------------------------------- Scale folding
def test_fold_scale_into_following_preceding_or_diagonal():
    s = RNG.uniform(0.5, 2, 6)
    w = Structured(RNG.normal(size=(4, 6)), row_mask=[1, 1, 0, 1], col_mask=[1, 0, 1, 1, 1, 1])
    g = Graph([Input("in", shape=(6,)), Scale("s", scale=s), Linear("w", weight=w), _li("ro", 4),
               Output("out", shape=(4,))], [("in", "s"), ("s", "w"), ("w", "ro"), ("ro", "out")], dt=DT)
    h = fold_scale_into_linear(g)
    assert "s" not in h.nodes and isinstance(h["w"].weight, Structured)  # structure kept
    np.testing.assert_array_equal(h["w"].weight.stored_mask(), w.stored_mask())
    _same(g, h)
    # before: Affine -> Scale -> LI (rows and bias scaled)
    g2 = Graph([Input("in", shape=(6,)), Affine("a", weight=RNG.normal(size=(4, 6)), bias=RNG.normal(size=4)),
                Scale("s", scale=s[:4]), _li("ro", 4), Output("out", shape=(4,))],
               [("in", "a"), ("a", "s"), ("s", "ro"), ("ro", "out")], dt=DT)
    h2 = fold_scale_into_linear(g2)
    assert "s" not in h2.nodes
    np.testing.assert_allclose(h2["a"].bias, g2["a"].bias * s[:4])
    _same(g2, h2)
    # no linear neighbour: a diagonal synapse node
    g3 = Graph([Input("in", shape=(4,)), Scale("s", scale=s[:4]), _li("ro", 4), Output("out", shape=(4,))],
               [("in", "s"), ("s", "ro"), ("ro", "out")], dt=DT)
    h3 = fold_scale_into_linear(g3)
    assert isinstance(h3["s"], Linear) and h3["s"].weight.nnz == 4
    _same(g3, h3)


# ----------------------------------------------------------------------------------------------- fusing
def test_split_linear_fan_copies_sum_nodes_and_keeps_one_bias():
    w = RNG.normal(size=(3, 4))
    g = Graph([Input("in", shape=(4,)), LIF("a", shape=(4,), tau=0.01, v_threshold=0.3), Affine("w", weight=w,
               bias=[0.1, 0.2, 0.3]), _li("ro", 3), Output("out", shape=(3,)),
               Linear("wa", weight=np.eye(4) * 2)],
              [("in", "wa"), ("wa", "a"), ("a", "w"), ("in", "w"), ("w", "ro"), ("ro", "out")], dt=DT)
    h = split_linear_fan(g)
    copies = [n for n in h.nodes if n.startswith("w<")]
    assert len(copies) == 2 and sum(isinstance(h[c], Affine) for c in copies) == 1
    for c in copies:
        assert len(h.predecessors(c)) == 1
    _same(g, h)


def test_merge_linear_chains_multiplies_and_keeps_sparsity():
    a = Csr.from_dense(RNG.normal(size=(5, 6)) * (RNG.random((5, 6)) < 0.4))
    b = Affine("b", weight=Csr.from_dense(RNG.normal(size=(3, 5)) * (RNG.random((3, 5)) < 0.5)),
               bias=RNG.normal(size=3))
    g = Graph([Input("in", shape=(6,)), Affine("a", weight=a, bias=RNG.normal(size=5)), b, _li("ro", 3),
               Output("out", shape=(3,))], [("in", "a"), ("a", "b"), ("b", "ro"), ("ro", "out")], dt=DT)
    h = merge_linear_chains(split_linear_fan(g))
    assert "a+b" in h.nodes and isinstance(h["a+b"].weight, Csr)
    np.testing.assert_allclose(h["a+b"].weight.to_dense(), b.weight.to_dense() @ a.to_dense(), atol=1e-12)
    np.testing.assert_allclose(h["a+b"].bias, b.weight.to_dense() @ g["a"].bias + b.bias, atol=1e-12)
    _same(g, h)
    # structured meets dense: removed rows of the left factor stay removed
    left = Structured(RNG.normal(size=(4, 5)), row_mask=[1, 0, 1, 1])
    p = so.matmul(left, Dense(RNG.normal(size=(5, 3))))
    assert isinstance(p, Structured) and not p.stored_mask()[1].any()


def test_merge_parallel_linear_and_identity_synapses():
    g = Graph([Input("in", shape=(3,)), Linear("x", weight=RNG.normal(size=(3, 3))),
               Linear("y", weight=RNG.normal(size=(3, 3))), LIF("a", shape=(3,), tau=0.01, v_threshold=0.2),
               LIF("b", shape=(3,), tau=0.02, v_threshold=0.2), _li("ro", 3), Output("out", shape=(3,)),
               Linear("z", weight=np.eye(3))],
              [("in", "x"), ("in", "y"), ("x", "a"), ("y", "a"), ("a", "b"), ("b", "z"), ("z", "ro"),
               ("ro", "out")], dt=DT)
    h = merge_parallel_linear(g)
    assert "x|y" in h.nodes and "x" not in h.nodes
    np.testing.assert_allclose(h["x|y"].weight.to_dense(), g["x"].weight.to_dense() + g["y"].weight.to_dense())
    h2 = insert_identity_synapses(h)
    assert "a>b" in h2.nodes and h2["a>b"].weight.nnz == 3
    check_normalised(h2)
    _same(g, h2)
    with pytest.raises(GraphError, match="fed directly"):
        check_normalised(h)


def test_fold_affine_bias_into_neuron():
    g = Graph([Input("in", shape=(4,)), Affine("w", weight=RNG.normal(size=(3, 4)), bias=[0.5, -0.2, 0.1]),
               LIF("lif", shape=(3,), tau=0.01, r=2.0, v_leak=0.1, v_threshold=0.4), Output("out", shape=(3,))],
              [("in", "w"), ("w", "lif"), ("lif", "out")], dt=DT)
    h = fold_affine_bias_into_neuron(g)
    assert isinstance(h["w"], Linear) and not isinstance(h["w"], Affine)
    np.testing.assert_allclose(h["lif"].v_leak, 0.1 + 2.0 * np.array([0.5, -0.2, 0.1]))
    _same(g, h, steps=30)  # exact for LIF
    c = Graph([Input("in", shape=(4,)), Affine("w", weight=RNG.normal(size=(3, 4)), bias=[0.5, -0.2, 0.1]),
               CubaLIF("c", shape=(3,), tau_syn=2e-3, tau_mem=0.01, v_threshold=0.4), Output("out", shape=(3,))],
              [("in", "w"), ("w", "c"), ("c", "out")], dt=DT)
    kept = fold_affine_bias_into_neuron(c)  # default: CubaLIF keeps its Affine (quantise maps it into the current)
    assert isinstance(kept["w"], Affine) and np.all(kept["c"].v_leak == 0)
    with pytest.warns(UserWarning, match="phase shift persists"):
        hc = fold_affine_bias_into_neuron(c, cuba=True)
    assert hc.metadata["notes"] and np.any(hc["c"].v_leak != 0)
    i = Graph([Input("in", shape=(4,)), Affine("w", weight=RNG.normal(size=(3, 4)), bias=[0.5, -0.2, 0.1]),
               IF("if", shape=(3,), v_threshold=1.0), Output("out", shape=(3,))],
              [("in", "w"), ("w", "if"), ("if", "out")], dt=DT)
    assert isinstance(fold_affine_bias_into_neuron(i)["w"], Affine)  # IF keeps it: it becomes the bias current


# --------------------------------------------------------------------------------------------- pipeline
def test_normalise_pipeline_is_exact_on_a_cnn():
    g = _cnn()
    ctx = CompileContext(load_target("loihi2"))
    passes = [p for p in pipeline_for(ctx.target) if p.name not in ("quantise", "partition")]
    h = run_pipeline(g, passes, ctx)
    verify(h, "normalised")
    assert {type(n).__name__ for n in h.nodes.values()} <= {"Input", "Output", "IF", "LI", "Linear", "Affine"}
    assert "pool+c2" in h.nodes and "fl" not in h.nodes
    _same(g, h, steps=15, rate=0.6)


def test_runner_names_the_failing_pass_and_the_passes_before():
    g = Graph([Input("in", shape=(3,)), Linear("w", weight=np.eye(3)), Threshold("th", shape=(3,), threshold=0.5),
               Output("out", shape=(3,))], [("in", "w"), ("w", "th"), ("th", "out")], dt=DT)
    ctx = CompileContext(load_target("loihi2"))
    with pytest.raises(QuantisationError) as ei:
        run_pipeline(g, pipeline_for(ctx.target), ctx)
    msg = str(ei.value)
    assert "in pass 'quantise'" in msg and "merge_linear_chains" in msg and ei.value.node == "th"
    assert ei.value.pass_name == "quantise" and "flatten_shapes" in ei.value.passes_before


def test_trailing_affine_compiles_to_an_integrating_readout():
    """Issue 12: a graph that ends in a Linear/Affine (nirtorch style) gets an Integrator readout whose voltage is
    the running sum of the layer's output."""
    from toolchain.compile import compile_graph
    from toolchain.passes.normalise import add_readout_for_trailing_synapse
    from toolchain.sim.reference import simulate
    r = np.random.default_rng(4)
    g = Graph([Input("in", shape=(5,)), Linear("fc1", weight=r.normal(0, 1.0, (8, 5))),
               LIF("h", shape=(8,), tau=5e-3, v_threshold=0.3),
               Affine("fc2", weight=r.normal(0, 1.0, (3, 8)), bias=[0.05, -0.02, 0.0]), Output("out", shape=(3,))],
              [("in", "fc1"), ("fc1", "h"), ("h", "fc2"), ("fc2", "out")], dt=DT)
    h = add_readout_for_trailing_synapse(g)
    assert isinstance(h["out.readout"], Integrator) and h.predecessors("out") == ["out.readout"]
    assert h.predecessors("out.readout") == ["fc2"] and any("integrating readout" in n for n in h.metadata["notes"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prog = compile_graph(g, "loihi2", partition=False)
    assert prog.output == "out.readout" and not prog.groups["out.readout"].spiking
    # the readout alone (no hidden spikes whose timing rounding could move): its v is the float running sum
    g1 = Graph([Input("in", shape=(5,)), Affine("fc", weight=r.normal(0, 1.0, (3, 5)), bias=[0.05, -0.02, 0.0]),
                Output("out", shape=(3,))], [("in", "fc"), ("fc", "out")], dt=DT)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prog = compile_graph(g1, "loihi2", partition=False)
    x = (r.random((2, 60, 5)) < 0.4).astype(np.int32)
    y = np.cumsum(simulate_float(g1, x.astype(float)).output, axis=1)  # the float layer's running sum
    L = prog.metadata["latency_steps"]["out.readout"]
    res = simulate(prog, np.concatenate([x, np.zeros((2, L, 5), np.int32)], axis=1))
    v = res.output[:, L:].astype(float) / np.asarray(prog.metadata["v_scale"]["out.readout"])
    assert np.abs(y).max() > 1.0
    np.testing.assert_allclose(v, y, atol=0.02 * np.abs(y).max())
