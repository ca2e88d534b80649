"""Why LNP does no better than random pruning once trained: how far training moves the pruned networks.

    python benchmarks/lnp_drift.py [--quick] [--seeds 3] [--tasks lorenz63 rossler mackey_glass] [--jobs N]

For every task and seed, as in ``benchmarks/lnp.py --ablate`` (same data splits, same HRSNN, same learning-rate
grid chosen on the validation split, same epochs): the dense network, its LNP pruning and random pruning at LNP's
counts are trained from their initialisation; for each the script measures, before and after training,

* the recurrent excess ``λ_max − max leak`` (1/s; :attr:`toolchain.prune.lyapunov.LyapunovSpectrum.excess`, the
  quantity LNP's stability step controls) and ``λ_max`` (1/s), both on the noise-driven network with LNP's
  measurement settings;
* the relative change of the recurrent weights ``‖W_trained − W_init‖_F / ‖W_init‖_F`` and of the input weights,
  and the correlation of trained with initial recurrent weights over the kept synapses (the mask does not change:
  pruned synapses stay 0);
* the test error at the chosen rate.

If training moves the recurrent weights by about their own size and brings both pruned networks to the same
excess, the spectral properties LNP sets up at initialisation cannot carry over to the trained network; only
the choice of kept neurons and synapses (the mask) can, and ``--ablate`` finds it no better than a random mask.
Series tasks only (next-step prediction, where every step of the recurrent layer is trained by BPTT).

Outcome (``--quick --seeds 3``, 2026-12-04 14:11 UTC, 6 min on one shared core; ``benchmarks/results/
lnp_drift_quick.json``): training moves the recurrent weights by 1.3-1.6 times their initial norm in LNP's networks
and 1.9-2.4 times in the randomly pruned ones (LNP keeps the larger weights, so its relative change is smaller);
trained and initial weights correlate at 0.55-0.62 (LNP) and 0.39-0.49 (random) over the kept synapses, and the
input weights move by 0.5-0.8 times their norm. The excess estimates scatter too much over 3 seeds to separate
the methods (LNP's initial excess 4.1 ± 17.8 1/s against random's 1.0 ± 5.4; trained, every network is within a
few 1/s of 0). So the trained recurrent weights keep about a third of their variance from the initialisation
(r² ≈ 0.36 for LNP): what LNP's steps set up in the initial weights is largely overwritten, and the trained error
does not follow the initial spectrum (test NRMSE here LNP 0.333 / 0.417 / 0.377, random 0.280 /
0.353 / 0.340 on Lorenz63 / Rössler / Mackey-Glass, not significant over 3 seeds).

Saves ``benchmarks/results/lnp_drift[_quick].json`` (provenance and every per-seed figure); ``--from-json FILE``
re-prints it, marked. RESULT lines: ``lnp_drift_rec_change_lnp`` / ``_random`` (mean relative change),
``lnp_drift_init_excess_lnp`` / ``_random`` and ``lnp_drift_trained_excess_lnp`` / ``_random`` (mean, 1/s),
``lnp_drift_rec_corr_lnp`` (mean correlation of trained with initial weights).
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import sys

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # one BLAS thread per process
    os.environ.setdefault(_v, "1")
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from lnp import REGRESSION, _ablate_settings, _ci, _random_prune, _task_data  # noqa: E402

METHODS = ("dense", "lnp", "random")


def drift(init: Any, trained: Any, lyap_kw: Dict[str, Any]) -> Dict[str, float]:
    """Recurrent excess and λ_max (1/s) before and after training, relative weight changes and the correlation of
    trained with initial recurrent weights over the kept synapses, for two HRSNNs with the same mask."""
    from toolchain.prune.lyapunov import largest_lyapunov
    n0, n1 = init.recurrent_net(), trained.recurrent_net()
    sp0, sp1 = largest_lyapunov(n0, **lyap_kw), largest_lyapunov(n1, **lyap_kw)
    kept = n0.w_rec != 0
    return {"excess_init": float(sp0.excess), "excess_trained": float(sp1.excess),
            "lambda_init": float(sp0.max), "lambda_trained": float(sp1.max),
            "rec_change": float(np.linalg.norm(n1.w_rec - n0.w_rec) / np.linalg.norm(n0.w_rec)),
            "in_change": float(np.linalg.norm(n1.w_in - n0.w_in) / np.linalg.norm(n0.w_in)),
            "rec_corr": float(np.corrcoef(n1.w_rec[kept], n0.w_rec[kept])[0, 1])}


def run_case(cfg: Dict[str, Any]) -> Dict[str, Any]:
    """One (task, seed): prune, train at every rate of the grid, keep the validation-best, measure the drift."""
    import torch
    torch.set_num_threads(1)
    from toolchain.nn.hrsnn import HRSNN
    from toolchain.prune.lnp import LNPConfig, lnp_prune, measurement_kwargs

    task, seed, s = cfg["task"], cfg["seed"], cfg["settings"]
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    d = _task_data(task, seed, s)
    lnp_cfg = LNPConfig(seed=seed, **s["lnp"])
    lyap_kw = measurement_kwargs(lnp_cfg)[0]
    dense = HRSNN(d["n_in"], s["n_rec"], d["n_out"], rec_gain=0.5, tau_out=d["tau_out"], seed=seed)
    lnp_model = lnp_prune(dense, lnp_cfg, progress=False).model
    inits = {"dense": dense, "lnp": lnp_model,
             "random": _random_prune(dense, lnp_model.n_rec, lnp_model.n_synapses, seed)}
    out: Dict[str, Any] = {"task": task, "seed": seed, "methods": {}}
    for name, init in inits.items():
        trials = {}
        for lr in s["lrs"]:
            m = copy.deepcopy(init)
            d["train"](m, lr, s["epochs"])
            trials[lr] = (d["error"](m, d["val"]), m)
        lr = min(trials, key=lambda k: (trials[k][0], k))
        m = trials[lr][1]
        out["methods"][name] = dict(drift(init, m, lyap_kw), lr=lr, val_error=trials[lr][0],
                                    error=d["error"](m, d["test"]), neurons=m.n_rec, recurrent_synapses=m.n_synapses)
    out["seconds"] = time.perf_counter() - t0
    return out


def report(data: Dict[str, Any], reprint: Optional[Dict[str, Any]]) -> None:
    """Table (mean ± 95% half-width over seeds) and RESULT lines."""
    from common.provenance import result_line

    from toolchain.textutil import table_lines
    res = data["results"]
    keys = ("error", "rec_change", "rec_corr", "in_change", "excess_init", "excess_trained", "lambda_init",
            "lambda_trained")
    rows = [("task", "method") + keys]
    for t in [t for t in REGRESSION if any(r["task"] == t for r in res)]:
        rs = [r for r in res if r["task"] == t]
        for n in METHODS:
            rows.append((t, n) + tuple(_ci([r["methods"][n][k] for r in rs]) for k in keys))
    print("\n".join(table_lines(rows)))
    print(f"seeds {sorted({r['seed'] for r in res})}; mean ± 95% half-width; rec/in_change = ||W_trained - W_init|| "
          "/ ||W_init||; rec_corr over the kept synapses; excess = lambda_max - max leak (1/s)")

    def mean(n: str, k: str) -> float:
        return float(np.mean([r["methods"][n][k] for r in res]))
    for name, value in (("lnp_drift_rec_change_lnp", mean("lnp", "rec_change")),
                        ("lnp_drift_rec_change_random", mean("random", "rec_change")),
                        ("lnp_drift_rec_corr_lnp", mean("lnp", "rec_corr")),
                        ("lnp_drift_init_excess_lnp", mean("lnp", "excess_init")),
                        ("lnp_drift_init_excess_random", mean("random", "excess_init")),
                        ("lnp_drift_trained_excess_lnp", mean("lnp", "excess_trained")),
                        ("lnp_drift_trained_excess_random", mean("random", "excess_trained"))):
        print(result_line(name, f"{value:.3f}", reprint))


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="--ablate --quick's sizes (100 neurons, 15 epochs)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--tasks", nargs="+", default=list(REGRESSION), choices=list(REGRESSION))
    ap.add_argument("--jobs", type=int, default=1, help="parallel worker processes (one thread each)")
    ap.add_argument("--out-json", default=None, help="JSON path (default benchmarks/results/lnp_drift[_quick].json)")
    ap.add_argument("--from-json", default=None, help="re-print a saved run (nothing is measured)")
    args = ap.parse_args(argv)
    from common.provenance import RESULTS_DIR, load_saved_run, run_info
    if args.from_json:
        report(*load_saved_run(args.from_json))
        return 0
    s = _ablate_settings(args.quick)
    jobs = [dict(task=t, seed=k, settings=s) for t in args.tasks for k in range(args.seeds)]
    out = Path(args.out_json) if args.out_json else RESULTS_DIR / f"lnp_drift{'_quick' if args.quick else ''}.json"
    data: Dict[str, Any] = {"run": run_info({"settings": s, "tasks": args.tasks, "seeds": list(range(args.seeds)),
                                             "quick": bool(args.quick)}), "results": []}
    out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    print(f"lnp_drift: {len(jobs)} jobs, lr grid {s['lrs']}, {s['epochs']} epochs, {args.jobs} processes", flush=True)
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for r in pool.map(run_case, jobs):
            data["results"].append(r)
            data["run"]["seconds"] = time.perf_counter() - t0
            out.with_suffix(".tmp").write_text(json.dumps(data, indent=1, default=float))
            out.with_suffix(".tmp").replace(out)  # saved after every job: a run cut short keeps what it finished
            print(f"  done {r['task']} seed {r['seed']} in {r['seconds']:.0f} s", flush=True)
    report(data, None)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
