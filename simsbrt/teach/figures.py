"""Figure data: dose slices with isodose lines and structure outlines (computed, then drawn by draw.py).

Views (DICOM LPS, +x patient left, +y posterior, +z superior), radiological convention:
  axial     through the GTV centroid's z; horizontal = x (patient right on the image left, patient
            left on the image right), vertical = y (anterior at the top);
  sagittal  through the GTV centroid's x; horizontal = y (anterior on the left), vertical = z
            (superior at the top).
A slice's dose is stored as [vertical, horizontal] with both axes increasing with the index; the
drawing flips the y axis so anterior is at the top.

Isodose lines are contourpy's lines of the slice dose at each requested level that lies strictly
inside the slice's dose range; contourpy interpolates linearly along grid-cell edges, so each
vertex read back bilinearly from the slice equals its level (tests/test_teach_figures.py).

Dose is only computed on the influence matrix's rows (the structures and the body near the PTV);
elsewhere the dose array holds exactly 0 Gy, while a computed dose inside the body is never exactly
0 (the scatter tails are positive). Voxels at 0 Gy count as "not computed": isodose lines are not
drawn into them (contourpy masks them), so no line follows the edge of the computed region.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simsbrt.errors import SpecError

DEFAULT_ISODOSE_GY = (15.0, 25.0, 30.0, 36.0, 42.0, 45.0)
OUTLINE_STRUCTURES = ("GTV", "PTV_Eval", "SpinalCord", "SpinalCord_PRV02", "ThecalSac")
VIEW_HALF_MM = 60.0          # the drawn window: +-60 mm around the GTV centroid


@dataclass(frozen=True, eq=False)
class DoseSlice:
    plan: str
    view: str                          # "axial" | "sagittal"
    fixed_axis: str                    # "z" (axial) | "x" (sagittal)
    fixed_mm: float
    fixed_index: int
    horizontal_axis: str
    vertical_axis: str
    horizontal_mm: np.ndarray          # voxel centres
    vertical_mm: np.ndarray
    dose_gy: np.ndarray                # [vertical, horizontal]
    density: np.ndarray                # [vertical, horizontal]
    outlines: dict                     # name -> bool [vertical, horizontal] (non-empty only)
    levels_requested_gy: tuple[float, ...]
    levels_present_gy: tuple[float, ...]
    isodose_lines: dict                # level -> tuple of (n, 2) arrays of (horizontal, vertical) mm
    window_mm: tuple[float, float, float, float]   # horizontal min, max, vertical min, max

    def to_dict(self) -> dict:
        return {"plan": self.plan, "view": self.view, f"{self.fixed_axis}_mm": self.fixed_mm,
                "fixed_index": self.fixed_index, "horizontal": self.horizontal_axis,
                "vertical": self.vertical_axis, "dose_range_gy": [float(self.dose_gy.min()),
                                                                  float(self.dose_gy.max())],
                "levels_requested_gy": list(self.levels_requested_gy),
                "levels_present_gy": list(self.levels_present_gy),
                "isodose_vertices": {f"{lv:g}": int(sum(len(seg) for seg in segs))
                                     for lv, segs in self.isodose_lines.items()},
                "structures_in_slice": sorted(self.outlines), "window_mm": list(self.window_mm)}


def computed_mask(dose_gy) -> np.ndarray:
    """True where the dose was computed (> 0 Gy; see the module docstring)."""
    return np.asarray(dose_gy) > 0.0


MAX_ISODOSE_GY = 200.0


def check_levels(levels_gy) -> tuple[float, ...]:
    """Isodose levels: finite, > 0, sorted and unique."""
    try:
        levels = tuple(sorted({float(v) for v in levels_gy}))
    except (TypeError, ValueError):
        raise SpecError("isodose-gy", f"needs numbers, got {levels_gy!r}") from None
    if not levels or any(not (np.isfinite(v) and 0 < v <= MAX_ISODOSE_GY) for v in levels):
        raise SpecError("isodose-gy", f"needs at least one dose > 0 and <= {MAX_ISODOSE_GY:g} Gy, got {levels_gy!r}")
    return levels


def levels_in_range(dose2d: np.ndarray, levels_gy) -> tuple[float, ...]:
    """The requested levels strictly between the minimum and maximum computed dose of the slice."""
    computed = np.asarray(dose2d)[computed_mask(dose2d)]
    if computed.size == 0:
        return ()
    lo, hi = float(np.min(computed)), float(np.max(computed))
    return tuple(v for v in levels_gy if lo < v < hi)


def isodose_lines(horizontal_mm, vertical_mm, dose2d, level_gy: float) -> tuple[np.ndarray, ...]:
    """contourpy's lines of ``dose2d`` ([vertical, horizontal]) at one level, as (n, 2) mm arrays;
    voxels where the dose was not computed are masked."""
    import contourpy

    dose = np.asarray(dose2d, float)
    gen = contourpy.contour_generator(np.asarray(horizontal_mm, float), np.asarray(vertical_mm, float),
                                      np.ma.masked_array(dose, mask=~computed_mask(dose)), line_type="Separate")
    return tuple(np.asarray(seg, dtype=float) for seg in gen.lines(float(level_gy)) if len(seg) >= 2)


def _window(centre_h: float, centre_v: float, h_mm, v_mm, half_mm: float):
    return (max(centre_h - half_mm, float(h_mm[0])), min(centre_h + half_mm, float(h_mm[-1])),
            max(centre_v - half_mm, float(v_mm[0])), min(centre_v + half_mm, float(v_mm[-1])))


def _make_slice(plan, view, fixed_axis, fixed_mm, fixed_index, axes, h_mm, v_mm, dose2d, density2d, masks2d,
                levels, centre_hv, half_mm) -> DoseSlice:
    dose2d = np.asarray(dose2d, dtype=np.float64)
    present = levels_in_range(dose2d, levels)
    lines = {lv: isodose_lines(h_mm, v_mm, dose2d, lv) for lv in present}
    outlines = {n: m for n, m in masks2d.items() if m.any()}
    return DoseSlice(plan, view, fixed_axis, float(fixed_mm), int(fixed_index), axes[0], axes[1],
                     np.asarray(h_mm, float), np.asarray(v_mm, float), dose2d, np.asarray(density2d, float),
                     outlines, tuple(levels), present, lines, _window(*centre_hv, h_mm, v_mm, half_mm))


def slice_indices(phantom) -> tuple[int, int, int]:
    """(i, j, k) of the voxel nearest the GTV centroid."""
    if phantom.is_empty("GTV"):
        raise SpecError("GTV", "the phantom has no GTV voxels; the slices run through the GTV centre")
    i, j, k = (int(v) for v in np.round(phantom.grid.world_to_index(phantom.centroid_mm("GTV"))))
    return i, j, k


def axial_slice(plan: str, dose_gy, phantom, levels_gy=DEFAULT_ISODOSE_GY, k: int | None = None,
                half_mm: float = VIEW_HALF_MM) -> DoseSlice:
    grid = phantom.grid
    ci, cj, ck = slice_indices(phantom)
    k = ck if k is None else int(k)
    x, y = grid.axis_mm(0), grid.axis_mm(1)
    masks = {n: phantom.structures[n][:, :, k].T for n in OUTLINE_STRUCTURES if n in phantom.structures}
    return _make_slice(plan, "axial", "z", grid.axis_mm(2)[k], k, ("x", "y"), x, y,
                       np.asarray(dose_gy)[:, :, k].T, phantom.density[:, :, k].T, masks,
                       check_levels(levels_gy), (x[ci], y[cj]), half_mm)


def sagittal_slice(plan: str, dose_gy, phantom, levels_gy=DEFAULT_ISODOSE_GY, i: int | None = None,
                   half_mm: float = VIEW_HALF_MM) -> DoseSlice:
    grid = phantom.grid
    ci, cj, ck = slice_indices(phantom)
    i = ci if i is None else int(i)
    y, z = grid.axis_mm(1), grid.axis_mm(2)
    masks = {n: phantom.structures[n][i, :, :].T for n in OUTLINE_STRUCTURES if n in phantom.structures}
    return _make_slice(plan, "sagittal", "x", grid.axis_mm(0)[i], i, ("y", "z"), y, z,
                       np.asarray(dose_gy)[i, :, :].T, phantom.density[i, :, :].T, masks,
                       check_levels(levels_gy), (y[cj], z[ck]), half_mm)
