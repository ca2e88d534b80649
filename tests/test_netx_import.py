"""netx import: every layer type and neuron field lava-dl 0.6.0's reader builds, checked against lava-dl's own
reader on Lava (every spike, u and v at every step), against Intel's Loihi 2 traces for PilotNet-LIF and
against tinynet's ground truth; refusals name the layer and the field."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from netx_files import conv_net, dense_rec_net, neuron, write_net
from toolchain.errors import ToolchainError
from toolchain.netx_io import NetxImportError, load_netx
from toolchain.netx_io.traces import (PILOTNET_RESET_INTERVAL, PILOTNET_STEPS, compare_pilotnet, format_trace_table,
                                      pilotnet_exact)
from toolchain.sim.reference import simulate

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "lava-dl"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data/lava-dl is not present")


def _same_by_order(ref, other, groups):
    """Every spike, u and v of the k-th group of ``ref`` equals ``other``'s ``layer<k>`` at every step."""
    for k, g in enumerate(groups):
        for what in ("spikes", "u", "v"):
            a = getattr(ref, what)[g]
            b = getattr(other, what)[f"layer{k}"]
            assert a.shape == b.shape, (g, what)
            if not np.array_equal(a.astype(np.int64), b.astype(np.int64)):
                bad = np.argwhere(a.astype(np.int64) != b.astype(np.int64))[0]
                raise AssertionError(f"{g} {what} differs first at sample/step/neuron {tuple(bad)}")
    return True


# ------------------------------------------------------------------------------------------- Intel's data
@needs_data
def test_pilotnet_reproduces_intels_loihi2_states_on_the_reference_simulator():
    p = load_netx(DATA / "pilotnet_lif" / "network.net", reset_interval=PILOTNET_RESET_INTERVAL)
    assert [g for g in p.groups] == ["input0", "conv1", "conv2", "conv3", "conv4", "conv5", "dense7", "dense8",
                                     "dense9", "dense10"]
    assert p.inputs[0].kind == "bias" and p.inputs[0].shape == (200, 66, 3)
    image = np.load(DATA / "pilotnet_lif" / "image.npy")
    res = simulate(p, image[None], steps=PILOTNET_STEPS, record=True)
    rows = compare_pilotnet(res, p, DATA / "pilotnet_lif")
    assert pilotnet_exact(rows), format_trace_table(rows)
    counted = [r for r in rows if r.counted]
    assert len(counted) == 24 and sum(r.kind == "u" for r in counted) == 7  # conv-1..4-u, fc-0..2-u
    assert sum(int(res.spikes[g].sum()) for g in p.groups) > 10000  # the claim is about an active network
    # the not-counted float recording agrees where lava-dl's own reader agrees (13 of 15 steps)
    fc3u = next(r for r in rows if r.array == "fc-3-u")
    assert fc3u.equal_steps == 13


@needs_data
def test_pilotnet_import_keeps_netx_integers():
    p = load_netx(DATA / "pilotnet_lif" / "network.net")
    conv1 = next(s for s in p.synapses if s.dst == "conv1")
    assert conv1.weight.kind == "conv" and conv1.num_weight_bits == 9 and conv1.weight_exp == 0
    assert conv1.weight.kernel.shape == (24, 3, 3, 3) and conv1.weight.stride == (2, 2)
    conv4 = next(s for s in p.synapses if s.dst == "conv4")
    assert conv4.weight.stride == (2, 1) and conv4.weight.padding == (1, 0)
    d7 = next(s for s in p.synapses if s.dst == "dense7")
    assert (d7.weight_exp, d7.num_weight_bits) == (-5, 3)  # netx's optimize_weight_bits
    g = p.groups["conv1"]
    assert int(g.du[0]) == 4095 and int(g.dv[0]) == 1024 and int(g.vth[0]) == 25 and int(g.bias_exp[0]) == 6
    assert all(grp.reset_interval == 0 for grp in p.groups.values())


@needs_data
def test_tinynet_matches_lava_dl_ground_truth_and_lava_dl_itself():
    from toolchain.backends.lava import run_lava
    from toolchain.backends.lava_dl import run_netx_file
    path = DATA / "tinynet" / "tiny.net"
    p = load_netx(path, reset_interval=17)
    assert [grp.reset_offset for grp in p.groups.values()] == [1, 2, 3]
    bias = np.load(DATA / "tinynet" / "input_bias.npy")[None].astype(np.int32)
    res = simulate(p, bias, steps=20, record=True)
    gt = np.load(DATA / "tinynet" / "output.npy")[0].transpose([2, 1, 0, 3])[..., 1:]
    out = np.moveaxis(res.spikes["conv2"][0].reshape((20,) + p.groups["conv2"].shape), 0, -1)
    assert gt.sum() > 50 and np.array_equal(out[..., 2:17].astype(np.int64), gt.astype(np.int64))
    assert _same_by_order(res, run_netx_file(path, bias, 20, reset_interval=17), list(p.groups))
    assert res.first_mismatch(run_lava(p, bias, steps=20, record=True)) is None  # our Lava backend (Conv, LIFReset)


