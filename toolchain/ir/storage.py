"""Weight storage types: how a synapse matrix is sparse.

Every matrix has NIR's orientation, ``shape == (n_out, n_in)``: row ``i`` holds the synapses *into* output
neuron ``i``. Three storage types say how the matrix is sparse:

* :class:`Dense` — every entry is a synapse (zeros included): ``n_out * n_in`` synapses.
* :class:`Csr` — unstructured sparsity: only the listed entries are synapses (compressed sparse rows).
* :class:`Conv` — a 2-D convolution between neuron grids: one shared kernel, stored per output position as the
  :class:`Csr` it is a subclass of (so every sparse code path runs it unchanged), with the geometry kept so that
  the compiler can charge shared-weight synapse memory and the backends can build a convolution process.
* :class:`Structured` — structured sparsity from pruning: whole rows (output neurons), whole columns (input
  neurons / axons) and whole ``block_shape`` blocks are gone. Only entries that survive all three masks are
  synapses; the compiler turns removed rows/columns into fewer neurons and axons and removed blocks into fewer
  synapses and cores.

All types are immutable, compare by value, and give back a dense array with :meth:`to_dense` (zeros where no
synapse is stored). ``nnz`` is the number of *stored* synapses, which is what synapse memory is spent on.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Tuple

import numpy as np

from ..errors import GraphError

__all__ = ["WeightStorage", "Dense", "Csr", "Conv", "Structured", "as_storage"]


def _frozen_array(a: np.ndarray) -> np.ndarray:
    a = np.array(a, copy=True)
    a.setflags(write=False)
    return a


class WeightStorage:
    """Common interface of the weight storage types (see the module docstring)."""

    shape: Tuple[int, int]

    @property
    def kind(self) -> str:
        """Short name of the storage type: ``dense``, ``csr`` or ``structured``."""
        return type(self).__name__.lower()

    def to_dense(self) -> np.ndarray:  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def nnz(self) -> int:  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def dtype(self) -> np.dtype:  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def density(self) -> float:
        """Stored synapses over ``n_out * n_in``."""
        total = int(self.shape[0]) * int(self.shape[1])
        return self.nnz / total if total else 0.0

    def stored_mask(self) -> np.ndarray:
        """Boolean ``(n_out, n_in)`` array, True where a synapse is stored."""
        raise NotImplementedError  # pragma: no cover

    def stored_values(self) -> np.ndarray:
        """The values of the stored synapses (1-D, without building the dense matrix where the type allows)."""
        return self.to_dense()[self.stored_mask()]

    def map_values(self, fn: Callable[[np.ndarray], np.ndarray]) -> "WeightStorage":
        """Apply ``fn`` element-wise to the stored values, keeping the sparsity structure."""
        raise NotImplementedError  # pragma: no cover

    def row_fan_in(self) -> np.ndarray:
        """Stored synapses into each output neuron (length ``n_out``)."""
        return self.stored_mask().sum(axis=1)

    def col_fan_out(self) -> np.ndarray:
        """Stored synapses out of each input neuron (length ``n_in``)."""
        return self.stored_mask().sum(axis=0)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, WeightStorage) or type(self) is not type(other):
            return NotImplemented if not isinstance(other, WeightStorage) else False
        return (self.shape == other.shape
                and np.array_equal(self.stored_mask(), other.stored_mask())
                and np.array_equal(self.to_dense(), other.to_dense()))

    def __hash__(self) -> int:  # frozen value objects; hashing by identity would break equality
        return hash((type(self).__name__, self.shape, self.nnz))


@dataclass(frozen=True, eq=False)
class Dense(WeightStorage):
    """All ``n_out * n_in`` entries are synapses. ``values``: float or integer array of shape (n_out, n_in)."""

    values: np.ndarray

    def __post_init__(self) -> None:
        v = np.asarray(self.values)
        if v.ndim != 2:
            raise GraphError(f"Dense weights must be 2-D (n_out, n_in), got shape {v.shape}", field="weight")
        object.__setattr__(self, "values", _frozen_array(v))

    @property
    def shape(self) -> Tuple[int, int]:  # type: ignore[override]
        return tuple(int(s) for s in self.values.shape)  # type: ignore[return-value]

    @property
    def dtype(self) -> np.dtype:
        return self.values.dtype

    @property
    def nnz(self) -> int:
        return int(self.values.size)

    def to_dense(self) -> np.ndarray:
        return np.array(self.values, copy=True)

    def stored_mask(self) -> np.ndarray:
        return np.ones(self.shape, dtype=bool)

    def stored_values(self) -> np.ndarray:
        return self.values.reshape(-1)

    def map_values(self, fn: Callable[[np.ndarray], np.ndarray]) -> "Dense":
        return Dense(np.asarray(fn(self.values)).reshape(self.shape))


@dataclass(frozen=True, eq=False)
class Csr(WeightStorage):
    """Unstructured sparse matrix in compressed-sparse-row form.

    ``indptr`` (int64, n_out+1), ``indices`` (int64, nnz; column of each stored synapse, sorted within a row),
    ``data`` (nnz values). Explicit zeros in ``data`` still count as stored synapses.
    """

    shape: Tuple[int, int]
    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray

    def __post_init__(self) -> None:
        shape = tuple(int(s) for s in self.shape)
        if len(shape) != 2 or min(shape) < 0:
            raise GraphError(f"Csr shape must be (n_out, n_in), got {self.shape}", field="weight")
        indptr = np.asarray(self.indptr, dtype=np.int64)
        indices = np.asarray(self.indices, dtype=np.int64)
        data = np.asarray(self.data)
        if indptr.shape != (shape[0] + 1,) or indptr[0] != 0 or np.any(np.diff(indptr) < 0):
            raise GraphError("Csr indptr must be non-decreasing, start at 0 and have n_out+1 entries",
                             field="weight.indptr")
        if indptr[-1] != indices.size or data.shape != indices.shape:
            raise GraphError(f"Csr has {indices.size} indices, {data.size} values and indptr[-1]={indptr[-1]}",
                             field="weight.indices")
        if indices.size and (indices.min() < 0 or indices.max() >= shape[1]):
            raise GraphError(f"Csr column index out of range [0, {shape[1]})", field="weight.indices")
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "indptr", _frozen_array(indptr))
        object.__setattr__(self, "indices", _frozen_array(indices))
        object.__setattr__(self, "data", _frozen_array(data))

    @classmethod
    def from_dense(cls, dense: np.ndarray, mask: Optional[np.ndarray] = None) -> "Csr":
        """Store the entries where ``mask`` is True (default: the non-zero entries)."""
        dense = np.asarray(dense)
        if dense.ndim != 2:
            raise GraphError(f"weights must be 2-D, got shape {dense.shape}", field="weight")
        mask = dense != 0 if mask is None else np.asarray(mask, dtype=bool)
        rows, cols = np.nonzero(mask)
        indptr = np.zeros(dense.shape[0] + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=dense.shape[0]), out=indptr[1:])
        return cls(dense.shape, indptr, cols, dense[rows, cols])

    @classmethod
    def from_coo(cls, shape: Tuple[int, int], rows: np.ndarray, cols: np.ndarray, data: np.ndarray) -> "Csr":
        """Build from coordinate lists; duplicate (row, col) pairs are summed."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        cols = np.asarray(cols, dtype=np.int64).reshape(-1)
        data = np.asarray(data).reshape(-1)
        if not (rows.size == cols.size == data.size):
            raise GraphError(f"rows, cols and data have {rows.size}, {cols.size} and {data.size} entries",
                             field="weight.indices")
        if rows.size and (rows.min() < 0 or rows.max() >= int(shape[0]) or cols.min() < 0
                          or cols.max() >= int(shape[1])):
            raise GraphError(f"coordinate out of range for shape {tuple(shape)}", field="weight.indices")
        key = rows * int(shape[1]) + cols
        uniq, inv = np.unique(key, return_inverse=True)
        summed = np.zeros(uniq.size, dtype=np.result_type(data.dtype, np.int64)
                          if np.issubdtype(data.dtype, np.integer) else data.dtype)
        np.add.at(summed, inv, data)
        r, c = uniq // int(shape[1]), uniq % int(shape[1])
        indptr = np.zeros(int(shape[0]) + 1, dtype=np.int64)
        np.cumsum(np.bincount(r, minlength=int(shape[0])), out=indptr[1:])
        return cls(shape, indptr, c, summed.astype(data.dtype, copy=False))

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def nnz(self) -> int:
        return int(self.indices.size)

    def rows(self) -> np.ndarray:
        """Row index of every stored synapse (length nnz)."""
        return np.repeat(np.arange(self.shape[0], dtype=np.int64), np.diff(self.indptr))

    def to_dense(self) -> np.ndarray:
        out = np.zeros(self.shape, dtype=self.data.dtype)
        out[self.rows(), self.indices] = self.data
        return out

    def stored_mask(self) -> np.ndarray:
        out = np.zeros(self.shape, dtype=bool)
        out[self.rows(), self.indices] = True
        return out

    def stored_values(self) -> np.ndarray:
        return self.data

    def row_fan_in(self) -> np.ndarray:
        return np.diff(self.indptr)

    def col_fan_out(self) -> np.ndarray:
        return np.bincount(self.indices, minlength=self.shape[1])

    def map_values(self, fn: Callable[[np.ndarray], np.ndarray]) -> "Csr":
        return Csr(self.shape, self.indptr, self.indices, np.asarray(fn(self.data)).reshape(self.data.shape))

    def to_scipy(self):
        """The matrix as ``scipy.sparse.csr_matrix`` (shares no memory with this object)."""
        import scipy.sparse as sp
        return sp.csr_matrix((np.array(self.data), np.array(self.indices), np.array(self.indptr)),
                             shape=self.shape)


