"""CPU drivers: the device functions compiled with numba.njit, parallel loops with prange.

The drivers only map loop indices to work items and write results; all physics lives in
kernels/device/.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._compile import compile_device_functions
from .device.beam import P_SAD
from .device.influence import CPI_COL_SHIFT, CPI_GEOM, CPI_PRIMARY, MAX_DRAWS, STRIDE

SCRATCH = 3 * STRIDE

dev = compile_device_functions(njit(cache=True, fastmath=False))

_trace_ray = dev.trace_ray
_pair_entries = dev.pair_entries
_aperture_dose_per_mu = dev.aperture_dose_per_mu


@njit(parallel=True, cache=True)
def radiological_depths(points, sources, origin, spacing, shape, density_flat):
    """Radiological depth (mm) of every point (n, 3) from every source (m, 3): float32 (n, m)."""
    n = points.shape[0]
    m = sources.shape[0]
    out = np.empty((n, m), dtype=np.float32)
    dummy_i = np.zeros(1, dtype=np.int64)
    dummy_l = np.zeros(1, dtype=np.float64)
    for c in prange(n * m):
        i = c // m
        g = c % m
        out[i, g] = _trace_ray(sources[g, 0], sources[g, 1], sources[g, 2], points[i, 0], points[i, 1], points[i, 2],
                               origin[0], origin[1], origin[2], spacing[0], spacing[1], spacing[2],
                               shape[0], shape[1], shape[2], density_flat, dummy_i, dummy_l, 0)
    return out


_column_ray_depths = dev.column_ray_depths


@njit(parallel=True, cache=True)
def column_radiological_depths(points, columns, sources, origin, spacing, shape, density_flat):
    """radiological_depths (bit for bit) of points grouped in grid columns (points[columns[c]:columns[c + 1]]: same
    x, y), the x / y crossings walked once per column and source (kernels/device/raytrace.py)."""
    n = points.shape[0]
    m = sources.shape[0]
    out = np.empty((n, m), dtype=np.float32)
    cap = shape[0] + shape[1] + 2
    for c in prange(columns.shape[0] - 1):
        xy_alpha = np.empty(cap)
        xy_flat = np.empty(cap, dtype=np.int64)
        for g in range(m):
            _column_ray_depths(columns[c], columns[c + 1], g, points, sources, origin[0], origin[1], origin[2],
                               spacing[0], spacing[1], spacing[2], shape[0], shape[1], shape[2], density_flat,
                               xy_alpha, xy_flat, out)
    return out


@njit(cache=True)
def ray_segments(source, target, origin, spacing, shape, density_flat, max_segments):
    """Siddon segments of one ray: (flat voxel indices, lengths in mm, radiological length)."""
    idx = np.full(max_segments + 1, -1, dtype=np.int64)
    length = np.zeros(max_segments + 1, dtype=np.float64)
    total = _trace_ray(source[0], source[1], source[2], target[0], target[1], target[2],
                       origin[0], origin[1], origin[2], spacing[0], spacing[1], spacing[2],
                       shape[0], shape[1], shape[2], density_flat, idx, length, max_segments)
    n = 0
    while n < max_segments and idx[n] >= 0:
        n += 1
    return idx[:n].copy(), length[:n].copy(), total


@njit(parallel=True, cache=True)
def _count_entries_kernel(points, depths, cpf, cpi, cell_to_col, pitch, params, row_tau, window_nsigma, max_draws,
                          seed, copies):
    n = points.shape[0]
    n_cp = cpf.shape[0]
    counts = np.zeros(n * n_cp, dtype=np.int64)
    dummy_c = np.zeros(1, dtype=np.int32)
    dummy_v = np.zeros(1, dtype=np.float32)
    for i in prange(n):
        fx = np.empty(SCRATCH)
        fy = np.empty(SCRATCH)
        dcol = np.empty(MAX_DRAWS, dtype=np.int32)
        dval = np.empty(MAX_DRAWS)
        for cp in range(n_cp):
            primary = cpi[cp, CPI_PRIMARY]
            if primary != cp:  # identical geometry and beamlets: same entries, shifted columns
                counts[i * n_cp + cp] = counts[i * n_cp + primary] if copies else 0
                continue
            counts[i * n_cp + cp] = _pair_entries(points[i, 0], points[i, 1], points[i, 2], depths[i, cpi[cp, CPI_GEOM]],
                                                  i, cp, cpf, cpi, cell_to_col, pitch, params, row_tau[i],
                                                  window_nsigma, max_draws, seed, fx, fy, dcol, dval, dummy_c,
                                                  dummy_v, 0, False)
    return counts


@njit(parallel=True, cache=True)
def _fill_entries_kernel(points, depths, cpf, cpi, cell_to_col, pitch, params, row_tau, window_nsigma, max_draws,
                         seed, counts, offsets, out_col, out_val, copies):
    n = points.shape[0]
    n_cp = cpf.shape[0]
    for i in prange(n):
        fx = np.empty(SCRATCH)
        fy = np.empty(SCRATCH)
        dcol = np.empty(MAX_DRAWS, dtype=np.int32)
        dval = np.empty(MAX_DRAWS)
        for cp in range(n_cp):
            primary = cpi[cp, CPI_PRIMARY]
            start = offsets[i * n_cp + cp]
            if primary != cp:
                if not copies:
                    continue
                src = offsets[i * n_cp + primary]
                shift = cpi[cp, CPI_COL_SHIFT]
                for e in range(counts[i * n_cp + cp]):
                    out_col[start + e] = out_col[src + e] + shift
                    out_val[start + e] = out_val[src + e]
                continue
            _pair_entries(points[i, 0], points[i, 1], points[i, 2], depths[i, cpi[cp, CPI_GEOM]],
                          i, cp, cpf, cpi, cell_to_col, pitch, params, row_tau[i], window_nsigma, max_draws,
                          seed, fx, fy, dcol, dval, out_col, out_val, start, True)


@njit(parallel=True, cache=True)
def water_field_dose(params, x_mm, z_mm, ssd_mm, u_lo, u_hi, v_lo, v_hi, head_scatter):
    """Dose (Gy/MU) in a flat water phantom (surface at SSD) at points (x lateral, z depth), y = 0.

    The aperture is given in the iso plane; radiological depth is the slant depth along the ray.
    Used by the beam-model fit: the same device formula as the engine, evaluated for a whole field.
    """
    n = x_mm.shape[0]
    out = np.empty(n)
    sad = params[P_SAD]
    for c in prange(n):
        dist = ssd_mm + z_mm[c]
        u = x_mm[c] * sad / dist
        r_geo = np.sqrt(dist * dist + x_mm[c] * x_mm[c])
        z_rad = z_mm[c] * r_geo / dist
        out[c] = _aperture_dose_per_mu(u, 0.0, z_rad, r_geo, u_lo, u_hi, v_lo, v_hi, head_scatter, params)
    return out


def count_entries(points, depths, cpf, cpi, cell_to_col, pitch, params, row_tau, window_nsigma, max_draws, seed,
                  copies: bool = True):
    """Entries per (voxel, control point) pair; copies=False leaves the copied control points (CPI_PRIMARY)
    at 0 entries: the matrix then holds only the distinct beamlets (kernels/sparse.expand_copies)."""
    return _count_entries_kernel(points, depths, cpf, cpi, cell_to_col, float(pitch), params, row_tau,
                                 float(window_nsigma), int(max_draws), int(seed), bool(copies))


def exclusive_offsets(counts):
    """Start of every pair's entries and the total number of entries."""
    offsets = np.empty(len(counts), dtype=np.int64)
    if len(counts):
        np.cumsum(counts[:-1], out=offsets[1:])
        offsets[0] = 0
        return offsets, int(offsets[-1] + counts[-1])
    return offsets, 0


