"""MLC apertures of an arc plan and their exact dose (kernels/device/aperture.py).

Delivery model (stated once; the RTPLAN export and its read-back use the same rule). Each arc's
control points are simsbrt's (the middles of its gantry sectors); control point c of an arc holds
one MLC aperture (leaf pairs x1 <= x2 along X_b, static jaws of the arc). Between consecutive control
points c and c + 1 the machine delivers a segment of segment_mu[c] MU while the gantry turns from
one angle to the next and the leaves move linearly between the two apertures. Dose model: the
control-point discretisation used for VMAT dose calculation, in which each control point's static
aperture at its gantry angle receives half of the MU of each adjacent segment:

    mu_cp[c] = (segment_mu[c - 1] + segment_mu[c]) / 2     (segment_mu[-1] = segment_mu[n - 1] = 0)

so an arc of n control points has n - 1 segments, and the plan's dose is sum_c mu_cp[c] D_c with
D_c the exact dose per MU of aperture c (kernels/device/aperture.py; no sampling, no cut-off),
including the MLC transmission of the closed leaves inside the jaws (the machine's transmission_frac).

The plan's final dose (ApertureDoseEngine.dose_on) is computed on the voxels of a
simsbrt.dose.final.DoseGeometry, the same voxels as a fluence plan's final dose, and reuses its
radiological depths (traced once per phantom and source set) when every aperture source is one of its
sources.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from simsbrt.delivery.machine import MachineModel
from simsbrt.dose.machine import BeamModel, load_beam_model
from simsbrt.errors import SpecError
from simsbrt.geometry.arcs import ControlPoint
from simsbrt.kernels.device.aperture import AP_COLUMNS, AP_SC, AP_SC_JAWS, AP_T

DEPTH_CHUNK_POINTS = 65536


@dataclass(frozen=True, eq=False)
class Apertures:
    """One MLC aperture per control point (control points in delivery order, arcs one after another).

    leaves_mm: (n_cp, n_pairs, 2) leaf tips (x1, x2) at the isocentre plane along X_b;
    jaws_mm: (n_cp, 4) (x1, x2, y1, y2); arc_of_cp: (n_cp,) arc index of each control point.
    """

    machine: MachineModel
    control_points: tuple[ControlPoint, ...]
    arc_of_cp: np.ndarray
    leaves_mm: np.ndarray
    jaws_mm: np.ndarray

    def __post_init__(self):
        n = len(self.control_points)
        if self.leaves_mm.shape != (n, self.machine.n_leaf_pairs, 2) or self.jaws_mm.shape != (n, 4):
            raise SpecError("apertures", f"leaves {self.leaves_mm.shape} / jaws {self.jaws_mm.shape} do not match "
                                         f"{n} control points of a {self.machine.n_leaf_pairs}-pair MLC")

    @property
    def n_control_points(self) -> int:
        return len(self.control_points)

    def arc_slices(self) -> list[slice]:
        """The control points of each arc (consecutive in delivery order)."""
        out, start = [], 0
        arcs = np.asarray(self.arc_of_cp)
        for c in range(1, len(arcs) + 1):
            if c == len(arcs) or arcs[c] != arcs[start]:
                out.append(slice(start, c))
                start = c
        return out

    def jaw_area_mm2(self) -> np.ndarray:
        """Area of each control point's jaw rectangle under the leaf bank (iso plane, mm^2)."""
        b = self.machine.leaf_boundaries_mm
        j = self.jaws_mm
        height = np.clip(np.minimum(j[:, 3], b[-1]) - np.maximum(j[:, 2], b[0]), 0.0, None)
        return height * np.clip(j[:, 1] - j[:, 0], 0.0, None)

    def open_area_mm2(self) -> np.ndarray:
        """Open area of each control point's aperture inside its jaws (iso plane, mm^2)."""
        b = self.machine.leaf_boundaries_mm
        j = self.jaws_mm
        height = np.clip(np.minimum(b[None, 1:], j[:, 3:4]) - np.maximum(b[None, :-1], j[:, 2:3]), 0.0, None)
        width = np.clip(np.minimum(self.leaves_mm[:, :, 1], j[:, 1:2]) - np.maximum(self.leaves_mm[:, :, 0], j[:, 0:1]),
                        0.0, None)
        return (height * width).sum(axis=1)


