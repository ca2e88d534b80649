"""toolchain.netx_io.write_netx_layers: the layout lava-dl's reader expects, nothing added, clear errors and no
partial file on bad input."""
from __future__ import annotations

import h5py
import numpy as np
import pytest

from toolchain.errors import ToolchainError
from toolchain.netx_io import load_netx, write_netx_layers


def _layers(rng: np.random.Generator) -> list:
    return [{"type": "input", "shape": [5]},
            {"type": "dense", "shape": [4], "weight": rng.integers(-40, 41, (4, 5)).astype(np.float32),
             "bias": np.arange(4, dtype=np.float32),
             "neuron": {"type": "CUBA", "iDecay": 1024, "vDecay": np.array([0, 100, 2000, 4096]), "vThMant": 30,
                        "refDelay": 1}},
            {"type": "dense_rec", "shape": [3], "weight": rng.integers(-40, 41, (3, 4)),
             "weight_rec": rng.integers(-20, 21, (3, 3)), "neuron": None},
            {"type": "dense", "shape": [2], "weight": rng.integers(-40, 41, (2, 3)).astype(np.float32)}]


def test_layout_exactly_as_given(tmp_path):
    rng = np.random.default_rng(3)
    layers = _layers(rng)
    out = write_netx_layers(tmp_path / "n.net", layers)
    assert out == tmp_path / "n.net"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["n.net"]  # no temporary file left
    with h5py.File(out, "r") as f:
        assert list(f.keys()) == ["layer"]
        assert sorted(f["layer"].keys(), key=int) == [str(i) for i in range(len(layers))]
        for i, lay in enumerate(layers):
            h = f["layer"][str(i)]
            assert h["type"].dtype == np.dtype("S10") and h["type"].shape == (1,)
            assert h["type"][0] == lay["type"].encode()
            fields = {k for k in lay if k not in ("type", "neuron")}
            groups = {"neuron"} if lay.get("neuron") is not None else set()
            assert set(h.keys()) == fields | groups | {"type"}
            for key in fields:
                got, want = h[key][()], np.asarray(lay[key])
                assert got.dtype == want.dtype and np.array_equal(got, want), (i, key)
            if groups:
                n, want_n = h["neuron"], lay["neuron"]
                assert set(n.keys()) == set(want_n)
                assert n["type"].dtype == np.dtype("S10") and n["type"][0] == want_n["type"].encode()
                for key in set(want_n) - {"type"}:
                    assert np.array_equal(n[key][()], np.asarray(want_n[key])), (i, key)


def test_written_file_reads_back(tmp_path):
    """The file is a netx network our reader takes: weights and parameters come through as written."""
    rng = np.random.default_rng(4)
    layers = _layers(rng)
    prog = load_netx(write_netx_layers(tmp_path / "n.net", layers))
    groups = list(prog.groups.values())
    assert [g.size for g in groups] == [4, 3, 2]
    g0 = groups[0]
    assert np.array_equal(np.broadcast_to(g0.vth, (4,)), np.full(4, 30))
    assert np.array_equal(np.broadcast_to(g0.dv, (4,)), [0, 100, 2000, 4096])
    assert np.array_equal(np.broadcast_to(g0.du, (4,)), np.full(4, 1023))  # iDecay - 1
    # the dense_rec layer without a neuron group: netx's non-leaky integrator, with its recurrent synapses
    assert np.array_equal(np.broadcast_to(groups[1].dv, (3,)), np.full(3, 4096))
    assert any(s.src == s.dst == groups[1].name for s in prog.synapses)


@pytest.mark.parametrize("layers, node, field", [
    ([{"shape": [4]}], "layer/0", "type"),
    ([{"type": "input", "shape": [4]}, {"type": "a_very_long_type", "shape": [2]}], "layer/1", "type"),
    ([{"type": "input", "shape": [4]}, {"type": "dense", "shape": [2], "neuron": 3}], "layer/1", "neuron"),
    ([{"type": "input", "shape": [4]}, {"type": "dense", "shape": [2], "neuron": {"vThMant": 3}}],
     "layer/1/neuron", "type"),
    (["dense"], "layer/0", None),
])
def test_bad_layers_named_and_nothing_written(tmp_path, layers, node, field):
    target = tmp_path / "bad.net"
    target.write_bytes(b"old")
    with pytest.raises(ToolchainError) as e:
        write_netx_layers(target, layers)
    assert e.value.node == node and e.value.field == field and e.value.file == str(target)
    assert target.read_bytes() == b"old"  # an existing file is left alone
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.net"]


def test_missing_directory(tmp_path):
    with pytest.raises(ToolchainError, match="does not exist"):
        write_netx_layers(tmp_path / "nope" / "n.net", [{"type": "input", "shape": [4]}])
    assert not (tmp_path / "nope").exists()
