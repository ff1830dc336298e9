"""CUDA drivers: the same device functions compiled with numba.cuda.jit(device=True).

One thread per work item: (voxel, source) for radiological depth, (voxel, control point) for the
counting and filling passes. Kernels accept CuPy arrays (or NumPy arrays under the Numba CUDA
simulator, NUMBA_ENABLE_CUDASIM=1, which must be set before numba is first imported).
This module is imported only when a CUDA or cudasim backend is resolved.
"""
from __future__ import annotations

import math

import numba
import numpy as np
from numba import cuda

from ._compile import compile_device_functions
from .device.influence import CPI_COL_SHIFT, CPI_GEOM, CPI_PRIMARY, MAX_DRAWS, STRIDE

THREADS_PER_BLOCK = 128
SCRATCH = 3 * STRIDE

dev = compile_device_functions(cuda.jit(device=True))
_trace_ray = dev.trace_ray
_pair_entries = dev.pair_entries


@cuda.jit(cache=True)
def _depth_kernel(points, sources, origin, spacing, shape, density, out):
    c = cuda.grid(1)
    n = points.shape[0]
    m = sources.shape[0]
    if c >= n * m:
        return
    i = c // m
    g = c - i * m
    dummy_i = cuda.local.array(1, numba.int64)
    dummy_l = cuda.local.array(1, numba.float64)
    out[i, g] = _trace_ray(sources[g, 0], sources[g, 1], sources[g, 2], points[i, 0], points[i, 1], points[i, 2],
                           origin[0], origin[1], origin[2], spacing[0], spacing[1], spacing[2],
                           shape[0], shape[1], shape[2], density, dummy_i, dummy_l, 0)


@cuda.jit(cache=True)
def _count_kernel(points, depths, cpf, cpi, cell_to_col, pitch, params, row_tau, window_nsigma, max_draws, seed,
                  counts):
    c = cuda.grid(1)
    n = points.shape[0]
    n_cp = cpf.shape[0]
    if c >= n * n_cp:
        return
    i = c // n_cp
    cp = c - i * n_cp
    if cpi[cp, CPI_PRIMARY] != cp:
        return  # aliases take the primary's count on the host side (alias_counts)
    fx = cuda.local.array(SCRATCH, numba.float64)
    fy = cuda.local.array(SCRATCH, numba.float64)
    dcol = cuda.local.array(MAX_DRAWS, numba.int32)
    dval = cuda.local.array(MAX_DRAWS, numba.float64)
    dummy_c = cuda.local.array(1, numba.int32)
    dummy_v = cuda.local.array(1, numba.float32)
    counts[c] = _pair_entries(points[i, 0], points[i, 1], points[i, 2], depths[i, cpi[cp, CPI_GEOM]], i, cp, cpf, cpi,
                              cell_to_col, pitch, params, row_tau[i], window_nsigma, max_draws, seed, fx, fy, dcol,
                              dval, dummy_c, dummy_v, 0, False)


@cuda.jit(cache=True)
def _fill_kernel(points, depths, cpf, cpi, cell_to_col, pitch, params, row_tau, window_nsigma, max_draws, seed,
                 offsets, out_col, out_val):
    c = cuda.grid(1)
    n = points.shape[0]
    n_cp = cpf.shape[0]
    if c >= n * n_cp:
        return
    i = c // n_cp
    cp = c - i * n_cp
    if cpi[cp, CPI_PRIMARY] != cp:
        return
    fx = cuda.local.array(SCRATCH, numba.float64)
    fy = cuda.local.array(SCRATCH, numba.float64)
    dcol = cuda.local.array(MAX_DRAWS, numba.int32)
    dval = cuda.local.array(MAX_DRAWS, numba.float64)
    _pair_entries(points[i, 0], points[i, 1], points[i, 2], depths[i, cpi[cp, CPI_GEOM]], i, cp, cpf, cpi,
                  cell_to_col, pitch, params, row_tau[i], window_nsigma, max_draws, seed, fx, fy, dcol, dval,
                  out_col, out_val, offsets[c], True)


@cuda.jit(cache=True)
def _alias_copy_kernel(cpi, counts, offsets, n_rows, out_col, out_val):
    c = cuda.grid(1)
    n_cp = cpi.shape[0]
    if c >= n_rows * n_cp:
        return
    i = c // n_cp
    cp = c - i * n_cp
    primary = cpi[cp, CPI_PRIMARY]
    if primary == cp:
        return
    start = offsets[c]
    src = offsets[i * n_cp + primary]
    shift = cpi[cp, CPI_COL_SHIFT]
    for e in range(counts[c]):
        out_col[start + e] = out_col[src + e] + shift
        out_val[start + e] = out_val[src + e]


def _simulated() -> bool:
    return bool(numba.config.ENABLE_CUDASIM)


def _xp():
    if _simulated():
        return np
    import cupy

    return cupy


def _dev(a):
    return _xp().asarray(a)


def _blocks(n: int) -> int:
    return max(1, math.ceil(n / THREADS_PER_BLOCK))


