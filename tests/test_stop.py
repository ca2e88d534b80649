"""STOP (toolchain.train.stop): traces and gradients against autograd with the same detachments, memory in T."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from toolchain.errors import ToolchainError
from toolchain.nn import LI, LIF, Recurrent, SpikingNet, SumPool2d
from toolchain.nn import functional as Fn
from toolchain.testing import stop_tiny_mlp
from toolchain.train import stop as S

@pytest.fixture(autouse=True, scope="module")
def _float64():
    """float64 for this module's tests (tight tolerances of the gradient comparisons); restored afterwards."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(before)


# --------------------------------------------------------------------------------------------- reference (autograd)
def detached_bptt_grads(model: SpikingNet, x: torch.Tensor, y: torch.Tensor, loss_start: int = 0):
    """BPTT with every path through an earlier spike cut: for each loss step τ, unroll steps 0..τ with the reset
    term detached (lif_step's detach_reset) and every layer's output spikes of steps t < τ detached, then
    autograd of E[τ]; the sum over τ. The membrane chain U[t−1] -> U[t] keeps its gradient."""
    params = [p for p in model.parameters()]
    total = [torch.zeros_like(p) for p in params]
    T = x.shape[1]
    for tau in range(loss_start, T):
        states = {}
        h = None
        for t in range(tau + 1):
            h = x[:, t]
            for name, m in model.named_children():
                if isinstance(m, (LIF, Recurrent)):
                    neuron = m.neuron if isinstance(m, Recurrent) else m
                    st = states.get(name)
                    i = h
                    if isinstance(m, Recurrent) and st is not None:
                        i = h + m.rec(st[1].detach())
                    s, u = Fn.lif_step(i, None if st is None else st[0], None if st is None else st[1],
                                       neuron.alpha, neuron.threshold, neuron.reset, neuron.surrogate,
                                       neuron.surrogate_scale, detach_reset=True)
                    states[name] = (u, s)
                    h = s if t == tau else s.detach()
                elif isinstance(m, LI):
                    st = states.get(name)
                    u = Fn.li_step(h, None if st is None else st, m.alpha)
                    states[name] = u
                    h = u
                else:
                    h = m(h)
        e = nn.functional.cross_entropy(h, y) / (T - loss_start)
        for acc, g in zip(total, torch.autograd.grad(e, params, allow_unused=True)):
            if g is not None:
                acc += g
    return dict(zip(params, total))


def _compare(model, x, y, variant="WTL", loss_start=0, names=None):
    ref = detached_bptt_grads(model, x, y, loss_start)
    got = S.stop_gradients(model, x, y, variant, loss_start=loss_start, assign=False).grads
    by_name = dict(model.named_parameters())
    checked = 0
    for name, p in by_name.items():
        if names is not None and not any(n in name for n in names):
            continue
        if p not in got:
            continue
        assert torch.allclose(got[p], ref[p], rtol=1e-9, atol=1e-12), \
            f"{name}: max |diff| {(got[p] - ref[p]).abs().max():.3e}, scale {ref[p].abs().max():.3e}"
        assert ref[p].abs().max() > 0, f"{name}: the reference gradient is zero, the test would be vacuous"
        checked += 1
    assert checked > 0
    return checked


def _inputs(batch=4, steps=7, n_in=5, seed=0, classes=3):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(batch, steps, n_in, generator=g) < 0.5).to(torch.get_default_dtype())
    y = torch.randint(0, classes, (batch,), generator=g)
    return x, y


# ---------------------------------------------------------------------------------------------------- pure maths
def test_input_trace_is_leaky_sum_of_inputs():
    x = torch.rand(2, 6, 3, dtype=torch.float64)
    tr = None
    for t in range(6):
        tr = S.input_trace_step(tr, x[:, t], torch.tensor(0.7, dtype=torch.float64), per_synapse=False)
    expect = sum(0.7 ** (5 - k) * x[:, k] for k in range(6))
    assert torch.allclose(tr, expect)


