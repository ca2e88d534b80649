"""Size and sanity checks that run *before* anything large is read or allocated.

* :func:`memory_budget` — the bytes this process may still allocate: the smallest of the machine's available
  memory, the address-space limit (``ulimit -v``) less what the process already maps, and ``SNNC_MEMORY_LIMIT``
  (bytes, or with a ``K``/``M``/``G`` suffix) when set.
* :func:`check_hdf5_sizes` — a NIR (HDF5) file's dataset shapes, read from its headers only, against the budget.
* :func:`check_graph` — graph defects that would make a pass loop or fail obscurely (a cycle with no neuron
  population, a neuron with ``r = 0``), for ``snnc inspect`` and the compiler alike.
* :func:`check_graph_fits` — a graph's totals (neurons, stored synapses, cores) against the target's totals and
  the compiler's memory estimate against the budget, before any pass allocates.
* :func:`check_simulation_size` — batch x steps x recorded state of a simulation against the budget.

Every check raises a :class:`~toolchain.errors.ToolchainError` subclass whose one line names the file, node or
field, the need and the limit.
"""
from __future__ import annotations

import os
import resource
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np

from .errors import GraphError, InputError, NirImportError, ResourceError

__all__ = ["memory_budget", "format_bytes", "check_hdf5_sizes", "check_nir_compile_size", "check_graph", "check_graph_fits",
           "check_simulation_size", "simulation_bytes", "linear_cycles", "LOAD_BYTES_PER_ELEMENT",
           "COMPILE_BYTES_PER_WEIGHT"]

#: bytes of memory one stored dataset element costs while a NIR file is read (nir.read's array, our float64
#: copy, the IR node's array; measured ~20 on a 1e7-weight Affine)
LOAD_BYTES_PER_ELEMENT = 24
#: bytes of memory one weight costs while compiling (normalise/fuse copies, quantise's float64 and integer
#: arrays, the storage; measured ~48 on a 1e7-weight Affine: 726 MB peak)
COMPILE_BYTES_PER_WEIGHT = 64


def format_bytes(n: float) -> str:
    """``1.5 GiB`` style."""
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"  # pragma: no cover


def _parse_bytes(text: str) -> Optional[int]:
    text = text.strip().upper().rstrip("B").rstrip("I")
    mult = {"K": 2 ** 10, "M": 2 ** 20, "G": 2 ** 30, "T": 2 ** 40}
    try:
        if text and text[-1] in mult:
            return int(float(text[:-1]) * mult[text[-1]])
        return int(float(text))
    except ValueError:
        return None


def _meminfo_available() -> Optional[int]:
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _vm_size() -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def memory_budget() -> Tuple[int, str]:
    """``(bytes this process may still allocate, what limits it)``."""
    cands: List[Tuple[int, str]] = []
    avail = _meminfo_available()
    if avail is not None:
        cands.append((avail, "the machine's available memory"))
    for lim, name in ((resource.RLIMIT_AS, "the address-space limit (ulimit -v)"),
                      (resource.RLIMIT_DATA, "the data-segment limit (ulimit -d)")):
        soft, _ = resource.getrlimit(lim)
        if soft != resource.RLIM_INFINITY:
            cands.append((max(soft - _vm_size(), 0), name))
    env = os.environ.get("SNNC_MEMORY_LIMIT")
    if env:
        v = _parse_bytes(env)
        if v is not None:
            cands.append((v, "SNNC_MEMORY_LIMIT"))
    if not cands:
        return 2 ** 62, "no known limit"
    return min(cands)


# --------------------------------------------------------------------------------------------------- files
def _hdf5_datasets(path: Path) -> List[Tuple[str, Tuple[int, ...], int]]:
    """``(dataset path, shape, itemsize)`` of every dataset, from the headers only (no data is read)."""
    import h5py
    out: List[Tuple[str, Tuple[int, ...], int]] = []

    def visit(name: str, obj) -> None:
        if isinstance(obj, h5py.Dataset):
            shape = tuple(int(s) for s in (obj.shape or ()))
            try:
                itemsize = int(obj.dtype.itemsize)
            except (TypeError, ValueError):
                itemsize = 8
            out.append((name, shape, max(itemsize, 1)))

    with h5py.File(str(path), "r") as f:
        f.visititems(visit)
    return out


