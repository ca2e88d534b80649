"""A multi-objective sweep with 2 parallel Ray workers on a tiny task: the Pareto front of accuracy on the
compiled integer network against cores and energy.

    python benchmarks/sweep.py [--quick] [--out DIR] [--executor ray|processes]

The study (``toolchain.sweep``; the same as ``snnc sweep``): NSGA-II over the learning rate, hidden width,
magnitude-pruning sparsity, reset mode, the compiler's ``vth_max`` and the Cutoff epsilon; objectives accuracy
(integer network on the reference simulator, with early exit), cores and energy (J per sample, Loihi 1
per-operation figures); storage SQLite in ``--out`` (a fresh study each run). ``--quick``: 6 trials of 1 epoch on
200 digits; otherwise 16 trials of 3 epochs on 600. Prints the front and ends with ``RESULT sweep_trials N``,
``RESULT pareto_points K`` and ``RESULT sweep_s`` (wall seconds, Ray start included).
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from toolchain.sweep import _create_study, parse_sweep_config, run_sweep, write_report  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="6 small trials (about 1 minute)")
    ap.add_argument("--out", default=None, help="folder for the study (default: a temporary one)")
    ap.add_argument("--executor", default="ray", choices=["ray", "processes"])
    args = ap.parse_args(argv)
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="sweep_"))
    if (out / "study.db").exists():
        (out / "study.db").unlink()
    trials, epochs, n_train, n_test = (6, 1, 200, 60) if args.quick else (16, 3, 600, 200)
    cfg = parse_sweep_config({
        "study": {"name": "bench", "trials": trials, "workers": 2, "executor": args.executor,
                  "objectives": ["accuracy", "cores", "energy"], "out": str(out), "seed": 0},
        "task": {"steps": 8, "train_samples": n_train, "test_samples": n_test, "epochs": epochs},
        "space": {"lr": {"low": 2e-3, "high": 3e-2, "log": True}, "hidden": {"choices": [8, 16, 32, 64]},
                  "sparsity": {"low": 0.0, "high": 0.9}, "reset": {"choices": ["zero", "subtract"]},
                  "vth_max": {"choices": [1024, 16384]}, "cutoff_eps": {"low": 0.0, "high": 0.2}},
    }, "benchmarks/sweep.py")
    t0 = time.perf_counter()
    front = run_sweep(cfg)
    sec = time.perf_counter() - t0
    lines = write_report(_create_study(cfg), cfg, front)
    print(f"{front['trials']} trials by 2 {args.executor} workers ({front['trials_run']}) in {sec:.1f} s; "
          f"Pareto front ({len(front['rows'])} points, plot {out / 'pareto.png'}):")
    print("\n".join(lines))
    print(f"RESULT sweep_trials {front['trials']}")
    print(f"RESULT pareto_points {len(front['rows'])}")
    print(f"RESULT sweep_s {sec:.1f}")
    if not args.out:
        shutil.rmtree(out, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
