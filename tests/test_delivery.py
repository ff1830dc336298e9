"""Deliverable VMAT: machine models, the exact aperture dose, arc sequencing within the machine's limits,
the deliverable plan, MCS, and the RTPLAN with MLC read back with pydicom and recomputed.

References are independent of the code under test: the exact beamlet influence matrix of the dose
engine (a rectangle tiled by beamlets has the rectangle's dose), the published MLC geometry
(facts 1.8), brute-force maxima, hand-computed MCS values, and pydicom's reading of the files."""
from pathlib import Path

import numpy as np
import pydicom
import pytest

from simsbrt.delivery.apertures import ApertureDoseEngine, Apertures, cp_mu, segment_matrix
from simsbrt.delivery.machine import load_machine, machine_from_dict
from simsbrt.delivery.metrics import leaf_sequence_variability, modulation_complexity_score
from simsbrt.delivery.sequencing import _clamped_tracks, best_intervals, fit_aperture
from simsbrt.errors import SpecError
from simsbrt.evaluate import evaluate_protocol

DATA = Path(__file__).resolve().parents[1] / "simsbrt" / "dose" / "data"


# ------------------------------------------------------------------ machine models
def test_hd120_and_millennium_leaf_banks_match_the_published_geometry():
    hd = load_machine("truebeam_hd120")
    widths = np.array(hd.leaf_widths_mm)
    assert hd.n_leaf_pairs == 60
    assert np.count_nonzero(widths == 2.5) == 32 and np.count_nonzero(widths == 5.0) == 28   # facts 1.8
    b = hd.leaf_boundaries_mm
    assert b[0] == -110.0 and b[-1] == 110.0
    central = b[(b >= -40.0) & (b <= 40.0)]
    np.testing.assert_allclose(np.diff(central), 2.5)     # the 2.5 mm leaves cover the central 8 cm
    assert len(central) == 33
    mil = load_machine("truebeam_millennium120")
    assert mil.n_leaf_pairs == 60 and sum(mil.leaf_widths_mm) == 400.0
    assert np.count_nonzero(np.array(mil.leaf_widths_mm) == 5.0) == 40
    for m in (hd, mil):
        assert m.max_gantry_speed_deg_per_s == 6.0 and m.max_dose_rate_mu_per_min == 600.0
        assert all(m.sources[k] for k in m.sources)


def _doc():
    import tomllib

    return tomllib.loads((DATA / "machine_truebeam_hd120.toml").read_text())


@pytest.mark.parametrize("edit, field", [
    (lambda d: d["mlc"].update(leaf_speed=1.0), "mlc.leaf_speed"),
    (lambda d: d["mlc"].pop("min_leaf_gap_mm"), "mlc.min_leaf_gap_mm"),
    (lambda d: d["mlc"].update(max_leaf_speed_mm_per_s=-25.0), "mlc.max_leaf_speed_mm_per_s"),
    (lambda d: d["gantry"].update(max_speed_deg_per_s="fast"), "gantry.max_speed_deg_per_s"),
    (lambda d: d["beam"].update(calibration_gy_per_mu=0.02), "beam.calibration_gy_per_mu"),
    (lambda d: d["jaws"].update(y_max_mm=150.0), "jaws.y_min_mm"),
    (lambda d: d.update(extra={}), "extra"),
])
def test_a_bad_machine_file_names_the_field(edit, field):
    doc = _doc()
    edit(doc)
    with pytest.raises(SpecError) as err:
        machine_from_dict(doc, "m.toml")
    assert err.value.field == field


def test_the_beam_model_delivers_the_machine_calibration_at_dmax():
    """1 MU = 1 cGy at dmax, SSD 100, 10 x 10 (facts 1.1 AbsoluteDose.csv): the machine's MU are the engine's."""
    from simsbrt.dose.machine import load_beam_model
    from simsbrt.kernels import cpu

    beam = load_beam_model()
    depth = np.arange(5.0, 30.0, 0.25)
    dose = cpu.water_field_dose(beam.as_array(), np.zeros_like(depth), depth, 1000.0, -50.0, 50.0, -50.0, 50.0,
                                beam.head_scatter_factor(100.0))
    assert dose.max() == pytest.approx(load_machine().calibration_gy_per_mu, rel=0.01)


