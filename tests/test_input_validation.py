"""Every kind of hostile input of the hardening report has a regression test here: a one-line
``simsbrt: error:`` naming the input (exit 2), no traceback, and no input changed.

The inputs are the fuzz suite's tiny valid ones (tests/fuzz/assets.py) and its mutations
(tests/fuzz/mutations.py), run in-process through simsbrt.cli.main."""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest

from simsbrt.cli import main
from tests.fuzz import mutations as mut
from tests.fuzz.assets import session_assets


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    return session_assets(tmp_path_factory)


@pytest.fixture
def case(tmp_path, assets, monkeypatch):
    """A fresh folder holding copies of the valid inputs; the tests run in it."""
    for name in ("phantom.h5", "spec.toml", "arcs.toml", "sweep.toml", "protocol.toml", "names.toml"):
        shutil.copy(assets / name, tmp_path / name)
    shutil.copytree(assets / "plans", tmp_path / "plans")
    shutil.copytree(assets / "dicom", tmp_path / "dicom")
    for extra in ("RD.dcm", "RP.dcm"):
        (tmp_path / "dicom" / extra).unlink()
    monkeypatch.chdir(tmp_path)
    return tmp_path


def digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def refused(capsys, argv, *words):
    """Run argv; assert exit 2 and exactly one stderr line 'simsbrt: error: ...' holding every word."""
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("simsbrt plan:")
             and not line.startswith("simsbrt compare:") and not line.startswith("simsbrt teach:")]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("simsbrt: error:"), err
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


PLAN = ["plan", "phantom.h5", "--mode", "uniform", "--arcs", "arcs.toml", "--search-steps", "0"]


# ------------------------------------------------------------------ never destroy an input
@pytest.mark.parametrize("argv, protected, words", [
    (PLAN + ["--out", "phantom.h5"], "phantom.h5", ["would overwrite the input"]),
    (["phantom", "build", "spec.toml", "--out", "spec.toml"], "spec.toml", ["out"]),
    (["phantom", "build", "spec.toml", "--out", "sub/../spec.h5"], None, []),
    (["phantom", "show", "phantom.h5", "--out", "phantom.h5"], "phantom.h5", ["out"]),
    (["teach", "--plans", "plans", "--out", "plans"], "plans/dvh.png", ["input folder"]),
    (["teach", "--plans", "plans", "--out", "./plans/"], "plans/sib.h5", ["input folder"]),
    (["export", "dicom", "plans/sib.h5", "--out", "plans/sib.h5"], "plans/sib.h5", ["out"]),
    (["dose", "compute", "phantom.h5", "--arcs", "arcs.toml", "--out", "phantom.h5"], "phantom.h5", ["input"]),
    (["compare", "phantom.h5", "--arcs", "arcs.toml", "--out", "phantom.h5"], "phantom.h5", ["not a folder"]),
    (PLAN + ["--out", "plans"], "plans/sib.h5", ["out"]),
    (PLAN + ["--out", "folder.h5"], "plans/sib.h5", ["existing folder"]),
    (PLAN + ["--out", ""], "phantom.h5", ["out"]),
    (PLAN + ["--out", "/proc/simsbrt_no_such_folder/plan.h5"], "phantom.h5", ["cannot"]),
    (["sweep", "plot", "plans", "--x", "a", "--y", "b", "--out", "x.xyz"], None, ["suffix"]),
])
def test_an_output_never_replaces_an_input(case, capsys, argv, protected, words):
    before = digest(case / protected) if protected else None
    (case / "folder.h5").mkdir()
    if argv[:2] == ["phantom", "build"] and "sub/../spec.h5" in argv:
        (case / "sub").mkdir()
        assert main(argv) == 0                      # another spelling of a new file is fine
        return
    refused(capsys, argv, *words)
    if protected:
        assert digest(case / protected) == before


def test_a_refused_sweep_leaves_no_output_folder(case, capsys):
    (case / "bad.toml").write_text((case / "sweep.toml").read_text().replace("[24.0]", "[1e9]"))
    refused(capsys, ["sweep", "bad.toml", "--out", "new_out"], "plan.cord_prv_limit_gy")
    assert not (case / "new_out").exists()