def _node_field(dataset: str) -> Tuple[Optional[str], str]:
    """``node/nodes/fc/weight`` -> ("fc", "weight"); nested subgraphs are joined with dots."""
    parts = dataset.split("/")
    field = parts[-1]
    names = [parts[i + 1] for i in range(len(parts) - 1) if parts[i] == "nodes" and i + 1 < len(parts) - 1]
    return (".".join(names) or None), field


def check_hdf5_sizes(path: "str | os.PathLike", budget: Optional[int] = None) -> None:
    """Refuse a NIR file whose datasets, once read, would not fit in memory (judged from the shapes in its
    headers, before any data is read). Raises :class:`NirImportError` naming the largest dataset."""
    path = Path(path)
    try:
        sets = _hdf5_datasets(path)
    except (OSError, RuntimeError, KeyError, ValueError) as exc:  # h5py's errors on a damaged file
        raise NirImportError(f"cannot read the HDF5 file's structure (damaged or truncated?): {exc}",
                             file=str(path)) from None
    if not sets:
        return
    if budget is None:
        budget, why = memory_budget()
    else:
        why = "the given budget"
    elements = [int(np.prod(s, dtype=np.float64)) if s else 1 for _, s, _ in sets]
    need = sum(e * max(LOAD_BYTES_PER_ELEMENT, isz) for e, (_, _, isz) in zip(elements, sets))
    if need > budget:
        k = int(np.argmax(elements))
        node, field = _node_field(sets[k][0])
        raise NirImportError(
            f"reading this file needs about {format_bytes(need)} of memory (largest dataset: shape "
            f"{sets[k][1]}, {elements[k]:,} elements), more than the {format_bytes(budget)} available "
            f"(limit: {why})", file=str(path), node=node, field=field)


#: NIR node types that are neuron populations (their parameter arrays have one entry per neuron)
NIR_NEURON_TYPES = ("LIF", "CubaLIF", "IF", "LI", "CubaLI", "Integrator")


def _nir_neurons(path: Path) -> List[Tuple[str, int]]:
    """``(node, neurons)`` of every neuron node of a NIR file, from dataset headers (and the tiny type strings)."""
    import h5py
    out: List[Tuple[str, int]] = []

    def visit(name: str, obj) -> None:
        if isinstance(obj, h5py.Group) and "type" in obj and isinstance(obj["type"], h5py.Dataset):
            t = obj["type"][()]
            t = t.decode("utf8", "replace") if isinstance(t, bytes) else str(t)
            if t in NIR_NEURON_TYPES:
                sizes = [int(np.prod(v.shape, dtype=np.float64)) for k, v in obj.items()
                         if k != "type" and isinstance(v, h5py.Dataset) and v.shape]
                out.append((_node_field(name + "/x")[0] or name, max(sizes or [0])))

    with h5py.File(str(path), "r") as f:
        f.visititems(visit)
    return out


