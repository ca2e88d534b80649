"""``snnc calibrate`` (Cutoff thresholds for a build) and ``snnc report`` (metrics with NeuroBench's definitions and
names, energy, latency, the accuracy-vs-average-timesteps plot).

    snnc calibrate BUILD/ --data X.npy --labels Y.npy [--steps T] [--eps 0.01] [--kind topk|softmax]
                   [--confidence-level 0.9]
    snnc report    BUILD/ [--data X.npy --labels Y.npy] [--steps T] [--plot PATH] [--energy-target loihi1]

``X.npy``: integer input spikes (N, T_in, *input_shape) as ``snnc simulate`` takes them (0/1 for binary ports;
float arrays holding whole numbers are accepted); ``Y.npy``: (N,) class indices. ``--steps``: simulated steps
(default: T_in plus the compiled network's output latency, so that the last input step reaches the output).
``calibrate`` runs the reference simulator, calibrates one threshold per step (METHODS.md, Cutoff) and stores the
policy in the Program's ``metadata["cutoff"]`` (the build is rewritten atomically). ``report`` prints the static
metrics and, with data, the workload metrics of the full run and of the per-sample early-exit run (the stored
policy, work stopping at each sample's exit step), and writes the plot (default ``BUILD/cutoff_tradeoff.png``).
"""
from __future__ import annotations

import os
import zipfile
import zlib
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import click
import numpy as np

from ..errors import InputError, ToolchainError
from .main import cli

__all__ = ["load_arrays", "default_steps", "report_text"]


