"""Loihi 2 deployment through netx, measured against what no one here wrote: Intel's Loihi 2 states for
PilotNet-LIF, lava-dl's tinynet ground truth, lava-dl 0.6.0's own netx reader, and Intel's compiler's core table.

    python benchmarks/netx.py [--quick] [--corpus N] [--out DIR]

Parts (each printed as a table):

1. **Intel's traces.** ``pilotnet_lif/network.net`` driven by ``image.npy`` as lava-dl's hardware test drives it
   (bias of the input layer, ``reset_interval=16``, 15 steps) on the reference simulator and — without
   ``--quick`` — on Lava through our backend (Conv, LIFReset and bias inputs as Lava processes; several minutes
   on 2 cores): every recorded ``conv-K``/``fc-K`` spike and ``u`` array at every step, ``v`` as the data README
   says (0 after a spike where the recording holds 128); ``fc-3-u/-v`` (float, recorded differently) reported.
2. **tinynet.** Output spikes against ``output.npy`` as lava-dl's ``test_tinynet`` compares them, and every
   spike/u/v against lava-dl's own reader.
3. **Round trip.** PilotNet ``.net`` -> Program -> ``.net`` -> Program reproduces Intel's states (reference);
   tinynet's round trip through lava-dl's reader; without ``--quick`` also PilotNet's exported file through
   lava-dl's reader (its 76k-neuron layers make that run several minutes).
4. **Cores.** ``compile_netx(pilotnet)`` on ``loihi2`` per layer beside Intel's table (74 cores): our core model
   placed with Intel's halving rule (``pilotnet_cores``, the calibration check — the target's figures were fitted
   to this table, see ``hw_targets/loihi2.toml``), and our own packing (``pilotnet_cores_packed``, what
   ``snnc compile`` keeps).
5. **Export corpus.** Random integer Programs drawn like the test suite's bit-exactness corpus
   (:func:`toolchain.testing.int_program`: sizes, storage, recurrence, skips, graded input, delays, reset modes,
   per-neuron parameters, sign modes, weight bits and exponents, initial voltages) plus a netx-shaped half
   (zero reset, one binary input, biases on netx's grid). Each is either refused by :func:`check_netx` with the
   field netx cannot hold (counted per field), or exported and run through lava-dl's reader against the
   reference simulator; ``netx_export_share`` = exact / exported (goal 1.0).

``--quick`` (a few minutes): skips the two PilotNet Lava runs and draws 8 corpus programs instead of 40; it still
shows every claim except "PilotNet on Lava" and "PilotNet's exported file in lava-dl", which the full run adds.
Ends with ``RESULT pilotnet_trace_exact``, ``RESULT tinynet_exact``, ``RESULT netx_roundtrip_exact``,
``RESULT pilotnet_cores``, ``RESULT pilotnet_cores_vs_intel``, ``RESULT pilotnet_cores_packed``,
``RESULT netx_export_share``.
"""
from __future__ import annotations

import argparse
import collections
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from toolchain.backends.lava_dl import run_netx_file  # noqa: E402
from toolchain.backends.netx import check_netx, export_netx, netx_network_args  # noqa: E402
from toolchain.errors import ToolchainError  # noqa: E402
from toolchain.netx_io import compile_netx, load_netx  # noqa: E402
from toolchain.netx_io.traces import (PILOTNET_RESET_INTERVAL, PILOTNET_STEPS, compare_pilotnet,  # noqa: E402
                                      format_trace_table, pilotnet_exact)
from toolchain.program import NeuronGroup, Program  # noqa: E402
from toolchain.sim.reference import simulate  # noqa: E402
from toolchain.sim.record import SimResult  # noqa: E402
from toolchain.testing import int_inputs, int_program, make_active  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "lava-dl"
INTEL_TOTAL_CORES = 74


def by_group(res: SimResult, program: Program) -> SimResult:
    """lava-dl's ``layer<k>`` records renamed to the Program's k-th group."""
    names = list(program.groups)
    pick = lambda d: {g: d[f"layer{k}"] for k, g in enumerate(names) if f"layer{k}" in d}  # noqa: E731
    return SimResult(spikes=pick(res.spikes), u=pick(res.u), v=pick(res.v), output=res.output,
                     output_group=names[-1], output_kind="spikes", steps_run=res.steps_run, backend=res.backend,
                     groups=names)


