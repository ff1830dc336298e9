"""Physical-geometry checks made before anything large is allocated.

* The isocentre lies within MAX_ISOCENTRE_TO_PTV_MM of the nearest PTV voxel centre (a treatment
  isocentre sits in or beside the target; further away is a mistyped coordinate).
* Every target voxel lies in front of the source at every control point, and the beamlet grid of a
  control point spans at most MAX_FIELD_MM on each side at the isocentre plane (a linac's largest
  field is 40 x 40 cm; an isocentre near the source plane would otherwise ask for gigabytes).
* Every source position lies outside the body (density below SOURCE_DENSITY_MAX at the source, or
  outside the grid): a source inside the patient is not a geometry any machine can deliver.
* The influence matrix's working arrays, and then the matrix itself (from the exact entry count),
  fit in the memory available (MemoryBudgetError otherwise, before the allocation).
"""
from __future__ import annotations

import os

import numpy as np

from simsbrt.errors import SpecError

MAX_ISOCENTRE_TO_PTV_MM = 50.0
MAX_FIELD_MM = 400.0
SOURCE_DENSITY_MAX = 0.05        # relative electron density: air is 0.001, lung 0.26
MEMORY_FRACTION = 0.8            # of the memory available now


def check_isocentre(iso_mm, grid, target_mask: np.ndarray) -> None:
    """SpecError unless the isocentre is within MAX_ISOCENTRE_TO_PTV_MM of a target voxel centre."""
    iso = np.asarray(iso_mm, dtype=np.float64)
    idx = np.argwhere(target_mask)
    if len(idx) == 0:
        raise SpecError("PTV", "mask is empty; cannot place the isocentre")
    points = grid.index_to_world_mm(idx)
    distance = float(np.sqrt(((points - iso) ** 2).sum(axis=1)).min())
    if not np.isfinite(distance) or distance > MAX_ISOCENTRE_TO_PTV_MM:
        raise SpecError("isocentre_mm", f"{[round(float(v), 1) for v in iso]} lies {distance:.4g} mm from the "
                                        f"nearest PTV voxel; it must be within {MAX_ISOCENTRE_TO_PTV_MM:g} mm "
                                        f"of the PTV (omit isocentre_mm to use the PTV centroid)")


def check_field_extent(cp, uv_mm: np.ndarray, reach_mm: np.ndarray, magnification: np.ndarray) -> None:
    """SpecError when target points are behind the source or the beamlet grid (the target's projection
    uv_mm grown by reach_mm) exceeds MAX_FIELD_MM at the isocentre plane."""
    if (not np.all(np.isfinite(magnification)) or np.any(magnification <= 0) or not np.all(np.isfinite(uv_mm))
            or not np.all(np.isfinite(reach_mm))):
        raise SpecError("isocentre_mm", f"part of the target lies at or behind the source plane at gantry "
                                        f"{cp.gantry_deg:g} deg")
    span_mm = (uv_mm + reach_mm[:, None]).max(axis=0) - (uv_mm - reach_mm[:, None]).min(axis=0)
    if np.any(span_mm > MAX_FIELD_MM):
        raise SpecError("isocentre_mm", f"the target's projection at gantry {cp.gantry_deg:g} deg needs a "
                                        f"{span_mm[0]:.4g} x {span_mm[1]:.4g} mm field at the isocentre plane "
                                        f"(at most {MAX_FIELD_MM:g} mm): the isocentre is too close to the "
                                        f"source or too far from the target")


def check_sources_outside_body(grid, density: np.ndarray, sources_mm) -> None:
    """SpecError when a source position lies in a voxel of tissue (inside the patient)."""
    spacing = np.asarray(grid.spacing_mm)
    for src in np.asarray(sources_mm, dtype=np.float64).reshape(-1, 3):
        idx = np.rint((src - np.asarray(grid.origin_mm)) / spacing)
        if np.all(idx >= 0) and np.all(idx < np.asarray(grid.shape)):
            i, j, k = (int(v) for v in idx)
            if density[i, j, k] > SOURCE_DENSITY_MAX:
                raise SpecError("isocentre_mm", f"a source position {[round(float(v), 1) for v in src]} mm lies "
                                                f"inside the patient (density {float(density[i, j, k]):.3g}); "
                                                f"every source must be outside the body")


def available_memory_bytes() -> int:
    """Memory available to a new allocation now (MemAvailable on Linux, else physical memory)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 2**62


def check_memory(n_bytes: float, what: str, hint: str) -> None:
    """SpecError when n_bytes exceed MEMORY_FRACTION of the memory available now."""
    budget = MEMORY_FRACTION * available_memory_bytes()
    if n_bytes > budget:
        raise SpecError("memory", f"{what} needs {n_bytes / 2**30:.1f} GiB, more than the "
                                  f"{budget / 2**30:.1f} GiB available; {hint}")


def check_influence_inputs(grid, density: np.ndarray, n_rows: int, beamlets) -> None:
    """Before the influence matrix is computed: sources outside the body, working arrays in memory."""
    sources = np.array([cp.source_mm for cp in beamlets.control_points])
    check_sources_outside_body(grid, density, sources)
    n_cp = beamlets.n_control_points
    # per (row, control point): an entry count and an offset (int64), per row and source: a depth (float64)
    check_memory(n_rows * n_cp * 16.0 + n_rows * len(sources) * 8.0, "the influence computation",
                 "use a coarser grid, fewer control points or smaller row margins")


def check_influence_entries(nnz: int) -> None:
    """After counting, before filling: the matrix's column indices and values (int32 + float32 each)."""
    check_memory(nnz * 8.0, f"an influence matrix of {nnz:,} entries",
                 "use a coarser grid, larger beamlets, fewer control points or smaller row margins")