def test_per_synapse_trace_matches_presynaptic_when_keep_is_uniform():
    x = torch.rand(2, 5, 3, dtype=torch.float64)
    a, b = None, None
    keep = torch.full((4,), 0.8, dtype=torch.float64)
    for t in range(5):
        a = S.input_trace_step(a, x[:, t], keep[0], per_synapse=False)
        b = S.input_trace_step(b, x[:, t], keep, per_synapse=True, n_out=4)
    assert b.shape == (2, 4, 3)
    assert torch.allclose(b, a[:, None, :].expand(2, 4, 3))
    d = torch.rand(2, 4, dtype=torch.float64)
    assert torch.allclose(S.linear_weight_grad(d, a), S.linear_weight_grad(d, b))


def test_reduce_to_sums_over_batch_and_shared_neurons():
    g = torch.arange(12.0).reshape(3, 4)
    assert torch.equal(S.reduce_to(g, (4,)), g.sum(0))
    assert torch.equal(S.reduce_to(g, ()), g.sum())
    assert torch.equal(S.reduce_to(g, (), mean=True), g.sum() / 4)


# -------------------------------------------------------------------------- gradients equal detached BPTT's
@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("per_neuron", [False, True])
def test_weight_gradient_equals_detached_bptt(reset, per_neuron):
    model = stop_tiny_mlp(reset=reset, per_neuron=per_neuron, seed=1)
    x, y = _inputs(seed=2)
    assert _compare(model, x, y, "W", names=["weight", "bias"]) >= 1


def test_weight_gradient_with_learned_per_neuron_leak_uses_per_synapse_traces():
    model = stop_tiny_mlp(per_neuron=True, seed=3)
    with torch.no_grad():  # non-uniform leaks: the presynaptic trace no longer suffices
        model[1].alpha.uniform_(0.5, 0.95)
        model[3].alpha.uniform_(0.5, 0.95)
    x, y = _inputs(seed=4)
    assert _compare(model, x, y, "WTL") >= 1


@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_threshold_gradient_equals_detached_autograd(reset):
    model = stop_tiny_mlp(reset=reset, per_neuron=True, seed=5)
    x, y = _inputs(seed=6)
    assert _compare(model, x, y, "WT", names=["threshold"]) >= 1


def _single_layer_traces(reset):
    """Membrane U[t] of one LIF layer under autograd (reset term detached) and STOP's traces for it."""
    g = torch.Generator().manual_seed(21)
    i = torch.rand(3, 12, 4, generator=g) * 1.5
    alpha = torch.tensor([0.6, 0.7, 0.8, 0.9], requires_grad=True)
    theta = torch.tensor([0.5, 0.8, 1.0, 1.2], requires_grad=True)
    u = s = th_tr = al_tr = None
    rows = []
    for t in range(i.shape[1]):
        keep = S.trace_keep(alpha.detach(), None if s is None else s.detach(), reset)
        th_tr = S.threshold_trace_step(th_tr, None if s is None else s.detach(), alpha.detach(), reset)
        al_tr = S.leak_trace_step(al_tr, None if u is None else u.detach(), None if s is None else s.detach(),
                                  theta.detach(), keep, reset)
        s, u = Fn.lif_step(i[:, t], u, s, alpha, theta, reset, detach_reset=True)
        rows.append((u, th_tr, al_tr))
    assert 0 < float(s.sum()) < s.numel()  # some neurons spike, some do not: the reset paths are exercised
    return alpha, theta, rows


def _grad_or_zero(u, p):
    if not u.requires_grad:  # U[0] = I[0] does not depend on α or θ
        return torch.zeros_like(p)
    (g,) = torch.autograd.grad(u.sum(), p, retain_graph=True, allow_unused=True)
    return torch.zeros_like(p) if g is None else g


@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_threshold_trace_is_dU_dtheta_with_detached_reset(reset):
    alpha, theta, rows = _single_layer_traces(reset)
    nonzero = False
    for u, th_tr, _ in rows:
        g = _grad_or_zero(u, theta)
        expect = torch.zeros_like(theta) if th_tr is None else th_tr.sum(0)
        assert torch.allclose(g, expect, atol=1e-12)
        nonzero |= bool(g.abs().max() > 0)
    assert nonzero == (reset == "subtract")  # zero reset: U does not depend on θ


@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_leak_trace_is_dU_dalpha_with_detached_reset(reset):
    alpha, theta, rows = _single_layer_traces(reset)
    for t, (u, _, al_tr) in enumerate(rows):
        g = _grad_or_zero(u, alpha)
        expect = torch.zeros_like(alpha) if al_tr is None else al_tr.sum(0)
        assert torch.allclose(g, expect, atol=1e-12)
        if t > 1:
            assert g.abs().max() > 0


