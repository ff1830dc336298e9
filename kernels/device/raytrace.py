"""Exact ray tracing through a voxel grid (Siddon 1985, incremental form; facts section 2.4).

The ray runs from point s (the source) to point d (a voxel centre). Each voxel it crosses
contributes (intersection length) x (relative electron density); outside the grid the density
is zero (vacuum). Voxel (i, j, k) has its centre at origin + (i, j, k) * spacing and its faces
half a spacing either side; densities are a flat C-order array of shape (nx, ny, nz).
"""
import math

RAY_EPS = 1e-12


def _axis_entry_exit(s, delta, lo, hi):
    """Parametric interval (alpha in units of the s->d segment) where the ray is inside [lo, hi] on one axis."""
    if delta == 0.0:
        if s < lo or s > hi:
            return 1.0, 0.0  # never inside: empty interval
        return -1e300, 1e300
    a0 = (lo - s) / delta
    a1 = (hi - s) / delta
    if a0 < a1:
        return a0, a1
    return a1, a0


def trace_ray(sx, sy, sz, dx, dy, dz, ox, oy, oz, hx, hy, hz, nx, ny, nz,
              density, out_index, out_length, max_out):
    """Radiological path length (mm of water-equivalent) from s to d.

    When max_out > 0 the crossed voxels' flat indices and intersection lengths (mm) are written to
    out_index / out_length (up to max_out of them); the number of segments is returned through
    out_index[...] only, so the caller counts the non-negative entries. Pass max_out = 0 to only sum.
    """
    ddx = dx - sx
    ddy = dy - sy
    ddz = dz - sz
    seg_len = math.sqrt(ddx * ddx + ddy * ddy + ddz * ddz)
    if seg_len <= 0.0:
        return 0.0
    # grid box (outer faces)
    bx0 = ox - 0.5 * hx
    by0 = oy - 0.5 * hy
    bz0 = oz - 0.5 * hz
    ax0, ax1 = _axis_entry_exit(sx, ddx, bx0, bx0 + nx * hx)
    ay0, ay1 = _axis_entry_exit(sy, ddy, by0, by0 + ny * hy)
    az0, az1 = _axis_entry_exit(sz, ddz, bz0, bz0 + nz * hz)
    a_in = max(0.0, max(ax0, max(ay0, az0)))
    a_out = min(1.0, min(ax1, min(ay1, az1)))
    if a_out <= a_in:
        return 0.0
    # starting voxel: the midpoint of the first tiny step inside the box
    a_probe = a_in + 1e-9 * (a_out - a_in) if a_out - a_in > 0.0 else a_in
    i = int(math.floor((sx + a_probe * ddx - bx0) / hx))
    j = int(math.floor((sy + a_probe * ddy - by0) / hy))
    k = int(math.floor((sz + a_probe * ddz - bz0) / hz))
    i = min(max(i, 0), nx - 1)
    j = min(max(j, 0), ny - 1)
    k = min(max(k, 0), nz - 1)
    # next plane crossings and steps per axis
    if ddx > 0.0:
        step_i = 1
        next_x = (bx0 + (i + 1) * hx - sx) / ddx
        dax = hx / ddx
    elif ddx < 0.0:
        step_i = -1
        next_x = (bx0 + i * hx - sx) / ddx
        dax = -hx / ddx
    else:
        step_i = 0
        next_x = 1e300
        dax = 1e300
    if ddy > 0.0:
        step_j = 1
        next_y = (by0 + (j + 1) * hy - sy) / ddy
        day = hy / ddy
    elif ddy < 0.0:
        step_j = -1
        next_y = (by0 + j * hy - sy) / ddy
        day = -hy / ddy
    else:
        step_j = 0
        next_y = 1e300
        day = 1e300
    if ddz > 0.0:
        step_k = 1
        next_z = (bz0 + (k + 1) * hz - sz) / ddz
        daz = hz / ddz
    elif ddz < 0.0:
        step_k = -1
        next_z = (bz0 + k * hz - sz) / ddz
        daz = -hz / ddz
    else:
        step_k = 0
        next_z = 1e300
        daz = 1e300

    total = 0.0
    a_cur = a_in
    n_out = 0
    while True:
        a_next = min(next_x, min(next_y, next_z))
        a_end = a_next if a_next < a_out else a_out
        length = (a_end - a_cur) * seg_len
        if length > 0.0:
            flat = (i * ny + j) * nz + k
            total += length * density[flat]
            if n_out < max_out:
                out_index[n_out] = flat
                out_length[n_out] = length
                n_out += 1
        if a_next >= a_out - RAY_EPS:
            break
        a_cur = a_next
        if next_x <= a_next:
            i += step_i
            next_x += dax
        if next_y <= a_next:
            j += step_j
            next_y += day
        if next_z <= a_next:
            k += step_k
            next_z += daz
        if i < 0 or i >= nx or j < 0 or j >= ny or k < 0 or k >= nz:
            break
    if n_out < max_out:
        out_index[n_out] = -1
    return total
