"""``load``: a NIR graph (file or ``nir.NIRGraph``) to a :class:`toolchain.ir.Graph`.

Files in the wild are messy; the loader accepts and normalises:

* every NIR 1.0 node type (``I`` becomes :class:`~toolchain.ir.Integrator`), torch tensors in in-memory graphs;
* 0-d or size-1 parameters and ``[]`` shapes: a neuron's shape is taken from its neighbours and its parameters
  are broadcast;
* a leading batch dimension left in an ``Input``/``Output`` shape or a ``Flatten``'s ``input_type`` (dropped,
  with a warning), and ``Flatten`` dims counted with the batch dimension (snnTorch/Sinabs style);
* nested ``NIRGraph`` nodes: flattened into the parent with ``"<subgraph>.<node>"`` names, edges rewired through
  the subgraph's ``Input``/``Output`` nodes; edges that name a subgraph's inner node by a dotted name;
* old files whose nested edges name inner nodes without their prefix or by an older name (resolved when it is
  unambiguous, with a warning);
* recurrent cycles (the edge that closes a cycle gets the one-step delay), any node order;
* Conv padding ``'same'``/``'valid'``;
* files that ``nir.read`` rejects: the HDF5 groups are then read directly with h5py.

``dt`` and the reset mode are not NIR fields: they are arguments (or come from a preset, see
:mod:`toolchain.nir_io.presets`, or from the metadata written by :func:`toolchain.nir_io.export`). Every NIR
neuron parameter ``v_reset`` defaults to 0. Suspicious values (tau that looks like another framework's
convention, thresholds ≤ 0, ...) give a :class:`NirImportWarning`; the messages are also kept in
``graph.metadata["warnings"]``.

Errors are :class:`~toolchain.errors.NirImportError` (or :class:`~toolchain.errors.GraphError` from the IR's own
checks) with ``file``, ``node`` and ``field`` set. Loading never writes anything.
"""
from __future__ import annotations

import dataclasses
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple, Union

import numpy as np

from .. import ir
from ..errors import GraphError, NirImportError, ToolchainError
from .presets import Preset, resolve

__all__ = ["load", "NirImportWarning", "NIR_TYPES"]

Shape = Tuple[int, ...]

#: NIR node types the loader maps (``NIRGraph`` is flattened).
NIR_TYPES = ("Input", "Output", "Affine", "Linear", "Scale", "Conv1d", "Conv2d", "SumPool2d", "AvgPool2d",
             "Flatten", "LIF", "CubaLIF", "IF", "LI", "CubaLI", "I", "Threshold", "Delay", "NIRGraph")
_ELEMENTWISE = {"LIF": ("tau", "r", "v_leak", "v_threshold", "v_reset"),
                "CubaLIF": ("tau_syn", "tau_mem", "r", "v_leak", "v_threshold", "v_reset", "w_in"),
                "IF": ("r", "v_threshold", "v_reset"),
                "LI": ("tau", "r", "v_leak"),
                "CubaLI": ("tau_syn", "tau_mem", "r", "v_leak", "w_in"),
                "I": ("r",),
                "Threshold": ("threshold",),
                "Scale": ("scale",),
                "Delay": ("delay",)}
_IO = ("Input", "Output")
_SPIKING = ("LIF", "CubaLIF", "IF")
_TAU_FIELDS = ("tau", "tau_syn", "tau_mem")


class NirImportWarning(UserWarning):
    """Something in a NIR file that loads but is probably not what the author meant."""


@dataclass
class _Raw:
    """A NIR node as read, before mapping: ``type``, raw ``params``; ``nodes``/``edges`` for subgraphs."""

    type: str
    params: Dict[str, Any] = field(default_factory=dict)
    nodes: Optional[Dict[str, "_Raw"]] = None
    edges: Optional[List[Tuple[str, str]]] = None
    metadata: Dict[str, Any] = field(default_factory=dict)


class _Ctx:
    """Per-load state: the file name for errors and the warnings collected so far."""

    def __init__(self, file: Optional[str]) -> None:
        self.file = file
        self.warnings: List[str] = []

    def warn(self, msg: str, node: Optional[str] = None) -> None:
        text = (f"node '{node}': " if node else "") + msg
        if text not in self.warnings:
            self.warnings.append(text)

    def error(self, msg: str, node: Optional[str] = None, fld: Optional[str] = None) -> NirImportError:
        return NirImportError(msg, file=self.file, node=node, field=fld)


# ------------------------------------------------------------------------------------------------ reading
def _to_py(v: Any) -> Any:
    """numpy arrays for tensors/lists, str for bytes; everything else unchanged."""
    if hasattr(v, "detach") and hasattr(v, "cpu"):  # torch tensor
        return v.detach().cpu().numpy()
    if isinstance(v, bytes):
        return v.decode("utf8")
    if isinstance(v, np.ndarray) and v.dtype.kind in "SO" and v.ndim == 0:
        return _to_py(v.item())
    if isinstance(v, (list, tuple)) and v and all(isinstance(x, (int, float, np.integer, np.floating)) for x in v):
        return np.asarray(v)
    return v


