"""Arithmetic on weight storage that keeps the sparsity structure where the maths allows it.

* scaling rows or columns keeps the storage type and its masks;
* a product of two matrices is ``Dense`` when both are dense, ``Structured`` (row mask of the left factor, column
  mask of the right one) when structured meets dense or structured, and ``Csr`` (the structural product) as soon
  as one factor is ``Csr``;
* a sum of two matrices keeps the type when both have it, otherwise falls back to ``Csr`` (or ``Dense``).
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import scipy.sparse as sp

from ..ir.storage import Csr, Dense, Structured, WeightStorage

__all__ = ["scale_rows", "scale_cols", "matmul", "add", "subset", "to_scipy", "from_scipy", "diagonal",
           "row_indices"]


def row_indices(w: Csr) -> np.ndarray:
    """Row of every stored synapse of a Csr matrix."""
    return np.repeat(np.arange(w.shape[0], dtype=np.int64), np.diff(w.indptr))


def scale_rows(w: WeightStorage, f: np.ndarray) -> WeightStorage:
    """``diag(f) @ w`` with the same storage type and masks."""
    f = np.asarray(f, dtype=np.float64)
    if isinstance(w, Dense):
        return Dense(w.values * f[:, None])
    if isinstance(w, Structured):
        return Structured(w.values * f[:, None], w.row_mask, w.col_mask, w.block_shape, w.block_mask)
    if isinstance(w, Csr):
        return Csr(w.shape, w.indptr, w.indices, w.data * f[row_indices(w)])
    raise TypeError(f"unknown storage {type(w).__name__}")


def scale_cols(w: WeightStorage, f: np.ndarray) -> WeightStorage:
    """``w @ diag(f)`` with the same storage type and masks."""
    f = np.asarray(f, dtype=np.float64)
    if isinstance(w, Dense):
        return Dense(w.values * f[None, :])
    if isinstance(w, Structured):
        return Structured(w.values * f[None, :], w.row_mask, w.col_mask, w.block_shape, w.block_mask)
    if isinstance(w, Csr):
        return Csr(w.shape, w.indptr, w.indices, w.data * f[w.indices])
    raise TypeError(f"unknown storage {type(w).__name__}")


def to_scipy(w: WeightStorage) -> sp.csr_matrix:
    """The stored synapses as a scipy CSR matrix (explicit zeros kept as stored entries)."""
    if isinstance(w, Csr):
        return sp.csr_matrix((np.asarray(w.data, dtype=np.float64), np.asarray(w.indices), np.asarray(w.indptr)),
                             shape=w.shape)
    if isinstance(w, Structured):
        return to_scipy(w.to_csr())
    mask = np.ones(w.shape, dtype=bool)
    return to_scipy(Csr.from_dense(np.asarray(w.to_dense(), dtype=np.float64), mask=mask))


def from_scipy(m: sp.spmatrix) -> Csr:
    """A Csr storage from a scipy matrix (entries kept as stored, sorted indices)."""
    m = sp.csr_matrix(m)
    m.sort_indices()
    return Csr(m.shape, m.indptr.astype(np.int64), m.indices.astype(np.int64), m.data.astype(np.float64))


def diagonal(values: np.ndarray) -> Csr:
    """A square diagonal matrix as Csr (one synapse per element)."""
    values = np.asarray(values, dtype=np.float64)
    n = values.size
    return Csr((n, n), np.arange(n + 1, dtype=np.int64), np.arange(n, dtype=np.int64), values)


def _is_diagonal(w: WeightStorage) -> Optional[np.ndarray]:
    if isinstance(w, Csr) and w.shape[0] == w.shape[1] and w.nnz == w.shape[0] and \
            np.array_equal(w.indices, np.arange(w.shape[0])) and np.array_equal(np.diff(w.indptr), np.ones(w.shape[0])):
        return np.asarray(w.data, dtype=np.float64)
    return None


def matmul(a: WeightStorage, b: WeightStorage) -> WeightStorage:
    """The storage of ``a @ b`` (``a``: (n2, n1), ``b``: (n1, n0)); see the module docstring for the type rules."""
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"cannot multiply {a.shape} by {b.shape}")
    da, db = _is_diagonal(a), _is_diagonal(b)
    if da is not None:
        return scale_rows(b, da)
    if db is not None:
        return scale_cols(a, db)
    if isinstance(a, (Dense, Structured)) and isinstance(b, (Dense, Structured)):
        prod = np.asarray(a.to_dense(), dtype=np.float64) @ np.asarray(b.to_dense(), dtype=np.float64)
        if isinstance(a, Dense) and isinstance(b, Dense):
            return Dense(prod)
        reach = (a.stored_mask().astype(np.int64) @ b.stored_mask().astype(np.int64)) > 0
        rows = reach.any(axis=1)
        cols = reach.any(axis=0)
        return Structured(np.where(reach, prod, 0.0), row_mask=rows, col_mask=cols)
    # structural product: an entry is stored wherever some path a[i,k] b[k,j] exists (even if values cancel)
    pa, pb = to_scipy(a), to_scipy(b)
    return _on_pattern((_pattern(pa) @ _pattern(pb)).tocsr(), (pa @ pb).tocsr())


def _on_pattern(pattern: sp.csr_matrix, values: sp.csr_matrix) -> Csr:
    """Csr with the stored entries of ``pattern`` (a superset of ``values``' entries) holding ``values``."""
    pattern.sort_indices()
    values = values.tocsr()
    values.sort_indices()
    n_in = pattern.shape[1]
    prow = np.repeat(np.arange(pattern.shape[0], dtype=np.int64), np.diff(pattern.indptr))
    vrow = np.repeat(np.arange(values.shape[0], dtype=np.int64), np.diff(values.indptr))
    pkey = prow * n_in + pattern.indices.astype(np.int64)
    vkey = vrow * n_in + values.indices.astype(np.int64)
    data = np.zeros(pkey.size, dtype=np.float64)
    data[np.searchsorted(pkey, vkey)] = values.data
    return Csr(pattern.shape, pattern.indptr.astype(np.int64), pattern.indices.astype(np.int64), data)


def _pattern(m: sp.csr_matrix) -> sp.csr_matrix:
    p = m.copy().astype(np.float64)
    p.data[:] = 1.0
    return p


def add(a: WeightStorage, b: WeightStorage) -> WeightStorage:
    """The storage of ``a + b`` (same shape)."""
    if a.shape != b.shape:
        raise ValueError(f"cannot add {a.shape} and {b.shape}")
    if isinstance(a, Dense) or isinstance(b, Dense):
        return Dense(np.asarray(a.to_dense(), dtype=np.float64) + np.asarray(b.to_dense(), dtype=np.float64))
    if isinstance(a, Structured) and isinstance(b, Structured):
        mask = a.stored_mask() | b.stored_mask()
        vals = np.asarray(a.to_dense(), dtype=np.float64) + np.asarray(b.to_dense(), dtype=np.float64)
        return Structured(np.where(mask, vals, 0.0), row_mask=mask.any(axis=1), col_mask=mask.any(axis=0))
    pa, pb = to_scipy(a), to_scipy(b)
    return _on_pattern((_pattern(pa) + _pattern(pb)).tocsr(), (pa + pb).tocsr())


def subset(w: WeightStorage, row_mask: Optional[np.ndarray] = None,
           col_mask: Optional[np.ndarray] = None) -> WeightStorage:
    """Keep only the synapses in the selected rows and columns (same shape; the others are no longer stored)."""
    n_out, n_in = w.shape
    rm = np.ones(n_out, bool) if row_mask is None else np.asarray(row_mask, bool)
    cm = np.ones(n_in, bool) if col_mask is None else np.asarray(col_mask, bool)
    if isinstance(w, Csr):
        rows = row_indices(w)
        keep = rm[rows] & cm[w.indices]
        return Csr.from_coo(w.shape, rows[keep], w.indices[keep], w.data[keep]) if keep.any() else \
            Csr(w.shape, np.zeros(n_out + 1, np.int64), np.zeros(0, np.int64), np.zeros(0, w.data.dtype))
    if isinstance(w, Structured):
        return Structured(w.values, w.row_mask & rm, w.col_mask & cm, w.block_shape, w.block_mask)
    return Structured(w.to_dense(), rm, cm)
