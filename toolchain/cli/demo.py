"""``snnc demo``: train on digits with STOP-WTL, export NIR, compile for Loihi 2, run bit-exact on the reference
simulator and Lava, and report accuracy, resources and work.

Steps (each one a public function of the toolchain; :func:`run_demo` is the whole pipeline as a library call):

1. data: scikit-learn digits, fixed stratified split (1347 train / 450 test), deterministic rate code over
   16 steps (a pixel of grey level v fires exactly v times: lossless);
2. model: ``Linear(64, H) -> LIF(H) -> Linear(H, 10) -> LI(10)`` (soft reset, learnable thresholds and leaks),
   trained online with STOP-WTL (:func:`toolchain.train.train_stop`), checkpoint after every epoch; the
   per-step loss and the prediction use steps ``t ≥ loss_start`` (4: the first steps carry too few spikes to
   decide on);
3. NIR: :func:`toolchain.nn.to_graph` + :func:`toolchain.nir_io.export`, read back with
   :func:`toolchain.nir_io.load` (the compiler sees the file, as a user's would);
4. compile: :func:`toolchain.compile.compile_graph` for ``loihi2``;
5. integer runs: the whole test set on :func:`toolchain.sim.reference.simulate` and in PyTorch's integer mode
   (:class:`toolchain.nn.IntegerNet`) — every spike, ``u`` and ``v`` compared — and a subset on Lava
   (:func:`toolchain.backends.lava.run_lava`, ``fixed_pt``) against the reference;
6. if the integer accuracy falls more than 0.5 points below the float accuracy, quantisation-aware fine-tuning
   (:func:`toolchain.nn.quantisation_aware`) and a second compile;
7. report: float and integer accuracy, bit-exactness, the resource report, synaptic operations per inference
   (:func:`toolchain.runtime.metrics.workload_program`), a raster plot and the training curve (PNG), a JSON
   summary, and ``RESULT float_acc|int_acc|bit_exact`` lines.

Timing: the compiled network adds one step per synapse layer (``program.metadata["output_latency_steps"]``), so
the integer runs last ``T + latency`` steps (zero input at the end) and the integer prediction sums the readout
over the steps ``latency + loss_start .. latency + T − 1`` — those that correspond to the float prediction's steps
``loss_start .. T − 1``.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import click
import numpy as np

from ..errors import InputError
from ..plotting import save_figure
from .main import cli

__all__ = ["DemoConfig", "run_demo", "demo"]


@dataclass
class DemoConfig:
    """Knobs of the demo. ``quick`` shrinks training (a smoke run, accuracy not a target)."""

    out: str = "out/demo"
    epochs: int = 20
    hidden: int = 128
    steps: int = 16
    lr: float = 3e-3
    batch_size: int = 32
    loss_start: int = 4
    seed: int = 0
    target: str = "loihi2"
    dt: float = 1e-3
    lava_samples: int = 10
    quick: bool = False
    qat: str = "auto"
    qat_epochs: int = 3
    progress: bool = True

    def __post_init__(self) -> None:
        if self.qat not in ("auto", "always", "never"):
            raise InputError(f"must be 'auto', 'always' or 'never', got {self.qat!r}", field="qat")
        if self.epochs < 1 or self.hidden < 1 or self.steps < 1:
            raise InputError("epochs, hidden and steps must be positive", field="epochs")
        if not 0 <= self.loss_start < self.steps:
            raise InputError(f"must be in [0, {self.steps}), got {self.loss_start}", field="loss_start")

    @classmethod
    def make(cls, quick: bool = False, **overrides: Any) -> "DemoConfig":
        base = dict(epochs=2, hidden=64, lava_samples=2, qat_epochs=1) if quick else {}
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls(quick=quick, **base)


def _log(cfg: DemoConfig, msg: str) -> None:
    click.echo(msg)


def _build_model(cfg: DemoConfig):
    import torch
    from torch import nn

    from ..nn import LI, LIF, SpikingNet

    torch.manual_seed(cfg.seed)
    return SpikingNet(
        nn.Linear(64, cfg.hidden),
        LIF(cfg.hidden, alpha=0.9, threshold=1.0, reset="subtract", learn_threshold=True, learn_leak=True,
            per_neuron=False),
        nn.Linear(cfg.hidden, 10),
        LI(10, alpha=0.9, learn_leak=True, per_neuron=False),
    )


def _integer_prediction(readout: np.ndarray, latency: int, steps: int, loss_start: int = 0) -> np.ndarray:
    """argmax over classes of the readout summed over the steps ``latency + loss_start .. latency + steps − 1``
    (the float prediction's steps ``loss_start .. steps − 1``, shifted by the hardware latency)."""
    return readout[:, latency + loss_start:latency + steps].astype(np.int64).sum(1).argmax(-1)


def _delayed(qmodel, latency: int):
    """A module that feeds a quantisation-aware model ``T + latency`` steps (zeros at the end), so that its output
    lines up with the float model's steps from ``latency`` on (the loss and the prediction start there)."""
    import torch
    from torch import nn

    class Delayed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.q = qmodel

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            pad = x.new_zeros((x.shape[0], latency) + tuple(x.shape[2:]))
            return self.q(torch.cat([x, pad], 1)).to(torch.float32)

        def clamp_(self) -> "Delayed":
            self.q.model.clamp_()
            return self

    return Delayed()


def _compare(a, b, program) -> Tuple[Optional[Any], int]:
    """First mismatch between two integer records and the number of groups compared (all of them, or fail)."""
    groups = [g for g in program.groups if g in a.v and g in b.v and g in a.u and g in b.u]
    if len(groups) != len(program.groups):
        raise InputError(f"records cover {groups}, not every group of {list(program.groups)}", field="record")
    return a.first_mismatch(b), len(groups)


def _compile(cfg: DemoConfig, model, out: Path, tag: str):
    from .. import nir_io
    from ..compile import compile_graph
    from ..nn import to_graph

    graph = to_graph(model, cfg.dt, 64)
    nir_path = out / f"digits_stop_wtl{tag}.nir"
    nir_io.export(graph, nir_path)
    loaded = nir_io.load(nir_path)
    program = compile_graph(loaded, cfg.target, dt=cfg.dt)
    return program, nir_path


def _raster(path: Path, x: np.ndarray, spikes: np.ndarray, readout: np.ndarray, label: int, pred: int,
            window_start: int) -> None:
    """Input spikes, hidden spikes and the readout's v of one sample; the shaded span is the prediction window."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1, figsize=(7, 7), sharex=True, gridspec_kw={"height_ratios": [1, 2, 1]})
    t_in, n_in = np.nonzero(x)
    axes[0].scatter(t_in, n_in, s=3, c="k", marker="|")
    axes[0].set_ylabel("input pixel")
    t_h, n_h = np.nonzero(spikes)
    axes[1].scatter(t_h, n_h, s=3, c="tab:blue", marker="|")
    axes[1].set_ylabel("hidden neuron")
    for c in range(readout.shape[1]):
        axes[2].plot(np.arange(readout.shape[0]), readout[:, c], lw=2.0 if c == pred else 0.8,
                     label=str(c) if c in (label, pred) else None)
    axes[2].axvspan(window_start - 0.5, readout.shape[0] - 0.5, color="grey", alpha=0.15, lw=0,
                    label="summed for the prediction")
    axes[2].set_ylabel("readout v (int)")
    axes[2].set_xlabel("time step (reference integer simulator)")
    axes[2].legend(title="class", fontsize=7, loc="upper left")
    axes[0].set_title(f"digits test sample: label {label}, integer prediction {pred}")
    save_figure(fig, path)


def run_demo(cfg: DemoConfig) -> Dict[str, Any]:
    """Run the whole demo (see the module docstring); returns the summary written to ``<out>/summary.json``."""
    import torch

    from ..compile import format_report
    from ..data import load_digits_spikes
    from ..runtime.metrics import workload_program
    from ..sim.reference import simulate
    from ..train import TrainConfig, evaluate, train_stop

    t_start = time.perf_counter()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    timings: Dict[str, float] = {}

    # 1-2: data and STOP-WTL training ------------------------------------------------------------------------
    data = load_digits_spikes(steps=cfg.steps, seed=cfg.seed)
    if cfg.quick:
        data = data.subset(400, None)
    _log(cfg, f"[1/6] digits: {len(data.y_train)} train / {len(data.y_test)} test samples, {cfg.steps} steps, "
              f"deterministic rate code")
    model = _build_model(cfg)
    t0 = time.perf_counter()
    ckpt = out / "checkpoint.pt"
    if ckpt.exists():
        ckpt.unlink()  # a demo run starts from scratch
    history = train_stop(model, data, TrainConfig(epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr,
                                                  seed=cfg.seed, checkpoint=str(ckpt), progress=cfg.progress,
                                                  loss_start=cfg.loss_start), variant="WTL")
    timings["train_s"] = time.perf_counter() - t0
    float_acc = evaluate(model, data.x_test, data.y_test, loss_start=cfg.loss_start)
    _log(cfg, f"[2/6] STOP-WTL: {cfg.epochs} epochs in {timings['train_s']:.1f} s, float test accuracy "
              f"{100 * float_acc:.2f}%")
    curve = history.plot(str(out / "training_curve.png"), "digits, STOP-WTL (online, memory constant in T)")

    # 3-4: NIR and compile ----------------------------------------------------------------------------------
    t0 = time.perf_counter()
    program, nir_path = _compile(cfg, model, out, "")
    latency = int(program.metadata.get("output_latency_steps", 0))
    timings["compile_s"] = time.perf_counter() - t0
    _log(cfg, f"[3/6] exported {nir_path.name}, compiled for {cfg.target}: {program.neuron_count} neurons, "
              f"{program.synapse_count} synapses, output latency {latency} steps")

    x_int = data.x_test.astype(np.int64)
    steps_int = cfg.steps + latency

    def integer_eval(prog, lat):
        ref = simulate(prog, x_int, steps=cfg.steps + lat, record=True)
        pred = _integer_prediction(ref.output, lat, cfg.steps, cfg.loss_start)
        return ref, float((pred == data.y_test).mean()), pred

    t0 = time.perf_counter()
    ref, int_acc, int_pred = integer_eval(program, latency)
    timings["reference_s"] = time.perf_counter() - t0
    qat_used = False
    float_acc_before_qat = float_acc
    int_acc_before_qat = int_acc
    need_qat = int_acc < float_acc - 0.005
    if cfg.qat == "always" or (cfg.qat == "auto" and need_qat):
        from ..nn import quantisation_aware
        from ..train import train_bptt

        _log(cfg, f"      integer accuracy {100 * int_acc:.2f}% vs float {100 * float_acc:.2f}%: "
                  f"quantisation-aware fine-tuning (BPTT through the integer network) for {cfg.qat_epochs} epochs")
        qmodel = quantisation_aware(model, cfg.target, cfg.dt, input_shape=64)
        wrapped = _delayed(qmodel, qmodel.latency)
        t0 = time.perf_counter()
        train_bptt(wrapped, data, TrainConfig(epochs=cfg.qat_epochs, batch_size=cfg.batch_size, lr=cfg.lr / 10,
                                              seed=cfg.seed + 1, progress=cfg.progress, schedule="constant",
                                              loss_start=qmodel.latency + cfg.loss_start), loss="mean")
        timings["qat_s"] = time.perf_counter() - t0
        float_acc = evaluate(model, data.x_test, data.y_test, loss_start=cfg.loss_start)
        program, nir_path = _compile(cfg, model, out, "_qat")
        latency = int(program.metadata.get("output_latency_steps", 0))
        steps_int = cfg.steps + latency
        ref, int_acc, int_pred = integer_eval(program, latency)
        qat_used = True
    program.save(out / "program")
    _log(cfg, f"[4/6] reference integer simulator: {len(x_int)} test samples x {steps_int} steps, integer accuracy "
              f"{100 * int_acc:.2f}% ({timings['reference_s']:.2f} s)")

    # 5: bit-exactness: PyTorch integer mode (whole test set) and Lava (subset) against the reference ----------
    from ..nn import IntegerNet

    t0 = time.perf_counter()
    inet = IntegerNet(program)
    with torch.no_grad():
        torch_rec = inet.run(x_int, steps=steps_int, record=True)
    mismatch_torch, _ = _compare(ref, torch_rec, program)
    timings["integer_torch_s"] = time.perf_counter() - t0
    from ..backends.lava import run_lava

    n_lava = min(cfg.lava_samples, len(x_int))
    t0 = time.perf_counter()
    lava = run_lava(program, x_int[:n_lava], steps=steps_int, record=True)
    sub = simulate(program, x_int[:n_lava], steps=steps_int, record=True)
    mismatch_lava, _ = _compare(sub, lava, program)
    timings["lava_s"] = time.perf_counter() - t0
    bit_exact = mismatch_torch is None and mismatch_lava is None
    _log(cfg, f"[5/6] bit-exact: IntegerNet vs reference on {len(x_int)} samples: "
              f"{'yes' if mismatch_torch is None else 'NO: ' + str(mismatch_torch)}; Lava fixed_pt vs reference on "
              f"{n_lava} samples: {'yes' if mismatch_lava is None else 'NO: ' + str(mismatch_lava)}")

    # 6: report ---------------------------------------------------------------------------------------------
    work = workload_program(program, ref, x_int).as_dict()
    hidden = [g for g, grp in program.groups.items() if grp.spiking][0]
    k = 0
    _raster(out / "raster.png", x_int[k], ref.spikes[hidden][k], ref.output[k], int(data.y_test[k]),
            int(int_pred[k]), latency + cfg.loss_start)
    report = format_report(program)
    summary = {
        "float_acc": float_acc, "int_acc": int_acc, "bit_exact": bool(bit_exact),
        "float_acc_before_qat": float_acc_before_qat, "int_acc_before_qat": int_acc_before_qat,
        "qat": qat_used, "test_samples": int(len(x_int)), "lava_samples": int(n_lava),
        "steps": cfg.steps, "latency_steps": latency, "synops_per_inference": work["effective_acs"],
        "synaptic_events_per_inference": work["synaptic_events"], "spikes_per_inference": work["spikes"],
        "history": history.to_dict(), "config": asdict(cfg), "timings_s": timings,
        "files": {"nir": str(nir_path), "program": str(out / "program"), "raster": str(out / "raster.png"),
                  "training_curve": str(curve), "checkpoint": str(ckpt)},
        "total_s": time.perf_counter() - t_start,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    _log(cfg, "[6/6] resources and work")
    click.echo(report)
    click.echo(f"synaptic operations per inference: {work['effective_acs']:.0f} (effective ACs), "
               f"{work['synaptic_events']:.0f} synaptic events, {work['spikes']:.0f} spikes")
    click.echo(f"float accuracy   {100 * float_acc:.2f}%")
    click.echo(f"integer accuracy {100 * int_acc:.2f}%")
    click.echo(f"bit-exact        {'yes' if bit_exact else 'no'}")
    click.echo(f"files in {out}: raster.png, training_curve.png, {nir_path.name}, program/, summary.json "
               f"({summary['total_s']:.0f} s in all)")
    click.echo(f"RESULT float_acc {float_acc:.4f}")
    click.echo(f"RESULT int_acc {int_acc:.4f}")
    click.echo(f"RESULT bit_exact {int(bit_exact)}")
    return summary


@cli.command()
@click.option("--out", "out", type=click.Path(file_okay=False), default="out/demo", show_default=True,
              help="Folder for the NIR file, program, plots and summary.")
@click.option("--epochs", type=int, default=None, help="STOP-WTL training epochs (default 20, 2 with --quick).")
@click.option("--quick", is_flag=True, help="A fast smoke run: small network, 400 training samples, 2 epochs.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--lava-samples", type=int, default=None, help="Test samples run on Lava (default 10, 2 with --quick).")
@click.option("--qat", type=click.Choice(["auto", "always", "never"]), default="auto", show_default=True,
              help="Quantisation-aware fine-tuning: when the integer accuracy is 0.5 points below float (auto).")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
def demo(out: str, epochs: Optional[int], quick: bool, seed: int, lava_samples: Optional[int], qat: str,
         no_progress: bool) -> None:
    """Train a spiking MLP on digits with STOP-WTL, export NIR, compile for loihi2, run bit-exact on the reference
    simulator and Lava; prints accuracy, resources and synaptic operations, writes plots (PNG)."""
    cfg = DemoConfig.make(quick, out=out, epochs=epochs, seed=seed, lava_samples=lava_samples, qat=qat,
                          progress=not no_progress)
    run_demo(cfg)