def _pair(x: "int | Tuple[int, int]", name: str) -> Tuple[int, int]:
    a = np.atleast_1d(np.asarray(x)).astype(np.int64).reshape(-1)
    if a.size == 1:
        a = np.repeat(a, 2)
    if a.size != 2:
        raise GraphError(f"Conv {name} must be an int or a pair, got {x!r}", field=f"weight.{name}")
    return int(a[0]), int(a[1])


def conv_output_hw(in_hw: Tuple[int, int], kernel_hw: Tuple[int, int], stride: Tuple[int, int],
                   padding: Tuple[int, int], dilation: Tuple[int, int]) -> Tuple[int, int]:
    """Output (H, W) of a 2-D convolution (torch's formula, floor division)."""
    return tuple(int((in_hw[i] + 2 * padding[i] - dilation[i] * (kernel_hw[i] - 1) - 1) // stride[i] + 1)
                 for i in range(2))  # type: ignore[return-value]


@dataclass(frozen=True, eq=False)
class Conv(Csr):
    """A 2-D convolution (cross-correlation, as torch and Lava's ``Conv`` compute it) between two neuron grids.

    Neurons of both grids are numbered in Lava/netx order: shape ``(W, H, C)`` (x, y, channel) flattened in C
    order, i.e. index ``(x * H + y) * C + c``. ``kernel``: (C_out, C_in / groups, KH, KW) — torch's layout, which
    is what a netx file stores; ``stride``, ``padding``, ``dilation``: (along H, along W); ``groups``: channel
    groups. ``in_shape`` = (W_in, H_in, C_in), ``out_shape`` = (W_out, H_out, C_out), checked against the
    geometry. The stored synapses are one per (output position, kernel tap) whose input position lies inside the
    input grid (taps on the padding are not synapses); the CSR arrays are built from the kernel, so a Conv is
    exactly the sparse matrix ``y = W x`` of the convolution. Equality compares geometry and kernel.
    """

    in_shape: Tuple[int, int, int] = (1, 1, 1)
    out_shape: Tuple[int, int, int] = (1, 1, 1)
    kernel: Optional[np.ndarray] = None
    stride: Tuple[int, int] = (1, 1)
    padding: Tuple[int, int] = (0, 0)
    dilation: Tuple[int, int] = (1, 1)
    groups: int = 1

    def __init__(self, in_shape: Tuple[int, int, int], out_shape: Tuple[int, int, int], kernel: np.ndarray,
                 stride: "int | Tuple[int, int]" = 1, padding: "int | Tuple[int, int]" = 0,
                 dilation: "int | Tuple[int, int]" = 1, groups: int = 1) -> None:
        k = np.asarray(kernel)
        if k.ndim != 4:
            raise GraphError(f"Conv kernel must be (C_out, C_in/groups, KH, KW), got shape {k.shape}",
                             field="weight.kernel")
        ins = tuple(int(v) for v in in_shape)
        outs = tuple(int(v) for v in out_shape)
        if len(ins) != 3 or len(outs) != 3 or min(ins + outs) < 1:
            raise GraphError(f"Conv in_shape and out_shape must be (W, H, C), got {in_shape} and {out_shape}",
                             field="weight.shape")
        st, pd, dl = _pair(stride, "stride"), _pair(padding, "padding"), _pair(dilation, "dilation")
        g = int(groups)
        if min(st + dl) < 1 or min(pd) < 0 or g < 1:
            raise GraphError(f"Conv stride/dilation must be >= 1, padding >= 0, groups >= 1; got {st}, {dl}, {pd}, "
                             f"{g}", field="weight.stride")
        c_out, cin_g, kh, kw = k.shape
        if ins[2] != cin_g * g or c_out != outs[2] or c_out % g:
            raise GraphError(f"Conv kernel {k.shape} with groups={g} does not connect {ins[2]} to {outs[2]} "
                             "channels", field="weight.kernel")
        hw = conv_output_hw((ins[1], ins[0]), (kh, kw), st, pd, dl)
        if hw != (outs[1], outs[0]):
            raise GraphError(f"Conv output grid (W, H) = {(hw[1], hw[0])} from the geometry, declared "
                             f"{outs[:2]}", field="weight.shape")
        object.__setattr__(self, "in_shape", ins)
        object.__setattr__(self, "out_shape", outs)
        object.__setattr__(self, "kernel", _frozen_array(k))
        object.__setattr__(self, "stride", st)
        object.__setattr__(self, "padding", pd)
        object.__setattr__(self, "dilation", dl)
        object.__setattr__(self, "groups", g)
        indptr, indices, data = self._csr_arrays()
        object.__setattr__(self, "shape", (int(np.prod(outs)), int(np.prod(ins))))
        object.__setattr__(self, "indptr", indptr)
        object.__setattr__(self, "indices", indices)
        object.__setattr__(self, "data", data)
        Csr.__post_init__(self)

    def _csr_arrays(self) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        (w_in, h_in, c_in), (w_out, h_out, c_out) = self.in_shape, self.out_shape
        k = self.kernel
        _, cin_g, kh, kw = k.shape
        cout_g = c_out // self.groups
        # one row per output neuron (x, y, c) in C order; columns: taps (ci, ky, kx) of the row's channel group
        x = np.arange(w_out).reshape(-1, 1, 1, 1, 1, 1)
        y = np.arange(h_out).reshape(1, -1, 1, 1, 1, 1)
        c = np.arange(c_out).reshape(1, 1, -1, 1, 1, 1)
        ci = np.arange(cin_g).reshape(1, 1, 1, -1, 1, 1)
        ky = np.arange(kh).reshape(1, 1, 1, 1, -1, 1)
        kx = np.arange(kw).reshape(1, 1, 1, 1, 1, -1)
        yi = y * self.stride[0] - self.padding[0] + ky * self.dilation[0]
        xi = x * self.stride[1] - self.padding[1] + kx * self.dilation[1]
        full = (w_out, h_out, c_out, cin_g, kh, kw)
        valid = np.broadcast_to((yi >= 0) & (yi < h_in) & (xi >= 0) & (xi < w_in), full)
        cin = (c // cout_g) * cin_g + ci
        col = np.broadcast_to((xi * h_in + yi) * c_in + cin, full)
        val = np.broadcast_to(k[c.reshape(1, 1, -1, 1, 1, 1), ci, ky, kx], full)
        n_out = w_out * h_out * c_out
        valid2 = valid.reshape(n_out, -1)
        cols = col.reshape(n_out, -1)[valid2]
        vals = val.reshape(n_out, -1)[valid2]
        indptr = np.zeros(n_out + 1, np.int64)
        np.cumsum(valid2.sum(axis=1), out=indptr[1:])
        # sort columns within each row (CSR convention): taps are ordered (ci, ky, kx); sort by column per row
        order = np.lexsort((cols, np.repeat(np.arange(n_out), np.diff(indptr))))
        return indptr, cols[order].astype(np.int64), vals[order]

    @property
    def kernel_taps(self) -> int:
        """Weights of the shared kernel (what a shared-weight synapse encoding stores)."""
        return int(self.kernel.size)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, WeightStorage):
            return NotImplemented
        if type(other) is not Conv:
            return False
        return (self.in_shape == other.in_shape and self.out_shape == other.out_shape
                and (self.stride, self.padding, self.dilation, self.groups)
                == (other.stride, other.padding, other.dilation, other.groups)
                and self.kernel.shape == other.kernel.shape and np.array_equal(self.kernel, other.kernel))

    def __hash__(self) -> int:
        return hash(("Conv", self.shape, self.kernel.shape))

    def map_values(self, fn: Callable[[np.ndarray], np.ndarray]) -> "Conv":
        """Apply ``fn`` to the kernel (the shared values); the geometry stays."""
        return Conv(self.in_shape, self.out_shape, np.asarray(fn(self.kernel)).reshape(self.kernel.shape),
                    self.stride, self.padding, self.dilation, self.groups)


@dataclass(frozen=True, eq=False)
class Structured(WeightStorage):
    """Structured sparsity: kept rows, kept columns and kept blocks of a dense matrix.

    ``values`` (n_out, n_in) holds the weights (entries outside the masks are ignored and read back as 0).
    ``row_mask`` (bool, n_out): False removes an output neuron's whole fan-in (a pruned neuron or channel).
    ``col_mask`` (bool, n_in): False removes an input's whole fan-out (a pruned input axon).
    ``block_shape`` (bh, bw) and ``block_mask`` (bool, ceil(n_out/bh) x ceil(n_in/bw)): False removes a block.
    """

    values: np.ndarray
    row_mask: Optional[np.ndarray] = None
    col_mask: Optional[np.ndarray] = None
    block_shape: Tuple[int, int] = (1, 1)
    block_mask: Optional[np.ndarray] = None

    def __post_init__(self) -> None:
        v = np.asarray(self.values)
        if v.ndim != 2:
            raise GraphError(f"Structured weights must be 2-D, got shape {v.shape}", field="weight")
        n_out, n_in = v.shape
        rm = np.ones(n_out, bool) if self.row_mask is None else np.asarray(self.row_mask, dtype=bool)
        cm = np.ones(n_in, bool) if self.col_mask is None else np.asarray(self.col_mask, dtype=bool)
        if rm.shape != (n_out,):
            raise GraphError(f"row_mask has shape {rm.shape}, expected ({n_out},)", field="weight.row_mask")
        if cm.shape != (n_in,):
            raise GraphError(f"col_mask has shape {cm.shape}, expected ({n_in},)", field="weight.col_mask")
        bh, bw = (int(b) for b in self.block_shape)
        if bh < 1 or bw < 1:
            raise GraphError(f"block_shape must be positive, got {self.block_shape}", field="weight.block_shape")
        grid = (-(-n_out // bh), -(-n_in // bw))
        bm = np.ones(grid, bool) if self.block_mask is None else np.asarray(self.block_mask, dtype=bool)
        if bm.shape != grid:
            raise GraphError(f"block_mask has shape {bm.shape}, expected {grid} for block_shape {(bh, bw)}",
                             field="weight.block_mask")
        object.__setattr__(self, "values", _frozen_array(v))
        object.__setattr__(self, "row_mask", _frozen_array(rm))
        object.__setattr__(self, "col_mask", _frozen_array(cm))
        object.__setattr__(self, "block_shape", (bh, bw))
        object.__setattr__(self, "block_mask", _frozen_array(bm))

    @property
    def shape(self) -> Tuple[int, int]:  # type: ignore[override]
        return tuple(int(s) for s in self.values.shape)  # type: ignore[return-value]

    @property
    def dtype(self) -> np.dtype:
        return self.values.dtype

    def stored_mask(self) -> np.ndarray:
        bh, bw = self.block_shape
        n_out, n_in = self.shape
        blocks = np.repeat(np.repeat(self.block_mask, bh, axis=0), bw, axis=1)[:n_out, :n_in]
        return blocks & self.row_mask[:, None] & self.col_mask[None, :]

    @property
    def nnz(self) -> int:
        return int(self.stored_mask().sum())

    @property
    def kept_rows(self) -> np.ndarray:
        """Indices of output neurons that still have synapses stored."""
        return np.flatnonzero(self.row_mask & self.stored_mask().any(axis=1))

    @property
    def kept_cols(self) -> np.ndarray:
        """Indices of inputs that still have synapses stored."""
        return np.flatnonzero(self.col_mask & self.stored_mask().any(axis=0))

    def to_dense(self) -> np.ndarray:
        return np.where(self.stored_mask(), self.values, np.zeros((), dtype=self.values.dtype))

    def map_values(self, fn: Callable[[np.ndarray], np.ndarray]) -> "Structured":
        return Structured(np.asarray(fn(self.values)).reshape(self.shape), self.row_mask, self.col_mask,
                          self.block_shape, self.block_mask)

    def to_csr(self) -> Csr:
        """The same synapses in unstructured form."""
        return Csr.from_dense(self.to_dense(), mask=self.stored_mask())


def as_storage(w: "np.ndarray | WeightStorage") -> WeightStorage:
    """Wrap a plain 2-D array as :class:`Dense`; pass storage objects through unchanged."""
    if isinstance(w, WeightStorage):
        return w
    return Dense(np.asarray(w))