# ------------------------------------------------------------------ runaway work refused up front
@pytest.mark.parametrize("argv, words", [
    (PLAN[:-2] + ["--search-steps", "1000000", "--out", "p.h5"], ["search-steps", "0 .. 30"]),
    (["dose", "pdd", "--field-mm", "1e6"], ["field-mm"]),
    (["dose", "pdd", "--field-mm", "nan"], ["field-mm", "finite"]),
    (["dose", "pdd", "--field-mm", "inf"], ["field-mm"]),
    (["sweep", "sweep.toml", "--out", "o", "--cache-gb", "nan"], ["cache-gb"]),
    (["sweep", "sweep.toml", "--out", "o", "--dask", "nonsense::addr"], ["dask"]),
    (["sweep", "sweep.toml", "--out", "o", "--dask", "tcp://127.0.0.1:9"], ["cannot reach"]),
    (PLAN + ["--out", "p.h5", "--cord-prv-limit-gy", "1e9"], ["cord-prv-limit-gy"]),
    (PLAN + ["--out", "p.h5", "--cord-prv-limit-gy", "1e-300"], ["cord-prv-limit-gy"]),
    (["dose", "compute", "phantom.h5", "--out", "i.h5", "--body-margin-mm=-5"], ["body-margin-mm"]),
    (["dose", "compute", "phantom.h5", "--out", "i.h5", "--body-margin-mm", "nan"], ["body-margin-mm"]),
    (["dose", "compute", "phantom.h5", "--out", "i.h5", "--beam", "missing.json"], ["beam", "no such file"]),
    (["dose", "compute", "phantom.h5", "--out", "i.h5", "--beam", "."], ["beam", "not a regular file"]),
    (["dose", "compute", "phantom.h5", "--out", "i.h5", "--beam", "spec.toml"], ["beam", "invalid JSON"]),
    (["radiobiology", "--total-gy", "inf", "--fractions", "5", "--alpha-beta", "2"], ["total-gy"]),
    (["radiobiology", "--total-gy", "30", "--fractions", "5", "--alpha-beta", "0"], ["alpha-beta"]),
])
def test_numbers_outside_their_documented_range_are_refused(case, capsys, argv, words):
    refused(capsys, argv, *words)


@pytest.mark.parametrize("sweep_edit, words", [
    (lambda doc: doc.__setitem__("grid", {"plan.cord_prv_limit_gy": [20.0 + i * 0.01 for i in range(1000)],
                                          "plan.thecal_sac_limit_gy": [25.0 + i * 0.01 for i in range(1000)]}),
     ["1,000,000 runs", "--yes"]),
    (lambda doc: doc.__setitem__("sample", {"n": 10**9, "plan.cord_prv_limit_gy": {"uniform": [20.0, 25.0]}}),
     ["sample.n"]),
    (lambda doc: doc.__setitem__("sample", {"n": 3, "plan.thecal_sac_limit_gy": {"uniform": [20.0, float("inf")]}}),
     ["finite bounds"]),
    (lambda doc: doc.__setitem__("grid", {"phantom.gtv_cord_gap_mm": ["x"]}), ["phantom.gtv_cord_gap_mm"]),
    (lambda doc: doc.__setitem__("grid", {"plan.search_steps": [1000000]}), ["plan.search_steps"]),
])
def test_sweeps_are_checked_before_any_run(case, capsys, sweep_edit, words):
    import tomllib

    doc = tomllib.loads((case / "sweep.toml").read_text())
    sweep_edit(doc)
    (case / "s.toml").write_text(mut.dumps_toml(doc))
    refused(capsys, ["sweep", "s.toml", "--out", "o", "--workers", "1", "--quiet"], *words)
    assert not (case / "o").exists()


# ------------------------------------------------------------------ text inputs
ENCODINGS = {
    "utf16": lambda text: text.encode("utf-16"),
    "latin1": lambda text: ("# caf\xe9\n" + text).encode("latin-1"),
    "binary": lambda text: bytes(range(256)) * 4,
    "nested": lambda text: (text + "\nz = " + "[" * 5000 + "1" + "]" * 5000 + "\n").encode(),
    "hdf5": lambda text: b"\x89HDF\r\n\x1a\n" + b"\0" * 64,
}


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
@pytest.mark.parametrize("kind, argv", [
    ("spec", ["phantom", "build", "case.toml", "--out", "o.h5"]),
    ("arcs", PLAN[:4] + ["--arcs", "case.toml", "--out", "p.h5"]),
    ("sweep", ["sweep", "case.toml", "--out", "o"]),
    ("protocol", ["protocol", "show", "case.toml"]),
    ("names", ["import", "dicom", "dicom", "--out", "i.h5", "--names", "case.toml"]),
])
def test_text_files_of_any_encoding_give_one_line(case, capsys, kind, argv, encoding):
    source = {"spec": "spec.toml", "arcs": "arcs.toml", "sweep": "sweep.toml", "protocol": "protocol.toml",
              "names": "names.toml"}[kind]
    (case / "case.toml").write_bytes(ENCODINGS[encoding]((case / source).read_text()))
    refused(capsys, argv, "case.toml")


