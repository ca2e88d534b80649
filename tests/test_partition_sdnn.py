"""The partitioner charges graded messages (issue 16): sigma-delta groups and graded input ports cost more synapse
memory (``graded_synapse_extra_bits`` per synapse), more output-axon entries (:meth:`TargetSpec.axon_entries`) and
their own neuron state (:meth:`TargetSpec.state_bits`) than the same network with LIF neurons and binary spikes;
the lower bound stays at most the cores used; Loihi 1 (binary spikes only) refuses graded groups."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from toolchain.ir.storage import Csr, Dense
from toolchain.passes.checks import check_partitioned
from toolchain.passes.partition import partition
from toolchain.program import InputPort, NeuronGroup, Program, SynapseGroup, sigma_delta_group
from toolchain.targets import TargetError, load_target

L2 = load_target("loihi2")


def layered(rng: np.random.Generator, sizes, graded: bool, sparse: float = 0.0, msg_bits: int = 16) -> Program:
    """Input port -> hidden layers -> readout, the same weights either way: sigma-delta groups fed by a graded
    port (``graded``) or LIF groups fed by binary spikes."""
    groups, syns = [], []
    src = "x"
    for k, n in enumerate(sizes[1:]):
        name = f"l{k}"
        last = k == len(sizes) - 2
        if graded:
            groups.append(sigma_delta_group(name, (n,), "sigma" if last else "sigma_delta", vth=2, bias=1,
                                            num_message_bits=msg_bits))
        else:
            groups.append(NeuronGroup(name, (n,), du=300, dv=200, vth=40, bias_mant=1, bias_exp=0))
        w = rng.integers(-100, 101, (n, sizes[k]))
        if sparse:
            w[rng.random(w.shape) < sparse] = 0
            w[:, 0] = 7  # every target keeps a synapse: no neuron is pruned away
        syns.append(SynapseGroup(f"w{k}", src, name, Csr.from_dense(w) if sparse else Dense(w)))
        src = name
    port = InputPort("x", (sizes[0],), msg_bits if graded else 0)
    return Program(groups, syns, [port], groups[-1].name)


def test_dense_layer_costs_by_hand():
    """Dense 100 -> 50 on one core: binary rows cost ceil(50 * 16 / 64) = 13 words per input axon (Intel's
    PilotNet table: 1300 for 100 axons); graded rows ceil(50 * (16 + 8) / 64) = 19 words; graded routes two
    output-axon entries; SigmaDelta state 112 bits per neuron against LIF's 64."""
    rng = np.random.default_rng(0)
    lif = partition(layered(rng, (100, 50, 10), False), L2, compare=False)
    rng = np.random.default_rng(0)
    sdn = partition(layered(rng, (100, 50, 10), True), L2, compare=False)
    a, b = lif.report["layers"], sdn.report["layers"]
    assert a["l0"]["synapse_bits"] == 100 * 13 * 64 and b["l0"]["synapse_bits"] == 100 * 19 * 64
    assert a["l1"]["synapse_bits"] == 50 * 3 * 64 and b["l1"]["synapse_bits"] == 50 * 4 * 64  # 10 x 16, 10 x 24
    assert a["l0"]["output_axons"] == 50 and b["l0"]["output_axons"] == 100  # one dest core, 2 entries each
    assert a["l0"]["neuron_state_bits"] == 50 * 64 and b["l0"]["neuron_state_bits"] == 50 * 112
    assert b["l1"]["neuron_state_bits"] == 10 * 24  # Sigma readout: sigma only
    assert (a["l0"]["kind"], b["l0"]["kind"], b["l0"]["message_bits"]) == ("lif", "sigma_delta", 16)
    for p in (lif, sdn):
        check_partitioned(p, L2)


@pytest.mark.parametrize("sparse", [0.0, 0.7])
@pytest.mark.parametrize("mode", ["pack", "intel_halving"])
def test_graded_costs_more_and_bound_holds(sparse, mode):
    """A network that needs several cores: graded synapses need more memory in total and at least as many cores
    as the LIF network; the lower bound is at most the cores used and every core passes the independent check."""
    sizes = (1500, 1200, 700, 20)
    reps = {}
    for graded in (False, True):
        p = layered(np.random.default_rng(1), sizes, graded, sparse)
        q = partition(p, L2, mode=mode, compare=False)
        check_partitioned(q, L2)
        rep = q.report
        assert 1 <= rep["lower_bound"] <= rep["cores_used"]
        reps[graded] = rep
    lif, sdn = reps[False], reps[True]
    assert sdn["synapse_bits"] > lif["synapse_bits"]
    assert sum(v["output_axons"] for v in sdn["layers"].values()) > \
        sum(v["output_axons"] for v in lif["layers"].values())
    assert sdn["needs"]["neuron_memory"] > lif["needs"]["neuron_memory"]
    assert sdn["cores_used"] >= lif["cores_used"] and sdn["lower_bound"] >= lif["lower_bound"]
    assert sdn["cores_used"] > 1


