"""``export``: a :class:`toolchain.ir.Graph` to a ``nir.NIRGraph`` (and a ``.nir`` file that ``nir.read`` accepts).

What NIR cannot hold, and where it goes instead (read back by :func:`toolchain.nir_io.load`):

* ``dt`` (not a NIR field) goes into the NIRGraph's ``metadata["dt"]``;
* the reset mode of each spiking node goes into that node's ``metadata["reset_mode"]``;
* which edges carry the one-step delay goes into ``metadata["delayed_edges"]`` (``"a->b;c->d"``), so that a
  graph whose delays are not simply its cycle-closing edges survives the round trip;
* ``Csr`` and ``Structured`` weights are written as dense NIR weights (zeros where no synapse is stored). The
  sparsity *structure* is not recorded: on re-import the weights load as :class:`~toolchain.ir.Dense` with the
  same dense values. Keep the IR graph (or re-apply pruning masks) when the structure matters.

nir 1.0.8 writes node and graph metadata to HDF5 (strings and numbers) and ``nir.read`` passes it back, so a
file written here round-trips through ``nir.read`` + ``nir.write`` as well.
"""
from __future__ import annotations

import os
from typing import Any, Dict, Optional, Union

import numpy as np

from .. import ir
from ..errors import GraphError

__all__ = ["export"]


def _f(a: Any) -> np.ndarray:
    return np.array(a, dtype=np.float64, copy=True)


def _node_to_nir(node: ir.Node) -> Any:
    import nir
    if isinstance(node, ir.Input):
        return nir.Input(input_type={"input": np.array(node.shape, dtype=np.int64)})
    if isinstance(node, ir.Output):
        return nir.Output(output_type={"output": np.array(node.shape, dtype=np.int64)})
    if isinstance(node, ir.Affine):  # before Linear: Affine subclasses Linear
        return nir.Affine(weight=_f(node.weight.to_dense()), bias=_f(node.bias))
    if isinstance(node, ir.Linear):
        return nir.Linear(weight=_f(node.weight.to_dense()))
    if isinstance(node, ir.Scale):
        return nir.Scale(scale=_f(node.scale))
    if isinstance(node, ir.Conv2d):
        return nir.Conv2d(input_shape=tuple(int(s) for s in node.input_shape[1:]), weight=_f(node.weight),
                          stride=tuple(node.stride), padding=tuple(node.padding), dilation=tuple(node.dilation),
                          groups=int(node.groups), bias=_f(node.bias))
    if isinstance(node, ir.Conv1d):
        return nir.Conv1d(input_shape=int(node.input_shape[1]), weight=_f(node.weight), stride=int(node.stride),
                          padding=int(node.padding), dilation=int(node.dilation), groups=int(node.groups),
                          bias=_f(node.bias))
    if isinstance(node, ir.AvgPool2d):  # before SumPool2d: AvgPool2d subclasses it
        return nir.AvgPool2d(kernel_size=np.array(node.kernel_size), stride=np.array(node.stride),
                             padding=np.array(node.padding))
    if isinstance(node, ir.SumPool2d):
        return nir.SumPool2d(kernel_size=np.array(node.kernel_size), stride=np.array(node.stride),
                             padding=np.array(node.padding))
    if isinstance(node, ir.Flatten):
        return nir.Flatten(input_type={"input": np.array(node.input_shape, dtype=np.int64)},
                           start_dim=int(node.start_dim), end_dim=int(node.end_dim))
    if isinstance(node, ir.Delay):
        return nir.Delay(delay=_f(node.delay))
    if isinstance(node, ir.Threshold):
        return nir.Threshold(threshold=_f(node.threshold))
    if isinstance(node, ir.Integrator):
        return nir.I(r=_f(node.r))
    meta = {"reset_mode": node.reset_mode} if hasattr(node, "reset_mode") else {}
    if isinstance(node, ir.LIF):
        return nir.LIF(tau=_f(node.tau), r=_f(node.r), v_leak=_f(node.v_leak), v_threshold=_f(node.v_threshold),
                       v_reset=_f(node.v_reset), metadata=meta)
    if isinstance(node, ir.CubaLIF):
        return nir.CubaLIF(tau_syn=_f(node.tau_syn), tau_mem=_f(node.tau_mem), r=_f(node.r),
                           v_leak=_f(node.v_leak), v_threshold=_f(node.v_threshold), v_reset=_f(node.v_reset),
                           w_in=_f(node.w_in), metadata=meta)
    if isinstance(node, ir.IF):
        return nir.IF(r=_f(node.r), v_threshold=_f(node.v_threshold), v_reset=_f(node.v_reset), metadata=meta)
    if isinstance(node, ir.LI):
        return nir.LI(tau=_f(node.tau), r=_f(node.r), v_leak=_f(node.v_leak))
    if isinstance(node, ir.CubaLI):
        return nir.CubaLI(tau_syn=_f(node.tau_syn), tau_mem=_f(node.tau_mem), r=_f(node.r), v_leak=_f(node.v_leak),
                          w_in=_f(node.w_in))
    raise GraphError(f"cannot export node type {node.kind} to NIR", node=node.name, field="type")


def export(graph: ir.Graph, path: Optional[Union[str, os.PathLike]] = None) -> Any:
    """Convert ``graph`` to a ``nir.NIRGraph``; with ``path``, also write it as a ``.nir`` (HDF5) file.

    The returned graph's ``metadata`` holds ``dt`` (when the graph has one), ``delayed_edges`` and
    ``generator``; spiking nodes carry ``metadata["reset_mode"]`` (see the module docstring). The file is
    written to a temporary name and renamed, so a failed export leaves no partial file.
    """
    import nir
    nodes: Dict[str, Any] = {name: _node_to_nir(graph[name]) for name in graph.topological_order()}
    edges = [(e.src, e.dst) for e in graph.edges]
    meta: Dict[str, Any] = {"generator": "snn-toolchain"}
    if graph.dt is not None:
        meta["dt"] = float(graph.dt)
    meta["delayed_edges"] = ";".join(f"{e.src}->{e.dst}" for e in graph.recurrent_edges)
    nir_graph = nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta, type_check=False)
    if path is not None:
        path = os.fspath(path)
        tmp = f"{path}.tmp-{os.getpid()}"
        try:
            nir.write(tmp, nir_graph)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    return nir_graph
