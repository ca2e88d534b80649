"""``snnc simulate`` and ``snnc verify``: run a compiled Program on the reference simulator or Lava, and check
that both agree bit for bit.

* ``snnc simulate BUILD/ --input X.npy [--steps T] [--backend reference|torch|lava] [--device cpu|cuda]
  -o OUT.npz [--record]`` writes
  ``spikes`` (the output group's spikes, or its ``v`` for a non-spiking readout) and ``steps_run``; with
  ``--record`` also ``spikes/<group>``, ``u/<group>`` and ``v/<group>`` of every group.
* ``snnc verify BUILD/ [--input X.npy | --random N] [--steps T] [--seed S]`` runs both backends, recording every
  group, and prints ``bit-exact: yes`` or the first mismatch (layer, neuron, step, field); exit status 0 only
  when they are identical.

``X.npy``: (batch, time, *input_shape) integers (a single sample may omit the batch axis); ``X.npz``: one such
array per input port, keyed by port name. The logic lives in functions that take a Program
(:func:`run_simulation`, :func:`verify_program`) so that it can be used without files.
"""
from __future__ import annotations

import sys
import time
import zipfile
import zlib
from pathlib import Path
from typing import Dict, Optional, Tuple, Union

import click
import numpy as np

from ..errors import InputError, ToolchainError
from ..limits import check_simulation_size
from ..program import Program
from ..sim.record import Mismatch, SimResult
from .main import cli

__all__ = ["load_input", "random_input", "run_simulation", "verify_program", "BACKENDS"]

BACKENDS = ("reference", "torch", "lava")
InputLike = Union[np.ndarray, Dict[str, np.ndarray]]


def load_input(path: Union[str, Path], program: Program) -> InputLike:
    """Read ``.npy`` (single input port) or ``.npz`` (arrays keyed by port name); a single sample without a batch
    axis gets one. Errors name the file."""
    path = Path(path)
    if not path.exists():
        raise ToolchainError("no such file", file=str(path), field="input")
    if path.is_dir():
        raise ToolchainError("is a folder, not a .npy/.npz file", file=str(path), field="input")
    if path.stat().st_size == 0:
        raise InputError("is empty (0 bytes), not a numpy .npy/.npz array", file=str(path), field="input")
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                data: InputLike = {k: z[k] for k in z.files}
        else:
            data = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise InputError(f"cannot read as a numpy array (truncated or another format?): {exc}", file=str(path),
                         field="input") from None
    if isinstance(data, dict) and not data:
        raise InputError("the .npz archive holds no arrays", file=str(path), field="input")

    def add_batch(name: str, a: np.ndarray) -> np.ndarray:
        port = program.input_port(name)
        if port.kind == "bias":  # one sample's bias (e.g. one image) gets a batch axis; (B, *shape) and
            return a[None] if a.ndim == len(port.shape) else a  # (B, T, *shape) are batches already
        return a[None] if a.ndim == len(port.shape) + 1 else a

    try:
        if isinstance(data, dict):
            return {k: add_batch(k, v) if k in {p.name for p in program.inputs} else v for k, v in data.items()}
        if len(program.inputs) == 1:
            return add_batch(program.inputs[0].name, data)
        return data
    except ToolchainError as exc:
        raise InputError(exc.message, file=str(path), node=exc.node, field=exc.field) from exc


def random_input(program: Program, n: int, steps: int, seed: int = 0, rate: float = 0.2) -> Dict[str, np.ndarray]:
    """``n`` random samples for every input port: binary spikes with probability ``rate``, or graded payloads
    uniform in [1, 2^m - 1] with probability ``rate``."""
    if n < 1 or steps < 1:
        raise InputError(f"need at least one sample and one step, got {n} samples and {steps} steps",
                         field="random")
    r = np.random.default_rng(seed)
    out = {}
    for p in program.inputs:
        if p.kind == "bias":  # a random frame per sample, held for every step: bias mantissas in [0, 127]
            out[p.name] = r.integers(0, 128, size=(n,) + tuple(p.shape)).astype(np.int32)
            continue
        shape = (n, steps) + tuple(p.shape)
        on = r.random(shape) < rate
        if p.num_message_bits == 0:
            out[p.name] = on.astype(np.int32)
        else:
            out[p.name] = (on * r.integers(1, 2 ** p.num_message_bits, size=shape)).astype(np.int32)
    return out


