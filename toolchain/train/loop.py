"""The training loop BPTT and STOP share: seeded batches, Adam, clamps, evaluation, history, checkpoints.

A trainer supplies a *batch function* ``batch_fn(model, x, y) -> (loss, output_sum)`` that writes ``param.grad``
for the parameters it trains (BPTT: ``loss.backward()``; STOP: forward traces) and returns the batch loss and
``Σ_t y[t]`` (B, C), whose argmax is the prediction. :func:`fit` does the rest:

* **Reproducible**: epoch ``e`` shuffles with a numpy Generator seeded by ``(seed, e)`` and draws encoder noise
  from a torch Generator seeded the same way; nothing else is random, so the same seed (and the same initial
  model) gives the same weights — and resuming from a checkpoint after epoch ``k`` gives the same weights as an
  uninterrupted run.
* **Optimiser**: Adam (``lr``, ``weight_decay``), optional cosine schedule over the epochs (a function of the
  epoch, so that a resumed run gets the same rates); after every step the
  network's leaks are clamped into [0, 1] and thresholds to ≥ 1e-3 (``SpikingNet.clamp_``).
* **History**: per epoch mean loss, training accuracy (on the batches as trained), test accuracy, seconds.
* **Checkpoints**: after every epoch to ``checkpoint`` (atomic); ``resume=True`` continues from it.
* **Progress**: a tqdm bar per epoch (``progress=False`` silences it).
* **Distributed**: in a ``torch.distributed`` process group of more than one process (``torchrun`` and
  :func:`toolchain.train.distributed.init_distributed`), every rank trains on its share of each global batch and
  the gradients are averaged before the step, so the weights equal a one-process run's; rank 0 alone prints and
  writes checkpoints (:mod:`toolchain.train.distributed`).
* **Device**: every batch is moved to the device of the model's first trained parameter (after the encoder, which
  draws its noise on the CPU so that the noise does not depend on the device), so a model on ``cuda:k`` (NCCL)
  trains on ``cuda:k``; the batch function returns its outputs on that device.
* **Batch-function hooks** (optional attributes of ``batch_fn``): ``after_gradients(model)`` is called on every
  rank after the gradients are final (averaged over the ranks) and before the optimiser step — SCA's scheduler
  (:func:`toolchain.prune.sca.with_sca`) reads the regrowth gradients there; ``idle(model)`` is called instead of
  the batch function (with the empty share ``idle(model, x, y)``) on a rank whose share of a short last batch is
  empty, so that collectives issued inside the batch function (the RCS regulariser's batch maximum) are matched
  on every rank; for a model with batch norm over the global batch (``global_batch_stats``:
  :class:`toolchain.prune.sca.MaskedBatchNorm2d`) such a rank also runs the empty share forward and backward.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

import numpy as np
import torch
from torch import nn

from ..data.base import SplitDataset, iterate_batches
from ..errors import InputError, ToolchainError
from ..plotting import save_figure
from . import distributed as _dist
from .checkpoint import load_checkpoint, save_checkpoint

__all__ = ["TrainConfig", "History", "fit", "evaluate", "predict", "learning_rate", "BatchFn", "Encoder"]

BatchFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], Tuple[float, torch.Tensor]]
Encoder = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


@dataclass
class TrainConfig:
    """Settings of a training run (shared by :func:`~toolchain.train.bptt.train_bptt` and
    :func:`~toolchain.train.stop.train_stop`).

    ``epochs``, ``batch_size``, ``lr`` (Adam), ``weight_decay``, ``schedule`` ("cosine" or "constant"), ``seed``;
    ``loss_start``: first time step that enters the loss and the prediction; ``eval_batch_size``; ``progress``;
    ``checkpoint``: file written after every epoch; ``resume``: continue from it when it exists;
    ``max_batches``: cap on batches per epoch (quick runs); ``encoder``: ``(x, generator) -> spikes`` applied to
    every batch when the data are static (e.g. :class:`~toolchain.data.RateEncoder`).
    """

    epochs: int = 10
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 0.0
    schedule: str = "cosine"
    seed: int = 0
    loss_start: int = 0
    eval_batch_size: int = 256
    progress: bool = True
    checkpoint: Optional[str] = None
    resume: bool = False
    max_batches: Optional[int] = None
    encoder: Optional[Encoder] = None

    def __post_init__(self) -> None:
        if self.epochs < 0:
            raise InputError(f"must be >= 0, got {self.epochs}", field="epochs")
        if self.batch_size <= 0:
            raise InputError(f"must be positive, got {self.batch_size}", field="batch_size")
        if not self.lr > 0:
            raise InputError(f"must be positive, got {self.lr}", field="lr")
        if self.schedule not in ("cosine", "constant"):
            raise InputError(f"must be 'cosine' or 'constant', got {self.schedule!r}", field="schedule")

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d["encoder"] = None if self.encoder is None else repr(self.encoder)
        return d


@dataclass
class History:
    """Per-epoch records of a run: ``epochs[i] = {"epoch", "loss", "train_acc", "test_acc", "seconds"}``."""

    trainer: str
    epochs: List[Dict[str, float]] = field(default_factory=list)

    @property
    def loss(self) -> List[float]:
        return [e["loss"] for e in self.epochs]

    @property
    def train_acc(self) -> List[float]:
        return [e["train_acc"] for e in self.epochs]

    @property
    def test_acc(self) -> List[float]:
        return [e["test_acc"] for e in self.epochs]

    def to_dict(self) -> Dict[str, Any]:
        return {"trainer": self.trainer, "epochs": [dict(e) for e in self.epochs]}

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "History":
        return cls(d["trainer"], [dict(e) for e in d.get("epochs", [])])

    def plot(self, path: str, title: Optional[str] = None) -> Path:
        """Write the training curve (loss and accuracies per epoch) as a PNG."""
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        ep = [e["epoch"] for e in self.epochs]
        fig, ax1 = plt.subplots(figsize=(6, 3.6))
        ax1.plot(ep, self.loss, "k-", label="loss")
        ax1.set_xlabel("epoch")
        ax1.set_ylabel("loss")
        ax2 = ax1.twinx()
        ax2.plot(ep, [100 * a for a in self.train_acc], "b--", label="train acc")
        ax2.plot(ep, [100 * a for a in self.test_acc], "r-", label="test acc")
        ax2.set_ylabel("accuracy (%)")
        lines = ax1.get_lines() + ax2.get_lines()
        ax1.legend(lines, [ln.get_label() for ln in lines], loc="center right")
        ax1.set_title(title or self.trainer)
        return save_figure(fig, path)


def _epoch_seed(seed: int, epoch: int) -> int:
    return int(np.random.SeedSequence([int(seed), int(epoch)]).generate_state(1)[0])


def learning_rate(config: TrainConfig, epoch: int) -> float:
    """Adam's rate in ``epoch`` (0-based): constant, or cosine from ``lr`` towards 0 over ``epochs``."""
    if config.schedule == "constant" or config.epochs <= 1:
        return config.lr
    return 0.5 * config.lr * (1.0 + math.cos(math.pi * epoch / config.epochs))


