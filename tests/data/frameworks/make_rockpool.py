"""Generate ``rockpool_lif.nir`` and ``rockpool_lif.npz`` with Rockpool 3.1 (run once; the files are shipped).

Rockpool 3.1 installs with numpy/scipy only, but its NIR export imports ``nirtorch`` and declares ``nir<=1.0.4``;
it runs beside our ``nir==1.0.8`` when installed out of the environment's way:

    .venv/bin/pip install --no-deps --target /tmp/rpsite rockpool==3.1.0
    PYTHONPATH=/tmp/rpsite .venv/bin/python tests/data/frameworks/make_rockpool.py

The network: Linear(8 -> 10) -> LIFTorch(10) -> Linear(10 -> 4) -> LIFTorch(4), dt = 1e-3, tau_mem/tau_syn drawn
per neuron, run by Rockpool itself (float32, its default) on Bernoulli input spikes. The .npz holds ``x`` (batch, time, 8) and
``spikes_1``/``spikes_3`` (Rockpool's output spikes of the two LIF layers) and the versions used.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def main() -> None:
    import torch
    import rockpool
    from rockpool.nn.combinators import Sequential
    from rockpool.nn.modules import LIFTorch, LinearTorch
    from rockpool.nn.modules.torch.nir import to_nir
    import nir
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    dt = 1e-3
    lif1 = LIFTorch(10, tau_mem=0.01 + 0.03 * torch.rand(10, generator=g), tau_syn=0.005 + 0.02 * torch.rand(10, generator=g),
                    dt=dt)
    lif2 = LIFTorch(4, tau_mem=0.01 + 0.03 * torch.rand(4, generator=g), tau_syn=0.005 + 0.02 * torch.rand(4, generator=g),
                    dt=dt)
    lin1, lin2 = LinearTorch((8, 10), has_bias=False), LinearTorch((10, 4), has_bias=False)
    with torch.no_grad():
        lin1.weight.data = 0.04 * torch.randn(8, 10, generator=g)
        lin2.weight.data = 0.015 * torch.randn(10, 4, generator=g)
    net = Sequential(lin1, lif1, lin2, lif2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = to_nir(net)
    nir.write(str(HERE / "rockpool_lif.nir"), graph)
    x = (np.random.default_rng(2).random((3, 300, 8)) < 0.3).astype(np.float32)
    with torch.no_grad():
        h1, _, _ = lin1(torch.from_numpy(x))
        s1, _, _ = lif1(h1)
        h2, _, _ = lin2(s1)
        s2, _, _ = lif2(h2)
    np.savez(HERE / "rockpool_lif.npz", x=x, spikes_1=s1.numpy(), spikes_3=s2.numpy(),
             versions=np.array([f"rockpool {rockpool.__version__}", f"torch {torch.__version__}",
                                f"nir {nir.__version__}"]))
    print("spikes", int(s1.sum()), int(s2.sum()), "nodes", list(graph.nodes))


if __name__ == "__main__":
    main()
