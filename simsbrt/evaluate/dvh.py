"""Cumulative dose-volume histograms and DVH metrics on the dose grid.

Inputs: dose in Gy and a boolean structure mask of the same shape, the voxel volume in cm3,
and optionally per-voxel weights in [0, 1] (fractional occupancy, e.g. from a supersampled
structure near the cord). A voxel's volume is ``weight * voxel_volume_cc``.

Interpolation (the one definition every D metric uses)
------------------------------------------------------
Sort the structure's voxels by dose, descending: d_0 >= d_1 >= ... >= d_{N-1}, with volumes
v_k (= voxel_volume_cc without weights). Voxel k covers the cumulative-volume interval
(C_k, C_k + v_k], C_k = v_0 + ... + v_{k-1}, and is represented by its centre point
(C_k + v_k / 2, d_k). The cumulative DVH dose D(V) is the piecewise-linear curve through these
centre points, clamped at the ends: D(V) = d_0 for V <= v_0 / 2 and D(V) = d_{N-1} for
V >= C_{N-1} + v_{N-1} / 2.

- D_vcc = D(v).                          ("minimum dose to the hottest v cm3", facts 6.1)
- D_x%  = D(x / 100 * total volume).     (same curve, so D_x% and D_vcc agree)
- V_dGy = total volume of the voxels with dose >= d (a voxel count, not interpolated;
  facts 6.1 "V_D is the volume receiving >= D", as in matRad). It agrees with the inverse of
  D(V) to within one voxel volume.
- Dmean is the volume-weighted mean, Dmax / Dmin the extreme voxel doses.

Example: a single hot voxel of dose H in a background of B with v = 0.008 cc (2 mm grid).
Centres lie at 0.004 cc (H) and 0.012 cc (B), so D0.004cc = H, D0.008cc = (H + B) / 2 and
D0.03cc = B: one hot voxel (0.008 cc) cannot fill 0.03 cc. Not rounded to whole voxels: four
voxels at H give D0.03cc = H + (0.03 - 0.028) / 0.008 * (B - H) = 0.75 H + 0.25 B.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from simsbrt.errors import SimsbrtError, SpecError
from simsbrt.evaluate import metrics as m


class EmptyStructureError(SimsbrtError, ValueError):
    """A DVH metric was asked of a structure with no voxels."""


def to_host(array) -> np.ndarray:
    """A numpy array from numpy or cupy input (cupy is never imported here)."""
    if hasattr(array, "get") and type(array).__module__.startswith("cupy"):
        array = array.get()
    return np.asarray(array)


@dataclass(frozen=True, eq=False)
class DVH:
    """One structure's voxel doses sorted descending, with the matching voxel volumes."""

    doses_gy: np.ndarray
    volumes_cc: np.ndarray
    name: str = ""

    @property
    def n_voxels(self) -> int:
        return int(self.doses_gy.size)

    @property
    def is_empty(self) -> bool:
        return self.n_voxels == 0

    @property
    def total_volume_cc(self) -> float:
        return float(self.volumes_cc.sum())

    def _require_voxels(self) -> None:
        if self.is_empty:
            raise EmptyStructureError(f"structure {self.name or '(unnamed)'} has no voxels; no DVH metric exists")

    def _centres_cc(self) -> np.ndarray:
        return np.cumsum(self.volumes_cc) - 0.5 * self.volumes_cc

    def dose_at_volume_cc(self, volume_cc):
        """D_vcc: the dose at cumulative volume v on the interpolated DVH (module docstring)."""
        self._require_voxels()
        volume = np.asarray(volume_cc, dtype=float)
        if np.any(~np.isfinite(volume)) or np.any(volume < 0):
            raise SpecError("volume_cc", f"needs finite volumes >= 0 cm3, got {volume_cc!r}")
        result = np.interp(volume, self._centres_cc(), self.doses_gy)
        return float(result) if result.ndim == 0 else result

    def dose_at_percent(self, percent):
        """D_x%: the dose at x % of the structure volume, on the same curve as dose_at_volume_cc."""
        self._require_voxels()
        pct = np.asarray(percent, dtype=float)
        if np.any(~np.isfinite(pct)) or np.any(pct < 0) or np.any(pct > 100):
            raise SpecError("percent", f"needs percentages in [0, 100], got {percent!r}")
        return self.dose_at_volume_cc(pct / 100.0 * self.total_volume_cc)

    def volume_cc_at_dose(self, dose_gy) -> float:
        """V_dGy in cm3: the volume of the voxels receiving >= dose_gy."""
        dose = _check_dose_threshold(dose_gy)
        return float(self.volumes_cc[self.doses_gy >= dose].sum())

    def volume_percent_at_dose(self, dose_gy) -> float:
        """V_dGy in % of the structure volume."""
        self._require_voxels()
        return 100.0 * self.volume_cc_at_dose(dose_gy) / self.total_volume_cc

    def cumulative_cc(self, dose_bins_gy) -> np.ndarray:
        """The cumulative DVH: volume (cm3) receiving >= each dose in ``dose_bins_gy``."""
        bins = np.asarray(dose_bins_gy, dtype=float)
        n_at_or_above = self.n_voxels - np.searchsorted(self.doses_gy[::-1], bins, side="left")
        volume_of_hottest = np.concatenate([[0.0], np.cumsum(self.volumes_cc)])
        return volume_of_hottest[n_at_or_above]

    @property
    def mean_gy(self) -> float:
        self._require_voxels()
        return float(np.dot(self.doses_gy, self.volumes_cc) / self.total_volume_cc)

    @property
    def max_gy(self) -> float:
        self._require_voxels()
        return float(self.doses_gy[0])

    @property
    def min_gy(self) -> float:
        self._require_voxels()
        return float(self.doses_gy[-1])

    def metric(self, metric) -> float:
        """Evaluate a metric given by name ("D2%", "D0.03cc", "V30Gy", "Dmean", ...) or Metric."""
        parsed = m.parse_metric(metric)
        if parsed.kind == m.DOSE_AT_PERCENT:
            return self.dose_at_percent(parsed.parameter)
        if parsed.kind == m.DOSE_AT_VOLUME_CC:
            return self.dose_at_volume_cc(parsed.parameter)
        if parsed.kind == m.VOLUME_CC_AT_DOSE:
            self._require_voxels()
            return self.volume_cc_at_dose(parsed.parameter)
        if parsed.kind == m.VOLUME_PERCENT_AT_DOSE:
            return self.volume_percent_at_dose(parsed.parameter)
        return {m.DOSE_MEAN: lambda: self.mean_gy, m.DOSE_MAX: lambda: self.max_gy,
                m.DOSE_MIN: lambda: self.min_gy}[parsed.kind]()


