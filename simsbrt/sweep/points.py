"""Sweep points: the grid / zip / sample axes expanded into runs with fully resolved inputs.

A run = one phantom + arcs + plan settings + protocol options + influence options, planned in
every mode of the sweep. Its id is the first 12 hex digits of the SHA-256 of the canonical JSON
of its resolved inputs (every parameter, defaults included, and the modes), so it does not depend
on whether a value came from [fixed], a default or an axis, nor on the point's position: the same
run in an edited sweep keeps its id; a changed input gives a new id.

Protocol (protocol.name: a built-in protocol or a TOML file, relative to the sweep file; default
sib_trial): every run plans under it (its comparator for the uniform plans); its content is part of
the run id, so an edited protocol file gives new runs.
Fractionation (protocol.n_fractions, default: the protocol's, 5 for sib_trial). A protocol states
physical doses for its own fractions (simsbrt/protocols/*.toml). A different fraction number keeps the
physical prescription and the target limits as stated, and changes
  - the GTV BED / EQD2 (alpha/beta 6) and TCP columns (simsbrt.report.compare.radiobiology_metrics
    with n fractions: the same physical dose in n fractions), and
  - with protocol.isoeffective_organ_limits = true (the default), the cord PRV and thecal-sac
    D0.03cc limits used for planning and judging: the protocol's limits (or plan.cord_prv_limit_gy /
    plan.thecal_sac_limit_gy when set) converted from its fractions to n fractions at
    alpha/beta 2 Gy (facts 4.2: the HyTEC cord limits are iso-effective at BED2 about 89 Gy;
    facts 5.1 for the conversion). 25 Gy / 5 fx becomes 12.27 Gy in 1 fraction.
"""
from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from simsbrt.errors import SpecError
from simsbrt.sweep.spec import (
    GAP_PATH,
    PLAN_ALIASES,
    PROTOCOL_DEFAULTS,
    SweepSpec,
    coerce_value,
    dataclass_leaves,
    default_parameters,
    influence_row_defaults,
)

RUN_ID_LENGTH = 12
ORGAN_ALPHA_BETA_GY = 2.0      # cord / thecal sac, HyTEC (facts 5.2)


@dataclass(frozen=True, eq=False)
class RunPoint:
    """One run of a sweep with everything needed to plan it (picklable, JSON-able parts)."""

    run_id: str
    index: int                       # position in the expanded sweep (rows are ordered by it)
    values: tuple                    # ((path, value), ...) of the varied parameters
    inputs: dict                     # {path: value} of every resolved input (the table's input columns)
    phantom_doc: dict                # PhantomSpec.to_dict() with the overrides (before the gap derivation)
    gap_mm: float | None             # requested GTV-to-cord gap (None: no derivation)
    arcs_doc: dict                   # arcs and beamlet settings (arc_set_from_doc rebuilds the ArcSet)
    plan_overrides: tuple            # ((canonical plan path, value), ...) applied to PlanSettings()
    n_fractions: int
    isoeffective_organ_limits: bool
    influence_doc: dict              # InfluenceOptions fields + body_margin_mm + structure_margin_mm
    modes: tuple[str, ...]


def canonical_json(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=json_default)


def json_default(value):
    """json.dumps default for sweep data: tuples -> lists, numpy scalars -> Python."""
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {value!r}")


def short_hash(obj, length: int = RUN_ID_LENGTH) -> str:
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()[:length]


def plain(value):
    """Tuples -> lists, numpy scalars -> Python (JSON and CSV friendly)."""
    if isinstance(value, (tuple, list)):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


# ------------------------------------------------------------------ axes
def _draw(dist, rng) -> Any:
    low_high = dist.args
    if dist.kind == "uniform":
        return float(rng.uniform(*low_high))
    if dist.kind == "loguniform":
        return float(math.exp(rng.uniform(math.log(low_high[0]), math.log(low_high[1]))))
    if dist.kind == "integers":
        return int(rng.integers(low_high[0], low_high[1] + 1))
    return dist.args[int(rng.integers(len(dist.args)))]


