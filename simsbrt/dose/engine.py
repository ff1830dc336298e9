"""Pencil-beam dose engine: (grid, density, rows, beamlets, beam model) -> InfluenceMatrix.

Stages (each timed): radiological depth of every row voxel from every distinct source position
(exact Siddon ray tracing, kernels/device/raytrace.py; on the CPU walked by grid column, the same
numbers); counting the entries of every (voxel, control point) pair; filling them into
preallocated CSR arrays (both passes run the same device routine, kernels/device/influence.py);
assembling the scipy matrix. A control point
copied from another (the cw and ccw arcs at a shared angle) is stored once (InfluenceMatrix.copies).

Head scatter: each control point's beamlets get Sc of the open aperture of that control point
(the beamlets covering the target projection plus margin: equivalent square = sqrt(open area)).
An optimiser that closes beamlets changes the true Sc slightly; this approximation is documented
in the report and is of the order of Sc(s) - Sc(s') for the field-size change.

Lateral extent: exact mode (tail_threshold_frac = 0) evaluates every beamlet for every voxel (no
cut-off). Sampled mode (default) evaluates a window of 4 primary sigmas exactly and samples what
lies beyond without bias (see kernels/device/influence.py); tests/test_dose_cutoff.py measures the
sampling error and the 4-sigma primary cut on the sampled rows against the exact dose
(simsbrt.dose.final, which every plan reports).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from simsbrt.backend import Backend, resolve_backend
from simsbrt.dose.influence import CopiedControlPoints, InfluenceMatrix, primary_columns
from simsbrt.dose.machine import BeamModel, load_beam_model
from simsbrt.errors import SpecError
from simsbrt.geometry.beamlets import BeamletSet
from simsbrt.geometry.checks import check_influence_entries, check_influence_inputs
from simsbrt.grid import Grid
from simsbrt.kernels.device.influence import CPI_COL_SHIFT, CPI_GEOM, CPI_PRIMARY, MAX_DRAWS_PER_COMPONENT, N_CPI

log = logging.getLogger(__name__)

MAX_NNZ = 2**31 - 1
FULL_ROW_STRUCTURES = ("SpinalCord", "SpinalCord_PRV02", "ThecalSac", "SpinalCanal")
# rows never sampled (no lateral cut-off of any kind): the dose-limiting neural structures
EXACT_ROW_STRUCTURES = ("SpinalCord", "SpinalCord_PRV02", "ThecalSac")


@dataclass(frozen=True)
class InfluenceOptions:
    """How the influence matrix is computed.

    tail_threshold_frac: entries below this fraction of a beamlet's peak dose (at dmax in water,
        SSD 100) are sampled without bias (Russian roulette / draws); 0 = exact, no sampling.
    window_nsigma: half-width of the exactly evaluated window, in primary sigmas.
    max_tail_draws: at most this many beamlets are drawn per scatter component for one voxel and
        control point (each then carries total / draws; fewer draws = sparser but noisier tail).
    seed: the random stream of the sampling (results are deterministic for a fixed seed).
    """

    tail_threshold_frac: float = 0.01
    window_nsigma: float = 4.0
    max_tail_draws: int = 4
    seed: int = 0

    def __post_init__(self):
        if not 0.0 <= self.tail_threshold_frac <= 0.5:
            raise SpecError("tail_threshold_frac", f"must be within 0..0.5, got {self.tail_threshold_frac}")
        if not 2.0 <= self.window_nsigma <= 10.0:
            raise SpecError("window_nsigma", f"must be within 2..10, got {self.window_nsigma}")
        if not 1 <= int(self.max_tail_draws) <= MAX_DRAWS_PER_COMPONENT:
            raise SpecError("max_tail_draws", f"must be within 1..{MAX_DRAWS_PER_COMPONENT}, got {self.max_tail_draws}")
        if not 0 <= int(self.seed) < 2**32:
            raise SpecError("seed", f"must be within 0..2**32-1, got {self.seed}")

    @property
    def exact(self) -> bool:
        return self.tail_threshold_frac == 0.0


EXACT = InfluenceOptions(tail_threshold_frac=0.0)


def select_rows(grid: Grid, structures: dict, target: str = "PTV", body: str = "Body",
                body_margin_mm: float = 20.0, structure_margin_mm: float = 60.0,
                full_structures=FULL_ROW_STRUCTURES) -> np.ndarray:
    """Flat indices of the voxels that matter (sorted).

    The target; every other structure within structure_margin_mm of the target; the structures in
    full_structures (cord, PRV, thecal sac, canal) whole; the body within body_margin_mm.
    """
    from scipy.ndimage import distance_transform_edt

    if target not in structures:
        raise SpecError(target, "structure missing: the rows are chosen around it")
    tmask = np.asarray(structures[target], bool)
    dist = distance_transform_edt(~tmask, sampling=grid.spacing_mm)
    keep = tmask.copy()
    for name, mask in structures.items():
        m = np.asarray(mask, bool)
        if m.shape != grid.shape:
            raise SpecError(name, f"mask shape {m.shape} differs from the grid {grid.shape}")
        if name == body:
            keep |= m & (dist <= body_margin_mm)
        elif name in full_structures:
            keep |= m
        else:
            keep |= m & (dist <= structure_margin_mm)
    return np.flatnonzero(keep.ravel()).astype(np.int64)


def exact_row_mask(rows: np.ndarray, structures: dict, names=EXACT_ROW_STRUCTURES) -> np.ndarray:
    """Which rows lie in the structures that get exact (never sampled) rows."""
    keep = np.zeros(len(rows), dtype=bool)
    for name in names:
        if name in structures:
            keep |= np.asarray(structures[name], bool).ravel()[rows]
    return keep


def beamlet_reference_peak_gy(beam: BeamModel, size_mm: float) -> float:
    """Peak dose (Gy/MU) of one beamlet on its axis in water at SSD 100 (used to scale the threshold)."""
    from simsbrt.kernels import cpu

    depth = np.arange(2.0, 40.0, 0.5)
    h = 0.5 * size_mm
    return float(cpu.water_field_dose(beam.as_array(), np.zeros_like(depth), depth, 1000.0, -h, h, -h, h,
                                      beam.head_scatter_factor(100.0)).max())


def _control_point_tables(beamlets: BeamletSet, beam: BeamModel):
    """Kernel tables; control points with identical geometry and beamlets (the cw and ccw full arcs
    share their angles) are computed once and copied with shifted columns (CPI_PRIMARY)."""
    cpi6, cell_to_col = beamlets.kernel_tables()
    n_cp = beamlets.n_control_points
    cpi = np.zeros((n_cp, N_CPI), dtype=np.int64)
    cpi[:, :6] = cpi6
    cpf = np.zeros((n_cp, 16))
    col_base = beamlets.column_offsets
    sources, geom_of, primary_of = [], {}, {}
    for c, cp in enumerate(beamlets.control_points):
        xb, yb, zb = cp.beam_axes()
        src = cp.source_mm
        cpf[c, 0:3] = src
        cpf[c, 3:6] = xb
        cpf[c, 6:9] = yb
        cpf[c, 9:12] = zb
        cpf[c, 12:15] = cp.isocentre_mm
        cpf[c, 15] = beam.head_scatter_factor(beamlets.equivalent_square_mm(c))
        key = tuple(np.round(src, 6))
        if key not in geom_of:
            geom_of[key] = len(sources)
            sources.append(src)
        cpi[c, CPI_GEOM] = geom_of[key]
        g = beamlets.grids[c]
        alias_key = (tuple(np.round(cpf[c, :16], 9)), g.k0, g.l0, g.active.shape, g.active.tobytes())
        primary = primary_of.setdefault(alias_key, c)
        cpi[c, CPI_PRIMARY] = primary
        cpi[c, CPI_COL_SHIFT] = col_base[c] - col_base[primary]
    if abs(beam.sad_mm - beamlets.control_points[0].sad_mm) > 1e-9:
        raise SpecError("beam.sad_mm", "the beam model's SAD differs from the control points'")
    return cpf, cpi, cell_to_col, np.array(sources, dtype=np.float64).reshape(-1, 3)


def _drivers(backend: Backend):
    if backend.name == "cpu":
        from simsbrt.kernels import cpu

        return cpu
    from simsbrt.kernels import cuda

    return cuda


def compute_influence(grid: Grid, density: np.ndarray, rows: np.ndarray, beamlets: BeamletSet,
                      beam: BeamModel | None = None, options: InfluenceOptions = InfluenceOptions(),
                      backend: str | Backend | None = "cpu", exact_rows: np.ndarray | None = None,
                      depths: np.ndarray | None = None) -> InfluenceMatrix:
    """Influence matrix of the given row voxels (flat indices) and beamlets.

    exact_rows (bool per row, optional): rows computed without sampling whatever the options
    (simsbrt.dose.engine.exact_row_mask gives the cord, its PRV and the thecal sac).
    depths (optional, CPU): the rows' radiological depths already traced (float32, rows x distinct sources in the
    order of _control_point_tables: simsbrt.dose.final.DoseGeometry.voxel_depths), instead of tracing them here.
    """
    t_start = time.perf_counter()
    backend = resolve_backend(backend)
    beam = beam or load_beam_model()
    density = np.asarray(density, dtype=np.float32)
    if density.shape != grid.shape:
        raise SpecError("density", f"shape {density.shape} differs from the grid {grid.shape}")
    if not np.all(np.isfinite(density)) or density.min() < 0:
        raise SpecError("density", "relative electron densities must be finite and non-negative")
    rows = np.asarray(rows, dtype=np.int64)
    if rows.ndim != 1 or (len(rows) and (rows.min() < 0 or rows.max() >= grid.n_voxels)):
        raise SpecError("rows", "must be flat voxel indices inside the grid")
    if beamlets.n_beamlets == 0:
        raise SpecError("beamlets", "no beamlets")
    if beamlets.n_beamlets >= 2**31:
        raise SpecError("beamlets", "too many beamlets for int32 column indices")

    check_influence_inputs(grid, density, len(rows), beamlets)
    points = grid.index_to_world_mm(np.stack(np.unravel_index(rows, grid.shape), axis=1)).astype(np.float64)
    points = np.ascontiguousarray(points.reshape(-1, 3))
    cpf, cpi, cell_to_col, sources = _control_point_tables(beamlets, beam)
    params = beam.as_array()
    tau = options.tail_threshold_frac * beamlet_reference_peak_gy(beam, beamlets.size_mm) if not options.exact else 0.0
    row_tau = np.full(len(rows), tau, dtype=np.float64)
    if exact_rows is not None:
        exact_rows = np.asarray(exact_rows, bool)
        if exact_rows.shape != rows.shape:
            raise SpecError("exact_rows", "needs one flag per row")
        row_tau[exact_rows] = 0.0
    origin = np.asarray(grid.origin_mm, dtype=np.float64)
    spacing = np.asarray(grid.spacing_mm, dtype=np.float64)
    shape = np.asarray(grid.shape, dtype=np.int64)
    drv = _drivers(backend)
    timings = {}
    if backend.name == "cuda":  # paid once per process when the backend was resolved (kernel cache on disk)
        from simsbrt.backend import cuda_self_test

        timings["compile_s"] = cuda_self_test(backend.device).seconds

    t0 = time.perf_counter()
    if depths is not None:
        depths = np.asarray(depths)
        if backend.name != "cpu" or depths.shape != (len(rows), len(sources)) or depths.dtype != np.float32:
            raise SpecError("depths", f"needs float32 depths of shape ({len(rows)}, {len(sources)}) on the CPU, "
                                      f"got {depths.dtype} {depths.shape} ({backend.name})")
    elif hasattr(drv, "column_radiological_depths"):   # the same numbers, the x / y crossings walked once per column
        depths = drv.column_radiological_depths(points, grid.column_runs(rows), sources, origin, spacing, shape,
                                                density.ravel())
    else:
        depths = drv.radiological_depths(points, sources, origin, spacing, shape, density.ravel())
    timings["depth_s"] = time.perf_counter() - t0

    # the copied control points are not built (InfluenceMatrix.copies repeats them when the expanded matrix is
    # asked for; the optimiser merges them away)
    aliases = bool(np.any(cpi[:, CPI_PRIMARY] != np.arange(len(cpi))))
    t0 = time.perf_counter()
    counts = drv.count_entries(points, depths, cpf, cpi, cell_to_col, beamlets.size_mm, params, row_tau,
                               options.window_nsigma, int(options.max_tail_draws), int(options.seed), copies=False)
    offsets, nnz = drv.exclusive_offsets(counts)
    if nnz > MAX_NNZ:
        raise SpecError("rows", f"{nnz} non-zeros exceed int32 indexing; use fewer rows or a coarser grid")
    check_influence_entries(nnz)
    timings["count_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    cols, vals = drv.fill_entries(points, depths, cpf, cpi, cell_to_col, beamlets.size_mm, params, row_tau,
                                  options.window_nsigma, int(options.max_tail_draws), int(options.seed), counts,
                                  offsets, nnz, copies=False)
    timings["fill_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    n_cp = beamlets.n_control_points
    shape = (len(rows), beamlets.n_beamlets)
    device_matrix = _device_csr(drv, offsets, cols, vals, nnz, n_cp, shape) if backend.name != "cpu" else None
    host_offsets = drv.to_host(offsets)
    indptr = np.empty(len(rows) + 1, dtype=np.int32)
    indptr[:-1] = host_offsets[::n_cp]
    indptr[-1] = nnz
    matrix = sp.csr_matrix((drv.to_host(vals), drv.to_host(cols), indptr), shape=shape, copy=False)
    copies = CopiedControlPoints.of(cpi, drv.to_host(counts), beamlets.column_offsets) if aliases else None
    matrix.has_sorted_indices = False
    timings["assemble_s"] = time.perf_counter() - t0
    timings["total_s"] = time.perf_counter() - t_start
    log.info("influence: %d rows x %d beamlets, %d non-zeros (%s)", len(rows), beamlets.n_beamlets, nnz, backend.name)
    return InfluenceMatrix(matrix, rows, grid, backend.name, backend.device, beamlets, options, timings,
                           column_map_of(cpi, beamlets.column_offsets), device_matrix, copies)


def _device_csr(drv, offsets, cols, vals, nnz: int, n_cp: int, shape):
    """The device copy (simsbrt.optimize.device.DeviceCSR): row pointers from the pair offsets, no copy of
    the entries; the copied control points' columns are empty."""
    from simsbrt.optimize.device import DeviceCSR

    xp = drv._xp()
    indptr = xp.empty(shape[0] + 1, dtype=xp.int32)
    indptr[:-1] = offsets[::n_cp]
    indptr[-1] = nnz
    return DeviceCSR(indptr, cols, vals, shape, copies_empty=True)


def column_map_of(cpi: np.ndarray, column_offsets: np.ndarray) -> np.ndarray:
    """Distinct-beamlet index of every column: a control point copied from a primary one (CPI_PRIMARY,
    same entries with columns shifted by CPI_COL_SHIFT) maps its columns onto the primary's."""
    n_cp = len(column_offsets) - 1
    per_column_cp = np.repeat(np.arange(n_cp), np.diff(column_offsets))
    primary_column = primary_columns(cpi, column_offsets)
    is_representative = cpi[per_column_cp, CPI_PRIMARY] == per_column_cp
    rank = np.cumsum(is_representative) - 1
    return rank[primary_column].astype(np.int64)