# ------------------------------------------------------------------ exact aperture dose
@pytest.fixture(scope="module")
def small_case(tiny_plan_inputs):
    return tiny_plan_inputs.phantom


def test_an_mlc_rectangle_has_the_dose_of_the_beamlets_that_tile_it(small_case):
    """Telescoping: the exact (unsampled) influence columns of the beamlets tiling a rectangle sum to its dose."""
    from simsbrt.dose.engine import EXACT, compute_influence
    from simsbrt.geometry.arcs import control_points, default_arc_set, structure_centroid_mm
    from simsbrt.geometry.beamlets import BeamletSet, rectangular_field

    ph = small_case
    iso = structure_centroid_mm(ph.grid, ph.structures["PTV"])
    cps = control_points(default_arc_set(spacing_deg=90.0), iso)[:2]
    u, v = (-12.5, 17.5), (-7.5, 22.5)
    beamlets = BeamletSet(2.5, cps, tuple(rectangular_field(cp, 2.5, u, v) for cp in cps))
    rows = np.flatnonzero(ph.structures["Body"].ravel())[::23]
    infl = compute_influence(ph.grid, ph.density, rows, beamlets, options=EXACT)
    off = beamlets.column_offsets
    ref = np.stack([np.asarray(infl.matrix[:, off[c]:off[c + 1]].sum(axis=1)).ravel() for c in range(2)], axis=1)
    m = load_machine()
    b = m.leaf_boundaries_mm
    leaves = np.zeros((2, m.n_leaf_pairs, 2))
    inside = (b[:-1] >= v[0]) & (b[1:] <= v[1])
    leaves[:, inside] = u
    # the jaws sit exactly on the rectangle; a second aperture has wide-open leaves clipped by the same jaws
    jaws = np.tile([u[0], u[1], v[0], v[1]], (2, 1))
    wide = leaves.copy()
    wide[:, :] = (-60.0, 60.0)
    for lv in (leaves, wide):
        cols = ApertureDoseEngine(ph.grid, ph.density, Apertures(m, cps, np.zeros(2, int), lv, jaws)).columns(rows)
        np.testing.assert_allclose(cols, ref, rtol=0, atol=2e-6 * ref.max())


def test_control_point_mu_takes_half_of_each_adjacent_segment():
    arcs = np.array([0, 0, 0, 1, 1])
    t = segment_matrix(arcs)
    assert t.shape == (5, 3)
    np.testing.assert_allclose(cp_mu([2.0, 4.0, 6.0], arcs), [1.0, 3.0, 2.0, 3.0, 3.0])


# ------------------------------------------------------------------ sequencing pieces
def test_best_intervals_equal_brute_force():
    rng = np.random.default_rng(3)
    values = rng.normal(size=(40, 9))
    start, stop, gain = best_intervals(values)
    for r in range(len(values)):
        best = max([0.0] + [values[r, a:b].sum() for a in range(9) for b in range(a + 1, 10)])
        assert gain[r] == pytest.approx(best)
        assert values[r, start[r]:stop[r]].sum() == pytest.approx(best)


def test_a_single_aperture_fluence_is_recovered_exactly():
    fluence = np.zeros((6, 10))
    fluence[1, 2:5] = fluence[2, 3:8] = fluence[3, 1:9] = 7.0
    start, stop, mu = fit_aperture(fluence, np.full(6, 2.5))
    assert mu == pytest.approx(7.0)
    assert list(zip(start, stop))[1:4] == [(2, 5), (3, 8), (1, 9)]
    assert all(stop[[0, 4, 5]] == start[[0, 4, 5]])


def test_leaf_tracks_keep_every_step_within_the_limit_and_the_leaf_order():
    rng = np.random.default_rng(5)
    x1 = rng.uniform(-40, 10, size=(50, 7))
    targets = np.stack([x1, x1 + rng.uniform(0, 30, size=x1.shape)], axis=-1)
    track = _clamped_tracks(targets, np.full(49, 4.0))
    assert np.abs(np.diff(track, axis=0)).max() <= 4.0 + 1e-9
    assert np.all(track[..., 0] <= track[..., 1] + 1e-12)