def sample_draws(spec: SweepSpec) -> list[tuple]:
    """The [sample] draws: n tuples of (path, value), deterministic for the sweep's seed."""
    rng = np.random.default_rng(spec.seed)
    valid = None
    draws = []
    for _ in range(spec.sample_n):
        row = []
        for path, dist in spec.sample:
            value = _draw(dist, rng)
            if dist.kind != "choice":
                if valid is None:
                    from simsbrt.phantom import load_spec

                    valid = default_parameters(load_spec(spec.phantom))
                value = coerce_value(path, value, valid[path], spec.source)
            row.append((path, value))
        draws.append(tuple(row))
    return draws


def point_values(spec: SweepSpec) -> list[tuple]:
    """Every point's varied values ((path, value), ...): grid x zips x samples, in file order."""
    axes = [[((path, v),) for v in values] for path, values in spec.grid]
    for group in spec.zips:
        n = len(group[0][1])
        axes.append([tuple((path, values[i]) for path, values in group) for i in range(n)])
    if spec.sample_n:
        axes.append(sample_draws(spec))
    return [tuple(itertools.chain.from_iterable(combo)) for combo in itertools.product(*axes)]


# ------------------------------------------------------------------ resolution
def _set_nested(doc: dict, parts: list[str], value) -> None:
    for part in parts[:-1]:
        doc = doc.setdefault(part, {})
    doc[parts[-1]] = plain(value)


def _phantom_doc(base_doc: dict, overrides: dict, source: str) -> dict:
    from simsbrt.phantom import parse_spec

    doc = json.loads(json.dumps(base_doc))
    for path, value in overrides.items():
        _set_nested(doc, path.split(".")[1:], value)
    try:
        return parse_spec(doc).to_dict()
    except SpecError as exc:
        raise SpecError(f"phantom.{exc.field}", exc.problem, source) from None


def base_arc_set(spec: SweepSpec):
    from simsbrt.geometry.arcs import default_arc_set, load_arc_set

    return default_arc_set() if spec.arcs == "default" else load_arc_set(spec.arcs)


def _arcs_doc(base_arcs, overrides: dict, source: str) -> dict:
    """The base arcs with arcs.* overrides: ArcSpec fields apply to every arc; n_arcs makes that many
    coplanar arcs alternating cw / ccw, each a copy of the first arc (start/stop swapped for ccw)."""
    from simsbrt.geometry.arcs import ArcSet, ArcSpec, arc_set_to_doc

    arcs = list(base_arcs.arcs)
    n_arcs = overrides.get("arcs.n_arcs")
    try:
        if n_arcs is not None:
            if n_arcs < 1:
                raise SpecError("arcs.n_arcs", f"must be >= 1, got {n_arcs}")
            first = arcs[0]
            swapped = dataclasses.replace(first, gantry_start_deg=first.gantry_stop_deg,
                                          gantry_stop_deg=first.gantry_start_deg,
                                          direction="ccw" if first.direction == "cw" else "cw")
            arcs = [dataclasses.replace(first if i % 2 == 0 else swapped, name=f"arc{i + 1}") for i in range(n_arcs)]
        arc_fields = {f.name for f in dataclasses.fields(ArcSpec)}
        per_arc = {p.split(".", 1)[1]: v for p, v in overrides.items() if p.split(".", 1)[1] in arc_fields}
        if per_arc:
            arcs = [ArcSpec(**{**dataclasses.asdict(a), **per_arc}) for a in arcs]
        set_fields = {p.split(".", 1)[1]: v for p, v in overrides.items()
                      if p.split(".", 1)[1] not in arc_fields and p != "arcs.n_arcs"}
        arc_set = ArcSet(arcs=tuple(arcs), **{**{k: getattr(base_arcs, k) for k in
                                                  ("isocentre_mm", "beamlet_size_mm", "beamlet_margin_mm")},
                                               **set_fields})
    except SpecError as exc:
        field = exc.field if exc.field.startswith("arcs.") else "arcs." + exc.field.split(".")[-1]
        raise SpecError(field, exc.problem, source) from None
    return arc_set_to_doc(arc_set)