def run_simulation(program: Program, x: InputLike, steps: Optional[int] = None, backend: str = "reference",
                   record: bool = False, device: Optional[str] = None) -> SimResult:
    """Run ``program`` on ``backend``: "reference" (numpy), "torch" (the reference simulator's torch backend on
    ``device``, e.g. "cpu" or "cuda"; the same integers) or "lava"."""
    if backend in ("reference", "torch"):
        from ..sim.reference import simulate
        if backend == "torch":
            return simulate(program, x, steps=steps, record=record, backend="torch", device=device)
        return simulate(program, x, steps=steps, record=record)
    if backend == "lava":
        from ..backends.lava import run_lava
        return run_lava(program, x, steps=steps, record=record)
    raise InputError(f"must be one of {BACKENDS}, got {backend!r}", field="backend")


def verify_program(program: Program, x: InputLike, steps: Optional[int] = None, log: bool = False,
                   lava_mode: str = "auto") -> Tuple[Optional[Mismatch], SimResult, SimResult]:
    """Run both backends with every group recorded; ``(first mismatch or None, reference, lava)``. ``log``: a
    plain progress line on stderr after the reference run and after every Lava network (for logs; on a terminal
    Lava's own bar shows). ``lava_mode``: ``run_lava``'s ``batch_mode`` ("auto": a batch runs as batched Lava
    networks where it can)."""
    t0 = time.perf_counter()
    ref = run_simulation(program, x, steps, "reference", record=True)
    if log:
        click.echo(f"verify: reference done in {time.perf_counter() - t0:.1f} s; running Lava", err=True)
    t1 = time.perf_counter()

    def line(done: int, total: int) -> None:
        el = time.perf_counter() - t1
        click.echo(f"verify: lava sample {done}/{total}, {el:.1f} s, about {el / done * (total - done):.0f} s left",
                   err=True)

    from ..backends.lava import run_lava
    lav = run_lava(program, x, steps=steps, record=True, on_sample=line if log else None, batch_mode=lava_mode)
    return ref.first_mismatch(lav), ref, lav


def _load_program(build: str) -> Program:
    return Program.load(build)


def run_size(program: Program, x: InputLike, steps: Optional[int]) -> Tuple[int, int]:
    """``(batch, steps)`` a run of ``x`` will have, from the arrays' shapes alone (nothing is allocated);
    raises InputError for an empty batch or time axis or fewer than one step."""
    arrays = x if isinstance(x, dict) else ({program.inputs[0].name: x} if len(program.inputs) == 1 else {})
    batch, t_in = None, None
    for p in program.inputs:
        a = arrays.get(p.name)
        if a is None or not hasattr(a, "shape"):
            continue
        if getattr(p, "kind", "spikes") == "bias" and a.ndim == 1 + len(p.shape):
            batch = int(a.shape[0]) if batch is None else batch
            continue
        if a.ndim >= 2:
            batch = int(a.shape[0]) if batch is None else batch
            t_in = int(a.shape[1]) if t_in is None else t_in
            if a.shape[0] == 0:
                raise InputError(f"empty batch: shape {a.shape} holds no sample", node=p.name, field="input")
            if a.shape[1] == 0:
                raise InputError(f"empty time axis: shape {a.shape} holds no step", node=p.name, field="input")
    if steps is not None and steps < 1:
        raise InputError(f"--steps must be at least 1, got {steps}", field="steps")
    if batch is not None and batch < 1:
        raise InputError("empty batch: the input holds no sample", field="input")
    n_steps = steps if steps is not None else t_in
    if n_steps is None:
        raise InputError("the input fixes no number of steps; give --steps T", field="steps")
    return (batch if batch is not None else 1), int(n_steps)


class _ProgressLog:
    """An ``early_exit`` hook that stops no sample and writes a plain progress line to stderr every tenth of
    the run (for logs; on a terminal the simulator draws its own bar)."""

    def __init__(self, steps: int) -> None:
        self.steps = steps
        self.every = max(steps // 10, 1)
        self.t0 = time.perf_counter()

    def __call__(self, t: int, acc: np.ndarray) -> np.ndarray:
        done = t + 1
        if done % self.every == 0 or done == self.steps:
            el = time.perf_counter() - self.t0
            eta = el / done * (self.steps - done)
            click.echo(f"simulate: step {done}/{self.steps} ({100 * done / self.steps:.0f}%), {el:.1f} s, "
                       f"about {eta:.0f} s left", err=True)
        return np.zeros(acc.shape[0], dtype=bool)


def _check_output(output: str) -> None:
    """Refuse an output path whose folder is missing or not writable, before any long run."""
    out = Path(output)
    parent = out.parent if str(out.parent) else Path(".")
    if out.is_dir():
        raise ToolchainError("is a folder; give a file name such as OUT.npz", file=str(out), field="output")
    from ..build_io import check_writable
    check_writable(parent, str(out), "output")


#: neuron-steps above which a run is "long" (as the reference simulator's own bar decides)
LONG_RUN = 5e7


@cli.command("simulate")
@click.argument("build", type=click.Path(file_okay=False))
@click.option("--input", "-i", "input_path", required=True, type=click.Path(dir_okay=False),
              help="Input .npy (batch, time, *shape) or .npz keyed by input port.")
@click.option("--steps", "-T", type=int, default=None, help="Steps to run (default: the input's length).")
@click.option("--backend", type=click.Choice(BACKENDS), default="reference", show_default=True)
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False), help="Result .npz to write.")
@click.option("--record", is_flag=True, help="Also write spikes, u and v of every group.")
@click.option("--cutoff", is_flag=True, help="Stop each sample at its early-exit step (policy from 'snnc calibrate').")
@click.option("--device", default="cpu", show_default=True,
              help="torch device of --backend torch (cpu, cuda, cuda:1, ...).")
