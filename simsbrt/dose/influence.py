"""The influence matrix D (n_voxels x n_beamlets): dose = D @ w, gradient = D.T @ g.

Stored as CSR with float32 values and int32 column indices and row pointers (8 bytes per
non-zero plus the row pointers). Rows are voxels of the grid (flat C-order indices in
``voxel_indices``); columns are beamlets (simsbrt.geometry.beamlets column order). Values are
Gy per MU (simsbrt.dose.machine: a beamlet weight of 1 is 1 MU through that beamlet).
Within one row the column indices are not sorted.

column_map (optional, int64 per column): the index of each column's distinct beamlet. Columns
with the same value are identical (the engine computes control points with identical geometry
and beamlets once and copies them, e.g. the cw and ccw full arcs at a shared gantry angle); the
representative of each set is its first column. None = every column distinct.

device_matrix (optional): on a CUDA backend (and in the simulator) the engine keeps the matrix on
the device, built without the copied columns (they are folded onto their representative when a
dose is computed there); the optimiser and the candidate doses use it, the host copy ``matrix``
serves the files and the CPU.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from simsbrt.grid import Grid


@dataclass(frozen=True, eq=False)
class InfluenceMatrix:
    matrix: sp.csr_matrix
    voxel_indices: np.ndarray
    grid: Grid
    backend: str
    device: str
    beamlets: object | None = None
    options: object | None = None
    timings_s: dict = field(default_factory=dict)
    column_map: np.ndarray | None = None
    device_matrix: object | None = None   # the engine's copy on its GPU (simsbrt.optimize.device.DeviceCSR)

    @property
    def n_voxels(self) -> int:
        return int(self.matrix.shape[0])

    @property
    def n_beamlets(self) -> int:
        return int(self.matrix.shape[1])

    @property
    def nnz(self) -> int:
        return int(self.matrix.nnz)

    @property
    def nbytes(self) -> int:
        m = self.matrix
        return int(m.data.nbytes + m.indices.nbytes + m.indptr.nbytes + self.voxel_indices.nbytes)

    def dose(self, weights) -> np.ndarray:
        """Dose (Gy) of every row voxel for beamlet weights (MU)."""
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != (self.n_beamlets,):
            raise ValueError(f"weights need shape ({self.n_beamlets},), got {w.shape}")
        return self.matrix @ w

    def gradient(self, voxel_gradient) -> np.ndarray:
        """D^T g: the gradient with respect to the weights of an objective with voxel gradient g."""
        g = np.asarray(voxel_gradient, dtype=np.float64)
        if g.shape != (self.n_voxels,):
            raise ValueError(f"voxel gradient needs shape ({self.n_voxels},), got {g.shape}")
        return self.matrix.T @ g

    def dose_grid(self, weights) -> np.ndarray:
        """Dose on the full grid (zero outside the rows), shape grid.shape."""
        out = np.zeros(self.grid.n_voxels)
        out[self.voxel_indices] = self.dose(weights)
        return out.reshape(self.grid.shape)

    def row_of_voxel(self) -> dict:
        return {int(v): i for i, v in enumerate(self.voxel_indices)}
