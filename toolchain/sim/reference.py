"""The reference integer simulator of a :class:`~toolchain.program.Program`: batched, vectorised, bit-exact with
Lava 0.10.0's ``fixed_pt`` process models (the arithmetic is :mod:`toolchain.fixedpoint`).

One step ``t`` (0-based) of the whole network, for every sample of the batch at once:

1. every neuron group receives ``a_in``: the int32 (wrapping) sum of the activations its synapse groups emitted
   ``1 + delay`` steps earlier (Lava's Dense sends at step ``t`` what it accumulated at ``t - 1``; DelayDense
   holds it ``delay`` steps more) — zero before that;
2. every group runs :func:`toolchain.fixedpoint.lif_step` (u, v, spikes; zero or subtract reset) — a sigma-delta
   group (``NeuronGroup.sdn``) its :mod:`toolchain.fixedpoint_sdn` step instead, on the int32 path, recording its
   int32 payloads as spikes, ``sigma`` as u and ``act`` as v; synapses leaving it are graded (any int32 payload);
3. every synapse group turns its source's output at step ``t`` (input column ``t``, or the source group's spikes
   of step ``t``) into an activation (:func:`toolchain.fixedpoint.synaptic_input` with the weights Lava really
   uses, :func:`toolchain.fixedpoint.lava_weights`), to be delivered at step ``t + 1 + delay``.

How it is computed, and why each shortcut is exact
--------------------------------------------------
*Products.* The product of a source's output (binary spikes, or graded payloads below 2^24) with integer weights
is computed in float32 when the largest possible ``|sum|`` of a row (times the largest payload) is below 2^24 —
every partial sum is then an integer float32 holds exactly, *in any summation order and over any subset of the
terms* — in float64 below 2^53, and in int64 otherwise; the bound is computed once from the weights. Two ways to
form the same product, chosen per synapse group and per step by the activity of its source (``event=None``):

* dense: ``S @ W^T`` with BLAS (scipy CSR ``W @ S^T`` for sparse storage below 10% density);
* event-driven: for every sample, the sum of the weight rows of the inputs that spiked (a CSR matrix of the
  non-zero outputs times the dense operand, scipy's ``csr_matvecs``; graded payloads are its values) — work in
  proportion to the spikes instead of the inputs. It is exact by the same bound: its partial sums are sums over
  subsets of one row's terms.

The event-driven path is taken when few of the source's outputs are non-zero (:func:`_event_limit`: below 8%
for large batches), for dense operands (dense storage, or sparse storage dense enough to be held dense) and not
for graded DelayDense products that can leave int32. A single sample of binary spikes into the float LIF path
takes a one-row gather written straight into the input slot (:meth:`_Synapse.planned`, its own crossover
:func:`_event_limit_row`); the deliveries into the float LIF path are planned once per run (the choices that hold
for every step made before the first), which changes no value.

*Shifts and the ``<< 6``.* Shifts by ``weight_exp`` are multiplications by powers of two and ``floor``
(exact in binary floating point). For a destination on the float LIF path (below) and ``weight_exp >= 0`` the
factor ``2^weight_exp · 64`` (the ``a_in << 6`` of the LIF) is folded into the float operand; the folded
products are bounded by ``64 · out_bound < 2^24``, so they stay exact in float32. For ``weight_exp < 0`` the
activation is ``floor(acc · 2^weight_exp) · 64``. Activations for an int32 group take Lava's wrap-arounds (graded
sums, graded DelayDense products, the int32 channel).

*LIF update.* A group whose summed input is bounded by 2^18 (so that ``a_in << 6`` stays below 2^24 and ``u``
before the wrap below 3·2^23) runs the *float LIF path*. All such groups lie side by side in one
``(batch, neurons)`` state, updated by one set of array operations (their updates in a step are independent: each
reads only activations emitted in earlier steps); their ``a_in << 6`` is summed in a float32 ring buffer with a
slot per step of delay (exact: below 2^24). The decay ``trunc(x · (4096 - d) / 4096)`` multiplies an integer of
at most 24 bits by a fraction with 12 fractional bits — exact in float64's 53 bits — and truncates toward zero:
with ``np.trunc`` on a float64 state (batches below :data:`_INT_STATE_BATCH`: plain loops, little fixed cost per
call) or by the cast of the float64 product into an int32 state (larger batches: C casts truncate toward zero,
and int32 halves the memory traffic). Every sum stays below 2^26 in magnitude, so it is exact in both and Lava's
int32 wrap never happens on this path. The 24-bit wrap of ``u`` and the clip of ``v`` are applied where a
max/min check says a value left the range, and the check is skipped where scalar bounds on the state (carried
from step to step: :class:`_InPlaceOps`) prove that no value can have left it; the zero reset is a
multiplication by "no spike" and the subtract reset a subtraction of "spike · threshold" (no masked writes). The
int32 state adds its float32 input after one cast to int32 (numpy's mixed-dtype loops cost several times more).
Binary inputs are converted to float32 into a buffer kept between steps (several steps per call for small
batches), when a dense product asks for them. Any other group runs the int32 emulation in
:mod:`toolchain.fixedpoint`, which wraps exactly where Lava's numpy code wraps. Both paths (and the torch backend,
:mod:`toolchain.sim.torch_backend`) run the one definition of the update,
:func:`toolchain.fixedpoint.lif_subthreshold` and :func:`toolchain.fixedpoint.lif_fire`: the float path with the
in-place primitives of :class:`_InPlaceOps` (without its int32 wraps, which cannot happen there).

``tests/test_reference_sim.py`` checks the dense and event-driven products, both states of the float LIF path and
the int32 emulation against each other and against a plain per-sample loop over :mod:`toolchain.fixedpoint`;
``tests/test_lava_bitexact.py`` checks the simulator against Lava.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Set, Tuple, Union

import numpy as np

from .. import fixedpoint as fx
from ..errors import InputError
from ..ir.storage import Csr
from ..ir.storage import Dense as DenseStorage
from ..program import Program, SynapseGroup
from .record import SimResult

try:  # scipy's CSR x dense kernel (Y += A X), without building a csr_matrix object per step
    from scipy.sparse._sparsetools import csr_matvecs as _csr_matvecs
except ImportError:  # pragma: no cover - private API moved: the public csr_matrix product does the same
    _csr_matvecs = None

__all__ = ["simulate", "prepare_inputs", "synapse_process", "recorded_groups", "SimResult"]

EarlyExit = Callable[[int, np.ndarray], Any]

_F32_EXACT = 2 ** 24
_F64_EXACT = 2 ** 53
_INT32 = 2 ** 31
#: Summed input bound below which the float64 LIF path is exact (``a_in << 6 < 2^24``).
_FAST_LIF_BOUND = 2 ** 18
#: Sparse weight matrices with more entries than this (n_out * n_in) are never made dense.
_DENSE_MAX = 2 ** 24


def _event_limit(batch: int, n_in: int, n_out: int) -> float:
    """Fraction of non-zero source outputs up to which the event-driven product is taken (``event=None``): the
    crossovers of the two paths measured on the benchmark layers (784x256 and 256x256, ``benchmarks/
    sim_vs_peers.py``) on the development machine (AMD EPYC, OpenBLAS, one thread). BLAS is at its best for
    large batches (the event path wins below ~10% there), poor for a few rows (a matrix product with 2-16 rows
    costs nearly as much as one with 32), and for a single sample it reads every weight for a matrix-vector
    product, which pays off against the event path's fixed cost only for large operands. The choice never
    changes a result, only the time."""
    if batch == 1:
        return 0.1 if n_in * n_out >= 2 ** 17 else 0.0
    if batch <= 16:
        return 0.3
    return 0.08


def _event_limit_row(n_in: int, n_out: int) -> float:
    """:func:`_event_limit` for one sample of binary spikes taking :meth:`_Synapse.planned`'s one-row gather
    (scipy's CSR kernel straight into the destination, no other call than the index array, which is also the
    count): its crossover with the matrix-vector product measured side by side on the development machine (one
    thread, per product, µs): 784x256 dense 16.5, gather 4.1 / 7.1 / 9.9 / 13.2 / 21.0 at 2 / 10 / 20 / 30 / 50%
    of the inputs spiking; 256x256 dense 6.1, gather 3.9 / 4.5 / 5.6 / 6.1 / 8.4; 256x10 dense 2.5, gather
    3.3-4.0 at any activity."""
    return 0.3 if n_in * n_out >= 2 ** 17 else 0.2 if n_in * n_out >= 2 ** 16 else 0.0


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
    """Check the input and bring it to ``{port: (B, steps, n)}`` (uint8 for binary ports, int32 for graded ones;
    views of the given arrays where no conversion is needed: read-only use); returns ``(inputs, B, steps)``.

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
        # (bool and unsigned inputs need no check of the minimum, bool none at all: one pass less over the input)
        unsigned = a.dtype == np.bool_ or np.issubdtype(a.dtype, np.unsignedinteger)
        if a.size and a.dtype != np.bool_ and ((not unsigned and int(a.min()) < 0) or int(a.max()) > hi):
            kind = "binary spikes" if p.num_message_bits == 0 else f"{p.num_message_bits}-bit graded payloads"
            raise InputError(f"expected {kind} in [0, {hi}], got values in [{int(a.min())}, {int(a.max())}]",
                             node=p.name, field="input")
        out[p.name] = a.astype(np.uint8 if p.num_message_bits == 0 else np.int32, copy=False)
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
_DTYPES = {"f32": np.float32, "f64": np.float64, "i64": np.int64}
_max, _min = np.maximum.reduce, np.minimum.reduce
#: Batches from this size up keep the float LIF path's state in int32, smaller ones in float64 (module docstring).
_INT_STATE_BATCH = 8
#: Batches below this size take the float LIF path's variants with the fewest calls (per-call cost dominates).
_SMALL_BATCH = 8


