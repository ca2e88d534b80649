"""Data-parallel training over processes with ``torch.distributed`` (gloo on CPU, NCCL on GPU), launched by
``torchrun`` (or any launcher that sets ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``).

How :func:`toolchain.train.loop.fit` uses it (and so :func:`~toolchain.train.bptt.train_bptt`,
:func:`~toolchain.train.stop.train_stop` and the SCA/RCS training that runs through them), once
:func:`init_distributed` has made a process group of more than one process:

* **Distributed sampler**: every rank draws the same seeded permutation and the same global batches as one
  process would (``batch_size`` is the *global* batch), applies the encoder to the whole global batch with the
  epoch's generator (so the encoder noise is the one-process noise), then keeps its contiguous share
  (:func:`shard_bounds`: sizes differ by at most one; a rank may get none of a short last batch).
* **Gradients**: after the batch function has written ``param.grad`` for its share, :func:`average_gradients`
  all-reduces one flat buffer of every gradient, each rank's weighted by ``n_rank / n_global``. The losses of
  both trainers are batch means (STOP's accumulated gradients are those of the batch-mean loss too), so the sum is
  exactly the one-process gradient of the global batch, up to float summation order; Adam then takes the same step
  on every rank. DDP's autograd hooks (``DistributedDataParallel``) are not used: STOP writes its gradients
  without a backward pass, and an uneven last batch needs the weights above; the collective is the same
  all-reduce DDP issues per bucket.
* **Start**: :func:`broadcast_model` copies rank 0's parameters and buffers to every rank (after a resume too),
  so that models built with different seeds still start equal.
* **Logging and checkpoints**: the loss and accuracy are summed over ranks (:func:`all_sum`); only rank 0 prints
  and writes the checkpoint, then every rank waits for it (``barrier``), so ``resume=True`` reads a complete file
  on every rank.

* **Statistics that are not batch means** are reduced over the ranks as one process computes them:
  SCA (:class:`toolchain.prune.sca.SCAScheduler`) sums its channel-activity sums and counts over the ranks
  (:func:`all_reduce`, SUM) at every mask update and reads its regrowth gradients after they are averaged (the
  ``after_gradients`` hook of :func:`toolchain.train.loop.fit`), so every rank computes the one-process masks; the
  RCS regulariser (:class:`toolchain.train.rcs.RCSRegulariser`) takes the maximum over the correct samples of
  the *global* batch (MAX over the ranks' share maxima; the rank holding it, the lowest on a tie, adds its term
  scaled by ``n_global / n_rank`` so that the share-weighted gradient average is the one-process gradient).

* **Batch norm**: :class:`toolchain.prune.sca.MaskedBatchNorm2d` (SCA's networks) normalises in training mode
  with the mean and variance of the *global* batch (:func:`batch_norm_stats`: the share sums all-reduced, with a
  backward that keeps the share-weighted gradient average exact, :class:`_ShareSum`) and updates its running
  averages with them; a rank with no share runs the empty share forward and backward to match the collectives
  (:func:`toolchain.train.loop.fit`). torch's ``SyncBatchNorm`` is not used (it needs CUDA and assumes equal
  shares). A plain ``nn.BatchNorm2d`` still uses its share's statistics; ``fit`` warns about it.

Equality with one process (to float tolerance) thus holds for BPTT (``mean``/``sum``/``per_step``, with or
without RCS), STOP, and SCA on either, with or without MaskedBatchNorm2d (tested with 2 gloo processes).
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Iterable, List, Optional, Sequence, Tuple

import torch
import torch.distributed as dist

from ..errors import ToolchainError

__all__ = ["DistContext", "init_distributed", "current", "shard_bounds", "shard", "average_gradients",
           "broadcast_model", "all_sum", "all_reduce", "batch_norm_stats", "is_main", "barrier", "shutdown"]


@dataclass(frozen=True)
class DistContext:
    """The process group this process belongs to: ``rank`` of ``world`` processes, ``local_rank`` on its node,
    ``backend`` ("gloo" or "nccl") and the ``device`` its collectives use."""

    rank: int
    world: int
    local_rank: int
    backend: str
    device: torch.device


def init_distributed(backend: Optional[str] = None, timeout_s: float = 300.0) -> DistContext:
    """Join the process group described by the launcher's environment (``torchrun`` sets ``RANK``,
    ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``); a no-op returning rank 0 of 1 when
    ``WORLD_SIZE`` is unset or 1. ``backend``: "gloo", "nccl" or None (NCCL when CUDA is available, else gloo).
    With NCCL the process uses ``cuda:LOCAL_RANK``."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", str(rank)))
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend not in ("gloo", "nccl"):
        raise ToolchainError(f"unknown backend {backend!r}; use 'gloo' (CPU) or 'nccl' (GPU)", field="backend")
    if backend == "nccl" and not torch.cuda.is_available():
        raise ToolchainError("backend 'nccl' needs CUDA, which this machine does not have; use 'gloo'",
                             field="backend")
    device = torch.device(f"cuda:{local}") if backend == "nccl" else torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        if backend == "nccl":
            torch.cuda.set_device(device)
        dist.init_process_group(backend, rank=rank, world_size=world,
                                timeout=datetime.timedelta(seconds=timeout_s))
    return DistContext(rank, world, local, backend, device)


