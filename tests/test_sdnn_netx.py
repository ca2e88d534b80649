"""netx import and export of sigma-delta (SDNN) networks, bit-exact through lava-dl 0.6.0's own reader.

lava-dl runs an SDNN file with ``Network(skip_layers=1)`` fed by the encoder's payloads (its input ``Delta`` is
left unconnected); the oracle is fed the payloads of our input group, and every later layer's payloads, sigma
and act are compared at every step with the reference simulator of the imported Program.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from netx_files import write_net
from toolchain.netx_io import load_netx
from toolchain.netx_io.load import NetxImportError
from toolchain.sim.reference import simulate


def sdnn_neuron(vth=2, **extra):
    return {"type": "SDNN", "vThMant": vth, **extra}


def sdnn_conv_net(path: Path, rng: np.random.Generator, message_bits=None, sigma_out: bool = True) -> Path:
    """SDNN input (6x5x2 grid) -> conv (per-channel bias) -> flatten -> dense -> dense readout (sigma_output)."""
    c_in, h, w = 2, 5, 6
    c_out, kh, kw = 3, 3, 3
    ho, wo = h - kh + 1, w - kw + 1
    n_flat = c_out * ho * wo
    extra = {} if message_bits is None else {"messageBits": message_bits}
    out = {"type": "dense", "shape": [3], "weight": rng.integers(-40, 41, (3, 10)).astype(np.float32),
           "neuron": sdnn_neuron(**({"sigma_output": True} if sigma_out else {"vth": 1}))}
    return write_net(path, [
        {"type": "input", "shape": [c_in, h, w], "neuron": sdnn_neuron(3, **extra)},
        {"type": "conv", "shape": [c_out, ho, wo], "weight": rng.integers(-6, 7, (c_out, c_in, kh, kw)),
         "stride": [1, 1], "padding": [0, 0], "dilation": [1, 1], "groups": 1,
         "bias": rng.integers(-20, 21, c_out).astype(np.float32), "neuron": sdnn_neuron(4, **extra)},
        {"type": "flatten", "shape": [n_flat, 1, 1]},
        {"type": "dense", "shape": [10], "weight": rng.integers(-30, 31, (10, n_flat)).astype(np.float32),
         "bias": rng.integers(-50, 51, 10).astype(np.float32), "neuron": sdnn_neuron(2, **extra)},
        out,
    ])


def frames(rng: np.random.Generator, batch: int, steps: int, shape, hi: int = 40, hold: int = 3) -> np.ndarray:
    f = rng.integers(0, hi + 1, (batch, (steps + hold - 1) // hold) + tuple(shape))
    return np.repeat(f, hold, axis=1)[:, :steps]


def test_import_structure(tmp_path):
    p = load_netx(sdnn_conv_net(tmp_path / "a.net", np.random.default_rng(0)))
    kinds = [g.neuron for g in p.groups.values()]
    assert kinds == ["delta", "sigma_delta", "sigma_delta", "sigma"]
    assert p.inputs[0].num_message_bits == 16 and p.inputs[0].kind == "spikes"
    enc = p.groups["input0"].sdn
    assert (int(enc.vth[0]), enc.spike_exp, enc.state_exp) == (3, 6, 6)
    assert all(p.message_bits(g) == 16 for g in p.groups)


def test_import_refusals(tmp_path):
    rng = np.random.default_rng(1)
    bad = write_net(tmp_path / "b.net", [{"type": "input", "shape": [4]},
                                        {"type": "dense", "shape": [2], "weight": rng.integers(-5, 6, (2, 4)),
                                         "neuron": sdnn_neuron([1, 2])}])
    with pytest.raises(NetxImportError, match="vThMant"):
        load_netx(bad)
    bad = write_net(tmp_path / "c.net", [{"type": "input", "shape": [4]},
                                        {"type": "dense", "shape": [2], "weight": rng.integers(-5, 6, (2, 4)),
                                         "bias": [1.0, 2.0], "neuron": sdnn_neuron(sigma_output=True)}])
    with pytest.raises(NetxImportError, match="Sigma"):
        load_netx(bad)
    bad = write_net(tmp_path / "d.net", [{"type": "input", "shape": [4]},
                                        {"type": "dense", "shape": [2], "weight": rng.integers(-5, 6, (2, 4)),
                                         "neuron": sdnn_neuron(messageBits=0)}])
    with pytest.raises(NetxImportError, match="messageBits"):
        load_netx(bad)


lava_dl = pytest.importorskip("lava.lib.dl.netx")


def check_against_lava_dl(path: Path, program, x: np.ndarray, steps: int) -> None:
    """Every SDNN layer after the input: payloads, sigma, act equal to lava-dl's reader at every step."""
    from toolchain.backends.lava_dl import run_netx_file
    ref = simulate(program, x, steps=steps, record=True)
    names = list(program.groups)
    assert program.groups[names[0]].neuron == "delta"
    enc = ref.spikes[names[0]]
    assert np.count_nonzero(enc), "the encoder sends nothing"
    want = enc.reshape((enc.shape[0], steps) + tuple(program.groups[names[0]].shape))
    dl = run_netx_file(path, want, steps, skip_layers=1, record=True)
    assert len(dl.groups) == len(names) - 1
    for ours, theirs in zip(names[1:], dl.groups):
        for f in ("spikes", "u", "v"):
            a, b = getattr(ref, f)[ours], getattr(dl, f)[theirs]
            assert a.shape == b.shape, (ours, f, a.shape, b.shape)
            bad = np.argwhere(a != b)
            assert bad.size == 0, f"{ours} vs lava-dl {theirs}: {f} differs first at (b, t, i) = {bad[0].tolist()}"
        if program.groups[ours].neuron == "sigma_delta":
            assert np.count_nonzero(ref.spikes[ours]), f"{ours} sends nothing"


