"""simsbrt.report.compare and dvh_plot on synthetic doses (no planning): voxel-wise radiobiology,
missing structures, CSV round trip, PNG size, CLI input errors."""
import csv
import io
import re
import struct

import numpy as np
import pytest

from simsbrt.cli import main
from simsbrt.errors import SpecError
from simsbrt.evaluate import evaluate_protocol
from simsbrt.protocols.loader import load_protocol
from simsbrt.report import compare
from simsbrt.report.dvh_plot import plot_dvh_comparison

VOXEL_CC = 0.027


def eqd2_by_hand(total_gy, n=5, ab=6.0):
    # facts 5.1: EQD2 = D (d + ab) / (2 + ab), d = D / n
    return total_gy * (total_gy / n + ab) / (2.0 + ab)


def two_voxel_case(hot_gy=50.0, cold_gy=30.0):
    """A 4x4x4 grid: GTV = two voxels (hot, cold), PTV_Eval = a 2x2x2 block around them, cord PRV elsewhere."""
    shape = (4, 4, 4)
    dose = np.full(shape, 10.0, dtype=np.float32)
    masks = {name: np.zeros(shape, bool) for name in ("Body", "GTV", "PTV_Eval", "SpinalCord_PRV02", "ThecalSac")}
    masks["Body"][...] = True
    masks["PTV_Eval"][0:2, 0:2, 0:2] = True
    dose[0:2, 0:2, 0:2] = 31.0
    masks["GTV"][0, 0, 0] = masks["GTV"][1, 0, 0] = True
    dose[0, 0, 0], dose[1, 0, 0] = hot_gy, cold_gy
    masks["SpinalCord_PRV02"][3, 3, :] = True
    dose[3, 3, :] = 12.0
    return dose, masks        # ThecalSac present but empty, as at a cord level


def metrics_of(dose, masks):
    trial = load_protocol("sib_trial")
    ev = evaluate_protocol(trial, dose, masks, VOXEL_CC)
    return compare.plan_metrics_for(dose, masks, VOXEL_CC, ev, trial, 5)


def test_eqd2_d50_is_the_voxel_wise_dvh_point_not_the_converted_physical_point():
    dose, masks = two_voxel_case(50.0, 30.0)
    bio = compare.radiobiology_metrics(dose, masks, VOXEL_CC, 5)
    # two equal voxels: D50% lies midway between their centres on the interpolated DVH (dvh.py)
    voxel_wise = 0.5 * (eqd2_by_hand(50.0) + eqd2_by_hand(30.0))          # (100 + 45) / 2 = 72.5
    converted = eqd2_by_hand(0.5 * (50.0 + 30.0))                          # EQD2(40 Gy) = 70
    assert bio["EQD2"]["D50%"] == pytest.approx(voxel_wise, abs=1e-9)
    assert bio["EQD2"]["D50%"] == pytest.approx(72.5)
    assert abs(bio["EQD2"]["D50%"] - converted) > 2.0
    # BED6 = D (1 + d / 6): 50 Gy -> 133.33, 30 Gy -> 60; midpoint 96.67 (BED of 40 Gy would be 93.33)
    assert bio["BED"]["D50%"] == pytest.approx(0.5 * (50 * (1 + 10 / 6) + 30 * (1 + 6 / 6)))
    assert bio["n_fractions"] == 5 and bio["alpha_beta_gy"] == 6.0


def test_check_vector_40_gy_in_5_fractions_gives_eqd2_70_gy():
    dose, masks = two_voxel_case(40.0, 40.0)
    bio = compare.radiobiology_metrics(dose, masks, VOXEL_CC, 5)
    assert bio["EQD2"]["D50%"] == pytest.approx(70.0)       # facts 5.3 check vector
    assert bio["BED"]["D98%"] == pytest.approx(93.3, abs=0.05)
    assert bio["tcp"]["verified"] is False and "UNVERIFIED" in bio["tcp"]["label"]
    # the placeholder model passes through its own anchor: EQD2(6) 70 Gy -> 0.90 (tcp_hytec_spine.toml)
    assert bio["tcp"]["probability"] == pytest.approx(0.90, abs=0.01)


def test_geud_limits():
    d = np.array([30.0, 40.0, 50.0])
    v = np.ones(3)
    assert compare.geud_gy(d, v, 1.0) == pytest.approx(40.0)
    assert compare.geud_gy(np.full(3, 33.0), v, -10.0) == pytest.approx(33.0)
    assert 30.0 < compare.geud_gy(d, v, -10.0) < 40.0                 # a < 0 leans to the cold voxel
    assert compare.geud_gy(d, v, -10.0) == pytest.approx((np.mean(d ** -10.0)) ** -0.1)
    with pytest.raises(SpecError, match="a"):
        compare.geud_gy(d, v, 0.0)


