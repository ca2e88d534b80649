"""Multi-chip placement (toolchain.passes.multichip) and system targets (kapoho_point, hala_point, `base`)."""
from __future__ import annotations

import numpy as np
import pytest

from toolchain.errors import ResourceError, ToolchainError
from toolchain.ir.storage import Conv, Csr, Dense
from toolchain.passes.multichip import (assign_chips, axon_hypergraph, format_chip_report, interchip_traffic,
                                        partition_chips, rates_from_spikes)
from toolchain.passes.partition import partition
from toolchain.program import InputPort, NeuronGroup, Program, SynapseGroup
from toolchain.sim.reference import simulate
from toolchain.targets import TARGET_DIR, TargetError, list_targets, load_target
from toolchain.testing import int_inputs, int_program


def _small_target(tmp_path, neurons=16, cores_per_chip=4, chips=16):
    path = tmp_path / "small_system.toml"
    path.write_text(f'[target]\nname = "small_system"\nbase = "loihi2"\n[core]\nneurons_per_core = {neurons}\n'
                    f'[chip]\ncores_per_chip = {cores_per_chip}\nchips = {chips}\n'
                    '[system]\ninterchip_link_cost = 700.0\n')
    return load_target(path)


def _group(name, shape, vth=100):
    n = int(np.prod(shape))
    return NeuronGroup(name, tuple(shape), du=np.array([1000]), dv=np.array([500]), vth=np.array([vth]),
                       bias_mant=np.zeros(n, np.int64), bias_exp=np.zeros(n, np.int64))


def _local_net(n=128, layers=4, fan_in=6, window=4, seed=0):
    """Topographic random sparse layers: sources within +-window positions (a network that can be cut well)."""
    r = np.random.default_rng(seed)
    groups, syns, prev = [], [], "in"
    for k in range(layers):
        rows = np.repeat(np.arange(n, dtype=np.int64), fan_in)
        cols = (rows + r.integers(-window, window + 1, rows.size)) % n
        key = np.unique(rows * n + cols)
        rows, cols = key // n, key % n
        indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n))])
        groups.append(_group(f"l{k}", (n,)))
        syns.append(SynapseGroup(f"w{k}", prev, f"l{k}", Csr((n, n), indptr, cols,
                                                             r.integers(1, 60, rows.size).astype(np.int16))))
        prev = f"l{k}"
    return Program(groups, syns, [InputPort("in", (n,))], output=prev)


def _brute_traffic(p: Program, chip_of_core: np.ndarray, rates=None) -> float:
    """Spikes per step crossing chips, neuron by neuron from the dense matrices: for every placed source neuron,
    its rate times the number of chips other than its own holding a neuron it has a stored synapse into."""
    core_of = p.placement.core_of
    dest = {}
    for s in p.synapses:
        if s.src not in p.groups:
            continue
        mask = s.weight.stored_mask()
        for j in range(mask.shape[1]):
            if core_of[s.src][j] < 0:
                continue
            cores = core_of[s.dst][np.flatnonzero(mask[:, j])]
            dest.setdefault((s.src, j), set()).update(int(chip_of_core[c]) for c in cores if c >= 0)
    total = 0.0
    for (g, j), chips in dest.items():
        own = int(chip_of_core[core_of[g][j]])
        r = 1.0 if rates is None or g not in rates else float(rates[g][j])
        total += r * len(chips - {own})
    return total


def test_system_targets_extend_loihi2():
    assert {"kapoho_point", "hala_point"} <= set(list_targets())
    l2, kp, hp = load_target("loihi2"), load_target("kapoho_point"), load_target("hala_point")
    assert (kp.chips, kp.total_cores, hp.chips, hp.total_cores) == (8, 1024, 1152, 147456)
    assert kp.system_name == "Kapoho Point" and hp.system_name == "Hala Point"
    assert kp.interchip_link_cost == hp.interchip_link_cost == 700.0 and l2.interchip_link_cost is None
    for f in ("neurons_per_core", "synapse_memory_bits", "weight_bits", "conv_encoding", "reset_modes"):
        assert getattr(kp, f) == getattr(hp, f) == getattr(l2, f)


