"""Sweep files (TOML) -> a frozen SweepSpec, with errors that name the field.

Format (every key except ``phantom`` is optional)::

    name = "gtv_cord_gap"
    phantom = "t10_body"        # built-in phantom name or SPEC.toml (relative to the sweep file)
    arcs = "default"            # "default" (two coplanar full arcs) or ARCS.toml (relative to the sweep file)
    modes = ["uniform", "sib"]  # plan modes of every run (simsbrt.optimize.plans.MODES)
    seed = 1                    # random stream of [sample]

    [fixed]                     # one value for every run
    "phantom.grid.spacing_mm" = 2.0
    [grid]                      # Cartesian product of these lists (file order)
    "phantom.gtv_cord_gap_mm" = [0, 2, 4, 6, 8]
    [[zip]]                     # lists of equal length varied together; each [[zip]] is one axis of the product
    "plan.cord_prv_limit_gy" = [20, 25, 30]
    "plan.thecal_sac_limit_gy" = [25, 30, 35]
    [sample]                    # n seeded random draws; the draws are one more axis of the product
    n = 10
    "phantom.gtv.volume_cc" = { loguniform = [1.0, 50.0] }
    "phantom.gtv.bilsky" = { choice = ["0", "1a"] }

Parameter paths are dotted (quoted, or written as TOML dotted keys): ``phantom.<PhantomSpec field>``
(e.g. phantom.gtv.volume_cc, phantom.anatomy.level), the derived ``phantom.gtv_cord_gap_mm``
(simsbrt.sweep.derived), ``arcs.<ArcSet / ArcSpec field>`` (an ArcSpec field applies to every arc)
and ``arcs.n_arcs``, ``plan.<PlanSettings field>`` (nested: plan.solver_options.max_iter) with the
aliases plan.boost_max_gy (top of boost_range_gy), plan.escalation_max_gy and plan.search_steps
(n_bisections), ``protocol.name`` (a built-in protocol or a protocol TOML file relative to the sweep
file; default sib_trial), ``protocol.n_fractions`` (default: the protocol's) /
``protocol.isoeffective_organ_limits`` (see simsbrt.sweep.points) and ``influence.<InfluenceOptions field>``, influence.body_margin_mm,
influence.structure_margin_mm. The valid paths are read from the dataclasses themselves, so new
planner options become sweepable without a change here.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simsbrt.errors import SpecError
from simsbrt.optimize.protocol_numbers import DEFAULT_PROTOCOL

TOP_KEYS = ("name", "description", "phantom", "arcs", "modes", "seed", "fixed", "grid", "zip", "sample")
DISTRIBUTIONS = ("uniform", "loguniform", "integers", "choice")
GAP_PATH = "phantom.gtv_cord_gap_mm"
PLAN_ALIASES = {"plan.search_steps": "plan.n_bisections", "plan.boost_max_gy": "plan.boost_range_gy[1]",
                "plan.escalation_max_gy": "plan.escalation_range_gy[1]"}
PROTOCOL_FRACTIONS = 5         # the default protocol's fractions (sib_trial.toml); a run's default is its protocol's
# documented ranges (simsbrt.ranges) of the parameters that are also command-line options
VALUE_RANGES = {"plan.cord_prv_limit_gy": "cord_prv_limit_gy", "plan.thecal_sac_limit_gy": "cord_prv_limit_gy",
                "plan.n_bisections": "search_steps", "plan.search_steps": "search_steps",
                "influence.body_margin_mm": "row_margin_mm", "influence.structure_margin_mm": "row_margin_mm",
                GAP_PATH: "gap_mm"}
MAX_SAMPLE_N = 100_000
MAX_RUNS_WITHOUT_YES = 500     # a larger sweep runs only with --yes (its size is printed first)
PROTOCOL_DEFAULTS = {"protocol.name": DEFAULT_PROTOCOL, "protocol.n_fractions": PROTOCOL_FRACTIONS,
                     "protocol.isoeffective_organ_limits": True}


@dataclass(frozen=True)
class Distribution:
    """One sampled parameter: kind in DISTRIBUTIONS with (low, high) or the choices."""

    kind: str
    args: tuple


@dataclass(frozen=True)
class SweepSpec:
    name: str
    source: str                                   # the sweep file (or "<sweep>")
    phantom: str                                  # built-in name or resolved path of the base phantom spec
    arcs: str                                     # "default" or resolved path of the arcs file
    modes: tuple[str, ...]
    seed: int = 0
    fixed: tuple[tuple[str, Any], ...] = ()       # (path, value)
    grid: tuple[tuple[str, tuple], ...] = ()      # (path, values): Cartesian axes
    zips: tuple[tuple[tuple[str, tuple], ...], ...] = ()   # each: ((path, values), ...) of one length
    sample_n: int = 0
    sample: tuple[tuple[str, Distribution], ...] = ()
    description: str = ""


def influence_row_defaults() -> dict:
    """The row margins of prepare_plan_inputs, as sweep parameters."""
    from simsbrt.optimize.plans import BODY_MARGIN_MM, STRUCTURE_MARGIN_MM

    return {"influence.body_margin_mm": BODY_MARGIN_MM, "influence.structure_margin_mm": STRUCTURE_MARGIN_MM}


# ------------------------------------------------------------------ valid parameter paths
def dataclass_leaves(obj, prefix: str) -> dict:
    """{dotted path: default value} of every non-dataclass field of a (nested) dataclass instance."""
    out = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        path = f"{prefix}.{f.name}"
        if dataclasses.is_dataclass(value):
            out.update(dataclass_leaves(value, path))
        else:
            out[path] = value
    return out


def dict_leaves(doc: dict, prefix: str) -> dict:
    """{dotted path: value} of a nested dict (lists are leaves)."""
    out = {}
    for key, value in doc.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            out.update(dict_leaves(value, path))
        else:
            out[path] = value
    return out


def default_parameters(base_phantom_spec) -> dict:
    """{path: default value} of every sweepable parameter for a base phantom spec."""
    from simsbrt.dose.engine import InfluenceOptions
    from simsbrt.geometry.arcs import ArcSet, ArcSpec
    from simsbrt.optimize.plans import PlanSettings

    params = {f"phantom.{k}": v for k, v in dict_leaves(base_phantom_spec.to_dict(), "").items()}
    params[GAP_PATH] = None
    arc = ArcSpec(0.0, 0.0)
    for f in dataclasses.fields(ArcSpec):
        params[f"arcs.{f.name}"] = getattr(arc, f.name)
    for f in dataclasses.fields(ArcSet):
        if f.name != "arcs":
            params[f"arcs.{f.name}"] = f.default
    params["arcs.n_arcs"] = 2
    params.update(dataclass_leaves(PlanSettings(), "plan"))
    del params["plan.protocol"]            # set through protocol.name (a file path is read relative to the sweep)
    params["plan.search_steps"] = PlanSettings().n_bisections
    params["plan.boost_max_gy"] = PlanSettings().boost_range_gy[1]
    params["plan.escalation_max_gy"] = PlanSettings().escalation_range_gy[1]
    params.update(PROTOCOL_DEFAULTS)
    params.update(dataclass_leaves(InfluenceOptions(), "influence"))
    params.update(influence_row_defaults())
    return params


def check_path(path: str, valid: dict, source: str | None) -> None:
    """An unknown path names the closest valid ones, or those of its section (phantom., plan., ...)."""
    if path in valid:
        return
    close = difflib.get_close_matches(path, list(valid), n=3, cutoff=0.75)
    if close:
        raise SpecError(path, "unknown parameter path; did you mean " + " or ".join(close) + "?", source)
    section = path.split(".")[0] + "."
    same = sorted(v for v in valid if v.startswith(section)) or sorted(valid)
    raise SpecError(path, "unknown parameter path; valid paths: " + ", ".join(same), source)


def coerce_value(path: str, value, default, source: str | None):
    """``value`` checked against the type of the parameter's default (TOML has no null)."""
    def bad(expected):
        return SpecError(path, f"must be {expected}, got {value!r}", source)

    if isinstance(value, dict):
        raise bad("a single value (not a table)")
    if path in VALUE_RANGES:
        from simsbrt.ranges import check_value

        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad("a number")
        try:
            check_value(VALUE_RANGES[path], value)
        except ValueError as exc:
            raise SpecError(path, str(exc), source) from None
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("an integer")
        return value
    if isinstance(default, float) or (default is None and isinstance(value, (int, float))
                                      and not isinstance(value, bool)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise bad("a finite number")
        return float(value)
    if isinstance(default, str):
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)          # e.g. bilsky = 0
        if not isinstance(value, str):
            raise bad("a string")
        return value
    if isinstance(default, (tuple, list)):
        if not isinstance(value, (list, tuple)):
            raise bad("a list")
        if default and len(value) != len(default):
            raise bad(f"a list of {len(default)} values")
        items = [coerce_value(f"{path}[{i}]", v, default[i] if default else v, source) for i, v in enumerate(value)]
        return tuple(items)
    return value


