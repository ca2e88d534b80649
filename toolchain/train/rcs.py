"""RCS regulariser (Wu et al., arXiv 2301.09522; METHODS.md "Cutoff"): make early representations like late ones.

For every spiking layer with spikes ``s_t`` and membrane potential ``U_t`` (before reset, in the same voltage
unit as the threshold ``theta``) over ``T`` steps:

    r_t   = s_t + ReLU(U_t / theta)                           (dimensionless, >= 0, one vector per sample)
    r_d   = stop_gradient( mean of r_t over the last ceil(0.3 T) steps )
    score = 1 / mean_t cos(r_t, r_d)                          (>= 1; 1 when every r_t points like r_d)

and the loss term is ``alpha * mean over layers of (max over correctly classified samples of score)``.
Pulling the early representations toward the late ones makes the accumulated output settle early, so that the
Top-K cutoff can exit sooner without losing accuracy.

Numerical guards (**ours**): a layer whose ``r_t`` is all zero at some step has ``cos = 0`` there (the
cosine's denominator is clamped at ``eps``, and ``mean_t cos`` at ``eps``, so a silent layer gives a large but
finite score instead of NaN). ``norm_floor`` bounds the gradient of the cosine at nearly silent steps: the
norm of ``r_t`` in the denominator is taken as at least ``norm_floor``. The cosine's gradient grows as
``1/|r_t|``, and a layer with a tiny positive potential at its first steps (|r_t| of 1e-3) otherwise sends
gradients a thousand times larger than the task loss's and derails training (seen on the digits MLP at
alpha = 0.003). :class:`RCSRegulariser` uses ``norm_floor = 1`` (one spike's worth: r is in units of the
threshold), the pure functions default to the exact cosine (``norm_floor = 0``).

Pure functions over tensors first; :class:`RCSRegulariser` is the thin object a training loop calls with the
records of ``SpikingNet.forward(x, record=True)``.

Data-parallel training (``torch.distributed``, :mod:`toolchain.train.distributed`): the maximum is taken over the
correct samples of the *global* batch, as one process takes it. Each rank scores its share; the share maxima are
all-reduced (MAX) per layer, and only the rank holding a layer's global maximum (the lowest rank on an exact tie)
keeps that layer's term, multiplied by ``n_global / n_rank``: the trainer averages gradients with weights
``n_rank / n_global``, so the averaged gradient and the reported loss equal the one-process ones (to float
summation order). A rank with no share of a short last batch joins the collectives through
:meth:`RCSRegulariser.idle`.
"""
from __future__ import annotations

import math
from typing import Any, Dict, Iterable, Mapping, Optional, Sequence, Tuple

import torch

__all__ = ["rcs_representation", "rcs_scores", "rcs_loss", "correct_mask", "RCSRegulariser"]


def rcs_representation(s: torch.Tensor, u: torch.Tensor, theta: Any) -> torch.Tensor:
    """``r_t = s_t + ReLU(U_t / theta)``; ``s``, ``u``: (B, T, *shape); ``theta`` broadcasts over ``shape``.
    Dimensionless: spikes count 1, the potential is in units of the threshold."""
    if s.shape != u.shape:
        raise ValueError(f"RCS: spikes {tuple(s.shape)} and potentials {tuple(u.shape)} differ in shape")
    th = torch.as_tensor(theta, dtype=u.dtype, device=u.device)
    return s.to(u.dtype) + torch.relu(u / th)


def rcs_scores(s: torch.Tensor, u: torch.Tensor, theta: Any, tail_fraction: float = 0.3,
               eps: float = 1e-8, norm_floor: float = 0.0) -> torch.Tensor:
    """Per-sample RCS score ``1 / mean_t cos(r_t, r_d)`` of one layer: (B,) tensor, differentiable in s, u, theta.

    ``r_d`` is the detached mean of ``r`` over the last ``ceil(tail_fraction * T)`` steps (at least one);
    ``norm_floor``: lower bound on ``|r_t|`` in the cosine's denominator (see the module docstring)."""
    if s.dim() < 3:
        raise ValueError(f"RCS: records must be (B, T, ...), got shape {tuple(s.shape)}")
    if not 0.0 < tail_fraction <= 1.0:
        raise ValueError(f"RCS: tail_fraction must be in (0, 1], got {tail_fraction}")
    r = rcs_representation(s, u, theta).flatten(2)                 # (B, T, N)
    steps = r.shape[1]
    tail = max(1, math.ceil(tail_fraction * steps - 1e-9))
    r_d = r[:, steps - tail:].mean(dim=1).detach()                  # (B, N)
    dot = (r * r_d[:, None, :]).sum(-1)                             # (B, T)
    norm = r.norm(dim=-1).clamp_min(norm_floor) * r_d.norm(dim=-1)[:, None]
    cos = dot / norm.clamp_min(eps)
    return 1.0 / cos.mean(dim=1).clamp_min(eps)


