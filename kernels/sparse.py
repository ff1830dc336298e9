"""CPU drivers of the optimiser's device work (kernels/device/sparse.py), compiled with numba.njit.

The drivers only map prange indices to rows (or row blocks) and write results; the arithmetic is
the device functions', which kernels/cuda_sparse.py compiles for the GPU.

``csr_matvec`` computes y = A x for a CSR matrix (float32 or float64 values, uint16/int32/int64
column indices) with one row per parallel work item and a float64 accumulator, so the result does
not depend on the number of threads (each row is summed in storage order by one thread).
D^T g uses the same kernel on a transposed CSR copy (``csr_transpose``, parallel over row blocks).
``penalty_value_gradient`` is the optimiser's evaluation on the CPU: the per-row dose penalties and D^T of
their gradient in one pass over D (each row's dose, its penalties' derivative, the row scattered into one of
FUSED_BLOCKS gradients), so D is read once per evaluation and the rows whose penalties are inactive once
only; at t10_body 2 mm an L-BFGS iteration took 25-28 ms instead of 40-48 ms with the two products.

``merge_columns_count`` / ``merge_columns_fill`` build the optimiser's matrix in one pass over
the influence matrix: the selected rows, only the entries of the columns that are kept (one
representative of each set of identical columns), with their columns renumbered.
``penalty_terms`` evaluates one objective's per-voxel values and adds its gradient.
Imported lazily: importing numba here must not happen at ``import simsbrt`` time.

The functions below (with to_device / to_host / host_scalar) are the interface the optimiser
calls on every target; kernels/cuda_sparse.py offers the same names.
"""
from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from .cpu import dev
from .device.influence import CPI_COL_SHIFT, CPI_PRIMARY

NAME = "cpu"
xp = np
_row_dot = dev.csr_row_dot
_penalty_value = dev.penalty_value
_penalty_gradient = dev.penalty_gradient
_merge_row_count = dev.merge_row_count
_merge_row_fill = dev.merge_row_fill
_transpose_count_block = dev.transpose_count_block
_transpose_fill_block = dev.transpose_fill_block


@njit(parallel=True, cache=True)
def csr_matvec(indptr, indices, data, x, out):
    """out[i] = sum_j A[i, j] x[j], float64 accumulation; out must be float64 of length n_rows."""
    n = indptr.shape[0] - 1
    for i in prange(n):
        out[i] = _row_dot(indptr, indices, data, x, i, 0, 1)


@njit(parallel=True, cache=True)
def penalty_terms(dose, rows, ref_gy, kind, scale, grad, terms):
    """terms[j] = the penalty of voxel rows[j]; grad[rows[j]] += its derivative (rows are distinct)."""
    for j in prange(rows.shape[0]):
        d = dose[rows[j]]
        terms[j] = _penalty_value(d, ref_gy, kind, scale)
        grad[rows[j]] += _penalty_gradient(d, ref_gy, kind, scale)


@njit(cache=True)
def pair_differences(x, first, second, diff, grad):
    """diff[p] = x[first[p]] - x[second[p]] and grad = L^T diff for the first-difference operator L of the pairs
    (row p: +1 at first[p], -1 at second[p]): the smoothness term's two products in one pass on one thread (its
    0.2 M entries cost less than waking the threads). grad[j] sums its pairs' +-diff in pair order from 0, the
    order of the transposed CSR product, so the numbers are the same."""
    for j in range(grad.shape[0]):
        grad[j] = 0.0
    for p in range(first.shape[0]):
        d = x[first[p]] - x[second[p]]
        diff[p] = d
        grad[first[p]] += d
        grad[second[p]] -= d


FUSED_BLOCKS = 8      # row sets of penalty_value_gradient: fixed, so its sums do not depend on the thread count
FUSED_CHUNK = 64      # consecutive rows dealt to a set at a time (round robin: every set spans the whole matrix)


