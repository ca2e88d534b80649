"""Stage-boundary checks: the normalised graph form, the integer contract of a quantised Program, and the
resource limits of a partitioned one (recomputed independently from the placement, not taken from the report).

``check_normalised`` is registered with :func:`toolchain.ir.register_check` for the ``"normalised"`` level, so
``verify(graph, "normalised")`` runs it; the Program levels run through :func:`verify_program`.
"""
from __future__ import annotations

import numpy as np

from ..errors import GraphError, QuantisationError, ResourceError
from ..ir.graph import Graph
from ..ir.nodes import Affine, Delay, Input, Linear, Output, _Population
from ..ir.storage import Conv, Csr, Dense
from ..ir.verify import register_check, verify
from ..program import Program
from ..targets import TargetSpec
from . import storage_ops as so

__all__ = ["check_normalised", "check_quantised", "check_partitioned", "verify_program"]


def check_normalised(graph: Graph) -> None:
    """Every node is an Input, Output, population, Linear/Affine or Delay; every synapse node has one input and
    one output edge; populations are fed only by synapse nodes or Delays; each Output by one population."""
    for name, node in graph.nodes.items():
        if not isinstance(node, (Input, Output, _Population, Linear, Affine, Delay)):
            raise GraphError(f"{node.kind} node is not allowed after normalisation", node=name, field="kind")
        if isinstance(node, (Linear, Affine)):
            if len(graph.in_edges(name)) != 1 or len(graph.out_edges(name)) != 1:
                raise GraphError(f"synapse node has {len(graph.in_edges(name))} input and "
                                 f"{len(graph.out_edges(name))} output edges, expected one each", node=name,
                                 field="edges")
        if isinstance(node, _Population):
            for src in graph.predecessors(name):
                if not isinstance(graph[src], (Linear, Affine, Delay)):
                    raise GraphError(f"population is fed directly by {graph[src].kind} '{src}' (expected a synapse "
                                     f"node)", node=name, field="edges")
        if isinstance(node, Output):
            preds = graph.predecessors(name)
            if len(preds) != 1 or not isinstance(graph[preds[0]], _Population):
                raise GraphError("an Output must be fed by exactly one population (a Loihi program's output is a "
                                 "population: end the network with LIF, IF or an LI readout)", node=name,
                                 field="edges")


register_check("normalised", check_normalised)


def check_quantised(p: Program, target: TargetSpec) -> None:
    """The integer contract: every field in the target's bit widths, weights unchanged by Lava's clip and
    truncation, exponents and delays in range, reset modes supported, readouts at the maximum threshold."""
    from ..fixedpoint import lava_weights
    for g in p.groups.values():
        if g.spiking and not target.supports_reset(g.reset_mode):
            raise QuantisationError(f"reset mode '{g.reset_mode}' not supported by target '{target.name}'",
                                    node=g.name, field="reset_mode")
        # du = -1 (no current decay), dv = 4096 (no voltage memory) and vth = 2^17 (never spikes) are the values
        # lava-dl's netx reader gives its default integrator neuron; Lava computes them as written
        for f, lo, hi in (("du", -1, target.decay_max), ("dv", 0, target.decay_max + 1),
                          ("vth", 0, target.vth_max + 1), ("bias_exp", 0, target.bias_exp_max)):
            a = getattr(g, f)
            if a.size and (a.min() < lo or a.max() > hi):
                raise QuantisationError(f"values outside [{lo}, {hi}]", node=g.name, field=f)
        if g.bias_mant.size and (g.bias_mant.min() < target.bias_mant_min or g.bias_mant.max() > target.bias_mant_max):
            raise QuantisationError(f"values outside [{target.bias_mant_min}, {target.bias_mant_max}]", node=g.name,
                                    field="bias_mant")
        if not g.spiking and g.vth.size and np.any(g.vth != target.vth_max):
            raise QuantisationError(f"a readout must have vth = {target.vth_max}", node=g.name, field="vth")
    for s in p.synapses:
        if not target.weight_exp_min <= s.weight_exp <= target.weight_exp_max:
            raise QuantisationError(f"weight_exp {s.weight_exp} outside [{target.weight_exp_min}, "
                                    f"{target.weight_exp_max}]", node=s.name, field="weight_exp")
        if s.num_weight_bits > target.weight_bits + (s.sign_mode == "mixed"):  # 9 = untruncated mixed-sign
            raise QuantisationError(f"num_weight_bits {s.num_weight_bits} > {target.weight_bits}", node=s.name,
                                    field="num_weight_bits")
        if s.delay > target.max_delay:
            raise QuantisationError(f"delay {s.delay} > {target.max_delay}", node=s.name, field="delay")
        w = s.weight
        vals = np.asarray(w.stored_values()).astype(np.int64)
        got = np.asarray(lava_weights(vals, num_weight_bits=s.num_weight_bits, sign_mode=s.sign_mode))
        if not np.array_equal(got.astype(np.int64), vals):
            raise QuantisationError("weights change under Lava's clip/truncation", node=s.name, field="weight")
        if s.sign_mode == "excitatory" and vals.size and vals.min() < 0:
            raise QuantisationError("negative weight in an excitatory synapse group", node=s.name, field="sign_mode")
    for q in p.inputs:
        if q.num_message_bits > target.graded_spike_bits:
            raise QuantisationError(f"graded spikes of {q.num_message_bits} bits; target '{target.name}' carries "
                                    f"{target.graded_spike_bits}", node=q.name, field="num_message_bits")
    target.check_graded(p)  # sigma-delta groups on a target without graded spikes (Loihi 1)