def _raw_from_nir(node: Any, ctx: _Ctx, name: str = "") -> _Raw:
    """Convert an in-memory ``nir`` node (possibly holding torch tensors) to a :class:`_Raw`."""
    import nir
    typ = type(node).__name__
    meta = dict(getattr(node, "metadata", None) or {}) if isinstance(getattr(node, "metadata", None), dict) else {}
    meta = {k: _to_py(v) for k, v in meta.items()}
    if isinstance(node, nir.NIRGraph):
        nodes = {str(k): _raw_from_nir(v, ctx, f"{name}.{k}" if name else str(k)) for k, v in node.nodes.items()}
        edges = [(_to_py(a), _to_py(b)) for a, b in node.edges]
        return _Raw("NIRGraph", nodes=nodes, edges=[(str(a), str(b)) for a, b in edges], metadata=meta)
    if typ not in NIR_TYPES:
        raise ctx.error(f"unsupported NIR node type '{typ}'; supported: {', '.join(NIR_TYPES)}", node=name or None,
                        fld="type")
    if typ == "Input":
        params = {"shape": (node.input_type or {}).get("input")}
    elif typ == "Output":
        params = {"shape": (node.output_type or {}).get("output")}
    else:
        params = {f.name: getattr(node, f.name) for f in dataclasses.fields(node)
                  if f.name not in ("input_type", "output_type", "metadata")}
        if typ == "Flatten":
            params["input_type"] = (node.input_type or {}).get("input")
    return _Raw(typ, {k: _to_py(v) for k, v in params.items()}, metadata=meta)


def _raw_from_h5(group: Any, ctx: _Ctx, name: str = "") -> _Raw:
    """Read one HDF5 node group (the layout of ``nir.write``) without nir's constructors or type checks."""
    import h5py
    if "type" not in group:
        raise ctx.error("HDF5 group has no 'type' dataset (not a NIR node)", node=name or None, fld="type")
    typ = _to_py(group["type"][()])
    if typ not in NIR_TYPES:
        raise ctx.error(f"unsupported NIR node type '{typ}'; supported: {', '.join(NIR_TYPES)}", node=name or None,
                        fld="type")
    meta: Dict[str, Any] = {}
    if "metadata" in group and isinstance(group["metadata"], h5py.Group):
        meta = {k: _to_py(v[()]) for k, v in group["metadata"].items() if isinstance(v, h5py.Dataset)}
    if typ == "NIRGraph":
        if "nodes" not in group or "edges" not in group:
            raise ctx.error("NIRGraph group needs 'nodes' and 'edges'", node=name or None, fld="nodes")
        nodes = {str(k): _raw_from_h5(v, ctx, f"{name}.{k}" if name else str(k)) for k, v in group["nodes"].items()}
        e = np.asarray(group["edges"][()], dtype=object)
        if e.size == 0:
            edges: List[Tuple[str, str]] = []
        elif e.ndim != 2 or e.shape[1] != 2:
            raise ctx.error(f"edges must be an (n, 2) array of names, got shape {e.shape}", node=name or None,
                            fld="edges")
        else:
            edges = [(str(_to_py(a)), str(_to_py(b))) for a, b in e]
        return _Raw("NIRGraph", nodes=nodes, edges=edges, metadata=meta)
    params = {str(k): _to_py(v[()]) for k, v in group.items()
              if k not in ("type", "metadata") and isinstance(v, h5py.Dataset)}
    return _Raw(typ, params, metadata=meta)


def _read_path(path: Path, ctx: _Ctx) -> Tuple[_Raw, str, Optional[str]]:
    """Read a .nir file: ``nir.read`` first, our own HDF5 reader when it fails. Returns (root, reader, version)."""
    import h5py
    if not path.exists():
        raise ctx.error("no such file")
    if path.is_dir():
        raise ctx.error("is a directory, not a NIR file")
    if not h5py.is_hdf5(str(path)):
        raise ctx.error("not an HDF5 file (NIR files are HDF5, written by nir.write)")
    version = None
    try:
        with h5py.File(str(path), "r") as f:
            if "version" in f:
                version = str(_to_py(f["version"][()]))
            has_node = "node" in f
    except OSError as exc:
        raise ctx.error(f"cannot open the HDF5 file: {exc}") from None
    if not has_node:
        raise ctx.error("HDF5 file has no 'node' group (not a NIR graph)", fld="node")
    from ..limits import check_hdf5_sizes
    check_hdf5_sizes(path)  # dataset shapes from the headers against the memory budget, before reading data
    import nir
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            graph = nir.read(str(path), type_check=False)
    except MemoryError:
        raise
    except Exception as exc:  # nir's constructors assert shapes, names, ... : read the groups ourselves
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        ctx.warn(f"nir.read rejected the file ({reason}); read its HDF5 groups directly")
        with h5py.File(str(path), "r") as f:
            return _raw_from_h5(f["node"], ctx), "h5py", version
    return _raw_from_nir(graph, ctx), "nir.read", version  # a bug here is ours: no fallback blaming nir


# ---------------------------------------------------------------------------------------------- flattening
def _resolve_edge_names(g: _Raw, prefix: str, ctx: _Ctx) -> List[Tuple[str, str]]:
    """The graph's edges with every endpoint naming a node of ``g`` (or ``sub.inner`` inside a subgraph).

    Old files name inner nodes of a nested graph without their prefix, or by an older name (the NIR paper's
    Braille subgraph has node ``lif1`` and edges to ``lif``). Unknown names are resolved when unambiguous: the
    graph's own name as a prefix, a dotted path into a subgraph, or the one node no edge mentions.
    """
    assert g.nodes is not None and g.edges is not None
    names = set(g.nodes)
    own = prefix[:-1].split(".")[-1] if prefix else ""

    def known(e: str) -> bool:
        if e in names:
            return True
        head, _, rest = e.partition(".")
        sub = g.nodes.get(head)
        return bool(rest) and sub is not None and sub.type == "NIRGraph" and rest in (sub.nodes or {})

    mapping: Dict[str, str] = {}
    missing = sorted({e for edge in g.edges for e in edge if not known(e)})
    for e in list(missing):
        if own and e.startswith(own + ".") and known(e[len(own) + 1:]):
            mapping[e] = e[len(own) + 1:]
    missing = [e for e in missing if e not in mapping]
    if missing:
        referenced = {mapping.get(e, e) for edge in g.edges for e in edge}
        unreferenced = sorted(n for n in names if n not in referenced)
        if len(missing) == 1 and len(unreferenced) == 1:
            mapping[missing[0]] = unreferenced[0]
        else:
            for e in missing:
                cands = [n for n in unreferenced if n.startswith(e) or e.startswith(n)]
                if len(cands) == 1:
                    mapping[e] = cands[0]
    for e in missing:
        if e not in mapping:
            bad = next(edge for edge in g.edges if e in edge)
            raise ctx.error(f"edge {bad[0]} -> {bad[1]} names node '{e}', which does not exist "
                            f"(nodes: {', '.join(sorted(names))})", node=prefix + e, fld="edges")
        ctx.warn(f"edge endpoint '{e}' names no node; resolved to '{mapping[e]}' (old NIR naming)",
                 node=prefix[:-1] if prefix else None)
    return [(mapping.get(a, a), mapping.get(b, b)) for a, b in g.edges]


