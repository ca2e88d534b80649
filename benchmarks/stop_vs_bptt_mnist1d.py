"""MNIST-1D as a 40-step sequence: STOP (W and WTL) against BPTT on the same spiking network, side by side.

    python benchmarks/stop_vs_bptt_mnist1d.py [--quick] [--epochs N] [--hidden H] [--seed S]

Data: MNIST-1D generated locally with the package's default arguments (4000 train / 1000 test), one input value
per step for 40 steps. Network: Linear(1, H) -> LIF -> Linear(H, H) -> LIF -> Linear(H, 10) -> LI readout, soft
reset, layer-shared leaks; thresholds and leaks learnable (trained by STOP-WTL and BPTT; fixed for STOP-W).
Same initial weights, seed, Adam, cosine schedule and epochs for every method. BPTT is run with two losses: its
natural time-averaged readout (``mean``) and STOP's per-step objective (``per_step``), which isolates the effect
of cutting the temporal gradient paths. Prints a table and ``RESULT <method>_test_acc <x>`` lines.
``--quick`` trains on 1000 samples for 3 epochs (a smoke run; figures are not converged).
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import List


def build(hidden: int, learn: bool, seed: int):
    import torch
    from torch import nn

    from toolchain.nn import LI, LIF, SpikingNet

    torch.manual_seed(seed)

    def lif(n: int) -> LIF:
        return LIF(n, alpha=0.9, threshold=1.0, learn_threshold=learn, learn_leak=learn, per_neuron=False)

    return SpikingNet(nn.Linear(1, hidden), lif(hidden), nn.Linear(hidden, hidden), lif(hidden),
                      nn.Linear(hidden, 10), LI(10, alpha=0.95, learn_leak=learn, per_neuron=False))


def main(argv: List[str] | None = None) -> int:
    import torch

    from toolchain.data import load_mnist1d
    from toolchain.train import TrainConfig, train_bptt, train_stop

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--methods", nargs="+", default=["stop-W", "stop-WTL", "bptt-mean", "bptt-per_step"])
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    data = load_mnist1d()
    epochs = args.epochs or (3 if args.quick else 30)
    if args.quick:
        data = data.subset(1000, 500)
    print(f"MNIST-1D sequence: {len(data.y_train)} train / {len(data.y_test)} test, T={data.steps}, "
          f"hidden {args.hidden}, {epochs} epochs, seed {args.seed}")
    rows = []
    for method in args.methods:
        cfg = TrainConfig(epochs=epochs, batch_size=64, lr=args.lr, seed=args.seed,
                          progress=sys.stderr.isatty() and not args.quick)
        t0 = time.perf_counter()
        if method.startswith("stop-"):
            variant = method.split("-")[1]
            model = build(args.hidden, "T" in variant or "L" in variant, args.seed)
            hist = train_stop(model, data, cfg, variant)
        else:
            model = build(args.hidden, True, args.seed)
            hist = train_bptt(model, data, cfg, loss=method.split("-", 1)[1])
        rows.append((method, hist.test_acc[-1], max(hist.test_acc), hist.train_acc[-1], time.perf_counter() - t0))
    print(f"{'method':<15} {'test acc':>9} {'best test':>10} {'train acc':>10} {'seconds':>8}")
    for method, acc, best, tr, sec in rows:
        print(f"{method:<15} {100 * acc:>8.2f}% {100 * best:>9.2f}% {100 * tr:>9.2f}% {sec:>8.0f}")
    for method, acc, *_ in rows:
        print(f"RESULT {method.replace('-', '_')}_test_acc {acc:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