# ------------------------------------------------------------------ MCS (McNiven 2010)
def _single_aperture(x1, x2, mu=1.0):
    m = load_machine()
    from simsbrt.geometry.arcs import ControlPoint

    leaves = np.zeros((1, m.n_leaf_pairs, 2))
    mid = m.n_leaf_pairs // 2
    leaves[0, :, :] = (-0.25, 0.25)
    leaves[0, mid:mid + len(x1), 0] = x1
    leaves[0, mid:mid + len(x1), 1] = x2
    b = m.leaf_boundaries_mm
    jaws = np.array([[min(x1), max(x2), b[mid], b[mid + len(x1)]]])
    return Apertures(m, (ControlPoint(0, 0, 0.0, 0.0, 0.0, (0.0, 0.0, 0.0)),), np.zeros(1, int), leaves, jaws)


def test_mcs_is_one_for_an_open_rectangle_and_matches_a_hand_computation():
    assert modulation_complexity_score(_single_aperture([-10.0] * 4, [10.0] * 4), [5.0]) == pytest.approx(1.0)
    # bank at -10, -4, -10: pos_max 6, steps 6 and 6 -> (6 - 6)/6 * (6 - 6)/6 = 0
    assert leaf_sequence_variability(np.array([-10.0, -4.0, -10.0])) == 0.0
    # bank at -10, -9, -8: pos_max 2, steps 1 and 1 -> (2 - 1)/2 * (2 - 1)/2 = 0.25
    assert leaf_sequence_variability(np.array([-10.0, -9.0, -8.0])) == pytest.approx(0.25)
    # one aperture: AAV = 1 (it is its own maximum), so MCS = LSV_A * LSV_B = 0.25 * 1
    aps = _single_aperture([-10.0, -9.0, -8.0], [10.0, 10.0, 10.0])
    assert modulation_complexity_score(aps, [3.0]) == pytest.approx(0.25)


# ------------------------------------------------------------------ the deliverable plan and its RTPLAN
@pytest.fixture(scope="module")
def deliverable(tiny_plan_inputs, tmp_path_factory):
    from simsbrt.delivery.plan import make_deliverable
    from simsbrt.dicom.export import export_plan
    from simsbrt.io.plan_h5 import write_plan
    from simsbrt.optimize.plans import PlanSettings, make_plan

    settings = PlanSettings(n_bisections=2)
    fluence = make_plan(tiny_plan_inputs, "sib", settings)
    plan = make_deliverable(tiny_plan_inputs, fluence, settings)
    root = tmp_path_factory.mktemp("deliverable")
    path = write_plan(root / "sib_deliverable.h5", plan, tiny_plan_inputs, settings)
    export = export_plan(path, root / "dicom")
    return fluence, plan, pydicom.dcmread(str(export.files["RTPLAN"][0])), path


def test_the_deliverable_dose_is_the_normalised_exact_aperture_dose(deliverable, tiny_plan_inputs):
    _, plan, _, _ = deliverable
    ph = tiny_plan_inputs.phantom
    d = plan.delivery
    rows = tiny_plan_inputs.influence.voxel_indices
    again = ApertureDoseEngine(ph.grid, ph.density, d["apertures"]).dose(rows, cp_mu(plan.weights, d["apertures"].arc_of_cp))
    np.testing.assert_allclose(plan.dose_gy.ravel()[rows], again, rtol=1e-5, atol=1e-5)
    ev = evaluate_protocol("sib_trial", plan.dose_gy, ph.structures, ph.grid.voxel_volume_cc)
    assert ev.row("PTV_Eval", "D90%").value == pytest.approx(30.0, abs=0.05)
    assert ev.feasible == plan.feasible
    # 6 Gy/fx spine SBRT VMAT: a few thousand MU per fraction at most (issue target), never below the
    # ~600 MU/fx an open 30 Gy / 5 fx field would need at depth
    assert 600.0 < d["mu_per_fraction"] < 5000.0
    assert d["delivery_time_s_per_fraction"] >= d["mu_per_fraction"] / 10.0 - 1e-6   # 600 MU/min cap
    assert 0.0 < d["mcs"] <= 1.0


