"""toolchain.nn <-> IR/NIR: our own mappings, file round trips, and the discrete-time convention pinned against
the float executor (float64, every spike)."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from toolchain import ir
from toolchain.errors import GraphError
from toolchain.nir_io import export, load
from toolchain.nn import (LI, LIF, CubaLIF, Recurrent, SpikingNet, SumPool2d, from_graph, node_names, to_graph)
from toolchain.sim.float import simulate_float
from toolchain.testing import random_spike_array, random_spiking_model

torch.set_num_threads(1)
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "nir-paper"
DT = 1e-3

CASES = [("ff", "lif", "subtract", "spiking"), ("ff", "cuba", "zero", "li"), ("rec", "lif", "zero", "li"),
         ("rec", "cuba", "subtract", "spiking"), ("conv", "lif", "subtract", "li"), ("conv", "cuba", "zero", "spiking")]


def _model(kind, neuron, reset, readout, seed=0, dtype=torch.float64):
    return random_spiking_model(kind, seed=seed, neuron=neuron, reset=reset, readout=readout, dtype=dtype)


def _inp(shape, batch=3, steps=25, seed=1, rate=0.25):
    return torch.as_tensor(random_spike_array(batch, steps, shape, rate, seed), dtype=torch.float64)


@pytest.mark.parametrize("kind,neuron,reset,readout", CASES)
def test_model_nir_file_model_round_trip_is_identical(tmp_path, kind, neuron, reset, readout):
    model, shape = _model(kind, neuron, reset, readout)
    x = _inp(shape)
    graph = to_graph(model, DT, shape)
    ir.verify(graph)
    path = tmp_path / "model.nir"
    export(graph, path)
    graph2 = load(path)
    assert graph2.dt == DT
    model2 = from_graph(graph2, dtype=torch.float64)
    y, rec = model(x, record=True)
    y2, rec2 = model2(x, record=True)
    assert torch.equal(y, y2)
    names = node_names(model)
    for mname, r in rec.items():
        r2 = rec2[names[mname]]  # modules are named after the graph's nodes
        assert set(r) == set(r2)
        for k in r:
            assert torch.equal(r[k], r2[k]), (mname, k)
    assert any(r["s"].sum() > 0 for r in rec.values() if "s" in r)
    # and the rebuilt model maps onto the same graph again
    graph3 = to_graph(model2, DT, shape)
    assert [type(n) for n in graph3] == [type(n) for n in graph2]
    for n2, n3 in zip(graph2, graph3):
        for f, v in n2.params().items():
            v3 = n3.params()[f]
            if isinstance(v, ir.WeightStorage):
                assert np.array_equal(v.to_dense(), v3.to_dense())
            elif f not in ("tau", "tau_syn", "tau_mem", "r", "w_in"):
                assert np.array_equal(np.asarray(v), np.asarray(v3)), (n2.name, f)
            else:
                np.testing.assert_allclose(v, v3, rtol=1e-15)


def test_float32_model_round_trips_through_a_file(tmp_path):
    model, shape = _model("rec", "lif", "subtract", "li", dtype=torch.float32)
    export(to_graph(model, DT, shape), tmp_path / "m.nir")
    model2 = from_graph(load(tmp_path / "m.nir"))
    x = _inp(shape).float()
    assert all(p.dtype == torch.float32 for p in model2.parameters())
    assert torch.equal(model(x), model2(x))


@pytest.mark.parametrize("kind,neuron,reset,readout", CASES)
def test_float_executor_equals_the_torch_model_on_every_spike(kind, neuron, reset, readout):
    """Pins the torch discrete-time convention to the IR's semantics (forward Euler, immediate reset)."""
    model, shape = _model(kind, neuron, reset, readout, seed=3)
    x = _inp(shape, batch=4, steps=30, seed=4)
    y, rec = model(x, record=True)
    graph = to_graph(model, DT, shape)
    res = simulate_float(graph, x.numpy(), record=True)
    np.testing.assert_allclose(res.output, y.detach().numpy(), rtol=0, atol=1e-11)
    names = node_names(model)
    n_spikes = 0
    for mname, m in model.neurons():
        r, node = rec[mname], names[mname]
        neuron_mod = m.neuron if isinstance(m, Recurrent) else m
        if neuron_mod.spiking:
            s = r["s"].detach().numpy()
            assert np.array_equal(res.values[node], s), mname  # every spike, every step
            n_spikes += int(s.sum())
            # the executor records v after the reset; the torch model the value the spike was decided on
            u = r["u"].detach().numpy()
            th = neuron_mod.threshold.detach().numpy()
            after = u - th * s if neuron_mod.reset == "subtract" else u * (1 - s)
            np.testing.assert_allclose(res.states[node]["v"], after, rtol=0, atol=1e-11)
            if "i" in r:
                np.testing.assert_allclose(res.states[node]["i"], r["i"].detach().numpy(), rtol=0, atol=1e-11)
        else:
            np.testing.assert_allclose(res.states[node]["v"], r["u"].detach().numpy(), rtol=0, atol=1e-11)
    assert n_spikes > 50


