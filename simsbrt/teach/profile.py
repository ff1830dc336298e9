"""The dose profile along the anterior-posterior line through the GTV centre and the cord.

The line runs along y (LPS: +y posterior) through the voxel column nearest to the GTV centroid's
x and z, across the whole grid, so its samples are the dose array's own voxel-centre values
(no interpolation). Between samples the profile is read piecewise linearly.

Fall-off numbers, on the cord side of the GTV (the side toward the cord centroid; posterior for a
vertebral-body GTV):
  - steepest |dD/dy|: the largest finite difference |D[j+1] - D[j]| / dy between consecutive
    samples from the GTV centre to the cord centre, in Gy/mm, located at the midpoint of the pair;
  - the 80 % - 20 % distance: where the profile first falls below 80 % and then 20 % of the
    reference dose, walking from the GTV centre toward the cord. The reference is the plan's GTV
    D50% (the boost's median dose, facts 6.1), unless one is given. This is the "penumbra" width
    of the dose cloud around the target (facts 1.5 gives 4-9 mm for an open 6 MV field edge);
  - where the profile first crosses the cord PRV limit (protocol default 25 Gy, sib-protocol.md
    Table 1: SpinalCord_PRV02 D0.03cc) and how far that point lies from the edge of the PRV that
    faces the GTV (positive: the limit isodose lies outside the PRV, on the GTV side).
Steep cord gradients of about 10 %/mm are typical (facts 6.1).
Samples at exactly 0 Gy lie outside the region where the dose was computed (figures.py): the walks
stop there and the steepest step skips them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simsbrt.errors import SpecError
from simsbrt.teach.figures import OUTLINE_STRUCTURES

GTV, CORD, CORD_PRV = "GTV", "SpinalCord", "SpinalCord_PRV02"
REFERENCE_LABEL = "GTV D50%"
HIGH_FRAC, LOW_FRAC = 0.8, 0.2


@dataclass(frozen=True)
class Interval:
    """Where a structure lies on the line: voxel-boundary extent of one contiguous run (mm)."""

    name: str
    start_mm: float
    end_mm: float

    def to_dict(self) -> dict:
        return {"structure": self.name, "start_mm": self.start_mm, "end_mm": self.end_mm}


@dataclass(frozen=True)
class Falloff:
    reference_dose_gy: float
    reference_label: str
    direction: int                       # +1: the cord side is toward +y (posterior), -1 anterior
    steepest_gy_per_mm: float | None
    steepest_at_mm: float | None
    high_frac: float
    low_frac: float
    high_point_mm: float | None          # where the dose falls below high_frac x reference
    low_point_mm: float | None
    distance_high_low_mm: float | None
    limit_gy: float
    limit_crossing_mm: float | None      # where the dose falls below the cord PRV limit
    prv_edge_mm: float | None            # the PRV edge facing the GTV (voxel boundary)
    limit_to_prv_edge_mm: float | None   # > 0: the limit isodose lies outside the PRV (GTV side)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True, eq=False)
class ProfileData:
    plan: str
    x_mm: float                          # the line's x and z (voxel centres nearest the GTV centroid)
    z_mm: float
    index_i: int
    index_k: int
    positions_mm: np.ndarray             # y of the voxel centres along the line
    dose_gy: np.ndarray                  # dose[index_i, :, index_k]
    intervals: tuple[Interval, ...]
    gtv_centre_mm: float                 # y of the GTV centroid
    cord_centre_mm: float | None         # y of the cord centroid (None without a cord)
    falloff: Falloff

    def to_dict(self) -> dict:
        return {"plan": self.plan, "axis": "y (A -> P)", "x_mm": self.x_mm, "z_mm": self.z_mm,
                "index_i": self.index_i, "index_k": self.index_k,
                "positions_mm": [float(v) for v in self.positions_mm],
                "dose_gy": [float(v) for v in self.dose_gy],
                "intervals": [iv.to_dict() for iv in self.intervals],
                "gtv_centre_mm": self.gtv_centre_mm, "cord_centre_mm": self.cord_centre_mm,
                "falloff": self.falloff.to_dict()}


def nearest_column(grid, point_mm) -> tuple[int, int]:
    """(i, k) of the voxel column nearest to a point's x and z."""
    i, _, k = (int(v) for v in np.round(grid.world_to_index(point_mm)))
    if not (0 <= i < grid.shape[0] and 0 <= k < grid.shape[2]):
        raise SpecError("profile", f"the point {tuple(point_mm)} mm lies outside the grid")
    return i, k


def structure_intervals(structures, grid, i: int, k: int, names=OUTLINE_STRUCTURES) -> tuple[Interval, ...]:
    """Contiguous runs of each structure on the line, as voxel-boundary extents in mm."""
    y = grid.axis_mm(1)
    half = grid.spacing_mm[1] / 2.0
    out = []
    for name in names:
        if name not in structures:
            continue
        on_line = np.asarray(structures[name][i, :, k], dtype=bool)
        edges = np.flatnonzero(np.diff(np.concatenate(([0], on_line.astype(np.int8), [0]))))
        for first, stop in zip(edges[::2], edges[1::2]):
            out.append(Interval(name, float(y[first] - half), float(y[stop - 1] + half)))
    return tuple(out)


def crossing_below(positions_mm, values, level: float, start: int, direction: int) -> float | None:
    """First position, walking from sample ``start`` in ``direction``, where the piecewise-linear
    profile falls from >= level to < level; None if it never does (or starts below), or if the walk
    reaches a sample where the dose was not computed (0 Gy) first."""
    if values[start] < level:
        return None
    j = start
    while 0 <= j + direction < len(values):
        a, b = values[j], values[j + direction]
        if b <= 0.0:
            return None
        if b < level:
            t = (a - level) / (a - b)
            return float(positions_mm[j] + t * (positions_mm[j + direction] - positions_mm[j]))
        j += direction
    return None


