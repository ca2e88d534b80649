"""Write ``examples/data/demo_recurrent.nir``: a small recurrent CubaLIF network (16 -> 24 recurrent -> 5), built
with the seeded factories and saved with our own NIR exporter. ``make demo`` inspects it.

Run: ``.venv/bin/python examples/make_demo_graph.py OUT.nir`` (``--help``). Rewriting the shipped file takes its
path spelt out (``examples/data/demo_recurrent.nir``); with no argument nothing is written. ``--quick`` is
accepted for symmetry with the other examples (the graph is tiny either way).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from toolchain import ir
from toolchain.nir_io import export
from toolchain.testing import rng


def demo_graph(seed: int = 0) -> ir.Graph:
    """16 inputs -> 24 recurrent CubaLIF (reset subtract) -> 5 LIF readout, dt = 1 ms."""
    r = rng(seed)
    n_in, n_hid, n_out = 16, 24, 5
    rec = r.normal(0, 0.3, (n_hid, n_hid))
    rec[r.random((n_hid, n_hid)) < 0.7] = 0.0  # sparse recurrence, stored as CSR
    nodes = [
        ir.Input("spikes_in", shape=(n_in,)),
        ir.Affine("fc_in", weight=ir.Dense(r.normal(0.4, 0.5, (n_hid, n_in))), bias=np.zeros(n_hid)),
        ir.CubaLIF("hidden", tau_syn=5e-3, tau_mem=2e-2, r=1.0, v_threshold=1.0, w_in=4.0, reset_mode="subtract",
                   shape=(n_hid,)),
        ir.Linear("w_rec", weight=ir.Csr.from_dense(rec)),
        ir.Linear("fc_out", weight=ir.Dense(r.normal(0.3, 0.4, (n_out, n_hid)))),
        ir.LIF("readout", tau=1e-2, r=2.0, v_threshold=0.8, shape=(n_out,)),
        ir.Output("spikes_out", shape=(n_out,)),
    ]
    edges = [("spikes_in", "fc_in"), ("fc_in", "hidden"), ("hidden", "w_rec"), ("w_rec", "hidden"),
             ("hidden", "fc_out"), ("fc_out", "readout"), ("readout", "spikes_out")]
    return ir.Graph(nodes, edges, dt=1e-3)


SHIPPED = Path(__file__).resolve().parent / "data" / "demo_recurrent.nir"


def main(argv: list) -> int:
    ap = argparse.ArgumentParser(description="Write the demo's small recurrent NIR graph (16 -> 24 rec -> 5).")
    ap.add_argument("out", metavar="OUT.nir", help=f"file to write (the shipped copy is {SHIPPED})")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random weights (the shipped file: 0)")
    ap.add_argument("--quick", action="store_true", help="no effect (the graph is tiny); accepted by every example")
    args = ap.parse_args(argv[1:])
    out = Path(args.out)
    if out.suffix != ".nir":
        ap.error(f"OUT must end in .nir, got {args.out!r}")
    if out.is_dir():
        ap.error(f"{args.out} is a folder")
    if not out.parent.is_dir():
        ap.error(f"the folder {out.parent} does not exist")
    export(demo_graph(seed=args.seed), out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