# ------------------------------------------------------------------ parsing
def _source_path(value, key: str, base_dir: Path, source: str, builtin_ok: bool) -> str:
    if not isinstance(value, str) or not value:
        raise SpecError(key, f"must be a name or a file path, got {value!r}", source)
    path = Path(value)
    if not path.is_absolute():
        path = base_dir / path
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise SpecError(key, f"no such file: {path}", source)
        return str(path)
    if not builtin_ok:
        raise SpecError(key, f"no such file: {path}", source)
    return value


def _table(doc: dict, key: str, source: str) -> dict:
    value = doc.get(key, {})
    if not isinstance(value, dict):
        raise SpecError(key, f"must be a table, got {type(value).__name__}", source)
    return value


def _values_list(path: str, values, source: str, valid: dict) -> tuple:
    if not isinstance(values, list) or not values:
        raise SpecError(path, f"must be a non-empty list of values, got {values!r}", source)
    return tuple(coerce_value(path, v, valid[path], source) for v in values)


def _distribution(path: str, value, source: str, valid: dict) -> Distribution:
    if not isinstance(value, dict) or len(value) != 1 or next(iter(value)) not in DISTRIBUTIONS:
        raise SpecError(path, "needs one distribution: { uniform = [low, high] }, { loguniform = [low, high] }, "
                              f"{{ integers = [low, high] }} or {{ choice = [a, b, ...] }}; got {value!r}", source)
    kind, args = next(iter(value.items()))
    if not isinstance(args, list) or not args:
        raise SpecError(f"{path}.{kind}", f"must be a non-empty list, got {args!r}", source)
    if kind == "choice":
        return Distribution(kind, tuple(coerce_value(path, v, valid[path], source) for v in args))
    if len(args) != 2 or any(isinstance(a, bool) or not isinstance(a, (int, float)) for a in args):
        raise SpecError(f"{path}.{kind}", f"needs [low, high] numbers, got {args!r}", source)
    low, high = args
    if not (math.isfinite(low) and math.isfinite(high)):
        raise SpecError(f"{path}.{kind}", f"needs finite bounds, got {args}", source)
    for bound in (low, high):
        coerce_value(path, float(bound) if kind != "integers" else bound, valid[path], source)
    if not low <= high or (kind == "loguniform" and low <= 0):
        raise SpecError(f"{path}.{kind}", f"needs {'0 < ' if kind == 'loguniform' else ''}low <= high, got {args}",
                        source)
    if kind == "integers" and not all(isinstance(a, int) for a in args):
        raise SpecError(f"{path}.{kind}", f"needs integer bounds, got {args}", source)
    return Distribution(kind, (low, high))


