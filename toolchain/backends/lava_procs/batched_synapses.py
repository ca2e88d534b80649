"""``BatchedSynapses``: the synapses of B copies of a network as one matrix product per block, for batched runs.

A batched Lava network (:func:`toolchain.backends.lava.build_batched_network`) holds B samples side by side in
flat B-wide ports: entry ``col0 + b·n_src + i`` of the input is input ``i`` of sample ``b`` of one source group,
entry ``row0 + b·n_dst + j`` of the output is neuron ``j`` of sample ``b`` of one destination group. Lava's own
``Sparse`` computes that with the block-diagonal CSR matrix of the B copies (a CSR mat-vec over B x the stored
synapses every step). This process keeps the same ports and computes each *block* (one synapse group's weights
``W``, (n_dst, n_src), at ``(row0, col0)``) once for the whole batch::

    S = s_in[col0:col0 + B·n_src].reshape(B, n_src)          # one row per sample
    acc[row0:row0 + B·n_dst] += (S @ W.T).ravel()            # dense W: one BLAS GEMM (float32 or float64)
    acc[row0:row0 + B·n_dst] += (W @ S.T).T.ravel()          # sparse W: scipy CSR x dense (n_src, B), int32

Integer semantics, following Lava 0.10.0's bit-accurate ``Sparse`` model line by line
(``lava/proc/sparse/models.py``, ``AbstractPySparseModelBitAcc.run_spk``; the ``Dense`` model,
``proc/dense/models.py`` L80-107, is the same):

* weights (L82-90): on the first step, each block's stored weights (int32 CSR, one copy) go through Lava's own
  ``clip_weights(w, sign_mode, num_bits=8)`` then ``truncate_weights(w, sign_mode, num_weight_bits)``
  (``lava.utils.weightutils``, imported here: int32, clip to the sign mode's 8-bit range, then the arithmetic
  shift ``(w >> n) << n`` — rounding toward minus infinity, toward zero for inhibitory weights — and
  ``eliminate_zeros``). They are applied to one copy; Lava applies them elementwise, so to every copy alike;
* ``a_out.send(a_buff)`` before the receive (L94-96): the sum of step t is sent at step t+1, ``a_buff`` int32
  (``LavaPyType(np.ndarray, np.int32)``), 0 at the first step;
* the sum (L97-102): Lava forms ``weights.dot(s_in)`` (int32, wrapping) for graded input and the sum of the
  selected int32 columns for binary input; here every product ``w·s`` and every partial sum is an integer of
  magnitude at most the row bound ``sum_i |w_ji|·max(s)`` (weights after clip and truncation, over every block
  into the row). The builder uses this process only while that bound is below 2^31, so neither of Lava's two
  forms wraps and both equal the exact integer sum. The float GEMM is exact while the bound is below 2^24
  (float32: integers up to 2^24 are exact, so every product and every partial sum, in whatever order BLAS adds
  them, FMA or not) or 2^53 (float64) — :func:`exact_float_dtype` chooses float32 below 2^24 and float64
  otherwise; the CSR x dense path accumulates in int32 (scipy ``csr_matvecs``), exact below 2^31. Blocks are
  accumulated in int64 and the row sum cast to int32 (exact below 2^31): ``a_accum`` int32 as in Lava's dot path;
* the shift (L103-107): ``np.left_shift(a_accum, weight_exp)`` for ``weight_exp > 0`` (int32, wrapping as in
  Lava's dot path), else ``np.right_shift(a_accum, -weight_exp)`` (arithmetic: floor), Lava's own expression.

Only absolute imports here: Lava's model search executes this file as a stand-alone module.
"""
from typing import Any, Optional, Sequence, Tuple

import numpy as np

from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
from lava.utils.weightutils import SignMode, clip_weights, truncate_weights

#: Largest row bound (sum of |w|·payload) for which float32 / float64 sums of integers are exact.
FLOAT32_EXACT = 2 ** 24
FLOAT64_EXACT = 2 ** 53
#: The builder uses this process only below this row bound (Lava's int32 sums do not wrap).
INT32_LIMIT = 2 ** 31


def exact_float_dtype(bound: int) -> str:
    """The float type whose GEMM sums integers of magnitude up to ``bound`` exactly: "float32" below 2^24,
    "float64" below 2^53; raises ValueError beyond."""
    if bound < FLOAT32_EXACT:
        return "float32"
    if bound < FLOAT64_EXACT:
        return "float64"
    raise ValueError(f"row bound {bound} >= 2^53: no float type sums it exactly")


