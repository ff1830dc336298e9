"""``simsbrt plan`` --json contract and the PLAN.h5 round trip (tiny phantom file, coarse arcs, uniform mode)."""
import json

import h5py
import numpy as np
import pytest

from simsbrt.cli import main
from simsbrt.errors import SchemaError
from simsbrt.evaluate import evaluate_protocol
from simsbrt.io.phantom_h5 import write_phantom
from simsbrt.io.plan_h5 import read_plan
from simsbrt.phantom import build_phantom, load_spec

ARCS = """
beamlet_size_mm = 5.0
beamlet_margin_mm = 3.0
[[arc]]
gantry_start_deg = 181.0
gantry_stop_deg = 179.0
direction = "cw"
spacing_deg = 15.0
[[arc]]
gantry_start_deg = 179.0
gantry_stop_deg = 181.0
direction = "ccw"
spacing_deg = 15.0
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("plan")
    phantom = build_phantom(load_spec("t10_body").with_spacing(3.0))
    write_phantom(folder / "phantom.h5", phantom)
    (folder / "arcs.toml").write_text(ARCS)
    return folder, phantom


@pytest.fixture(scope="module")
def cli_run(files):
    import contextlib
    import io

    folder, phantom = files
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(["plan", str(folder / "phantom.h5"), "--mode", "uniform", "--out", str(folder / "PLAN.h5"),
                   "--arcs", str(folder / "arcs.toml"), "--backend", "cpu", "--json"])
    return rc, out.getvalue(), err.getvalue(), folder, phantom


def test_cli_json_has_the_contract_keys(cli_run):
    rc, out, err, _, _ = cli_run
    assert rc == 0, err
    doc = json.loads(out)
    for key in ("mode", "backend", "metrics", "protocol", "feasible", "timing_s"):
        assert key in doc
    assert doc["mode"] == "uniform" and doc["backend"] == "cpu"
    assert set(doc["metrics"]["GTV"]) == {"D50%", "D98%", "D2%", "D90%"}
    assert set(doc["metrics"]["PTV_Eval"]) == {"D50%", "D98%", "D2%", "D90%"}
    assert set(doc["metrics"]["SpinalCord_PRV02"]) == {"D0.03cc"}
    assert set(doc["metrics"]["ThecalSac"]) == {"D0.03cc"}
    assert all(set(row) >= {"structure", "metric", "value", "status"} for row in doc["protocol"])
    assert isinstance(doc["feasible"], bool)
    assert "influence matrix" in err  # progress on stderr, not on stdout


def test_plan_file_round_trip(cli_run):
    rc, out, _, folder, phantom = cli_run
    doc = json.loads(out)
    plan = read_plan(folder / "PLAN.h5")
    assert plan.mode == "uniform" and plan.backend == "cpu" and plan.device == "cpu"
    assert plan.dose_gy.dtype == np.float32 and plan.dose_gy.shape == phantom.grid.shape
    assert plan.phantom.grid == phantom.grid
    assert set(plan.phantom.structures) == set(phantom.structures)
    for name, mask in phantom.structures.items():
        np.testing.assert_array_equal(plan.phantom.structures[name], mask)
    np.testing.assert_array_equal(plan.phantom.density, phantom.density)
    assert plan.metrics == doc["metrics"]
    assert plan.feasible == doc["feasible"]
    assert len(plan.weights_mu) == len(plan.beamlet_columns["k"]) > 0
    assert len(plan.arcs["arcs"]) == 2
    # the stored table is the evaluation of the stored dose
    ev = evaluate_protocol("uniform", plan.dose_gy, plan.phantom.structures, plan.phantom.grid.voxel_volume_cc)
    for row, stored in zip(ev.rows, plan.protocol_table):
        assert (row.structure, row.metric, row.status) == (stored["structure"], stored["metric"], stored["status"])
        if row.value is not None:
            assert stored["value"] == pytest.approx(row.value, rel=1e-5)
    with h5py.File(folder / "PLAN.h5", "r") as f:
        for key in ("schema_version", "simsbrt_version", "backend", "device", "mode"):
            assert key in f.attrs


def test_plan_reader_refuses_a_newer_schema(cli_run, tmp_path):
    _, _, _, folder, _ = cli_run
    newer = tmp_path / "newer.h5"
    newer.write_bytes((folder / "PLAN.h5").read_bytes())
    with h5py.File(newer, "a") as f:
        f.attrs["schema_version"] = np.int64(99)
    with pytest.raises(SchemaError, match="newer"):
        read_plan(newer)


def test_cli_bad_input_names_the_field(files, capsys):
    folder, _ = files
    rc = main(["plan", str(folder / "missing.h5"), "--mode", "sib", "--out", str(folder / "x.h5")])
    assert rc == 2 and "phantom" in capsys.readouterr().err
    rc = main(["plan", str(folder / "phantom.h5"), "--mode", "sib", "--out", str(folder / "x.txt")])
    assert rc == 2 and "out" in capsys.readouterr().err
    rc = main(["plan", str(folder / "phantom.h5"), "--mode", "sib", "--out", str(folder / "x.h5"),
               "--cord-prv-limit-gy", "-1"])
    assert rc == 2 and "cord-prv-limit-gy" in capsys.readouterr().err


def test_plan_file_holds_the_exact_final_dose_of_its_weights(cli_run, tmp_path):
    """/dose is the exact final dose of the stored weights (recomputed here), the file says so, and a file
    written before these records existed still reads (its records come back empty)."""
    from dataclasses import replace

    from simsbrt.dose.final import DoseGeometry, final_dose
    from simsbrt.geometry.arcs import load_arc_set
    from simsbrt.geometry.beamlets import build_beamlets

    _, out, _, folder, phantom = cli_run
    doc = json.loads(out)
    plan = read_plan(folder / "PLAN.h5")
    assert doc["final_dose"]["exact"] is True and plan.dose_is_exact
    assert plan.final_dose == doc["final_dose"] and plan.final_dose["backend"] == "cpu"
    assert set(plan.final_minus_optimiser_gy) >= {"GTV D50%", "PTV_Eval D90%", "SpinalCord_PRV02 D0.03cc"}
    beamlets = build_beamlets(load_arc_set(folder / "arcs.toml"), phantom.grid, phantom.structures["PTV"])
    geometry = DoseGeometry.build(phantom, beamlets, "cpu")
    some = replace(geometry, voxels=geometry.voxels[::40])     # every 40th body voxel: a cheap recomputation
    again = final_dose(phantom, beamlets, plan.weights_mu, geometry=some).dose_gy.ravel()[some.voxels]
    assert again.max() > 20.0
    np.testing.assert_allclose(plan.dose_gy.ravel()[some.voxels], again, rtol=1e-6, atol=1e-6)
    older = tmp_path / "older.h5"
    older.write_bytes((folder / "PLAN.h5").read_bytes())
    with h5py.File(older, "a") as f:
        assert f["dose"].attrs["exact"]
        del f.attrs["final_dose_json"], f.attrs["final_minus_optimiser_json"], f["dose"].attrs["exact"]
    old = read_plan(older)
    assert old.final_dose == {} and old.final_minus_optimiser_gy == {} and not old.dose_is_exact
