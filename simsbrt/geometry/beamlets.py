"""Beamlets: a beam's-eye-view grid of square apertures at each control point.

Beamlet edges sit at integer multiples of the beamlet size in the isocentre plane (the central
leaf boundary on the beam axis). At a control point, beamlet (k, l) covers
u in [k * size, (k + 1) * size], v in [l * size, (l + 1) * size]; it exists when its square,
grown by the margin, meets the projection of the target (each target voxel counted as a square
of half-width 0.5 * max spacing, magnified to the iso plane). Columns are numbered by control
point, then k, then l.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from simsbrt.errors import SpecError
from simsbrt.geometry.arcs import ArcSet, ControlPoint, control_points, structure_centroid_mm
from simsbrt.geometry.checks import check_field_extent, check_isocentre


@dataclass(frozen=True, eq=False)
class BeamletGrid:
    """The beamlets of one control point: a (n_u, n_v) rectangle of cells, some active."""

    k0: int
    l0: int
    active: np.ndarray  # bool (n_u, n_v)

    @property
    def n_u(self) -> int:
        return int(self.active.shape[0])

    @property
    def n_v(self) -> int:
        return int(self.active.shape[1])

    @property
    def n_beamlets(self) -> int:
        return int(self.active.sum())


@dataclass(frozen=True, eq=False)
class BeamletSet:
    size_mm: float
    control_points: tuple[ControlPoint, ...]
    grids: tuple[BeamletGrid, ...]

    @property
    def n_control_points(self) -> int:
        return len(self.control_points)

    @property
    def column_offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum([g.n_beamlets for g in self.grids])]).astype(np.int64)

    @property
    def n_beamlets(self) -> int:
        return int(sum(g.n_beamlets for g in self.grids))

    def equivalent_square_mm(self, cp: int) -> float:
        """Equivalent square of the open aperture of control point cp: sqrt(open area) (iso plane)."""
        return math.sqrt(self.grids[cp].n_beamlets) * self.size_mm

    def columns(self) -> dict[str, np.ndarray]:
        """Per-column metadata: control point, cell (k, l) and iso-plane centre (u, v) in mm."""
        cps, ks, ls = [], [], []
        for c, g in enumerate(self.grids):
            kk, ll = np.nonzero(g.active)
            cps.append(np.full(len(kk), c, np.int32))
            ks.append(kk + g.k0)
            ls.append(ll + g.l0)
        k = np.concatenate(ks).astype(np.int32) if ks else np.zeros(0, np.int32)
        l = np.concatenate(ls).astype(np.int32) if ls else np.zeros(0, np.int32)
        return {"control_point": np.concatenate(cps) if cps else np.zeros(0, np.int32), "k": k, "l": l,
                "u_mm": (k + 0.5) * self.size_mm, "v_mm": (l + 0.5) * self.size_mm}

    def kernel_tables(self) -> tuple[np.ndarray, np.ndarray]:
        """(cpi without geometry index, cell_to_col) for the kernels (see kernels/device/influence.py)."""
        cpi = np.zeros((self.n_control_points, 6), dtype=np.int64)
        cells = []
        col = 0
        cell0 = 0
        for c, g in enumerate(self.grids):
            table = np.full(g.active.size, -1, dtype=np.int32)
            on = g.active.ravel()
            table[on] = np.arange(col, col + int(on.sum()), dtype=np.int32)
            col += int(on.sum())
            cpi[c, :5] = (g.k0, g.l0, g.n_u, g.n_v, cell0)
            cell0 += g.active.size
            cells.append(table)
        return cpi, (np.concatenate(cells) if cells else np.zeros(0, np.int32))


def rectangular_field(cp: ControlPoint, size_mm: float, u_range_mm, v_range_mm) -> BeamletGrid:
    """All beamlets tiling an open rectangle [u0, u1] x [v0, v1] (edges must fall on the beamlet grid)."""
    k0, k1 = (int(round(x / size_mm)) for x in u_range_mm)
    l0, l1 = (int(round(x / size_mm)) for x in v_range_mm)
    if not np.allclose([k0 * size_mm, k1 * size_mm, l0 * size_mm, l1 * size_mm],
                       [*u_range_mm, *v_range_mm], atol=1e-6) or k1 <= k0 or l1 <= l0:
        raise SpecError("field", f"edges {u_range_mm} x {v_range_mm} must be multiples of the {size_mm} mm beamlet")
    return BeamletGrid(k0, l0, np.ones((k1 - k0, l1 - l0), dtype=bool))


def target_beamlet_grid(cp: ControlPoint, target_points_mm: np.ndarray, size_mm: float, margin_mm: float,
                        voxel_half_mm: float) -> BeamletGrid:
    """Beamlets of one control point covering the target's projection plus margin."""
    rel = np.asarray(target_points_mm, float) - np.asarray(cp.isocentre_mm)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        mag = cp.sad_mm / (cp.sad_mm - rel @ cp.beam_axes()[2])
        uv = cp.project_to_iso_plane(target_points_mm)
        reach = margin_mm + voxel_half_mm * mag
    check_field_extent(cp, uv, reach, mag)
    lo = np.floor((uv - reach[:, None]) / size_mm).astype(np.int64)
    hi = np.ceil((uv + reach[:, None]) / size_mm).astype(np.int64) - 1
    k0, l0 = lo.min(axis=0)
    k1, l1 = hi.max(axis=0)
    active = np.zeros((k1 - k0 + 1, l1 - l0 + 1), dtype=bool)
    span = int((hi - lo).max()) + 1
    for dk in range(span):
        kk = lo[:, 0] + dk
        ok_k = kk <= hi[:, 0]
        for dl in range(span):
            ll = lo[:, 1] + dl
            ok = ok_k & (ll <= hi[:, 1])
            active[kk[ok] - k0, ll[ok] - l0] = True
    return BeamletGrid(int(k0), int(l0), active)


def build_beamlets(arc_set: ArcSet, grid, target_mask: np.ndarray) -> BeamletSet:
    """Control points of every arc (isocentre: the arc set's, else the target centroid) and their beamlets."""
    target_mask = np.asarray(target_mask, bool)
    if target_mask.shape != grid.shape:
        raise SpecError("PTV", f"mask shape {target_mask.shape} differs from the grid {grid.shape}")
    iso = structure_centroid_mm(grid, target_mask)
    cps = control_points(arc_set, iso)
    check_isocentre(cps[0].isocentre_mm, grid, target_mask)
    points = grid.index_to_world_mm(np.argwhere(target_mask))
    half = 0.5 * max(grid.spacing_mm)
    grids = tuple(target_beamlet_grid(cp, points, arc_set.beamlet_size_mm, arc_set.beamlet_margin_mm, half)
                  for cp in cps)
    return BeamletSet(float(arc_set.beamlet_size_mm), cps, grids)
