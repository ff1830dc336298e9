"""CUDA drivers of the optimiser's device work (kernels/device/sparse.py), compiled with numba.cuda.jit.

The same names as the CPU drivers (kernels/sparse.py), so the optimiser calls one interface:
csr_matvec, penalty_terms, merge_rows, csr_transpose, to_device, to_host, host_scalar.
Arrays are CuPy arrays on a device, NumPy arrays under the Numba CUDA simulator
(NUMBA_ENABLE_CUDASIM=1 before numba is imported); either way every line below runs.

Products: one warp (LANES threads) per row with a fixed-order tree reduction in shared memory
(deterministic), or one thread per row (``lanes=1``: the simulator's default, where each thread is
a Python thread; the warp kernel is tested there on small matrices). Accumulation is float64 as on
the CPU. Every host <-> device copy goes through to_device / to_host and every device -> host scalar
through host_scalar, so a test can count them.
"""
from __future__ import annotations

import math

import numba
import numpy as np
from numba import cuda

from .cuda import dev

NAME = "cuda"
LANES = 32               # threads per row in the warp kernel
ROWS_PER_BLOCK = 4       # rows per block in the warp kernel (LANES * ROWS_PER_BLOCK threads)
THREADS = 128            # threads per block of the one-thread-per-item kernels
TRANSPOSE_BLOCKS = 1024  # row blocks of the transpose on a device (one thread each)

_row_dot = dev.csr_row_dot
_penalty_value = dev.penalty_value
_penalty_gradient = dev.penalty_gradient
_merge_row_count = dev.merge_row_count
_merge_row_fill = dev.merge_row_fill
_transpose_count_block = dev.transpose_count_block
_transpose_fill_block = dev.transpose_fill_block


def simulated() -> bool:
    return bool(numba.config.ENABLE_CUDASIM)


class _ArrayModule:
    """numpy in the simulator, cupy on a device (resolved on first use)."""

    def __getattr__(self, name):
        if simulated():
            return getattr(np, name)
        import cupy

        return getattr(cupy, name)


xp = _ArrayModule()


def _grid(n: int, threads: int = THREADS) -> int:
    return max(1, math.ceil(n / threads))


@cuda.jit(cache=True)
def _matvec_row_kernel(indptr, indices, data, x, out):
    i = cuda.grid(1)
    if i < out.shape[0]:
        out[i] = _row_dot(indptr, indices, data, x, i, 0, 1)


@cuda.jit(cache=True)
def _matvec_warp_kernel(indptr, indices, data, x, out):
    lane = cuda.threadIdx.x
    r = cuda.threadIdx.y
    row = cuda.blockIdx.x * ROWS_PER_BLOCK + r
    partial = cuda.shared.array((ROWS_PER_BLOCK, LANES), numba.float64)
    acc = 0.0
    if row < out.shape[0]:
        acc = _row_dot(indptr, indices, data, x, row, lane, LANES)
    partial[r, lane] = acc
    step = LANES // 2
    while step > 0:
        cuda.syncthreads()
        if lane < step:
            partial[r, lane] += partial[r, lane + step]
        step //= 2
    if lane == 0 and row < out.shape[0]:
        out[row] = partial[r, 0]


def default_lanes() -> int:
    return 1 if simulated() else LANES


def csr_matvec(indptr, indices, data, x, out, lanes: int | None = None):
    """out[i] = sum_j A[i, j] x[j] (float64 accumulation) on the device."""
    lanes = default_lanes() if lanes is None else lanes
    n = out.shape[0]
    if lanes == 1:
        _matvec_row_kernel[_grid(n), THREADS](indptr, indices, data, x, out)
    elif lanes == LANES:
        _matvec_warp_kernel[_grid(n, ROWS_PER_BLOCK), (LANES, ROWS_PER_BLOCK)](indptr, indices, data, x, out)
    else:
        raise ValueError(f"lanes must be 1 or {LANES}, got {lanes}")


@cuda.jit(cache=True)
def _penalty_kernel(dose, rows, ref_gy, kind, scale, grad, terms):
    j = cuda.grid(1)
    if j < rows.shape[0]:
        d = dose[rows[j]]
        terms[j] = _penalty_value(d, ref_gy, kind, scale)
        grad[rows[j]] += _penalty_gradient(d, ref_gy, kind, scale)


