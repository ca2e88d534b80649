"""STOP: online training of weights, thresholds and leaks with forward traces (Gao et al., arXiv 2411.11082).

Neuron (the :class:`toolchain.nn.LIF` with soft reset; voltage units arbitrary, α ∈ [0, 1] per step):

    U[t] = α·(U[t−1] − θ·s[t−1]) + I[t],   I[t] = W·x[t] + b,   s[t] = H(U[t] − θ),   ∂s/∂U ≈ φ(U − θ)

**Spatial error, per step only.** At every step t the network is run one step with the previous state *detached*
(so nothing links step t to earlier steps in autograd) and the per-step loss ``E[t]`` is differentiated with
autograd down to each layer's input current: ``δ_l[t] = ∂E[t]/∂I_l[t] = ∂E[t]/∂U_l[t]``. For fully connected
layers this is ``δ_L = ∂E/∂s_L ⊙ φ``, ``δ_l = W_{l+1}ᵀ δ_{l+1} ⊙ φ``; for convolutions autograd's input gradient
is the transposed convolution, and sum pooling routes δ back through its windows (the pooling "indices").

**Forward traces** (one per layer; they replace everything BPTT would store across steps; ``κ`` is the factor
that carries ``U[t−1]`` into ``U[t]``: ``κ = α`` for the soft reset, ``κ = α·(1 − s[t−1])`` for reset="zero"):

    w̃[t] = κ·w̃[t−1] + x[t]                      (input trace; b̃[t] = κ·b̃[t−1] + 1 for the bias)
    θ̃[t] = α·(θ̃[t−1] − s[t−1])                  (reset="zero": θ̃ = 0, U does not depend on θ)
    α̃[t] = κ·α̃[t−1] + (U[t−1] − θ·s[t−1])        (reset="zero": + U[t−1]·(1 − s[t−1]))

with zeros before t = 0. They are exactly ``∂U[t]/∂W``, ``∂U[t]/∂θ`` and ``∂U[t]/∂α`` when every path through an
earlier spike ``s[t' < t]`` is cut (reset term and inter-layer input alike).

**Accumulation over the sequence** (then one optimiser step per batch):

    ΔW += δ[t]·w̃[t]ᵀ,   Δb += δ[t]·b̃[t],   Δθ += δ[t] ⊙ (θ̃[t] − 1),   Δα += δ[t] ⊙ α̃[t]

summed over the batch and reduced (summed) to each parameter's shape — the exact gradient of
``E = (1/T_loss)·Σ_t E[t]``. METHODS.md writes ``Δα += mean(δ ⊙ α̃)`` for a layer-shared α: the mean differs from
our sum by a constant factor per layer, which Adam cancels; pass ``leak_reduction="mean"`` to get the mean. After
each step the trainer clamps ``θ ≥ 1e-3`` and ``α ∈ [0, 1]`` (``SpikingNet.clamp_``).

**Trace shapes.** When ``κ`` is the same for every output neuron (soft reset and one α per layer, or equal
per-neuron values) the input trace is presynaptic, the shape of the layer's input: memory ``O(B·n_in)``. Otherwise
(learned per-neuron leaks, zero reset) it is per synapse, ``O(B·n_out·n_in)`` (fully connected layers only). No
trace grows with T: memory is constant in the number of steps.

**Variants**: ``"W"`` weights and biases; ``"WT"`` + thresholds; ``"WL"`` + leaks; ``"WTL"`` all three.

**Loss** (ours, per-step): ``E[t] = CE(y[t], label)`` on the output layer's per-step value ``y[t]`` (the membrane
``U[t]`` of an :class:`~toolchain.nn.LI` readout — recommended — or the spikes of a spiking output layer), for
``t ≥ loss_start``, averaged over the batch and over those steps. The prediction is ``argmax Σ_t y[t]``.

Supported networks: :class:`toolchain.nn.SpikingNet` whose neuron modules are ``LIF`` (either reset), ``LI`` or
``Recurrent(LIF)``, and whose synapse segments hold at most one weighted module (``nn.Linear`` or ``nn.Conv2d``)
as their last weighted step, optionally preceded by ``SumPool2d``/``nn.Flatten`` and followed by
``nn.Flatten``. ``CubaLIF`` is not a STOP neuron (its synaptic current adds a second state).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ToolchainError

if TYPE_CHECKING:  # pragma: no cover
    from ..data.base import SplitDataset
    from .loop import History, TrainConfig

__all__ = [
    "VARIANTS", "trace_keep", "input_trace_step", "bias_trace_step", "threshold_trace_step", "leak_trace_step",
    "linear_weight_grad", "conv_weight_grad", "bias_grad", "reduce_to", "StopLayer", "StopGradients",
    "stop_gradients", "per_step_loss", "train_stop", "stop_state_bytes", "stop_layers", "stop_parameters",
    "variant_flags",
]

VARIANTS = ("W", "WT", "WL", "WTL")


# ------------------------------------------------------------------------------------------------- pure trace maths
def trace_keep(alpha: torch.Tensor, s_prev: Optional[torch.Tensor], reset: str) -> torch.Tensor:
    """``κ[t]``, the factor carrying ``U[t−1]`` into ``U[t]``: ``α`` (subtract) or ``α·(1 − s[t−1])`` (zero)."""
    if reset == "subtract" or s_prev is None:
        return alpha
    if reset == "zero":
        return alpha * (1.0 - s_prev)
    raise ValueError(f"unknown reset {reset!r}")


def input_trace_step(prev: Optional[torch.Tensor], x: torch.Tensor, keep: torch.Tensor,
                     per_synapse: bool, n_out: Optional[int] = None) -> torch.Tensor:
    """``w̃[t] = κ·w̃[t−1] + x[t]``.

    Presynaptic (``per_synapse=False``, κ a scalar): ``w̃`` has the shape of ``x`` (B, n_in) or (B, C, H, W).
    Per synapse (fully connected): ``w̃`` is (B, n_out, n_in) and ``κ`` broadcasts to (B, n_out); ``n_out`` is
    needed at the first step (``prev=None``).
    """
    if not per_synapse:
        return x.clone() if prev is None else keep * prev + x
    xs = x.unsqueeze(1)
    if prev is None:
        if n_out is None:
            raise ValueError("per-synapse traces need n_out at the first step")
        return xs.expand(x.shape[0], int(n_out), x.shape[1]).clone()
    return keep.unsqueeze(-1) * prev + xs


def bias_trace_step(prev: Optional[torch.Tensor], keep: torch.Tensor, active: bool = True) -> torch.Tensor:
    """``b̃[t] = κ·b̃[t−1] + 1`` (the input trace of a constant input; ``active=False`` adds 0 instead of 1)."""
    one = 1.0 if active else 0.0
    if prev is None:
        return torch.full_like(torch.as_tensor(keep), one)
    return keep * prev + one


def threshold_trace_step(prev: Optional[torch.Tensor], s_prev: Optional[torch.Tensor], alpha: torch.Tensor,
                         reset: str) -> Optional[torch.Tensor]:
    """``θ̃[t] = α·(θ̃[t−1] − s[t−1])`` (subtract; ``θ̃[0] = 0``); reset="zero" keeps ``θ̃ = 0`` (returns prev)."""
    if s_prev is None:
        return None  # zero
    if reset == "zero":
        return prev
    return alpha * ((0.0 if prev is None else prev) - s_prev)


def leak_trace_step(prev: Optional[torch.Tensor], u_prev: Optional[torch.Tensor], s_prev: Optional[torch.Tensor],
                    theta: Optional[torch.Tensor], keep: torch.Tensor, reset: str) -> Optional[torch.Tensor]:
    """``α̃[t] = κ·α̃[t−1] + r[t−1]`` with ``r = U − θ·s`` (subtract), ``U·(1 − s)`` (zero) or ``U`` (LI: no
    spikes, ``s_prev=None`` with ``u_prev`` given). ``α̃[0] = 0``."""
    if u_prev is None:
        return None
    if s_prev is None:
        r = u_prev
    elif reset == "subtract":
        r = u_prev - theta * s_prev
    else:
        r = u_prev * (1.0 - s_prev)
    return r if prev is None else keep * prev + r


def linear_weight_grad(delta: torch.Tensor, trace: torch.Tensor) -> torch.Tensor:
    """``Σ_b δ w̃ᵀ`` for a fully connected layer: δ (B, n_out); trace (B, n_in) or per synapse (B, n_out, n_in)."""
    if trace.dim() == 2:
        return delta.t() @ trace
    return torch.einsum("bo,boi->oi", delta, trace)


def conv_weight_grad(delta: torch.Tensor, trace: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """The weight gradient of ``conv`` for input ``trace`` (B, C, H, W) and output error ``δ`` (B, C', H', W')."""
    if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
        raise ToolchainError("STOP supports Conv2d with numeric zero padding only", field="padding")
    return torch.nn.grad.conv2d_weight(trace, conv.weight.shape, delta, stride=conv.stride, padding=conv.padding,
                                       dilation=conv.dilation, groups=conv.groups)


def reduce_to(grad: torch.Tensor, shape: Sequence[int], mean: bool = False) -> torch.Tensor:
    """Sum ``grad`` (B, *neuron_shape) to a parameter of ``shape`` (``neuron_shape`` or ``()``): over the batch
    and over every neuron axis the parameter shares. ``mean=True`` then divides by the number of neurons that
    share each parameter value (the batch stays a sum: the loss is already a batch mean)."""
    shape = tuple(shape)
    g = grad.sum(0)
    if shape == ():
        shared = g.numel()
        g = g.sum()
    else:
        if g.shape != shape:
            raise ValueError(f"cannot reduce a gradient of shape {tuple(grad.shape)} to {shape}")
        shared = 1
    return g / shared if mean else g


def bias_grad(delta: torch.Tensor, bias_trace: torch.Tensor) -> torch.Tensor:
    """``Σ δ·b̃`` per output channel (axis 1 of δ): δ (B, C) or (B, C, H, W); b̃ a scalar, (C,) or (B, C)."""
    g = delta * bias_trace
    dims = [0] + list(range(2, g.dim()))
    return g.sum(dim=dims)


# ------------------------------------------------------------------------------------------------ network walking
@dataclass
class StopLayer:
    """One neuron module of a ``SpikingNet`` with the stateless modules feeding it, as STOP sees it.

    ``pre``: modules before the weighted one (SumPool2d, Flatten); ``weighted``: the ``nn.Linear``/``nn.Conv2d``
    (None: identity or pooling only); ``post``: reshapes after it (Flatten); ``neuron``: the LIF or LI (unwrapped
    from ``Recurrent``); ``rec``: the recurrent ``nn.Linear`` of a ``Recurrent`` (None otherwise).
    """

    name: str
    pre: List[nn.Module]
    weighted: Optional[nn.Module]
    post: List[nn.Module]
    neuron: nn.Module
    rec: Optional[nn.Linear]

    @property
    def spiking(self) -> bool:
        return bool(getattr(self.neuron, "spiking", True))

    @property
    def reset(self) -> str:
        return getattr(self.neuron, "reset", "subtract") if self.spiking else "subtract"


def _is_reshape(m: nn.Module) -> bool:
    return isinstance(m, (nn.Flatten, nn.Identity, nn.Unflatten))


def stop_layers(model: nn.Module) -> Tuple[List[StopLayer], List[nn.Module]]:
    """Split a ``SpikingNet`` into :class:`StopLayer` records and the stateless modules after the last neuron.

    Raises :class:`~toolchain.errors.ToolchainError` naming the module for anything STOP cannot train.
    """
    from ..nn import LI, LIF, Recurrent, SumPool2d  # local import: nn is a sibling package

    layers: List[StopLayer] = []
    pending: List[Tuple[str, nn.Module]] = []
    for name, m in model.named_children():
        if isinstance(m, (LIF, LI, Recurrent)) or hasattr(m, "spiking"):
            neuron, rec = (m.neuron, m.rec) if isinstance(m, Recurrent) else (m, None)
            if not isinstance(neuron, (LIF, LI)):
                raise ToolchainError(f"STOP trains LIF and LI neurons (the STOP neuron), not {type(neuron).__name__}",
                                     node=name)
            weighted_idx = [i for i, (_, p) in enumerate(pending) if isinstance(p, (nn.Linear, nn.Conv2d))]
            if len(weighted_idx) > 1:
                raise ToolchainError("STOP needs at most one Linear/Conv2d between two neuron layers",
                                     node=pending[weighted_idx[1]][0])
            k = weighted_idx[0] if weighted_idx else len(pending)
            pre = [p for _, p in pending[:k]]
            post = [p for _, p in pending[k + 1:]]
            for pname, p in pending:
                if not isinstance(p, (nn.Linear, nn.Conv2d, SumPool2d)) and not _is_reshape(p):
                    raise ToolchainError(f"STOP cannot route errors through {type(p).__name__}", node=pname)
            for pname, p in pending[k + 1:]:
                if not _is_reshape(p):
                    raise ToolchainError("STOP needs the Linear/Conv2d to be the last synapse before the neuron "
                                         "(put pooling after the neuron layer)", node=pname)
            weighted = pending[k][1] if weighted_idx else None
            if isinstance(weighted, nn.Conv2d) and isinstance(weighted.padding, str):
                raise ToolchainError("STOP supports Conv2d with numeric padding only", node=pending[k][0],
                                     field="padding")
            layers.append(StopLayer(name, pre, weighted, post, neuron, rec))
            pending = []
        else:
            if any(True for _ in m.parameters()) and not isinstance(m, (nn.Linear, nn.Conv2d)):
                raise ToolchainError(f"STOP cannot train the parameters of {type(m).__name__}", node=name)
            pending.append((name, m))
    if not layers:
        raise ToolchainError("the network has no neuron layer to train", node=type(model).__name__)
    trailing = [m for _, m in pending]
    for pname, p in pending:
        if any(True for _ in p.parameters()):
            raise ToolchainError("STOP cannot train weights after the last neuron layer", node=pname)
    return layers, trailing


def _detach_state(state: Any) -> Any:
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return state.detach()
    return type(state)(*(v.detach() for v in state))


def _uniform(t: torch.Tensor) -> bool:
    return t.numel() == 1 or bool(torch.all(t == t.reshape(-1)[0]))


# ----------------------------------------------------------------------------------------------------- the trainer
def variant_flags(variant: str) -> Tuple[bool, bool]:
    """``(train_thresholds, train_leaks)`` of a STOP variant name."""
    v = variant.upper()
    if v not in VARIANTS:
        raise ToolchainError(f"unknown STOP variant {variant!r}; choose one of {VARIANTS}", field="variant")
    return "T" in v, "L" in v


def stop_parameters(model: nn.Module, variant: str = "W") -> List[nn.Parameter]:
    """The parameters a STOP variant trains: weights and biases, plus learnable thresholds (T) and leaks (L)."""
    layers, _ = stop_layers(model)
    train_t, train_l = variant_flags(variant)
    params: List[nn.Parameter] = []
    found_t = found_l = False
    for L in layers:
        for mod in (L.weighted, L.rec):
            if mod is not None:
                params += [p for p in mod.parameters() if p.requires_grad]
        th = getattr(L.neuron, "threshold", None) if L.spiking else None
        if isinstance(th, nn.Parameter):
            found_t = True
            if train_t:
                params.append(th)
        al = getattr(L.neuron, "alpha", None)
        if isinstance(al, nn.Parameter):
            found_l = True
            if train_l:
                params.append(al)
    if train_t and not found_t:
        raise ToolchainError(f"STOP-{variant.upper()} trains thresholds, but no LIF has learn_threshold=True",
                             field="variant")
    if train_l and not found_l:
        raise ToolchainError(f"STOP-{variant.upper()} trains leaks, but no neuron has learn_leak=True",
                             field="variant")
    return params


def per_step_loss(y_t: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``E[t]``: cross-entropy of the step's output ``y[t]`` (B, C) against the labels, averaged over the batch."""
    return F.cross_entropy(y_t, labels)


@dataclass
class StopGradients:
    """What one STOP pass over a batch returns: ``grads`` (parameter -> accumulated gradient), ``loss`` (the
    objective ``(1/T_loss)·Σ_t E[t]``), ``output_sum`` (B, C) = ``Σ_t y[t]`` (its argmax is the prediction),
    ``trace_bytes`` (bytes held by traces, states and accumulators at the end: constant in T). ``output_sum`` sums
    the steps ``t ≥ loss_start`` only, as :func:`toolchain.train.loop.predict` does."""

    grads: Dict[nn.Parameter, torch.Tensor]
    loss: float
    output_sum: torch.Tensor
    trace_bytes: int


class _Traces:
    __slots__ = ("w", "b", "wr", "br", "th", "al", "per_synapse", "keep_scalar")

    def __init__(self) -> None:
        self.w = self.b = self.wr = self.br = self.th = self.al = None
        self.per_synapse = False
        self.keep_scalar = None

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.w, self.b, self.wr, self.br, self.th, self.al)
                   if isinstance(t, torch.Tensor))


