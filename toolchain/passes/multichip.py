"""Multi-chip placement: assign the cores of a partitioned Program to the chips of a system target.

The single-chip partitioner (:mod:`toolchain.passes.partition`) places neurons on cores and numbers the cores in
execution order; this pass takes that placement as given and decides which chip each core goes to, so that as few
spikes as possible cross between chips (links between chips carry far less bandwidth than the mesh inside one:
``interchip_link_cost`` of the target's ``[system]``).

Traffic model. Every placed source neuron has one *axon*: the set of cores it sends to (the cores of the
neurons it has a stored synapse into) plus its own core. A spike is sent once to every chip that holds one of
those cores and copied to the cores inside that chip, so a spike of a neuron whose axon spans ``lambda`` chips
costs ``lambda - 1`` inter-chip messages. With ``r`` the neuron's spikes per step (recorded in a simulation with
:func:`rates_from_spikes`, or the uniform estimate of 1 spike per neuron per step), the inter-chip traffic of a
chip assignment is ``sum over axons of r * (lambda - 1)`` messages per step (:func:`interchip_traffic`) — exactly
the connectivity-minus-one (``km1``) objective of hypergraph partitioning with one hyperedge per axon, weighted by
its rate. Axons with the same set of cores are merged into one hyperedge (their rates added). Input ports
(spikes from the host) are not counted.

Methods (:func:`assign_chips`):

* ``"hypergraph"`` (default): Mt-KaHyPar (PyPI ``mtkahypar``) on the axon hypergraph, objective ``km1``, every
  core of weight 1, every chip at most ``cores_per_chip``; the result is refined from the in-order assignment too
  and the better of the two is kept, so it is never worse than ``"inorder"``.
* ``"edgecut"``: METIS (PyPI ``pymetis``) on the core graph in which every (source core, destination core) pair of
  an axon is an edge weighted by its rate — the plain edge-cut model, which counts a spike once per destination
  *core* on another chip instead of once per chip; its imbalance allowance (``ufactor``) lets a chip hold up to
  ``cores_per_chip`` cores, the same freedom the hypergraph partitioner has.
* ``"inorder"``: chip ``c // cores_per_chip`` for core ``c`` (the cores in execution order fill the chips one
  after the other, as Lava's open mapper does).

All three use the fewest chips that hold the cores (``ceil(cores / cores_per_chip)``) unless ``chips`` is given.
METIS does not enforce a hard capacity, so every result is checked and over-full chips are repaired by moving
their least-connected cores to chips with room (:func:`_repair`).
"""
from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass
from typing import Dict, Mapping, Optional

import numpy as np
import scipy.sparse as sp

from ..errors import ResourceError, ToolchainError
from ..ir.storage import Dense, Structured
from ..program import Placement, Program
from ..targets import TargetSpec

__all__ = ["AxonHypergraph", "axon_hypergraph", "rates_from_spikes", "interchip_traffic", "assign_chips",
           "partition_chips", "format_chip_report", "interchip_fanout", "is_system", "METHODS"]

METHODS = ("hypergraph", "edgecut", "inorder")


@dataclass
class AxonHypergraph:
    """Axons of a placed Program as a hypergraph on its cores.

    ``n_cores``: cores (hypergraph nodes, the placement's core indices); hyperedge ``e`` has the sorted core ids
    ``pins[ptr[e]:ptr[e + 1]]`` (at least 2: an axon that stays on one core is never cut) and the spike rate
    ``weight[e]`` (spikes per step, summed over the axons merged into it). ``src[e]``: the core of the (first)
    source neuron, for the edge-cut (star) expansion. ``axons``: source neurons with a stored synapse to another
    core; ``local_rate``: the spikes per step of axons that stay on their own core.
    """

    n_cores: int
    ptr: np.ndarray
    pins: np.ndarray
    weight: np.ndarray
    src: np.ndarray
    axons: int
    local_rate: float

    @property
    def n_edges(self) -> int:
        return int(self.weight.size)