def test_csv_is_ascii_rounded_with_units_as_words():
    dose, masks = two_voxel_case(hot_gy=50.0 + 1e-9 / 3, cold_gy=29.999999999999712)
    text = compare.table_to_csv(compare.build_table({"uniform": metrics_of(dose, masks)}))
    text.encode("ascii")    # raises on any non-ASCII character
    rows = {r[0]: r for r in csv.reader(io.StringIO(text))}
    assert {r[1] for k, r in rows.items() if k != "metric"} <= {"Gy", "ratio", "probability", "Gy (BED, a/b 6)",
                                                                "Gy (EQD2, a/b 6)"}
    assert rows["GTV D98%"][2] == "30.00"                    # float noise rounded to 0.01 Gy
    assert rows["GTV TCP"][1] == "probability" and re.fullmatch(r"0\.\d{3}", rows["GTV TCP"][2])
    assert rows["PTV_Eval HI (ICRU 83)"][1] == "ratio" and re.fullmatch(r"-?\d+\.\d{3}", rows["PTV_Eval HI (ICRU 83)"][2])
    for key, row in rows.items():
        if key != "metric" and row[2]:
            decimals = 3 if row[1] in ("ratio", "probability") else 2
            assert re.fullmatch(r"-?\d+\.\d{%d}" % decimals, row[2]), (key, row[2])


def test_missing_structure_is_none_and_a_dash_never_zero():
    dose, masks = two_voxel_case()
    table = compare.build_table({"uniform": metrics_of(dose, masks), "sib": metrics_of(dose * 1.1, masks)})
    row = table.row("ThecalSac D0.03cc")
    assert row.values == {"uniform": None, "sib": None}
    assert row.status["uniform"] == "not evaluated"
    text = compare.format_table(table)
    line = next(ln for ln in text.splitlines() if ln.startswith("ThecalSac D0.03cc"))
    assert line.split()[3:6] == [compare.MISSING, "(not", "evaluated)"] and " 0.00" not in line
    parsed = compare.read_table_csv(compare.table_to_csv(table))
    assert parsed["ThecalSac D0.03cc"]["values"] == {"uniform": None, "sib": None}
    raw = list(csv.reader(io.StringIO(compare.table_to_csv(table))))
    assert raw[0][:4] == ["metric", "unit", "uniform", "sib"]
    thecal = next(r for r in raw if r[0] == "ThecalSac D0.03cc")
    assert thecal[2:4] == ["", ""]     # an empty cell, never a dash or 0
    # a structure absent from the masks altogether is also None
    del masks["ThecalSac"]
    m = metrics_of(dose, masks)
    assert m.dvh["ThecalSac"]["D0.03cc"] is None and m.status["ThecalSac D0.03cc"] == "missing structure"


def test_cord_point_and_gtv_ci_from_counts():
    dose, masks = two_voxel_case(50.0, 30.0)
    m = metrics_of(dose, masks)
    assert m.dvh["SpinalCord_PRV02"]["D0.03cc"] == pytest.approx(12.0)
    # GTV at 40 Gy: TV = 2 voxels, PIV = 1 voxel (the 50 Gy one), TV_PIV = 1 -> CI = 1 / (2 * 1)
    assert m.indices["GTV"]["paddick_ci"] == pytest.approx(0.5)
    # PTV_Eval at 30 Gy: PTV_Eval (8 voxels) all >= 30 Gy and nothing else -> CI 1; 50 % (15 Gy) volume = 8
    assert m.indices["PTV_Eval"]["paddick_ci"] == pytest.approx(1.0)
    assert m.indices["PTV_Eval"]["gradient_index"] == pytest.approx(1.0)


def test_undefined_index_is_none_not_zero():
    dose, masks = two_voxel_case(35.0, 30.0)      # nothing reaches 40 Gy
    m = metrics_of(dose, masks)
    assert m.indices["GTV"]["paddick_ci"] is None


def png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_plot_has_the_requested_pixel_size_and_replaces_the_file(tmp_path):
    dose, masks = two_voxel_case()
    out = tmp_path / "dvh.png"
    out.write_text("old")
    plot_dvh_comparison({"uniform": dose, "sib": dose * 1.2}, masks, VOXEL_CC, out, size_px=(640, 480))
    assert png_size(out) == (640, 480)
    assert out.stat().st_size > 5000
    assert [p.name for p in tmp_path.iterdir()] == ["dvh.png"]      # no temporary file left behind
    with pytest.raises(SpecError, match="doses_gy"):
        plot_dvh_comparison({}, masks, VOXEL_CC, tmp_path / "x.png")


def test_cli_bad_input_names_the_field(tmp_path, capsys):
    not_a_dir = tmp_path / "file.txt"
    not_a_dir.write_text("x")
    assert main(["compare", "t10_body", "--out", str(not_a_dir)]) == 2
    assert "out" in capsys.readouterr().err
    assert main(["compare", str(tmp_path / "nope.h5"), "--out", str(tmp_path / "o")]) == 2
    assert "phantom: file not found" in capsys.readouterr().err
    bad_arcs = tmp_path / "arcs.toml"
    bad_arcs.write_text("[[arc]]\ngantry_start_deg = 0.0\n")
    assert main(["compare", "t10_body", "--out", str(tmp_path / "o"), "--arcs", str(bad_arcs)]) == 2
    assert "arc[0].gantry_stop_deg" in capsys.readouterr().err
    assert main(["compare", "no_such_phantom", "--out", str(tmp_path / "o"), "--search-steps", "-1"]) == 2
    assert "search-steps" in capsys.readouterr().err
