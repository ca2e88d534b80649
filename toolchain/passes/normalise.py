"""Normalising passes: bring an imported graph to flat populations joined by Linear/Affine synapse nodes.

Each pass is a pure function ``Graph -> Graph``. After :func:`flatten_shapes`, :func:`lower_conv_and_pool`,
:func:`fold_scale_into_linear` and the fusing passes in :mod:`.fuse`, every synapse between two populations is one
``Linear``/``Affine`` node holding the exact synapse matrix, with the storage that says how it is sparse.
"""
from __future__ import annotations

import warnings
from typing import Dict, List

import numpy as np

from ..errors import GraphError
from ..ir.graph import Edge, Graph
from ..ir.nodes import (LI, LIF, Affine, AvgPool2d, Conv1d, Conv2d, CubaLI, CubaLIF, Delay, Flatten, Input, Linear,
                        Node, Output, Scale, SumPool2d, _Population)
from ..ir.storage import Csr
from . import storage_ops as so

__all__ = ["flatten_shapes", "lower_conv_and_pool", "fold_scale_into_linear", "fold_affine_bias_into_neuron",
           "add_readout_for_trailing_synapse",
           "conv_to_csr", "pool_to_csr", "rewire"]

_LINEAR = (Linear, Affine)


def rewire(graph: Graph, nodes: Dict[str, Node], edges: List[Edge], **meta: object) -> Graph:
    """A graph with ``nodes``/``edges`` and ``graph``'s dt, metadata updated with ``meta``."""
    md = dict(graph.metadata)
    md.update(meta)
    return Graph(nodes, edges, graph.dt, md)


def _flat(node: Node) -> Node:
    n = int(np.prod(node.out_shape))
    if isinstance(node, _Population):
        changes = {"shape": (n,)}
        for fname, _ in node._PARAMS:
            changes[fname] = np.asarray(getattr(node, fname)).reshape(n)
        return node.replace(**changes)
    if isinstance(node, (Input, Output)):
        return node.replace(shape=(n,))
    if isinstance(node, Scale):
        return node.replace(shape=(n,), scale=np.asarray(node.scale).reshape(n))
    if isinstance(node, Delay):
        return node.replace(shape=(n,), delay=np.asarray(node.delay).reshape(n))
    return node


def flatten_shapes(graph: Graph) -> Graph:
    """Make every population, Input, Output, Scale and Delay 1-D (C order) and drop Flatten nodes (identities)."""
    shapes = dict(graph.metadata.get("original_shapes", {}))
    for name, node in graph.nodes.items():
        shapes.setdefault(name, list(node.out_shape))
    nodes = {name: _flat(node) for name, node in graph.nodes.items() if not isinstance(node, Flatten)}
    edges = _bypass(graph, {n for n, node in graph.nodes.items() if isinstance(node, Flatten)})
    return rewire(graph, nodes, edges, original_shapes=shapes)


def _bypass(graph: Graph, removed: set) -> List[Edge]:
    """Edges with the ``removed`` pass-through nodes spliced out (delays add up along the way)."""
    out: List[Edge] = []
    for e in graph.edges:
        if e.src in removed:
            continue
        if e.dst not in removed:
            out.append(e)
            continue
        stack = [(e.dst, e.delay)]
        while stack:
            n, d = stack.pop()
            for e2 in graph.out_edges(n):
                if e2.dst in removed:
                    stack.append((e2.dst, d + e2.delay))
                else:
                    if d + e2.delay > 1:
                        raise GraphError("two recurrent delays in one pass-through chain", node=n, field="edges")
                    out.append(Edge(e.src, e2.dst, d + e2.delay))
    return out