def fill_entries(points, depths, cpf, cpi, cell_to_col, pitch, params, row_tau, window_nsigma, max_draws, seed,
                 counts, offsets, nnz, copies: bool = True):
    cols = np.empty(nnz, dtype=np.int32)
    vals = np.empty(nnz, dtype=np.float32)
    _fill_entries_kernel(points, depths, cpf, cpi, cell_to_col, float(pitch), params, row_tau, float(window_nsigma),
                         int(max_draws), int(seed), counts, offsets, cols, vals, bool(copies))
    return cols, vals


def to_host(array):
    return np.asarray(array)


# ------------------------------------------------------------------ final dose of a fluence (no matrix)
_fluence_pair_dose = dev.fluence_pair_dose


@njit(parallel=True, cache=True)
def _fluence_dose_kernel(points, depths, cpf, cpi, pitch, params, fluence, fl0, box, wmax, reach_nsigma, outside,
                         out, bound):
    n = points.shape[0]
    n_cp = cpf.shape[0]
    for i in prange(n):
        fx = np.empty(SCRATCH)
        fy = np.empty(SCRATCH)
        acc = 0.0
        acc_bound = 0.0
        for cp in range(n_cp):
            if box[cp, 0] >= box[cp, 1]:
                continue  # no weight (or an alias: its weights are summed into its primary's map)
            d, b = _fluence_pair_dose(points[i, 0], points[i, 1], points[i, 2], depths[i, cpi[cp, CPI_GEOM]], cp,
                                      cpf, cpi, pitch, params, fluence, fl0, box, wmax, reach_nsigma, outside, fx, fy)
            acc += d
            acc_bound += b
        out[i] = acc
        bound[i] = acc_bound


