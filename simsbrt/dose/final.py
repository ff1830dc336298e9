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
* no truncation that can be seen in the result: the two scatter components are summed over every
  cell of the beamlet rectangle; the primary (a few mm wide) over the cells within REACH_NSIGMA = 8
  primary sigmas of the voxel's projection. The primary mass outside that window is at most
  erfc(8 / sqrt(2)) = 1.2e-15 of the primary in u and in v, so the omitted dose at a voxel is
  at most bound = sum over control points of scale * a0 * max(W) * 2 * 1.2e-15 (kernels/device/
  fluence.py). Every voxel whose bound exceeds BOUND_REL = 2^-26 of its dose (a quarter of float32's
  unit roundoff 2^-24, i.e. below the rounding of the stored float32 dose) is recomputed with every
  primary cell; so |computed - untruncated| <= 2^-26 |dose| at every voxel, a proven bound,
  recorded as FinalDose.bound_rel_max (tests/test_final_dose.py checks it against the untruncated sum).
  Cells outside the bounding box of a control point's non-zero weights contribute exactly zero.

Voxels: region "body" (default) computes every voxel inside the Body or inside any structure mask;
the rest of the grid is air outside the patient (relative density 0.001 in the phantoms) where no
dose is reported, and is set to zero. region "grid" computes every voxel of the grid.

The result is float32 (the precision of PLAN.h5 /dose); the accumulation is float64.

