"""simsbrt view: the embedded data against the plan file, and the page in a real headless Chromium.

The browser tests drive the page through its URL fragment, which moves the sliders with their own
input events and the cursor with a mouse event on the axial canvas; the page then writes its state
into <pre id="view-state">, which `chromium --dump-dom` prints. Without Chromium they skip locally
and fail in CI (CI=true), since .ci/run installs it.
"""
import base64
import gzip
import json
import os
import re
import shutil
import subprocess

import h5py
import numpy as np
import pytest

from simsbrt.cli import main
from simsbrt.errors import SchemaError, SpecError
from simsbrt.evaluate import compute_dvh
from simsbrt.io.phantom_h5 import write_phantom
from simsbrt.io.plan_h5 import read_plan
from simsbrt.phantom import build_phantom, load_spec
from simsbrt.view import load_view_file, view_document

B_FACTOR = 0.8   # plan B of the difference test: plan A's dose x 0.8


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def files(tiny_plan_inputs, tmp_path_factory):
    """A real (cheap) uniform plan of the shared tiny case, a copy with 0.8 x its dose, and a phantom
    whose GTV is in the left pedicle (the orientation marker)."""
    from simsbrt.io.plan_h5 import write_plan
    from simsbrt.optimize.plans import PlanSettings, make_plan
    from simsbrt.optimize.solvers import SolverOptions

    root = tmp_path_factory.mktemp("view")
    settings = PlanSettings(solver_options=SolverOptions(max_iter=60, ftol=1e-5))
    plan_a = write_plan(root / "uniform.h5", make_plan(tiny_plan_inputs, "uniform", settings), tiny_plan_inputs, settings)
    plan_b = root / "scaled.h5"
    shutil.copyfile(plan_a, plan_b)
    with h5py.File(plan_b, "r+") as f:
        f["dose"][...] = f["dose"][...] * np.float32(B_FACTOR)
    phantom = build_phantom(load_spec("t6_body_pedicle").with_spacing(3.0))
    marker = write_phantom(root / "pedicle.h5", phantom)
    return root, plan_a, plan_b, marker


def unpack(b64: str, dtype) -> np.ndarray:
    return np.frombuffer(gzip.decompress(base64.b64decode(b64)), dtype=np.dtype(dtype).newbyteorder("<"))


# ------------------------------------------------------------------ the embedded document
def test_document_holds_the_plan_dose_masks_and_dvh(files):
    _, plan_a, _, _ = files
    plan = read_plan(plan_a)
    doc = view_document([load_view_file(plan_a)])
    p = doc["plans"][0]
    assert doc["shape"] == list(plan.dose_gy.shape) and p["mode"] == "uniform"
    dose = unpack(p["dose"], np.uint16).astype(float).reshape(plan.dose_gy.shape) * p["scale_gy"]
    assert p["scale_gy"] == pytest.approx(float(plan.dose_gy.max()) / 65535)
    assert np.max(np.abs(dose - plan.dose_gy)) <= p["scale_gy"] / 2 * 1.001
    anatomy = doc["anatomies"][p["anatomy"]]
    for s in anatomy["structures"]:
        bits = np.unpackbits(unpack(s["bits"], np.uint8))[:plan.dose_gy.size].reshape(plan.dose_gy.shape)
        assert np.array_equal(bits.astype(bool), plan.phantom.structures[s["name"]]), s["name"]
    # DVH: volume receiving >= the plan's own GTV D50% is 50 % (up to the curve's sampling)
    vv = plan.phantom.grid.voxel_volume_cc
    d50 = compute_dvh(plan.dose_gy, plan.phantom.structures["GTV"], vv).metric("D50%")
    assert np.interp(d50, doc["dvh_axis_gy"], p["dvh"]["GTV"]) == pytest.approx(50.0, abs=3.0)


def test_imported_anatomy_is_shown_like_any_other(files, tmp_path):
    """A phantom imported from DICOM carries an ImportedSpec instead of a PhantomSpec; plans on it too."""
    import dataclasses

    from simsbrt.phantom.model import ImportedSpec

    _, plan_a, _, _ = files
    plan = read_plan(plan_a)
    imported = dataclasses.replace(plan.phantom, spec=ImportedSpec("patient_1", "/data/ct", "DICOM import"))
    path = write_phantom(tmp_path / "patient.h5", imported)
    doc = view_document([load_view_file(path), load_view_file(plan_a)])
    assert doc["anatomies"][0]["name"] == "patient_1" and doc["plans"][0]["kind"] == "phantom"
    assert {s["name"] for s in doc["anatomies"][0]["structures"]} == {
        n for n, m in plan.phantom.structures.items() if m.any()}


