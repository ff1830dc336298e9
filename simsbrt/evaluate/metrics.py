"""DVH metric names as strings: "D2%", "D0.03cc", "V30Gy", "V30Gy%", "Dmean", "Dmax", "Dmin".

Grammar (case-sensitive, no spaces):
  D<x>%      dose (Gy) received by at least the hottest x % of the structure, 0 <= x <= 100
  D<v>cc     dose (Gy) received by at least the hottest v cm3, v > 0
  V<d>Gy     volume (cm3) receiving >= d Gy
  V<d>Gy%    volume (% of the structure) receiving >= d Gy
  Dmean, Dmax, Dmin   mean / maximum / minimum voxel dose (Gy)

Definitions follow ICRU 83 and the trial's Table 1 footnote (facts section 6.1).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from simsbrt.errors import SpecError

DOSE_AT_PERCENT = "dose_at_percent"
DOSE_AT_VOLUME_CC = "dose_at_volume_cc"
VOLUME_CC_AT_DOSE = "volume_cc_at_dose"
VOLUME_PERCENT_AT_DOSE = "volume_percent_at_dose"
DOSE_MEAN = "dose_mean"
DOSE_MAX = "dose_max"
DOSE_MIN = "dose_min"

_NUMBER = r"(\d+(?:\.\d+)?)"
_PATTERNS = (
    (re.compile(rf"^D{_NUMBER}%$"), DOSE_AT_PERCENT, "Gy"),
    (re.compile(rf"^D{_NUMBER}cc$"), DOSE_AT_VOLUME_CC, "Gy"),
    (re.compile(rf"^V{_NUMBER}Gy%$"), VOLUME_PERCENT_AT_DOSE, "%"),
    (re.compile(rf"^V{_NUMBER}Gy$"), VOLUME_CC_AT_DOSE, "cc"),
)
_NAMED = {"Dmean": DOSE_MEAN, "Dmax": DOSE_MAX, "Dmin": DOSE_MIN}

EXAMPLES = '"D2%", "D50%", "D98%", "D0.03cc", "V30Gy", "V30Gy%", "Dmean", "Dmax", "Dmin"'


@dataclass(frozen=True)
class Metric:
    """A parsed metric: its canonical name, kind, numeric parameter (%, cc or Gy) and result unit."""

    name: str
    kind: str
    parameter: float | None
    unit: str

    @property
    def is_dose(self) -> bool:
        return self.unit == "Gy"


def parse_metric(text, field: str = "metric", source: str | None = None) -> Metric:
    """Parse a metric name; a bad name raises SpecError naming ``field``."""
    if isinstance(text, Metric):
        return text
    if not isinstance(text, str):
        raise SpecError(field, f"metric must be a string such as {EXAMPLES}, got {text!r}", source)
    if text in _NAMED:
        return Metric(text, _NAMED[text], None, "Gy")
    for pattern, kind, unit in _PATTERNS:
        match = pattern.match(text)
        if match:
            value = float(match.group(1))
            _check_parameter(kind, value, text, field, source)
            return Metric(text, kind, value, unit)
    raise SpecError(field, f"unknown metric {text!r}; expected one of the forms {EXAMPLES}", source)


def _check_parameter(kind: str, value: float, text: str, field: str, source: str | None) -> None:
    if kind == DOSE_AT_PERCENT and not 0.0 <= value <= 100.0:
        raise SpecError(field, f"{text!r}: the percentage must lie in [0, 100]", source)
    if kind == DOSE_AT_VOLUME_CC and value <= 0.0:
        raise SpecError(field, f"{text!r}: the volume must be positive", source)
