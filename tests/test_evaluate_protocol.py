"""Protocol files, the Table 1 evaluation, status boundaries, feasibility and loader errors."""
import argparse
import json

import numpy as np
import pytest

from simsbrt.errors import SpecError
from simsbrt.evaluate import cli_evaluate
from simsbrt.evaluate.metrics import parse_metric
from simsbrt.evaluate.protocol import (
    ACCEPTABLE, MISSING_STRUCTURE, NOT_EVALUATED, OPTIMAL, VIOLATED,
    evaluate_dvhs, evaluate_protocol, prescription_scale_factor, row_status,
)
from simsbrt.protocols import Range, available_protocols, load_protocol, parse_protocol

# Trial Table 1 typed in from shared/reference/sib-protocol.md (facts 4.1):
# (structure, metric, optimal (min, max), mandatory (min, max)); None = unbounded / no range
TABLE_1 = [
    ("PTV_Eval", "D2%", (42.0, 48.0), (None, 51.0)),
    ("PTV_Eval", "D90%", (30.0, 30.0), (29.7, 30.3)),
    ("PTV_Eval", "D98%", (27.0, None), (21.0, None)),
    ("GTV", "D2%", (45.0, 48.0), (None, 51.0)),
    ("GTV", "D50%", (42.0, None), (36.0, None)),
    ("GTV", "D90%", (36.0, None), (27.0, None)),
    ("GTV", "D98%", (27.0, None), (21.0, None)),
    ("SpinalCord_PRV02", "D0.03cc", None, (None, 25.0)),
    ("ThecalSac", "D0.03cc", None, (None, 30.0)),
]


def as_pair(rng):
    return None if rng is None else (rng.min_value, rng.max_value)


class FakeDVH:
    """Stands in for a DVH with chosen metric values, to test the status logic in isolation."""

    def __init__(self, values):
        self.values = values
        self.is_empty = False

    def metric(self, metric):
        return self.values[parse_metric(metric).name]


class TestProtocolFiles:
    def test_builtin_protocols_are_listed(self):
        assert {"sib_trial", "uniform"} <= set(available_protocols())

    def test_sib_protocol_is_table_1_exactly(self):
        protocol = load_protocol("sib_trial")
        assert protocol.n_fractions == 5
        rx = protocol.prescription
        assert (rx.structure, rx.metric.name, rx.dose_gy) == ("PTV_Eval", "D90%", 30.0)
        got = [(lim.structure, lim.metric.name, as_pair(lim.optimal), as_pair(lim.mandatory))
               for lim in protocol.limits]
        assert got == TABLE_1

    def test_uniform_comparator_keeps_organ_limits_and_drops_gtv_goals(self):
        sib, uni = load_protocol("sib_trial"), load_protocol("uniform")
        organ = {"SpinalCord_PRV02", "ThecalSac"}
        organ_rows = lambda p: [(lim.structure, lim.metric.name, as_pair(lim.mandatory))  # noqa: E731
                                for lim in p.limits if lim.structure in organ]
        assert organ_rows(uni) == organ_rows(sib)
        assert not [lim for lim in uni.limits if lim.structure == "GTV"]
        d90 = next(lim for lim in uni.limits if lim.metric.name == "D90%")
        assert as_pair(d90.mandatory) == (29.7, 30.3) and uni.prescription.dose_gy == 30.0
        d2 = next(lim for lim in uni.limits if lim.metric.name == "D2%")
        assert d2.optimal.max_value == 36.0  # homogeneity goal (120 %), documented in uniform.toml

    def test_load_by_path(self, tmp_path):
        path = tmp_path / "copy.toml"
        path.write_text(load_text("sib_trial"))
        assert load_protocol(path).limits == load_protocol("sib_trial").limits


def load_text(name):
    from importlib import resources

    return resources.files("simsbrt.protocols").joinpath(f"{name}.toml").read_text()


