"""Tasks on which pruned HRSNNs are compared: next-step prediction of chaotic series and sequence classification.

* :func:`train_regression` / :func:`evaluate_regression`: an HRSNN (or any :class:`~toolchain.nn.SpikingNet` with
  a non-spiking readout) reads the level-encoded spikes of a
  :class:`~toolchain.data.timeseries.PredictionTask` and predicts ``x[t + 1]`` at every step; loss and error
  skip the first ``washout`` steps of each window (the state starts at zero). Adam on the mean squared error,
  full BPTT through the window, clamps after each step; seeded batch order. Error: NRMSE on the test windows.
* :func:`train_classification`: the project's BPTT trainer (:func:`toolchain.train.bptt.train_bptt`) on a
  :class:`~toolchain.data.base.SplitDataset` of sequences (e.g. mnist1d as a sequence), returning test accuracy.
* :func:`synaptic_ops`: synaptic operations per inference (one spike through one synapse = one op), counted
  from recorded spikes: input spikes × input fan-out + recurrent spikes × (recurrent fan-out + readout fan-out).
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..data.timeseries import PredictionTask, nrmse

__all__ = ["train_regression", "evaluate_regression", "predict_regression", "train_classification",
           "evaluate_classification", "synaptic_ops"]


def predict_regression(model: nn.Module, spikes: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Model output (n, T, d) for input spikes (n, T, n_in), no gradients."""
    outs = []
    with torch.no_grad():
        for b in range(0, len(spikes), batch_size):
            outs.append(model(torch.as_tensor(spikes[b:b + batch_size], dtype=torch.float32)).double().numpy())
    return np.concatenate(outs)


def evaluate_regression(model: nn.Module, task: PredictionTask, washout: int = 10) -> float:
    """NRMSE of the next-step prediction on the test windows (steps ≥ washout)."""
    pred = predict_regression(model, task.s_test)
    return nrmse(pred[:, washout:], task.y_test[:, washout:])


def train_regression(model: nn.Module, task: PredictionTask, *, epochs: int = 100, lr: float = 3e-3,
                     batch_size: int = 16, washout: int = 10, seed: int = 0, progress: bool = False,
                     desc: str = "train") -> List[float]:
    """Train ``model`` in place on ``task`` (module docstring); returns the mean training loss per epoch."""
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    x = torch.as_tensor(task.s_train, dtype=torch.float32)
    y = torch.as_tensor(task.y_train, dtype=torch.float32)
    rng = np.random.default_rng(seed)
    losses: List[float] = []
    bar = tqdm(range(int(epochs)), desc=desc, disable=not progress, leave=False)
    for _ in bar:
        perm = rng.permutation(len(x))
        tot, nb = 0.0, 0
        for b in range(0, len(x), batch_size):
            idx = torch.as_tensor(perm[b:b + batch_size])
            out = model(x[idx])
            loss = ((out[:, washout:] - y[idx][:, washout:]) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            if hasattr(model, "clamp_"):
                model.clamp_()
            tot += float(loss.detach())
            nb += 1
        losses.append(tot / max(nb, 1))
        bar.set_postfix(loss=f"{losses[-1]:.4f}")
    if hasattr(model, "apply_masks_"):
        model.apply_masks_()
    return losses


def train_classification(model: nn.Module, data: Any, *, epochs: int = 20, lr: float = 3e-3, batch_size: int = 64,
                         seed: int = 0, loss_start: int = 0, progress: bool = False,
                         max_batches: Optional[int] = None) -> Dict[str, Any]:
    """Train with :func:`toolchain.train.bptt.train_bptt` (loss on the time-averaged LI readout); returns
    ``{"history": History, "test_acc": float}``."""
    from ..train.bptt import train_bptt
    from ..train.loop import TrainConfig

    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, loss_start=loss_start,
                      progress=progress, max_batches=max_batches)
    hist = train_bptt(model, data, cfg)
    if hasattr(model, "apply_masks_"):
        model.apply_masks_()
    return {"history": hist, "test_acc": evaluate_classification(model, data, loss_start)}


def evaluate_classification(model: nn.Module, data: Any, loss_start: int = 0, batch_size: int = 256) -> float:
    """Test accuracy: ``argmax Σ_{t ≥ loss_start} y[t]``."""
    correct = 0
    with torch.no_grad():
        for b in range(0, len(data.x_test), batch_size):
            out = model(torch.as_tensor(data.x_test[b:b + batch_size], dtype=torch.float32))
            pred = out[:, loss_start:].sum(1).argmax(-1).numpy()
            correct += int((pred == data.y_test[b:b + batch_size]).sum())
    return correct / max(len(data.x_test), 1)


def synaptic_ops(model: nn.Module, spikes: np.ndarray, batch_size: int = 64) -> float:
    """Mean synaptic operations per inference (one input sample) of an HRSNN: input spikes × n_rec (dense input
    layer) + recurrent spikes of neuron j × (its recurrent fan-out + n_out readout synapses)."""
    mask = model.rec_mask.cpu().numpy()
    fan_out = mask.sum(0).astype(np.float64) + model.n_out  # column j: synapses leaving neuron j
    n_rec = model.n_rec
    tot = 0.0
    with torch.no_grad():
        for b in range(0, len(spikes), batch_size):
            xb = torch.as_tensor(spikes[b:b + batch_size], dtype=torch.float32)
            _, rec = model(xb, record=True)
            s = rec["rec"]["s"].double().numpy()  # (B, T, n_rec)
            tot += float(xb.double().numpy().sum()) * n_rec + float((s.sum((0, 1)) * fan_out).sum())
    return tot / max(len(spikes), 1)
