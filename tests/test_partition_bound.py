"""Partition quality (issue 14): the filled packing and the two refinements of the synapse-memory lower bound —
granules (:func:`_usable_memory`) and shared cuts (:func:`_least_cut_memory`) — checked against exhaustive
enumeration on small cases (every cut of a layer), so that the bound is shown to be a bound and exact where it
claims to be."""
from __future__ import annotations

import importlib
import itertools
import warnings

import numpy as np

from test_partition import tiny
from toolchain.compile import compile_graph
from toolchain.targets import load_target
from toolchain.testing import random_lif_graph

P = importlib.import_module("toolchain.passes.partition")


def _internals(p, target):
    live = P._live_masks(p)
    n_live = {g: int(m.sum()) for g, m in live.items()}
    live_idx, pos = P._live_order(p, live)
    return P._accounting(p, live, pos, live_idx, target), n_live


def _compile(g, target):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return compile_graph(g, target)


def test_least_cut_memory_is_the_least_memory_over_every_cut() -> None:
    """All 2^(n-1) cuts of a 12-neuron sparse layer: the chunk memory the partitioner charges
    (:meth:`_Cutter._cost`, every incoming group) summed over the cut, for the cuts whose chunks fit a core, is
    never below :func:`_least_cut_memory`, and the per-axon minimum of it (the quantity the bound minimises) has
    exactly that minimum."""
    target = tiny(synapse_memory_bits=1024, neurons_per_core=12, input_axons_per_core=256, max_fan_in=256)
    for seed in range(3):
        p = _compile(random_lif_graph([10, 12, 4], density=0.5, seed=seed, storage="csr"), target)
        sgs, n_live = _internals(p, target)
        sg = next(s for s in sgs if not s.dense and s.dst == list(p.groups)[0])
        n = n_live[sg.dst]
        bound = P._least_cut_memory(sg, n, target)
        assert bound > 0

        def own(a: int, b: int) -> int:  # the bound's chunk memory: per axon min(sparse, dense)
            cnt = np.bincount(sg.cols[sg.ptr[a]:sg.ptr[b]])
            cnt = cnt[cnt > 0]
            return int(np.minimum(target.synapse_bits(cnt, sparse=True),
                                  target.synapse_bits(np.array([b - a]), sparse=False)[0]).sum())

        cut = P._Cutter(sg.dst, n, [sg], np.zeros(n, np.int64), np.zeros(n, np.int64), target)
        best_own, best_real = np.inf, np.inf
        for mask in itertools.product([0, 1], repeat=n - 1):
            ends = [i + 1 for i, m in enumerate(mask) if m] + [n]
            chunks = list(zip([0] + ends[:-1], ends))
            if all(own(a, b) <= target.synapse_memory_bits for a, b in chunks):
                best_own = min(best_own, sum(own(a, b) for a, b in chunks))
            real = [cut.cost(a, b)["synapse_memory"] for a, b in chunks]
            if all(r <= target.synapse_memory_bits for r in real):
                best_real = min(best_real, sum(real))
        assert bound == best_own <= best_real


def test_usable_memory_counts_whole_granules() -> None:
    """Dense groups of 1581 inputs charge 1581 words at a time: a Loihi 2 core (12000 words) holds 7 x 1581;
    any sparse group (one-word granules) gives back the whole capacity."""
    t = load_target("loihi2")
    dense = [P._SG("s", "a", "b", False, True, 1581)]
    assert P._usable_memory(dense, {"a": 10, "b": 10}, t) == 7 * 1581 * 64
    two = dense + [P._SG("r", "b", "b", False, True, 1100)]  # max 1581 x + 1100 y <= 12000: 2 x 1581 + 8 x 1100
    assert P._usable_memory(two, {"a": 10, "b": 10}, t) == 11962 * 64
    sparse = dense + [P._SG("c", "a", "b", False, False, 10, np.array([0, 1]), np.array([0]))]
    assert P._usable_memory(sparse, {"a": 10, "b": 10}, t) == t.synapse_memory_bits


def test_filled_packing_cuts_layers_where_a_core_is_full() -> None:
    """Four dense 158 x 158 layers on Loihi 2: each needs 158 x 40 = 6320 of a core's 12000 words, so packing
    whole layers takes 4 cores; cut where a core is full they take 3, the lower bound (checked by the compile's
    independent recount of every core)."""
    p = _compile(random_lif_graph([158] * 5, seed=0, storage="dense"), "loihi2")
    rep = p.report
    assert rep["cores_used"] == rep["lower_bound"] == 3
    assert sum(rep["per_group"].values()) > 4  # layers were cut (a group on two cores)
    for sparse_seed in (0, 1):
        q = _compile(random_lif_graph([316] * 5, density=0.25, seed=sparse_seed, storage="csr"), "loihi2")
        assert q.report["cores_used"] == q.report["lower_bound"] == 3