def _limit_blas_threads(n: int) -> None:
    """At most ``n`` BLAS threads in this OS process (each Lava process model runs in its own; threadpoolctl
    comes with scikit-learn, a dependency). Only a speed setting: without threadpoolctl nothing changes."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - installed with scikit-learn
        return
    threadpool_limits(limits=n, user_api="blas")


class BatchedSynapses(AbstractProcess):
    """Synapses of ``batch`` copies, flat ports ``s_in`` (n_in,) and ``a_out`` (n_out,).

    ``blocks``: ``[(row0, col0, weights, mode), ...]`` — ``weights`` the stored weights of one copy (scipy CSR
    int32, (n_dst, n_src)), placed at output entry ``row0`` and input entry ``col0`` (sample-major inside the
    block); ``mode`` "dense" (GEMM in ``dtype``) or "csr" (scipy CSR x dense, int32). ``weight_exp``,
    ``num_weight_bits``, ``sign_mode`` (a Lava ``SignMode``) as Lava's ``Sparse``; ``dtype``: "float32" or
    "float64" (:func:`exact_float_dtype` of the row bound, which must be below 2^31). ``blas_threads``: the
    BLAS threads of the model's OS process (None: BLAS's default), set with ``threadpoolctl``."""

    def __init__(self, *, n_in: int, n_out: int, batch: int, blocks: Sequence[Tuple[int, int, Any, str]],
                 weight_exp: int = 0, num_weight_bits: int = 8, sign_mode: Optional[SignMode] = None,
                 dtype: str = "float64", blas_threads: Optional[int] = 1, **kwargs: Any) -> None:
        super().__init__(n_in=n_in, n_out=n_out, batch=batch, blocks=blocks, weight_exp=weight_exp,
                         num_weight_bits=num_weight_bits, sign_mode=sign_mode, dtype=dtype,
                         blas_threads=blas_threads, **kwargs)
        self.s_in = InPort(shape=(n_in,))
        self.a_out = OutPort(shape=(n_out,))
        self.a_buff = Var(shape=(n_out,), init=0)


@implements(proc=BatchedSynapses, protocol=LoihiProtocol)
@requires(CPU)
@tag("bit_accurate_loihi", "fixed_pt")
class PyBatchedSynapsesModelBitAcc(PyLoihiProcessModel):
    """The fixed_pt model of :class:`BatchedSynapses` (see the module docstring for each line followed)."""

    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, bool, precision=1)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=16)
    a_buff: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=16)

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        self._blocks = None

    def _prepare(self) -> None:
        """Lava's clip and truncation of each block's weights (once), then the form the product uses: dense
        transposed (n_src, n_dst) in the float type, or CSR int32."""
        p = self.proc_params
        if p.get("blas_threads") is not None:
            _limit_blas_threads(int(p["blas_threads"]))
        nwb = int(p["num_weight_bits"])
        sign_mode = p["sign_mode"]
        dt = np.dtype(p["dtype"])
        B = int(p["batch"])
        blocks = []
        for row0, col0, w, mode in p["blocks"]:
            w = clip_weights(w, sign_mode, num_bits=8)
            w = truncate_weights(w, sign_mode, nwb)
            n_dst, n_src = w.shape
            op = np.ascontiguousarray(w.toarray().T.astype(dt)) if mode == "dense" else w.tocsr().astype(np.int32)
            blocks.append((int(row0), int(col0), n_dst, n_src, op, mode == "dense"))
        self._blocks = blocks
        self._B = B
        self._dt = dt
        self._n_out = int(p["n_out"])
        self.weight_exp = int(p["weight_exp"])

    def run_spk(self) -> None:
        """Send the last step's ``a_buff``, receive ``s_in``, form this step's shifted int32 sums."""
        if self._blocks is None:
            self._prepare()
        self.a_out.send(self.a_buff)
        s_in = self.s_in.recv()
        B = self._B
        acc = np.zeros(self._n_out, np.int64)
        for row0, col0, n_dst, n_src, op, dense in self._blocks:
            S = s_in[col0:col0 + B * n_src].reshape(B, n_src)
            if dense:
                part = S.astype(self._dt) @ op                                       # (B, n_dst)
            else:
                part = op.dot(np.ascontiguousarray(S.T, dtype=np.int32)).T           # (B, n_dst)
            acc[row0:row0 + B * n_dst] += part.reshape(-1).astype(np.int64)
        a_accum = acc.astype(np.int32)
        self.a_buff = (
            np.left_shift(a_accum, self.weight_exp)
            if self.weight_exp > 0
            else np.right_shift(a_accum, -self.weight_exp)
        )
