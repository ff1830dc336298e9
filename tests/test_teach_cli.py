"""`simsbrt teach` end to end on the tiny case (t10_body at 3 mm, 15 degree arcs, 5 mm beamlets): one planning
run (API) and one drawing run from the stored plans (CLI --plans) per module. Figures are checked against the
stored doses (read back from sib.h5 / uniform.h5), the page for self-containment and its tables."""
import base64
import contextlib
import io
import json
import re

import numpy as np
import pytest
from matplotlib.image import imread

from simsbrt.cli import main
from simsbrt.io.plan_h5 import read_plan
from simsbrt.optimize.plans import PlanSettings
from simsbrt.report.dvh_plot import DEFAULT_SIZE_PX
from simsbrt.teach.draw import FIGURE_SIZE_PX
from simsbrt.teach.lesson import FIGURES, teach_from_inputs

SIZES = {"axial": FIGURE_SIZE_PX["slices"], "sagittal": FIGURE_SIZE_PX["slices"],
         "profile": FIGURE_SIZE_PX["profile"], "gradient": FIGURE_SIZE_PX["gradient"], "dvh": DEFAULT_SIZE_PX}


@pytest.fixture(scope="module")
def lesson(tiny_plan_inputs, tmp_path_factory):
    return teach_from_inputs(tiny_plan_inputs, PlanSettings(n_bisections=2), tmp_path_factory.mktemp("teach"))


@pytest.fixture(scope="module")
def stored(lesson):
    out = lesson.files["html"].parent
    return {m: read_plan(out / f"{m}.h5") for m in ("uniform", "sib")}


@pytest.fixture(scope="module")
def cli_run(lesson, tmp_path_factory):
    out = tmp_path_factory.mktemp("teach_cli")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["teach", "t10_body", "--plans", str(lesson.files["html"].parent), "--out", str(out),
                     "--cord-prv-limit-gy", "20", "--isodose-gy", "40,20,30", "--json"])
    return code, out, json.loads(printed.getvalue())


def test_figures_decode_have_their_size_and_are_not_blank(lesson):
    for kind, name in FIGURES.items():
        path = lesson.files[kind]
        assert path.name == name
        image = imread(path)
        assert image.shape[:2] == SIZES[kind][::-1], kind
        assert float(image[..., :3].std()) > 0.05, kind


def test_profile_data_is_the_stored_dose_on_the_line(lesson, stored):
    doc = json.loads(lesson.files["data"].read_text())
    for mode, plan in stored.items():
        prof = doc["profiles"][mode]
        i, k = prof["index_i"], prof["index_k"]
        np.testing.assert_allclose(prof["dose_gy"], plan.dose_gy[i, :, k].astype(float), rtol=0, atol=0)
        np.testing.assert_allclose(prof["positions_mm"], plan.phantom.grid.axis_mm(1))
        gtv_x = plan.phantom.centroid_mm("GTV")[0]
        assert abs(prof["x_mm"] - gtv_x) <= plan.phantom.grid.spacing_mm[0] / 2 + 1e-9
        f = prof["falloff"]
        # the crossing lies where the linear interpolation of the stored samples equals the limit
        if f["limit_crossing_mm"] is not None:
            assert np.interp(f["limit_crossing_mm"], prof["positions_mm"], prof["dose_gy"]) == pytest.approx(25.0)
        assert f["reference_dose_gy"] == pytest.approx(plan.summary["metrics"]["GTV"]["D50%"], rel=1e-5)


def test_isodose_levels_are_those_inside_each_stored_slice(lesson, stored):
    doc = json.loads(lesson.files["data"].read_text())
    assert doc["isodose_levels_gy"] == [15.0, 25.0, 30.0, 36.0, 42.0, 45.0]
    for key, sl in doc["slices"].items():
        view, mode = key.split("/")
        dose = stored[mode].dose_gy
        plane = dose[:, :, sl["fixed_index"]] if view == "axial" else dose[sl["fixed_index"], :, :]
        computed = plane[plane > 0]
        expected = [v for v in doc["isodose_levels_gy"] if computed.min() < v < computed.max()]
        assert sl["levels_present_gy"] == expected, key
        assert all(sl["isodose_vertices"][f"{v:g}"] > 0 for v in expected)
    # the SIB boost reaches the 36 Gy line inside the GTV, the uniform plan does not
    assert 36.0 in doc["slices"]["axial/sib"]["levels_present_gy"]
    assert 36.0 not in doc["slices"]["axial/uniform"]["levels_present_gy"]