def segment_matrix(arc_of_cp: np.ndarray) -> np.ndarray:
    """T (n_cp x n_segments): mu_cp = T @ segment_mu, half of each segment to each of its two control points."""
    arcs = np.asarray(arc_of_cp)
    starts = [c for c in range(len(arcs) - 1) if arcs[c + 1] == arcs[c]]
    t = np.zeros((len(arcs), len(starts)))
    for s, c in enumerate(starts):
        t[c, s] = t[c + 1, s] = 0.5
    return t


def cp_mu(segment_mu, arc_of_cp) -> np.ndarray:
    """MU of every control point's static aperture from the segment MU (module doc)."""
    return segment_matrix(arc_of_cp) @ np.asarray(segment_mu, dtype=np.float64)


class ApertureDoseEngine:
    """Exact dose of the apertures on voxels of a phantom grid (drivers: kernels/cpu_aperture.py on the CPU,
    kernels/cuda_aperture.py on CUDA or the simulator)."""

    def __init__(self, grid, density, apertures: Apertures, beam: BeamModel | None = None, backend="cpu",
                 transmission: float | None = None):
        """transmission: the MLC transmission fraction (default: the machine's mlc.transmission_frac)."""
        from simsbrt.backend import resolve_backend

        self.backend = resolve_backend(backend)
        self.grid = grid
        self.density = np.ascontiguousarray(np.asarray(density, dtype=np.float32).ravel())
        self.apertures = apertures
        self.beam = beam or load_beam_model()
        self.transmission = float(apertures.machine.transmission_frac if transmission is None else transmission)
        if not 0.0 <= self.transmission < 1.0:
            raise SpecError("transmission", f"must be within [0, 1), got {self.transmission}")
        if abs(self.beam.sad_mm - apertures.control_points[0].sad_mm) > 1e-9:
            raise SpecError("beam.sad_mm", "the beam model's SAD differs from the control points'")
        self.params = self.beam.as_array()
        self.cpf, self.cp_geom, self.sources = self._tables()
        self.boundaries = np.ascontiguousarray(apertures.machine.leaf_boundaries_mm, dtype=np.float64)
        self.leaves = np.ascontiguousarray(apertures.leaves_mm, dtype=np.float64)
        self.jaws = np.ascontiguousarray(apertures.jaws_mm, dtype=np.float64)

    def _tables(self):
        aps = self.apertures
        area, jaw_area = aps.open_area_mm2(), aps.jaw_area_mm2()
        cpf = np.zeros((aps.n_control_points, AP_COLUMNS))
        geom, sources, cp_geom = {}, [], np.zeros(aps.n_control_points, dtype=np.int64)
        for c, cp in enumerate(aps.control_points):
            xb, yb, zb = cp.beam_axes()
            src = cp.source_mm
            cpf[c, 0:3], cpf[c, 3:6], cpf[c, 6:9], cpf[c, 9:12] = src, xb, yb, zb
            cpf[c, 12:15] = cp.isocentre_mm
            cpf[c, AP_SC] = self.beam.head_scatter_factor(math.sqrt(area[c]))
            cpf[c, AP_T] = self.transmission
            cpf[c, AP_SC_JAWS] = self.beam.head_scatter_factor(math.sqrt(jaw_area[c]))
            key = tuple(np.round(src, 6))
            if key not in geom:
                geom[key] = len(sources)
                sources.append(src)
            cp_geom[c] = geom[key]
        return cpf, cp_geom, np.array(sources, dtype=np.float64).reshape(-1, 3)

    def _drivers(self):
        """(ray tracing drivers, aperture drivers) of the backend: numba CPU, or CUDA / the simulator."""
        if self.backend.name in ("cuda", "cudasim"):
            from simsbrt.kernels import cuda, cuda_aperture

            return cuda, cuda_aperture
        from simsbrt.kernels import cpu, cpu_aperture

        return cpu, cpu_aperture

    def _chunks(self, flat_indices):
        cpu = self._drivers()[0]

        flat_indices = np.asarray(flat_indices, dtype=np.int64)
        origin = np.asarray(self.grid.origin_mm, dtype=np.float64)
        spacing = np.asarray(self.grid.spacing_mm, dtype=np.float64)
        shape = np.asarray(self.grid.shape, dtype=np.int64)
        for start in range(0, len(flat_indices), DEPTH_CHUNK_POINTS):
            idx = flat_indices[start:start + DEPTH_CHUNK_POINTS]
            points = np.ascontiguousarray(
                self.grid.index_to_world_mm(np.stack(np.unravel_index(idx, self.grid.shape), axis=1)),
                dtype=np.float64).reshape(-1, 3)
            depths = cpu.radiological_depths(points, self.sources, origin, spacing, shape, self.density)
            yield start, points, depths

    def _run(self, name, points, depths, *extra, cp_geom=None):
        tracing, drivers = self._drivers()
        cp_geom = self.cp_geom if cp_geom is None else cp_geom
        out = getattr(drivers, name)(points, depths, cp_geom, self.cpf, self.boundaries, self.leaves, self.jaws,
                                     self.params, *extra)
        return tracing.to_host(out)

    def columns(self, flat_indices) -> np.ndarray:
        """Dose per MU (float32, n x n_cp) of every aperture at the given voxels (flat grid indices)."""
        out = np.empty((len(flat_indices), self.apertures.n_control_points), dtype=np.float32)
        for start, points, depths in self._chunks(flat_indices):
            out[start:start + len(points)] = self._run("aperture_columns", points, depths)
        return out

    def _checked_mu(self, mu_per_cp) -> np.ndarray:
        mu = np.ascontiguousarray(mu_per_cp, dtype=np.float64)
        if mu.shape != (self.apertures.n_control_points,) or not np.all(np.isfinite(mu)) or mu.min() < 0:
            raise SpecError("mu_per_cp", f"needs {self.apertures.n_control_points} finite MU >= 0")
        return mu

    def dose(self, flat_indices, mu_per_cp) -> np.ndarray:
        """Dose (Gy, float64) at the given voxels of the apertures delivering mu_per_cp MU each."""
        mu = self._checked_mu(mu_per_cp)
        out = np.empty(len(flat_indices))
        for start, points, depths in self._chunks(flat_indices):
            out[start:start + len(points)] = self._run("aperture_dose", points, depths, mu)
        return out

    def dose_grid(self, mu_per_cp, flat_indices=None) -> np.ndarray:
        """Dose (Gy, float32, grid.shape) on every voxel of the grid (or only on flat_indices, zero elsewhere)."""
        idx = np.arange(self.grid.n_voxels, dtype=np.int64) if flat_indices is None else np.asarray(flat_indices)
        out = np.zeros(self.grid.n_voxels, dtype=np.float32)
        out[idx] = self.dose(idx, mu_per_cp)
        return out.reshape(self.grid.shape)

    def _source_map(self, geometry) -> np.ndarray | None:
        """Index of each aperture source among the geometry's sources (None if the phantom or a source differs)."""
        if geometry.grid != self.grid or not np.array_equal(geometry.density_flat, self.density):
            return None
        out = np.empty(len(self.sources), dtype=np.int64)
        for g, src in enumerate(self.sources):
            hit = np.flatnonzero(np.all(np.abs(geometry.sources - src) <= 1e-6, axis=1))
            if hit.size == 0:
                return None
            out[g] = hit[0]
        return out

    def dose_on(self, geometry, mu_per_cp, progress=None) -> tuple[np.ndarray, bool]:
        """Dose (Gy, float64) at geometry.voxels (a simsbrt.dose.final.DoseGeometry of the same phantom) and
        whether the geometry's radiological depths were used (cached there, shared with the fluence plan's final
        dose); if a source differs the depths are traced here. progress(done, total) after every chunk."""
        from simsbrt.dose.engine import _drivers
        from simsbrt.dose.final import CHUNK_VOXELS

        mu = self._checked_mu(mu_per_cp)
        source_map = self._source_map(geometry)
        if source_map is None:
            return self.dose(geometry.voxels, mu), False
        depth_drivers = _drivers(geometry.backend)
        tracing = self._drivers()[0]
        cp_geom = np.ascontiguousarray(source_map[self.cp_geom])
        n = len(geometry.voxels)
        out = np.empty(n)
        for start in range(0, n, CHUNK_VOXELS):
            stop = min(start + CHUNK_VOXELS, n)
            points = geometry.points(start, stop)
            depths = geometry.depths(depth_drivers, start, points)
            if tracing is not depth_drivers:         # e.g. depths on a GPU, apertures on the CPU
                depths = np.ascontiguousarray(depth_drivers.to_host(depths))
            out[start:stop] = self._run("aperture_dose", points, depths, mu, cp_geom=cp_geom)
            if progress:
                progress(stop, n)
        return out, True