@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("per_neuron", [False, True])
def test_leak_trace_gradient_equals_detached_autograd(reset, per_neuron):
    model = stop_tiny_mlp(reset=reset, per_neuron=per_neuron, seed=7)
    x, y = _inputs(seed=8)
    assert _compare(model, x, y, "WL", names=["alpha"]) >= 1


def test_loss_start_skips_early_steps():
    model = stop_tiny_mlp(seed=9)
    x, y = _inputs(seed=10, steps=8)
    assert _compare(model, x, y, "WTL", loss_start=3) >= 1


def test_spiking_output_layer_gradient_equals_detached_bptt():
    torch.manual_seed(22)
    model = SpikingNet(nn.Linear(5, 8), LIF(8, alpha=0.8, threshold=0.5, learn_threshold=True, learn_leak=True),
                       nn.Linear(8, 3), LIF(3, alpha=0.9, threshold=0.3, learn_threshold=True, learn_leak=True))
    with torch.no_grad():
        model[0].weight.mul_(3.0)
        model[2].weight.mul_(3.0)
    x, y = _inputs(seed=23)
    assert _compare(model, x, y, "WTL") >= 1


def test_recurrent_layer_gradient_equals_detached_bptt():
    torch.manual_seed(11)
    model = SpikingNet(nn.Linear(5, 6), Recurrent(LIF(6, alpha=0.85, threshold=0.6, learn_threshold=True,
                                                     learn_leak=True, per_neuron=False), 6, bias=True),
                       nn.Linear(6, 3), LI(3, alpha=0.9, learn_leak=True, per_neuron=False))
    with torch.no_grad():
        model[0].weight.mul_(3.0)
        model[1].rec.weight.mul_(2.0)
    x, y = _inputs(seed=12)
    assert _compare(model, x, y, "WTL") >= 1


def test_conv_and_pool_layers_equal_detached_bptt():
    torch.manual_seed(13)
    model = SpikingNet(nn.Conv2d(1, 3, 3, padding=1), LIF((3, 6, 6), alpha=0.8, threshold=0.5, per_neuron=False,
                                                          learn_threshold=True, learn_leak=True),
                       SumPool2d(2), nn.Flatten(), nn.Linear(27, 4), LI(4, alpha=0.9))
    with torch.no_grad():
        model[0].weight.mul_(3.0)
    g = torch.Generator().manual_seed(14)
    x = (torch.rand(3, 5, 1, 6, 6, generator=g) < 0.4).double()
    y = torch.randint(0, 4, (3,), generator=g)
    assert _compare(model, x, y, "WTL") >= 1


def test_flatten_after_conv_reshapes_the_error():
    torch.manual_seed(15)
    model = SpikingNet(nn.Conv2d(1, 2, 3), nn.Flatten(), LIF(2 * 4 * 4, alpha=0.8, threshold=0.5, per_neuron=False),
                       nn.Linear(32, 3), LI(3))
    with torch.no_grad():
        model[0].weight.mul_(3.0)
    g = torch.Generator().manual_seed(16)
    x = (torch.rand(2, 4, 1, 6, 6, generator=g) < 0.5).double()
    y = torch.randint(0, 3, (2,), generator=g)
    assert _compare(model, x, y, "W") >= 1


def test_assign_writes_param_grads_and_loss_matches_forward():
    model = stop_tiny_mlp(seed=17)
    x, y = _inputs(seed=18)
    res = S.stop_gradients(model, x, y, "WTL")
    for p in S.stop_parameters(model, "WTL"):
        assert p.grad is not None and torch.equal(p.grad, res.grads[p])
    out = model(x)  # the STOP pass runs the same dynamics as the container
    assert torch.allclose(res.output_sum, out.sum(1))
    expect = sum(nn.functional.cross_entropy(out[:, t], y) for t in range(x.shape[1])) / x.shape[1]
    assert abs(res.loss - float(expect)) < 1e-10