@njit(parallel=True, cache=True)
def _penalty_value_gradient_kernel(indptr, indices, data, x, offset, term_ptr, term_ref, term_kind, term_scale,
                                   grad_sets, values):
    n = indptr.shape[0] - 1
    n_sets = grad_sets.shape[0]
    for b in prange(n_sets):
        g = grad_sets[b]
        for j in range(g.shape[0]):
            g[j] = 0.0
        value = 0.0
        for chunk in range(b * FUSED_CHUNK, n, n_sets * FUSED_CHUNK):
            for i in range(chunk, min(chunk + FUSED_CHUNK, n)):
                t0 = term_ptr[i]
                t1 = term_ptr[i + 1]
                if t0 == t1:
                    continue  # no penalty on this row: neither its dose nor its gradient is needed
                d = _row_dot(indptr, indices, data, x, i, 0, 1) + offset[i]
                r = 0.0
                for t in range(t0, t1):
                    value += _penalty_value(d, term_ref[t], term_kind[t], term_scale[t])
                    r += _penalty_gradient(d, term_ref[t], term_kind[t], term_scale[t])
                if r != 0.0:  # an inactive penalty (dose inside its window) adds nothing to D^T g
                    for e in range(indptr[i], indptr[i + 1]):
                        g[indices[e]] += r * data[e]
        values[b] = value


def penalty_value_gradient(indptr, indices, data, x, offset, term_ptr, term_ref, term_kind, term_scale,
                           n_cols: int, grad_sets=None):
    """(F, D^T dF/dd) of F = sum over rows i and their penalty terms t of penalty_value(d_i, ref_t, kind_t, scale_t),
    d = D x + offset, in one pass over D: each row's dose, then its derivative times the row scattered into the
    gradient. Rows without terms are skipped; rows whose derivative is 0 add nothing. FUSED_BLOCKS row sets, each
    with its own gradient (summed in a fixed order), so the result does not depend on the thread count.
    grad_sets: the row sets' gradients, (FUSED_BLOCKS, n_cols) float64 scratch kept by the caller between calls (the
    kernel clears it), so that each evaluation does not write 2 MB of fresh memory; None: a new one."""
    if grad_sets is None or grad_sets.shape != (FUSED_BLOCKS, n_cols):
        grad_sets = np.empty((FUSED_BLOCKS, n_cols))
    values = np.empty(FUSED_BLOCKS)
    _penalty_value_gradient_kernel(indptr, indices, data, x, offset, term_ptr, term_ref, term_kind, term_scale,
                                   grad_sets, values)
    return float(values.sum()), grad_sets.sum(axis=0)


@njit(parallel=True, cache=True)
def merge_columns_count(indptr, indices, rows, new_column):
    """Per selected row: how many entries have new_column[column] >= 0."""
    n = rows.shape[0]
    counts = np.zeros(n, dtype=np.int64)
    for r in prange(n):
        counts[r] = _merge_row_count(indptr, indices, rows[r], new_column)
    return counts


@njit(parallel=True, cache=True)
def merge_columns_fill(indptr, indices, data, rows, new_column, out_indptr, out_indices, out_data):
    """Copy the kept entries of the selected rows, renumbering their columns (same order within a row)."""
    for r in prange(rows.shape[0]):
        _merge_row_fill(indptr, indices, data, rows[r], new_column, out_indptr[r], out_indices, out_data)


@njit(parallel=True, cache=True)
def _transpose_count(indptr, indices, counts):
    n_blocks = counts.shape[0]
    for b in prange(n_blocks):
        _transpose_count_block(indptr, indices, n_blocks, b, counts)


@njit(parallel=True, cache=True)
def _transpose_fill(indptr, indices, data, starts, out_indices, out_data):
    n_blocks = starts.shape[0]
    for b in prange(n_blocks):
        _transpose_fill_block(indptr, indices, data, n_blocks, b, starts, out_indices, out_data)


def transpose_blocks(n_rows: int) -> int:
    """Row blocks of the transpose: a few per thread, at most one per row."""
    return max(1, min(n_rows, 2 * numba.get_num_threads()))


