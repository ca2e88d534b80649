"""SCA structured channel pruning: schedule, mask update, masking rules, regrowth, slicing, BN folding, export;
and the unstructured magnitude-pruning baseline."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from toolchain.errors import ToolchainError
from toolchain.nn import LIF, LI, SpikingNet, SumPool2d
from toolchain.nn.conv_models import resnet_snn, vgg_snn
from toolchain.prune import magnitude as M
from toolchain.prune import sca as S
from toolchain.testing import random_channel_masks, random_spike_array


def _spikes(shape, rate=0.3, seed=0, dtype=torch.float64):
    return torch.as_tensor(random_spike_array(shape[0], shape[1], shape[2:], rate, seed)).to(dtype)


def _random_masks(model, frac=0.5, seed=0):
    return random_channel_masks(model, frac, seed)


def _warm_bn(model, x):
    """One training-mode pass so that BN running statistics are not the trivial (0, 1)."""
    model.train()
    with torch.no_grad():
        model(x)
    model.eval()


# ================================================================================================ schedule
def test_cubic_sparsity_shape():
    sched = S.SCASchedule(target_sparsity=0.8, start=10, end=110, interval=10)
    assert sched.sparsity(0) == 0.0 and sched.sparsity(10) == 0.0
    assert sched.sparsity(110) == pytest.approx(0.8) and sched.sparsity(500) == pytest.approx(0.8)
    # cubic: at the midpoint 1 - (1/2)^3 = 7/8 of the target is reached
    assert sched.sparsity(60) == pytest.approx(0.8 * 7 / 8)
    vals = [sched.sparsity(t) for t in range(0, 130)]
    assert all(b >= a for a, b in zip(vals, vals[1:]))  # monotone
    # pruning is fastest at the start: increments shrink
    inc = np.diff([sched.sparsity(t) for t in range(10, 111, 10)])
    assert all(b < a for a, b in zip(inc, inc[1:]))
    # a schedule without a ramp (start == end) prunes to the target at that step
    flat = S.SCASchedule(target_sparsity=0.6, start=20, end=20, interval=5)
    assert flat.sparsity(19) == 0.0 and flat.sparsity(20) == pytest.approx(0.6)
    assert flat.update_steps() == [20] and flat.keep_count(10, 20) == 4


def test_cosine_regrow_fraction_shape():
    sched = S.SCASchedule(target_sparsity=0.5, start=0, end=100, interval=10, regrow_fraction=0.4)
    assert sched.regrow(0) == pytest.approx(0.4)
    assert sched.regrow(50) == pytest.approx(0.2)
    assert sched.regrow(25) == pytest.approx(0.2 * (1 + math.cos(math.pi / 4)))
    assert sched.regrow(100) == 0.0 and sched.regrow(1000) == 0.0
    vals = [sched.regrow(t) for t in range(0, 101)]
    assert all(b <= a for a, b in zip(vals, vals[1:]))


def test_schedule_counts_and_update_steps():
    sched = S.SCASchedule(target_sparsity=0.75, start=5, end=45, interval=10, regrow_fraction=0.5, min_channels=2)
    assert sched.update_steps() == [5, 15, 25, 35, 45]
    assert [sched.is_update(t) for t in (4, 5, 6, 15, 45, 55)] == [False, True, False, True, True, False]
    assert sched.keep_count(32, 45) == 8
    assert sched.keep_count(4, 45) == 2  # min_channels
    assert sched.keep_count(32, 0) == 32
    assert sched.regrow_count(8, 45) == 0  # regrowth has decayed to 0 at the end
    assert sched.regrow_count(10, 5) == 5
    assert sched.regrow_count(1, 5) == 0  # never regrow every kept channel


@pytest.mark.parametrize("kw, field", [
    (dict(target_sparsity=1.0), "target_sparsity"),
    (dict(target_sparsity=-0.1), "target_sparsity"),
    (dict(start=10, end=5), "end"),
    (dict(interval=0), "interval"),
    (dict(regrow_fraction=1.0), "regrow_fraction"),
    (dict(initial_sparsity=0.9, target_sparsity=0.5), "initial_sparsity"),
    (dict(min_channels=0), "min_channels"),
])
def test_schedule_rejects_bad_knobs(kw, field):
    with pytest.raises(ToolchainError) as exc:
        S.SCASchedule(**kw)
    assert exc.value.field == field


# ============================================================================================ mask update
def test_update_channel_mask_prunes_lowest_scores_and_regrows_by_gradient():
    mask = np.array([1, 1, 1, 1, 0, 0, 0, 1], bool)
    scores = np.array([5.0, 1.0, 4.0, 3.0, 0.0, 0.0, 0.0, 2.0])
    grow = np.array([9.0, 9.0, 9.0, 9.0, 0.1, 7.0, 3.0, 9.0])
    res = S.update_channel_mask(mask, scores, grow, n_keep=4, n_regrow=1)
    # survivors: the 3 best active channels (0, 2, 3); regrown: the inactive channel with the largest |grad| (5)
    assert res.mask.tolist() == [True, False, True, True, False, True, False, False]
    assert res.pruned.tolist() == [1, 7]
    assert res.regrown.tolist() == [5]
    assert res.mask.sum() == 4


def test_update_channel_mask_first_update_only_prunes_and_just_pruned_are_not_regrown():
    mask = np.ones(6, bool)
    res = S.update_channel_mask(mask, np.arange(6.0), np.full(6, 100.0), n_keep=3, n_regrow=2)
    assert res.mask.tolist() == [False, False, False, True, True, True]
    assert res.regrown.size == 0
    # not enough active channels: all stay and inactive ones regrow to reach n_keep
    mask = np.array([1, 0, 0, 0, 0, 0], bool)
    res = S.update_channel_mask(mask, np.zeros(6), np.array([0, 1, 5, 2, 4, 3.0]), n_keep=3, n_regrow=0)
    assert res.mask.tolist() == [True, False, True, False, True, False]


def test_update_channel_mask_rejects_bad_input():
    with pytest.raises(ToolchainError):
        S.update_channel_mask(np.ones(4, bool), np.zeros(3), np.zeros(4), 2, 0)
    with pytest.raises(ToolchainError):
        S.update_channel_mask(np.ones(4, bool), np.zeros(4), np.zeros(4), 0, 0)


def test_channel_scores_are_mean_abs_membrane_per_channel():
    u = torch.randn(3, 5, 4, 2, 2, dtype=torch.float64)
    got = S.channel_scores(u)
    want = torch.stack([u[:, :, c].abs().mean() for c in range(4)])
    assert torch.allclose(got, want, rtol=0, atol=1e-15)


# ========================================================================================= masking rules
def test_masked_bn_equals_batchnorm_when_all_kept_and_zero_when_masked():
    torch.manual_seed(0)
    ref = nn.BatchNorm2d(6).double()
    bn = S.MaskedBatchNorm2d(6).double()
    with torch.no_grad():
        for b in (ref, bn):
            b.weight.copy_(torch.linspace(0.5, 2.0, 6))
            b.bias.copy_(torch.linspace(-1.0, 1.0, 6))  # non-zero β would leak into a pre-BN mask
    x = torch.randn(8, 6, 4, 4, dtype=torch.float64) * 3 + 1
    for mode in ("train", "eval"):
        ref.train(mode == "train")
        bn.train(mode == "train")
        assert torch.allclose(bn(x), ref(x), rtol=1e-13, atol=1e-13)
    assert torch.allclose(bn.running_mean, ref.running_mean, rtol=1e-14, atol=0)
    assert torch.allclose(bn.running_var, ref.running_var, rtol=1e-14, atol=0)
    mask = np.array([1, 0, 1, 1, 0, 1], bool)
    S.set_channel_mask(bn, mask)
    ref.train()
    bn.train()
    y, want = bn(x), ref(x)
    assert torch.all(y[:, ~torch.as_tensor(mask)] == 0)
    assert torch.allclose(y[:, torch.as_tensor(mask)], want[:, torch.as_tensor(mask)], rtol=1e-13, atol=1e-13)
    bn.eval()
    assert torch.all(bn(x)[:, ~torch.as_tensor(mask)] == 0)


def test_masked_bn_backward_keeps_gamma_gradient_but_blocks_the_conv_path():
    torch.manual_seed(1)
    conv = nn.Conv2d(3, 5, 3, padding=1, bias=False).double()
    bn = S.MaskedBatchNorm2d(5).double()
    mask = np.array([1, 0, 1, 0, 1], bool)
    S.set_channel_mask(bn, mask)
    x = torch.randn(4, 3, 6, 6, dtype=torch.float64, requires_grad=True)
    z = conv(x)
    z.retain_grad()
    y = bn(z)
    target = torch.randn_like(y)
    (y * target).sum().backward()
    # the loss gradient w.r.t. the BN output is `target` everywhere, masked channels included: γ and β get
    # exactly the gradient they would get unmasked (Σ g·x̂ and Σ g)
    xhat = F.batch_norm(z.detach(), None, None, None, None, True, 0.0, bn.eps)
    assert torch.allclose(bn.weight.grad, (target * xhat).sum((0, 2, 3)), rtol=1e-12, atol=1e-12)
    assert torch.allclose(bn.bias.grad, target.sum((0, 2, 3)), rtol=1e-12, atol=1e-12)
    assert torch.all(bn.weight.grad[~torch.as_tensor(mask)].abs() > 0)
    # no gradient flows into a pruned channel's conv path
    assert torch.all(z.grad[:, ~torch.as_tensor(mask)] == 0)
    assert torch.all(conv.weight.grad[~torch.as_tensor(mask)] == 0)
    assert torch.all(conv.weight.grad[torch.as_tensor(mask)].abs().sum((1, 2, 3)) > 0)
    # keep_grad=False: no γ gradient for pruned channels
    bn2 = S.MaskedBatchNorm2d(5, keep_grad=False).double()
    S.set_channel_mask(bn2, mask)
    (bn2(z.detach()) * target).sum().backward()
    assert torch.all(bn2.weight.grad[~torch.as_tensor(mask)] == 0)


def test_masked_conv_zero_output_and_dense_gradient_for_pruned_channels():
    torch.manual_seed(2)
    ref = nn.Conv2d(3, 4, 3, padding=1).double()
    conv = S.MaskedConv2d(3, 4, 3, padding=1).double()
    conv.load_state_dict({**ref.state_dict(), "channel_mask": torch.ones(4, dtype=torch.float64)})
    mask = np.array([1, 0, 1, 0], bool)
    S.set_channel_mask(conv, mask)
    x = torch.randn(2, 3, 5, 5, dtype=torch.float64, requires_grad=True)
    x2 = x.detach().clone().requires_grad_(True)
    g = torch.randn(2, 4, 5, 5, dtype=torch.float64)
    y = conv(x)
    assert torch.all(y[:, ~torch.as_tensor(mask)] == 0)
    assert torch.equal(y[:, torch.as_tensor(mask)], ref(x)[:, torch.as_tensor(mask)])
    (y * g).sum().backward()
    (ref(x2) * g).sum().backward()
    # weights of every channel get the dense gradient; the input only gets the kept channels' part
    assert torch.allclose(conv.weight.grad, ref.weight.grad, rtol=1e-12, atol=1e-12)
    assert torch.allclose(conv.bias.grad, ref.bias.grad, rtol=1e-12, atol=1e-12)
    x3 = x.detach().clone().requires_grad_(True)
    (ref(x3) * g * torch.as_tensor(mask, dtype=torch.float64).view(1, -1, 1, 1)).sum().backward()
    assert torch.allclose(x.grad, x3.grad, rtol=1e-12, atol=1e-12)
    sig = conv.regrowth_signal()
    assert sig.shape == (4,) and torch.all(sig > 0)


def test_masked_channels_never_spike_in_a_network():
    torch.manual_seed(3)
    model = vgg_snn(seed=3, threshold=0.3).double()
    masks = _random_masks(model, 0.5, seed=3)
    x = _spikes((3, 6, 1, 8, 8), seed=3)
    for train in (True, False):
        model.train(train)
        _, rec = model(x, record=True)
        for i in range(3):
            dead = ~torch.as_tensor(masks[f"bn{i}"])
            assert torch.all(rec[f"lif{i}"]["u"][:, :, dead] == 0)
            assert torch.all(rec[f"lif{i}"]["s"][:, :, dead] == 0)
            assert rec[f"lif{i}"]["s"][:, :, ~dead].sum() > 0


# ============================================================================================== scheduler
def _train_steps(model, sca, steps, seed=0, lr=0.01, record=True):
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    events = []
    for step in range(steps):
        x = (torch.rand(8, 4, 1, 8, 8, generator=g) < 0.3).double()
        y = torch.randint(0, 10, (8,), generator=g)
        if record:
            out, rec = model(x, record=True)
        else:
            out, rec = model(x), None
        loss = F.cross_entropy(out.mean(1), y)
        opt.zero_grad()
        loss.backward()
        ev = sca.step(model, rec, step)
        if ev is not None:
            events.append(ev)
        opt.step()
    return events


def test_scheduler_reaches_target_and_regrows_channels():
    model = vgg_snn(seed=4, channels=(8, 8, 16), threshold=0.5).double().train()
    sched = S.SCASchedule(target_sparsity=0.75, start=0, end=12, interval=3, regrow_fraction=0.5)
    sca = S.SCAScheduler(model, sched)
    events = _train_steps(model, sca, 14)
    assert [e.step for e in events] == [0, 3, 6, 9, 12]
    assert S.channel_report(model) == {"bn0": (2, 8), "bn1": (2, 8), "bn2": (4, 16)}
    for e in events:
        for g in ("bn0", "bn1", "bn2"):
            assert e.kept[g] == sched.keep_count(e.total[g], e.step)
            assert not set(e.pruned[g]) & set(e.regrown[g])
    assert events[0].criterion == "grad"
    assert sum(len(v) for e in events for v in e.regrown.values()) > 0  # regrowth happened
    # masks are consistent with events replayed from a full mask
    replay = {g: np.ones(c, bool) for g, c in events[0].total.items()}
    for e in events:
        for g in replay:
            replay[g][e.pruned[g]] = False
            replay[g][e.regrown[g]] = True
    for g, m in sca.masks(model).items():
        assert np.array_equal(m, replay[g])


def test_regrowth_restores_a_channel_chosen_by_gamma_gradient():
    torch.manual_seed(5)
    model = vgg_snn(seed=5, channels=(6, 6, 8), threshold=0.3).double().train()
    sched = S.SCASchedule(target_sparsity=0.5, start=0, end=10, interval=5, regrow_fraction=0.5)
    sca = S.SCAScheduler(model, sched, groups=[g for g in S.find_channel_groups(model) if g.name == "bn1"])
    bn = model.get_submodule("bn1")
    S.set_channel_mask(bn, np.array([1, 1, 1, 0, 0, 0], bool))
    x = _spikes((4, 5, 1, 8, 8), seed=5)
    out, rec = model(x, record=True)
    assert torch.all(rec["lif1"]["u"][:, :, 3:] == 0)  # pruned: silent
    # a loss that reads only the (pruned) channel 4 after BN: its γ is the only one with a gradient
    model.zero_grad()
    z = model.bn1(model.conv1(torch.randn(4, 6, 8, 8, dtype=torch.float64)))
    assert torch.all(z[:, 4] == 0)
    (z[:, 4] * torch.randn(4, 8, 8, dtype=torch.float64)).sum().backward()
    assert bn.weight.grad[4] != 0 and torch.all(bn.weight.grad[[0, 1, 2, 3, 5]] == 0)
    sca.observe(rec)
    sca.observe_gradients(model)
    ev = sca.update(model, step=5)  # sparsity 7/8·0.5 → keep 3 of 6; regrow round(0.25·3) = 1
    assert ev.regrown["bn1"] == [4] and len(ev.pruned["bn1"]) == 1
    assert bool(bn.channel_mask[4] == 1) and int(bn.channel_mask.sum()) == 3
    _, rec2 = model(x, record=True)
    assert rec2["lif1"]["u"][:, :, 4].abs().sum() > 0  # the regrown channel is alive again


def test_hooks_and_records_give_the_same_scores():
    x = _spikes((4, 5, 1, 8, 8), seed=6)
    model = vgg_snn(seed=6, channels=(4, 4, 8)).double().train()
    sched = S.SCASchedule(target_sparsity=0.5, start=0, end=10, interval=5)
    a = S.SCAScheduler(model, sched)
    b = S.SCAScheduler(model, sched).attach(model)
    with torch.no_grad():
        _, rec = model(x, record=True)
    a.observe(rec)
    for g in a.groups:
        assert torch.allclose(a._score_sum[g.name] / a._score_n[g.name],
                              b._score_sum[g.name] / b._score_n[g.name], rtol=1e-12, atol=0)
        want = S.channel_scores(rec[g.neurons[0]]["u"])
        assert torch.allclose(a._score_sum[g.name] / a._score_n[g.name], want, rtol=1e-12, atol=0)
    model.eval()  # hooks record only in training mode
    n = dict(b._score_n)
    with torch.no_grad():
        model(x)
    assert b._score_n == n
    b.detach()
    assert not b._hooks


def test_scheduler_without_gradients_falls_back_to_magnitude():
    model = vgg_snn(seed=7, channels=(4, 4, 8)).double().train()
    sca = S.SCAScheduler(model, S.SCASchedule(target_sparsity=0.5, start=0, end=4, interval=2,
                                              regrow_fraction=0.5))
    x = _spikes((2, 3, 1, 8, 8), seed=7)
    with torch.no_grad():
        _, rec = model(x, record=True)
    with pytest.warns(RuntimeWarning, match="no gradients"):
        sca.step(model, rec, 0)
    with pytest.warns(RuntimeWarning, match="no gradients"):
        ev = sca.step(model, rec, 2)
    assert ev.criterion == "magnitude"


def test_scheduler_rejects_bad_groups():
    model = vgg_snn(seed=0, channels=(4, 4, 8))
    with pytest.raises(ToolchainError) as exc:
        S.SCAScheduler(model, S.SCASchedule(), groups=[S.ChannelGroup(("conv0",), ("lif0",))])
    assert exc.value.node == "conv0"
    with pytest.raises(ToolchainError) as exc:
        S.SCAScheduler(model, S.SCASchedule(), groups=[S.ChannelGroup(("bn0", "bn2"), ("lif0",))])
    assert "different channel counts" in str(exc.value)
    plain = vgg_snn(seed=0, masked=False)
    with pytest.raises(ToolchainError):
        S.SCAScheduler(plain, S.SCASchedule())
    sca = S.SCAScheduler(model, S.SCASchedule())
    with pytest.raises(ToolchainError) as exc:
        sca.observe({"lif0": {"s": torch.zeros(1)}})
    assert exc.value.field == "records"


def test_residual_groups_are_tied_and_pruned_together():
    model = resnet_snn(seed=8, stem_channels=8, stages=((8, 1), (12, 2)), threshold=0.5).double().train()
    groups = {g.name: g for g in S.find_channel_groups(model)}
    assert groups["stem_bn"].layers == ("stem_bn", "block0.bn2")
    assert groups["block1.bn2"].layers == ("block1.bn2", "block1.skip_bn")
    assert set(groups) == {"stem_bn", "block0.bn1", "block1.bn1", "block1.bn2"}
    sca = S.SCAScheduler(model, S.SCASchedule(target_sparsity=0.5, start=0, end=4, interval=2,
                                              regrow_fraction=0.3))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    for step in range(5):
        x = _spikes((4, 4, 1, 8, 8), seed=step)
        out, rec = model(x, record=True)
        opt.zero_grad()
        F.cross_entropy(out.mean(1), torch.arange(4)).backward()
        sca.step(model, rec, step)
        opt.step()
    for g in groups.values():
        masks = [model.get_submodule(n).channel_mask for n in g.layers]
        assert all(torch.equal(masks[0], m) for m in masks)
        assert int(masks[0].sum()) == S.SCASchedule(target_sparsity=0.5).keep_count(len(masks[0]), 10 ** 6)
    # identity skip with untied masks cannot be sliced
    m = model.get_submodule("stem_bn").channel_mask > 0.5
    m2 = m.clone()
    m2[m.nonzero()[0]] = False
    m2[(~m).nonzero()[0]] = True
    S.set_channel_mask(model.get_submodule("block0.bn2"), m2.numpy())
    with pytest.raises(ToolchainError, match="identity skip"):
        S.slice_channels(model)


# ============================================================================================ deployment
@pytest.mark.parametrize("builder", ["vgg", "resnet"])
def test_slicing_gives_identical_outputs_at_every_step(builder):
    torch.manual_seed(9)
    model = (vgg_snn(seed=9, threshold=0.4) if builder == "vgg"
             else resnet_snn(seed=9, threshold=0.4)).double()
    x = _spikes((4, 8, 1, 8, 8), seed=9)
    _warm_bn(model, x)
    masks = _random_masks(model, 0.6, seed=9)
    for train in (False, True):  # eval (running stats) and training mode (batch stats) alike
        model.train(train)
        y, rec = model(x, record=True)
        small = S.slice_channels(model).train(train)
        y2, rec2 = small(x, record=True)
        assert torch.allclose(y, y2, rtol=0, atol=1e-10)
        for name, fields in rec.items():
            for f, full in fields.items():
                kept = full
                grp = {"lif0": "bn0", "lif1": "bn1", "lif2": "bn2", "stem_lif": "stem_bn"}.get(name)
                if builder == "resnet" and name.startswith("block"):
                    grp = f"{name}.bn1" if f.startswith("mid") else ("stem_bn" if name == "block0" else
                                                                      f"{name}.bn2")
                if grp is not None:
                    keep = torch.as_tensor(masks[grp])
                    assert torch.all(full[:, :, ~keep] == 0)
                    kept = full[:, :, keep]
                assert kept.shape == rec2[name][f].shape, (name, f)
                if f.endswith("s"):
                    assert torch.equal(kept, rec2[name][f]), (name, f)
                else:
                    assert torch.allclose(kept, rec2[name][f], rtol=0, atol=1e-10), (name, f)
    # the sliced network really has fewer channels and parameters
    small = S.slice_channels(model)
    assert S.parameter_count(small) < S.parameter_count(model)
    assert not any(isinstance(m, S.ChannelMasked) for m in small.modules())


def test_slicing_masked_conv_network_without_batchnorm():
    torch.manual_seed(10)
    mods = [("conv0", S.MaskedConv2d(1, 6, 3, padding=1)), ("lif0", LIF((6, 8, 8), threshold=0.3)),
            ("pool0", SumPool2d(2)), ("conv1", S.MaskedConv2d(6, 8, 3, padding=1)),
            ("lif1", LIF((8, 4, 4), threshold=0.3)), ("flatten", nn.Flatten(1)), ("fc", nn.Linear(128, 5)),
            ("readout", LI(5))]
    from collections import OrderedDict
    model = SpikingNet(OrderedDict(mods)).double()
    _random_masks(model, 0.5, seed=10)
    x = _spikes((3, 6, 1, 8, 8), seed=10)
    y, rec = model(x, record=True)
    for small in (S.slice_channels(model), S.deploy(model)):
        assert all(type(m) is nn.Conv2d for m in small.modules() if isinstance(m, nn.Conv2d))
        y2 = small(x)
        assert torch.allclose(y, y2, rtol=0, atol=1e-10)
    assert S.parameter_count(S.slice_channels(model)) < S.parameter_count(model)


def test_fold_bn_params_exact():
    torch.manual_seed(11)
    conv = nn.Conv2d(3, 5, 3, padding=1).double()
    bn = S.MaskedBatchNorm2d(5).double()
    with torch.no_grad():
        bn.weight.uniform_(0.5, 2)
        bn.bias.uniform_(-1, 1)
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.2, 3)
    S.set_channel_mask(bn, np.array([1, 1, 0, 1, 0], bool))
    bn.eval()
    x = torch.randn(4, 3, 6, 6, dtype=torch.float64)
    want = bn(conv(x))
    w, b = S.fold_bn_params(conv.weight, conv.bias, bn.weight, bn.bias, bn.running_mean, bn.running_var, bn.eps,
                            bn.channel_mask)
    got = F.conv2d(x, w, b, padding=1)
    assert torch.allclose(got, want, rtol=1e-12, atol=1e-12)
    assert torch.all(got[:, [2, 4]] == 0)


@pytest.mark.parametrize("builder", ["vgg", "resnet"])
def test_deploy_folds_batchnorm_and_keeps_every_spike(builder):
    model = (vgg_snn(seed=12, threshold=0.4) if builder == "vgg"
             else resnet_snn(seed=12, threshold=0.4)).double()
    x = _spikes((4, 8, 1, 8, 8), seed=12)
    _warm_bn(model, x)
    _random_masks(model, 0.5, seed=12)
    model.eval()
    y, rec = model(x, record=True)
    dep = S.deploy(model)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in dep.modules())
    y2, rec2 = dep(x, record=True)
    assert torch.allclose(y, y2, rtol=0, atol=1e-9)
    for name in rec2:
        if "s" in rec2[name]:
            assert rec2[name]["s"].sum() > 0 or name == "readout"
    total_spikes = sum(float(r["s"].sum()) for r in rec.values() if "s" in r)
    assert total_spikes == sum(float(r["s"].sum()) for r in rec2.values() if "s" in r)


def test_deployed_vgg_exports_with_fewer_neurons_and_synapses():
    from toolchain.ir import Conv2d as IRConv, verify
    from toolchain.nn import to_graph
    model = vgg_snn(seed=13).double()
    x = _spikes((2, 4, 1, 8, 8), seed=13)
    _warm_bn(model, x)
    dense_graph = to_graph(S.deploy(model), dt=1e-3, input_shape=(1, 8, 8))
    masks = _random_masks(model, 0.7, seed=13)
    graph = to_graph(S.deploy(model), dt=1e-3, input_shape=(1, 8, 8))
    verify(graph)
    convs = [n for n in graph.nodes.values() if isinstance(n, IRConv)]
    assert [c.weight.shape[0] for c in convs] == [int(masks[f"bn{i}"].sum()) for i in range(3)]
    assert graph.neuron_count() < dense_graph.neuron_count()
    assert graph.synapse_count() < dense_graph.synapse_count()


def test_errors_name_the_layer():
    model = vgg_snn(seed=0, channels=(4, 4, 8))
    S.set_channel_mask(model.bn1, np.zeros(4, bool))
    with pytest.raises(ToolchainError) as exc:
        S.slice_channels(model)
    assert exc.value.node == "bn1"
    with pytest.raises(ToolchainError):
        S.set_channel_mask(model.bn1, np.ones(5, bool))
    with pytest.raises(ToolchainError):
        S.fold_batchnorm(SpikingNet(LIF(4), nn.BatchNorm1d(4)))


# ======================================================================================= magnitude baseline
def test_magnitude_masks_global_and_layer():
    w = {"a": torch.tensor([[3.0, -1.0], [0.5, 4.0]]), "b": torch.tensor([-2.0, 0.1, 5.0])}
    m = M.magnitude_masks(w, 3)
    assert m["a"].tolist() == [[True, False], [False, True]] and m["b"].tolist() == [False, False, True]
    m = M.magnitude_masks(w, 4, scope="layer")  # 4/7 of each layer: 2 of 4, 2 of 3
    assert int(m["a"].sum()) == 2 and int(m["b"].sum()) == 2
    m2 = M.magnitude_masks(w, 2, current=m)  # never regrows what is pruned
    assert all(not (m2[k] & ~m[k]).any() for k in w)
    with pytest.raises(ToolchainError):
        M.magnitude_masks(w, 0)
    with pytest.raises(ToolchainError):
        M.magnitude_masks(w, 2, scope="row")


def test_magnitude_pruner_reaches_the_parameter_count_and_pruned_weights_stay_zero():
    model = vgg_snn(seed=14, channels=(4, 4, 8)).double().train()
    total = sum(w.numel() for w in M.prunable_weights(model).values())
    n_keep = total // 5
    pr = M.MagnitudePruner(model, n_keep=n_keep, start=0, end=6, interval=2)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for step in range(9):
        x = _spikes((4, 3, 1, 8, 8), seed=step)
        opt.zero_grad()
        F.cross_entropy(model(x).mean(1), torch.arange(4)).backward()
        pr.step(model, None, step)
        opt.step()
        pr.step(model, None, step)  # idempotent re-application after the optimiser step
    masks = pr.finalize()
    assert pr.kept() == n_keep
    nz = sum(int((w != 0).sum()) for w in M.prunable_weights(model).values())
    assert nz <= n_keep
    for n, w in M.prunable_weights(model).items():
        assert torch.all(w[~masks[n]] == 0)
    assert [e.kept for e in pr.history] == sorted([e.kept for e in pr.history], reverse=True)


def test_sparse_graph_stores_only_surviving_synapses():
    from toolchain.ir import Csr, Linear, verify
    from toolchain.nn import to_graph
    from toolchain.passes.normalise import flatten_shapes, lower_conv_and_pool
    model = vgg_snn(seed=16, channels=(4, 4, 8)).double()
    x = _spikes((2, 3, 1, 8, 8), seed=16)
    _warm_bn(model, x)
    dep = S.fold_batchnorm(model)
    total = sum(w.numel() for w in M.prunable_weights(dep).values())
    M.prune_magnitude(dep, total // 4)
    nz = {n: int((w != 0).sum()) for n, w in M.prunable_weights(dep).items()}
    graph = to_graph(dep, dt=1e-3, input_shape=(1, 8, 8))
    sg = M.sparse_graph(graph)
    verify(sg)
    assert isinstance(sg["fc"].weight, Csr) and sg["fc"].weight.nnz == nz["fc"]
    assert np.array_equal(sg["fc"].weight.to_dense(), graph["fc"].weight.to_dense())
    assert sg.neuron_count() == graph.neuron_count()
    # after the compiler's conv lowering, only the non-zero taps are synapses
    low = lower_conv_and_pool(flatten_shapes(sg))
    dense_low = lower_conv_and_pool(flatten_shapes(to_graph(S.fold_batchnorm(model), dt=1e-3,
                                                            input_shape=(1, 8, 8))))
    for name in ("conv0", "conv1", "conv2"):
        assert low[name].weight.nnz < dense_low[name].weight.nnz
        wl = low[name].weight
        assert np.array_equal(wl.stored_mask(), wl.to_dense() != 0)  # no synapse stored for a pruned tap
    assert all(isinstance(n.weight, Csr) for n in low.nodes.values() if isinstance(n, Linear))


# ======================================================================================== trainer wrappers
def test_sca_with_stop_trainer_on_a_batchnorm_free_network():
    from toolchain.data import load_digits_spikes
    from toolchain.train.loop import TrainConfig, evaluate
    ds = load_digits_spikes(steps=4, flatten=False).subset(None, 200)
    model = vgg_snn(seed=0, channels=(8, 8, 16), batchnorm=False)
    sched = S.SCASchedule(target_sparsity=0.5, start=21, end=86, interval=10, regrow_fraction=0.5)
    hist, sca = S.train_sca(model, ds, sched, TrainConfig(epochs=3, batch_size=32, lr=3e-3, progress=False),
                            trainer="stop", variant="W")
    assert not sca._hooks  # hooks removed after training
    assert S.channel_report(model) == {"conv0": (4, 8), "conv1": (4, 8), "conv2": (8, 16)}
    assert [e.step for e in sca.history] == list(range(21, 87, 10))
    assert all(e.criterion == "grad" for e in sca.history)  # STOP's dense weight gradients drive regrowth
    assert sum(len(v) for e in sca.history for v in e.regrown.values()) > 0
    assert hist.test_acc[-1] > 0.3  # learns (chance is 0.1)
    dep = S.deploy(model)
    assert evaluate(dep, ds.x_test, ds.y_test) == pytest.approx(hist.test_acc[-1], abs=1e-9)
    assert S.parameter_count(dep) < S.parameter_count(model)


def test_sca_with_bptt_trainer_and_magnitude_baseline_at_equal_weights():
    from toolchain.data import load_digits_spikes
    from toolchain.train.loop import TrainConfig
    ds = load_digits_spikes(steps=4, flatten=False).subset(256, 100)
    cfg = TrainConfig(epochs=2, batch_size=32, lr=3e-3, progress=False)
    model = vgg_snn(seed=1, channels=(8, 8, 16))
    hist, sca = S.train_sca(model, ds, S.SCASchedule(target_sparsity=0.75, start=0, end=12, interval=4), cfg)
    assert S.channel_report(model) == {"bn0": (2, 8), "bn1": (2, 8), "bn2": (4, 16)}
    dep = S.deploy(model)
    n_weights = sum(w.numel() for w in M.prunable_weights(dep).values())
    base = vgg_snn(seed=1, channels=(8, 8, 16), masked=False)
    _, pr = M.train_magnitude(base, ds, n_keep=n_weights, config=cfg, start=0, end=12, interval=4)
    nz = sum(int((w != 0).sum()) for w in M.prunable_weights(base).values())
    assert nz <= n_weights and pr.kept() == n_weights


# ============================================================================== deployment on the compiler
def _compile(model, resnet=False):
    from toolchain.compile import compile_graph
    from toolchain.nn import to_graph
    dep = S.deploy(model)
    graph = dep.to_graph(1e-3, (1, 8, 8)) if resnet else to_graph(dep, dt=1e-3, input_shape=(1, 8, 8))
    return compile_graph(graph, "loihi2")


def _pruned_pair(builder, seed, frac=0.75):
    """A trained-looking (BN statistics set) network, compiled dense and after pruning ``frac`` of the channels."""
    model = (vgg_snn(seed=seed, channels=(16, 16, 32), threshold=0.5) if builder == "vgg"
             else resnet_snn(seed=seed, stem_channels=8, stages=((8, 1), (16, 2)), threshold=0.5))
    x = _spikes((8, 4, 1, 8, 8), seed=seed, dtype=torch.float32)
    model.train()
    with torch.no_grad():
        model(x)
    model.eval()
    dense = _compile(model, builder == "resnet")
    rng = np.random.default_rng(seed)
    for g in S.find_channel_groups(model):
        c = model.get_submodule(g.layers[0]).num_channels
        keep = np.zeros(c, bool)
        keep[rng.permutation(c)[:max(1, round((1 - frac) * c))]] = True
        for n in g.layers:
            S.set_channel_mask(model.get_submodule(n), keep)
    return model, dense, _compile(model, builder == "resnet")


def test_pruned_channels_become_fewer_neurons_synapses_and_cores():
    _, dense, pruned = _pruned_pair("vgg", 20)
    assert pruned.neuron_count < 0.3 * dense.neuron_count
    syn_ratio = pruned.synapse_count / dense.synapse_count
    assert syn_ratio < 0.15  # synapses fall with the square of the kept channel fraction
    cd, cp = dense.report["cores_used"], pruned.report["cores_used"]
    assert cp < cd
    assert cp <= math.ceil(cd * syn_ratio) + 1  # cores fall about as fast as synapses (integer cores)
    # every compiled group is exactly the sliced layer: conv channels x positions
    assert pruned.groups["lif0"].size == 4 * 64 and pruned.groups["lif2"].size == 8 * 16


def test_residual_skips_get_the_latency_equalising_delay():
    model, _, prog = _pruned_pair("resnet", 21, frac=0.5)
    delays = {s.name: s.delay for s in prog.synapses}
    assert delays["block0_skip"] == 1 and delays["block1_skip"] == 1  # one synapse layer shorter than conv path
    assert delays["block0_conv2"] == 0 and delays["stem_conv"] == 0
    assert prog.groups["block0_lif2"].size == prog.groups["stem_lif"].size  # tied channels: same count


@pytest.mark.slow
@pytest.mark.parametrize("builder", ["vgg", "resnet"])
def test_pruned_network_is_bit_exact_on_lava(builder):
    pytest.importorskip("lava")
    from toolchain.backends.lava import run_lava
    from toolchain.sim.reference import simulate
    _, _, prog = _pruned_pair(builder, 22)
    x = _spikes((2, 6, 1, 8, 8), seed=22).numpy().astype(np.int64)
    steps = 6 + int(prog.metadata["output_latency_steps"])
    ref = simulate(prog, x, steps=steps, record=True)
    lav = run_lava(prog, x, steps=steps, record=True)
    assert sum(int(s.sum()) for s in ref.spikes.values()) > 0
    mm = ref.first_mismatch(lav)
    assert mm is None, str(mm)
