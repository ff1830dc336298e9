"""The exact final dose of a plan: the dose of the final beamlet weights on the phantom grid.

Every dose a user sees (protocol table, metrics, comparison, DVH figure, PLAN.h5 /dose, RTDOSE,
sweep rows, teaching page) is this dose, computed independently of the optimiser's matrix:

* no sampling: the influence matrix the optimiser uses samples small entries (Russian roulette,
  tail draws) and drops the primary beyond 4 sigma (kernels/device/influence.py); here every
  beamlet of every control point reaches every voxel through all three Gaussian components;
* no matrix: per (voxel, control point) the dose of the control point's fluence map W is
  scale * sum_c fx_c^T W fy_c (kernels/device/fluence.py), built from the same device functions
  as the matrix entries (beam_coordinates, cell_masses, trace_ray), so it equals
  InfluenceMatrix(EXACT) @ w up to float rounding (tests/test_final_dose.py);
* control points with identical geometry and beamlets (the cw and ccw full arcs) have identical
  beamlets, so their weights are summed into one fluence map and computed once;
* no truncation of any kind: every cell of the beamlet rectangle is evaluated. The only cells
  skipped are those outside the bounding box of the non-zero weights of a control point, whose
  contribution is exactly zero (W = 0 there).

Voxels: region "body" (default) computes every voxel inside the Body or inside any structure mask;
the rest of the grid is air outside the patient (relative density 0.001 in the phantoms) where no
dose is reported, and is set to zero. region "grid" computes every voxel of the grid.

The result is float32 (the precision of PLAN.h5 /dose); the accumulation is float64.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from simsbrt.errors import SpecError

REGIONS = ("body", "grid")
CHUNK_VOXELS = 1 << 15      # voxels per driver call: bounds the depth table and paces the progress display


@dataclass(frozen=True, eq=False)
class FinalDose:
    dose_gy: np.ndarray      # float32, grid.shape
    exact: bool
    time_s: float
    backend: str
    device: str
    n_voxels: int = 0        # voxels computed (the rest of the grid is zero)
    region: str = "body"

    def record(self) -> dict:
        """How the dose was made, for the plan's JSON and PLAN.h5."""
        return {"exact": bool(self.exact), "time_s": round(float(self.time_s), 3), "backend": self.backend,
                "device": self.device, "region": self.region, "n_voxels": int(self.n_voxels)}


def dose_voxels(phantom, region: str = "body") -> np.ndarray:
    """Flat indices of the voxels the final dose is computed in (sorted)."""
    if region not in REGIONS:
        raise SpecError("region", f"unknown final-dose region {region!r}; choose one of {', '.join(REGIONS)}")
    grid = phantom.grid
    if region == "grid":
        return np.arange(grid.n_voxels, dtype=np.int64)
    keep = np.zeros(grid.shape, bool)
    for mask in phantom.structures.values():
        keep |= np.asarray(mask, bool)
    return np.flatnonzero(keep.ravel()).astype(np.int64)


def fluence_maps(beamlets, weights_mu, cpi: np.ndarray, cell_to_col: np.ndarray):
    """Dense per-control-point fluence maps (MU per cell) from one weight per column.

    Returns (fluence float64 flat, fl0 int64 per control point: start of its map, box int64 (n_cp, 4):
    the half-open (k, l) bounding box of its non-zero cells). An alias control point (CPI_PRIMARY !=
    itself) adds its weights to its primary's map and gets an empty box.
    """
    from simsbrt.kernels.device.influence import CPI_CELL0, CPI_NU, CPI_NV, CPI_PRIMARY

    w = np.asarray(weights_mu, dtype=np.float64)
    if w.shape != (beamlets.n_beamlets,):
        raise SpecError("weights_mu", f"needs one weight per beamlet ({beamlets.n_beamlets}), got shape {w.shape}")
    if not np.all(np.isfinite(w)) or (w.size and w.min() < 0):
        raise SpecError("weights_mu", "weights must be finite and >= 0 MU")
    n_cp = cpi.shape[0]
    sizes = cpi[:, CPI_NU] * cpi[:, CPI_NV]
    cell0 = cpi[:, CPI_CELL0]
    primary = cpi[:, CPI_PRIMARY]
    cp_of_cell = np.repeat(np.arange(n_cp), sizes)
    cells = np.arange(len(cell_to_col), dtype=np.int64)
    target = cells - cell0[cp_of_cell] + cell0[primary[cp_of_cell]]
    on = cell_to_col >= 0
    fluence = np.zeros(len(cell_to_col), dtype=np.float64)
    np.add.at(fluence, target[on], w[cell_to_col[on]])
    box = np.zeros((n_cp, 4), dtype=np.int64)
    for cp in np.flatnonzero(primary == np.arange(n_cp)):
        block = fluence[cell0[cp]:cell0[cp] + sizes[cp]].reshape(cpi[cp, CPI_NU], cpi[cp, CPI_NV])
        ks, ls = np.nonzero(block.any(axis=1))[0], np.nonzero(block.any(axis=0))[0]
        if ks.size:
            box[cp] = (ks[0], ks[-1] + 1, ls[0], ls[-1] + 1)
    return fluence, cell0.astype(np.int64), box


def final_dose(phantom, beamlets, weights_mu, backend="cpu", beam=None,
               progress: Callable[[int, int], None] | None = None, region: str = "body") -> FinalDose:
    """The exact dose (Gy, float32, grid.shape) of beamlet weights (MU, one per influence-matrix column).

    progress(done_voxels, total_voxels) is called after every chunk of voxels.
    """
    from simsbrt.backend import resolve_backend
    from simsbrt.dose.engine import _control_point_tables, _drivers
    from simsbrt.dose.machine import load_beam_model

    t_start = time.perf_counter()
    backend = resolve_backend(backend)
    beam = beam or load_beam_model()
    grid = phantom.grid
    density = np.asarray(phantom.density, dtype=np.float32)
    if density.shape != grid.shape:
        raise SpecError("density", f"shape {density.shape} differs from the grid {grid.shape}")
    cpf, cpi, cell_to_col, sources = _control_point_tables(beamlets, beam)
    fluence, fl0, box = fluence_maps(beamlets, weights_mu, cpi, cell_to_col)
    voxels = dose_voxels(phantom, region)
    drv = _drivers(backend)
    params = beam.as_array()
    origin = np.asarray(grid.origin_mm, dtype=np.float64)
    spacing = np.asarray(grid.spacing_mm, dtype=np.float64)
    shape = np.asarray(grid.shape, dtype=np.int64)
    density_flat = density.ravel()
    values = np.empty(len(voxels), dtype=np.float64)
    for start in range(0, len(voxels), CHUNK_VOXELS):
        chunk = voxels[start:start + CHUNK_VOXELS]
        points = np.ascontiguousarray(grid.index_to_world_mm(np.stack(np.unravel_index(chunk, grid.shape), axis=1))
                                      .astype(np.float64).reshape(-1, 3))
        depths = drv.radiological_depths(points, sources, origin, spacing, shape, density_flat)
        values[start:start + len(chunk)] = drv.to_host(
            drv.fluence_dose(points, depths, cpf, cpi, beamlets.size_mm, params, fluence, fl0, box))
        if progress:
            progress(start + len(chunk), len(voxels))
    dose = np.zeros(grid.n_voxels, dtype=np.float32)
    dose[voxels] = values.astype(np.float32)
    return FinalDose(dose.reshape(grid.shape), True, time.perf_counter() - t_start, backend.name, backend.device, int(len(voxels)), region)
