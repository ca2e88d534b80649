"""HRSNN: heterogeneous timescales, fixed sparse masks, the numpy/torch dynamics agree, NIR export, training."""
import numpy as np
import pytest
import torch

from toolchain.data.base import SplitDataset
from toolchain.nn.hrsnn import HRSNN, sample_timescales
from toolchain.prune.activity import activity_prune, neuron_activity
from toolchain.prune.lyapunov import RecurrentNet, simulate


@pytest.fixture
def f64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def test_timescale_distributions():
    rng = np.random.default_rng(0)
    t = sample_timescales(("loguniform", 2e-3, 30e-3), 5000, 1e-3, rng)
    assert t.min() >= 2e-3 and t.max() <= 30e-3
    assert abs(np.median(np.log(t)) - 0.5 * (np.log(2e-3) + np.log(30e-3))) < 0.1
    g = sample_timescales(("gamma", 3.0, 4e-3), 5000, 1e-3, rng)
    assert g.min() >= 1e-3 and abs(g.mean() - 12e-3) < 1e-3
    assert np.all(sample_timescales(0.5e-3, 4, 1e-3, rng) == 1e-3)  # clipped at dt
    with pytest.raises(ValueError, match="unknown"):
        sample_timescales(("weibull", 1, 2), 3, 1e-3, rng)
    with pytest.raises(ValueError, match="positive"):
        sample_timescales(("loguniform", -1, 2), 3, 1e-3, rng)


def test_construction_heterogeneity_and_mask():
    m = HRSNN(12, 30, 2, connectivity=0.5, seed=3)
    assert [n for n, _ in m.named_children()] == ["inp", "rec", "out", "readout"]
    assert m.rec_mask.shape == (30, 30) and not m.rec_mask.diagonal().any()
    w = m.rec.rec.weight.detach()
    assert torch.all(w[~m.rec_mask] == 0) and torch.all(w[m.rec_mask] != 0)
    assert 0.4 < m.n_synapses / (30 * 29) < 0.6
    assert np.ptp(m.tau_mem) > 5e-3 and np.ptp(m.tau_syn) > 1e-3  # heterogeneous
    assert m.tau_mem.min() >= 2e-3 - 1e-9 and m.tau_mem.max() <= 30e-3 + 1e-9
    again = HRSNN(12, 30, 2, connectivity=0.5, seed=3)
    assert torch.equal(again.rec.rec.weight, m.rec.rec.weight) and np.array_equal(again.tau_mem, m.tau_mem)
    lif = HRSNN(12, 30, 2, neuron="lif", seed=3)
    assert lif.tau_syn is None and lif.neuron_kind == "lif"
    counts = m.synapse_counts()
    assert counts["total"] == 12 * 30 + m.n_synapses + 2 * 30


@pytest.mark.parametrize("neuron,reset", [("cuba", "zero"), ("cuba", "subtract"), ("lif", "zero")])
def test_numpy_dynamics_equal_the_torch_model(f64, neuron, reset):
    m = HRSNN(10, 25, 3, neuron=neuron, reset=reset, rec_gain=1.5, in_gain=3.0, seed=4)
    x = torch.as_tensor((np.random.default_rng(1).random((2, 60, 10)) < 0.3).astype(np.float64))
    with torch.no_grad():
        _, rec = m(x, record=True)
    net = m.recurrent_net()
    assert isinstance(net, RecurrentNet) and net.reset == reset
    drive = (x @ m.inp.weight.detach().T).numpy()
    sim = simulate(net, drive)
    s_t = rec["rec"]["s"].numpy()
    assert s_t.sum() > 20
    np.testing.assert_array_equal(sim["s"], s_t)
    np.testing.assert_allclose(sim["u"], rec["rec"]["u"].numpy(), atol=1e-10)


def test_mask_stays_fixed_during_training():
    m = HRSNN(8, 20, 2, connectivity=0.3, seed=5)
    mask = m.rec_mask.clone()
    w0 = m.rec.rec.weight.detach().clone()
    opt = torch.optim.Adam(m.parameters(), lr=0.05)
    x = torch.rand(4, 30, 8)
    for _ in range(5):
        loss = (m(x) ** 2).mean() + m.rec.rec.weight.abs().sum()  # a loss that pushes every weight
        opt.zero_grad()
        loss.backward()
        opt.step()
    m.apply_masks_()
    w = m.rec.rec.weight.detach()
    assert torch.all(w[~mask] == 0)
    assert not torch.allclose(w[mask], w0[mask])
    # the model's own forward re-applies the mask even if someone writes into pruned entries
    with torch.no_grad():
        m.rec.rec.weight.fill_(1.0)
    m(x)
    assert torch.all(m.rec.rec.weight.detach()[~mask] == 0)


