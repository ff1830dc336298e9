"""CPU sparse kernels of the optimiser: parallel CSR products and column merging (numba, cache=True).

``csr_matvec`` computes y = A x for a CSR matrix (float32 or float64 values, int32/int64 index
arrays) with one row per parallel work item and a float64 accumulator, so the result does not
depend on the number of threads (each row is summed in storage order by one thread).
D^T g uses the same kernel on a transposed CSR copy (simsbrt.optimize.problem.SparseOperator).

``merge_columns_count`` / ``merge_columns_fill`` build the optimiser's matrix in one pass over
the influence matrix: the selected rows, only the entries of the columns that are kept (one
representative of each set of identical columns), with their columns renumbered.
Imported lazily: importing numba here must not happen at ``import simsbrt`` time.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True)
def csr_matvec(indptr, indices, data, x, out):
    """out[i] = sum_j A[i, j] x[j], float64 accumulation; out must be float64 of length n_rows."""
    n = indptr.shape[0] - 1
    for i in prange(n):
        acc = 0.0
        for e in range(indptr[i], indptr[i + 1]):
            acc += np.float64(data[e]) * x[indices[e]]
        out[i] = acc


@njit(parallel=True, cache=True)
def merge_columns_count(indptr, indices, rows, new_column):
    """Per selected row: how many entries have new_column[column] >= 0."""
    n = rows.shape[0]
    counts = np.zeros(n, dtype=np.int64)
    for r in prange(n):
        i = rows[r]
        c = 0
        for e in range(indptr[i], indptr[i + 1]):
            if new_column[indices[e]] >= 0:
                c += 1
        counts[r] = c
    return counts


@njit(parallel=True, cache=True)
def merge_columns_fill(indptr, indices, data, rows, new_column, out_indptr, out_indices, out_data):
    """Copy the kept entries of the selected rows, renumbering their columns (same order within a row)."""
    n = rows.shape[0]
    for r in prange(n):
        i = rows[r]
        p = out_indptr[r]
        for e in range(indptr[i], indptr[i + 1]):
            c = new_column[indices[e]]
            if c >= 0:
                out_indices[p] = c
                out_data[p] = data[e]
                p += 1