def csr_transpose(indptr, indices, data, n_cols: int, n_blocks: int | None = None):
    """(indptr, indices, data) of the transpose; each transposed row lists its entries by increasing row.
    Index arrays are int32 (row numbers and offsets; the engine keeps nnz < 2**31)."""
    n_rows = indptr.shape[0] - 1
    n_blocks = transpose_blocks(n_rows) if n_blocks is None else int(n_blocks)
    counts = np.zeros((n_blocks, n_cols), dtype=np.int32)
    _transpose_count(indptr, indices, counts)
    starts, t_indptr = _scan_starts(np, counts, int(data.shape[0]))
    t_indices = np.empty(data.shape[0], dtype=np.int32)
    t_data = np.empty_like(data)
    _transpose_fill(indptr, indices, data, starts, t_indices, t_data)
    return t_indptr, t_indices, t_data


def _scan_starts(xp_, counts, nnz: int):
    """From counts[block, col]: the transposed row pointers (column starts) and starts[block, col], where the
    block's entries of that column begin (column start + the entries of the earlier blocks)."""
    if nnz >= 2**31:
        raise ValueError(f"{nnz} non-zeros exceed the int32 offsets of the transpose")
    n_cols = counts.shape[1]
    t_indptr = xp_.zeros(n_cols + 1, dtype=xp_.int32)
    if n_cols:
        xp_.cumsum(counts.sum(axis=0, dtype=xp_.int32), out=t_indptr[1:])
    starts = xp_.cumsum(counts, axis=0, dtype=xp_.int32)
    starts -= counts
    starts += t_indptr[:-1][None, :]
    return starts, t_indptr


def merged_index_dtypes(xp_, nnz: int, n_distinct: int, narrow: bool):
    """(row-pointer dtype, column-index dtype) of a merged matrix: 32-bit where they fit; with narrow, 16-bit
    column indices where the distinct columns fit (what the optimiser's products read: simsbrt.optimize.problem)."""
    index_dtype = xp_.int32 if max(nnz, n_distinct) < 2**31 else xp_.int64
    if narrow and n_distinct <= np.iinfo(np.uint16).max + 1:
        return index_dtype, xp_.uint16
    return index_dtype, index_dtype


def merge_rows(indptr, indices, data, rows, new_column, n_distinct: int, narrow: bool = False):
    """The selected rows with only the kept columns, renumbered: (indptr, indices, data); narrow: 16-bit column
    indices where they fit, written directly (no 32-bit copy first)."""
    counts = merge_columns_count(indptr, indices, rows, new_column)
    out_indptr = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(counts, out=out_indptr[1:])
    nnz = int(out_indptr[-1])
    indptr_dtype, column_dtype = merged_index_dtypes(np, nnz, n_distinct, narrow)
    out_indices = np.empty(nnz, dtype=column_dtype)
    out_data = np.empty(nnz, dtype=data.dtype)
    merge_columns_fill(indptr, indices, data, rows, new_column, out_indptr, out_indices, out_data)
    return out_indptr.astype(indptr_dtype), out_indices, out_data


@njit(parallel=True, cache=True)
def _expand_copies_kernel(cpi, counts, offsets, cols, vals, full_offsets, out_cols, out_vals):
    n_cp = cpi.shape[0]
    n = offsets.shape[0] // n_cp
    for i in prange(n):
        for cp in range(n_cp):
            primary = cpi[cp, CPI_PRIMARY]
            src = offsets[i * n_cp + primary]
            dst = full_offsets[i * n_cp + cp]
            shift = cpi[cp, CPI_COL_SHIFT]  # 0 for a primary control point
            for e in range(counts[i * n_cp + primary]):
                out_cols[dst + e] = cols[src + e] + shift
                out_vals[dst + e] = vals[src + e]