Several plans on the same phantom and beamlets (the three of ``simsbrt compare``): final_doses computes their
doses in one pass over the voxels; the geometry, depths and Gaussian masses are shared, each dose is summed
in its own order and checked against its own bound (final_doses' docstring).

On the CPU both passes go by grid columns (voxels of the same x, y): the depth trace walks the x / y plane
crossings once per column and source (bit for bit trace_ray's depths, kernels/device/raytrace.py), and the
dose kernel computes the u-side scatter once per column and control point (kernels/device/fluence.py; the same
sums as the per-voxel kernel to float64 rounding). The GPU runs the per-voxel paths.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from simsbrt.errors import SpecError

REGIONS = ("body", "grid")
KERNELS = ("column", "pair")   # column: the u-side scatter shared by each grid column (CPU); pair: per voxel
CHUNK_VOXELS = 1 << 15      # voxels per driver call: bounds the depth table and paces the progress display
REACH_NSIGMA = 8.0          # primary cells summed: those within this many primary sigmas of the voxel
BOUND_REL = 2.0 ** -26      # largest allowed (bound on the omitted primary) / dose; float32 unit roundoff is 2^-24
MAX_DEPTH_CACHE_BYTES = 1 << 29   # DoseGeometry keeps the radiological depths when they fit in 512 MiB


@dataclass(frozen=True, eq=False)
class FinalDose:
    dose_gy: np.ndarray      # float32, grid.shape
    exact: bool
    time_s: float
    backend: str
    device: str
    n_voxels: int = 0        # voxels computed (the rest of the grid is zero)
    region: str = "body"
    bound_rel_max: float = 0.0   # the largest (bound on the omitted primary) / dose over the voxels (<= BOUND_REL)
    n_recomputed: int = 0        # voxels recomputed with every primary cell because their bound was not small enough
    n_in_pass: int = 1           # doses computed in the same pass over the voxels (final_doses); time_s is the pass's

    def record(self) -> dict:
        """How the dose was made, for the plan's JSON and PLAN.h5."""
        return {"exact": bool(self.exact), "time_s": round(float(self.time_s), 3), "backend": self.backend,
                "device": self.device, "region": self.region, "n_voxels": int(self.n_voxels),
                "truncation_bound_rel": float(f"{self.bound_rel_max:.3g}"), "doses_in_pass": int(self.n_in_pass)}


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


@dataclass(frozen=True, eq=False)
class DoseGeometry:
    """What every final dose of one phantom and beamlet set shares: the voxels and their points, the kernel
    tables, and the radiological depths of every voxel from every source (cached after the first dose when
    they fit in MAX_DEPTH_CACHE_BYTES; otherwise traced again for each dose)."""

    grid: object
    voxels: np.ndarray
    cpf: np.ndarray
    cpi: np.ndarray
    cell_to_col: np.ndarray
    sources: np.ndarray
    params: np.ndarray
    pitch_mm: float
    backend: object
    region: str
    density_flat: np.ndarray
    depth_cache: dict = field(default_factory=dict)

    @classmethod
    def build(cls, phantom, beamlets, backend="cpu", beam=None, region: str = "body") -> "DoseGeometry":
        from simsbrt.backend import resolve_backend
        from simsbrt.dose.engine import _control_point_tables
        from simsbrt.dose.machine import load_beam_model

        beam = beam or load_beam_model()
        density = np.asarray(phantom.density, dtype=np.float32)
        if density.shape != phantom.grid.shape:
            raise SpecError("density", f"shape {density.shape} differs from the grid {phantom.grid.shape}")
        cpf, cpi, cell_to_col, sources = _control_point_tables(beamlets, beam)
        return cls(phantom.grid, dose_voxels(phantom, region), cpf, cpi, cell_to_col, sources, beam.as_array(),
                   float(beamlets.size_mm), resolve_backend(backend), region, density.ravel())

    @property
    def caches_depths(self) -> bool:
        return len(self.voxels) * len(self.sources) * 4 <= MAX_DEPTH_CACHE_BYTES

    def points(self, start: int, stop: int) -> np.ndarray:
        chunk = self.voxels[start:stop]
        ijk = np.stack(np.unravel_index(chunk, self.grid.shape), axis=1)
        return np.ascontiguousarray(self.grid.index_to_world_mm(ijk).astype(np.float64).reshape(-1, 3))

    @property
    def shared_u(self) -> np.ndarray:
        """1 per control point whose iso-plane u does not depend on z (X_b and Z_b without z component)."""
        from simsbrt.kernels.device.influence import CPF_XB, CPF_ZB

        return ((self.cpf[:, CPF_XB + 2] == 0.0) & (self.cpf[:, CPF_ZB + 2] == 0.0)).astype(np.int64)

    def columns(self, start: int, stop: int) -> np.ndarray:
        """Boundaries (into the chunk) of the runs of voxels[start:stop] in one grid column (same x, y; the
        voxels are sorted, z varies fastest)."""
        return self.grid.column_runs(self.voxels[start:stop])

    def voxel_depths(self, flat_indices) -> np.ndarray | None:
        """The radiological depths (float32, (voxels, sources), the sources of simsbrt.dose.engine's control-point
        tables) of some of the geometry's voxels (flat grid indices), from the depths of every voxel, traced once
        and kept: the influence matrix's rows take theirs from here, so the final dose does not trace them again.
        None where the depths are not kept (caches_depths, CPU only) or a voxel is not one of the geometry's."""
        if not self.caches_depths or self.backend.name != "cpu":
            return None
        from simsbrt.dose.engine import _drivers

        flat = np.asarray(flat_indices, dtype=np.int64)
        at = np.searchsorted(self.voxels, flat)
        if flat.ndim != 1 or np.any(at >= len(self.voxels)) or not np.array_equal(self.voxels[at], flat):
            return None
        drv = _drivers(self.backend)
        out = np.empty((len(flat), len(self.sources)), dtype=np.float32)
        for start in range(0, len(self.voxels), CHUNK_VOXELS):
            stop = min(start + CHUNK_VOXELS, len(self.voxels))
            depths = self.depths(drv, start, self.points(start, stop))
            mine = np.flatnonzero((at >= start) & (at < stop))
            out[mine] = depths[at[mine] - start]
        return out

    def depths(self, drv, start: int, points: np.ndarray):
        if start in self.depth_cache:
            return self.depth_cache[start]
        g = self.grid
        grid = (self.sources, np.asarray(g.origin_mm, dtype=np.float64), np.asarray(g.spacing_mm, dtype=np.float64),
                np.asarray(g.shape, dtype=np.int64), self.density_flat)
        if hasattr(drv, "column_radiological_depths"):   # the same numbers, x / y crossings walked once per column
            depths = drv.column_radiological_depths(points, self.columns(start, start + len(points)), *grid)
        else:
            depths = drv.radiological_depths(points, *grid)
        if self.caches_depths:
            self.depth_cache[start] = depths
        return depths


def final_dose(phantom, beamlets, weights_mu, backend="cpu", beam=None,
               progress: Callable[[int, int], None] | None = None, region: str = "body",
               geometry: DoseGeometry | None = None, primary_window_nsigma: float | None = None,
               kernel: str = "column") -> FinalDose:
    """The exact dose (Gy, float32, grid.shape) of beamlet weights (MU, one per influence-matrix column).

    progress(done_voxels, total_voxels) is called after every chunk of voxels. geometry: a DoseGeometry of
    the same phantom, beamlets, backend and region to reuse (its depths are traced once).
    primary_window_nsigma: None (plans) = the exact dose. A number n = the primary summed only over the cells
    within n primary sigmas, unchecked: the expectation of the sampled influence matrix with window_nsigma = n
    (it drops the primary beyond its window); for measuring that cut only (FinalDose.exact is then False).
    """
    return final_doses(phantom, beamlets, [weights_mu], backend, beam, progress, region, geometry,
                       primary_window_nsigma, kernel)[0]


def final_doses(phantom, beamlets, weights_mu_list, backend="cpu", beam=None,
                progress: Callable[[int, int], None] | None = None, region: str = "body",
                geometry: DoseGeometry | None = None, primary_window_nsigma: float | None = None,
                kernel: str = "column") -> tuple[FinalDose, ...]:
    """final_dose of several weight vectors (the plans of a comparison) in one pass over the voxels.

    On the column kernel the points, depths, beam coordinates and Gaussian masses are computed once for all the
    weight vectors; only the multiply-adds with each fluence map repeat. Each dose is summed in the same order as
    its own final_dose (the maps' common box only adds exact zeros), and its truncation bound is checked on its own,
    so each equals its final_dose (a voxel recomputed with every primary cell for one map and not for the other
    can differ by the proven 2^-26 of its dose). Each FinalDose.time_s is the whole pass; n_in_pass says how many
    doses shared it. The per-voxel kernel (GPU, kernel "pair") runs the maps one after the other on the same
    depths."""
    from simsbrt.dose.engine import _drivers

    t_start = time.perf_counter()
    if len(weights_mu_list) == 0:
        raise SpecError("weights_mu", "needs at least one weight vector")
    if kernel not in KERNELS:
        raise SpecError("kernel", f"unknown final-dose kernel {kernel!r}; choose one of {', '.join(KERNELS)}")
    geo = geometry or DoseGeometry.build(phantom, beamlets, backend, beam, region)
    fluence, fl0, box, wmax = _stacked_maps(beamlets, weights_mu_list, geo)
    n_maps = fluence.shape[0]
    drv = _drivers(geo.backend)
    by_column = kernel == "column" and hasattr(drv, "fluence_column_dose")
    shared = geo.shared_u if by_column else None
    exact = primary_window_nsigma is None
    reach = REACH_NSIGMA if exact else float(primary_window_nsigma)
    outside = math.erfc(reach / math.sqrt(2.0))
    n = len(geo.voxels)
    values = np.empty((n_maps, n), dtype=np.float64)
    worst, n_recomputed = np.zeros(n_maps), np.zeros(n_maps, dtype=np.int64)
    for start in range(0, n, CHUNK_VOXELS):
        stop = min(start + CHUNK_VOXELS, n)
        points = geo.points(start, stop)
        depths = geo.depths(drv, start, points)
        args = (geo.cpf, geo.cpi, geo.pitch_mm, geo.params)
        if by_column:
            dose, bound = drv.fluence_column_dose(points, depths, geo.columns(start, stop), *args, fluence, fl0, box,
                                                  wmax, reach, outside, shared)
        else:
            pairs = [[drv.to_host(a) for a in drv.fluence_dose(points, depths, *args, fluence[j], fl0, box, wmax[j],
                                                               reach, outside)] for j in range(n_maps)]
            dose, bound = np.stack([d for d, _ in pairs]), np.stack([b for _, b in pairs])
        for j in range(n_maps):
            loose = np.flatnonzero(bound[j] > BOUND_REL * dose[j]) if exact else np.zeros(0, np.int64)
            if loose.size:  # the bound is not below float32 rounding there: sum every primary cell
                full, _ = drv.fluence_dose(np.ascontiguousarray(points[loose]), _rows(depths, loose), *args,
                                           fluence[j], fl0, box, wmax[j], 0.0, 0.0)
                dose[j, loose] = drv.to_host(full)
                bound[j, loose] = 0.0
                n_recomputed[j] += int(loose.size)
            kept = dose[j] > 0
            if np.any(kept):
                worst[j] = max(worst[j], float(np.max(bound[j, kept] / dose[j, kept])))
        values[:, start:stop] = dose
        if progress:
            progress(stop, n)
    elapsed = time.perf_counter() - t_start
    doses = []
    for j in range(n_maps):
        out = np.zeros(geo.grid.n_voxels, dtype=np.float32)
        out[geo.voxels] = values[j].astype(np.float32)
        doses.append(FinalDose(out.reshape(geo.grid.shape), exact, elapsed, geo.backend.name, geo.backend.device,
                               int(n), geo.region, float(worst[j]), int(n_recomputed[j]), n_maps))
    return tuple(doses)


def _stacked_maps(beamlets, weights_mu_list, geo: DoseGeometry):
    """The fluence maps of every weight vector, one row each, on the control-point layout of geo; their common box
    (the union of the maps' boxes per control point) and each map's largest weight per control point."""
    maps = [fluence_maps(beamlets, w, geo.cpi, geo.cell_to_col) for w in weights_mu_list]
    fluence = np.ascontiguousarray(np.stack([m[0] for m in maps]))
    from simsbrt.kernels.device.influence import CPI_NU, CPI_NV

    fl0 = maps[0][1]
    sizes = geo.cpi[:, CPI_NU] * geo.cpi[:, CPI_NV]
    wmax = np.array([[f[fl0[c]:fl0[c] + sizes[c]].max(initial=0.0) for c in range(len(fl0))] for f in fluence])
    boxes = np.stack([m[2] for m in maps])                     # (maps, control points, 4)
    filled = boxes[:, :, 0] < boxes[:, :, 1]
    box = np.zeros_like(boxes[0])
    for c in np.flatnonzero(filled.any(axis=0)):
        b = boxes[filled[:, c], c]
        box[c] = (b[:, 0].min(), b[:, 1].max(), b[:, 2].min(), b[:, 3].max())
    return fluence, fl0, box, wmax


def _rows(depths, index):
    """depths[index] on the depths' own array module (numpy or cupy)."""
    try:
        return depths[index]
    except TypeError:  # cupy needs a device index
        import cupy

        return depths[cupy.asarray(index)]
