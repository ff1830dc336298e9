"""Fluence-optimisation objectives with exact gradients.

Each dose objective acts on the dose of a set of voxels (rows of the influence matrix) and
returns its value and the gradient with respect to that dose; FluenceObjective chains them
through the influence matrix: dF/dw = D^T (dF/dd). The per-voxel values and gradients are the
device functions of kernels/device/sparse.py (penalty_value, penalty_gradient), run by the
target's compiled drivers (simsbrt.optimize.device: numba on the CPU, Numba CUDA on a GPU or in
the simulator); the array module only sums the per-voxel values, so one evaluation never leaves
the device and hands the host one scalar. On the CPU the same device functions run inside one pass
over D (RowPenalties, kernels/sparse.penalty_value_gradient): D w, the penalties and D^T of their
gradient without a second product.

Penalties are normalised by the number of voxels they act on, so a weight means the same for a
small cord PRV and a large target.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from simsbrt.errors import SpecError, nonnegative_number
from simsbrt.optimize.device import Target, target_of, vector_dot


@dataclass(frozen=True)
class DoseObjective:
    """Base: a penalty on the dose of the voxels ``rows`` (indices into the dose vector)."""

    name: str
    rows: Any
    dose_gy: float
    weight: float = 1.0

    def __post_init__(self):
        object.__setattr__(self, "weight", nonnegative_number(f"{self.name}.weight", self.weight))
        object.__setattr__(self, "dose_gy", nonnegative_number(f"{self.name}.dose_gy", self.dose_gy, " Gy"))
        if len(self.rows) == 0:
            raise SpecError(f"{self.name}.rows", "the structure has no voxels in the dose grid")

    kind = 0  # kernels/device/sparse.py penalty kind: +1 overdose, -1 underdose, 0 deviation

    def accumulate(self, dose, grad, target: Target):
        """Add d(value)/d(dose) to grad (full length, on the target) and return the value (a target scalar)."""
        xp = target.xp
        rows = self._rows_on(target)
        terms = xp.empty(rows.shape[0], dtype=xp.float64)
        target.kernels.penalty_terms(dose, rows, float(self.dose_gy), int(self.kind),
                                     float(self.weight) / rows.shape[0], grad, terms)
        return xp.sum(terms)

    def value_and_gradient(self, dose, xp=np):
        """Value and d(value)/d(dose) as a full-length vector (zero outside ``rows``)."""
        target = target_of(xp)
        dose = target.xp.ascontiguousarray(dose, dtype=target.xp.float64)
        grad = target.xp.zeros_like(dose)
        value = self.accumulate(dose, grad, target)
        return target.kernels.host_scalar(value), grad

    def _rows_on(self, target: Target):
        """The row indices as a target array (copied to a device once)."""
        cache = self.__dict__.setdefault("_rows_cache", {})
        if target.name not in cache:
            rows = self.rows  # on a device already when the fluence problem built them (numpy in the simulator)
            if target.name == "cuda" and isinstance(rows, np.ndarray):
                rows = target.kernels.to_device(rows)
            else:
                rows = target.xp.asarray(rows)
            cache[target.name] = rows
        return cache[target.name]


@dataclass(frozen=True)
class SquaredOverdose(DoseObjective):
    """mean(max(0, d - D_ref)^2): a soft maximum dose (organ limits, target hot spots)."""

    kind = 1


@dataclass(frozen=True)
class SquaredUnderdose(DoseObjective):
    """mean(max(0, D_ref - d)^2): a soft minimum dose (target coverage)."""

    kind = -1


@dataclass(frozen=True)
class SquaredDeviation(DoseObjective):
    """mean((d - D_ref)^2): a homogeneity goal around a reference dose."""

    kind = 0


@dataclass(frozen=True)
class Smoothness:
    """weight * ||L w||^2 / n_pairs with L the first-difference operator over neighbour pairs.

    ``pairs`` is an (n_pairs, 2) integer array of neighbouring beamlets (in the beam's-eye view
    and between adjacent control points); differences between them are penalised.
    ``operators`` (target name -> the difference operator on it) may be shared between objectives
    with the same pairs, so a device copy is made once per problem, not once per optimisation.
    """

    pairs: Any
    n_beamlets: int
    weight: float = 1.0
    operators: dict = field(default_factory=dict, repr=False, compare=False)
    difference: Any = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        import scipy.sparse as sp

        object.__setattr__(self, "weight", nonnegative_number("smoothness.weight", self.weight))
        pairs = np.asarray(self.pairs, dtype=np.int64).reshape(-1, 2)
        if pairs.size and (pairs.min() < 0 or pairs.max() >= self.n_beamlets):
            raise SpecError("smoothness.pairs", f"beamlet index outside 0..{self.n_beamlets - 1}")
        n = len(pairs)
        rows = np.repeat(np.arange(n), 2)
        vals = np.tile([1.0, -1.0], n)
        L = sp.csr_matrix((vals, (rows, pairs.ravel())), shape=(n, self.n_beamlets))
        object.__setattr__(self, "pairs", pairs)
        object.__setattr__(self, "difference", L)

    def value_and_gradient(self, weights, xp=np):
        value, grad = self.accumulate(weights, target_of(xp))
        return target_of(xp).kernels.host_scalar(value), grad

    def accumulate(self, weights, target: Target):
        """(value as a target scalar, gradient): L w and L^T (L w), in one pass on the CPU (kernels/sparse.py
        pair_differences), through the target's CSR products on a device."""
        n = max(self.difference.shape[0], 1)
        kernels = target.kernels
        if hasattr(kernels, "pair_differences"):
            x = np.ascontiguousarray(weights, dtype=np.float64)
            diff = np.empty(len(self.pairs))
            lt_diff = np.empty(self.n_beamlets)
            kernels.pair_differences(x, self.pairs[:, 0], self.pairs[:, 1], diff, lt_diff)
        else:
            L = self._operator(target)
            diff = L @ weights
            lt_diff = L.T @ diff
        value = (self.weight / n) * vector_dot(target.xp)(diff, diff)
        return value, (2.0 * self.weight / n) * lt_diff

    def _operator(self, target: Target):
        """The difference operator on the target, built (and copied to a device) once."""
        from simsbrt.optimize.problem import SparseOperator

        if target.name not in self.operators:
            self.operators[target.name] = SparseOperator(self.difference, target=target)
        return self.operators[target.name]


