"""Hardware-aware mode: IntegerNet is bit-exact with the reference simulator (and Lava), and the fake-quantised
model runs the same integers forward while its gradients follow the float model."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from toolchain import fixedpoint as fx
from toolchain.nn import IntegerNet, quantisation_aware
from toolchain.nn import integer as I
from toolchain.passes.quantise import BIAS_GROUP
from toolchain.sim.record import first_mismatch
from toolchain.sim.reference import simulate
from toolchain.testing import int_inputs, int_program, random_spike_array, random_spiking_model

torch.set_num_threads(1)
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
DT = 1e-3


# ------------------------------------------------------------------------ the torch rules vs fixedpoint
def _extreme_ints(r, n, lo=-(2 ** 31), hi=2 ** 31 - 1):
    """Integers concentrated near the interesting edges (0, ±2^23, int32 limits) plus uniform ones."""
    edges = np.array([0, 1, -1, fx.MAX_UV, fx.MAX_UV - 1, fx.MAX_UV + 1, -fx.MAX_UV, -fx.MAX_UV + 1, -fx.MAX_UV - 1,
                      2 ** 24, -2 ** 24, lo, hi, 2 ** 25 + 3, -3 * 2 ** 23])
    out = r.integers(lo, hi, size=n, endpoint=True)
    pick = r.random(n) < 0.3
    out[pick] = np.clip(r.choice(edges, size=int(pick.sum())) + r.integers(-2, 3, size=int(pick.sum())), lo, hi)
    return out


@pytest.mark.parametrize("reset", ["zero", "subtract"])
def test_lif_step_matches_fixedpoint_including_wraps_and_saturation(reset):
    r = np.random.default_rng(0)
    n = 20000
    u = _extreme_ints(r, n, -fx.MAX_UV, fx.MAX_UV)  # Lava's u may hold +2^23 (one-correction wrap)
    v = _extreme_ints(r, n, fx.V_MIN, fx.V_MAX)
    a_in = _extreme_ints(r, n)
    du = r.choice([0, 1, 4094, 4095, 2000], size=n)
    dv = r.choice([0, 1, 4095, 123], size=n)
    vth = r.choice([0, 1, 2 ** 17 - 1, 5000], size=n)
    bm = r.integers(-4096, 4096, size=n)
    be = r.integers(0, 8, size=n)
    want_u, want_v, want_s = fx.lif_step(u.astype(np.int32), v.astype(np.int32), a_in.astype(np.int32), du, dv,
                                         vth, bm, be, reset)
    t = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float64))  # noqa: E731
    fu = t((fx.DECAY_UNITY - du - fx.DS_OFFSET) / fx.DECAY_UNITY)
    fv = t((fx.DECAY_UNITY - dv) / fx.DECAY_UNITY)
    got_u, got_v, got_s = I.lif_step_int(t(u), t(v), t(a_in), fu, fv, t(fx.effective_bias(bm, be)),
                                         t(fx.effective_threshold(vth)), reset == "subtract")
    assert np.array_equal(got_u.numpy().astype(np.int64), want_u.astype(np.int64))
    assert np.array_equal(got_v.numpy().astype(np.int64), want_v.astype(np.int64))
    assert np.array_equal(got_s.numpy().astype(bool), want_s)
    # the edges were really exercised
    assert (np.abs(want_v) == fx.V_MAX).sum() > 100 and want_s.sum() > 100


def test_wraps_match_fixedpoint():
    r = np.random.default_rng(1)
    x = np.concatenate([_extreme_ints(r, 5000, -(2 ** 40), 2 ** 40), _extreme_ints(r, 5000)])
    got = I.wrap32(torch.as_tensor(x, dtype=torch.float64)).numpy().astype(np.int64)
    assert np.array_equal(got, fx.wrap_int32(x).astype(np.int64))
    assert np.array_equal(I.wrap32(torch.as_tensor(x)).numpy(), fx.wrap_int32(x).astype(np.int64))
    y = _extreme_ints(r, 5000)
    assert np.array_equal(I.wrap_current(torch.as_tensor(y, dtype=torch.float64)).numpy().astype(np.int64),
                          fx.wrap_current(y.astype(np.int32)).astype(np.int64))


@pytest.mark.parametrize("graded,process,exp", [(False, "dense", 0), (False, "dense", -3), (False, "sparse", 4),
                                                (True, "dense", 2), (True, "sparse", -2), (True, "delay_dense", 1)])
def test_synaptic_activation_matches_fixedpoint(graded, process, exp):
    r = np.random.default_rng(2)
    w = r.integers(-256, 256, size=(7, 40))
    s = r.integers(0, 2 ** 24 if graded else 2, size=(5, 40)) * (r.random((5, 40)) < 0.5)
    want = fx.synaptic_input(w, s, exp, graded=graded, process=process)
    syn = I._Syn("w", "a", "b", 1 if process == "delay_dense" else 0, exp, graded, process,
                 torch.as_tensor(w.T.astype(np.float64)), torch.ones(40, 7, dtype=torch.bool),
                 graded and process == "delay_dense", False)
    got = I._activation(syn, torch.as_tensor(s, dtype=torch.float64))
    assert np.array_equal(got.numpy().astype(np.int64), want.astype(np.int64))
    if graded:
        assert np.abs(want).max() > 2 ** 28  # large enough that int32 wraps matter


# ------------------------------------------------------------------------- IntegerNet vs the reference
def _assert_exact(net: IntegerNet, x, steps=None):
    ref = simulate(net.program, x, steps=steps, record=True)
    got = net.run(x, steps=steps, record=True)
    assert first_mismatch(ref, got) is None, str(first_mismatch(ref, got))
    for g in net.program.groups:  # every spike, u and v of every group at every step
        assert np.array_equal(ref.spikes[g], got.spikes[g]) and np.array_equal(ref.u[g], got.u[g])
        assert np.array_equal(ref.v[g], got.v[g])
    return ref


@pytest.mark.parametrize("kwargs", [
    dict(recurrent=True, skip=True, max_delay=3, storage="mixed", reset_mode="mixed"),
    dict(extreme=True, graded_bits=8, weight_exp=(-4, 6), storage="csr", reset_mode="subtract"),
    dict(extreme=True, recurrent=True, sign_modes=("mixed", "excitatory", "inhibitory"), weight_bits=(3, 6, 8),
         weight_exp=(-2, 7), max_delay=2, readout=True),
    dict(graded_bits=24, weight_exp=(5, 7), storage="structured", reset_mode="zero", recurrent=True),
    dict(v_init=True, reset_mode="mixed", readout=True),
    dict(v_init=True, extreme=True, recurrent=True),
])
@pytest.mark.parametrize("seed", [0, 1])
def test_integer_net_equals_reference_on_random_programs(kwargs, seed):
    prog = int_program((10, 12, 8, 5), seed=seed, **kwargs)
    x = int_inputs(prog, batch=3, steps=30, seed=seed + 10)
    ref = _assert_exact(IntegerNet(prog), x)
    assert sum(int(s.sum()) for s in ref.spikes.values()) > 0


CASES = [("ff", "lif", "subtract", "spiking"), ("ff", "cuba", "zero", "li"), ("rec", "lif", "zero", "spiking"),
         ("rec", "cuba", "subtract", "li"), ("conv", "lif", "zero", "li"), ("conv", "cuba", "subtract", "spiking")]


@pytest.mark.parametrize("kind,neuron,reset,readout", CASES)
def test_integer_net_from_model_equals_reference(kind, neuron, reset, readout):
    model, shape = random_spiking_model(kind, seed=5, neuron=neuron, reset=reset, readout=readout)
    net = IntegerNet.from_model(model, "loihi2", DT, shape)
    x = random_spike_array(4, 30, shape, 0.3, seed=6)
    ref = _assert_exact(net, x)
    hidden = next(iter(net.program.groups))
    assert ref.spikes[hidden].mean() > 0.02
    # forward() gives the same numbers with the groups' shapes
    y, rec = net(torch.as_tensor(x), record=True)
    out = net.program.output
    assert y.shape == (4, 30) + net.output_shape
    assert np.array_equal(y.reshape(4, 30, -1).numpy(), ref.output.astype(np.int64))
    assert np.array_equal(rec[out]["v"].reshape(4, 30, -1).numpy(), ref.v[out])
    assert net.latency == 2 == net.program.metadata["latency_steps"][out]


def test_integer_net_checks_its_input():
    model, shape = random_spiking_model("ff", seed=1)
    net = IntegerNet.from_model(model, "loihi2", DT)  # input shape from the leading nn.Linear
    with pytest.raises(Exception, match="input"):
        net(torch.full((1, 3, 12), 0.5))
    with pytest.raises(Exception, match="shape"):
        net(torch.zeros(1, 3, 11, dtype=torch.int64))


# --------------------------------------------------------------------------------- quantisation-aware
@pytest.mark.parametrize("kind,neuron,reset,readout", CASES)
def test_fake_quant_forward_is_the_integer_network(kind, neuron, reset, readout):
    model, shape = random_spiking_model(kind, seed=7, neuron=neuron, reset=reset, readout=readout)
    q = quantisation_aware(model, "loihi2", DT)
    x = torch.as_tensor(random_spike_array(3, 25, shape, 0.3, seed=8))
    y, rec = q(x, record=True, align=False)  # the raw hardware time line
    ref = simulate(q.program, x.numpy(), record=True)
    groups = [g for g in q.program.groups if g != BIAS_GROUP]  # the always-on group of a CubaLIF bias has no module
    if neuron == "cuba" and any(getattr(m, "bias", None) is not None for m in model.modules()):
        assert BIAS_GROUP in q.program.groups  # the bias reaches the current, as the compiler maps it by default
    for (mname, _), g in zip(model.neurons(), groups):
        assert np.array_equal(rec[mname]["s"].detach().reshape(3, 25, -1).numpy(), ref.spikes[g])
        assert np.array_equal(rec[mname]["hw_u"].reshape(3, 25, -1).numpy(), ref.u[g])
        assert np.array_equal(rec[mname]["hw_v"].reshape(3, 25, -1).numpy(), ref.v[g])
    out = q.program.groups[q.program.output]
    if out.spiking:
        assert np.array_equal(y.detach().reshape(3, 25, -1).numpy(), ref.output)
    else:  # a readout's v in float units: v / S with the compiler's scale
        S = np.asarray(q.program.metadata["v_scale"][out.name], dtype=np.float64)
        np.testing.assert_allclose(y.detach().reshape(3, 25, -1).numpy(), ref.output / S, rtol=1e-15)
    # aligned (default): T + latency steps are run and each layer is cut to the float model's time axis
    lat = q.program.metadata["latency_steps"]
    ref2 = simulate(q.program, x.numpy(), steps=25 + max(lat.values()), record=True)
    y2, rec2 = q(x, record=True)
    assert y2.shape == y.shape
    for (mname, _), g in zip(model.neurons(), groups):
        want = ref2.spikes[g][:, lat[g]:lat[g] + 25]
        assert np.array_equal(rec2[mname]["s"].detach().reshape(3, 25, -1).numpy(), want)
    y.sum().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.all(torch.isfinite(g)) for g in grads)
    assert all(float(g.abs().sum()) > 0 for g in grads)


@pytest.mark.parametrize("kind,neuron", [("ff", "lif"), ("ff", "cuba"), ("rec", "lif"), ("conv", "lif")])
def test_fake_quant_gradients_follow_the_float_model(kind, neuron):
    """The STE ties are in the right units: the gradient of a readout loss through the integer network points
    where the float model's does and has its size (the forward passes differ only by quantisation)."""
    model, shape = random_spiking_model(kind, seed=0, neuron=neuron, readout="li")
    q = quantisation_aware(model, "loihi2", DT, input_shape=shape)
    x = torch.as_tensor(random_spike_array(6, 30, shape, 0.3, seed=1), dtype=torch.float64)
    target = torch.as_tensor(np.random.default_rng(2).normal(size=(6, 30, model[-1].shape[0])))
    ((q(x) - target) ** 2).mean().backward()  # aligned with the float model's steps
    g_q = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    ((model(x) - target) ** 2).mean().backward()
    for (name, p), gq in zip(model.named_parameters(), g_q):
        cos = torch.nn.functional.cosine_similarity(gq.flatten(), p.grad.flatten(), 0).item()
        ratio = (gq.norm() / p.grad.norm()).item()
        assert cos > 0.95 and 0.8 < ratio < 1.25, (name, cos, ratio)


