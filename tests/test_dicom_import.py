"""DICOM import on small synthetic CT + RTSTRUCT sets written here with plain pydicom (another writer's
conventions: unsigned pixels with RescaleIntercept -1024, non-square pixels, planning-system ROI names),
and a clear error naming the file for each kind of malformed input."""
import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from simsbrt.cli import main
from simsbrt.dicom.importer import import_dicom
from simsbrt.errors import SpecError

CT_CLASS = "1.2.840.10008.5.1.4.1.1.2"
RTSTRUCT_CLASS = "1.2.840.10008.5.1.4.1.1.481.3"
NX, NY, NZ = 24, 20, 6
DX, DY, DZ = 1.5, 2.0, 2.5            # column spacing (x), row spacing (y), slice spacing (mm)
X0, Y0, Z0 = -17.25, -20.0, -5.0      # first voxel centre
BONE = (slice(4, 10), slice(6, 12))   # [row = y, col = x] block of 350 HU (RED 1.199 in facts 2.4's table)
# rectangles (x0, x1, y0, y1) in mm with edges between voxel centres, on slices 1..4
ROIS = {"External": (-18.0, 17.5, -21.0, 19.0), "GTVp": (-6.0, 3.0, -11.0, -3.0),
        "PTV": (-8.0, 5.0, -13.0, 1.0), "PTV_Eval": (-8.0, 5.0, -13.0, -1.0), "Couch": (-18.0, 17.5, 15.0, 19.0)}
ROI_SLICES = range(1, 5)


def _file(ds, sop_class, path):
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = sop_class
    ds.is_little_endian, ds.is_implicit_VR = True, False
    ds.save_as(str(path), write_like_original=False)


def write_set(folder, z_mm=None, names=tuple(ROIS), rs_frame=None, pixel_spacing_of=None, orientation_of=None):
    """A CT series (uint16, intercept -1024) and an RTSTRUCT of rectangles; keyword arguments inject faults."""
    folder.mkdir(parents=True, exist_ok=True)
    frame, study, series = generate_uid(), generate_uid(), generate_uid()
    z_mm = list(Z0 + DZ * np.arange(NZ)) if z_mm is None else list(z_mm)
    sops = []
    for k, z in enumerate(z_mm):
        ds = Dataset()
        ds.SOPInstanceUID = generate_uid()
        ds.Modality, ds.PatientID, ds.PatientName = "CT", "synthetic01", "Synthetic^One"
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.ImagePositionPatient = [X0, Y0, float(z)]
        ds.ImageOrientationPatient = (orientation_of or {}).get(k, [1, 0, 0, 0, 1, 0])
        ds.PixelSpacing = (pixel_spacing_of or {}).get(k, [DY, DX])
        ds.Rows, ds.Columns = NY, NX
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
        pixels = np.full((NY, NX), 1024, np.uint16)                  # water, 0 HU
        pixels[BONE] = 1024 + 350
        ds.PixelData = pixels.tobytes()
        _file(ds, CT_CLASS, folder / f"img{k:03d}.dcm")
        sops.append(ds.SOPInstanceUID)
    rs = Dataset()
    rs.SOPInstanceUID = generate_uid()
    rs.Modality, rs.PatientID = "RTSTRUCT", "synthetic01"
    rs.StudyInstanceUID, rs.SeriesInstanceUID = study, generate_uid()
    image_refs = Sequence([Dataset() for _ in sops])
    for item, sop in zip(image_refs, sops):
        item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID = CT_CLASS, sop
    ref_series = Dataset()
    ref_series.SeriesInstanceUID, ref_series.ContourImageSequence = series, image_refs
    ref_study = Dataset()
    ref_study.RTReferencedSeriesSequence = Sequence([ref_series])
    ref_frame = Dataset()
    ref_frame.FrameOfReferenceUID = rs_frame or frame
    ref_frame.RTReferencedStudySequence = Sequence([ref_study])
    rs.ReferencedFrameOfReferenceSequence = Sequence([ref_frame])
    rois, contours = [], []
    for n, name in enumerate(names, start=1):
        x0, x1, y0, y1 = ROIS.get(name, ROIS["GTVp"])
        roi = Dataset()
        roi.ROINumber, roi.ROIName, roi.ReferencedFrameOfReferenceUID = n, name, rs_frame or frame
        rois.append(roi)
        items = []
        for k in ROI_SLICES:
            c = Dataset()
            c.ContourGeometricType, c.NumberOfContourPoints = "CLOSED_PLANAR", 4
            c.ContourData = [x0, y0, z_mm[k], x1, y0, z_mm[k], x1, y1, z_mm[k], x0, y1, z_mm[k]]
            items.append(c)
        roi_contour = Dataset()
        roi_contour.ReferencedROINumber, roi_contour.ContourSequence = n, Sequence(items)
        contours.append(roi_contour)
    rs.StructureSetROISequence, rs.ROIContourSequence = Sequence(rois), Sequence(contours)
    _file(rs, RTSTRUCT_CLASS, folder / "structures.dcm")
    return folder