def pilotnet_part(quick: bool) -> dict:
    p = load_netx(DATA / "pilotnet_lif" / "network.net", reset_interval=PILOTNET_RESET_INTERVAL)
    image = np.load(DATA / "pilotnet_lif" / "image.npy")[None]
    out = {}
    t0 = time.perf_counter()
    ref = simulate(p, image, steps=PILOTNET_STEPS, record=True)
    out["reference_s"] = time.perf_counter() - t0
    rows = compare_pilotnet(ref, p, DATA / "pilotnet_lif")
    print("\n== 1. PilotNet-LIF against Intel's Loihi 2 states (reference simulator)")
    print(format_trace_table(rows))
    out["reference_exact"] = pilotnet_exact(rows)
    out["rows"] = rows
    if not quick:
        from toolchain.backends.lava import run_lava
        t0 = time.perf_counter()
        lav = run_lava(p, image, steps=PILOTNET_STEPS, record=True)
        out["lava_s"] = time.perf_counter() - t0
        out["lava_exact"] = pilotnet_exact(compare_pilotnet(lav, p, DATA / "pilotnet_lif"))
        out["lava_equals_reference"] = ref.first_mismatch(lav) is None
        print(f"Lava (our backend, fixed_pt): Intel's states {'reproduced' if out['lava_exact'] else 'NOT reproduced'}"
              f", equal to the reference at every spike/u/v: {out['lava_equals_reference']} "
              f"({out['lava_s']:.0f} s against {out['reference_s']:.1f} s for the reference)")
    else:
        print("(--quick: PilotNet on Lava skipped; the full run adds it)")
    return out


def tinynet_part() -> dict:
    path = DATA / "tinynet" / "tiny.net"
    p = load_netx(path, reset_interval=17)
    bias = np.load(DATA / "tinynet" / "input_bias.npy")[None].astype(np.int32)
    ref = simulate(p, bias, steps=20, record=True)
    gt = np.load(DATA / "tinynet" / "output.npy")[0].transpose([2, 1, 0, 3])[..., 1:]
    out_name = list(p.groups)[-1]
    ours = np.moveaxis(ref.spikes[out_name][0].reshape((20,) + p.groups[out_name].shape), 0, -1)[..., 2:17]
    gt_err = int(np.abs(ours.astype(np.int64) - gt.astype(np.int64)).sum())
    lavadl = by_group(run_netx_file(path, bias, 20, reset_interval=17), p)
    same = ref.first_mismatch(lavadl) is None
    print("\n== 2. tinynet")
    print(f"output spikes vs lava-dl's ground truth (output[..., 2:17] as test_tinynet compares): error {gt_err} "
          f"over {int(gt.sum())} spikes; every spike/u/v vs lava-dl's reader: {'equal' if same else 'DIFFERENT'}")
    return {"exact": gt_err == 0 and same}


def roundtrip_part(quick: bool, out_dir: Path) -> dict:
    print("\n== 3. Round trip netx -> Program -> netx")
    res = {}
    p = load_netx(DATA / "pilotnet_lif" / "network.net", reset_interval=PILOTNET_RESET_INTERVAL)
    path = export_netx(p, out_dir / "pilotnet_roundtrip.net")
    q = load_netx(path, reset_interval=PILOTNET_RESET_INTERVAL)
    image = np.load(DATA / "pilotnet_lif" / "image.npy")[None]
    res["pilotnet_reread"] = pilotnet_exact(compare_pilotnet(simulate(q, image, steps=PILOTNET_STEPS, record=True),
                                                            q, DATA / "pilotnet_lif"))
    print(f"PilotNet exported and re-read: Intel's states {'reproduced' if res['pilotnet_reread'] else 'NOT'}")
    t = load_netx(DATA / "tinynet" / "tiny.net", reset_interval=17)
    tpath = export_netx(t, out_dir / "tinynet_roundtrip.net")
    bias = np.load(DATA / "tinynet" / "input_bias.npy")[None].astype(np.int32)
    got = by_group(run_netx_file(tpath, bias, 20, **netx_network_args(t)), t)
    res["tinynet_lavadl"] = simulate(t, bias, steps=20, record=True).first_mismatch(got) is None
    print(f"tinynet exported, run by lava-dl's reader: {'equal' if res['tinynet_lavadl'] else 'DIFFERENT'}")
    if not quick:
        got = by_group(run_netx_file(path, image, PILOTNET_STEPS, **netx_network_args(p)), p)
        res["pilotnet_lavadl"] = pilotnet_exact(compare_pilotnet(got, p, DATA / "pilotnet_lif"))
        print(f"PilotNet exported, run by lava-dl's reader: Intel's states "
              f"{'reproduced' if res['pilotnet_lavadl'] else 'NOT reproduced'}")
    else:
        print("(--quick: lava-dl's reader on the exported PilotNet skipped; the full run adds it)")
    return res


def cores_part() -> dict:
    print("\n== 4. Cores on loihi2 against Intel's compiler (lava-dl PilotNet benchmark notebook)")
    from toolchain.netx_io.intel_pilotnet import compare_with_intel, format_intel_comparison
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prog = compile_netx(DATA / "pilotnet_lif" / "network.net", "loihi2", reset_interval=PILOTNET_RESET_INTERVAL)
    print(format_intel_comparison(prog))
    cmp = compare_with_intel(prog)
    totals = cmp["totals"]
    print(f"total: Intel {INTEL_TOTAL_CORES}; our core model with Intel's halving {totals['intel_halving']}; "
          f"our packing {totals['pack']} (the placement snnc compile keeps)")
    return {"cores": int(totals["intel_halving"]), "packed": int(totals["pack"])}


