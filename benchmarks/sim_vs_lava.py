"""Reference integer simulator against Lava 0.10.0 ``fixed_pt``: throughput and bit-exactness.

    python benchmarks/sim_vs_lava.py [--quick] [--steps T] [--lava-samples K] [--batch B]

**Networks** (``toolchain.testing.benchmark_program``, random integer weights, no compiler): "ff", a
784-256-256-10 feed-forward CUBA-LIF network with dense 8-bit mixed-sign weights; "rec", the same with a
recurrent 256x256 synapse group on each hidden layer. Input: random binary spikes, rate 0.2, T steps.

**Timing.** Both simulators get a warm-up run first (imports, BLAS initialisation; for Lava also its process
models' compilation), then every figure is a median over repeats, in wall-clock time (Lava runs its processes
outside the calling process, so CPU time of this process would miss them). Two figures per simulator:

* *steady*: throughput per step, set-up excluded — a long run (T steps) minus a short one (T/5 steps) on the
  same input, ``B · (T - T/5) / (t_T - t_short)`` sample-steps per second;
* *per run*: ``B · T / t_T``, everything a user waits for — for the reference its weight preparation, for Lava
  one network per sample: build, compile, run, read back, stop.

The reference runs the whole batch at once (batch 1: median of 5 runs; batch B: of 3). Lava runs one network per
sample (``toolchain.backends.lava.run_lava``), so its throughput does not depend on the batch: **Lava's figures
at batch B are extrapolated** from K samples measured one by one (per-sample time x B) and the table says so;
at batch 1 they are measured. Speedup = reference throughput / Lava throughput, steady and per run.
Bit-exactness: the output spikes of the K samples on both simulators, and every spike, u and v of every group
of the first sample (a recorded run).

Ends with ``RESULT speedup_b<B>`` and ``RESULT speedup_b1`` (per run, the smaller over the two networks),
``RESULT speedup_steady_b<B>`` and ``RESULT speedup_steady_b1`` (steady), ``RESULT lava_steady_steps_per_s`` (Lava's
steady throughput of one network, the smaller over the two networks) and ``RESULT bit_exact <0|1>``.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from toolchain.backends.lava import run_lava  # noqa: E402
from toolchain.sim.reference import simulate  # noqa: E402
from toolchain.testing import benchmark_program, int_inputs  # noqa: E402
from toolchain.textutil import table_lines  # noqa: E402


def _wall(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _long_short(fn, steps: int, short: int, repeats: int):
    """Median wall times of ``fn(steps)`` and ``fn(short)``, measured alternately."""
    t_long, t_short = [], []
    for _ in range(repeats):
        t_short.append(_wall(lambda: fn(short)))
        t_long.append(_wall(lambda: fn(steps)))
    return float(np.median(t_long)), float(np.median(t_short))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer steps and Lava samples (a few minutes)")
    ap.add_argument("--steps", type=int, default=None, help="time steps per sample (default 100, quick 50)")
    ap.add_argument("--lava-samples", type=int, default=None,
                    help="samples run on Lava per network (default 4, quick 2)")
    ap.add_argument("--batch", type=int, default=256)
    args = ap.parse_args(argv)
    steps = args.steps or (50 if args.quick else 100)
    short = max(1, steps // 5)
    k = args.lava_samples or (2 if args.quick else 4)
    B = args.batch

    rows = []
    per_run = {1: [], B: []}
    steady = {1: [], B: []}
    lava_steady = []
    exact = True
    for kind in ("ff", "rec"):
        prog = benchmark_program(kind)
        x = int_inputs(prog, max(B, k), steps, rate=0.2, seed=1).astype(np.uint8)
        # warm-ups: imports, BLAS and the Lava runtime's process models
        simulate(prog, x[:1], steps=2)
        run_lava(prog, x[:1], steps=2)
        ref_t = {}
        for b, reps in ((1, 5), (B, 3)):
            ref_t[b] = _long_short(lambda T: simulate(prog, x[:b, :T]), steps, short, reps)
        lav_long, lav_short = [], []
        outs = []
        for i in range(k):  # one network per sample, as run_lava does for a batch
            lav_short.append(_wall(lambda: run_lava(prog, x[i:i + 1], steps=short)))
            t0 = time.perf_counter()
            outs.append(run_lava(prog, x[i:i + 1]).output)
            lav_long.append(time.perf_counter() - t0)
        t_lav, t_lav_s = float(np.median(lav_long)), float(np.median(lav_short))
        ok = bool(np.array_equal(simulate(prog, x[:k]).output, np.concatenate(outs)))
        mm = simulate(prog, x[:1], record=True).first_mismatch(run_lava(prog, x[:1], record=True))
        if mm is not None:
            print(f"{kind}: first mismatch: {mm}")
        ok = ok and mm is None
        exact = exact and ok

        lav_run = steps / t_lav                                   # sample-steps/s of one network, with build
        lav_steady = (steps - short) / max(t_lav - t_lav_s, 1e-9)  # per step, build excluded
        lava_steady.append(lav_steady)
        for b in (1, B):
            t_long, t_short = ref_t[b]
            ref_run = b * steps / t_long
            ref_steady = b * (steps - short) / max(t_long - t_short, 1e-9)
            per_run[b].append(ref_run / lav_run)
            steady[b].append(ref_steady / lav_steady)
            rows.append((kind, str(b), f"{ref_steady:,.0f}", f"{ref_run:,.0f}", f"{lav_steady:,.0f}",
                         f"{lav_run:,.0f}", "measured" if b == 1 else f"extrapolated from {k} samples",
                         f"{ref_steady / lav_steady:,.1f}x", f"{ref_run / lav_run:,.1f}x", "yes" if ok else "NO"))

    head = ("network", "batch", "ref steady/s", "ref per run/s", "Lava steady/s", "Lava per run/s",
            "Lava at this batch", "speedup steady", "speedup per run", "bit-exact")
    print(f"784-256-256-10, T = {steps} steps (short run {short}), input rate 0.2; sample-steps per second of wall "
          f"time, medians; steady = per step, set-up excluded (long minus short run); per run = with set-up "
          f"(Lava: network build + compile + run + stop per sample); both warmed up first")
    print("\n".join(table_lines([head] + rows)))
    print(f"RESULT speedup_b{B} {min(per_run[B]):.1f}")
    print(f"RESULT speedup_b1 {min(per_run[1]):.1f}")
    print(f"RESULT speedup_steady_b{B} {min(steady[B]):.1f}")
    print(f"RESULT speedup_steady_b1 {min(steady[1]):.1f}")
    print(f"RESULT lava_steady_steps_per_s {min(lava_steady):.0f}")
    print(f"RESULT bit_exact {int(exact)}")
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