def _plan_traces(L: StopLayer) -> _Traces:
    tr = _Traces()
    alpha = L.neuron.alpha.detach()
    if L.reset == "subtract" and _uniform(alpha):
        tr.keep_scalar = alpha.reshape(-1)[0]
        return tr
    tr.per_synapse = True
    if L.weighted is not None and not isinstance(L.weighted, nn.Linear):
        raise ToolchainError("STOP on a Conv2d layer needs one leak value for the whole layer and reset='subtract' "
                             "(per_neuron=False, or equal per-neuron leaks)", node=L.name, field="alpha")
    if L.weighted is not None and (L.post or len(L.neuron.shape) != 1):
        raise ToolchainError("per-synapse STOP traces need a Linear feeding a 1-d neuron layer", node=L.name)
    return tr


def stop_gradients(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, variant: str = "W",
                   loss_start: int = 0, leak_reduction: str = "sum",
                   loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = per_step_loss,
                   assign: bool = True) -> StopGradients:
    """Run STOP over one batch ``x`` (B, T, *in_shape) and return (and, with ``assign``, write into
    ``param.grad``) the accumulated gradients of the variant's parameters. See the module docstring."""
    if leak_reduction not in ("sum", "mean"):
        raise ToolchainError(f"must be 'sum' or 'mean', got {leak_reduction!r}", field="leak_reduction")
    layers, trailing = stop_layers(model)
    train_t, train_l = variant_flags(variant)
    params = stop_parameters(model, variant)
    if x.dim() < 3:
        raise ToolchainError(f"STOP input must be (batch, time, ...), got shape {tuple(x.shape)}", field="x")
    dtype = next(iter(params)).dtype if params else torch.get_default_dtype()
    x = x.to(dtype)
    T = x.shape[1]
    if not 0 <= loss_start < T:
        raise ToolchainError(f"loss_start must be in [0, {T}), got {loss_start}", field="loss_start")
    scale = 1.0 / (T - loss_start)
    grads: Dict[nn.Parameter, torch.Tensor] = {p: torch.zeros_like(p) for p in params}
    wanted = set(grads)
    traces = [_plan_traces(L) for L in layers]
    states: List[Any] = [None] * len(layers)
    total = 0.0
    out_sum: Optional[torch.Tensor] = None

    for t in range(T):
        # ---- spatial pass: one step with the previous state detached
        h = x[:, t]
        currents: List[torch.Tensor] = []
        w_inputs: List[Optional[torch.Tensor]] = []
        z_shapes: List[torch.Size] = []
        new_states: List[Any] = []
        for L, st in zip(layers, states):
            a = h
            for m in L.pre:
                a = m(a)
            z = L.weighted(a) if L.weighted is not None else a
            i = z
            for m in L.post:
                i = m(i)
            if L.rec is not None and st is not None:
                i = i + L.rec(st.s)
            if not i.requires_grad:
                i = i.detach().requires_grad_(True)
            y, new = L.neuron(i, st)
            currents.append(i)
            z_shapes.append(z.shape)
            w_inputs.append(a.detach() if L.weighted is not None else None)
            new_states.append(new)
            h = y
        for m in trailing:
            h = m(h)
        y_t = h
        deltas: List[Optional[torch.Tensor]] = [None] * len(layers)
        if t >= loss_start:
            e_t = loss_fn(y_t, labels) * scale
            total += float(e_t.detach())
            got = torch.autograd.grad(e_t, currents, allow_unused=True)
            deltas = [None if g is None else g.detach() for g in got]
        if t >= loss_start:
            out_sum = y_t.detach().clone() if out_sum is None else out_sum + y_t.detach()

        # ---- forward traces and accumulation (no autograd)
        with torch.no_grad():
            for k, (L, tr, st, a, d) in enumerate(zip(layers, traces, states, w_inputs, deltas)):
                neuron = L.neuron
                alpha = neuron.alpha.detach()
                theta = neuron.threshold.detach() if L.spiking else None
                u_prev = None if st is None else st.u
                s_prev = None if (st is None or not L.spiking) else st.s
                keep = trace_keep(alpha, s_prev, L.reset)
                keep_in = tr.keep_scalar if tr.keep_scalar is not None else keep
                if L.weighted is not None:
                    tr.w = input_trace_step(tr.w, a, keep_in, tr.per_synapse, L.neuron.shape[0])
                    if L.weighted.bias is not None:
                        tr.b = bias_trace_step(tr.b, keep_in)
                if L.rec is not None:
                    rec_in = torch.zeros_like(new_states[k].s) if st is None else st.s
                    tr.wr = input_trace_step(tr.wr, rec_in, keep_in, tr.per_synapse, L.neuron.shape[0])
                    if L.rec.bias is not None:
                        tr.br = bias_trace_step(tr.br, keep_in, active=st is not None)
                if L.spiking:
                    tr.th = threshold_trace_step(tr.th, s_prev, alpha, L.reset)
                tr.al = leak_trace_step(tr.al, u_prev, s_prev, theta, keep, L.reset)
                if d is None:
                    continue
                w = L.weighted
                if w is not None and w.weight in wanted:
                    dz = d.reshape(z_shapes[k])  # post modules are reshapes: ∂E/∂z is δ reshaped
                    if isinstance(w, nn.Linear):
                        grads[w.weight] += linear_weight_grad(dz, tr.w)
                    else:
                        grads[w.weight] += conv_weight_grad(dz, tr.w, w)
                    if w.bias is not None and w.bias in wanted:
                        grads[w.bias] += bias_grad(dz, tr.b)
                if L.rec is not None and L.rec.weight in wanted:
                    grads[L.rec.weight] += linear_weight_grad(d, tr.wr)
                    if L.rec.bias is not None and L.rec.bias in wanted:
                        grads[L.rec.bias] += bias_grad(d, tr.br)
                if train_t and L.spiking and isinstance(neuron.threshold, nn.Parameter):
                    g = -d if tr.th is None else d * (tr.th - 1.0)
                    grads[neuron.threshold] += reduce_to(g, neuron.threshold.shape)
                if train_l and isinstance(neuron.alpha, nn.Parameter) and tr.al is not None:
                    grads[neuron.alpha] += reduce_to(d * tr.al, neuron.alpha.shape, leak_reduction == "mean")
        states = [_detach_state(s) for s in new_states]

    nbytes = sum(tr.nbytes() for tr in traces) + sum(g.numel() * g.element_size() for g in grads.values())
    nbytes += sum(sum(v.numel() * v.element_size() for v in s) for s in states if s is not None)
    if assign:
        for p, g in grads.items():
            p.grad = g
    assert out_sum is not None
    return StopGradients(grads, total, out_sum, nbytes)


def stop_state_bytes(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, variant: str = "W") -> int:
    """Bytes STOP keeps across time steps for this batch (traces, states, accumulators): constant in T."""
    return stop_gradients(model, x, labels, variant, assign=False).trace_bytes


def train_stop(model: nn.Module, data: "SplitDataset", config: Optional["TrainConfig"] = None, variant: str = "WTL",
               leak_reduction: str = "sum") -> "History":
    """Train ``model`` online with STOP (``variant`` in W, WT, WL, WTL) and Adam, with the loop of
    :func:`toolchain.train.loop.fit` (seeding, clamps after every step, checkpoints, progress, history)."""
    from .loop import TrainConfig, fit

    config = config or TrainConfig()
    params = stop_parameters(model, variant)

    def batch_fn(m: nn.Module, xb: torch.Tensor, yb: torch.Tensor) -> Tuple[float, torch.Tensor]:
        res = stop_gradients(m, xb, yb, variant, config.loss_start, leak_reduction)
        return res.loss, res.output_sum

    return fit(model, data, config, batch_fn, params, trainer=f"stop-{variant.upper()}")
