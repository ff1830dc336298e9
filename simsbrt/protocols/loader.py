"""Dose protocols as data: TOML files parsed into frozen dataclasses, strictly validated.

File layout (see sib_trial.toml)::

    [protocol]
    name = "sib_trial"
    description = "..."
    source = "..."
    n_fractions = 5
    required_structures = ["PTV_Eval", "GTV"]          # missing/empty -> plan not feasible
    optional_structures = ["SpinalCord_PRV02", "ThecalSac"]  # may be absent at a level
    comparator = "uniform"            # optional: the uniform protocol its SIB plan is compared with
                                      # (built-in name, or a TOML path relative to this file)

    [prescription]
    structure = "PTV_Eval"
    metric = "D90%"
    dose_gy = 30.0

    [[limit]]
    structure = "PTV_Eval"
    metric = "D2%"
    unit = "Gy"                       # must match the metric (Gy for D*, cc for V*Gy, % for V*Gy%)
    optimal = { min = 42.0, max = 48.0 }
    mandatory = { max = 51.0 }
    note = "140-160 % / 170 %"

Ranges are closed (a value exactly at a limit meets it). Unknown keys, unknown structures or
metrics, negative values, min > max, an optimal range outside the mandatory one, a limit on a
structure not listed in the protocol, and duplicate (structure, metric) pairs are SpecErrors.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

from simsbrt.errors import SpecError
from simsbrt.evaluate.metrics import Metric, parse_metric

MIN_PRESCRIPTION_GY = 1.0     # a prescription below 1 Gy in total is not a course of radiotherapy
MAX_FRACTIONS = 100           # the longest conventional courses have about 40 fractions
MAX_DOSE_GY = 200.0           # protocol doses (totals over the fractions) above this are typos

# Structure names used throughout simsbrt (phantom brief; trial structures: sib-protocol.md).
KNOWN_STRUCTURES = (
    "Body", "Vertebrae", "SpinalCanal", "SpinalCord", "SpinalCord_PRV02", "ThecalSac",
    "GTV", "CTV", "PTV", "PTV_Eval", "Lungs",
)

_PROTOCOL_KEYS = {"name", "description", "source", "n_fractions", "required_structures", "optional_structures",
                  "comparator"}
_PRESCRIPTION_KEYS = {"structure", "metric", "dose_gy"}
_LIMIT_KEYS = {"structure", "metric", "unit", "optimal", "mandatory", "note"}
_RANGE_KEYS = {"min", "max"}
_TOP_KEYS = {"protocol", "prescription", "limit"}


@dataclass(frozen=True)
class Range:
    """A closed interval [min_value, max_value] in the metric's unit; None means unbounded."""

    min_value: float | None
    max_value: float | None
    unit: str

    def contains(self, value: float, tolerance: float = 0.0) -> bool:
        if self.min_value is not None and value < self.min_value - tolerance:
            return False
        if self.max_value is not None and value > self.max_value + tolerance:
            return False
        return True

    def lies_within(self, other: "Range") -> bool:
        low_ok = other.min_value is None or (self.min_value is not None and self.min_value >= other.min_value)
        high_ok = other.max_value is None or (self.max_value is not None and self.max_value <= other.max_value)
        return low_ok and high_ok

    def describe(self) -> str:
        u = self.unit if self.unit == "%" else f" {self.unit}"
        if self.min_value is not None and self.max_value is not None:
            if self.min_value == self.max_value:
                return f"= {_fmt(self.min_value)}{u}"
            return f">= {_fmt(self.min_value)} and <= {_fmt(self.max_value)}{u}"
        if self.min_value is not None:
            return f">= {_fmt(self.min_value)}{u}"
        return f"<= {_fmt(self.max_value)}{u}"

    def to_dict(self) -> dict:
        return {"min": self.min_value, "max": self.max_value, "unit": self.unit}


def _fmt(value: float) -> str:
    return f"{value:g}"


@dataclass(frozen=True)
class Prescription:
    structure: str
    metric: Metric
    dose_gy: float


