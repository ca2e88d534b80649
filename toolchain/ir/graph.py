"""The IR graph: named nodes and directed edges; cycles allowed, with the one-step delay made explicit.

Execution semantics (the same as every NIR executor and as Loihi): within one time step, data flows along the
edges with ``delay == 0`` in topological order; an edge with ``delay == 1`` carries the value its source produced
on the *previous* step. Every cycle must contain at least one delayed edge. When edges are given without a delay,
the graph marks the edges that close a cycle (back edges of a depth-first search from the inputs, in insertion
order) as delayed — exactly the recurrent edges of the network.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import GraphError
from .nodes import Input, Node, Output, _Population, Linear

__all__ = ["Edge", "Graph"]


@dataclass(frozen=True)
class Edge:
    """A directed edge ``src -> dst``; ``delay`` is 1 on edges that close a cycle (recurrence), else 0."""

    src: str
    dst: str
    delay: int = 0

    def __post_init__(self) -> None:
        if self.delay not in (0, 1):
            raise GraphError(f"edge delay must be 0 or 1, got {self.delay}", field=f"edge {self.src}->{self.dst}")


EdgeLike = Union[Edge, Tuple[str, str], Tuple[str, str, int]]


class Graph:
    """An immutable IR graph.

    Parameters
    ----------
    nodes: the nodes (a sequence, or a mapping name -> node whose keys must equal the nodes' names).
    edges: ``Edge`` objects or ``(src, dst)`` pairs; pairs get their delay from cycle detection.
    dt: simulation/compilation step in seconds, or None while the graph is purely continuous-time.
    metadata: free-form provenance (source file, framework preset, reset mode, ...).
    """

    def __init__(self, nodes: Union[Sequence[Node], Mapping[str, Node]], edges: Iterable[EdgeLike],
                 dt: Optional[float] = None, metadata: Optional[Mapping[str, Any]] = None) -> None:
        if isinstance(nodes, Mapping):
            for key, node in nodes.items():
                if key != node.name:
                    raise GraphError(f"is stored under key '{key}' but is named '{node.name}'", node=key,
                                     field="name")
            node_list = list(nodes.values())
        else:
            node_list = list(nodes)
        self._nodes: Dict[str, Node] = {}
        for node in node_list:
            if not isinstance(node, Node):
                raise GraphError(f"not an IR node: {node!r}")
            if node.name in self._nodes:
                raise GraphError("appears twice in the graph", node=node.name, field="name")
            self._nodes[node.name] = node
        raw: List[Tuple[str, str, Optional[int]]] = []
        for e in edges:
            if isinstance(e, Edge):
                raw.append((e.src, e.dst, e.delay))
            else:
                t = tuple(e)
                if len(t) not in (2, 3):
                    raise GraphError(f"an edge must be (src, dst) or (src, dst, delay), got {e!r}")
                raw.append((str(t[0]), str(t[1]), int(t[2]) if len(t) == 3 else None))
        for src, dst, _ in raw:
            for end, which in ((src, "source"), (dst, "target")):
                if end not in self._nodes:
                    raise GraphError(f"edge {src} -> {dst}: {which} node '{end}' does not exist", node=end)
        seen = set()
        for src, dst, _ in raw:
            if (src, dst) in seen:
                raise GraphError(f"duplicate edge {src} -> {dst}", node=dst)
            seen.add((src, dst))
        self._edges: Tuple[Edge, ...] = tuple(self._assign_delays(raw))
        self.dt = None if dt is None else float(dt)
        if self.dt is not None and not (self.dt > 0 and np.isfinite(self.dt)):
            raise GraphError(f"dt must be a positive number of seconds, got {dt}", field="dt")
        self.metadata: Dict[str, Any] = dict(metadata or {})
        self._topo = self._toposort()

    # ---------------------------------------------------------------------------------------- construction
    def _assign_delays(self, raw: List[Tuple[str, str, Optional[int]]]) -> List[Edge]:
        if all(d is not None for _, _, d in raw):
            return [Edge(s, t, int(d)) for s, t, d in raw]  # type: ignore[arg-type]
        succ: Dict[str, List[int]] = {n: [] for n in self._nodes}
        for i, (s, _, _) in enumerate(raw):
            succ[s].append(i)
        delays = [d for _, _, d in raw]
        state: Dict[str, int] = {}  # 1 = on stack, 2 = done
        roots = [n for n, node in self._nodes.items() if isinstance(node, Input)]
        roots += [n for n in self._nodes if n not in roots]
        for root in roots:
            if root in state:
                continue
            stack: List[Tuple[str, Iterator[int]]] = [(root, iter(succ[root]))]
            state[root] = 1
            while stack:
                name, it = stack[-1]
                nxt = next(it, None)
                if nxt is None:
                    state[name] = 2
                    stack.pop()
                    continue
                dst = raw[nxt][1]
                if state.get(dst) == 1:  # back edge: closes a cycle
                    if delays[nxt] is None:
                        delays[nxt] = 1
                else:
                    if delays[nxt] is None:
                        delays[nxt] = 0
                    if dst not in state:
                        state[dst] = 1
                        stack.append((dst, iter(succ[dst])))
        return [Edge(s, t, int(d if d is not None else 0)) for (s, t, _), d in zip(raw, delays)]

    def _toposort(self) -> Tuple[str, ...]:
        indeg = {n: 0 for n in self._nodes}
        succ: Dict[str, List[str]] = {n: [] for n in self._nodes}
        for e in self._edges:
            if e.delay == 0:
                indeg[e.dst] += 1
                succ[e.src].append(e.dst)
        order_index = {n: i for i, n in enumerate(self._nodes)}
        ready = sorted([n for n, d in indeg.items() if d == 0], key=order_index.__getitem__)
        out: List[str] = []
        while ready:
            n = ready.pop(0)
            out.append(n)
            for m in succ[n]:
                indeg[m] -= 1
                if indeg[m] == 0:
                    ready.append(m)
                    ready.sort(key=order_index.__getitem__)
        if len(out) != len(self._nodes):
            stuck = [n for n in self._nodes if n not in out]
            raise GraphError(f"cycle without a delayed edge through {stuck}", node=stuck[0])
        return tuple(out)

    # ------------------------------------------------------------------------------------------- accessors
    @property
    def nodes(self) -> Dict[str, Node]:
        """Name -> node, in insertion order (a copy)."""
        return dict(self._nodes)

    @property
    def edges(self) -> Tuple[Edge, ...]:
        return self._edges

    def __getitem__(self, name: str) -> Node:
        try:
            return self._nodes[name]
        except KeyError:
            raise GraphError("no such node in the graph", node=name) from None

    def __contains__(self, name: object) -> bool:
        return name in self._nodes

    def __iter__(self) -> Iterator[Node]:
        return (self._nodes[n] for n in self._topo)

    def __len__(self) -> int:
        return len(self._nodes)

    def topological_order(self) -> Tuple[str, ...]:
        """Node names in execution order within a step (delayed edges ignored; ties in insertion order)."""
        return self._topo

    def predecessors(self, name: str, delayed: Optional[bool] = None) -> List[str]:
        """Sources of edges into ``name``; ``delayed`` selects only delayed (True) or undelayed (False) edges."""
        self[name]
        return [e.src for e in self._edges if e.dst == name and (delayed is None or bool(e.delay) == delayed)]

    def successors(self, name: str, delayed: Optional[bool] = None) -> List[str]:
        """Targets of edges out of ``name`` (optionally only delayed or undelayed ones)."""
        self[name]
        return [e.dst for e in self._edges if e.src == name and (delayed is None or bool(e.delay) == delayed)]

    def in_edges(self, name: str) -> List[Edge]:
        return [e for e in self._edges if e.dst == name]

    def out_edges(self, name: str) -> List[Edge]:
        return [e for e in self._edges if e.src == name]

    @property
    def inputs(self) -> List[str]:
        """Names of the Input nodes, in insertion order."""
        return [n for n, node in self._nodes.items() if isinstance(node, Input)]

    @property
    def outputs(self) -> List[str]:
        """Names of the Output nodes, in insertion order."""
        return [n for n, node in self._nodes.items() if isinstance(node, Output)]

    @property
    def recurrent_edges(self) -> List[Edge]:
        """The delayed (cycle-closing) edges."""
        return [e for e in self._edges if e.delay]

    # ------------------------------------------------------------------------------------------ rewriting
    def replace(self, *, nodes: Optional[Union[Sequence[Node], Mapping[str, Node]]] = None,
                edges: Optional[Iterable[EdgeLike]] = None, dt: Any = ..., metadata: Any = ...) -> "Graph":
        """A new graph with some parts replaced (the rest shared, since nodes are immutable)."""
        return Graph(self._nodes if nodes is None else nodes, self._edges if edges is None else edges,
                     self.dt if dt is ... else dt, self.metadata if metadata is ... else metadata)

    def with_node(self, node: Node) -> "Graph":
        """A new graph where the node of the same name is replaced by ``node`` (or ``node`` is added)."""
        nodes = dict(self._nodes)
        nodes[node.name] = node
        return self.replace(nodes=nodes)

    # ----------------------------------------------------------------------------------------- statistics
    def neuron_count(self) -> int:
        """Neurons in all population nodes (LIF, CubaLIF, IF, LI, CubaLI, Integrator, Threshold)."""
        return sum(n.size for n in self._nodes.values() if isinstance(n, _Population))

    def synapse_count(self) -> int:
        """Stored synapses: nnz of Linear/Affine storage plus the unrolled connections of conv/pool layers."""
        return sum(synapse_count(n) for n in self._nodes.values())

    def summary(self) -> str:
        """A readable multi-line table: nodes in topological order with shapes, neurons, synapses, sparsity."""
        rows = [("node", "type", "in", "out", "neurons", "synapses", "density")]
        recurrent_dst = {e.dst for e in self.recurrent_edges}
        for node in self:
            neurons = node.size if isinstance(node, _Population) else ""
            syn = synapse_count(node)
            dens = ""
            if isinstance(node, Linear):
                dens = f"{node.weight.density:.3f}"
            name = node.name + (" (rec)" if node.name in recurrent_dst else "")
            rows.append((name, node.kind, _fmt_shape(node.in_shape), _fmt_shape(node.out_shape), str(neurons),
                         str(syn) if syn else "", dens))
        from ..textutil import table_lines
        lines = table_lines(rows)
        head = (f"Graph: {len(self)} nodes, {len(self._edges)} edges ({len(self.recurrent_edges)} recurrent), "
                f"{self.neuron_count()} neurons, {self.synapse_count()} synapses"
                + (f", dt={self.dt:g} s" if self.dt else ""))
        rec = [f"  recurrent edge {e.src} -> {e.dst} (one-step delay)" for e in self.recurrent_edges]
        return "\n".join([head, *lines, *rec])

    def __repr__(self) -> str:
        chain = " -> ".join(f"{n}:{self._nodes[n].kind}" for n in self._topo)
        rec = ", ".join(f"{e.src}~>{e.dst}" for e in self.recurrent_edges)
        return f"Graph({chain}" + (f"; recurrent {rec}" if rec else "") + ")"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Graph):
            return NotImplemented
        return (self._nodes.keys() == other._nodes.keys()
                and all(self._nodes[k] == other._nodes[k] for k in self._nodes)
                and set(self._edges) == set(other._edges)
                and self.dt == other.dt)

    __hash__ = None  # type: ignore[assignment]


def _fmt_shape(shape: Tuple[int, ...]) -> str:
    return "x".join(str(s) for s in shape) if shape else "-"


def synapse_count(node: Node) -> int:
    """Synapses a node stands for once unrolled: stored weights for Linear/Affine, one per (output, kernel tap)
    connection that lands inside the input for convolutions and pooling, 0 for everything else."""
    from .nodes import Conv1d, Conv2d, SumPool2d  # AvgPool2d is a SumPool2d subclass
    if isinstance(node, Linear):
        return node.weight.nnz
    if isinstance(node, (Conv2d, SumPool2d)):
        if isinstance(node, Conv2d):
            c_out = node.weight.shape[0]
            cin_g = node.weight.shape[1]
            kh, kw = node.weight.shape[2:]
            stride, pad, dil = node.stride, node.padding, node.dilation
        else:
            c_out = node.input_shape[0]
            cin_g = 1
            kh, kw = node.kernel_size
            stride, pad, dil = node.stride, node.padding, (1, 1)
        _, h, w = node.input_shape
        _, oh, ow = node.out_shape
        vh = _valid_taps(h, oh, kh, stride[0], pad[0], dil[0])
        vw = _valid_taps(w, ow, kw, stride[1], pad[1], dil[1])
        return int(c_out * cin_g * vh * vw)
    if isinstance(node, Conv1d):
        c_out, cin_g, k = node.weight.shape
        v = _valid_taps(node.input_shape[1], node.out_shape[1], k, node.stride, node.padding, node.dilation)
        return int(c_out * cin_g * v)
    return 0


def _valid_taps(n: int, n_out: int, k: int, s: int, p: int, d: int) -> int:
    """Number of (output position, tap) pairs along one axis whose input index lies inside [0, n)."""
    o = np.arange(n_out)[:, None]
    t = np.arange(k)[None, :]
    idx = o * s - p + t * d
    return int(((idx >= 0) & (idx < n)).sum())