def fluence_dose(points, depths, cpf, cpi, pitch, params, fluence, fl0, box, wmax, reach_nsigma, outside):
    """(dose, bound on the omitted primary) in Gy, float64, at every point (kernels/device/fluence.py)."""
    out = np.empty(points.shape[0], dtype=np.float64)
    bound = np.empty(points.shape[0], dtype=np.float64)
    _fluence_dose_kernel(points, depths, cpf, cpi, float(pitch), params, fluence, fl0, box, wmax, float(reach_nsigma),
                         float(outside), out, bound)
    return out, bound


_fluence_column_dose = dev.fluence_column_dose


@njit(parallel=True, cache=True)
def _fluence_column_kernel(points, depths, columns, cpf, cpi, pitch, params, fluence, fl0, box, wmax, reach_nsigma,
                           outside, shared, width, out, bound):
    n_maps = fluence.shape[0]
    for c in prange(columns.shape[0] - 1):
        fx = np.empty(SCRATCH)
        fy = np.empty(SCRATCH)
        r1 = np.empty((n_maps, width))
        r2 = np.empty((n_maps, width))
        t1 = np.empty(n_maps)
        t2 = np.empty(n_maps)
        acc = np.empty(n_maps)
        prim = np.empty(n_maps)
        _fluence_column_dose(columns[c], columns[c + 1], points, depths, cpf, cpi, pitch, params, fluence, fl0, box,
                             wmax, reach_nsigma, outside, shared, fx, fy, r1, r2, t1, t2, acc, prim, out, bound)


def fluence_column_dose(points, depths, columns, cpf, cpi, pitch, params, fluence, fl0, box, wmax, reach_nsigma,
                        outside, shared):
    """fluence_dose for points grouped in grid columns: column c is points[columns[c]:columns[c + 1]] (same x, y);
    shared[cp] = 1 where control point cp's u does not depend on z (kernels/device/fluence.py).
    fluence / wmax: one map (1-D / per control point) or several (one row each: the doses of several weight
    vectors in one pass); (dose, bound) then have one row per map."""
    single = fluence.ndim == 1
    maps = np.ascontiguousarray(np.atleast_2d(fluence), dtype=np.float64)
    wmax = np.ascontiguousarray(np.atleast_2d(wmax), dtype=np.float64)
    out = np.empty((maps.shape[0], points.shape[0]), dtype=np.float64)
    bound = np.empty((maps.shape[0], points.shape[0]), dtype=np.float64)
    width = max(1, int(np.max(box[:, 3] - box[:, 2], initial=1)))
    _fluence_column_kernel(points, depths, np.asarray(columns, dtype=np.int64), cpf, cpi, float(pitch), params,
                           maps, fl0, box, wmax, float(reach_nsigma), float(outside),
                           np.asarray(shared, dtype=np.int64), width, out, bound)
    return (out[0], bound[0]) if single else (out, bound)