def radiological_depths(points, sources, origin, spacing, shape, density_flat):
    xp = _xp()
    n, m = points.shape[0], sources.shape[0]
    out = xp.zeros((n, m), dtype=xp.float32)
    _depth_kernel[_blocks(n * m), THREADS_PER_BLOCK](_dev(points), _dev(sources), _dev(origin), _dev(spacing),
                                                      _dev(shape), _dev(density_flat), out)
    return out


def count_entries(points, depths, cpf, cpi, cell_to_col, pitch, params, row_tau, window_nsigma, max_draws, seed,
                  copies: bool = True):
    """Entries per (voxel, control point) pair; copies=False leaves the copied control points (CPI_PRIMARY)
    at 0 entries: the matrix then holds only the distinct beamlets (kernels/sparse.expand_copies)."""
    xp = _xp()
    n, n_cp = points.shape[0], cpf.shape[0]
    counts = xp.zeros(n * n_cp, dtype=xp.int64)
    _count_kernel[_blocks(n * n_cp), THREADS_PER_BLOCK](
        _dev(points), _dev(depths), _dev(cpf), _dev(cpi), _dev(cell_to_col), float(pitch), _dev(params),
        _dev(row_tau), float(window_nsigma), int(max_draws), int(seed), counts)
    primary = np.asarray(cpi)[:, CPI_PRIMARY]
    aliases = np.flatnonzero(primary != np.arange(n_cp))
    if len(aliases) and copies:
        view = counts.reshape(n, n_cp)
        view[:, _dev(aliases)] = view[:, _dev(primary[aliases])]
    return counts


def exclusive_offsets(counts):
    xp = _xp()
    offsets = xp.zeros(counts.shape[0], dtype=xp.int64)
    if counts.shape[0] == 0:
        return offsets, 0
    offsets[1:] = xp.cumsum(counts[:-1])
    return offsets, int(offsets[-1] + counts[-1])


def fill_entries(points, depths, cpf, cpi, cell_to_col, pitch, params, row_tau, window_nsigma, max_draws, seed,
                 counts, offsets, nnz, copies: bool = True):
    xp = _xp()
    n, n_cp = points.shape[0], cpf.shape[0]
    cols = xp.empty(nnz, dtype=xp.int32)
    vals = xp.empty(nnz, dtype=xp.float32)
    d_cpi, d_offsets = _dev(cpi), _dev(offsets)
    _fill_kernel[_blocks(n * n_cp), THREADS_PER_BLOCK](
        _dev(points), _dev(depths), _dev(cpf), d_cpi, _dev(cell_to_col), float(pitch), _dev(params),
        _dev(row_tau), float(window_nsigma), int(max_draws), int(seed), d_offsets, cols, vals)
    if copies:
        _alias_copy_kernel[_blocks(n * n_cp), THREADS_PER_BLOCK](d_cpi, _dev(counts), d_offsets, n, cols, vals)
    return cols, vals


def to_host(array):
    if _simulated():
        return np.asarray(array)
    import cupy

    return cupy.asnumpy(array)


# ------------------------------------------------------------------ final dose of a fluence (no matrix)
_fluence_pair_dose = dev.fluence_pair_dose


@cuda.jit(cache=True)
def _fluence_dose_kernel(points, depths, cpf, cpi, pitch, params, fluence, fl0, box, wmax, reach_nsigma, outside,
                         out, bound):
    i = cuda.grid(1)
    if i >= points.shape[0]:
        return
    fx = cuda.local.array(SCRATCH, numba.float64)
    fy = cuda.local.array(SCRATCH, numba.float64)
    acc = 0.0
    acc_bound = 0.0
    for cp in range(cpf.shape[0]):
        if box[cp, 0] >= box[cp, 1]:
            continue  # no weight (or an alias: its weights are summed into its primary's map)
        d, b = _fluence_pair_dose(points[i, 0], points[i, 1], points[i, 2], depths[i, cpi[cp, CPI_GEOM]], cp, cpf,
                                  cpi, pitch, params, fluence, fl0, box, wmax, reach_nsigma, outside, fx, fy)
        acc += d
        acc_bound += b
    out[i] = acc
    bound[i] = acc_bound


def fluence_dose(points, depths, cpf, cpi, pitch, params, fluence, fl0, box, wmax, reach_nsigma, outside):
    """(dose, bound on the omitted primary) in Gy, float64, on the device, at every point; one thread per point."""
    xp = _xp()
    n = points.shape[0]
    out = xp.zeros(n, dtype=xp.float64)
    bound = xp.zeros(n, dtype=xp.float64)
    _fluence_dose_kernel[_blocks(n), THREADS_PER_BLOCK](_dev(points), _dev(depths), _dev(cpf), _dev(cpi), float(pitch),
                                                        _dev(params), _dev(fluence), _dev(fl0), _dev(box), _dev(wmax),
                                                        float(reach_nsigma), float(outside), out, bound)
    return out, bound