def corpus(n: int, seed: int = 0):
    """``n`` random Programs: half drawn like tests/test_lava_bitexact.py's corpus, half netx-shaped."""
    r = np.random.default_rng(seed)
    for i in range(n):
        shaped = i % 2 == 1
        sizes = [int(r.integers(2, 14))] + [int(r.integers(2, 12)) for _ in range(int(r.integers(1, 4)))]
        opts = dict(storage=str(r.choice(["dense", "csr", "structured", "mixed"])),
                    density=float(r.choice([0.2, 0.5, 0.9])), recurrent=bool(r.random() < 0.5),
                    max_delay=int(r.choice([0, 0, 1, 3])), per_neuron=bool(r.random() < 0.5),
                    sign_modes=[("mixed",), ("excitatory",), ("inhibitory",),
                                ("mixed", "excitatory", "inhibitory")][int(r.integers(0, 4))],
                    weight_bits=(int(r.integers(1, 9)), 8))
        if shaped:
            opts.update(reset_mode="zero", weight_exp=(0, 0), weight_bits=(8,))
            if opts["recurrent"]:
                opts["max_delay"] = 0
        else:
            opts.update(skip=bool(r.random() < 0.5), graded_bits=int(r.choice([0, 0, 1, 5, 16])),
                        reset_mode=str(r.choice(["zero", "subtract", "mixed"])), readout=bool(r.random() < 0.3),
                        weight_exp=(int(r.integers(-3, 1)), int(r.integers(0, 3))), v_init=bool(r.random() < 0.5))
        p = int_program(sizes, seed=int(r.integers(0, 2 ** 16)), **opts)
        if shaped:  # biases on netx's grid (bias_exp 6), on a third of the neurons
            p = Program([NeuronGroup(g.name, g.shape, g.du, g.dv, g.vth,
                                     r.integers(-3, 4, g.size) * (r.random(g.size) < 0.33), 6, g.reset_mode,
                                     g.spiking, g.source) for g in p.groups.values()],
                        p.synapses, p.inputs, p.output, dt=p.dt)
        yield ("netx-shaped" if shaped else "suite"), p


def corpus_part(n: int, out_dir: Path) -> dict:
    print(f"\n== 5. Export corpus ({n} random Programs)")
    refused = collections.Counter()
    exported = exact = 0
    rows = []
    for k, (kind, p) in enumerate(corpus(n)):
        try:
            check_netx(p)
        except ToolchainError as exc:
            refused[exc.field or "?"] += 1
            rows.append((k, kind, "refused", exc.field))
            continue
        x = int_inputs(p, 1, 12, rate=0.4, seed=k)
        p = make_active(p, x)
        try:
            path = export_netx(p, out_dir / f"corpus{k}.net")
        except ToolchainError as exc:  # make_active changed thresholds only; a refusal now is still a refusal
            refused[exc.field or "?"] += 1
            rows.append((k, kind, "refused", exc.field))
            continue
        exported += 1
        ref = simulate(p, x, steps=12, record=True)
        got = by_group(run_netx_file(path, x, 12, **netx_network_args(p)), p)
        ok = ref.first_mismatch(got) is None
        exact += ok
        rows.append((k, kind, "exact" if ok else "MISMATCH", ""))
    for k, kind, status, fld in rows:
        print(f"  {k:3d} {kind:12s} {status}{'  (' + fld + ')' if fld else ''}")
    print(f"exported {exported}, bit-exact through lava-dl {exact}; refused {sum(refused.values())} by field: "
          + ", ".join(f"{f} {c}" for f, c in refused.most_common()))
    return {"exported": exported, "exact": exact}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--corpus", type=int, default=None, help="corpus size (default 40, 8 with --quick)")
    ap.add_argument("--out", default="build/benchmarks/netx")
    args = ap.parse_args()
    if not DATA.is_dir():
        sys.exit(f"error: {DATA} is missing (the shared lava-dl data)")
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    pil = pilotnet_part(args.quick)
    tiny = tinynet_part()
    rt = roundtrip_part(args.quick, out_dir)
    cores = cores_part()
    corp = corpus_part(args.corpus or (8 if args.quick else 40), out_dir)
    trace_exact = pil["reference_exact"] and pil.get("lava_exact", True) and pil.get("lava_equals_reference", True)
    share = corp["exact"] / corp["exported"] if corp["exported"] else float("nan")
    print(f"\n(total {time.perf_counter() - t0:.0f} s)")
    print(f"RESULT pilotnet_trace_exact {int(trace_exact)}")
    print(f"RESULT tinynet_exact {int(tiny['exact'])}")
    print(f"RESULT netx_roundtrip_exact {int(all(rt.values()))}")
    print(f"RESULT pilotnet_cores {cores['cores']}")
    print(f"RESULT pilotnet_cores_vs_intel {cores['cores'] / INTEL_TOTAL_CORES:.3f}")
    print(f"RESULT pilotnet_cores_packed {cores['packed']}")
    print(f"RESULT netx_export_share {share:.3f}")


if __name__ == "__main__":
    main()
