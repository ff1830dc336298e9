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

The engine stores each copied control point's entries once: ``stored_matrix`` holds the entries of
the primary control points and leaves the copies' columns empty, and ``copies`` (CopiedControlPoints)
says how to repeat them. ``matrix`` (every column's entries, the delivered beamlets) is expanded from
the two on first use only; dose(), gradient() and the optimiser (which merges the copies away again,
simsbrt.optimize.columns) work on the stored matrix, so a plan never builds the expansion (for two
full arcs it is twice the stored entries). A matrix made by hand or read from a file has no copies
(``copies`` None, ``stored_matrix`` is ``matrix``).

device_matrix (optional): on a CUDA backend (and in the simulator) the engine keeps the stored matrix
on the device as well; the optimiser and the candidate doses use it there.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from simsbrt.grid import Grid


def primary_columns(cpi: np.ndarray, column_offsets: np.ndarray) -> np.ndarray:
    """int64 per column: the column of the primary control point (CPI_PRIMARY) whose entries it repeats (itself
    for a column of a primary control point)."""
    from simsbrt.kernels.device.influence import CPI_COL_SHIFT

    n_cp = len(column_offsets) - 1
    per_column_cp = np.repeat(np.arange(n_cp), np.diff(np.asarray(column_offsets)))
    return np.arange(int(column_offsets[-1]), dtype=np.int64) - np.asarray(cpi)[per_column_cp, CPI_COL_SHIFT]


@dataclass(frozen=True, eq=False)
class CopiedControlPoints:
    """The entries a stored influence matrix leaves out: control point cp with cpi[cp, CPI_PRIMARY] != cp repeats
    its primary's entries with columns shifted by cpi[cp, CPI_COL_SHIFT]. counts: entries per (row, control
    point) pair as stored (row-major, the copies at 0), which lays out the stored rows."""

    cpi: np.ndarray
    counts: np.ndarray
    primary_column: np.ndarray   # int64 per column: the column whose entries it repeats (itself if not a copy)
    n_entries: int               # non-zeros of the expanded matrix

    @classmethod
    def of(cls, cpi: np.ndarray, counts: np.ndarray, column_offsets: np.ndarray) -> "CopiedControlPoints":
        from simsbrt.kernels.device.influence import CPI_PRIMARY

        cpi = np.asarray(cpi)
        n_cp = cpi.shape[0]
        counts = np.asarray(counts, dtype=np.int64)
        primary_column = primary_columns(cpi, column_offsets)
        per_cp = counts.reshape(-1, n_cp).sum(axis=0)   # entries per control point as stored
        n_entries = int(per_cp[cpi[:, CPI_PRIMARY]].sum())
        return cls(cpi, counts, primary_column, n_entries)

    def expand(self, stored: sp.csr_matrix) -> sp.csr_matrix:
        """The matrix with every column's entries (kernels/sparse.expand_copies: pair order kept)."""
        from simsbrt.kernels.sparse import expand_copies

        offsets = np.zeros(len(self.counts), dtype=np.int64)
        np.cumsum(self.counts[:-1], out=offsets[1:])
        indptr, cols, vals = expand_copies(self.cpi, self.counts, offsets, stored.indices, stored.data)
        matrix = sp.csr_matrix((vals, cols, indptr), shape=stored.shape, copy=False)
        matrix.has_sorted_indices = False
        return matrix

    def fold(self, weights: np.ndarray) -> np.ndarray:
        """w' with w'[p] = the summed weight of every column that repeats column p: stored @ w' = matrix @ w."""
        return np.bincount(self.primary_column, weights=weights, minlength=len(self.primary_column))


@dataclass(frozen=True, eq=False)
class InfluenceMatrix:
    stored_matrix: sp.csr_matrix
    voxel_indices: np.ndarray
    grid: Grid
    backend: str
    device: str
    beamlets: object | None = None
    options: object | None = None
    timings_s: dict = field(default_factory=dict)
    column_map: np.ndarray | None = None
    device_matrix: object | None = None   # the engine's copy on its GPU (simsbrt.optimize.device.DeviceCSR)
    copies: CopiedControlPoints | None = None   # None: stored_matrix holds every column's entries
    _expanded: dict = field(default_factory=dict, repr=False)

    @property
    def matrix(self) -> sp.csr_matrix:
        """Every column's entries (expanded from the stored matrix on first use, then kept)."""
        return self.full_matrix(keep=True)

    def full_matrix(self, keep: bool = True) -> sp.csr_matrix:
        """Every column's entries; keep=False expands without keeping the expansion (e.g. to write a file
        without doubling what a long-lived matrix holds)."""
        if self.copies is None:
            return self.stored_matrix
        if "matrix" in self._expanded:
            return self._expanded["matrix"]
        full = self.copies.expand(self.stored_matrix)
        if keep:
            self._expanded["matrix"] = full
        return full

    @property
    def n_voxels(self) -> int:
        return int(self.stored_matrix.shape[0])

    @property
    def n_beamlets(self) -> int:
        return int(self.stored_matrix.shape[1])

    @property
    def nnz(self) -> int:
        """Non-zeros of the matrix with every column's entries."""
        return int(self.stored_matrix.nnz if self.copies is None else self.copies.n_entries)

    @property
    def nbytes(self) -> int:
        """Bytes held now: the stored matrix (and the expansion once built)."""
        held = [self.stored_matrix] + list(self._expanded.values())
        return int(sum(m.data.nbytes + m.indices.nbytes + m.indptr.nbytes for m in held) + self.voxel_indices.nbytes)

    def fold_weights(self, weights) -> np.ndarray:
        """Weights for the stored matrix: stored_matrix @ fold_weights(w) = matrix @ w (float64)."""
        w = np.asarray(weights, dtype=np.float64)
        return w if self.copies is None else self.copies.fold(w)

    def dose(self, weights) -> np.ndarray:
        """Dose (Gy) of every row voxel for beamlet weights (MU)."""
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != (self.n_beamlets,):
            raise ValueError(f"weights need shape ({self.n_beamlets},), got {w.shape}")
        return self.stored_matrix @ self.fold_weights(w)

    def gradient(self, voxel_gradient) -> np.ndarray:
        """D^T g: the gradient with respect to the weights of an objective with voxel gradient g."""
        g = np.asarray(voxel_gradient, dtype=np.float64)
        if g.shape != (self.n_voxels,):
            raise ValueError(f"voxel gradient needs shape ({self.n_voxels},), got {g.shape}")
        stored = self.stored_matrix.T @ g
        return stored if self.copies is None else stored[self.copies.primary_column]

    def dose_grid(self, weights) -> np.ndarray:
        """Dose on the full grid (zero outside the rows), shape grid.shape."""
        out = np.zeros(self.grid.n_voxels)
        out[self.voxel_indices] = self.dose(weights)
        return out.reshape(self.grid.shape)

    def row_of_voxel(self) -> dict:
        return {int(v): i for i, v in enumerate(self.voxel_indices)}
