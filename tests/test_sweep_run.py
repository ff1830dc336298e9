"""One finished tiny sweep (t10_body at 3 mm, 15 degree arcs, 5 mm beamlets) shared by the tests:
the results table, failed runs, the influence cache (memory and disk), resume, an edited sweep, the plot."""
import json
import os
from pathlib import Path

import numpy as np
import pytest

from simsbrt.cli import main
from simsbrt.errors import SpecError

TINY_FIXED = """
"phantom.grid.spacing_mm" = 3.0
"arcs.spacing_deg" = 15.0
"arcs.beamlet_size_mm" = 5.0
"arcs.beamlet_margin_mm" = 3.0
"plan.search_steps" = 1
"plan.solver_options.max_iter" = 40
"plan.search_solver_options.max_iter" = 30
"influence.body_margin_mm" = 10.0
"influence.structure_margin_mm" = 10.0
"""


def write_sweep(path: Path, cord_limits, gaps=(0.0, 6.0), modes='["uniform", "sib"]') -> Path:
    path.write_text(f'phantom = "t10_body"\nmodes = {modes}\n[fixed]\n{TINY_FIXED}\n[grid]\n'
                    f'"phantom.gtv_cord_gap_mm" = {list(gaps)}\n"plan.cord_prv_limit_gy" = {list(cord_limits)}\n')
    return path


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    sweep_file = write_sweep(root / "tiny.toml", [20.0, 25.0])
    out = root / "out"
    assert main(["sweep", str(sweep_file), "--out", str(out), "--workers", "1", "--quiet"]) == 0
    from simsbrt.sweep import read_table

    columns, rows = read_table(out)
    return {"root": root, "sweep": sweep_file, "out": out, "columns": columns, "rows": rows}


def done_rows(finished):
    return [r for r in finished["rows"] if r["status"] == "done"]


def test_one_row_per_run_and_mode_with_inputs_and_compare_metrics(finished):
    rows = finished["rows"]
    assert len(rows) == 4 * 2                                  # 2 gaps x 2 cord limits, 2 modes each
    assert sorted({r["mode"] for r in rows}) == ["sib", "uniform"]
    assert all(sum(r["run_id"] == run_id for r in rows) == 2 for run_id in {r["run_id"] for r in rows})
    from simsbrt.report.compare import DVH_ROWS

    columns = finished["columns"]
    for structure, metric in DVH_ROWS:
        assert f"{structure}.{metric}" in columns and f"{structure}.{metric}.status" in columns
    for column in ("GTV.BED6_D50%", "GTV.EQD2_6_D98%", "GTV.TCP", "PTV_Eval.Paddick_CI_@30Gy", "PTV_Eval.GI_@30Gy",
                   "PTV_Eval.HI_(ICRU_83)", "feasible", "binding_limits", "phantom.gtv.volume_cc",
                   "phantom.gtv_cord_gap_mm", "gtv_cord_gap_realised_mm", "plan.cord_prv_limit_gy",
                   "protocol.n_fractions", "backend", "device", "influence_s", "plan_s", "total_s"):
        assert column in columns
    for r in done_rows(finished):
        assert r["backend"] == "cpu" and r["plan_s"] > 0 and r["total_s"] >= r["plan_s"]
        assert r["SpinalCord_PRV02.D0.03cc"] > 0 and r["ThecalSac.D0.03cc"] is None     # no thecal sac at T10


def test_unrealisable_gap_is_a_failed_run_with_its_message(finished):
    failed = [r for r in finished["rows"] if r["status"] == "failed"]
    assert len(failed) == 4 and {r["phantom.gtv_cord_gap_mm"] for r in failed} == {0.0}
    assert all("cannot be realised" in r["error"] and r["GTV.D50%"] is None for r in failed)
    assert all(abs(r["gtv_cord_gap_realised_mm"] - 6.0) <= 1.5 for r in done_rows(finished))


def test_runs_sharing_geometry_share_one_influence_matrix(finished):
    runs = {}
    for path in (finished["out"] / "runs").glob("*.json"):
        record = json.loads(path.read_text())
        if record["status"] == "done":
            runs[record["run_id"]] = record
    assert len(runs) == 2 and len({r["influence_key"] for r in runs.values()}) == 1
    assert sorted(r["influence_source"] for r in runs.values()) == ["computed", "memory"]
    assert [r["influence_s"] for r in runs.values() if r["influence_source"] == "memory"] == [0.0]
    assert len(list((finished["out"] / "cache").glob("*.h5"))) == 1


