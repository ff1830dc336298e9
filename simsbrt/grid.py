"""The voxel grid: shape, spacing and origin in mm, and the index <-> world mapping.

Axes follow the DICOM patient coordinate system (LPS):
  x: right -> left (+x is the patient's left),
  y: anterior -> posterior (+y is posterior),
  z: inferior -> superior (+z is superior, towards the head).
Arrays are indexed [i, j, k] along (x, y, z). ``origin_mm`` is the centre of voxel (0, 0, 0).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simsbrt.errors import SpecError

MIN_SPACING_MM = 1.0
MAX_SPACING_MM = 3.0


@dataclass(frozen=True)
class Grid:
    shape: tuple[int, int, int]
    spacing_mm: tuple[float, float, float]
    origin_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def __post_init__(self):
        shape = tuple(int(n) for n in self.shape)
        spacing = tuple(float(s) for s in self.spacing_mm)
        origin = tuple(float(o) for o in self.origin_mm)
        if len(shape) != 3 or any(n < 1 for n in shape):
            raise SpecError("grid.shape", f"needs three positive voxel counts, got {self.shape}")
        if len(spacing) != 3 or any(not np.isfinite(s) or s <= 0 for s in spacing):
            raise SpecError("grid.spacing_mm", f"needs three positive spacings in mm, got {self.spacing_mm}")
        if len(origin) != 3 or any(not np.isfinite(o) for o in origin):
            raise SpecError("grid.origin_mm", f"needs three finite coordinates in mm, got {self.origin_mm}")
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "spacing_mm", spacing)
        object.__setattr__(self, "origin_mm", origin)

    @classmethod
    def covering(cls, lower_mm, upper_mm, spacing_mm) -> "Grid":
        """The smallest grid whose voxel centres span the box [lower_mm, upper_mm]."""
        lower = np.asarray(lower_mm, dtype=float)
        upper = np.asarray(upper_mm, dtype=float)
        spacing = np.broadcast_to(np.asarray(spacing_mm, dtype=float), (3,))
        shape = np.ceil((upper - lower) / spacing).astype(int) + 1
        return cls(tuple(shape), tuple(spacing), tuple(lower))

    @property
    def n_voxels(self) -> int:
        return int(np.prod(self.shape))

    @property
    def voxel_volume_cc(self) -> float:
        return float(np.prod(self.spacing_mm)) / 1000.0

    def index_to_world_mm(self, index) -> np.ndarray:
        """World coordinates (mm) of (fractional) voxel indices, shape (..., 3)."""
        return np.asarray(self.origin_mm) + np.asarray(index, dtype=float) * np.asarray(self.spacing_mm)

    def world_to_index(self, point_mm) -> np.ndarray:
        """Fractional voxel indices of world points (mm), shape (..., 3)."""
        return (np.asarray(point_mm, dtype=float) - np.asarray(self.origin_mm)) / np.asarray(self.spacing_mm)

    def axis_mm(self, axis: int) -> np.ndarray:
        """Voxel-centre coordinates (mm) along one axis."""
        return self.origin_mm[axis] + self.spacing_mm[axis] * np.arange(self.shape[axis])

    def world_coordinates_mm(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Open (broadcastable) coordinate arrays X, Y, Z of the voxel centres in mm."""
        return tuple(np.ix_(self.axis_mm(0), self.axis_mm(1), self.axis_mm(2)))  # type: ignore[return-value]

    def contains_index(self, index) -> bool:
        idx = np.asarray(index)
        return bool(np.all(idx >= 0) and np.all(idx <= np.asarray(self.shape) - 1))

    def column_runs(self, flat_indices) -> np.ndarray:
        """Boundaries (int64, into flat_indices) of its runs of consecutive voxels in one grid column (same x and y
        index; z varies fastest in the flat index): run r is flat_indices[runs[r]:runs[r + 1]]. Sorted indices
        make one run per column; any order gives valid (shorter) runs."""
        column = np.asarray(flat_indices, dtype=np.int64) // self.shape[2]
        return np.concatenate(([0], np.flatnonzero(np.diff(column)) + 1, [len(column)])).astype(np.int64)
