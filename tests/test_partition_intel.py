"""The Loihi 2 core model against Intel's compiler: PilotNet-LIF per layer and in total (Intel's table in
``../shared/data/lava-dl/README.md``), the shared-weight conv accounting on hand-checked cases, Intel's halving on
a small dense layer, and the liveness of bias-driven input layers."""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import tomli

from toolchain.ir.storage import Conv, Dense
from toolchain.netx_io.intel_pilotnet import (INTEL_PILOTNET_LIF, INTEL_TOTAL_CORES, compare_with_intel,
                                              format_intel_comparison, match_groups)
from toolchain.passes.checks import check_partitioned
from toolchain.passes.partition import (conv_tap_ids, conv_weight_bits, partition, per_layer_cores)
from toolchain.program import InputPort, NeuronGroup, Program, SynapseGroup
from toolchain.targets import TARGET_DIR, load_target, parse_target

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "lava-dl"
PILOTNET = DATA / "pilotnet_lif" / "network.net"

with open(TARGET_DIR / "loihi2.toml", "rb") as _fh:
    _L2 = tomli.load(_fh)


def loihi2(**core) -> "object":
    """The shipped loihi2 target with some [core] figures overridden."""
    d = copy.deepcopy(_L2)
    d["core"].update(core)
    return parse_target(d, "loihi2-variant.toml")


def _group(name, shape, bias=0):
    n = int(np.prod(shape))
    return NeuronGroup(name, shape, du=np.full(n, 4095), dv=np.full(n, 1024), vth=np.full(n, 25),
                       bias_mant=np.full(n, bias), bias_exp=np.zeros(n))


def _need_pilotnet():
    if not PILOTNET.exists():
        pytest.skip(f"lava-dl data not found at {DATA} (shared/ beside the repository)")
    pytest.importorskip("h5py")


@pytest.fixture(scope="module")
def pilotnet():
    _need_pilotnet()
    from toolchain.netx_io import load_netx
    return load_netx(PILOTNET)


@pytest.fixture(scope="module")
def placed(pilotnet):
    """PilotNet on loihi2, our packing as the placement and Intel's halving computed beside it."""
    return partition(pilotnet, load_target("loihi2"))


# ------------------------------------------------------------------------------------------------ PilotNet
def test_pilotnet_cores_per_layer_and_total_agree_with_intels_table(placed):
    cmp = compare_with_intel(placed)
    got = [(r["layer"], r["intel_halving_cores"]) for r in cmp["rows"]]
    assert got == [(r.layer, r.cores) for r in INTEL_PILOTNET_LIF]
    assert cmp["totals"]["intel_halving"] == INTEL_TOTAL_CORES == 74
    assert cmp["ratio_intel_halving"] == 1.0
    # Intel's per-core grids: (16, 66, 3), (4, 32, 24), (4, 15, 36), (8, 7, 48), (8, 4, 64), (16, 2, 64)
    for r in cmp["rows"]:
        if r["intel_core_shape"] is not None:
            assert r["core_shape"] == r["intel_core_shape"], r["layer"]
            assert r["neurons_per_core"] == r["intel_neurons"], r["layer"]


def test_pilotnet_synapse_memory_per_core_against_intels_column(placed):
    rows = {r["group"]: r for r in compare_with_intel(placed)["rows"]}
    words = {g: r["synapse_words_per_core"] for g, r in rows.items()}
    # dense 100->50, 50->10, 10->1 on one core each: Intel's 1300, 150, 10 exactly (ceil(n / 4) words per axon)
    assert [words["dense8"], words["dense9"], words["dense10"]] == [1300, 150, 10]
    # shared-weight conv: taps x (1 + ceil(C_out * b / 64)) words; Intel's 81, 864, 2160, 2880 exactly
    assert [words["conv1"], words["conv2"], words["conv4"], words["conv5"]] == [81, 864, 2160, 2880]
    # conv 48: our file's kernel needs 4 bits (324 taps x 4 words = 1296); Intel's table says 1620 (= 324 x 5)
    assert words["conv3"] == 1296 < rows["conv3"]["intel_synapses"]
    assert words["input0"] == 0 and rows["input0"]["intel_synapses"] == 0
    # per-position synapses would need far more: conv 64 (16, 2, 64) holds 2048 * 576 of them
    assert placed.report["layers"]["conv5"]["synapses"] == 1474560


