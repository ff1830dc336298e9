"""SIB versus uniform side by side: the comparison table, its CSV and its JSON (issue 5).

One row per metric, one column per plan. Every value is computed here from a plan's full-grid dose
and the phantom's masks with simsbrt.evaluate (never copied from the optimiser):
  - DVH points (facts 6.1): GTV D2/D50/D90/D98 %, PTV_Eval D2/D90/D98 %, SpinalCord_PRV02 and
    ThecalSac D0.03cc.
  - GTV BED and EQD2 at alpha/beta 6 Gy (HyTEC local control, facts 5.2) in the protocol's 5
    fractions, from the DVH of the voxel-wise BED / EQD2 array (facts 5.1: "compute DVH metrics of
    BED or EQD2 from voxel BED, not from DVH points of physical dose"). Because the LQ transform is
    monotone, a D_x% of the biological DVH differs from the converted physical D_x% only through
    the interpolation between the two voxels that bracket x % (the transform is convex, so the
    voxel-wise value is the larger); volume averages (Dmean, gEUD) differ materially.
  - TCP: the HyTEC logistic (facts 5.4) applied to the GTV's gEUD (a = -10 for targets, facts 6.3)
    of voxel-wise EQD2(6). The model's parameters are UNVERIFIED placeholders
    (simsbrt/evaluate/data/tcp_hytec_spine.toml), so the value ranks plans; it predicts nothing.
  - Paddick CI and gradient index at 30 Gy for PTV_Eval, Paddick CI at 40 Gy for the GTV (the
    SIB dose level, evaluated per level as facts 6.2 recommends; 40 Gy / 5 fx is the HyTEC
    threshold of facts 5.4, a fixed level so the three plans are compared at the same dose), and
    the ICRU 83 HI of PTV_Eval (descriptive only, facts 6.2). Isodose volumes are counted inside
    the Body when the phantom has one.
Missing or empty structures give None (shown as "-", an empty CSV cell), never 0; so does an index that is
undefined (e.g. the GTV Paddick CI at 40 Gy when no voxel reaches 40 Gy: TV_PIV = PIV = 0).

Status per row and plan: the plan's own protocol (the one it was planned and judged under:
"uniform", "uniform_escalated" or "sib_trial") where that protocol has the row; otherwise the
trial's Table 1 ("sib_trial", with the same organ limits) judges it, marked "Table 1: ...".
So the uniform plans' GTV rows show how they fare against the trial's GTV goals.
"""
from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from simsbrt.errors import SpecError
from simsbrt.evaluate import (
    biological_dvh,
    compute_dvh,
    conformity_indices,
    evaluate_protocol,
    homogeneity_index_icru83,
    load_model,
)
from simsbrt.evaluate.models import TCP_MODEL
from simsbrt.io.atomic import write_text_atomic

PLAN_ORDER = ("uniform", "uniform_escalated", "sib")
MISSING = "-"  # what the text table shows for a value that does not exist (missing structure), never 0
GY, RATIO, PROBABILITY = "Gy", "ratio", "probability"   # units as words (ASCII)
INDEX_UNITS = (RATIO, PROBABILITY)   # shown to 0.001; doses to 0.01 Gy (what the method supports)
DECIMALS_GY, DECIMALS_INDEX = 2, 3

ALPHA_BETA_TUMOUR_GY = 6.0     # spine metastasis local control, HyTEC (facts 5.2)
PTV_REFERENCE_GY = 30.0        # PTV_Eval prescription (sib-protocol.md, facts 4.1)
GTV_REFERENCE_GY = 40.0        # SIB dose level for the GTV CI (facts 6.2; 40 Gy / 5 fx: facts 5.4)
GEUD_A_TARGET = -10.0          # gEUD exponent for targets (facts 6.3)

GTV, PTV_EVAL, CORD_PRV, THECAL_SAC, BODY = "GTV", "PTV_Eval", "SpinalCord_PRV02", "ThecalSac", "Body"

# (structure, metric) rows read from the physical DVH; every one is also a protocol row of Table 1
DVH_ROWS = (
    (GTV, "D2%"), (GTV, "D50%"), (GTV, "D90%"), (GTV, "D98%"),
    (PTV_EVAL, "D2%"), (PTV_EVAL, "D90%"), (PTV_EVAL, "D98%"),
    (CORD_PRV, "D0.03cc"), (THECAL_SAC, "D0.03cc"),
)
BIOLOGICAL_POINTS = ("D50%", "D98%")


