"""LNP against the dense HRSNN and activity-based pruning (AP), over seeds and tasks.

    python benchmarks/lnp.py [--quick] [--seeds 3] [--tasks lorenz63 rossler mackey_glass mnist1d] [--jobs N]

For every task and seed (the seed fixes the data split, the dense network's initialisation, LNP's randomness and
the batch order):

* **dense**: ``HRSNN(n_in, n_rec, n_out)`` (CubaLIF, log-uniform τ_mem ∈ [2, 30] ms, τ_syn ∈ [1, 5] ms, dt = 1 ms,
  fully connected recurrent layer) trained for ``epochs``;
* **LNP**: the *untrained* dense network pruned by :func:`toolchain.prune.lnp.lnp_prune` (task-agnostic), then
  trained for the same ``epochs`` from its pruned initialisation;
* **AP**: the *trained* dense network pruned to LNP's neuron and recurrent-synapse counts (least active neurons,
  then weakest synapses; :mod:`toolchain.prune.activity`), then fine-tuned for ``finetune`` epochs;
* **random** (a control, not in the paper): the untrained dense network pruned to the same counts with uniformly
  random neurons and synapses, trained for ``epochs``.

Tasks: next-step prediction of Lorenz-63, Rössler and Mackey-Glass (level-encoded input spikes, a linear readout
of the spikes at every step, MSE, error = NRMSE on later test windows), and mnist1d as a 40-step sequence
(level-encoded, LI readout, BPTT cross-entropy, error = 1 − accuracy). Columns: neurons, synapses (input +
recurrent + readout), error, synaptic operations per inference (one input sample; spikes × fan-out) and cores
used on loihi2 (``toolchain.compile.compile_graph`` with sparse ``Csr`` recurrent weights; "n/a" when the compiler
cannot compile the network). Mean ± std over seeds. Writes ``lnp_benchmark.png`` and ``lnp_benchmark.json`` to
``--out``. RESULT lines: ``lnp_neuron_reduction`` and ``lnp_synapse_reduction`` (mean over tasks and seeds, total
synapses), ``lnp_rel_error_vs_dense`` ((err_LNP − err_dense)/err_dense of the worst task, on seed means) and
``lnp_vs_ap_error`` ((err_LNP − err_AP)/err_AP of the worst task; negative: LNP has the lower error).
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Dict, List

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

METHODS = ("dense", "lnp", "ap", "random")
REGRESSION = ("lorenz63", "rossler", "mackey_glass")


def _settings(quick: bool) -> Dict[str, Any]:
    if quick:
        return dict(n_rec=100, epochs=25, finetune=8, n_train=32, n_test=8, window=60, n_per_dim=16,
                    mnist_train=600, mnist_test=300, mnist_epochs=6, lnp=dict(bo_init=2, bo_iter=3, gain_steps=1000,
                                                                            lyap_steps=500, mc_steps=1000))
    return dict(n_rec=200, epochs=100, finetune=30, n_train=64, n_test=16, window=100, n_per_dim=32,
                mnist_train=2000, mnist_test=1000, mnist_epochs=15, lnp={})


def _random_prune(model: Any, n_neurons: int, n_synapses: int, seed: int) -> Any:
    rng = np.random.default_rng(seed + 12345)
    net = model.recurrent_net()
    keep = np.sort(rng.choice(net.n, n_neurons, replace=False))
    sub = net.subset(keep)
    w = sub.w_rec.copy()
    off = np.flatnonzero(((w != 0) & ~np.eye(keep.size, dtype=bool)).ravel())
    if off.size > n_synapses:
        w.ravel()[rng.choice(off, off.size - n_synapses, replace=False)] = 0.0
    return model.pruned(sub.with_weights(w), keep)


def _cores(model: Any) -> float:
    """Cores the model takes on Loihi 2. A network the compiler refuses is an error of the benchmark (it stops
    and names the network), never a NaN in the table."""
    from toolchain.compile import compile_graph
    prog = compile_graph(model.to_graph(sparse=True), "loihi2")
    return float(prog.report["cores_used"])


def run_case(cfg: Dict[str, Any]) -> Dict[str, Any]:
    """One (task, seed): build, prune, train and measure every method; returns plain numbers."""
    import torch
    torch.set_num_threads(1)
    from toolchain.data.timeseries import level_encode, make_prediction_task
    from toolchain.nn.hrsnn import HRSNN
    from toolchain.prune.activity import activity_prune
    from toolchain.prune.lnp import LNPConfig, lnp_prune
    from toolchain.prune.tasks import (evaluate_classification, evaluate_regression, synaptic_ops,
                                       train_classification, train_regression)

    task, seed, s = cfg["task"], cfg["seed"], cfg["settings"]
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    if task in REGRESSION:
        data = make_prediction_task(task, n_train=s["n_train"], n_test=s["n_test"], window=s["window"],
                                    n_per_dim=s["n_per_dim"], seed=seed)
        n_in, n_out, x_eval = data.s_train.shape[-1], data.x_train.shape[-1], data.s_test
        tau_out = None

        def train(m: Any, epochs: int) -> None:
            train_regression(m, data, epochs=epochs, seed=seed)

        def error(m: Any) -> float:
            return evaluate_regression(m, data)
        x_act = data.s_train
    else:
        from toolchain.data.base import SplitDataset
        if cfg.get("mnist1d_npz"):  # a saved copy of the generated arrays (machines without the mnist1d package)
            with np.load(cfg["mnist1d_npz"]) as f:
                raw = SplitDataset("mnist1d", f["x"][..., None], f["y"], f["x_test"][..., None], f["y_test"], 10,
                                   time_major=True)
        else:
            from toolchain.data import load_mnist1d
            raw = load_mnist1d(as_sequence=True)
        rng = np.random.default_rng(seed)
        tr = rng.permutation(len(raw.x_train))[: s["mnist_train"]]
        te = np.arange(len(raw.x_test))[: s["mnist_test"]]
        enc = lambda v: level_encode(v, n_per_dim=16, lo=-2.5, hi=2.5).astype(np.float32)  # noqa: E731
        data = SplitDataset("mnist1d-spikes", enc(raw.x_train[tr]), raw.y_train[tr], enc(raw.x_test[te]),
                            raw.y_test[te], 10, time_major=True)
        n_in, n_out, x_eval = 16, 10, data.x_test
        tau_out = 20e-3

        def train(m: Any, epochs: int) -> None:
            train_classification(m, data, epochs=epochs, seed=seed)

        def error(m: Any) -> float:
            return 1.0 - evaluate_classification(m, data)
        x_act = data.x_train
    epochs = s["epochs"] if task in REGRESSION else s["mnist_epochs"]
    finetune = s["finetune"] if task in REGRESSION else max(1, s["mnist_epochs"] // 3)

    dense = HRSNN(n_in, s["n_rec"], n_out, rec_gain=0.5, tau_out=tau_out, seed=seed)
    res = lnp_prune(dense, LNPConfig(seed=seed, **s["lnp"]), progress=False)
    models: Dict[str, Any] = {"lnp": res.model, "random": _random_prune(dense, res.model.n_rec,
                                                                         res.model.n_synapses, seed)}
    trained_dense = copy.deepcopy(dense)
    train(trained_dense, epochs)
    models["dense"] = trained_dense
    train(models["lnp"], epochs)
    train(models["random"], epochs)
    ap = activity_prune(trained_dense, x_act, res.model.n_rec, res.model.n_synapses).model
    ap_before = error(ap)
    train(ap, finetune)
    models["ap"] = ap
    out: Dict[str, Any] = {"task": task, "seed": seed, "lnp_report": res.report.to_dict(),
                           "ap_error_before_finetune": ap_before}
    for name in METHODS:
        m = models[name]
        out[name] = {"neurons": m.n_rec, "synapses": m.synapse_counts()["total"],
                     "recurrent_synapses": m.n_synapses, "error": error(m),
                     "synops": synaptic_ops(m, x_eval), "cores": _cores(m)}
    out["seconds"] = time.perf_counter() - t0
    return out


def deployment(n_rec: int, n_in: int = 96, seed: int = 0) -> Dict[str, Any]:
    """Compile a dense HRSNN of ``n_rec`` neurons and its LNP-pruned version for loihi2 (sparse Csr recurrent
    weights) and compare the resource reports; run the reference simulator, and Lava when the backend exists,
    on the same input spikes and compare every spike and state (bit-exactness)."""
    import warnings

    from toolchain.compile import compile_graph
    from toolchain.nn.hrsnn import HRSNN
    from toolchain.prune.lnp import LNPConfig, lnp_prune
    from toolchain.sim.reference import simulate, synapse_process

    dense = HRSNN(n_in, n_rec, 3, rec_gain=0.5, seed=seed)
    res = lnp_prune(dense, LNPConfig(seed=seed, bo_init=0, bo_iter=0, lyap_k=64), progress=False)
    out: Dict[str, Any] = {"n_rec": n_rec}
    progs = {}
    for name, m in (("dense", dense), ("lnp", res.model)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            prog = compile_graph(m.to_graph(sparse=name == "lnp"), "loihi2")  # the dense baseline stores Dense
        progs[name] = prog
        rec = [sg for sg in prog.synapses if sg.src == sg.dst]
        out[name] = {"neurons": prog.neuron_count, "synapses": int(prog.report["synapses"]),
                     "cores": int(prog.report["cores_used"]),
                     "recurrent_storage": synapse_process(rec[0]) if rec else "none"}
    x = (np.random.default_rng(seed).random((1, 50, n_in)) < 0.2).astype(np.int32)
    ref = simulate(progs["lnp"], x, record=True)
    out["reference_spikes"] = int(sum(v.sum() for v in ref.spikes.values()))
    try:
        from toolchain.backends.lava import run_lava
    except ImportError as exc:  # lava-nc not installed
        out["lava"] = f"not run ({type(exc).__name__}: {exc})"
        return out
    got = run_lava(progs["lnp"], x, record=True)
    mm = ref.first_mismatch(got)  # every group and field, a group missing from one record included
    out["lava"] = "bit-exact (every spike, u and v at every step)" if mm is None else f"MISMATCH: {mm}"
    return out


def _fmt(v: List[float], digits: int = 3) -> str:
    a = np.asarray(v, dtype=np.float64)
    if not np.all(np.isfinite(a)):  # a failed measurement is an error, never "n/a" or NaN in the table
        raise ValueError(f"non-finite figures {a.tolist()} in the table: a measurement failed")
    return f"{a.mean():.{digits}g} ± {a.std():.2g}"


def summarise(results: List[Dict[str, Any]]) -> Dict[str, Any]:
    tasks = sorted({r["task"] for r in results}, key=lambda t: (t not in REGRESSION, t))
    table: Dict[str, Dict[str, Dict[str, List[float]]]] = {}
    for t in tasks:
        rows = [r for r in results if r["task"] == t]
        table[t] = {m: {k: [r[m][k] for r in rows] for k in ("neurons", "synapses", "recurrent_synapses", "error",
                                                              "synops", "cores")} for m in METHODS}
    neuron_red = [1 - r["lnp"]["neurons"] / r["dense"]["neurons"] for r in results]
    syn_red = [1 - r["lnp"]["synapses"] / r["dense"]["synapses"] for r in results]
    rel_dense = {t: (np.mean(table[t]["lnp"]["error"]) - np.mean(table[t]["dense"]["error"]))
                 / np.mean(table[t]["dense"]["error"]) for t in tasks}
    rel_ap = {t: (np.mean(table[t]["lnp"]["error"]) - np.mean(table[t]["ap"]["error"]))
              / np.mean(table[t]["ap"]["error"]) for t in tasks}
    return {"tasks": tasks, "table": table, "neuron_reduction": float(np.mean(neuron_red)),
            "synapse_reduction": float(np.mean(syn_red)), "rel_error_vs_dense": rel_dense,
            "rel_error_vs_ap": rel_ap}


def print_table(summary: Dict[str, Any]) -> None:
    from toolchain.textutil import table_lines
    head = ("task", "method", "neurons", "synapses", "rec. synapses", "error", "synops/inference", "cores")
    rows = [head]
    for t in summary["tasks"]:
        for m in METHODS:
            c = summary["table"][t][m]
            rows.append((t, m, _fmt(c["neurons"]), _fmt(c["synapses"]), _fmt(c["recurrent_synapses"]),
                         _fmt(c["error"]), _fmt(c["synops"]), _fmt(c["cores"])))
    print("\n".join(table_lines(rows)))
    print("error: NRMSE for the series, 1 - accuracy for mnist1d; mean ± std over seeds")


def plot(summary: Dict[str, Any], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = summary["tasks"]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    colours = {"dense": "0.4", "lnp": "tab:blue", "ap": "tab:orange", "random": "tab:green"}
    width = 0.2
    for ax, key, label in zip(axes, ("error", "synapses", "synops"),
                              ("error (NRMSE / 1 − acc.)", "synapses", "synaptic ops / inference")):
        for k, m in enumerate(METHODS):
            means = [np.mean(summary["table"][t][m][key]) for t in tasks]
            stds = [np.std(summary["table"][t][m][key]) for t in tasks]
            ax.bar(np.arange(len(tasks)) + (k - 1.5) * width, means, width, yerr=stds, label=m, color=colours[m])
        ax.set_xticks(np.arange(len(tasks)))
        ax.set_xticklabels(tasks, rotation=15)
        ax.set_ylabel(label)
        if key != "error":
            ax.set_yscale("log")
    axes[0].legend(fontsize=8)
    fig.suptitle("LNP vs dense HRSNN and activity pruning (mean ± std over seeds)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: List[str] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small networks and few epochs (a few minutes)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--tasks", nargs="+", default=None,
                    help="subset of lorenz63 rossler mackey_glass mnist1d (quick default: lorenz63 mnist1d)")
    ap.add_argument("--jobs", type=int, default=1, help="parallel worker processes (one thread each)")
    ap.add_argument("--out", default="build/lnp_benchmark")
    ap.add_argument("--deploy-n", type=int, default=None,
                    help="size of the dense HRSNN compiled for the deployment comparison (default 512, quick 400)")
    ap.add_argument("--mnist1d-npz", default=None,
                    help="load mnist1d from this .npz (x, y, x_test, y_test) instead of generating it")
    args = ap.parse_args(argv)
    tasks = args.tasks or (["lorenz63", "mnist1d"] if args.quick else list(REGRESSION) + ["mnist1d"])
    settings = _settings(args.quick)
    cases = [{"task": t, "seed": s, "settings": settings, "mnist1d_npz": args.mnist1d_npz}
             for t in tasks for s in range(args.seeds)]
    t0 = time.perf_counter()
    from tqdm.auto import tqdm
    results: List[Dict[str, Any]] = []
    if args.jobs > 1:
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            for r in tqdm(pool.map(run_case, cases), total=len(cases), desc="lnp benchmark"):
                results.append(r)
    else:
        for c in tqdm(cases, desc="lnp benchmark"):
            results.append(run_case(c))
    summary = summarise(results)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    plot(summary, out / "lnp_benchmark.png")
    with open(out / "lnp_benchmark.json", "w") as f:
        json.dump({"settings": settings, "results": results, "summary": {k: v for k, v in summary.items()
                                                                         if k != "table"}}, f, indent=1,
                  default=float)
    print_table(summary)
    dep = deployment(args.deploy_n or (400 if args.quick else 512))
    print(f"\ndeployment on loihi2 (untrained, n_rec={dep['n_rec']}): "
          f"dense {dep['dense']['neurons']} neurons / {dep['dense']['synapses']} synapses / "
          f"{dep['dense']['cores']} cores ({dep['dense']['recurrent_storage']} recurrent storage) -> LNP "
          f"{dep['lnp']['neurons']} / {dep['lnp']['synapses']} / {dep['lnp']['cores']} cores "
          f"({dep['lnp']['recurrent_storage']}); reference simulator {dep['reference_spikes']} spikes; "
          f"Lava: {dep['lava']}")
    with open(out / "lnp_deployment.json", "w") as f:
        json.dump(dep, f, indent=1)
    print(f"wrote {out / 'lnp_benchmark.png'} and {out / 'lnp_benchmark.json'} in {time.perf_counter() - t0:.0f} s")
    worst_dense = max(summary["rel_error_vs_dense"].items(), key=lambda kv: kv[1])
    worst_ap = max(summary["rel_error_vs_ap"].items(), key=lambda kv: kv[1])
    print(f"worst task vs dense: {worst_dense[0]}; worst task vs AP: {worst_ap[0]}")
    print(f"RESULT lnp_neuron_reduction {summary['neuron_reduction']:.4f}")
    print(f"RESULT lnp_synapse_reduction {summary['synapse_reduction']:.4f}")
    print(f"RESULT lnp_rel_error_vs_dense {worst_dense[1]:.4f}")
    print(f"RESULT lnp_vs_ap_error {worst_ap[1]:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
