"""``snnc chips BUILD -t kapoho_point [--data X.npy]``: assign the cores of a compiled build to the chips of a
multi-chip system target so that the fewest spikes cross between chips (:mod:`toolchain.passes.multichip`).

    snnc chips BUILD/ -t kapoho_point                   # rates: the estimate of 1 spike per neuron per step
    snnc chips BUILD/ -t kapoho_point --data X.npy      # rates recorded in a reference run on X.npy
    snnc chips BUILD/ -t hala_point --method edgecut -o OUT/

Prints the chip map and the inter-chip spikes per step of the hypergraph partitioner, METIS edge-cut and
in-order filling side by side, writes the Program with every core's chip (``report["multichip"]``) to ``-o``
(default: the build itself, rewritten atomically) and ends with ``RESULT interchip_spikes_per_step V``.
"""
from __future__ import annotations

from typing import Optional

import click

from .main import cli

__all__ = ["chips_cmd"]


@cli.command("chips")
@click.argument("build", type=click.Path(file_okay=False))
@click.option("--target", "-t", "target", default=None,
              help="System target: a name (kapoho_point, hala_point) or a .toml path (default: the build's).")
@click.option("--data", default=None, type=click.Path(dir_okay=False),
              help="Input spikes X.npy (N, T, ...): the spike rates of a reference run on them weight the axons.")
@click.option("--steps", type=int, default=None, help="Steps of the recorded run (default: T plus the latency).")
@click.option("--method", type=click.Choice(["hypergraph", "edgecut", "inorder"]), default="hypergraph",
              show_default=True, help="Assignment kept in the Program (all three are reported).")
@click.option("--output", "-o", default=None, type=click.Path(file_okay=False),
              help="Write the Program here (default: rewrite BUILD).")
def chips_cmd(build: str, target: Optional[str], data: Optional[str], steps: Optional[int], method: str,
              output: Optional[str]) -> None:
    """Assign the build's cores to the chips of a system target; print the chip map and inter-chip traffic."""
    from ..passes.multichip import format_chip_report, partition_chips, rates_from_spikes
    from ..program import Program
    from ..targets import load_target
    from .report import _check_steps, default_steps, load_arrays

    prog = Program.load(build)
    spec = load_target(target or prog.target)
    rates = None
    if data is not None:
        from ..sim.reference import simulate
        x, _ = load_arrays(data, None)
        n = int(steps) if steps is not None else default_steps(prog, x)
        _check_steps(prog, x, n)
        rates = rates_from_spikes(simulate(prog, x, steps=n, record=True).spikes)
    out = partition_chips(prog, spec, rates, method=method)
    click.echo(format_chip_report(out))
    out.save(output or build)
    click.echo(f"RESULT interchip_spikes_per_step {out.report['multichip']['interchip_spikes_per_step']:.6g}")
