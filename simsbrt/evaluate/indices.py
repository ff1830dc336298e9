"""Plan-quality indices with the reference dose level as a parameter (facts section 6.2 [V]).

Notation (BJR plan-quality metric table, facts 6.2): TV = target volume, PIV = volume inside
the reference isodose (dose >= reference), TV_PIV = target volume inside it.
  Paddick CI          = TV_PIV^2 / (TV * PIV)          (ideal 1; also ICRU 91)
  Gradient index      = PIV_50% / PIV_100%             (Paddick-Lippitz; as low as possible)
  RTOG CI             = PIV / TV
  Coverage            = TV_PIV / TV
  HI (ICRU 83)        = (D2% - D98%) / D50%            (ideal 0), with the D_x of dvh.py
Volumes are voxel counts (dose >= level) times the voxel volume, over the whole dose grid or,
when ``region_mask`` is given, within it (e.g. the body). For an SIB plan evaluate per dose
level: PTV_Eval at 30 Gy, GTV at its boost level (facts 6.2). The trial intends PTV_Eval D2%
of 140-160 %, so HI is descriptive there, not an objective.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from simsbrt.errors import SpecError
from simsbrt.evaluate.dvh import _as_bool_mask, _checked_dose, _checked_voxel_volume, compute_dvh


@dataclass(frozen=True)
class ConformityIndices:
    reference_dose_gy: float
    target_volume_cc: float
    piv_cc: float
    target_piv_cc: float
    piv_half_cc: float
    paddick_ci: float
    rtog_ci: float
    coverage_frac: float
    gradient_index: float

    def to_dict(self) -> dict:
        return asdict(self)


def _isodose_volume_cc(dose: np.ndarray, level_gy: float, voxel_cc: float, region: np.ndarray | None) -> float:
    inside = dose >= level_gy
    if region is not None:
        inside &= region
    return float(np.count_nonzero(inside)) * voxel_cc


def _checked_reference(reference_dose_gy) -> float:
    ref = float(reference_dose_gy)
    if not np.isfinite(ref) or ref <= 0:
        raise SpecError("reference_dose_gy", f"needs a positive dose, got {reference_dose_gy!r}")
    return ref


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else float("nan")


def conformity_indices(dose_gy, target_mask, reference_dose_gy: float, voxel_volume_cc: float,
                       region_mask=None) -> ConformityIndices:
    """Paddick CI, RTOG CI, coverage and gradient index at one reference dose level.

    Undefined ratios (no reference isodose volume) are NaN, never an error.
    """
    dose = _checked_dose(dose_gy)
    target = _as_bool_mask(target_mask, dose.shape, "target_mask")
    region = None if region_mask is None else _as_bool_mask(region_mask, dose.shape, "region_mask")
    ref = _checked_reference(reference_dose_gy)
    voxel_cc = _checked_voxel_volume(voxel_volume_cc)
    tv = float(np.count_nonzero(target)) * voxel_cc
    if tv == 0:
        raise SpecError("target_mask", "the target has no voxels")
    piv = _isodose_volume_cc(dose, ref, voxel_cc, region)
    tv_piv = float(np.count_nonzero(target & (dose >= ref))) * voxel_cc
    piv_half = _isodose_volume_cc(dose, 0.5 * ref, voxel_cc, region)
    return ConformityIndices(
        reference_dose_gy=ref, target_volume_cc=tv, piv_cc=piv, target_piv_cc=tv_piv, piv_half_cc=piv_half,
        paddick_ci=_ratio(tv_piv**2, tv * piv), rtog_ci=piv / tv, coverage_frac=tv_piv / tv,
        gradient_index=_ratio(piv_half, piv),
    )


def paddick_conformity_index(dose_gy, target_mask, reference_dose_gy: float, voxel_volume_cc: float,
                             region_mask=None) -> float:
    """TV_PIV^2 / (TV * PIV) at the reference dose (facts 6.2)."""
    return conformity_indices(dose_gy, target_mask, reference_dose_gy, voxel_volume_cc, region_mask).paddick_ci


def gradient_index(dose_gy, reference_dose_gy: float, voxel_volume_cc: float, region_mask=None) -> float:
    """PIV_50% / PIV_100% (Paddick-Lippitz, facts 6.2); NaN when nothing reaches the reference."""
    dose = _checked_dose(dose_gy)
    region = None if region_mask is None else _as_bool_mask(region_mask, dose.shape, "region_mask")
    ref = _checked_reference(reference_dose_gy)
    voxel_cc = _checked_voxel_volume(voxel_volume_cc)
    return _ratio(_isodose_volume_cc(dose, 0.5 * ref, voxel_cc, region),
                  _isodose_volume_cc(dose, ref, voxel_cc, region))


def homogeneity_index_icru83(dose_gy, mask, voxel_volume_cc: float, weights=None) -> float:
    """(D2% - D98%) / D50% (ICRU 83, facts 6.2) with the interpolated D_x% of dvh.py."""
    dvh = compute_dvh(dose_gy, mask, voxel_volume_cc, weights, name="mask")
    d2, d50, d98 = dvh.dose_at_percent([2.0, 50.0, 98.0])
    if d50 <= 0:
        raise SpecError("dose_gy", "D50% is 0 Gy; the homogeneity index is undefined")
    return float((d2 - d98) / d50)
