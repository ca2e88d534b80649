"""Training: surrogate-gradient BPTT, STOP online learning (weights, thresholds, leaks), the shared loop.

* :func:`train_bptt` / :func:`bptt_step` — :mod:`toolchain.train.bptt`
* :func:`train_stop` / :func:`stop_gradients` — :mod:`toolchain.train.stop` (Gao et al. 2024)
* :class:`TrainConfig`, :class:`History`, :func:`evaluate`, :func:`predict` — :mod:`toolchain.train.loop`
* :func:`save_checkpoint`, :func:`load_checkpoint` — :mod:`toolchain.train.checkpoint`
* the RCS regulariser of the Cutoff method lives in :mod:`toolchain.train.rcs`.
"""
from .bptt import bptt_step, sequence_loss, train_bptt
from .checkpoint import load_checkpoint, save_checkpoint
from .loop import History, TrainConfig, evaluate, fit, predict
from .stop import VARIANTS, stop_gradients, stop_parameters, train_stop

__all__ = [
    "train_bptt", "bptt_step", "sequence_loss", "train_stop", "stop_gradients", "stop_parameters", "VARIANTS",
    "TrainConfig", "History", "evaluate", "fit", "predict", "save_checkpoint", "load_checkpoint",
]