class TestStatusBoundaries:
    def test_closed_ranges(self):
        mandatory = Range(None, 51.0, "Gy")
        optimal = Range(42.0, 48.0, "Gy")
        assert row_status(51.0, optimal, mandatory) == ACCEPTABLE  # exactly at the mandatory limit
        assert row_status(51.0001, optimal, mandatory) == VIOLATED  # just outside
        assert row_status(50.9999, optimal, mandatory) == ACCEPTABLE  # just inside
        assert row_status(48.0, optimal, mandatory) == OPTIMAL  # exactly at the optimal bound
        assert row_status(48.0001, optimal, mandatory) == ACCEPTABLE
        assert row_status(42.0, optimal, mandatory) == OPTIMAL
        assert row_status(41.9999, optimal, mandatory) == ACCEPTABLE

    def test_prescription_row(self):
        optimal, mandatory = Range(30.0, 30.0, "Gy"), Range(29.7, 30.3, "Gy")
        assert row_status(30.0, optimal, mandatory) == OPTIMAL
        assert row_status(29.7, optimal, mandatory) == ACCEPTABLE
        assert row_status(30.3, optimal, mandatory) == ACCEPTABLE
        assert row_status(29.6999, optimal, mandatory) == VIOLATED
        assert row_status(30.3001, optimal, mandatory) == VIOLATED

    def test_mandatory_only_row(self):
        mandatory = Range(None, 25.0, "Gy")
        assert row_status(25.0, None, mandatory) == OPTIMAL
        assert row_status(25.001, None, mandatory) == VIOLATED

    def test_float_noise_at_the_bound_is_not_a_violation(self):
        assert row_status(30.0 * 0.99, None, Range(29.7, None, "Gy")) != VIOLATED

    def test_prescription_normalised_in_float32_is_optimal(self):
        # a D90% scaled to 30 Gy and stored as float32 reads back slightly off 30 Gy
        value = float(np.float32(30.0 * (1 + 1e-7)) + 3.8e-7)
        assert value != 30.0
        assert row_status(value, Range(30.0, 30.0, "Gy"), Range(29.7, 30.3, "Gy")) == OPTIMAL


def passing_sib_values():
    return {
        "PTV_Eval": FakeDVH({"D2%": 45.0, "D90%": 30.0, "D98%": 28.0}),
        "GTV": FakeDVH({"D2%": 47.0, "D50%": 43.0, "D90%": 38.0, "D98%": 33.0}),
        "SpinalCord_PRV02": FakeDVH({"D0.03cc": 22.0}),
        "ThecalSac": FakeDVH({"D0.03cc": 25.0}),
    }


class TestFeasibility:
    def test_all_optimal_plan_is_feasible(self):
        result = evaluate_dvhs("sib_trial", passing_sib_values())
        assert result.feasible and result.violated_limits == () and result.missing_required == ()
        assert {r.status for r in result.rows} == {OPTIMAL}

    def test_infeasible_names_the_binding_limit(self):
        dvhs = passing_sib_values()
        dvhs["SpinalCord_PRV02"] = FakeDVH({"D0.03cc": 25.2})
        dvhs["GTV"].values["D98%"] = 24.0  # acceptable, not binding
        result = evaluate_dvhs("sib_trial", dvhs)
        assert not result.feasible
        assert result.violated_limits == ("SpinalCord_PRV02 D0.03cc <= 25 Gy",)
        assert result.row("GTV", "D98%").status == ACCEPTABLE

    def test_missing_optional_structure_is_reported_not_infeasible(self):
        dvhs = passing_sib_values()
        del dvhs["ThecalSac"]  # a thoracic level: no thecal-sac row applies
        result = evaluate_dvhs("sib_trial", dvhs)
        assert result.row("ThecalSac", "D0.03cc").status == MISSING_STRUCTURE
        assert result.row("ThecalSac", "D0.03cc").value is None
        assert result.feasible

    def test_missing_required_structure_is_infeasible(self):
        dvhs = passing_sib_values()
        del dvhs["GTV"]
        result = evaluate_dvhs("sib_trial", dvhs)
        assert not result.feasible and result.missing_required == ("GTV",)
        assert all(r.status == MISSING_STRUCTURE for r in result.rows if r.structure == "GTV")


