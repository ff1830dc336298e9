"""CT number (HU) <-> relative electron density (RED): one piecewise-linear table, used both ways.

The table is matRad's default HU -> RED lookup (``matRad/hluts/matRad_default.hlut``, quoted in
../shared/reference/physics-and-clinical-facts.md section 2.4); it is not a measured calibration of
any scanner. It is simsbrt's assumption for CT export and import: a clinical CT should be imported
with its own scanner's calibration (pass ``table=`` a CtCalibration). Section 3.1 of the facts
gives the HU this table implies for our tissues (cortical bone 1.781 -> about +1530 HU, muscle
1.040 -> +42 HU, adipose 0.951 -> -89 HU, lung 0.258 -> about -750 HU).

    HU   -1024  -999   -90   -45     0    100    350    3000
    RED  0.001  0.001  0.95  0.99  1.000  1.095  1.199  2.505

The inverse needs a strictly increasing table, so the flat air segment is folded into one point:
RED 0.001 <-> -999 HU, and every HU below -999 reads as RED 0.001 (air). Above 3000 HU (metal) the
last segment is extended linearly in both directions. Export rounds HU to integers: the largest
RED slope is 0.00104 per HU (the -999..-90 segment), so a density survives export and import to
within 0.00053 (half an HU).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simsbrt.errors import SpecError

HU_MIN_STORED = -1024   # CT pixels are int16; air and outside the body
HU_MAX_STORED = 32767


@dataclass(frozen=True)
class CtCalibration:
    """A strictly increasing piecewise-linear HU -> RED table (extended linearly beyond the last point)."""

    hu: tuple[float, ...]
    red: tuple[float, ...]
    source: str = ""

    def __post_init__(self):
        hu, red = np.asarray(self.hu, float), np.asarray(self.red, float)
        if hu.ndim != 1 or hu.shape != red.shape or hu.size < 2:
            raise SpecError("ct_calibration", "needs two equally long lists of at least two points (HU, RED)")
        if not (np.all(np.diff(hu) > 0) and np.all(np.diff(red) > 0)):
            raise SpecError("ct_calibration", "HU and RED must both increase strictly (the table is used both ways)")
        if red[0] <= 0:
            raise SpecError("ct_calibration", f"RED must be > 0, got {red[0]}")

    def hu_to_red(self, hu) -> np.ndarray:
        """RED of CT numbers (float array); below the first point: the first RED (air)."""
        return _interp_extended(hu, self.hu, self.red)

    def red_to_hu(self, red) -> np.ndarray:
        """CT numbers (float) of relative electron densities; below the first point: the first HU."""
        return _interp_extended(red, self.red, self.hu)

    def stored_hu(self, red) -> np.ndarray:
        """Integer HU (int16) for a CT series: rounded and clipped to -1024..32767."""
        return np.clip(np.rint(self.red_to_hu(red)), HU_MIN_STORED, HU_MAX_STORED).astype(np.int16)

    def max_roundtrip_error_red(self) -> float:
        """The largest RED change that rounding HU to an integer can cause (half an HU x the steepest slope)."""
        slopes = np.diff(np.asarray(self.red, float)) / np.diff(np.asarray(self.hu, float))
        return 0.5 * float(slopes.max())


def _interp_extended(x, xp, fp) -> np.ndarray:
    """Piecewise-linear table lookup, flat below the first point and the last segment extended above it
    (the same rule both ways, so export and import invert each other)."""
    xp, fp, x = np.asarray(xp, float), np.asarray(fp, float), np.asarray(x, dtype=float)
    slope = (fp[-1] - fp[-2]) / (xp[-1] - xp[-2])
    return np.where(x > xp[-1], fp[-1] + (x - xp[-1]) * slope, np.interp(x, xp, fp))


# matRad default HLUT (facts 2.4) with the flat -1024..-999 air segment folded into -999 HU.
MATRAD_DEFAULT = CtCalibration(
    hu=(-999.0, -90.0, -45.0, 0.0, 100.0, 350.0, 3000.0),
    red=(0.001, 0.95, 0.99, 1.000, 1.095, 1.199, 2.505),
    source="matRad default HU->RED lookup (matRad_default.hlut; physics-and-clinical-facts.md 2.4); "
           "simsbrt's assumption, not a scanner calibration",
)