def _flatten(g: _Raw, prefix: str, ctx: _Ctx, nodes: Dict[str, _Raw], edges: List[Tuple[str, str]],
             identity: Set[str]) -> None:
    """Append the nodes and edges of ``g`` (names prefixed) to ``nodes``/``edges``; inner I/O go to ``identity``."""
    assert g.nodes is not None
    resolved = _resolve_edge_names(g, prefix, ctx)
    sub_io: Dict[str, Tuple[List[str], List[str]]] = {}
    for name, node in g.nodes.items():
        full = prefix + name
        if node.type == "NIRGraph":
            _flatten(node, full + ".", ctx, nodes, edges, identity)
            assert node.nodes is not None
            ins = [full + "." + k for k, v in node.nodes.items() if v.type == "Input"]
            outs = [full + "." + k for k, v in node.nodes.items() if v.type == "Output"]
            identity.update(ins)
            identity.update(outs)
            sub_io[name] = (ins, outs)
        else:
            if full in nodes:
                raise ctx.error("appears twice after flattening nested graphs", node=full, fld="name")
            nodes[full] = node

    def ends(e: str, as_src: bool) -> List[str]:
        if e in sub_io:
            ins, outs = sub_io[e]
            lst = outs if as_src else ins
            if len(lst) != 1:
                raise ctx.error(f"subgraph has {len(lst)} {'Output' if as_src else 'Input'} nodes; an edge to "
                                f"the subgraph itself is ambiguous (name the inner node as '{e}.<name>')",
                                node=prefix + e, fld="edges")
            return lst
        return [prefix + e]

    for a, b in resolved:
        for s in ends(a, True):
            for d in ends(b, False):
                edges.append((s, d))


def _contract(nodes: Dict[str, Any], edges: List[Tuple[str, str]], drop: Iterable[str]) -> List[Tuple[str, str]]:
    """Remove pass-through nodes ``drop``, joining each predecessor to each successor."""
    out = list(dict.fromkeys(edges))
    for x in drop:
        preds = [a for a, b in out if b == x and a != x]
        succs = [b for a, b in out if a == x and b != x]
        out = [(a, b) for a, b in out if a != x and b != x]
        out.extend((a, b) for a in preds for b in succs)
        out = list(dict.fromkeys(out))
        nodes.pop(x, None)
    return out


# ------------------------------------------------------------------------------------------ shape inference
def _arr(v: Any) -> Optional[np.ndarray]:
    if v is None or isinstance(v, str):
        return None
    try:
        return np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError):
        return None


def _declared_shape(v: Any) -> Optional[Shape]:
    """A shape from the file; None when absent, empty, or holding zeros/None (unknown)."""
    if v is None:
        return None
    try:
        a = np.atleast_1d(np.asarray(v)).reshape(-1)
        if a.size == 0 or a.dtype == object:
            return None
        shape = tuple(int(s) for s in a.tolist())
    except (TypeError, ValueError):
        return None
    if any(s <= 0 for s in shape):
        return None
    return shape