def _independent_uniform(row):
    from simsbrt.geometry.arcs import ArcSet, ArcSpec
    from simsbrt.optimize.plans import PlanSettings, make_plan, prepare_plan_inputs, protocol_for
    from simsbrt.optimize.solvers import SolverOptions
    from simsbrt.phantom import build_phantom, load_spec, parse_spec
    from simsbrt.report.compare import plan_metrics_for

    doc = load_spec("t10_body").with_spacing(3.0).to_dict()
    doc["gtv"]["offset_mm"] = json.loads(row["gtv_offset_realised_mm"]) if isinstance(
        row["gtv_offset_realised_mm"], str) else row["gtv_offset_realised_mm"]
    phantom = build_phantom(parse_spec(doc))
    arcs = ArcSet((ArcSpec(181.0, 179.0, "cw", 15.0, name="arc1"), ArcSpec(179.0, 181.0, "ccw", 15.0, name="arc2")),
                  beamlet_size_mm=5.0, beamlet_margin_mm=3.0)
    inputs = prepare_plan_inputs(phantom, arcs, "cpu", body_margin_mm=10.0, structure_margin_mm=10.0)
    settings = PlanSettings(cord_prv_limit_gy=row["plan.cord_prv_limit_gy"], n_bisections=1,
                            solver_options=SolverOptions(max_iter=40, ftol=1e-6),
                            search_solver_options=SolverOptions(max_iter=30, ftol=1e-5))
    result = make_plan(inputs, "uniform", settings)
    return plan_metrics_for(result.dose_gy, phantom.structures, phantom.grid.voxel_volume_cc, result.evaluation,
                            protocol_for("sib", settings), 5)


def test_table_values_match_an_independent_plan(finished):
    row = next(r for r in done_rows(finished) if r["mode"] == "uniform" and r["plan.cord_prv_limit_gy"] == 20.0)
    metrics = _independent_uniform(row)
    assert row["GTV.D50%"] == pytest.approx(metrics.dvh["GTV"]["D50%"], rel=1e-6)
    assert row["SpinalCord_PRV02.D0.03cc"] == pytest.approx(metrics.dvh["SpinalCord_PRV02"]["D0.03cc"], rel=1e-6)
    assert row["GTV.EQD2_6_D50%"] == pytest.approx(metrics.radiobiology["EQD2"]["D50%"], rel=1e-6)
    assert row["SpinalCord_PRV02.D0.03cc.status"] == metrics.status["SpinalCord_PRV02 D0.03cc"]


def test_csv_and_hdf5_tables_agree(finished):
    from simsbrt.sweep import read_table_h5

    h5 = read_table_h5(finished["out"] / "results.h5")
    assert list(h5) == finished["columns"]
    for column in ("GTV.D50%", "plan.cord_prv_limit_gy", "total_s"):
        csv_values = np.array([np.nan if r[column] is None else r[column] for r in finished["rows"]], float)
        np.testing.assert_array_equal(h5[column], csv_values)
    assert list(h5["run_id"]) == [r["run_id"] for r in finished["rows"]]
    assert list(h5["mode"]) == [r["mode"] for r in finished["rows"]]


def test_rerun_skips_every_finished_run(finished, capsys):
    runs = finished["out"] / "runs"
    before = {p.name: p.stat().st_mtime_ns for p in runs.glob("*.json")}
    assert main(["sweep", str(finished["sweep"]), "--out", str(finished["out"]), "--workers", "1", "--quiet"]) == 0
    assert "skipped 4" in capsys.readouterr().out
    assert {p.name: p.stat().st_mtime_ns for p in runs.glob("*.json")} == before


