"""Axial contours <-> voxel masks, in patient millimetres (DICOM LPS, like simsbrt.grid).

Tracing (export): each axial slice of a mask is upsampled by 2 (every voxel becomes 2 x 2 samples
at +-1/4 voxel) and contoured at level 0.5 with contourpy. The contour then runs on the voxel
boundaries, with corners cut by a quarter-voxel diagonal (area lost per convex corner: 1/32 of a
voxel face), so every voxel centre of the mask lies inside and every other voxel centre outside:
re-rasterising at the voxel centres gives back exactly the mask, and a DICOM reader that samples
the dose grid at its voxel centres (dicompyler-core) sees the same voxels. Holes become separate
polygons; the even-odd (XOR) rule of DICOM readers restores them.

Rasterising (import): a voxel belongs to a structure when its centre lies inside an odd number of
the structure's polygons on that plane (matplotlib's point-in-polygon, XOR over polygons).
"""
from __future__ import annotations

import numpy as np

UPSAMPLE = 2


def _drop_collinear(points: np.ndarray) -> np.ndarray:
    """Remove vertices where a closed polygon goes straight on (staircase edges have many)."""
    prev = np.roll(points, 1, axis=0)
    nxt = np.roll(points, -1, axis=0)
    cross = (points[:, 0] - prev[:, 0]) * (nxt[:, 1] - points[:, 1]) - (points[:, 1] - prev[:, 1]) * (nxt[:, 0] - points[:, 0])
    keep = np.abs(cross) > 1e-9 * max(1.0, float(np.abs(points).max()))
    return points[keep] if keep.sum() >= 3 else points


def mask_slice_to_polygons(mask_xy: np.ndarray, x_mm: np.ndarray, y_mm: np.ndarray) -> list[np.ndarray]:
    """Closed polygons (each (n, 2): x, y in mm, last point not repeated) around the True voxels of one
    axial slice ``mask_xy[i, j]`` whose voxel centres are ``x_mm[i]``, ``y_mm[j]`` (uniform spacing)."""
    import contourpy

    mask_xy = np.asarray(mask_xy, bool)
    if not mask_xy.any():
        return []
    ii = np.nonzero(mask_xy.any(axis=1))[0]
    jj = np.nonzero(mask_xy.any(axis=0))[0]
    i0, i1, j0, j1 = ii[0], ii[-1] + 1, jj[0], jj[-1] + 1
    sub = mask_xy[i0:i1, j0:j1].T.astype(np.float64)       # [row = y, column = x] for contourpy
    sub = np.kron(sub, np.ones((UPSAMPLE, UPSAMPLE)))
    sub = np.pad(sub, 1)                                     # zero border: every contour closes
    dx = float(x_mm[1] - x_mm[0]) if len(x_mm) > 1 else 1.0
    dy = float(y_mm[1] - y_mm[0]) if len(y_mm) > 1 else 1.0

    def sample_axis(start_mm, step, n_voxels):
        # sub-sample centres at voxel centre +- step/4, plus one padding sample each side
        n = n_voxels * UPSAMPLE + 2
        return start_mm - step / 2 + step / UPSAMPLE * (np.arange(n) - 0.5)

    xs = sample_axis(float(x_mm[i0]), dx, i1 - i0)
    ys = sample_axis(float(y_mm[j0]), dy, j1 - j0)
    gen = contourpy.contour_generator(xs, ys, sub, name="serial", line_type=contourpy.LineType.Separate)
    polygons = []
    for line in gen.lines(0.5):
        pts = np.asarray(line, dtype=float)
        if len(pts) > 1 and np.allclose(pts[0], pts[-1]):
            pts = pts[:-1]
        if len(pts) >= 3:
            polygons.append(_drop_collinear(pts))
    return polygons


def polygons_to_mask(polygons, x_mm: np.ndarray, y_mm: np.ndarray) -> np.ndarray:
    """Boolean slice [i, j] of the voxel centres (x_mm[i], y_mm[j]) inside an odd number of polygons."""
    from matplotlib.path import Path

    x_mm, y_mm = np.asarray(x_mm, float), np.asarray(y_mm, float)
    out = np.zeros((len(x_mm), len(y_mm)), dtype=bool)
    for poly in polygons:
        pts = np.asarray(poly, float)[:, :2]
        if len(pts) < 3:
            continue
        ii = np.nonzero((x_mm >= pts[:, 0].min()) & (x_mm <= pts[:, 0].max()))[0]
        jj = np.nonzero((y_mm >= pts[:, 1].min()) & (y_mm <= pts[:, 1].max()))[0]
        if ii.size == 0 or jj.size == 0:
            continue
        gx, gy = np.meshgrid(x_mm[ii], y_mm[jj], indexing="ij")
        inside = Path(pts, closed=False).contains_points(np.column_stack([gx.ravel(), gy.ravel()]))
        out[ii[0]:ii[-1] + 1, jj[0]:jj[-1] + 1] ^= inside.reshape(gx.shape)
    return out