def test_fake_quant_requantises_after_each_update_and_learns():
    model, shape = random_spiking_model("ff", seed=3, readout="li")
    q = quantisation_aware(model, "loihi2", DT)
    x = torch.as_tensor(random_spike_array(8, 20, shape, 0.3, seed=4))
    target = torch.zeros(8, 20, 6, dtype=torch.float64)
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    losses, vths = [], []
    for _ in range(4):
        opt.zero_grad()
        loss = ((q(x) - target) ** 2).mean()
        loss.backward()
        opt.step()
        model.clamp_()
        losses.append(loss.item())
        vths.append(q.program.quant_report["groups"]["lif1"]["vth"])
    assert q._compiles == 4  # one compile per changed parameter set
    assert losses[-1] < losses[0]
    q(x)
    assert q._compiles == 5
    q(x)
    assert q._compiles == 5  # nothing changed: no recompile


def test_float_model_and_integer_network_agree_closely():
    """Report figure: how often the float model (shifted by the hardware latency) spikes like the integer one."""
    agreements = []
    for kind in ("ff", "rec", "conv"):
        model, shape = random_spiking_model(kind, seed=11)
        net = IntegerNet.from_model(model, "loihi2", DT, shape)
        x = random_spike_array(8, 40, shape, 0.25, seed=12)
        y_int = net(torch.as_tensor(x)).numpy()
        lat = net.latency
        y_f = model(torch.as_tensor(x, dtype=torch.float64)).detach().numpy()
        a = float((y_int[:, lat:] == y_f[:, :-lat]).mean())
        agreements.append(a)
        print(f"{kind}: float vs integer output spike agreement {a:.4f}")
    assert min(agreements) > 0.9