def _gather_sum(indptr: np.ndarray, cols: np.ndarray, data: np.ndarray, operand: np.ndarray,
                out: np.ndarray) -> None:
    """``out += A @ operand`` for the CSR matrix ``A = (data, cols, indptr)`` of shape (B, n_in): for every row
    ``b``, the weighted sum of the operand rows ``cols[indptr[b]:indptr[b+1]]``. ``out`` (B, n_out) C-contiguous,
    ``operand`` (n_in, n_out) C-contiguous, both of ``data``'s dtype; ``indptr``, ``cols`` int64."""
    if _csr_matvecs is not None:
        _csr_matvecs(out.shape[0], operand.shape[0], operand.shape[1], indptr, cols, data, operand.reshape(-1),
                     out.reshape(-1))
    else:  # pragma: no cover - see the import
        import scipy.sparse as sps
        out += sps.csr_matrix((data, cols, indptr), shape=(out.shape[0], operand.shape[0])) @ operand


@dataclass
class _Synapse:
    """One synapse group ready to run: the product operand, its exactness bounds and the output kind.

    ``product``: "f32" / "f64" (BLAS, scipy or the event-driven gather on exact integers: the bound on every
    partial sum is below 2^24 / 2^53) or "i64" (numpy integer matmul). ``float_out``: the destination runs the
    float LIF path; the activation is then delivered as ``a_in << 6`` in float (exact integers below 2^24), with
    ``fold`` (``weight_exp >= 0``) meaning that the operand already holds ``W · 2^weight_exp · 64``. Otherwise it
    is turned into Lava's int32, with Lava's wrap-arounds (:func:`toolchain.fixedpoint.synaptic_input`): graded
    Dense/Sparse sums wrap at 32 bits before the shift, graded DelayDense products wrap one by one
    (``per_product``), and the shifted value wraps into the int32 channel.
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
    fold: bool = False           # operand = W * 2^weight_exp * 64 (float_out and weight_exp >= 0)
    event_ok: bool = False       # the event-driven product may be used
    _ones: Any = None            # float ones (the values of binary spikes in the event-driven product)
    _starts: Dict[int, np.ndarray] = field(default_factory=dict)  # batch -> row starts of the flat source
    _limit: Tuple[int, float] = (-1, 0.0)  # (batch, its _event_limit)
    dtype: Any = np.float32      # the product's dtype (_DTYPES[product])

    def prepare(self, float_out: bool) -> None:
        """Choose the product dtype and operand for the destination's LIF path (see the module docstring)."""
        # Lava wraps a graded Dense/Sparse sum at 32 bits before the shift: where that can happen, the activation
        # is Lava's int32 one (run), even for a destination on the float LIF path
        wraps = self.graded and self.process != "delay_dense" and self.acc_bound >= _INT32
        self.float_out = float_out and self.out_bound < _INT32 and not self.per_product and not wraps
        self.fold = self.float_out and self.weight_exp >= 0
        # largest |partial sum| of the product as computed: W * 2^e * 64 when folded, W otherwise
        bound = self.out_bound * 64 if self.fold else self.acc_bound
        if bound < _F32_EXACT:
            self.product = "f32"
        elif bound < _F64_EXACT:
            self.product = "f64"
        else:  # pragma: no cover - needs sums beyond 2^53
            self.product = "i64"
            self.fold = False
        dt = self.dtype = _DTYPES[self.product]
        scale = (64 << self.weight_exp) if self.fold else 1
        import scipy.sparse as sps
        n_out, n_in = self.w_eff.shape
        self.sparse = False
        if self.process == "sparse" and self.product != "i64":
            if sps.issparse(self.w_eff):
                nnz, big = self.w_eff.nnz, n_out * n_in > _DENSE_MAX
            else:
                nnz, big = np.count_nonzero(self.w_eff), False
            self.sparse = big or nnz < 0.1 * max(n_out * n_in, 1)
        if self.sparse:
            self.operand = sps.csr_matrix(self.w_eff.astype(np.int64) * scale, dtype=dt)
        else:
            w = self.w_eff.toarray() if sps.issparse(self.w_eff) else self.w_eff
            self.w_eff = w
            # computed in dt: |w| <= 256 and the power of two are exact, the product is at most the bound
            self.operand = np.empty((n_in, n_out), dt)
            np.multiply(w.T, scale, out=self.operand, dtype=dt)
        self.event_ok = not self.sparse and not self.per_product and self.product != "i64"

    # -------------------------------------------------------------------------------------------- products
    def use_event(self, s: np.ndarray, event: Optional[bool]) -> bool:
        """Whether this step's product is event-driven: ``event`` True/False forces it (where the synapse group
        allows it), None decides by the fraction of non-zero outputs of the source."""
        if not self.event_ok or event is False or s.size == 0:
            return False
        if event:
            return True
        batch = s.shape[0]
        if self._limit[0] != batch:
            self._limit = (batch, _event_limit(batch, s.shape[1], self.operand.shape[1]))
        limit = self._limit[1]
        if limit <= 0:
            return False
        if batch > 64:  # the activity of every (batch // 32)-th sample: an estimate is enough for the choice
            s = s[::batch // 32]
        return np.count_nonzero(s) <= limit * s.size

    def _event_product(self, s: np.ndarray) -> np.ndarray:
        """The product, as the sum of the operand rows of the non-zero outputs (weighted by graded payloads)."""
        dt = _DTYPES[self.product]
        batch, n_in = s.shape
        flat_s = s.reshape(-1)  # a copy for a strided view
        nz = np.flatnonzero(flat_s)
        if batch == 1:
            indptr, cols = np.array([0, nz.size], np.int64), nz
        else:
            starts = self._starts.get(batch)
            if starts is None:
                starts = self._starts[batch] = np.arange(0, (batch + 1) * n_in, n_in, dtype=np.int64)
            indptr = np.searchsorted(nz, starts)
            cols = nz % n_in
        if self.graded:
            data = flat_s[nz].astype(dt)
        else:
            if self._ones is None or self._ones.size < nz.size:
                self._ones = np.ones(max(nz.size, 1024), dt)
            data = self._ones[:nz.size]
        out = np.zeros((batch, self.operand.shape[1]), dt)
        _gather_sum(indptr.astype(np.int64, copy=False), cols.astype(np.int64, copy=False), data, self.operand, out)
        return out

    def _product(self, src: "_Outputs", event: Optional[bool], out: Optional[np.ndarray] = None) -> np.ndarray:
        """``s @ operand`` (B, n_out) for the source's output ``s = src[self.src]``, exact (module docstring);
        written into ``out`` where given and possible."""
        s = src[self.src]
        if self.event_ok and event is not False and self.use_event(s, event):
            return self._event_product(s)
        sd = src.as_float(self.src, self.dtype)
        if self.sparse:
            return (self.operand @ sd.T).T
        if out is not None and out.dtype == sd.dtype:
            return np.matmul(sd, self.operand, out=out)
        return sd @ self.operand

    # ---------------------------------------------------------------------------------------- activations
    def run(self, src: "_Outputs", event: Optional[bool] = None) -> np.ndarray:
        """Lava's int32 a_out for the source's output (B, n_in) (destinations on the int32 path)."""
        if self.per_product:
            s64 = src[self.src].astype(np.int64)
            acc = np.stack([fx.wrap_int32(row[None, :] * self.w_eff).astype(np.int64).sum(axis=1)
                            for row in s64]) if len(s64) else np.zeros((0, self.w_eff.shape[0]), np.int64)
            return fx.wrap_int32(fx.shift_activation(acc, self.weight_exp))
        acc = self._product(src, event).astype(np.int64)
        if self.graded and self.process != "delay_dense" and self.acc_bound >= _INT32:
            acc = fx.wrap_int32(acc).astype(np.int64)  # int32 dot product of graded Dense/Sparse
        return fx.wrap_int32(fx.shift_activation(acc, self.weight_exp))

    def deliver(self, src: "_Outputs", event: Optional[bool], dest: np.ndarray, first: bool) -> None:
        """Write (``first``) or add this step's ``a_in << 6`` contribution into ``dest`` (B, n_out) float32, a
        view of the float LIF path's input ring buffer. Exact: every value is an integer below 2^24."""
        if not self.float_out:  # Lava's int32 activation (graded sums or products that can leave int32)
            a = self.run(src, event).astype(np.float32) * np.float32(64.0)
        else:
            a = self._product(src, event, out=dest if first and self.fold else None)
            if a is dest:
                return
            if not self.fold:  # weight_exp < 0 (or int64 products): floor(acc * 2^e) * 64
                if self.product == "i64":  # pragma: no cover - needs sums beyond 2^53
                    a = fx.shift_activation(a, self.weight_exp) * 64
                else:
                    a *= a.dtype.type(2.0 ** self.weight_exp)  # exact: a power of two
                    np.floor(a, out=a)                         # arithmetic right shift = floor
                    a *= a.dtype.type(64.0)
        if first:
            dest[...] = a
        else:
            np.add(dest, a, out=dest, casting="unsafe")  # exact: the sum stays below 2^24

    def planned(self, event: Optional[bool], batch: int, layer: "_FastLayer", chunks: "_InputChunks"
                ) -> Callable[["_Outputs", np.ndarray, bool], None]:
        """:meth:`deliver` as one callable ``(outputs, dest, first)`` for a run of ``batch`` samples, with the
        conditions that hold for the whole run decided once (the same integers: the same products and
        conversions; only the per-step Python is less). The common case — float destination, folded dense
        float32 operand — is inlined; every other case calls :meth:`deliver`."""
        if not (self.float_out and self.fold and not self.sparse and self.dtype is np.float32):
            deliver = self.deliver
            return lambda outs, dest, first: deliver(outs, event, dest, first)
        src, operand, matmul, add, f32 = self.src, self.operand, np.matmul, np.add, np.float32
        as_float = _float_getter(src, layer, chunks)
        event_path = self.event_ok and event is not False and batch > 0
        if event_path and not event:
            event_path = _event_limit(batch, len(operand), operand.shape[1]) > 0
        if not event_path:  # dense at every step
            def run(outs: "_Outputs", dest: np.ndarray, first: bool) -> None:
                if first:
                    matmul(as_float(outs), operand, out=dest)
                else:
                    add(dest, matmul(as_float(outs), operand), out=dest)
            return run
        if batch == 1 and not self.graded and _csr_matvecs is not None:
            # one sample, binary spikes: the operand rows of the spiking inputs summed in place into ``dest``
            # (scipy's CSR kernel with one row: the same exact float32 sums as :meth:`_event_product`), the count
            # of spikes for the choice being the index array itself
            n_in, n_out = operand.shape
            limit = n_in if event else _event_limit_row(n_in, n_out) * n_in
            flat_op, ones, indptr = operand.reshape(-1), np.ones(n_in, f32), np.zeros(2, np.int64)
            flatnonzero, matvecs = np.flatnonzero, _csr_matvecs

            def run_event1(outs: "_Outputs", dest: np.ndarray, first: bool) -> None:
                nz = flatnonzero(outs[src])
                k = nz.size
                if k <= limit:
                    flat = dest.reshape(-1)  # (1, n_out) with a unit last stride: a view
                    if first:
                        flat.fill(0)
                    indptr[1] = k
                    matvecs(1, n_in, n_out, indptr, nz, ones[:k], flat_op, flat)
                elif first:
                    matmul(as_float(outs), operand, out=dest)
                else:
                    add(dest, matmul(as_float(outs), operand), out=dest)
            return run_event1
        use_event, event_product = self.use_event, self._event_product

        def run_event(outs: "_Outputs", dest: np.ndarray, first: bool) -> None:
            s = outs[src]
            if use_event(s, event):
                a = event_product(s)
                if first:
                    dest[...] = a
                else:
                    add(dest, a, out=dest)
            elif first:
                matmul(as_float(outs), operand, out=dest)
            else:
                add(dest, matmul(as_float(outs), operand), out=dest)
        return run_event


class _InputChunks:
    """The binary input ports' spikes as float32 0/1 for the dense products, into a buffer kept from step to step
    and only when a dense product asks for them (the event-driven product reads the bool spikes); for small
    batches several steps at once (a (steps, B, n) block of at most 2^14 values: one call instead of one per
    step; a larger block is no faster per value)."""

    _BLOCK = 1 << 14

    def __init__(self, arrays: Mapping[str, np.ndarray], steps: int) -> None:
        self.arrays = arrays     # name -> (B, steps, n) bool
        self.steps = steps
        self.rows: Any = slice(None)
        self.blocks: Dict[str, Tuple[int, int, np.ndarray]] = {}  # name -> (first step, end step, block)

    def select(self, rows: np.ndarray) -> None:
        """Only the samples ``rows`` (original indices) run from now on (early exit)."""
        self.rows = rows
        self.blocks.clear()

    def get(self, name: str, t: int) -> np.ndarray:
        """Port ``name``'s spikes at step ``t`` as float32 (B, n) (a view of the block: read-only use)."""
        blk = self.blocks.get(name)
        if blk is None or not blk[0] <= t < blk[1]:
            arr = self.arrays[name]
            batch = arr.shape[0] if isinstance(self.rows, slice) else len(self.rows)
            n = arr.shape[2]
            c = max(1, min(self.steps - t, self._BLOCK // max(batch * n, 1)))
            buf = blk[2] if blk is not None and blk[2].shape[0] >= c and blk[2].shape[1] == batch else \
                np.empty((c, batch, n), np.float32)
            np.copyto(buf[:c], arr[self.rows, t:t + c].transpose(1, 0, 2))  # 0/1: exact
            blk = self.blocks[name] = (t, t + c, buf)
        return blk[2][t - blk[0]]


class _Outputs(dict):
    """This step's outputs, name -> (B, n): bool spikes of groups and binary ports, int32 payloads of graded
    ports. :meth:`as_float` gives them as a float array for the dense products, made once per step and dtype
    (for the float LIF path's groups: one conversion of all their spikes; binary input ports: from
    ``chunks``, converted for several steps at once)."""

    def __init__(self, layer: "_FastLayer", chunks: Optional[_InputChunks] = None, t: int = 0) -> None:
        super().__init__()
        self.layer = layer
        self.floats: Dict[Tuple[str, Any], np.ndarray] = {}
        self.converted = False  # the float LIF path's spikes converted to float32 this step
        self.chunks = chunks
        self.t = t

    def as_float(self, name: str, dt: Any) -> np.ndarray:
        if dt is np.float32:
            f = self.layer.float_views.get(name)
            if f is not None:  # a float LIF path group: one conversion of all their spikes per step
                if not self.converted:
                    self.layer.spikes_float()
                    self.converted = True
                return f
            if self.chunks is not None and name in self.chunks.arrays:
                return self.chunks.get(name, self.t)
        f = self.floats.get((name, dt))
        if f is None:
            f = self.floats[(name, dt)] = self[name].astype(dt)  # 0/1 or payloads below 2^24 / 2^53: exact
        return f


def _float_getter(name: str, layer: "_FastLayer", chunks: "_InputChunks") -> Callable[[_Outputs], np.ndarray]:
    """``outputs.as_float(name, np.float32)`` as a callable of the outputs, with the lookups that hold for the
    whole run (until the batch shrinks: the layer's buffers change) done once."""
    f = layer.float_views.get(name)
    if f is not None:
        spikes_float = layer.spikes_float

        def layer_float(outs: _Outputs) -> np.ndarray:
            if not outs.converted:
                spikes_float()
                outs.converted = True
            return f
        return layer_float
    if name in chunks.arrays:
        get = chunks.get
        return lambda outs: get(name, outs.t)
    f32 = np.float32
    return lambda outs: outs.as_float(name, f32)


def _compile_synapse(program: Program, syn: SynapseGroup) -> _Synapse:
    process = synapse_process(syn)
    graded = False
    if syn.src not in program.groups:
        graded = program.input_port(syn.src).num_message_bits > 0
        payload = 2 ** program.input_port(syn.src).num_message_bits - 1 if graded else 1
    elif program.groups[syn.src].sdn is not None:  # sigma-delta payloads: any int32 (Lava checks no bits)
        graded, payload = True, _INT32
    else:
        payload = 1
    w = syn.weight
    if isinstance(w, DenseStorage) or process == "delay_dense":
        w_eff = fx.lava_weights(w.to_dense(), syn.num_weight_bits, syn.sign_mode)
        absw = np.abs(w_eff)  # int32: |w| <= 256
        rowabs = int(absw.sum(axis=1, dtype=np.int64).max()) if w_eff.size else 0
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
    sdn: Any = None              # SigmaDeltaParams of a sigma-delta group (int32 path only), else None
    sdn_vth: Any = None          # its scaled threshold and bias (toolchain.fixedpoint_sdn.scaled_param)
    sdn_bias: Any = None
    in_bound: int = 0            # max |a_in| (sum of the out_bound of the synapse groups into it)
    u_init: Any = 0              # int32 (n,): u before step 0 (NeuronGroup.u_init)

    def sdn_state(self, batch: int) -> Tuple[np.ndarray, np.ndarray]:
        """Zero state of a sigma-delta group: ``(sigma (B, n), rest (B, 3, n))`` int32 with rest = act, residue,
        error (two arrays whose first axis is the batch, as the early exit expects of every group's state)."""
        return np.zeros((batch, self.n), np.int32), np.zeros((batch, 3, self.n), np.int32)

    def sdn_step(self, state: Tuple[np.ndarray, np.ndarray], a_in: Optional[np.ndarray]
                 ) -> Tuple[Tuple[np.ndarray, np.ndarray], np.ndarray]:
        """One step of a sigma-delta group (:mod:`toolchain.fixedpoint_sdn`): the new state and the int32
        payloads (B, n)."""
        from .. import fixedpoint_sdn as fxs
        sigma, rest = state
        a = np.zeros(sigma.shape, np.int32) if a_in is None else a_in
        q = self.sdn
        act, res, err = rest[:, 0], rest[:, 1], rest[:, 2]
        if q.kind == "sigma_delta":
            sigma, act, res, err, s = fxs.sigma_delta_step(sigma, act, res, err, a, self.sdn_vth, self.sdn_bias,
                                                           q.state_exp, q.act_mode, q.cum_error)
        elif q.kind == "sigma":
            sigma, s = fxs.sigma_step(sigma, a)
            act = sigma
        else:
            act, res, err, s = fxs.delta_step(act, res, err, a, self.sdn_vth, q.spike_exp, q.state_exp,
                                              q.cum_error)
        return (sigma, np.stack([act, res, err], axis=1)), s

    def resets_at(self, t: int) -> bool:
        """Lava's ``LIFReset``: u = v = 0 before the update of 0-based step ``t`` (``time_step = t + 1``)."""
        return self.reset_interval > 0 and (t + 1) % self.reset_interval == self.reset_offset

    def step(self, u: np.ndarray, v: np.ndarray, a_in: Optional[np.ndarray],
             bias_mant: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One step of the int32 emulation (:func:`toolchain.fixedpoint.lif_step`); ``bias_mant`` (B, n) int32
        replaces the group's own bias mantissa (a bias input port)."""
        a = np.zeros(u.shape, np.int32) if a_in is None else a_in
        return fx.lif_step(u, v, a, self.du, self.dv, self.vth,
                           self.bias_mant if bias_mant is None else bias_mant, self.bias_exp,
                           "subtract" if self.subtract else "zero")


def _compile_group(program: Program, name: str, in_bound: int) -> _Group:
    g = program.groups[name]
    out = _Group(name, g.size, in_bound < _FAST_LIF_BOUND and g.sdn is None, g.reset_mode == "subtract",
                 g.du.astype(np.int64), g.dv.astype(np.int64), g.vth.astype(np.int64), g.bias_mant.astype(np.int16),
                 g.bias_exp.astype(np.int16), g.v_init.astype(np.int32), g.reset_interval, g.reset_offset)
    out.in_bound = int(in_bound)
    out.u_init = np.broadcast_to(np.asarray(g.u_init, np.int32), (g.size,))
    if g.sdn is not None:
        from ..fixedpoint_sdn import scaled_param
        out.sdn = g.sdn
        out.sdn_vth = scaled_param(g.sdn.vth, g.sdn.spike_exp, g.sdn.state_exp).astype(np.int32)
        out.sdn_bias = scaled_param(g.sdn.bias, g.sdn.spike_exp, g.sdn.state_exp).astype(np.int32)
    return out


def _runs(flags: Sequence[bool], slices: Sequence[slice]) -> List[slice]:
    """The slices whose flag is set, adjacent ones merged."""
    out: List[slice] = []
    for f, sl in zip(flags, slices):
        if not f:
            continue
        if out and out[-1].stop == sl.start:
            out[-1] = slice(out[-1].start, sl.stop)
        else:
            out.append(sl)
    return out


def _identity(x: Any) -> Any:
    return x


class _InPlaceOps:
    """The primitives of :func:`toolchain.fixedpoint.lif_subthreshold` / :func:`~toolchain.fixedpoint.lif_fire`
    (the one definition of the LIF update) for the float LIF path, written in place into the layer's state
    buffers: int32 state (the float64 decay product cast to int32 truncates toward zero, so ``trunc`` is that
    cast) or float64 state (``np.trunc``); the 24-bit wrap and the clip only where a max/min check finds a value
    out of range; spikes into the layer's bool buffer; the zero and subtract resets without branches, per run of
    groups with the same reset mode (the ``subtract`` argument is not used: each group has its own). No int32
    wrap is needed on this path (the caller passes ``wrap_free``; module docstring).

    *Range checks from bounds.* The wrap's and the clip's max/min reductions are skipped where scalar bounds on
    the state prove that no value can be out of range: ``[u_lo, u_hi]`` and ``[v_lo, v_hi]`` (always containing 0)
    hold every value of ``u`` and ``v``; one step gives ``trunc(u · fu) + a`` in
    ``[u_lo · fu_max - A, u_hi · fu_max + A]`` (``0 <= fu <= fu_max <= 1``, truncation toward zero, ``|a_in << 6|
    <= A = 64 · max in_bound``) and ``trunc(v · fv) + u + bias`` likewise; a reduction that is run resets its
    bound to the measured value (or to the range limit where it wrapped or clipped). Skipping a check that
    cannot fire changes no value."""

    def __init__(self, layer: "_FastLayer") -> None:
        self.layer = layer
        self.trunc = self._trunc
        self.int_state = False
        self.small = False
        self.reset_bounds()

    def reset_bounds(self) -> None:
        """Bounds of the initial state: u = u_init, v = v_init."""
        lay = self.layer
        self.u_lo = min(float(lay._u_init.min()), 0.0) if lay.n else 0.0
        self.u_hi = max(float(lay._u_init.max()), 0.0) if lay.n else 0.0
        self.v_lo = min(float(lay._v_init.min()), 0.0) if lay.n else 0.0
        self.v_hi = max(float(lay._v_init.max()), 0.0) if lay.n else 0.0

    def state_type(self, int_state: bool, small: bool = False) -> None:
        """int32 state: ``trunc`` is the identity (the cast truncated already); float64: ``np.trunc`` in place.
        ``small``: a small batch (fewest calls: mixed-dtype additions)."""
        self.trunc = _identity if int_state else self._trunc
        self.int_state = int_state
        self.small = small

    @staticmethod
    def _trunc(x: np.ndarray) -> np.ndarray:
        return np.trunc(x, out=x)

    @staticmethod
    def mul(x: np.ndarray, y: Any) -> np.ndarray:
        return np.multiply(x, y, out=x, casting="unsafe")

    def add(self, x: np.ndarray, y: Any) -> np.ndarray:
        if y is None:
            return x
        if self.int_state and not self.small and y.dtype != x.dtype:
            # the float32 input slot into the int32 state: cast it first (exact integers below 2^24), then one
            # int32 addition — numpy's mixed int32 + float32 loop casts both operands and the result, several
            # times slower
            np.copyto(self.layer._ai, y, casting="unsafe")
            y = self.layer._ai
        return np.add(x, y, out=x, casting="unsafe")  # exact: integers below 2^26

    def wrap_current(self, x: np.ndarray) -> np.ndarray:
        lay = self.layer
        c = lay._c[0]
        hi = self.u_hi * lay.fu_max + lay.a_max
        lo = self.u_lo * lay.fu_max - lay.a_max
        if not lay.bounded or hi > fx.MAX_UV:
            m = float(_max(x, axis=None)) if x.size else 0.0
            if m > fx.MAX_UV:                                   # one correction of 2^24
                np.subtract(x, c, out=x, where=x > fx.MAX_UV)
                hi, lo = fx.MAX_UV, -fx.MAX_UV                  # wrapped values lie in (-2^23, 2^23)
            else:
                hi = m
        if not lay.bounded or lo <= -fx.MAX_UV:
            m = float(_min(x, axis=None)) if x.size else 0.0
            if m <= -fx.MAX_UV:
                np.add(x, c, out=x, where=x <= -fx.MAX_UV)
                lo, hi = -fx.MAX_UV, fx.MAX_UV                  # wrapped values lie in (-2^23, 2^23]
            else:
                lo = m
        self.u_hi = hi if hi > 0.0 else 0.0
        self.u_lo = lo if lo < 0.0 else 0.0
        return x

    def clip(self, x: np.ndarray, lo: int, hi: int) -> np.ndarray:
        lay = self.layer
        b_hi = self.v_hi * lay.fv_max + self.u_hi + lay.bias_hi
        b_lo = self.v_lo * lay.fv_max + self.u_lo + lay.bias_lo
        if not lay.bounded or b_lo < lo:
            m = float(_min(x, axis=None)) if x.size else 0.0
            if m < lo:
                np.maximum(x, lay._c[1], out=x)
            b_lo = m if m > lo else lo
        if lay.clip_high and (not lay.bounded or b_hi > hi):
            m = float(_max(x, axis=None)) if x.size else 0.0
            if m > hi:
                np.minimum(x, lay._c[2], out=x)
            b_hi = m if m < hi else hi
        self.v_hi = b_hi if b_hi > 0.0 else 0.0
        self.v_lo = b_lo if b_lo < 0.0 else 0.0
        return x

    def fire(self, v: np.ndarray, vth: np.ndarray) -> np.ndarray:
        return np.greater(v, vth, out=self.layer.spikes)        # strict threshold

    def reset(self, v: np.ndarray, s: np.ndarray, vth: np.ndarray, subtract: bool) -> np.ndarray:
        lay = self.layer
        if lay.zero_runs:
            np.logical_not(s, out=lay._keep)
            for r in lay.zero_runs:                             # v = 0 where s
                vr = v[:, r]
                np.multiply(vr, lay._keep[:, r], out=vr, casting="unsafe")
        for r in lay.sub_runs:                                  # v -= vth << 6 where s
            vr = v[:, r]
            np.subtract(vr, np.multiply(s[:, r], vth[r]), out=vr)
        # bounds after the reset: a zero reset leaves v <= vth << 6 or 0, a subtract reset moves v by -vth
        if lay.sub_runs:
            self.v_hi += lay.vth_neg
        elif self.v_hi > lay.vth_hi:
            self.v_hi = lay.vth_hi
        return v


class _FastLayer:
    """Every group on the float LIF path, side by side: state ``u``, ``v`` (B, N) holding Lava's integers (int32,
    or float64 for small batches: :meth:`init_state`), per-neuron constants (N,), bool ``spikes`` (B, N), and
    ``slots``, the ring buffer of ``a_in << 6`` (B, N) float32, one slot per step of the longest delay into these
    groups plus one.

    Exactness (see the module docstring): ``|u| <= 2^23`` and ``|v| < 2^23`` between steps, ``|a_in << 6| < 2^24``,
    ``|bias| <= 2^19``; the decay factors ``(4096 - du - 1)/4096`` and ``(4096 - dv)/4096`` (``du`` in [-1, 4095],
    ``dv`` in [0, 4096]) have 12 fractional bits, so each decay product (at most 37 significant bits) is exact in
    float64 before its truncation toward zero, and every sum stays below 2^26 in magnitude.
    """

    def __init__(self, groups: Sequence[_Group], bias_ports: Set[str], n_slots: int) -> None:
        self.names = [g.name for g in groups]
        sl, off = {}, 0
        for g in groups:
            sl[g.name] = slice(off, off + g.n)
            off += g.n
        self.sl: Dict[str, slice] = sl
        self.n = off
        self.float_views: Dict[str, np.ndarray] = {}  # group -> its columns of the float32 spikes (init_buffers)
        cat = (lambda xs: np.concatenate(xs) if xs else np.zeros(0))  # noqa: E731
        self.fu = cat([np.broadcast_to(fx.decay_factor(g.du + fx.DS_OFFSET), (g.n,)) for g in groups]
                      ).astype(np.float64)
        self.fv = cat([np.broadcast_to(fx.decay_factor(g.dv + fx.DM_OFFSET), (g.n,)) for g in groups]
                      ).astype(np.float64)
        self._vth = cat([np.broadcast_to(fx.effective_threshold(g.vth), (g.n,)) for g in groups]).astype(np.int64)
        # own bias; zero where a bias input port replaces it
        self._bias = cat([np.zeros(g.n) if g.name in bias_ports else
                          np.broadcast_to(fx.effective_bias(g.bias_mant, g.bias_exp), (g.n,)) for g in groups]
                         ).astype(np.int64)
        self.has_bias = bool(np.any(self._bias))
        self.bias_exp = {g.name: g.bias_exp for g in groups}
        slices = [sl[g.name] for g in groups]
        self.zero_runs = _runs([not g.subtract for g in groups], slices)
        self.sub_runs = _runs([g.subtract for g in groups], slices)
        # v above V_MAX needs the clip only where it could stay unspiked (a threshold at V_MAX or above) or is
        # kept after the spike (subtract reset); a zero-reset neuron with vth << 6 < V_MAX spikes and resets to
        # 0 with or without the clip
        self.clip_high = bool(self.sub_runs) or bool(self.n and self._vth.max() >= fx.V_MAX)
        self._v_init = cat([np.broadcast_to(g.v_init, (g.n,)) for g in groups]).astype(np.int64)
        self._u_init = cat([np.broadcast_to(g.u_init, (g.n,)) for g in groups]).astype(np.int64)
        # int32 state needs the thresholds (compared with v) and biases (added to v) inside int32, with room:
        # Lava's 17-bit vth << 6 and 13-bit bias_mant << 3-bit bias_exp are far inside
        self._int_ok = bool(self.n == 0 or max(np.abs(self._vth).max(), np.abs(self._bias).max()) <= 2 ** 24)
        # the scalar bounds of the range checks (:class:`_InPlaceOps`): largest |a_in << 6|, decay factors, bias
        # (a bias input port's mantissa lies in [-4096, 4095]), thresholds
        self.a_max = float(64 * max([g.in_bound for g in groups], default=0))
        self.fu_max = float(self.fu.max()) if self.n else 0.0
        self.fv_max = float(self.fv.max()) if self.n else 0.0
        port_exp = max([int(np.max(g.bias_exp)) for g in groups if g.name in bias_ports], default=None)
        port_hi, port_lo = (0, 0) if port_exp is None else (4095 << port_exp, -(4096 << port_exp))
        self.bias_hi = float(max(int(self._bias.max()) if self.n else 0, port_hi, 0))
        self.bias_lo = float(min(int(self._bias.min()) if self.n else 0, port_lo, 0))
        self.vth_hi = float(max(int(self._vth.max()) if self.n else 0, 0))
        self.vth_neg = float(max(-int(self._vth.min()) if self.n else 0, 0))
        self.bounded = bool(self.n == 0 or (self.fu.min() >= 0 and self.fv.min() >= 0 and self.fu_max <= 1
                                             and self.fv_max <= 1 and (port_exp is None or port_exp >= 0)))
        self.n_slots = n_slots
        # groups already written into a slot since it was last read. Every synapse group delivers at every step,
        # so a group's slice of a slot is written again before the slot is next read (zero before its first
        # write: the ring starts zeroed); the first writer overwrites, the others add.
        self.written: List[Set[str]] = [set() for _ in range(n_slots)]
        self.ops = _InPlaceOps(self)

    def init_state(self, batch: int) -> None:
        """State for ``batch`` samples: int32 from :data:`_INT_STATE_BATCH` samples up (the decay as one
        float64 product cast to int32 — the cast truncates toward zero — halves the memory traffic of large
        batches), float64 below (plain ufunc loops: less fixed cost per call for small arrays)."""
        self.int_state = batch >= _INT_STATE_BATCH and self._int_ok
        self.ops.state_type(self.int_state, batch < _SMALL_BATCH)
        dt = np.int32 if self.int_state else np.float64
        self.vth, self.bias = self._vth.astype(dt), self._bias.astype(dt)
        self._c = (dt(2 * fx.MAX_UV), dt(fx.V_MIN), dt(fx.V_MAX))
        self.u = np.repeat(self._u_init.astype(dt)[None, :], batch, axis=0)
        self.v = np.repeat(self._v_init.astype(dt)[None, :], batch, axis=0)
        self.slots = [np.zeros((batch, self.n), np.float32) for _ in range(self.n_slots)]
        self.ops.reset_bounds()
        self.init_buffers(batch)

    def init_buffers(self, batch: int) -> None:
        self.spikes = np.zeros((batch, self.n), bool)
        self.spike_views = {g: self.spikes[:, sl] for g, sl in self.sl.items()}
        self.slot_views = [{g: s[:, sl] for g, sl in self.sl.items()} for s in self.slots]
        self._keep = np.zeros((batch, self.n), bool)
        self._float = np.zeros((batch, self.n), np.float32)
        self.float_views = {g: self._float[:, sl] for g, sl in self.sl.items()}
        # the input slot cast to int32 (int32 state), in the float spikes' buffer: that is free during the update
        self._ai = self._float.view(np.int32) if self.int_state else None

    def spikes_float(self) -> np.ndarray:
        """This step's spikes as float32 0/1 (B, N), the dense products' operand."""
        np.copyto(self._float, self.spikes)
        return self._float

    def keep(self, keep: np.ndarray) -> None:
        """Drop the samples whose ``keep`` entry is False (early exit)."""
        self.u, self.v = self.u[keep], self.v[keep]
        self.slots = [s[keep] for s in self.slots]
        self.init_buffers(self.u.shape[0])

    def dest(self, t_due: int, group: str) -> Tuple[np.ndarray, bool]:
        """The input slice of ``group`` due at step ``t_due`` and whether nothing was written there yet."""
        k = t_due % self.n_slots
        w = self.written[k]
        first = group not in w
        w.add(group)
        return self.slot_views[k][group], first

    def step(self, t: int, resets: Sequence[str], port_bias: Sequence[Tuple[str, np.ndarray]]) -> None:
        """Step ``t`` of every group: ``u``, ``v`` and ``spikes`` (B, N; bool) in place. ``resets``: groups whose
        periodic reset falls on this step; ``port_bias``: (group, (B, n) bias mantissas) from bias input ports."""
        u, v = self.u, self.v
        k = t % self.n_slots
        a = self.slots[k]
        for g in resets:
            u[:, self.sl[g]] = 0
            v[:, self.sl[g]] = 0
        if u.size:
            bias = self.bias if self.has_bias else None
            if port_bias:  # bias input ports: their groups' bias per sample (own bias zero there)
                bias = np.repeat(self.bias[None, :], v.shape[0], axis=0)
                for g, mant in port_bias:
                    bg = bias[:, self.sl[g]]
                    np.add(bg, fx.effective_bias(mant, self.bias_exp[g]), out=bg, casting="unsafe")
            # the LIF update, fixedpoint's one definition, run with in-place primitives on this layer's buffers
            fx.lif_subthreshold(u, v, a, self.fu, self.fv, bias, wrap_free=True, ops=self.ops, a_in_shifted=True)
            fx.lif_fire(v, self.vth, bool(self.sub_runs), ops=self.ops)
        self.written[k] = set()


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
             progress: Optional[bool] = None, force_exact: bool = False,
             event: Optional[bool] = None, backend: str = "numpy", device: Optional[str] = None) -> SimResult:
    """Run ``program`` on a batch of inputs; bit-exact with :func:`toolchain.backends.lava.run_lava`.

    ``x``: (B, T, *input_shape) integer array (or a mapping input-port name -> array), see
    :func:`prepare_inputs`. ``steps``: steps to run (default T). ``record``: False (the output only), True
    (spikes, u, v of every group) or a list of group names. ``early_exit``: optional
    ``(t, accumulated_output) -> bool mask`` called after each 0-based step ``t`` with the accumulated output
    ``Y(t) = sum over steps <= t`` of the output (spike counts, or ``v`` of a readout) of the samples still
    running, shape (B_active, n_out) int64, rows in the original sample order; samples whose mask entry is True
    stop (they are removed from the batch: no more work is done for them), their records after the exit stay
    zero and ``steps_run`` says how many steps they ran. ``progress``: tqdm bar (default: on a terminal, for
    long runs). ``force_exact``: use the int32 emulation for every group (for tests). ``event``: the synaptic
    products' method — None chooses per synapse group and step by the source's activity, True takes the
    event-driven path wherever a synapse group allows it, False the dense one (all give the same integers; see
    the module docstring). ``backend``: "numpy" (this module) or "torch" (:mod:`toolchain.sim.torch_backend`, the
    same integers with torch tensors on ``device``: "cpu" (default), "cuda", ...; ``progress``, ``force_exact``
    and ``event`` do not apply there).
    """
    if backend == "torch":
        from .torch_backend import simulate as simulate_torch  # torch is imported only for this backend
        return simulate_torch(program, x, steps, record, early_exit, device=device or "cpu")
    if backend != "numpy":
        raise InputError(f"must be 'numpy' or 'torch', got {backend!r}", field="backend")
    inputs, batch, steps = prepare_inputs(program, x, steps)
    rec_groups = recorded_groups(program, record)
    out_name = program.output
    out_group = program.groups[out_name]
    out_kind = "spikes" if out_group.spiking else "v"

    kinds = {q.name: q for q in program.inputs}
    # binary ports as bool (a view: their uint8 values are checked to be 0/1), graded ones int32
    spike_inputs = {k: (a.view(np.bool_) if kinds[k].num_message_bits == 0 else a) for k, a in inputs.items()
                    if kinds[k].kind == "spikes"}
    chunks = _InputChunks({k: a for k, a in spike_inputs.items() if kinds[k].num_message_bits == 0}, steps)
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
    exact_groups = [g for g in groups if not g.fast]
    layer = _FastLayer([g for g in groups if g.fast], set(bias_of),
                       1 + max([s.delay for s in syns if fast_group[s.dst]], default=0))
    reset_groups = [g for g in groups if g.fast and g.reset_interval > 0]
    fast_bias = {g: a for g, a in bias_of.items() if g in layer.sl}

    spikes_rec = {g: np.zeros((batch, steps, program.groups[g].size),
                              np.int32 if program.groups[g].sdn is not None else np.uint8) for g in rec_groups}
    u_rec = {g: np.zeros((batch, steps, program.groups[g].size), np.int32) for g in rec_groups}
    v_rec = {g: np.zeros((batch, steps, program.groups[g].size), np.int32) for g in rec_groups}
    if out_kind == "spikes" and out_name not in spikes_rec:
        spikes_rec[out_name] = np.zeros((batch, steps, out_group.size),
                                        np.int32 if out_group.sdn is not None else np.uint8)
    if out_kind == "v" and out_name not in v_rec:
        v_rec[out_name] = np.zeros((batch, steps, out_group.size), np.int32)
    steps_run = np.full(batch, steps, dtype=np.int64)
    fast_rec = [(g, sl) for g, sl in layer.sl.items() if g in spikes_rec or g in v_rec]

    layer.init_state(batch)
    state = {g.name: g.sdn_state(batch) if g.sdn is not None else
             (np.repeat(np.asarray(g.u_init, np.int32)[None, :], batch, axis=0),
              np.repeat(g.v_init[None, :], batch, axis=0)) for g in exact_groups}
    queues = {s.name: [None] * (s.delay + 1) for s in syns if not fast_group[s.dst]}  # slot t % (d+1)
    active = np.arange(batch)
    all_active = True
    acc_out = np.zeros((batch, out_group.size), np.int64) if early_exit is not None else None

    # the synapse groups into the float path, planned once per run (and again when the batch shrinks):
    # (deliver, its destination's slice of every ring slot, delay, first step from which it adds). A slot is
    # overwritten by its first writer and added to by the others (the ring starts zeroed); every synapse group
    # writes at every step, so group s is the first writer of the slot due at t + 1 + d unless a group of the same
    # destination and delay precedes it, or one with a longer delay d2 wrote that slot earlier (at step
    # t + d - d2 >= 0): first exactly while t < min(d2) - d.
    fast_syns = [s for s in syns if fast_group[s.dst]]
    exact_syns = [s for s in syns if not fast_group[s.dst]]
    n_slots = layer.n_slots
    first_until = []
    for i, s in enumerate(fast_syns):
        if any(s2.dst == s.dst and s2.delay == s.delay for s2 in fast_syns[:i]):
            first_until.append(0)
        else:
            longer = [s2.delay for s2 in fast_syns if s2.dst == s.dst and s2.delay > s.delay]
            first_until.append(min(longer) - s.delay if longer else steps + 1)

    def plan_fast(b: int) -> List[Tuple[Callable[..., None], List[np.ndarray], int, int]]:
        return [(s.planned(event, b, layer, chunks), [layer.slot_views[k][s.dst] for k in range(n_slots)],
                 s.delay, f) for s, f in zip(fast_syns, first_until)]

    fast_plan = plan_fast(batch)
    fast_copies = []  # (record transposed to (steps, B, n), the layer's view it copies at every step)
    for g, sl in fast_rec:
        if g in spikes_rec:
            fast_copies.append((spikes_rec[g].transpose(1, 0, 2), layer.spike_views[g]))
        if g in u_rec:
            fast_copies.append((u_rec[g].transpose(1, 0, 2), layer.u[:, sl]))
        if g in v_rec:
            fast_copies.append((v_rec[g].transpose(1, 0, 2), layer.v[:, sl]))

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
            outs = _Outputs(layer, chunks, t)
            # 1.+2. the float LIF path's groups: input due now (ring slot), update, spikes
            if layer.names:
                layer.step(t, [g.name for g in reset_groups if g.resets_at(t)] if reset_groups else (),
                           [(g, a[rows, t]) for g, a in fast_bias.items()] if fast_bias else ())
                outs.update(layer.spike_views)
                if all_active:  # the records' step t, time-major views: one plain copy each
                    for rec_t, now in fast_copies:
                        rec_t[t] = now
                else:
                    for g, sl in fast_rec:
                        if g in spikes_rec:
                            spikes_rec[g][rows, t] = layer.spike_views[g]
                        if g in u_rec:
                            u_rec[g][rows, t] = layer.u[:, sl]
                        if g in v_rec:
                            v_rec[g][rows, t] = layer.v[:, sl]
            # 1.+2. the int32 groups: synaptic input due now (int32, wrapping sum), update
            if exact_groups:
                a_in: Dict[str, Optional[np.ndarray]] = {g.name: None for g in exact_groups}
                for s in syns:
                    if fast_group[s.dst]:
                        continue
                    c = queues[s.name][t % (s.delay + 1)]
                    if c is None:
                        continue
                    prev = a_in[s.dst]
                    if prev is None:
                        a_in[s.dst] = c.astype(np.int32)
                    else:
                        np.add(prev, c, out=prev)  # int32: wraps like Lava's port sum
                for g in exact_groups:
                    if g.sdn is not None:  # sigma-delta: payloads in spikes, sigma in u, act in v
                        st, s = g.sdn_step(state[g.name], a_in[g.name])
                        state[g.name] = st
                        outs[g.name] = s
                        if g.name in spikes_rec:
                            spikes_rec[g.name][rows, t] = s
                        if g.name in u_rec:
                            u_rec[g.name][rows, t] = st[0]
                            v_rec[g.name][rows, t] = st[1][:, 0]
                        continue
                    u, v = state[g.name]
                    if g.resets_at(t):
                        u, v = np.zeros_like(u), np.zeros_like(v)
                    bias = bias_of.get(g.name)
                    u, v, s = g.step(u, v, a_in[g.name], None if bias is None else bias[rows, t])
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
                outs[name] = arr[rows, t]
            for run, views, d, first_to in fast_plan:
                run(outs, views[(t + 1 + d) % n_slots], t < first_to)
            for s in exact_syns:
                queues[s.name][t % (s.delay + 1)] = s.run(outs, event)
            bar.update(1)
            # early exit
            if early_exit is not None:
                if out_kind == "spikes":
                    y = outs[out_name]
                else:
                    y = layer.v[:, layer.sl[out_name]] if out_name in layer.sl else state[out_name][1]
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
                    chunks.select(active)
                    layer.keep(keep)
                    fast_plan = plan_fast(active.size)
                    state = {k: (u[keep], v[keep]) for k, (u, v) in state.items()}
                    for name in queues:
                        queues[name] = [None if c is None else c[keep] for c in queues[name]]
    finally:
        bar.close()

    output = spikes_rec[out_name] if out_kind == "spikes" else v_rec[out_name]
    return SimResult(spikes=spikes_rec, u=u_rec, v=v_rec, output=output, output_group=out_name,
                     output_kind=out_kind, steps_run=steps_run, backend="reference",
                     groups=[g for g in program.groups if g in spikes_rec or g in v_rec])