def test_the_deliverable_dose_covers_the_whole_patient_exactly(deliverable, tiny_plan_inputs):
    """PLAN.h5 /dose is the final dose on every Body / structure voxel (the fluence plan's final-dose voxels), not
    only on the optimisation rows: outside the rows it equals the per-voxel sum over control points of MU x the
    aperture's dose per MU (columns with depths traced by the engine itself, not the shared depth cache)."""
    from simsbrt.delivery.plan import optimisation_voxels
    from simsbrt.dose.final import dose_voxels
    from simsbrt.io.plan_h5 import read_plan

    _, plan, _, path = deliverable
    ph = tiny_plan_inputs.phantom
    back = read_plan(path)
    dose = back.dose_gy.ravel()
    body = dose_voxels(ph, "body")
    assert np.count_nonzero(dose) == np.count_nonzero(dose[body]) > 0.95 * len(body)
    outside = np.setdiff1d(body, tiny_plan_inputs.influence.voxel_indices)
    assert outside.size > 0.2 * len(body)
    assert np.count_nonzero(dose[outside] > 0.05 * dose.max()) > 50       # not zero beyond the influence rows
    sample = np.setdiff1d(body, optimisation_voxels(tiny_plan_inputs.influence, ph.structures))[::29]
    aps = plan.delivery["apertures"]
    cols = ApertureDoseEngine(ph.grid, ph.density, aps).columns(sample).astype(np.float64)
    ref = cols @ cp_mu(plan.weights, aps.arc_of_cp)
    np.testing.assert_allclose(dose[sample], ref, rtol=1e-4, atol=1e-6 * ref.max())
    record = back.final_dose
    assert record["exact"] is True and record["region"] == "body" and record["n_voxels"] == len(body)
    assert record["depths"] == "shared with the fluence plans' final dose"
    assert record["mlc_transmission_frac"] == aps.machine.transmission_frac


def _beam_positions(item, device):
    for p in item.BeamLimitingDevicePositionSequence:
        if p.RTBeamLimitingDeviceType == device:
            return np.array([float(x) for x in p.LeafJawPositions])
    return None


def test_every_rtplan_aperture_is_within_the_machine_limits(deliverable):
    _, plan, rp, _ = deliverable
    m = load_machine("truebeam_hd120")
    n = m.n_leaf_pairs
    total_mu = 0.0
    meterset = {int(r.ReferencedBeamNumber): float(r.BeamMeterset)
                for r in rp.FractionGroupSequence[0].ReferencedBeamSequence}
    for beam in rp.BeamSequence:
        assert beam.TreatmentMachineName == m.dicom_name
        mlc = [d for d in beam.BeamLimitingDeviceSequence if d.RTBeamLimitingDeviceType == "MLCX"][0]
        assert int(mlc.NumberOfLeafJawPairs) == n
        np.testing.assert_allclose([float(x) for x in mlc.LeafPositionBoundaries], m.leaf_boundaries_mm)
        cps = list(beam.ControlPointSequence)
        jx, jy = _beam_positions(cps[0], "ASYMX"), _beam_positions(cps[0], "ASYMY")
        assert m.jaw_x_mm[0] <= jx[0] < jx[1] <= m.jaw_x_mm[1] and m.jaw_y_mm[0] <= jy[0] < jy[1] <= m.jaw_y_mm[1]
        mu = meterset[int(beam.BeamNumber)]
        total_mu += mu
        weights = np.array([float(c.CumulativeMetersetWeight) for c in cps])
        assert weights[0] == 0.0 and weights[-1] == 1.0 and np.all(np.diff(weights) >= 0)
        leaves = np.array([_beam_positions(c, "MLCX") for c in cps])
        assert leaves.shape == (len(cps), 2 * n)
        gap = leaves[:, n:] - leaves[:, :n]
        assert gap.min() >= m.min_leaf_gap_mm - 1e-3
        assert leaves.min() >= m.leaf_position_min_mm and leaves.max() <= m.leaf_position_max_mm
        for j in range(len(cps) - 1):
            angle = abs((float(cps[j + 1].GantryAngle) - float(cps[j].GantryAngle) + 180.0) % 360.0 - 180.0)
            seg_mu = (weights[j + 1] - weights[j]) * mu
            rate = float(cps[j].DoseRateSet)                  # MU/min written for this segment
            assert rate <= m.max_dose_rate_mu_per_min + 1e-3
            seconds = seg_mu / rate * 60.0 if rate > 0 else 0.0
            seconds = max(seconds, angle / m.max_gantry_speed_deg_per_s - 1e-6)   # the gantry cannot go faster
            move = np.abs(leaves[j + 1] - leaves[j]).max()
            assert move <= m.max_leaf_speed_mm_per_s * seconds + 1e-3, (beam.BeamNumber, j)
    assert total_mu == pytest.approx(plan.delivery["mu_per_fraction"], rel=1e-6)


