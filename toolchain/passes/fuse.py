"""Fusing passes: one synapse node per (source population, target population) path.

After these passes every ``Linear``/``Affine`` node has exactly one predecessor and one successor, chains of
linear nodes between two populations are merged into one exact synapse matrix (``W = W2 @ W1``,
``b = W2 @ b1 + b2``), parallel linear nodes between the same pair are summed, and a population that feeds another
directly gets an identity synapse node. Each pass is a pure function ``Graph -> Graph``.
"""
from __future__ import annotations

from typing import Dict, List

import numpy as np

from ..errors import GraphError
from ..ir.graph import Edge, Graph
from ..ir.nodes import Affine, Delay, Input, Linear, Node, _Population
from . import storage_ops as so
from .normalise import rewire

__all__ = ["split_linear_fan", "merge_linear_chains", "merge_parallel_linear", "insert_identity_synapses"]

_LINEAR = (Linear, Affine)


def _is_lin(node: Node) -> bool:
    return isinstance(node, _LINEAR)


def _make(name: str, weight, bias) -> Node:
    if bias is not None and np.any(np.asarray(bias) != 0):
        return Affine(name, weight=weight, bias=bias)
    return Linear(name, weight=weight)


def _bias(node: Node):
    return node.bias if isinstance(node, Affine) else None


def split_linear_fan(graph: Graph) -> Graph:
    """Give every Linear/Affine node exactly one input and one output edge by copying it: a node that sums k
    inputs becomes k copies (the bias kept on the first), a node read by k consumers becomes k copies."""
    nodes: Dict[str, Node] = graph.nodes
    edges: List[Edge] = list(graph.edges)
    changed = True
    while changed:
        changed = False
        for name in list(nodes):
            node = nodes[name]
            if not _is_lin(node):
                continue
            ins = [e for e in edges if e.dst == name]
            outs = [e for e in edges if e.src == name]
            if len(ins) > 1:
                del nodes[name]
                edges = [e for e in edges if e.dst != name and e.src != name]
                for k, e in enumerate(ins):
                    copy = f"{name}<{e.src}"
                    nodes[copy] = _make(copy, node.weight, _bias(node) if k == 0 else None)
                    edges.append(Edge(e.src, copy, e.delay))
                    edges += [Edge(copy, o.dst, o.delay) for o in outs]
                changed = True
                break
            if len(outs) > 1:
                del nodes[name]
                edges = [e for e in edges if e.dst != name and e.src != name]
                for e in outs:
                    copy = f"{name}>{e.dst}"
                    nodes[copy] = _make(copy, node.weight, _bias(node))
                    edges += [Edge(i.src, copy, i.delay) for i in ins]
                    edges.append(Edge(copy, e.dst, e.delay))
                changed = True
                break
    return rewire(graph, nodes, edges)


def merge_linear_chains(graph: Graph) -> Graph:
    """Merge each Linear/Affine node that feeds another one into a single node holding the product
    (``W2 @ W1``, bias ``W2 @ b1 + b2``); run after :func:`split_linear_fan`."""
    nodes: Dict[str, Node] = graph.nodes
    edges: List[Edge] = list(graph.edges)
    while True:
        pair = next((e for e in edges if _is_lin(nodes[e.src]) and _is_lin(nodes[e.dst])
                     and sum(1 for x in edges if x.src == e.src) == 1
                     and sum(1 for x in edges if x.dst == e.dst) == 1), None)
        if pair is None:
            break
        a, b = nodes[pair.src], nodes[pair.dst]
        w = so.matmul(b.weight, a.weight)
        bias = None
        if _bias(a) is not None:
            bias = so.to_scipy(b.weight) @ np.asarray(a.bias, dtype=np.float64)
        if _bias(b) is not None:
            bias = (bias if bias is not None else 0.0) + b.bias
        name = f"{a.name}+{b.name}"
        ins = [e for e in edges if e.dst == a.name]
        outs = [e for e in edges if e.src == b.name]
        edges = [e for e in edges if a.name not in (e.src, e.dst) and b.name not in (e.src, e.dst)]
        for i in ins:
            if i.delay + pair.delay > 1:
                raise GraphError("two recurrent delays in one chain of linear nodes", node=name, field="edges")
            edges.append(Edge(i.src, name, i.delay + pair.delay))
        edges += [Edge(name, o.dst, o.delay) for o in outs]
        del nodes[a.name], nodes[b.name]
        nodes[name] = _make(name, w, bias)
    return rewire(graph, nodes, edges)


def merge_parallel_linear(graph: Graph) -> Graph:
    """Sum Linear/Affine nodes that join the same source to the same target with the same edge delays."""
    nodes: Dict[str, Node] = graph.nodes
    edges: List[Edge] = list(graph.edges)
    while True:
        sig: Dict[tuple, str] = {}
        found = None
        for name, node in nodes.items():
            if not _is_lin(node):
                continue
            ins = [e for e in edges if e.dst == name]
            outs = [e for e in edges if e.src == name]
            if len(ins) != 1 or len(outs) != 1:
                continue
            key = (ins[0].src, ins[0].delay, outs[0].dst, outs[0].delay)
            if key in sig:
                found = (sig[key], name, key)
                break
            sig[key] = name
        if found is None:
            break
        a, b, key = nodes[found[0]], nodes[found[1]], found[2]
        name = f"{a.name}|{b.name}"
        bias = None
        if _bias(a) is not None or _bias(b) is not None:
            bias = (a.bias if _bias(a) is not None else 0.0) + (b.bias if _bias(b) is not None else 0.0)
        edges = [e for e in edges if a.name not in (e.src, e.dst) and b.name not in (e.src, e.dst)]
        edges += [Edge(key[0], name, key[1]), Edge(name, key[2], key[3])]
        del nodes[a.name], nodes[b.name]
        nodes[name] = _make(name, so.add(a.weight, b.weight), bias)
    return rewire(graph, nodes, edges)


def insert_identity_synapses(graph: Graph) -> Graph:
    """Put an identity synapse node (one synapse of weight 1 per neuron) on every edge that reaches a population
    from an Input, a population or a Delay without passing a Linear/Affine node."""
    nodes: Dict[str, Node] = graph.nodes
    edges: List[Edge] = []
    for e in graph.edges:
        dst, src = nodes[e.dst], nodes[e.src]
        if isinstance(dst, _Population) and isinstance(src, (Input, _Population, Delay)) and \
                not _behind_linear(graph, e.src):
            name = f"{e.src}>{e.dst}"
            n = int(np.prod(src.out_shape))
            nodes[name] = Linear(name, weight=so.diagonal(np.ones(n)))
            edges += [Edge(e.src, name, e.delay), Edge(name, e.dst, 0)]
        else:
            edges.append(e)
    return rewire(graph, nodes, edges)


def _behind_linear(graph: Graph, name: str) -> bool:
    """True when ``name`` is a Delay chain that starts at a Linear/Affine node."""
    node = graph[name]
    while isinstance(node, Delay):
        preds = graph.predecessors(node.name)
        if len(preds) != 1:
            return False
        node = graph[preds[0]]
    return _is_lin(node)
