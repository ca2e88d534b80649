"""Inference metrics (NeuroBench definitions) on tiny networks computed by hand, torch and compiled Program."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from toolchain.errors import ToolchainError
from toolchain.ir.storage import Csr, Dense
from toolchain.program import InputPort, NeuronGroup, Program, SynapseGroup
from toolchain.runtime import metrics as M
from toolchain.runtime.cutoff import fixed_policy

W1 = [[1.0, 0.0, 2.0], [0.0, 0.0, 3.0]]   # non-zero fan-out per input: 1, 0, 2
W2 = [[1.0, 1.0], [0.0, 1.0]]             # non-zero fan-out per input: 1, 2
X = np.array([[[1, 1, 0], [0, 0, 1]]], dtype=np.float32)   # one sample, two steps


def _tiny_net():
    from toolchain.nn import LI, LIF, SpikingNet

    l1 = torch.nn.Linear(3, 2, bias=False)
    l2 = torch.nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        l1.weight.copy_(torch.tensor(W1))
        l2.weight.copy_(torch.tensor(W2))
    return SpikingNet(l1, LIF(2, alpha=0.9, threshold=0.5), l2, LI(2))


def test_static_metrics_torch_by_hand():
    st = M.static_metrics_torch(_tiny_net())
    # 10 float32 weights + buffers: LIF alpha (2), threshold (2), LI alpha (2) -> 16 floats = 64 bytes
    assert st["footprint_bytes"] == 64
    assert st["parameter_count"] == 10
    assert st["connection_sparsity"] == pytest.approx(4 / 10)


def test_workload_torch_by_hand():
    # Layer 1: step 0 inputs 1,2 (fan-out 1 + 0), step 1 input 3 (fan-out 2) -> 3 ACs; dense 2 x 6 = 12.
    # LIF (θ = 0.5, α = 0.9, subtract): I = [1, 0] -> s = [1, 0]; I = [2, 3], U = 0.9·[0.5, 0] + I -> s = [1, 1].
    # Layer 2: step 0 input 1 (fan-out 1), step 1 inputs 1, 2 (1 + 2) -> 4 ACs; dense 2 x 4 = 8.
    work, res = M.workload_torch(_tiny_net(), X)
    d = work.as_dict()
    assert d["effective_acs"] == 7 and d["effective_macs"] == 0
    assert d["dense_synops"] == 20
    assert d["synaptic_events"] == 3 * 2 + 3 * 2
    assert d["activation_sparsity"] == pytest.approx(0.25)
    assert d["neuron_updates"] == 8 and d["spikes"] == 3
    assert d["per_layer"]["0"]["effective"] == 3 and d["per_layer"]["2"]["effective"] == 4
    # Analog input makes the first layer's operations MACs.
    work, _ = M.workload_torch(_tiny_net(), X * 0.5)
    d = work.as_dict()
    assert d["effective_macs"] == 3 and d["per_layer"]["0"]["spiking_input"] is False


def test_workload_torch_counts_only_steps_before_exit():
    # A one-step policy: every sample leaves after step 1 -> only step 0's work: 1 + 1 ACs, 4 neuron updates.
    x = np.concatenate([X, X])
    work, res = M.workload_torch(_tiny_net(), x, policy=fixed_policy(1))
    d = work.as_dict()
    assert d["effective_acs"] == 2 and d["neuron_updates"] == 4 and d["mean_steps"] == 1
    assert np.all(res["steps"] == 1)


def _tiny_program():
    zeros = np.zeros(2, int)
    h = NeuronGroup("h", (2,), du=zeros, dv=zeros, vth=np.full(2, 10), bias_mant=zeros, bias_exp=zeros)
    o = NeuronGroup("o", (2,), du=zeros, dv=zeros, vth=np.full(2, 131071), bias_mant=zeros, bias_exp=zeros,
                    spiking=False)
    syn = [SynapseGroup("in_h", "in", "h", Dense(np.array(W1, dtype=np.int16))),
           SynapseGroup("h_o", "h", "o", Csr.from_dense(np.array(W2, dtype=np.int16)))]
    return Program({"h": h, "o": o}, syn, [InputPort("in", (3,))], output="o")


def test_static_metrics_program_by_hand():
    st = M.static_metrics_program(_tiny_program())
    # weights: 6 x 8 bits (dense) + 3 x 8 bits (csr) + 3 x 1 index bit; 4 neurons x 57 parameter bits
    assert st["footprint_bytes"] == int(np.ceil((48 + 24 + 3 + 4 * 57) / 8))
    assert st["state_bytes"] == 4 * 6
    assert st["connection_sparsity"] == pytest.approx(4 / 10)
    assert st["neurons"] == 4 and st["synapses"] == 9


def test_workload_program_by_hand_with_exit():
    prog = _tiny_program()
    x = np.concatenate([X, X]).astype(np.int32)
    spikes = {"h": np.array([[[1, 0], [1, 1]], [[1, 0], [1, 1]]])}
    full = M.workload_program(prog, spikes, x).as_dict()
    # per sample: layer 1 3 ACs, layer 2 4 ACs; events 3·2 + (1 + 2·2)... stored fan-out of the CSR = [1, 2]
    assert full["effective_acs"] == 7 and full["synaptic_events"] == 6 + (2 * 1 + 1 * 2)
    assert full["dense_synops"] == 20 and full["neuron_updates"] == 8
    assert full["activation_sparsity"] == pytest.approx(0.25)
    # Sample 0 exits after step 1: it contributes inputs [1, 1, 0] and spikes [1, 0] only.
    ex = M.workload_program(prog, spikes, x, steps=[1, 2])
    d = ex.as_dict()
    assert d["effective_acs"] == pytest.approx((1 + 3 + 1 + 4) / 2)
    assert d["dense_synops"] == pytest.approx(3 * 10 / 2)
    assert d["neuron_updates"] == pytest.approx(4 * 3 / 2)
    assert d["mean_steps"] == 1.5
    assert d["activation_sparsity"] == pytest.approx(1 - 4 / 6)


def test_energy_latency_from_target_figures():
    prog = _tiny_program()
    x = X.astype(np.int32)
    work = M.workload_program(prog, {"h": np.array([[[1, 0], [1, 1]]])}, x)
    # The target files' layout: an [energy] table in pJ and ns.
    tgt = {"target": {"name": "toy"}, "energy": {"synop_pj": 2.0, "neuron_update_pj": 1.0, "synop_ns": 3.0}}
    el = M.energy_latency(work, tgt)
    assert el["energy_j"] == pytest.approx(10 * 2e-12 + 8 * 1e-12)  # 10 synaptic events, 8 updates
    assert el["latency_s"] == pytest.approx(10 * 3e-9)
    assert "spike_within_tile_pj" in el["missing"] and el["sources"]["synop_pj"] == "toy"
    with pytest.raises(ToolchainError, match="energy.synop_pj"):
        M.energy_latency(work, {"name": "bare"})
    el = M.energy_latency(work, {"name": "bare"}, fallback=tgt)
    assert el["energy_j"] == pytest.approx(28e-12) and el["sources"]["synop_pj"] == "toy"


def test_workload_torch_conv_and_sumpool_by_hand():
    from toolchain.nn import LIF, SpikingNet, SumPool2d

    conv = torch.nn.Conv2d(1, 1, 2, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]]))
    net = SpikingNet(conv, LIF((1, 2, 2), threshold=0.5), SumPool2d(2), torch.nn.Flatten(), torch.nn.Linear(1, 2),
                     LIF(2))
    x = torch.eye(3).reshape(1, 1, 1, 3, 3)  # one sample, one step, the diagonal of a 3x3 image
    work, _ = M.workload_torch(net, x)
    d = work.as_dict()["per_layer"]
    # conv: output (0,0) meets x00, x11 and (1,1) meets x11, x22 through the kernel's diagonal -> 4 effective;
    # dense 4 positions x 4 weights; events: every kernel entry over a non-zero input: 2 + 1 + 1 + 2 = 6.
    assert (d["0"]["effective"], d["0"]["dense"], d["0"]["events"]) == (4, 16, 6)
    # LIF spikes where the conv output 2 > 0.5: positions (0,0) and (1,1); the 2x2 sum pool adds both -> 2 ops
    assert (d["2"]["effective"], d["2"]["dense"]) == (2, 4)