def test_the_dose_recomputed_from_the_rtplan_matches_the_plan_within_1_percent(deliverable, tiny_plan_inputs):
    """Apertures, gantry angles, jaws and MU read back from RP.dcm alone -> simsbrt's aperture engine."""
    from simsbrt.delivery.rtplan import read_rtplan_apertures

    _, plan, rp, _ = deliverable
    ph = tiny_plan_inputs.phantom
    back = read_rtplan_apertures(rp)
    mu = cp_mu(back.segment_mu_per_fraction * back.n_fractions, back.apertures.arc_of_cp)
    rows = tiny_plan_inputs.influence.voxel_indices
    dose = ApertureDoseEngine(ph.grid, ph.density, back.apertures).dose(rows, mu)
    ref = plan.dose_gy.ravel()[rows]
    assert np.abs(dose - ref).max() <= 0.01 * ref.max()
    high = ref > 0.5 * ref.max()
    assert np.abs(dose[high] / ref[high] - 1.0).max() < 0.01


def test_the_deliverable_plan_file_reads_back(deliverable):
    from simsbrt.io.plan_h5 import read_plan

    _, plan, _, path = deliverable
    back = read_plan(path)
    np.testing.assert_array_equal(back.dose_gy, plan.dose_gy)
    np.testing.assert_allclose(back.delivery["segment_mu"], plan.weights)
    np.testing.assert_allclose(back.delivery["apertures"].leaves_mm, plan.delivery["apertures"].leaves_mm)
    assert back.summary["deliverable"]["machine"] == "truebeam_hd120"


