"""Fluence-optimisation objectives with exact gradients.

Each dose objective acts on the dose of a set of voxels (rows of the influence matrix) and
returns its value and the gradient with respect to that dose; FluenceObjective chains them
through the influence matrix: dF/dw = D^T (dF/dd). Written against an array module ``xp``
(numpy on the CPU, cupy on a GPU) so one iteration never leaves the device.

Penalties are normalised by the number of voxels they act on, so a weight means the same for a
small cord PRV and a large target.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from simsbrt.errors import SpecError, nonnegative_number


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

    def residual(self, dose_rows, xp):  # pragma: no cover - abstract
        raise NotImplementedError

    def value_and_gradient(self, dose, xp=np):
        """Value and d(value)/d(dose) as a full-length vector (zero outside ``rows``)."""
        d = dose[self.rows]
        r = self.residual(d, xp)
        n = r.size
        value = self.weight * float(xp.dot(r, r)) / n
        grad = xp.zeros_like(dose)
        # d/dd of sum(r^2) with r = s * (d - dose_gy) clipped: 2 r dr/dd, dr/dd = +1 or -1 where active
        grad[self.rows] = self.gradient_sign * 2.0 * self.weight * r / n
        return value, grad

    gradient_sign = 1.0


@dataclass(frozen=True)
class SquaredOverdose(DoseObjective):
    """mean(max(0, d - D_ref)^2): a soft maximum dose (organ limits, target hot spots)."""

    def residual(self, dose_rows, xp):
        return xp.maximum(dose_rows - self.dose_gy, 0.0)

    gradient_sign = 1.0


@dataclass(frozen=True)
class SquaredUnderdose(DoseObjective):
    """mean(max(0, D_ref - d)^2): a soft minimum dose (target coverage)."""

    def residual(self, dose_rows, xp):
        return xp.maximum(self.dose_gy - dose_rows, 0.0)

    gradient_sign = -1.0


@dataclass(frozen=True)
class SquaredDeviation(DoseObjective):
    """mean((d - D_ref)^2): a homogeneity goal around a reference dose."""

    def residual(self, dose_rows, xp):
        return dose_rows - self.dose_gy

    gradient_sign = 1.0


@dataclass(frozen=True)
class Smoothness:
    """weight * ||L w||^2 / n_pairs with L the first-difference operator over neighbour pairs.

    ``pairs`` is an (n_pairs, 2) integer array of neighbouring beamlets (in the beam's-eye view
    and between adjacent control points); differences between them are penalised.
    """

    pairs: Any
    n_beamlets: int
    weight: float = 1.0
    difference: Any = field(init=False, repr=False, compare=False)
    _device_difference: Any = field(init=False, repr=False, compare=False, default=None)

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
        n = max(self.difference.shape[0], 1)
        L = self.difference if xp is np else self._on_device()
        diff = L @ weights
        value = self.weight * float(xp.dot(diff, diff)) / n
        grad = (2.0 * self.weight / n) * (L.T @ diff)
        return value, grad

    def _on_device(self):
        """The difference operator on the GPU, copied once (not once per iteration)."""
        if self._device_difference is None:
            object.__setattr__(self, "_device_difference", _to_device_sparse(self.difference))
        return self._device_difference


def _to_device_sparse(matrix):
    import cupyx.scipy.sparse as csp

    return csp.csr_matrix(matrix)


@dataclass(frozen=True)
class FluenceObjective:
    """F(w) = sum_k f_k(D w) + sum_m g_m(w), with the exact gradient D^T (sum_k df_k/dd) + sum_m dg_m/dw.

    ``influence`` is any linear operator with ``influence @ w`` (dose) and ``influence.T @ g``.
    """

    influence: Any
    dose_objectives: tuple
    weight_objectives: tuple = ()
    xp: Any = np

    def dose(self, weights):
        return self.influence @ weights

    def value_and_gradient(self, weights):
        xp = self.xp
        dose = self.dose(weights)
        total = 0.0
        grad_dose = xp.zeros_like(dose)
        for objective in self.dose_objectives:
            value, grad = objective.value_and_gradient(dose, xp)
            total += value
            grad_dose += grad
        grad_w = self.influence.T @ grad_dose
        for objective in self.weight_objectives:
            value, grad = objective.value_and_gradient(weights, xp)
            total += value
            grad_w = grad_w + grad
        return total, grad_w