def test_a_folder_or_an_hdf5_file_as_arcs(case, capsys):
    (case / "adir").mkdir()
    refused(capsys, PLAN[:4] + ["--arcs", "adir", "--out", "p.h5"], "arcs", "not a regular file")
    refused(capsys, PLAN[:4] + ["--arcs", "phantom.h5", "--out", "p.h5"], "arcs", "HDF5")


@pytest.mark.parametrize("key, value, words", [
    ("gtv.volume_cc", 1e300, ["gtv.volume_cc"]),
    ("gtv.volume_cc", 2**62, ["gtv.volume_cc"]),
    ("anatomy.level", ["T10"], ["anatomy.level"]),
    ("anatomy.level", {"a": 1}, ["anatomy.level"]),
    ("gtv.levels", [["T10"]], ["gtv.levels"]),
    ("gtv.aspect", [1e300, 1e300, 1e300], ["gtv.aspect"]),
    ("gtv.aspect", [1e-120, 1e-120, 1e-120], ["gtv.aspect"]),
    ("gtv.offset_mm", [1e300, 0.0, 0.0], ["gtv.offset_mm"]),
])
def test_impossible_phantom_specs(case, capsys, key, value, words):
    import tomllib

    doc = tomllib.loads((case / "spec.toml").read_text())
    mut._set_path(doc, key.split("."), value)
    (case / "case.toml").write_text(mut.dumps_toml(doc))
    line = refused(capsys, ["phantom", "build", "case.toml", "--out", "o.h5"], "case.toml", *words)
    assert "Warning" not in line


@pytest.mark.parametrize("edit, words", [
    ({"isocentre_mm": [0.0, 1000.0, 0.0]}, ["isocentre_mm", "within 50 mm"]),     # 1 m posterior
    ({"isocentre_mm": [0.0, 1.0e6, 0.0]}, ["isocentre_mm"]),                       # 1 km away
    ({"arc": [{"gantry_start_deg": 1e300, "gantry_stop_deg": 179.0}]}, ["gantry_start_deg"]),
    ({"arc": [{"gantry_start_deg": 181.0, "gantry_stop_deg": 179.0, "collimator_deg": 1e300}]},
     ["collimator_deg"]),
])
def test_impossible_arcs_are_refused_before_the_dose(case, capsys, edit, words):
    import tomllib

    doc = tomllib.loads((case / "arcs.toml").read_text())
    doc.update(edit)
    (case / "case.toml").write_text(mut.dumps_toml(doc))
    refused(capsys, PLAN[:4] + ["--arcs", "case.toml", "--out", "p.h5"], *words)
    assert not (case / "p.h5").exists()


def test_a_source_inside_the_body_and_a_source_plane_isocentre_are_refused():
    """Geometry checks, called directly: the isocentre 1 m from the PTV would put sources inside the
    patient; an isocentre in the source plane would need an unbounded beamlet grid."""
    from simsbrt.errors import SpecError
    from simsbrt.geometry.arcs import ArcSet, ArcSpec
    from simsbrt.geometry.beamlets import build_beamlets
    from simsbrt.geometry.checks import check_sources_outside_body
    from simsbrt.phantom import build_phantom, load_spec

    phantom = build_phantom(load_spec("t10_body").with_spacing(3.0))
    grid = phantom.grid
    inside = grid.index_to_world_mm(np.argwhere(phantom.mask("Body"))[0])
    with pytest.raises(SpecError, match="inside the patient"):
        check_sources_outside_body(grid, phantom.density, [inside])
    centre = np.asarray(grid.index_to_world_mm(np.argwhere(phantom.mask("PTV")).mean(axis=0)))
    # gantry 0: the source is 1000 mm anterior (-y) of the isocentre; an isocentre 1000 mm posterior of
    # the PTV puts the PTV in the source plane
    arcs = ArcSet((ArcSpec(0.0, 1.0, spacing_deg=2.0),), isocentre_mm=tuple(centre + [0.0, 1000.0, 0.0]))
    with pytest.raises(SpecError, match="isocentre_mm"):
        build_beamlets(arcs, grid, phantom.mask("PTV"))