def test_pilotnet_packing_does_better_than_halving_and_is_checked(placed):
    rep = placed.report
    assert rep["mode"] == "pack" and rep["per_group"] == per_layer_cores(placed)
    pack, halving = rep["modes"]["pack"], rep["modes"]["intel_halving"]
    assert pack["cores_used"] == rep["cores_used"] < halving["cores_used"] == 74
    assert rep["lower_bound"] <= rep["cores_used"]
    assert rep["neurons_placed"] == rep["neurons"] == 39600 + 76032 + 26460 + 8064 + 5632 + 2560 + 161
    # dense 2560->100: 16 neurons per core fit SynMem (2560 x 4 words <= 12000), Intel's ratio + halving made 12
    assert pack["per_group"]["dense7"] == 7 and halving["per_group"]["dense7"] == 12
    check_partitioned(placed, load_target("loihi2"))  # independent recount of every core, limits included
    text = format_intel_comparison(placed)
    assert "74" in text and "dense 2560->100" in text and f"{rep['cores_used']} packed" in text


@pytest.mark.slow
def test_pilotnet_intel_halving_as_the_placement(pilotnet):
    p = partition(pilotnet, load_target("loihi2"), mode="intel_halving", compare=False)
    assert p.report["cores_used"] == 74 and set(p.report["modes"]) == {"intel_halving"}
    assert [p.report["per_group"][g] for _, g in match_groups(p)] == [r.cores for r in INTEL_PILOTNET_LIF]
    # one layer per core: no core holds two groups
    assert all(len(c.groups) == 1 for c in p.placement.cores)
    with pytest.raises(ValueError, match="compare=True"):
        compare_with_intel(p)
    with pytest.raises(ValueError, match="not computed"):
        per_layer_cores(p, "pack")


def _pilotnet_tail(p: Program) -> Program:
    """conv 48 -> conv 64 -> conv 64 of PilotNet (conv 48 driven through a bias port): the layers whose cut shows
    the neuron limit."""
    groups = {g: p.groups[g] for g in ("conv3", "conv4", "conv5")}
    syn = [s for s in p.synapses if s.name in ("w4", "w5")]
    port = InputPort("frame", p.groups["conv3"].shape, kind="bias", target="conv3")
    return Program(groups, syn, [port], "conv5", metadata={"netx": {}})


@pytest.mark.parametrize("npc,cores", [(3168, [3, 3, 2]), (4095, [3, 3, 2]), (4096, [3, 2, 1])])
def test_neuron_limit_bracket(pilotnet, npc, cores):
    """Intel's cut holds for any neuron limit in [3168, 4095] (the calibrated bracket); at 4096 the conv 64 slabs
    (16, 4, 64) and (32, 2, 64) would fit and Intel's table would not be reproduced."""
    p = partition(_pilotnet_tail(pilotnet), loihi2(neurons_per_core=npc), mode="intel_halving", compare=False)
    assert [p.report["per_group"][g] for g in ("conv3", "conv4", "conv5")] == cores


# ------------------------------------------------------------------------------------ conv accounting
def _conv_program(kernel, in_shape, out_shape, stride=1, padding=0, groups=1):
    w = Conv(in_shape, out_shape, kernel, stride=stride, padding=padding, groups=groups)
    inp = _group("inp", in_shape)
    out = _group("out", out_shape)
    return Program({"inp": inp, "out": out}, [SynapseGroup("w", "inp", "out", w)],
                   [InputPort("frame", in_shape, kind="bias", target="inp")], "out"), w


def _brute_taps(w: Conv) -> np.ndarray:
    """Tap id of every stored synapse by direct search over the kernel (slow, for small cases)."""
    (_, h_in, c_in), (_, h_out, c_out) = w.in_shape, w.out_shape
    _, cin_g, kh, kw = w.kernel.shape
    out = []
    for r in range(w.shape[0]):
        x_o, rest = divmod(r, h_out * c_out)
        y_o = rest // c_out
        for j in w.indices[w.indptr[r]:w.indptr[r + 1]]:
            x_i, rest = divmod(int(j), h_in * c_in)
            y_i, ci = divmod(rest, c_in)
            hits = [(ky, kx) for ky in range(kh) for kx in range(kw)
                    if y_o * w.stride[0] - w.padding[0] + ky * w.dilation[0] == y_i
                    and x_o * w.stride[1] - w.padding[1] + kx * w.dilation[1] == x_i]
            assert len(hits) == 1
            out.append((ci * kh + hits[0][0]) * kw + hits[0][1])
    return np.array(out)


