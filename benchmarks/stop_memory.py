"""Memory and time per training batch of BPTT against STOP-W and STOP-WTL at T = 8, 32, 128 (same network).

    python benchmarks/stop_memory.py [--quick] [--steps 8 32 128] [--repeats R] [--batches N]
                                     [--out benchmarks/results/stop_memory.json] [--from-json FILE]

Network: random binary input spikes (rate 0.1) -> Linear -> LIF -> Linear -> LIF -> Linear -> LI readout (the
leak shared per layer, as in the STOP paper; thresholds and leaks learnable for STOP-WTL). One training batch =
forward, gradients (BPTT: ``loss.backward()`` through the unrolled sequence; STOP: per-step spatial pass and
forward traces) and one Adam step. The default network (1024 inputs, 256 hidden, batch 256) is chosen so that
what STOP keeps across steps — the presynaptic traces (batch × inputs per layer) and the gradient accumulators —
is tens of MB, far above page and allocator noise; its share of the measured peak is printed.

**Three memory columns**, every one the memory the training batch needs *on top of* model, optimiser state and
input data (all allocated, with a warm-up batch at T = 1, before the measurement starts):

* *alloc MB* — torch's CPU allocator: every allocation and free during one batch, summed in time order
  (``toolchain.train.memory.allocator_peak_bytes``, profiler memory events), peak of the running total. Counts
  everything (traces, accumulators, activations, temporaries, autograd's saved tensors), deterministic.
* *RSS MB* — the process's resident-set high-water mark ``VmHWM`` during the measured batches, reset with
  ``/proc/self/clear_refs`` just before them, minus the RSS at that moment. Each (method, T) runs in its own fresh
  Python process, ``--repeats`` times; the median and the min–max spread over the repeats are reported.
* *saved MB* — the peak bytes autograd holds for backward (saved-tensor hooks) plus STOP's own traces: the
  number the method's design controls.

Times are the median wall time of the measured batches on one thread.

Results are saved with their provenance (date, commit, settings, per-repeat figures) to ``--out``;
``--from-json FILE`` re-prints a saved run, every line marked as re-printed. RESULT lines:
``stop_memory_growth_T8_T128`` (STOP-W alloc peak at T=128 / at T=8), ``stop_memory_growth_rss_T8_T128`` (the same
from RSS, median over repeats, with its min–max over repeat pairs), the same for STOP-WTL and BPTT, and
``stop_w_memory_ratio_T32`` (BPTT / STOP-W alloc peak at T = 32) with its RSS counterpart.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common.provenance import RESULTS_DIR, reprint_banner, result_line, run_info  # noqa: E402

METHODS = ("bptt", "stop-W", "stop-WTL")
MB = 2 ** 20


def _worker(cfg: Dict[str, Any]) -> Dict[str, Any]:
    import torch
    from torch import nn

    torch.set_num_threads(1)
    from toolchain.nn import LI, LIF, SpikingNet
    from toolchain.train.bptt import bptt_step
    from toolchain.train.memory import allocator_peak_bytes, peak_rss_bytes, reset_peak_rss, rss_bytes
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
    for p in params:
        p.grad = None
    base = rss_bytes()
    hwm_reset = reset_peak_rss()
    times: List[float] = []
    for _ in range(cfg["batches"]):
        t0 = time.perf_counter()
        train(x)
        times.append(time.perf_counter() - t0)
        for p in params:  # the next batch starts from the same state as the first (no grads held)
            p.grad = None
    peak = peak_rss_bytes()
    alloc, _ = allocator_peak_bytes(lambda: train(x))
    for p in params:
        p.grad = None
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

    with torch.autograd.graph.saved_tensors_hooks(lambda t: Box(t), lambda b: b.t):
        if method == "bptt":
            bptt_step(model, x, y, "mean")
            trace = 0
        else:
            trace = stop_gradients(model, x, y, method.split("-")[1], assign=False).trace_bytes
    return {"method": method, "T": T, "rss_mb": max(0, peak - base) / MB, "rss_base_mb": base / MB,
            "hwm_reset": hwm_reset, "alloc_mb": alloc / MB, "saved_mb": (live["peak"] + trace) / MB,
            "trace_mb": trace / MB, "time_s": statistics.median(times)}


def _spread(vals: List[float]) -> str:
    return f"{statistics.median(vals):.2f} [{min(vals):.2f}, {max(vals):.2f}]"


def _report(data: Dict[str, Any], reprint: Optional[Dict[str, Any]]) -> None:
    steps: List[int] = data["steps"]
    runs: Dict[str, List[Dict[str, Any]]] = data["runs"]  # "method@T" -> repeats

    def rs(m: str, T: int) -> List[Dict[str, Any]]:
        return runs[f"{m}@{T}"]

    size = data["size"]
    print(f"network {size['n_in']}-{size['hidden']}-{size['hidden']}-10, batch {size['batch']}, "
          f"{size['batches']} measured batches, {data['repeats']} fresh processes per configuration, 1 thread")
    print(f"{'method':<10} {'T':>5} {'alloc MB':>9} {'RSS MB median [min, max]':>26} {'saved MB':>9} "
          f"{'trace MB':>9} {'s/batch':>8}")
    for T in steps:
        for m in METHODS:
            r = rs(m, T)
            rss = [x["rss_mb"] for x in r]
            print(f"{m:<10} {T:>5} {r[0]['alloc_mb']:>9.1f} {_spread(rss):>26} {r[0]['saved_mb']:>9.1f} "
                  f"{r[0]['trace_mb']:>9.1f} {statistics.median(x['time_s'] for x in r):>8.3f}")
    ref_t = 32 if 32 in steps else steps[len(steps) // 2]
    lo, hi = min(steps), max(steps)

    def ratio(a: float, b: float) -> float:
        return a / max(b, 1e-9)

    def alloc(m: str, T: int) -> float:
        return statistics.median(x["alloc_mb"] for x in rs(m, T))

    def rss_pairs(m: str) -> List[float]:
        return [ratio(a["rss_mb"], b["rss_mb"]) for a, b in zip(rs(m, hi), rs(m, lo))]

    trace_share = ratio(rs("stop-W", hi)[0]["trace_mb"], alloc("stop-W", hi))
    print(f"STOP-W at T={hi}: traces + accumulators {rs('stop-W', hi)[0]['trace_mb']:.1f} MB of an allocator peak "
          f"of {alloc('stop-W', hi):.1f} MB ({100 * trace_share:.0f}%); the rest are one step's activations and "
          f"temporaries. RSS spread = min..max over {data['repeats']} repeats (growth: over repeat pairs).")
    out = [
        (f"stop_memory_growth_T{lo}_T{hi}", f"{ratio(alloc('stop-W', hi), alloc('stop-W', lo)):.3f}"),
        (f"stop_memory_growth_rss_T{lo}_T{hi}", _spread(rss_pairs("stop-W"))),
        (f"stop_wtl_memory_growth_T{lo}_T{hi}", f"{ratio(alloc('stop-WTL', hi), alloc('stop-WTL', lo)):.3f}"),
        (f"stop_wtl_memory_growth_rss_T{lo}_T{hi}", _spread(rss_pairs("stop-WTL"))),
        (f"bptt_memory_growth_T{lo}_T{hi}", f"{ratio(alloc('bptt', hi), alloc('bptt', lo)):.2f}"),
        (f"stop_w_memory_ratio_T{ref_t}", f"{ratio(alloc('bptt', ref_t), alloc('stop-W', ref_t)):.2f}"),
        (f"stop_w_memory_ratio_rss_T{ref_t}",
         _spread([ratio(a['rss_mb'], b['rss_mb']) for a, b in zip(rs('bptt', ref_t), rs('stop-W', ref_t))])),
        (f"stop_wtl_memory_ratio_T{ref_t}", f"{ratio(alloc('bptt', ref_t), alloc('stop-WTL', ref_t)):.2f}"),
        (f"stop_w_mb_T{hi}", f"{alloc('stop-W', hi):.1f}"),
        (f"bptt_mb_T{hi}", f"{alloc('bptt', hi):.1f}"),
    ]
    for name, value in out:
        print(result_line(name, value, reprint))


def main(argv: List[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller network and batch, 2 repeats (about a minute)")
    ap.add_argument("--steps", type=int, nargs="+", default=[8, 32, 128])
    ap.add_argument("--batches", type=int, default=None, help="measured batches per process")
    ap.add_argument("--repeats", type=int, default=None, help="fresh processes per configuration")
    ap.add_argument("--out", default=None, help="JSON path (default benchmarks/results/stop_memory[_quick].json)")
    ap.add_argument("--from-json", default=None, help="re-print a saved run (nothing is measured)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print("WORKER " + json.dumps(_worker(json.loads(args.worker))), flush=True)
        return 0
    if args.from_json:
        path = Path(args.from_json)
        data = json.loads(path.read_text())
        print(reprint_banner(path, data.get("run")))
        _report(data, dict(data.get("run", {}), _file=str(path)))
        return 0
    size = dict(batch=128, hidden=128, n_in=512, batches=args.batches or 1) if args.quick else \
        dict(batch=256, hidden=256, n_in=1024, batches=args.batches or 2)
    repeats = args.repeats or (2 if args.quick else 3)
    from tqdm import tqdm

    runs: Dict[str, List[Dict[str, Any]]] = {}
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    jobs = [(m, T, r) for r in range(repeats) for T in args.steps for m in METHODS]  # repeats interleaved
    for method, T, _ in tqdm(jobs, desc="processes", leave=False):
        cfg = dict(size, method=method, T=T)
        proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", json.dumps(cfg)],
                              capture_output=True, text=True, env=env)
        line = [ln for ln in proc.stdout.splitlines() if ln.startswith("WORKER ")]
        if proc.returncode != 0 or not line:
            sys.stderr.write(proc.stderr[-4000:])
            raise SystemExit(f"worker {method} T={T} failed (exit {proc.returncode})")
        runs.setdefault(f"{method}@{T}", []).append(json.loads(line[0][7:]))
    import torch  # noqa: F401  (versions in the provenance record)

    data = {"size": size, "steps": list(args.steps), "repeats": repeats, "runs": runs}
    data["run"] = run_info(dict(size, steps=list(args.steps), repeats=repeats, quick=bool(args.quick),
                                seeds={"torch_manual_seed": 0, "input_generator": 1}))
    _report(data, None)
    out = Path(args.out) if args.out else RESULTS_DIR / f"stop_memory{'_quick' if args.quick else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
