"""LNP end to end: prune an untrained heterogeneous recurrent SNN, train it on Lorenz-63, plot what happened.

    python examples/lnp_example.py [--n-rec 200] [--epochs 60] [--out build/lnp_example] [--quick]

1. Build a dense HRSNN (CubaLIF neurons with log-uniform membrane and synaptic time constants).
2. Run the seven LNP steps (:func:`toolchain.prune.lnp.lnp_prune`, progress bar) and print the report.
3. Train the pruned network for next-step prediction of Lorenz-63 (BPTT, MSE) and report the test NRMSE.
4. Write ``lnp_example.png``: time constants kept, eigenvalues of the linearised dynamics dense vs pruned, the
   pruned recurrent weight matrix, and the prediction against the target on a test window.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n-rec", type=int, default=200)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="build/lnp_example")
    ap.add_argument("--quick", action="store_true", help="60 neurons, 3 epochs: a smoke run of every step")
    args = ap.parse_args(argv)
    if args.epochs < 1 or args.n_rec < 2:
        ap.error("--epochs must be at least 1 and --n-rec at least 2")
    if args.quick:
        args.n_rec, args.epochs = 60, 3

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from toolchain.data.timeseries import make_prediction_task
    from toolchain.nn.hrsnn import HRSNN
    from toolchain.prune.lnp import lnp_prune
    from toolchain.prune.lyapunov import linearise, rate_gain
    from toolchain.prune.tasks import evaluate_regression, predict_regression, synaptic_ops, train_regression

    torch.manual_seed(args.seed)
    task = make_prediction_task("lorenz63", n_train=64, n_test=16, window=100, n_per_dim=32, seed=args.seed)
    dense = HRSNN(task.s_train.shape[-1], args.n_rec, 3, rec_gain=0.5, seed=args.seed)
    print(f"dense HRSNN: {dense.n_rec} neurons, {dense.synapse_counts()['total']} synapses "
          f"({dense.n_synapses} recurrent)")

    result = lnp_prune(dense, seed=args.seed, progress=True)
    print(result.report.summary())
    pruned = result.model
    print(f"pruned HRSNN: {pruned.n_rec} neurons, {pruned.synapse_counts()['total']} synapses "
          f"({pruned.n_synapses} recurrent)")

    train_regression(pruned, task, epochs=args.epochs, seed=args.seed, progress=True, desc="train pruned")
    err = evaluate_regression(pruned, task)
    persistence = float(np.sqrt(np.mean((task.x_test[:, 10:] - task.y_test[:, 10:]) ** 2 / task.y_test.var((0, 1)))))
    print(f"test NRMSE of the pruned network: {err:.4f} (predicting 'no change': {persistence:.4f}); "
          f"synaptic ops per window: {synaptic_ops(pruned, task.s_test):.0f}")

    # ------------------------------------------------------------------------------------------------ plot
    dnet, pnet = dense.recurrent_net(), result.net
    ev_d = np.linalg.eigvals(linearise(dnet, rate_gain(dnet, seed=args.seed).gain))
    ev_p = np.linalg.eigvals(linearise(pnet, rate_gain(pnet, seed=args.seed).gain))
    pred = predict_regression(pruned, task.s_test[:1])[0]
    fig, ax = plt.subplots(2, 2, figsize=(11, 8))
    bins = np.linspace(np.log10(min(dnet.tau_mem.min(), pnet.tau_mem.min()) * 1e3),
                       np.log10(max(dnet.tau_mem.max(), pnet.tau_mem.max()) * 1e3), 21)
    ax[0, 0].hist(np.log10(dnet.tau_mem * 1e3), bins=bins, alpha=0.5, label="dense")
    ax[0, 0].hist(np.log10(pnet.tau_mem * 1e3), bins=bins, alpha=0.7, label="LNP")
    ax[0, 0].set_xlabel("log10 τ_mem (ms)")
    ax[0, 0].set_ylabel("neurons")
    ax[0, 0].legend()
    ax[0, 1].scatter(ev_d.real, ev_d.imag, s=6, label=f"dense (N={dnet.n})", alpha=0.6)
    ax[0, 1].scatter(ev_p.real, ev_p.imag, s=6, label=f"LNP (N={pnet.n})", alpha=0.8)
    ax[0, 1].axvline(0, color="k", lw=0.5)
    ax[0, 1].set_xlabel("Re λ(A) (1/s)")
    ax[0, 1].set_ylabel("Im λ(A)")
    ax[0, 1].set_title(f"λ_max (Lyapunov): {result.report.lambda_max_before:.1f} -> "
                       f"{result.report.lambda_max_after:.1f} 1/s")
    ax[0, 1].legend()
    w = pnet.w_rec
    lim = np.abs(w).max()
    ax[1, 0].imshow(w, cmap="RdBu_r", vmin=-lim, vmax=lim)
    ax[1, 0].set_title(f"pruned W_rec: {pnet.n_synapses} synapses (dense {dnet.n_synapses})")
    for d in range(3):
        ax[1, 1].plot(task.y_test[0, :, d] + 4 * d, "k-", lw=1)
        ax[1, 1].plot(pred[:, d] + 4 * d, "--", lw=1)
    ax[1, 1].set_title(f"Lorenz-63 next-step prediction (test NRMSE {err:.3f})")
    ax[1, 1].set_xlabel("step")
    fig.tight_layout()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / "lnp_example.png", dpi=110)
    plt.close(fig)
    print(f"wrote {out / 'lnp_example.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