def _replace_path(obj, parts: list[str], value):
    """dataclasses.replace along a dotted path; a trailing [i] sets one element of a tuple field."""
    name = parts[0]
    index = None
    if name.endswith("]"):
        name, index = name[:-1].split("[")
        index = int(index)
    current = getattr(obj, name)
    if len(parts) > 1:
        new = _replace_path(current, parts[1:], value)
    elif index is not None:
        items = list(current)
        items[index] = value
        new = tuple(items)
    else:
        new = value
    return dataclasses.replace(obj, **{name: new})


def plan_settings(overrides) -> Any:
    """PlanSettings() with ((canonical path, value), ...) applied (paths start with 'plan.')."""
    from simsbrt.optimize.plans import PlanSettings

    settings = PlanSettings()
    for path, value in overrides:
        settings = _replace_path(settings, path.split(".")[1:], value)
    return settings


def _plan_overrides(overrides: dict, source: str) -> tuple:
    canonical = []
    for path, value in overrides.items():
        canonical.append((PLAN_ALIASES.get(path, path), value))
    canonical.sort()
    try:
        plan_settings(canonical)
    except SpecError as exc:
        raise SpecError(f"plan ({exc.field})", exc.problem, source) from None
    except (TypeError, ValueError) as exc:
        raise SpecError("plan", str(exc), source) from None
    return tuple(canonical)


def _influence_doc(overrides: dict, source: str) -> dict:
    from simsbrt.dose.engine import InfluenceOptions

    fields = {k.split(".", 1)[1]: v for k, v in dataclass_leaves(InfluenceOptions(), "influence").items()}
    rows = {k.split(".", 1)[1]: v for k, v in influence_row_defaults().items()}
    for path, value in overrides.items():
        key = path.split(".", 1)[1]
        (fields if key in fields else rows)[key] = value
    try:
        InfluenceOptions(**fields)
    except SpecError as exc:
        raise SpecError(f"influence ({exc.field})", exc.problem, source) from None
    for key, value in rows.items():
        if value < 0:
            raise SpecError(f"influence.{key}", f"must be >= 0 mm, got {value}", source)
    return {**fields, **rows}


def resolve_point(spec: SweepSpec, base_doc: dict, base_arcs, index: int, values: tuple) -> RunPoint:
    """A point's values on top of the sweep's [fixed] values and the defaults, validated."""
    overrides = dict(spec.fixed)
    overrides.update(dict(values))
    by_section: dict[str, dict] = {"phantom": {}, "arcs": {}, "plan": {}, "protocol": {}, "influence": {}}
    for path, value in overrides.items():
        if path != GAP_PATH:
            by_section[path.split(".")[0]][path] = value
    where = f"{spec.source} (point {index})"
    phantom_doc = _phantom_doc(base_doc, by_section["phantom"], where)
    gap = overrides.get(GAP_PATH)
    arcs_doc = _arcs_doc(base_arcs, by_section["arcs"], where)
    plan_overrides = _plan_overrides(by_section["plan"], where)
    protocol = {**PROTOCOL_DEFAULTS, **by_section["protocol"]}
    protocol["protocol.name"], content = _protocol_ref(protocol["protocol.name"], spec, where)
    if "protocol.n_fractions" not in by_section["protocol"]:
        protocol["protocol.n_fractions"] = content["n_fractions"]
    plan_overrides = tuple(sorted(plan_overrides + (("plan.protocol", protocol["protocol.name"]),)))
    n_fractions = protocol["protocol.n_fractions"]
    if n_fractions < 1:
        raise SpecError("protocol.n_fractions", f"must be >= 1, got {n_fractions}", where)
    influence_doc = _influence_doc(by_section["influence"], where)
    inputs = input_columns(phantom_doc, gap, arcs_doc, plan_settings(plan_overrides), protocol, influence_doc)
    run_id = short_hash({"inputs": inputs, "modes": list(spec.modes), "protocol": content})
    return RunPoint(run_id, index, tuple(values), inputs, phantom_doc, gap, arcs_doc, plan_overrides,
                    int(n_fractions), bool(protocol["protocol.isoeffective_organ_limits"]), influence_doc,
                    tuple(spec.modes))