def current() -> Optional[DistContext]:
    """The process group of more than one process this process is in, or None (single-process training)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return None
    backend = str(dist.get_backend())
    local = int(os.environ.get("LOCAL_RANK", str(dist.get_rank())))
    device = torch.device(f"cuda:{local}") if backend == "nccl" else torch.device("cpu")
    return DistContext(dist.get_rank(), dist.get_world_size(), local, backend, device)


def shard_bounds(n: int, rank: int, world: int) -> Tuple[int, int]:
    """[start, stop) of ``rank``'s contiguous share of ``n`` samples: sizes differ by at most one, the first
    ``n % world`` ranks take one more."""
    base, extra = divmod(int(n), int(world))
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


def shard(xb: torch.Tensor, yb: torch.Tensor, ctx: DistContext) -> Tuple[torch.Tensor, torch.Tensor]:
    """This rank's share of a global batch (see :func:`shard_bounds`)."""
    a, b = shard_bounds(len(yb), ctx.rank, ctx.world)
    return xb[a:b], yb[a:b]


def _flat(tensors: Sequence[torch.Tensor], device: torch.device) -> torch.Tensor:
    return torch.cat([t.reshape(-1).to(device=device, dtype=torch.float64) for t in tensors])


def average_gradients(params: Iterable[torch.nn.Parameter], n_local: int, n_global: int,
                      ctx: DistContext) -> None:
    """Replace every ``param.grad`` by ``sum over ranks of (n_rank / n_global) * grad_rank`` (one all-reduce of a
    float64 buffer; a parameter without a gradient on a rank counts as zero there; the result keeps the
    parameter's dtype)."""
    params = list(params)
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    buf = _flat(grads, ctx.device) * (float(n_local) / float(n_global))
    dist.all_reduce(buf, op=dist.ReduceOp.SUM)
    off = 0
    for p in params:
        k = p.numel()
        p.grad = buf[off:off + k].reshape(p.shape).to(device=p.device, dtype=p.dtype).clone()
        off += k


def broadcast_model(model: torch.nn.Module, ctx: DistContext, src: int = 0) -> None:
    """Copy rank ``src``'s parameters and buffers into every rank's ``model`` (in place)."""
    with torch.no_grad():
        for t in list(model.parameters()) + list(model.buffers()):
            if t.is_floating_point() or t.dtype in (torch.int64, torch.int32):
                tmp = t.detach().to(ctx.device).clone()
                dist.broadcast(tmp, src)
                t.copy_(tmp.to(t.device))


def all_sum(values: Sequence[float], ctx: DistContext) -> List[float]:
    """Sum each value over the ranks (float64)."""
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=ctx.device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return [float(v) for v in t.cpu()]