def test_no_leak_maps_to_if_and_integrator_and_still_matches():
    torch.manual_seed(0)
    model = SpikingNet(nn.Linear(4, 5), LIF(5, alpha=1.0, threshold=1.5, reset="subtract"),
                       nn.Linear(5, 2), LI(2, alpha=1.0)).double()
    g = to_graph(model, DT, 4)
    assert isinstance(g["lif1"], ir.IF) and isinstance(g["li3"], ir.Integrator)
    x = _inp(4, seed=2, rate=0.5)
    y, rec = model(x, record=True)
    res = simulate_float(g, x.numpy(), record=True)
    assert np.array_equal(res.values["lif1"], rec["1"]["s"].detach().numpy()) and rec["1"]["s"].sum() > 0
    np.testing.assert_allclose(res.output, y.detach().numpy(), atol=1e-12)
    m2 = from_graph(g, dtype=torch.float64)
    assert float(m2[1].alpha.min()) == 1.0 and float(m2[3].alpha.min()) == 1.0
    assert torch.equal(m2(x), y)
    with pytest.raises(GraphError, match="alpha"):  # mixed alpha = 1 and < 1 has no finite tau
        to_graph(SpikingNet(LIF(2, alpha=torch.tensor([1.0, 0.5]))), DT, 2)


def test_linear_bias_is_kept_in_the_graph_and_the_file(tmp_path):
    import nir
    lin = nn.Linear(3, 2).double()
    model = SpikingNet(lin, LIF(2), nn.Linear(2, 2, bias=False), LI(2))
    g = to_graph(model, DT, 3)
    assert isinstance(g["linear0"], ir.Affine) and type(g["linear2"]) is ir.Linear
    np.testing.assert_array_equal(g["linear0"].bias, lin.bias.detach().numpy())
    export(g, tmp_path / "b.nir")
    raw = nir.read(str(tmp_path / "b.nir"))
    np.testing.assert_array_equal(np.asarray(raw.nodes["linear0"].bias), lin.bias.detach().numpy())
    assert raw.nodes["lif1"].metadata.get("reset_mode") == "subtract"


def test_recurrent_becomes_a_cycle_with_a_delayed_edge():
    model, shape = _model("rec", "lif", "zero", "spiking")
    g = to_graph(model, DT, shape)
    assert [(e.src, e.dst) for e in g.recurrent_edges] == [("lif1_rec", "lif1")]
    assert g["lif1"].reset_mode == "zero"
    np.testing.assert_array_equal(g["lif1_rec"].weight.to_dense(), model[1].rec.weight.detach().numpy())


def test_recurrent_bias_follows_the_executor():
    torch.manual_seed(5)
    rec = Recurrent(LIF(4, alpha=0.8, threshold=0.9), 4, bias=True)
    model = SpikingNet(nn.Linear(3, 4), rec).double()
    x = _inp(3, seed=6, rate=0.4)
    g = to_graph(model, DT, 3)
    assert isinstance(g["lif1_rec"], ir.Affine)
    _, r = model(x, record=True)
    res = simulate_float(g, x.numpy(), record=True)
    assert np.array_equal(res.values["lif1"], r["1"]["s"].detach().numpy()) and r["1"]["s"].sum() > 0


