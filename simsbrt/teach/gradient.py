"""|grad D| in Gy/mm around the cord on the axial slice through the GTV centre.

The gradient is the 3-D one, np.gradient with the grid spacing in mm along x, y and z (central
differences inside, one-sided at the array edges), evaluated on the slice; its magnitude is
sqrt(dD/dx^2 + dD/dy^2 + dD/dz^2). The map is cropped to a square of +-half_width_mm around the
cord centroid (the GTV centroid where there is no cord). Where the dose or one of the neighbours
that the differences use was not computed (0 Gy, see figures.py), the map holds NaN: a jump from
the computed dose to 0 is not a gradient.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simsbrt.errors import SpecError
from simsbrt.geometry.arcs import structure_centroid_mm
from simsbrt.teach.figures import OUTLINE_STRUCTURES, computed_mask

CORD, CORD_PRV, GTV = "SpinalCord", "SpinalCord_PRV02", "GTV"
DEFAULT_HALF_WIDTH_MM = 30.0


def gradient_magnitude_gy_per_mm(dose_gy, spacing_mm) -> np.ndarray:
    """|grad D| (Gy/mm) of a 2-D or 3-D dose array with the given spacing (mm) per axis."""
    dose = np.asarray(dose_gy, dtype=np.float64)
    spacing = tuple(float(s) for s in spacing_mm)
    if len(spacing) != dose.ndim or any(not (np.isfinite(s) and s > 0) for s in spacing):
        raise SpecError("spacing_mm", f"needs one spacing > 0 per axis of a {dose.ndim}-D array, got {spacing_mm}")
    if min(dose.shape) < 2:
        raise SpecError("dose_gy", f"needs at least 2 samples per axis, got shape {dose.shape}")
    parts = np.gradient(dose, *spacing)
    return np.sqrt(sum(p * p for p in parts))


def axial_gradient_slice(dose_gy, spacing_mm, k: int) -> np.ndarray:
    """The 3-D |grad D| on axial slice k ([i, j] = [x, y]), computed on the slab k-1..k+1 only;
    NaN where the voxel or a neighbour it uses was not computed."""
    from scipy.ndimage import binary_erosion, generate_binary_structure

    dose = np.asarray(dose_gy)
    lo, hi = max(k - 1, 0), min(k + 2, dose.shape[2])
    slab = dose[:, :, lo:hi]
    g = gradient_magnitude_gy_per_mm(slab, spacing_mm)[:, :, k - lo]
    valid = binary_erosion(computed_mask(slab), generate_binary_structure(3, 1), border_value=1)[:, :, k - lo]
    return np.where(valid, g, np.nan)


@dataclass(frozen=True, eq=False)
class GradientMap:
    plan: str
    z_mm: float
    index_k: int
    x_mm: np.ndarray                    # cropped axes (voxel centres)
    y_mm: np.ndarray
    gradient_gy_per_mm: np.ndarray      # [x, y] on the crop
    dose_gy: np.ndarray                 # [x, y] on the crop (for the limit isodose)
    outlines: dict                      # name -> bool [x, y] on the crop
    centre_mm: tuple[float, float]      # (x, y) of the crop centre
    half_width_mm: float
    stats: dict                         # max / where, mean and max inside the cord PRV on the slice

    def to_dict(self) -> dict:
        return {"plan": self.plan, "z_mm": self.z_mm, "index_k": self.index_k,
                "crop_x_mm": [float(self.x_mm[0]), float(self.x_mm[-1])],
                "crop_y_mm": [float(self.y_mm[0]), float(self.y_mm[-1])],
                "centre_mm": list(self.centre_mm), "half_width_mm": self.half_width_mm, "stats": self.stats}


def _crop(axis_mm: np.ndarray, centre_mm: float, half_width_mm: float) -> slice:
    inside = np.flatnonzero(np.abs(axis_mm - centre_mm) <= half_width_mm + 1e-9)
    return slice(int(inside[0]), int(inside[-1]) + 1)


def gradient_map(plan: str, dose_gy, grid, structures, k: int,
                 half_width_mm: float = DEFAULT_HALF_WIDTH_MM) -> GradientMap:
    """|grad D| on axial slice k, cropped around the cord (module docstring), with its statistics."""
    if not (np.isfinite(half_width_mm) and half_width_mm > 0):
        raise SpecError("half_width_mm", f"must be > 0 mm, got {half_width_mm}")
    centre_name = CORD if np.any(structures.get(CORD, False)) else GTV
    centre = structure_centroid_mm(grid, structures[centre_name])
    x, y = grid.axis_mm(0), grid.axis_mm(1)
    sx, sy = _crop(x, centre[0], half_width_mm), _crop(y, centre[1], half_width_mm)
    g = axial_gradient_slice(dose_gy, grid.spacing_mm, k)[sx, sy]
    dose = np.asarray(dose_gy)[sx, sy, k].astype(np.float64)
    outlines = {n: np.asarray(structures[n][sx, sy, k], dtype=bool) for n in OUTLINE_STRUCTURES if n in structures}
    if not np.any(np.isfinite(g)):
        raise SpecError("dose_gy", f"no computed dose around the cord on slice z = {grid.axis_mm(2)[k]:.1f} mm")
    m = np.unravel_index(int(np.nanargmax(g)), g.shape)
    stats = {"max_gy_per_mm": float(g[m]), "max_at_mm": [float(x[sx][m[0]]), float(y[sy][m[1]])],
             "n_voxels_not_computed": int(np.count_nonzero(~np.isfinite(g)))}
    prv = outlines.get(CORD_PRV)
    if prv is not None and prv.any() and np.any(np.isfinite(g[prv])):
        stats.update({"prv_mean_gy_per_mm": float(np.nanmean(g[prv])), "prv_max_gy_per_mm": float(np.nanmax(g[prv]))})
    return GradientMap(plan, float(grid.axis_mm(2)[k]), int(k), x[sx].copy(), y[sy].copy(), g, dose, outlines,
                       (float(centre[0]), float(centre[1])), float(half_width_mm), stats)