def check_partitioned(p: Program, target: TargetSpec) -> None:
    """Recompute every core's neurons, synapse memory and axons from the placement alone and check them against
    the target's limits (and against the recorded usage); only neurons that can never spike may stay unplaced."""
    from .partition import _live_masks
    pl = p.placement
    if pl is None:
        raise ResourceError("the Program has no placement", field="placement")
    n_cores = len(pl.cores)
    if n_cores > target.total_cores:
        raise ResourceError(f"{n_cores} cores used, target has {target.total_cores}", field="cores")
    live = _live_masks(p)
    ports = {q.name: q for q in p.inputs}
    neurons = np.zeros(n_cores, np.int64)
    state_mem = np.zeros(n_cores, np.int64)  # neuron memory (each neuron's state bits of its kind)
    shared = np.zeros(n_cores, np.int64)     # neuron state charged to the synapse memory (shared-memory targets)
    for g, grp in p.groups.items():
        co = pl.core_of.get(g)
        if co is None or co.shape != (grp.size,):
            raise ResourceError("placement does not cover the group", node=g, field="placement")
        if np.any((co < 0) & live[g]):
            raise ResourceError("a neuron that can spike (or is read out) is not placed", node=g, field="placement")
        if co.size and co.max() >= n_cores:
            raise ResourceError("placement names a core that is not in the core list", node=g, field="placement")
        neurons += np.bincount(co[co >= 0], minlength=n_cores)
        state_mem += np.bincount(co[co >= 0], minlength=n_cores) * target.state_bits(grp.neuron)
        shared += np.bincount(co[co >= 0], minlength=n_cores) * target.shared_state_bits(grp.neuron)
    mem = np.zeros(n_cores, np.int64)
    in_ax = np.zeros(n_cores, np.int64)
    out_ax = np.zeros(n_cores, np.int64)
    for s in p.synapses:
        graded = p.message_bits(s.src) > 0  # graded payloads: wider synapses, more routing entries per axon
        entries = target.axon_entries(p.message_bits(s.src))
        co_dst = pl.core_of[s.dst]
        per_core_rows = np.bincount(co_dst[co_dst >= 0], minlength=n_cores)
        src_live = np.ones(s.weight.shape[1], bool) if s.src in ports else live[s.src]
        co_src = None if s.src in ports else pl.core_of[s.src]
        if isinstance(s.weight, Dense):
            cores_here = np.flatnonzero(per_core_rows)
            n_src = int(src_live.sum())
            bits = target.synapse_bits(per_core_rows[cores_here], sparse=False, delay=s.delay > 0, graded=graded)
            mem[cores_here] += n_src * bits
            in_ax[cores_here] += n_src
            if co_src is not None:
                out_ax += np.bincount(co_src[src_live], minlength=n_cores) * cores_here.size * entries
            continue
        w = s.weight if isinstance(s.weight, Csr) else s.weight.to_csr()
        rows, cols = so.row_indices(w), np.asarray(w.indices)
        keep = (co_dst[rows] >= 0) & src_live[cols]
        core, cols = co_dst[rows[keep]].astype(np.int64), cols[keep]
        if core.size == 0:
            continue
        if n_cores * w.shape[1] <= 2 ** 26:  # a count per (core, source) fits: count instead of sorting
            cnt = np.bincount(core * w.shape[1] + cols, minlength=n_cores * w.shape[1])
            key = np.flatnonzero(cnt)
            cnt = cnt[key]
        else:
            key, cnt = np.unique(core * w.shape[1] + cols, return_counts=True)
        kc = key // w.shape[1]
        if isinstance(w, Conv) and target.shared_conv:
            # shared-weight format: per core, the kernel taps its neurons use x one tap list of the core's output
            # channels (per channel group); one input axon per source core (1 for an input port)
            from .partition import conv_tap_ids, conv_weight_bits
            n_taps = int(w.in_shape[2]) * int(w.kernel.shape[2]) * int(w.kernel.shape[3])
            c_out, groups = int(w.out_shape[2]), int(w.groups)
            tkey = np.flatnonzero(np.bincount(core * n_taps + conv_tap_ids(w)[keep], minlength=n_cores * n_taps))
            t_core, t_grp = tkey // n_taps, (tkey % n_taps) // (n_taps // groups)
            placed = np.flatnonzero(co_dst >= 0)
            ckey = np.unique(co_dst[placed].astype(np.int64) * c_out + placed % c_out)
            c_core, c_grp = ckey // c_out, (ckey % c_out) // (c_out // groups)
            n_t = np.zeros((n_cores, groups), np.int64)
            np.add.at(n_t, (t_core, t_grp), 1)
            n_c = np.zeros((n_cores, groups), np.int64)
            np.add.at(n_c, (c_core, c_grp), 1)
            mem += (n_t * target.conv_tap_bits(n_c, conv_weight_bits(w), graded)).sum(axis=1)
            if co_src is None:
                in_ax += np.bincount(np.unique(kc), minlength=n_cores)
            else:
                pair = np.unique(kc * n_cores + co_src[key % w.shape[1]])
                in_ax += np.bincount(pair // n_cores, minlength=n_cores)
            if co_src is not None:
                out_ax += np.bincount(co_src[key % w.shape[1]], minlength=n_cores) * entries
            continue
        sparse = np.bincount(kc, weights=target.synapse_bits(cnt, sparse=True, delay=s.delay > 0, graded=graded),
                             minlength=n_cores).astype(np.int64)
        axons = np.bincount(kc, minlength=n_cores)
        dense = axons * target.synapse_bits(per_core_rows, sparse=False, delay=s.delay > 0, graded=graded)
        mem += np.minimum(sparse, dense)
        in_ax += axons
        if co_src is not None:
            out_ax += np.bincount(co_src[key % w.shape[1]], minlength=n_cores) * entries
    for cu in pl.cores:
        c = cu.core
        got = {"neurons": int(neurons[c]), "synapse_bits": int(mem[c]), "input_axons": int(in_ax[c]),
               "output_axons": int(out_ax[c])}
        rec = {"neurons": cu.neurons, "synapse_bits": cu.synapse_bits, "input_axons": cu.input_axons,
               "output_axons": cu.output_axons}
        if got != rec:
            raise ResourceError(f"core {c}: recorded usage {rec} differs from the placement's {got}", field="placement")
        state = int(shared[c])
        if target.neuron_memory_bits and state_mem[c] > target.neuron_memory_bits:
            raise ResourceError(f"core {c} uses neuron_memory = {int(state_mem[c])} > limit "
                                f"{target.neuron_memory_bits}", field="neuron_memory")
        for r, v, lim in (("neurons", got["neurons"], target.neurons_per_core),
                          ("synapse_memory", got["synapse_bits"] + state, target.synapse_memory_bits),
                          ("input_axons", got["input_axons"], target.input_axons_per_core),
                          ("output_axons", got["output_axons"], target.output_axons_per_core)):
            if v > lim:
                raise ResourceError(f"core {c} uses {r} = {v} > limit {lim}", field=r)
        if target.neuron_profiles_per_core and cu.profiles > target.neuron_profiles_per_core:
            raise ResourceError(f"core {c} holds {cu.profiles} neuron profiles > {target.neuron_profiles_per_core}",
                                field="profiles")


def verify_program(p: Program, level: str, target: TargetSpec) -> Program:
    """Run the checks of ``level`` ("quantised" or "partitioned", which includes "quantised") on a Program."""
    if level not in ("quantised", "partitioned"):
        raise ValueError(f"unknown Program verify level {level!r}")
    check_quantised(p, target)
    if level == "partitioned":
        check_partitioned(p, target)
    return p


def verify_normalised(graph: Graph) -> Graph:
    """``verify(graph, "normalised")`` (structure plus :func:`check_normalised`)."""
    return verify(graph, "normalised")
