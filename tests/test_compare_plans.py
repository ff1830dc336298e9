"""``simsbrt compare`` end to end on a tiny phantom (t10_body at 3 mm, coarse arcs, 5 mm beamlets), the
three plans run once per module. Every check re-evaluates the doses stored in the HDF5 files
independently (simsbrt.evaluate and formulas written out here), never the code's own numbers."""
import csv
import io
import json
import struct

import numpy as np
import pytest

import simsbrt.optimize.plans as plans_module
from simsbrt.cli import main
from simsbrt.cli_compare import run_comparison
from simsbrt.evaluate import compute_dvh, evaluate_protocol
from simsbrt.io.phantom_h5 import write_phantom
from simsbrt.io.plan_h5 import read_plan
from simsbrt.optimize.plans import PlanSettings, protocol_for
from simsbrt.report.compare import PLAN_ORDER

N_FRACTIONS, AB = 5, 6.0
SUMMARY_KEYS = {"mode", "backend", "device", "protocol_name", "metrics", "protocol", "feasible", "violated_limits",
                "binding_limits", "prescription_gy", "boost_goal_gy", "timing_s"}
PHYSICAL_ROWS = [("GTV", "D2%"), ("GTV", "D50%"), ("GTV", "D90%"), ("GTV", "D98%"), ("PTV_Eval", "D2%"),
                 ("PTV_Eval", "D90%"), ("PTV_Eval", "D98%"), ("SpinalCord_PRV02", "D0.03cc"),
                 ("ThecalSac", "D0.03cc")]


@pytest.fixture(scope="module")
def inputs(tiny_plan_inputs):
    return tiny_plan_inputs


