"""SCA end to end: train a conv SNN on the digits with structured channel pruning, deploy it on Loihi 2.

    .venv/bin/python examples/sca_example.py [--epochs 10] [--sparsity 0.75] [--trainer bptt|stop] [--out DIR]
                                             [--quick]

``--quick``: 2 epochs, narrower channels, no fine-tuning, one Lava sample (a smoke run of every step, in about a
minute; the accuracy means nothing). With one epoch there is no mask update (the first comes after an epoch):
the example says so and prunes nothing.

1. Rate-coded 8x8 digits (T = 8 binary spike frames) and a VGG-style conv SNN (conv-BN-LIF ×3, sum pooling,
   dense LI readout; ``toolchain.nn.conv_models.vgg_snn``). With ``--trainer stop`` the network has no batch norm
   (STOP routes errors through conv, pooling and LIF only) and the masks sit on the conv outputs.
2. Training with SCA (``toolchain.prune.sca.train_sca``): channels scored by mean |membrane potential|, pruned on a
   cubic ramp to ``--sparsity`` with RigL-style regrowth by |∂L/∂γ| (or |∂L/∂W| without BN).
3. Deployment: the pruned channels are sliced out, BN folded into the convs (``deploy``), the network compiled for
   Loihi 2 and run on the reference integer simulator (test accuracy); ``--qat-epochs`` of hardware-aware
   fine-tuning (``toolchain.nn.qat``) against the compiled integer network; export to NIR
   (``<out>/sca_digits.nir``), final compile, reference simulator and Lava ``fixed_pt`` (two samples, compared bit
   for bit with the reference simulator).
4. Plots: ``<out>/sca_training.png`` (channels kept per layer over training, test accuracy per epoch).
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--sparsity", type=float, default=0.75, help="fraction of conv channels to prune")
    ap.add_argument("--channels", type=int, nargs=3, default=(16, 16, 32))
    ap.add_argument("--trainer", choices=("bptt", "stop"), default="bptt")
    ap.add_argument("--lava-samples", type=int, default=2)
    ap.add_argument("--qat-epochs", type=int, default=1,
                    help="hardware-aware fine-tuning epochs (toolchain.nn.qat) before the final compile")
    ap.add_argument("--out", default="build/examples/sca")
    ap.add_argument("--quick", action="store_true", help="2 epochs, small channels, no fine-tuning, 1 Lava sample")
    args = ap.parse_args()
    if args.epochs < 1:
        ap.error("--epochs must be at least 1")
    if args.quick:
        args.epochs, args.channels, args.qat_epochs, args.lava_samples = 2, (8, 8, 16), 0, 1

    try:  # Lava sets the multiprocessing start method when imported: import it before any progress bar
        import lava.magma.runtime.runtime  # noqa: F401
    except ImportError:
        pass
    import torch
    from toolchain.compile import compile_graph, format_report
    from toolchain.data import load_digits_spikes
    from toolchain.nir_io import export
    from toolchain.nn import to_graph
    from toolchain.nn.conv_models import vgg_snn
    from toolchain.prune import sca as S
    from toolchain.sim.reference import simulate
    from toolchain.train.loop import TrainConfig, evaluate

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    ds = load_digits_spikes(steps=8, flatten=False)
    model = vgg_snn(channels=tuple(args.channels), seed=0, batchnorm=args.trainer == "bptt")
    nb = math.ceil(len(ds.y_train) / 64)
    interval = max(1, nb // 2)
    sched = S.SCASchedule(target_sparsity=args.sparsity, start=nb,
                          end=max(nb + 2 * interval, int(0.4 * args.epochs) * nb), interval=interval,
                          regrow_fraction=0.3)
    print(f"training {args.epochs} epochs with {args.trainer}; SCA mask updates at steps {sched.update_steps()}")
    hist, sca = S.train_sca(model, ds, sched, TrainConfig(epochs=args.epochs, batch_size=64, lr=3e-3),
                            trainer=args.trainer, **({"variant": "W"} if args.trainer == "stop" else {}))
    for layer, (kept, total) in S.channel_report(model).items():
        print(f"  {layer}: {kept}/{total} channels kept")
    regrown = sum(len(v) for e in sca.history for v in e.regrown.values())
    print(f"  {regrown} channel regrowths over {len(sca.history)} mask updates"
          + ("" if sca.history else " (training ended before the first update: nothing was pruned)"))

    unpruned = S.fold_batchnorm(model)  # the same network with every channel kept (masks folded as zeros)
    dep = S.deploy(model)
    acc = evaluate(dep, ds.x_test, ds.y_test)
    print(f"deployed (sliced, BN folded) float test accuracy {100 * acc:.2f}%; parameters "
          f"{S.parameter_count(unpruned)} without slicing -> {S.parameter_count(dep)}")
    prog0 = compile_graph(to_graph(dep, dt=1e-3, input_shape=(1, 8, 8)), "loihi2")
    lat = int(prog0.metadata["output_latency_steps"])
    x = np.asarray(ds.x_test).astype(np.int64)
    xin = np.concatenate([x, np.zeros((x.shape[0], lat) + x.shape[2:], x.dtype)], axis=1)

    def int_accuracy(prog) -> float:
        out = simulate(prog, xin).output[:, lat:].astype(np.int64)
        return float((out.sum(1).argmax(-1) == ds.y_test).mean())

    print(f"compiled as trained: integer test accuracy {100 * int_accuracy(prog0):.2f}% on the reference "
          f"simulator (output lags the float network by {lat} steps)")
    if args.qat_epochs:
        # the compiled network differs from the float one by quantisation (its timing — one step per layer — is
        # aligned, biases included): fine-tune against the compiled integer network itself
        import torch.nn.functional as F
        from toolchain.data import iterate_batches
        from toolchain.nn.qat import quantisation_aware
        q = quantisation_aware(dep, "loihi2", 1e-3, (1, 8, 8))
        opt = torch.optim.Adam(dep.parameters(), lr=1e-3)
        for ep in range(args.qat_epochs):
            for xb, yb in iterate_batches(ds.x_train, ds.y_train, 64, shuffle=True, seed=100 + ep):
                loss = F.cross_entropy(q(xb).mean(1).to(torch.float32), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                dep.clamp_()
        print(f"after {args.qat_epochs} epoch(s) of hardware-aware fine-tuning: float test accuracy "
              f"{100 * evaluate(dep, ds.x_test, ds.y_test):.2f}%")
    graph = to_graph(dep, dt=1e-3, input_shape=(1, 8, 8))
    export(graph, out / "sca_digits.nir")
    print(f"wrote {out / 'sca_digits.nir'}")
    prog = compile_graph(graph, "loihi2")
    print(format_report(prog).splitlines()[-1])
    print(f"compiled network on the reference integer simulator: test accuracy {100 * int_accuracy(prog):.2f}%")
    if args.lava_samples:
        from toolchain.backends.lava import run_lava
        k = args.lava_samples
        ref = simulate(prog, xin[:k], record=True)
        lav = run_lava(prog, xin[:k], record=True)
        mm = ref.first_mismatch(lav)
        print(f"Lava fixed_pt vs reference on {k} samples, every spike, u and v of every group at every step: "
              f"{'bit-exact' if mm is None else 'MISMATCH ' + str(mm)}")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.6))
    steps = [e.step for e in sca.history]
    for layer in (sca.history[0].kept if sca.history else {}):
        a1.step(steps, [e.kept[layer] / e.total[layer] for e in sca.history], where="post", label=layer)
    if steps:
        a1.plot(steps, [1 - sched.sparsity(t) for t in steps], "k:", label="schedule")
    else:
        a1.text(0.5, 0.5, "no mask update\n(training too short)", ha="center", va="center",
                transform=a1.transAxes)
    a1.set_xlabel("training step")
    a1.set_ylabel("channels kept (fraction)")
    if steps:
        a1.legend(fontsize=8)
    a2.plot(range(1, len(hist.test_acc) + 1), [100 * a for a in hist.test_acc], "o-")
    a2.set_xlabel("epoch")
    a2.set_ylabel("test accuracy (%)")
    fig.tight_layout()
    fig.savefig(out / "sca_training.png", dpi=120)
    print(f"wrote {out / 'sca_training.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