def test_page_is_self_contained_with_one_embedded_image_per_figure(lesson):
    page = lesson.files["html"].read_text()
    sources = re.findall(r'<img src="([^"]*)"', page)
    assert len(sources) == len(FIGURES) == page.count("<img")
    pngs = sorted(lesson.files[k].read_bytes() for k in FIGURES)
    embedded = []
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        embedded.append(base64.b64decode(src.split(",", 1)[1]))
    assert sorted(embedded) == pngs
    lowered = page.lower()
    for forbidden in ("<script", "http://", "https://", "<link", "@import", "url("):
        assert forbidden not in lowered, forbidden


def test_page_has_the_protocol_and_comparison_tables(lesson):
    page = lesson.files["html"].read_text()
    for mode, status_rows in _protocol_rows(lesson).items():
        for structure, metric, status in status_rows:
            pattern = (rf'<tr(?: class="{status}")?><td>{re.escape(structure)}</td><td>{re.escape(metric)}</td>'
                       rf'<td class="num">[^<]*</td><td>[^<]*</td><td>[^<]*</td><td>{status}</td></tr>')
            assert re.search(pattern, page), (mode, structure, metric, status)
    for label in ("GTV D50%", "SpinalCord_PRV02 D0.03cc", "PTV_Eval Paddick CI @30 Gy"):
        assert f"<td>{label}</td>" in page
    assert "Gy/mm" in page and "80 % -&gt; 20 % distance (mm)" in page


def _protocol_rows(lesson):
    out = lesson.files["html"].parent
    return {m: [(r["structure"], r["metric"], r["status"]) for r in read_plan(out / f"{m}.h5").protocol_table]
            for m in ("uniform", "sib")}


def test_cli_draws_stored_plans_with_its_own_limit_and_levels(cli_run, lesson):
    code, out, printed = cli_run
    assert code == 0
    assert printed["falloff"]["sib"]["limit_gy"] == 20.0 and printed["files"]["html"] == str(out / "teach.html")
    doc = json.loads((out / "figure_data.json").read_text())
    assert doc["cord_prv_limit_gy"] == 20.0
    assert doc["isodose_levels_gy"] == [20.0, 30.0, 40.0]
    for mode in ("uniform", "sib"):
        assert doc["profiles"][mode]["dose_gy"] == lesson.figure_data["profiles"][mode]["dose_gy"]
        assert doc["profiles"][mode]["falloff"]["limit_gy"] == 20.0
    page = (out / "teach.html").read_text()
    assert "&lt;= 20 Gy" in page and page.count("<img") == len(FIGURES)
    assert not (out / "sib.h5").exists()                     # drawing only: no planning


def test_cli_refuses_a_missing_or_mismatched_source(tmp_path, capsys, lesson):
    plans = lesson.files["html"].parent
    assert main(["teach", "--out", str(tmp_path)]) == 2
    assert "phantom" in capsys.readouterr().err
    assert main(["teach", "c5_body", "--plans", str(plans), "--out", str(tmp_path)]) == 2
    assert "were made on 't10_body', not 'c5_body'" in capsys.readouterr().err
    assert main(["teach", "--plans", str(tmp_path / "none"), "--out", str(tmp_path)]) == 2
    assert "uniform.h5 not found" in capsys.readouterr().err
    assert main(["teach", "--plans", str(tmp_path), "--out", str(tmp_path), "--isodose-gy", "a,b"]) == 2
    assert "isodose-gy" in capsys.readouterr().err