@pytest.mark.parametrize("name", ["kapoho_point", "hala_point"])
def test_system_target_figures_name_their_source(name):
    import re
    for line in (TARGET_DIR / f"{name}.toml").read_text().splitlines():
        m = re.match(r"^(\w+)\s*=", line)
        if m and m.group(1) not in ("name", "description"):
            assert re.search(r"\[[A-Z0-9]+\]|estimate", line.split("#", 1)[-1]), line


def test_base_errors_name_file_and_key(tmp_path):
    a, b = tmp_path / "a.toml", tmp_path / "b.toml"
    a.write_text('[target]\nname = "a"\nbase = "b.toml"\n')
    b.write_text('[target]\nname = "b"\nbase = "a.toml"\n')
    with pytest.raises(TargetError, match="cycle") as ei:
        load_target(a)
    assert ei.value.field == "target.base"
    a.write_text('[target]\nname = "a"\nbase = "nonesuch"\n')
    with pytest.raises(TargetError, match="base target 'nonesuch' not found"):
        load_target(a)
    a.write_text('[target]\nname = "a"\nbase = "loihi2"\n[system]\ninterchip_link_cost = -1.0\n')
    with pytest.raises(TargetError, match="must be > 0") as ei:
        load_target(a)
    assert ei.value.field == "system.interchip_link_cost"


def test_traffic_matches_a_neuron_by_neuron_count(tmp_path):
    t = _small_target(tmp_path)
    p = partition(int_program((20, 40, 30, 25), storage="mixed", density=0.3, recurrent=True, seed=3), t,
                  compare=False)
    hg = axon_hypergraph(p)
    assert p.placement.cores_used > t.cores_per_chip
    r = np.random.default_rng(0)
    for _ in range(4):
        chip = r.integers(0, 4, p.placement.cores_used)
        assert interchip_traffic(hg, chip) == pytest.approx(_brute_traffic(p, chip))
    assert interchip_traffic(hg, np.zeros(p.placement.cores_used, np.int64)) == 0.0


def test_recorded_rates_weight_the_axons(tmp_path):
    t = _small_target(tmp_path)
    p = partition(int_program((12, 40, 30), density=0.5, storage="csr", seed=1), t, compare=False)
    res = simulate(p, int_inputs(p, 3, 20, seed=2), record=True)
    rates = rates_from_spikes(res.spikes)
    assert set(rates) == set(p.groups) and 0 < max(float(v.max()) for v in rates.values()) <= 1
    chip = np.arange(p.placement.cores_used) % 3
    assert interchip_traffic(axon_hypergraph(p, rates), chip) == pytest.approx(_brute_traffic(p, chip, rates))
    with pytest.raises(ToolchainError, match="rates must be"):
        axon_hypergraph(p, {"g0": np.ones(3)})


