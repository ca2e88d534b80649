"""Peak memory and time per batch of BPTT against STOP-W and STOP-WTL at T = 8, 32, 128 (one run, same network).

    python benchmarks/stop_memory.py [--quick] [--steps 8 32 128] [--batches N]

Network: random binary input spikes (rate 0.1) -> Linear -> LIF -> Linear -> LIF -> Linear -> LI readout (the
leak shared per layer, as in the STOP paper; thresholds and leaks learnable for STOP-WTL). One training batch =
forward, gradients (BPTT: ``loss.backward()`` through the unrolled sequence; STOP: per-step spatial pass and
forward traces) and one Adam step.

**How memory is measured.** Every (method, T) runs in its own fresh Python process (so no allocator state or
cached buffers carry over). The process builds the network and the input batch, runs one warm-up batch at T = 1
(allocating Adam's moments and torch's lazily created kernels), reads its resident set size from
``/proc/self/statm``, then trains ``--batches`` batches at T and reads the peak resident set size
``getrusage(RUSAGE_SELF).ru_maxrss``. The figure reported, *peak MB*, is ``ru_maxrss − RSS before the batches``:
the memory the training step itself needed on top of model, optimiser state and data. A second, deterministic
column, *saved MB*, is the peak number of bytes autograd held for backward (saved-tensor hooks), plus STOP's
traces. Times are the median wall time of the measured batches on one thread.

Ends with ``RESULT stop_w_memory_ratio_T32 <BPTT peak / STOP-W peak at T=32>`` and ``RESULT
stop_memory_growth_T8_T128 <STOP-W peak at T=128 / at T=8>`` (plus the same for STOP-WTL).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from typing import Any, Dict, List

METHODS = ("bptt", "stop-W", "stop-WTL")


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _worker(cfg: Dict[str, Any]) -> Dict[str, Any]:
    import torch
    from torch import nn

    torch.set_num_threads(1)
    from toolchain.nn import LI, LIF, SpikingNet
    from toolchain.train.bptt import bptt_step
    from toolchain.train.stop import stop_gradients, stop_parameters

    method, T, B, H, n_in = cfg["method"], cfg["T"], cfg["batch"], cfg["hidden"], cfg["n_in"]
    learn = method == "stop-WTL"
    torch.manual_seed(0)

    def lif(n: int) -> LIF:
        return LIF(n, alpha=0.9, threshold=1.0, learn_threshold=learn, learn_leak=learn, per_neuron=False)

    model = SpikingNet(nn.Linear(n_in, H), lif(H), nn.Linear(H, H), lif(H), nn.Linear(H, 10),
                       LI(10, alpha=0.9, learn_leak=learn, per_neuron=False))
    with torch.no_grad():
        model[0].weight.mul_(3.0)
        model[2].weight.mul_(3.0)
    g = torch.Generator().manual_seed(1)
    x = (torch.rand(B, T, n_in, generator=g) < 0.1).float()
    y = torch.randint(0, 10, (B,), generator=g)
    if method == "bptt":
        params = list(model.parameters())

        def batch(xb: torch.Tensor) -> float:
            loss, _ = bptt_step(model, xb, y, "mean")
            return loss
    else:
        variant = method.split("-")[1]
        params = stop_parameters(model, variant)

        def batch(xb: torch.Tensor) -> float:
            return stop_gradients(model, xb, y, variant).loss
    opt = torch.optim.Adam(params, lr=1e-3)

    def train(xb: torch.Tensor) -> float:
        for p in params:
            p.grad = None
        loss = batch(xb)
        opt.step()
        model.clamp_()
        return loss

    train(x[:, :1].contiguous())  # warm-up: Adam state, kernels
    # deterministic side measure: peak bytes autograd keeps for backward (+ STOP's traces)
    live = {"now": 0, "peak": 0}

    class Box:
        __slots__ = ("t", "n", "__weakref__")

        def __init__(self, t: torch.Tensor) -> None:
            self.t, self.n = t, t.numel() * t.element_size()
            live["now"] += self.n
            live["peak"] = max(live["peak"], live["now"])

        def __del__(self) -> None:
            live["now"] -= self.n

    base = _rss_bytes()
    times: List[float] = []
    for _ in range(cfg["batches"]):
        t0 = time.perf_counter()
        train(x)
        times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    with torch.autograd.graph.saved_tensors_hooks(lambda t: Box(t), lambda b: b.t):
        if method == "bptt":
            for p in params:
                p.grad = None
            bptt_step(model, x, y, "mean")
            trace = 0
        else:
            trace = stop_gradients(model, x, y, method.split("-")[1], assign=False).trace_bytes
    return {"method": method, "T": T, "peak_mb": max(0, peak - base) / 2 ** 20,
            "saved_mb": (live["peak"] + trace) / 2 ** 20, "time_s": statistics.median(times)}


def main(argv: List[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller network and batch (under a minute)")
    ap.add_argument("--steps", type=int, nargs="+", default=[8, 32, 128])
    ap.add_argument("--batches", type=int, default=None, help="measured batches per configuration")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print("WORKER " + json.dumps(_worker(json.loads(args.worker))), flush=True)
        return 0
    size = dict(batch=64, hidden=256, n_in=256, batches=args.batches or 2) if args.quick else \
        dict(batch=128, hidden=512, n_in=700, batches=args.batches or 3)
    print(f"network {size['n_in']}-{size['hidden']}-{size['hidden']}-10, batch {size['batch']}, "
          f"{size['batches']} measured batches per configuration, one process each, 1 thread")
    from tqdm import tqdm

    rows: Dict[tuple, Dict[str, Any]] = {}
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    jobs = [(m, T) for T in args.steps for m in METHODS]
    for method, T in tqdm(jobs, desc="configurations", leave=False):
        cfg = dict(size, method=method, T=T)
        proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", json.dumps(cfg)],
                              capture_output=True, text=True, env=env)
        line = [ln for ln in proc.stdout.splitlines() if ln.startswith("WORKER ")]
        if proc.returncode != 0 or not line:
            sys.stderr.write(proc.stderr)
            raise SystemExit(f"worker {method} T={T} failed (exit {proc.returncode})")
        rows[(method, T)] = json.loads(line[0][7:])
    print(f"{'method':<10} {'T':>5} {'peak MB':>10} {'saved MB':>10} {'s/batch':>9}")
    for T in args.steps:
        for m in METHODS:
            r = rows[(m, T)]
            print(f"{m:<10} {T:>5} {r['peak_mb']:>10.1f} {r['saved_mb']:>10.1f} {r['time_s']:>9.3f}")
    ref_t = 32 if 32 in args.steps else args.steps[len(args.steps) // 2]
    lo, hi = min(args.steps), max(args.steps)

    def ratio(a: float, b: float) -> float:
        return a / max(b, 1e-9)

    print(f"RESULT stop_w_memory_ratio_T{ref_t} "
          f"{ratio(rows[('bptt', ref_t)]['peak_mb'], rows[('stop-W', ref_t)]['peak_mb']):.2f}")
    print(f"RESULT stop_wtl_memory_ratio_T{ref_t} "
          f"{ratio(rows[('bptt', ref_t)]['peak_mb'], rows[('stop-WTL', ref_t)]['peak_mb']):.2f}")
    print(f"RESULT stop_memory_growth_T{lo}_T{hi} "
          f"{ratio(rows[('stop-W', hi)]['peak_mb'], rows[('stop-W', lo)]['peak_mb']):.2f}")
    print(f"RESULT stop_wtl_memory_growth_T{lo}_T{hi} "
          f"{ratio(rows[('stop-WTL', hi)]['peak_mb'], rows[('stop-WTL', lo)]['peak_mb']):.2f}")
    print(f"RESULT bptt_memory_growth_T{lo}_T{hi} "
          f"{ratio(rows[('bptt', hi)]['peak_mb'], rows[('bptt', lo)]['peak_mb']):.2f}")
    print(f"RESULT stop_w_saved_ratio_T{ref_t} "
          f"{ratio(rows[('bptt', ref_t)]['saved_mb'], rows[('stop-W', ref_t)]['saved_mb']):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
