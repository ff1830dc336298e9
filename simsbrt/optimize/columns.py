"""Delivered beamlets vs distinct beamlets: the optimiser works on the distinct ones.

Two coplanar full arcs (cw and ccw) have identical beamlets at every shared gantry angle, so the
influence matrix D has identical columns (InfluenceMatrix.column_map). With M the (delivered x
distinct) 0/1 matrix of the map, D = D_d M^T, and the dose of delivered weights w is
D w = D_d (M^T w): it depends only on the summed weight of each distinct beamlet. The optimiser
works on x = M^T w (half the non-zeros for two arcs) and each distinct weight is delivered in
equal parts by its copies, w_c = x_{map(c)} / multiplicity(map(c)), which gives exactly the dose
D_d x. The equal split is one choice among many with the same dose; it keeps the two arcs'
fluence identical (same MU per arc, same modulation). The map is general: any number of arcs or
repeated control points, and the identity when no column is repeated.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from simsbrt.errors import SpecError


@dataclass(frozen=True, eq=False)
class ColumnMap:
    """distinct_of[c]: the distinct beamlet of delivered column c (values 0..n_distinct-1, each used)."""

    distinct_of: np.ndarray

    def __post_init__(self):
        m = np.asarray(self.distinct_of, dtype=np.int64).ravel()
        if m.size == 0:
            raise SpecError("column_map", "no columns")
        counts = np.bincount(m, minlength=int(m.max()) + 1) if m.min() >= 0 else None
        if counts is None or np.any(counts == 0):
            raise SpecError("column_map", "distinct indices must be 0..n-1, each used by at least one column")
        object.__setattr__(self, "distinct_of", m)
        object.__setattr__(self, "_multiplicity", counts.astype(np.float64))
        object.__setattr__(self, "_representative", np.unique(m, return_index=True)[1].astype(np.int64))

    @classmethod
    def identity(cls, n_columns: int) -> "ColumnMap":
        return cls(np.arange(int(n_columns), dtype=np.int64))

    @classmethod
    def of(cls, influence) -> "ColumnMap":
        """The influence matrix's own map (identity when it has none)."""
        m = getattr(influence, "column_map", None)
        if m is None:
            return cls.identity(influence.n_beamlets)
        if len(m) != influence.n_beamlets:
            raise SpecError("influence.column_map", f"has {len(m)} entries for {influence.n_beamlets} columns")
        return cls(m)

    @property
    def n_delivered(self) -> int:
        return int(self.distinct_of.size)

    @property
    def n_distinct(self) -> int:
        return int(self._multiplicity.size)

    @property
    def multiplicity(self) -> np.ndarray:
        return self._multiplicity

    @property
    def representatives(self) -> np.ndarray:
        """The first delivered column of every distinct beamlet."""
        return self._representative

    @property
    def is_identity(self) -> bool:
        return self.n_distinct == self.n_delivered

    def to_distinct(self, weights, xp=np):
        """x = M^T w: the summed weight of each distinct beamlet (same dose)."""
        if self.is_identity:
            return xp.asarray(weights, dtype=xp.float64)
        w = xp.asarray(weights, dtype=xp.float64)
        return xp.bincount(xp.asarray(self.distinct_of), weights=w, minlength=self.n_distinct).astype(xp.float64)

    def to_delivered(self, x, xp=np):
        """w_c = x_{map(c)} / multiplicity: each distinct weight shared equally by its copies (same dose)."""
        if self.is_identity:
            return xp.asarray(x, dtype=xp.float64)
        x = xp.asarray(x, dtype=xp.float64)
        return (x / xp.asarray(self._multiplicity))[xp.asarray(self.distinct_of)]

    def distinct_pairs(self, pairs: np.ndarray) -> np.ndarray:
        """Neighbour pairs of delivered columns mapped to distinct beamlets (duplicates and self-pairs dropped)."""
        p = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        if self.is_identity or len(p) == 0:
            return p
        q = np.sort(self.distinct_of[p], axis=1)
        q = q[q[:, 0] != q[:, 1]]
        return np.unique(q, axis=0)

    def column_filter(self) -> np.ndarray:
        """new_column[c] = distinct index for representative columns, -1 for copies (kernels/sparse.py)."""
        new_column = np.full(self.n_delivered, -1, dtype=np.int64)
        new_column[self._representative] = np.arange(self.n_distinct, dtype=np.int64)
        return new_column


def merged_rows(matrix: sp.csr_matrix, rows: np.ndarray, columns: ColumnMap) -> sp.csr_matrix:
    """D_d restricted to ``rows``: the given rows of ``matrix`` with only the representative columns,
    renumbered to distinct indices (float32 values kept; one parallel pass, no intermediate copies)."""
    from simsbrt.kernels.sparse import merge_rows

    matrix = matrix if sp.isspmatrix_csr(matrix) else sp.csr_matrix(matrix)
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    indptr, indices, data = merge_rows(matrix.indptr, matrix.indices, matrix.data, rows, columns.column_filter(),
                                       columns.n_distinct)
    return sp.csr_matrix((data, indices, indptr), shape=(len(rows), columns.n_distinct), copy=False)