@needs_data
def test_mnist_mlp_matches_lava_dl():
    from toolchain.backends.lava_dl import run_netx_file
    path = DATA / "mnist_mlp" / "trained_mnist_network.net"
    p = load_netx(path)
    assert p.inputs[0].kind == "spikes" and p.inputs[0].shape == (784,)
    x = (np.random.default_rng(3).random((1, 12, 784)) < 0.3).astype(np.int32)
    res = simulate(p, x, steps=12, record=True)
    assert sum(int(res.spikes[g].sum()) for g in p.groups) > 50
    assert _same_by_order(res, run_netx_file(path, x, 12), list(p.groups))


# ------------------------------------------------------------------------------------------- every field
def test_conv_padding_dilation_groups_flatten_missing_neuron_and_reset(tmp_path):
    from toolchain.backends.lava_dl import run_netx_file
    rng = np.random.default_rng(0)
    path = conv_net(tmp_path / "c.net", rng)
    p = load_netx(path, reset_interval=5, reset_offset=2)
    last = p.groups[list(p.groups)[-1]]
    assert int(last.du[0]) == -1 and int(last.dv[0]) == 4096 and int(last.vth[0]) == 2 ** 17  # netx's default
    bias = rng.integers(0, 80, (1, 8, 6, 4)).astype(np.int32)
    res = simulate(p, bias, steps=14, record=True)
    assert all(res.spikes[g].sum() > 0 for g in list(p.groups)[:3])
    assert _same_by_order(res, run_netx_file(path, bias, 14, reset_interval=5, reset_offset=2), list(p.groups))


@pytest.mark.parametrize("delay", [None, "scalar", "axonal", "input", "synapse"])
def test_dense_rec_delays_per_neuron_parameters(tmp_path, delay):
    from toolchain.backends.lava_dl import run_netx_file
    rng = np.random.default_rng(1)
    path = dense_rec_net(tmp_path / f"d{delay}.net", rng, delay)
    p = load_netx(path)
    assert any(s.recurrent and s.src == s.dst for s in p.synapses)
    x = (rng.random((1, 16, 10)) < 0.5).astype(np.int32)
    res = simulate(p, x, steps=16, record=True)
    assert res.spikes[list(p.groups)[1]].sum() > 0
    assert _same_by_order(res, run_netx_file(path, x, 16), list(p.groups))


def test_sparse_fc_layer_is_the_same_network(tmp_path):
    rng = np.random.default_rng(2)
    path = dense_rec_net(tmp_path / "s.net", rng)
    a, b = load_netx(path), load_netx(path, sparse_fc_layer=True)
    assert {s.weight.kind for s in b.synapses} == {"csr"}
    x = (rng.random((3, 10, 10)) < 0.5).astype(np.int32)
    assert simulate(a, x, record=True).first_mismatch(simulate(b, x, record=True)) is None


# ------------------------------------------------------------------------------------------- refusals
@pytest.mark.parametrize("ltype", ["pool", "concat", "convT", "average", "unpool", "dense_comp"])
def test_unsupported_layer_types_name_layer_and_field(tmp_path, ltype):
    path = write_net(tmp_path / "u.net", [{"type": "input", "shape": [4]},
                                          {"type": "dense", "shape": [2], "weight": np.ones((2, 4)),
                                           "neuron": neuron()},
                                          {"type": ltype, "shape": [2]}])
    with pytest.raises(NetxImportError) as e:
        load_netx(path)
    assert "layer/2" in str(e.value) and "field 'type'" in str(e.value) and ltype in str(e.value)


@pytest.mark.parametrize("case,fld", [
    ("rf", "neuron/type"), ("bias", "bias"), ("weight_shape", "weight"), ("no_weight", "weight"),
    ("zero_weights", "weight"), ("delay_shape", "delay"), ("conv_shape", "shape"), ("vdecay", "neuron/vDecay"),
])
def test_bad_fields_are_named(tmp_path, case, fld):
    lay = {"type": "dense", "shape": [3], "weight": np.arange(12).reshape(3, 4) - 5, "neuron": neuron()}
    layers = [{"type": "input", "shape": [4]}, lay]
    if case == "rf":  # SDNN layers are read since issue 16 (tests/test_sdnn_netx.py); resonate-and-fire is not
        lay["neuron"] = neuron(ntype="RF")
    elif case == "bias":
        lay["bias"] = np.full(3, 5000.0)
    elif case == "weight_shape":
        lay["weight"] = np.ones((2, 4))
    elif case == "no_weight":
        del lay["weight"]
    elif case == "zero_weights":
        lay["weight"] = np.zeros((3, 4))
    elif case == "delay_shape":
        lay["delay"] = np.ones(5)
    elif case == "vdecay":
        lay["neuron"] = neuron(v_decay=5000)
    elif case == "conv_shape":
        layers = [{"type": "input", "shape": [1, 5, 5]},
                  {"type": "conv", "shape": [2, 9, 9], "weight": np.ones((2, 1, 3, 3)), "neuron": neuron()}]
    path = write_net(tmp_path / f"{case}.net", layers)
    with pytest.raises(NetxImportError) as e:
        load_netx(path)
    assert f"field '{fld}'" in str(e.value) and "layer/1" in str(e.value) and str(path) in str(e.value)


