"""Partition: place every neuron of a quantised Program on a core of the target, within every per-core limit.

Resources per core (from the :class:`~toolchain.targets.TargetSpec`): neurons, synapse memory (with the encoding
actually used: per input axon, "dense" stores one weight per neuron of the chunk, "sparse" one weight plus an index
per stored synapse, whichever is cheaper; groups of synapses and words as in :meth:`TargetSpec.synapse_bits`;
on shared-memory targets the neuron state is charged too), input axons (one per (synapse group, source neuron)
with a stored synapse into the core), output axons (one per (synapse group, source neuron, destination core)),
and neuron profiles (distinct (du, dv, vth, reset, spiking) sets) where the target limits them; neuron memory
(each neuron's :meth:`TargetSpec.state_bits` of its kind against ``neuron_memory_bits``) where the target sets it.

Graded messages (issue 16): a synapse group whose source sends graded payloads (a sigma-delta group or a graded
input port, ``Program.message_bits(src) > 0``) is charged ``graded_synapse_extra_bits`` more per synapse in every
format (dense, sparse, shared conv taps), and each of the source's output axons costs
:meth:`TargetSpec.axon_entries` entries (address plus payload words); a sigma-delta neuron's state (sigma, act,
residue, error, bias: Lava's ``PySigmaDeltaModelFixed``) is charged at its own width, not LIF's u, v. The state
widths follow Lava 0.10's fixed_pt models (LIF 64, SigmaDelta 112, Delta 96, Sigma 24 bits per neuron); Intel
publishes only that a graded payload has up to 32 bits, so on Loihi 2 three figures are assumptions, each one
named parameter of ``hw_targets/loihi2.toml`` (where the reasoning is written): ``graded_synapse_extra_bits = 8``
(a graded synapse stores 8 bits more), ``graded_axon_entry_bits = 32`` (a graded route takes its address entry
plus one entry per 32 payload bits: 2) and ``neuron_memory_bits = 4096 x 112`` (state memory that never binds
before the 4095-neuron limit, so sigma-delta layers are not cut finer than LIF ones). A target without graded spikes (Loihi 1) refuses
graded groups (:meth:`TargetSpec.check_graded`). The lower bound charges the same costs (graded rates in the
memory floors, axon entries in the output-axon total, the neuron-memory total), so it stays a bound.

Convolutions (:class:`~toolchain.ir.storage.Conv` storage) on a target with ``conv_encoding = "shared"`` (Loihi 2,
calibrated on Intel's PilotNet table) are charged as one shared kernel per core: per channel group, the kernel taps
(input channel, ky, kx) that the core's neurons use, each a list of the core's output channels' weights at the
layer's compressed width (:func:`conv_weight_bits`, :meth:`TargetSpec.conv_tap_bits`), and one input axon per
source core (a spike carries its position); per-position synapses stay the simulators' view. Neurons driven by a
bias input port (lava-dl's input layer) are live.

Modes (``partition(..., mode=)``): ``"pack"`` (ours, below) and ``"intel_halving"``, our emulation of Intel's
Loihi 2 compiler as its PilotNet table and log show it (:meth:`_Cutter.cut_halving`: each layer alone on its
cores; (W, H, C) grids cut along x into power-of-two slabs, halved while a nominal slab exceeds a limit; other
layers cut into ceil(need / limit) equal pieces, doubled until each fits). ``compare=True`` (default) computes the
other mode's per-layer cores beside the placement: ``report["modes"]``; :func:`per_layer_cores` reads them.

Algorithm: neurons that can never spike (no stored synapse from a live source, no bias — what structured pruning
leaves behind) are not placed, and their outgoing synapses cost nothing. Each group's live neurons are cut into
contiguous chunks, each as large as one core allows (exponential then binary search on the chunk length, costs
evaluated with numpy on the chunk's synapses), and the chunks are packed onto cores first-fit-decreasing (chunks of
different groups may share a core); then a next fit with splitting (:func:`_fill_pack`: the groups in order, each
cut where the current core is full) is tried and kept when it needs fewer cores — first fit decreasing cannot put
two layers of 0.7 cores each on fewer than 2 cores, cut they fit 1.4 (not used with shared-weight convolutions,
so PilotNet keeps its packing). Output-axon needs depend on how the targets are cut, so the cutting is repeated
until it is stable.

Lower bound (``report["lower_bound"]``, never above the cores used): max over resources of the fewest cores that
could hold the total need. Neurons and axons: totals over the layers. Synapse memory (:func:`_memory_bound`): the
exact cost of every layer on one core when one core suffices; otherwise, since a layer is cut into contiguous
chunks, at most one per core, dense groups get the least cost of any cut into at most C chunks and sparse groups
a per-axon floor over every cut (runs of an axon's sorted targets, Lagrangian on the number of runs; a dense run
costs at least one word). Two refinements (issue 14), each a proof that the earlier bound was loose, not a
change of the cost model:

* *granules*: a core's memory is a sum of granules (a dense group's chunk costs a whole number of words per
  input, so ``n_src`` words at a time), so a core holds at most the largest such sum within its capacity
  (:func:`_usable_memory`): 1581-input dense layers fill at most 7 x 1581 of Loihi 2's 12000 words;
* *shared cuts*: when the cores used exceed the fast bound, each Csr/Structured group also counts the least memory
  of any cut of its layer into chunks that fit a core, word rounding included (:func:`_least_cut_memory`, exact
  per chunk, a dynamic programme over the cut points). The per-axon floor lets every axon cut where its own
  rounding is cheapest (16-bit single dense runs, 3-synapse sparse runs); all axons of a layer share the cut, and
  on random sparse layers each axon pays ~half a word of rounding per chunk.

``benchmarks/partition.py --quick`` (loihi2, 4-layer networks, cores / bound): before, dense 1e5 4/3, dense 1e7
228/209, sparse 1e5 4/3, sparse 1e6 29/25, sparse 1e7 310/209 (worst 1.48); now 3/3, 227/227, 3/3, 29/29,
309/305 (worst 1.013). Packing was the gap for the 1e5 networks (a whole layer per core; 3 cores are enough and
the filled packing finds them), the bound for the others (granules for dense 1e7, shared cuts for sparse 1e6 and
1e7; the filled packing also saves one core at dense and sparse 1e7). The bound for convolutions stays loose (it
allows chunks as short as one output position, ~8 bits per synapse), so ``report["unsplit_estimate"]`` — the
cores needed with every layer unsplit, each axon's cheaper encoding — is reported beside it (an estimate, not a
bound: a split layer may choose dense on short chunks and need less).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..errors import ResourceError
from ..ir.storage import Conv, Csr, Dense
from ..program import CoreUsage, Placement, Program
from ..targets import TargetSpec
from . import storage_ops as so

__all__ = ["partition", "format_report", "per_layer_cores", "conv_tap_ids", "conv_weight_bits", "RESOURCES",
           "MODES"]

RESOURCES = ("neurons", "synapse_memory", "input_axons", "output_axons", "neuron_memory")
#: placement modes: "pack" (ours: maximal chunks packed first-fit-decreasing, layers may share cores) and
#: "intel_halving" (our emulation of Intel's Loihi 2 compiler: each layer alone on its cores, cut by halving)
MODES = ("pack", "intel_halving")


@dataclass
class _ConvAcc:
    """Shared-weight accounting of one Conv synapse group (``conv_encoding = "shared"`` targets)."""

    rep_of: np.ndarray  # per live target position: its block (rows of one output position and channel group share
    #                     their synapses' sources and taps; blocks are numbered in chunk order, non-decreasing)
    rptr: np.ndarray    # per block, pointer into rtaps / rcols (the block's first row's stored synapses)
    rtaps: np.ndarray   # kernel tap id cin*KH*KW + ky*KW + kx of every synapse of every block
    rcols: np.ndarray   # live source position of every synapse of every block
    ch: np.ndarray      # per live target position: its output channel
    n_taps: int        # C_in * KH * KW (tap ids are input-channel major, so conv groups are contiguous blocks)
    c_out: int
    groups: int
    bits: int          # the layer's compressed weight width (:func:`conv_weight_bits`)


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
    conv: Optional[_ConvAcc] = None    # shared-weight accounting (Conv storage on a shared-conv target)
    src_chunk: Optional[np.ndarray] = None  # shared conv: the chunk of every live source position (current cut)
    graded: bool = False     # the source sends graded payloads (Program.message_bits(src) > 0)
    axon_entries: int = 1    # output-axon entries per route of the source (TargetSpec.axon_entries)


def conv_tap_ids(w: Conv) -> np.ndarray:
    """Kernel tap of every stored synapse of ``w`` (aligned with ``w.indices``): ``cin * KH * KW + ky * KW + kx``
    with ``cin`` the synapse's input channel (int64; neurons in (W, H, C) order as :class:`Conv`). Rows of one
    (output position, channel group) share their columns, so the taps are computed on the group's first row and
    copied to the others."""
    (_, h_in, c_in), (_, h_out, c_out) = w.in_shape, w.out_shape
    _, _, kh, kw = w.kernel.shape
    cout_g = c_out // w.groups
    indptr = np.asarray(w.indptr, np.int64)
    n_out = w.shape[0]
    cnt = np.diff(indptr)
    row = np.arange(n_out, dtype=np.int64)
    rep = row - (row % c_out) % cout_g              # the first row of each row's (position, channel group)
    rows0 = np.flatnonzero(rep == row)
    lens = cnt[rows0]
    first = np.cumsum(lens) - lens                  # where each representative row starts in the compact list
    idx = np.repeat(indptr[rows0] - first, lens) + np.arange(int(lens.sum()), dtype=np.int64)
    cols = np.asarray(w.indices, np.int64)[idx]
    r = np.repeat(rows0, lens)
    x_o, y_o = np.divmod(r // c_out, h_out)
    pos_i, cin = np.divmod(cols, c_in)
    x_i, y_i = np.divmod(pos_i, h_in)
    ky = (y_i - y_o * w.stride[0] + w.padding[0]) // w.dilation[0]
    kx = (x_i - x_o * w.stride[1] + w.padding[1]) // w.dilation[1]
    taps = (cin * kh + ky) * kw + kx
    start = np.zeros(n_out, np.int64)
    start[rows0] = first
    return taps[np.repeat(start[rep] - indptr[:-1], cnt) + np.arange(int(indptr[-1]), dtype=np.int64)]


def conv_weight_bits(w: Conv) -> int:
    """Bits per weight of the layer in a compressed synapse format: the two's-complement width of the kernel's
    integers after their common power of two is factored out (Loihi keeps that as the weight exponent)."""
    k = np.rint(np.asarray(w.kernel, np.float64)).astype(np.int64)
    nz = np.abs(k[k != 0])
    if nz.size == 0:
        return 1
    g = int(np.gcd.reduce(nz))
    shift = (g & -g).bit_length() - 1
    m = k >> shift
    hi, lo = int(m.max()), int(m.min())
    return max(1, max(hi.bit_length() + 1 if hi > 0 else 1, (-lo - 1).bit_length() + 1 if lo < 0 else 1))


def _live_masks(p: Program) -> Dict[str, np.ndarray]:
    """Neurons that can ever spike or that are read out (fixed point of: bias != 0, driven by a bias input port, or
    a non-zero stored synapse from a live neuron or an input port)."""
    live = {g: (~np.asarray([grp.spiking] * grp.size, bool)) | (grp.bias_mant != 0) for g, grp in p.groups.items()}
    for q in p.inputs:  # a bias port replaces the group's bias with the input at every step: every neuron is driven
        if getattr(q, "kind", "spikes") == "bias" and q.target in live:
            live[q.target] = np.ones_like(live[q.target])
    ports = {q.name for q in p.inputs if getattr(q, "kind", "spikes") != "bias"}
    csr: Dict[str, Tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for s in p.synapses:
        if not isinstance(s.weight, Dense):
            w = s.weight if isinstance(s.weight, Csr) else s.weight.to_csr()
            csr[s.name] = (np.asarray(w.indptr, np.int64), np.asarray(w.indices), np.asarray(w.data) != 0)
    seen: Dict[str, np.ndarray] = {}
    changed = True
    while changed:
        changed = False
        for s in p.synapses:
            n_src = s.weight.shape[1]
            src_live = np.ones(n_src, bool) if s.src in ports else live[s.src]
            if s.name in seen and np.array_equal(seen[s.name], src_live):
                continue  # same sources as last pass: reaches the same targets
            seen[s.name] = src_live.copy()
            if isinstance(s.weight, Dense):
                reach = (np.asarray(s.weight.values)[:, src_live] != 0).any(axis=1)
            else:
                indptr, cols, nonzero = csr[s.name]
                hit = nonzero if src_live.all() else nonzero & src_live[cols]
                upto = np.concatenate([[0], np.cumsum(hit, dtype=np.int64)])
                reach = upto[indptr[1:]] > upto[indptr[:-1]]  # a row with any hit
            new = live[s.dst] | reach
            if not np.array_equal(new, live[s.dst]):
                live[s.dst] = new
                changed = True
    return live


def chunk_order(shape: Tuple[int, ...], channels_last: bool = False) -> np.ndarray:
    """The order in which a group's neurons are cut into chunks: position-major for (C, H, W) and (C, L) maps
    (all channels of one position together, so that a convolution's local fan-out reaches few chunks), else the
    flat order (``channels_last``: netx/Lava (W, H, C) grids, already position-major)."""
    n = int(np.prod(shape))
    if not channels_last and len(shape) in (2, 3) and shape[0] > 1 and n > shape[0]:
        return np.arange(n).reshape(shape[0], -1).T.reshape(-1)
    return np.arange(n)


def _channels_last(p: Program) -> set:
    """Groups laid out as netx/Lava (W, H, C) grids: every group of a netx Program, and the ends of Conv storage."""
    if "netx" in (p.metadata or {}):
        return set(p.groups)
    out = set()
    for s in p.synapses:
        if isinstance(s.weight, Conv):
            out.add(s.dst)
            if s.src in p.groups:
                out.add(s.src)
    return out


def _live_order(p: Program, live: Dict[str, np.ndarray]) -> Tuple[Dict[str, np.ndarray], Dict[str, np.ndarray]]:
    """Per group: the live neurons in chunk order, and every neuron's position in it (-1 when not live)."""
    idx, pos = {}, {}
    last = _channels_last(p)
    for g, grp in p.groups.items():
        order = chunk_order(grp.shape, g in last)
        idx[g] = order[live[g][order]]
        pos[g] = np.full(grp.size, -1, np.int64)
        pos[g][idx[g]] = np.arange(idx[g].size)
    return idx, pos


def _accounting(p: Program, live: Dict[str, np.ndarray], pos: Dict[str, np.ndarray], live_idx: Dict[str, np.ndarray],
                target: TargetSpec) -> List[_SG]:
    ports = {q.name: q for q in p.inputs}
    out = []
    for s in p.synapses:
        mbits = int(p.message_bits(s.src))
        gkw = {"graded": mbits > 0, "axon_entries": target.axon_entries(mbits)}
        dst_live = live[s.dst]
        src_live = np.ones(ports[s.src].size, bool) if s.src in ports else live[s.src]
        if isinstance(s.weight, Dense):
            out.append(_SG(s.name, s.src, s.dst, s.delay > 0, True, int(src_live.sum()), **gkw))
            continue
        w = s.weight if isinstance(s.weight, Csr) else s.weight.to_csr()
        shared = isinstance(w, Conv) and target.shared_conv
        taps = None

        def identity(g: str) -> bool:  # every neuron live and chunk order = index order
            return bool(live[g].all()) and bool(np.array_equal(pos[g], np.arange(pos[g].size)))

        if identity(s.dst) and (s.src in ports or identity(s.src)):
            # nothing to drop or renumber (netx Programs): the CSR arrays are the accounting view
            ptr = np.asarray(w.indptr, np.int64)
            c = np.asarray(w.indices, np.int64)
            if shared:
                taps = conv_tap_ids(w)
        else:
            rows = so.row_indices(w)
            keep = dst_live[rows] & src_live[w.indices]
            r = pos[s.dst][rows[keep]]
            c = np.asarray(w.indices[keep]) if s.src in ports else pos[s.src][w.indices[keep]]
            if shared:
                taps = conv_tap_ids(w)[keep]
            if r.size > 1 and np.any(np.diff(r) < 0):
                o = np.argsort(r, kind="stable")
                r, c = r[o], c[o]
                if taps is not None:
                    taps = taps[o]
            ptr = np.zeros(int(dst_live.sum()) + 1, np.int64)
            np.cumsum(np.bincount(r, minlength=ptr.size - 1), out=ptr[1:])
        conv = None
        if taps is not None:
            c_out, groups = int(w.out_shape[2]), int(w.groups)
            neuron = live_idx[s.dst]
            blk = (neuron // c_out) * groups + (neuron % c_out) // (c_out // groups)
            if blk.size and np.all(np.diff(blk) >= 0):
                start = np.concatenate([[True], blk[1:] != blk[:-1]]) if blk.size else np.zeros(0, bool)
            else:  # not grouped by position: every row is its own block
                start = np.ones(blk.size, bool)
            heads = np.flatnonzero(start)
            lens = ptr[heads + 1] - ptr[heads]
            rptr = np.zeros(heads.size + 1, np.int64)
            np.cumsum(lens, out=rptr[1:])
            idx = np.repeat(ptr[heads] - rptr[:-1], lens) + np.arange(int(rptr[-1]), dtype=np.int64)
            conv = _ConvAcc(np.cumsum(start) - 1, rptr, taps[idx].astype(np.int64), c[idx].astype(np.int64),
                            (neuron % c_out).astype(np.int64),
                            int(w.in_shape[2]) * int(w.kernel.shape[2]) * int(w.kernel.shape[3]), c_out, groups,
                            conv_weight_bits(w))
        out.append(_SG(s.name, s.src, s.dst, s.delay > 0, False, int(src_live.sum()), ptr,
                       c.astype(np.int64), conv, **gkw))
    return out


class _Cutter:
    """Cuts one group's live neurons into chunks that each fit one core."""

    def __init__(self, name: str, n: int, incoming: List[_SG], profiles: np.ndarray, thresholds: np.ndarray,
                 target: TargetSpec, kind: str = "lif"):
        self.name, self.n, self.incoming, self.t = name, n, incoming, target
        self.state_bits = target.state_bits(kind)         # neuron memory per neuron
        self.shared_state = target.shared_state_bits(kind)  # synapse memory per neuron (shared-memory targets)
        self.profiles, self.thresholds = profiles, thresholds
        self.one_profile = np.unique(profiles).size <= 1
        self.one_vth = np.unique(thresholds).size <= 1
        self.fan_prefix = np.zeros(n + 1, np.int64)
        self.evals = 0
        self.memo: Dict[Tuple[int, int], Dict[str, int]] = {}
        self.grid: Optional[Tuple[int, int, np.ndarray]] = None   # (W, H*C, live neurons) of a (W, H, C) grid
        self.grid_shape: Tuple[int, ...] = ()
        self.halving_state: Optional[int] = None
        self.core_shape: Tuple[int, ...] = ()

    def set_grid(self, shape: Tuple[int, ...], live_idx: np.ndarray) -> None:
        """Declare the group a (W, H, C) grid in flat order (x major), for :meth:`cut_halving`."""
        self.grid_shape = tuple(int(v) for v in shape)
        self.grid = (self.grid_shape[0], int(np.prod(self.grid_shape[1:])), np.asarray(live_idx))

    def cost(self, a: int, b: int) -> Dict[str, int]:
        """Resources of the chunk of live positions [a, b) on one core (memoised until :meth:`forget`)."""
        hit = self.memo.get((a, b))
        if hit is not None:
            return hit
        self.memo[(a, b)] = out = self._cost(a, b)
        return out

    def forget(self) -> None:
        """Drop memoised costs (the output axons or the source cuts changed)."""
        self.memo.clear()

    def _cost(self, a: int, b: int) -> Dict[str, int]:
        self.evals += 1
        t = self.t
        k = b - a
        mem = self.shared_state * k
        axons = 0
        for sg in self.incoming:
            if sg.dense:
                if sg.n_src:
                    axons += sg.n_src
                    mem += sg.n_src * int(t.synapse_bits(np.array([k]), sparse=False, delay=sg.delay,
                                                         graded=sg.graded)[0])
                continue
            seg = sg.cols[sg.ptr[a]:sg.ptr[b]]
            if seg.size == 0:
                continue
            if sg.conv is not None:
                cv = sg.conv
                lo, hi = cv.rptr[cv.rep_of[a]], cv.rptr[cv.rep_of[b - 1] + 1]
                # shared-weight format: one input axon per source core (a spike carries its position and channel)
                axons += 1 if sg.src_chunk is None else int(np.count_nonzero(np.bincount(sg.src_chunk[cv.rcols[lo:hi]])))
                mem += _conv_bits(cv, cv.rtaps[lo:hi], cv.ch[a:b], t, sg.graded)
                continue
            if seg.size * 8 < sg.n_src:
                cnt = np.unique(seg, return_counts=True)[1]
            else:
                cnt = np.bincount(seg, minlength=sg.n_src)
                cnt = cnt[cnt > 0]
            ax = int(cnt.size)
            axons += ax
            sparse = int(t.synapse_bits(cnt, sparse=True, delay=sg.delay, graded=sg.graded).sum())
            dense = ax * int(t.synapse_bits(np.array([k]), sparse=False, delay=sg.delay, graded=sg.graded)[0])
            mem += min(sparse, dense)
        prof = 1 if self.one_profile else int(np.unique(self.profiles[a:b]).size)
        vths = 1 if self.one_vth else int(np.unique(self.thresholds[a:b]).size)
        return {"neurons": k, "synapse_memory": int(mem), "input_axons": axons,
                "output_axons": int(self.fan_prefix[b] - self.fan_prefix[a]), "profiles": prof, "thresholds": vths,
                "neuron_memory": k * self.state_bits}

    def violations(self, c: Dict[str, int]) -> List[Tuple[str, int, int]]:
        t = self.t
        lim = {"neurons": t.neurons_per_core, "synapse_memory": t.synapse_memory_bits,
               "input_axons": t.input_axons_per_core, "output_axons": t.output_axons_per_core,
               "profiles": t.neuron_profiles_per_core, "thresholds": t.threshold_profiles_per_core,
               "neuron_memory": t.neuron_memory_bits}
        return [(r, c[r], lim[r]) for r in lim if lim[r] > 0 and c[r] > lim[r]]

    def fits(self, a: int, b: int) -> bool:
        return not self.violations(self.cost(a, b))

    # ------------------------------------------------------------------ Intel's halving (mode "intel_halving")
    def cut_halving(self) -> List[Tuple[int, int]]:
        """Our emulation of Intel's Loihi 2 compiler, calibrated on its PilotNet table (see the module docstring):
        a (W, H, C) grid is cut along x into slabs of w whole columns, w the largest power of two (halving from
        2**ceil(log2 W)) whose nominal slab (w * H * C neurons, also where the last slab is narrower) is within the
        neuron limit and whose every actual slab fits every resource; any other layer is cut into r equal pieces,
        r = max over resources of ceil(need of the whole layer on one core / limit) (Intel's log: "max_ratio"),
        and r is doubled until every piece fits. A later call (output axons changed) continues from its last
        state."""
        n = self.n
        if n == 0:
            return []
        if self.grid is not None:
            W, HC, live_idx = self.grid
            w = self.halving_state if self.halving_state is not None else 1 << (W - 1).bit_length()
            while w >= 1:
                self.halving_state = w
                if w * HC > self.max_neurons():  # the nominal slab of w columns, as Intel allocates it
                    w //= 2
                    continue
                bounds = np.searchsorted(live_idx, np.arange(0, W + w, w).clip(max=W) * HC)
                chunks = [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
                if all(self.fits(a, b) for a, b in chunks):
                    self.core_shape = (min(w, W),) + self.grid_shape[1:]
                    return chunks
                w //= 2
            self.grid = None  # one column does not fit: cut its neurons as a 1-D layer
            self.halving_state = None
        r = self.halving_state
        if r is None:
            v = self.violations(self.cost(0, n))
            r = max([1] + [-(-need // lim) for _, need, lim in v])
        while True:
            r = min(r, n)
            self.halving_state = r
            bounds = -(-(np.arange(r + 1, dtype=np.int64) * n) // r)  # r pieces, sizes differ by at most one
            chunks = [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
            bad = [(a, b) for a, b in chunks if not self.fits(a, b)]
            if not bad:
                self.core_shape = (max(b - a for a, b in chunks),)
                return chunks
            if r == n:
                a, b = bad[0]
                rs, need, limit = self.violations(self.cost(a, b))[0]
                raise _single_neuron_error(self.name, rs, need, limit)
            r *= 2

    def max_neurons(self) -> int:
        """Neurons of this group one core can hold: ``neurons_per_core``, less where the neuron memory binds."""
        lim = self.t.neurons_per_core
        if self.t.neuron_memory_bits and self.state_bits:
            lim = min(lim, self.t.neuron_memory_bits // self.state_bits)
        return lim

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


def _conv_bits(cv: _ConvAcc, taps: np.ndarray, ch: np.ndarray, t: TargetSpec, graded: bool = False) -> int:
    """Shared-weight synapse memory of one core: per conv group, (kernel taps its synapses use) x (one tap list for
    the group's output channels on the core, :meth:`TargetSpec.conv_tap_bits`)."""
    used = np.bincount(taps, minlength=cv.n_taps) > 0
    chans = np.bincount(ch, minlength=cv.c_out) > 0
    if cv.groups == 1:
        return int(used.sum()) * int(t.conv_tap_bits(np.array([int(chans.sum())]), cv.bits, graded)[0])
    n_t = used.reshape(cv.groups, -1).sum(axis=1)
    n_c = chans.reshape(cv.groups, -1).sum(axis=1)
    return int((n_t * t.conv_tap_bits(n_c, cv.bits, graded)).sum())


_SUGGEST = {
    "synapse_memory": "prune its synapses (structured pruning removes whole axons), lower the weight precision, "
                      "or use a target with more synapse memory per core",
    "input_axons": "prune its inputs (fewer source neurons per target neuron) or use a target with more input "
                   "axons per core",
    "output_axons": "prune its fan-out or use a target with more output axons per core",
    "neurons": "use a target with more neurons per core",
    "neuron_memory": "use a neuron kind with less state or a target with more neuron memory per core",
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
    """Output axons each live source neuron needs: per synapse group, the chunks of its target it reaches (times
    the group's :attr:`_SG.axon_entries`: a graded route costs more entries)."""
    fan = {g: np.zeros(n, np.int64) for g, n in n_live.items()}
    for sg in sgs:
        if sg.src not in fan:
            continue
        if sg.dense:
            fan[sg.src] += len(chunks[sg.dst]) * sg.axon_entries if sg.n_src else 0
            continue
        f = fan[sg.src]
        mark = np.zeros(f.size, bool)
        for a, b in chunks[sg.dst]:
            seg = sg.cols[sg.ptr[a]:sg.ptr[b]]
            if seg.size:
                mark[:] = False
                mark[seg] = True
                f += mark * sg.axon_entries if sg.axon_entries != 1 else mark
    return fan


def _unsplit_needs(sgs: List[_SG], n_live: Dict[str, int], target: TargetSpec,
                   kinds: Optional[Dict[str, str]] = None) -> Dict[str, int]:
    """Total need per resource with every layer on one core (each axon's cheaper encoding for the whole layer).

    The neuron and axon totals are true lower bounds for any partition (every live neuron is placed once, every
    input axon with a synapse and every source neuron with a target is needed on at least one core); the synapse
    memory total is only an estimate: a split layer may choose dense on short chunks and need less.
    """
    kinds = kinds or {}
    need = {"neurons": int(sum(n_live.values())), "synapse_memory": 0, "input_axons": 0, "output_axons": 0,
            "neuron_memory": int(sum(n * target.state_bits(kinds.get(g, "lif")) for g, n in n_live.items()))}
    need["synapse_memory"] += int(sum(n * target.shared_state_bits(kinds.get(g, "lif")) for g, n in n_live.items()))
    for sg in sgs:
        n_dst = n_live[sg.dst]
        if sg.dense:
            if sg.n_src and n_dst:
                need["synapse_memory"] += sg.n_src * int(target.synapse_bits(np.array([n_dst]), sparse=False,
                                                                             delay=sg.delay, graded=sg.graded)[0])
                need["input_axons"] += sg.n_src
                if sg.src in n_live:
                    need["output_axons"] += sg.n_src * sg.axon_entries
            continue
        if sg.cols.size == 0:
            continue
        cnt = np.bincount(sg.cols)
        cnt = cnt[cnt > 0]
        if sg.conv is not None:
            need["synapse_memory"] += _conv_bits(sg.conv, sg.conv.rtaps, sg.conv.ch, target, sg.graded)
            need["input_axons"] += 1  # one per source core, at least one
            if sg.src in n_live:
                need["output_axons"] += int(cnt.size) * sg.axon_entries
            continue
        sparse = int(target.synapse_bits(cnt, sparse=True, delay=sg.delay, graded=sg.graded).sum())
        dense = cnt.size * int(target.synapse_bits(np.array([n_dst]), sparse=False, delay=sg.delay,
                                                   graded=sg.graded)[0])
        need["synapse_memory"] += min(sparse, dense)
        need["input_axons"] += int(cnt.size)
        if sg.src in n_live:
            need["output_axons"] += int(cnt.size) * sg.axon_entries
    return need


def _block_costs(target: TargetSpec, sparse: bool, delay: bool, graded: bool = False) -> np.ndarray:
    """``synapse_bits`` of one axon with 0..block_max_synapses synapses (index = count)."""
    return target.synapse_bits(np.arange(target.block_max_synapses + 1), sparse=sparse, delay=delay, graded=graded)


class _DenseChunks:
    """Lower bound on ``sum_i synapse_bits(k_i, dense)`` over every split of n neurons into at most m chunks.

    With B = block_max_synapses, F = the cost of a full block and f(r) that of a block of r < B synapses, a chunk
    of k = B*q + r neurons costs F*q + f(r) (the greedy blocks of :meth:`TargetSpec.synapse_bits`), so chunks
    k_1..k_m with sum n cost exactly (F*n + sum_i (B*f(r_i) - F*r_i)) / B. ``E[m][rho]`` is the least
    sum_i (B*f(r_i) - F*r_i) over at most m remainders with sum = rho (mod B) (a min-plus recursion over m);
    dropping the constraint sum r_i <= n only lowers the minimum. The bound is also at least n * min_b f(b)/b
    (the cheapest rate per neuron of any block), which holds for any number of chunks. m = 1 gives the exact
    cost of the unsplit layer.
    """

    def __init__(self, target: TargetSpec, delay: bool, graded: bool = False):
        f = _block_costs(target, False, delay, graded)
        self.B = B = target.block_max_synapses
        self.F = int(f[B])
        r = np.arange(B)
        self.v = B * f[:B] - self.F * r        # v[0] = 0: a chunk of whole blocks
        self.f = f
        inf = np.iinfo(np.int64).max // 4
        e0 = np.full(B, inf, np.int64)
        e0[0] = 0
        self.E = [e0]
        self.shift = (r[:, None] - r[None, :]) % B   # shift[rho, r] = rho - r (mod B)

    def _E(self, m: int) -> np.ndarray:
        while len(self.E) <= m:
            prev = self.E[-1]
            self.E.append(np.minimum(prev, (prev[self.shift] + self.v[None, :]).min(axis=1)))
        return self.E[m]

    def bound(self, n: int, m: int) -> int:
        if n <= 0:
            return 0
        m = max(1, min(m, n))
        exact = -(-(self.F * n + int(self._E(m)[n % self.B])) // self.B)
        b = np.arange(1, self.B + 1)
        rate = int((-(-(n * self.f[1:]) // b)).min())
        return max(exact, rate)


def _rate(target: TargetSpec, sparse: bool, delay: bool, graded: bool = False) -> float:
    """The least bits per synapse of any axon's block list: ``min_m synapse_bits(m) / m`` (a full block, or a
    partial one when cheaper per synapse), so ``synapse_bits(m) >= m * rate`` for every m."""
    f = _block_costs(target, sparse, delay, graded).astype(np.float64)
    m = np.arange(1, f.size)
    return float(min(f[-1] / (f.size - 1), (f[1:] / m).min()))


#: run penalties (in units of the sparse rate) tried by :func:`_axon_floor`; each gives a valid bound
_RUN_PENALTIES = (0.0, 1.0, 4.0, 16.0, 64.0, 256.0)
#: weights a of the one-word minimum of a dense run in the cost models min(s m, a word + (1 - a) d span) of
#: :func:`_axon_floor` (a dense run costs max(word, d span) >= any such mixture)
_WORD_SHARES = (0.5, 0.75, 1.0)


def _axon_floor(sg: _SG, n_dst: int, target: TargetSpec) -> Tuple[np.ndarray, np.ndarray]:
    """Per input axon of a Csr/Structured group, lower bounds on its synapse memory over every cut of its
    target layer into contiguous chunks: returns ``(table, cnt)`` with ``table[:, q]`` the ``q``-th Lagrangian
    value ``B_q`` and ``cnt`` the axon's synapse count; the axon costs at least ``B_q - lam_q * min(cnt, C)`` on
    a partition with at most C chunks per layer, for every q (penalties ``_RUN_PENALTIES`` times the sparse rate,
    for each of two cost models).

    An input axon's synapses into one chunk are a run of consecutive entries of its sorted target positions
    x_1 < ... < x_c. On that chunk they cost min(sparse_bits(m), dense_bits(k)) with m the run's size and
    k >= the run's span x_last - x_first + 1 (dense stores a weight for every neuron of the chunk). With the
    per-synapse rates s = min sparse_bits(m)/m and d = min dense_bits(k)/k (:func:`_rate`) a run costs at least
    min(m s, span d); it also costs at least min(m s', span d') + h with s', d' the bits per synapse without
    headers and h one block header (every run has at least one block). With at most R = min(c, C) runs (one per
    chunk it reaches), for any penalty lam >= 0 the least cost is at least min over all cuts of (sum over runs of
    (run cost + lam)) - lam R (weak duality). That minimum is an exact dynamic programme in O(c) with two running
    minima (sparse and dense runs ending at synapse i), vectorised over the axons one synapse position at a time.
    """
    rows = np.repeat(np.arange(n_dst, dtype=np.int64), np.diff(sg.ptr))
    order = np.argsort(sg.cols, kind="stable")  # by axon; rows stay ascending within an axon (CSR row order)
    x = rows[order].astype(np.float64)
    cnt = np.bincount(sg.cols)
    cnt = cnt[cnt > 0]
    starts = np.concatenate([[0], np.cumsum(cnt)[:-1]]).astype(np.int64)
    by_len = np.argsort(-cnt, kind="stable")
    cnt_s, starts_s = cnt[by_len], starts[by_len]
    # two valid cost models, each with every penalty: (rate per synapse, no fixed cost) and (bits per synapse
    # without headers, one header per run)
    s0, d0 = _rate(target, True, sg.delay, sg.graded), _rate(target, False, sg.delay, sg.graded)
    per = target.weight_bits + (target.delay_bits if sg.delay else 0) + \
        (target.graded_synapse_extra_bits if sg.graded else 0)
    s1, d1, h = per + target.sparse_index_bits, per, target.block_header_bits
    pen = s0 * np.asarray(_RUN_PENALTIES)
    # (sparse bits per synapse, dense bits per position, fixed cost of a run, fixed cost of a dense run)
    models = [(s0, d0, 0.0, 0.0), (float(s1), float(d1), float(h), 0.0)] + \
        [(s0, (1 - a) * d0, 0.0, a * target.word_bits) for a in _WORD_SHARES]
    s = np.concatenate([np.full(pen.size, m[0]) for m in models])[None, :]
    d = np.concatenate([np.full(pen.size, m[1]) for m in models])[None, :]
    start = np.concatenate([pen + m[2] for m in models])[None, :]
    dstart = np.concatenate([np.full(pen.size, m[3]) for m in models])[None, :]
    n = cnt.size
    best = np.zeros((n, s.shape[1]))            # best_{i-1}
    min_sp = np.full((n, s.shape[1]), np.inf)   # min_j best_{j-1} - s j
    min_de = np.full((n, s.shape[1]), np.inf)   # min_j best_{j-1} - d x_j
    for t in range(int(cnt_s[0])):
        k = int(np.searchsorted(-cnt_s, -t, side="left"))  # axons with more than t synapses (a prefix)
        xi = x[starts_s[:k] + t][:, None]
        b = best[:k]
        min_sp[:k] = np.minimum(min_sp[:k], b - s * t)
        min_de[:k] = np.minimum(min_de[:k], b - d * xi)
        best[:k] = start + np.minimum(s * (t + 1) + min_sp[:k], dstart + d * (xi + 1.0) + min_de[:k])
    table = np.empty_like(best)
    table[by_len] = best
    return table, cnt


def _memory_bound(sgs: List[_SG], n_live: Dict[str, int], target: TargetSpec, unsplit: int,
                  exact_cuts: bool = False, cache: Optional[dict] = None,
                  kinds: Optional[Dict[str, str]] = None) -> Tuple[int, int]:
    """The fewest cores C whose synapse memory can hold the network (a lower bound), and the memory need at C.

    need(1) = ``unsplit`` (:func:`_unsplit_needs`: every layer on one core, exact). For C >= 2: neuron state
    (shared memory) + per dense group n_src * (least dense cost of its layer cut into at most min(C, n) chunks,
    :class:`_DenseChunks`) + per Csr/Structured group, per axon, the best of the Lagrangian floors of
    :func:`_axon_floor`. A partition onto C cores has at most C chunks per layer (each chunk is cut as large as
    one core allows) and its synapse memory, summed over the cores, is at most C * capacity, so
    need(C) <= C * capacity is necessary; need(C) does not grow with C, so the first C that passes is a lower
    bound. Word rounding is ignored where it only adds, and nothing assumes that ``synapse_bits`` is subadditive
    (it is not: two dense chunks of 60 can cost less than one of 120). With ``exact_cuts`` a Csr/Structured group
    also counts at least :func:`_least_cut_memory` (the least memory of any cut of its layer into chunks that fit
    one core, word rounding included). The capacity is what one core can really hold (:func:`_usable_memory`).
    """
    M = target.synapse_memory_bits
    kinds = kinds or {}
    state = int(sum(n * target.shared_state_bits(kinds.get(g, "lif")) for g, n in n_live.items()))
    dense: List[Tuple[int, int, _DenseChunks]] = []
    tables: Dict[Tuple[bool, bool], _DenseChunks] = {}
    floors: List[Tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for sg in sgs:
        n_dst = n_live[sg.dst]
        if not n_dst:
            continue
        if sg.dense:
            if sg.n_src:
                key = (sg.delay, sg.graded)
                if key not in tables:
                    tables[key] = _DenseChunks(target, sg.delay, sg.graded)
                dense.append((sg.n_src, n_dst, tables[key]))
            continue
        if sg.cols.size == 0:
            continue
        if sg.conv is not None:
            # shared weights: every chunk holds at least the taps of one of its positions for one channel, and
            # there is at least one chunk
            per_row = np.diff(sg.ptr)
            state += int(per_row.min()) * int(target.conv_tap_bits(np.array([1]), sg.conv.bits, sg.graded)[0])
            continue
        cache = {} if cache is None else cache
        if sg.name not in cache:  # the same floors for a second call (``exact_cuts``)
            cache[sg.name] = _axon_floor(sg, n_dst, target)
        table, per_axon = cache[sg.name]
        pen = _rate(target, True, sg.delay, sg.graded) * np.asarray(_RUN_PENALTIES)
        floors.append((table, per_axon, np.tile(pen, table.shape[1] // pen.size),
                       _least_cut_memory(sg, n_dst, target) if exact_cuts else 0))

    def csr_split(c: int) -> float:
        return sum(max(float(np.maximum((tb - lam[None, :] * np.minimum(k, c)[:, None]).max(axis=1), 0.0).sum()),
                       exact) for tb, k, lam, exact in floors)

    def need(c: int) -> float:  # c >= 2
        return state + sum(ns * t.bound(nd, c) for ns, nd, t in dense) + csr_split(c)

    if unsplit <= M:
        return 1, int(unsplit)
    M = _usable_memory(sgs, n_live, target, kinds=kinds)
    floor = state + sum(ns * t.bound(nd, nd) for ns, nd, t in dense) + csr_split(10 ** 12)
    c = max(2, int(-(-floor // M)))
    while need(c) > c * M:
        c += 1
    return c, int(math.ceil(need(c)))


def _least_cut_memory(sg: _SG, n_dst: int, target: TargetSpec, max_cells: int = 1 << 25) -> int:
    """The least synapse memory of one Csr/Structured group over every cut of its live target positions into
    contiguous chunks each of whose memory fits one core (0 when too large to tabulate).

    The memory of a chunk [a, b) is exactly what :meth:`_Cutter._cost` charges: per input axon with m > 0 synapses
    into the chunk, min(sparse bits of m, dense bits of b - a), word rounding included. It never decreases as the
    chunk grows, so for every start a the chunks [a, a + t) are tabulated for t = 1, 2, ... while one still fits
    (all starts at once: per-start synapse counts per axon and a histogram of those counts), then a dynamic
    programme over the end positions gives the least total. Every partition cuts the layer into such chunks (a
    chunk is what one core holds of a layer), so this is a lower bound on the layer's memory in any partition;
    unlike the per-axon floors of :func:`_axon_floor` it knows that all axons share the cut, so each axon's word
    rounding is paid where the chunks really end.
    """
    M = target.synapse_memory_bits
    n_src = int(sg.cols.max()) + 1 if sg.cols.size else 0
    if n_dst == 0 or n_src == 0 or n_dst * n_src > max_cells:
        return 0
    kmax = min(n_dst, target.neurons_per_core)
    pairs = np.repeat(np.arange(n_dst, dtype=np.int64), np.diff(sg.ptr)) * n_src + sg.cols
    if np.unique(pairs).size != pairs.size:
        return 0  # a repeated (axon, neuron) pair: not tabulated (0 is a valid floor)
    sparse_cost = target.synapse_bits(np.arange(kmax + 1), sparse=True, delay=sg.delay,
                                      graded=sg.graded).astype(np.int64)
    dense_cost = target.synapse_bits(np.arange(kmax + 1), sparse=False, delay=sg.delay,
                                     graded=sg.graded).astype(np.int64)
    table: List[np.ndarray] = []  # table[t - 1][a] = memory of [a, a + t) (inf when it does not fit)
    ptr, cols = sg.ptr, sg.cols.astype(np.int32)
    lens_all = np.diff(ptr)
    block = max(1, min(n_dst, (1 << 21) // n_src))  # starts per block: its counts (int16) stay in cache
    for s0 in range(0, n_dst, block):
        s1 = min(n_dst, s0 + block)
        nb = s1 - s0
        counts = np.zeros(nb * n_src, np.int16)  # synapse counts <= neurons_per_core < 2^15
        hist_w = min(kmax, 64) + 1                 # per start: axons by synapse count 0..hist_w-1 (widened)
        hist = np.zeros(nb * hist_w, np.int64)
        fit = np.ones(nb, bool)
        for t in range(1, kmax + 1):
            m = min(nb, n_dst - t + 1 - s0)        # starts s0..s0+m-1 add neuron a + t - 1
            if m <= 0 or not fit[:m].any():
                break
            if t >= hist_w:
                wider = np.zeros((nb, min(kmax, 2 * hist_w) + 1), np.int64)
                wider[:, :hist_w] = hist.reshape(nb, hist_w)
                hist_w = wider.shape[1]
                hist = wider.reshape(-1)
            r0 = s0 + t - 1
            owner = np.repeat(np.arange(m, dtype=np.int32), lens_all[r0:r0 + m])
            cell = owner * np.int32(n_src) + cols[ptr[r0]:ptr[r0 + m]]
            old = counts[cell]                     # one synapse per (axon, neuron): no duplicate cells
            counts[cell] = old + 1
            had = old > 0
            hist -= np.bincount(owner[had].astype(np.int64) * hist_w + old[had], minlength=hist.size)
            hist += np.bincount(owner.astype(np.int64) * hist_w + old.astype(np.int64) + 1, minlength=hist.size)
            per_m = np.minimum(sparse_cost[:t + 1], dense_cost[t])
            mem = hist.reshape(nb, hist_w)[:m, :t + 1] @ per_m
            fit[:m] &= mem <= M
            while len(table) < t:
                table.append(np.full(n_dst, np.inf))
            table[t - 1][s0:s0 + m] = np.where(fit[:m], mem, np.inf)
    if not table:
        return 0
    best = np.full(n_dst + 1, np.inf)
    best[0] = 0.0
    T = np.stack(table)                            # (t, a)
    for b in range(1, n_dst + 1):
        t = np.arange(1, min(b, len(table)) + 1)
        best[b] = (best[b - t] + T[t - 1, b - t]).min()
    return int(best[n_dst]) if np.isfinite(best[n_dst]) else 0


def _usable_memory(sgs: List[_SG], n_live: Dict[str, int], target: TargetSpec, max_units: int = 1 << 22,
                   kinds: Optional[Dict[str, str]] = None) -> int:
    """The most synapse memory one core can really hold: the largest sum of the memory granules at most the
    capacity (unbounded subset sum). Every chunk's memory is a sum of granules: a dense group's chunk costs
    ``n_src * synapse_bits(k)`` and ``synapse_bits`` is a whole number of words, so ``n_src`` words at a time; a
    sparse or conv axon, a tap list, a whole number of words; neuron state (shared memory) ``neuron_state_bits``
    per neuron. With only dense groups of wide inputs the granules are coarse: 1581 inputs of 64-bit words fill
    at most 7 x 1581 of Loihi 2's 12000 words (92%), a loss that no partition can avoid. The capacity itself
    when any granule is one word (sparse, conv) or the sum cannot be tabulated within ``max_units`` granules."""
    M, w = target.synapse_memory_bits, target.word_bits
    gens = {w * sg.n_src for sg in sgs if sg.dense and sg.n_src and n_live[sg.dst]}
    if any(not sg.dense and n_live[sg.dst] and sg.cols.size for sg in sgs):
        gens.add(w)
    for g, n in n_live.items():  # neuron state (shared memory): its kind's bits per neuron
        b = target.shared_state_bits((kinds or {}).get(g, "lif"))
        if n and b:
            gens.add(int(b))
    if not gens:
        return M
    u = math.gcd(*gens)
    n = M // u
    units = sorted({g // u for g in gens})
    if units[0] == 1 or n > max_units:
        return n * u
    reach = np.zeros(n + 1, bool)
    reach[0] = True
    for g in units:  # closing under +g, +2g, +4g, ... adds every multiple of g
        step = g
        while step <= n:
            reach[step:] |= reach[:-step]
            step *= 2
    return int(np.flatnonzero(reach)[-1]) * u


def _cutters(p: Program, target: TargetSpec, n_live: Dict[str, int], into: Dict[str, List[_SG]],
             prof: Dict[str, np.ndarray], thr: Dict[str, np.ndarray], live: Dict[str, np.ndarray],
             live_idx: Dict[str, np.ndarray]) -> Dict[str, _Cutter]:
    cut = {g: _Cutter(g, n_live[g], into[g], prof[g], thr[g], target, p.groups[g].neuron)
           for g in p.groups}
    for g in _channels_last(p):
        grp = p.groups[g]
        if len(grp.shape) == 3:
            cut[g].set_grid(grp.shape, live_idx[g])
    return cut


def _cut(p: Program, target: TargetSpec, sgs: List[_SG], n_live: Dict[str, int], cutters: Dict[str, _Cutter],
         mode: str, max_rounds: int) -> Dict[str, List[Tuple[int, int]]]:
    """Every group's chunks (each fits one core), repeated until the output axons they imply fit as well."""
    def cut(g: str) -> List[Tuple[int, int]]:
        if not n_live[g]:
            return []
        return cutters[g].cut_halving() if mode == "intel_halving" else cutters[g].cut()

    for sg in sgs:
        sg.src_chunk = None
    chunks = {g: cut(g) for g in p.groups}
    for _ in range(max_rounds):
        for sg in sgs:
            if sg.conv is not None and sg.src in chunks:
                ids = np.zeros(n_live[sg.src], np.int64)
                for i, (a, b) in enumerate(chunks[sg.src]):
                    ids[a:b] = i
                sg.src_chunk = ids
        fan = _fanout(sgs, chunks, n_live)
        for g, f in fan.items():
            if f.size and f.max() > target.max_fan_out_cores:
                err = ResourceError(f"a neuron needs {int(f.max())} destination cores (output-axon entries "
                                    f"for graded sources), the limit is "
                                    f"{target.max_fan_out_cores}; suggestion: {_SUGGEST['fan_out']}", node=g,
                                    field="fan_out")
                err.resource, err.need, err.limit = "fan_out", int(f.max()), target.max_fan_out_cores  # type: ignore
                raise err
            np.cumsum(f, out=cutters[g].fan_prefix[1:])
        for c in cutters.values():
            c.forget()
        bad = [g for g in p.groups if any(cutters[g].violations(cutters[g].cost(a, b)) for a, b in chunks[g])]
        if not bad:
            return chunks
        for g in bad:
            chunks[g] = cut(g)
    raise ResourceError("output axons: the partition did not converge", field="output_axons")  # pragma: no cover


def _caps(target: TargetSpec) -> np.ndarray:
    """Per-core capacity in :data:`RESOURCES` order (neuron memory not modelled: no limit)."""
    return np.array([target.neurons_per_core, target.synapse_memory_bits, target.input_axons_per_core,
                     target.output_axons_per_core, target.neuron_memory_bits or np.inf], np.float64)


def _vec(c: Dict[str, int]) -> np.ndarray:
    """A chunk's cost (:meth:`_Cutter.cost`) in :data:`RESOURCES` order."""
    return np.array([c["neurons"], c["synapse_memory"], c["input_axons"], c["output_axons"], c["neuron_memory"]],
                    np.float64)


def _pack(p: Program, target: TargetSpec, chunks: Dict[str, List[Tuple[int, int]]], cutters: Dict[str, _Cutter],
          prof: Dict[str, np.ndarray], thr: Dict[str, np.ndarray], share: bool):
    """Chunks onto cores: first fit decreasing when ``share`` (chunks of different groups may share a core), else
    one core per chunk. Returns (n_cores, used[n, 5], core_groups, core_prof, core_of_chunk list)."""
    caps = _caps(target)
    items = []
    for g in p.groups:
        for a, b in chunks[g]:
            vec = _vec(cutters[g].cost(a, b))
            items.append((float((vec / caps).max()), g, a, b, vec, set(prof[g][a:b].tolist()),
                          set(thr[g][a:b].tolist())))
    if share:
        items.sort(key=lambda it: -it[0])
    used = np.zeros((max(len(items), 1), caps.size), np.float64)
    core_groups: List[set] = []
    core_prof: List[set] = []
    core_thr: List[set] = []
    placed = []
    P, TP = target.neuron_profiles_per_core, target.threshold_profiles_per_core
    n_cores = 0
    for _, g, a, b, vec, ps, ts in items:
        chosen = -1
        if share and n_cores:
            for c in np.flatnonzero(np.all(used[:n_cores] + vec <= caps, axis=1)):
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
        placed.append((g, a, b, chosen))
    return n_cores, used, core_groups, core_prof, placed


def _fill_pack(p: Program, target: TargetSpec, sgs: List[_SG], n_live: Dict[str, int], cutters: Dict[str, _Cutter],
               prof: Dict[str, np.ndarray], thr: Dict[str, np.ndarray], max_rounds: int = 4):
    """Next fit with splitting: the groups in order, each cut where the current core is full (the largest chunk
    that still fits beside what the core holds, by binary search on the chunk's end), the rest on new cores.
    First fit decreasing packs whole chunks and so leaves a core's remainder empty when the next chunk is larger
    (two layers of 0.7 cores each take 2 cores; cut, they take 1.4). The output axons of a chunk depend on how its
    targets are cut, so the fill is repeated with the fan-out of its own cut until every core fits (else None).
    Returns ``(chunks, packed)`` as :func:`_cut` and :func:`_pack`, or None. Not used with shared-weight
    convolutions (their input axons depend on the source cut as well)."""
    if any(sg.conv is not None for sg in sgs):
        return None
    caps = _caps(target)
    P, TP = target.neuron_profiles_per_core, target.threshold_profiles_per_core

    def vec(g: str, a: int, b: int) -> Tuple[np.ndarray, bool]:
        c = cutters[g].cost(a, b)
        ok = not cutters[g].violations(c)
        return _vec(c), ok

    for _ in range(max_rounds):
        chunks: Dict[str, List[Tuple[int, int]]] = {g: [] for g in p.groups}
        used: List[np.ndarray] = []
        groups: List[set] = []
        profs: List[set] = []
        thrs: List[set] = []
        placed = []
        for g in p.groups:
            a, n = 0, n_live[g]
            while a < n:
                cur = len(used) - 1

                def fits(b: int) -> bool:
                    v, ok = vec(g, a, b)
                    if not ok:
                        return False
                    if cur < 0:
                        return True
                    if P and len(profs[cur] | set(prof[g][a:b].tolist())) > P:
                        return False
                    if TP and len(thrs[cur] | set(thr[g][a:b].tolist())) > TP:
                        return False
                    return bool(np.all(used[cur] + v <= caps))

                lo, hi = a, n + 1          # fits(lo) (empty chunk), not fits(hi)
                if fits(n):
                    lo = n
                else:
                    while hi - lo > 1:
                        mid = (lo + hi) // 2
                        if fits(mid):
                            lo = mid
                        else:
                            hi = mid
                if lo == a:                # nothing fits beside the current core's contents: a new core
                    if cur >= 0 and not used[cur].any():
                        return None        # not even on an empty core (cannot happen after a successful cut)
                    used.append(np.zeros(caps.size, np.float64))
                    groups.append(set())
                    profs.append(set())
                    thrs.append(set())
                    continue
                if cur < 0:
                    used.append(np.zeros(caps.size, np.float64))
                    groups.append(set())
                    profs.append(set())
                    thrs.append(set())
                    cur = 0
                used[cur] += vec(g, a, lo)[0]
                groups[cur].add(g)
                profs[cur] |= set(prof[g][a:lo].tolist())
                thrs[cur] |= set(thr[g][a:lo].tolist())
                chunks[g].append((a, lo))
                placed.append((g, a, lo, cur))
                a = lo
                if a < n:  # the rest of the group on a new core: a second chunk of the same group beside the
                    # first could be cheaper on its own (each chunk its own sparse/dense choice) than the two as one
                    # core's rows, which is what the core holds; one chunk per group per core keeps the count exact
                    used.append(np.zeros(caps.size, np.float64))
                    groups.append(set())
                    profs.append(set())
                    thrs.append(set())
        # the output axons of this cut: recount, and accept when every core still fits
        fan = _fanout(sgs, chunks, n_live)
        for g, f in fan.items():
            np.cumsum(f, out=cutters[g].fan_prefix[1:])
        for c in cutters.values():
            c.forget()
        total = np.zeros((max(len(used), 1), caps.size), np.float64)
        good = True
        for g, a, b, core in placed:
            v, ok = vec(g, a, b)
            good &= ok
            total[core] += v
        if good and np.all(total <= caps):
            return chunks, (len(used), total, groups, profs, placed)
    return None


def _layer_figures(p: Program, target: TargetSpec, chunks: Dict[str, List[Tuple[int, int]]],
                   cutters: Dict[str, _Cutter]) -> Dict[str, dict]:
    """Per group: cores, the largest per-core neurons / synapse memory (bits and words) / input axons, and the
    per-core grid shape where the halving cut set one."""
    out = {}
    for g in p.groups:
        state = cutters[g].shared_state
        cs = [cutters[g].cost(a, b) for a, b in chunks[g]]
        mem = [c["synapse_memory"] - state * c["neurons"] for c in cs] or [0]
        out[g] = {"cores": len(chunks[g]), "max_neurons_per_core": max([c["neurons"] for c in cs] or [0]),
                  "max_synapse_bits_per_core": int(max(mem)),
                  "max_synapse_words_per_core": int(-(-max(mem) // target.word_bits)),
                  "max_input_axons_per_core": max([c["input_axons"] for c in cs] or [0]),
                  "max_output_axons_per_core": max([c["output_axons"] for c in cs] or [0])}
        if cutters[g].core_shape:
            out[g]["core_shape"] = tuple(cutters[g].core_shape)
    return out


def partition(p: Program, target: TargetSpec, max_rounds: int = 12, mode: str = "pack",
              compare: bool = True) -> Program:
    """Place the Program's neurons on cores of ``target``; returns a new Program with ``placement`` and ``report``.

    ``mode``: ``"pack"`` (default, ours) or ``"intel_halving"`` (each layer alone on its cores, cut the way Intel's
    Loihi 2 compiler cut PilotNet: :meth:`_Cutter.cut_halving`). With ``compare`` the other mode's per-layer cores
    are computed too; ``report["modes"][m]`` holds ``cores_used`` and ``per_group`` for each mode computed, and
    ``report["per_group"]`` the cores of each group in the placement (:func:`per_layer_cores`).

    Raises :class:`ResourceError` naming the layer, the resource, the need and the limit (with a suggestion) when
    a neuron cannot fit on any core or the network needs more cores than the target has.
    """
    if mode not in MODES:
        raise ValueError(f"unknown partition mode {mode!r}; modes are {MODES}")
    target.check_graded(p)
    kinds = {g: grp.neuron for g, grp in p.groups.items()}
    live = _live_masks(p)
    n_live = {g: int(m.sum()) for g, m in live.items()}
    live_idx, pos = _live_order(p, live)
    sgs = _accounting(p, live, pos, live_idx, target)
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
        if keys.size and (keys == keys[0]).all():  # one parameter set (the common case): no sort
            uniq, inv = keys[:1], np.zeros(len(keys), np.int64)
        else:
            uniq, inv = np.unique(keys, axis=0, return_inverse=True) if keys.size else (keys, np.zeros(0, np.int64))
        ids = np.array([prof_key.setdefault((grp.reset_mode, grp.spiking) + tuple(u), len(prof_key))
                        for u in uniq.tolist()], np.int64)
        prof[g] = ids[np.asarray(inv).reshape(-1)] if ids.size else np.zeros(0, np.int64)
        thr[g] = grp.vth[m].astype(np.int64)

    modes: Dict[str, dict] = {}
    for m in ([mode] + [x for x in MODES if x != mode and compare]):
        cutters = _cutters(p, target, n_live, into, prof, thr, live, live_idx)
        ch = _cut(p, target, sgs, n_live, cutters, m, max_rounds)
        packed = _pack(p, target, ch, cutters, prof, thr, share=(m == "pack"))
        if m == "pack" and packed[0] > 1:  # cutting layers where a core is full can save cores
            filled = _fill_pack(p, target, sgs, n_live, cutters, prof, thr)
            if filled is not None and filled[1][0] < packed[0]:
                ch, packed = filled
            else:  # back to the fan-out of the maximal cut
                for g, f in _fanout(sgs, ch, n_live).items():
                    np.cumsum(f, out=cutters[g].fan_prefix[1:])
                for c in cutters.values():
                    c.forget()
        figs = _layer_figures(p, target, ch, cutters)
        modes[m] = {"cores_used": packed[0], "per_group": {g: len(ch[g]) for g in p.groups}, "layers": figs}
        if m == mode:
            chunks, main_cutters, (n_cores, used, core_groups, core_prof, placed) = ch, cutters, packed
    cutters = main_cutters

    core_of = {g: np.full(grp.size, -1, np.int32) for g, grp in p.groups.items()}
    for g, a, b, c in placed:
        core_of[g][live_idx[g][a:b]] = c
    caps = _caps(target)
    # renumber cores in order of first use by the groups (execution order) for a readable table
    seq = np.concatenate([core_of[g][core_of[g] >= 0] for g in p.groups] + [np.zeros(0, np.int32)])
    first = np.unique(seq, return_index=True)[1] if seq.size else np.zeros(0, np.int64)
    order = [int(c) for c in seq[np.sort(first)]]
    renum = np.full(max(n_cores, 1), -1, np.int64)
    renum[order] = np.arange(len(order))
    for g in core_of:
        m = core_of[g] >= 0
        core_of[g][m] = renum[core_of[g][m]]
    shared_state = np.zeros(max(n_cores, 1), np.int64)  # synapse memory taken by neuron state, per core
    for g, a, b, c in placed:
        shared_state[c] += cutters[g].shared_state * (b - a)
    cores = []
    for new, old in enumerate(order):
        u = used[old]
        st = int(shared_state[old])
        cores.append(CoreUsage(core=new, chip=new // target.cores_per_chip, neurons=int(u[0]),
                               synapse_bits=int(u[1]) - st, state_bits=st,
                               input_axons=int(u[2]), output_axons=int(u[3]), profiles=len(core_prof[old]),
                               groups=tuple(x for x in p.groups if x in core_groups[old])))
    unsplit = _unsplit_needs(sgs, n_live, target, kinds)
    capd = {r: (int(c) if np.isfinite(c) else 0) for r, c in zip(RESOURCES, caps)}  # 0: not modelled
    est_per = {r: int(-(-unsplit[r] // capd[r])) if capd[r] else 0 for r in RESOURCES}
    lb_per = dict(est_per)
    need = dict(unsplit)
    if need["neurons"]:
        floors: dict = {}
        lb_per["synapse_memory"], need["synapse_memory"] = _memory_bound(sgs, n_live, target,
                                                                            unsplit["synapse_memory"], cache=floors,
                                                                            kinds=kinds)
        if max(lb_per.values()) < len(cores):  # a gap: the costlier bound that knows the cuts are shared
            lb_per["synapse_memory"], need["synapse_memory"] = _memory_bound(
                sgs, n_live, target, unsplit["synapse_memory"], exact_cuts=True, cache=floors, kinds=kinds)
    else:
        lb_per["synapse_memory"] = need["synapse_memory"] = 0
    lb = max(max(lb_per.values()), 1 if need["neurons"] else 0)
    unsplit_estimate = max(max(est_per.values()), 1 if need["neurons"] else 0)
    layers = {}
    for g, grp in p.groups.items():
        cs = [cutters[g].cost(a, b) for a, b in chunks[g]]
        state = cutters[g].shared_state
        layers[g] = {"neurons": grp.size, "placed": n_live[g], "pruned": grp.size - n_live[g],
                     "cores": len(chunks[g]), "kind": grp.neuron,
                     "message_bits": int(p.message_bits(g)),
                     "neuron_state_bits": n_live[g] * cutters[g].state_bits,
                     "synapses": int(sum((sg.n_src * n_live[g]) if sg.dense else int(sg.cols.size)
                                         for sg in into[g])),
                     "synapse_bits": int(sum(c["synapse_memory"] for c in cs)) - state * n_live[g],
                     "input_axons": int(sum(c["input_axons"] for c in cs)),
                     "output_axons": int(sum(c["output_axons"] for c in cs)),
                     "profiles": int(np.unique(prof[g]).size)}
        layers[g].update({k: v for k, v in modes[mode]["layers"][g].items() if k != "cores"})
    if len(cores) > target.total_cores:
        worst = max(layers, key=lambda g: layers[g]["cores"])
        err = ResourceError(f"the network needs {len(cores)} cores (lower bound {lb}), target '{target.name}' has "
                            f"{target.total_cores} ({target.chips} chips x {target.cores_per_chip} cores); layer "
                            f"'{worst}' alone uses {layers[worst]['cores']}; suggestion: prune, or use a target "
                            f"with more chips or cores", node=worst, field="cores")
        err.resource, err.need, err.limit = "cores", len(cores), target.total_cores  # type: ignore[attr-defined]
        raise err
    report = {
        "target": target.name, "mode": mode, "cores_used": len(cores), "lower_bound": lb,
        "lower_bound_resource": max(lb_per, key=lambda r: lb_per[r]),
        "lower_bound_per_resource": lb_per, "chips_used": len({c.chip for c in cores}),
        "cores_over_lower_bound": (len(cores) / lb) if lb else 1.0,
        "unsplit_estimate": unsplit_estimate, "unsplit_synapse_memory": unsplit["synapse_memory"],
        "needs": need, "capacity_per_core": capd, "layers": layers,
        "per_group": dict(modes[mode]["per_group"]), "modes": modes,
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


def per_layer_cores(program: Program, mode: Optional[str] = None) -> Dict[str, int]:
    """Cores per neuron group of a partitioned Program: of its placement (``mode=None``) or of the other mode
    computed beside it (``"pack"`` / ``"intel_halving"``, in ``report["modes"]``). In "pack" mode layers may share
    cores, so the per-group figures can sum to more than ``cores_used``."""
    rep = program.report or {}
    if mode is None:
        if "per_group" not in rep:
            raise ValueError("the Program was not partitioned (no report['per_group'])")
        return dict(rep["per_group"])
    if mode not in rep.get("modes", {}):
        raise ValueError(f"mode {mode!r} was not computed for this Program; computed: {sorted(rep.get('modes', {}))}"
                         " (partition(..., compare=True) computes both)")
    return dict(rep["modes"][mode]["per_group"])


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
    est = rep.get("unsplit_estimate")
    lines.append(f"cores used {rep['cores_used']} (lower bound {rep['lower_bound']}"
                 + (f"; unsplit-layer estimate {est})" if est not in (None, rep["lower_bound"]) else ")"))
    return "\n".join(lines)


def _table(rows: List[Tuple[str, ...]]) -> List[str]:
    from ..textutil import table_lines
    return table_lines(rows)
