"""``snnc inspect FILE.nir``: what a NIR file holds once loaded into the IR.

Prints the layer chain (e.g. ``12 -> 38 (recurrent) -> 7``), the nodes in topological order with type, shapes,
neuron and synapse counts and weight density, the recurrent edges, the parameter ranges (tau, thresholds,
weights, ...) and the loader's warnings. ``--dt``, ``--reset`` and ``--preset`` are passed to
:func:`toolchain.nir_io.load`.
"""
from __future__ import annotations

import os
import warnings
from typing import List, Optional

import click
import numpy as np

from .. import ir
from ..errors import ResourceError, ToolchainError
from ..limits import check_graph
from ..nir_io import PRESETS, load
from .main import cli

__all__ = ["inspect_text", "layer_chain"]

_RANGE_FIELDS = ("tau", "tau_syn", "tau_mem", "r", "v_leak", "v_threshold", "v_reset", "w_in", "threshold",
                 "scale", "delay", "bias")


def _fmt(a: float) -> str:
    return f"{a:.4g}"


def _range(a: np.ndarray) -> str:
    a = np.asarray(a, dtype=np.float64)
    lo, hi = float(a.min()), float(a.max())
    return _fmt(lo) if lo == hi else f"{_fmt(lo)}..{_fmt(hi)}"


def layer_chain(graph: ir.Graph) -> str:
    """Input sizes, then every neuron population in execution order, e.g. ``12 -> 38 (recurrent) -> 7``."""
    rec = _recurrent_nodes(graph)
    parts = []
    for name in graph.topological_order():
        node = graph[name]
        if isinstance(node, ir.Input) or node.is_neuron or isinstance(node, ir.Threshold):
            shape = "x".join(str(s) for s in node.out_shape)
            parts.append(shape + (" (recurrent)" if name in rec else ""))
    return " -> ".join(parts)


def _recurrent_nodes(graph: ir.Graph) -> set:
    """Neuron nodes that sit on a cycle (recurrent populations)."""
    from ..sim.float import _in_cycle
    return {n for n in _in_cycle(graph) if graph[n].is_neuron}


def _param_lines(graph: ir.Graph) -> List[str]:
    lines = []
    for node in graph:
        parts = []
        if isinstance(node, ir.Linear):
            w = node.weight
            nz = _nonzero(w)
            parts.append(f"weight {_range(w.to_dense()[w.stored_mask()]) if w.nnz else '-'}"
                         f" ({w.kind}, {w.nnz}/{w.shape[0] * w.shape[1]} stored, {nz} non-zero)")
        elif isinstance(node, (ir.Conv1d, ir.Conv2d)):
            parts.append(f"weight {_range(node.weight)} (kernel {'x'.join(map(str, node.weight.shape))}, "
                         f"stride {node.stride}, padding {node.padding})")
        elif isinstance(node, ir.SumPool2d):
            parts.append(f"kernel {node.kernel_size}, stride {node.stride}, padding {node.padding}")
        for f in _RANGE_FIELDS:
            v = getattr(node, f, None)
            if isinstance(v, np.ndarray) and v.size:
                unit = " s" if f.startswith("tau") or f == "delay" else ""
                parts.append(f"{f} {_range(v)}{unit}")
        if getattr(node, "reset_mode", None):
            parts.append(f"reset {node.reset_mode}")
        if parts:
            lines.append(f"  {node.name} ({node.kind}): " + ", ".join(parts))
    return lines


def _nonzero(w) -> int:
    """Non-zero weights of a storage (stored zeros are no synapses)."""
    return int(np.count_nonzero(np.asarray(w.to_dense())[w.stored_mask()]))


def synapse_totals(graph: ir.Graph) -> tuple:
    """``(stored, non-zero, weights)`` over the graph's Linear/Affine nodes: ``weights`` counts every entry of the
    weight matrices, so ``1 - non-zero / weights`` is the connection sparsity ``snnc report`` computes (there on
    the quantised weights, where a few more small weights may round to zero)."""
    stored = nonzero = total = 0
    for node in graph:
        if isinstance(node, ir.Linear):
            w = node.weight
            stored += int(w.nnz)
            nonzero += _nonzero(w)
            total += int(w.shape[0]) * int(w.shape[1])
    return stored, nonzero, total


def inspect_text(path: str, dt: Optional[float] = None, reset: Optional[str] = None,
                 preset: Optional[str] = None, source_dt: Optional[float] = None) -> str:
    """The report ``snnc inspect`` prints (loads the file; raises ToolchainError on bad input). A lava-dl netx
    ``.net`` file gets :func:`toolchain.netx_io.netx_inspect_text` (``dt``, ``reset``, ``preset`` do not apply)."""
    from ..netx_io import is_netx_file, netx_inspect_text
    if is_netx_file(path):
        given = [k for k, v in (("dt", dt), ("reset", reset), ("preset", preset), ("source_dt", source_dt))
                 if v is not None]
        if given:
            raise ToolchainError("does not apply to a netx file (already integer)", file=path, field=given[0])
        return netx_inspect_text(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            graph = load(path, dt=dt, reset=reset, preset=preset, source_dt=source_dt)
        except MemoryError as exc:  # the size checks passed but the machine ran out while reading
            raise ResourceError(f"out of memory while reading the file ({exc or 'no detail'}); raise the memory "
                                f"limit or prune the network", file=os.fspath(path), field="memory") from None
    md = graph.metadata
    head = [f"file: {path}",
            f"preset: {md.get('preset') or 'none'}, dt: {('%g s' % graph.dt) if graph.dt else 'not set'}, "
            f"reset: {md.get('reset')}, reset timing: {md.get('reset_timing')}, read with: {md.get('reader')}"
            + (f", NIR file version {md['nir_version']}" if md.get("nir_version") else ""),
            f"network: {layer_chain(graph)}", "", graph.summary(), "", "parameter ranges:", *_param_lines(graph)]
    stored, nonzero, total = synapse_totals(graph)
    if total:
        head.insert(3, f"synapses of Linear/Affine nodes: {stored} stored, {nonzero} non-zero "
                       f"(connection sparsity {1 - nonzero / total:.4f})")
    warn = list(md.get("warnings") or [])
    try:
        check_graph(graph)
    except ToolchainError as exc:
        warn.append(f"will not compile: {exc}")
    head += ["", f"warnings ({len(warn)}):" if warn else "warnings: none", *[f"  - {w}" for w in warn]]
    return "\n".join(head)


@cli.command("inspect")
@click.argument("file", type=click.Path(dir_okay=True))
@click.option("--dt", type=float, default=None, help="Time step in seconds (NIR does not store it).")
@click.option("--reset", type=click.Choice(list(ir.RESET_MODES)), default=None,
              help="Reset mode of every spiking node (NIR does not store it); default zero.")
@click.option("--preset", type=click.Choice(list(PRESETS)), default=None,
              help="Exporting framework's conventions (dt, reset, tau units).")
@click.option("--source-dt", type=float, default=None,
              help="Time step (s) the exporting framework simulated with (Norse stores tau*dt); default: the file's "
                   "metadata, else 1e-3.")
def inspect_cmd(file: str, dt: Optional[float], reset: Optional[str], preset: Optional[str],
                source_dt: Optional[float] = None) -> None:
    """Show the nodes, shapes, counts, recurrence, parameter ranges and warnings of a NIR FILE."""
    click.echo(inspect_text(file, dt=dt, reset=reset, preset=preset, source_dt=source_dt))