def test_not_hdf5_and_missing_file(tmp_path):
    bad = tmp_path / "x.net"
    bad.write_text("not hdf5")
    with pytest.raises(NetxImportError, match="not a netx"):
        load_netx(bad)
    with pytest.raises(NetxImportError, match="no such file"):
        load_netx(tmp_path / "missing.net")
    with pytest.raises(ToolchainError, match="reset_interval"):
        load_netx(bad, reset_interval=0)


def test_cli_compile_simulate_verify_inspect_a_netx_file(tmp_path):
    from toolchain.cli.main import main
    rng = np.random.default_rng(4)
    net = conv_net(tmp_path / "c.net", rng, per_channel=False)
    build = tmp_path / "build"
    assert main(["compile", str(net), "-o", str(build), "--reset-interval", "9"]) == 0
    assert (build / "program.json").is_file()
    x = rng.integers(0, 60, (2, 8, 6, 4)).astype(np.int32)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "o.npz"
    assert main(["simulate", str(build), "--input", str(tmp_path / "x.npy"), "--steps", "9", "-o", str(out),
                 "--record"]) == 0
    from toolchain.program import Program
    ref = simulate(Program.load(build), x, steps=9, record=True)
    with np.load(out) as z:
        assert np.array_equal(z["spikes"], ref.output)
    assert main(["verify", str(build), "--input", str(tmp_path / "x.npy"), "--steps", "6"]) == 0
    assert main(["inspect", str(net)]) == 0
    assert main(["compile", str(net), "-o", str(tmp_path / "b2"), "--dt", "1e-3"]) == 1  # dt has no meaning
    assert not (tmp_path / "b2").exists()


def test_cli_refusal_is_one_error_line(tmp_path, capsys):
    from toolchain.cli.main import main
    path = write_net(tmp_path / "p.net", [{"type": "input", "shape": [1, 4, 4]},
                                          {"type": "conv", "shape": [2, 2, 2], "weight": np.ones((2, 1, 3, 3)),
                                           "neuron": neuron()},
                                          {"type": "pool", "shape": [2, 1, 1]}])
    assert main(["compile", str(path), "-o", str(tmp_path / "b")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "node 'layer/2'" in err[0] and "field 'type'" in err[0]
    assert not (tmp_path / "b").exists()
    assert main(["inspect", str(path)]) == 1


@pytest.mark.slow
@needs_data
def test_pilotnet_on_lava_through_our_backend():
    """Our Lava backend (Conv processes, LIFReset, the image as the input layer's bias) reproduces Intel's states
    too, and equals the reference at every spike/u/v (about 4-7 minutes on 2 cores)."""
    from toolchain.backends.lava import run_lava
    p = load_netx(DATA / "pilotnet_lif" / "network.net", reset_interval=PILOTNET_RESET_INTERVAL)
    image = np.load(DATA / "pilotnet_lif" / "image.npy")[None]
    lav = run_lava(p, image, steps=PILOTNET_STEPS, record=True)
    assert pilotnet_exact(compare_pilotnet(lav, p, DATA / "pilotnet_lif"))
    assert simulate(p, image, steps=PILOTNET_STEPS, record=True).first_mismatch(lav) is None


def test_netx_program_save_load_round_trip(tmp_path):
    """Conv storage, the bias port and the periodic reset survive Program.save/load exactly (format version 3)."""
    from toolchain.program import Program, programs_equal
    rng = np.random.default_rng(7)
    p = load_netx(conv_net(tmp_path / "c.net", rng), reset_interval=5)
    q = Program.load(p.save(tmp_path / "build"))
    assert programs_equal(p, q)
    conv_p = next(s.weight for s in p.synapses if s.weight.kind == "conv")
    conv_q = next(s.weight for s in q.synapses if s.weight.kind == "conv")
    assert conv_p == conv_q and np.array_equal(conv_p.indices, conv_q.indices)
    assert q.inputs[0].kind == "bias" and [g.reset_offset for g in q.groups.values()] == [1, 2, 3, 4]
    x = rng.integers(0, 80, (2, 8, 6, 4)).astype(np.int32)
    assert simulate(p, x, steps=9, record=True).first_mismatch(simulate(q, x, steps=9, record=True)) is None