@pytest.fixture(scope="module")
def run(inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("compare")
    return run_comparison(inputs, PlanSettings(n_bisections=3), out)


@pytest.fixture(scope="module")
def stored(run):
    return {mode: read_plan(run.files[mode]) for mode in PLAN_ORDER}


def eqd2_by_hand(total_gy):
    return total_gy * (total_gy / N_FRACTIONS + AB) / (2.0 + AB)     # facts 5.1


def test_the_three_plans_are_written_and_share_one_phantom(run, stored, inputs):
    assert tuple(run.results) == PLAN_ORDER
    for mode, plan in stored.items():
        assert plan.mode == mode
        np.testing.assert_array_equal(plan.dose_gy, run.results[mode].dose_gy)
        for name, mask in inputs.phantom.structures.items():
            np.testing.assert_array_equal(plan.phantom.structures[name], mask)
        assert plan.arcs == stored["uniform"].arcs


def test_table_physical_values_equal_an_independent_reevaluation_of_the_stored_doses(run, stored):
    for mode, plan in stored.items():
        ph = plan.phantom
        for structure, metric in PHYSICAL_ROWS:
            value = run.table.row(f"{structure} {metric}").values[mode]
            if ph.is_empty(structure):
                assert value is None                     # no thecal sac at T10: missing, not 0
                continue
            expected = compute_dvh(plan.dose_gy, ph.structures[structure], ph.grid.voxel_volume_cc).metric(metric)
            assert value == pytest.approx(expected, abs=1e-9), (mode, structure, metric)
    assert run.table.row("ThecalSac D0.03cc").values == {m: None for m in PLAN_ORDER}


def test_biological_rows_come_from_voxel_wise_dvhs(run, stored):
    for mode, plan in stored.items():
        ph = plan.phantom
        gtv = ph.structures["GTV"]
        dose = plan.dose_gy.astype(float)
        eqd2_dvh = compute_dvh(eqd2_by_hand(dose), gtv, ph.grid.voxel_volume_cc)
        bed_dvh = compute_dvh(dose * (1.0 + dose / (N_FRACTIONS * AB)), gtv, ph.grid.voxel_volume_cc)
        for point in ("D50%", "D98%"):
            assert run.table.row(f"GTV EQD2_6 {point}").values[mode] == pytest.approx(eqd2_dvh.metric(point), rel=1e-9)
            assert run.table.row(f"GTV BED6 {point}").values[mode] == pytest.approx(bed_dvh.metric(point), rel=1e-9)
        # converting the physical D50 instead: the LQ transform is convex, so the interpolated voxel-wise
        # value is never below it (equal only where D50 sits on a voxel centre or the two voxels agree)
        physical_d50 = compute_dvh(dose, gtv, ph.grid.voxel_volume_cc).metric("D50%")
        assert run.table.row("GTV EQD2_6 D50%").values[mode] >= eqd2_by_hand(physical_d50) - 1e-9
        # volume averages differ materially: mean EQD2 - EQD2(mean D) = Var(D) / (n (2 + ab)) exactly
        d = dose[gtv]
        mean_eqd2 = run.document["plans"][mode]["radiobiology"]["EQD2"]["Dmean"]
        assert mean_eqd2 - eqd2_by_hand(d.mean()) == pytest.approx(d.var() / (N_FRACTIONS * (2 + AB)), rel=1e-6)
    sib_gtv = stored["sib"].dose_gy[stored["sib"].phantom.structures["GTV"]]
    assert sib_gtv.var() / 40.0 > 0.05                  # the SIB GTV dose is heterogeneous


def test_sib_boosts_the_gtv_above_the_uniform_plan(run, stored):
    def d50(mode):
        ph = stored[mode].phantom
        return compute_dvh(stored[mode].dose_gy, ph.structures["GTV"], ph.grid.voxel_volume_cc).metric("D50%")

    assert d50("sib") > d50("uniform") + 5.0
    assert run.table.row("GTV D50%").values["sib"] > run.table.row("GTV D50%").values["uniform"]
    tcp = run.table.row("GTV TCP").values
    assert 0.0 < tcp["uniform"] < tcp["sib"] < 1.0       # monotone model, higher GTV dose


def test_indices_equal_voxel_counts_of_the_stored_dose(run, stored):
    for mode, plan in stored.items():
        ph = plan.phantom
        dose, body, ptv = plan.dose_gy, ph.structures["Body"], ph.structures["PTV_Eval"]
        tv = ptv.sum()
        piv = np.count_nonzero(body & (dose >= 30.0))
        tv_piv = np.count_nonzero(ptv & (dose >= 30.0))
        piv50 = np.count_nonzero(body & (dose >= 15.0))
        assert run.table.row("PTV_Eval Paddick CI @30Gy").values[mode] == pytest.approx(tv_piv ** 2 / (tv * piv))
        assert run.table.row("PTV_Eval GI @30Gy").values[mode] == pytest.approx(piv50 / piv)
        dvh = compute_dvh(dose, ptv, ph.grid.voxel_volume_cc)
        hi = (dvh.metric("D2%") - dvh.metric("D98%")) / dvh.metric("D50%")
        assert run.table.row("PTV_Eval HI (ICRU 83)").values[mode] == pytest.approx(hi)


def test_status_is_the_own_protocol_or_table_1(run, stored):
    trial = protocol_for("sib", PlanSettings())
    for mode, plan in stored.items():
        ph = plan.phantom
        own = {(r["structure"], r["metric"]): r["status"] for r in plan.protocol_table}
        table1 = evaluate_protocol(trial, plan.dose_gy, ph.structures, ph.grid.voxel_volume_cc)
        for r in table1.rows:
            status = run.table.row(f"{r.structure} {r.metric}").status[mode]
            expected = own.get((r.structure, r.metric), f"Table 1: {r.status}")
            assert status == expected
    assert run.table.row("GTV D50%").status["uniform"].startswith("Table 1: ")
    assert run.table.row("GTV D50%").status["sib"] == stored["sib"].protocol_table[
        [(r["structure"], r["metric"]) for r in stored["sib"].protocol_table].index(("GTV", "D50%"))]["status"]


def test_csv_parses_and_matches_the_json(run):
    text = run.files["csv"].read_text()
    comments = [line for line in text.splitlines() if line.startswith("#")]
    assert comments[0].startswith("# protocol: sib_trial ") and "uniform plans: uniform" in comments[0]
    assert json.loads(comments[1].split(": ", 1)[1])["name"] == "sib_trial"
    rows = list(csv.reader(io.StringIO(text[sum(len(c) + 1 for c in comments):])))
    assert rows[0] == ["metric", "unit", *PLAN_ORDER, *(f"{p} status" for p in PLAN_ORDER)]
    doc = json.loads(run.files["json"].read_text())
    table = {r["metric"]: r for r in doc["table"]}
    assert [r[0] for r in rows[1:]] == list(table)
    for r in rows[1:]:
        entry = table[r[0]]
        assert r[1] == entry["unit"]
        for plan, cell in zip(PLAN_ORDER, r[2:5]):
            expected = entry["values"][plan]
            # rounded to what the method supports: 0.01 Gy, 0.001 for indices; missing = an empty cell
            tolerance = 0.0005 if r[1] in ("ratio", "probability") else 0.005
            assert (cell == "") if expected is None else float(cell) == pytest.approx(expected, abs=tolerance * 1.0001)
    by_key = {r[0]: r for r in rows[1:]}
    for i, plan in enumerate(PLAN_ORDER):
        p = doc["plans"][plan]
        assert float(by_key["GTV D50%"][2 + i]) == pytest.approx(p["metrics"]["GTV"]["D50%"], abs=0.005)
        assert float(by_key["GTV EQD2_6 D50%"][2 + i]) == pytest.approx(p["radiobiology"]["EQD2"]["D50%"], abs=0.005)
        assert float(by_key["GTV TCP"][2 + i]) == pytest.approx(p["radiobiology"]["tcp"]["probability"], abs=0.0005)
        assert float(by_key["PTV_Eval Paddick CI @30Gy"][2 + i]) == pytest.approx(
            p["indices"]["PTV_Eval"]["paddick_ci"], abs=0.0005)
        assert by_key["ThecalSac D0.03cc"][2 + i] == "" and p["metrics"]["ThecalSac"]["D0.03cc"] is None


def test_png_is_non_empty_with_the_expected_size(run):
    data = run.files["figure"].read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20000
    assert struct.unpack(">II", data[16:24]) == (1200, 800)


def test_json_has_the_contract_keys(run):
    doc = json.loads(json.dumps(run.document, allow_nan=False))     # strict JSON: no NaN
    assert set(doc["plans"]) == set(PLAN_ORDER)
    for mode, p in doc["plans"].items():
        assert SUMMARY_KEYS <= set(p)
        assert set(run.results[mode].summary()) <= set(p)
        assert p["mode"] == mode
        assert {"radiobiology", "indices"} <= set(p)
        assert p["radiobiology"]["tcp"]["verified"] is False
        assert "UNVERIFIED" in p["radiobiology"]["tcp"]["label"]
        assert p["file"] == f"{mode}.h5"
    assert json.loads(run.files["json"].read_text()) == doc


def test_cli_plans_once_on_one_influence_matrix_and_replaces_files(run, inputs, tmp_path, monkeypatch, capsys):
    """The CLI with the planner stubbed by the fixture's results: one prepare_plan_inputs, one make_plans call
    for the three modes on the same inputs; --json prints the contract; a second run replaces the files
    atomically."""
    calls = {"prepare": 0, "make": []}

    def fake_prepare(phantom, arc_set=None, backend="cpu", **kwargs):
        calls["prepare"] += 1
        return inputs

    def fake_make(plan_inputs, modes, settings=None, progress=None, announce=None, on_result=None):
        calls["make"].append((plan_inputs, tuple(modes)))
        for mode in modes:
            on_result(mode, run.results[mode])
        return {mode: run.results[mode] for mode in modes}

    monkeypatch.setattr(plans_module, "prepare_plan_inputs", fake_prepare)
    monkeypatch.setattr(plans_module, "make_plans", fake_make)
    phantom_h5 = tmp_path / "phantom.h5"
    write_phantom(phantom_h5, inputs.phantom)
    arcs = tmp_path / "arcs.toml"
    arcs.write_text('beamlet_size_mm = 5.0\n[[arc]]\ngantry_start_deg = 181.0\ngantry_stop_deg = 179.0\n')
    out = tmp_path / "out"
    out.mkdir()
    (out / "sib.h5").write_text("stale")
    assert main(["compare", str(phantom_h5), "--out", str(out), "--arcs", str(arcs), "--json"]) == 0
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert set(doc["plans"]) == set(PLAN_ORDER)
    assert "simsbrt compare:" in captured.err                 # progress on stderr
    assert calls["prepare"] == 1
    assert [m for _, m in calls["make"]] == [tuple(PLAN_ORDER)]
    assert all(i is inputs for i, _ in calls["make"])
    assert read_plan(out / "sib.h5").mode == "sib"            # the stale file was replaced
    assert main(["compare", str(phantom_h5), "--out", str(out), "--arcs", str(arcs)]) == 0
    text = capsys.readouterr().out
    assert "GTV EQD2_6 D50%" in text and "UNVERIFIED" in text
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["uniform.h5", "uniform_escalated.h5", "sib.h5", "comparison.csv", "comparison.json", "dvh.png"])