def test_plan_deliverable_on_the_command_line_writes_the_plan_and_its_rtplan(tiny_plan_inputs, tmp_path, capsys):
    import json

    from simsbrt.cli import main
    from simsbrt.io.phantom_h5 import write_phantom

    phantom = write_phantom(tmp_path / "phantom.h5", tiny_plan_inputs.phantom)
    arcs = tmp_path / "arcs.toml"
    arcs.write_text("beamlet_size_mm = 5.0\nbeamlet_margin_mm = 3.0\n"
                    "[[arc]]\ngantry_start_deg = 181.0\ngantry_stop_deg = 179.0\nspacing_deg = 20.0\n")
    out = tmp_path / "plan.h5"
    assert main(["plan", str(phantom), "--mode", "uniform", "--arcs", str(arcs), "--out", str(out), "--backend", "cpu",
                 "--deliverable", "--machine", "truebeam_millennium120", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    side = doc["deliverable"]["plans"]["uniform"]
    assert side["machine"] == "truebeam_millennium120"
    rp = pydicom.dcmread(str(tmp_path / "plan_deliverable_RP.dcm"))
    assert len(rp.BeamSequence) == 1 and rp.BeamSequence[0].TreatmentMachineName == "TB_MLC120"
    meterset = float(rp.FractionGroupSequence[0].ReferencedBeamSequence[0].BeamMeterset)
    assert meterset == pytest.approx(side["mu_per_fraction"], rel=1e-6)
    assert (tmp_path / "plan_deliverable.h5").is_file()
    # argparse refuses it before any planning: one error line, exit status 2
    assert main(["plan", str(phantom), "--mode", "uniform", "--out", str(out), "--deliverable", "--machine",
                 str(tmp_path / "missing.toml")]) == 2
    assert "--machine" in capsys.readouterr().err


def test_built_in_machines_are_found_by_their_dicom_names():
    from simsbrt.delivery.machine import DICOM_NAMES, MACHINES

    for dicom_name, name in DICOM_NAMES.items():
        assert load_machine(dicom_name).name == name and load_machine(name).dicom_name == dicom_name
    assert set(DICOM_NAMES.values()) == set(MACHINES)


def test_compare_deliverable_writes_the_side_by_side_table(deliverable, tiny_plan_inputs, tmp_path):
    import csv
    import json
    from types import SimpleNamespace

    from simsbrt.delivery.cli import deliverable_comparison, format_deliverable
    from simsbrt.optimize.plans import PlanSettings

    fluence = deliverable[0]
    doc = deliverable_comparison(tiny_plan_inputs, PlanSettings(n_bisections=2), SimpleNamespace(results={"sib": fluence}),
                                 tmp_path, SimpleNamespace(machine="truebeam_hd120"), lambda message: None)
    assert json.loads((tmp_path / "deliverable.json").read_text()) == json.loads(json.dumps(doc))
    side = doc["plans"]["sib"]
    gtv = {(r["structure"], r["metric"]): r for r in side["metrics"]}[("GTV", "D50%")]
    assert gtv["fluence_gy"] == pytest.approx(fluence.metrics["GTV"]["D50%"])
    assert gtv["change_gy"] == pytest.approx(gtv["deliverable_gy"] - gtv["fluence_gy"])
    rows = list(csv.reader((tmp_path / "deliverable.csv").open()))
    assert ["sib", "GTV D50% (Gy)"] == rows[1][:2]
    assert (tmp_path / "sib_deliverable.h5").is_file() and (tmp_path / "sib_deliverable_RP.dcm").is_file()
    assert "sib: GTV D50%" in format_deliverable(doc)
    falloff = side["gtv_cord_falloff"]
    assert falloff["fluence"]["gap_mm"] > 0 and falloff["change_gy_per_mm"] == pytest.approx(
        falloff["deliverable_gy_per_mm"] - falloff["fluence_gy_per_mm"], abs=1e-3)
    assert side["deliverable_final_dose"]["exact"] and side["deliverable_final_dose"]["region"] == "body"
    assert any(r[1].startswith("GTV D98% to cord PRV") for r in rows)


@pytest.mark.cudasim
def test_the_cuda_aperture_kernels_under_the_simulator_match_the_cpu(tmp_path):
    import os
    import subprocess
    import sys

    from simsbrt.delivery._cudasim_check import run_case

    out = tmp_path / "aperture.npz"
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    env.pop("SIMSBRT_BACKEND", None)
    proc = subprocess.run([sys.executable, "-m", "simsbrt.delivery._cudasim_check", str(out), "--backend", "cudasim"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    sim, cpu = dict(np.load(out)), run_case("cpu")
    assert str(sim["backend"]) == "cudasim"
    assert np.count_nonzero(cpu["columns"] > 1e-4) > 10
    np.testing.assert_allclose(sim["columns"], cpu["columns"], rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(sim["dose"], cpu["dose"], rtol=1e-6, atol=1e-12)


def test_the_median_filter_removes_a_single_pair_spike_and_keeps_closed_pairs_closed():
    from simsbrt.delivery.sequencing import median_intervals

    start = np.array([0, 2, 2, 7, 2, 2, 0])
    stop = np.array([0, 8, 8, 8, 8, 8, 0])
    s, e = median_intervals(start, stop, 3)
    np.testing.assert_array_equal(s, [0, 2, 2, 2, 2, 2, 0])
    np.testing.assert_array_equal(e, stop)
