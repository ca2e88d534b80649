"""``verify(graph, level)``: the checks every stage boundary runs (after import, after quantise, after partition).

Structural checks (all levels): inputs have no incoming edges, every other node has at least one, every edge
joins matching shapes (several edges into one node are summed, so they must agree), every node lies on a path
from an input to an output, every cycle is delayed (the Graph constructor already enforces that). Later stages
register extra checks for their level with :func:`register_check`.
"""
from __future__ import annotations

from typing import Callable, Dict, List

from ..errors import GraphError
from .graph import Graph
from .nodes import Input, Output

__all__ = ["verify", "register_check", "LEVELS"]

LEVELS = ("import", "normalised", "quantised", "partitioned")
_CHECKS: Dict[str, List[Callable[[Graph], None]]] = {level: [] for level in LEVELS}


def register_check(level: str, check: Callable[[Graph], None]) -> Callable[[Graph], None]:
    """Add ``check(graph)`` (raising ToolchainError on failure) to the checks run at ``level``."""
    if level not in _CHECKS:
        raise ValueError(f"unknown verify level {level!r}; levels are {LEVELS}")
    if check not in _CHECKS[level]:
        _CHECKS[level].append(check)
    return check


def verify(graph: Graph, level: str = "import") -> Graph:
    """Check ``graph`` and return it unchanged; raise :class:`GraphError` naming the node and field."""
    if level not in _CHECKS:
        raise ValueError(f"unknown verify level {level!r}; levels are {LEVELS}")
    _check_structure(graph)
    for check in _CHECKS[level]:
        check(graph)
    return graph


def _check_structure(graph: Graph) -> None:
    if not graph.inputs:
        raise GraphError("graph has no Input node", field="nodes")
    if not graph.outputs:
        raise GraphError("graph has no Output node", field="nodes")
    for name, node in graph.nodes.items():
        preds = graph.predecessors(name)
        if isinstance(node, Input):
            if preds:
                raise GraphError(f"is an Input but has incoming edges from {preds}", node=name, field="edges")
            continue
        if not preds:
            raise GraphError("has no incoming edge", node=name, field="edges")
        for src in preds:
            s_shape = graph[src].out_shape
            if s_shape != node.in_shape:
                raise GraphError(f"receives shape {s_shape} from '{src}' but expects {node.in_shape}",
                                 node=name, field="input_shape")
        if isinstance(node, Output) and graph.successors(name):
            raise GraphError(f"is an Output but has outgoing edges to {graph.successors(name)}", node=name,
                             field="edges")
    # every node on a path input -> output
    fwd = _reach(graph, graph.inputs, forward=True)
    bwd = _reach(graph, graph.outputs, forward=False)
    for name in graph.nodes:
        if name not in fwd:
            raise GraphError("is not reachable from any Input", node=name, field="edges")
        if name not in bwd:
            raise GraphError("does not lead to any Output", node=name, field="edges")


def _reach(graph: Graph, start: List[str], forward: bool) -> set:
    seen = set(start)
    todo = list(start)
    while todo:
        n = todo.pop()
        nxt = graph.successors(n) if forward else graph.predecessors(n)
        for m in nxt:
            if m not in seen:
                seen.add(m)
                todo.append(m)
    return seen
