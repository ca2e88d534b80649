"""Partition: place every neuron of a quantised Program on a core of the target, within every per-core limit.

Resources per core (from the :class:`~toolchain.targets.TargetSpec`): neurons, synapse memory (with the encoding
actually used: per input axon, "dense" stores one weight per neuron of the chunk, "sparse" one weight plus an index
per stored synapse, whichever is cheaper; groups of synapses and words as in :meth:`TargetSpec.synapse_bits`;
on shared-memory targets the neuron state is charged too), input axons (one per (synapse group, source neuron)
with a stored synapse into the core), output axons (one per (synapse group, source neuron, destination core)),
and neuron profiles (distinct (du, dv, vth, reset, spiking) sets) where the target limits them.

Algorithm: neurons that can never spike (no stored synapse from a live source, no bias — what structured pruning
leaves behind) are not placed, and their outgoing synapses cost nothing. Each group's live neurons are cut into
contiguous chunks, each as large as one core allows (exponential then binary search on the chunk length, costs
evaluated with numpy on the chunk's synapses), and the chunks are packed onto cores first-fit-decreasing (chunks of
different groups may share a core). Output-axon needs depend on how the targets are cut, so the cutting is repeated
until it is stable. The lower bound reported next to the cores used is max over resources of ceil(total need /
per-core capacity), with every layer's need computed as if it were not split (one block list per input axon, the
layer's cheaper encoding): splitting a layer only adds block headers, word rounding and axons, so no partition of
ordinary layers needs less (a layer mixing dense and very sparse rows could in principle beat it by choosing the
encoding per core). Random unstructured sparsity is the costly case: every core holding part of such a layer needs
nearly every input axon, each with a few synapses, so block headers and rounding add ~10% over the bound.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..errors import ResourceError
from ..ir.storage import Csr, Dense
from ..program import CoreUsage, Placement, Program
from ..targets import TargetSpec
from . import storage_ops as so

__all__ = ["partition", "format_report", "RESOURCES"]

RESOURCES = ("neurons", "synapse_memory", "input_axons", "output_axons")


@dataclass
class _SG:
    """Accounting view of one synapse group: stored synapses between live neurons only."""

    name: str
    src: str
    dst: str
    delay: bool
    dense: bool
    n_src: int               # live source neurons (dense groups: all of them have a synapse into every row)
    ptr: Optional[np.ndarray] = None   # per live target position, CSR row pointer
    cols: Optional[np.ndarray] = None  # live source position of every stored synapse


def _live_masks(p: Program) -> Dict[str, np.ndarray]:
    """Neurons that can ever spike or that are read out (fixed point of: bias != 0, or a non-zero stored synapse
    from a live neuron or an input port)."""
    live = {g: (~np.asarray([grp.spiking] * grp.size, bool)) | (grp.bias_mant != 0) for g, grp in p.groups.items()}
    ports = {q.name for q in p.inputs}
    csr: Dict[str, Tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for s in p.synapses:
        if not isinstance(s.weight, Dense):
            w = s.weight if isinstance(s.weight, Csr) else s.weight.to_csr()
            csr[s.name] = (so.row_indices(w), np.asarray(w.indices), np.asarray(w.data) != 0)
    changed = True
    while changed:
        changed = False
        for s in p.synapses:
            n_src = s.weight.shape[1]
            src_live = np.ones(n_src, bool) if s.src in ports else live[s.src]
            if isinstance(s.weight, Dense):
                reach = (np.asarray(s.weight.values)[:, src_live] != 0).any(axis=1)
            else:
                rows, cols, nonzero = csr[s.name]
                hit = nonzero & src_live[cols]
                reach = np.zeros(s.weight.shape[0], bool)
                reach[rows[hit]] = True
            new = live[s.dst] | reach
            if not np.array_equal(new, live[s.dst]):
                live[s.dst] = new
                changed = True
    return live


def chunk_order(shape: Tuple[int, ...]) -> np.ndarray:
    """The order in which a group's neurons are cut into chunks: position-major for (C, H, W) and (C, L) maps
    (all channels of one position together, so that a convolution's local fan-out reaches few chunks), else the
    flat order."""
    n = int(np.prod(shape))
    if len(shape) in (2, 3) and shape[0] > 1 and n > shape[0]:
        return np.arange(n).reshape(shape[0], -1).T.reshape(-1)
    return np.arange(n)


def _live_order(p: Program, live: Dict[str, np.ndarray]) -> Tuple[Dict[str, np.ndarray], Dict[str, np.ndarray]]:
    """Per group: the live neurons in chunk order, and every neuron's position in it (-1 when not live)."""
    idx, pos = {}, {}
    for g, grp in p.groups.items():
        order = chunk_order(grp.shape)
        idx[g] = order[live[g][order]]
        pos[g] = np.full(grp.size, -1, np.int64)
        pos[g][idx[g]] = np.arange(idx[g].size)
    return idx, pos


def _accounting(p: Program, live: Dict[str, np.ndarray], pos: Dict[str, np.ndarray]) -> List[_SG]:
    ports = {q.name: q for q in p.inputs}
    out = []
    for s in p.synapses:
        dst_live = live[s.dst]
        src_live = np.ones(ports[s.src].size, bool) if s.src in ports else live[s.src]
        if isinstance(s.weight, Dense):
            out.append(_SG(s.name, s.src, s.dst, s.delay > 0, True, int(src_live.sum())))
            continue
        w = s.weight if isinstance(s.weight, Csr) else s.weight.to_csr()
        rows = so.row_indices(w)
        keep = dst_live[rows] & src_live[w.indices]
        r = pos[s.dst][rows[keep]]
        c = np.asarray(w.indices[keep]) if s.src in ports else pos[s.src][w.indices[keep]]
        if r.size > 1 and np.any(np.diff(r) < 0):
            o = np.argsort(r, kind="stable")
            r, c = r[o], c[o]
        ptr = np.zeros(int(dst_live.sum()) + 1, np.int64)
        np.cumsum(np.bincount(r, minlength=ptr.size - 1), out=ptr[1:])
        out.append(_SG(s.name, s.src, s.dst, s.delay > 0, False, int(src_live.sum()), ptr,
                       c.astype(np.int64)))
    return out


class _Cutter:
    """Cuts one group's live neurons into chunks that each fit one core."""

    def __init__(self, name: str, n: int, incoming: List[_SG], profiles: np.ndarray, thresholds: np.ndarray,
                 target: TargetSpec):
        self.name, self.n, self.incoming, self.t = name, n, incoming, target
        self.profiles, self.thresholds = profiles, thresholds
        self.one_profile = np.unique(profiles).size <= 1
        self.one_vth = np.unique(thresholds).size <= 1
        self.fan_prefix = np.zeros(n + 1, np.int64)
        self.evals = 0

    def cost(self, a: int, b: int) -> Dict[str, int]:
        """Resources of the chunk of live positions [a, b) on one core."""
        self.evals += 1
        t = self.t
        k = b - a
        mem = t.neuron_state_bits * k if t.shared_memory else 0
        axons = 0
        for sg in self.incoming:
            if sg.dense:
                if sg.n_src:
                    axons += sg.n_src
                    mem += sg.n_src * int(t.synapse_bits(np.array([k]), sparse=False, delay=sg.delay)[0])
                continue
            seg = sg.cols[sg.ptr[a]:sg.ptr[b]]
            if seg.size == 0:
                continue
            if seg.size * 8 < sg.n_src:
                cnt = np.unique(seg, return_counts=True)[1]
            else:
                cnt = np.bincount(seg, minlength=sg.n_src)
                cnt = cnt[cnt > 0]
            ax = int(cnt.size)
            sparse = int(t.synapse_bits(cnt, sparse=True, delay=sg.delay).sum())
            dense = ax * int(t.synapse_bits(np.array([k]), sparse=False, delay=sg.delay)[0])
            mem += min(sparse, dense)
            axons += ax
        prof = 1 if self.one_profile else int(np.unique(self.profiles[a:b]).size)
        vths = 1 if self.one_vth else int(np.unique(self.thresholds[a:b]).size)
        return {"neurons": k, "synapse_memory": int(mem), "input_axons": axons,
                "output_axons": int(self.fan_prefix[b] - self.fan_prefix[a]), "profiles": prof, "thresholds": vths}

    def violations(self, c: Dict[str, int]) -> List[Tuple[str, int, int]]:
        t = self.t
        lim = {"neurons": t.neurons_per_core, "synapse_memory": t.synapse_memory_bits,
               "input_axons": t.input_axons_per_core, "output_axons": t.output_axons_per_core,
               "profiles": t.neuron_profiles_per_core, "thresholds": t.threshold_profiles_per_core}
        return [(r, c[r], lim[r]) for r in lim if lim[r] > 0 and c[r] > lim[r]]

    def fits(self, a: int, b: int) -> bool:
        return not self.violations(self.cost(a, b))

    def cut(self) -> List[Tuple[int, int]]:
        """Greedy maximal chunks (exponential search from the previous chunk's length, then binary search)."""
        chunks: List[Tuple[int, int]] = []
        a, guess = 0, min(self.n, self.t.neurons_per_core)
        while a < self.n:
            kmax = min(self.t.neurons_per_core, self.n - a)
            k = max(1, min(guess, kmax))
            if self.fits(a, a + k):
                lo, hi, step = k, None, max(1, k // 16)
                while lo < kmax:
                    k2 = min(kmax, lo + step)
                    if self.fits(a, a + k2):
                        lo, step = k2, step * 2
                    else:
                        hi = k2
                        break
            else:
                lo, hi = 0, k
                while hi > 1:
                    k2 = hi // 2
                    if self.fits(a, a + k2):
                        lo = k2
                        break
                    hi = k2
                if lo == 0:
                    r, need, limit = self.violations(self.cost(a, a + 1))[0]
                    raise _single_neuron_error(self.name, r, need, limit)
            if hi is not None:
                while hi - lo > 1:
                    mid = (lo + hi) // 2
                    if self.fits(a, a + mid):
                        lo = mid
                    else:
                        hi = mid
            chunks.append((a, a + lo))
            a += lo
            guess = lo
        return chunks


_SUGGEST = {
    "synapse_memory": "prune its synapses (structured pruning removes whole axons), lower the weight precision, "
                      "or use a target with more synapse memory per core",
    "input_axons": "prune its inputs (fewer source neurons per target neuron) or use a target with more input "
                   "axons per core",
    "output_axons": "prune its fan-out or use a target with more output axons per core",
    "neurons": "use a target with more neurons per core",
    "profiles": "use fewer distinct time constants/thresholds in the layer",
    "thresholds": "use fewer distinct thresholds in the layer",
    "fan_in": "prune the layer's inputs or use a target with a larger fan-in",
    "fan_out": "prune the layer's fan-out or split its targets less",
}


def _single_neuron_error(layer: str, resource: str, need: int, limit: int) -> ResourceError:
    err = ResourceError(f"one neuron alone needs {resource} = {need} on a core, the limit is {limit}; the layer "
                        f"cannot be split further; suggestion: {_SUGGEST.get(resource, 'another target')}",
                        node=layer, field=resource)
    err.resource, err.need, err.limit = resource, need, limit  # type: ignore[attr-defined]
    return err


def _fanout(sgs: List[_SG], chunks: Dict[str, List[Tuple[int, int]]], n_live: Dict[str, int]) -> Dict[str,
                                                                                                      np.ndarray]:
    """Output axons each live source neuron needs: per synapse group, the chunks of its target it reaches."""
    fan = {g: np.zeros(n, np.int64) for g, n in n_live.items()}
    for sg in sgs:
        if sg.src not in fan:
            continue
        if sg.dense:
            fan[sg.src] += len(chunks[sg.dst]) if sg.n_src else 0
            continue
        f = fan[sg.src]
        mark = np.zeros(f.size, bool)
        for a, b in chunks[sg.dst]:
            seg = sg.cols[sg.ptr[a]:sg.ptr[b]]
            if seg.size:
                mark[:] = False
                mark[seg] = True
                f += mark
    return fan


def _lower_bound(p: Program, sgs: List[_SG], n_live: Dict[str, int], target: TargetSpec) -> Dict[str, int]:
    """Total need per resource with every layer unsplit."""
    need = {"neurons": int(sum(n_live.values())), "synapse_memory": 0, "input_axons": 0, "output_axons": 0}
    if target.shared_memory:
        need["synapse_memory"] += target.neuron_state_bits * need["neurons"]
    for sg in sgs:
        n_dst = n_live[sg.dst]
        if sg.dense:
            if sg.n_src and n_dst:
                need["synapse_memory"] += sg.n_src * int(target.synapse_bits(np.array([n_dst]), sparse=False,
                                                                             delay=sg.delay)[0])
                need["input_axons"] += sg.n_src
                if sg.src in n_live:
                    need["output_axons"] += sg.n_src
            continue
        if sg.cols.size == 0:
            continue
        cnt = np.bincount(sg.cols)
        cnt = cnt[cnt > 0]
        sparse = int(target.synapse_bits(cnt, sparse=True, delay=sg.delay).sum())
        dense = cnt.size * int(target.synapse_bits(np.array([n_dst]), sparse=False, delay=sg.delay)[0])
        need["synapse_memory"] += min(sparse, dense)
        need["input_axons"] += int(cnt.size)
        if sg.src in n_live:
            need["output_axons"] += int(cnt.size)
    return need


def partition(p: Program, target: TargetSpec, max_rounds: int = 12) -> Program:
    """Place the Program's neurons on cores of ``target``; returns a new Program with ``placement`` and ``report``.

    Raises :class:`ResourceError` naming the layer, the resource, the need and the limit (with a suggestion) when
    a neuron cannot fit on any core or the network needs more cores than the target has.
    """
    live = _live_masks(p)
    n_live = {g: int(m.sum()) for g, m in live.items()}
    live_idx, pos = _live_order(p, live)
    sgs = _accounting(p, live, pos)
    into: Dict[str, List[_SG]] = {g: [] for g in p.groups}
    for sg in sgs:
        into[sg.dst].append(sg)
    # per-neuron fan-in limit
    for g, grp in p.groups.items():
        fan_in = np.zeros(n_live[g], np.int64)
        for sg in into[g]:
            fan_in += sg.n_src if sg.dense else np.diff(sg.ptr)
        if fan_in.size and fan_in.max() > target.max_fan_in:
            err = ResourceError(f"a neuron receives {int(fan_in.max())} synapses, the fan-in limit is "
                                f"{target.max_fan_in}; suggestion: {_SUGGEST['fan_in']}", node=g, field="fan_in")
            err.resource, err.need, err.limit = "fan_in", int(fan_in.max()), target.max_fan_in  # type: ignore
            raise err
    # profiles
    prof_key: Dict[tuple, int] = {}
    prof: Dict[str, np.ndarray] = {}
    thr: Dict[str, np.ndarray] = {}
    for g, grp in p.groups.items():
        m = live_idx[g]
        keys = np.stack([grp.du[m].astype(np.int64), grp.dv[m].astype(np.int64), grp.vth[m].astype(np.int64)],
                        axis=1) if m.size else np.zeros((0, 3), np.int64)
        uniq, inv = np.unique(keys, axis=0, return_inverse=True) if keys.size else (keys, np.zeros(0, np.int64))
        ids = np.array([prof_key.setdefault((grp.reset_mode, grp.spiking) + tuple(u), len(prof_key))
                        for u in uniq.tolist()], np.int64)
        prof[g] = ids[np.asarray(inv).reshape(-1)] if ids.size else np.zeros(0, np.int64)
        thr[g] = grp.vth[m].astype(np.int64)
    cutters = {g: _Cutter(g, n_live[g], into[g], prof[g], thr[g], target) for g in p.groups}
    chunks = {g: cutters[g].cut() if n_live[g] else [] for g in p.groups}
    for _ in range(max_rounds):
        fan = _fanout(sgs, chunks, n_live)
        for g, f in fan.items():
            if f.size and f.max() > target.max_fan_out_cores:
                err = ResourceError(f"a neuron needs {int(f.max())} destination cores, the limit is "
                                    f"{target.max_fan_out_cores}; suggestion: {_SUGGEST['fan_out']}", node=g,
                                    field="fan_out")
                err.resource, err.need, err.limit = "fan_out", int(f.max()), target.max_fan_out_cores  # type: ignore
                raise err
            np.cumsum(f, out=cutters[g].fan_prefix[1:])
        bad = [g for g in p.groups if any(cutters[g].violations(cutters[g].cost(a, b)) for a, b in chunks[g])]
        if not bad:
            break
        for g in bad:
            chunks[g] = cutters[g].cut()
    else:  # pragma: no cover - the cutting converges in a few rounds
        raise ResourceError("output axons: the partition did not converge", field="output_axons")

    # pack chunks onto cores, first fit decreasing
    caps = np.array([target.neurons_per_core, target.synapse_memory_bits, target.input_axons_per_core,
                     target.output_axons_per_core], np.float64)
    items = []
    for g in p.groups:
        for a, b in chunks[g]:
            c = cutters[g].cost(a, b)
            vec = np.array([c["neurons"], c["synapse_memory"], c["input_axons"], c["output_axons"]], np.float64)
            items.append((float((vec / caps).max()), g, a, b, vec, set(prof[g][a:b].tolist()),
                          set(thr[g][a:b].tolist())))
    items.sort(key=lambda it: -it[0])
    used = np.zeros((max(len(items), 1), 4), np.float64)
    core_groups: List[set] = []
    core_prof: List[set] = []
    core_thr: List[set] = []
    core_of = {g: np.full(grp.size, -1, np.int32) for g, grp in p.groups.items()}
    P, TP = target.neuron_profiles_per_core, target.threshold_profiles_per_core
    n_cores = 0
    for _, g, a, b, vec, ps, ts in items:
        cand = np.flatnonzero(np.all(used[:n_cores] + vec <= caps, axis=1)) if n_cores else np.zeros(0, np.int64)
        chosen = -1
        for c in cand:
            if g in core_groups[c]:
                continue
            if P and len(core_prof[c] | ps) > P:
                continue
            if TP and len(core_thr[c] | ts) > TP:
                continue
            chosen = int(c)
            break
        if chosen < 0:
            chosen = n_cores
            n_cores += 1
            core_groups.append(set())
            core_prof.append(set())
            core_thr.append(set())
        used[chosen] += vec
        core_groups[chosen].add(g)
        core_prof[chosen] |= ps
        core_thr[chosen] |= ts
        core_of[g][live_idx[g][a:b]] = chosen
    # renumber cores in order of first use by the groups (execution order) for a readable table
    seq = np.concatenate([core_of[g][core_of[g] >= 0] for g in p.groups] + [np.zeros(0, np.int32)])
    first = np.unique(seq, return_index=True)[1] if seq.size else np.zeros(0, np.int64)
    order = [int(c) for c in seq[np.sort(first)]]
    renum = np.full(max(n_cores, 1), -1, np.int64)
    renum[order] = np.arange(len(order))
    for g in core_of:
        m = core_of[g] >= 0
        core_of[g][m] = renum[core_of[g][m]]
    state = target.neuron_state_bits if target.shared_memory else 0
    cores = []
    for new, old in enumerate(order):
        u = used[old]
        cores.append(CoreUsage(core=new, chip=new // target.cores_per_chip, neurons=int(u[0]),
                               synapse_bits=int(u[1]) - state * int(u[0]), state_bits=state * int(u[0]),
                               input_axons=int(u[2]), output_axons=int(u[3]), profiles=len(core_prof[old]),
                               groups=tuple(x for x in p.groups if x in core_groups[old])))
    need = _lower_bound(p, sgs, n_live, target)
    capd = dict(zip(RESOURCES, caps.astype(np.int64).tolist()))
    lb_per = {r: int(-(-need[r] // capd[r])) for r in RESOURCES}
    lb = max(max(lb_per.values()), 1 if need["neurons"] else 0)
    layers = {}
    for g, grp in p.groups.items():
        cs = [cutters[g].cost(a, b) for a, b in chunks[g]]
        layers[g] = {"neurons": grp.size, "placed": n_live[g], "pruned": grp.size - n_live[g],
                     "cores": len(chunks[g]),
                     "synapses": int(sum((sg.n_src * n_live[g]) if sg.dense else int(sg.cols.size)
                                         for sg in into[g])),
                     "synapse_bits": int(sum(c["synapse_memory"] for c in cs)) - state * n_live[g],
                     "input_axons": int(sum(c["input_axons"] for c in cs)),
                     "output_axons": int(sum(c["output_axons"] for c in cs)),
                     "profiles": int(np.unique(prof[g]).size)}
    if len(cores) > target.total_cores:
        worst = max(layers, key=lambda g: layers[g]["cores"])
        err = ResourceError(f"the network needs {len(cores)} cores (lower bound {lb}), target '{target.name}' has "
                            f"{target.total_cores} ({target.chips} chips x {target.cores_per_chip} cores); layer "
                            f"'{worst}' alone uses {layers[worst]['cores']}; suggestion: prune, or use a target "
                            f"with more chips or cores", node=worst, field="cores")
        err.resource, err.need, err.limit = "cores", len(cores), target.total_cores  # type: ignore[attr-defined]
        raise err
    report = {
        "target": target.name, "cores_used": len(cores), "lower_bound": lb,
        "lower_bound_resource": max(lb_per, key=lambda r: lb_per[r]),
        "lower_bound_per_resource": lb_per, "chips_used": len({c.chip for c in cores}),
        "cores_over_lower_bound": (len(cores) / lb) if lb else 1.0,
        "needs": need, "capacity_per_core": capd, "layers": layers,
        "neurons": int(p.neuron_count), "neurons_placed": int(sum(n_live.values())),
        "synapses": int(p.synapse_count),
        "synapses_placed": int(sum(v["synapses"] for v in layers.values())),
        "synapse_bits": int(sum(c.synapse_bits for c in cores)),
        "energy": {k: getattr(target, k) for k in ("synop_pj", "synop_ns", "neuron_update_pj", "neuron_update_ns")
                   if getattr(target, k) is not None},
    }
    out = Program(p.groups, p.synapses, p.inputs, p.output, target=p.target, dt=p.dt,
                  placement=Placement(core_of, cores), report=report, quant_report=p.quant_report,
                  metadata=dict(p.metadata))
    return out


def format_report(program: Program, max_rows: int = 40) -> str:
    """The resource report as text: per-core utilisation table, per-layer needs and "cores used N (lower bound M)"."""
    rep = program.report
    if not rep or program.placement is None:
        return "no resource report (the Program was not partitioned)"
    caps = rep["capacity_per_core"]
    lines = [f"target {rep['target']}: {rep['neurons_placed']} of {rep['neurons']} neurons placed, "
             f"{rep['synapses_placed']} synapses, {rep['chips_used']} chip(s)"]

    def pct(v: int, c: int) -> str:
        return f"{v} ({100.0 * v / c:.0f}%)" if c else str(v)

    rows = [("core", "chip", "neurons", "syn mem bits", "in axons", "out axons", "prof", "groups")]
    cores = program.placement.cores
    for cu in cores[:max_rows]:
        mem = cu.synapse_bits + cu.state_bits
        rows.append((str(cu.core), str(cu.chip), pct(cu.neurons, caps["neurons"]), pct(mem, caps["synapse_memory"]),
                     pct(cu.input_axons, caps["input_axons"]), pct(cu.output_axons, caps["output_axons"]),
                     str(cu.profiles), ",".join(cu.groups)))
    lines += _table(rows)
    if len(cores) > max_rows:
        lines.append(f"... {len(cores) - max_rows} more cores")
    rows = [("layer", "neurons", "placed", "cores", "synapses", "syn mem bits", "in axons", "out axons")]
    for g, d in rep["layers"].items():
        rows.append((g, str(d["neurons"]), str(d["placed"]), str(d["cores"]), str(d["synapses"]),
                     str(d["synapse_bits"]), str(d["input_axons"]), str(d["output_axons"])))
    lines.append("")
    lines += _table(rows)
    lb_per = rep["lower_bound_per_resource"]
    lines.append("")
    lines.append("lower bound per resource: " + ", ".join(f"{r} {v}" for r, v in lb_per.items()))
    lines.append(f"cores used {rep['cores_used']} (lower bound {rep['lower_bound']})")
    return "\n".join(lines)


def _table(rows: List[Tuple[str, ...]]) -> List[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    out.insert(1, "  ".join("-" * w for w in widths))
    return out