@dataclass(frozen=True)
class FluenceObjective:
    """F(w) = sum_k f_k(D w) + sum_m g_m(w), with the exact gradient D^T (sum_k df_k/dd) + sum_m dg_m/dw.

    ``influence`` is any linear operator with ``influence @ w`` (dose) and ``influence.T @ g``.
    """

    influence: Any
    dose_objectives: tuple
    weight_objectives: tuple = ()
    xp: Any = np
    target: Target | None = None

    def dose(self, weights):
        return self.influence @ weights

    def value_and_gradient(self, weights):
        """(value, gradient): the value crosses to the host (one scalar), the gradient stays on the target.
        On the CPU the dose penalties and D^T of their gradient come from one pass over D (RowPenalties)."""
        target = self.target if self.target is not None else target_of(self.xp)
        xp = target.xp
        penalties = self._row_penalties(target)
        if penalties is not None:
            total, grad_w = self.influence.penalty_value_gradient(weights, penalties)
        else:
            dose = self.dose(weights)
            total = 0.0
            grad_dose = xp.zeros_like(dose)
            for objective in self.dose_objectives:
                total = total + objective.accumulate(dose, grad_dose, target)
            grad_w = self.influence.T @ grad_dose
        for objective in self.weight_objectives:
            value, grad = objective.accumulate(weights, target)
            total = total + value
            grad_w = grad_w + grad
        return target.kernels.host_scalar(total), grad_w

    def _row_penalties(self, target: Target):
        """The dose objectives as one RowPenalties table when the operator fuses them (built once), else None."""
        cache = self.__dict__.setdefault("_row_penalties_cache", {})
        if target.name not in cache:
            fusable = (getattr(self.influence, "fuses_penalties", False)
                       and all(isinstance(o, DoseObjective) for o in self.dose_objectives))
            cache[target.name] = (RowPenalties.of(self.dose_objectives, self.influence.shape[0], target)
                                  if fusable else None)
        return cache[target.name]


@dataclass(frozen=True, eq=False)
class RowPenalties:
    """Every dose objective's penalty as terms per dose row (CSR-like: the terms of row i are ptr[i]:ptr[i + 1],
    in the objectives' order): reference dose, kind and scale (weight / voxels of the objective), what
    DoseObjective.accumulate hands penalty_terms, for kernels that evaluate them row by row."""

    ptr: np.ndarray
    ref_gy: np.ndarray
    kind: np.ndarray
    scale: np.ndarray

    @classmethod
    def of(cls, objectives, n_rows: int, target: Target) -> "RowPenalties":
        rows, ref, kind, scale = [], [], [], []
        for objective in objectives:
            r = np.asarray(target.kernels.to_host(objective._rows_on(target)), dtype=np.int64)
            rows.append(r)
            ref.append(np.full(r.size, float(objective.dose_gy)))
            kind.append(np.full(r.size, int(objective.kind), dtype=np.int64))
            scale.append(np.full(r.size, float(objective.weight) / r.size))
        rows = np.concatenate(rows) if rows else np.zeros(0, np.int64)
        order = np.argsort(rows, kind="stable")   # by row, each row's terms in the objectives' order
        ptr = np.zeros(n_rows + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=n_rows), out=ptr[1:])
        pick = (lambda parts, dtype: np.concatenate(parts)[order].astype(dtype) if parts else np.zeros(0, dtype))
        return cls(ptr, pick(ref, np.float64), pick(kind, np.int64), pick(scale, np.float64))
