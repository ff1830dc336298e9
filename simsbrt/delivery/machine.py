"""The treatment machine's delivery limits as data (simsbrt/dose/data/machine_*.toml).

A MachineModel holds the MLC leaf bank (leaf-pair widths at the isocentre plane, from -Y to +Y of
the IEC beam-limiting-device frame; leaves move along X), the leaf speed, minimum tip-to-tip gap
and travel range, the jaw limits, the gantry speed, the dose-rate cap and the MU calibration.
Every value in the files names its source; the loader refuses unknown keys, missing keys and
values outside physical ranges (SpecError naming the field).
"""
from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from simsbrt.errors import SpecError

DEFAULT_MACHINE = "truebeam_hd120"
MACHINES = ("truebeam_hd120", "truebeam_millennium120")
DICOM_NAMES = {"TB_HD120": "truebeam_hd120", "TB_MLC120": "truebeam_millennium120"}   # the files' dicom_name

_SECTIONS = {
    "machine": {"name", "dicom_name", "description", "source"},
    "mlc": {"leaf_widths_mm", "leaf_widths_source", "max_leaf_speed_mm_per_s", "max_leaf_speed_source",
            "min_leaf_gap_mm", "min_leaf_gap_source", "leaf_position_min_mm", "leaf_position_max_mm",
            "leaf_position_source", "transmission_frac", "transmission_source"},
    "jaws": {"x_min_mm", "x_max_mm", "y_min_mm", "y_max_mm", "source"},
    "gantry": {"max_speed_deg_per_s", "source"},
    "beam": {"energy", "max_dose_rate_mu_per_min", "max_dose_rate_source", "calibration_gy_per_mu",
             "calibration_reference", "calibration_source"},
}
_OPTIONAL = {("machine", "description")}


@dataclass(frozen=True)
class MachineModel:
    name: str
    dicom_name: str               # RTPLAN TreatmentMachineName (<= 16 characters)
    leaf_widths_mm: tuple[float, ...]
    max_leaf_speed_mm_per_s: float
    min_leaf_gap_mm: float
    leaf_position_min_mm: float
    leaf_position_max_mm: float
    transmission_frac: float
    jaw_x_mm: tuple[float, float]
    jaw_y_mm: tuple[float, float]
    max_gantry_speed_deg_per_s: float
    energy: str
    max_dose_rate_mu_per_min: float
    calibration_gy_per_mu: float
    sources: dict

    @property
    def n_leaf_pairs(self) -> int:
        return len(self.leaf_widths_mm)

    @property
    def leaf_boundaries_mm(self) -> np.ndarray:
        """Leaf-pair boundaries along Y (iso plane, mm), n_pairs + 1 values centred on the beam axis."""
        edges = np.concatenate([[0.0], np.cumsum(self.leaf_widths_mm)])
        return edges - 0.5 * edges[-1]

    @property
    def max_dose_rate_mu_per_s(self) -> float:
        return self.max_dose_rate_mu_per_min / 60.0

    def to_dict(self) -> dict:
        return {"name": self.name, "dicom_name": self.dicom_name, "n_leaf_pairs": self.n_leaf_pairs,
                "leaf_widths_mm": list(self.leaf_widths_mm),
                "max_leaf_speed_mm_per_s": self.max_leaf_speed_mm_per_s, "min_leaf_gap_mm": self.min_leaf_gap_mm,
                "leaf_position_mm": [self.leaf_position_min_mm, self.leaf_position_max_mm],
                "jaw_x_mm": list(self.jaw_x_mm), "jaw_y_mm": list(self.jaw_y_mm),
                "max_gantry_speed_deg_per_s": self.max_gantry_speed_deg_per_s, "energy": self.energy,
                "max_dose_rate_mu_per_min": self.max_dose_rate_mu_per_min,
                "calibration_gy_per_mu": self.calibration_gy_per_mu}