def _leaves_until_distribution(doc: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in doc.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict) and not (len(value) == 1 and next(iter(value)) in DISTRIBUTIONS):
            out.update(_leaves_until_distribution(value, path))
        else:
            out[path] = value
    return out


def _canonical(path: str) -> str:
    return PLAN_ALIASES.get(path, path).split("[")[0]


def parse_sweep(doc: dict, source: str = "<sweep>", base_dir: Path | None = None,
                overrides: dict | None = None) -> SweepSpec:
    """Validate a parsed sweep document (paths relative to base_dir) and build the frozen SweepSpec.
    overrides: {path: value} replacing or adding [fixed] values (the CLI's --set)."""
    from simsbrt.optimize.plans import MODES
    from simsbrt.phantom import load_spec

    base_dir = base_dir or Path.cwd()
    unknown = sorted(set(doc) - set(TOP_KEYS))
    if unknown:
        raise SpecError(unknown[0], f"unknown key (allowed: {', '.join(TOP_KEYS)})", source)
    name = doc.get("name", Path(source).stem if source != "<sweep>" else "sweep")
    if not isinstance(name, str) or not name:
        raise SpecError("name", f"must be a non-empty string, got {name!r}", source)
    if "phantom" not in doc:
        raise SpecError("phantom", "is required (a built-in phantom name or SPEC.toml)", source)
    phantom = _source_path(doc["phantom"], "phantom", base_dir, source, builtin_ok=True)
    try:
        base_spec = load_spec(phantom)
    except SpecError as exc:
        raise SpecError(f"phantom ({exc.field})", exc.problem, source) from None
    arcs = doc.get("arcs", "default")
    arcs = "default" if arcs == "default" else _source_path(arcs, "arcs", base_dir, source, builtin_ok=False)
    modes = doc.get("modes", ["uniform", "sib"])
    if isinstance(modes, str):
        modes = [modes]
    if not isinstance(modes, list) or not modes:
        raise SpecError("modes", f"must be a non-empty list of plan modes, got {modes!r}", source)
    for m in modes:
        if m not in MODES:
            raise SpecError("modes", f"unknown plan mode {m!r}; choose from {', '.join(MODES)}", source)
    if len(set(modes)) != len(modes):
        raise SpecError("modes", f"lists a mode twice: {modes}", source)
    seed = doc.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise SpecError("seed", f"must be an integer >= 0, got {seed!r}", source)
    description = doc.get("description", "")
    if not isinstance(description, str):
        raise SpecError("description", f"must be a string, got {description!r}", source)

    valid = default_parameters(base_spec)
    seen: dict[str, str] = {}

    def claim(path: str, section: str) -> None:
        check_path(path, valid, source)
        canonical = _canonical(path)
        if canonical in seen:
            raise SpecError(path, f"is set twice (in [{seen[canonical]}] and [{section}])", source)
        seen[canonical] = section

    fixed = []
    fixed_doc = dict_leaves(_table(doc, "fixed", source), "")
    fixed_doc.update(overrides or {})
    for path, value in fixed_doc.items():
        claim(path, "fixed")
        fixed.append((path, coerce_value(path, value, valid[path], source)))
    grid = []
    for path, values in dict_leaves(_table(doc, "grid", source), "").items():
        claim(path, "grid")
        grid.append((path, _values_list(path, values, source, valid)))
    zips_doc = doc.get("zip", [])
    if isinstance(zips_doc, dict):
        zips_doc = [zips_doc]
    if not isinstance(zips_doc, list):
        raise SpecError("zip", "must be [[zip]] tables", source)
    zips = []
    for n, table in enumerate(zips_doc):
        if not isinstance(table, dict) or not table:
            raise SpecError(f"zip[{n}]", "must be a non-empty table of lists", source)
        group = []
        for path, values in dict_leaves(table, "").items():
            claim(path, f"zip[{n}]")
            group.append((path, _values_list(path, values, source, valid)))
        lengths = {p: len(v) for p, v in group}
        if len(set(lengths.values())) > 1:
            raise SpecError(f"zip[{n}]", "zipped lists must have equal length, got "
                                         + ", ".join(f"{p}: {k}" for p, k in lengths.items()), source)
        zips.append(tuple(group))
    sample_doc = dict(_table(doc, "sample", source))
    sample_n = sample_doc.pop("n", 0)
    if isinstance(sample_n, bool) or not isinstance(sample_n, int) or not 0 <= sample_n <= MAX_SAMPLE_N:
        raise SpecError("sample.n", f"must be an integer within 0..{MAX_SAMPLE_N}, got {sample_n!r}", source)
    sample = []
    for path, value in _leaves_until_distribution(sample_doc).items():
        claim(path, "sample")
        sample.append((path, _distribution(path, value, source, valid)))
    if sample and sample_n == 0:
        raise SpecError("sample.n", "is required (> 0) when [sample] lists parameters", source)
    if sample_n and not sample:
        raise SpecError("sample", "sample.n is set but no parameter is sampled", source)
    spec = SweepSpec(name=name, source=source, phantom=phantom, arcs=arcs, modes=tuple(modes), seed=seed,
                     fixed=tuple(fixed), grid=tuple(grid), zips=tuple(zips), sample_n=sample_n,
                     sample=tuple(sample), description=description)
    return spec