# ------------------------------------------------------------------------------------- conv lowering
def conv_to_csr(node: "Conv2d | Conv1d") -> Csr:
    """The synapse matrix of a convolution over flattened (C order) input and output, one synapse per valid tap
    (taps that fall into the padding, and taps whose kernel weight is exactly 0, are not synapses)."""
    if isinstance(node, Conv1d):
        k = node.weight[:, :, None, :]
        c_in, w_in = node.input_shape
        h_in = 1
        stride, pad, dil = (1, node.stride), (0, node.padding), (1, node.dilation)
        _, oh, ow = (node.out_shape[0], 1, node.out_shape[1])
    else:
        k = node.weight
        c_in, h_in, w_in = node.input_shape
        stride, pad, dil = node.stride, node.padding, node.dilation
        _, oh, ow = node.out_shape
    c_out, cin_g, kh, kw = k.shape
    g = node.groups
    cout_g = c_out // g
    co, ci, ky, kx, oy, ox = np.meshgrid(np.arange(c_out), np.arange(cin_g), np.arange(kh), np.arange(kw),
                                         np.arange(oh), np.arange(ow), indexing="ij", sparse=True)
    iy = oy * stride[0] - pad[0] + ky * dil[0]
    ix = ox * stride[1] - pad[1] + kx * dil[1]
    cig = (co // cout_g) * cin_g + ci
    full = np.broadcast_shapes(co.shape, ci.shape, ky.shape, kx.shape, oy.shape, ox.shape)
    wv = np.broadcast_to(k[:, :, :, :, None, None], full)
    valid = np.broadcast_to((iy >= 0) & (iy < h_in) & (ix >= 0) & (ix < w_in), full) & (wv != 0)
    rows = np.broadcast_to((co * oh + oy) * ow + ox, full)[valid]
    cols = np.broadcast_to((cig * h_in + iy) * w_in + ix, full)[valid]
    n_out = c_out * oh * ow
    return Csr.from_coo((n_out, c_in * h_in * w_in), rows, cols, wv[valid].astype(np.float64))


def pool_to_csr(node: SumPool2d) -> Csr:
    """The synapse matrix of sum pooling (weight 1, or 1/(kH*kW) for AvgPool2d: padded zeros count)."""
    c, h, w = node.input_shape
    _, oh, ow = node.out_shape
    kh, kw = node.kernel_size
    ch, oy, ox, ky, kx = np.meshgrid(np.arange(c), np.arange(oh), np.arange(ow), np.arange(kh), np.arange(kw),
                                     indexing="ij", sparse=True)
    iy = oy * node.stride[0] - node.padding[0] + ky
    ix = ox * node.stride[1] - node.padding[1] + kx
    full = np.broadcast_shapes(ch.shape, oy.shape, ox.shape, ky.shape, kx.shape)
    valid = np.broadcast_to((iy >= 0) & (iy < h) & (ix >= 0) & (ix < w), full)
    rows = np.broadcast_to((ch * oh + oy) * ow + ox, full)[valid]
    cols = np.broadcast_to((ch * h + iy) * w + ix, full)[valid]
    value = 1.0 / (kh * kw) if isinstance(node, AvgPool2d) else 1.0
    return Csr.from_coo((c * oh * ow, c * h * w), rows, cols, np.full(rows.size, value))


def lower_conv_and_pool(graph: Graph) -> Graph:
    """Replace Conv1d/Conv2d/SumPool2d/AvgPool2d by Linear/Affine nodes with Csr weights (the conv's index map)."""
    nodes: Dict[str, Node] = {}
    for name, node in graph.nodes.items():
        if isinstance(node, (Conv1d, Conv2d)):
            w = conv_to_csr(node)
            per_pos = int(np.prod(node.out_shape[1:]))
            bias = np.repeat(node.bias, per_pos)
            nodes[name] = Affine(name, weight=w, bias=bias) if np.any(bias != 0) else Linear(name, weight=w)
        elif isinstance(node, SumPool2d):  # AvgPool2d is a subclass
            nodes[name] = Linear(name, weight=pool_to_csr(node))
        else:
            nodes[name] = node
    return rewire(graph, nodes, list(graph.edges))


# ---------------------------------------------------------------------------------------- Scale folding
def fold_scale_into_linear(graph: Graph) -> Graph:
    """Fold each Scale node into the Linear/Affine ops after it (columns scaled) or, failing that, into the one
    before it (rows and bias scaled); a Scale with no linear neighbour becomes a diagonal Linear."""
    nodes = graph.nodes
    edges = list(graph.edges)
    for name in [n for n, node in graph.nodes.items() if isinstance(node, Scale)]:
        node = nodes[name]
        s = np.asarray(node.scale, dtype=np.float64).reshape(-1)
        outs = [e for e in edges if e.src == name]
        ins = [e for e in edges if e.dst == name]
        succ_ok = outs and all(isinstance(nodes[e.dst], _LINEAR) and
                               all(e2.src == name for e2 in edges if e2.dst == e.dst) for e in outs)
        pred_ok = len(ins) == 1 and isinstance(nodes[ins[0].src], _LINEAR) and \
            all(e2.dst == name for e2 in edges if e2.src == ins[0].src)
        if succ_ok:
            for e in outs:
                lin = nodes[e.dst]
                nodes[e.dst] = lin.replace(weight=so.scale_cols(lin.weight, s))
        elif pred_ok:
            lin = nodes[ins[0].src]
            kw = {"weight": so.scale_rows(lin.weight, s)}
            if isinstance(lin, Affine):
                kw["bias"] = lin.bias * s
            nodes[lin.name] = lin.replace(**kw)
        else:
            nodes[name] = Linear(name, weight=so.diagonal(s))
            continue
        del nodes[name]
        edges = _bypass_edges(edges, name)
    return rewire(graph, nodes, edges)


def _bypass_edges(edges: List[Edge], name: str) -> List[Edge]:
    ins = [e for e in edges if e.dst == name]
    outs = [e for e in edges if e.src == name]
    rest = [e for e in edges if e.src != name and e.dst != name]
    for a in ins:
        for b in outs:
            if a.delay + b.delay > 1:
                raise GraphError("two recurrent delays meet at a folded node", node=name, field="edges")
            rest.append(Edge(a.src, b.dst, a.delay + b.delay))
    return rest


# ----------------------------------------------------------------------------------------- bias folding
def fold_affine_bias_into_neuron(graph: Graph, cuba: bool = False) -> Graph:
    """Move the bias of each Affine that feeds exactly one LIF/LI into that neuron's ``v_leak`` (a constant input b
    adds r·b to the leak target: exact); the Affine becomes a Linear. CubaLIF/CubaLI keep their Affine (the
    quantise step carries the bias into the synaptic current exactly) unless ``cuba=True``: then r·w_in·b goes
    into ``v_leak``, which is *not* the float model (that filters the bias through tau_syn, so the first spikes
    move and the phase shift persists) and the pass warns. IF and Integrator keep their Affine: their constant
    input becomes the neuron's bias current in the quantise step."""
    nodes = graph.nodes
    notes = list(graph.metadata.get("notes", []))
    kinds = (LIF, LI, CubaLIF, CubaLI) if cuba else (LIF, LI)
    for name, node in graph.nodes.items():
        if not isinstance(node, Affine) or not np.any(node.bias != 0):
            continue
        succ = graph.successors(name)
        if len(succ) != 1 or not isinstance(nodes[succ[0]], kinds):
            continue
        pop = nodes[succ[0]]
        b = np.asarray(node.bias, dtype=np.float64)
        if isinstance(pop, (CubaLIF, CubaLI)):
            extra = pop.r * pop.w_in * b
            msg = (f"bias of '{name}' folded into v_leak of {pop.kind} '{pop.name}' (r*w_in*b): the float model "
                   f"filters the bias through tau_syn (~{float(np.max(pop.tau_syn)) / graph.dt:.1f} steps), so the "
                   f"first spikes move and the phase shift persists for the whole run")
            warnings.warn(msg, stacklevel=2)
            notes.append(msg)
        else:
            extra = pop.r * b
        nodes[pop.name] = pop.replace(v_leak=pop.v_leak + extra)
        nodes[name] = Linear(name, weight=node.weight)
    return rewire(graph, nodes, list(graph.edges), notes=notes)


# ------------------------------------------------------------------------------------- trailing synapses
def add_readout_for_trailing_synapse(graph: Graph) -> Graph:
    """Give every Output fed by a Linear/Affine node (a graph that ends in a linear layer, common from nirtorch)
    an integrating non-spiking readout: ``Affine -> Integrator(r=1) '<output>.readout' -> Output``. A Loihi
    program's output is a population; the readout's voltage is the running sum of the layer's output (its bias
    becomes the readout's bias current), which is what a classifier reads (argmax of the summed output).
    Run after :func:`~toolchain.passes.fuse.split_linear_fan` (one consumer per linear node)."""
    from ..ir.nodes import Integrator
    nodes = graph.nodes
    edges = list(graph.edges)
    notes = list(graph.metadata.get("notes", []))
    for name, node in graph.nodes.items():
        if not isinstance(node, Output):
            continue
        feeding = [e for e in edges if e.dst == name and isinstance(nodes[e.src], (Linear, Affine))]
        if not feeding:
            continue
        ro = f"{name}.readout"
        if ro in nodes:
            raise GraphError(f"cannot add the readout population: a node named '{ro}' exists", node=name,
                             field="edges")
        nodes[ro] = Integrator(ro, r=1.0, shape=(int(np.prod(node.shape)),))
        edges = [e for e in edges if e not in feeding] + [Edge(e.src, ro, e.delay) for e in feeding] + \
            [Edge(ro, name, 0)]
        notes.append(f"Output '{name}' is fed by the linear layer(s) {', '.join(e.src for e in feeding)}: compiled "
                     f"with the integrating readout '{ro}' (its voltage is the running sum of their output)")
    return rewire(graph, nodes, edges, notes=notes)
