"""Generate ``sinabs_net.nir`` and ``sinabs_net.npz`` with Sinabs 3.1.3 (run once; the files are shipped).

Sinabs 3.1.3 declares ``nir<=1.0.4`` and its exporter calls ``nirtorch.extract_nir_graph``, which nirtorch 2 no
longer has, so it cannot live in our environment (``nir==1.0.8``, ``nirtorch`` 2.x). It runs beside it when its
own copies of nir and nirtorch are installed out of the environment's way and put first on ``sys.path`` (torch and
numpy come from our venv):

    .venv/bin/pip install --no-deps --target /tmp/sinabs_site sinabs==3.1.3 nir==1.0.4 "nirtorch<2" pbr
    PYTHONPATH=/tmp/sinabs_site .venv/bin/python tests/data/frameworks/make_sinabs.py [--out DIR]

(``tests/test_fidelity_frameworks.py::test_sinabs_generator_rebuilds_the_shipped_files``, marked slow, runs this
script again when such a folder exists — ``TOOLCHAIN_SINABS_SITE``, default ``/tmp/sinabs_site`` — and compares
its output with the shipped files.)

The network, float32 (Sinabs' default), Sinabs' default layer options: Linear(8 -> 12, bias) -> LIF(12, tau_mem 4..20 steps per
neuron, norm_input=True) -> Linear(12 -> 6) -> IAF(6) -> Linear(6 -> 3) -> ExpLeak(3, tau_mem 5..15 steps,
norm_input=False), exported with ``sinabs.to_nir`` and run by Sinabs itself on Bernoulli input spikes. Sinabs'
default spike function is ``MultiSpike``; the weights are small enough that no neuron spikes twice in a step (the
.npz records the largest count). The .npz holds ``x`` (batch, time, 8), Sinabs' outputs ``out_lif``, ``out_iaf``
(spikes) and ``out_leak`` (the ExpLeak voltage) and the versions used.
"""
from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def main(argv: list = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE, help="folder for sinabs_net.nir/.npz (default: here)")
    args = ap.parse_args(argv)
    import nir
    import sinabs
    import sinabs.layers as sl
    import torch
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(4)
    f64 = torch.float64  # parameters drawn in float64, the network runs in float32 (Sinabs' spikes are float32)
    batch, steps = 3, 300
    lin1, lin2, lin3 = (torch.nn.Linear(8, 12).double(), torch.nn.Linear(12, 6, bias=False).double(),
                        torch.nn.Linear(6, 3, bias=False).double())
    with torch.no_grad():
        lin1.weight.copy_(0.6 * torch.randn(12, 8, generator=g, dtype=f64))
        lin1.bias.copy_(0.1 + 0.05 * torch.randn(12, generator=g, dtype=f64))
        lin2.weight.copy_(0.4 * torch.randn(6, 12, generator=g, dtype=f64))
        lin3.weight.copy_(0.5 * torch.randn(3, 6, generator=g, dtype=f64))
    lif = sl.LIF(tau_mem=8.0 + 16.0 * torch.rand(12, generator=g, dtype=f64), spike_threshold=0.4 + 0.2 * torch.rand(12, generator=g, dtype=f64))
    iaf = sl.IAF(spike_threshold=torch.tensor(0.6, dtype=f64))
    leak = sl.ExpLeak(tau_mem=5.0 + 10.0 * torch.rand(3, generator=g, dtype=f64))
    net = torch.nn.Sequential(lin1, lif, lin2, iaf, lin3, leak).float()
    x = (np.random.default_rng(2).random((batch, steps, 8)) < 0.3).astype(np.float32)
    with torch.no_grad():
        outs = {}
        h = torch.from_numpy(x)
        for name, m in (("lin1", lin1), ("lif", lif), ("lin2", lin2), ("iaf", iaf), ("lin3", lin3), ("leak", leak)):
            h = m(h)
            outs[name] = h.numpy().copy()
        for m in (lif, iaf, leak):
            m.reset_states()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            graph = sinabs.to_nir(net, torch.zeros(1, 1, 8))  # (batch, time, features), as Sinabs layers take it
    args.out.mkdir(parents=True, exist_ok=True)
    nir.write(str(args.out / "sinabs_net.nir"), graph)
    most = max(float(outs["lif"].max()), float(outs["iaf"].max()))
    np.savez(args.out / "sinabs_net.npz", x=x, out_lif=outs["lif"], out_iaf=outs["iaf"], out_leak=outs["leak"],
             max_spikes_per_step=np.array(most),
             versions=np.array([f"sinabs {sinabs.__version__}", f"torch {torch.__version__}",
                                f"nir {nir.__version__}"]))
    print("spikes", int(outs["lif"].sum()), int(outs["iaf"].sum()), "max per step", most, "nodes",
          sorted(graph.nodes))


if __name__ == "__main__":
    main()