def _protocol_ref(ref: str, spec: SweepSpec, where: str) -> tuple[str, dict]:
    """(built-in name or absolute file path, the protocol's content) of protocol.name, checked against the
    sweep's modes (a file path is read relative to the sweep file)."""
    from pathlib import Path

    from simsbrt.optimize.protocol_numbers import mode_protocol
    from simsbrt.protocols.loader import available_protocols

    if ref not in available_protocols():
        path = Path(ref)
        if not path.is_absolute() and spec.source != "<sweep>":
            path = Path(spec.source).parent / path
        ref = str(path.resolve())
    try:
        for mode in spec.modes:
            mode_protocol(ref, mode)
        return ref, mode_protocol(ref, "sib" if "sib" in spec.modes else spec.modes[0]).to_dict()
    except SpecError as exc:
        raise SpecError(f"protocol.name ({exc.field})", exc.problem, where) from None


def input_columns(phantom_doc: dict, gap, arcs_doc: dict, settings, protocol: dict, influence_doc: dict) -> dict:
    """{path: value} of every resolved input; lists for vectors (an arc field that differs between arcs
    is the list of its values)."""
    from simsbrt.sweep.spec import dict_leaves

    out = {f"phantom.{k}": plain(v) for k, v in dict_leaves(phantom_doc, "").items()}
    out[GAP_PATH] = gap
    out["arcs.n_arcs"] = len(arcs_doc["arcs"])
    for key in arcs_doc["arcs"][0]:
        values = [a[key] for a in arcs_doc["arcs"]]
        out[f"arcs.{key}"] = values[0] if all(v == values[0] for v in values) else values
    for key in ("isocentre_mm", "beamlet_size_mm", "beamlet_margin_mm"):
        out[f"arcs.{key}"] = arcs_doc[key]
    out.update({k: plain(v) for k, v in dataclass_leaves(settings, "plan").items() if k != "plan.protocol"})
    out.update(protocol)
    out.update({f"influence.{k}": v for k, v in influence_doc.items()})
    return out


def expand_points(spec: SweepSpec) -> list[RunPoint]:
    """Every run of the sweep, validated (bad values raise SpecError naming the parameter)."""
    from simsbrt.phantom import load_spec

    base_doc = load_spec(spec.phantom).to_dict()
    base_arcs = base_arc_set(spec)
    points = [resolve_point(spec, base_doc, base_arcs, i, values) for i, values in enumerate(point_values(spec))]
    seen: dict[str, int] = {}
    for p in points:
        if p.run_id in seen:
            raise SpecError("grid", f"points {seen[p.run_id]} and {p.index} resolve to the same run "
                                    f"(a parameter is listed with a repeated value)", spec.source)
        seen[p.run_id] = p.index
    return points


# ------------------------------------------------------------------ fractionation
def organ_limits_for_fractions(settings, n_fractions: int, isoeffective: bool):
    """PlanSettings whose cord PRV / thecal-sac limits are converted from 5 to n fractions at alpha/beta 2
    (facts 4.2, 5.1) when isoeffective and n != 5; otherwise the settings unchanged."""
    from simsbrt.optimize.plans import plan_numbers

    numbers = plan_numbers(settings)                   # the protocol's limits in force (or the settings')
    if not isoeffective or n_fractions == numbers.n_fractions:
        return settings
    from simsbrt.evaluate.radiobiology import isoeffective_total_gy
    from simsbrt.report.compare import CORD_PRV, THECAL_SAC

    limits = dict(numbers.organ_limits_gy)

    def convert(gy):
        return None if gy is None else float(isoeffective_total_gy(gy, numbers.n_fractions, ORGAN_ALPHA_BETA_GY,
                                                                   n_fractions))
    return dataclasses.replace(settings, cord_prv_limit_gy=convert(limits.get(CORD_PRV)),
                               thecal_sac_limit_gy=convert(limits.get(THECAL_SAC)))