def load_arrays(data: str, labels: Optional[str]) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """Read ``X.npy`` (integer spikes) and ``Y.npy`` (class indices); errors name the file."""
    def _load(path: str) -> np.ndarray:
        if os.path.isfile(path) and os.path.getsize(path) == 0:
            raise InputError("is empty (0 bytes), not a numpy .npy array", file=path)
        try:
            a = np.load(path, allow_pickle=False)
        except (ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
            raise InputError(f"not a numpy .npy array: {exc}", file=path) from None
        if not isinstance(a, np.ndarray):
            a.close()
            raise InputError("is an .npz archive; give one .npy array", file=path)
        return a

    x = _load(data)
    if x.ndim < 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise InputError(f"expected (samples, time, ...) with at least one sample and one step, got shape "
                         f"{x.shape}", file=data)
    if x.dtype != np.bool_ and not np.issubdtype(x.dtype, np.integer):
        if not np.issubdtype(x.dtype, np.floating) or not np.all(np.equal(np.mod(x, 1), 0)):
            raise InputError(f"expected integer spikes, got dtype {x.dtype} with non-integer values", file=data)
        x = x.astype(np.int64)
    y = None
    if labels is not None:
        y = _load(labels)
        if y.ndim != 1 or y.shape[0] != x.shape[0]:
            raise InputError(f"expected ({x.shape[0]},) labels for {x.shape[0]} samples, got shape {y.shape}",
                             file=labels)
        if not np.issubdtype(y.dtype, np.integer):
            if not np.all(np.equal(np.mod(y, 1), 0)):
                raise InputError("labels must be integer class indices", file=labels)
            y = y.astype(np.int64)
    return x, y


def default_steps(program: Any, x: np.ndarray) -> int:
    """Input steps plus the compiled output latency (``metadata["output_latency_steps"]``, 0 when unknown)."""
    return int(x.shape[1]) + int(program.metadata.get("output_latency_steps", 0) or 0)


def _check_steps(program: Any, x: np.ndarray, steps: int) -> None:
    """At least one step, and records that fit in memory (before the simulator allocates them)."""
    from ..limits import check_simulation_size
    check_simulation_size(program, int(x.shape[0]), int(steps), record=True)


def _check_classes(program: Any, y: np.ndarray, file: str) -> None:
    n = program.groups[program.output].size
    if y.size and (y.min() < 0 or y.max() >= n):
        raise InputError(f"labels [{y.min()}, {y.max()}] outside the output's {n} classes", file=file)


@cli.command("calibrate")
@click.argument("build", type=click.Path(file_okay=False))
@click.option("--data", required=True, type=click.Path(dir_okay=False), help="Input spikes X.npy (N, T, ...).")
@click.option("--labels", required=True, type=click.Path(dir_okay=False), help="Class labels Y.npy (N,).")
@click.option("--steps", type=int, default=None, help="Simulated steps (default: T + output latency).")
@click.option("--eps", type=float, default=0.01, show_default=True,
              help="Tolerated share of early exits that are not stably correct.")
@click.option("--kind", type=click.Choice(["topk", "softmax"]), default="topk", show_default=True,
              help="Exit score: Top-K gap (the method) or softmax confidence (baseline).")
@click.option("--grid", type=int, default=100, show_default=True, help="Threshold grid size per step.")
@click.option("--confidence-level", type=float, default=None,
              help="Require the Clopper-Pearson lower bound (at this level, e.g. 0.9) of the stably-correct share "
                   "to reach 1 - eps (default: the share itself, as published).")
@click.option("--target", type=click.Choice(["stable", "final"]), default="stable", show_default=True,
              help="What counts as a right exit: correct from the exit step on (published) or the full run's "
                   "prediction.")
@click.option("--sequential", is_flag=True,
              help="Calibrate each step on the samples still running there (ours; default: on all samples).")
@click.option("--window", type=int, default=0, show_default=True,
              help="Top-K only: score by the margin added over the last W steps (ours; 0 = the published gap).")
@click.option("--pooled", is_flag=True,
              help="One threshold for all steps, calibrated on every sample's first exit (ours).")
@click.option("--select-rule", is_flag=True,
              help="Choose the rule (target, sequential, window, pooled) and eps together by 5-fold cross-fitting "
                   "on this data, among toolchain.runtime.cutoff.WINDOW_RULES; overrides --eps/--target/"
                   "--sequential/--window/--pooled.")
@click.option("--max-drop", type=float, default=0.2, show_default=True,
              help="With --select-rule: tolerated cross-fitted accuracy drop below the full run, in points.")
def calibrate_cmd(build: str, data: str, labels: str, steps: Optional[int], eps: float, kind: str,
                  grid: int, confidence_level: Optional[float], target: str, sequential: bool, window: int,
                  pooled: bool, select_rule: bool, max_drop: float) -> None:
    """Calibrate per-step early-exit thresholds on the reference simulator and store them in BUILD."""
    from ..program import Program
    from ..runtime import cutoff as co
    from ..sim.reference import simulate

    if select_rule and kind != "topk":
        raise InputError(f"--select-rule chooses among Top-K rules, got --kind {kind}", field="kind")
    if not 0.0 <= max_drop < 100.0:
        raise InputError(f"must be in [0, 100) points, got {max_drop}", field="max_drop")
    prog = Program.load(build)
    x, y = load_arrays(data, labels)
    assert y is not None
    _check_classes(prog, y, labels)
    steps = default_steps(prog, x) if steps is None else int(steps)
    _check_steps(prog, x, steps)
    res = simulate(prog, x, steps=steps)
    chosen = None
    if select_rule:
        chosen, _ = co.select_rule(res.output, y, kind=kind, max_drop=max_drop / 100.0, rules=co.WINDOW_RULES,
                                   grid=grid, confidence_level=confidence_level)
        eps, target, sequential = chosen["eps"], chosen["target"], chosen["sequential"]
        window, pooled = chosen["window"], chosen["pooled"]
    policy = co.calibrate(res.output, y, eps=eps, grid=grid, kind=kind, confidence_level=confidence_level,
                          target=target, sequential=sequential, window=window, pooled=pooled)
    policy.calibration.update({"data": str(data), "steps_simulated": steps})
    if chosen is not None:
        policy.calibration["selected"] = {"rules": "WINDOW_RULES", "max_drop_points": max_drop,
                                          "crossfit_accuracy": chosen["accuracy"],
                                          "crossfit_mean_steps": chosen["mean_steps"]}
    co.attach_policy(prog, policy)
    prog.save(build)
    c = policy.calibration
    rule = f"target={target}" + (", sequential" if sequential else "") + (f", window={window}" if window else "") \
        + (", pooled" if pooled else "")
    click.echo(f"calibrated {kind} cutoff on {c['samples']} samples, {steps} steps, eps={eps:g} ({rule})")
    if chosen is not None:
        click.echo(f"  rule and eps chosen by 5-fold cross-fitting (accuracy {100 * chosen['accuracy']:.2f}% at "
                   f"{chosen['mean_steps']:.2f} steps, at most {max_drop:g} points below the full run)")
    click.echo(f"  full run: accuracy {100 * c['accuracy_full']:.2f}% at {steps} steps")
    click.echo(f"  cutoff:   accuracy {100 * c['accuracy']:.2f}% at {c['mean_steps']:.2f} steps on average "
               f"({steps / c['mean_steps']:.2f}x fewer)")
    th = ", ".join("inf" if not np.isfinite(b) else f"{b:.4g}" for b in policy.thresholds)
    click.echo(f"  thresholds per step: {th}")
    click.echo(f"stored in {Path(build) / 'program.json'} (metadata.cutoff)")


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, (float, np.floating)):
        return f"{v:.4g}"
    return str(v)


