"""Dose-response MODELS (tumour control, cord myelopathy) with parameters read from data files.

The parameter files live in simsbrt/evaluate/data/*.toml and state their source. Neither
published parameter set was retrieved for this project (facts 5.4, 5.5 and Appendix B items
1-2), so both shipped models are placeholders: every estimate carries ``verified = False`` and
a label saying so. Treat the numbers as qualitative (e.g. to rank plans), not as predictions.

Forms:
  logistic_log_dose     P = 1 / (1 + (d50_gy / D)^(4 gamma50))   (HyTEC / Niemierko, facts 5.4, 6.3)
  logistic_linear_dose  P = 1 / (1 + exp(-(beta0 + beta1_per_gy D)))   (facts 5.5)
D is the EQD2 (or BED) at the model's alpha/beta, computed from the physical dose and the
number of fractions with simsbrt.evaluate.radiobiology.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from simsbrt.errors import SpecError
from simsbrt.evaluate.radiobiology import biological_dose

FORMS = {"logistic_log_dose": ("d50_gy", "gamma50"), "logistic_linear_dose": ("beta0", "beta1_per_gy")}
_MODEL_KEYS = {"name", "endpoint", "form", "dose_quantity", "alpha_beta_gy", "verified", "source",
               "d50_gy", "gamma50", "beta0", "beta1_per_gy"}
_ANCHOR_KEYS = {"description", "eqd2_gy", "probability"}

TCP_MODEL = "tcp_hytec_spine"
MYELOPATHY_MODEL = "myelopathy_sahgal_placeholder"


def logistic_tcp(dose_gy, d50_gy: float, gamma50: float):
    """HyTEC/Niemierko logistic: 1 / (1 + (d50/D)^(4 gamma50)); gamma50 = D dP/dD at D = d50."""
    dose = np.asarray(dose_gy, dtype=float)
    with np.errstate(divide="ignore"):
        p = 1.0 / (1.0 + np.power(d50_gy / dose, 4.0 * gamma50))
    p = np.where(dose > 0, p, 0.0)
    return float(p) if p.ndim == 0 else p


def logistic_linear(dose_gy, beta0: float, beta1_per_gy: float):
    """1 / (1 + exp(-(beta0 + beta1 D)))."""
    p = 1.0 / (1.0 + np.exp(-(beta0 + beta1_per_gy * np.asarray(dose_gy, dtype=float))))
    return float(p) if np.ndim(p) == 0 else p


@dataclass(frozen=True)
class Anchor:
    description: str
    eqd2_gy: float
    probability: float


@dataclass(frozen=True)
class DoseResponseModel:
    name: str
    endpoint: str
    form: str
    dose_quantity: str
    alpha_beta_gy: float
    parameters: tuple[tuple[str, float], ...]
    verified: bool
    source: str
    anchors: tuple[Anchor, ...]

    @property
    def label(self) -> str:
        status = "verified parameters" if self.verified else "UNVERIFIED placeholder parameters"
        return f"MODEL {self.name} ({status}; {self.endpoint}): {self.source}"

    def probability_of_biological_dose(self, dose_gy):
        """The model probability for a BED/EQD2 dose already at this model's alpha/beta."""
        p = dict(self.parameters)
        if self.form == "logistic_log_dose":
            return logistic_tcp(dose_gy, p["d50_gy"], p["gamma50"])
        return logistic_linear(dose_gy, p["beta0"], p["beta1_per_gy"])


@dataclass(frozen=True)
class ModelEstimate:
    probability: float
    biological_dose_gy: float
    dose_quantity: str
    alpha_beta_gy: float
    model_name: str
    verified: bool
    label: str

    def to_dict(self) -> dict:
        """JSON-ready: arrays become lists."""
        return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in self.__dict__.items()}


def load_model(name_or_path) -> DoseResponseModel:
    """Load a dose-response model by built-in name (simsbrt/evaluate/data/NAME.toml) or path."""
    text_name = str(name_or_path)
    builtin = resources.files("simsbrt.evaluate").joinpath("data", f"{text_name}.toml")
    if "/" not in text_name and builtin.is_file():
        text, source = builtin.read_text(), f"simsbrt/evaluate/data/{text_name}.toml"
    elif Path(name_or_path).is_file():
        text, source = Path(name_or_path).read_text(), str(name_or_path)
    else:
        raise SpecError("model", f"no built-in model or file named {text_name!r}")
    return parse_model(tomllib.loads(text), source)


