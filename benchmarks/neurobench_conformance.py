"""Our NeuroBench metrics against NeuroBench's own, side by side, on snnTorch networks.

    python benchmarks/neurobench_conformance.py [--quick]

For each network — "mlp" (784-256-256-10 Leaky, 30% of the weights pruned to zero, zero and subtract resets),
"conv" (Conv2d + Synaptic + Linear + Leaky on analog frames: the first layer's operations are MACs) and "rec"
(Linear + RLeaky with its recurrent nn.Linear + Linear + Leaky) — the same model and the same random data
(64 samples, 25 steps; 16 samples, 10 steps with ``--quick``) go through ``neurobench`` 2.3.0's ``Benchmark``
(``SNNTorchModel``, two batches; static metrics Footprint, ConnectionSparsity, ParameterCount; workload
metrics SynapticOperations, ActivationSparsity, MembraneUpdates) and through ours
(:func:`toolchain.runtime.metrics.static_metrics_torch` before any run, as NeuroBench computes its static metrics,
and :func:`toolchain.runtime.metrics.workload_torch`). NeuroBench rounds ConnectionSparsity to 4 decimals; ours is
compared rounded the same way. Every other figure must be equal (relative difference below 1e-12: NeuroBench
averages per batch in floating point).

Prints one row per network and metric (ours, NeuroBench's, equal) and ``RESULT neurobench_equal 1`` when every
figure is equal, else 0.
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from toolchain.runtime import metrics as M  # noqa: E402
from toolchain.textutil import table_lines  # noqa: E402

NAMES = ("Footprint", "ParameterCount", "ConnectionSparsity", "Effective_ACs", "Effective_MACs", "Dense",
         "ActivationSparsity", "MembraneUpdates")


def network(kind: str) -> torch.nn.Module:
    """The snnTorch network ``kind`` (module docstring), seeded, 30% of its connection weights zero."""
    import snntorch as snn
    torch.manual_seed({"mlp": 0, "conv": 1, "rec": 2}[kind])
    if kind == "mlp":
        net = torch.nn.Sequential(torch.nn.Linear(784, 256), snn.Leaky(beta=0.9, init_hidden=True),
                                  torch.nn.Linear(256, 256), snn.Leaky(beta=0.9, init_hidden=True,
                                                                       reset_mechanism="zero"),
                                  torch.nn.Linear(256, 10), snn.Leaky(beta=0.8, init_hidden=True, output=True))
    elif kind == "conv":
        net = torch.nn.Sequential(torch.nn.Conv2d(2, 8, 3, padding=1),
                                  snn.Synaptic(alpha=0.8, beta=0.9, init_hidden=True), torch.nn.Flatten(),
                                  torch.nn.Linear(8 * 16 * 16, 10), snn.Leaky(beta=0.9, init_hidden=True, output=True))
    else:
        net = torch.nn.Sequential(torch.nn.Linear(784, 128), snn.RLeaky(beta=0.9, linear_features=128,
                                                                        init_hidden=True),
                                  torch.nn.Linear(128, 10), snn.Leaky(beta=0.8, init_hidden=True, output=True))
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)):
                m.weight.mul_(3.0 * (torch.rand(m.weight.shape, generator=g) >= 0.3).to(m.weight.dtype))
    return net


def data(kind: str, n: int, steps: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(7)
    if kind == "conv":
        shape = (n, steps, 2, 16, 16)
        return torch.rand(shape, generator=g) * (torch.rand(shape, generator=g) < 0.3)
    return (torch.rand((n, steps, 784), generator=g) < 0.1).to(torch.float32)


def neurobench_figures(net: torch.nn.Module, x: torch.Tensor) -> dict:
    from neurobench.benchmarks import Benchmark
    from neurobench.metrics.static import ConnectionSparsity, Footprint, ParameterCount
    from neurobench.metrics.workload import ActivationSparsity, MembraneUpdates, SynapticOperations
    from neurobench.models import SNNTorchModel
    ds = torch.utils.data.TensorDataset(x, torch.zeros(x.shape[0], dtype=torch.long))
    loader = torch.utils.data.DataLoader(ds, batch_size=x.shape[0] // 2, shuffle=False)
    res = Benchmark(SNNTorchModel(net), loader, [], [],
                    [[Footprint, ConnectionSparsity, ParameterCount],
                     [SynapticOperations, ActivationSparsity, MembraneUpdates]]).run(quiet=True)
    out = {k: float(res[k]) for k in ("Footprint", "ParameterCount", "ConnectionSparsity", "ActivationSparsity",
                                      "MembraneUpdates")}
    out.update({k: float(v) for k, v in res["SynapticOperations"].items()})
    return out


def our_figures(net: torch.nn.Module, x: torch.Tensor, static: dict) -> dict:
    d = M.workload_torch(net, x)[0].as_dict()
    return {"Footprint": static["footprint_bytes"], "ParameterCount": static["parameter_count"],
            "ConnectionSparsity": round(static["connection_sparsity"], 4), "Effective_ACs": d["effective_acs"],
            "Effective_MACs": d["effective_macs"], "Dense": d["dense_synops"],
            "ActivationSparsity": d["activation_sparsity"], "MembraneUpdates": d["membrane_updates"]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="16 samples x 10 steps instead of 64 x 25")
    args = ap.parse_args(argv)
    n, steps = (16, 10) if args.quick else (64, 25)
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    rows, equal = [], True
    for kind in ("mlp", "conv", "rec"):
        net = network(kind)
        x = data(kind, n, steps)
        static = M.static_metrics_torch(net)  # before any run, as NeuroBench's static metrics
        theirs = neurobench_figures(net, x)
        ours = our_figures(net, x, static)
        for k in NAMES:
            a, b = float(ours[k]), float(theirs[k])
            same = a == b or abs(a - b) <= 1e-12 * max(abs(a), abs(b))
            equal &= same
            rows.append((kind, k, f"{a:.10g}", f"{b:.10g}", "yes" if same else "NO"))
    print(f"snnTorch networks, {n} samples x {steps} steps (two batches for NeuroBench); per-sample workload figures")
    print("\n".join(table_lines([("net", "metric", "ours", "neurobench 2.3.0", "equal")] + rows)))
    print(f"RESULT neurobench_equal {int(equal)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