def _check_dose_threshold(dose_gy) -> float:
    dose = float(dose_gy)
    if not np.isfinite(dose) or dose < 0:
        raise SpecError("dose_gy", f"needs a finite dose >= 0 Gy, got {dose_gy!r}")
    return dose


def _as_bool_mask(mask, shape, field: str) -> np.ndarray:
    arr = to_host(mask)
    if arr.shape != shape:
        raise SpecError(field, f"shape {arr.shape} does not match the dose shape {shape}")
    if arr.dtype != bool:
        if not np.isin(arr, (0, 1)).all():
            raise SpecError(field, f"must be boolean (or 0/1), got dtype {arr.dtype}")
        arr = arr.astype(bool)
    return arr


def _checked_dose(dose_gy, field: str = "dose_gy") -> np.ndarray:
    dose = to_host(dose_gy)
    if dose.ndim == 0 or not np.issubdtype(dose.dtype, np.number):
        raise SpecError(field, f"needs a numeric dose array, got {type(dose_gy).__name__}")
    dose = dose.astype(float, copy=False)
    if not np.all(np.isfinite(dose)):
        raise SpecError(field, "contains NaN or infinite values")
    if dose.size and dose.min() < 0:
        raise SpecError(field, f"contains negative doses (min {dose.min():.3g} Gy)")
    return dose


def _checked_voxel_volume(voxel_volume_cc) -> float:
    vol = float(voxel_volume_cc)
    if not np.isfinite(vol) or vol <= 0:
        raise SpecError("voxel_volume_cc", f"needs a positive voxel volume in cm3, got {voxel_volume_cc!r}")
    return vol


def compute_dvh(dose_gy, mask, voxel_volume_cc: float, weights=None, name: str = "") -> DVH:
    """The DVH of the voxels in ``mask`` (optionally weighted by fractional occupancy in [0, 1])."""
    dose = _checked_dose(dose_gy)
    inside = _as_bool_mask(mask, dose.shape, f"mask[{name}]" if name else "mask")
    voxel_cc = _checked_voxel_volume(voxel_volume_cc)
    doses = dose[inside]
    volumes = np.full(doses.shape, voxel_cc)
    if weights is not None:
        w = to_host(weights).astype(float, copy=False)
        field = f"weights[{name}]" if name else "weights"
        if w.shape != dose.shape:
            raise SpecError(field, f"shape {w.shape} does not match the dose shape {dose.shape}")
        w = w[inside]
        if not np.all(np.isfinite(w)) or np.any(w < 0) or np.any(w > 1):
            raise SpecError(field, "fractional occupancies must lie in [0, 1]")
        keep = w > 0
        doses, volumes = doses[keep], volumes[keep] * w[keep]
    order = np.argsort(-doses, kind="stable")
    return DVH(doses[order], volumes[order], name)


def compute_dvhs(dose_gy, masks: Mapping[str, object], voxel_volume_cc: float,
                 weights: Mapping[str, object] | None = None) -> dict[str, DVH]:
    """DVHs of several named structures on one dose grid."""
    dose = _checked_dose(dose_gy)
    weights = weights or {}
    unknown = set(weights) - set(masks)
    if unknown:
        raise SpecError("weights", f"weights given for structures without a mask: {sorted(unknown)}")
    return {name: compute_dvh(dose, mask, voxel_volume_cc, weights.get(name), name)
            for name, mask in masks.items()}