class TestEndToEnd:
    """A 2 mm grid: PTV_Eval box at a uniform 30 Gy with the GTV inside it; a cord PRV at 20 Gy with
    four 40 Gy voxels. By hand (dvh.py interpolation): every PTV_Eval/GTV D_x = 30 Gy; cord PRV
    D0.03cc = 40 - 0.25 * (40 - 20) = 35 Gy (0.03 cc sits a quarter of a voxel past the fourth
    hot voxel's centre at 0.028 cc); the ThecalSac mask is empty."""

    @staticmethod
    def plan():
        shape = (20, 20, 20)
        dose = np.zeros(shape)
        masks = {name: np.zeros(shape, bool) for name in ("PTV_Eval", "GTV", "SpinalCord_PRV02", "ThecalSac")}
        masks["PTV_Eval"][2:12, 2:12, 2:12] = True
        masks["GTV"][4:8, 4:8, 4:8] = True
        masks["SpinalCord_PRV02"][14:18, 14:18, 2:18] = True
        dose[masks["PTV_Eval"]] = 30.0
        dose[masks["SpinalCord_PRV02"]] = 20.0
        dose[15, 15, 5:9] = 40.0
        return dose, masks

    def test_sib_evaluation(self):
        dose, masks = self.plan()
        result = evaluate_protocol("sib_trial", dose, masks, 0.008)
        assert result.row("PTV_Eval", "D90%").value == pytest.approx(30.0)
        assert result.row("PTV_Eval", "D90%").status == OPTIMAL
        assert result.row("PTV_Eval", "D2%").status == ACCEPTABLE  # 30 < 42 optimal, <= 51 mandatory
        assert result.row("GTV", "D50%").status == VIOLATED  # 30 < 36
        assert result.row("SpinalCord_PRV02", "D0.03cc").value == pytest.approx(35.0)
        assert result.row("ThecalSac", "D0.03cc").status == NOT_EVALUATED
        assert not result.feasible
        assert result.violated_limits == ("GTV D50% >= 36 Gy", "SpinalCord_PRV02 D0.03cc <= 25 Gy")

    def test_uniform_evaluation_and_json(self):
        dose, masks = self.plan()
        dose[15, 15, 5:9] = 20.0  # remove the cord hot spot
        result = evaluate_protocol("uniform", dose, masks, 0.008)
        assert result.feasible
        assert result.row("PTV_Eval", "D2%").status == OPTIMAL  # 30 <= 36 Gy homogeneity goal
        data = json.loads(json.dumps(result.to_dict()))
        assert data["feasible"] is True and data["protocol"] == "uniform"
        assert data["rows"][0]["mandatory"] == {"min": None, "max": 51.0, "unit": "Gy"}
        text = result.format_table()
        assert "PTV_Eval" in text and "feasible: yes" in text and "not evaluated" in text

    def test_prescription_scale_factor_normalises_d90(self):
        rng = np.random.default_rng(7)
        dose, masks = self.plan()
        dose = dose + rng.uniform(0, 10, dose.shape)
        factor = prescription_scale_factor("sib_trial", dose, masks, 0.008)
        scaled = evaluate_protocol("sib_trial", dose * factor, masks, 0.008)
        assert scaled.row("PTV_Eval", "D90%").value == pytest.approx(30.0, abs=1e-9)
        assert scaled.row("PTV_Eval", "D90%").status == OPTIMAL


MINIMAL = """
[protocol]
name = "t"
n_fractions = 5
required_structures = ["PTV_Eval"]
optional_structures = ["SpinalCord_PRV02"]

[prescription]
structure = "PTV_Eval"
metric = "D90%"
dose_gy = 30.0

[[limit]]
structure = "PTV_Eval"
metric = "D2%"
unit = "Gy"
optimal = { min = 42.0, max = 48.0 }
mandatory = { max = 51.0 }
"""