# ------------------------------------------------------------------ HDF5 inputs
PHANTOM_DAMAGE = ["density of strings", "density int8", "density all zero", "density NaN", "density rank 2",
                  "structures not a group", "GTV missing", "GTV empty", "spacing string", "spacing scalar",
                  "spacing 50 mm", "spacing 0.1 mm", "spec_json invalid", "spec_json not a string",
                  "spec_json deep"]
ROOT_DAMAGE = ["schema_version string", "schema_version float", "kind array"]


@pytest.mark.parametrize("command", ["info", "show", "plan", "export"])
@pytest.mark.parametrize("damage", PHANTOM_DAMAGE + ROOT_DAMAGE)
def test_damaged_phantom_files(case, capsys, command, damage):
    fn = {**mut._h5_mutations(), **mut._root_mutations()}[damage]
    mut._damage_h5(case / "phantom.h5", case / "bad.h5", fn, None)
    argv = {"info": ["phantom", "info", "bad.h5"], "show": ["phantom", "show", "bad.h5", "--out", "s.png"],
            "plan": PLAN[:1] + ["bad.h5"] + PLAN[2:] + ["--out", "p.h5"],
            "export": ["export", "dicom", "bad.h5", "--out", "e"]}[command]
    refused(capsys, argv, "bad.h5")


PLAN_DAMAGE = ["mode missing", "metrics_json invalid", "metrics_json not a string", "summary_json invalid",
               "summary_json a number", "evaluation value missing", "weights rank 2", "weights NaN",
               "dose negative", "dose NaN", "/phantom density NaN", "/phantom spec_json invalid",
               "schema_version string"]


@pytest.mark.parametrize("command", ["export", "teach"])
@pytest.mark.parametrize("damage", PLAN_DAMAGE)
def test_damaged_plan_files(case, capsys, command, damage):
    muts = {**{f"/phantom {k}": v for k, v in mut._h5_mutations().items()}, **mut._root_mutations(),
            **mut._plan_mutations()}
    group = "phantom" if damage.startswith("/phantom ") else None
    target = case / "plans" / "sib.h5"
    mut._damage_h5(case / "plans" / "sib.h5", case / "bad.h5", muts[damage], group)
    shutil.copy(case / "bad.h5", target)
    argv = {"export": ["export", "dicom", "plans/sib.h5", "--out", "e"],
            "teach": ["teach", "--plans", "plans", "--out", "lesson"]}[command]
    refused(capsys, argv, "sib.h5")
    assert not (case / "e").exists() or not any((case / "e").iterdir())


# ------------------------------------------------------------------ DICOM folders
DICOM_DAMAGE = {
    "first slice deleted": ["missing"], "last slice deleted": ["missing"], "middle slice deleted": ["missing"],
    "half the slices in another series": ["2 CT series"], "two ROIs named GTV": ["GTV"],
    "ROI names differing only in case": ["ambiguous"], "RescaleSlope 1000": ["RescaleSlope"],
    "slice spacing jittered": ["slice"], "NaN contour point": ["ContourData"], "PixelSpacing 0.1": ["PixelSpacing"],
    "RescaleIntercept non-numeric": ["RescaleIntercept"], "ROINumber non-numeric": ["ROINumber"],
    "ROINumber missing": ["ROINumber"], "RTSTRUCT truncated": ["RS.dcm"], "RescaleSlope 0": ["RescaleSlope"],
    "another frame of reference on one slice": ["FrameOfReferenceUID"], "PixelSpacing 500": ["PixelSpacing"],
    "contour 1e30 point": ["ContourData"], "CT slice truncated": ["CT_"],
}