def test_refuses_other_files_and_other_grids(files, tmp_path, capsys):
    root, plan_a, _, marker = files
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.attrs["kind"] = "influence"
    with pytest.raises(SchemaError, match="simsbrt view shows"):
        load_view_file(other)
    with pytest.raises(SpecError, match="one grid"):
        view_document([load_view_file(plan_a), load_view_file(marker)])
    assert main(["view", str(tmp_path / "missing.h5"), "--out", str(tmp_path / "v.html")]) == 2
    for bad in ("abc", "0,25", "-5"):
        assert main(["view", str(plan_a), "--out", str(tmp_path / "v.html"), f"--isodose-gy={bad}"]) == 2
    assert "isodose-gy" in capsys.readouterr().err and not (tmp_path / "v.html").exists()


def test_page_is_self_contained(files, capsys):
    root, plan_a, plan_b, _ = files
    out = root / "view.html"
    assert main(["view", str(plan_a), str(plan_b), "--out", str(out), "--isodose-gy", "10,20,28"]) == 0
    assert "wrote" in capsys.readouterr().out
    text = out.read_text(encoding="utf-8")
    assert not re.search(r"https?://|<script[^>]+src=|<link[^>]+href=|@import", text)
    doc = json.loads(re.search(r'<script id="view-data" type="application/json">(.*?)</script>', text, re.S).group(1))
    assert doc["isodose_gy"] == [10.0, 20.0, 28.0] and len(doc["plans"]) == 2
    assert len(doc["anatomies"]) == 1    # same phantom: stored once


def test_phantom_show_draws_a_plan_files_phantom_and_points_to_the_viewer(files, capsys):
    root, plan_a, _, _ = files
    assert main(["phantom", "show", str(plan_a), "--out", str(root / "plan_phantom.png")]) == 0
    assert "simsbrt view" in capsys.readouterr().out and (root / "plan_phantom.png").stat().st_size > 1000


# ------------------------------------------------------------------ in the browser
def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail("chromium is not installed (.ci/run installs it with apt-get); the viewer's browser test needs it")
    pytest.skip("chromium not installed (apt-get install chromium); required in CI")


def run_chromium(tmp_path, url: str, *args) -> str:
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
           "--no-first-run", f"--user-data-dir={tmp_path / 'chromium-profile'}", "--virtual-time-budget=15000",
           *args, url]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def page_state(tmp_path, page, fragment: str) -> dict:
    dom = run_chromium(tmp_path, f"{page.as_uri()}#{fragment}", "--dump-dom")
    found = re.search(r'<pre id="view-state"[^>]*>(.*?)</pre>', dom, re.S)
    assert found, dom[-2000:]
    state = json.loads(found.group(1).replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">"))
    assert state.get("ready"), state
    return state


def shown_dose(readout_text: str, label: str) -> float:
    return float(re.search(re.escape(label) + r": (-?[0-9.]+) Gy", readout_text).group(1))