def _label(key: str) -> str:
    """A metric's name in the report: NeuroBench's for its metrics (:data:`toolchain.runtime.metrics.
    NEUROBENCH_NAMES`), our key for the others."""
    from ..runtime.metrics import NEUROBENCH_NAMES
    return NEUROBENCH_NAMES.get(key, key)


def report_text(static: Dict[str, Any], runs: Dict[str, Dict[str, Any]]) -> str:
    """The report: static metrics, then one column per run (full, cutoff) of workload metrics. Metrics that
    NeuroBench defines carry NeuroBench's names (``Footprint`` in bytes, ``SynapticOperations.Effective_ACs``,
    ...); the others are ours."""
    w = 36
    lines = ["static metrics (NeuroBench's names where NeuroBench defines the metric; Footprint in bytes)"]
    for k in ("neurons", "synapses", "footprint_bytes", "state_bytes", "connection_sparsity", "cores"):
        if k in static:
            lines.append(f"  {_label(k):<{w}} {_fmt(static[k])}")
    if runs:
        keys = ["accuracy", "mean_steps", "effective_acs", "effective_macs", "dense_synops", "synaptic_events",
                "activation_sparsity", "membrane_updates", "spikes", "neuron_updates", "energy_uj", "latency_us",
                "graded_messages", "graded_payload_bits"]
        names = list(runs)
        lines += ["", "workload metrics (per sample; NeuroBench's names where NeuroBench defines the metric)",
                  "  " + f"{'metric':<{w}}" + "".join(f"{n:>16}" for n in names)]
        for k in keys:
            if any(k in runs[n] for n in names):
                lines.append("  " + f"{_label(k):<{w}}" + "".join(f"{_fmt(runs[n].get(k)):>16}" for n in names))
    return "\n".join(lines)


def graded_activity(program: Any, res: Any) -> Dict[str, Any]:
    """Graded-spike activity per sample (issue 16): ``graded_messages`` (non-zero payloads sent by sigma-delta
    groups that feed synapses) and ``graded_payload_bits`` (their two's-complement widths,
    :func:`toolchain.fixedpoint_sdn.message_stats`); empty for a Program without sigma-delta groups."""
    from ..fixedpoint_sdn import message_stats
    senders = [g for g, grp in program.groups.items() if grp.sdn is not None and program.synapses_from(g)]
    if not senders:
        return {}
    n = max(int(res.output.shape[0]), 1)
    msgs = bits = 0
    for g in senders:
        m, b = message_stats(res.spikes[g])
        msgs, bits = msgs + m, bits + b
    return {"graded_messages": msgs / n, "graded_payload_bits": bits / n}