def test_small_case_on_lava_matches_integer_net():
    pytest.importorskip("lava")
    from toolchain.backends.lava import run_lava
    model, shape = random_spiking_model("rec", seed=2)
    net = IntegerNet.from_model(model, "loihi2", DT, shape)
    x = random_spike_array(1, 12, shape, 0.3, seed=3)
    lava = run_lava(net.program, x, record=True)
    mine = net.run(x, record=True)
    assert first_mismatch(lava, mine) is None, str(first_mismatch(lava, mine))
    assert sum(int(s.sum()) for s in lava.spikes.values()) > 0


def test_fake_quant_models_the_exact_current_bias_path():
    """A CubaLIF bias is compiled into the synaptic current (always-on group) as for deployment; its gradient goes
    through the always-on synapses' surrogate and follows the float model's. ``cuba_bias="fold"`` still works."""
    model, shape = random_spiking_model("ff", seed=0, neuron="cuba", readout="li")
    q = quantisation_aware(model, "loihi2", DT, input_shape=shape)
    x = torch.as_tensor(random_spike_array(6, 30, shape, 0.3, seed=1), dtype=torch.float64)
    target = torch.as_tensor(np.random.default_rng(2).normal(size=(6, 30, model[-1].shape[0])))
    ((q(x) - target) ** 2).mean().backward()
    assert BIAS_GROUP in q.program.groups and q.program.quant_report["groups"]["cubalif1"]["cuba_bias"] == "current"
    hooks, _ = q._hooks()
    on = [s.name for s in q._plan.syns if s.src == BIAS_GROUP]
    assert on and sum(n in hooks.syn for n in on) == len({s.dst for s in q._plan.syns if s.src == BIAS_GROUP})
    assert "cubalif1" not in hooks.bias  # no voltage-bias surrogate: the bias is in the current
    g_q = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    ((model(x) - target) ** 2).mean().backward()
    for n, p in model.named_parameters():
        if n.endswith("bias"):
            cos = torch.nn.functional.cosine_similarity(g_q[n].flatten(), p.grad.flatten(), 0).item()
            ratio = (g_q[n].norm() / p.grad.norm()).item()
            assert cos > 0.99 and 0.8 < ratio < 1.25, (n, cos, ratio)
    fold = quantisation_aware(model, "loihi2", DT, input_shape=shape, cuba_bias="fold")
    y = fold(x, align=False)
    assert BIAS_GROUP not in fold.program.groups
    ref = simulate(fold.program, x.numpy().astype(np.int64), record=True)
    S = np.asarray(fold.program.metadata["v_scale"][fold.program.output], dtype=np.float64)
    np.testing.assert_allclose(y.detach().reshape(6, 30, -1).numpy(), ref.output / S, rtol=1e-15)
