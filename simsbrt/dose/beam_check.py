"""Checks of the beam model beyond the depth dose: lateral-profile metrics, output factors and a
layered (slab) density phantom driven through the real engine.

Nothing here is new physics. Water doses come from the engine's device formula evaluated for a
whole open field (kernels.cpu.water_field_dose through simsbrt.dose.fit.water_dose); slab doses
come from simsbrt.dose.engine.compute_influence (exact mode) on a voxel density phantom, with the
open field tiled by beamlets as in simsbrt.dose.water. The profile metrics are plain geometry on
a sampled profile and are applied in the same way to measured scans and to the model.

Profile metrics (IEC 60976 style, profile normalised to its central-axis value):
  width_50_mm        distance between the two 50 % points;
  penumbra_80_20_mm  80 %-20 % distance, mean of the two edges (simsbrt.dose.profiles);
  shoulder           off-axis ratio at 80 % of the projected half field width, mean of both sides
                     (> 1 where the flattening-filter horns show, < 1 at depth).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from simsbrt.dose.engine import EXACT, compute_influence
from simsbrt.dose.fit import model_output_factor, water_dose
from simsbrt.dose.machine import BeamModel, load_beam_model
from simsbrt.dose.profiles import _crossing, penumbra_80_20_mm
from simsbrt.dose.water import WaterSetup, open_field_beamlets, water_grid
from simsbrt.errors import SpecError

SHOULDER_FRACTION = 0.8


def projected_half_width_mm(field_mm: float, ssd_mm: float, depth_mm: float, sad_mm: float = 1000.0) -> float:
    """Half the geometric field width at depth: the iso-plane field projected from the source."""
    return 0.5 * field_mm * (ssd_mm + depth_mm) / sad_mm


def _sides(x_mm, dose, centre_dose):
    """The two half profiles (|x| ascending, normalised to the centre), right side first."""
    x = np.asarray(x_mm, dtype=float)
    y = np.asarray(dose, dtype=float) / centre_dose
    out = []
    for sign in (1.0, -1.0):
        keep = (x * sign) >= 0
        xs, ys = (x * sign)[keep], y[keep]
        o = np.argsort(xs)
        out.append((xs[o], ys[o]))
    return out


def _centre_dose(x_mm, dose) -> float:
    x = np.asarray(x_mm, dtype=float)
    return float(np.asarray(dose, dtype=float)[np.argmin(np.abs(x))])


def field_width_mm(x_mm, dose, level: float = 0.5, centre_dose: float | None = None) -> float:
    """Width of the profile at ``level`` of its central-axis dose (both crossings needed)."""
    c = _centre_dose(x_mm, dose) if centre_dose is None else centre_dose
    edges = [_crossing(xs, ys, level) for xs, ys in _sides(x_mm, dose, c)]
    return float(edges[0] + edges[1])


def off_axis_ratio(x_mm, dose, at_mm: float, centre_dose: float | None = None) -> float:
    """Dose at +-at_mm relative to the central axis, mean of both sides (linear interpolation)."""
    c = _centre_dose(x_mm, dose) if centre_dose is None else centre_dose
    return float(np.mean([np.interp(at_mm, xs, ys) for xs, ys in _sides(x_mm, dose, c)]))


@dataclass(frozen=True)
class ProfileMetrics:
    width_50_mm: float
    penumbra_80_20_mm: float
    shoulder: float

    def as_dict(self) -> dict:
        return {"width_50_mm": self.width_50_mm, "penumbra_80_20_mm": self.penumbra_80_20_mm,
                "shoulder": self.shoulder}


def profile_metrics(x_mm, dose, shoulder_at_mm: float) -> ProfileMetrics:
    """The three metrics of a sampled lateral profile through the central axis."""
    c = _centre_dose(x_mm, dose)
    return ProfileMetrics(field_width_mm(x_mm, dose, 0.5, c), penumbra_80_20_mm(x_mm, dose, c),
                          off_axis_ratio(x_mm, dose, shoulder_at_mm, c))


def water_profile(field_mm: float, ssd_mm: float, depth_mm: float, beam: BeamModel | None = None,
                  step_mm: float = 0.1, margin_mm: float = 40.0):
    """Model lateral profile (x in mm at depth, dose in Gy/MU) of a square open field in water."""
    beam = beam or load_beam_model()
    half = projected_half_width_mm(field_mm, ssd_mm, depth_mm, beam.sad_mm) + margin_mm
    x = np.arange(-half, half + 0.5 * step_mm, step_mm)
    x[np.argmin(np.abs(x))] = 0.0
    return x, water_dose(beam, field_mm, ssd_mm, x, depth_mm)


def water_profile_metrics(field_mm: float, ssd_mm: float, depth_mm: float,
                          beam: BeamModel | None = None) -> ProfileMetrics:
    beam = beam or load_beam_model()
    x, d = water_profile(field_mm, ssd_mm, depth_mm, beam)
    at = SHOULDER_FRACTION * projected_half_width_mm(field_mm, ssd_mm, depth_mm, beam.sad_mm)
    return profile_metrics(x, d, at)


def output_factor(field_mm: float, ssd_mm: float, depth_mm: float, beam: BeamModel | None = None) -> float:
    """Central-axis dose of a square field relative to 10 x 10 cm, same SSD and depth (head scatter included)."""
    return model_output_factor(beam or load_beam_model(), field_mm, ssd_mm, depth_mm)


# --- layered (slab) phantom through the engine ---------------------------------------------------

@dataclass(frozen=True)
class Layer:
    name: str
    thickness_mm: float
    red: float   # relative electron density (water = 1)

    def __post_init__(self):
        if not (self.thickness_mm > 0 and math.isfinite(self.thickness_mm)):
            raise SpecError(f"layer {self.name}.thickness_mm", f"must be a positive number, got {self.thickness_mm}")
        if not (self.red >= 0 and math.isfinite(self.red)):
            raise SpecError(f"layer {self.name}.red", f"must be a finite number >= 0, got {self.red}")


def layer_boundaries_mm(layers) -> np.ndarray:
    return np.concatenate([[0.0], np.cumsum([ly.thickness_mm for ly in layers])])


def layer_at(layers, depth_mm: float) -> Layer:
    edges = layer_boundaries_mm(layers)
    i = int(np.searchsorted(edges, depth_mm, side="right")) - 1
    return layers[min(max(i, 0), len(layers) - 1)]


def radiological_depth_mm(layers, depth_mm: float) -> float:
    """Water-equivalent depth on the central axis: sum of thickness x RED above depth_mm."""
    edges = layer_boundaries_mm(layers)
    top, bottom = edges[:-1], edges[1:]
    inside = np.clip(depth_mm - top, 0.0, bottom - top)
    return float(np.sum(inside * np.array([ly.red for ly in layers])))


@dataclass(frozen=True)
class SlabDose:
    depth_mm: np.ndarray          # central-axis sample depths (voxel centres)
    axis_gy: np.ndarray           # central-axis dose, Gy/MU
    profile_depth_mm: tuple       # depths of the lateral profiles
    profile_x_mm: np.ndarray
    profiles_gy: np.ndarray       # (n_profiles, n_x), Gy/MU
    backend: str


def slab_field_dose(layers, field_mm: float, ssd_mm: float = 1000.0, profile_depths_mm=(),
                    beam: BeamModel | None = None, backend: str = "cpu", beamlet_mm: float = 2.5,
                    lateral_step_mm: float = 0.5, depth_step_mm: float = 1.0) -> SlabDose:
    """Open square field on a laterally infinite stack of layers (beam along +y, gantry 0).

    The dose is the engine's exact influence matrix (no sampling, no cut-off) times unit beamlet
    weights: the same ray tracing, kernels and beamlet tiling as every plan. Layer boundaries
    should fall on voxel faces (multiples of depth_step_mm).
    """
    beam = beam or load_beam_model()
    total_mm = float(layer_boundaries_mm(layers)[-1])
    setup = WaterSetup(field_mm=field_mm, ssd_mm=ssd_mm, beamlet_mm=beamlet_mm, depth_max_mm=total_mm,
                       depth_step_mm=depth_step_mm, lateral_step_mm=lateral_step_mm)
    deepest = max([total_mm] + list(profile_depths_mm))
    half = projected_half_width_mm(field_mm, ssd_mm, deepest, beam.sad_mm) + 30.0
    grid = water_grid(setup, half)
    depth = (np.arange(grid.shape[1]) + 0.5) * depth_step_mm
    density = np.ones(grid.shape, dtype=np.float32)
    for j, z in enumerate(depth):
        density[:, j, :] = layer_at(layers, z).red
    ic = grid.shape[0] // 2
    rows_ij = [(ic, j) for j in range(grid.shape[1])]
    prof_j = [int(round(z / depth_step_mm - 0.5)) for z in profile_depths_mm]
    for j in prof_j:
        if not 0 <= j < grid.shape[1]:
            raise SpecError("profile_depths_mm", f"must lie inside the phantom (0..{total_mm} mm)")
        rows_ij += [(i, j) for i in range(grid.shape[0])]
    ij = np.asarray(rows_ij, dtype=np.int64)
    rows = np.ravel_multi_index((ij[:, 0], ij[:, 1], np.zeros(len(ij), np.int64)), grid.shape)
    im = compute_influence(grid, density, rows, open_field_beamlets(field_mm, beamlet_mm), beam, EXACT, backend)
    dose = im.dose(np.ones(im.n_beamlets))
    n = grid.shape[1]
    profiles = dose[n:].reshape(len(prof_j), grid.shape[0]) if prof_j else np.zeros((0, grid.shape[0]))
    x = grid.axis_mm(0)
    return SlabDose(depth, dose[:n], tuple(float(depth[j]) for j in prof_j), x, profiles, im.backend)


def epl_axis_dose(layers, field_mm: float, ssd_mm: float, depth_mm, beam: BeamModel | None = None) -> np.ndarray:
    """Central-axis dose of a pure radiological-depth (equivalent path length) pencil beam.

    The water dose at the radiological depth, moved to the geometric distance by the inverse
    square law: D(z) = D_w(z_rad) (SSD + z_rad)^2 / (SSD + z)^2. A pencil-beam engine that scales
    its kernels only along the ray must reproduce this on the axis of a slab phantom.
    """
    beam = beam or load_beam_model()
    z = np.atleast_1d(np.asarray(depth_mm, dtype=float))
    z_rad = np.array([radiological_depth_mm(layers, d) for d in z])
    d_w = water_dose(beam, field_mm, ssd_mm, np.zeros_like(z_rad), z_rad)
    return d_w * ((ssd_mm + z_rad) / (ssd_mm + z)) ** 2
