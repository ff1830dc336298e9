"""Fit the 6 MV pencil-beam model to measured data (scripts/fit_beam_model.py runs this).

Measured data, all from ../shared/reference/physics-and-clinical-facts.md:
  * 1.1  PDD, 10 x 10 and 5 x 5 cm, SSD 100 (Mayneord conversion of the SSD 90 scans);
         dmax 14 mm (10 x 10);
  * 1.5  80-20 penumbra, SSD 90 (mean of inplane and crossplane);
  * 1.6  surface dose (5 x 5 ~10-12 %, 10 x 10 ~15-18 %, 20 x 20 ~23-28 %);
  * 1.7  output factors, Artiste (SSD 95, depth 5 cm) and Synergy Agility (SSD 90, depth 10 cm).
The model is evaluated with the engine's own device formula (kernels.cpu.water_field_dose), for a
whole open field in a flat water phantom; the fit uses scipy.optimize.least_squares.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simsbrt.dose.machine import REFERENCE_FIELD_MM, BeamModel
from simsbrt.dose.profiles import dmax_mm, penumbra_80_20_mm

SAD_MM = 1000.0

# facts 1.1 (SSD 100 columns)
PDD_DEPTH_MM = np.array([5, 10, 15, 20, 30, 40, 50, 60, 80, 100, 120, 150, 200, 250, 300], dtype=float)
PDD_10X10_SSD100 = np.array([83.3, 97.4, 100.0, 99.0, 95.0, 90.7, 86.5, 82.4, 74.6, 67.2, 60.4, 51.5, 39.2, 29.9, 22.9])
PDD_5X5_SSD100 = np.array([80.5, 96.6, 100.0, 99.2, 94.7, 90.0, 85.1, 80.5, 71.8, 64.0, 56.8, 47.7, 35.7, 26.9, 20.3])
DMAX_10X10_MM = 14.0
# facts 1.5: (field mm, depth mm, inplane, crossplane), SSD 90
PENUMBRA_SSD90 = [
    (100.0, 15.0, 3.3, 4.8), (100.0, 50.0, 3.9, 5.6), (100.0, 100.0, 4.7, 6.6), (100.0, 200.0, 6.3, 8.6),
    (50.0, 15.0, 3.2, 4.6), (50.0, 100.0, 4.1, 5.9), (50.0, 200.0, 4.8, 6.8),
]
# facts 1.6: (field mm, surface dose %)
SURFACE_DOSE = [(50.0, 11.0), (100.0, 16.5), (200.0, 25.5)]
# facts 1.7: side (mm) -> output factor
OF_ARTISTE = {5.7: 0.439, 10: 0.705, 12: 0.754, 14: 0.786, 16: 0.807, 18: 0.825, 20: 0.835, 30: 0.874, 40: 0.903,
              50: 0.925, 60: 0.945, 80: 0.976, 100: 1.000, 150: 1.038, 200: 1.066, 300: 1.095, 400: 1.107}
OF_ARTISTE_SETUP = (950.0, 50.0)  # SSD, depth (mm)
OF_SYNERGY = {10: 0.698, 30: 0.839, 40: 0.877, 50: 0.904, 70: 0.947, 100: 1.000, 150: 1.059, 200: 1.098,
              300: 1.149, 400: 1.170}
OF_SYNERGY_SETUP = (900.0, 100.0)

# Free parameters: name, initial value, lower, upper bound.
FREE_PARAMETERS = [
    ("mu_per_mm", 0.0050, 0.003, 0.008),
    ("beta1", 0.30, 0.05, 3.0),
    ("beta2", 0.03, 0.0085, 0.3),
    ("beta3", 0.012, 0.0081, 0.1),
    ("w2", 0.05, 0.0, 2.0),
    ("w3", 0.10, 0.0, 2.0),
    ("we", 0.15, 0.0, 2.0),
    ("betae", 0.3, 0.02, 3.0),
    ("sigma_source_mm", 2.0, 0.8, 4.0),
    ("sigma_primary0_mm", 0.5, 0.0, 4.0),
    ("sigma_primary_slope", 0.005, 0.0, 0.05),
    ("sigma_medium_mm", 8.0, 2.5, 40.0),
    ("sigma_long_mm", 50.0, 15.0, 200.0),
    ("head_scatter_amplitude", 0.08, 0.0, 0.5),
    ("head_scatter_length_mm", 100.0, 10.0, 1000.0),
]


def model_from_vector(theta: np.ndarray, name: str = "simsbrt 6 MV pencil beam") -> BeamModel:
    t = dict(zip([p[0] for p in FREE_PARAMETERS], map(float, theta)))
    return BeamModel(
        name=name, sad_mm=SAD_MM, mu_per_mm=t["mu_per_mm"],
        beta_per_mm=(t["beta1"], t["beta2"], t["beta3"]), weights=(1.0, t["w2"], t["w3"]),
        contamination_weight=t["we"], contamination_beta_per_mm=t["betae"],
        sigma_source_mm=t["sigma_source_mm"], sigma_primary0_mm=t["sigma_primary0_mm"],
        sigma_primary_slope=t["sigma_primary_slope"], sigma_medium_mm=t["sigma_medium_mm"],
        sigma_long_mm=t["sigma_long_mm"], head_scatter_amplitude=t["head_scatter_amplitude"],
        head_scatter_length_mm=t["head_scatter_length_mm"],
    )


def water_dose(model: BeamModel, field_mm: float, ssd_mm: float, x_mm, z_mm) -> np.ndarray:
    """Dose per MU of a square open field (side at iso) in water, with head scatter; analytic, whole field."""
    from simsbrt.kernels import cpu

    x = np.ascontiguousarray(np.broadcast_to(np.asarray(x_mm, float), np.broadcast(x_mm, z_mm).shape).ravel())
    z = np.ascontiguousarray(np.broadcast_to(np.asarray(z_mm, float), np.broadcast(x_mm, z_mm).shape).ravel())
    h = field_mm / 2.0
    return cpu.water_field_dose(model.as_array(), x, z, float(ssd_mm), -h, h, -h, h,
                                model.head_scatter_factor(field_mm))


DEPTH_GRID_MM = np.arange(0.0, 301.0, 0.5)


def model_pdd(model: BeamModel, field_mm: float, ssd_mm: float = 1000.0):
    d = water_dose(model, field_mm, ssd_mm, 0.0, DEPTH_GRID_MM)
    return DEPTH_GRID_MM, 100.0 * d / d.max()


def model_penumbra(model: BeamModel, field_mm: float, ssd_mm: float, depth_mm: float) -> float:
    edge = 0.5 * field_mm * (ssd_mm + depth_mm) / SAD_MM
    x = np.concatenate([[0.0], np.arange(edge - 25.0, edge + 25.0, 0.1)])
    d = water_dose(model, field_mm, ssd_mm, x, depth_mm)
    return penumbra_80_20_mm(x[1:], d[1:], centre_dose=d[0])


def model_output_factor(model: BeamModel, field_mm: float, ssd_mm: float, depth_mm: float) -> float:
    d = water_dose(model, field_mm, ssd_mm, 0.0, depth_mm)[0]
    ref = water_dose(model, REFERENCE_FIELD_MM, ssd_mm, 0.0, depth_mm)[0]
    return float(d / ref)


@dataclass(frozen=True)
class Residual:
    group: str
    label: str
    model: float
    measured: float
    sigma: float

    @property
    def weighted(self) -> float:
        return (self.model - self.measured) / self.sigma


def residuals(model: BeamModel) -> list[Residual]:
    out: list[Residual] = []
    for field, table in ((100.0, PDD_10X10_SSD100), (50.0, PDD_5X5_SSD100)):
        depth, pdd = model_pdd(model, field)
        for z, meas in zip(PDD_DEPTH_MM, table):
            out.append(Residual("pdd", f"{field:.0f} mm field, {z:.0f} mm", float(np.interp(z, depth, pdd)), meas,
                                2.0 if z < 10 else 0.5))
        if field == 100.0:
            out.append(Residual("dmax", "10 x 10", dmax_mm(depth, pdd), DMAX_10X10_MM, 1.0))
        surface = [s for f, s in SURFACE_DOSE if f == field]
        if surface:
            out.append(Residual("surface", f"{field:.0f} mm", float(pdd[0]), surface[0], 3.0))
    depth, pdd20 = model_pdd(model, 200.0)
    out.append(Residual("surface", "200 mm", float(pdd20[0]), SURFACE_DOSE[2][1], 3.0))
    for field, z, inplane, cross in PENUMBRA_SSD90:
        out.append(Residual("penumbra", f"{field:.0f} mm field, {z:.0f} mm", model_penumbra(model, field, 900.0, z),
                            0.5 * (inplane + cross), 0.4))
    for label, table, (ssd, z) in (("Artiste", OF_ARTISTE, OF_ARTISTE_SETUP), ("Synergy", OF_SYNERGY, OF_SYNERGY_SETUP)):
        for side, meas in table.items():
            if side == 100:
                continue
            sigma = 0.02 * meas if side < 8 else 0.01 * meas
            out.append(Residual("output factor", f"{label} {side} mm", model_output_factor(model, side, ssd, z),
                                meas, sigma))
    return out


def calibrate(model: BeamModel) -> BeamModel:
    """Set gy_per_mu so that 1 MU gives 0.01 Gy at dmax, 10 x 10 cm, SSD 100 cm (module doc of machine)."""
    raw = model.with_calibration(1.0)
    depth = np.arange(5.0, 30.0, 0.05)
    d = water_dose(raw, REFERENCE_FIELD_MM, 1000.0, 0.0, depth)
    return raw.with_calibration(0.01 / float(d.max()))


def fit_beam_model(max_nfev: int = 400, verbose: int = 0):
    """Least-squares fit of the free parameters; returns (calibrated model, residuals, scipy result)."""
    from scipy.optimize import least_squares

    x0 = np.array([p[1] for p in FREE_PARAMETERS])
    lo = np.array([p[2] for p in FREE_PARAMETERS])
    hi = np.array([p[3] for p in FREE_PARAMETERS])

    def fun(theta):
        try:
            return np.array([r.weighted for r in residuals(model_from_vector(theta))])
        except Exception:
            return np.full(len(_N_RES), 1e3)

    _N_RES = residuals(model_from_vector(x0))
    result = least_squares(fun, x0, bounds=(lo, hi), x_scale="jac", max_nfev=max_nfev, verbose=verbose,
                           diff_step=1e-4)
    model = calibrate(model_from_vector(result.x))
    return model, residuals(model), result
