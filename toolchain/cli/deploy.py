"""``snnc deploy BUILD --to loihi2 -o DIR``: write the folder a user copies to a Loihi 2 system.

The folder holds the netx file, ``deploy.json`` (the input encoding), a standalone ``run.py`` (numpy, Lava and
lava-dl only: ``Loihi2HwCfg`` where lava-loihi is installed, ``Loihi2SimCfg(select_tag="fixed_pt")`` otherwise), a
README and a sample input with the toolchain's output for it. The logic is
:func:`toolchain.backends.deploy.deploy`; a Program netx cannot hold is refused with the exporter's error and
nothing is written; a non-empty folder that ``snnc deploy`` did not write is refused.
"""
from __future__ import annotations

import json
from typing import Optional

import click
import numpy as np

from ..backends.deploy import DEPLOY_TARGETS, deploy
from ..errors import InputError, ToolchainError
from ..program import Program
from .main import cli

__all__ = ["deploy_cmd"]


def _read_sample(path: str) -> np.ndarray:
    """The ``--sample`` array (``.npy``); errors name the file."""
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise ToolchainError("no such file", file=path, field="sample") from None
    except (OSError, ValueError, EOFError) as exc:
        raise InputError(f"cannot read as a numpy .npy array: {exc}", file=path, field="sample") from None


@cli.command("deploy")
@click.argument("build", type=click.Path(file_okay=False))
@click.option("--to", "target", type=click.Choice(DEPLOY_TARGETS), default="loihi2", show_default=True,
              help="Target system.")
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=True, file_okay=False),
              help="Folder to write (new, empty, or one snnc deploy wrote before).")
@click.option("--steps", "-T", type=int, default=None,
              help="Steps per sample (default: the build's reset_interval, or the input's length at run time).")
@click.option("--sample", "sample_path", type=click.Path(dir_okay=False), default=None,
              help="Sample input .npy to ship with its reference output (default: a seeded random one).")
@click.option("--no-sample", is_flag=True, help="Ship no sample input.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random sample.")
def deploy_cmd(build: str, target: str, output: str, steps: Optional[int], sample_path: Optional[str],
               no_sample: bool, seed: int) -> None:
    """Write the deploy folder for the Program in BUILD: network.net, deploy.json, run.py, README.md."""
    if no_sample and sample_path is not None:
        raise click.UsageError("give either --sample or --no-sample, not both")
    program = Program.load(build)
    sample = _read_sample(sample_path) if sample_path is not None else None
    out = deploy(program, output, target, steps=steps, sample_input=sample, sample=not no_sample, seed=seed)
    man = json.loads((out / "deploy.json").read_text(encoding="utf-8"))
    inp, res = man["input"], man["output"]
    shape = "x".join(str(s) for s in inp["shape"])
    click.echo(f"wrote {out}: network.net ({len(man['layers'])} layers), deploy.json, run.py, README.md"
               + (", sample_input.npy, reference_output.npz" if man.get("sample") else ""))
    click.echo(f"input '{inp['port']}': {inp['kind']} {shape} in [{inp['range'][0]}, {inp['range'][1]}]"
               + (f", {man['steps_per_sample']} steps per sample" if man["steps_per_sample"] else "")
               + (f", reset_interval {man['reset']['interval']}" if man["reset"]["interval"] else ""))
    click.echo(f"output '{res['group']}' {res['kind']}, latency {man['latency_steps']} steps; "
               f"program sha256 {man['program_sha256'][:16]}")
    click.echo(f"run: cd {out} && python run.py   (Loihi 2 with lava-loihi, else the CPU; see README.md)")
