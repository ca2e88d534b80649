"""Multi-chip placement: inter-chip spikes per step of the hypergraph partitioner against filling chips in order
and against plain edge-cut, on networks of 1 to 10 chips' worth; and the time to place 1e8 synapses on chips.

    python benchmarks/multichip.py [--quick]

Networks (built as integer Programs directly, then placed on cores by ``toolchain.passes.partition`` on the
``loihi2`` cores, 128 per chip, of the system target named in the table):

* ``sparse_local``: 4 layers of n LIF neurons, each neuron drawing 64 random sources of the previous layer within
  +-2% of its own position (a topographic random sparse network);
* ``sparse_uniform`` (full run only): the same with 32 sources drawn uniformly over the whole previous layer (no
  locality: every axon reaches most chips whatever the assignment, so no partitioner can do much there; its
  hypergraph of large hyperedges takes Mt-KaHyPar about a minute here);
* ``conv``: a stack of 3x3 convolutions (padding 1) on (W, H, 4) grids.

``toolchain.passes.multichip.partition_chips`` then assigns the cores to chips three ways (see that module):
``hypergraph`` (Mt-KaHyPar, one hyperedge per axon, km1), ``edgecut`` (METIS on the core graph) and ``inorder``
(chip = core // 128, Lava's open mapper); every assignment is scored with the same measure, the inter-chip spike
messages per step at the estimated rate of 1 spike per neuron per step (a spike crosses once per chip it reaches
beyond its own). Ratios are hypergraph over in-order and over edge-cut; the RESULT lines are their geometric
means over the cases that need 2 chips or more. ``partition_s_1e8_synapses``: the seconds of ``partition_chips``
(building the axon hypergraph from the Program and Mt-KaHyPar, ``compare=False``) on a 1.003e8-synapse network (43
of the conv layers, 688 cores on kapoho_point); the single-chip core placement before it is timed separately.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from toolchain.ir.storage import Conv, Csr  # noqa: E402
from toolchain.passes.multichip import partition_chips  # noqa: E402
from toolchain.passes.partition import partition  # noqa: E402
from toolchain.program import InputPort, NeuronGroup, Program, SynapseGroup  # noqa: E402
from toolchain.targets import load_target  # noqa: E402
from toolchain.textutil import table_lines  # noqa: E402


def _group(name: str, shape) -> NeuronGroup:
    n = int(np.prod(shape))
    return NeuronGroup(name, tuple(shape), du=np.array([1000]), dv=np.array([500]), vth=np.array([100]),
                       bias_mant=np.zeros(n, np.int64), bias_exp=np.zeros(n, np.int64))


def sparse_net(n: int, layers: int = 4, fan_in: int = 64, window: float = 0.02, seed: int = 0) -> Program:
    """``layers`` layers of ``n`` neurons; each neuron takes ``fan_in`` random sources of the previous layer
    within +-window*n of its position (``window >= 0.5``: uniformly over the whole layer)."""
    r = np.random.default_rng(seed)
    groups, syns, prev = [], [], "in"
    for k in range(layers):
        name = f"l{k}"
        groups.append(_group(name, (n,)))
        rows = np.repeat(np.arange(n, dtype=np.int64), fan_in)
        if window >= 0.5:
            cols = r.integers(0, n, rows.size)
        else:
            cols = (rows + r.integers(-int(window * n), int(window * n) + 1, rows.size)) % n
        key = np.unique(rows * n + cols)
        rows, cols = key // n, key % n
        indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n))])
        syns.append(SynapseGroup(f"w{k}", prev, name, Csr((n, n), indptr, cols, r.integers(-50, 60, rows.size)
                                                          .astype(np.int16))))
        prev = name
    return Program(groups, syns, [InputPort("in", (n,))], output=prev)


def conv_net(side: int, channels: int, layers: int, seed: int = 0) -> Program:
    """``layers`` 3x3 convolutions (padding 1) on (side, side, channels) grids."""
    r = np.random.default_rng(seed)
    shape = (side, side, channels)
    groups, syns, prev = [], [], "in"
    for k in range(layers):
        name = f"c{k}"
        groups.append(_group(name, shape))
        kern = r.integers(-20, 30, (channels, channels, 3, 3))
        syns.append(SynapseGroup(f"k{k}", prev, name, Conv(shape, shape, kern, padding=1)))
        prev = name
    return Program(groups, syns, [InputPort("in", shape)], output=prev)


def run_case(kind: str, size: int, target: str) -> dict:
    t = load_target(target)
    if kind == "conv":
        p = conv_net(128, 4, size)
    else:
        p = sparse_net(size, fan_in=64 if kind == "sparse_local" else 32,
                       window=0.02 if kind == "sparse_local" else 1.0)
    t0 = time.perf_counter()
    p = partition(p, t, compare=False)
    t_core = time.perf_counter() - t0
    t0 = time.perf_counter()
    q = partition_chips(p, t)
    t_chip = time.perf_counter() - t0
    mc = q.report["multichip"]
    tr = mc["traffic"]
    return {"kind": kind, "size": size, "target": target, "synapses": p.synapse_count, "cores": mc["cores"],
            "chips": mc["chips_used"], "inorder": tr["inorder"], "edgecut": tr["edgecut"],
            "hypergraph": tr["hypergraph"], "core_s": t_core, "chip_s": t_chip,
            "hyper_s": mc["seconds"]["hypergraph"] + mc["hypergraph_seconds"]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer cases (about 5 minutes on 2 idle cores)")
    ap.add_argument("--no-1e8", action="store_true", help="skip the 1e8-synapse timing")
    ap.add_argument("--only-1e8", action="store_true", help="only the 1e8-synapse timing")
    args = ap.parse_args(argv)
    if args.quick:
        cases = [("sparse_local", 60000, "kapoho_point"), ("sparse_local", 100000, "kapoho_point"),
                 ("conv", 16, "kapoho_point"), ("conv", 32, "kapoho_point")]
    else:
        cases = [("sparse_local", n, "kapoho_point") for n in (15000, 30000, 60000, 100000)] + \
                [("sparse_local", 140000, "hala_point"), ("sparse_uniform", 20000, "hala_point")] + \
                [("conv", n, "kapoho_point") for n in (8, 16, 32, 48)] + [("conv", n, "hala_point") for n in (64, 80)]
    rows = [("network", "size", "target", "synapses", "cores", "chips", "in-order", "edge-cut", "hypergraph",
             "hyp/in-order", "hyp/edge-cut", "core s", "chip s")]
    vs_in, vs_ec = [], []
    for kind, size, target in ([] if args.only_1e8 else cases):
        r = run_case(kind, size, target)
        a = r["hypergraph"] / r["inorder"] if r["inorder"] else float("nan")
        b = r["hypergraph"] / r["edgecut"] if r["edgecut"] else float("nan")
        if r["chips"] >= 2:
            vs_in.append(a)
            vs_ec.append(b)
        rows.append((kind, str(size) + (" layers" if kind == "conv" else " wide"), target, f"{r['synapses']:.3g}",
                     str(r["cores"]), str(r["chips"]), f"{r['inorder']:.4g}", f"{r['edgecut']:.4g}",
                     f"{r['hypergraph']:.4g}", f"{a:.3f}", f"{b:.3f}", f"{r['core_s']:.1f}", f"{r['chip_s']:.1f}"))
        print(f"  {kind} {size}: {r['cores']} cores on {r['chips']} chips, hypergraph/in-order {a:.3f}, "
              f"hypergraph/edge-cut {b:.3f}", flush=True)
    if len(rows) > 1:
        print("\n".join(table_lines(rows)), flush=True)
    gm = lambda v: float(math.exp(np.mean(np.log(v)))) if v else float("nan")  # noqa: E731
    if vs_in:
        print(f"\ninter-chip spikes per step (estimate: 1 spike per neuron per step); geometric means over the "
              f"{len(vs_in)} multi-chip cases: hypergraph/in-order {gm(vs_in):.3f}, hypergraph/edge-cut "
              f"{gm(vs_ec):.3f}")
    t_1e8 = None
    if not args.no_1e8:
        p = conv_net(128, 4, 43)
        t = load_target("kapoho_point")
        t0 = time.perf_counter()
        p = partition(p, t, compare=False)
        t_core = time.perf_counter() - t0
        t0 = time.perf_counter()
        q = partition_chips(p, t, compare=False)
        t_1e8 = time.perf_counter() - t0
        mc = q.report["multichip"]
        print(f"1e8 synapses: {p.synapse_count:.4g} synapses, {mc['cores']} cores on {mc['chips_used']} chips; "
              f"core placement {t_core:.1f} s (core_partition_s), chip assignment {t_1e8:.1f} s "
              f"(hypergraph {mc['hypergraph_seconds']:.1f} s + Mt-KaHyPar {mc['seconds']['hypergraph']:.1f} s)")
    if vs_in:
        print(f"RESULT interchip_traffic_vs_inorder {gm(vs_in):.4f}")
        print(f"RESULT interchip_traffic_vs_edgecut {gm(vs_ec):.4f}")
    if t_1e8 is not None:
        print(f"RESULT partition_s_1e8_synapses {t_1e8:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