def _expected_rectangle(name, grid):
    x0, x1, y0, y1 = ROIS[name]
    x, y = grid.axis_mm(0), grid.axis_mm(1)
    plane = ((x > x0) & (x < x1))[:, None] & ((y > y0) & (y < y1))[None, :]
    mask = np.zeros(grid.shape, bool)
    for k in ROI_SLICES:
        mask[:, :, k] = plane
    return mask


# ------------------------------------------------------------------ a valid set
def test_a_foreign_ct_and_rtstruct_become_a_phantom(tmp_path):
    phantom = import_dicom(write_set(tmp_path / "ok"))
    grid = phantom.grid
    assert grid.shape == (NX, NY, NZ)
    assert grid.spacing_mm == pytest.approx((DX, DY, DZ))
    assert grid.origin_mm == pytest.approx((X0, Y0, Z0))
    bone = np.zeros((NX, NY), bool)
    bone[BONE[1], BONE[0]] = True                                  # [row, col] -> [x, y]
    assert np.allclose(phantom.density[bone], 1.199)               # 350 HU (facts 2.4)
    assert np.allclose(phantom.density[~bone], 1.000)              # water
    for ours, theirs in (("Body", "External"), ("GTV", "GTVp"), ("PTV", "PTV"), ("PTV_Eval", "PTV_Eval")):
        assert np.array_equal(phantom.structures[ours], _expected_rectangle(theirs, grid)), ours
    assert phantom.is_empty("SpinalCord") and phantom.is_empty("ThecalSac")   # absent: empty masks
    assert "Couch" not in phantom.structures and phantom.spec.name == "synthetic01"


def test_cli_resamples_to_a_requested_isotropic_grid(tmp_path, capsys):
    folder = write_set(tmp_path / "ok")
    out = tmp_path / "p.h5"
    assert main(["import", "dicom", str(folder), "--out", str(out), "--spacing-mm", "3", "--json"]) == 0
    from simsbrt.io.phantom_h5 import read_phantom

    phantom = read_phantom(out)
    assert phantom.grid.spacing_mm == (3.0, 3.0, 3.0)
    assert phantom.grid.origin_mm == pytest.approx((X0, Y0, Z0))
    assert np.all(phantom.grid.index_to_world_mm(np.array(phantom.grid.shape) - 1)
                  <= np.array([X0 + DX * (NX - 1), Y0 + DY * (NY - 1), Z0 + DZ * (NZ - 1)]) + 1e-9)
    assert phantom.density.min() > 0.99 and phantom.density.max() < 1.2
    gtv_cc = phantom.volume_cc("GTV")
    assert gtv_cc == pytest.approx(9.0 * 8.0 * 4 * DZ / 1000.0, rel=0.5)
    assert '"source"' in capsys.readouterr().out


