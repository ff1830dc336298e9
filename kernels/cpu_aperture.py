"""CPU drivers of the MLC-aperture dose (kernels/device/aperture.py: open leaf-pair rectangles plus the MLC
transmission under the closed leaves inside the jaws; rectangles beyond 9 kernel widths skipped),
numba.njit with prange.

The drivers map loop indices to (point, control point) work items; the physics is the device
function's. depths[i, g]: radiological depth of point i from source g; cp_geom[c]: the source of
control point c.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from .cpu import dev

_mlc_point_dose_per_mu = dev.mlc_point_dose_per_mu


@njit(parallel=True, cache=True)
def aperture_columns(points, depths, cp_geom, cpf, boundaries, leaves, jaws, params):
    """Dose per MU (float32, n_points x n_cp) of every control point's aperture at every point."""
    n = points.shape[0]
    n_cp = cpf.shape[0]
    out = np.empty((n, n_cp), dtype=np.float32)
    for i in prange(n):
        for c in range(n_cp):
            out[i, c] = _mlc_point_dose_per_mu(points[i, 0], points[i, 1], points[i, 2], depths[i, cp_geom[c]], c,
                                               cpf, boundaries, leaves, jaws, params)
    return out


@njit(parallel=True, cache=True)
def aperture_dose(points, depths, cp_geom, cpf, boundaries, leaves, jaws, params, mu_per_cp):
    """Dose (Gy, float64 per point) of the apertures delivering mu_per_cp MU each (zero-MU ones skipped)."""
    n = points.shape[0]
    n_cp = cpf.shape[0]
    out = np.zeros(n)
    for i in prange(n):
        acc = 0.0
        for c in range(n_cp):
            if mu_per_cp[c] > 0.0:
                acc += mu_per_cp[c] * _mlc_point_dose_per_mu(points[i, 0], points[i, 1], points[i, 2],
                                                             depths[i, cp_geom[c]], c, cpf, boundaries, leaves, jaws,
                                                             params)
        out[i] = acc
    return out
