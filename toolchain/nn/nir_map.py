"""Our own mappings between :class:`toolchain.nn.SpikingNet` and the IR (:class:`toolchain.ir.Graph`).

nirtorch's default mappings are not used (its ``Affine`` mapping drops the bias). The file part (NIR HDF5) is
:func:`toolchain.nir_io.export` / :func:`toolchain.nir_io.load`.

Module -> node (``dt`` in seconds; parameters as float64, broadcast to full shape):

==========================  ==========================================================================================
``nn.Linear``               ``Affine(weight, bias)`` (``Linear`` when the module has no bias)
``nn.Conv2d``               ``Conv2d`` (padding resolved, ``padding_mode="zeros"`` only)
``SumPool2d``               ``SumPool2d``
``nn.Flatten(s, e)``        ``Flatten(s − 1, e − 1 or −1)`` (the IR has no batch dimension)
``LIF(α, θ, reset)``        ``LIF(tau = dt/(1−α), r = tau/dt, v_leak = 0, v_threshold = θ, v_reset = 0, reset_mode)``;
                            ``IF(r = 1, v_threshold = θ, v_reset = 0)`` when every α = 1 (IF integrates a
                            per-step impulse: v ← v + r·I)
``CubaLIF(α_s, α_m, θ)``    ``CubaLIF(tau_syn = dt/(1−α_s), tau_mem = dt/(1−α_m), w_in = tau_syn/dt, r = tau_mem/dt,
                            v_leak = 0, v_threshold = θ, v_reset = 0, reset_mode)``
``LI(α)``                   ``LI(tau = dt/(1−α), r = tau/dt, v_leak = 0)``; ``Integrator(r = 1)`` when every α = 1
``Recurrent(neuron)``       the neuron node plus ``Linear``/``Affine`` ``<neuron>_rec`` in a cycle
                            neuron -> rec -> neuron (the edge rec -> neuron is the delayed one)
==========================  ==========================================================================================

These are exactly the forward-Euler steps of the IR's equations as :func:`toolchain.sim.float.simulate_float`
executes them (see :mod:`toolchain.nn.functional`): e.g. ``v += dt/tau·(−v + r·I)`` with ``dt/tau = 1 − α``
and ``r·dt/tau = 1`` is ``v = α·v + I``. :func:`from_graph` inverts them; where a node's input gain ``g`` (``r·dt/tau`` for LIF/LI,
``(w_in·dt/tau_syn)·(r·dt/tau_mem)`` for CubaLIF, ``r`` for IF/Integrator) is not 1 it is folded into the
weights (and bias) of the synapse module that feeds the neuron, and ``v_leak`` into that module's bias
(``(dt/tau)·v_leak`` per step), so that the torch model computes the same ``v`` as the graph.

α -> tau -> α round-trips bit for bit for α ∈ [0.5, 1) (where ``1 − α`` is exact in float64); below 0.5 the
recovered α can differ by one float64 ulp.
"""
from __future__ import annotations

import contextlib
import warnings
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import nn

from ..errors import GraphError
from ..ir import nodes as N
from ..ir.graph import Graph
from ..ir.storage import Dense
from .layers import Recurrent, SumPool2d
from .net import SpikingNet
from .neurons import LI, LIF, CubaLIF

__all__ = ["to_graph", "from_graph", "node_names"]


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().to(torch.float64).numpy().copy()


def _full(t: torch.Tensor, shape: Tuple[int, ...]) -> np.ndarray:
    return np.broadcast_to(_np(t), shape).copy()