def steepest_step(positions_mm, values, start: int, stop: int) -> tuple[float | None, float | None]:
    """Largest |dD/dy| between consecutive samples from index start to stop (either order)."""
    lo, hi = min(start, stop), max(start, stop)
    if hi == lo:
        return None, None
    p = np.asarray(positions_mm[lo:hi + 1], dtype=float)
    d = np.asarray(values[lo:hi + 1], dtype=float)
    slopes = np.abs(np.diff(d) / np.diff(p))
    slopes[(d[:-1] <= 0.0) | (d[1:] <= 0.0)] = -1.0          # a step into the not-computed region
    m = int(np.argmax(slopes))
    if slopes[m] < 0:
        return None, None
    return float(slopes[m]), float((p[m] + p[m + 1]) / 2.0)


def _index_on_line(grid, y_mm: float) -> int:
    j = int(round((y_mm - grid.origin_mm[1]) / grid.spacing_mm[1]))
    return min(max(j, 0), grid.shape[1] - 1)


def _centroid(structures, grid, name: str):
    """The structure's centroid (mm), or None when it is absent or empty."""
    from simsbrt.geometry.arcs import structure_centroid_mm

    mask = structures.get(name)
    if mask is None or not np.any(mask):
        return None
    return np.asarray(structure_centroid_mm(grid, mask))


def ap_profile(plan: str, dose_gy, grid, structures, cord_prv_limit_gy: float = 25.0,
               reference_dose_gy: float | None = None) -> ProfileData:
    """The AP profile through the GTV centroid and its fall-off numbers (module docstring)."""
    from simsbrt.evaluate import compute_dvh

    dose = np.asarray(dose_gy)
    if dose.shape != tuple(grid.shape):
        raise SpecError("dose_gy", f"shape {dose.shape} does not match the grid {tuple(grid.shape)}")
    if not (np.isfinite(cord_prv_limit_gy) and cord_prv_limit_gy > 0):
        raise SpecError("cord-prv-limit-gy", f"must be a dose > 0 Gy, got {cord_prv_limit_gy}")
    gtv_centre = _centroid(structures, grid, GTV)
    if gtv_centre is None:
        raise SpecError(GTV, "the phantom has no GTV voxels; the profile runs through the GTV centre")
    i, k = nearest_column(grid, gtv_centre)
    y = grid.axis_mm(1)
    line = np.array(dose[i, :, k], dtype=np.float64)
    cord_centre = _centroid(structures, grid, CORD)
    direction = 1 if cord_centre is None or cord_centre[1] >= gtv_centre[1] else -1
    j_gtv = _index_on_line(grid, gtv_centre[1])
    j_cord = _index_on_line(grid, cord_centre[1]) if cord_centre is not None else (
        grid.shape[1] - 1 if direction > 0 else 0)

    if reference_dose_gy is None:
        reference_dose_gy = float(compute_dvh(dose, structures[GTV], grid.voxel_volume_cc, name=GTV).metric("D50%"))
        label = REFERENCE_LABEL
    else:
        label = "given reference"
    intervals = structure_intervals(structures, grid, i, k)
    start = _falloff_start(line, structures[GTV][i, :, k], j_gtv, HIGH_FRAC * reference_dose_gy)
    steep, steep_at = steepest_step(y, line, j_gtv, j_cord)
    high = crossing_below(y, line, HIGH_FRAC * reference_dose_gy, start, direction)
    low = crossing_below(y, line, LOW_FRAC * reference_dose_gy, start, direction)
    crossing = crossing_below(y, line, cord_prv_limit_gy, start, direction)
    prv_edge = _near_edge(intervals, CORD_PRV, gtv_centre[1], direction)
    falloff = Falloff(
        reference_dose_gy=float(reference_dose_gy), reference_label=label, direction=direction,
        steepest_gy_per_mm=steep, steepest_at_mm=steep_at, high_frac=HIGH_FRAC, low_frac=LOW_FRAC,
        high_point_mm=high, low_point_mm=low,
        distance_high_low_mm=None if high is None or low is None else abs(low - high),
        limit_gy=float(cord_prv_limit_gy), limit_crossing_mm=crossing, prv_edge_mm=prv_edge,
        limit_to_prv_edge_mm=None if crossing is None or prv_edge is None else (prv_edge - crossing) * direction)
    line.setflags(write=False)
    y = np.array(y, dtype=np.float64)
    y.setflags(write=False)
    return ProfileData(plan, float(grid.axis_mm(0)[i]), float(grid.axis_mm(2)[k]), i, k, y, line,
                       intervals, float(gtv_centre[1]), None if cord_centre is None else float(cord_centre[1]),
                       falloff)


def _falloff_start(line, gtv_on_line, j_gtv: int, high_gy: float) -> int:
    """The GTV centre sample, or the hottest GTV sample on the line if the centre is below 80 %."""
    if line[j_gtv] >= high_gy or not np.any(gtv_on_line):
        return j_gtv
    candidates = np.flatnonzero(gtv_on_line)
    return int(candidates[np.argmax(line[candidates])])


def _near_edge(intervals, name: str, gtv_y_mm: float, direction: int) -> float | None:
    """The edge of ``name`` nearest the GTV centre on the cord side."""
    edges = [iv.start_mm if direction > 0 else iv.end_mm for iv in intervals
             if iv.name == name and (iv.start_mm - gtv_y_mm) * direction >= 0]
    if not edges:
        return None
    return min(edges) if direction > 0 else max(edges)