def test_unmappable_modules_and_shapes_name_the_module():
    with pytest.raises(GraphError, match="node 'relu1'.*no NIR mapping"):
        to_graph(SpikingNet(nn.Linear(2, 3), nn.ReLU()), DT, 2)
    with pytest.raises(GraphError, match="node 'lif1'.*shape"):
        to_graph(SpikingNet(nn.Linear(2, 3), LIF(4)), DT, 2)
    with pytest.raises(GraphError, match="node 'linear0'"):
        to_graph(SpikingNet(nn.Linear(2, 3)), DT, 5)


def test_from_graph_rejects_what_it_cannot_build():
    g = to_graph(SpikingNet(nn.Linear(2, 3), LIF(3, reset="zero")), DT, 2)
    with pytest.raises(GraphError, match="dt"):
        from_graph(g.replace(dt=None))
    nodes = g.nodes
    nodes["lif1"] = nodes["lif1"].replace(v_reset=np.full(3, 0.2))
    with pytest.raises(GraphError, match="v_reset"):
        from_graph(g.replace(nodes=nodes))
    branch = ir.Graph([ir.Input("input", shape=(2,)), ir.Affine("a", weight=np.ones((2, 2))),
                       ir.Affine("b", weight=np.ones((2, 2))), ir.Output("output", shape=(2,))],
                      [("input", "a"), ("input", "b"), ("a", "output"), ("b", "output")], dt=DT)
    with pytest.raises(GraphError, match="sequential"):
        from_graph(branch)


def test_from_graph_folds_input_gain_and_leak_into_the_weights():
    g = ir.Graph([ir.Input("input", shape=(3,)),
                  ir.Affine("fc", weight=np.arange(6.0).reshape(2, 3) / 5, bias=[0.1, -0.2]),
                  ir.LIF("lif", shape=(2,), tau=[4e-3, 2e-3], r=[2.0, 0.5], v_leak=[0.3, 0.0],
                         v_threshold=[1.0, 0.8], reset_mode="subtract"),
                  ir.Output("output", shape=(2,))],
                 [("input", "fc"), ("fc", "lif"), ("lif", "output")], dt=DT)
    model = from_graph(g, dtype=torch.float64)
    x = _inp(3, seed=8, rate=0.6)
    _, rec = model(x, record=True)
    res = simulate_float(g, x.numpy(), record=True)
    s = rec["lif"]["s"].detach().numpy()
    assert np.array_equal(res.values["lif"], s) and s.sum() > 5
    after = rec["lif"]["u"].detach().numpy() - model[1].threshold.detach().numpy() * s
    np.testing.assert_allclose(res.states["lif"]["v"], after, atol=1e-12)


# ------------------------------------------------------------------------------------- NIR-paper files
def _paper(name):
    if not DATA.is_dir():
        pytest.skip(f"NIR-paper data folder not found at {DATA}")
    return DATA / name


@pytest.mark.parametrize("fname,reset", [("braille_noDelay_bias_zero.nir", "zero"),
                                         ("braille_noDelay_noBias_subtract.nir", "subtract")])
def test_braille_models_from_graph_match_the_executor(fname, reset):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = load(_paper(fname), dt=1e-4, reset=reset)
    model = from_graph(g, dtype=torch.float64)
    assert isinstance(model[1], Recurrent) and isinstance(model[1].neuron, CubaLIF)
    x = torch.as_tensor(random_spike_array(2, 60, 12, 0.3, seed=9), dtype=torch.float64)
    y = model(x)
    res = simulate_float(g, x.numpy())
    assert y.sum() > 0
    assert np.array_equal(res.output, y.detach().numpy())


def test_sinabs_cnn_from_graph_matches_the_executor():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = load(_paper("cnn_sinabs.nir"), preset="sinabs")
    model = from_graph(g, dtype=torch.float64)
    assert any(isinstance(m, SumPool2d) for m in model) and any(isinstance(m, nn.Conv2d) for m in model)
    x = torch.as_tensor(random_spike_array(2, 8, (2, 34, 34), 0.3, seed=10), dtype=torch.float64)
    y, rec = model(x, record=True)
    res = simulate_float(g, x.numpy(), record=True)
    assert np.array_equal(res.output, y.detach().numpy())
    first = next(iter(rec))
    assert rec[first]["s"].sum() > 0