def correct_mask(output: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Bool (B,): the prediction from ``output`` equals the label. ``output``: (B, T, C) per-step outputs
    (accumulated over time, as the Cutoff prediction ``argmax Y(T)``) or (B, C) already-reduced scores."""
    with torch.no_grad():
        o = output.detach()
        if o.dim() == 3:
            o = o.sum(dim=1)
        o = o.reshape(o.shape[0], -1)
        return o.argmax(dim=-1) == labels.reshape(-1).to(o.device)


def rcs_loss(layers: Sequence[Tuple[torch.Tensor, torch.Tensor, Any]], correct: torch.Tensor, alpha: float,
             tail_fraction: float = 0.3, eps: float = 1e-8, norm_floor: float = 0.0) -> torch.Tensor:
    """``alpha * mean over layers of max over correct samples of score``.

    ``layers``: (s, u, theta) per spiking layer; ``correct``: bool (B,). With no correct sample (or no layer) the
    term is zero (still attached to the graph when any layer is given)."""
    if not layers:
        return torch.zeros(())
    per_layer = []
    mask = correct.reshape(-1).bool()
    for s, u, theta in layers:
        sc = rcs_scores(s, u, theta, tail_fraction, eps, norm_floor)
        if mask.shape[0] != sc.shape[0]:
            raise ValueError(f"RCS: {mask.shape[0]} labels for a batch of {sc.shape[0]}")
        if bool(mask.any()):
            per_layer.append(sc[mask.to(sc.device)].max())
        else:
            per_layer.append(sc.sum() * 0.0)
    return float(alpha) * torch.stack(per_layer).mean()


def _threshold_of(module: torch.nn.Module) -> Optional[Any]:
    """The firing threshold of a neuron module (or of the neuron a wrapper such as ``Recurrent`` holds)."""
    th = getattr(module, "threshold", None)
    if th is not None:
        return th
    for child in module.children():
        th = _threshold_of(child)
        if th is not None:
            return th
    return None


class RCSRegulariser:
    """The RCS loss term for any ``SpikingNet``-style model: call it with the model, the records of
    ``model(x, record=True)``, the model's output and the labels; add the result to the task loss.

    ``alpha``: weight of the term (the paper uses 0.001–0.005); ``layers``: names of the recorded modules to
    regularise (default: every recorded module that has spikes, a potential and a threshold, i.e. every spiking
    layer, non-spiking readouts excluded); ``tail_fraction``: share of the last steps that define ``r_d``;
    ``norm_floor``: see the module docstring. Use with ``toolchain.train.train_bptt(..., regularizer=reg)``.
    """

    def __init__(self, alpha: float = 0.002, layers: Optional[Iterable[str]] = None, tail_fraction: float = 0.3,
                 eps: float = 1e-8, norm_floor: float = 1.0) -> None:
        if alpha < 0:
            raise ValueError(f"RCS: alpha must be >= 0, got {alpha}")
        self.alpha = float(alpha)
        self.layers = None if layers is None else list(layers)
        self.tail_fraction = float(tail_fraction)
        self.eps = float(eps)
        self.norm_floor = float(norm_floor)

    def layer_inputs(self, model: torch.nn.Module, records: Mapping[str, Mapping[str, torch.Tensor]]
                     ) -> Dict[str, Tuple[torch.Tensor, torch.Tensor, Any]]:
        """name -> (s, u, theta) for each regularised layer, from the records and the model's modules."""
        modules = dict(model.named_modules())
        names = self.layers if self.layers is not None else list(records)
        out: Dict[str, Tuple[torch.Tensor, torch.Tensor, Any]] = {}
        for name in names:
            rec = records.get(name)
            if rec is None:
                raise KeyError(f"RCS: no record for layer '{name}' (recorded: {sorted(records)})")
            mod = modules.get(name)
            theta = _threshold_of(mod) if mod is not None else None
            if "s" not in rec or "u" not in rec or theta is None:
                if self.layers is not None:
                    raise KeyError(f"RCS: layer '{name}' is not a recorded spiking layer with a threshold")
                continue
            if getattr(mod, "spiking", True) is False:
                continue
            out[name] = (rec["s"], rec["u"], theta)
        return out

    def scores(self, model: torch.nn.Module, records: Mapping[str, Mapping[str, torch.Tensor]]
               ) -> Dict[str, torch.Tensor]:
        """Per-layer per-sample scores (for monitoring)."""
        return {n: rcs_scores(s, u, th, self.tail_fraction, self.eps, self.norm_floor)
                for n, (s, u, th) in self.layer_inputs(model, records).items()}

    def __call__(self, model: torch.nn.Module, records: Mapping[str, Mapping[str, torch.Tensor]],
                 output: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The loss term ``alpha * mean_layers max_{correct samples} score``."""
        if self.alpha == 0.0:
            return torch.zeros((), device=output.device)
        from . import distributed as _dist
        ctx = _dist.current()
        if ctx is None:
            layers = list(self.layer_inputs(model, records).values())
            return rcs_loss(layers, correct_mask(output, labels), self.alpha, self.tail_fraction, self.eps,
                            self.norm_floor)
        return self._distributed(model, records, correct_mask(output, labels), ctx, output.device)

    def idle(self, model: torch.nn.Module, *share: Any) -> None:
        """Join the collectives of a distributed step on a rank whose share of the batch is empty (called by
        :func:`toolchain.train.loop.fit` through the batch function's ``idle`` hook)."""
        from . import distributed as _dist
        ctx = _dist.current()
        if ctx is None or self.alpha == 0.0:
            return
        local = torch.full((len(list(model.named_modules())),), -math.inf, dtype=torch.float64)
        self._holders(local, 0, ctx)

    @staticmethod
    def _holders(local: torch.Tensor, n_local: int, ctx: Any) -> Tuple[torch.Tensor, torch.Tensor, float]:
        """(global max per slot, holding rank per slot, global batch size) from this rank's share maxima."""
        from . import distributed as _dist
        gmax = _dist.all_reduce(local, "max", ctx)
        mine = (local == gmax) & torch.isfinite(gmax)
        cand = torch.where(mine, torch.full_like(local, float(ctx.rank)), torch.full_like(local, float(ctx.world)))
        holder = _dist.all_reduce(cand, "min", ctx)
        n_global = _dist.all_reduce(torch.tensor([float(n_local)]), "sum", ctx)[0].item()
        return gmax, holder, n_global

    def _distributed(self, model: torch.nn.Module, records: Mapping[str, Mapping[str, torch.Tensor]],
                     correct: torch.Tensor, ctx: Any, device: torch.device) -> torch.Tensor:
        """The term of this rank's share such that the share-weighted average over the ranks is the
        one-process term of the global batch (see the module docstring)."""
        index = {name: i for i, (name, _) in enumerate(model.named_modules())}
        inputs = self.layer_inputs(model, records)
        mask = correct.reshape(-1).bool()
        local = torch.full((len(index),), -math.inf, dtype=torch.float64)
        scores: Dict[str, torch.Tensor] = {}
        for name, (s, u, theta) in inputs.items():
            sc = rcs_scores(s, u, theta, self.tail_fraction, self.eps, self.norm_floor)
            if mask.shape[0] != sc.shape[0]:
                raise ValueError(f"RCS: {mask.shape[0]} labels for a batch of {sc.shape[0]}")
            scores[name] = sc
            if bool(mask.any()):
                local[index[name]] = float(sc[mask.to(sc.device)].max().detach())
        n_local = int(mask.shape[0])
        _, holder, n_global = self._holders(local, n_local, ctx)
        if not scores:
            return torch.zeros((), device=device)
        terms = []
        for name, sc in scores.items():
            if int(holder[index[name]]) == ctx.rank:
                terms.append(sc[mask.to(sc.device)].max() * (n_global / n_local))
            else:
                terms.append(sc.sum() * 0.0)
        return self.alpha * torch.stack(terms).mean()