def rates_from_spikes(spikes: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Mean spikes per step of every neuron from recorded spikes ``group -> (B, T, n)`` (e.g. ``SimResult.spikes``
    of :func:`toolchain.sim.reference.simulate` with ``record=True``), float64 per group."""
    out = {}
    for g, s in spikes.items():
        a = np.asarray(s)
        if a.ndim != 3:
            raise ToolchainError(f"recorded spikes must be (batch, steps, neurons), got shape {a.shape}", node=g)
        out[g] = a.reshape(-1, a.shape[-1]).astype(np.float64).mean(axis=0) if a.size else np.zeros(a.shape[-1])
    return out


def _synapse_pairs(w, core_dst: np.ndarray) -> "tuple[np.ndarray, np.ndarray]":
    """(source neuron, destination core) pairs of one synapse group's stored synapses into placed neurons,
    deduplicated; rows of ``w`` are destinations. Dense storage: every source into every placed row."""
    placed = core_dst >= 0
    n_out, n_in = w.shape
    if isinstance(w, Dense) or (isinstance(w, Structured) and w.block_mask is None):
        rows = np.ones(n_out, bool) if isinstance(w, Dense) or w.row_mask is None else np.asarray(w.row_mask, bool)
        cols = np.arange(n_in) if isinstance(w, Dense) or w.col_mask is None else \
            np.flatnonzero(np.asarray(w.col_mask, bool))
        cores = np.unique(core_dst[placed & rows])
        return np.repeat(cols.astype(np.int64), cores.size), np.tile(cores.astype(np.int64), cols.size)
    if isinstance(w, Structured):
        w = w.to_csr()
    indptr = np.asarray(w.indptr, np.int64)
    indices = np.asarray(w.indices)
    # rows of one core are contiguous in the common case: process maximal runs of rows with one core, so that
    # the deduplication sorts one core's synapses at a time (memory of the largest core, not of the group)
    srcs, dsts = [], []
    bounds = np.flatnonzero(np.diff(core_dst)) + 1
    starts = np.concatenate([[0], bounds]).astype(np.int64)
    ends = np.concatenate([bounds, [n_out]]).astype(np.int64)
    for a, b in zip(starts.tolist(), ends.tolist()):
        c = int(core_dst[a])
        if c < 0 or indptr[b] == indptr[a]:
            continue
        u = np.unique(indices[indptr[a]:indptr[b]]).astype(np.int64)
        srcs.append(u)
        dsts.append(np.full(u.size, c, np.int64))
    if not srcs:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(srcs), np.concatenate(dsts)


def axon_hypergraph(program: Program, rates: Optional[Mapping[str, np.ndarray]] = None) -> AxonHypergraph:
    """The axon hypergraph of a partitioned Program (see the module docstring).

    ``rates``: group -> spikes per step of each neuron (:func:`rates_from_spikes`); missing groups (and
    ``None``) take the estimate of 1 spike per neuron per step. Raises :class:`ToolchainError` when the Program
    has no placement.
    """
    if program.placement is None:
        raise ToolchainError("the Program is not partitioned (no placement): run the partition pass first",
                             field="placement")
    core_of = program.placement.core_of
    n_cores = program.placement.cores_used
    offset, start = {}, 0
    for g, grp in program.groups.items():
        offset[g] = start
        start += grp.size
    n_neurons = start
    pair_src, pair_dst = [], []
    for s in program.synapses:
        if s.src not in program.groups:
            continue  # input ports: spikes from the host
        ps, pd = _synapse_pairs(s.weight, np.asarray(core_of[s.dst]))
        keep = np.asarray(core_of[s.src])[ps] >= 0
        pair_src.append(ps[keep] + offset[s.src])
        pair_dst.append(pd[keep])
    src_core_all = np.concatenate([np.asarray(core_of[g], np.int64) for g in program.groups] +
                                  [np.zeros(0, np.int64)])
    rate_all = np.ones(n_neurons, np.float64)
    for g, r in (rates or {}).items():
        if g not in program.groups:
            continue
        r = np.asarray(r, np.float64).reshape(-1)
        if r.size != program.groups[g].size or not np.all(np.isfinite(r)) or (r < 0).any():
            raise ToolchainError(f"rates must be {program.groups[g].size} finite values >= 0, got shape {r.shape}",
                                 node=g, field="rates")
        rate_all[offset[g]:offset[g] + r.size] = r
    ps = np.concatenate(pair_src + [np.zeros(0, np.int64)])
    pd = np.concatenate(pair_dst + [np.zeros(0, np.int64)])
    # every neuron's own core is a pin too
    srcs = np.unique(ps)
    ps = np.concatenate([ps, srcs])
    pd = np.concatenate([pd, src_core_all[srcs]])
    key = np.unique(ps * max(n_cores, 1) + pd)  # sorted by neuron, then core: each axon's pin set, sorted
    ps, pd = key // max(n_cores, 1), key % max(n_cores, 1)
    if ps.size == 0:
        z = np.zeros(0, np.int64)
        return AxonHypergraph(n_cores, np.zeros(1, np.int64), z, np.zeros(0), z, 0, 0.0)
    new = np.concatenate([[True], ps[1:] != ps[:-1]])
    first = np.flatnonzero(new)
    sizes = np.diff(np.concatenate([first, [ps.size]]))
    neuron = ps[first]
    local = sizes < 2
    local_rate = float(rate_all[neuron[local]].sum())
    # merge axons with identical pin sets: hash each set, then confirm equality within a hash bucket
    rnd = np.random.default_rng(12345).integers(1, 2 ** 62, size=max(n_cores, 1), dtype=np.int64)
    h1 = np.add.reduceat(rnd[pd], first)
    h2 = np.bitwise_xor.reduceat(rnd[pd] * 3 + 1, first)
    multi = np.flatnonzero(~local)
    order = multi[np.lexsort((h2[multi], h1[multi], sizes[multi]))]
    sig = np.stack([sizes[order], h1[order], h2[order]], axis=1)
    new_group = np.ones(order.size, bool)
    new_group[1:] = (sig[1:] != sig[:-1]).any(axis=1)
    gid = np.cumsum(new_group) - 1
    rep = order[new_group]
    # confirm that every merged axon has its group's pins (a hash collision would show here)
    lens = sizes[order]
    within = np.arange(int(lens.sum()), dtype=np.int64) - np.repeat(np.cumsum(lens) - lens, lens)
    mine = pd[np.repeat(first[order], lens) + within]
    theirs = pd[np.repeat(first[rep[gid]], lens) + within]
    if not np.array_equal(mine, theirs):  # pragma: no cover - needs two pin sets with equal 124-bit hashes
        raise ToolchainError("axon hash collision while merging hyperedges; please report", field="placement")
    weight = np.bincount(gid, weights=rate_all[neuron[order]], minlength=rep.size)
    rlen = sizes[rep]
    ptr = np.concatenate([[0], np.cumsum(rlen)]).astype(np.int64)
    pins_arr = pd[np.repeat(first[rep], rlen) + np.arange(int(rlen.sum()), dtype=np.int64)
                  - np.repeat(ptr[:-1], rlen)]
    return AxonHypergraph(n_cores, ptr, pins_arr.astype(np.int64), weight.astype(np.float64),
                          src_core_all[neuron[rep]].astype(np.int64), int(multi.size), local_rate)


def interchip_traffic(hg: AxonHypergraph, chip_of_core: np.ndarray) -> float:
    """Inter-chip spike messages per step of an assignment: ``sum over hyperedges of weight * (chips - 1)``."""
    chip = np.asarray(chip_of_core, np.int64)
    if hg.n_edges == 0:
        return 0.0
    edge = np.repeat(np.arange(hg.n_edges, dtype=np.int64), np.diff(hg.ptr))
    key = np.unique(edge * (int(chip.max()) + 1) + chip[hg.pins])
    lam = np.bincount(key // (int(chip.max()) + 1), minlength=hg.n_edges)
    return float(np.dot(hg.weight, lam - 1))


def _star_graph(hg: AxonHypergraph) -> sp.csr_matrix:
    """Symmetric core graph of the edge-cut model: source core -- every other pin, weighted by the rate."""
    sizes = np.diff(hg.ptr)
    src = np.repeat(hg.src, sizes)
    w = np.repeat(hg.weight, sizes)
    keep = hg.pins != src
    a = sp.coo_matrix((w[keep], (src[keep], hg.pins[keep])), shape=(hg.n_cores, hg.n_cores)).tocsr()
    a = (a + a.T).tocsr()
    a.sum_duplicates()
    return a


def _int_weights(w: np.ndarray, budget: float) -> np.ndarray:
    """Positive integer weights proportional to ``w`` (>= 1 where w > 0), their sum at most about ``budget``."""
    if w.size == 0:
        return np.zeros(0, np.int64)
    scale = min(1e4 / max(float(w.max()), 1e-300), budget / max(float(w.sum()), 1e-300))
    return np.maximum(np.rint(w * scale), 1).astype(np.int64)


def _repair(chip: np.ndarray, n_chips: int, cap: int, adj: sp.csr_matrix) -> np.ndarray:
    """Move cores off chips holding more than ``cap``: each time the core of an over-full chip with the least
    connection to its chip goes to the chip with room it is most connected to (the first with room on ties)."""
    chip = np.asarray(chip, np.int64).copy()
    count = np.bincount(chip, minlength=n_chips)
    while (count > cap).any():
        a = int(np.argmax(count))
        members = np.flatnonzero(chip == a)
        sub = adj[members]
        conn = np.zeros((members.size, n_chips))
        rows = np.repeat(np.arange(members.size), np.diff(sub.indptr))
        np.add.at(conn, (rows, chip[sub.indices]), sub.data)
        room = count < cap
        best_to = np.where(room[None, :], conn, -np.inf)
        gain = best_to.max(axis=1) - conn[:, a]
        i = int(np.argmax(gain))
        b = int(np.argmax(best_to[i]))
        chip[members[i]] = b
        count[a] -= 1
        count[b] += 1
    return chip


_MT = None


def _mtkahypar(threads: int):
    global _MT
    import mtkahypar
    if _MT is None:
        _MT = mtkahypar.initialize(max(1, threads), False)
    return mtkahypar, _MT


def _hypergraph_assign(hg: AxonHypergraph, n_chips: int, cap: int, seed: int, threads: int,
                       start: np.ndarray) -> np.ndarray:
    mtkahypar, mt = _mtkahypar(threads)
    mtkahypar.set_seed(int(seed))
    # QUALITY (flow-based refinement) on small hypergraphs, DEFAULT on large ones, LARGE_K for many chips
    preset = mtkahypar.PresetType.LARGE_K if n_chips > 64 else (
        mtkahypar.PresetType.QUALITY if hg.n_edges <= 20000 else mtkahypar.PresetType.DEFAULT)
    ctx = mt.context_from_preset(preset)
    ctx.set_partitioning_parameters(n_chips, 0.03, mtkahypar.Objective.KM1)
    ctx.set_individual_target_block_weights([int(cap)] * n_chips)
    ctx.logging = False
    edges = [hg.pins[hg.ptr[e]:hg.ptr[e + 1]].tolist() for e in range(hg.n_edges)]
    w = _int_weights(hg.weight, 2e9 / max(n_chips - 1, 1))
    h = mt.create_hypergraph(ctx, hg.n_cores, hg.n_edges, edges, [1] * hg.n_cores, w.tolist())
    best = None
    for init in ("partition", "start"):
        if init == "partition":
            ph = h.partition(ctx)
        else:
            ph = h.create_partitioned_hypergraph(ctx, n_chips, start.tolist())  # binding: (context, k, partition)
        ph.improve_partition(ctx, 1)
        part = np.asarray(ph.get_partition(), np.int64)
        t = interchip_traffic(hg, part) if np.bincount(part, minlength=n_chips).max() <= cap else np.inf
        if best is None or t < best[0]:
            best = (t, part)
    return best[1]


def _edgecut_assign(hg: AxonHypergraph, n_chips: int, cap: int, seed: int) -> np.ndarray:
    import pymetis
    adj = _star_graph(hg)
    if adj.nnz == 0:
        return np.arange(hg.n_cores) % n_chips
    w = _int_weights(adj.data, 2e9)
    # the same freedom as the hypergraph partitioner: a part may hold up to `cap` cores, i.e. up to
    # cap * k / n times the average (METIS's ufactor is that imbalance in thousandths)
    ufactor = max(1, int(1000 * (cap * n_chips / hg.n_cores - 1)))
    opts = pymetis.Options(seed=int(seed), ufactor=ufactor)
    _, part = pymetis.part_graph(n_chips, xadj=adj.indptr.astype(np.int64), adjncy=adj.indices.astype(np.int64),
                                 eweights=w, options=opts)
    return np.asarray(part, np.int64)


def assign_chips(hg: AxonHypergraph, cores_per_chip: int, method: str = "hypergraph",
                 chips: Optional[int] = None, seed: int = 0, threads: Optional[int] = None) -> np.ndarray:
    """Chip of every core (int64, ``hg.n_cores`` entries) by ``method`` (``"hypergraph"``, ``"edgecut"`` or
    ``"inorder"``, see the module docstring), on ``chips`` chips (default: the fewest that hold the cores) of
    ``cores_per_chip`` cores each; every chip holds at most ``cores_per_chip`` cores."""
    if method not in METHODS:
        raise ValueError(f"unknown chip assignment method {method!r}; methods are {METHODS}")
    n = hg.n_cores
    need = -(-n // cores_per_chip)
    k = need if chips is None else int(chips)
    if k < need:
        raise ResourceError(f"{n} cores need {need} chips of {cores_per_chip} cores, only {k} given", field="chips")
    inorder = np.arange(n, dtype=np.int64) // cores_per_chip
    if method == "inorder" or k <= 1 or n == 0:
        return inorder
    threads = threads or min(2, os.cpu_count() or 1)
    if method == "hypergraph":
        part = _hypergraph_assign(hg, k, cores_per_chip, seed, threads, inorder)
    else:
        part = _edgecut_assign(hg, k, cores_per_chip, seed)
    part = _repair(part, k, cores_per_chip, _star_graph(hg))
    if method == "hypergraph" and interchip_traffic(hg, part) > interchip_traffic(hg, inorder):
        part = inorder
    return part


def partition_chips(program: Program, target: TargetSpec, rates: Optional[Mapping[str, np.ndarray]] = None,
                    method: str = "hypergraph", compare: bool = True, seed: int = 0,
                    threads: Optional[int] = None) -> Program:
    """Assign the cores of a partitioned Program to chips of ``target``; returns a new Program whose
    ``placement.cores[i].chip`` is the chip of core ``i`` and whose ``report["multichip"]`` holds the method,
    chips used, the chip map (core -> chip), inter-chip spikes per step of the chosen method (and, with
    ``compare``, of every method side by side), the rates' origin and the seconds taken. Raises
    :class:`ResourceError` when the cores do not fit the target's chips."""
    if program.placement is None:
        raise ToolchainError("the Program is not partitioned (no placement): run the partition pass first",
                             field="placement")
    n = program.placement.cores_used
    if n > target.total_cores:
        raise ResourceError(f"the network needs {n} cores, target '{target.name}' has {target.total_cores} "
                            f"({target.chips} chips x {target.cores_per_chip} cores)", field="cores")
    t0 = time.perf_counter()
    hg = axon_hypergraph(program, rates)
    t_graph = time.perf_counter() - t0
    traffic: Dict[str, float] = {}
    seconds: Dict[str, float] = {}
    chosen = None
    for m in [method] + ([x for x in METHODS if x != method] if compare else []):
        t1 = time.perf_counter()
        part = assign_chips(hg, target.cores_per_chip, m, seed=seed, threads=threads)
        seconds[m] = time.perf_counter() - t1
        traffic[m] = interchip_traffic(hg, part)
        if m == method:
            chosen = part
    cores = [dataclasses.replace(c, chip=int(chosen[c.core])) for c in program.placement.cores]
    rep = dict(program.report)
    rep["multichip"] = {
        "method": method, "cores": n, "cores_per_chip": target.cores_per_chip,
        "chips_used": int(len(np.unique(chosen))) if n else 0, "chip_of_core": chosen.tolist(),
        "interchip_spikes_per_step": traffic[method], "traffic": traffic, "seconds": seconds,
        "hypergraph_seconds": t_graph, "hyperedges": hg.n_edges, "axons": hg.axons,
        "rates": "recorded" if rates else "estimate (1 spike per neuron per step)",
        "interchip_link_cost": target.interchip_link_cost,
    }
    return dataclasses.replace(program, placement=Placement(program.placement.core_of, cores), report=rep)


def is_system(target: TargetSpec) -> bool:
    """True for a multi-chip system target: one with a ``[system]`` section (a system name or an
    ``interchip_link_cost``); :func:`toolchain.compile.compile_graph` then assigns cores to chips."""
    return bool(target.system_name) or target.interchip_link_cost is not None


def interchip_fanout(program: Program) -> Dict[str, np.ndarray]:
    """Inter-chip messages one spike of each neuron sends: ``group -> int64 (n,)`` of ``lambda - 1``, where
    ``lambda`` is the number of chips holding the neuron's own core or a core it has a stored synapse into
    (the traffic model of the module docstring, per neuron rather than per merged axon; 0 for unplaced
    neurons and on a single chip). Chips are those of ``placement.cores[i].chip``."""
    if program.placement is None:
        raise ToolchainError("the Program is not partitioned (no placement): run the partition pass first",
                             field="placement")
    core_of = program.placement.core_of
    chip_of_core = np.asarray([c.chip for c in program.placement.cores], np.int64)
    out = {g: np.zeros(grp.size, np.int64) for g, grp in program.groups.items()}
    if chip_of_core.size == 0 or np.unique(chip_of_core).size < 2:
        return out
    n_chips = int(chip_of_core.max()) + 1
    for g, grp in program.groups.items():
        own = np.asarray(core_of[g], np.int64)
        placed = np.flatnonzero(own >= 0)
        srcs, chips = [placed], [chip_of_core[own[placed]]]
        for s in program.synapses:
            if s.src != g:
                continue
            ps, pd = _synapse_pairs(s.weight, np.asarray(core_of[s.dst]))
            keep = own[ps] >= 0
            srcs.append(ps[keep])
            chips.append(chip_of_core[pd[keep]])
        key = np.unique(np.concatenate(srcs) * n_chips + np.concatenate(chips))
        lam = np.bincount(key // n_chips, minlength=grp.size)
        out[g] = np.maximum(lam - 1, 0).astype(np.int64)
    return out


def format_chip_report(program: Program) -> str:
    """The chip map (cores per chip) and the inter-chip traffic of each method computed, as text."""
    from ..textutil import table_lines
    mc = (program.report or {}).get("multichip")
    if not mc:
        raise ToolchainError("the Program has no multi-chip report: run partition_chips first", field="report")
    chip = np.asarray(mc["chip_of_core"], np.int64)
    lines = [f"chips used {mc['chips_used']} ({mc['cores']} cores, {mc['cores_per_chip']} per chip), method "
             f"{mc['method']}, rates: {mc['rates']}"]
    rows = [("chip", "cores", "core ids")]
    for c in np.unique(chip).tolist():
        ids = np.flatnonzero(chip == c)
        txt = ",".join(str(i) for i in ids[:12]) + (",..." if ids.size > 12 else "")
        rows.append((str(c), str(ids.size), txt))
    lines += table_lines(rows)
    base = mc["traffic"].get("inorder")
    rows = [("method", "inter-chip spikes/step", "vs in-order")]
    for m, t in mc["traffic"].items():
        rows.append((m, f"{t:.4g}", f"{t / base:.3f}" if base else "-"))
    lines += table_lines(rows)
    return "\n".join(lines)
