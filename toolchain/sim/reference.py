"""The reference integer simulator of a :class:`~toolchain.program.Program`: batched, vectorised, bit-exact with
Lava 0.10.0's ``fixed_pt`` process models (the arithmetic is :mod:`toolchain.fixedpoint`).

One step ``t`` (0-based) of the whole network, for every sample of the batch at once:

1. every neuron group receives ``a_in``: the int32 (wrapping) sum of the activations its synapse groups emitted
   ``1 + delay`` steps earlier (Lava's Dense sends at step ``t`` what it accumulated at ``t - 1``; DelayDense
   holds it ``delay`` steps more) — zero before that;
2. every group runs :func:`toolchain.fixedpoint.lif_step` (u, v, spikes; zero or subtract reset);
3. every synapse group turns its source's output at step ``t`` (input column ``t``, or the source group's spikes
   of step ``t``) into an activation (:func:`toolchain.fixedpoint.synaptic_input` with the weights Lava really
   uses, :func:`toolchain.fixedpoint.lava_weights`), to be delivered at step ``t + 1 + delay``.

Integer-exact fast path: products of binary spikes (or graded payloads) with integer weights are computed with
float32 BLAS (scipy CSR for sparse storage below 10% density) when the largest possible ``|sum|`` of a row is
below 2^24 — every partial sum is then an integer float32 holds exactly, in any summation order — float64
below 2^53, and int64 otherwise; the bound is computed once from the weights. Shifts by ``weight_exp`` are
multiplications by powers of two and ``floor`` (exact in binary floating point). Activations for an int32
group take Lava's wrap-arounds (graded sums, graded DelayDense products, the int32 channel). A group whose summed input is bounded by 2^18 (so that
``a_in << 6`` stays below 2^24 and ``u`` never leaves 24 bits) runs the LIF update in float64 on integer
values (decay = ``trunc(x * (4096 - d) / 4096)``, exact); any other group runs the int32 emulation in
:mod:`toolchain.fixedpoint`, which wraps exactly where Lava's numpy code wraps. ``tests/test_reference_sim.py``
checks both paths against each other and ``tests/test_lava_bitexact.py`` against Lava.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from .. import fixedpoint as fx
from ..errors import InputError
from ..ir.storage import Csr
from ..ir.storage import Dense as DenseStorage
from ..program import Program, SynapseGroup
from .record import SimResult

__all__ = ["simulate", "prepare_inputs", "synapse_process", "recorded_groups", "SimResult"]

EarlyExit = Callable[[int, np.ndarray], Any]

_F32_EXACT = 2 ** 24
_F64_EXACT = 2 ** 53
_INT32 = 2 ** 31
#: Summed input bound below which the float64 LIF path is exact (``a_in << 6 < 2^24``).
_FAST_LIF_BOUND = 2 ** 18
#: Sparse weight matrices with more entries than this (n_out * n_in) are never made dense.
_DENSE_MAX = 2 ** 24


# ------------------------------------------------------------------------------------------------ helpers
def synapse_process(syn: SynapseGroup) -> str:
    """Which Lava process the backend builds for a synapse group (and whose arithmetic both simulators follow):
    "delay_dense" when ``delay > 0`` (Lava's DelayDense), "dense" for :class:`Dense` storage, "sparse" for
    :class:`Csr` and :class:`Structured` storage (Lava's Sparse, scipy CSR weights)."""
    if syn.delay > 0:
        return "delay_dense"
    return "dense" if isinstance(syn.weight, DenseStorage) else "sparse"


def recorded_groups(program: Program, record: Union[bool, Sequence[str], None]) -> List[str]:
    """The groups whose spikes, u and v are recorded: all for ``True``, none (the output only) for ``False``,
    or the listed names (checked)."""
    if record is True:
        return list(program.groups)
    if not record:
        return []
    names = [record] if isinstance(record, str) else list(record)
    for g in names:
        if g not in program.groups:
            raise InputError(f"no such neuron group (groups: {', '.join(program.groups)})", node=str(g),
                             field="record")
    return [g for g in program.groups if g in names]


def prepare_inputs(program: Program, x: Union[np.ndarray, Mapping[str, np.ndarray]],
                   steps: Optional[int] = None) -> Tuple[Dict[str, np.ndarray], int, int]:
    """Check the input and bring it to ``{port: (B, steps, n)}`` (uint8 for binary ports, int32 for graded ones);
    returns ``(inputs, B, steps)``.

    ``x``: one array (B, T, *shape) for a single-port program, or a mapping port name -> array. Integer or bool
    dtype; binary ports take 0/1, graded ports (``num_message_bits = m > 0``) take payloads in [0, 2^m - 1].
    ``steps`` > T pads with zeros (no input), ``steps`` < T uses the first ``steps`` columns.
    Bias ports (``kind = "bias"``) take ``bias_mant`` values in [-4096, 4095] (int32 out), either per step
    (B, T, *shape) or once per sample (B, *shape): then the value holds at every step (a read-only broadcast
    view, no copy) and the port does not fix T.
    Raises :class:`InputError` naming the port, what was expected and what was given.
    """
    ports = program.inputs
    if not isinstance(x, Mapping):
        if len(ports) != 1:
            raise InputError(f"the program has {len(ports)} input ports ({', '.join(p.name for p in ports)}); "
                             "pass a mapping port name -> array", field="input")
        x = {ports[0].name: x}
    unknown = sorted(set(x) - {p.name for p in ports})
    if unknown:
        raise InputError(f"no such input port (ports: {', '.join(p.name for p in ports)})", node=unknown[0],
                         field="input")
    out: Dict[str, np.ndarray] = {}
    static: Dict[str, np.ndarray] = {}  # bias ports given once per sample (B, n)
    timed: Dict[str, np.ndarray] = {}   # bias ports given per step (B, T, n)
    batch = t_in = None
    for p in ports:
        if p.name not in x:
            raise InputError("no data given for this input port", node=p.name, field="input")
        a = np.asarray(x[p.name])
        expect = f"(batch, time, {', '.join(str(s) for s in p.shape)})"
        if p.kind == "bias":
            if a.ndim == 1 + len(p.shape) and tuple(a.shape[1:]) == tuple(p.shape):
                static[p.name] = a.reshape(a.shape[0], -1)
                continue
            expect += f" or (batch, {', '.join(str(s) for s in p.shape)})"
        if a.ndim != 2 + len(p.shape) or tuple(a.shape[2:]) != tuple(p.shape):
            raise InputError(f"expected shape {expect}, got {a.shape}", node=p.name, field="input")
        if a.dtype != np.bool_ and not np.issubdtype(a.dtype, np.integer):
            raise InputError(f"expected an integer or bool array, got dtype {a.dtype}", node=p.name,
                             field="input")
        if p.kind == "bias":
            timed[p.name] = a.reshape(a.shape[0], a.shape[1], -1)
        if batch is None:
            batch, t_in = int(a.shape[0]), int(a.shape[1])
        elif (a.shape[0], a.shape[1]) != (batch, t_in):
            raise InputError(f"batch and time {a.shape[:2]} differ from the other ports' {(batch, t_in)}",
                             node=p.name, field="input")
        if p.kind == "bias":
            continue
        a = a.reshape(a.shape[0], a.shape[1], -1)
        hi = 1 if p.num_message_bits == 0 else 2 ** p.num_message_bits - 1
        if a.size and (int(a.min()) < 0 or int(a.max()) > hi):
            kind = "binary spikes" if p.num_message_bits == 0 else f"{p.num_message_bits}-bit graded payloads"
            raise InputError(f"expected {kind} in [0, {hi}], got values in [{int(a.min())}, {int(a.max())}]",
                             node=p.name, field="input")
        out[p.name] = a.astype(np.uint8 if p.num_message_bits == 0 else np.int32)
    for name, a in list(static.items()) + list(timed.items()):
        if a.dtype != np.bool_ and not np.issubdtype(a.dtype, np.integer):
            raise InputError(f"expected an integer array of bias mantissas, got dtype {a.dtype}", node=name,
                             field="input")
        if a.size and (int(a.min()) < -4096 or int(a.max()) > 4095):
            raise InputError(f"bias mantissas must lie in [-4096, 4095] (13-bit signed), got values in "
                             f"[{int(a.min())}, {int(a.max())}]", node=name, field="input")
        if batch is None:
            batch = int(a.shape[0])
        elif a.shape[0] != batch:
            raise InputError(f"batch {a.shape[0]} differs from the other ports' {batch}", node=name,
                             field="input")
        if name in timed:
            if t_in is None:
                t_in = int(a.shape[1])
            elif a.shape[1] != t_in:
                raise InputError(f"time {a.shape[1]} differs from the other ports' {t_in}", node=name,
                                 field="input")
            out[name] = a.astype(np.int32)
    if batch is None:
        raise InputError("the program has no input port", field="input")
    if t_in is None and steps is None:
        raise InputError("every input is a per-sample bias (batch, *shape): give the number of steps",
                         field="steps")
    steps = t_in if steps is None else int(steps)
    if steps < 0:
        raise InputError(f"steps must be >= 0, got {steps}", field="steps")
    for k, a in out.items():
        if steps > a.shape[1]:
            a = np.concatenate([a, np.zeros((a.shape[0], steps - a.shape[1], a.shape[2]), a.dtype)], axis=1)
        out[k] = a[:, :steps]
    for name, a in static.items():
        out[name] = np.broadcast_to(a.astype(np.int32)[:, None, :], (a.shape[0], steps, a.shape[1]))
    return out, int(batch), steps


# ------------------------------------------------------------------------------------------ compiled parts
@dataclass
class _Synapse:
    """One synapse group ready to run: the product operand, its exactness bounds and the output kind.

    ``product``: "f32" / "f64" (BLAS or scipy on exact integers: the bound on every partial sum is below 2^24 /
    2^53) or "i64" (numpy integer matmul). ``float_out``: the destination runs the float LIF path, so the
    shifted activation stays a float (``out_bound < 2^18`` there); otherwise it is turned into Lava's int32,
    with Lava's wrap-arounds (:func:`toolchain.fixedpoint.synaptic_input`): graded Dense/Sparse sums wrap at 32
    bits before the shift, graded DelayDense products wrap one by one (``per_product``), and the shifted value
    wraps into the int32 channel.
    """

    name: str
    src: str
    dst: str
    delay: int
    graded: bool
    process: str
    weight_exp: int
    w_eff: Any                   # int32 (n_out, n_in): the weights Lava uses (ndarray, or scipy csr for
                                 # sparse storage, never densified when large)
    acc_bound: int               # max |row sum| of the unshifted product
    out_bound: int               # max |a_out| after the shift
    per_product: bool            # graded DelayDense whose single products can leave int32
    product: str = "f32"
    operand: Any = None          # (n_in, n_out) ndarray, or scipy csr (n_out, n_in) when ``sparse``
    sparse: bool = False
    float_out: bool = True

    def prepare(self, float_out: bool) -> None:
        """Choose the product dtype and operand for the destination's LIF path."""
        self.float_out = float_out and self.out_bound < _INT32 and not self.per_product
        if self.acc_bound < _F32_EXACT and (not self.float_out or self.out_bound < _F32_EXACT):
            self.product = "f32"
        elif self.acc_bound < _F64_EXACT:
            self.product = "f64"
        else:  # pragma: no cover - needs sums beyond 2^53
            self.product = "i64"
        dt = {"f32": np.float32, "f64": np.float64, "i64": np.int64}[self.product]
        import scipy.sparse as sps
        n_out, n_in = self.w_eff.shape
        if sps.issparse(self.w_eff):
            nnz = self.w_eff.nnz
            big = n_out * n_in > _DENSE_MAX
        else:
            nnz = np.count_nonzero(self.w_eff)
            big = False
        self.sparse = (self.process == "sparse" and self.product != "i64"
                       and (big or nnz < 0.1 * max(n_out * n_in, 1)))
        if self.sparse:
            self.operand = sps.csr_matrix(self.w_eff, dtype=dt)
        else:
            w = self.w_eff.toarray() if sps.issparse(self.w_eff) else self.w_eff
            self.w_eff = w
            self.operand = np.ascontiguousarray(w.T.astype(dt))

    def run(self, s: np.ndarray) -> np.ndarray:
        """Activation for source output ``s`` (B, n_in): float (exact integers) or int32 (Lava's a_out)."""
        if self.per_product:
            s64 = s.astype(np.int64)
            acc = np.stack([fx.wrap_int32(row[None, :] * self.w_eff).astype(np.int64).sum(axis=1)
                            for row in s64]) if len(s64) else np.zeros((0, self.w_eff.shape[0]), np.int64)
            return fx.wrap_int32(fx.shift_activation(acc, self.weight_exp))
        dt = {"f32": np.float32, "f64": np.float64, "i64": np.int64}[self.product]
        if not self.graded:
            s = s != 0 if s.dtype != np.bool_ else s
        sd = s.astype(dt, copy=False)
        acc = (self.operand @ sd.T).T if self.sparse else sd @ self.operand
        if self.float_out:
            if self.weight_exp:
                acc *= dt(2.0 ** self.weight_exp)  # exact: a power of two
                if self.weight_exp < 0:
                    np.floor(acc, out=acc)         # arithmetic right shift = floor
            return acc
        acc = acc.astype(np.int64)
        if self.graded and self.process != "delay_dense" and self.acc_bound >= _INT32:
            acc = fx.wrap_int32(acc).astype(np.int64)  # int32 dot product of graded Dense/Sparse
        return fx.wrap_int32(fx.shift_activation(acc, self.weight_exp))


def _compile_synapse(program: Program, syn: SynapseGroup) -> _Synapse:
    process = synapse_process(syn)
    graded = False
    if syn.src not in program.groups:
        graded = program.input_port(syn.src).num_message_bits > 0
        payload = 2 ** program.input_port(syn.src).num_message_bits - 1 if graded else 1
    else:
        payload = 1
    w = syn.weight
    if isinstance(w, DenseStorage) or process == "delay_dense":
        w_eff = fx.lava_weights(w.to_dense(), syn.num_weight_bits, syn.sign_mode)
        absw = np.abs(w_eff.astype(np.int64))
        rowabs = int(absw.sum(axis=1).max()) if w_eff.size else 0
        maxabs = int(absw.max()) if w_eff.size else 0
    else:  # sparse storage: Lava's clip/truncation on the stored values, never a dense matrix
        import scipy.sparse as sps
        csr = w if isinstance(w, Csr) else w.to_csr()
        data = fx.lava_weights(csr.data, syn.num_weight_bits, syn.sign_mode)
        w_eff = sps.csr_matrix((data, np.asarray(csr.indices), np.asarray(csr.indptr)), shape=csr.shape)
        absd = np.abs(data.astype(np.int64))
        rowabs = int(np.bincount(csr.rows(), weights=absd, minlength=csr.shape[0]).max()) if data.size else 0
        maxabs = int(absd.max()) if data.size else 0
    acc_bound = rowabs * payload
    e = syn.weight_exp
    out_bound = acc_bound << e if e > 0 else (acc_bound >> -e) + (1 if e < 0 and acc_bound else 0)
    per_product = graded and process == "delay_dense" and maxabs * payload >= _INT32
    return _Synapse(syn.name, syn.src, syn.dst, syn.delay, graded, process, e, w_eff, acc_bound, out_bound,
                    per_product)


@dataclass
class _Group:
    """One neuron group ready to run (per-neuron parameters broadcast over the batch)."""

    name: str
    n: int
    fast: bool
    subtract: bool
    du: np.ndarray
    dv: np.ndarray
    vth: np.ndarray
    bias_mant: np.ndarray
    bias_exp: np.ndarray
    v_init: np.ndarray
    reset_interval: int = 0
    reset_offset: int = 0
    # float64 fast-path constants
    fu: np.ndarray = None
    fv: np.ndarray = None
    vth_f: np.ndarray = None
    bias_f: np.ndarray = None

    def init_state(self, batch: int) -> Tuple[np.ndarray, np.ndarray]:
        dt = np.float64 if self.fast else np.int32
        return np.zeros((batch, self.n), dt), np.repeat(self.v_init.astype(dt)[None, :], batch, axis=0)

    def resets_at(self, t: int) -> bool:
        """Lava's ``LIFReset``: u = v = 0 before the update of 0-based step ``t`` (``time_step = t + 1``)."""
        return self.reset_interval > 0 and (t + 1) % self.reset_interval == self.reset_offset

    def step(self, u: np.ndarray, v: np.ndarray, a_in: Optional[np.ndarray],
             bias_mant: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One step; ``bias_mant`` (B, n) int32 replaces the group's own bias mantissa (a bias input port)."""
        if not self.fast:
            a = np.zeros(u.shape, np.int32) if a_in is None else a_in
            return fx.lif_step(u, v, a, self.du, self.dv, self.vth,
                               self.bias_mant if bias_mant is None else bias_mant, self.bias_exp,
                               "subtract" if self.subtract else "zero")
        # float64 on integer values; exact because |u|, |v| <= 2^23 and |a_in << 6| < 2^24 (see module doc)
        u = np.trunc(u * self.fu)
        if a_in is not None:
            u += a_in * 64.0
        hi = u > fx.MAX_UV
        if hi.any():
            u[hi] -= 2.0 * fx.MAX_UV
        lo = u <= -fx.MAX_UV
        if lo.any():
            u[lo] += 2.0 * fx.MAX_UV
        v = np.trunc(v * self.fv)
        v += u
        v += self.bias_f if bias_mant is None else fx.effective_bias(bias_mant, self.bias_exp)
        np.clip(v, fx.V_MIN, fx.V_MAX, out=v)
        s = v > self.vth_f
        if self.subtract:
            v -= s * self.vth_f
        else:
            v[s] = 0.0
        return u, v, s


def _compile_group(program: Program, name: str, in_bound: int) -> _Group:
    g = program.groups[name]
    du = g.du.astype(np.int64)
    dv = g.dv.astype(np.int64)
    vth = g.vth.astype(np.int64)
    grp = _Group(name, g.size, in_bound < _FAST_LIF_BOUND, g.reset_mode == "subtract", du, dv, vth,
                 g.bias_mant.astype(np.int16), g.bias_exp.astype(np.int16), g.v_init.astype(np.int32),
                 g.reset_interval, g.reset_offset)
    grp.fu = (fx.DECAY_UNITY - (du + fx.DS_OFFSET)) / float(fx.DECAY_UNITY)
    grp.fv = (fx.DECAY_UNITY - (dv + fx.DM_OFFSET)) / float(fx.DECAY_UNITY)
    grp.vth_f = fx.effective_threshold(vth).astype(np.float64)
    grp.bias_f = fx.effective_bias(grp.bias_mant, grp.bias_exp).astype(np.float64)
    return grp


# ---------------------------------------------------------------------------------------------- simulate
class _NoBar:
    """Stand-in for a disabled tqdm bar (creating a real one, even disabled, costs time and fixes the
    multiprocessing start method)."""

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def simulate(program: Program, x: Union[np.ndarray, Mapping[str, np.ndarray]], steps: Optional[int] = None,
             record: Union[bool, Sequence[str]] = False, early_exit: Optional[EarlyExit] = None,
             progress: Optional[bool] = None, force_exact: bool = False) -> SimResult:
    """Run ``program`` on a batch of inputs; bit-exact with :func:`toolchain.backends.lava.run_lava`.

    ``x``: (B, T, *input_shape) integer array (or a mapping input-port name -> array), see
    :func:`prepare_inputs`. ``steps``: steps to run (default T). ``record``: False (the output only), True
    (spikes, u, v of every group) or a list of group names. ``early_exit``: optional
    ``(t, accumulated_output) -> bool mask`` called after each 0-based step ``t`` with the accumulated output
    ``Y(t) = sum over steps <= t`` of the output (spike counts, or ``v`` of a readout) of the samples still
    running, shape (B_active, n_out) int64, rows in the original sample order; samples whose mask entry is True
    stop (they are removed from the batch: no more work is done for them), their records after the exit stay
    zero and ``steps_run`` says how many steps they ran. ``progress``: tqdm bar (default: on a terminal, for
    long runs). ``force_exact``: use the int32 emulation for every group (for tests).
    """
    inputs, batch, steps = prepare_inputs(program, x, steps)
    rec_groups = recorded_groups(program, record)
    out_name = program.output
    out_group = program.groups[out_name]
    out_kind = "spikes" if out_group.spiking else "v"

    kinds = {q.name: q for q in program.inputs}
    spike_inputs = {k: a for k, a in inputs.items() if kinds[k].kind == "spikes"}
    bias_of = {kinds[k].target: a for k, a in inputs.items() if kinds[k].kind == "bias"}
    syns = [_compile_synapse(program, s) for s in program.synapses]
    in_bound = {g: 0 for g in program.groups}
    for s in syns:
        in_bound[s.dst] += s.out_bound
    groups = [_compile_group(program, g, _FAST_LIF_BOUND if force_exact else in_bound[g])
              for g in program.groups]
    fast_group = {g.name: g.fast for g in groups}
    for s in syns:  # a fast group takes float activations, an exact group Lava's int32 ones
        s.prepare(float_out=fast_group[s.dst])

    spikes_rec = {g: np.zeros((batch, steps, program.groups[g].size), np.uint8) for g in rec_groups}
    u_rec = {g: np.zeros((batch, steps, program.groups[g].size), np.int32) for g in rec_groups}
    v_rec = {g: np.zeros((batch, steps, program.groups[g].size), np.int32) for g in rec_groups}
    if out_kind == "spikes" and out_name not in spikes_rec:
        spikes_rec[out_name] = np.zeros((batch, steps, out_group.size), np.uint8)
    if out_kind == "v" and out_name not in v_rec:
        v_rec[out_name] = np.zeros((batch, steps, out_group.size), np.int32)
    steps_run = np.full(batch, steps, dtype=np.int64)

    state = {g.name: g.init_state(batch) for g in groups}
    queues = {s.name: [None] * (s.delay + 1) for s in syns}  # slot t % (d+1): activation due at step t
    active = np.arange(batch)
    all_active = True
    acc_out = np.zeros((batch, out_group.size), np.int64) if early_exit is not None else None

    if progress is None:
        progress = steps * batch * max(program.neuron_count, 1) > 5e7 and sys.stderr.isatty()
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=steps, desc="simulate", unit="step", leave=False)
    else:
        bar = _NoBar()
    try:
        for t in range(steps):
            if active.size == 0:
                break
            rows = slice(None) if all_active else active
            # 1. synaptic input due now
            a_in: Dict[str, Optional[np.ndarray]] = {g.name: None for g in groups}
            for s in syns:
                q = queues[s.name]
                c = q[t % (s.delay + 1)]
                if c is None:
                    continue
                prev = a_in[s.dst]
                if prev is None:
                    a_in[s.dst] = c.copy() if fast_group[s.dst] else c.astype(np.int32)
                elif fast_group[s.dst]:
                    a_in[s.dst] = prev + c
                else:
                    np.add(prev, c, out=prev)  # int32: wraps like Lava's port sum
            # 2. neuron updates
            outs: Dict[str, np.ndarray] = {}
            for g in groups:
                u, v = state[g.name]
                if g.resets_at(t):
                    u, v = np.zeros_like(u), np.zeros_like(v)
                bias = bias_of.get(g.name)
                u, v, s = g.step(u, v, a_in[g.name],
                                 None if bias is None else bias[slice(None) if all_active else active, t])
                state[g.name] = (u, v)
                outs[g.name] = s
                if g.name in spikes_rec:
                    spikes_rec[g.name][rows, t] = s
                if g.name in u_rec:
                    u_rec[g.name][rows, t] = u
                if g.name in v_rec:
                    v_rec[g.name][rows, t] = v
            # 3. activations leaving now, due at t + 1 + delay
            for name, arr in spike_inputs.items():
                outs[name] = arr[active if not all_active else slice(None), t]
            for s in syns:
                queues[s.name][t % (s.delay + 1)] = s.run(outs[s.src])
            bar.update(1)
            # early exit
            if early_exit is not None:
                y = outs[out_name] if out_kind == "spikes" else state[out_name][1]
                acc_out[active] += np.asarray(y, dtype=np.int64)
                stop = np.asarray(early_exit(t, acc_out[active].copy()), dtype=bool).reshape(-1)
                if stop.shape != (active.size,):
                    raise InputError(f"early_exit returned shape {stop.shape}, expected ({active.size},)",
                                     field="early_exit")
                if stop.any():
                    steps_run[active[stop]] = t + 1
                    keep = ~stop
                    active = active[keep]
                    all_active = False
                    state = {k: (u[keep], v[keep]) for k, (u, v) in state.items()}
                    for s in syns:
                        queues[s.name] = [None if c is None else c[keep] for c in queues[s.name]]
    finally:
        bar.close()

    output = spikes_rec[out_name] if out_kind == "spikes" else v_rec[out_name]
    return SimResult(spikes=spikes_rec, u=u_rec, v=v_rec, output=output, output_group=out_name,
                     output_kind=out_kind, steps_run=steps_run, backend="reference",
                     groups=[g for g in program.groups if g in spikes_rec or g in v_rec])
