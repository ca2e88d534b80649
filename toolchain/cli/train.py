"""``snnc train CONFIG.toml``: train the spiking MLP of a sweep's ``[task]`` once, in one process or
data-parallel under ``torchrun`` (:mod:`toolchain.train.distributed`)::

    snnc train train.toml                                          # one process
    torchrun --nproc-per-node=2 .venv/bin/snnc train train.toml    # 2 processes (gloo on CPU, NCCL on GPU)

The file has a ``[task]`` table (the keys of :mod:`toolchain.sweep`'s ``[task]``: dataset, steps, train_samples,
test_samples, epochs, batch_size — the *global* batch —, trainer "bptt" or "stop", lr, hidden, reset, seed) and
an optional ``[output]`` table: ``checkpoint`` (written by rank 0 after every epoch; resumed from when it exists)
and ``model`` (the trained state dict, rank 0). Prints the test accuracy per epoch (rank 0) and ends with
``RESULT train_test_acc A``.
"""
from __future__ import annotations

from pathlib import Path

import click

from ..errors import InputError
from .main import cli

__all__ = ["train_cmd"]

try:  # Python 3.11+
    import tomllib as _toml  # type: ignore[import-not-found]
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as _toml  # type: ignore[no-redef]

_TASK = {"dataset": "digits", "steps": 8, "train_samples": 0, "test_samples": 0, "epochs": 5, "batch_size": 32,
         "trainer": "bptt", "lr": 5e-3, "hidden": 32, "reset": "subtract", "seed": 0, "backend": ""}


@cli.command("train")
@click.argument("config", type=click.Path(dir_okay=False))
def train_cmd(config: str) -> None:
    """Train the model described by CONFIG (TOML), data-parallel when started by torchrun."""
    import torch
    from torch import nn

    from ..nn import LI, LIF, SpikingNet
    from ..sweep import _digits
    from ..train import TrainConfig, train_bptt, train_stop
    from ..train import distributed as dist

    path = Path(config)
    if not path.is_file():
        raise InputError("no such training file", file=config)
    try:
        data = _toml.loads(path.read_text())
    except _toml.TOMLDecodeError as exc:
        raise InputError(f"not valid TOML: {exc}", file=config) from None
    task = dict(_TASK)
    for k, v in data.get("task", {}).items():
        if k not in _TASK:
            raise InputError(f"unknown key; [task] has {sorted(_TASK)}", file=config, field=f"task.{k}")
        task[k] = v
    out = data.get("output", {})
    for k in out:
        if k not in ("checkpoint", "model"):
            raise InputError("unknown key; [output] has checkpoint, model", file=config, field=f"output.{k}")
    if task["trainer"] not in ("bptt", "stop"):
        raise InputError(f"must be 'bptt' or 'stop', got {task['trainer']!r}", file=config, field="task.trainer")
    ctx = dist.init_distributed(task["backend"] or None)
    try:
        ds = _digits(task)
        n_in = int(ds.x_train[0, 0].size)
        torch.manual_seed(int(task["seed"]))
        h = int(task["hidden"])
        model = SpikingNet(nn.Linear(n_in, h), LIF(h, alpha=0.9, threshold=1.0, reset=task["reset"],
                                                   learn_threshold=True, learn_leak=True, per_neuron=False),
                           nn.Linear(h, ds.n_classes), LI(ds.n_classes, alpha=0.9, per_neuron=False))
        ckpt = out.get("checkpoint")
        cfg = TrainConfig(epochs=int(task["epochs"]), batch_size=int(task["batch_size"]), lr=float(task["lr"]),
                          seed=int(task["seed"]), checkpoint=ckpt, resume=bool(ckpt), progress=ctx.rank == 0)
        if ctx.rank == 0:
            click.echo(f"training on {ctx.world} process(es) ({ctx.backend}), global batch {cfg.batch_size}")
        trainer = train_bptt if task["trainer"] == "bptt" else (lambda m, d, c: train_stop(m, d, c, variant="WTL"))
        hist = trainer(model, ds, cfg)
        if ctx.rank == 0:
            if out.get("model"):
                Path(out["model"]).parent.mkdir(parents=True, exist_ok=True)
                torch.save(model.state_dict(), out["model"])
            acc = hist.test_acc[-1] if hist.epochs else float("nan")
            click.echo(f"RESULT train_test_acc {acc:.4f}")
    finally:
        dist.shutdown()