def parse_assignment(text: str) -> tuple[str, Any]:
    """'PATH=VALUE' (VALUE in TOML syntax; a bare word is a string) -> (path, value)."""
    path, sep, value = text.partition("=")
    path, value = path.strip(), value.strip()
    if not sep or not path or not value:
        raise SpecError("set", f"expected PATH=VALUE, e.g. phantom.grid.spacing_mm=3, got {text!r}")
    try:
        return path, tomllib.loads(f"v = {value}")["v"]
    except (tomllib.TOMLDecodeError, RecursionError):
        return path, value


def load_sweep(path, overrides: dict | None = None) -> SweepSpec:
    """Read and validate SWEEP.toml (every point's values are checked when the points are expanded);
    overrides {path: value} replace or add [fixed] values."""
    from simsbrt.io.text_input import read_toml

    path = Path(path)
    return parse_sweep(read_toml(path, "sweep"), str(path), path.parent, overrides)


def count_runs(spec: SweepSpec) -> int:
    """Runs the sweep would make (points x modes), computed without expanding anything."""
    n = 1
    for _, values in spec.grid:
        n *= len(values)
    for group in spec.zips:
        n *= len(group[0][1])
    if spec.sample_n:
        n *= spec.sample_n
    return n * max(1, len(spec.modes))
