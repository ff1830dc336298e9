"""Protocols as data: every planning number read from the protocol, user protocols on the planning commands,
the shipped 2- and 3-fraction protocols, and no clinical dose constant left in simsbrt/optimize/.

Expected values are typed in from the protocol edits made here and from the reference (facts 4.2 HyTEC:
cord Dmax 17.0 Gy / 2 fx, 20.3 Gy / 3 fx; the trial's thecal sac 30 Gy / 5 fx), never read from the code.
"""
import ast
import json
import tomllib
from importlib import resources
from pathlib import Path

import pytest
from conftest import tiny_arcs

from simsbrt.cli_compare import run_comparison
from simsbrt.errors import SpecError
from simsbrt.evaluate import evaluate_protocol
from simsbrt.evaluate.radiobiology import isoeffective_total_gy
from simsbrt.optimize.plans import PlanSettings, _Planner, make_plan, plan_numbers, protocol_for
from simsbrt.optimize.protocol_numbers import check_phantom, planning_numbers
from simsbrt.optimize.solvers import SolverOptions
from simsbrt.protocols.loader import available_protocols, load_protocol, parse_protocol, protocol_from_dict

OPTIMIZE = Path(__file__).resolve().parents[1] / "simsbrt" / "optimize"
FAST = dict(n_bisections=1, search_solver_options=SolverOptions(max_iter=50, ftol=1e-5),
            solver_options=SolverOptions(max_iter=100, ftol=1e-6))


def _trial_doc() -> dict:
    return tomllib.loads(resources.files("simsbrt.protocols").joinpath("sib_trial.toml").read_text())


def _row(doc: dict, structure: str, metric: str) -> dict:
    return next(r for r in doc["limit"] if (r["structure"], r["metric"]) == (structure, metric))


