"""The 6 MV machine / beam model: parameters as data (simsbrt/dose/data/beam_6mv.json).

The formula lives in kernels/device/beam.py (one place, compiled for CPU and GPU); this module
holds its parameters, the head-scatter factor and the absolute calibration.

Calibration (stated once, used everywhere): 1 MU gives 0.01 Gy (1 cGy) at dmax on the central
axis of a 10 x 10 cm field (defined at the isocentre plane) in water at SSD 100 cm. A beamlet
weight of 1 means 1 MU delivered through that beamlet's aperture (its iso-plane square), with
the head-scatter factor of the field it belongs to; dose values are in Gy.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from importlib import resources
from pathlib import Path

import numpy as np

from simsbrt.errors import SpecError

DEFAULT_BEAM_FILE = "beam_6mv.json"
REFERENCE_FIELD_MM = 100.0
CALIBRATION_STATEMENT = (
    "1 MU = 0.01 Gy at dmax on the central axis of a 10 x 10 cm field (iso plane) in water at SSD 100 cm; "
    "a beamlet weight of 1 = 1 MU through that beamlet's iso-plane aperture; doses in Gy"
)


@dataclass(frozen=True)
class BeamModel:
    """Parameters of the pencil-beam model (see kernels/device/beam.py for the formula)."""

    name: str
    sad_mm: float
    mu_per_mm: float
    beta_per_mm: tuple[float, float, float]
    weights: tuple[float, float, float]
    contamination_weight: float
    contamination_beta_per_mm: float
    sigma_source_mm: float
    sigma_primary0_mm: float
    sigma_primary_slope: float
    sigma_medium_mm: float
    sigma_long_mm: float
    head_scatter_amplitude: float
    head_scatter_length_mm: float
    gy_per_mu_calibration: float = 1.0

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "name":
                continue
            values = value if isinstance(value, tuple) else (value,)
            if any(not math.isfinite(float(x)) for x in values):
                raise SpecError(f"beam.{f.name}", f"must be finite, got {value}")
        if any(b <= self.mu_per_mm for b in self.beta_per_mm):
            raise SpecError("beam.beta_per_mm", "every beta must exceed mu (Bortfeld depth term)")
        if any(w < 0 for w in self.weights) or self.contamination_weight < 0:
            raise SpecError("beam.weights", "weights must be non-negative")
        if min(self.sigma_source_mm, self.sigma_medium_mm, self.sigma_long_mm) <= 0:
            raise SpecError("beam.sigma", "lateral widths must be positive")
        if self.sad_mm <= 0 or self.gy_per_mu_calibration <= 0:
            raise SpecError("beam.sad_mm", "SAD and calibration must be positive")

    def as_array(self) -> np.ndarray:
        """The float64 parameter vector of kernels/device/beam.py (layout P_*)."""
        from simsbrt.kernels.device import beam as b

        p = np.zeros(b.N_BEAM_PARAMS)
        p[b.P_MU] = self.mu_per_mm
        p[b.P_BETA1], p[b.P_BETA2], p[b.P_BETA3] = self.beta_per_mm
        p[b.P_W1], p[b.P_W2], p[b.P_W3] = self.weights
        p[b.P_WE] = self.contamination_weight
        p[b.P_BETAE] = self.contamination_beta_per_mm
        p[b.P_SIG_SRC] = self.sigma_source_mm
        p[b.P_SIG_P0] = self.sigma_primary0_mm
        p[b.P_SIG_PSLOPE] = self.sigma_primary_slope
        p[b.P_SIG2] = self.sigma_medium_mm
        p[b.P_SIG3] = self.sigma_long_mm
        p[b.P_SAD] = self.sad_mm
        p[b.P_GY_PER_MU] = self.gy_per_mu_calibration
        return p

    def head_scatter_factor(self, equivalent_square_mm: float) -> float:
        """Sc: head-scatter (collimator) factor of a field, 1 for the 10 x 10 cm reference field.

        Empirical saturating form Sc(s) = (1 + h (1 - exp(-s / L))) / (1 + h (1 - exp(-100 / L)))
        with s the equivalent square (iso plane), fitted with the phantom scatter to facts 1.7.
        """
        s = max(float(equivalent_square_mm), 0.0)
        h, length = self.head_scatter_amplitude, self.head_scatter_length_mm
        return (1.0 + h * (1.0 - math.exp(-s / length))) / (1.0 + h * (1.0 - math.exp(-REFERENCE_FIELD_MM / length)))

    def with_calibration(self, gy_per_mu: float) -> "BeamModel":
        d = asdict(self)
        d["gy_per_mu_calibration"] = float(gy_per_mu)
        return BeamModel(**_tuples(d))

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict, source: str | None = None) -> "BeamModel":
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise SpecError(f"beam.{sorted(unknown)[0]}", "unknown key", source)
        missing = known - set(data) - {"gy_per_mu_calibration"}
        if missing:
            raise SpecError(f"beam.{sorted(missing)[0]}", "missing", source)
        return cls(**_tuples(dict(data)))


def _tuples(d: dict) -> dict:
    for key in ("beta_per_mm", "weights"):
        if key in d:
            d[key] = tuple(float(x) for x in d[key])
    return d


def load_beam_model(path: str | Path | None = None) -> BeamModel:
    """Load the beam model file (default: the package's fitted 6 MV model)."""
    if path is None:
        text = resources.files("simsbrt.dose").joinpath("data", DEFAULT_BEAM_FILE).read_text()
        source = f"simsbrt/dose/data/{DEFAULT_BEAM_FILE}"
        doc = json.loads(text)
    else:
        from simsbrt.io.text_input import read_json

        source = str(path)
        doc = read_json(path, "beam")
    if not isinstance(doc.get("parameters"), dict):
        raise SpecError("parameters", "missing beam parameters", source)
    try:
        return BeamModel.from_dict(doc["parameters"], source)
    except (TypeError, ValueError, KeyError) as exc:
        if isinstance(exc, SpecError):
            raise
        raise SpecError("parameters", f"malformed beam parameters ({exc})", source) from None