_OPS = {"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX, "min": dist.ReduceOp.MIN}


def all_reduce(values: torch.Tensor, op: str, ctx: DistContext) -> torch.Tensor:
    """``values`` reduced elementwise over the ranks (``op``: "sum", "max" or "min"), as a new float64 CPU tensor
    of the same shape (the collective runs on ``ctx.device``). Every rank must call it with the same shape."""
    if op not in _OPS:
        raise ToolchainError(f"unknown reduction {op!r}; use one of {sorted(_OPS)}", field="op")
    t = values.detach().to(device=ctx.device, dtype=torch.float64).clone()
    dist.all_reduce(t, op=_OPS[op])
    return t.cpu()


class _ShareSum(torch.autograd.Function):
    """Sum of a tensor over the ranks whose backward makes the share-weighted gradient average exact: with this
    rank's weight ``w = n_rank / n_global``, the gradient passed back is ``(sum over ranks of w_r g_r) / w``, so
    that after :func:`average_gradients` (which multiplies by ``w``) the parameters get
    ``dS/dtheta * sum_r w_r g_r``, the one-process gradient through the global statistic (0 when ``w`` = 0)."""

    @staticmethod
    def forward(fctx, t: torch.Tensor, weight: float) -> torch.Tensor:  # type: ignore[override]
        out = t.detach().clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        fctx.weight = float(weight)
        return out

    @staticmethod
    def backward(fctx, g: torch.Tensor):  # type: ignore[override]
        w = fctx.weight
        g2 = (g * w).contiguous()
        dist.all_reduce(g2, op=dist.ReduceOp.SUM)
        return (g2 / w if w > 0 else torch.zeros_like(g2)), None


def batch_norm_stats(x: torch.Tensor, ctx: DistContext) -> Tuple[torch.Tensor, torch.Tensor, int]:
    """Batch-norm statistics of the *global* batch from this rank's share ``x`` (N, C, *): per-channel mean and
    biased variance (float64, differentiable, exact one-process gradients under :func:`average_gradients`, see
    :class:`_ShareSum`) and the global count ``N·prod(*)``. Two passes (the mean, then the squared deviations
    from it), three collectives forward and two backward; a rank with an empty share takes part with zeros."""
    dims = [0] + list(range(2, x.dim()))
    n_local = x.numel() // max(1, x.shape[1])
    cnt = torch.tensor([float(n_local)], dtype=torch.float64, device=ctx.device)
    dist.all_reduce(cnt, op=dist.ReduceOp.SUM)
    n_global = int(round(float(cnt.item())))
    if n_global == 0:
        raise ToolchainError("batch norm over an empty global batch", field="x")
    w = n_local / n_global
    xd = x.to(torch.float64)
    mean = _ShareSum.apply(xd.sum(dim=dims).to(ctx.device), w).to(x.device) / n_global
    shape = (1, -1) + (1,) * (x.dim() - 2)
    dev = (xd - mean.reshape(shape)) ** 2
    var = _ShareSum.apply(dev.sum(dim=dims).to(ctx.device), w).to(x.device) / n_global
    return mean, var, n_global


def is_main() -> bool:
    """True in a single process and on rank 0 of a process group."""
    ctx = current()
    return ctx is None or ctx.rank == 0


def barrier() -> None:
    """Wait for every rank (a no-op in a single process)."""
    if current() is not None:
        dist.barrier()


def shutdown() -> None:
    """Leave the process group (a no-op when none was joined)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _free_port() -> int:
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _entry(rank: int, fn, world: int, port: int, backend: str, threads: int, args: tuple) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    if threads:
        torch.set_num_threads(threads)
    init_distributed(backend)
    try:
        fn(rank, *args)
    finally:
        shutdown()


def spawn_local(fn, world: int, args: tuple = (), backend: str = "gloo", threads: int = 1) -> None:
    """Run ``fn(rank, *args)`` in ``world`` new local processes that form one process group (``backend``, on a
    free localhost port; ``threads`` torch threads each, 0 = torch's default) — what ``torchrun
    --nproc-per-node=world`` does, for tests, benchmarks and notebooks. ``fn`` must be importable (a module-level
    function); an exception in any process is raised here."""
    import torch.multiprocessing as mp
    mp.spawn(_entry, args=(fn, int(world), _free_port(), backend, int(threads), tuple(args)), nprocs=int(world),
             join=True)
