"""DICOM RT export of a plan, checked with pydicom and an independent reader (dicompyler-core), and the
export -> import -> re-plan round trip.

Cases: the shared tiny planning case (t10_body at 3 mm, 15 degree arcs; a uniform plan), and an L1
phantom at 3 mm with a GTV in the LEFT pedicle + lamina (cord above the L1-L2 disc, thecal sac
below, so both organs exist) carrying an analytic dose with steep gradients.
"""
import numpy as np
import pydicom
import pytest
from matplotlib.path import Path as MplPath

from simsbrt.cli import main
from simsbrt.dicom import export as dx
from simsbrt.dicom.hu import MATRAD_DEFAULT
from simsbrt.dicom.uids import UidFactory
from simsbrt.evaluate import compute_dvh
from simsbrt.geometry.arcs import structure_centroid_mm

from conftest import tiny_arcs

N_FRACTIONS = 5
DVH_STRUCTURES = ("SpinalCord_PRV02", "ThecalSac", "GTV")


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def uniform_plan(tiny_plan_inputs):
    from simsbrt.optimize.plans import PlanSettings, make_plan
    from simsbrt.optimize.solvers import SolverOptions

    settings = PlanSettings(solver_options=SolverOptions(max_iter=60, ftol=1e-5))   # cheap; used by both halves
    return make_plan(tiny_plan_inputs, "uniform", settings), settings


@pytest.fixture(scope="module")
def exported(uniform_plan, tiny_plan_inputs, tmp_path_factory):
    from simsbrt.io.plan_h5 import read_plan, write_plan

    result, settings = uniform_plan
    root = tmp_path_factory.mktemp("dicom_plan")
    plan_path = write_plan(root / "plan.h5", result, tiny_plan_inputs, settings)
    out = root / "dicom"
    assert main(["export", "dicom", str(plan_path), "--out", str(out)]) == 0
    return read_plan(plan_path), out


def _read_all(folder):
    return {p.name: pydicom.dcmread(str(p)) for p in sorted(folder.glob("*.dcm"))}


def _ct_slices(files):
    return sorted((ds for ds in files.values() if ds.Modality == "CT"), key=lambda ds: float(ds.ImagePositionPatient[2]))


# ------------------------------------------------------------------ the exported plan: objects and references
def test_every_object_shares_patient_study_and_frame_of_reference(exported):
    _, out = exported
    files = _read_all(out)
    kinds = sorted({ds.Modality for ds in files.values()})
    assert kinds == ["CT", "RTDOSE", "RTPLAN", "RTSTRUCT"]
    for key in ("PatientID", "StudyInstanceUID", "FrameOfReferenceUID"):
        assert len({str(getattr(ds, key)) for ds in files.values()}) == 1, key
    sop = [str(ds.SOPInstanceUID) for ds in files.values()]
    assert len(set(sop)) == len(sop)
    for ds in files.values():
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.file_meta.MediaStorageSOPClassUID == ds.SOPClassUID
    rs, rd, rp = files["RS.dcm"], files["RD.dcm"], files["RP.dcm"]
    ct = _ct_slices(files)
    frame = rs.ReferencedFrameOfReferenceSequence[0]
    assert frame.FrameOfReferenceUID == ct[0].FrameOfReferenceUID
    series = frame.RTReferencedStudySequence[0].RTReferencedSeriesSequence[0]
    assert series.SeriesInstanceUID == ct[0].SeriesInstanceUID
    assert [i.ReferencedSOPInstanceUID for i in series.ContourImageSequence] == [d.SOPInstanceUID for d in ct]
    assert all(r.ReferencedFrameOfReferenceUID == ct[0].FrameOfReferenceUID for r in rs.StructureSetROISequence)
    assert rd.ReferencedRTPlanSequence[0].ReferencedSOPInstanceUID == rp.SOPInstanceUID
    assert rp.ReferencedStructureSetSequence[0].ReferencedSOPInstanceUID == rs.SOPInstanceUID