def node_names(model: SpikingNet) -> Dict[str, str]:
    """Module name -> IR node name used by :func:`to_graph` (for a :class:`Recurrent` the neuron node; its
    recurrent weight node is ``<that>_rec``). Numeric names (``"0"``, ``"1"``...) become ``<kind><index>``
    (``"linear0"``, ``"lif1"``); other names are kept."""
    out: Dict[str, str] = {}
    used = {"input", "output"}
    for name, m in model.named_children():
        inner = m.neuron if isinstance(m, Recurrent) else m
        base = f"{type(inner).__name__.lower()}{name}" if name.isdigit() else name
        cand, k = base, 1
        while cand in used or f"{cand}_rec" in used:
            cand, k = f"{base}_{k}", k + 1
        used.add(cand)
        if isinstance(m, Recurrent):
            used.add(f"{cand}_rec")
        out[name] = cand
    return out


def _tau(alpha: np.ndarray, dt: float, node: str, fname: str) -> np.ndarray:
    if np.any(alpha >= 1.0):
        raise GraphError(f"leak factor alpha = 1 (no leak) has no finite time constant; use alpha < 1 "
                         f"(max alpha here {alpha.max():g})", node=node, field=fname)
    return dt / (1.0 - alpha)


def to_graph(model: SpikingNet, dt: float, input_shape: Union[int, Sequence[int]]) -> Graph:
    """Map a :class:`SpikingNet` onto an IR graph (``Input`` -> modules -> ``Output``) simulated at ``dt`` seconds.

    ``input_shape`` is the shape of one sample at one step (no batch or time dimension). Raises
    :class:`GraphError` naming the module for modules without a mapping or shapes that do not chain.
    """
    if not isinstance(model, SpikingNet):
        raise GraphError(f"to_graph expects a toolchain.nn.SpikingNet, got {type(model).__name__}")
    dt = float(dt)
    if not (dt > 0 and np.isfinite(dt)):
        raise GraphError(f"dt must be a positive number of seconds, got {dt}", field="dt")
    shape = (int(input_shape),) if isinstance(input_shape, (int, np.integer)) else tuple(int(s) for s in input_shape)
    names = node_names(model)
    nodes: List[N.Node] = [N.Input("input", shape=shape)]
    edges: List[Tuple[str, str]] = []
    prev = "input"
    for mname, m in model.named_children():
        nname = names[mname]
        new: List[N.Node] = []
        extra_edges: List[Tuple[str, str]] = []
        if isinstance(m, nn.Linear):
            if len(shape) != 1 or shape[0] != m.in_features:
                raise GraphError(f"nn.Linear({m.in_features}, {m.out_features}) receives shape {shape}",
                                 node=nname, field="in_features")
            w = Dense(_np(m.weight))
            new.append(N.Affine(nname, weight=w, bias=_np(m.bias)) if m.bias is not None
                       else N.Linear(nname, weight=w))
        elif isinstance(m, nn.Conv2d):
            if m.padding_mode != "zeros":
                raise GraphError(f"padding_mode {m.padding_mode!r} has no NIR mapping (only 'zeros')", node=nname,
                                 field="padding_mode")
            pad = m.padding
            if isinstance(pad, str):
                if pad == "valid":
                    pad = (0, 0)
                else:  # 'same' with stride 1: torch pads (d·(k−1))//2 on the left; only symmetric cases map
                    tot = [m.dilation[i] * (m.kernel_size[i] - 1) for i in range(2)]
                    if any(t % 2 for t in tot):
                        raise GraphError("padding='same' with an even kernel is asymmetric and has no NIR mapping",
                                         node=nname, field="padding")
                    pad = (tot[0] // 2, tot[1] // 2)
            bias = None if m.bias is None else _np(m.bias)
            try:
                new.append(N.Conv2d(nname, weight=_np(m.weight), bias=bias, stride=m.stride, padding=pad,
                                    dilation=m.dilation, groups=m.groups, input_shape=shape))
            except GraphError as exc:
                raise GraphError(f"{exc.message} (module receives shape {shape})", node=nname,
                                 field=exc.field) from None
        elif isinstance(m, SumPool2d):
            new.append(N.SumPool2d(nname, kernel_size=m.kernel_size, stride=m.stride, padding=m.padding,
                                   input_shape=shape))
        elif isinstance(m, nn.Flatten):
            if m.start_dim == 0:
                raise GraphError("nn.Flatten(start_dim=0) mixes the batch into the features", node=nname,
                                 field="start_dim")
            s = m.start_dim - 1 if m.start_dim > 0 else m.start_dim
            e = m.end_dim - 1 if m.end_dim > 0 else m.end_dim
            new.append(N.Flatten(nname, input_shape=shape, start_dim=s, end_dim=e))
        elif isinstance(m, (LIF, CubaLIF, LI, Recurrent)):
            neuron = m.neuron if isinstance(m, Recurrent) else m
            if neuron.shape != shape:
                raise GraphError(f"{type(neuron).__name__} of shape {neuron.shape} receives shape {shape}",
                                 node=nname, field="shape")
            new.append(_neuron_node(neuron, nname, dt))
            if isinstance(m, Recurrent):
                rname = f"{nname}_rec"
                w = Dense(_np(m.rec.weight))
                new.append(N.Affine(rname, weight=w, bias=_np(m.rec.bias)) if m.rec.bias is not None
                           else N.Linear(rname, weight=w))
                extra_edges = [(nname, rname), (rname, nname)]
        else:
            raise GraphError(f"module type {type(m).__name__} has no NIR mapping (supported: nn.Linear, "
                             f"nn.Conv2d, SumPool2d, nn.Flatten, LIF, CubaLIF, LI, Recurrent)", node=nname)
        nodes.extend(new)
        edges.append((prev, new[0].name))
        edges.extend(extra_edges)
        prev = new[0].name
        shape = new[0].out_shape
    nodes.append(N.Output("output", shape=shape))
    edges.append((prev, "output"))
    return Graph(nodes, edges, dt=dt, metadata={"source": "toolchain.nn.to_graph", "model": type(model).__name__})


def _neuron_node(m: nn.Module, name: str, dt: float) -> N.Node:
    shape = m.shape
    if isinstance(m, LIF):
        alpha = _full(m.alpha, shape)
        theta = _full(m.threshold, shape)
        if np.all(alpha == 1.0):
            return N.IF(name, shape=shape, r=1.0, v_threshold=theta, v_reset=0.0, reset_mode=m.reset)
        tau = _tau(alpha, dt, name, "alpha")
        return N.LIF(name, shape=shape, tau=tau, r=tau / dt, v_leak=0.0, v_threshold=theta, v_reset=0.0,
                     reset_mode=m.reset)
    if isinstance(m, CubaLIF):
        tau_s = _tau(_full(m.alpha_syn, shape), dt, name, "alpha_syn")
        tau_m = _tau(_full(m.alpha_mem, shape), dt, name, "alpha_mem")
        return N.CubaLIF(name, shape=shape, tau_syn=tau_s, tau_mem=tau_m, r=tau_m / dt, v_leak=0.0,
                         v_threshold=_full(m.threshold, shape), v_reset=0.0, w_in=tau_s / dt, reset_mode=m.reset)
    if isinstance(m, LI):
        alpha = _full(m.alpha, shape)
        if np.all(alpha == 1.0):
            return N.Integrator(name, shape=shape, r=1.0)
        tau = _tau(alpha, dt, name, "alpha")
        return N.LI(name, shape=shape, tau=tau, r=tau / dt, v_leak=0.0)
    raise GraphError(f"no neuron mapping for {type(m).__name__}", node=name)  # pragma: no cover


# --------------------------------------------------------------------------------------------- from_graph
def _module_name(node_name: str) -> str:
    return node_name.replace(".", "_")


def _chain(graph: Graph) -> Tuple[List[str], Dict[str, str]]:
    """The nodes from the input to the output in order, and neuron -> recurrent weight node."""
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise GraphError(f"from_graph needs exactly one Input and one Output, got inputs {graph.inputs} and "
                         f"outputs {graph.outputs}", field="nodes")
    rec: Dict[str, str] = {}
    rec_nodes = set()
    for name, node in graph.nodes.items():
        if isinstance(node, N.Linear):
            preds, succs = graph.predecessors(name), graph.successors(name)
            if len(preds) == 1 and succs == preds and isinstance(graph[preds[0]], (N.LIF, N.CubaLIF, N.IF)):
                if preds[0] in rec:
                    raise GraphError("has more than one recurrent weight node", node=preds[0], field="edges")
                rec[preds[0]] = name
                rec_nodes.add(name)
    order = [graph.inputs[0]]
    while True:
        cur = order[-1]
        succs = [s for s in graph.successors(cur) if s not in rec_nodes]
        if not succs:
            break
        if len(succs) != 1:
            raise GraphError(f"branches to {succs}; from_graph builds sequential networks only", node=cur,
                             field="edges")
        nxt = succs[0]
        preds = [p for p in graph.predecessors(nxt) if p not in rec_nodes]
        if preds != [cur]:
            raise GraphError(f"has several inputs {preds}; from_graph builds sequential networks only", node=nxt,
                             field="edges")
        if nxt in order:
            raise GraphError("cycle that is not a neuron's recurrent weight", node=nxt, field="edges")
        order.append(nxt)
    if order[-1] != graph.outputs[0] or len(order) + len(rec_nodes) != len(graph):
        missing = [n for n in graph.nodes if n not in order and n not in rec_nodes]
        raise GraphError(f"nodes {missing} are not on the chain from the input to the output; from_graph builds "
                         f"sequential networks only", field="edges")
    return order, rec


def _fold(weighted: Optional[nn.Module], gain: np.ndarray, offset: np.ndarray, node: str) -> bool:
    """Scale the output units of ``weighted`` (nn.Linear / nn.Conv2d) by ``gain`` and add ``offset`` to its bias.
    ``gain``/``offset`` have the neuron's shape; for Conv2d they must be constant over space. Returns False when
    it cannot be done."""
    if isinstance(weighted, nn.Linear):
        g, o = gain.reshape(-1), offset.reshape(-1)
    elif isinstance(weighted, nn.Conv2d):
        if gain.ndim != 3 or offset.ndim != 3:
            return False
        g, o = gain.reshape(gain.shape[0], -1), offset.reshape(offset.shape[0], -1)
        if not (np.all(g == g[:, :1]) and np.all(o == o[:, :1])):
            return False
        g, o = g[:, 0], o[:, 0]
    else:
        return False
    with torch.no_grad():
        w = weighted.weight
        gt = torch.as_tensor(g, dtype=w.dtype).reshape((-1,) + (1,) * (w.dim() - 1))
        w.mul_(gt)
        if weighted.bias is not None:
            weighted.bias.mul_(torch.as_tensor(g, dtype=w.dtype))
            weighted.bias.add_(torch.as_tensor(o, dtype=w.dtype))
        elif np.any(o != 0):
            weighted.bias = nn.Parameter(torch.as_tensor(o, dtype=w.dtype))
    return True


@contextlib.contextmanager
def _default_dtype(dtype: Optional[torch.dtype]):
    old = torch.get_default_dtype()
    if dtype is not None:
        torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def from_graph(graph: Graph, dtype: Optional[torch.dtype] = None) -> SpikingNet:
    """Build a :class:`SpikingNet` from a sequential IR graph (with optional per-neuron recurrent cycles).

    Needs ``graph.dt``. ``dtype``: the modules' floating dtype (default: torch's default dtype); parameters are
    converted from the graph's float64 once, so ``torch.float64`` keeps them exactly. Module names are the node
    names with ``.`` replaced by ``_``. Node gains and leaks are folded into the feeding weights as described in
    the module docstring; a node whose gain or leak cannot be represented (e.g. ``v_reset ≠ 0`` with zero reset,
    a CubaLIF ``v_leak``, a gain with no weights to fold into) raises :class:`GraphError` naming the node and field.
    """
    if graph.dt is None:
        raise GraphError("graph has no dt; from_graph needs the simulation step in seconds", field="dt")
    with _default_dtype(dtype):
        return _from_graph(graph)


def _from_graph(graph: Graph) -> SpikingNet:
    dt = float(graph.dt)
    timing = graph.metadata.get("reset_timing", "immediate") or "immediate"
    order_ = graph.metadata.get("cuba_order", "current_first") or "current_first"
    if timing != "immediate" or order_ != "current_first":
        warnings.warn(f"graph was loaded with reset_timing={timing!r}, cuba_order={order_!r} (a framework's own "
                      f"convention); the toolchain.nn model follows the IR/Loihi semantics (immediate reset, "
                      f"current first), so its spikes can differ from that framework's", stacklevel=3)
    order, rec = _chain(graph)
    mods: "OrderedDict[str, nn.Module]" = OrderedDict()
    last_weighted: Optional[nn.Module] = None  # the module feeding the next neuron directly, if weighted
    for name in order[1:-1]:
        node = graph[name]
        mname = _module_name(name)
        if isinstance(node, N.Linear):  # Affine too
            w = node.weight.to_dense()
            lin = nn.Linear(w.shape[1], w.shape[0], bias=isinstance(node, N.Affine))
            with torch.no_grad():
                lin.weight.copy_(torch.as_tensor(w))
                if isinstance(node, N.Affine):
                    lin.bias.copy_(torch.as_tensor(np.array(node.bias)))
            mods[mname] = lin
            last_weighted = lin
        elif isinstance(node, N.Conv2d):
            c_out, cin_g, kh, kw = node.weight.shape
            conv = nn.Conv2d(node.input_shape[0], c_out, (kh, kw), stride=node.stride, padding=node.padding,
                             dilation=node.dilation, groups=node.groups, bias=True)
            with torch.no_grad():
                conv.weight.copy_(torch.as_tensor(np.array(node.weight)))
                conv.bias.copy_(torch.as_tensor(np.array(node.bias)))
            mods[mname] = conv
            last_weighted = conv
        elif type(node) is N.SumPool2d:
            mods[mname] = SumPool2d(node.kernel_size, node.stride, node.padding)
            last_weighted = None
        elif isinstance(node, N.AvgPool2d):
            mods[mname] = nn.AvgPool2d(node.kernel_size, node.stride, node.padding, count_include_pad=True)
            last_weighted = None
        elif isinstance(node, N.Flatten):
            # negative dims count from the end, the same with or without the batch dimension
            s = node.start_dim + 1 if node.start_dim >= 0 else node.start_dim
            e = node.end_dim + 1 if node.end_dim >= 0 else node.end_dim
            mods[mname] = nn.Flatten(s, e)
            last_weighted = None
        elif isinstance(node, (N.LIF, N.CubaLIF, N.IF, N.LI, N.Integrator)):
            module, gain, offset = _neuron_module(node, dt)
            rec_lin = None
            if name in rec:
                rnode = graph[rec[name]]
                w = rnode.weight.to_dense()
                module = Recurrent(module, module.shape[0],
                                   weight=torch.as_tensor(w), bias=isinstance(rnode, N.Affine))
                if isinstance(rnode, N.Affine):
                    with torch.no_grad():
                        module.rec.bias.copy_(torch.as_tensor(np.array(rnode.bias)))
                rec_lin = module.rec
            # gains within 1e-12 of 1 are float64 round-off of our own mapping (r·dt/tau), not a real gain
            gain = np.where(np.abs(gain - 1.0) <= 1e-12, 1.0, gain)
            if np.any(gain != 1.0) or np.any(offset != 0.0):
                if not _fold(last_weighted, gain, offset, name):
                    raise GraphError(f"input gain {np.unique(gain)[:4]} or leak offset {np.unique(offset)[:4]} "
                                     f"cannot be folded: the node is not fed directly by an Affine/Linear/Conv2d "
                                     f"(with per-channel gains)", node=name, field="r")
                if rec_lin is not None:
                    _fold(rec_lin, gain, np.zeros_like(offset), name)
            mods[mname] = module
            last_weighted = None
        else:
            raise GraphError(f"node type {node.kind} has no torch mapping in from_graph", node=name,
                             field="type")
    return SpikingNet(mods)


def _alpha(tau: np.ndarray, dt: float) -> np.ndarray:
    """``α = 1 − dt/tau``, snapped by at most one float64 ulp to the value whose image ``dt/(1 − α)`` is exactly
    ``tau`` when there is one, so that α -> tau -> α round-trips bit for bit."""
    a = 1.0 - dt / tau
    for cand in (np.nextafter(a, -np.inf), np.nextafter(a, np.inf)):
        with np.errstate(divide="ignore"):
            hit = (dt / (1.0 - a) != tau) & (dt / (1.0 - cand) == tau)
        a = np.where(hit, cand, a)
    return a


def _check_reset(node: N.Node) -> None:
    if node.reset_mode == "zero" and np.any(node.v_reset != 0):
        raise GraphError("v_reset != 0 with reset_mode 'zero' has no toolchain.nn equivalent (reset to 0)",
                         node=node.name, field="v_reset")


def _neuron_module(node: N.Node, dt: float) -> Tuple[nn.Module, np.ndarray, np.ndarray]:
    """(module, input gain, per-step offset) for a neuron node; gain and offset have the node's shape."""
    shape = node.shape
    zeros = np.zeros(shape)
    if isinstance(node, N.LIF):
        _check_reset(node)
        k = dt / node.tau
        if np.any(k > 1):
            raise GraphError(f"tau must be >= dt = {dt:g} s for a forward-Euler step, smallest is "
                             f"{node.tau.min():g}", node=node.name, field="tau")
        return (LIF(shape, alpha=torch.as_tensor(_alpha(node.tau, dt)),
                    threshold=torch.as_tensor(np.array(node.v_threshold)), reset=node.reset_mode),
                k * node.r, k * node.v_leak)
    if isinstance(node, N.IF):
        _check_reset(node)
        return (LIF(shape, alpha=1.0, threshold=torch.as_tensor(np.array(node.v_threshold)), reset=node.reset_mode),
                np.array(node.r), zeros)
    if isinstance(node, N.CubaLIF):
        _check_reset(node)
        if np.any(node.v_leak != 0):
            raise GraphError("CubaLIF v_leak != 0 has no toolchain.nn equivalent", node=node.name, field="v_leak")
        ks, km = dt / node.tau_syn, dt / node.tau_mem
        if np.any(ks > 1) or np.any(km > 1):
            raise GraphError(f"tau_syn and tau_mem must be >= dt = {dt:g} s", node=node.name, field="tau_syn")
        return (CubaLIF(shape, alpha_syn=torch.as_tensor(_alpha(node.tau_syn, dt)),
                        alpha_mem=torch.as_tensor(_alpha(node.tau_mem, dt)),
                        threshold=torch.as_tensor(np.array(node.v_threshold)), reset=node.reset_mode),
                ks * node.w_in * km * node.r, zeros)
    if isinstance(node, N.LI):
        k = dt / node.tau
        if np.any(k > 1):
            raise GraphError(f"tau must be >= dt = {dt:g} s", node=node.name, field="tau")
        return LI(shape, alpha=torch.as_tensor(_alpha(node.tau, dt))), k * node.r, k * node.v_leak
    if isinstance(node, N.Integrator):
        return LI(shape, alpha=1.0), np.array(node.r), zeros
    raise GraphError(f"no neuron mapping for {node.kind}", node=node.name)  # pragma: no cover