@dataclass(frozen=True)
class Limit:
    """One Table-1 row: a metric on a structure with optimal and/or mandatory ranges."""

    structure: str
    metric: Metric
    optimal: Range | None
    mandatory: Range | None
    note: str = ""

    @property
    def name(self) -> str:
        """A readable name of the binding (mandatory) limit, e.g. 'SpinalCord_PRV02 D0.03cc <= 25 Gy'."""
        rng = self.mandatory or self.optimal
        return f"{self.structure} {self.metric.name} {rng.describe()}"


@dataclass(frozen=True)
class Protocol:
    name: str
    description: str
    source: str
    n_fractions: int
    prescription: Prescription
    required_structures: tuple[str, ...]
    optional_structures: tuple[str, ...]
    limits: tuple[Limit, ...]
    comparator: str = ""        # the uniform protocol this (SIB) protocol is compared with; "" = none
    origin: str = field(default="", compare=False)   # where it was read from (built-in file or path)

    @property
    def structures(self) -> tuple[str, ...]:
        return self.required_structures + self.optional_structures

    def to_dict(self) -> dict:
        """The protocol as JSON-able data (what `simsbrt protocol show --json` prints and results record)."""
        rx = self.prescription
        return {
            "name": self.name, "description": self.description, "source": self.source,
            "n_fractions": self.n_fractions, "origin": self.origin, "comparator": self.comparator,
            "prescription": {"structure": rx.structure, "metric": rx.metric.name, "dose_gy": rx.dose_gy},
            "required_structures": list(self.required_structures),
            "optional_structures": list(self.optional_structures),
            "limits": [{"structure": lim.structure, "metric": lim.metric.name, "unit": lim.metric.unit,
                        "optimal": lim.optimal.to_dict() if lim.optimal else None,
                        "mandatory": lim.mandatory.to_dict() if lim.mandatory else None,
                        "note": lim.note} for lim in self.limits],
        }

    def max_dose_limit_gy(self, structure: str) -> float:
        """The mandatory maximum (e.g. D0.03cc <= 25 Gy) of an organ; SpecError naming it if there is none."""
        for limit in self.limits:
            if limit.structure == structure and limit.mandatory is not None and limit.mandatory.max_value is not None:
                return float(limit.mandatory.max_value)
        raise SpecError(structure, f"protocol {self.name} has no maximum-dose limit for it")


def available_protocols() -> list[str]:
    """Names of the protocol files shipped in simsbrt/protocols/."""
    folder = resources.files("simsbrt.protocols")
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def load_protocol(name_or_path) -> Protocol:
    """Load a built-in protocol by name (e.g. "sib_trial", "uniform") or a TOML file by path."""
    from simsbrt.io.text_input import parse_toml

    text, source = _read_protocol_text(name_or_path)
    protocol = parse_protocol(parse_toml(text, "toml", source), source)
    return replace(protocol, origin=source, comparator=_comparator_ref(protocol.comparator, source))


def _comparator_ref(ref: str, source: str) -> str:
    """A comparator given as a file path is read relative to the protocol file that names it."""
    if not ref or _is_builtin(ref) or Path(ref).is_absolute() or source.startswith("simsbrt/protocols/"):
        return ref
    return str(Path(source).parent / ref)


def _is_builtin(name: str) -> bool:
    return ("/" not in name and not name.endswith(".toml")
            and resources.files("simsbrt.protocols").joinpath(f"{name}.toml").is_file())


def _read_protocol_text(name_or_path) -> tuple[str, str]:
    text_name = str(name_or_path)
    if _is_builtin(text_name):
        builtin = resources.files("simsbrt.protocols").joinpath(f"{text_name}.toml")
        return builtin.read_text(), f"simsbrt/protocols/{text_name}.toml"
    path = Path(name_or_path)
    if not path.is_file():
        raise SpecError("protocol", f"no built-in protocol or file named {text_name!r}; "
                                    f"built-in: {', '.join(available_protocols())}")
    from simsbrt.io.text_input import read_text_file

    return read_text_file(path, "protocol"), str(path)