@dataclass(frozen=True)
class MetricRow:
    """One metric across the plans; values None where the structure is missing or empty."""

    key: str                                  # stable id, e.g. "GTV D50%" or "GTV EQD2_6 D50%"
    label: str                                # what the text table shows
    unit: str                                 # "Gy", "Gy (EQD2, a/b 6)", "ratio", "probability" (0..1)
    values: dict = field(default_factory=dict)   # plan -> float | None
    status: dict = field(default_factory=dict)   # plan -> str | None (protocol status)


@dataclass(frozen=True)
class ComparisonTable:
    plans: tuple[str, ...]
    rows: tuple[MetricRow, ...]
    notes: tuple[str, ...] = ()

    def row(self, key: str) -> MetricRow:
        for r in self.rows:
            if r.key == key:
                return r
        raise KeyError(key)

    def to_dicts(self) -> list[dict]:
        return [{"metric": r.key, "label": r.label, "unit": r.unit,
                 "values": {p: r.values.get(p) for p in self.plans},
                 "status": {p: r.status.get(p) for p in self.plans}} for r in self.rows]


# ------------------------------------------------------------------ per-plan metrics
def _present(masks: Mapping, name: str) -> bool:
    return name in masks and bool(np.any(masks[name]))


def _finite_or_none(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def geud_gy(doses_gy: np.ndarray, volumes_cc: np.ndarray, a: float) -> float:
    """Niemierko gEUD = (sum v_i D_i^a)^(1/a) with fractional volumes v_i (facts 6.3).
    For a < 0 a voxel at 0 Gy gives 0 (a cold spot dominates)."""
    d = np.asarray(doses_gy, dtype=float)
    v = np.asarray(volumes_cc, dtype=float)
    if d.size == 0:
        raise SpecError("doses_gy", "no voxels; gEUD is undefined")
    if a == 0:
        raise SpecError("a", "gEUD needs a != 0")
    if a < 0 and np.any(d <= 0):
        return 0.0
    frac = v / v.sum()
    # scale by the maximum to keep D^a in range for large |a|
    top = float(d.max())
    return top * float(np.dot(frac, (d / top) ** a)) ** (1.0 / a) if top > 0 else 0.0


def radiobiology_metrics(dose_gy, masks: Mapping, voxel_volume_cc: float, n_fractions: int,
                         alpha_beta_gy: float = ALPHA_BETA_TUMOUR_GY) -> dict:
    """GTV BED / EQD2 (voxel-wise DVHs) and the labelled, unverified TCP. None where there is no GTV."""
    out = {"alpha_beta_gy": alpha_beta_gy, "n_fractions": int(n_fractions), "structure": GTV,
           "method": "DVH of voxel-wise BED / EQD2 (facts 5.1)"}
    model = load_model(TCP_MODEL)
    if not _present(masks, GTV):
        out.update({"BED": {k: None for k in (*BIOLOGICAL_POINTS, "Dmean")},
                    "EQD2": {k: None for k in (*BIOLOGICAL_POINTS, "Dmean")},
                    "tcp": _tcp_doc(model, None, None)})
        return out
    for quantity in ("BED", "EQD2"):
        dvh = biological_dvh(dose_gy, masks[GTV], voxel_volume_cc, n_fractions, alpha_beta_gy, quantity, name=GTV)
        out[quantity] = {**{p: float(dvh.metric(p)) for p in BIOLOGICAL_POINTS}, "Dmean": dvh.mean_gy}
    eqd2_dvh = biological_dvh(dose_gy, masks[GTV], voxel_volume_cc, n_fractions, model.alpha_beta_gy,
                              model.dose_quantity, name=GTV)
    geud = geud_gy(eqd2_dvh.doses_gy, eqd2_dvh.volumes_cc, GEUD_A_TARGET)
    out["tcp"] = _tcp_doc(model, geud, float(model.probability_of_biological_dose(geud)))
    return out


def _tcp_doc(model, geud: float | None, probability: float | None) -> dict:
    return {"probability": probability, "verified": bool(model.verified), "model": model.name,
            "label": model.label, "dose_basis": f"GTV gEUD (a = {GEUD_A_TARGET:g}) of voxel-wise "
                                               f"{model.dose_quantity} at alpha/beta {model.alpha_beta_gy:g} Gy",
            f"geud_{model.dose_quantity.lower()}_gy": geud,
            "caveat": "UNVERIFIED placeholder parameters; HyTEC modelled prescribed dose (facts 5.4): ranks plans only"}


def index_metrics(dose_gy, masks: Mapping, voxel_volume_cc: float) -> dict:
    """Paddick CI / GI / RTOG CI / coverage per dose level and the ICRU 83 HI (facts 6.2)."""
    region = masks[BODY] if _present(masks, BODY) else None
    out = {"region": BODY if region is not None else "whole grid"}
    for name, level in ((PTV_EVAL, PTV_REFERENCE_GY), (GTV, GTV_REFERENCE_GY)):
        if not _present(masks, name):
            out[name] = None
            continue
        ci = conformity_indices(dose_gy, masks[name], level, voxel_volume_cc, region)
        out[name] = {k: _finite_or_none(v) for k, v in ci.to_dict().items()}
        out[name]["hi_icru83"] = _finite_or_none(homogeneity_index_icru83(dose_gy, masks[name], voxel_volume_cc))
    return out


def dvh_point_metrics(dose_gy, masks: Mapping, voxel_volume_cc: float) -> dict:
    """{structure: {metric: Gy or None}} for the table's physical rows."""
    out: dict = {}
    for name, metric in DVH_ROWS:
        value = None
        if _present(masks, name):
            value = float(compute_dvh(dose_gy, masks[name], voxel_volume_cc, name=name).metric(metric))
        out.setdefault(name, {})[metric] = value
    return out


@dataclass(frozen=True, eq=False)
class PlanMetrics:
    """Everything the table needs from one plan; built by ``plan_metrics_for``."""

    dvh: dict
    radiobiology: dict
    indices: dict
    status: dict          # "structure metric" -> status string


def plan_metrics_for(dose_gy, masks: Mapping, voxel_volume_cc: float, own_evaluation, trial_protocol,
                     n_fractions: int) -> PlanMetrics:
    """Metrics of one plan. own_evaluation: the plan's ProtocolEvaluation; trial_protocol: the Table 1
    protocol (same organ limits) that judges the rows the plan's own protocol lacks."""
    dose = np.asarray(dose_gy)
    trial = evaluate_protocol(trial_protocol, dose, masks, voxel_volume_cc)
    own = {(r.structure, r.metric): r.status for r in own_evaluation.rows}
    status = {}
    for r in trial.rows:
        key = (r.structure, r.metric)
        status[f"{r.structure} {r.metric}"] = own[key] if key in own else f"Table 1: {r.status}"
    return PlanMetrics(dvh_point_metrics(dose, masks, voxel_volume_cc),
                       radiobiology_metrics(dose, masks, voxel_volume_cc, n_fractions),
                       index_metrics(dose, masks, voxel_volume_cc), status)


# ------------------------------------------------------------------ the table
def _bio_unit(quantity: str) -> str:
    return f"Gy ({quantity}, a/b {ALPHA_BETA_TUMOUR_GY:g})"


def build_table(per_plan: Mapping[str, PlanMetrics], n_fractions: int = 5) -> ComparisonTable:
    """The side-by-side table from each plan's metrics (plans in PLAN_ORDER, then any others)."""
    if not per_plan:
        raise SpecError("plans", "nothing to compare")
    plans = tuple(p for p in PLAN_ORDER if p in per_plan) + tuple(p for p in per_plan if p not in PLAN_ORDER)
    rows: list[MetricRow] = []
    for name, metric in DVH_ROWS:
        key = f"{name} {metric}"
        rows.append(MetricRow(key, key, "Gy", {p: per_plan[p].dvh[name][metric] for p in plans},
                              {p: per_plan[p].status.get(key) for p in plans}))
    for quantity, short in (("BED", "BED6"), ("EQD2", "EQD2_6")):
        for point in BIOLOGICAL_POINTS:
            rows.append(MetricRow(f"GTV {short} {point}", f"GTV {short} {point} (voxel-wise, {n_fractions} fx)",
                                  _bio_unit(quantity),
                                  {p: per_plan[p].radiobiology[quantity][point] for p in plans}))
    rows.append(MetricRow("GTV TCP", "GTV TCP (UNVERIFIED model)", PROBABILITY,
                          {p: per_plan[p].radiobiology["tcp"]["probability"] for p in plans}))

    def index(structure, name):
        return {p: (per_plan[p].indices[structure] or {}).get(name) for p in plans}

    rows += [
        MetricRow("PTV_Eval Paddick CI @30Gy", f"PTV_Eval Paddick CI @{PTV_REFERENCE_GY:g} Gy", RATIO,
                  index(PTV_EVAL, "paddick_ci")),
        MetricRow("GTV Paddick CI @40Gy", f"GTV Paddick CI @{GTV_REFERENCE_GY:g} Gy", RATIO, index(GTV, "paddick_ci")),
        MetricRow("PTV_Eval GI @30Gy", f"PTV_Eval GI @{PTV_REFERENCE_GY:g} Gy", RATIO, index(PTV_EVAL, "gradient_index")),
        MetricRow("PTV_Eval HI (ICRU 83)", "PTV_Eval HI (ICRU 83)", RATIO, index(PTV_EVAL, "hi_icru83")),
    ]
    notes = (
        "status: the plan's own protocol; 'Table 1: x' = judged by the trial's Table 1 (sib_trial), "
        "which the plan's own protocol lacks",
        f"BED6 / EQD2_6: DVH of voxel-wise values at alpha/beta {ALPHA_BETA_TUMOUR_GY:g} Gy (facts 5.1, 5.2)",
        f"TCP: {next(iter(per_plan.values())).radiobiology['tcp']['label']}; "
        "dose basis GTV gEUD(a=-10) of voxel-wise EQD2(6); ranks plans only",
        f"{MISSING} = structure missing or empty at this level, or an index that is undefined "
        "(no voxel reaches its reference dose)",
    )
    return ComparisonTable(plans, tuple(rows), notes)


# ------------------------------------------------------------------ output formats
def format_cell(value, unit: str, status: str | None = None) -> str:
    """One table cell as every output shows it: the value (3 decimals for indices, 2 for doses), its status."""
    text = MISSING if value is None else format_value(value, unit)
    return f"{text} ({status})" if status else text


def format_value(value: float, unit: str) -> str:
    """A value rounded to the precision the method supports: 0.001 for indices, 0.01 Gy for doses."""
    return f"{value:.{DECIMALS_INDEX if unit in INDEX_UNITS else DECIMALS_GY}f}"


def format_table(table: ComparisonTable) -> str:
    """A fixed-width text table: value and, for protocol rows, its status."""
    header = ["metric", "unit", *table.plans]
    lines = [header]
    for r in table.rows:
        cells = []
        for p in table.plans:
            cells.append(format_cell(r.values.get(p), r.unit, r.status.get(p)))
        lines.append([r.label, r.unit, *cells])
    widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
    out = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in lines]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out + [""] + [f"note: {n}" for n in table.notes])


