"""toolchain.nn.sdnn: a ReLU network trained as an ANN and run as a sigma-delta Program (graded spikes)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from toolchain.errors import ToolchainError
from toolchain.nn.sdnn import SigmaDeltaNet, export_nir


def trained_net(seed: int = 0) -> SigmaDeltaNet:
    """A tiny conv ReLU net fitted for a few steps to a synthetic regression (mean intensity per quadrant)."""
    torch.manual_seed(seed)
    net = SigmaDeltaNet(nn.Conv2d(1, 3, 3, stride=2), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 8), nn.ReLU(),
                        nn.Linear(8, 4, bias=False))
    x = torch.rand(64, 1, 10, 10)
    y = torch.stack([x[:, 0, :5, :5].mean((1, 2)), x[:, 0, :5, 5:].mean((1, 2)), x[:, 0, 5:, :5].mean((1, 2)),
                     x[:, 0, 5:, 5:].mean((1, 2))], 1)
    opt = torch.optim.Adam(net.parameters(), 0.02)
    for _ in range(60):
        opt.zero_grad()
        loss = ((net(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
    return net


def test_integer_mode_tracks_ann():
    net = trained_net()
    program = net.to_program((1, 10, 10), input_scale=200.0, vth=1, input_bits=8)
    kinds = [g.neuron for g in program.groups.values()]
    assert kinds == ["delta", "sigma_delta", "sigma_delta", "sigma"]
    rng = np.random.default_rng(0)
    frame = torch.tensor(rng.random((2, 1, 10, 10)) * 1.2, dtype=torch.float32).clamp(0, 1.2)
    stream = frame[:, None].repeat(1, 12, 1, 1, 1)  # a static scene: the readout settles on the ANN's output
    y_int = net.integer_forward(program, stream)
    with torch.no_grad():
        y_ann = net(frame).numpy()
    err = np.abs(y_int[:, -1] - y_ann).max()
    assert err < 0.03 * max(np.abs(y_ann).max(), 1e-3) + 0.02, (y_int[:, -1], y_ann)
    # a static scene: after the first frames nothing is sent any more
    from toolchain.sim.reference import simulate
    res = simulate(program, net.frames_to_input(program, stream), record=True)
    assert np.count_nonzero(res.spikes["enc"][:, 2:]) == 0
    assert np.count_nonzero(res.spikes["l0"][:, 6:]) == 0


def test_program_exports_to_netx(tmp_path):
    from toolchain.backends.netx import export_netx
    from toolchain.netx_io import load_netx
    from toolchain.sim.reference import simulate
    net = trained_net(1)
    program = net.to_program((1, 10, 10), input_scale=100.0, vth=2, netx=True)
    out = export_netx(program, tmp_path / "m.net")
    q = load_netx(out)
    x = net.frames_to_input(program, torch.rand(1, 6, 1, 10, 10))
    a, b = simulate(program, x, record=True), simulate(q, x, record=True)
    for ga, gb in zip(program.groups, q.groups):
        assert np.array_equal(a.spikes[ga], b.spikes[gb]) and np.array_equal(a.u[ga], b.u[gb])


def test_errors():
    with pytest.raises(ToolchainError, match="Sigmoid"):
        SigmaDeltaNet(nn.Linear(3, 2), nn.Sigmoid())
    with pytest.raises(ToolchainError, match="bias"):
        SigmaDeltaNet(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 2)).to_program((3,))
    with pytest.raises(ToolchainError, match="ReLU"):
        SigmaDeltaNet(nn.Linear(3, 2), nn.Linear(2, 2, bias=False)).to_program((3,))
    with pytest.raises(ToolchainError, match="NIR"):
        export_nir(SigmaDeltaNet(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 2, bias=False)))