@pytest.mark.filterwarnings("ignore::UserWarning")    # pydicom warns about the NaN it is given
@pytest.mark.parametrize("damage", sorted(DICOM_DAMAGE))
def test_dicom_import_refuses_what_it_cannot_trust(case, capsys, damage):
    mut._dicom_mutations()[damage](case / "dicom")
    refused(capsys, ["import", "dicom", "dicom", "--out", "i.h5"], *DICOM_DAMAGE[damage])
    assert not (case / "i.h5").exists()


def test_the_undamaged_inputs_are_accepted(case, capsys):
    """The controls: every input above, undamaged, is read without complaint."""
    assert main(["import", "dicom", "dicom", "--out", "i.h5"]) == 0
    assert main(["phantom", "info", "i.h5"]) == 0
    assert main(["export", "dicom", "plans/sib.h5", "--out", "e"]) == 0
    assert main(["protocol", "show", "protocol.toml"]) == 0
    capsys.readouterr()


INFLUENCE_DAMAGE = {
    "data NaN": lambda f: _replace(f["influence"], "data", f["influence/data"][...] * np.nan),
    "indices out of range": lambda f: _replace(f["influence"], "indices", f["influence/indices"][...] + 10**6),
    "indptr decreasing": lambda f: _replace(f["influence"], "indptr", f["influence/indptr"][...][::-1]),
    "indptr strings": lambda f: _replace(f["influence"], "indptr", np.array(["x"], "S1")),
    "n_voxels string": lambda f: f["influence"].attrs.__setitem__("n_voxels", "x"),
    "grid shape missing": lambda f: f["grid"].attrs.__delitem__("shape"),
    "grid not a group": lambda f: (f.__delitem__("grid"), f.create_dataset("grid", data=1)),
}


def _replace(group, name, data):
    del group[name]
    group.create_dataset(name, data=data)


@pytest.fixture(scope="module")
def influence_file(assets):
    path = assets / "influence.h5"
    if not path.exists():
        assert main(["dose", "compute", str(assets / "phantom.h5"), "--arcs", str(assets / "arcs.toml"), "--out",
                     str(path), "--body-margin-mm", "5", "--structure-margin-mm", "5"]) == 0
    return path


@pytest.mark.parametrize("damage", sorted(INFLUENCE_DAMAGE))
def test_damaged_influence_files_are_refused_naming_the_file(case, influence_file, damage):
    """Influence files (DIR/cache of a sweep, `dose compute` output): a damaged one is a SchemaError
    naming the file, which the sweep cache turns into a recomputation."""
    from simsbrt.errors import SchemaError
    from simsbrt.io.influence_h5 import read_influence

    read_influence(influence_file)                               # the control reads
    mut._damage_h5(influence_file, case / "bad.h5", INFLUENCE_DAMAGE[damage], None)
    with pytest.raises(SchemaError, match="bad.h5"):
        read_influence(case / "bad.h5")


def test_the_documented_ranges_are_the_enforced_ones():
    """docs/input-validation.md lists every range of simsbrt.ranges.RANGES with its bounds."""
    from simsbrt.ranges import RANGES

    doc = (Path(__file__).resolve().parents[1] / "docs" / "input-validation.md").read_text()
    for name, r in RANGES.items():
        high = "2^32 - 1" if r.high == 2**32 - 1 else f"{r.high:g}"
        low = f"> {r.low:g}" if r.low_open else f"{r.low:g}"
        assert f"| {low} | {high} |" in doc, f"{name}: {low}..{high} is not documented"


@pytest.mark.parametrize("seed", range(16))
def test_randomly_damaged_bytes_give_one_line_or_a_valid_read(case, capsys, seed):
    """Truncations and flipped bytes reach h5py's own structures (link tables, B-trees, filters): every
    one is either read as a valid file or refused in one line naming it."""
    import random

    rng = random.Random(seed)
    source = case / ("phantom.h5" if seed % 2 else "plans/sib.h5")
    data = source.read_bytes()
    damaged = data[: rng.randrange(8, len(data))] if seed % 4 < 2 else mut._byte_flips(rng, data, rng.randrange(1, 60))
    (case / "bad.h5").write_bytes(damaged)
    argv = ["phantom", "show", "bad.h5", "--out", "s.png"] if seed % 2 else ["export", "dicom", "bad.h5", "--out", "e"]
    code = main(argv)
    err = capsys.readouterr().err
    if code != 0:
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 2 and len(lines) == 1 and lines[0].startswith("simsbrt: error:") and "bad.h5" in lines[0], err