# ------------------------------------------------------------------------------------------------ memory in T
def _saved_tensor_peak(fn):
    """Peak bytes of tensors autograd holds for backward while ``fn`` runs (saved-tensor hooks)."""
    live = {"now": 0, "peak": 0}

    class Box:
        def __init__(self, t):
            self.t = t
            self.n = t.numel() * t.element_size()
            live["now"] += self.n
            live["peak"] = max(live["peak"], live["now"])

        def __del__(self):
            live["now"] -= self.n

    with torch.autograd.graph.saved_tensors_hooks(lambda t: Box(t), lambda b: b.t):
        fn()
    return live["peak"]


def test_stop_memory_is_constant_in_T_and_bptt_grows():
    model = stop_tiny_mlp(n_in=20, hidden=32, seed=19, learn=True)
    stop_peak, bptt_peak, trace = {}, {}, {}
    for T in (8, 32, 64):
        x, y = _inputs(batch=8, steps=T, n_in=20, seed=20)
        stop_peak[T] = _saved_tensor_peak(lambda: S.stop_gradients(model, x, y, "WTL", assign=False))
        trace[T] = S.stop_gradients(model, x, y, "WTL", assign=False).trace_bytes

        def bptt():
            out = model(x)
            nn.functional.cross_entropy(out.mean(1), y).backward()
        bptt_peak[T] = _saved_tensor_peak(bptt)
    assert stop_peak[8] == stop_peak[32] == stop_peak[64] > 0
    assert trace[8] == trace[32] == trace[64]
    assert bptt_peak[64] > 6 * bptt_peak[8]
    assert bptt_peak[32] > 3 * stop_peak[32]


def test_allocator_peak_counts_tensors_autograd_never_sees():
    from toolchain.train.memory import allocator_peak_bytes

    def work():
        with torch.no_grad():
            a = torch.zeros(250_000)  # 2 MB in float64
            b = a + 1.0  # 4 MB live
            del a
            return float(b.sum())
    peak, value = allocator_peak_bytes(work)
    assert value == 250_000.0
    assert 4_000_000 <= peak < 4_100_000


def test_stop_allocator_memory_is_constant_in_T_and_bptt_grows():
    """All of torch's CPU allocations during one training batch (traces, accumulators, activations, temporaries,
    optimiser step), not only what autograd saves."""
    from toolchain.train.memory import allocator_peak_bytes

    stop_peak, bptt_peak, trace = {}, {}, {}
    for T in (4, 24):
        model = stop_tiny_mlp(n_in=48, hidden=48, seed=21, learn=True)  # the same start for every T
        params = S.stop_parameters(model, "WTL")
        opt = torch.optim.Adam(params, lr=1e-3)

        def stop_batch(x, y):
            for p in params:
                p.grad = None
            S.stop_gradients(model, x, y, "WTL")
            opt.step()

        def bptt_batch(x, y):
            model.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(model(x).mean(1), y).backward()

        x, y = _inputs(batch=32, steps=T, n_in=48, seed=22)
        trace[T] = S.stop_gradients(model, x, y, "WTL", assign=False).trace_bytes
        stop_peak[T], _ = allocator_peak_bytes(lambda: stop_batch(x, y))
        bptt_peak[T], _ = allocator_peak_bytes(lambda: bptt_batch(x, y))
    assert trace[4] == trace[24] > 0
    assert stop_peak[4] >= trace[4]
    assert stop_peak[24] <= 1.02 * stop_peak[4]
    assert bptt_peak[24] > 4 * bptt_peak[4]
    assert bptt_peak[24] > 2 * stop_peak[24]


# ---------------------------------------------------------------------------------------------------- errors
def test_unsupported_networks_raise_named_errors():
    from toolchain.nn import CubaLIF
    with pytest.raises(ToolchainError, match="CubaLIF"):
        S.stop_layers(SpikingNet(nn.Linear(3, 4), CubaLIF(4)))
    with pytest.raises(ToolchainError, match="pooling after"):
        S.stop_layers(SpikingNet(nn.Conv2d(1, 2, 3), SumPool2d(2), LIF((2, 2, 2))))
    with pytest.raises(ToolchainError, match="learn_threshold"):
        S.stop_parameters(SpikingNet(nn.Linear(3, 4), LIF(4)), "WT")
    with pytest.raises(ToolchainError, match="variant"):
        S.variant_flags("XYZ")