def penalty_terms(dose, rows, ref_gy, kind, scale, grad, terms):
    """terms[j] = the penalty of voxel rows[j]; grad[rows[j]] += its derivative (rows are distinct)."""
    _penalty_kernel[_grid(rows.shape[0]), THREADS](dose, rows, float(ref_gy), int(kind), float(scale), grad, terms)


@cuda.jit(cache=True)
def _merge_count_kernel(indptr, indices, rows, new_column, counts):
    r = cuda.grid(1)
    if r < rows.shape[0]:
        counts[r] = _merge_row_count(indptr, indices, rows[r], new_column)


@cuda.jit(cache=True)
def _merge_fill_kernel(indptr, indices, data, rows, new_column, out_indptr, out_indices, out_data):
    r = cuda.grid(1)
    if r < rows.shape[0]:
        _merge_row_fill(indptr, indices, data, rows[r], new_column, out_indptr[r], out_indices, out_data)


def merge_rows(indptr, indices, data, rows, new_column, n_distinct: int, narrow: bool = False):
    """The selected rows with only the kept columns, renumbered: (indptr, indices, data), on the device; narrow:
    16-bit column indices where they fit (kernels/sparse.merged_index_dtypes)."""
    n = rows.shape[0]
    counts = xp.zeros(n, dtype=xp.int64)
    _merge_count_kernel[_grid(n), THREADS](indptr, indices, rows, new_column, counts)
    out_indptr = xp.zeros(n + 1, dtype=xp.int64)
    if n:
        xp.cumsum(counts, out=out_indptr[1:])
    nnz = int(host_scalar(out_indptr[-1]))
    from .sparse import merged_index_dtypes

    indptr_dtype, column_dtype = merged_index_dtypes(xp, nnz, n_distinct, narrow)
    out_indices = xp.empty(nnz, dtype=column_dtype)
    out_data = xp.empty(nnz, dtype=data.dtype)
    _merge_fill_kernel[_grid(n), THREADS](indptr, indices, data, rows, new_column, out_indptr, out_indices, out_data)
    return out_indptr.astype(indptr_dtype), out_indices, out_data


@cuda.jit(cache=True)
def _transpose_count_kernel(indptr, indices, counts):
    b = cuda.grid(1)
    if b < counts.shape[0]:
        _transpose_count_block(indptr, indices, counts.shape[0], b, counts)


@cuda.jit(cache=True)
def _transpose_fill_kernel(indptr, indices, data, starts, out_indices, out_data):
    b = cuda.grid(1)
    if b < starts.shape[0]:
        _transpose_fill_block(indptr, indices, data, starts.shape[0], b, starts, out_indices, out_data)


def csr_transpose(indptr, indices, data, n_cols: int, n_blocks: int | None = None):
    """(indptr, indices, data) of the transpose on the device, entries of each transposed row by increasing
    row (the same arrays as the CPU's kernels/sparse.csr_transpose)."""
    from .sparse import _scan_starts

    n_rows = indptr.shape[0] - 1
    if n_blocks is None:
        n_blocks = min(n_rows, 8 if simulated() else TRANSPOSE_BLOCKS)
    n_blocks = max(1, int(n_blocks))
    counts = xp.zeros((n_blocks, n_cols), dtype=xp.int32)
    _transpose_count_kernel[_grid(n_blocks), THREADS](indptr, indices, counts)
    starts, t_indptr = _scan_starts(xp, counts, int(data.shape[0]))
    t_indices = xp.empty(data.shape[0], dtype=xp.int32)
    t_data = xp.empty(data.shape[0], dtype=data.dtype)
    _transpose_fill_kernel[_grid(n_blocks), THREADS](indptr, indices, data, starts, t_indices, t_data)
    return t_indptr, t_indices, t_data


# ------------------------------------------------------------------ memory: the only crossings
def to_device(array):
    """Host array -> device array (a copy to the GPU; numpy itself in the simulator)."""
    if simulated():
        return np.asarray(array)
    import cupy

    return cupy.asarray(array)


def to_host(array):
    """Device array -> numpy array (a copy from the GPU)."""
    if simulated():
        return np.asarray(array)
    import cupy

    return cupy.asnumpy(array)


def host_scalar(value) -> float:
    """A device scalar read on the host (one synchronisation on a GPU)."""
    return float(value)


def synchronize() -> None:
    """Wait for the device (timing); nothing to wait for in the simulator."""
    if not simulated():
        cuda.synchronize()
