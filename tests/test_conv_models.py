"""Conv SNN builders (VGG-style and residual): shapes, state handling, training, SCA slicing and IR export."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from toolchain.ir import Conv2d as IRConv, Delay, LIF as IRLIF, verify
from toolchain.nn import to_graph
from toolchain.nn.conv_models import ResidualSpikingNet, SpikingResBlock, resnet_snn, vgg_snn
from toolchain.prune import sca as S
from toolchain.testing import random_channel_masks, random_spike_array


def _spikes(shape, rate=0.3, seed=0):
    return torch.as_tensor(random_spike_array(shape[0], shape[1], shape[2:], rate, seed)).to(torch.float64)


def test_vgg_layout_and_shapes():
    m = vgg_snn(in_shape=(2, 16, 16), channels=(8, 12, 16), pool_after=(0, 2), n_classes=4)
    names = [n for n, _ in m.named_children()]
    assert names == ["conv0", "bn0", "lif0", "pool0", "conv1", "bn1", "lif1", "conv2", "bn2", "lif2", "pool2",
                     "flatten", "fc", "readout"]
    assert isinstance(m.bn0, S.MaskedBatchNorm2d)
    assert m.lif2.shape == (16, 8, 8) and m.fc.in_features == 16 * 4 * 4
    y, rec = m(_spikes((3, 5, 2, 16, 16)).float(), record=True)
    assert y.shape == (3, 5, 4)
    assert set(rec) == {"lif0", "lif1", "lif2", "readout"}
    for k in ("lif0", "lif1", "lif2"):
        assert set(torch.unique(rec[k]["s"]).tolist()) <= {0.0, 1.0}
    plain = vgg_snn(masked=False)
    assert not any(isinstance(x, S.ChannelMasked) for x in plain.modules())
    nobn = vgg_snn(batchnorm=False)
    assert isinstance(nobn.conv0, S.MaskedConv2d) and nobn.conv0.bias is not None
    assert not any(isinstance(x, nn.modules.batchnorm._BatchNorm) for x in nobn.modules())
    with pytest.raises(ValueError):
        vgg_snn(in_shape=(1, 2, 2), pool_after=(0, 1))


@pytest.mark.parametrize("builder", ["vgg", "resnet"])
def test_online_step_equals_forward(builder):
    model = (vgg_snn(seed=1, threshold=0.5) if builder == "vgg" else resnet_snn(seed=1, threshold=0.5)).double()
    x = _spikes((2, 6, 1, 8, 8), seed=1)
    model.train()
    with torch.no_grad():
        model(x)  # running statistics
    model.eval()  # BN in eval mode normalises each step alike, so step() and forward() must agree exactly
    with torch.no_grad():
        y = model(x)
        states, outs = None, []
        for t in range(x.shape[1]):
            o, states = model.step(x[:, t], states)
            outs.append(o)
    assert torch.equal(torch.stack(outs, 1), y)


def test_residual_block_equations():
    torch.manual_seed(2)
    blk = SpikingResBlock(4, 4, (6, 6), threshold=0.4).double().eval()
    x = _spikes((3, 4, 6, 6), seed=2)
    s, st = blk(x)
    i1 = blk.bn1(blk.conv1(x))
    s1 = (i1 > 0.4).double()
    i2 = blk.bn2(blk.conv2(s1)) + x  # identity skip adds the input spikes to the current
    assert torch.allclose(st.mid_u, i1) and torch.allclose(st.u, i2)
    assert torch.equal(s, (i2 > 0.4).double())
    proj = SpikingResBlock(4, 6, (6, 6), stride=2).double()
    assert not proj.identity_skip and proj.shape == (6, 3, 3)
    s2, st2 = proj(x)
    assert s2.shape == (3, 6, 3, 3) and st2.mid_u.shape == (3, 6, 3, 3)
    with pytest.raises(ValueError):
        proj(torch.zeros(1, 5, 6, 6, dtype=torch.float64))
    # the state carries over: a second step with the first state differs from a fresh start
    s3, _ = blk(x, st)
    assert not torch.equal(blk(x, st)[1].u, st.u)


def test_resnet_clamp_and_records():
    m = resnet_snn(seed=3)
    with torch.no_grad():
        m.block0.lif1.alpha.fill_(1.5)
    m.clamp_()
    assert float(m.block0.lif1.alpha.max()) == 1.0
    y, rec = m(_spikes((2, 3, 1, 8, 8), seed=3).float(), record=True)
    assert set(rec["block0"]) == {"u", "s", "mid_u", "mid_s"}
    assert rec["block1"]["u"].shape == (2, 3, 32, 4, 4)


def _train(model, ds, epochs, lr=3e-3, bs=64, seed=0):
    from toolchain.data import iterate_batches
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for ep in range(epochs):
        model.train()
        for xb, yb in iterate_batches(ds.x_train, ds.y_train, bs, shuffle=True, seed=seed + ep):
            opt.zero_grad()
            F.cross_entropy(model(xb).mean(1), yb).backward()
            opt.step()
            model.clamp_()


def _acc(model, ds):
    from toolchain.train.loop import evaluate
    return evaluate(model, ds.x_test, ds.y_test)


def test_vgg_learns_digits_quickly():
    from toolchain.data import load_digits_spikes
    ds = load_digits_spikes(steps=4, flatten=False).subset(384, 200)
    torch.manual_seed(4)
    model = vgg_snn(seed=4, channels=(8, 8, 16))
    before = _acc(model, ds)
    _train(model, ds, 4, bs=32)
    after = _acc(model, ds)
    assert after > max(0.5, before + 0.2)


def test_resnet_exports_with_skip_synapses():
    model = resnet_snn(seed=5, stem_channels=6, stages=((6, 1), (10, 2)), threshold=0.5).double()
    x = _spikes((2, 4, 1, 8, 8), seed=5)
    model.train()
    with torch.no_grad():
        model(x)
    masks = random_channel_masks(model, 0.4, seed=5)
    dep = S.deploy(model)
    assert isinstance(dep, ResidualSpikingNet)
    g = dep.to_graph(dt=1e-3, input_shape=(1, 8, 8))
    verify(g)
    assert not any(isinstance(n, Delay) for n in g.nodes.values())  # same-step skip, as in torch
    # the block's output neurons receive the conv path and the skip path from the block's input neurons
    assert sorted(g.predecessors("block0_lif2")) == ["block0_conv2", "block0_skip"]
    assert g.predecessors("block0_skip") == ["stem_lif"] and g.predecessors("block1_skip") == ["block0_lif2"]
    assert g["block0_skip"].weight.shape == (int(masks["stem_bn"].sum()),) * 2 + (1, 1)
    assert g["block1_conv1"].weight.shape[0] == int(masks["block1.bn1"].sum())
    lifs = [n for n in g.nodes.values() if isinstance(n, IRLIF)]
    assert sum(n.size for n in lifs) == sum(int(masks[k].sum()) * hw for k, hw in
                                            (("stem_bn", 64 * 2), ("block0.bn1", 64), ("block1.bn1", 16),
                                             ("block1.bn2", 16)))
    with pytest.raises(ValueError, match="fold batch norm"):
        model.to_graph(dt=1e-3, input_shape=(1, 8, 8))


def test_vgg_export_after_deploy_matches_to_graph_chain():
    model = vgg_snn(seed=6, channels=(4, 6, 8)).double().train()
    with torch.no_grad():
        model(_spikes((4, 3, 1, 8, 8), seed=6))  # BN statistics: a non-zero shift
    g = to_graph(S.deploy(model), dt=1e-3, input_shape=(1, 8, 8))
    kinds = [g[n].kind for n in g.topological_order()]
    assert kinds == ["Input", "Conv2d", "LIF", "Conv2d", "LIF", "SumPool2d", "Conv2d", "LIF", "SumPool2d",
                     "Flatten", "Affine", "LI", "Output"]
    convs = [n for n in g.nodes.values() if isinstance(n, IRConv)]
    assert all(np.any(c.bias != 0) for c in convs)  # BN's shift became the conv bias


def test_vgg_on_event_stream_task():
    from toolchain.data import make_event_dataset
    ds = make_event_dataset(n_train=8, n_test=4, steps=6, sensor_size=(16, 16))
    m = vgg_snn(in_shape=(2, 16, 16), channels=(4, 4, 8), pool_after=(0, 1, 2), n_classes=4, seed=7)
    y = m(torch.as_tensor(ds.x_train))
    assert y.shape == (8, 6, 4)


@pytest.mark.slow
def test_vgg_reaches_high_accuracy_on_digits_and_sca_keeps_it():
    from toolchain.data import load_digits_spikes
    from toolchain.train.loop import TrainConfig
    ds = load_digits_spikes(steps=8, flatten=False)
    model = vgg_snn(seed=0, channels=(32, 32, 64))
    nb = -(-len(ds.y_train) // 64)
    sched = S.SCASchedule(target_sparsity=0.75, start=nb, end=7 * nb, interval=nb // 2)
    hist, sca = S.train_sca(model, ds, sched, TrainConfig(epochs=12, batch_size=64, lr=3e-3, progress=False))
    assert hist.test_acc[-1] > 0.95
    dep = S.deploy(model)
    assert _acc(dep, ds) == pytest.approx(hist.test_acc[-1], abs=1e-9)
    assert sum(k for k, _ in S.channel_report(model).values()) == 32  # 75% of 128 channels removed


@pytest.mark.slow
def test_vgg_learns_event_stream_task():
    from toolchain.data import make_event_dataset
    from toolchain.train.bptt import train_bptt
    from toolchain.train.loop import TrainConfig
    ds = make_event_dataset(n_train=256, n_test=128, steps=10, sensor_size=(16, 16), n_classes=4, seed=1)
    model = vgg_snn(in_shape=(2, 16, 16), channels=(8, 8, 16), pool_after=(0, 1, 2), n_classes=4, seed=1)
    hist = train_bptt(model, ds, TrainConfig(epochs=8, batch_size=32, lr=3e-3, progress=False))
    assert hist.test_acc[-1] > 0.8