def protocol_from_dict(doc: dict, source: str = "recorded protocol") -> Protocol:
    """A Protocol back from Protocol.to_dict() (as recorded in PLAN.h5 and comparison.json), validated again."""
    def bounds(rng):
        return None if rng is None else {k: rng[k] for k in ("min", "max") if rng.get(k) is not None}

    try:
        head = {k: doc[k] for k in ("name", "description", "source", "n_fractions", "required_structures",
                                    "optional_structures")}
        if doc.get("comparator"):
            head["comparator"] = doc["comparator"]
        limits = [{k: v for k, v in (("structure", lim["structure"]), ("metric", lim["metric"]),
                                     ("unit", lim["unit"]), ("optimal", bounds(lim["optimal"])),
                                     ("mandatory", bounds(lim["mandatory"])), ("note", lim["note"])) if v is not None}
                  for lim in doc["limits"]]
        data = {"protocol": head, "prescription": dict(doc["prescription"]), "limit": limits}
    except (KeyError, TypeError) as exc:
        raise SpecError("protocol", f"not a recorded protocol ({exc})", source) from None
    return replace(parse_protocol(data, source), origin=str(doc.get("origin", "")))


def parse_protocol(data: dict, source: str | None = None) -> Protocol:
    """Validate a protocol dictionary (as read from TOML) and build a Protocol."""
    _reject_unknown(data, _TOP_KEYS, "", source)
    head = _table(data, "protocol", source)
    _reject_unknown(head, _PROTOCOL_KEYS, "protocol.", source)
    required = _structure_list(head, "required_structures", source, allow_empty=False)
    optional = _structure_list(head, "optional_structures", source, allow_empty=True)
    both = set(required) & set(optional)
    if both:
        raise SpecError("protocol.optional_structures", f"also listed as required: {sorted(both)}", source)
    structures = required + optional
    limits_raw = data.get("limit")
    if not isinstance(limits_raw, list) or not limits_raw:
        raise SpecError("limit", "needs at least one [[limit]] table", source)
    limits = tuple(_parse_limit(raw, i, structures, source) for i, raw in enumerate(limits_raw))
    _reject_duplicates(limits, source)
    return Protocol(
        name=_string(head, "name", "protocol.", source),
        description=str(head.get("description", "")),
        source=str(head.get("source", "")),
        n_fractions=_n_fractions(head, source),
        prescription=_parse_prescription(_table(data, "prescription", source), structures, source),
        required_structures=required,
        optional_structures=optional,
        limits=limits,
        comparator=_optional_string(head, "comparator", "protocol.", source),
    )


def _reject_unknown(table: dict, allowed: set, prefix: str, source) -> None:
    for key in table:
        if key not in allowed:
            raise SpecError(f"{prefix}{key}", f"unknown key; allowed: {', '.join(sorted(allowed))}", source)


def _table(data: dict, key: str, source) -> dict:
    value = data.get(key)
    if not isinstance(value, dict):
        raise SpecError(key, f"needs a [{key}] table", source)
    return value


def _string(table: dict, key: str, prefix: str, source) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value:
        raise SpecError(f"{prefix}{key}", "needs a non-empty string", source)
    return value


def _optional_string(table: dict, key: str, prefix: str, source) -> str:
    return _string(table, key, prefix, source) if key in table else ""


def _n_fractions(head: dict, source) -> int:
    value = head.get("n_fractions")
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_FRACTIONS:
        raise SpecError("protocol.n_fractions", f"needs an integer within 1..{MAX_FRACTIONS}, got {value!r}", source)
    return value


def _structure_name(value, field: str, source, allowed=KNOWN_STRUCTURES) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise SpecError(field, f"unknown structure {value!r}; known: {', '.join(allowed)}", source)
    return value


def _structure_list(head: dict, key: str, source, allow_empty: bool) -> tuple[str, ...]:
    value = head.get(key, [] if allow_empty else None)
    field = f"protocol.{key}"
    if not isinstance(value, list) or (not value and not allow_empty):
        raise SpecError(field, "needs a list of structure names", source)
    names = tuple(_structure_name(v, f"{field}[{i}]", source) for i, v in enumerate(value))
    if len(set(names)) != len(names):
        raise SpecError(field, "lists a structure twice", source)
    return names