def test_pruned_model_follows_the_pruned_network(f64):
    m = HRSNN(6, 16, 2, seed=6, rec_gain=1.0, in_gain=3.0)
    net = m.recurrent_net()
    same = m.pruned(net, np.arange(16))
    x = torch.rand(3, 40, 6)
    torch.testing.assert_close(same(x), m(x))
    keep = np.array([0, 3, 4, 9, 15])
    w = net.subset(keep).w_rec.copy()
    w[0, 1] = 0.0
    small = m.pruned(net.subset(keep).with_weights(w), keep)
    assert small.n_rec == 5 and small.n_synapses == int((w != 0).sum())
    torch.testing.assert_close(small.inp.weight, m.inp.weight[torch.as_tensor(keep)])
    torch.testing.assert_close(small.out.weight, m.out.weight[:, torch.as_tensor(keep)])
    np.testing.assert_allclose(small.tau_mem, m.tau_mem[keep], rtol=1e-12)
    np.testing.assert_allclose(small.tau_syn, m.tau_syn[keep], rtol=1e-12)
    assert small(x).shape == (3, 40, 2)
    with pytest.raises(ValueError, match="keep"):
        m.pruned(net.subset(keep), keep[:3])


def test_set_recurrent_writes_weights_and_mask():
    m = HRSNN(4, 6, 1, seed=7)
    w = np.zeros((6, 6))
    w[1, 2] = 0.5
    m.set_recurrent(w)
    assert m.n_synapses == 1 and float(m.rec.rec.weight[1, 2]) == 0.5
    with pytest.raises(ValueError):
        m.set_recurrent(np.zeros((5, 5)))


def test_export_to_graph_with_sparse_recurrent_edge(f64):
    from toolchain.ir.storage import Csr
    from toolchain.nn import from_graph

    m = HRSNN(5, 12, 2, connectivity=0.4, seed=8, in_gain=3.0)
    g = m.to_graph()
    assert [e.src + "->" + e.dst for e in g.recurrent_edges] == ["rec_rec->rec"]
    node = g["rec_rec"]
    assert isinstance(node.weight, Csr) and node.weight.nnz == m.n_synapses
    np.testing.assert_allclose(node.weight.to_dense(), m.rec.rec.weight.detach().numpy())
    np.testing.assert_allclose(g["rec"].tau_mem, m.tau_mem, rtol=1e-9)
    assert g.dt == m.dt
    back = from_graph(m.to_graph(sparse=False))
    x = (torch.rand(2, 30, 5) < 0.4).double()
    torch.testing.assert_close(back(x), m(x))


def test_trains_with_bptt_and_stop():
    from toolchain.train import TrainConfig, train_bptt, train_stop

    rng = np.random.default_rng(0)
    n, t = 64, 20
    y = rng.integers(0, 2, n)
    x = (rng.random((n, t, 8)) < np.where(y[:, None, None] == 1, 0.4, 0.05)).astype(np.float32)
    x[:, :, 4:] = (rng.random((n, t, 4)) < 0.2)
    data = SplitDataset("toy", x[:48], y[:48], x[48:], y[48:], 2, time_major=True)
    cfg = TrainConfig(epochs=4, batch_size=16, lr=5e-3, progress=False)
    m = HRSNN(8, 20, 2, connectivity=0.5, seed=9, in_gain=3.0)
    hist = train_bptt(m, data, cfg)
    assert hist.test_acc[-1] >= 0.9 and hist.loss[-1] < hist.loss[0]
    assert torch.all(m.apply_masks_().rec.rec.weight[~m.rec_mask] == 0)
    lif = HRSNN(8, 20, 2, neuron="lif", connectivity=0.5, seed=9, in_gain=3.0)
    mask = lif.rec_mask.clone()
    hist = train_stop(lif, data, cfg, variant="W")
    assert hist.loss[-1] < hist.loss[0]
    lif(torch.as_tensor(x[:2]))
    assert torch.all(lif.rec.rec.weight[~mask] == 0)


def test_activity_prune_on_a_model():
    m = HRSNN(6, 20, 2, seed=10, in_gain=3.0, rec_gain=0.8)
    x = (np.random.default_rng(2).random((8, 30, 6)) < 0.3).astype(np.float32)
    act = neuron_activity(m, x)
    assert act.shape == (20,) and act.max() > 0
    res = activity_prune(m, x, 8, 20)
    assert res.model.n_rec == 8 and res.model.n_synapses <= 20
    assert set(res.keep.tolist()) == set(np.argsort(act, kind="stable")[-8:].tolist()) or \
        np.sort(act[res.keep]).min() >= np.sort(act)[-8]


def test_synaptic_ops_count_spikes_times_fan_out():
    from toolchain.prune.tasks import synaptic_ops

    m = HRSNN(6, 12, 2, connectivity=0.3, seed=11, in_gain=3.0, rec_gain=1.0)
    assert synaptic_ops(m, np.zeros((3, 20, 6), np.float32)) == 0.0  # no input, no bias: nothing spikes
    x = (np.random.default_rng(3).random((3, 20, 6)) < 0.4).astype(np.float32)
    with torch.no_grad():
        _, rec = m(torch.as_tensor(x), record=True)
    s = rec["rec"]["s"].numpy().sum((0, 1))
    fan_out = m.rec_mask.numpy().sum(0) + 2
    want = (x.sum() * 12 + (s * fan_out).sum()) / 3
    assert s.sum() > 0 and synaptic_ops(m, x) == pytest.approx(want)
