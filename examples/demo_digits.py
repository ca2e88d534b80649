"""The demo's pipeline written out with the library calls, step by step (``snnc demo`` runs the same, with
reporting): train a spiking MLP on digits with STOP-WTL, export NIR, compile for Loihi 2, check the integer
network against the reference simulator, PyTorch's integer mode and Lava.

    .venv/bin/python examples/demo_digits.py [--epochs 20] [--out out/example] [--quick]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from torch import nn

from toolchain import nir_io
from toolchain.backends.lava import run_lava
from toolchain.compile import compile_graph, format_report
from toolchain.data import load_digits_spikes
from toolchain.nn import LI, LIF, IntegerNet, SpikingNet, to_graph
from toolchain.sim.reference import simulate
from toolchain.train import TrainConfig, evaluate, train_stop


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--out", default="out/example")
    ap.add_argument("--quick", action="store_true", help="2 epochs: a smoke run of every step (low accuracy)")
    args = ap.parse_args()
    if args.epochs < 1:
        ap.error("--epochs must be at least 1")
    if args.quick:
        args.epochs = 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    # data: digits as 16-step deterministic spike trains (a grey level v fires v times)
    data = load_digits_spikes(steps=16)

    # model: the STOP neuron (soft reset) with learnable thresholds and leaks, an LI readout
    torch.manual_seed(0)
    model = SpikingNet(nn.Linear(64, 128), LIF(128, learn_threshold=True, learn_leak=True, per_neuron=False),
                       nn.Linear(128, 10), LI(10, learn_leak=True, per_neuron=False))

    # online training: memory does not grow with the number of steps; loss and prediction from step 4 on
    start = 4
    history = train_stop(model, data, TrainConfig(epochs=args.epochs, lr=3e-3, loss_start=start), variant="WTL")
    history.plot(str(out / "training_curve.png"))
    print(f"float test accuracy {100 * evaluate(model, data.x_test, data.y_test, loss_start=start):.2f}%")

    # NIR file -> IR -> compiled Program for Loihi 2
    nir_io.export(to_graph(model, dt=1e-3, input_shape=64), out / "digits.nir")
    program = compile_graph(nir_io.load(out / "digits.nir"), "loihi2")
    print(format_report(program))

    # integer runs: the output lags by one step per synapse layer, so run T + latency steps
    latency = int(program.metadata["output_latency_steps"])
    x = data.x_test.astype(np.int64)
    steps = x.shape[1] + latency
    ref = simulate(program, x, steps=steps, record=True)
    pred = ref.output[:, latency + start:].astype(np.int64).sum(1).argmax(-1)
    print(f"integer test accuracy {100 * (pred == data.y_test).mean():.2f}%")
    print("IntegerNet == reference:", ref.first_mismatch(IntegerNet(program).run(x, steps, record=True)) is None)
    sub = simulate(program, x[:3], steps=steps, record=True)
    print("Lava fixed_pt == reference (3 samples):", sub.first_mismatch(run_lava(program, x[:3], steps, True)) is None)


if __name__ == "__main__":
    main()
