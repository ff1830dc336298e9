"""Protocol evaluation in the layout of the trial's Table 1, and the plan's feasibility verdict.

Status of a row (ranges are closed; BOUNDARY_TOLERANCE absorbs floating-point noise only):
  "violated"           the mandatory range is not met;
  "acceptable"         the mandatory range is met (or absent) but the optimal range is not;
  "optimal"            every range the row defines is met (a row with only a mandatory range,
                       such as the cord PRV D0.03cc, is "optimal" when it is met);
  "missing structure"  the plan has no mask of that name;
  "not evaluated"      the mask exists but holds no voxels.
A plan is feasible when no mandatory range is violated and every required structure of the
protocol is present and non-empty. Optional structures (cord PRV, thecal sac: absent at some
levels) that are missing are reported but do not make the plan infeasible.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from simsbrt.evaluate.dvh import DVH, compute_dvhs
from simsbrt.protocols.loader import Limit, Protocol, Range, load_protocol

OPTIMAL = "optimal"
ACCEPTABLE = "acceptable"
VIOLATED = "violated"
NOT_EVALUATED = "not evaluated"
MISSING_STRUCTURE = "missing structure"

# In the metric's unit (Gy, cc or %): float noise, not a clinical margin. Doses are stored as float32,
# whose resolution near 50 Gy is 4e-6 Gy, so a prescription normalised to exactly 30 Gy can read
# 30.0000004 Gy; 1e-5 absorbs that and stays 1000 x below the 0.01 Gy reporting precision.
BOUNDARY_TOLERANCE = 1e-5


@dataclass(frozen=True)
class ProtocolRow:
    structure: str
    metric: str
    value: float | None
    unit: str
    optimal: Range | None
    mandatory: Range | None
    status: str
    limit_name: str
    note: str = ""

    @property
    def mandatory_violated(self) -> bool:
        return self.status == VIOLATED

    def to_dict(self) -> dict:
        return {
            "structure": self.structure, "metric": self.metric, "value": self.value, "unit": self.unit,
            "optimal": self.optimal.to_dict() if self.optimal else None,
            "mandatory": self.mandatory.to_dict() if self.mandatory else None,
            "status": self.status, "limit": self.limit_name, "note": self.note,
        }


@dataclass(frozen=True)
class Feasibility:
    feasible: bool
    violated_limits: tuple[str, ...]
    missing_required: tuple[str, ...]


@dataclass(frozen=True)
class ProtocolEvaluation:
    protocol_name: str
    n_fractions: int
    rows: tuple[ProtocolRow, ...]
    feasible: bool
    violated_limits: tuple[str, ...]
    missing_required: tuple[str, ...]

    def row(self, structure: str, metric: str) -> ProtocolRow:
        for r in self.rows:
            if r.structure == structure and r.metric == metric:
                return r
        raise KeyError(f"{structure} {metric}")

    def to_dict(self) -> dict:
        return {
            "protocol": self.protocol_name, "n_fractions": self.n_fractions, "feasible": self.feasible,
            "violated_limits": list(self.violated_limits), "missing_required": list(self.missing_required),
            "rows": [r.to_dict() for r in self.rows],
        }

    def format_table(self) -> str:
        return format_protocol_table(self)


def row_status(value: float, optimal: Range | None, mandatory: Range | None,
               tolerance: float = BOUNDARY_TOLERANCE) -> str:
    """optimal / acceptable / violated for one value (closed ranges)."""
    if mandatory is not None and not mandatory.contains(value, tolerance):
        return VIOLATED
    if optimal is not None and not optimal.contains(value, tolerance):
        return ACCEPTABLE
    return OPTIMAL


def evaluate_limit(limit: Limit, dvhs: Mapping[str, DVH]) -> ProtocolRow:
    dvh = dvhs.get(limit.structure)
    if dvh is None:
        value, status = None, MISSING_STRUCTURE
    elif dvh.is_empty:
        value, status = None, NOT_EVALUATED
    else:
        value = dvh.metric(limit.metric)
        status = row_status(value, limit.optimal, limit.mandatory)
    return ProtocolRow(limit.structure, limit.metric.name, value, limit.metric.unit,
                       limit.optimal, limit.mandatory, status, limit.name, limit.note)


def assess_feasibility(rows, protocol: Protocol, dvhs: Mapping[str, DVH]) -> Feasibility:
    """Feasible = all mandatory limits met and every required structure present and non-empty."""
    violated = tuple(r.limit_name for r in rows if r.status == VIOLATED)
    missing = tuple(name for name in protocol.required_structures
                    if name not in dvhs or dvhs[name].is_empty)
    return Feasibility(not violated and not missing, violated, missing)


def evaluate_dvhs(protocol: Protocol | str, dvhs: Mapping[str, DVH]) -> ProtocolEvaluation:
    """Evaluate a protocol on precomputed DVHs (physical dose)."""
    if not isinstance(protocol, Protocol):
        protocol = load_protocol(protocol)
    rows = tuple(evaluate_limit(limit, dvhs) for limit in protocol.limits)
    verdict = assess_feasibility(rows, protocol, dvhs)
    return ProtocolEvaluation(protocol.name, protocol.n_fractions, rows, verdict.feasible,
                              verdict.violated_limits, verdict.missing_required)


def evaluate_protocol(protocol: Protocol | str, dose_gy, masks: Mapping[str, object], voxel_volume_cc: float,
                      weights: Mapping[str, object] | None = None) -> ProtocolEvaluation:
    """Evaluate a protocol (object or built-in name) on a physical dose array and structure masks."""
    if not isinstance(protocol, Protocol):
        protocol = load_protocol(protocol)
    wanted = {name: mask for name, mask in masks.items() if name in protocol.structures}
    wanted_weights = {n: w for n, w in (weights or {}).items() if n in wanted}
    return evaluate_dvhs(protocol, compute_dvhs(dose_gy, wanted, voxel_volume_cc, wanted_weights))


def prescription_scale_factor(protocol: Protocol | str, dose_gy, masks: Mapping[str, object],
                              voxel_volume_cc: float) -> float:
    """The factor that makes the prescription metric equal its dose (e.g. PTV_Eval D90% = 30 Gy).

    D_x metrics scale linearly with the dose, so multiplying the dose by this factor meets the
    prescription exactly.
    """
    from simsbrt.errors import SpecError

    if not isinstance(protocol, Protocol):
        protocol = load_protocol(protocol)
    rx = protocol.prescription
    if rx.structure not in masks:
        raise SpecError("masks", f"the prescription structure {rx.structure} is missing")
    dvh = compute_dvhs(dose_gy, {rx.structure: masks[rx.structure]}, voxel_volume_cc)[rx.structure]
    current = dvh.metric(rx.metric)
    if current <= 0:
        raise SpecError("dose_gy", f"{rx.structure} {rx.metric.name} is {current} Gy; cannot normalise")
    return rx.dose_gy / current


def format_protocol_table(evaluation: ProtocolEvaluation) -> str:
    """A plain-text table in the Table 1 layout, followed by the verdict."""
    header = ("structure", "metric", "value", "optimal", "mandatory", "status")
    lines = [header]
    for r in evaluation.rows:
        value = "-" if r.value is None else f"{r.value:.2f} {r.unit}".replace(" %", "%")
        lines.append((r.structure, r.metric, value, r.optimal.describe() if r.optimal else "-",
                      r.mandatory.describe() if r.mandatory else "-", r.status))
    widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
    text = [f"protocol {evaluation.protocol_name} ({evaluation.n_fractions} fractions)"]
    for i, row in enumerate(lines):
        text.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
        if i == 0:
            text.append("  ".join("-" * w for w in widths))
    text.append(f"feasible: {'yes' if evaluation.feasible else 'no'}")
    for name in evaluation.violated_limits:
        text.append(f"  violated: {name}")
    for name in evaluation.missing_required:
        text.append(f"  missing required structure: {name}")
    return "\n".join(text)
