"""Data-parallel training on CPU: 1 process against 2 gloo processes on the same global batches.

    python benchmarks/ddp.py [--quick]

Trains the digits MLP (``Linear(64, H) -> LIF(H) -> Linear(H, 10) -> LI(10)``, BPTT, and STOP-WTL) once in one
process and once in 2 processes started by :func:`toolchain.train.distributed.spawn_local` (what ``torchrun
--nproc-per-node=2`` does; gloo, 1 torch thread per process), with the same seed and global batch. Prints the
largest weight difference, the training seconds (inside the processes, imports excluded) and the throughput
(training samples per second, in all and per process). ``RESULT ddp_equal 1`` when every parameter of both
trainers agrees to float tolerance (rtol 1e-5, atol 1e-6); ``RESULT ddp_samples_per_s_1proc`` and
``..._2proc`` are the BPTT throughputs. This machine has 2 cores shared with other work, so the speed-up is
indicative only.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from toolchain.data import load_digits_spikes  # noqa: E402
from toolchain.nn import LI, LIF, SpikingNet  # noqa: E402
from toolchain.textutil import table_lines  # noqa: E402
from toolchain.train import TrainConfig, train_bptt, train_stop  # noqa: E402
from toolchain.train.distributed import spawn_local  # noqa: E402


def _model(hidden: int, seed: int = 0) -> SpikingNet:
    torch.manual_seed(seed)
    return SpikingNet(nn.Linear(64, hidden), LIF(hidden, alpha=0.9, learn_threshold=True, learn_leak=True,
                                                 per_neuron=False), nn.Linear(hidden, 10), LI(10, alpha=0.9))


def _worker(rank: int, kind: str, hidden: int, epochs: int, train: int, batch: int, out: str) -> None:
    data = load_digits_spikes(steps=16).subset(train, 100)
    model = _model(hidden)
    cfg = TrainConfig(epochs=epochs, batch_size=batch, lr=5e-3, seed=1, progress=False)
    t0 = time.perf_counter()
    if kind == "bptt":
        train_bptt(model, data, cfg)
    else:
        train_stop(model, data, cfg, variant="WTL")
    sec = time.perf_counter() - t0
    torch.save({"state": model.state_dict(), "seconds": sec, "samples": epochs * train}, f"{out}/{kind}_{rank}.pt")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small run (about 1 minute)")
    args = ap.parse_args(argv)
    hidden, epochs, train, batch = (64, 2, 400, 32) if args.quick else (128, 5, 1347, 64)
    rows = [("trainer", "processes", "train s", "samples/s", "samples/s per process", "max |dw| vs 1 process")]
    equal = True
    tput = {}
    with tempfile.TemporaryDirectory() as d1, tempfile.TemporaryDirectory() as d2:
        for kind in ("bptt", "stop"):
            spawn_local(_worker, 1, args=(kind, hidden, epochs, train, batch, d1))
            spawn_local(_worker, 2, args=(kind, hidden, epochs, train, batch, d2))
            one = torch.load(f"{d1}/{kind}_0.pt")
            for world, d in ((1, d1), (2, d2)):
                r0 = torch.load(f"{d}/{kind}_0.pt")
                diff = 0.0
                for k, v in one["state"].items():
                    for r in range(world):
                        w = torch.load(f"{d}/{kind}_{r}.pt")["state"][k]
                        diff = max(diff, float((w - v).abs().max()))
                        equal &= bool(torch.allclose(w, v, rtol=1e-5, atol=1e-6))
                sps = r0["samples"] / r0["seconds"]
                tput[(kind, world)] = sps
                rows.append((kind, str(world), f"{r0['seconds']:.2f}", f"{sps:.0f}", f"{sps / world:.0f}",
                             f"{diff:.2e}"))
    print(f"digits MLP, hidden {hidden}, {epochs} epochs of {train} samples, global batch {batch}, gloo on CPU")
    print("\n".join(table_lines(rows)))
    print(f"RESULT ddp_equal {int(equal)}")
    print(f"RESULT ddp_samples_per_s_1proc {tput[('bptt', 1)]:.1f}")
    print(f"RESULT ddp_samples_per_s_2proc {tput[('bptt', 2)]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