class TestLoaderErrors:
    def parse(self, text):
        import tomllib

        return parse_protocol(tomllib.loads(text), source="test.toml")

    def test_minimal_is_valid(self):
        assert self.parse(MINIMAL).limits[0].metric.name == "D2%"

    @pytest.mark.parametrize("old,new,field", [
        ("name = \"t\"", "name = \"t\"\ncolour = 1", "protocol.colour"),
        ("mandatory = { max = 51.0 }", "mandatory = { max = 51.0 }\nweight = 2", "limit[0].weight"),
        ("mandatory = { max = 51.0 }", "mandatory = { maximum = 51.0 }", "limit[0].mandatory.maximum"),
        ("mandatory = { max = 51.0 }", "mandatory = { max = -51.0 }", "limit[0].mandatory.max"),
        ("optimal = { min = 42.0, max = 48.0 }", "optimal = { min = 48.0, max = 42.0 }", "limit[0].optimal"),
        ("optimal = { min = 42.0, max = 48.0 }", "optimal = { min = 42.0, max = 52.0 }", "limit[0].optimal"),
        ("structure = \"PTV_Eval\"\nmetric = \"D2%\"", "structure = \"Spleen\"\nmetric = \"D2%\"",
         "limit[0].structure"),
        ("structure = \"PTV_Eval\"\nmetric = \"D2%\"", "structure = \"GTV\"\nmetric = \"D2%\"",
         "limit[0].structure"),
        ("metric = \"D2%\"", "metric = \"D2\"", "limit[0].metric"),
        ("unit = \"Gy\"", "unit = \"cGy\"", "limit[0].unit"),
        ("n_fractions = 5", "n_fractions = 0", "protocol.n_fractions"),
        ("metric = \"D90%\"", "metric = \"V30Gy\"", "prescription.metric"),
        ("dose_gy = 30.0", "dose_gy = -30.0", "prescription.dose_gy"),
        ("optional_structures = [\"SpinalCord_PRV02\"]", "optional_structures = [\"Cord\"]",
         "protocol.optional_structures[0]"),
    ])
    def test_errors_name_the_field(self, old, new, field):
        assert old in MINIMAL
        with pytest.raises(SpecError) as info:
            self.parse(MINIMAL.replace(old, new, 1))
        assert info.value.field == field
        assert "test.toml" in str(info.value)

    def test_duplicate_limit(self):
        block = MINIMAL[MINIMAL.index("[[limit]]"):]
        with pytest.raises(SpecError) as info:
            self.parse(MINIMAL + block)
        assert info.value.field == "limit[1]"

    def test_limit_without_ranges(self):
        text = MINIMAL.replace("optimal = { min = 42.0, max = 48.0 }\nmandatory = { max = 51.0 }\n", "")
        with pytest.raises(SpecError) as info:
            self.parse(text)
        assert info.value.field == "limit[0]"

    def test_unknown_protocol_name(self):
        with pytest.raises(SpecError) as info:
            load_protocol("no_such_protocol")
        assert info.value.field == "protocol"


class TestCli:
    def run(self, argv, capsys):
        parser = argparse.ArgumentParser()
        cli_evaluate.register(parser.add_subparsers(dest="command"))
        args = parser.parse_args(argv)
        assert args.func(args) == 0
        return capsys.readouterr().out

    def test_protocol_show_json(self, capsys):
        data = json.loads(self.run(["protocol", "show", "sib_trial", "--json"], capsys))
        assert data["prescription"] == {"structure": "PTV_Eval", "metric": "D90%", "dose_gy": 30.0}
        assert len(data["limits"]) == len(TABLE_1)

    def test_protocol_list_and_show_text(self, capsys):
        assert "sib_trial" in self.run(["protocol", "list"], capsys)
        assert "SpinalCord_PRV02  D0.03cc" in self.run(["protocol", "show", "uniform"], capsys)

    def test_radiobiology(self, capsys):
        # facts 5.3: 14 Gy x 1 at alpha/beta 6 is iso-effective with 25.31 Gy / 5 fx
        data = json.loads(self.run(["radiobiology", "--total-gy", "14", "--fractions", "1", "--alpha-beta", "6",
                                    "--to-fractions", "5", "--json"], capsys))
        assert data["isoeffective_total_gy"]["5"] == pytest.approx(25.31, abs=0.005)
        assert data["eqd2_gy"] == pytest.approx(35.0)