def test_each_contour_references_the_ct_slice_at_its_z(exported):
    _, out = exported
    files = _read_all(out)
    z_of = {d.SOPInstanceUID: float(d.ImagePositionPatient[2]) for d in _ct_slices(files)}
    n = 0
    for roi in files["RS.dcm"].ROIContourSequence:
        for c in roi.ContourSequence:
            assert c.ContourGeometricType == "CLOSED_PLANAR"
            pts = np.asarray(c.ContourData, float).reshape(-1, 3)
            assert len(pts) == c.NumberOfContourPoints
            assert np.all(pts[:, 2] == pytest.approx(z_of[c.ContourImageSequence[0].ReferencedSOPInstanceUID]))
            n += 1
    assert n > 100


def test_ct_series_geometry_and_densities(exported):
    plan, out = exported
    phantom = plan.phantom
    ct = _ct_slices(_read_all(out))
    z = np.array([float(d.ImagePositionPatient[2]) for d in ct])
    assert len(ct) == phantom.grid.shape[2]
    assert np.allclose(np.diff(z), 3.0)
    for d in ct:
        assert [float(v) for v in d.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
        assert (d.Rows, d.Columns) == phantom.grid.shape[1::-1]
    hu = np.stack([d.pixel_array * float(d.RescaleSlope) + float(d.RescaleIntercept) for d in ct], axis=-1)
    red = MATRAD_DEFAULT.hu_to_red(hu.transpose(1, 0, 2))          # [row = y, col = x, z] -> [x, y, z]
    assert np.max(np.abs(red - phantom.density)) <= MATRAD_DEFAULT.max_roundtrip_error_red() + 1e-6


def test_rtdose_reads_back_within_a_millionth_of_the_maximum(exported):
    plan, out = exported
    rd = pydicom.dcmread(str(out / "RD.dcm"))
    assert (rd.DoseUnits, rd.DoseType, rd.DoseSummationType) == ("GY", "PHYSICAL", "PLAN")
    assert (rd.BitsAllocated, rd.PixelRepresentation) == (32, 0)
    grid = plan.phantom.grid
    assert [float(v) for v in rd.ImagePositionPatient] == pytest.approx(list(grid.origin_mm))   # first voxel centre
    assert [float(v) for v in rd.GridFrameOffsetVector] == pytest.approx(list(3.0 * np.arange(grid.shape[2])))
    assert [float(v) for v in rd.PixelSpacing] == [3.0, 3.0]
    dose = rd.pixel_array.astype(np.float64) * float(rd.DoseGridScaling)     # [frame = z, row = y, col = x]
    expected = plan.dose_gy.astype(np.float64).transpose(2, 1, 0)
    assert np.max(np.abs(dose - expected)) <= 1e-6 * expected.max()
    assert rd.pixel_array.max() > 0.99 * (2**32 - 1)                        # the full 32-bit range is used


def test_rtplan_describes_the_arcs_and_their_meterset(exported):
    plan, out = exported
    rp = pydicom.dcmread(str(out / "RP.dcm"))
    arcs = tiny_arcs().arcs
    assert len(rp.BeamSequence) == len(arcs)
    assert rp.FractionGroupSequence[0].NumberOfFractionsPlanned == N_FRACTIONS
    assert rp.ApprovalStatus == "UNAPPROVED"
    cp_of = plan.beamlet_columns["control_point"]
    mu_per_cp = np.bincount(cp_of, weights=plan.weights_mu)
    first = 0
    refs = rp.FractionGroupSequence[0].ReferencedBeamSequence
    iso = structure_centroid_mm(plan.phantom.grid, plan.phantom.mask("PTV"))
    for beam, arc, ref in zip(rp.BeamSequence, arcs, refs):
        n = len(arc.gantry_angles_deg())
        cps = beam.ControlPointSequence
        assert (beam.BeamType, beam.RadiationType, beam.NumberOfControlPoints) == ("DYNAMIC", "PHOTON", n + 1)
        assert cps[0].NominalBeamEnergy == 6
        assert float(cps[0].GantryAngle) == pytest.approx(arc.gantry_start_deg)
        assert float(cps[-1].GantryAngle) == pytest.approx(arc.gantry_stop_deg)
        assert cps[0].GantryRotationDirection == {"cw": "CW", "ccw": "CC"}[arc.direction]
        assert [float(v) for v in cps[0].IsocenterPosition] == pytest.approx(list(iso), abs=1e-3)
        weights = np.array([float(c.CumulativeMetersetWeight) for c in cps])
        assert weights[0] == 0 and weights[-1] == 1 and np.all(np.diff(weights) >= 0)
        mu = mu_per_cp[first:first + n]
        assert np.diff(weights) == pytest.approx(mu / mu.sum(), abs=1e-8)
        assert float(ref.BeamMeterset) * N_FRACTIONS == pytest.approx(mu.sum(), rel=1e-6)
        # the gantry sweeps the arc's sectors: each simsbrt control point is the middle of one DICOM segment
        boundaries = np.array([float(c.GantryAngle) for c in cps])
        sign = 1 if arc.direction == "cw" else -1
        middles = (boundaries[:-1] + sign * 0.5 * ((sign * np.diff(boundaries)) % 360)) % 360
        assert middles == pytest.approx(arc.gantry_angles_deg(), abs=1e-5)
        first += n


def test_export_refuses_to_mix_series_and_names_the_folder(exported, capsys):
    plan, out = exported
    assert main(["export", "dicom", str(out.parent / "plan.h5"), "--out", str(out)]) == 2
    assert "already holds" in capsys.readouterr().err


# ------------------------------------------------------------------ independent reader: dicompyler-core
def _neighbour_voxel_doses(dvh, volume_cc):
    """The doses of the voxels one voxel either side of ``volume_cc`` on the sorted (descending) DVH."""
    k = volume_cc / dvh.volumes_cc[0]
    return (float(dvh.doses_gy[min(int(np.ceil(k)), dvh.n_voxels - 1)]),
            float(dvh.doses_gy[max(int(np.floor(k)) - 1, 0)]))


def _dvh_pairs(rs_path, rd_path, dose_gy, masks, voxel_cc, names):
    """(simsbrt, dicompyler-core) volume, D0.03cc, D50% and mean for each named ROI of the RTSTRUCT, with the
    dose range of the voxels next to each requested volume."""
    from dicompylercore import dicomparser, dvhcalc

    rois = {s["name"]: n for n, s in dicomparser.DicomParser(str(rs_path)).GetStructures().items()}
    out = {}
    for name in names:
        ours = compute_dvh(dose_gy, masks[name], voxel_cc, name=name)
        theirs = dvhcalc.get_dvh(str(rs_path), str(rd_path), rois[name])
        out[name] = {
            "volume_cc": (ours.total_volume_cc, float(theirs.volume)),
            "D0.03cc": (ours.metric("D0.03cc"), float(theirs.statistic("D0.03cc").value)),
            "D50%": (ours.metric("D50%"), float(theirs.statistic("D50").value)),
            "Dmean": (ours.metric("Dmean"), float(theirs.mean)),
            "bracket": {"D0.03cc": _neighbour_voxel_doses(ours, 0.03),
                        "D50%": _neighbour_voxel_doses(ours, 0.5 * ours.total_volume_cc)},
        }
    return out


def _assert_dvh_agreement(pairs, voxel_cc):
    """Tolerances. Contours are traced on the voxel boundaries and dicompyler-core samples the dose grid at
    the voxel centres, so both see the same voxels (volumes agree to rounding). What remains are the DVH
    conventions: dicompyler-core bins dose in 1 cGy and returns the bin whose cumulative volume is nearest
    to the requested one, without interpolation; simsbrt interpolates between voxel centre points. Where
    the sorted voxel doses have a gap at the requested volume (a steep gradient, few voxels) the two
    readings can sit anywhere in that gap. So:
      - volume within 0.1 % (+ half a voxel) and mean within 0.02 Gy (1 cGy bins);
      - D0.03cc and D50%: both values lie within the doses of the voxels one voxel either side of the
        requested volume, widened by one 1 cGy bin (0.011 Gy). With 3 mm voxels (0.027 cm3) D0.03cc is
        bracketed by the hottest and the third-hottest voxel."""
    for name, p in pairs.items():
        ours_v, theirs_v = p["volume_cc"]
        assert theirs_v == pytest.approx(ours_v, rel=1e-3, abs=0.5 * voxel_cc), name
        assert p["Dmean"][1] == pytest.approx(p["Dmean"][0], abs=0.02), name
        for metric in ("D0.03cc", "D50%"):
            lo, hi = p["bracket"][metric]
            for value in p[metric]:
                assert lo - 0.011 <= value <= hi + 0.011, (name, metric, value, lo, hi)


def test_dicompyler_dvh_of_the_plan_matches_simsbrt(exported):
    plan, out = exported
    ph = plan.phantom
    names = [n for n in DVH_STRUCTURES if not ph.is_empty(n)]      # T10: no thecal sac (see the L1 case)
    assert names == ["SpinalCord_PRV02", "GTV"]
    pairs = _dvh_pairs(out / "RS.dcm", out / "RD.dcm", plan.dose_gy, ph.structures, ph.grid.voxel_volume_cc, names)
    _assert_dvh_agreement(pairs, ph.grid.voxel_volume_cc)


# ------------------------------------------------------------------ L1, left pedicle GTV, analytic dose
@pytest.fixture(scope="module")
def left_pedicle_case(tmp_path_factory):
    from simsbrt.phantom import build_phantom, parse_spec

    spec = parse_spec({"name": "l1_left_pedicle", "seed": 3, "anatomy": {"level": "L1"}, "grid": {"spacing_mm": 3.0},
                       "gtv": {"sectors": ["left_pedicle", "left_lamina"], "volume_cc": 2.0,
                               "lesion_type": "blastic"}})
    phantom = build_phantom(spec)
    # analytic dose: a 40 Gy peak on the GTV (sigma 12 mm) over a 25 Gy plateau along the canal that falls
    # off in z (sigma 40 mm): steep gradients across the cord PRV and the thecal sac
    x, y, z = phantom.grid.world_coordinates_mm()
    gx, gy, gz = phantom.centroid_mm("GTV")
    dose = (40.0 * np.exp(-((x - gx) ** 2 + (y - gy) ** 2 + (z - gz) ** 2) / (2 * 12.0 ** 2))
            + 25.0 * np.exp(-(x ** 2 + (y - 8.0) ** 2) / (2 * 15.0 ** 2) - (z - 10.0) ** 2 / (2 * 40.0 ** 2)))
    dose = dose.astype(np.float32)
    out = tmp_path_factory.mktemp("dicom_l1")
    ctx = dx.ExportContext(UidFactory("test-l1"), "test^l1", "l1")
    for k, ds in enumerate(dx.ct_datasets(phantom, ctx)):
        dx.write_dataset(ds, out / f"CT_{k + 1:04d}.dcm")
    rs, _ = dx.rtstruct_dataset(phantom, ctx)
    dx.write_dataset(rs, out / "RS.dcm")
    rd, _ = dx.rtdose_dataset(phantom, dose, ctx)
    dx.write_dataset(rd, out / "RD.dcm")
    return phantom, dose, out


def _roi_points(rs, name):
    number = next(r.ROINumber for r in rs.StructureSetROISequence if r.ROIName == name)
    roi = next(r for r in rs.ROIContourSequence if r.ReferencedROINumber == number)
    return [np.asarray(c.ContourData, float).reshape(-1, 3) for c in roi.ContourSequence]


def test_a_left_pedicle_gtv_stays_on_the_patients_left(left_pedicle_case):
    """Only pydicom and DICOM geometry: LPS +x is the patient's left; the canal is mid-sagittal."""
    _, _, out = left_pedicle_case
    rs = pydicom.dcmread(str(out / "RS.dcm"))
    canal_x = np.concatenate(_roi_points(rs, "SpinalCanal"))[:, 0].mean()
    gtv = np.concatenate(_roi_points(rs, "GTV"))
    assert abs(canal_x) < 1.0
    assert np.all(gtv[:, 0] > canal_x)


def test_ct_pixels_inside_the_gtv_contours_hold_the_lesion(left_pedicle_case):
    """Map CT pixels to patient mm with ImagePositionPatient, ImageOrientationPatient and PixelSpacing
    (DICOM PS3.3 C.7.6.2.1.1): the pixels inside the GTV contours carry the blastic lesion's HU
    (RED 1.43, README), their mirror images across the mid-sagittal plane do not."""
    _, _, out = left_pedicle_case
    rs = pydicom.dcmread(str(out / "RS.dcm"))
    by_z = {round(float(d.ImagePositionPatient[2]), 3): d
            for d in (pydicom.dcmread(str(p)) for p in sorted(out.glob("CT_*.dcm")))}
    lesion_hu = float(np.rint(MATRAD_DEFAULT.red_to_hu(1.43)))
    inside_hu, mirror_hu = [], []
    for poly in _roi_points(rs, "GTV"):
        ct = by_z[round(poly[0, 2], 3)]
        ipp = np.asarray(ct.ImagePositionPatient, float)
        row_dir, col_dir = np.asarray(ct.ImageOrientationPatient[:3], float), np.asarray(ct.ImageOrientationPatient[3:], float)
        d_row, d_col = (float(v) for v in ct.PixelSpacing)            # spacing between rows (y), between columns (x)
        r, c = np.mgrid[0:ct.Rows, 0:ct.Columns]
        xyz = ipp + c[..., None] * d_col * row_dir + r[..., None] * d_row * col_dir
        pixels = ct.pixel_array * float(ct.RescaleSlope) + float(ct.RescaleIntercept)
        inside = MplPath(poly[:, :2]).contains_points(xyz[..., :2].reshape(-1, 2)).reshape(pixels.shape)
        mirrored = MplPath(poly[:, :2] * [-1, 1]).contains_points(xyz[..., :2].reshape(-1, 2)).reshape(pixels.shape)
        inside_hu.append(pixels[inside])
        mirror_hu.append(pixels[mirrored])
    inside_hu, mirror_hu = np.concatenate(inside_hu), np.concatenate(mirror_hu)
    assert inside_hu.size > 50
    assert np.all(inside_hu == lesion_hu)
    assert np.mean(mirror_hu == lesion_hu) < 0.05


def test_dicompyler_dvh_of_cord_prv_thecal_sac_and_gtv_matches_simsbrt(left_pedicle_case):
    phantom, dose, out = left_pedicle_case
    assert not any(phantom.is_empty(n) for n in DVH_STRUCTURES)
    pairs = _dvh_pairs(out / "RS.dcm", out / "RD.dcm", dose, phantom.structures, phantom.grid.voxel_volume_cc,
                       DVH_STRUCTURES)
    _assert_dvh_agreement(pairs, phantom.grid.voxel_volume_cc)


# ------------------------------------------------------------------ round trip: export -> import -> re-plan
@pytest.fixture(scope="module")
def reimported(exported, tmp_path_factory):
    from simsbrt.io.phantom_h5 import read_phantom

    _, out = exported
    path = tmp_path_factory.mktemp("dicom_import") / "imported.h5"
    assert main(["import", "dicom", str(out), "--out", str(path)]) == 0
    return read_phantom(path)


def test_import_gives_back_the_phantom(exported, reimported):
    """Same grid, every mask voxel for voxel (contours on voxel boundaries: Dice 1), densities within
    the HU quantisation (half an HU on the steepest segment of the table)."""
    from simsbrt.phantom.model import ImportedSpec

    original = exported[0].phantom
    assert reimported.grid == original.grid
    assert isinstance(reimported.spec, ImportedSpec) and reimported.spec.name == original.spec.name
    assert list(reimported.structures) == list(original.structures)
    for name, mask in original.structures.items():
        assert np.array_equal(reimported.structures[name], mask), name
    assert np.max(np.abs(reimported.density - original.density)) <= MATRAD_DEFAULT.max_roundtrip_error_red() + 1e-6


def test_replanning_the_imported_phantom_gives_the_same_metrics(exported, reimported, uniform_plan, tmp_path):
    """The only input that changed is the density, by < 6e-4 RED (HU rounding), which moves radiological
    depths by far less than a millimetre: the plan's own weights give the same metrics on the imported
    phantom within 0.05 Gy. A re-optimised plan (60 iterations, stopped before convergence) lands within
    0.15 Gy: its end point moves by a few hundredths of a Gy for any perturbation, even a 1e-7 relative
    change of the optimiser's weight scale."""
    from simsbrt.io.plan_h5 import read_plan, write_plan
    from simsbrt.dose.final import final_dose
    from simsbrt.optimize.plans import make_plan, plan_metrics, prepare_plan_inputs

    result, settings = uniform_plan
    inputs = prepare_plan_inputs(reimported, tiny_arcs(), "cpu", body_margin_mm=10.0, structure_margin_mm=10.0)
    # the plan's metrics are those of its exact final dose: compare like with like
    exact = final_dose(reimported, inputs.influence.beamlets, result.weights).dose_gy
    same_weights = plan_metrics(exact, reimported.structures, reimported.grid.voxel_volume_cc)
    again = make_plan(inputs, "uniform", settings)
    checks = {("GTV", "D50%"), ("PTV_Eval", "D90%"), ("PTV_Eval", "D2%"), ("SpinalCord_PRV02", "D0.03cc")}
    for structure, metric in checks:
        assert same_weights[structure][metric] == pytest.approx(result.metrics[structure][metric], abs=0.05)
        assert again.metrics[structure][metric] == pytest.approx(result.metrics[structure][metric], abs=0.15)
    # the imported phantom travels through PLAN.h5 like a built one
    back = read_plan(write_plan(tmp_path / "again.h5", again, inputs, settings))
    assert back.phantom.spec == reimported.spec


def test_figures_and_the_teaching_page_draw_an_imported_phantom(exported, reimported, uniform_plan, tmp_path):
    """An imported phantom has no generator spec (no level, no GTV sectors): the phantom figure and the
    teaching page describe it by its source instead of failing."""
    from simsbrt.optimize.plans import PlanSettings, protocol_for
    from simsbrt.report import compare
    from simsbrt.report.phantom_plot import plot_phantom
    from simsbrt.teach.lesson import write_lesson

    assert reimported.description().startswith("imported from ")
    assert reimported.summary()["level"] is None
    figure = plot_phantom(reimported, tmp_path / "phantom.png")
    assert figure.stat().st_size > 10_000
    result, _ = uniform_plan
    trial = protocol_for("sib", PlanSettings())
    metrics = compare.plan_metrics_for(result.dose_gy, reimported.structures, reimported.grid.voxel_volume_cc,
                                       result.evaluation, trial, trial.n_fractions)
    table = compare.build_table({"uniform": metrics}, trial.n_fractions)
    lesson = write_lesson(reimported, {"uniform": result.dose_gy}, {"uniform": result.evaluation}, table,
                          tmp_path / "teach", trial)
    page = lesson.files["html"].read_text()
    assert "imported from" in page and lesson.figure_data["level"] is None