@pytest.mark.parametrize("stride,padding,groups", [(1, 0, 1), (2, 1, 1), ((2, 1), (1, 0), 2)])
def test_conv_tap_ids_match_a_direct_search(stride, padding, groups):
    rng = np.random.default_rng(0)
    c_in, c_out = 4, 6
    k = rng.integers(-3, 4, size=(c_out, c_in // groups, 3, 3))
    from toolchain.ir.storage import conv_output_hw
    h, w_ = conv_output_hw((5, 7), (3, 3), _pair(stride), _pair(padding), (1, 1))
    w = Conv((7, 5, c_in), (w_, h, c_out), k, stride=stride, padding=padding, groups=groups)
    assert np.array_equal(conv_tap_ids(w), _brute_taps(w))


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def test_conv_weight_bits_factor_out_the_common_power_of_two():
    def bits(vals):
        k = np.zeros((1, 1, 1, len(vals)))
        k[0, 0, 0] = vals
        return conv_weight_bits(Conv((len(vals), 1, 1), (1, 1, 1), k))
    assert bits([-20, 18, 2]) == 5      # / 2 -> -10..9: 5-bit two's complement
    assert bits([-8, 8, 2]) == 4        # / 2 -> -4..4
    assert bits([-4, 4]) == 2           # / 4 -> -1..1
    assert bits([3, -3]) == 3
    assert bits([-4, 3]) == 3           # -4..3 in 3 bits
    assert bits([0, 0]) == 1


def test_conv_memory_whole_layer_on_one_core():
    """3 output channels, 2 input channels, 3x3 kernel at 3 bits: 18 taps x ceil((64 + 3 * 3) / 64) = 2 words."""
    k = np.random.default_rng(1).integers(-3, 4, size=(3, 2, 3, 3))
    k[0, 0, 0, 0] = -3
    p, w = _conv_program(k, (5, 4, 2), (3, 2, 3))
    assert conv_weight_bits(w) == 3
    t = load_target("loihi2")
    q = partition(p, t)
    assert q.report["cores_used"] == 1
    assert q.report["layers"]["out"]["synapse_bits"] == 18 * 2 * 64
    assert q.report["layers"]["out"]["synapses"] == 18 * 3 * 6  # per-position synapses: 18 per neuron
    check_partitioned(q, t)


def test_conv_memory_per_core_counts_the_taps_each_position_uses():
    """Padding 1 on a 3x3 grid, one position per core (3 neurons): corner cores use 4 taps, edge cores 6, the
    centre 9, each tap list one header word + 3 channels x 2 bits (one word) = 2 words."""
    k = np.array([[[[1, -1, 1], [0, 1, 1], [1, 1, -2]]]] * 3)  # (3, 1, 3, 3), values -2..1: 2 bits
    p, w = _conv_program(k, (3, 3, 1), (3, 3, 3), padding=1)
    assert conv_weight_bits(w) == 2
    t = loihi2(neurons_per_core=3)
    q = partition(p, t)
    check_partitioned(q, t)
    core_of = q.placement.core_of["out"]
    mem = {c.core: c.synapse_bits for c in q.placement.cores}
    taps = {}
    for pos in range(9):
        cores = set(core_of[pos * 3:(pos + 1) * 3].tolist())
        assert len(cores) == 1  # a whole position on one core
        taps[pos] = mem[cores.pop()] // (2 * 64)
    x, y = np.divmod(np.arange(9), 3)
    edges = (x == 0).astype(int) + (x == 2) + (y == 0) + (y == 2)
    want = np.where(edges == 2, 4, np.where(edges == 1, 6, 9))
    assert [taps[i] for i in range(9)] == want.tolist()
    assert q.report["modes"]["pack"]["per_group"]["out"] == 9


def test_conv_groups_charge_each_channel_group_its_own_taps():
    """groups=2: 4 input channels, 4 output channels; a core holding one output channel of each group uses
    2 x 9 taps of its own group, each with a list of 1 channel."""
    k = np.ones((4, 2, 3, 3), int)
    p, w = _conv_program(k, (3, 3, 4), (1, 1, 4), groups=2)
    t = load_target("loihi2")
    q = partition(p, t)
    # whole layer on one core: 36 taps (4 input channels x 9), each a list of 2 channels (1 bit: ones -> 2 bits)
    assert conv_weight_bits(w) == 2
    assert q.report["layers"]["out"]["synapse_bits"] == 36 * 64 * int(np.ceil((64 + 2 * 2) / 64))
    check_partitioned(q, t)


def test_targets_without_shared_conv_keep_per_synapse_accounting():
    k = np.random.default_rng(1).integers(-3, 4, size=(3, 2, 3, 3))
    p, _ = _conv_program(k, (5, 4, 2), (3, 2, 3))
    t = load_target("loihi1")
    q = partition(p, t)
    check_partitioned(q, t)
    # per-position synapses: every input axon stored for the neurons it reaches (far above 18 tap lists)
    assert q.report["layers"]["out"]["synapse_bits"] > 18 * 2 * 64


# --------------------------------------------------------------------------------------- Intel's halving
def test_dense_halving_ratio_then_doubling_against_packing():
    """A small replica of PilotNet's dense 2560->100: 10 axons x 100 neurons cost 10 x 25 = 250 words on one core;
    with 49 words per core Intel's ratio is ceil(250 / 49) = 6, pieces of 17 neurons need 10 x 5 = 50 > 49, so
    it doubles to 12 pieces (8 or 9 neurons, 30 words); our packing fits 16 neurons (40 words) per core: 7."""
    src, dst = _group("src", (10,), bias=100), _group("dst", (100,))
    w = Dense(np.ones((100, 10), np.int16))
    p = Program({"src": src, "dst": dst}, [SynapseGroup("w", "src", "dst", w)], [], "dst")
    t = loihi2(synapse_memory_bits=49 * 64)
    q = partition(p, t)
    assert q.report["modes"]["intel_halving"]["per_group"]["dst"] == 12
    assert q.report["modes"]["intel_halving"]["layers"]["dst"]["max_neurons_per_core"] == 9
    assert q.report["modes"]["pack"]["per_group"]["dst"] == 7
    assert q.report["modes"]["pack"]["layers"]["dst"]["max_synapse_words_per_core"] == 40
    check_partitioned(q, t)
    h = partition(p, t, mode="intel_halving")
    check_partitioned(h, t)
    assert h.report["cores_used"] == 13  # 12 + the source layer's own core
    with pytest.raises(ValueError, match="modes"):
        partition(p, t, mode="greedy")


def test_grid_halving_starts_from_the_next_power_of_two():
    """A (20, 2, 64) grid fits one core (2560 neurons) but its nominal 32-column slab (4096) does not: halving
    gives 16-column slabs, 2 cores (Intel's conv 64 row); packing needs 1."""
    shape = (20, 2, 64)
    g = _group("grid", shape, bias=100)
    p = Program({"grid": g}, [], [], "grid", metadata={"netx": {}})
    q = partition(p, load_target("loihi2"))
    assert q.report["modes"]["intel_halving"]["per_group"]["grid"] == 2
    assert q.report["modes"]["intel_halving"]["layers"]["grid"]["core_shape"] == (16, 2, 64)
    assert q.report["modes"]["pack"]["per_group"]["grid"] == 1


# ------------------------------------------------------------------------------------------ liveness
def test_a_group_driven_by_a_bias_port_is_placed():
    """No synapses into it and bias 0: only the bias port drives it (lava-dl's input layer); it must be placed."""
    inp, out = _group("inp", (4, 3, 2)), _group("out", (6,))
    w = Dense(np.ones((6, 24), np.int16))
    port = InputPort("frame", (4, 3, 2), kind="bias", target="inp")
    p = Program({"inp": inp, "out": out}, [SynapseGroup("w", "inp", "out", w)], [port], "out")
    t = load_target("loihi2")
    q = partition(p, t)
    assert q.report["layers"]["inp"]["placed"] == 24 and q.report["layers"]["out"]["placed"] == 6
    assert (q.placement.core_of["inp"] >= 0).all()
    check_partitioned(q, t)
    # without the port nothing can ever spike: nothing is placed
    q0 = partition(Program({"inp": inp, "out": out}, [SynapseGroup("w", "inp", "out", w)], [], "out"), t)
    assert q0.report["neurons_placed"] == 0