def parse_model(data: dict, source: str | None = None) -> DoseResponseModel:
    for key in data:
        if key not in ("model", "anchor"):
            raise SpecError(key, "unknown key; allowed: model, anchor", source)
    head = data.get("model")
    if not isinstance(head, dict):
        raise SpecError("model", "needs a [model] table", source)
    for key in head:
        if key not in _MODEL_KEYS:
            raise SpecError(f"model.{key}", "unknown key", source)
    form = head.get("form")
    if form not in FORMS:
        raise SpecError("model.form", f"must be one of {sorted(FORMS)}, got {form!r}", source)
    quantity = head.get("dose_quantity")
    if quantity not in ("BED", "EQD2"):
        raise SpecError("model.dose_quantity", f"must be BED or EQD2, got {quantity!r}", source)
    alpha_beta = _positive(head, "alpha_beta_gy", source)
    params = tuple((key, _number(head, key, source)) for key in FORMS[form])
    if form == "logistic_log_dose":
        for key, value in params:
            if value <= 0:
                raise SpecError(f"model.{key}", f"needs a positive value, got {value}", source)
    verified = head.get("verified")
    if not isinstance(verified, bool):
        raise SpecError("model.verified", "needs true or false", source)
    anchors = tuple(_anchor(a, i, source) for i, a in enumerate(data.get("anchor", [])))
    return DoseResponseModel(str(head.get("name", "")), str(head.get("endpoint", "")), form, quantity,
                             alpha_beta, params, verified, str(head.get("source", "")), anchors)


def _number(table: dict, key: str, source, prefix: str = "model.") -> float:
    value = table.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        raise SpecError(f"{prefix}{key}", f"needs a finite number, got {value!r}", source)
    return float(value)


def _positive(table: dict, key: str, source) -> float:
    value = _number(table, key, source)
    if value <= 0:
        raise SpecError(f"model.{key}", f"needs a positive value, got {value}", source)
    return value


def _anchor(raw, index: int, source) -> Anchor:
    prefix = f"anchor[{index}]."
    if not isinstance(raw, dict) or set(raw) - _ANCHOR_KEYS:
        raise SpecError(f"anchor[{index}]", f"needs a table with keys {sorted(_ANCHOR_KEYS)}", source)
    p = _number(raw, "probability", source, prefix)
    if not 0 < p < 1:
        raise SpecError(f"{prefix}probability", f"needs 0 < p < 1, got {p}", source)
    return Anchor(str(raw.get("description", "")), _number(raw, "eqd2_gy", source, prefix), p)


def _estimate(model: DoseResponseModel, dose_gy, n_fractions) -> ModelEstimate:
    bio = biological_dose(dose_gy, n_fractions, model.alpha_beta_gy, model.dose_quantity)
    return ModelEstimate(model.probability_of_biological_dose(bio), bio, model.dose_quantity,
                         model.alpha_beta_gy, model.name, model.verified, model.label)


def tumour_control_probability(dose_gy, n_fractions, model=TCP_MODEL) -> ModelEstimate:
    """Local-control probability for a physical dose (e.g. the prescription or a GTV D_x) in
    n_fractions, via EQD2 at alpha/beta 6 (HyTEC form, facts 5.4). Labelled with its status."""
    return _estimate(model if isinstance(model, DoseResponseModel) else load_model(model), dose_gy, n_fractions)


def myelopathy_risk(point_dose_gy, n_fractions, model=MYELOPATHY_MODEL) -> ModelEstimate:
    """Myelopathy risk for a cord / thecal-sac point dose (Pmax, or D0.03cc as its proxy) in
    n_fractions, via EQD2 at alpha/beta 2 (facts 5.5). A labelled placeholder model."""
    return _estimate(model if isinstance(model, DoseResponseModel) else load_model(model),
                     point_dose_gy, n_fractions)