def _positive(value, field: str, source: str, upper: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SpecError(field, f"must be a finite number, got {value!r}", source)
    if not 0 < value <= upper:
        raise SpecError(field, f"must be within (0, {upper:g}], got {value}", source)
    return float(value)


def _number(value, field: str, source: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SpecError(field, f"must be a finite number, got {value!r}", source)
    return float(value)


def machine_from_dict(doc: dict, source: str = "<machine>") -> MachineModel:
    """Validate a parsed machine file (unknown or missing keys, bad values -> SpecError naming the field)."""
    if not isinstance(doc, dict):
        raise SpecError("machine", "must be a TOML table", source)
    for section in doc:
        if section not in _SECTIONS:
            raise SpecError(section, f"unknown section (allowed: {', '.join(_SECTIONS)})", source)
    for section, keys in _SECTIONS.items():
        table = doc.get(section)
        if not isinstance(table, dict):
            raise SpecError(section, "missing section", source)
        for key in table:
            if key not in keys:
                raise SpecError(f"{section}.{key}", f"unknown key (allowed: {', '.join(sorted(keys))})", source)
        for key in keys:
            if key not in table and (section, key) not in _OPTIONAL:
                raise SpecError(f"{section}.{key}", "missing", source)
    mlc, jaws, gantry, beam = doc["mlc"], doc["jaws"], doc["gantry"], doc["beam"]
    widths = mlc["leaf_widths_mm"]
    if not isinstance(widths, list) or not widths:
        raise SpecError("mlc.leaf_widths_mm", "needs a list of leaf-pair widths (mm)", source)
    widths = tuple(_positive(w, "mlc.leaf_widths_mm", source, 50.0) for w in widths)
    lo, hi = (_number(mlc[k], f"mlc.{k}", source) for k in ("leaf_position_min_mm", "leaf_position_max_mm"))
    if not lo < 0 < hi:
        raise SpecError("mlc.leaf_position_min_mm", f"needs min < 0 < max, got {lo}, {hi}", source)
    jx = tuple(_number(jaws[k], f"jaws.{k}", source) for k in ("x_min_mm", "x_max_mm"))
    jy = tuple(_number(jaws[k], f"jaws.{k}", source) for k in ("y_min_mm", "y_max_mm"))
    for name, (a, b) in (("jaws.x_min_mm", jx), ("jaws.y_min_mm", jy)):
        if not a < 0 < b:
            raise SpecError(name, f"needs min < 0 < max, got {a}, {b}", source)
    half_bank = 0.5 * sum(widths)
    if jy[0] < -half_bank - 1e-9 or jy[1] > half_bank + 1e-9:
        raise SpecError("jaws.y_min_mm", f"Y jaws {jy} reach beyond the leaf bank (+-{half_bank:g} mm)", source)
    transmission = _number(mlc["transmission_frac"], "mlc.transmission_frac", source)
    if not 0 <= transmission < 0.2:
        raise SpecError("mlc.transmission_frac", f"must be within [0, 0.2), got {transmission}", source)
    gap = _positive(mlc["min_leaf_gap_mm"], "mlc.min_leaf_gap_mm", source, 10.0)
    calibration = _positive(beam["calibration_gy_per_mu"], "beam.calibration_gy_per_mu", source, 1.0)
    if abs(calibration - 0.01) > 1e-12:
        raise SpecError("beam.calibration_gy_per_mu", "simsbrt's beam model is calibrated to 0.01 Gy/MU at dmax, "
                                                      f"SSD 100, 10 x 10 (simsbrt.dose.machine); got {calibration}",
                        source)
    dicom_name = doc["machine"]["dicom_name"]
    if not isinstance(dicom_name, str) or not 0 < len(dicom_name) <= 16:
        raise SpecError("machine.dicom_name", f"needs 1-16 characters (DICOM SH), got {dicom_name!r}", source)
    sources = {f"{s}.{k}": v for s, t in doc.items() for k, v in t.items() if k.endswith("source")}
    return MachineModel(
        name=str(doc["machine"]["name"]), dicom_name=dicom_name, leaf_widths_mm=widths,
        max_leaf_speed_mm_per_s=_positive(mlc["max_leaf_speed_mm_per_s"], "mlc.max_leaf_speed_mm_per_s", source,
                                          200.0),
        min_leaf_gap_mm=gap, leaf_position_min_mm=lo, leaf_position_max_mm=hi, transmission_frac=transmission,
        jaw_x_mm=jx, jaw_y_mm=jy,
        max_gantry_speed_deg_per_s=_positive(gantry["max_speed_deg_per_s"], "gantry.max_speed_deg_per_s", source,
                                             30.0),
        energy=str(beam["energy"]),
        max_dose_rate_mu_per_min=_positive(beam["max_dose_rate_mu_per_min"], "beam.max_dose_rate_mu_per_min",
                                           source, 5000.0),
        calibration_gy_per_mu=calibration, sources=sources)


def load_machine(name_or_path: str | Path | None = None) -> MachineModel:
    """A machine by built-in name (truebeam_hd120, truebeam_millennium120; or its DICOM name) or from a TOML file."""
    key = DEFAULT_MACHINE if name_or_path is None else str(name_or_path)
    key = DICOM_NAMES.get(key, key)
    if key in MACHINES:
        text = resources.files("simsbrt.dose").joinpath("data", f"machine_{key}.toml").read_text()
        source = f"simsbrt/dose/data/machine_{key}.toml"
    else:
        path = Path(key)
        if not path.is_file():
            raise SpecError("machine", f"not a built-in machine ({', '.join(MACHINES)}) and no such file: {key}")
        text, source = path.read_text(), str(path)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError("machine", f"not valid TOML: {exc}", source) from None
    return machine_from_dict(doc, source)