def test_browser_slider_and_dose_readout(files, tmp_path):
    root, plan_a, plan_b, _ = files
    plan = read_plan(plan_a)
    out = root / "browser.html"
    assert main(["view", str(plan_a), str(plan_b), "--out", str(out)]) == 0
    grid = plan.phantom.grid
    nx, ny, nz = grid.shape
    # slider positions away from the start (the GTV centre) and the hottest voxel off every default slice
    i, j, k = (int(v) for v in np.unravel_index(int(np.argmax(plan.dose_gy)), grid.shape))
    sl = {"sagittal": 3, "coronal": ny - 2, "axial": 1}
    state = page_state(tmp_path, out, "&".join(f"{n}={v}" for n, v in sl.items()) + "&isodose=28,10,20")
    assert state["slices"] == sl and state["isodose_gy"] == [10, 20, 28]
    z_mm = grid.axis_mm(2)[1]
    assert state["labels"]["axial"] == f"slice 1 of 0-{nz - 1}, z = {z_mm:.1f} mm"
    assert state["labels"]["coronal"].startswith(f"slice {ny - 2} of 0-{ny - 1}, y = {grid.axis_mm(1)[ny - 2]:.1f} mm")

    # cursor on the hottest voxel, then on a voxel at the 30 Gy edge, in the difference display
    for voxel in ((i, j, k), _voxel_near(plan.dose_gy, 15.0)):
        state = page_state(tmp_path, out, f"display=diff&a=0&b=1&cursor={','.join(map(str, voxel))}")
        assert state["readout"]["cursor"] == list(voxel) and state["slices"]["axial"] == voxel[2]
        expected = float(plan.dose_gy[voxel])
        labels = list(state["readout"]["dose_gy"])
        assert shown_dose(state["readout_text"], labels[0]) == pytest.approx(expected, abs=0.006)
        assert shown_dose(state["readout_text"], labels[1]) == pytest.approx(B_FACTOR * expected, abs=0.006)
        diff = float(re.search(r"difference: ([+-][0-9.]+) Gy", state["readout_text"]).group(1))
        assert diff == pytest.approx((1 - B_FACTOR) * expected, abs=0.006)
        inside = sorted(n for n, m in plan.phantom.structures.items() if m[voxel])
        assert sorted(state["readout"]["inside"]) == inside


def _voxel_near(dose, level_gy: float) -> tuple:
    flat = int(np.argmin(np.abs(dose - level_gy)))
    return tuple(int(v) for v in np.unravel_index(flat, dose.shape))


def _pixels(image, rgb_test) -> np.ndarray:
    r, g, b = (image[..., n] * 255 for n in range(3))
    return np.argwhere(rgb_test(r, g, b))   # (row, col)


def test_browser_screenshot_is_oriented_patient_left_on_the_right(files, tmp_path):
    import matplotlib.image as mpimg

    root, _, _, marker = files
    out = root / "phantom.html"
    assert main(["view", str(marker), "--out", str(out)]) == 0
    from simsbrt.io.phantom_h5 import read_phantom

    phantom = read_phantom(marker)
    grid = phantom.grid
    zoom = 2   # pixels per mm
    k = int(round(grid.world_to_index(phantom.centroid_mm("GTV"))[2]))
    shot = tmp_path / "axial.png"
    run_chromium(tmp_path, f"{out.as_uri()}#only=axial&zoom={zoom}&axial={k}&structures=GTV,SpinalCord",
                 f"--screenshot={shot}", "--window-size=900,700")
    image = mpimg.imread(shot)
    width, height = round(grid.shape[0] * grid.spacing_mm[0] * zoom), round(grid.shape[1] * grid.spacing_mm[1] * zoom)
    canvas = image[:height, :width, :3]
    assert canvas.std() > 0.05, "blank screenshot"
    red = _pixels(canvas, lambda r, g, b: (r > 170) & (g < 90) & (b < 90))          # GTV outline #d62728
    yellow = _pixels(canvas, lambda r, g, b: (r > 200) & (g > 200) & (b < 80))      # SpinalCord outline #ffff00
    assert len(red) > 20 and len(yellow) > 10
    state = page_state(tmp_path, out, "structures=GTV,SpinalCord")   # the checkboxes toggled the outlines
    assert sorted(state["outlined"]) == ["GTV", "SpinalCord"]

    def expected_px(name):   # the mask's centroid on this slice in the stated layout: col = x, row = y
        ii, jj = np.nonzero(phantom.structures[name][:, :, k])
        return (jj.mean() + 0.5) * grid.spacing_mm[1] * zoom, (ii.mean() + 0.5) * grid.spacing_mm[0] * zoom

    for name, found in (("GTV", red), ("SpinalCord", yellow)):
        row, col = expected_px(name)
        assert abs(found[:, 1].mean() - col) < 8 and abs(found[:, 0].mean() - row) < 8, name
    # the marker is on the patient's left (+x), so on the image right of the cord; anterior (the
    # vertebral body, -y) is up, so the GTV lies above the cord; a mirrored image would fail both
    assert phantom.centroid_mm("GTV")[0] > phantom.centroid_mm("SpinalCord")[0] + 3
    assert red[:, 1].mean() > yellow[:, 1].mean() + 6
    assert red[:, 0].mean() < yellow[:, 0].mean() - 6