def csv_header(plans) -> list[str]:
    return ["metric", "unit", *plans, *(f"{p} status" for p in plans)]


def table_to_csv(table: ComparisonTable, comments=()) -> str:
    """CSV text (ASCII): one row per metric; columns metric, unit (a word: Gy, ratio, probability), one
    value column per plan in the row's unit (rounded as format_value; an empty cell where missing),
    then one status column per plan.
    comments: lines written first, each after "# " (e.g. the protocol); read_table_csv skips them."""
    buf = io.StringIO()
    for line in comments:
        buf.write(f"# {line}\n")
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(csv_header(table.plans))
    for r in table.rows:
        values = ["" if r.values.get(p) is None else format_value(float(r.values[p]), r.unit) for p in table.plans]
        status = [r.status.get(p) or "" for p in table.plans]
        writer.writerow([r.key, r.unit, *values, *status])
    return buf.getvalue()


def write_table_csv(path, table: ComparisonTable, comments=()) -> None:
    write_text_atomic(path, table_to_csv(table, comments))


def read_table_csv(text: str) -> dict:
    """Parse comparison.csv back: {metric: {"unit": u, "values": {plan: float | None}, "status": {...}}}."""
    reader = csv.reader(io.StringIO("".join(line for line in text.splitlines(keepends=True)
                                            if not line.startswith("#"))))
    header = next(reader)
    if header[:2] != ["metric", "unit"]:
        raise SpecError("comparison.csv", f"unexpected header {header}")
    plans = [h for h in header[2:] if not h.endswith(" status")]
    out = {}
    for row in reader:
        values = row[2:2 + len(plans)]
        status = row[2 + len(plans):]
        out[row[0]] = {"unit": row[1],
                       "values": {p: (None if v.strip() in ("", MISSING) else float(v)) for p, v in zip(plans, values)},
                       "status": {p: (s or None) for p, s in zip(plans, status)}}
    return out


def plan_json(summary: dict, metrics: PlanMetrics, file_name: str | None = None) -> dict:
    """A plan's ``simsbrt plan --json`` summary plus the comparison extras."""
    doc = dict(summary)
    doc["radiobiology"] = metrics.radiobiology
    doc["indices"] = metrics.indices
    doc["table_status"] = dict(metrics.status)
    if file_name is not None:
        doc["file"] = file_name
    return doc


def comparison_json(summaries: Mapping[str, dict], per_plan: Mapping[str, PlanMetrics], table: ComparisonTable,
                    plan_files: Mapping[str, str] | None = None, **extra) -> dict:
    """{"plans": {mode: summary + "radiobiology" + "indices" + "table_status" (+ "file")}, "table": rows,
    "notes": [...], **extra}."""
    plan_files = plan_files or {}
    return {
        "plans": {p: plan_json(summaries[p], per_plan[p], plan_files.get(p)) for p in table.plans},
        "table": table.to_dicts(),
        "notes": list(table.notes),
        **extra,
    }