def test_hypergraph_beats_in_order_and_edge_cut_on_a_local_network(tmp_path):
    t = _small_target(tmp_path, neurons=16, cores_per_chip=4, chips=16)
    p = partition(_local_net(), t, compare=False)   # 4 layers x 8 cores = 32 cores on 8 chips
    q = partition_chips(p, t)
    mc = q.report["multichip"]
    chip = np.asarray(mc["chip_of_core"])
    assert mc["chips_used"] == 8 and np.bincount(chip).max() <= t.cores_per_chip
    assert [c.chip for c in q.placement.cores] == chip.tolist()
    tr = mc["traffic"]
    assert tr["hypergraph"] == pytest.approx(_brute_traffic(q, chip))
    assert tr["inorder"] == pytest.approx(_brute_traffic(q, np.arange(32) // 4))
    # in order, every layer sits on its own 2 chips and every spike crosses; columns of 4 layers cut far less
    assert tr["hypergraph"] <= 0.5 * tr["inorder"]
    assert tr["hypergraph"] <= tr["edgecut"]
    text = format_chip_report(q)
    assert "hypergraph" in text and "inorder" in text and "chips used 8" in text
    # the Program itself is unchanged apart from the chips
    assert all(np.array_equal(p.placement.core_of[g], q.placement.core_of[g]) for g in p.groups)


def test_conv_stack_is_cut_into_columns(tmp_path):
    t = _small_target(tmp_path, neurons=64, cores_per_chip=4, chips=16)  # a core: 4 x-columns of one layer
    r = np.random.default_rng(0)
    groups, syns, prev = [], [], "in"
    for k in range(4):
        groups.append(_group(f"c{k}", (16, 8, 2)))
        syns.append(SynapseGroup(f"k{k}", prev, f"c{k}", Conv((16, 8, 2), (16, 8, 2), r.integers(1, 9, (2, 2, 3, 3)),
                                                              padding=1)))
        prev = f"c{k}"
    p = partition(Program(groups, syns, [InputPort("in", (16, 8, 2))], output=prev), t, compare=False)
    q = partition_chips(p, t)
    tr = q.report["multichip"]["traffic"]
    assert tr["hypergraph"] == pytest.approx(_brute_traffic(q, np.asarray(q.report["multichip"]["chip_of_core"])))
    # in order, layer k fills chip k and every spike crosses; chips of 4-column slabs through all layers only
    # send the spikes of their edge columns
    assert q.report["multichip"]["chips_used"] == 4 and tr["hypergraph"] <= 0.5 * tr["inorder"]


def test_every_method_respects_chip_capacity_and_dense_groups(tmp_path):
    t = _small_target(tmp_path, neurons=8, cores_per_chip=3, chips=20)
    p = partition(int_program((10, 30, 20, 17), storage="dense", seed=0), t, compare=False)
    hg = axon_hypergraph(p)
    n = p.placement.cores_used
    for m in ("hypergraph", "edgecut", "inorder"):
        chip = assign_chips(hg, 3, m)
        assert chip.shape == (n,) and np.bincount(chip).max() <= 3 and chip.max() + 1 == -(-n // 3)
        assert interchip_traffic(hg, chip) == pytest.approx(_brute_traffic(p, chip))
    assert interchip_traffic(hg, assign_chips(hg, 3, "hypergraph")) <= \
        interchip_traffic(hg, assign_chips(hg, 3, "inorder"))
    with pytest.raises(ResourceError, match="need"):
        assign_chips(hg, 3, chips=1)
    with pytest.raises(ValueError, match="unknown chip assignment method"):
        assign_chips(hg, 3, "spectral")


def test_unpartitioned_program_is_refused():
    p = int_program((4, 5), seed=0)
    with pytest.raises(ToolchainError, match="not partitioned"):
        axon_hypergraph(p)
    with pytest.raises(ToolchainError, match="not partitioned"):
        partition_chips(p, load_target("kapoho_point"))
    dense = SynapseGroup("d", "in", "g0", Dense(np.ones((5, 4), np.int16)))
    assert dense.weight.nnz == 20


def test_snnc_chips_with_recorded_rates(tmp_path, capsys):
    from toolchain.cli.main import main
    t = _small_target(tmp_path, neurons=16, cores_per_chip=4, chips=16)
    p = partition(_local_net(n=64, layers=3), t, compare=False)
    p.save(tmp_path / "build")
    x = int_inputs(p, 2, 6, rate=0.5, seed=1)
    np.save(tmp_path / "x.npy", x)
    assert main(["chips", str(tmp_path / "build"), "-t", str(t.source), "--data", str(tmp_path / "x.npy"),
                 "-o", str(tmp_path / "out")]) == 0
    text = capsys.readouterr().out
    q = Program.load(tmp_path / "out")
    mc = q.report["multichip"]
    assert mc["rates"] == "recorded" and "hypergraph" in text and "inorder" in text
    res = simulate(p, x, steps=6, record=True)
    chip = np.asarray(mc["chip_of_core"])
    assert [c.chip for c in q.placement.cores] == chip.tolist()
    assert mc["interchip_spikes_per_step"] == pytest.approx(_brute_traffic(p, chip, rates_from_spikes(res.spikes)))
    assert f"RESULT interchip_spikes_per_step {mc['interchip_spikes_per_step']:.6g}" in text
    assert main(["chips", str(tmp_path / "nonesuch")]) == 1


# ------------------------------------------------------------------------- the compile pipeline on a system target
def test_compile_graph_assigns_chips_on_a_system_target(tmp_path):
    from toolchain.compile import compile_graph
    from toolchain.testing import random_lif_graph
    t = _small_target(tmp_path)
    g = random_lif_graph((20, 48, 40, 10), density=0.3, storage="csr", seed=1)
    p = compile_graph(g, t)
    mc = p.report["multichip"]
    assert p.metadata["pipeline"][-2:] == ["partition", "chips"]
    assert p.placement.cores_used > t.cores_per_chip and p.placement.chips_used == mc["chips_used"] >= 2
    assert [c.chip for c in p.placement.cores] == mc["chip_of_core"]
    assert mc["rates"].startswith("estimate") and mc["method"] == "hypergraph"
    assert mc["traffic"]["hypergraph"] <= mc["traffic"]["inorder"]
    assert mc["interchip_spikes_per_step"] == pytest.approx(_brute_traffic(p, np.asarray(mc["chip_of_core"])))
    assert "chips used" in format_chip_report(p)
    # recorded rates, another method, switched off, and a single-chip target: no chip step
    x = int_inputs(p, 2, 8, seed=2)
    rates = rates_from_spikes(simulate(p, x, record=True).spikes)
    q = compile_graph(g, t, chip_rates=rates, chip_method="inorder")
    assert q.report["multichip"]["rates"] == "recorded" and q.report["multichip"]["method"] == "inorder"
    assert q.metadata["compile_options"]["chip_rates"] == "recorded"
    assert "multichip" not in compile_graph(g, t, chips=False).report
    assert "multichip" not in compile_graph(g, "loihi2").report
    with pytest.raises(ToolchainError, match="chip_method"):
        compile_graph(g, t, chip_method="greedy")


def test_interchip_messages_enter_the_energy_and_latency_estimate(tmp_path):
    import dataclasses as dc
    from toolchain.compile import compile_graph
    from toolchain.passes.multichip import interchip_fanout
    from toolchain.runtime.metrics import energy_latency, workload_program
    from toolchain.testing import random_lif_graph
    t = _small_target(tmp_path)
    p = compile_graph(random_lif_graph((20, 48, 40, 10), density=0.3, storage="csr", seed=1), t)
    x = int_inputs(p, 3, 10, seed=4)
    res = simulate(p, x, record=True)
    rates = rates_from_spikes(res.spikes)
    chip = np.asarray(p.report["multichip"]["chip_of_core"])
    steps = next(iter(res.spikes.values())).shape[1]
    fan = interchip_fanout(p)
    assert sum(float(rates[g] @ fan[g]) for g in fan) == pytest.approx(_brute_traffic(p, chip, rates))
    work = workload_program(p, res, x)
    msgs = work.as_dict()["interchip_messages"]
    assert msgs > 0 and msgs == pytest.approx(_brute_traffic(p, chip, rates) * steps)
    el = energy_latency(work, t, fallback="loihi1")
    base = energy_latency(dc.replace(work, interchip_messages=0.0), t, fallback="loihi1")
    e_msg = 700.0 * 1.7e-12  # link cost x Loihi 1's within-tile spike message energy
    assert el["interchip_link_cost"] == 700.0 and el["interchip_energy_j"] == pytest.approx(msgs * e_msg)
    assert el["energy_j"] == pytest.approx(base["energy_j"] + msgs * e_msg)
    assert el["interchip_latency_s"] is None and "spike_ns" in el["missing"]  # no target publishes it
    timed = energy_latency(work, {"name": "x", "synop_pj": 1.0, "spike_pj": 2.0, "spike_ns": 3.0,
                                  "system": {"interchip_link_cost": 10.0}})
    assert timed["interchip_latency_s"] == pytest.approx(msgs * 10 * 3e-9)
    assert timed["latency_s"] == pytest.approx(msgs * 10 * 3e-9)
    assert timed["interchip_energy_j"] == pytest.approx(msgs * 10 * 2e-12)
    # one chip: no inter-chip messages
    one = compile_graph(random_lif_graph((20, 48, 40, 10), density=0.3, storage="csr", seed=1), "loihi2")
    assert workload_program(one, simulate(one, x, record=True), x).interchip_messages == 0.0
