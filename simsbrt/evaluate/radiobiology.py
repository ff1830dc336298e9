"""Linear-quadratic radiobiology: BED, EQD2, iso-effective doses, voxel-wise biological DVHs.

Formulas (facts section 5.1), for a total dose D in n equal fractions of d = D / n:
  BED  = D (1 + d / (alpha/beta))
  EQD2 = BED / (1 + 2 / (alpha/beta)) = D (d + alpha/beta) / (2 + alpha/beta)
Iso-effective total in m fractions: solve m x (1 + x / (alpha/beta)) = BED for x, total = m x.

All functions are vectorised over numpy arrays (any of the dose arguments; n_fractions and
alpha/beta may also be arrays that broadcast). Scalars in give a float out.

Voxel-wise work (facts 5.1): in an SIB plan every voxel gets its own dose per fraction
d_i = D_i / n, so convert each voxel's physical dose and take DVH metrics of the resulting
BED/EQD2 array (``biological_dvh``), never of physical DVH points. Because the LQ transform
is monotone, order-statistic metrics (D_x%, D_xcc) of the two agree up to the interpolation
between voxels, but Dmean (and any volume-averaged quantity) differs: the transform is convex,
so mean(EQD2_i) >= EQD2(mean D_i), with equality only for a uniform dose.
"""
from __future__ import annotations

import numpy as np

from simsbrt.errors import SpecError
from simsbrt.evaluate.dvh import DVH, compute_dvh, to_host

QUANTITIES = ("BED", "EQD2")


def _as_scalar_or_array(result: np.ndarray):
    return float(result) if np.ndim(result) == 0 else result


def _checked_dose(total_gy, field: str = "total_gy") -> np.ndarray:
    dose = np.asarray(to_host(total_gy), dtype=float)
    if not np.all(np.isfinite(dose)):
        raise SpecError(field, "contains NaN or infinite values")
    if np.any(dose < 0):
        raise SpecError(field, f"needs doses >= 0 Gy, got min {dose.min():g} Gy")
    return dose


def _checked_fractions(n_fractions, field: str = "n_fractions") -> np.ndarray:
    try:
        n = np.asarray(n_fractions, dtype=float)
    except (TypeError, ValueError):
        raise SpecError(field, f"needs an integer >= 1, got {n_fractions!r}") from None
    if not np.all(np.isfinite(n)) or np.any(n < 1) or np.any(n != np.round(n)):
        raise SpecError(field, f"needs an integer number of fractions >= 1, got {n_fractions!r}")
    return n


def _checked_alpha_beta(alpha_beta_gy, field: str = "alpha_beta_gy") -> np.ndarray:
    try:
        ab = np.asarray(alpha_beta_gy, dtype=float)
    except (TypeError, ValueError):
        raise SpecError(field, f"needs a positive number in Gy, got {alpha_beta_gy!r}") from None
    if not np.all(np.isfinite(ab)) or np.any(ab <= 0):
        raise SpecError(field, f"needs alpha/beta > 0 Gy, got {alpha_beta_gy!r}")
    return ab


def _bed(dose: np.ndarray, n: np.ndarray, ab: np.ndarray) -> np.ndarray:
    return dose * (1.0 + dose / (n * ab))


def bed(total_gy, n_fractions, alpha_beta_gy):
    """Biologically effective dose (Gy) of total_gy in n_fractions equal fractions (facts 5.1)."""
    dose, n, ab = _checked_dose(total_gy), _checked_fractions(n_fractions), _checked_alpha_beta(alpha_beta_gy)
    return _as_scalar_or_array(_bed(dose, n, ab))


def eqd2(total_gy, n_fractions, alpha_beta_gy):
    """Equivalent dose in 2 Gy fractions (Gy): BED / (1 + 2 / (alpha/beta)) (facts 5.1)."""
    dose, n, ab = _checked_dose(total_gy), _checked_fractions(n_fractions), _checked_alpha_beta(alpha_beta_gy)
    return _as_scalar_or_array(_bed(dose, n, ab) / (1.0 + 2.0 / ab))


def isoeffective_total_gy(total_gy, n_fractions, alpha_beta_gy, new_n_fractions):
    """The total dose in new_n_fractions with the same BED as total_gy in n_fractions.

    Solves m x^2 / ab + m x - BED = 0 for the dose per fraction x > 0 in the cancellation-free
    form x = 2 c / (ab + sqrt(ab^2 + 4 c)), c = ab BED / m; returns m x.
    """
    dose, n, ab = _checked_dose(total_gy), _checked_fractions(n_fractions), _checked_alpha_beta(alpha_beta_gy)
    m = _checked_fractions(new_n_fractions, "new_n_fractions")
    c = ab * _bed(dose, n, ab) / m
    per_fraction = 2.0 * c / (ab + np.sqrt(ab * ab + 4.0 * c))
    return _as_scalar_or_array(m * per_fraction)


def total_gy_for_bed(bed_gy, n_fractions, alpha_beta_gy):
    """The total physical dose in n_fractions that gives bed_gy (inverse of ``bed``)."""
    target = _checked_dose(bed_gy, "bed_gy")
    m, ab = _checked_fractions(n_fractions), _checked_alpha_beta(alpha_beta_gy)
    c = ab * target / m
    return _as_scalar_or_array(m * 2.0 * c / (ab + np.sqrt(ab * ab + 4.0 * c)))


def biological_dose(dose_gy, n_fractions, alpha_beta_gy, quantity: str = "EQD2"):
    """Voxel-wise BED or EQD2 array from a physical dose array delivered in n_fractions."""
    if quantity not in QUANTITIES:
        raise SpecError("quantity", f"must be one of {QUANTITIES}, got {quantity!r}")
    fn = bed if quantity == "BED" else eqd2
    return fn(dose_gy, n_fractions, alpha_beta_gy)


def biological_dvh(dose_gy, mask, voxel_volume_cc: float, n_fractions, alpha_beta_gy,
                   quantity: str = "EQD2", weights=None, name: str = "") -> DVH:
    """The DVH of voxel-wise BED/EQD2 (its D_x, Dmean, ... are in Gy of that quantity)."""
    return compute_dvh(biological_dose(dose_gy, n_fractions, alpha_beta_gy, quantity),
                       mask, voxel_volume_cc, weights, name)