# a file with a ``messageBits`` dataset is read by us, but lava-dl 0.6.0 cannot build it (Lava's builder fails to set
# the Dense's num_message_bits Var from the array NetDict returns), so the oracle runs files without one
@pytest.mark.parametrize("message_bits,sigma_out", [(None, True), (None, False)])
def test_import_bit_exact_against_lava_dl(tmp_path, message_bits, sigma_out):
    rng = np.random.default_rng(7)
    path = sdnn_conv_net(tmp_path / "n.net", rng, message_bits, sigma_out)
    p = load_netx(path)
    steps = 10
    x = frames(rng, 1, steps, p.inputs[0].shape)
    check_against_lava_dl(path, p, x, steps)


def test_export_round_trip_bit_exact(tmp_path):
    """Import -> export -> import gives the same Program semantics, and lava-dl's reader of the exported file
    computes it (payloads, sigma, act at every step)."""
    from toolchain.backends.netx import export_netx, netx_network_args
    rng = np.random.default_rng(11)
    src = sdnn_conv_net(tmp_path / "src.net", rng)
    p = load_netx(src)
    out = export_netx(p, tmp_path / "out.net")
    assert netx_network_args(p) == {"reset_interval": None, "reset_offset": 0, "spike_exp": 6, "skip_layers": 1}
    q = load_netx(out)
    steps = 9
    x = frames(rng, 2, steps, p.inputs[0].shape)
    a, b = simulate(p, x, record=True), simulate(q, x, record=True)
    for ga, gb in zip(p.groups, q.groups):
        for f in ("spikes", "u", "v"):
            assert np.array_equal(getattr(a, f)[ga], getattr(b, f)[gb]), (ga, f)
    check_against_lava_dl(out, q, x[:1], steps)


def test_export_refusals(tmp_path):
    from toolchain.backends.netx import export_netx
    from toolchain.errors import ToolchainError
    from toolchain.program import Program, SynapseGroup, sigma_delta_group
    from toolchain.ir.storage import Dense
    p = Program([sigma_delta_group("h", (2,), vth=1, state_exp=3)],
                [SynapseGroup("s", "x", "h", Dense(np.ones((2, 2))))], [__import__("toolchain.program").program.
                                                                       InputPort("x", (2,), 8)], "h")
    with pytest.raises(ToolchainError, match="state_exp"):
        export_netx(p, tmp_path / "x.net")
    assert not (tmp_path / "x.net").exists()