def _too_many_neurons(neurons: int, spec, node: str, count: int) -> ResourceError:
    """The error for more neurons than the whole target holds (field ``cores``; ``need``/``limit`` in cores, as
    the partition pass reports a network that needs more cores than there are)."""
    need = -(-neurons // spec.neurons_per_core)
    err = ResourceError(f"needs at least {need:,} cores for its {neurons:,} neurons ({spec.neurons_per_core} per "
                        f"core); target '{spec.name}' has {spec.total_cores:,} ({spec.chips} chips x "
                        f"{spec.cores_per_chip} cores, at most {spec.total_cores * spec.neurons_per_core:,} neurons; "
                        f"largest population: '{node}' with {count:,}); suggestion: prune, split over targets or use "
                        f"a larger system", node=node, field="cores")
    err.resource, err.need, err.limit = "cores", need, spec.total_cores  # type: ignore[attr-defined]
    return err


def check_nir_compile_size(path: "str | os.PathLike", spec=None, budget: Optional[int] = None) -> None:
    """Refuse, from the headers alone and before the file is read, a NIR file whose weights the compiler could
    not hold (:data:`COMPILE_BYTES_PER_WEIGHT` per stored weight element) or, with a target ``spec``, whose
    neurons exceed the whole target."""
    path = Path(path)
    try:
        sets = [(n, s) for n, s, _ in _hdf5_datasets(path) if n.rsplit("/", 1)[-1] == "weight"]
        neurons = _nir_neurons(path) if spec is not None else []
    except (OSError, RuntimeError, KeyError, ValueError, TypeError):
        return  # not readable as HDF5 (or damaged): the loader says why
    if neurons:
        total = sum(c for _, c in neurons)
        if total > spec.total_cores * spec.neurons_per_core:
            node, count = max(neurons, key=lambda t: t[1])
            err = _too_many_neurons(total, spec, node, count)
            new = ResourceError(err.message, file=str(path), node=node, field="cores")
            new.resource, new.need, new.limit = err.resource, err.need, err.limit  # type: ignore[attr-defined]
            raise new
    if not sets:
        return
    counts = [int(np.prod(s, dtype=np.float64)) if s else 1 for _, s in sets]
    need = sum(counts) * COMPILE_BYTES_PER_WEIGHT
    if budget is None:
        budget, why = memory_budget()
    else:
        why = "the given budget"
    if need > budget:
        k = int(np.argmax(counts))
        node, field = _node_field(sets[k][0])
        raise ResourceError(f"compiling needs about {format_bytes(need)} of memory for {sum(counts):,} weights "
                            f"(largest: shape {sets[k][1]}), more than the {format_bytes(budget)} available "
                            f"(limit: {why}); prune the weights or store them sparse", file=str(path), node=node,
                            field=field)


# --------------------------------------------------------------------------------------------------- graphs
def linear_cycles(graph) -> List[List[str]]:
    """Cycles of the graph that pass through no neuron population (each as a list of node names)."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components
    names = [n for n in graph.nodes if not graph[n].is_neuron]
    idx = {n: i for i, n in enumerate(names)}
    src, dst, self_loops = [], [], []
    for e in graph.edges:
        if e.src in idx and e.dst in idx:
            if e.src == e.dst:
                self_loops.append([e.src])
            src.append(idx[e.src])
            dst.append(idx[e.dst])
    if not src:
        return self_loops
    m = csr_matrix((np.ones(len(src)), (src, dst)), shape=(len(names), len(names)))
    _, labels = connected_components(m, directed=True, connection="strong")
    comps: dict = {}
    for n, lab in zip(names, labels):
        comps.setdefault(int(lab), []).append(n)
    cycles = [c for c in comps.values() if len(c) > 1]
    cycles += [c for c in self_loops if not any(c[0] in big for big in cycles)]
    return cycles


def check_graph(graph) -> None:
    """Defects no pass can handle: a cycle with no neuron population on it (synapses feeding themselves: the
    sum never settles), a neuron whose input resistance ``r`` is 0 (it can never receive input)."""
    for cyc in linear_cycles(graph):
        kinds = ", ".join(f"{n} ({graph[n].kind})" for n in cyc)
        raise GraphError(f"a cycle with no neuron population on it: {kinds}; every recurrent loop must pass "
                         f"through a neuron (LIF, CubaLIF, IF, LI, ...)", node=cyc[0], field="edges")
    for node in graph:
        if not node.is_neuron:
            continue
        r = getattr(node, "r", None)
        if isinstance(r, np.ndarray) and r.size and np.any(r == 0):
            bad = int(np.flatnonzero(np.asarray(r).reshape(-1) == 0)[0])
            raise GraphError(f"r = 0 at neuron {bad}: the neuron can never receive input (the input is scaled "
                             f"by r); use r > 0 or remove the neuron", node=node.name, field="r")


def _weight_elements(node) -> int:
    """Elements the compiler will hold for a node's weights (dense size for Dense storage, nnz otherwise)."""
    from .ir.graph import synapse_count
    w = getattr(node, "weight", None)
    if w is None:
        return 0
    kind = getattr(w, "kind", None)
    shape = getattr(w, "shape", None)
    if kind == "dense" and shape is not None:
        return int(np.prod(shape, dtype=np.float64))
    try:
        return int(synapse_count(node))
    except (TypeError, ValueError, AttributeError):
        return int(np.asarray(w).size) if isinstance(w, np.ndarray) else 0


def check_graph_fits(graph, spec, budget: Optional[int] = None) -> None:
    """The graph's totals against the whole target (before any pass allocates): neurons against
    chips x cores x neurons per core, stored synapses (at the target's weight bits each, a lower bound)
    against the total synapse memory, and the compiler's memory estimate against :func:`memory_budget`."""
    from .ir.graph import synapse_count
    neurons = int(graph.neuron_count())
    if neurons > spec.total_cores * spec.neurons_per_core:
        big = max((n for n in graph if n.is_neuron), key=lambda n: int(np.prod(n.out_shape)))
        raise _too_many_neurons(neurons, spec, big.name, int(np.prod(big.out_shape)))
    per_node = [(n.name, int(synapse_count(n))) for n in graph]
    synapses = sum(c for _, c in per_node)
    mem_bits = spec.total_cores * spec.synapse_memory_bits
    if spec.shared_memory:
        mem_bits -= neurons * spec.neuron_state_bits
    need_bits = synapses * spec.weight_bits
    if need_bits > mem_bits:
        name = max(per_node, key=lambda t: t[1])[0] if per_node else None
        raise ResourceError(f"{synapses:,} synapses need at least {format_bytes(need_bits / 8)} of synapse memory "
                            f"({spec.weight_bits} bits each); target '{spec.name}' has {format_bytes(mem_bits / 8)} "
                            f"in all ({spec.total_cores} cores); prune or use a larger system", node=name,
                            field="synapses")
    weights = [(n.name, _weight_elements(n)) for n in graph]
    need = sum(c for _, c in weights) * COMPILE_BYTES_PER_WEIGHT
    if budget is None:
        budget, why = memory_budget()
    else:
        why = "the given budget"
    if need > budget:
        name, count = max(weights, key=lambda t: t[1])
        raise ResourceError(f"compiling needs about {format_bytes(need)} of memory for {sum(c for _, c in weights):,} "
                            f"weights (largest: {count:,}), more than the {format_bytes(budget)} available "
                            f"(limit: {why}); prune the weights or store them sparse", node=name, field="weight")


# --------------------------------------------------------------------------------------------------- simulation
def simulation_bytes(program, batch: int, steps: int, record: bool, backends: int = 1) -> int:
    """Bytes the records of a run take: uint8 spikes and int32 ``u``, ``v`` per recorded neuron and step (the
    output group always), plus the padded int32 inputs; ``backends`` runs held at once (verify: 2)."""
    per_step = 0
    if record:
        per_step += sum(g.size for g in program.groups.values()) * 9
    else:
        per_step += program.groups[program.output].size * 9
    per_step += sum(int(np.prod(p.shape)) for p in program.inputs) * 8
    return int(batch) * int(steps) * per_step * int(backends)


def check_simulation_size(program, batch: int, steps: int, record: bool, backends: int = 1,
                          budget: Optional[int] = None) -> None:
    """Refuse a run whose batch, steps or records cannot be held: at least one sample and one step, and
    batch x steps x recorded state within :func:`memory_budget`."""
    if batch < 1:
        raise InputError(f"the input holds {batch} samples; need at least one (arrays are (batch, time, ...))",
                         field="batch")
    if steps < 1:
        raise InputError(f"{steps} steps to run; need at least one (give --steps T >= 1, or an input with at "
                         f"least one time step)", field="steps")
    need = simulation_bytes(program, batch, steps, record, backends)
    if budget is None:
        budget, why = memory_budget()
    else:
        why = "the given budget"
    if need > budget // 2:
        raise InputError(f"{batch:,} samples x {steps:,} steps{' with every group recorded' if record else ''} "
                         f"need about {format_bytes(need)} of records, more than half the "
                         f"{format_bytes(budget)} available (limit: {why}); run fewer steps or a smaller batch",
                         field="steps")