def _write(doc: dict, path: Path) -> Path:
    """A protocol dict as TOML (the few shapes protocols use)."""
    def value(v):
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + " }"
        return json.dumps(v)

    lines = ["[protocol]"] + [f"{k} = {value(v)}" for k, v in doc["protocol"].items()]
    lines += ["[prescription]"] + [f"{k} = {value(v)}" for k, v in doc["prescription"].items()]
    for r in doc["limit"]:
        lines += ["[[limit]]"] + [f"{k} = {value(v)}" for k, v in r.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


# ------------------------------------------------------------------ each protocol value moves its number
def test_the_trial_protocol_gives_the_trial_numbers():
    n = planning_numbers("sib_trial")
    assert n.prescription_gy == 30.0 and n.n_fractions == 5
    assert n.boost_range_gy == (30.0, 51.0)          # Rx .. GTV D2% <= 51 Gy
    assert n.escalation_range_gy == (30.0, 48.0)
    assert n.hot_spot_aim_gy == 48.0                 # D2% optimal <= 48 Gy
    assert dict(n.organ_limits_gy) == {"SpinalCord_PRV02": 25.0, "ThecalSac": 30.0}
    assert dict(n.organ_aims_gy) == {"SpinalCord_PRV02": 24.0, "ThecalSac": 29.0}
    assert set(n.optimal_window) == {"GTV D2% optimal <= 48 Gy", "PTV_Eval D2% optimal <= 48 Gy"}


@pytest.mark.parametrize("edit, expected", [
    (lambda d: (d["prescription"].update(dose_gy=28.0), _row(d, "PTV_Eval", "D90%").update(
        optimal={"min": 28.0, "max": 28.0}, mandatory={"min": 27.72, "max": 28.28})),
     {"prescription_gy": 28.0, "boost_range_gy": (28.0, 51.0), "escalation_range_gy": (28.0, 48.0)}),
    (lambda d: _row(d, "GTV", "D2%").update(mandatory={"max": 49.0}),
     {"boost_range_gy": (30.0, 49.0)}),
    (lambda d: (_row(d, "GTV", "D2%").update(optimal={"min": 45.0, "max": 46.0}),
                _row(d, "PTV_Eval", "D2%").update(optimal={"min": 42.0, "max": 47.0})),
     {"hot_spot_aim_gy": 46.0, "escalation_range_gy": (30.0, 46.0),
      "optimal_window": ("PTV_Eval D2% optimal <= 47 Gy", "GTV D2% optimal <= 46 Gy")}),
    (lambda d: _row(d, "SpinalCord_PRV02", "D0.03cc").update(mandatory={"max": 20.0}),
     {"organ_limits_gy": (("SpinalCord_PRV02", 20.0), ("ThecalSac", 30.0)),
      "organ_aims_gy": (("SpinalCord_PRV02", 19.0), ("ThecalSac", 29.0))}),
    (lambda d: _row(d, "ThecalSac", "D0.03cc").update(mandatory={"max": 27.0}),
     {"organ_aims_gy": (("SpinalCord_PRV02", 24.0), ("ThecalSac", 26.0))}),
    (lambda d: d["protocol"].update(n_fractions=3), {"n_fractions": 3}),
])
def test_each_protocol_value_moves_its_planning_number(edit, expected):
    doc = _trial_doc()
    edit(doc)
    numbers = planning_numbers(parse_protocol(doc, "edited.toml"))
    for name, value in expected.items():
        assert getattr(numbers, name) == value, name


def test_the_planner_takes_its_goals_and_ranges_from_the_protocol(tiny_plan_inputs, tmp_path):
    doc = _trial_doc()
    doc["prescription"]["dose_gy"] = 28.0
    _row(doc, "PTV_Eval", "D90%").update(optimal={"min": 28.0, "max": 28.0}, mandatory={"min": 27.72, "max": 28.28})
    _row(doc, "GTV", "D2%").update(optimal={"min": 45.0, "max": 46.0}, mandatory={"max": 49.0})
    _row(doc, "SpinalCord_PRV02", "D0.03cc").update(mandatory={"max": 21.0})
    path = _write(doc, tmp_path / "mine.toml")
    planner = _Planner(tiny_plan_inputs, PlanSettings(protocol=str(path), organ_margin_gy=0.5))
    goals = planner.goals
    assert (goals.prescription_gy, goals.hot_spot_aim_gy, goals.cord_prv_aim_gy) == (28.0, 46.0, 20.5)
    assert planner.numbers.boost_range_gy == (28.0, 49.0)
    # a range end given in the settings overrides the protocol's, the other end stays the protocol's
    assert plan_numbers(PlanSettings(protocol=str(path), boost_range_gy=(None, 40.0))).boost_range_gy == (28.0, 40.0)
    with pytest.raises(SpecError, match="boost_range_gy"):
        plan_numbers(PlanSettings(protocol=str(path), boost_range_gy=(50.0, None)))


# ------------------------------------------------------------------ real plans under user protocols
def test_a_user_protocol_with_a_20_gy_cord_prv_limit_is_held_on_the_reported_dose(tiny_plan_inputs, tmp_path):
    doc = _trial_doc()
    doc["protocol"]["name"] = "cord20"
    _row(doc, "SpinalCord_PRV02", "D0.03cc").update(mandatory={"max": 20.0})
    path = _write(doc, tmp_path / "cord20.toml")
    settings = PlanSettings(protocol=str(path), **FAST)
    ph = tiny_plan_inputs.phantom
    run = run_comparison(tiny_plan_inputs, settings, tmp_path / "out", modes=("uniform", "sib"))
    results = run.results
    for mode, result in results.items():
        ev = evaluate_protocol(result.protocol, result.dose_gy, ph.structures, ph.grid.voxel_volume_cc)
        cord = ev.row("SpinalCord_PRV02", "D0.03cc")
        assert cord.mandatory.max_value == 20.0        # the uniform plan's comparator carries the user's limit
        assert cord.value <= 20.0, (mode, cord.value)
        assert result.feasible and ev.feasible, ev.format_table()
        assert ev.row("PTV_Eval", "D90%").value == pytest.approx(30.0, abs=0.05)
        assert result.summary()["protocol_definition"]["limits"][-2]["mandatory"]["max"] == 20.0
    assert results["uniform"].protocol.name == "uniform"      # the uniform plan: the comparator
    # the boost search runs over the protocol's range: Rx .. GTV D2% mandatory max, then bisects
    assert [s.goal_gy for s in results["sib"].search] == [30.0, 51.0, 40.5]
    # the comparison records the user's protocol in full: CSV header lines and the JSON document
    header = [line for line in run.files["csv"].read_text().splitlines() if line.startswith("#")]
    assert header[0] == f"# protocol: cord20 ({path}); uniform plans: uniform"
    assert json.loads(header[1].split(": ", 1)[1])["limits"][7]["mandatory"]["max"] == 20.0
    assert json.loads(header[2].split(": ", 1)[1])["limits"][-2]["mandatory"]["max"] == 20.0
    doc = json.loads(run.files["json"].read_text())
    assert doc["protocol"]["name"] == "cord20" and doc["protocol"]["origin"] == str(path)
    assert doc["plans"]["uniform"]["protocol_definition"]["name"] == "uniform"


def test_the_2_fraction_protocol_moves_the_prescription_and_the_cord_limit(tiny_plan_inputs):
    result = make_plan(tiny_plan_inputs, "uniform", PlanSettings(protocol="sib_2fx", **FAST))
    ph = tiny_plan_inputs.phantom
    ev = evaluate_protocol(result.protocol, result.dose_gy, ph.structures, ph.grid.voxel_volume_cc)
    assert result.protocol.name == "uniform_2fx" and result.protocol.n_fractions == 2
    assert ev.row("PTV_Eval", "D90%").value == pytest.approx(24.0, abs=0.05)
    assert ev.row("SpinalCord_PRV02", "D0.03cc").value <= 17.0
    assert result.feasible and ev.feasible, ev.format_table()


def test_plan_cli_records_the_protocol_and_the_rtplan_its_fractions(tiny_plan_inputs, tmp_path, capsys):
    import pydicom

    from simsbrt.cli import main
    from simsbrt.dicom.export import export_plan
    from simsbrt.geometry.arcs import arc_set_to_doc
    from simsbrt.io.phantom_h5 import write_phantom
    from simsbrt.io.plan_h5 import read_plan

    phantom = write_phantom(tmp_path / "ph.h5", tiny_plan_inputs.phantom)
    arcs = arc_set_to_doc(tiny_arcs())
    lines = [f"beamlet_size_mm = {arcs['beamlet_size_mm']}", f"beamlet_margin_mm = {arcs['beamlet_margin_mm']}"]
    for a in arcs["arcs"]:
        lines += ["[[arc]]"] + [f"{k} = {json.dumps(v)}" for k, v in a.items() if v is not None]
    (tmp_path / "arcs.toml").write_text("\n".join(lines) + "\n")
    out = tmp_path / "p.h5"
    assert main(["plan", str(phantom), "--mode", "uniform", "--arcs", str(tmp_path / "arcs.toml"),
                 "--protocol", "sib_2fx", "--backend", "cpu", "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["protocol_name"] == "uniform_2fx" and summary["protocol_definition"]["n_fractions"] == 2
    stored = read_plan(out)
    assert stored.summary["protocol_definition"]["prescription"]["dose_gy"] == 24.0
    assert protocol_from_dict(stored.summary["protocol_definition"]).limits == protocol_for(
        "uniform", PlanSettings(protocol="sib_2fx")).limits
    export_plan(out, tmp_path / "dicom")
    rp = pydicom.dcmread(str(tmp_path / "dicom" / "RP.dcm"))
    assert rp.FractionGroupSequence[0].NumberOfFractionsPlanned == 2
    assert "uniform_2fx" in rp.PrescriptionDescription
    assert float(rp.DoseReferenceSequence[0].TargetPrescriptionDose) == pytest.approx(24.0)
    # a uniform protocol cannot plan the SIB: refused before any dose is computed
    assert main(["plan", str(phantom), "--mode", "sib", "--protocol", "uniform", "--out", str(tmp_path / "s.h5")]) == 2
    assert "no boost to plan" in capsys.readouterr().err


# ------------------------------------------------------------------ protocols against the phantom, strictness
def test_the_phantom_is_checked_against_the_protocol(tiny_plan_inputs, tmp_path):
    masks = tiny_plan_inputs.phantom.structures            # T10: cord PRV, no thecal sac
    assert any("ThecalSac: not in" in note for note in check_phantom("sib_trial", masks, "t10"))
    doc = _trial_doc()
    doc["protocol"]["required_structures"] = ["PTV_Eval", "GTV", "ThecalSac"]
    doc["protocol"]["optional_structures"] = ["SpinalCord_PRV02"]
    with pytest.raises(SpecError) as err:
        check_phantom(parse_protocol(doc, "x.toml"), masks, "t10")
    assert err.value.field == "protocol.required_structures" and "ThecalSac" in err.value.problem
    # leaving out a structure the phantom lacks is fine; leaving out one it has (the cord PRV) is refused
    doc = _trial_doc()
    doc["protocol"]["optional_structures"] = ["SpinalCord_PRV02"]
    doc["limit"] = [r for r in doc["limit"] if r["structure"] != "ThecalSac"]
    assert check_phantom(parse_protocol(doc, "x.toml"), masks, "t10") == ()
    doc["protocol"]["optional_structures"] = []
    doc["limit"] = [r for r in doc["limit"] if r["structure"] != "SpinalCord_PRV02"]
    with pytest.raises(SpecError, match="would not protect it"):
        check_phantom(parse_protocol(doc, "x.toml"), masks, "t10")


@pytest.mark.parametrize("edit, field", [
    (lambda d: (d["protocol"]["optional_structures"].append("Lungs"),
                d["limit"].append({"structure": "Lungs", "metric": "D2%", "unit": "Gy", "mandatory": {"max": 9.0}})),
     "limit[9].structure"),
    (lambda d: d["limit"].append({"structure": "GTV", "metric": "V40Gy", "unit": "cc", "optimal": {"min": 1.0}}),
     "limit[9].metric"),
    (lambda d: _row(d, "SpinalCord_PRV02", "D0.03cc").update(mandatory={"min": 1.0}), "limit[7]"),
    (lambda d: d["protocol"].update(comparator="sib_2fx"), "protocol.comparator"),
    (lambda d: d["protocol"].update(comparator="uniform_3fx"), "protocol.comparator"),
    (lambda d: d["protocol"].pop("comparator"), "protocol.comparator"),
])
def test_protocols_the_planner_cannot_use_are_refused_naming_the_field(edit, field):
    doc = _trial_doc()
    edit(doc)
    with pytest.raises(SpecError) as err:
        protocol_for("uniform", PlanSettings(protocol=parse_protocol(doc, "x.toml")))
    assert err.value.field == field, err.value


def test_loader_stays_strict_on_the_comparator_key():
    doc = _trial_doc()
    doc["protocol"]["comparator"] = 3
    with pytest.raises(SpecError) as err:
        parse_protocol(doc, "x.toml")
    assert err.value.field == "protocol.comparator"


def test_a_comparator_path_is_read_relative_to_the_protocol_file(tmp_path):
    (tmp_path / "sub").mkdir()
    uniform = resources.files("simsbrt.protocols").joinpath("uniform.toml").read_text()
    (tmp_path / "sub" / "my_uniform.toml").write_text(uniform.replace('name = "uniform"', 'name = "my_uniform"'))
    doc = _trial_doc()
    doc["protocol"]["comparator"] = "sub/my_uniform.toml"
    path = _write(doc, tmp_path / "mine.toml")
    assert protocol_for("uniform", PlanSettings(protocol=str(path))).name == "my_uniform"


# ------------------------------------------------------------------ the shipped schedules
@pytest.mark.parametrize("name, n_fx, rx_gy, cord_gy, sac_gy", [
    ("sib_trial", 5, 30.0, 25.0, 30.0), ("sib_3fx", 3, 27.0, 20.3, 24.0), ("sib_2fx", 2, 24.0, 17.0, 20.0)])
def test_shipped_schedules_carry_hytec_limits_with_sources(name, n_fx, rx_gy, cord_gy, sac_gy):
    sib = load_protocol(name)
    uniform = protocol_for("uniform", PlanSettings(protocol=name))
    for p in (sib, uniform):
        assert p.n_fractions == n_fx and p.prescription.dose_gy == rx_gy and p.source
        assert p.max_dose_limit_gy("SpinalCord_PRV02") == cord_gy
        assert p.max_dose_limit_gy("ThecalSac") == sac_gy
    assert uniform.name in available_protocols() and not any(lim.structure == "GTV" for lim in uniform.limits)
    # the sac limit is the trial's 30 Gy / 5 fx at the HyTEC alpha/beta of 2 Gy (facts 4.2, 5.2)
    assert isoeffective_total_gy(30.0, 5, 2.0, n_fx) == pytest.approx(sac_gy, abs=0.01)
    if n_fx != 5:
        assert all(lim.note for lim in sib.limits)
        # the target rows are the trial's Table 1 percentages of the prescription (170 %, 150-160 %, ...)
        gtv_d2 = next(lim for lim in sib.limits if (lim.structure, lim.metric.name) == ("GTV", "D2%"))
        assert gtv_d2.mandatory.max_value == pytest.approx(1.7 * rx_gy)
        assert gtv_d2.optimal.min_value == pytest.approx(1.5 * rx_gy)


def test_protocol_list_shows_the_schedules(capsys):
    from simsbrt.cli import main

    assert main(["protocol", "list"]) == 0
    out = capsys.readouterr().out
    for name, fx in (("sib_2fx", "2 fx"), ("sib_3fx", "3 fx"), ("uniform_2fx", "2 fx"), ("sib_trial", "5 fx")):
        assert any(line.startswith(name + " ") and fx in line for line in out.splitlines()), name


def test_sweep_protocol_name_sets_the_protocol_and_its_fractions(tmp_path):
    from simsbrt.sweep.points import expand_points, plan_settings
    from simsbrt.sweep.spec import load_sweep

    doc = _trial_doc()
    doc["protocol"]["name"] = "mine"
    _write(doc, tmp_path / "mine.toml")
    (tmp_path / "s.toml").write_text('phantom = "t10_body"\nmodes = ["uniform", "sib"]\n'
                                     '[grid]\n"protocol.name" = ["sib_2fx", "mine.toml"]\n')
    points = expand_points(load_sweep(tmp_path / "s.toml"))
    assert [p.inputs["protocol.name"] for p in points] == ["sib_2fx", str((tmp_path / "mine.toml").resolve())]
    assert [p.n_fractions for p in points] == [2, 5]
    assert plan_numbers(plan_settings(points[0].plan_overrides)).prescription_gy == 24.0
    before = points[1].run_id
    _row(doc, "SpinalCord_PRV02", "D0.03cc").update(mandatory={"max": 22.0})
    _write(doc, tmp_path / "mine.toml")
    assert expand_points(load_sweep(tmp_path / "s.toml"))[1].run_id != before   # an edited protocol: a new run
    (tmp_path / "u.toml").write_text('phantom = "t10_body"\nmodes = ["sib"]\n[fixed]\n"protocol.name" = "uniform"\n')
    with pytest.raises(SpecError) as err:
        expand_points(load_sweep(tmp_path / "u.toml"))
    assert err.value.field.startswith("protocol.name")


# ------------------------------------------------------------------ no clinical dose in the optimiser's code
# Tuning values in Gy that are not clinical limits (each documented where it is defined).
TUNING_GY = {"organ_margin_gy": 1.0, "ORGAN_MARGIN_GY": 1.0, "optimal_preference_gy": 0.5,
             "boost_hot_margin_gy": 2.0,
             "STOP_GY": 0.02,   # the truncation's correction-round stop (a numerical tolerance)
             "INTERPOLATE_TOLERANCE_GY": 0.3}   # the command line's interpolating search: bracket width to stop at


def _clinical_doses_gy() -> set:
    """Every dose >= 10 Gy that a shipped protocol states (prescriptions, limits)."""
    doses = set()
    for name in available_protocols():
        p = load_protocol(name)
        doses.add(p.prescription.dose_gy)
        for lim in p.limits:
            for rng in (lim.optimal, lim.mandatory):
                if rng is not None:
                    doses |= {v for v in (rng.min_value, rng.max_value) if v is not None}
    return {d for d in doses if d >= 10.0}


OTHER_UNITS = ("_mm", "_deg", "_cc", "_s", "_frac")      # names of lengths, angles, volumes, times, fractions


def _name(node) -> str:
    name = getattr(node, "id", None) or getattr(node, "attr", None) or getattr(node, "arg", None)
    return name if isinstance(name, str) else ""


def _named_values(tree):
    """(name, value node) of every assignment, keyword argument and parameter default."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            yield from ((_name(t), node.value) for t in node.targets)
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            yield _name(node.target), node.value
        elif isinstance(node, ast.keyword):
            yield node.arg or "", node.value
        elif isinstance(node, ast.arguments):
            positional = node.posonlyargs + node.args
            yield from ((_name(a), d) for a, d in zip(positional[len(positional) - len(node.defaults):], node.defaults))
            yield from ((_name(a), d) for a, d in zip(node.kwonlyargs, node.kw_defaults) if d is not None)


def _numbers(node):
    return [c for c in ast.walk(node) if isinstance(c, ast.Constant) and type(c.value) in (int, float)]


def test_no_clinical_dose_constant_in_the_optimiser():
    clinical = _clinical_doses_gy()
    assert {30.0, 48.0, 51.0, 25.0, 24.0, 17.0} <= clinical       # the check has teeth
    found = []
    for path in sorted(OPTIMIZE.glob("*.py")):
        tree = ast.parse(path.read_text())
        other_unit = set()       # literals named as another unit (mm, deg, ...) or as a count (int)
        for name, value in _named_values(tree):
            numbers = _numbers(value)
            if name.lower().endswith(OTHER_UNITS) or name.startswith(("n_", "max_")):
                other_unit |= {id(c) for c in numbers}
            elif name.lower().endswith("_gy"):
                # a Gy-named value: a literal dose other than a documented tuning value
                found += [f"{path.name}:{c.lineno}: {name} = {c.value}" for c in numbers
                          if c.value != 0 and TUNING_GY.get(name) != c.value]
        # any other literal equal to a dose a protocol states (docstrings and comments are not number literals)
        found += [f"{path.name}:{c.lineno}: literal {c.value}" for c in _numbers(tree)
                  if id(c) not in other_unit and float(c.value) in clinical]
    assert not found, "clinical dose constants in simsbrt/optimize/: " + "; ".join(found)
