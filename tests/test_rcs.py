"""RCS regulariser: score values by hand, gradient flow and detachment, the loss over correct samples."""
from __future__ import annotations

import math

import pytest
import torch

from toolchain.train.rcs import RCSRegulariser, correct_mask, rcs_loss, rcs_representation, rcs_scores


def test_identical_representations_score_one():
    # r_t constant over time (no spikes, constant positive potential) and scaled copies: cos = 1 -> score 1.
    u = torch.rand(3, 1, 5).expand(3, 8, 5).clone() + 0.1
    s = torch.zeros_like(u)
    torch.testing.assert_close(rcs_scores(s, u, 2.0), torch.ones(3, dtype=u.dtype))
    scaled = u * torch.linspace(0.5, 3.0, 8)[None, :, None]
    torch.testing.assert_close(rcs_scores(s, scaled, 0.7), torch.ones(3, dtype=u.dtype))


def test_score_by_hand_orthogonal_early_steps():
    # T = 10 -> the last ceil(3) = 3 steps define r_d = e2; the first 7 steps are e1 (cos 0): score = 1 / 0.3.
    s = torch.zeros(1, 10, 2)
    s[0, :7, 0] = 1.0
    s[0, 7:, 1] = 1.0
    u = torch.full_like(s, -1.0)  # ReLU(u/θ) = 0: r = s
    torch.testing.assert_close(rcs_scores(s, u, 1.0), torch.tensor([1 / 0.3]))
    # r = s + ReLU(U/θ): spikes plus the scaled positive part of the potential
    r = rcs_representation(torch.tensor([[[1.0, 0.0]]]), torch.tensor([[[0.5, -2.0]]]), torch.tensor([0.25, 1.0]))
    torch.testing.assert_close(r, torch.tensor([[[3.0, 0.0]]]))


def test_tail_fraction_rounding_up():
    # T = 4: ceil(1.2) = 2 tail steps. r = [e1, e1, e1, e2] -> r_d = (e1 + e2)/2, cos = 1/sqrt2 for every step.
    s = torch.zeros(1, 4, 2)
    s[0, :3, 0] = 1.0
    s[0, 3, 1] = 1.0
    u = torch.full_like(s, -1.0)
    torch.testing.assert_close(rcs_scores(s, u, 1.0), torch.tensor([math.sqrt(2.0)]))


def test_gradient_treats_r_d_as_constant_and_reduces_score():
    torch.manual_seed(0)
    u = (torch.randn(4, 10, 6) + 0.5).requires_grad_(True)
    s = torch.zeros(4, 10, 6)
    score = rcs_scores(s, u, 1.0).sum()
    (g,) = torch.autograd.grad(score, u)
    # Same computation with r_d built from a detached copy: identical gradient.
    r = torch.relu(u)
    r_d = torch.relu(u.detach())[:, 7:].mean(1)
    cos = torch.nn.functional.cosine_similarity(r, r_d[:, None, :].expand_as(r), dim=-1, eps=1e-8)
    (g2,) = torch.autograd.grad((1.0 / cos.mean(1)).sum(), u)
    torch.testing.assert_close(g, g2)
    # Gradient descent on the score pulls early representations toward late ones.
    v = u.detach().clone().requires_grad_(True)
    before = rcs_scores(s, v, 1.0).mean().item()
    opt = torch.optim.SGD([v], lr=0.5)
    for _ in range(20):
        opt.zero_grad()
        rcs_scores(s, v, 1.0).mean().backward()
        opt.step()
    assert rcs_scores(s, v, 1.0).mean().item() < before - 1e-3
    assert before > 1.0


def test_loss_uses_max_over_correct_samples_only():
    s = torch.zeros(2, 10, 2)
    s[0, :7, 0] = 1.0
    s[0, 7:, 1] = 1.0             # sample 0: score 1/0.3
    s[1, :, 0] = 1.0              # sample 1: score 1
    u = torch.full_like(s, -1.0)
    layer = (s, u, 1.0)
    loss = rcs_loss([layer], torch.tensor([False, True]), alpha=0.01)
    assert loss.item() == pytest.approx(0.01)
    loss = rcs_loss([layer, layer], torch.tensor([True, True]), alpha=0.01)
    assert loss.item() == pytest.approx(0.01 / 0.3)
    assert rcs_loss([layer], torch.tensor([False, False]), alpha=0.01).item() == 0.0
    out = torch.tensor([[[0.0, 1.0], [0.0, 1.0]], [[2.0, 0.0], [0.0, 1.0]]])  # accumulated argmax: 1, 0
    assert correct_mask(out, torch.tensor([1, 1])).tolist() == [True, False]


def test_regulariser_on_spiking_net_records():
    from toolchain.nn import LI, LIF, CubaLIF, Recurrent, SpikingNet

    torch.manual_seed(1)
    net = SpikingNet(torch.nn.Linear(8, 12), LIF(12, threshold=0.3, learn_threshold=True),
                     torch.nn.Linear(12, 6), Recurrent(CubaLIF(6, 0.8, 0.9, threshold=0.3), 6),
                     torch.nn.Linear(6, 3), LI(3))
    x = (torch.rand(16, 10, 8) < 0.4).float()
    y, rec = net(x, record=True)
    reg = RCSRegulariser(alpha=0.003)
    layers = reg.layer_inputs(net, rec)
    assert list(layers) == ["1", "3"]  # the two spiking layers; the LI readout is excluded
    labels = y.sum(1).argmax(-1)       # every sample correct
    loss = reg(net, rec, y, labels)
    manual = 0.003 * torch.stack([rcs_scores(*layers[n], norm_floor=1.0).max() for n in layers]).mean()
    torch.testing.assert_close(loss, manual)
    loss.backward()
    assert net[0].weight.grad is not None and torch.isfinite(net[0].weight.grad).all()
    assert net[0].weight.grad.abs().sum() > 0
    assert net[1].threshold.grad is not None
    assert RCSRegulariser(alpha=0.0)(net, rec, y, labels).item() == 0.0
    with pytest.raises(KeyError, match="'5'"):
        RCSRegulariser(layers=["5"]).layer_inputs(net, rec)


def test_norm_floor_bounds_the_gradient_at_nearly_silent_steps():
    # step 0: a tiny potential pointing away from the late representation; steps 1..9: a clear pattern
    u = torch.zeros(1, 10, 4)
    u[0, 0] = torch.tensor([1e-4, 2e-5, 1e-5, 1e-4])
    u[0, 1:] = torch.tensor([0.0, 2.0, 1.0, 0.0])
    s = torch.zeros_like(u)
    grads = {}
    for floor in (0.0, 1.0):
        v = u.clone().requires_grad_(True)
        rcs_scores(s, v, 1.0, norm_floor=floor).sum().backward()
        grads[floor] = v.grad[0, 0].norm().item()
    assert grads[0.0] > 1000 * grads[1.0]      # exact cosine: gradient ~ 1/|r_0|
    assert grads[1.0] < 1.0
    # the floor leaves steps whose |r_t| is above it unchanged: identical representations still score 1
    big = torch.full((2, 6, 3), 2.0)
    torch.testing.assert_close(rcs_scores(torch.zeros_like(big), big, 1.0, norm_floor=1.0), torch.ones(2))