def predict(output: torch.Tensor, loss_start: int = 0) -> torch.Tensor:
    """Class predictions from a network output (B, T, C): ``argmax_c Σ_{t ≥ loss_start} y[t, c]``."""
    return output[:, loss_start:].sum(1).argmax(-1)


def _prepare(x: torch.Tensor, encoder: Optional[Encoder], gen: Optional[torch.Generator]) -> torch.Tensor:
    if encoder is None:
        return x
    return encoder(x, gen if gen is not None else torch.Generator().manual_seed(0))


@torch.no_grad()
def evaluate(model: nn.Module, x: np.ndarray, y: np.ndarray, batch_size: int = 256, loss_start: int = 0,
             encoder: Optional[Encoder] = None, seed: int = 0) -> float:
    """Accuracy of ``model`` on ``(x, y)`` with the prediction of :func:`predict` (encoder noise seeded)."""
    if len(y) == 0:
        raise InputError("cannot evaluate on an empty set", field="y")
    was = model.training
    model.eval()
    gen = torch.Generator().manual_seed(_epoch_seed(seed, 2**31))  # an "epoch" no training run reaches
    correct = 0
    first = next(iter(model.parameters()), None)
    device = first.device if first is not None else torch.device("cpu")
    for xb, yb in iterate_batches(x, y, batch_size):
        out = model(_prepare(xb, encoder, gen).to(device))
        correct += int((predict(out, loss_start).cpu() == yb).sum())
    model.train(was)
    return correct / len(y)


def _check_data(data: SplitDataset, config: TrainConfig) -> None:
    if not data.time_major and config.encoder is None:
        raise InputError("static data need an encoder (e.g. RateEncoder) to become spike sequences",
                         node=data.name, field="encoder")
    if len(data.y_train) == 0:
        raise InputError("no training samples", node=data.name, field="x_train")


