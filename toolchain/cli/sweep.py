"""``snnc sweep CONFIG.toml``: a multi-objective Optuna study over training, pruning, compile and early-exit
settings, its trials run in parallel by Ray workers (or local processes) sharing the study's RDB storage.

The file format, the objectives and the outputs are :mod:`toolchain.sweep`'s. Prints the Pareto front as a table,
writes ``pareto.csv``, ``pareto.json``, ``pareto.png`` and the Pareto Programs (``pareto/trial_N``) to the
study's ``out`` folder and ends with ``RESULT sweep_trials N`` and ``RESULT pareto_points K``. Running the same
file again resumes the study (finished trials count towards ``trials``).
"""
from __future__ import annotations

from typing import Optional

import click

from .main import cli

__all__ = ["sweep_cmd"]


@cli.command("sweep")
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--trials", type=int, default=None, help="Override [study] trials (finished trials in all).")
@click.option("--workers", type=int, default=None, help="Override [study] workers.")
@click.option("--executor", type=click.Choice(["ray", "processes", "serial"]), default=None,
              help="Override [study] executor.")
@click.option("--ray-address", default=None, help="Join this Ray cluster ('auto', 'ray://host:10001').")
@click.option("--out", default=None, type=click.Path(file_okay=False), help="Override [study] out.")
def sweep_cmd(config: str, trials: Optional[int], workers: Optional[int], executor: Optional[str],
              ray_address: Optional[str], out: Optional[str]) -> None:
    """Run (or resume) the multi-objective study described by CONFIG (TOML); print the Pareto front."""
    from ..sweep import _create_study, load_sweep_config, parse_sweep_config, run_sweep, write_report, _raw

    cfg = load_sweep_config(config)
    over = {k: v for k, v in (("trials", trials), ("workers", workers), ("executor", executor),
                              ("ray_address", ray_address), ("out", out)) if v is not None}
    if over:
        raw = _raw(cfg)
        raw["study"].update(over)
        cfg = parse_sweep_config(raw, cfg.source)
    click.echo(f"study '{cfg.study['name']}' in {cfg.storage}: objectives {', '.join(cfg.objectives)}; "
               f"{cfg.study['trials']} trials, {cfg.study['workers']} worker(s) via {cfg.study['executor']}")
    front = run_sweep(cfg, log=click.echo)
    lines = write_report(_create_study(cfg), cfg, front)
    click.echo("Pareto front:")
    click.echo("\n".join(lines))
    click.echo(f"files in {cfg.out}: pareto.csv, pareto.json, pareto.png, pareto/ ({len(front['rows'])} Programs)")
    click.echo(f"RESULT sweep_trials {front['trials']}")
    click.echo(f"RESULT pareto_points {len(front['rows'])}")