def test_plot_draws_the_table_values(finished):
    from simsbrt.sweep import plot_sweep

    data = plot_sweep(finished["out"], "gtv_cord_gap_mm", "GTV.D50%", finished["root"] / "fig.png", by="mode",
                      where={"plan.cord_prv_limit_gy": "25"})
    assert (finished["root"] / "fig.png").stat().st_size > 0
    assert set(data.lines) == {"sib", "uniform"}
    for mode, (xs, ys) in data.lines.items():
        rows = [r for r in done_rows(finished) if r["mode"] == mode and r["plan.cord_prv_limit_gy"] == 25.0]
        assert list(xs) == sorted(r["phantom.gtv_cord_gap_mm"] for r in rows)
        assert list(ys) == [r["GTV.D50%"] for r in sorted(rows, key=lambda r: r["phantom.gtv_cord_gap_mm"])]
    with pytest.raises(SpecError, match="GTV.D50%"):
        plot_sweep(finished["out"], "gtv_cord_gap_mm", "GTV.D51%", finished["root"] / "bad.png")
    assert main(["sweep", "plot", str(finished["out"]), "--x", "gtv_cord_gap_mm", "--y", "GTV.D50%", "--by", "mode",
                 "--out", str(finished["root"] / "cli.png")]) == 0


def test_an_edited_sweep_keeps_unchanged_runs_and_leaves_the_others_out(finished, capsys):
    """Cord limits 20, 25 and gaps 0, 6 -> 25 Gy at 6 mm only: that run is skipped, the three others stay in
    runs/ but leave the table (a changed input gives a new id; tests/test_sweep_spec.py)."""
    edited = write_sweep(finished["root"] / "edited.toml", [25.0], gaps=(6.0,))
    out = finished["out"]
    assert main(["sweep", str(edited), "--out", str(out), "--workers", "1", "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "0 done now" in text and "skipped 1" in text and "3 run file(s) of other sweep versions" in text
    from simsbrt.sweep import read_table

    _, rows = read_table(out)
    assert len(rows) == 2 and {r["plan.cord_prv_limit_gy"] for r in rows} == {25.0}
    assert {r["phantom.gtv_cord_gap_mm"] for r in rows} == {6.0}
    assert len(list((out / "runs").glob("*.json"))) == 4
    assert not [p for p in os.listdir(out / "runs") if p.endswith(".part")]


def test_disk_cache_round_trip_keeps_the_matrix_and_its_column_map(tiny_plan_inputs, tmp_path):
    from simsbrt.sweep.cache import DiskCache

    cache = DiskCache(tmp_path)
    im = tiny_plan_inputs.influence
    assert cache.store("key1", im)
    back = cache.load("key1")
    assert (back.matrix != im.matrix).nnz == 0 and np.array_equal(back.voxel_indices, im.voxel_indices)
    assert np.array_equal(back.column_map, im.column_map)
    assert cache.load("key2") is None
    assert not DiskCache(tmp_path, max_bytes=1).store("key3", im)            # over the size cap: not stored
    assert not DiskCache(tmp_path, enabled=False).store("key4", im)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["key1.h5"]
    assert DiskCache(tmp_path, max_bytes=1).store("key5", im, force=True)  # a split group needs its file
    assert np.array_equal(DiskCache(tmp_path).load("key5").column_map, im.column_map)


def test_runs_that_realise_the_same_plan_inputs_reuse_the_plans(tmp_path):
    """Gaps of 2 and 4 mm both realise as 3 mm on the 3 mm grid: same phantom, arcs and plan inputs, so the
    second run takes the first run's plans (deterministic) instead of planning them again, and says so."""
    from simsbrt.sweep import read_table

    sweep_file = write_sweep(tmp_path / "same.toml", [25.0], gaps=(2.0, 4.0), modes='["uniform"]')
    assert main(["sweep", str(sweep_file), "--out", str(tmp_path / "out"), "--workers", "1", "--quiet"]) == 0
    _, rows = read_table(tmp_path / "out")
    first, second = sorted(rows, key=lambda r: r["phantom.gtv_cord_gap_mm"])
    assert first["gtv_cord_gap_realised_mm"] == second["gtv_cord_gap_realised_mm"] == pytest.approx(3.0)
    assert first["plan_source"] == "planned" and first["plan_s"] > 0
    assert second["plan_source"] == f"same as {first['run_id']}" and second["plan_s"] == 0.0
    assert second["influence_source"] == "memory"
    for column in ("GTV.D50%", "SpinalCord_PRV02.D0.03cc", "PTV_Eval.D90%", "feasible"):
        assert second[column] == first[column]
    # the reused plan is the plan of this input: an independent plan gives the same metrics
    assert second["GTV.D50%"] == pytest.approx(_independent_uniform(second).dvh["GTV"]["D50%"], rel=1e-6)