def expand_copies(cpi, counts, offsets, cols, vals):
    """The delivered influence matrix (indptr, cols, vals) from one built without the copied control points
    (counts, offsets per (voxel, control point) pair, copies at 0 entries): each copy repeats its primary's
    entries with columns shifted by CPI_COL_SHIFT, in the pair order the CPU engine writes."""
    n_cp = cpi.shape[0]
    primary = cpi[:, CPI_PRIMARY]
    full_counts = counts.reshape(-1, n_cp)[:, primary].ravel()
    full_offsets = np.zeros(full_counts.shape[0], dtype=np.int64)
    if full_counts.shape[0] > 1:
        np.cumsum(full_counts[:-1], out=full_offsets[1:])
    nnz = int(full_offsets[-1] + full_counts[-1]) if full_counts.shape[0] else 0
    if nnz >= 2**31:
        raise ValueError(f"{nnz} non-zeros exceed int32 indexing")
    out_cols = np.empty(nnz, dtype=np.int32)
    out_vals = np.empty(nnz, dtype=vals.dtype)
    _expand_copies_kernel(cpi, counts, offsets, cols, vals, full_offsets, out_cols, out_vals)
    indptr = np.empty(full_counts.shape[0] // n_cp + 1, dtype=np.int32)
    indptr[:-1] = full_offsets[::n_cp]
    indptr[-1] = nnz
    return indptr, out_cols, out_vals


# ------------------------------------------------------------------ truncation (host work, any target's matrix)
@njit(parallel=True, cache=True)
def _column_peaks_kernel(indptr, indices, data, peaks):
    n = indptr.shape[0] - 1
    n_blocks = peaks.shape[0]
    for b in prange(n_blocks):
        for i in range(b * n // n_blocks, (b + 1) * n // n_blocks):
            for e in range(indptr[i], indptr[i + 1]):
                c = indices[e]
                if data[e] > peaks[b, c]:
                    peaks[b, c] = data[e]


def column_peaks(indptr, indices, data, n_cols: int) -> np.ndarray:
    """max_i A[i, j] per column (float64; 0 for an empty column): per-block maxima, then their maximum."""
    peaks = np.full((transpose_blocks(indptr.shape[0] - 1), n_cols), -np.inf)
    _column_peaks_kernel(indptr, indices, data, peaks)
    peak = peaks.max(axis=0) if peaks.shape[0] else np.zeros(n_cols)
    peak[~np.isfinite(peak)] = 0.0
    return peak


@njit(parallel=True, cache=True)
def _kept_mask_kernel(indptr, indices, data, row_frac, peak, single, keep, counts):
    for i in prange(indptr.shape[0] - 1):
        f = row_frac[i]
        c = 0
        for e in range(indptr[i], indptr[i + 1]):
            threshold = f * peak[indices[e]]
            if single:          # compared in the matrix's precision, as numpy compares a float32 matrix
                threshold = np.float64(np.float32(threshold))
            k = data[e] >= threshold
            keep[e] = k
            c += k
        counts[i] = c


@njit(parallel=True, cache=True)
def _compact_kernel(indptr, indices, data, keep, out_indptr, out_indices, out_data):
    for i in prange(indptr.shape[0] - 1):
        d = out_indptr[i]
        for e in range(indptr[i], indptr[i + 1]):
            if keep[e]:
                out_indices[d] = indices[e]
                out_data[d] = data[e]
                d += 1


def kept_entries(indptr, indices, data, row_frac, peak):
    """(keep mask, kept entries per row): entry (i, j) is kept when A[i, j] >= row_frac[i] * peak[j]."""
    keep = np.empty(data.shape[0], dtype=np.bool_)
    counts = np.empty(indptr.shape[0] - 1, dtype=np.int64)
    _kept_mask_kernel(indptr, indices, data, np.asarray(row_frac, dtype=np.float64),
                      np.asarray(peak, dtype=np.float64), data.dtype == np.float32, keep, counts)
    return keep, counts


def compact_csr(indptr, indices, data, keep, counts):
    """The CSR of the kept entries (column indices of the input's dtype, same order within a row)."""
    out_indptr = np.zeros(indptr.shape[0], dtype=np.int64)
    np.cumsum(counts, out=out_indptr[1:])
    nnz = int(out_indptr[-1])
    out_indices = np.empty(nnz, dtype=indices.dtype)
    out_data = np.empty(nnz, dtype=data.dtype)
    _compact_kernel(indptr, indices, data, keep, out_indptr, out_indices, out_data)
    return out_indptr.astype(np.int32) if nnz < 2**31 else out_indptr, out_indices, out_data


# ------------------------------------------------------------------ memory: nothing to move on the CPU
def to_device(array):
    return np.asarray(array)


def to_host(array):
    return np.asarray(array)


def host_scalar(value) -> float:
    return float(value)