def test_a_mapping_file_renames_planning_system_names(tmp_path):
    folder = write_set(tmp_path / "renamed", names=("External", "Tumour", "PTV", "PTV_Eval"))
    with pytest.raises(SpecError, match="'Tumour'"):
        import_dicom(folder)
    mapping = tmp_path / "names.toml"
    mapping.write_text('required = ["GTV"]\n[structures]\nBody = ["External"]\nGTV = ["Tumour"]\n'
                       'PTV = ["PTV"]\nPTV_Eval = ["PTV_Eval"]\n')
    phantom = import_dicom(folder, names=mapping)
    assert phantom.volume_cc("GTV") > 0


# ------------------------------------------------------------------ malformed input: the file and the problem
def _error(folder, **kwargs) -> str:
    with pytest.raises(SpecError) as info:
        import_dicom(folder, **kwargs)
    return str(info.value)


def test_a_missing_slice_is_reported_with_the_files_around_the_gap(tmp_path):
    folder = write_set(tmp_path / "gap")
    (folder / "img003.dcm").unlink()
    msg = _error(folder)
    assert "img004.dcm" in msg and "missing slice" in msg and "img002.dcm" in msg and "1 slice(s) missing" in msg


def test_inconsistent_slice_spacing_is_reported(tmp_path):
    z = Z0 + DZ * np.arange(NZ)
    z[4] += 0.8
    msg = _error(write_set(tmp_path / "uneven", z_mm=z))
    assert "inconsistent slice spacing" in msg and "img004.dcm" in msg


def test_inconsistent_pixel_spacing_is_reported(tmp_path):
    msg = _error(write_set(tmp_path / "pixels", pixel_spacing_of={2: [DY, 1.2]}))
    assert "img002.dcm: PixelSpacing: inconsistent spacing" in msg


def test_structures_in_another_frame_of_reference_are_refused(tmp_path):
    msg = _error(write_set(tmp_path / "frame", rs_frame=generate_uid()))
    assert "structures.dcm" in msg and "frame of reference" in msg


def test_unknown_and_missing_structure_names_point_at_the_mapping_file(tmp_path):
    msg = _error(write_set(tmp_path / "names", names=("External", "GTVp", "PTV", "PTV_Eval", "Liver", "Stomach")))
    assert "structures.dcm" in msg and "'Liver', 'Stomach'" in msg and "names.toml" in msg
    msg = _error(write_set(tmp_path / "missing", names=("External", "GTVp", "PTV")))
    assert "PTV_Eval not found" in msg and "--names" in msg


def test_other_orientations_and_broken_files_are_refused(tmp_path):
    msg = _error(write_set(tmp_path / "prone", orientation_of={0: [-1, 0, 0, 0, -1, 0]}))
    assert "img000.dcm: ImageOrientationPatient" in msg and "head-first supine" in msg
    folder = write_set(tmp_path / "broken")
    (folder / "notes.dcm").write_text("not dicom")
    assert "notes.dcm" in _error(folder)
    folder = write_set(tmp_path / "no_rs")
    (folder / "structures.dcm").unlink()
    assert "no RT Structure Set" in _error(folder)


def test_cli_turns_the_error_into_one_line(tmp_path, capsys):
    folder = write_set(tmp_path / "gap")
    (folder / "img002.dcm").unlink()
    assert main(["import", "dicom", str(folder), "--out", str(tmp_path / "x.h5")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("simsbrt: error: ") and "img003.dcm" in err and "Traceback" not in err
    assert not (tmp_path / "x.h5").exists()


def test_import_and_phantom_info_describe_the_imported_phantom(tmp_path, capsys):
    """The printed summary of an imported phantom names its source, all three (anisotropic) spacings and
    the structures the RTSTRUCT did not have, not a vertebral level it does not know."""
    out = tmp_path / "p.h5"
    assert main(["import", "dicom", str(write_set(tmp_path / "ok")), "--out", str(out)]) == 0
    assert main(["phantom", "info", str(out)]) == 0
    text = capsys.readouterr().out
    assert text.count("imported from") == 2 and "level" not in text
    assert text.count(f"spacing {DX:g} x {DY:g} x {DZ:g} mm") == 2
    assert "SpinalCord" in text and "(absent: empty mask)" in text