def simulate_cmd(build: str, input_path: str, steps: Optional[int], backend: str, output: str,
                 record: bool, cutoff: bool, device: str) -> None:
    """Simulate the Program in BUILD on a backend and write the output spikes (and records) to OUTPUT."""
    _check_output(output)
    program = _load_program(build)
    x = load_input(input_path, program)
    batch, n_steps = run_size(program, x, steps)
    check_simulation_size(program, batch, n_steps, record)
    t0 = time.perf_counter()
    if cutoff:
        from ..runtime.cutoff import simulate_with_cutoff
        res = simulate_with_cutoff(program, x, steps, backend, record, device=device)
        click.echo(f"cutoff: {res.steps_run.mean():.2f} steps per sample on average of {res.steps}")
    elif backend == "reference" and not sys.stderr.isatty() and \
            batch * n_steps * max(program.neuron_count, 1) > LONG_RUN:
        from ..sim.reference import simulate
        res = simulate(program, x, steps=steps, record=record, early_exit=_ProgressLog(n_steps))
    else:
        res = run_simulation(program, x, steps, backend, record, device=device)
    dt = time.perf_counter() - t0
    res.save_npz(output, record=record)
    what = "spikes" if res.output_kind == "spikes" else "v (readout)"
    click.echo(f"{backend}: {res.batch} samples x {res.steps} steps in {dt:.2f} s; output '{res.output_group}' "
               f"{what}; wrote {output}")


@cli.command("verify")
@click.argument("build", type=click.Path(file_okay=False))
@click.option("--input", "-i", "input_path", type=click.Path(dir_okay=False), default=None,
              help="Input .npy/.npz (default: --random).")
@click.option("--random", "n_random", type=int, default=None, help="Use N random input samples.")
@click.option("--steps", "-T", type=int, default=None, help="Steps to run (required with --random).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random input.")
@click.option("--lava-mode", type=click.Choice(["auto", "batched", "per_sample"]), default="auto", show_default=True,
              help="Lava: the batch in one network where possible (auto), always (batched), or one network per "
                   "sample.")
def verify_cmd(build: str, input_path: Optional[str], n_random: Optional[int],
               steps: Optional[int], seed: int, lava_mode: str) -> None:
    """Run the reference simulator and Lava on the same input and compare every spike, u and v."""
    if input_path is not None and n_random is not None:
        raise click.UsageError("give either --input or --random, not both")
    program = _load_program(build)
    if input_path is not None:
        x = load_input(input_path, program)
        batch, n_steps = run_size(program, x, steps)
    else:
        if steps is None:
            raise click.UsageError("--steps is required with --random")
        batch = n_random if n_random is not None else 1
        if batch < 1:
            raise InputError(f"--random must be at least 1, got {batch}", field="random")
        n_steps = steps
        if n_steps < 1:
            raise InputError(f"--steps must be at least 1, got {n_steps}", field="steps")
    check_simulation_size(program, batch, n_steps, record=True, backends=2)  # both records, every group
    if input_path is None:
        x = random_input(program, batch, n_steps, seed)
    t0 = time.perf_counter()
    mm, ref, lav = verify_program(program, x, steps, log=not sys.stderr.isatty(), lava_mode=lava_mode)
    dt = time.perf_counter() - t0
    n_groups = len(ref.groups)
    if ref.batch * ref.steps == 0 or n_groups == 0:  # nothing compared is no evidence
        raise InputError(f"nothing was compared ({ref.batch} samples x {ref.steps} steps, {n_groups} groups)",
                         field="steps")
    click.echo(f"compared {ref.batch} samples x {ref.steps} steps, {n_groups} groups (spikes, u, v) "
               f"in {dt:.1f} s")
    if mm is None:
        click.echo("bit-exact: yes")
        return
    click.echo(f"bit-exact: no; first mismatch: layer '{mm.group}', neuron {mm.neuron}, step {mm.step}, "
               f"field '{mm.field}', sample {mm.sample}: reference {mm.a}, lava {mm.b}")
    raise SystemExit(1)  # snnc's main() turns this into the exit status
