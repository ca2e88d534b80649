"""Reference integer simulator against Lava 0.10.0 ``fixed_pt``: throughput and bit-exactness.

    python benchmarks/sim_vs_lava.py [--quick] [--steps T] [--lava-samples K]

**Networks** (``toolchain.testing.benchmark_program``, random integer weights, no compiler): "ff", a
784-256-256-10 feed-forward CUBA-LIF network with dense 8-bit mixed-sign weights; "rec", the same with a
recurrent 256x256 synapse group on each hidden layer. Input: random binary spikes, rate 0.2, T steps.

**Measured**, per network, at batch 1 and batch 256: wall time of ``toolchain.sim.reference.simulate`` (whole
batch at once; batch 1: best of several runs) and of ``toolchain.backends.lava.run_lava`` (one Lava network per
sample: build, compile, run, read back, stop — that is what simulating a sample on Lava costs). Throughput is
sample-steps per second; speedup = reference throughput / Lava throughput. **Lava at batch 256 is extrapolated**
from K samples measured one by one (per-sample time x 256), as the table says. Bit-exactness: the output spikes
of every sample run on both backends, and every spike, u and v of every group for the first sample of each
network (a recorded run).

Ends with ``RESULT speedup_b256 <x>`` and ``RESULT speedup_b1 <x>`` (the smaller over the two networks) and
``RESULT bit_exact <0|1>``.
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


def _time(fn, repeats: int = 1) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer steps and Lava samples (a few minutes)")
    ap.add_argument("--steps", type=int, default=None, help="time steps per sample (default 100, quick 50)")
    ap.add_argument("--lava-samples", type=int, default=None,
                    help="samples run on Lava per network for the batch-256 extrapolation (default 4, quick 2)")
    ap.add_argument("--batch", type=int, default=256)
    args = ap.parse_args(argv)
    steps = args.steps or (50 if args.quick else 100)
    k = args.lava_samples or (2 if args.quick else 4)
    B = args.batch

    rows = []
    speed_b1, speed_bB, exact = [], [], True
    for kind in ("ff", "rec"):
        prog = benchmark_program(kind)
        x = int_inputs(prog, B, steps, rate=0.2, seed=1)
        # warm-up (imports, BLAS initialisation)
        simulate(prog, x[:1], steps=2)
        t_ref1 = _time(lambda: simulate(prog, x[:1]), repeats=5)
        t_refB = _time(lambda: simulate(prog, x), repeats=2)
        ref = simulate(prog, x[:k])
        t0 = time.perf_counter()
        lav = run_lava(prog, x[:k])
        t_lav_per_sample = (time.perf_counter() - t0) / k
        ok = bool(np.array_equal(ref.output, lav.output))
        # full record (every spike, u and v) for one sample
        mm = simulate(prog, x[:1], record=True).first_mismatch(run_lava(prog, x[:1], record=True))
        ok = ok and mm is None
        if mm is not None:
            print(f"{kind}: first mismatch: {mm}")
        exact = exact and ok
        thr = lambda b, t: b * steps / t  # noqa: E731 - sample-steps per second
        s1 = thr(1, t_ref1) / thr(1, t_lav_per_sample)
        sB = thr(B, t_refB) / thr(1, t_lav_per_sample)
        speed_b1.append(s1)
        speed_bB.append(sB)
        act = float(ref.output.mean())
        rows.append((kind, "1", f"{thr(1, t_ref1):,.0f}", f"{thr(1, t_lav_per_sample):,.0f}", "measured",
                     f"{s1:,.1f}x", "yes" if ok else "NO", f"{act:.3f}"))
        rows.append((kind, str(B), f"{thr(B, t_refB):,.0f}", f"{thr(1, t_lav_per_sample):,.0f}",
                     f"extrapolated from {k}", f"{sB:,.1f}x", "yes" if ok else "NO", ""))

    head = ("network", "batch", "reference steps/s", "Lava steps/s", "Lava timing", "speedup", "bit-exact",
            "out rate")
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
    print(f"784-256-256-10, T = {steps} steps, input rate 0.2; steps/s = sample-steps per second of wall time "
          f"(Lava: per-sample network build + compile + run + stop)")
    print("  ".join(h.ljust(w) for h, w in zip(head, widths)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)))
    print(f"RESULT speedup_b{B} {min(speed_bB):.1f}")
    print(f"RESULT speedup_b1 {min(speed_b1):.1f}")
    print(f"RESULT bit_exact {int(exact)}")
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
