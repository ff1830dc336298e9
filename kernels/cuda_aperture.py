"""CUDA drivers of the MLC-aperture dose (kernels/device/aperture.py: open leaf-pair rectangles plus the MLC
transmission under the closed leaves inside the jaws; rectangles beyond 9 kernel widths skipped),
numba.cuda.jit.

One thread per (point, control point) for the columns, one per point for the summed dose. Inputs
as in kernels/cpu_aperture.py; CuPy arrays on a GPU, NumPy arrays under the Numba CUDA simulator.
Imported only when a CUDA or cudasim backend is resolved.
"""
from __future__ import annotations

from numba import cuda

from .cuda import THREADS_PER_BLOCK, _blocks, _dev, _xp, dev

_mlc_point_dose_per_mu = dev.mlc_point_dose_per_mu


@cuda.jit(cache=True)
def _columns_kernel(points, depths, cp_geom, cpf, boundaries, leaves, jaws, params, out):
    c = cuda.grid(1)
    n = points.shape[0]
    n_cp = cpf.shape[0]
    if c >= n * n_cp:
        return
    i = c // n_cp
    cp = c - i * n_cp
    out[i, cp] = _mlc_point_dose_per_mu(points[i, 0], points[i, 1], points[i, 2], depths[i, cp_geom[cp]], cp, cpf,
                                        boundaries, leaves, jaws, params)


@cuda.jit(cache=True)
def _dose_kernel(points, depths, cp_geom, cpf, boundaries, leaves, jaws, params, mu_per_cp, out):
    i = cuda.grid(1)
    if i >= points.shape[0]:
        return
    acc = 0.0
    for cp in range(cpf.shape[0]):
        if mu_per_cp[cp] > 0.0:
            acc += mu_per_cp[cp] * _mlc_point_dose_per_mu(points[i, 0], points[i, 1], points[i, 2],
                                                          depths[i, cp_geom[cp]], cp, cpf, boundaries, leaves, jaws,
                                                          params)
    out[i] = acc


def aperture_columns(points, depths, cp_geom, cpf, boundaries, leaves, jaws, params):
    xp = _xp()
    n, n_cp = points.shape[0], cpf.shape[0]
    out = xp.zeros((n, n_cp), dtype=xp.float32)
    _columns_kernel[_blocks(n * n_cp), THREADS_PER_BLOCK](
        _dev(points), _dev(depths), _dev(cp_geom), _dev(cpf), _dev(boundaries), _dev(leaves), _dev(jaws),
        _dev(params), out)
    return out


def aperture_dose(points, depths, cp_geom, cpf, boundaries, leaves, jaws, params, mu_per_cp):
    xp = _xp()
    out = xp.zeros(points.shape[0], dtype=xp.float64)
    _dose_kernel[_blocks(points.shape[0]), THREADS_PER_BLOCK](
        _dev(points), _dev(depths), _dev(cp_geom), _dev(cpf), _dev(boundaries), _dev(leaves), _dev(jaws),
        _dev(params), _dev(mu_per_cp), out)
    return out