def _parse_prescription(table: dict, structures, source) -> Prescription:
    _reject_unknown(table, _PRESCRIPTION_KEYS, "prescription.", source)
    structure = _structure_name(table.get("structure"), "prescription.structure", source, structures)
    metric = parse_metric(table.get("metric"), "prescription.metric", source)
    if not metric.is_dose:
        raise SpecError("prescription.metric", f"{metric.name!r} is not a dose metric", source)
    dose = _number(table.get("dose_gy"), "prescription.dose_gy", source)
    if not MIN_PRESCRIPTION_GY <= dose <= MAX_DOSE_GY:
        raise SpecError("prescription.dose_gy", f"needs a dose within {MIN_PRESCRIPTION_GY:g}..{MAX_DOSE_GY:g} Gy, "
                                                f"got {dose:g}", source)
    return Prescription(structure, metric, dose)


def _number(value, field: str, source) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SpecError(field, f"needs a finite number, got {value!r}", source)
    return float(value)


def _parse_range(raw, field: str, unit: str, source) -> Range | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or not raw:
        raise SpecError(field, "needs a table with min and/or max", source)
    _reject_unknown(raw, _RANGE_KEYS, f"{field}.", source)
    bounds = {}
    for key in ("min", "max"):
        if key in raw:
            value = _number(raw[key], f"{field}.{key}", source)
            if value < 0:
                raise SpecError(f"{field}.{key}", f"negative value {value} {unit}", source)
            if unit == "Gy" and value > MAX_DOSE_GY:
                raise SpecError(f"{field}.{key}", f"{value:g} Gy is above {MAX_DOSE_GY:g} Gy (no course of "
                                                  "radiotherapy comes near it)", source)
            if unit == "%" and value > 100:
                raise SpecError(f"{field}.{key}", f"a percentage above 100: {value}", source)
            bounds[key] = value
    if "min" in bounds and "max" in bounds and bounds["min"] > bounds["max"]:
        raise SpecError(field, f"min {bounds['min']} > max {bounds['max']}", source)
    return Range(bounds.get("min"), bounds.get("max"), unit)


def _parse_limit(raw, index: int, structures, source) -> Limit:
    prefix = f"limit[{index}]"
    if not isinstance(raw, dict):
        raise SpecError(prefix, "needs a table", source)
    _reject_unknown(raw, _LIMIT_KEYS, f"{prefix}.", source)
    structure = _structure_name(raw.get("structure"), f"{prefix}.structure", source)
    if structure not in structures:
        raise SpecError(f"{prefix}.structure", f"{structure!r} is not listed in protocol.required_structures "
                                               "or protocol.optional_structures", source)
    metric = parse_metric(raw.get("metric"), f"{prefix}.metric", source)
    unit = raw.get("unit")
    if unit != metric.unit:
        raise SpecError(f"{prefix}.unit", f"metric {metric.name} is in {metric.unit!r}, got {unit!r}", source)
    optimal = _parse_range(raw.get("optimal"), f"{prefix}.optimal", unit, source)
    mandatory = _parse_range(raw.get("mandatory"), f"{prefix}.mandatory", unit, source)
    if optimal is None and mandatory is None:
        raise SpecError(prefix, "needs an optimal and/or a mandatory range", source)
    if optimal is not None and mandatory is not None and not optimal.lies_within(mandatory):
        raise SpecError(f"{prefix}.optimal", f"{optimal.describe()} is not inside the mandatory range "
                                             f"{mandatory.describe()}", source)
    note = raw.get("note", "")
    if not isinstance(note, str):
        raise SpecError(f"{prefix}.note", "needs a string", source)
    return Limit(structure, metric, optimal, mandatory, note)


def _reject_duplicates(limits, source) -> None:
    seen = set()
    for i, lim in enumerate(limits):
        key = (lim.structure, lim.metric.name)
        if key in seen:
            raise SpecError(f"limit[{i}]", f"duplicate limit on {lim.structure} {lim.metric.name}", source)
        seen.add(key)
