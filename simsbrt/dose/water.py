"""Water-phantom dosimetry through the engine: open fields built from beamlets (no separate formula).

Set-up: gantry 0 (beam travelling +y, from anterior), isocentre at the origin, source at
y = -SAD. The water surface is the plane y = SSD - SAD, the first voxel face; voxel centres lie at
depths (j + 0.5) * step. Profiles run along x (the beam's X_b axis) through z = 0.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from simsbrt.dose.engine import EXACT, InfluenceOptions, compute_influence
from simsbrt.dose.machine import BeamModel, load_beam_model
from simsbrt.dose.profiles import dmax_mm, penumbra_80_20_mm
from simsbrt.errors import SpecError
from simsbrt.geometry.arcs import ControlPoint
from simsbrt.geometry.beamlets import BeamletSet, rectangular_field
from simsbrt.grid import Grid


@dataclass(frozen=True)
class WaterSetup:
    field_mm: float = 100.0
    ssd_mm: float = 1000.0
    beamlet_mm: float = 2.5
    depth_max_mm: float = 300.0
    depth_step_mm: float = 1.0
    lateral_step_mm: float = 0.5

    def __post_init__(self):
        n = self.field_mm / self.beamlet_mm
        if self.field_mm <= 0 or abs(n - round(n)) > 1e-6 or round(n) % 2:
            raise SpecError("field_mm", f"must be an even number of {self.beamlet_mm} mm beamlets, got {self.field_mm}")
        if not 500.0 <= self.ssd_mm <= 1000.0:
            raise SpecError("ssd_mm", f"must be within 500..1000 mm (surface at or above the isocentre), got {self.ssd_mm}")
        if not 10.0 <= self.depth_max_mm <= 400.0:
            raise SpecError("depth_max_mm", f"must be within 10..400 mm, got {self.depth_max_mm}")


def open_field_beamlets(field_mm: float, beamlet_mm: float = 2.5) -> BeamletSet:
    cp = ControlPoint(0, 0, 0.0, 0.0, 0.0, (0.0, 0.0, 0.0))
    h = 0.5 * field_mm
    return BeamletSet(beamlet_mm, (cp,), (rectangular_field(cp, beamlet_mm, (-h, h), (-h, h)),))


def water_grid(setup: WaterSetup, lateral_half_width_mm: float) -> Grid:
    surface_y = setup.ssd_mm - 1000.0
    n_depth = int(round(setup.depth_max_mm / setup.depth_step_mm))
    n_half = int(math.ceil(lateral_half_width_mm / setup.lateral_step_mm))
    return Grid((2 * n_half + 1, n_depth, 1), (setup.lateral_step_mm, setup.depth_step_mm, 1.0),
                (-n_half * setup.lateral_step_mm, surface_y + 0.5 * setup.depth_step_mm, 0.0))


def open_field_dose(setup: WaterSetup, rows_ij, lateral_half_width_mm: float, beam: BeamModel | None = None,
                    options: InfluenceOptions = EXACT, backend="cpu"):
    """Dose per MU (Gy) at voxels (i, j, 0) of the water grid from the open field (all beamlets weight 1)."""
    grid = water_grid(setup, lateral_half_width_mm)
    ij = np.asarray(rows_ij, dtype=np.int64).reshape(-1, 2)
    rows = np.ravel_multi_index((ij[:, 0], ij[:, 1], np.zeros(len(ij), np.int64)), grid.shape)
    beamlets = open_field_beamlets(setup.field_mm, setup.beamlet_mm)
    im = compute_influence(grid, np.ones(grid.shape, np.float32), rows, beamlets, beam, options, backend)
    return grid, im, im.dose(np.ones(im.n_beamlets))


@dataclass(frozen=True)
class WaterResult:
    depth_mm: np.ndarray
    pdd_percent: np.ndarray
    dmax_mm: float
    profile_depth_mm: float
    profile_x_mm: np.ndarray
    profile_dose_gy: np.ndarray
    penumbra_80_20_mm: float
    dose_at_dmax_gy_per_mu: float
    backend: str
    device: str

    def as_json(self) -> dict:
        return {"depth_mm": [round(float(x), 3) for x in self.depth_mm],
                "pdd_percent": [round(float(x), 3) for x in self.pdd_percent],
                "dmax_mm": round(self.dmax_mm, 2),
                "penumbra_80_20_mm_at_100mm": round(self.penumbra_80_20_mm, 3),
                "dose_at_dmax_gy_per_mu": self.dose_at_dmax_gy_per_mu,
                "backend": self.backend, "device": self.device}


def pdd_and_profile(setup: WaterSetup = WaterSetup(), profile_depth_mm: float = 100.0, beam: BeamModel | None = None,
                    backend="cpu") -> WaterResult:
    """Central-axis PDD and the lateral profile at profile_depth_mm (interpolated between two voxel rows)."""
    beam = beam or load_beam_model()
    edge = 0.5 * setup.field_mm * (setup.ssd_mm + profile_depth_mm) / 1000.0
    half = edge + 25.0
    grid = water_grid(setup, half)
    ic = grid.shape[0] // 2
    n_depth = grid.shape[1]
    j_lo = int(math.floor(profile_depth_mm / setup.depth_step_mm - 0.5))
    if not 0 <= j_lo < n_depth - 1:
        raise SpecError("profile_depth_mm", f"must lie inside the phantom, got {profile_depth_mm}")
    axis = [(ic, j) for j in range(n_depth)]
    prof = [(i, j) for j in (j_lo, j_lo + 1) for i in range(grid.shape[0])]
    _, im, dose = open_field_dose(setup, axis + prof, half, beam, EXACT, backend)
    axis_dose = dose[:n_depth]
    p_lo = dose[n_depth:n_depth + grid.shape[0]]
    p_hi = dose[n_depth + grid.shape[0]:]
    depth = grid.axis_mm(1) - (setup.ssd_mm - 1000.0)
    frac = (profile_depth_mm - depth[j_lo]) / (depth[j_lo + 1] - depth[j_lo])
    profile = (1 - frac) * p_lo + frac * p_hi
    x = grid.axis_mm(0)
    pdd = 100.0 * axis_dose / axis_dose.max()
    return WaterResult(depth, pdd, dmax_mm(depth, axis_dose), float(profile_depth_mm), x, profile,
                       penumbra_80_20_mm(x, profile), float(axis_dose.max()), im.backend, im.device)


def output_factor(field_mm: float, ssd_mm: float, depth_mm: float, beam: BeamModel | None = None,
                  backend="cpu", beamlet_mm: float = 2.5) -> float:
    """Central-axis dose of a square field relative to the 10 x 10 cm field at the same SSD and depth."""
    def axis_dose(field):
        setup = WaterSetup(field_mm=field, ssd_mm=ssd_mm, beamlet_mm=beamlet_mm, depth_max_mm=depth_mm + 10.0,
                           depth_step_mm=1.0, lateral_step_mm=1.0)
        j = int(math.floor(depth_mm - 0.5))
        _, _, d = open_field_dose(setup, [(0, j), (0, j + 1)], 0.0, beam, EXACT, backend)
        return 0.5 * (d[0] + d[1])

    return float(axis_dose(field_mm) / axis_dose(100.0))
