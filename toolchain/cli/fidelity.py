"""``snnc fidelity FILE.nir|BUILD/ [--input X.npy | --random N] --steps T``: how closely the integer program
follows its float source, per layer, and which cause of drift costs what (:func:`toolchain.fidelity.fidelity`).

A ``.nir`` file is loaded with ``--dt/--reset/--preset/--source-dt`` and compiled for ``--target`` (``--cuba-bias`` chooses
how CubaLIF biases are mapped, ``--weight-split/--no-weight-split`` and ``--v-headroom`` trade synapses and
guaranteed headroom for precision; by default the compiler's ``weight_split="auto"`` decides and the choice is printed); a build folder is compared with the source file its metadata names (``--nir``
gives the file when the build does not lie next to it). ``--json OUT.json`` writes every figure.
"""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Optional

import click
import numpy as np

from ..errors import InputError, ToolchainError
from ..fidelity import fidelity, format_fidelity
from .main import cli

__all__ = ["fidelity_command"]


def _read_x(path: str) -> np.ndarray:
    p = Path(path)
    if not p.is_file():
        raise InputError("no such file", file=path, field="input")
    try:
        x = np.load(p, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(f"cannot read as a numpy .npy array: {exc}", file=path, field="input") from None
    if not isinstance(x, np.ndarray) or (x.dtype != np.bool_ and not np.issubdtype(x.dtype, np.integer)):
        raise InputError("expected an integer or bool .npy array of spikes (batch, time, *shape)", file=path,
                         field="input")
    return x.astype(np.int32)


@cli.command("fidelity")
@click.argument("source", type=click.Path())
@click.option("--input", "input_path", type=click.Path(), default=None, help="Spikes X.npy (batch, time, *shape).")
@click.option("--random", "n_random", type=int, default=None, help="N random Bernoulli spike samples instead.")
@click.option("--rate", type=float, default=0.2, show_default=True, help="Spike probability of --random input.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--steps", type=int, default=None, help="Steps to compare (default: the input's length, else 100).")
@click.option("--dt", type=float, default=None, help="Time step (s) for a .nir file.")
@click.option("--reset", type=click.Choice(["zero", "subtract"]), default=None)
@click.option("--preset", type=str, default=None, help="snntorch|norse|sinabs|rockpool|lava")
@click.option("--source-dt", type=float, default=None,
              help="dt the source framework exported with (Norse's to_nir dt; default: the preset's).")
@click.option("--target", default="loihi2", show_default=True)
@click.option("--cuba-bias", type=click.Choice(["current", "fold"]), default="current", show_default=True,
              help="How an Affine bias reaches a CubaLIF (fold: into the voltage bias, inexact).")
@click.option("--weight-split/--no-weight-split", default=None,
              help="Compile with / without weight_split (a remainder group per synapse group); default: auto.")
@click.option("--v-headroom", type=float, default=None, help="Compile with this v_headroom (thresholds below zero).")
@click.option("--nir", "nir_path", type=click.Path(), default=None, help="Source .nir of a build folder.")
@click.option("--no-attribution", is_flag=True, help="Skip the per-cause float models.")
@click.option("--json", "json_path", type=click.Path(), default=None, help="Write every figure to this file.")
def fidelity_command(source: str, input_path: Optional[str], n_random: Optional[int], rate: float, seed: int,
                     steps: Optional[int], dt: Optional[float], reset: Optional[str], preset: Optional[str],
                     source_dt: Optional[float], target: str, cuba_bias: str, nir_path: Optional[str], no_attribution: bool,
                     json_path: Optional[str], weight_split: Optional[bool] = None, v_headroom: Optional[float] = None
                     ) -> None:
    """Float source vs integer program, per layer, with the attribution of the drift."""
    if input_path and n_random is not None:
        raise InputError("give either --input or --random, not both", field="input")
    if not os.path.exists(source):
        raise ToolchainError("no such file or folder", file=source)
    if n_random is not None and n_random < 1:
        raise InputError(f"--random needs at least 1 sample, got {n_random}", field="random")
    if steps is not None and steps < 1:
        raise InputError(f"--steps must be >= 1, got {steps}", field="steps")
    if not 0.0 <= rate <= 1.0:
        raise InputError(f"--rate must be in [0, 1], got {rate}", field="rate")
    x = _read_x(input_path) if input_path else None
    src = source
    program = None
    if Path(source).is_dir():
        from ..program import Program
        program = Program.load(source)
        f = nir_path or _find_source(program.metadata.get("file"), Path(source))
        if f is None:
            raise InputError(f"the build's source file {program.metadata.get('file')!r} was not found next to the "
                             f"build or in the current folder; pass it with --nir FILE", file=source,
                             field="metadata.file")
        co = program.metadata.get("compile_options", {})
        from ..nir_io import load
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            src = load(f, dt=program.dt, reset=co.get("reset"), preset=program.metadata.get("preset"),
                       source_dt=source_dt)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rep = fidelity(src, x, program=program, steps=steps, random=n_random or 8, rate=rate, seed=seed, dt=dt,
                       reset=reset, preset=preset, target=target, attribution=not no_attribution,
                       source_dt=source_dt,
                       **({} if program is not None else {"cuba_bias": cuba_bias, **_extra(weight_split, v_headroom)}))
    rep.source = source
    click.echo(format_fidelity(rep))
    if rep.precision.get("note"):
        click.echo(rep.precision["note"])
    if json_path:
        Path(json_path).write_text(json.dumps(rep.to_dict(), indent=1, default=_jsonable))
        click.echo(f"wrote {json_path}")


def _extra(weight_split: Optional[bool], v_headroom: Optional[float]) -> dict:
    out: dict = {}
    if weight_split is not None:
        out["weight_split"] = weight_split
    if v_headroom is not None:
        out["v_headroom"] = v_headroom
    return out


def _jsonable(v: object) -> object:
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    return str(v)


def _find_source(name: Optional[str], build: Path) -> Optional[str]:
    """The build's source file: as recorded, next to the build folder, or in the current folder."""
    if not name:
        return None
    for cand in (Path(name), build.parent / Path(name).name, build / Path(name).name, Path(Path(name).name)):
        if cand.is_file():
            return str(cand)
    return None
