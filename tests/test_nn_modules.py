"""toolchain.nn float modules: neuron equations, surrogates, container state handling, recording, clamps."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from toolchain.nn import (LI, LIF, CubaLIF, Recurrent, SpikingNet, SumPool2d, THRESHOLD_MIN, functional as Fn)
from toolchain.testing import random_spike_array, random_spiking_model

torch.set_num_threads(1)


def _x(*shape, seed=0, rate=0.3):
    return torch.as_tensor(random_spike_array(shape[0], shape[1], shape[2:], rate, seed), dtype=torch.float64)


# ------------------------------------------------------------------------------------------ neuron equations
@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_lif_follows_the_equations_step_by_step(reset):
    alpha, theta = 0.75, 1.0  # exactly representable in float32 (the modules' default dtype)
    lif = LIF(1, alpha=alpha, threshold=theta, reset=reset).double()
    inputs = [0.6, 0.7, 0.2, 1.5, 0.0, 0.3]
    u, s, state, n_spikes = 0.0, 0.0, None, 0
    for t, i in enumerate(inputs):
        if t == 0:
            u = i
        elif reset == "subtract":
            u = alpha * (u - theta * s) + i
        else:
            u = alpha * u * (1 - s) + i
        s = float(u > theta)
        n_spikes += int(s)
        out, state = lif(torch.tensor([[i]], dtype=torch.float64), state)
        assert out.item() == s
        assert state.u.item() == pytest.approx(u, abs=1e-15)
    assert n_spikes >= 2  # the sequence exercises spikes followed by resets


def test_threshold_is_strict():
    lif = LIF(2, alpha=0.5, threshold=1.0).double()
    s, st = lif(torch.tensor([[1.0, 1.0 + 1e-12]], dtype=torch.float64))
    assert s.tolist() == [[0.0, 1.0]]


def test_cubalif_updates_the_current_first():
    m = CubaLIF(1, alpha_syn=0.5, alpha_mem=0.875, threshold=10.0).double()
    st = None
    i_ref = u_ref = 0.0
    for t, x in enumerate([1.0, 0.0, 2.0, 0.0]):
        i_ref = x if t == 0 else 0.5 * i_ref + x
        u_ref = i_ref if t == 0 else 0.875 * u_ref + i_ref
        _, st = m(torch.tensor([[x]], dtype=torch.float64), st)
        assert st.i.item() == pytest.approx(i_ref, abs=1e-15)
        assert st.u.item() == pytest.approx(u_ref, abs=1e-15)


def test_li_is_a_leaky_integrator_without_spikes():
    m = LI(3, alpha=torch.tensor([0.0, 0.5, 1.0])).double()
    st = None
    for _ in range(3):
        y, st = m(torch.ones(1, 3, dtype=torch.float64), st)
    assert y.tolist() == [[1.0, 1.75, 3.0]]


def test_per_layer_and_per_neuron_parameters():
    a = LIF((2, 3), alpha=0.7, threshold=1.2, per_neuron=False, learn_threshold=True, learn_leak=True)
    assert a.alpha.shape == () and a.threshold.shape == ()
    assert isinstance(a.alpha, nn.Parameter) and isinstance(a.threshold, nn.Parameter)
    b = LIF((2, 3), alpha=torch.full((2, 3), 0.7), threshold=1.2)
    assert b.alpha.shape == (2, 3) and b.threshold.shape == (2, 3)
    assert not isinstance(b.threshold, nn.Parameter) and "threshold" in dict(b.named_buffers())


@pytest.mark.parametrize("kwargs", [dict(alpha=1.2), dict(alpha=-0.1), dict(threshold=0.0), dict(reset="none"),
                                    dict(surrogate="relu"), dict(alpha=[0.5, 0.6], per_neuron=False)])
def test_bad_neuron_arguments_are_rejected(kwargs):
    with pytest.raises(ValueError):
        LIF(2, **kwargs)


def test_input_of_the_wrong_shape_names_the_module():
    with pytest.raises(ValueError, match="LIF of shape"):
        LIF(4)(torch.zeros(2, 5))


# ----------------------------------------------------------------------------------------------- surrogates
@pytest.mark.parametrize("name,phi", [
    ("exp", lambda x, k: math.exp(-k * abs(x))),
    ("fast_sigmoid", lambda x, k: 1.0 / (1.0 + k * abs(x)) ** 2),
    ("atan", lambda x, k: 1.0 / (1.0 + (math.pi / 2 * k * x) ** 2)),
    ("rectangular", lambda x, k: float(abs(k * x) < 0.5)),
])
def test_surrogate_gradients_match_their_formulas(name, phi):
    xs = [-2.0, -0.3, 0.0, 0.2, 1.7]
    for k in (1.0, 3.0):
        x = torch.tensor(xs, dtype=torch.float64, requires_grad=True)
        s = Fn.spike(x, name, k)
        assert s.tolist() == [0.0, 0.0, 0.0, 1.0, 1.0]
        s.sum().backward()
        assert x.grad.tolist() == pytest.approx([phi(v, k) for v in xs], abs=1e-12)


def test_lif_gradient_reaches_threshold_and_leak_through_the_surrogate():
    torch.manual_seed(0)
    net = SpikingNet(nn.Linear(5, 4), LIF(4, learn_threshold=True, learn_leak=True, surrogate="exp")).double()
    x = _x(2, 6, 5, seed=1, rate=0.6)
    net(x).sum().backward()
    lif = net[1]
    assert torch.all(torch.isfinite(lif.threshold.grad)) and lif.threshold.grad.abs().sum() > 0
    assert torch.all(torch.isfinite(lif.alpha.grad)) and lif.alpha.grad.abs().sum() > 0
    # the threshold gradient of the first step is −φ(U−θ) summed over the batch (dU/dθ = 0 at t = 0)
    lif2 = LIF(3, alpha=0.9, threshold=torch.tensor([0.5, 1.0, 2.0]), learn_threshold=True).double()
    i = torch.tensor([[1.0, 1.0, 1.0]], dtype=torch.float64)
    s, _ = lif2(i)
    s.sum().backward()
    expect = -torch.exp(-(i[0] - lif2.threshold.detach()).abs())
    assert torch.allclose(lif2.threshold.grad, expect)


def test_detach_reset_cuts_the_reset_path_only():
    torch.manual_seed(0)
    kw = dict(alpha=0.9, threshold=0.5, learn_threshold=True)
    a, b = LIF(3, **kw).double(), LIF(3, **kw, detach_reset=True).double()
    x = torch.tensor([[1.0, 0.2, 0.7], [0.1, 0.9, 0.2], [0.4, 0.4, 0.4]], dtype=torch.float64)
    outs = []
    for m in (a, b):
        st, tot = None, 0
        for t in range(3):
            s, st = m(x[t:t + 1], st)
            tot = tot + st.u.sum()
        tot.backward()
        outs.append((st.u.detach().clone(), m.threshold.grad.clone()))
    assert torch.equal(outs[0][0], outs[1][0])  # same forward
    assert not torch.allclose(outs[0][1], outs[1][1])  # different gradients


def test_clamp_keeps_leak_and_threshold_in_range():
    net = SpikingNet(nn.Linear(2, 3), LIF(3, learn_threshold=True, learn_leak=True),
                     nn.Linear(3, 3), Recurrent(CubaLIF(3, learn_leak=True, learn_threshold=True), 3),
                     nn.Linear(3, 2), LI(2, learn_leak=True))
    with torch.no_grad():
        net[1].alpha.copy_(torch.tensor([-0.5, 0.5, 1.5]))
        net[1].threshold.copy_(torch.tensor([-1.0, 0.0, 2.0]))
        net[3].neuron.alpha_syn.fill_(3.0)
        net[3].neuron.threshold.fill_(-2.0)
        net[5].alpha.fill_(-1.0)
    net.clamp_()
    assert net[1].alpha.tolist() == [0.0, 0.5, 1.0]
    assert net[1].threshold.tolist() == pytest.approx([THRESHOLD_MIN, THRESHOLD_MIN, 2.0])
    assert net[3].neuron.alpha_syn.tolist() == [1.0] * 3
    assert net[3].neuron.threshold.tolist() == pytest.approx([THRESHOLD_MIN] * 3)
    assert net[5].alpha.tolist() == [0.0, 0.0]


# ------------------------------------------------------------------------------------------------- layers
def test_sumpool_sums_windows():
    x = torch.arange(16, dtype=torch.float64).reshape(1, 1, 4, 4)
    y = SumPool2d(2)(x)
    assert y.squeeze().tolist() == [[0 + 1 + 4 + 5, 2 + 3 + 6 + 7], [8 + 9 + 12 + 13, 10 + 11 + 14 + 15]]
    y = SumPool2d(3, stride=1, padding=1)(torch.ones(1, 2, 3, 3, dtype=torch.float64))
    assert y[0, 0].tolist() == [[4, 6, 4], [6, 9, 6], [4, 6, 4]]


def test_recurrent_adds_previous_spikes_through_w_rec():
    torch.manual_seed(3)
    w = torch.randn(4, 4, dtype=torch.float64)
    rec = Recurrent(LIF(4, alpha=0.8, threshold=0.7), 4, weight=w).double()
    lif = LIF(4, alpha=0.8, threshold=0.7).double()
    x = torch.randn(2, 10, 4, dtype=torch.float64)
    st_r = st_l = None
    s_prev = torch.zeros(2, 4, dtype=torch.float64)
    for t in range(10):
        s_r, st_r = rec(x[:, t], st_r)
        s_l, st_l = lif(x[:, t] + s_prev @ w.T, st_l)
        assert torch.equal(s_r, s_l) and torch.allclose(st_r.u, st_l.u, atol=1e-14)
        s_prev = s_l
    assert s_prev.sum() > 0


def test_recurrent_bias_is_added_from_the_first_step():
    rec = Recurrent(LIF(2, alpha=0.5, threshold=100.0), 2, weight=torch.zeros(2, 2), bias=True).double()
    with torch.no_grad():
        rec.rec.bias.copy_(torch.tensor([1.0, -1.0]))
    st = None
    us = []
    for _ in range(3):
        _, st = rec(torch.zeros(1, 2, dtype=torch.float64), st)
        us.append(st.u[0].tolist())
    assert us == [[1.0, -1.0], [1.5, -1.5], [1.75, -1.75]]


# ---------------------------------------------------------------------------------------------- container
@pytest.mark.parametrize("kind", ["ff", "rec", "conv"])
def test_no_state_leaks_between_calls_or_samples(kind):
    model, shape = random_spiking_model(kind, seed=4, neuron="cuba" if kind == "rec" else "lif")
    xa = torch.as_tensor(random_spike_array(3, 12, shape, 0.3, seed=5), dtype=torch.float64)
    xb = torch.as_tensor(random_spike_array(2, 12, shape, 0.3, seed=6), dtype=torch.float64)
    ya = model(xa)
    yb1 = model(xb)
    ya2 = model(xa)  # after another batch: same as the first call
    assert torch.equal(ya, ya2)
    # batch composition does not matter: each sample as if alone
    y_cat = model(torch.cat([xb, xa]))
    assert torch.equal(y_cat[:2], yb1) and torch.equal(y_cat[2:], ya)
    for k in range(2):
        assert torch.equal(model(xb[k:k + 1]), yb1[k:k + 1])
    assert ya.abs().sum() > 0
    assert not any(isinstance(v, torch.Tensor) and v.dim() > 1 and v.shape[0] == 3
                   for v in vars(model).values())


@pytest.mark.parametrize("kind", ["ff", "rec", "conv"])
def test_step_and_record_agree_with_forward(kind):
    model, shape = random_spiking_model(kind, seed=7, readout="li")
    x = torch.as_tensor(random_spike_array(2, 9, shape, 0.3, seed=8), dtype=torch.float64)
    y, rec = model(x, record=True)
    states = None
    for t in range(x.shape[1]):
        y_t, states = model.step(x[:, t], states)
        assert torch.equal(y_t, y[:, t])
    names = [n for n, _ in model.neurons()]
    assert list(rec) == names
    for name, m in model.neurons():
        r = rec[name]
        neuron = m.neuron if isinstance(m, Recurrent) else m
        assert r["u"].shape == (2, 9) + neuron.shape
        if neuron.spiking:
            assert torch.equal(r["s"], (r["u"] > neuron.threshold).to(r["u"].dtype))
        else:
            assert set(r) == {"u"}
    assert torch.equal(rec[names[-1]]["u"], y)  # LI readout outputs its membrane


def test_integer_input_is_converted_and_bad_shapes_are_rejected():
    model, shape = random_spiking_model("ff", seed=1)
    x = torch.as_tensor(random_spike_array(2, 5, shape, 0.3, seed=2))
    assert x.dtype == torch.int32
    assert torch.equal(model(x), model(x.double()))
    with pytest.raises(ValueError):
        model(torch.zeros(5, 12))


def test_blocks_pairs_synapses_with_neurons():
    conv, pool, lin, lin2 = nn.Conv2d(1, 2, 3), SumPool2d(2), nn.Linear(8, 4), nn.Linear(4, 2)
    l1, r2, l3 = LIF((2, 4, 4)), Recurrent(LIF(4), 4), LI(2)
    net = SpikingNet(conv, l1, pool, nn.Flatten(), lin, r2, lin2, l3)
    assert [(a, b) for a, b in net.blocks()] == [(conv, l1), (lin, r2), (lin2, l3)]
    pre = [p for p, _ in net.segments()]
    assert pre[1][0] is pool and isinstance(pre[1][1], nn.Flatten) and pre[1][2] is lin
    y = net(torch.zeros(1, 3, 1, 6, 6))
    assert y.shape == (1, 3, 2)
