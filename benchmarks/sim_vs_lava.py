"""Reference integer simulator against Lava 0.10.0 ``fixed_pt``: throughput and bit-exactness.

    python benchmarks/sim_vs_lava.py [--quick] [--steps T] [--lava-samples K] [--batch B] [--lava-batch LB]

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

The reference runs the whole batch at once (batch 1: median of 5 runs; batch B: of 3). In the first table Lava
runs one network per sample (``run_lava(..., batch_mode="per_sample")``, what a batch cost before batched runs),
so its throughput does not depend on the batch: **Lava's figures at batch B are extrapolated** from K samples
measured one by one (per-sample time x B) and the table says so; at batch 1 they are measured. Speedup =
reference throughput / Lava throughput, steady and per run. Bit-exactness: the output spikes of the K samples on
both simulators, and every spike, u and v of every group of the first sample (a recorded run).

**Batched Lava** (second table): ``run_lava(..., batch_mode="batched")`` runs a batch of ``--lava-batch`` samples
(default 32) as one pooled Lava process graph (``toolchain.backends.lava.build_batched_network``: B-wide LIFs, one
LIF process per LIF class, one synapse process per source, destination and parameter set, records handed back
through files — on 784-256-256-10 five processes: RingBuffer, input synapses, hidden/output synapses, one LIF, one
recorder) in its two synapse layouts side by side: our ``BatchedSynapses`` (``BATCH_GEMM = True``, the default;
``toolchain/backends/lava_procs/batched_synapses.py``: per synapse group one matrix product over the batch,
``S (B, n_src) @ W.T`` as a float32 BLAS GEMM here) and Lava's ``Sparse`` holding the block-diagonal CSR of the B
copies (``BATCH_GEMM = False``, the default before 2026-12-04); against one network per sample
(``batch_mode="per_sample"``: Lava's Dense processes, read back with ``Var.get``; eight processes), and the default
builder on a single sample. All warmed up, on runs of ``--lava-steps`` steps (default 500; short run a fifth: Lava's
start-up jitter, a few tenths of a second, is large against the 160 steps between a 200- and a 40-step run of one
network, ~0.4 s — at 200 steps one network per sample's steady figure swung from 150 to 1,100 steps/s between runs),
medians of 5 (quick: 3) with the modes measured alternately so that load from other processes falls on all. Besides
wall-clock rates the table gives *CPU ms per sample-step*: CPU time of this process and its finished children
(Lava's process models run in child processes that its runtime joins on stop), long run minus short run, per sample
and step — far less dependent on the machine's load than wall time. Bit-exact: the batch's outputs in both layouts
against the reference, and every spike, u and v of a recorded batched run of 4 samples (default layout).
``RESULT lava_batch<LB>_vs_single``: batched (default layout) steady sample-steps/s over one-network-per-sample
steady sample-steps/s, the smaller over the two networks (goal >= 10 at 32); ``_per_run``: the same with set-up
(build, compile, read-back, stop) included — what a user waits for; ``_csr_vs_single``: the block-diagonal CSR
layout (before); ``_cpu``: one network per sample's CPU per sample-step over the default batched network's.

*What a Lava step costs* (784-256-256-10, two shared AMD EPYC cores; per-model figures from timing each process
model's spike phase, ``time.process_time`` inside Lava's ``PyLoihiProcessModel._spike``, steps 100-500 of a
500-step run at B = 32):

* Every process model costs a fixed **0.35-0.4 ms CPU per step** beyond its arithmetic: Lava runs each model in
  its own OS process (``SystemProcess(mp.Process)``, ``magma/runtime/message_infrastructure/multiprocessing.py``
  L57, L119) and the runtime service exchanges a command and a reply with every one of them every step
  (``LoihiPyRuntimeService``), each channel with its own helper thread (``compiler/channels/pypychannel.py``).
  So one ``Dense`` process per layer and copy (3 x 32 processes, ~38 ms) would cost more than the arithmetic.
  One network per sample (8 processes) costs 2.8-4.2 ms CPU per step (its models' arithmetic under 0.1 ms).
* Lava's ``Sparse`` (fixed_pt) forms ``weights.dot(s_in)`` with scipy's CSR mat-vec on int32 weights: 0.87 ns
  per stored synapse, and a block-diagonal matrix stores every synapse B times — 8.6M synapses for 32 copies of
  784-256-256-10, **7.5 ms of mat-vec per step** (its binary path, a CSR column selection, costs more, and the
  ``Sparse`` process converts every matrix to CSR). That layout's CPU per step was ~0.4 ms x 5 + 7.5 ms ~ 9.5 ms per
  32 samples (0.28 ms per sample-step, ratio CPU ~10 and at most 13.7 at any batch size).
* ``BatchedSynapses`` multiplies the weights of one copy by the (B, n_src) spike matrix: the 784x256, 256x256 and
  256x10 float32 GEMMs at B = 32 take 0.31, 0.11 and 0.02 ms alone (the block-diagonal CSR mat-vecs 5.4, 1.4 and
  0.1 ms; one core, 2026-12-04). Spike phases per step at B = 32 (ff): input synapses 0.64 ms, hidden/output
  synapses 0.42 ms, LIF (Lava's bit-accurate model on 16,672 neurons) 0.76 ms, RingBuffer 0.27 ms, recorder 0.15 ms;
  rec: the two synapse processes 0.68 and 0.74 ms, LIF 0.81 ms. Whole network (the benchmark's CPU column):
  0.094 ms CPU per sample-step (ff), 3.0 ms per step of 32 samples, of which about 2 ms is the per-process cost
  of five processes — **now the largest share** — and the rest the LIF update and the products; rec 0.123 ms.
  The CPU ratio to one network per sample is ~30 (ff 30.1, rec 34.0 in the run below); the wall-clock ratio is
  that CPU ratio times (cores the batched network keeps busy) / (cores one network per sample keeps busy).
* Measured with ``--quick`` (load 1.6-5 from other jobs), three runs: 2026-12-04 03:58 UTC
  ``RESULT lava_batch32_vs_single 20.4`` (ff 29.9, rec 20.4; steady sample-steps/s ff / rec: one network per
  sample 454 / 419, CSR layout 3,763 / 2,505, BatchedSynapses 13,576 / 8,557), ``_per_run 24.2``,
  ``_csr_vs_single 6.0``, ``_cpu 30.1``, ``bit_exact 1``; 04:02 UTC ``26.9`` (ff 26.9, rec 32.3; 541 / 395,
  3,869 / 3,227, 14,577 / 12,764), ``_per_run 29.8``, ``_csr_vs_single 7.1``, ``_cpu 31.8``, ``bit_exact 1``; 04:08 UTC,
  the defaults as committed, ``36.7`` (ff 36.7, rec 42.6; 369 / 245, 4,057 / 2,634, 13,565 / 10,440), ``_per_run
  33.5``, ``_csr_vs_single 10.8``, ``_cpu 34.3``, ``bit_exact 1``; CPU per sample-step of the batch 0.094-0.123 ms,
  of one network per sample 2.8-5.4 ms. Earlier (2026-12-03, CSR
  layout the default): ``lava_batch32_vs_single`` 8.3 at load 1.5-5,
  8.4 nearly idle; the ratio swings with the load, mostly up, because one network per sample's per-step
  synchronisation costs more CPU under contention (3.2 -> 6.6 ms per sample-step).

*Guard.* Under heavy load a long-minus-short difference can come out zero or negative (start-up jitter larger
than the extra steps' cost), which would print an absurd steady figure. The measurement of that simulator is
then repeated (up to 3 more long/short pairs, medians over all); if the difference is still not positive, the
steady figure falls back to the per-run one (set-up included, an underestimate of the steady throughput) and the
"steady from" column of both tables says so.

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

from toolchain.backends import lava as lava_backend  # noqa: E402
from toolchain.backends.lava import run_lava  # noqa: E402
from toolchain.sim.reference import simulate  # noqa: E402
from toolchain.testing import benchmark_program, int_inputs  # noqa: E402
from toolchain.textutil import table_lines  # noqa: E402


def _wall(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _long_short(fn, steps: int, short: int, repeats: int):
    """Wall times of ``fn(steps)`` and ``fn(short)`` (lists), measured alternately."""
    t_long, t_short = [], []
    for _ in range(repeats):
        t_short.append(_wall(lambda: fn(short)))
        t_long.append(_wall(lambda: fn(steps)))
    return t_long, t_short


#: Extra long/short pairs measured when a long-minus-short difference is not positive (heavy load).
RETRIES = 3


def steady_rate(b: int, steps: int, short: int, t_long: list, t_short: list, more) -> tuple:
    """Steady sample-steps/s ``b · (steps - short) / (median(t_long) - median(t_short))`` from the wall times
    measured so far; while the difference is not positive, ``more()`` measures another ``(t_long, t_short)``
    pair (at most :data:`RETRIES`). Still not positive: the per-run figure ``b · steps / median(t_long)``.
    Returns ``(rate, how)``: "long - short" or "per run (long - short <= 0)"."""
    for i in range(RETRIES + 1):
        diff = float(np.median(t_long)) - float(np.median(t_short))
        if diff > 0:
            return b * (steps - short) / diff, "long - short" + (f" ({i} repeats)" if i else "")
        if i < RETRIES:
            tl, ts = more()
            t_long.append(tl)
            t_short.append(ts)
    return b * steps / float(np.median(t_long)), "per run (long - short <= 0)"


def _cpu_wall(fn) -> tuple:
    """(CPU seconds of this process and its finished children — Lava's process models run in children that
    its runtime joins on stop —, wall seconds) of ``fn()``."""
    a, t0 = os.times(), time.perf_counter()
    fn()
    w, b = time.perf_counter() - t0, os.times()
    return (b.user - a.user) + (b.system - a.system) + (b.children_user - a.children_user) + \
        (b.children_system - a.children_system), w


def lava_batched_vs_single(prog, LB: int, steps: int, short: int, repeats: int) -> dict:
    """One network per sample (``batch_mode="per_sample"``: Lava's Dense processes, Sink/Monitor read-back) against
    ``LB`` samples in one batched pooled network — with our ``BatchedSynapses`` (``BATCH_GEMM``, the default: one
    matrix product per synapse group over the batch) and with Lava's ``Sparse`` holding the block-diagonal CSR of
    the copies (``BATCH_GEMM = False``, the layout before) —, and the default builder on one sample (separates
    what batching gains from what its processes and file recorders change): steady (long minus short run) and
    per-run sample-steps/s of each, and CPU milliseconds per sample-step (long minus short, all processes),
    medians over ``repeats`` measured alternately (so that load from other processes falls on all);
    bit-exactness of the batch's outputs in both layouts and of a recorded batched run of 4 samples."""
    x = int_inputs(prog, LB, steps, rate=0.2, seed=2).astype(np.uint8)
    for gemm in (True, False):  # warm-up: the synapse process models, the recorders
        lava_backend.BATCH_GEMM = gemm
        run_lava(prog, x[:2], steps=2, batch_mode="batched")
    lava_backend.BATCH_GEMM = True
    modes = {"single": ("per_sample", 1, True), "batched1": ("batched", 1, True),
             "csr": ("batched", LB, False), "batched": ("batched", LB, True)}

    def run(mode: str, b: int, gemm: bool, lo: int, T: int) -> tuple:
        lava_backend.BATCH_GEMM = gemm
        try:
            return _cpu_wall(lambda: run_lava(prog, x[lo:lo + b, :T], batch_mode=mode))
        finally:
            lava_backend.BATCH_GEMM = True

    t = {(m, T): [] for m in modes for T in (steps, short)}
    for i in range(repeats):
        for m, (mode, b, gemm) in modes.items():
            lo = 0 if b > 1 else i
            for T in (short, steps):
                t[(m, T)].append(run(mode, b, gemm, lo, T))
    res = {}
    for m, (mode, b, gemm) in modes.items():
        wl, ws = [w for _, w in t[(m, steps)]], [w for _, w in t[(m, short)]]
        res[m + "_steady"], res[m + "_how"] = steady_rate(
            b, steps, short, wl, ws,
            lambda mode=mode, b=b, gemm=gemm: tuple(reversed([run(mode, b, gemm, 0, T)[1] for T in (short, steps)])))
        res[m + "_run"] = b * steps / float(np.median(wl))
        cpu = float(np.median([c for c, _ in t[(m, steps)]])) - float(np.median([c for c, _ in t[(m, short)]]))
        res[m + "_cpu"] = 1e3 * cpu / (b * (steps - short))
    ref = simulate(prog, x).output
    out = run_lava(prog, x, batch_mode="batched").output
    lava_backend.BATCH_GEMM = False
    try:
        out_csr = run_lava(prog, x, batch_mode="batched").output
    finally:
        lava_backend.BATCH_GEMM = True
    mm = simulate(prog, x[:4, :short], record=True).first_mismatch(
        run_lava(prog, x[:4, :short], record=True, batch_mode="batched"))
    res["exact"] = bool(np.array_equal(ref, out)) and bool(np.array_equal(ref, out_csr)) and mm is None
    res["mismatch"] = mm
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer steps and Lava samples (a few minutes)")
    ap.add_argument("--steps", type=int, default=None, help="time steps per sample (default 100, quick 50)")
    ap.add_argument("--lava-samples", type=int, default=None,
                    help="samples run on Lava per network (default 4, quick 2)")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--lava-batch", type=int, default=32, help="samples per batched Lava network (default 32)")
    ap.add_argument("--lava-steps", type=int, default=500,
                    help="steps of the batched-vs-single Lava comparison (short run: a fifth)")
    args = ap.parse_args(argv)
    steps = args.steps or (50 if args.quick else 100)
    short = max(1, steps // 5)
    k = args.lava_samples or (2 if args.quick else 4)
    B = args.batch
    LB = args.lava_batch
    lava_steps = args.lava_steps

    rows = []
    lava_rows = []
    batched_ratio, batched_ratio_run, csr_ratio, cpu_ratio = [], [], [], []
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
            ref_t[b] = _long_short(lambda T, b=b: simulate(prog, x[:b, :T]), steps, short, reps)
        lav_long, lav_short = [], []
        outs = []
        for i in range(k):  # one network per sample, as run_lava does for a batch
            lav_short.append(_wall(lambda: run_lava(prog, x[i:i + 1], steps=short, batch_mode="per_sample")))
            t0 = time.perf_counter()
            outs.append(run_lava(prog, x[i:i + 1], batch_mode="per_sample").output)
            lav_long.append(time.perf_counter() - t0)
        ok = bool(np.array_equal(simulate(prog, x[:k]).output, np.concatenate(outs)))
        mm = simulate(prog, x[:1], record=True).first_mismatch(run_lava(prog, x[:1], record=True))
        if mm is not None:
            print(f"{kind}: first mismatch: {mm}")
        ok = ok and mm is None
        exact = exact and ok

        # per step, build excluded (guarded: repeated on sample 0, else the per-run figure)
        lav_steady, lav_how = steady_rate(
            1, steps, short, lav_long, lav_short,
            lambda: tuple(reversed([_wall(lambda: run_lava(prog, x[:1], steps=T, batch_mode="per_sample"))
                                    for T in (short, steps)])))
        lav_run = steps / float(np.median(lav_long))              # sample-steps/s of one network, with build
        lava_steady.append(lav_steady)

        # batched Lava against one network per sample, measured alternately on longer runs (Lava's start-up
        # jitter is large against the run time of one network)
        cmp = lava_batched_vs_single(prog, LB, lava_steps, max(1, lava_steps // 5), 3 if args.quick else 5)
        b_ok = cmp["exact"]
        if cmp["mismatch"] is not None:
            print(f"{kind} batched: first mismatch: {cmp['mismatch']}")
        exact = exact and b_ok
        batched_ratio.append(cmp["batched_steady"] / cmp["single_steady"])
        batched_ratio_run.append(cmp["batched_run"] / cmp["single_run"])
        csr_ratio.append(cmp["csr_steady"] / cmp["single_steady"])
        cpu_ratio.append(cmp["single_cpu"] / cmp["batched_cpu"])
        for m, label, b in (("single", "one network per sample", 1), ("batched1", "batched builder, 1 sample", 1),
                            ("csr", "batched, block-diagonal CSR Sparse (before)", LB),
                            ("batched", "batched, BatchedSynapses GEMM (default)", LB)):
            lava_rows.append((kind, label, str(b), f"{cmp[m + '_steady']:,.0f}", cmp[m + "_how"],
                              f"{cmp[m + '_run']:,.0f}", f"{cmp[m + '_cpu']:.3f}",
                              f"{cmp[m + '_steady'] / cmp['single_steady']:,.1f}x",
                              f"{cmp[m + '_run'] / cmp['single_run']:,.1f}x",
                              f"{cmp['single_cpu'] / cmp[m + '_cpu']:,.1f}x",
                              ("yes" if ok else "NO") if m == "single" else ("yes" if b_ok else "NO")))
        for b in (1, B):
            t_long, t_short = ref_t[b]
            ref_steady, ref_how = steady_rate(
                b, steps, short, t_long, t_short,
                lambda b=b: tuple(reversed([_wall(lambda: simulate(prog, x[:b, :T])) for T in (short, steps)])))
            ref_run = b * steps / float(np.median(t_long))
            per_run[b].append(ref_run / lav_run)
            steady[b].append(ref_steady / lav_steady)
            rows.append((kind, str(b), f"{ref_steady:,.0f}", f"{ref_run:,.0f}", f"{lav_steady:,.0f}",
                         f"{lav_run:,.0f}", "measured" if b == 1 else f"extrapolated from {k} samples",
                         f"ref: {ref_how}; Lava: {lav_how}",
                         f"{ref_steady / lav_steady:,.1f}x", f"{ref_run / lav_run:,.1f}x", "yes" if ok else "NO"))

    head = ("network", "batch", "ref steady/s", "ref per run/s", "Lava steady/s", "Lava per run/s",
            "Lava at this batch", "steady from", "speedup steady", "speedup per run", "bit-exact")
    print(f"784-256-256-10, T = {steps} steps (short run {short}), input rate 0.2; sample-steps per second of wall "
          f"time, medians; steady = per step, set-up excluded (long minus short run); per run = with set-up "
          f"(Lava: network build + compile + run + stop per sample); both warmed up first")
    print("\n".join(table_lines([head] + rows)))
    print()
    print(f"Lava alone, T = {lava_steps} steps (short run {max(1, lava_steps // 5)}): one network per sample against "
          f"a batch of {LB} in one network (run_lava batch_mode='batched'); sample-steps per second, medians, "
          f"measured alternately; ratio = over one network per sample")
    print("\n".join(table_lines([("network", "Lava mode", "samples per network", "steady/s", "steady from",
                                   "per run/s", "CPU ms per sample-step",
                                   "ratio steady", "ratio per run", "ratio CPU", "bit-exact")] + lava_rows)))
    print(f"RESULT speedup_b{B} {min(per_run[B]):.1f}")
    print(f"RESULT speedup_b1 {min(per_run[1]):.1f}")
    print(f"RESULT speedup_steady_b{B} {min(steady[B]):.1f}")
    print(f"RESULT speedup_steady_b1 {min(steady[1]):.1f}")
    print(f"RESULT lava_steady_steps_per_s {min(lava_steady):.0f}")
    print(f"RESULT lava_batch{LB}_vs_single {min(batched_ratio):.1f}")
    print(f"RESULT lava_batch{LB}_vs_single_per_run {min(batched_ratio_run):.1f}")
    print(f"RESULT lava_batch{LB}_csr_vs_single {min(csr_ratio):.1f}")
    print(f"RESULT lava_batch{LB}_vs_single_cpu {min(cpu_ratio):.1f}")
    print(f"RESULT bit_exact {int(exact)}")
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