def fit(model: nn.Module, data: SplitDataset, config: TrainConfig, batch_fn: BatchFn,
        params: Iterable[nn.Parameter], trainer: str) -> History:
    """Train ``model`` on ``data.x_train`` with ``batch_fn`` and Adam over ``params``; evaluate on ``data.x_test``
    after every epoch. Returns the :class:`History` (also stored in the checkpoint)."""
    _check_data(data, config)
    params = list(params)
    if not params:
        raise ToolchainError("nothing to train: no parameters", node=trainer)
    torch.manual_seed(config.seed)
    opt = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    history = History(trainer)
    start = 0
    if config.resume and config.checkpoint and Path(config.checkpoint).exists():
        blob = load_checkpoint(config.checkpoint)
        if blob["trainer"] != trainer:
            raise InputError(f"checkpoint was written by trainer '{blob['trainer']}', not '{trainer}'",
                             file=str(config.checkpoint), field="trainer")
        model.load_state_dict(blob["model"])
        if blob["optimizer"] is not None:
            opt.load_state_dict(blob["optimizer"])
        history = History.from_dict(blob["history"])
        start = int(blob["epoch"])
    ddp = _dist.current()  # None in a single process
    main = ddp is None or ddp.rank == 0
    if ddp is not None:
        _dist.broadcast_model(model, ddp)
        if main and any(isinstance(m, nn.modules.batchnorm._BatchNorm) and not getattr(m, "global_batch_stats", False)
                        for m in model.modules()):
            import warnings
            warnings.warn(f"{trainer}: batch norm in training mode normalises with each rank's share of the batch "
                          f"(no synchronised statistics), so this run is not the one-process run", RuntimeWarning,
                          stacklevel=2)

    from tqdm.auto import tqdm

    device = params[0].device
    synced_bn = any(getattr(m, "global_batch_stats", False) for m in model.modules())
    after_gradients = getattr(batch_fn, "after_gradients", None)
    idle = getattr(batch_fn, "idle", None)
    n_batches = math.ceil(len(data.y_train) / config.batch_size)
    if config.max_batches is not None:
        n_batches = min(n_batches, config.max_batches)
    for epoch in range(start, config.epochs):
        t0 = time.perf_counter()
        seed = _epoch_seed(config.seed, epoch)
        gen = torch.Generator().manual_seed(seed)
        for group in opt.param_groups:  # stateless schedule: a resumed run gets the same rates
            group["lr"] = learning_rate(config, epoch)
        model.train()
        loss_sum = 0.0
        correct = seen = 0
        batches = iterate_batches(data.x_train, data.y_train, config.batch_size, shuffle=True, seed=seed)
        bar = tqdm(total=n_batches, desc=f"{trainer} epoch {epoch + 1}/{config.epochs}", leave=False,
                   disable=not (config.progress and main), dynamic_ncols=True)
        for b, (xb, yb) in enumerate(batches):
            if b >= n_batches:
                break
            xb = _prepare(xb, config.encoder, gen)
            for p in params:
                p.grad = None
            n_global = len(yb)
            if ddp is not None:
                xb, yb = _dist.shard(xb, yb, ddp)
            xb, yb = xb.to(device), yb.to(device)
            if len(yb):
                loss, out_sum = batch_fn(model, xb, yb)
            else:  # a rank with no share of a short last batch contributes nothing
                # collectives inside the batch function: the empty share runs forward (global batch-norm
                # statistics), the batch function's own (idle hook), then backward, in the busy ranks' order
                out_e = model(xb) if ddp is not None and synced_bn else None
                if idle is not None:
                    idle(model, xb, yb)
                if out_e is not None:
                    (out_e.sum() * 0.0).backward()
                loss, out_sum = 0.0, torch.zeros(0, 1, device=device)
            n_correct = int((out_sum.argmax(-1) == yb).sum()) if len(yb) else 0
            if ddp is not None:
                _dist.average_gradients(params, len(yb), n_global, ddp)
                loss_n, n_correct = _dist.all_sum([loss * len(yb), n_correct], ddp)
                loss, n_correct = loss_n / n_global, int(round(n_correct))
            if after_gradients is not None:
                after_gradients(model)
            if not math.isfinite(loss):
                raise ToolchainError(f"the loss became {loss} in epoch {epoch + 1}, batch {b + 1}; lower the "
                                     f"learning rate", node=trainer, field="lr")
            opt.step()
            clamp = getattr(model, "clamp_", None)
            if clamp is not None:
                clamp()
            loss_sum += loss * n_global
            correct += n_correct
            seen += n_global
            bar.update(1)
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}")
        bar.close()
        test_acc = evaluate(model, data.x_test, data.y_test, config.eval_batch_size, config.loss_start,
                            config.encoder, config.seed) if len(data.y_test) else float("nan")
        rec = {"epoch": epoch + 1, "loss": loss_sum / max(1, seen), "train_acc": correct / max(1, seen),
               "test_acc": test_acc, "seconds": time.perf_counter() - t0}
        history.epochs.append(rec)
        if config.progress and main:
            tqdm.write(f"{trainer} epoch {epoch + 1}/{config.epochs}: loss {rec['loss']:.4f}  "
                       f"train {100 * rec['train_acc']:.2f}%  test {100 * test_acc:.2f}%  ({rec['seconds']:.1f} s)")
        if config.checkpoint and main:
            save_checkpoint(config.checkpoint, model=model, optimizer=opt, scheduler=None, epoch=epoch + 1,
                            history=history.to_dict(), config=config.to_dict(), trainer=trainer)
        if config.checkpoint and ddp is not None:
            _dist.barrier()  # every rank sees the finished checkpoint before it goes on (or resumes)
    return history