class _Shapes:
    """Shape propagation over the flattened graph: each node's in and out shape, from its own parameters, its
    neighbours, and the declared shapes of Input/Output nodes (checked last, so a batch dim can be spotted)."""

    def __init__(self, nodes: Dict[str, _Raw], edges: List[Tuple[str, str]], identity: Set[str], ctx: _Ctx):
        self.nodes, self.edges, self.identity, self.ctx = nodes, edges, identity, ctx
        self.ins: Dict[str, Shape] = {}
        self.outs: Dict[str, Shape] = {}
        self.hint: Dict[str, Shape] = {}  # fallback shape of size-1 parameter nodes
        self.resolved: Dict[str, Dict[str, Any]] = {n: {} for n in nodes}  # per-node derived attributes
        for name, node in nodes.items():
            self._own(name, node)

    # -- per-node rules
    def _elementwise_shape(self, name: str, node: _Raw) -> None:
        big: Dict[str, Shape] = {}
        one_d = False
        for f in _ELEMENTWISE[node.type]:
            a = _arr(node.params.get(f))
            if a is None:
                continue
            if a.size > 1:
                big[f] = a.shape
            elif a.ndim >= 1:
                one_d = True
        shapes = set(big.values())
        if len(shapes) > 1:
            counts = {s: list(big.values()).count(s) for s in shapes}
            majority = max(counts, key=lambda s: counts[s])
            odd = next(k for k, v in big.items() if v != majority)
            detail = ", ".join(f"{k} {v}" for k, v in big.items())
            raise self.ctx.error(f"parameters have inconsistent shapes: {detail}", node=name, fld=odd)
        if shapes:
            s = shapes.pop()
            self.ins[name] = self.outs[name] = s
        elif one_d:
            self.hint[name] = (1,)

    def _own(self, name: str, node: _Raw) -> None:
        p, t = node.params, node.type
        if t in _ELEMENTWISE:
            self._elementwise_shape(name, node)
        elif t in ("Affine", "Linear"):
            w = _arr(p.get("weight"))
            if w is None:
                raise self.ctx.error("missing", node=name, fld="weight")
            if w.ndim != 2:
                raise self.ctx.error(f"expected a 2-D weight (n_out, n_in), got shape {w.shape}", node=name,
                                     fld="weight")
            self.ins[name], self.outs[name] = (w.shape[1],), (w.shape[0],)
        elif t in ("Conv1d", "Conv2d"):
            w = _arr(p.get("weight"))
            nd = 1 if t == "Conv1d" else 2
            if w is None or w.ndim != nd + 2:
                raise self.ctx.error(f"expected a {nd + 2}-D kernel, got {None if w is None else w.shape}",
                                     node=name, fld="weight")
            groups = int(np.asarray(p.get("groups", 1)).reshape(-1)[0])
            self.resolved[name]["groups"] = groups
            c_in = int(w.shape[1]) * groups
            spatial = _declared_shape(p.get("input_shape"))
            if spatial is not None:
                if len(spatial) == nd + 1 and spatial[0] == c_in:  # (C, H, W) given instead of (H, W)
                    spatial = spatial[1:]
                if len(spatial) != nd:
                    raise self.ctx.error(f"expected {nd} spatial sizes, got {spatial}", node=name, fld="input_shape")
                self._set_conv(name, (c_in,) + spatial)
        elif t == "Flatten":
            it = _declared_shape(p.get("input_type"))
            if it is not None:
                self.resolved[name]["declared_in"] = it
        elif t in ("SumPool2d", "AvgPool2d"):
            pass
        elif t in _IO:
            pass
        else:  # pragma: no cover - NIR_TYPES is checked when reading
            raise self.ctx.error(f"unsupported NIR node type '{t}'", node=name, fld="type")

    def _conv_geometry(self, name: str, node: _Raw, in_shape: Shape) -> Tuple[Tuple[int, ...], ...]:
        p = node.params
        nd = len(in_shape) - 1
        k = _arr(p["weight"]).shape[2:]  # type: ignore[union-attr]
        stride = self._ints(name, p.get("stride", 1), nd, "stride")
        dil = self._ints(name, p.get("dilation", 1), nd, "dilation")
        pad_raw = p.get("padding", 0)
        if isinstance(pad_raw, str):
            if pad_raw == "valid":
                pad = (0,) * nd
            elif pad_raw == "same":
                pads = []
                for kk, dd in zip(k, dil):
                    total = dd * (kk - 1)
                    if total % 2:
                        raise self.ctx.error(f"padding 'same' with kernel {tuple(k)} and dilation {dil} needs "
                                             "asymmetric padding, which the IR cannot represent", node=name,
                                             fld="padding")
                    pads.append(total // 2)
                pad = tuple(pads)
                if any(s != 1 for s in stride):
                    raise self.ctx.error("padding 'same' needs stride 1", node=name, fld="padding")
            else:
                raise self.ctx.error(f"padding must be 'same', 'valid' or integers, got {pad_raw!r}", node=name,
                                     fld="padding")
        else:
            pad = self._ints(name, pad_raw, nd, "padding")
        return stride, pad, dil

    def _ints(self, name: str, v: Any, nd: int, fld: str) -> Tuple[int, ...]:
        a = np.atleast_1d(np.asarray(v)).reshape(-1)
        try:
            a = a.astype(np.int64)
        except (TypeError, ValueError):
            raise self.ctx.error(f"expected integers, got {v!r}", node=name, fld=fld) from None
        if a.size == 1:
            a = np.repeat(a, nd)
        if a.size != nd:
            raise self.ctx.error(f"expected {nd} values, got {a.tolist()}", node=name, fld=fld)
        return tuple(int(x) for x in a)

    def _set_conv(self, name: str, in_shape: Shape) -> None:
        node = self.nodes[name]
        stride, pad, dil = self._conv_geometry(name, node, in_shape)
        w = _arr(node.params["weight"])
        assert w is not None
        out = [int(w.shape[0])]
        for n, kk, s, pp, dd in zip(in_shape[1:], w.shape[2:], stride, pad, dil):
            out.append((n + 2 * pp - dd * (kk - 1) - 1) // s + 1)
        self.resolved[name].update(stride=stride, padding=pad, dilation=dil)
        self.ins[name], self.outs[name] = in_shape, tuple(out)

    def _set_pool(self, name: str, in_shape: Shape) -> None:
        node = self.nodes[name]
        if len(in_shape) != 3:
            raise self.ctx.error(f"2-D pooling needs a (C, H, W) input, got {in_shape}", node=name,
                                 fld="input_shape")
        k = self._ints(name, node.params.get("kernel_size"), 2, "kernel_size")
        s = self._ints(name, node.params.get("stride", k), 2, "stride")
        pd = self._ints(name, node.params.get("padding", 0), 2, "padding")
        out = (in_shape[0],) + tuple((n + 2 * pp - kk) // ss + 1 for n, kk, ss, pp in zip(in_shape[1:], k, s, pd))
        self.resolved[name].update(kernel_size=k, stride=s, padding=pd)
        self.ins[name], self.outs[name] = in_shape, out

    def _flatten_dims(self, name: str, in_shape: Shape) -> Tuple[int, int]:
        p = self.nodes[name].params
        s = int(np.asarray(p.get("start_dim", 1)).reshape(-1)[0])
        e = int(np.asarray(p.get("end_dim", -1)).reshape(-1)[0])
        return s, e

    def _set_flatten(self, name: str, in_shape: Shape, succ_in: Optional[Shape] = None) -> None:
        s, e = self._flatten_dims(name, in_shape)
        nd = len(in_shape)

        def out_for(s: int, e: int) -> Optional[Shape]:
            s2, e2 = (s + nd if s < 0 else s), (e + nd if e < 0 else e)
            if not (0 <= s2 <= e2 < nd):
                return None
            return in_shape[:s2] + (int(np.prod(in_shape[s2:e2 + 1])),) + in_shape[e2 + 1:]

        out = out_for(s, e)
        # NIR's default start_dim=1 and torch exports count the batch dimension: shift when that is what fits.
        if s > 0 and (out is None or (succ_in is not None and out != succ_in)):
            alt = out_for(s - 1, e - 1 if e > 0 else e)
            if alt is not None and (succ_in is None or alt == succ_in):
                self.ctx.warn(f"Flatten dims {s}..{e} count a batch dimension; using {s - 1}..{e - 1 if e > 0 else e}"
                              f" on the per-sample shape {in_shape}", node=name)
                s, e, out = s - 1, (e - 1 if e > 0 else e), alt
        if out is None:
            raise self.ctx.error(f"dims {s}..{e} out of range for input shape {in_shape}", node=name,
                                 fld="start_dim")
        self.resolved[name].update(start_dim=s, end_dim=e)
        self.ins[name], self.outs[name] = in_shape, out

    # -- propagation
    def _follows_input(self, name: str) -> bool:
        """Shape-preserving nodes sized by their neighbours (I/O nodes are settled in :meth:`_io_pass`)."""
        return self.nodes[name].type in _ELEMENTWISE and name not in self.identity

    def _accept_in(self, name: str, shape: Shape) -> bool:
        """Set a node's input shape from a predecessor; True when something changed."""
        if name in self.ins:
            return False
        t = self.nodes[name].type
        if self._follows_input(name):
            self.ins[name] = self.outs[name] = shape
        elif t in ("Conv1d", "Conv2d"):
            self._set_conv(name, shape)
        elif t in ("SumPool2d", "AvgPool2d"):
            self._set_pool(name, shape)
        elif t == "Flatten":
            declared = self.resolved[name].get("declared_in")
            if declared is not None and declared != shape:
                if len(declared) == len(shape) + 1 and declared[1:] == shape:
                    self.ctx.warn(f"Flatten input_type {declared} has a leading batch dimension; dropped", node=name)
                else:
                    raise self.ctx.error(f"input_type {declared} does not match the incoming shape {shape}",
                                         node=name, fld="input_type")
            succ = [self.ins.get(b) for a, b in self.edges if a == name]
            self._set_flatten(name, shape, next((x for x in succ if x is not None), None))
        else:
            return False
        return True

    def _accept_out(self, name: str, shape: Shape) -> bool:
        """Set a shape-preserving node's shape from a successor."""
        if name in self.outs or not self._follows_input(name):
            return False
        self.ins[name] = self.outs[name] = shape
        return True

    def _propagate(self) -> None:
        changed = True
        while changed:
            changed = False
            for a, b in self.edges:
                if a in self.outs and b not in self.ins:
                    changed |= self._accept_in(b, self.outs[a])
                if b in self.ins and a not in self.outs:
                    changed |= self._accept_out(a, self.ins[b])

    def _io_pass(self) -> bool:
        """Fix the shape of Input/Output/pass-through nodes from their declared shapes and neighbours."""
        changed = False
        for name, node in self.nodes.items():
            if not (node.type in _IO or name in self.identity) or name in self.outs:
                continue
            declared = _declared_shape(node.params.get("shape"))
            implied: Optional[Shape] = None
            if node.type != "Output" or name in self.identity:
                implied = next((self.ins[b] for a, b in self.edges if a == name and b in self.ins), None)
            if implied is None and (node.type != "Input" or name in self.identity):
                implied = next((self.outs[a] for a, b in self.edges if b == name and a in self.outs), None)
            shape = self._reconcile(name, declared, implied)
            if shape is None:
                continue
            self.ins[name] = self.outs[name] = shape
            changed = True
        return changed

    def _reconcile(self, name: str, declared: Optional[Shape], implied: Optional[Shape]) -> Optional[Shape]:
        if implied is None:
            return declared
        if declared is None or declared == implied:
            return implied
        if len(declared) == len(implied) + 1 and declared[1:] == implied:
            self.ctx.warn(f"shape {declared} has a leading batch dimension; using {implied}", node=name)
            return implied
        if int(np.prod(declared)) == int(np.prod(implied)) and len(declared) != len(implied):
            self.ctx.warn(f"declared shape {declared} reshaped to its neighbour's {implied}", node=name)
            return implied
        raise self.ctx.error(f"declared shape {declared} does not match the connected node's shape {implied}",
                             node=name, fld="shape")

    def _settle(self) -> None:
        self._propagate()
        while self._io_pass():
            self._propagate()

    def run(self) -> None:
        self._settle()
        # last resorts, one node at a time: a Flatten's declared input_type, a size-1 parameter node's (1,)
        for name, node in self.nodes.items():
            if node.type == "Flatten" and name not in self.ins and "declared_in" in self.resolved[name]:
                self._accept_in(name, self.resolved[name]["declared_in"])
                self._settle()
        for name, hint in self.hint.items():
            if name not in self.outs:
                self.ins[name] = self.outs[name] = hint
                self._settle()
        for name, node in self.nodes.items():
            if name not in self.outs or name not in self.ins:
                what = "shape" if node.type in _ELEMENTWISE or node.type in _IO else "input_shape"
                raise self.ctx.error(f"cannot resolve the {what}: no parameter, declared shape or connected node "
                                     "gives it", node=name, fld=what)
        for a, b in self.edges:
            if self.outs[a] != self.ins[b]:
                raise self.ctx.error(f"receives shape {self.outs[a]} from '{a}' but expects {self.ins[b]}",
                                     node=b, fld="input_shape")


# ------------------------------------------------------------------------------------------------ mapping
def _param(node: _Raw, name: str, f: str, shape: Shape, ctx: _Ctx, default: Optional[float] = None,
           warn_default: bool = False) -> np.ndarray:
    v = node.params.get(f)
    a = _arr(v)
    if a is None:
        if default is None:
            raise ctx.error("missing", node=name, fld=f)
        if warn_default:
            ctx.warn(f"has no '{f}'; using {default:g}", node=name)
        return np.full(shape, float(default))
    if a.shape != shape:
        if a.size == 1:
            return np.full(shape, float(a.reshape(())))
        try:
            return np.broadcast_to(a, shape).astype(np.float64)
        except ValueError:
            raise ctx.error(f"has shape {a.shape}, the node's shape is {shape}", node=name, fld=f) from None
    return a.astype(np.float64)


def _build_node(name: str, node: _Raw, sh: _Shapes, ctx: _Ctx, preset: Optional[Preset], dt: Optional[float],
                reset_mode: str, tau_dt: Optional[float] = None) -> ir.Node:
    """One IR node; ``tau_dt``: the dt a preset decodes the file's time constants with (the source framework's,
    see :meth:`Preset.decode_dt`), ``dt``: the step the graph runs at."""
    t, p = node.type, node.params
    shape_in, shape_out = sh.ins[name], sh.outs[name]
    res = sh.resolved[name]

    def prm(f: str, default: Optional[float] = None, warn_default: bool = False) -> np.ndarray:
        return _param(node, name, f, shape_out, ctx, default, warn_default)

    def tau(f: str) -> np.ndarray:
        v = prm(f)
        return preset.convert_tau(v, tau_dt if tau_dt is not None else dt) if preset is not None else v

    if t == "Input":
        return ir.Input(name, shape=shape_out)
    if t == "Output":
        return ir.Output(name, shape=shape_out)
    if t in ("Affine", "Linear"):
        w = _arr(p["weight"])
        assert w is not None
        if t == "Linear":
            return ir.Linear(name, weight=ir.Dense(w))
        b = _arr(p.get("bias"))
        if b is not None and b.size == w.shape[0]:
            b = b.reshape(-1)
        return ir.Affine(name, weight=ir.Dense(w), bias=np.zeros(w.shape[0]) if b is None else b)
    if t == "Scale":
        return ir.Scale(name, scale=prm("scale"), shape=shape_out)
    if t in ("Conv1d", "Conv2d"):
        w = _arr(p["weight"])
        b = _arr(p.get("bias"))
        bias = np.zeros(w.shape[0]) if b is None else b  # type: ignore[union-attr]
        if t == "Conv2d":
            return ir.Conv2d(name, weight=w, bias=bias, stride=res["stride"], padding=res["padding"],
                             dilation=res["dilation"], groups=res["groups"], input_shape=shape_in)
        return ir.Conv1d(name, weight=w, bias=bias, stride=res["stride"][0], padding=res["padding"][0],
                         dilation=res["dilation"][0], groups=res["groups"], input_shape=shape_in)
    if t in ("SumPool2d", "AvgPool2d"):
        cls = ir.SumPool2d if t == "SumPool2d" else ir.AvgPool2d
        return cls(name, kernel_size=res["kernel_size"], stride=res["stride"], padding=res["padding"],
                   input_shape=shape_in)
    if t == "Flatten":
        return ir.Flatten(name, input_shape=shape_in, start_dim=res["start_dim"], end_dim=res["end_dim"])
    if t == "Delay":
        return ir.Delay(name, delay=prm("delay"), shape=shape_out)
    if t == "Threshold":
        return ir.Threshold(name, threshold=prm("threshold"), shape=shape_out)
    if t == "I":
        return ir.Integrator(name, r=prm("r", 1.0, True), shape=shape_out)
    if t == "LIF":
        lif = dict(tau=tau("tau"), r=prm("r", 1.0, True))
        if preset is not None:
            lif = preset.exact_to_euler(lif, dt)
        return ir.LIF(name, v_leak=prm("v_leak", 0.0, True), v_threshold=prm("v_threshold"),
                      v_reset=prm("v_reset", 0.0), reset_mode=reset_mode, shape=shape_out, **lif)
    if t == "IF":
        return ir.IF(name, r=prm("r", 1.0, True), v_threshold=prm("v_threshold"), v_reset=prm("v_reset", 0.0),
                     reset_mode=reset_mode, shape=shape_out)
    if t == "LI":
        li = dict(tau=tau("tau"), r=prm("r", 1.0, True))
        if preset is not None and preset.decay == "exp_norm":
            li = preset.exact_to_euler(li, dt, integrator=True)
        return ir.LI(name, v_leak=prm("v_leak", 0.0, True), shape=shape_out, **li)
    if t in ("CubaLIF", "CubaLI"):
        tau_syn = tau("tau_syn")
        w_in = prm("w_in", 1.0)
        if preset is not None:
            w_in = preset.convert_w_in(w_in, tau_syn, dt)
        common = dict(tau_syn=tau_syn, tau_mem=tau("tau_mem"), r=prm("r", 1.0, True), w_in=w_in)
        if preset is not None:
            common = preset.exact_to_euler(common, dt)
        common.update(v_leak=prm("v_leak", 0.0, True), shape=shape_out)
        if t == "CubaLI":
            return ir.CubaLI(name, **common)
        return ir.CubaLIF(name, v_threshold=prm("v_threshold"), v_reset=prm("v_reset", 0.0), reset_mode=reset_mode,
                          **common)
    raise ctx.error(f"unsupported NIR node type '{t}'", node=name, fld="type")  # pragma: no cover


# ------------------------------------------------------------------------------------------------ checks
def _check_values(graph_nodes: Mapping[str, ir.Node], dt: Optional[float], ctx: _Ctx,
                  preset: Optional[Preset] = None) -> None:
    """Warnings for values that load but look like a framework convention mix-up."""
    taus = [np.asarray(getattr(n, f)) for n in graph_nodes.values() for f in _TAU_FIELDS if hasattr(n, f)]
    if preset is None and taus and max(float(t.max()) for t in taus) < 1e-4:
        ctx.warn(f"every time constant is below 0.1 ms (largest {max(float(t.max()) for t in taus):g} s): they look "
                 f"like tau·dt, what Norse ≥ 1.1 writes; load the file with preset='norse' (and the dt Norse "
                 f"exported with as source_dt, default 1e-3)")
    for name, node in graph_nodes.items():
        for f in _TAU_FIELDS:
            if not hasattr(node, f):
                continue
            tau = np.asarray(getattr(node, f))
            if dt is not None and tau.min() < dt:
                ctx.warn(f"{f} {tau.min():g} s is below dt={dt:g} s (forward Euler overshoots when dt/tau > 1); "
                         "the file may hold tau·dt (Norse ≥ 1.1, try preset='norse') or dt is wrong", node=name)
            if tau.min() >= 1.0 and np.allclose(tau, np.round(tau)) and (dt is None or dt < 1.0):
                ctx.warn(f"{f} values ({tau.min():g}..{tau.max():g}) are whole numbers ≥ 1: they look like time "
                         "steps (Sinabs convention, try preset='sinabs'), not seconds", node=name)
        th = getattr(node, "v_threshold", None)
        if th is None and isinstance(node, ir.Threshold):
            th = node.threshold
        if th is not None and np.any(np.asarray(th) <= 0):
            ctx.warn(f"threshold ≤ 0 ({np.asarray(th).min():g}): the neuron fires at rest", node=name)
        if isinstance(node, ir.Delay) and dt is not None:
            steps = np.asarray(node.delay) / dt
            if not np.allclose(steps, np.rint(steps), rtol=0, atol=1e-6):
                ctx.warn(f"delays ({np.min(steps):g}..{np.max(steps):g} steps of dt={dt:g} s) are not whole "
                         "steps; simulators round them", node=name)
        if isinstance(node, (ir.LIF, ir.CubaLIF, ir.IF)) and np.any(node.v_reset >= node.v_threshold):
            ctx.warn("v_reset ≥ v_threshold: the neuron fires again right after every reset", node=name)


# ------------------------------------------------------------------------------------------------ entry
def _topo_order(names: Sequence[str], edges: Sequence[Tuple[str, str]], inputs: Sequence[str]) -> List[str]:
    """Node names ordered by a depth-first walk from the inputs (edge order), the rest after, for readable graphs."""
    succ: Dict[str, List[str]] = {n: [] for n in names}
    for a, b in edges:
        succ[a].append(b)
    seen: Dict[str, None] = {}
    for root in list(inputs) + list(names):
        stack = [root]
        while stack:
            n = stack.pop()
            if n in seen:
                continue
            seen[n] = None
            stack.extend(reversed(succ[n]))
    return list(seen)


def _delayed_edges_from_metadata(meta: Mapping[str, Any], edges: List[Tuple[str, str]],
                                 ctx: _Ctx) -> Optional[List[Tuple[str, str, int]]]:
    spec = meta.get("delayed_edges")
    if spec is None:
        return None
    listed = {tuple(s.split("->", 1)) for s in str(spec).split(";") if "->" in s}
    if not listed <= set(edges):
        ctx.warn("metadata 'delayed_edges' names edges the graph does not have; delays found by cycle detection")
        return None
    return [(a, b, 1 if (a, b) in listed else 0) for a, b in edges]


def _infer_io(root: _Raw, ctx: _Ctx) -> None:
    """A top-level graph without Input (Output) nodes gets one ``input_<node>`` (``output_<node>``) per node that no
    edge enters (leaves), as ``nir.NIRGraph`` infers them (nir 1.0.8 ``_update_input_output_types``); our own
    HDF5 reader sees the file as written."""
    assert root.nodes is not None and root.edges is not None
    types = {n: r.type for n, r in root.nodes.items()}

    def named(ends: Set[str]) -> Set[str]:  # an endpoint names node n itself or "n.<inner>" of a subgraph n
        return {n for n in root.nodes if any(e == n or e.startswith(n + ".") for e in ends)}
    srcs = named({a for a, _ in root.edges})
    dsts = named({b for _, b in root.edges})
    if "Input" not in types.values():
        for n in [n for n in root.nodes if n not in dsts and types[n] != "Output"]:
            root.nodes[f"input_{n}"] = _Raw("Input")
            root.edges.append((f"input_{n}", n))
            ctx.warn(f"the graph has no Input node; '{n}' (no edge enters it) is fed by the inferred Input "
                     f"'input_{n}', as nir.NIRGraph infers it")
    if "Output" not in types.values():
        for n in [n for n in list(root.nodes) if n not in srcs and types.get(n) not in ("Input", None)]:
            root.nodes[f"output_{n}"] = _Raw("Output")
            root.edges.append((n, f"output_{n}"))
            ctx.warn(f"the graph has no Output node; '{n}' (no edge leaves it) feeds the inferred Output "
                     f"'output_{n}', as nir.NIRGraph infers it")


def load(source: Union[str, os.PathLike, Any], dt: Optional[float] = None, reset: Optional[str] = None,
         preset: Optional[str] = None, source_dt: Optional[float] = None) -> ir.Graph:
    """Load a NIR graph into the IR.

    Parameters
    ----------
    source: path of a ``.nir`` file, or an in-memory ``nir.NIRGraph`` (e.g. straight from an exporter).
    dt: simulation step in seconds (NIR does not store it). Default: the preset's, else the file's metadata
        (written by :func:`toolchain.nir_io.export`), else None (a continuous-time graph).
    reset: ``"zero"`` or ``"subtract"`` for every spiking node (NIR does not store it). Default: the preset's,
        else the file's per-node metadata, else ``"zero"``.
    preset: ``"snntorch"``, ``"norse"``, ``"sinabs"``, ``"rockpool"``, ``"lava"`` or None: the framework's
        conventions (dt, reset, tau units, executor options), see :mod:`toolchain.nir_io.presets`.
    source_dt: the step the source framework exported with, for presets whose file holds time constants in
        its steps (Norse writes tau·dt): default the file's metadata ``source_dt`` (or ``dt``), else the preset's
        own default — never the target ``dt``, so that ``--dt 1e-4`` does not rescale Norse's time constants.

    Returns a verified :class:`toolchain.ir.Graph`. ``graph.metadata`` holds ``file``, ``preset``, ``dt``,
    ``reset``, ``reader`` (``"nir.read"``, ``"h5py"`` or ``"NIRGraph"``), ``nir_version``, ``reset_timing`` (used by
    :func:`toolchain.sim.float.simulate_float`), ``scaling`` and ``warnings``.
    Raises :class:`NirImportError`/:class:`GraphError` naming the file, node and field.
    """
    is_path = isinstance(source, (str, os.PathLike))
    file = str(source) if is_path else None
    ctx = _Ctx(file)
    try:
        if reset is not None and reset not in ir.RESET_MODES:
            raise ctx.error(f"reset must be one of {ir.RESET_MODES}, got {reset!r}", fld="reset")
        p, dt, reset = resolve(preset, dt, reset)
        if source_dt is not None and not (float(source_dt) > 0 and np.isfinite(float(source_dt))):
            raise ctx.error(f"source_dt must be a positive number of seconds, got {source_dt}", fld="source_dt")
        if dt is not None and not (float(dt) > 0 and np.isfinite(float(dt))):
            raise ctx.error(f"dt must be a positive number of seconds, got {dt}", fld="dt")
        version = None
        if is_path:
            root, reader, version = _read_path(Path(source), ctx)
        else:
            import nir
            if not isinstance(source, nir.NIRNode):
                raise ctx.error(f"expected a path or a nir.NIRGraph, got {type(source).__name__}")
            root, reader = _raw_from_nir(source, ctx), "NIRGraph"
        if root.type != "NIRGraph":  # a single node: wrap it with an input and an output
            root = _Raw("NIRGraph", nodes={"input": _Raw("Input"), "node": root, "output": _Raw("Output")},
                        edges=[("input", "node"), ("node", "output")])
        _infer_io(root, ctx)
        file_meta = dict(root.metadata)
        if dt is None and "dt" in file_meta:
            dt = float(np.asarray(file_meta["dt"]))
        tau_dt = p.decode_dt(dt, source_dt, file_meta) if p is not None else None
        nodes: Dict[str, _Raw] = {}
        edges: List[Tuple[str, str]] = []
        identity: Set[str] = set()
        _flatten(root, "", ctx, nodes, edges, identity)
        edges = list(dict.fromkeys(edges))
        for a, b in edges:
            for e in (a, b):
                if e not in nodes:
                    raise ctx.error(f"edge {a} -> {b}: node '{e}' does not exist", node=e, fld="edges")
        shapes = _Shapes(nodes, edges, identity, ctx)
        shapes.run()
        edges = _contract(nodes, edges, [n for n in nodes if n in identity])
        inputs = [n for n, v in nodes.items() if v.type == "Input"]
        order = _topo_order(list(nodes), edges, inputs)
        ir_nodes: Dict[str, ir.Node] = {}
        modes: Dict[str, str] = {}
        for name in order:
            raw = nodes[name]
            mode = reset or str(raw.metadata.get("reset_mode", "zero"))
            if raw.type in _SPIKING:
                if mode not in ir.RESET_MODES:
                    raise ctx.error(f"reset_mode metadata {mode!r} is not one of {ir.RESET_MODES}", node=name,
                                    fld="reset_mode")
                modes[name] = mode
            ir_nodes[name] = _build_node(name, raw, shapes, ctx, p, dt, mode, tau_dt)
        _check_values(ir_nodes, dt, ctx, p)
        explicit = _delayed_edges_from_metadata(file_meta, edges, ctx)
        mode_set = set(modes.values())
        metadata = {
            "file": file, "preset": p.name if p else None, "dt": dt, "source_dt": tau_dt,
            "reset": (mode_set.pop() if len(mode_set) == 1 else ("mixed" if mode_set else (reset or "zero"))),
            "reader": reader, "nir_version": version,
            "reset_timing": p.reset_timing if p else "immediate",
            "scaling": p.scaling() if p else {}, "warnings": list(ctx.warnings),
        }
        graph = ir.Graph(ir_nodes, explicit if explicit is not None else edges, dt=dt, metadata=metadata)
        ir.verify(graph, "import")
    except NirImportError as exc:
        if exc.file is None and file is not None:
            raise NirImportError(exc.message, file=file, node=exc.node, field=exc.field) from exc
        raise
    except GraphError as exc:
        if exc.file is None and file is not None:
            raise GraphError(exc.message, file=file, node=exc.node, field=exc.field) from exc
        raise
    except ToolchainError:
        raise
    except (KeyError, ValueError, TypeError, IndexError, AttributeError) as exc:  # malformed content
        raise NirImportError(f"malformed NIR content: {type(exc).__name__}: {exc}", file=file) from exc
    for msg in ctx.warnings:
        warnings.warn(f"{file + ': ' if file else ''}{msg}", NirImportWarning, stacklevel=2)
    return graph
