"""Training checkpoints: model, optimiser, scheduler, epoch and history in one file, written atomically.

A checkpoint is a ``torch.save`` dict with keys ``format`` (``"toolchain-train/1"``), ``trainer`` (e.g.
``"stop-WTL"``), ``epoch`` (the last finished epoch, 1-based), ``model``, ``optimizer``, ``scheduler`` (state
dicts), ``history`` (:meth:`History.to_dict`) and ``config`` (the :class:`TrainConfig` fields). It is written to
``<path>.tmp`` and renamed, so an interrupted save never leaves a truncated checkpoint behind.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, Optional, Union

import torch

from ..errors import InputError

__all__ = ["save_checkpoint", "load_checkpoint", "CHECKPOINT_FORMAT"]

CHECKPOINT_FORMAT = "toolchain-train/1"
PathLike = Union[str, "os.PathLike[str]"]


def save_checkpoint(path: PathLike, *, model: torch.nn.Module, optimizer: Optional[torch.optim.Optimizer],
                    scheduler: Optional[Any], epoch: int, history: Dict[str, Any], config: Dict[str, Any],
                    trainer: str) -> Path:
    """Write a checkpoint atomically and return its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = {
        "format": CHECKPOINT_FORMAT, "trainer": trainer, "epoch": int(epoch), "model": model.state_dict(),
        "optimizer": None if optimizer is None else optimizer.state_dict(),
        "scheduler": None if scheduler is None else scheduler.state_dict(),
        "history": history, "config": config,
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(blob, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: PathLike) -> Dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`; raises :class:`InputError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise InputError("checkpoint not found", file=str(path))
    try:
        blob = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad file for the user
        raise InputError(f"not a readable checkpoint ({type(exc).__name__}: {exc})", file=str(path)) from None
    if not isinstance(blob, dict) or blob.get("format") != CHECKPOINT_FORMAT:
        raise InputError(f"not a {CHECKPOINT_FORMAT} checkpoint", file=str(path), field="format")
    return blob