@cli.command("report")
@click.argument("build", type=click.Path(file_okay=False))
@click.option("--data", type=click.Path(dir_okay=False), default=None, help="Input spikes X.npy (N, T, ...).")
@click.option("--labels", type=click.Path(dir_okay=False), default=None, help="Class labels Y.npy (N,).")
@click.option("--steps", type=int, default=None, help="Simulated steps (default: T + output latency).")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None,
              help="Accuracy-vs-average-timesteps PNG (default BUILD/cutoff_tradeoff.png; needs --labels).")
@click.option("--energy-target", default="loihi1", show_default=True,
              help="Target whose per-operation energy/time figures fill in what the build's target lacks.")
def report_cmd(build: str, data: Optional[str], labels: Optional[str], steps: Optional[int],
               plot_path: Optional[str], energy_target: str) -> None:
    """Print a build's metrics; with --data, also the full and early-exit runs' workload, energy and latency."""
    from ..program import Program
    from ..runtime import cutoff as co
    from ..runtime import metrics as M
    from ..sim.reference import simulate
    from ..targets import load_target

    prog = Program.load(build)
    static = M.static_metrics_program(prog)
    placement = getattr(prog, "placement", None)
    if placement is not None and hasattr(placement, "cores_used"):
        static["cores"] = placement.cores_used
    if labels is not None and data is None:
        raise InputError("--labels needs --data", field="data")
    runs: Dict[str, Dict[str, Any]] = {}
    notes = []
    if data is not None:
        x, y = load_arrays(data, labels)
        if y is not None:
            _check_classes(prog, y, labels)
        steps = default_steps(prog, x) if steps is None else int(steps)
        _check_steps(prog, x, steps)
        if y is not None:  # the plot's folder, before the runs
            out_plot = Path(plot_path) if plot_path else Path(build) / "cutoff_tradeoff.png"
            from ..build_io import check_writable
            check_writable(out_plot.parent, str(out_plot), "plot")
        try:
            tgt = load_target(prog.target)
        except ToolchainError:
            tgt = {"name": prog.target}
        policy = co.policy_from_program(prog)
        variants = [("full", None)] + ([("cutoff", policy)] if policy is not None else [])
        if policy is None:
            notes.append("no cutoff policy in the build (run 'snnc calibrate'): full run only")
        full_out = None
        for name, pol in variants:
            res = simulate(prog, x, steps=steps, record=True, early_exit=None if pol is None else pol.hook())
            work = M.workload_program(prog, res, x)
            d = work.as_dict()
            el = M.energy_latency(work, tgt, fallback=energy_target)
            row = {k: d[k] for k in ("mean_steps", "effective_acs", "effective_macs", "dense_synops",
                                     "synaptic_events", "activation_sparsity", "membrane_updates", "spikes",
                                     "neuron_updates")}
            row["energy_uj"] = None if el["energy_j"] is None else el["energy_j"] * 1e6
            row["latency_us"] = None if el["latency_s"] is None else el["latency_s"] * 1e6
            row.update(graded_activity(prog, res))
            if y is not None:
                pred = np.argmax(res.accumulated_output(), axis=1)
                row["accuracy"] = float((pred == y).mean())
            runs[name] = row
            if pol is None:
                full_out = res.output
                srcs = sorted(set(el["sources"].values()))
                notes.append(f"energy/latency figures from {', '.join(srcs) or 'none'}"
                             + (f"; missing: {', '.join(el['missing'])}" if el["missing"] else "")
                             + "; latency is a serial bound (all operations of a step on one core)")
        if y is not None and full_out is not None:
            curves = co.tradeoff_curves(None, None, full_out, y)
            marks = {}
            if "cutoff" in runs:
                marks[f"stored policy ({policy.kind}, eps={policy.eps:g})"] = (runs["cutoff"]["mean_steps"],
                                                                             runs["cutoff"]["accuracy"])
            out = Path(plot_path) if plot_path else Path(build) / "cutoff_tradeoff.png"
            co.plot_tradeoff(curves, out, title=f"{Path(build).name}: accuracy vs average timesteps", marks=marks)
            notes.append(f"wrote {out}")
    click.echo(report_text(static, runs))
    for n in notes:
        click.echo(n)
