"""Our NeuroBench metrics (toolchain.runtime.metrics) equal NeuroBench's own (``neurobench`` 2.3.0) on the same
snnTorch models and data: footprint, parameter count, connection sparsity, synaptic operations (effective ACs,
effective MACs, dense), activation sparsity and membrane updates."""
from __future__ import annotations

import numpy as np
import pytest
import torch

neurobench = pytest.importorskip("neurobench")
snn = pytest.importorskip("snntorch")

from neurobench.benchmarks import Benchmark  # noqa: E402
from neurobench.metrics.static import ConnectionSparsity, Footprint, ParameterCount  # noqa: E402
from neurobench.metrics.workload import ActivationSparsity, MembraneUpdates, SynapticOperations  # noqa: E402
from neurobench.models import SNNTorchModel  # noqa: E402

from toolchain.runtime import metrics as M  # noqa: E402

torch.set_num_threads(1)


def _prune(net: torch.nn.Module, fraction: float, seed: int) -> None:
    """Zero a random ``fraction`` of every connection weight (so that connection sparsity and the effective
    operations are not trivial)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)):
                m.weight.mul_((torch.rand(m.weight.shape, generator=g) >= fraction).to(m.weight.dtype))


def _net(kind: str) -> torch.nn.Module:
    torch.manual_seed({"ff": 0, "conv": 1, "rec": 2}[kind])
    if kind == "ff":  # Leaky neurons, one of them with zero reset
        net = torch.nn.Sequential(torch.nn.Linear(24, 32), snn.Leaky(beta=0.9, init_hidden=True),
                                  torch.nn.Linear(32, 16, bias=False),
                                  snn.Leaky(beta=0.8, init_hidden=True, reset_mechanism="zero"),
                                  torch.nn.Linear(16, 5), snn.Leaky(beta=0.7, init_hidden=True, output=True))
    elif kind == "conv":  # analog input frames (MACs in the first layer), Synaptic neurons
        net = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3, padding=1), snn.Synaptic(alpha=0.8, beta=0.9,
                                                                                    init_hidden=True),
                                  torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 5),
                                  snn.Leaky(beta=0.9, init_hidden=True, output=True))
    else:  # a recurrent layer: snnTorch's RLeaky holds its recurrent nn.Linear
        net = torch.nn.Sequential(torch.nn.Linear(24, 20),
                                  snn.RLeaky(beta=0.9, linear_features=20, init_hidden=True),
                                  torch.nn.Linear(20, 5), snn.Leaky(beta=0.8, init_hidden=True, output=True))
    _prune(net, 0.3, seed=3)
    with torch.no_grad():  # stronger weights: every layer spikes on the test data
        for m in net.modules():
            if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)):
                m.weight.mul_(3.0)
    return net


def _data(kind: str, n: int = 8, steps: int = 12) -> torch.Tensor:
    g = torch.Generator().manual_seed(7)
    if kind == "conv":
        return torch.rand((n, steps, 2, 6, 6), generator=g) * (torch.rand((n, steps, 2, 6, 6), generator=g) < 0.5)
    return (torch.rand((n, steps, 24), generator=g) < 0.3).to(torch.float32)


def _neurobench(net: torch.nn.Module, x: torch.Tensor) -> dict:
    data = torch.utils.data.TensorDataset(x, torch.zeros(x.shape[0], dtype=torch.long))
    loader = torch.utils.data.DataLoader(data, batch_size=x.shape[0] // 2, shuffle=False)  # two batches
    bench = Benchmark(SNNTorchModel(net), loader, [], [],
                      [[Footprint, ConnectionSparsity, ParameterCount],
                       [SynapticOperations, ActivationSparsity, MembraneUpdates]])
    return bench.run(quiet=True)


@pytest.mark.parametrize("kind", ["ff", "conv", "rec"])
def test_our_metrics_equal_neurobench(kind: str) -> None:
    net = _net(kind)
    x = _data(kind)
    st = M.static_metrics_torch(net)  # as NeuroBench's static metrics, before any run (snnTorch keeps its state
    nb = _neurobench(net, x)          # in buffers, whose size then depends on the last batch)
    work, res = M.workload_torch(net, x)
    d = work.as_dict()
    ours = {"Footprint": st["footprint_bytes"], "ParameterCount": st["parameter_count"],
            "ConnectionSparsity": round(st["connection_sparsity"], 4),  # NeuroBench rounds to 4 decimals
            "Effective_ACs": d["effective_acs"], "Effective_MACs": d["effective_macs"], "Dense": d["dense_synops"],
            "ActivationSparsity": d["activation_sparsity"], "MembraneUpdates": d["membrane_updates"]}
    theirs = {"Footprint": nb["Footprint"], "ParameterCount": nb["ParameterCount"],
              "ConnectionSparsity": nb["ConnectionSparsity"], **{k: float(v) for k, v in
                                                                  nb["SynapticOperations"].items()},
              "ActivationSparsity": nb["ActivationSparsity"], "MembraneUpdates": nb["MembraneUpdates"]}
    for k, v in ours.items():
        assert v == pytest.approx(theirs[k], rel=1e-12, abs=0), (k, v, theirs[k])
    # the figures are not trivial: sparse weights, spikes in every layer, both kinds of operations where due
    assert 0.2 < ours["ConnectionSparsity"] < 0.4 and 0.0 < ours["ActivationSparsity"] < 1.0
    assert ours["Effective_ACs"] > 0 and ours["Dense"] > ours["Effective_ACs"] + ours["Effective_MACs"]
    assert (ours["Effective_MACs"] > 0) == (kind == "conv")
    assert 0 < ours["MembraneUpdates"] <= work.neuron_updates / work.samples
    if kind == "ff":  # some membranes stay unchanged in a step (zero reset after a spike, no input)
        assert ours["MembraneUpdates"] < work.neuron_updates / work.samples
    assert res["outputs"].shape == (8, 12, 5)


def test_neurobench_names_cover_our_keys() -> None:
    """Every NeuroBench-named key exists in our metric dictionaries (static or workload)."""
    st = M.static_metrics_torch(_net("ff"))
    d = M.workload_torch(_net("ff"), _data("ff"))[0].as_dict()
    for key in M.NEUROBENCH_NAMES:
        assert key in st or key in d, key


def test_program_membrane_updates_from_the_record() -> None:
    """A compiled Program's MembraneUpdates counted on the simulator's v record: every neuron at step 0, then
    those whose v changed, each sample only up to its exit step (an early-exit record gives what the full record
    cut at the same steps gives)."""
    from toolchain.sim.reference import simulate
    from toolchain.testing import int_inputs, int_program
    p = int_program((16, 12, 6), seed=4, recurrent=True)
    x = int_inputs(p, 5, 10, rate=0.3, seed=4)
    full = simulate(p, x, record=True)
    want = 0
    for g in p.groups:
        v = full.v[g].astype(np.int64)
        want += v.shape[0] * v.shape[2] + int(np.count_nonzero(np.diff(v, axis=1)))
    d = M.workload_program(p, full, x).as_dict()
    assert d["membrane_updates"] == pytest.approx(want / 5) and 0 < want < d["neuron_updates"] * 5

    def exit_fn(t, acc):
        return np.arange(acc.shape[0]) == 0 if t == 3 else np.zeros(acc.shape[0], bool)

    ex = simulate(p, x, record=True, early_exit=exit_fn)
    cut = M.workload_program(p, full, x, steps=ex.steps_run).as_dict()
    assert M.workload_program(p, ex, x).as_dict()["membrane_updates"] == cut["membrane_updates"] < d["membrane_updates"]
    assert M.workload_program(p, full.spikes, x).as_dict()["membrane_updates"] is None  # no v record: not measured


def test_program_graded_inputs_count_as_macs() -> None:
    """A Program layer fed graded payloads performs MACs, one fed spikes ACs (NeuroBench's split)."""
    from toolchain.sim.reference import simulate
    from toolchain.testing import int_inputs, int_program
    p = int_program((16, 8, 4), seed=2, graded_bits=8)
    x = int_inputs(p, 3, 6, seed=2)
    d = M.workload_program(p, simulate(p, x, record=True), x).as_dict()
    first, second = (d["per_layer"][s.name]["effective"] for s in p.synapses)
    assert d["effective_macs"] == pytest.approx(first) and d["effective_acs"] == pytest.approx(second)
    assert first > 0 and second > 0