def test_neuron_memory_binds_on_a_smaller_target():
    """With neuron memory for only 1000 LIF neurons per core (64 bits each), a 3000-neuron SigmaDelta layer
    (112 bits each: 571 per core) takes 6 cores where the LIF layer takes 3; the bound follows."""
    small = dataclasses.replace(L2, neuron_memory_bits=64 * 1000, name="small")
    cores = {}
    for graded in (False, True):
        p = layered(np.random.default_rng(2), (20, 3000, 5), graded)
        for mode in ("pack", "intel_halving"):
            q = partition(p, small, mode=mode, compare=False)
            check_partitioned(q, small)
            assert q.report["lower_bound"] <= q.report["cores_used"]
            cores[graded, mode] = (q.report["per_group"]["l0"], q.report["lower_bound_per_resource"]["neuron_memory"])
    assert cores[False, "pack"] == (3, 4)  # the bound counts the readout's 5 neurons too
    assert cores[True, "pack"] == (6, 6) and cores[True, "intel_halving"][0] >= 6


def test_loihi1_refuses_graded_groups():
    p = layered(np.random.default_rng(3), (10, 8, 4), True)
    with pytest.raises(TargetError) as e:
        partition(p, load_target("loihi1"))
    msg = str(e.value)
    assert "'l0'" in msg and "sigma_delta" in msg and "binary spikes only" in msg and "loihi1" in msg
    # the LIF network still places on Loihi 1
    q = partition(layered(np.random.default_rng(3), (10, 8, 4), False), load_target("loihi1"))
    assert q.report["cores_used"] == 1


def test_payload_entries_follow_message_bits():
    """1 + ceil(bits / 32) entries per graded route on Loihi 2; binary routes one; no payload parameter, one."""
    assert [L2.axon_entries(b) for b in (0, 1, 16, 24, 32)] == [1, 2, 2, 2, 2]
    assert dataclasses.replace(L2, graded_axon_entry_bits=8).axon_entries(24) == 4
    assert dataclasses.replace(L2, graded_axon_entry_bits=0).axon_entries(24) == 1
    assert L2.state_bits("lif") == 64 and L2.state_bits("sigma_delta") == 112
    assert L2.state_bits("delta") == 96 and L2.state_bits("sigma") == 24


def test_snnc_report_prints_the_cores_of_an_sdnn_build(tmp_path, capsys):
    """A partitioned SDNN Program saved as a build: ``snnc report`` prints its cores."""
    from toolchain.cli.main import main
    q = partition(layered(np.random.default_rng(4), (1500, 1200, 20), True), L2, compare=False)
    assert q.report["cores_used"] > 1
    q.save(tmp_path / "build")
    assert main(["report", str(tmp_path / "build")]) == 0
    out = capsys.readouterr().out
    assert any(line.split() == ["cores", str(q.report["cores_used"])] for line in out.splitlines()), out


def test_graded_conv_taps_and_an_sdnn_netx_file(tmp_path):
    """Shared-conv tap lists hold graded weights 8 bits wider (64 channels at 5 bits: 6 words binary, 14 graded);
    an SDNN netx file (input, conv, flatten, dense, readout) places in both modes within the bound and every
    core passes the independent check."""
    from test_sdnn_netx import sdnn_conv_net

    from toolchain.netx_io import load_netx
    assert int(L2.conv_tap_bits(np.array([64]), 5)[0]) == 6 * 64
    assert int(L2.conv_tap_bits(np.array([64]), 5, graded=True)[0]) == 14 * 64
    p = load_netx(sdnn_conv_net(tmp_path / "s.net", np.random.default_rng(5), message_bits=24))
    assert any(g.sdn is not None for g in p.groups.values())
    for mode in ("pack", "intel_halving"):
        q = partition(p, L2, mode=mode, compare=False)
        check_partitioned(q, L2)
        assert 1 <= q.report["lower_bound"] <= q.report["cores_used"]
        assert all(v["message_bits"] == 24 for g, v in q.report["layers"].items() if p.groups[g].sdn.kind != "sigma")
