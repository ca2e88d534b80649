"""Compile time and cores used against the lower bound, for networks from 1e4 to 1e7 synapses.

    python benchmarks/partition.py [--quick] [--target loihi2] [--out DIR]

Networks (``toolchain.testing.random_lif_graph``): four fully connected LIF layers of equal width, either *dense*
(``Dense`` storage, width sqrt(S/4)) or *sparse* (``Csr``, every synapse kept with probability 0.25, width
sqrt(S/1)), for S = 1e4, 1e5, 1e6 and 1e7 synapses (widths up to 3162, so that every layer's inputs fit one
core's input axons on both targets). Wider random sparse layers (e.g. 5000 inputs at density 0.1 on Loihi 1's 4096
input axons) are bound by input axons: every core of such a layer needs almost every input axon, the optimum is
~7x the lower bound, and the bound, not the partition, is what is weak there. Each network goes through the whole pipeline
(``toolchain.compile.compile_graph``: normalise, quantise, partition and the stage checks, which recount every
core independently). Columns: synapses, compile seconds (best of ``--repeat`` runs; the graph is built outside
the timer), seconds per million synapses (flat = linear time), cores used, the lower bound (a true bound: no
partition of ours can use fewer cores; see ``toolchain.passes.partition``), their ratio and the binding
resource.

PilotNet-LIF against Intel's Loihi 2 compiler (when ``../shared/data/lava-dl/pilotnet_lif/network.net`` exists, or
``--pilotnet PATH``; ``--no-pilotnet`` skips it): the netx file is loaded and partitioned on loihi2 in both modes
(``pack``, ours, and ``intel_halving``, our emulation of Intel's compiler) and printed beside Intel's per-layer
table (``toolchain.netx_io.intel_pilotnet.format_intel_comparison``), with ``RESULT pilotnet_cores_intel_halving``
(Intel: 74), ``RESULT pilotnet_cores_pack`` and ``RESULT pilotnet_partition_s``.

``--quick`` runs every size once on one target (the 1e7 cases take well under a minute each here); without it
both Loihi targets are run, best of three. Writes ``partition_benchmark.png`` (compile time and cores/bound
against synapses) to ``--out``. Ends with ``RESULT cores_over_lower_bound <worst ratio>`` and
``RESULT compile_s_1e7 <slowest 1e7 compile, s>``.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from toolchain.compile import compile_graph  # noqa: E402
from toolchain.testing import random_lif_graph  # noqa: E402

SIZES = (10 ** 4, 10 ** 5, 10 ** 6, 10 ** 7)
LAYERS = 4
SPARSE_DENSITY = 0.25


def network(kind: str, synapses: int, seed: int = 0):
    """A LAYERS-layer LIF network with about ``synapses`` stored synapses."""
    if kind == "dense":
        width = int(round(np.sqrt(synapses / LAYERS)))
        return random_lif_graph([width] * (LAYERS + 1), seed=seed, storage="dense")
    width = int(round(np.sqrt(synapses / (LAYERS * SPARSE_DENSITY))))
    return random_lif_graph([width] * (LAYERS + 1), density=SPARSE_DENSITY, seed=seed, storage="csr")


def run_case(kind: str, synapses: int, target: str, repeat: int) -> dict:
    g = network(kind, synapses)
    best, prog = float("inf"), None
    for _ in range(repeat):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            prog = compile_graph(g, target)
            best = min(best, time.perf_counter() - t0)
    rep = prog.report
    return {"target": target, "kind": kind, "synapses": int(prog.synapse_count), "seconds": best,
            "us_per_synapse": 1e6 * best / prog.synapse_count, "cores": rep["cores_used"],
            "lower_bound": rep["lower_bound"], "ratio": rep["cores_used"] / rep["lower_bound"],
            "binding": rep["lower_bound_resource"], "partition_s": prog.metadata["pass_seconds"].get("partition"),
            "quantise_s": prog.metadata["pass_seconds"].get("quantise")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="one run per case, one target (under 5 minutes)")
    ap.add_argument("--target", default=None, help="only this target (default: loihi2 with --quick, else both)")
    ap.add_argument("--repeat", type=int, default=None, help="runs per case (best time is kept)")
    ap.add_argument("--out", default=os.path.join("benchmarks", "results"), help="directory for the plot")
    ap.add_argument("--pilotnet", default=str(PILOTNET), help="PilotNet-LIF netx file (Intel's table comparison)")
    ap.add_argument("--no-pilotnet", action="store_true", help="skip the PilotNet comparison")
    args = ap.parse_args(argv)
    targets = [args.target] if args.target else (["loihi2"] if args.quick else ["loihi2", "loihi1"])
    repeat = args.repeat or (1 if args.quick else 3)
    from tqdm import tqdm
    cases = [(t, k, s) for t in targets for k in ("dense", "sparse") for s in SIZES]
    rows = []
    for t, k, s in tqdm(cases, desc="compile", unit="net"):
        rows.append(run_case(k, s, t, repeat))
    head = ("target", "kind", "synapses", "compile s", "s per 1e6 syn", "quantise s", "partition s", "cores",
            "bound", "ratio", "binding")
    table = [head] + [(r["target"], r["kind"], f"{r['synapses']:.3g}", f"{r['seconds']:.2f}",
                       f"{r['us_per_synapse']:.2f}", f"{r['quantise_s']:.2f}", f"{r['partition_s']:.2f}",
                       str(r["cores"]), str(r["lower_bound"]), f"{r['ratio']:.3f}", r["binding"]) for r in rows]
    widths = [max(len(x[i]) for x in table) for i in range(len(head))]
    for i, row in enumerate(table):
        print("  ".join(c.rjust(w) for c, w in zip(row, widths)))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    _plot(rows, Path(args.out))
    worst = max(r["ratio"] for r in rows)
    big = [r["seconds"] for r in rows if r["synapses"] >= 0.5 * SIZES[-1]]
    print(f"RESULT cores_over_lower_bound {worst:.4f}")
    print(f"RESULT compile_s_1e7 {max(big):.2f}")
    if not args.no_pilotnet:
        pilotnet(Path(args.pilotnet))
    return 0


PILOTNET = Path(__file__).resolve().parents[2] / "shared" / "data" / "lava-dl" / "pilotnet_lif" / "network.net"


def pilotnet(path: Path) -> None:
    """PilotNet-LIF on loihi2, both partition modes, beside Intel's table."""
    if not path.exists():
        print(f"(PilotNet comparison skipped: {path} not found)")
        return
    from toolchain.netx_io import load_netx
    from toolchain.netx_io.intel_pilotnet import compare_with_intel, format_intel_comparison
    from toolchain.passes.partition import partition
    from toolchain.targets import load_target
    prog = load_netx(path)
    t0 = time.perf_counter()
    placed = partition(prog, load_target("loihi2"))
    secs = time.perf_counter() - t0
    print()
    print(format_intel_comparison(placed))
    tot = compare_with_intel(placed)["totals"]
    print(f"RESULT pilotnet_cores_intel_halving {tot['intel_halving']}")
    print(f"RESULT pilotnet_cores_pack {tot['pack']}")
    print(f"RESULT pilotnet_partition_s {secs:.2f}")


def _plot(rows, out: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    out.mkdir(parents=True, exist_ok=True)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    for t in sorted({r["target"] for r in rows}):
        for k in ("dense", "sparse"):
            rs = [r for r in rows if r["target"] == t and r["kind"] == k]
            a1.loglog([r["synapses"] for r in rs], [r["seconds"] for r in rs], "o-", label=f"{t} {k}")
            a2.semilogx([r["synapses"] for r in rs], [r["ratio"] for r in rs], "o-", label=f"{t} {k}")
    a1.set_xlabel("synapses")
    a1.set_ylabel("compile time (s)")
    a1.legend()
    a2.axhline(1.15, color="grey", ls="--", lw=1)
    a2.set_xlabel("synapses")
    a2.set_ylabel("cores used / lower bound")
    fig.tight_layout()
    fig.savefig(out / "partition_benchmark.png", dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
