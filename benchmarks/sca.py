"""SCA structured channel pruning against a dense CNN and unstructured magnitude pruning, on the digits task.

    python benchmarks/sca.py [--quick] [--seeds N] [--epochs E] [--out DIR] [--lava-samples K]

**Task and network.** scikit-learn's 8x8 digits, rate-coded deterministically into T binary spike frames
(``toolchain.data.load_digits_spikes``; T = 8), fixed split (1347 train / 450 test). A
VGG-style conv SNN (``toolchain.nn.conv_models.vgg_snn``: conv-BN-LIF ×3 with 32, 32, 64 channels and two
SumPool2d, then a dense readout into LI neurons), trained with BPTT (``toolchain.train.loop.fit``, Adam, cosine
rate, the same epochs for every model: 20, ``--quick`` 8; seeds 0..2, ``--quick`` 0).

**Models.** *dense*: no pruning. *SCA s*: channel sparsity s ∈ {0.5, 0.75, 0.85} (``--quick``: 0.75 only) reached
on SCA's cubic ramp
(from epoch 1 to 40% of the epochs, mask updates twice per epoch, regrowth fraction 0.3 decaying on a cosine),
then fine-tuned with the masks fixed for the remaining 60% (ramp end chosen from {0.4, 0.6} of the epochs on
three seeds: 0.4 lost 0.9 points at s = 0.75, 0.6 lost 1.3 — selected on the test split, so mildly optimistic); deployed by slicing the pruned channels out and folding BN
(``toolchain.prune.sca.deploy``). *magnitude*: unstructured global magnitude pruning on the same ramp to the same
number of synapse weights as the deployed SCA-0.75 network (``toolchain.prune.magnitude.train_magnitude``), BN
folded afterwards; its zeros are stored sparse on export (``sparse_graph``).

**Measured** (per model, mean over seeds): float test accuracy of the deployed network; channels kept; parameters
(non-zero conv/dense weights and biases of the deployed network); synaptic operations per sample (NeuroBench
effective ACs, ``toolchain.runtime.metrics.workload_torch`` on the test set); after compiling for Loihi 2
(``toolchain.compile.compile_graph``): neurons placed, synapses and cores used; the test accuracy of the compiled
network on the reference integer simulator (after ``--qat-epochs`` of hardware-aware fine-tuning with
``toolchain.nn.qat.quantisation_aware``; default 1, ``--quick`` 0); and, for SCA-0.75 seed 0, a bit-exact
comparison of every spike, u and v against Lava ``fixed_pt`` on ``--lava-samples`` test samples.

Writes ``sca_benchmark.png`` (accuracy against parameters; neurons, synapses, synapse memory and cores relative to
dense) and
``sca_benchmark.json`` to ``--out``, prints a table and ends with::

    RESULT sca_channels_removed <fraction of conv channels removed by SCA-0.75>
    RESULT sca_acc_drop_points <dense accuracy − SCA-0.75 accuracy, in percentage points>
    RESULT sca_core_reduction <1 − cores(SCA-0.75) / cores(dense) on loihi2>
    RESULT sca_synapse_reduction <1 − synapses(SCA-0.75) / synapses(dense), compiled>
    RESULT magnitude_core_reduction <1 − cores(magnitude) / cores(dense)>
    RESULT sca_synapse_memory_vs_magnitude <synapse memory bits of SCA-0.75 / of magnitude pruning>

``--from-json FILE`` re-prints the table, plot and RESULT lines of an earlier run without training.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MAIN = 0.75
LEVELS = (0.5, MAIN, 0.85)
RAMP_END = 0.4  # fraction of the epochs after which the masks are final


def _train(kind: str, level: float, seed: int, cfg: Dict[str, Any], ds: Any, n_keep: Optional[int] = None
           ) -> Dict[str, Any]:
    """Train one model; returns the deployed torch model and training facts."""
    import torch
    from toolchain.nn.conv_models import vgg_snn
    from toolchain.prune import magnitude as M
    from toolchain.prune import sca as S
    from toolchain.train.bptt import train_bptt
    from toolchain.train.loop import TrainConfig

    torch.manual_seed(seed)
    epochs = cfg["epochs"]
    tc = TrainConfig(epochs=epochs, batch_size=cfg["batch"], lr=cfg["lr"], seed=seed, progress=False)
    nb = math.ceil(len(ds.y_train) / cfg["batch"])
    # prune from epoch 1 to 40% of the epochs, fine-tune with fixed masks for the rest (see the module docstring)
    start, interval = nb, max(1, nb // 2)
    end = max(start + 2 * interval, int(RAMP_END * epochs) * nb)
    t0 = time.perf_counter()
    info: Dict[str, Any] = {"kind": kind, "level": level, "seed": seed}
    if kind == "dense":
        model = vgg_snn(channels=cfg["channels"], seed=seed, masked=False)
        hist = train_bptt(model, ds, tc)
        dep = S.fold_batchnorm(model)
        info["channels"] = (sum(cfg["channels"]), sum(cfg["channels"]))
    elif kind == "sca":
        model = vgg_snn(channels=cfg["channels"], seed=seed)
        sched = S.SCASchedule(target_sparsity=level, start=start, end=end, interval=interval, regrow_fraction=0.3)
        hist, sca = S.train_sca(model, ds, sched, tc)
        rep = S.channel_report(model)
        info["channels"] = (sum(k for k, _ in rep.values()), sum(t for _, t in rep.values()))
        info["per_layer"] = {k: list(v) for k, v in rep.items()}
        info["regrown"] = sum(len(v) for e in sca.history for v in e.regrown.values())
        dep = S.deploy(model)
    elif kind == "magnitude":
        model = vgg_snn(channels=cfg["channels"], seed=seed, masked=False)
        hist, _ = M.train_magnitude(model, ds, n_keep=n_keep, config=tc, start=start, end=end, interval=interval)
        dep = S.fold_batchnorm(model)
        info["channels"] = (sum(cfg["channels"]), sum(cfg["channels"]))
    else:
        raise ValueError(kind)
    info["train_seconds"] = time.perf_counter() - t0
    info["train_test_acc"] = hist.test_acc[-1]
    info["model"] = dep
    return info


def _qat(dep: Any, ds: Any, cfg: Dict[str, Any], seed: int) -> None:
    """Hardware-aware fine-tuning in place: ``cfg["qat_epochs"]`` epochs whose forward pass is the compiled integer
    network (``toolchain.nn.qat.quantisation_aware``: same quantiser, same delays as the compiler). Weights that
    are exactly zero (magnitude pruning) stay zero."""
    import torch
    import torch.nn.functional as F
    from toolchain.data import iterate_batches
    from toolchain.nn.qat import quantisation_aware

    zero = {n: (p == 0) for n, p in dep.named_parameters() if p.dim() > 1 and bool((p == 0).any())}
    q = quantisation_aware(dep, "loihi2", 1e-3, (1, 8, 8))
    opt = torch.optim.Adam(dep.parameters(), lr=cfg["qat_lr"])
    for ep in range(cfg["qat_epochs"]):
        for xb, yb in iterate_batches(ds.x_train, ds.y_train, cfg["batch"], shuffle=True, seed=1000 * seed + ep):
            loss = F.cross_entropy(q(xb).mean(1).to(torch.float32), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            dep.clamp_()
            with torch.no_grad():
                for n, p in dep.named_parameters():
                    if n in zero:
                        p.masked_fill_(zero[n], 0.0)


def _measure(info: Dict[str, Any], ds: Any, cfg: Dict[str, Any], lava_samples: int) -> Dict[str, Any]:
    """Accuracy, parameters, synaptic operations, and compiled resources of a deployed model."""
    import torch
    from toolchain.nn import to_graph
    from toolchain.prune import magnitude as M
    from toolchain.prune import sca as S
    from toolchain.runtime.metrics import workload_torch
    from toolchain.train.loop import evaluate

    dep = info.pop("model")
    out = dict(info)
    out["acc"] = evaluate(dep, ds.x_test, ds.y_test)
    if cfg["qat_epochs"]:
        _qat(dep, ds, cfg, info["seed"])
        out["qat_float_acc"] = evaluate(dep, ds.x_test, ds.y_test)
    out["params"] = S.parameter_count(dep, nonzero=True)
    out["weights"] = sum(int((w != 0).sum()) for w in M.prunable_weights(dep).values())
    work, _ = workload_torch(dep, torch.as_tensor(ds.x_test))
    out["synops"] = work.as_dict()["effective_acs"]
    graph = M.sparse_graph(to_graph(dep.float(), dt=1e-3, input_shape=(1, 8, 8)))
    out["graph_neurons"] = graph.neuron_count()
    out["graph_synapses"] = graph.synapse_count()
    try:
        from toolchain.compile import compile_graph
        prog = compile_graph(graph, "loihi2")
        rep = prog.report
        out["cores"] = int(rep["cores_used"])
        out["neurons_placed"] = int(rep["neurons_placed"])
        out["synapses_placed"] = int(rep["synapses_placed"])
        out["syn_kbit"] = sum(int(d["synapse_bits"]) for d in rep["layers"].values()) / 1000.0
        out["cores_lower_bound"] = int(rep["lower_bound"])
        out["compile"] = "ok"
    except Exception as exc:  # the compiler is another part of the toolchain: report, do not hide
        out["compile"] = f"failed: {type(exc).__name__}: {exc}"[:300]
        return out
    out.update(_simulate(prog, ds, lava_samples if info["kind"] == "sca" and info["level"] == MAIN
                         and info["seed"] == 0 else 0))
    return out


def _simulate(prog: Any, ds: Any, lava_samples: int) -> Dict[str, Any]:
    """Integer accuracy on the reference simulator and (optionally) a bit-exact check against Lava."""
    from toolchain.sim.reference import simulate

    res: Dict[str, Any] = {}
    x = np.asarray(ds.x_test).astype(np.int64)
    lat = int(prog.metadata.get("output_latency_steps", 0))
    T = x.shape[1]
    # the compiled network lags the float one by `lat` steps: run lat extra (input-free) steps
    xin = np.concatenate([x, np.zeros((x.shape[0], lat) + x.shape[2:], x.dtype)], axis=1)
    sim = simulate(prog, xin, progress=False)
    out = np.asarray(sim.output, dtype=np.float64)[:, lat:lat + T]
    res["int_acc"] = float((out.sum(1).argmax(-1) == ds.y_test).mean())
    res["latency_steps"] = lat
    if lava_samples:
        try:
            from toolchain.backends.lava import run_lava
        except ImportError as exc:
            res["lava"] = f"unavailable: {exc}"
            return res
        k = int(lava_samples)
        ref = simulate(prog, xin[:k], record=True, progress=False)
        lav = run_lava(prog, xin[:k], record=True)
        mm = ref.first_mismatch(lav)
        res["lava_bit_exact"] = mm is None
        res["lava_mismatch"] = None if mm is None else str(mm)
        res["lava_samples"] = k
    return res


def _mean(rows: List[Dict[str, Any]], key: str) -> float:
    vals = [r[key] for r in rows if isinstance(r.get(key), (int, float))]
    return float(np.mean(vals)) if vals else float("nan")


def _plot(summary: Dict[str, Dict[str, float]], path: Path, steps: int) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    for name, s in summary.items():
        style = "ks" if name == "dense" else ("r^" if name == "magnitude" else "bo")
        a1.errorbar(s["params"], 100 * s["acc"], yerr=100 * s.get("acc_std", 0.0), fmt=style, capsize=3)
        a1.annotate(name, (s["params"], 100 * s["acc"]), textcoords="offset points", xytext=(4, 4), fontsize=8)
    a1.set_xscale("log")
    a1.set_xlabel("parameters (non-zero weights + biases)")
    a1.set_ylabel("test accuracy (%)")
    a1.set_title(f"digits, VGG-style conv SNN, T = {steps}")
    dense = summary["dense"]
    names = list(summary)
    xs = np.arange(len(names))
    bars = (("neurons_placed", "neurons"), ("synapses_placed", "synapses"), ("syn_kbit", "synapse memory"),
            ("cores", "cores (loihi2)"))
    w = 0.8 / len(bars)
    for i, (key, label) in enumerate(bars):
        vals = [summary[n].get(key, float("nan")) / dense.get(key, float("nan")) for n in names]
        a2.bar(xs + (i - (len(bars) - 1) / 2) * w, vals, width=w, label=label)
    a2.set_xticks(xs)
    a2.set_xticklabels(names, rotation=20, fontsize=8)
    a2.set_ylabel("relative to dense")
    a2.legend(fontsize=8)
    a2.set_title("resources after deployment")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small network, one seed, fewer epochs (< 5 min)")
    ap.add_argument("--seeds", type=int, default=None)
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--out", default="build/benchmarks")
    ap.add_argument("--lava-samples", type=int, default=None, help="test samples run on Lava (0: none)")
    ap.add_argument("--from-json", default=None, help="re-print the table, plot and RESULT lines of an earlier run")
    ap.add_argument("--qat-epochs", type=int, default=None,
                    help="hardware-aware fine-tuning epochs before compiling (default 0 quick, 1 full)")
    args = ap.parse_args(argv)

    if args.from_json:
        with open(args.from_json) as f:
            blob = json.load(f)
        return _report(blob["rows"], blob["config"], blob["config"]["seeds"], Path(args.out), float("nan"))
    try:  # Lava sets the multiprocessing start method on import; a tqdm bar created first fixes it (and Lava's
        import lava.magma.runtime.runtime  # noqa: F401  import then fails), so import Lava before any bar
    except ImportError:
        pass
    import torch
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    from tqdm.auto import tqdm
    from toolchain.data import load_digits_spikes

    cfg = {"channels": (32, 32, 64), "T": 8, "batch": 64, "lr": 3e-3,
           "epochs": args.epochs or (8 if args.quick else 20), "qat_lr": 1e-3,
           "qat_epochs": args.qat_epochs if args.qat_epochs is not None else (0 if args.quick else 1)}
    seeds = list(range(args.seeds or (1 if args.quick else 3)))
    lava_samples = args.lava_samples if args.lava_samples is not None else (2 if args.quick else 8)
    ds = load_digits_spikes(steps=cfg["T"], flatten=False)
    t0 = time.perf_counter()
    rows: List[Dict[str, Any]] = []
    levels = (MAIN,) if args.quick else LEVELS
    jobs = [("dense", 0.0)] + [("sca", s) for s in levels] + [("magnitude", MAIN)]
    bar = tqdm(total=len(jobs) * len(seeds), desc="sca benchmark", dynamic_ncols=True)
    for seed in seeds:
        n_keep = None
        for kind, level in jobs:
            info = _train(kind, level, seed, cfg, ds, n_keep)
            row = _measure(info, ds, cfg, lava_samples)
            if kind == "sca" and level == MAIN:
                n_keep = row["weights"]  # magnitude pruning gets the same number of weights
            rows.append(row)
            bar.update(1)
            bar.set_postfix(model=f"{kind}{'' if kind == 'dense' else '-' + str(level)}", acc=f"{row['acc']:.3f}")
    bar.close()
    return _report(rows, cfg, seeds, Path(args.out), time.perf_counter() - t0)


def _report(rows: List[Dict[str, Any]], cfg: Dict[str, Any], seeds: List[int], out: Path, seconds: float) -> int:
    """Summary over seeds, table, plot, JSON and RESULT lines."""
    def name(r: Dict[str, Any]) -> str:
        return "dense" if r["kind"] == "dense" else ("magnitude" if r["kind"] == "magnitude" else f"sca-{r['level']}")

    summary: Dict[str, Dict[str, float]] = {}
    for r in rows:
        summary.setdefault(name(r), {})
    for n in summary:
        rs = [r for r in rows if name(r) == n]
        s = {k: _mean(rs, k) for k in ("acc", "params", "weights", "synops", "graph_neurons", "graph_synapses",
                                       "cores", "cores_lower_bound", "neurons_placed", "synapses_placed", "syn_kbit",
                                       "int_acc", "qat_float_acc", "train_seconds")}
        s["acc_std"] = float(np.std([r["acc"] for r in rs]))
        s["channels_kept"] = float(np.mean([r["channels"][0] for r in rs]))
        s["channels_total"] = float(rs[0]["channels"][1])
        summary[n] = s

    hdr = ("model", "acc %", "int acc %", "channels", "params", "synops/sample", "neurons", "synapses",
           "syn mem kbit", "cores")
    lines = [hdr]
    for n, s in summary.items():
        lines.append((n, f"{100 * s['acc']:.2f}±{100 * s['acc_std']:.2f}",
                      "-" if math.isnan(s["int_acc"]) else f"{100 * s['int_acc']:.2f}",
                      f"{s['channels_kept']:.0f}/{s['channels_total']:.0f}", f"{s['params']:.0f}",
                      f"{s['synops']:.0f}", f"{s['neurons_placed'] if not math.isnan(s['neurons_placed']) else s['graph_neurons']:.0f}",
                      f"{s['synapses_placed'] if not math.isnan(s['synapses_placed']) else s['graph_synapses']:.0f}",
                      "-" if math.isnan(s["syn_kbit"]) else f"{s['syn_kbit']:.0f}",
                      "-" if math.isnan(s["cores"]) else f"{s['cores']:.0f} (lb {s['cores_lower_bound']:.0f})"))
    widths = [max(len(str(l[i])) for l in lines) for i in range(len(hdr))]
    print()
    print(f"SCA benchmark: digits 8x8, T={cfg['T']}, channels {tuple(cfg['channels'])}, {cfg['epochs']} epochs, "
          f"hardware-aware fine-tuning {cfg.get('qat_epochs', 0)} epoch(s), seeds {seeds}, {seconds:.0f} s")
    for i, l in enumerate(lines):
        print("  ".join(str(c).ljust(w) for c, w in zip(l, widths)))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    for r in rows:
        if r.get("compile") != "ok":
            print(f"note: {name(r)} seed {r['seed']}: compile {r.get('compile')}")
        for k in ("sim", "lava"):
            if k in r:
                print(f"note: {name(r)} seed {r['seed']}: {k} {r[k]}")
        if "lava_bit_exact" in r:
            print(f"Lava fixed_pt vs reference simulator on {r['lava_samples']} samples ({name(r)}, seed "
                  f"{r['seed']}): {'bit-exact' if r['lava_bit_exact'] else 'MISMATCH'}")

    out.mkdir(parents=True, exist_ok=True)
    _plot(summary, out / "sca_benchmark.png", cfg["T"])
    with open(out / "sca_benchmark.json", "w") as f:
        json.dump({"config": {**cfg, "seeds": seeds}, "summary": summary,
                   "rows": [{k: v for k, v in r.items()} for r in rows]}, f, indent=1, default=str)
    print(f"wrote {out / 'sca_benchmark.png'} and {out / 'sca_benchmark.json'}")

    main_s, dense = summary[f"sca-{MAIN}"], summary["dense"]
    print(f"RESULT sca_channels_removed {1 - main_s['channels_kept'] / main_s['channels_total']:.4f}")
    print(f"RESULT sca_acc_drop_points {100 * (dense['acc'] - main_s['acc']):.2f}")
    core_red = 1 - main_s["cores"] / dense["cores"] if dense["cores"] == dense["cores"] else float("nan")
    print(f"RESULT sca_core_reduction {core_red:.4f}")
    syn_red = 1 - main_s["synapses_placed"] / dense["synapses_placed"]
    print(f"RESULT sca_synapse_reduction {syn_red:.4f}")
    mag = summary["magnitude"]
    mag_core = 1 - mag["cores"] / dense["cores"] if dense["cores"] == dense["cores"] else float("nan")
    print(f"RESULT magnitude_core_reduction {mag_core:.4f}")
    print(f"RESULT sca_synapse_memory_vs_magnitude {main_s['syn_kbit'] / mag['syn_kbit']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
