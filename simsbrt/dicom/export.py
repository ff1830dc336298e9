"""DICOM RT export: CT series, RTSTRUCT, RTDOSE and RTPLAN of a simsbrt phantom / plan (pydicom).

Geometry. simsbrt grids are DICOM LPS already (simsbrt.grid): axial slices along +z, head-first
supine, ImageOrientationPatient [1, 0, 0, 0, 1, 0]. Pixel arrays are [row = y, column = x], so a
slice is ``volume[:, :, k].T``; PixelSpacing is [row spacing (y), column spacing (x)];
ImagePositionPatient is the centre of the first voxel (grid.origin_mm, then + k dz per slice).
All objects share one FrameOfReferenceUID, study and patient; RTSTRUCT references every CT slice,
RTPLAN the RTSTRUCT, RTDOSE the RTPLAN.

- CT: int16 HU (RescaleSlope 1, RescaleIntercept 0) from the relative electron density through
  simsbrt.dicom.hu (the documented HU <-> RED table used by the import too).
- RTSTRUCT: every non-empty structure, CLOSED_PLANAR contours on each axial slice at the voxel-centre
  z, traced on the voxel boundaries (simsbrt.dicom.contours): a reader that samples voxel centres
  recovers the mask exactly. Empty structures (anatomy absent at the level) are left out.
- RTDOSE: the plan's total dose (Gy, DoseSummationType PLAN) on the phantom grid, 32-bit unsigned
  pixels with DoseGridScaling = max / (2^32 - 1): the quantisation error is at most half a step,
  1.2e-10 of the maximum (float32 itself resolves 6e-8).
- RTPLAN: one DYNAMIC photon beam (6 MV) per arc. simsbrt's control points are the middles of
  equal gantry sectors; DICOM control points are the sector boundaries, so an arc of n sectors gets
  n + 1 DICOM control points, and the cumulative meterset weight at boundary j is the beamlet MU of
  sectors 0..j-1 over the arc's total. Meterset = the sum of the arc's beamlet weights (simsbrt's
  fluence MU: 1 MU through one beamlet's aperture, README "Calibration") divided by the number of
  fractions; it is NOT deliverable machine MU. simsbrt plans are fluence maps, not leaf sequences:
  no MLC positions are written, only static jaws around the arc's beamlets. The plan is marked
  ApprovalStatus UNAPPROVED.
- RTPLAN of a deliverable plan (PLAN.h5 with /delivery, simsbrt.delivery): one DICOM control point per
  simsbrt control point with MLCX leaf positions, static ASYMX / ASYMY jaws, the cumulative meterset
  weight of the segments before it and the dose rate of the segment after it; BeamMeterset in machine
  MU per fraction; TreatmentMachineName = the machine model's DICOM name (rtplan_mlc_dataset).
"""
from __future__ import annotations

import datetime as _dt
import logging
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import simsbrt
from simsbrt.dicom.contours import mask_slice_to_polygons
from simsbrt.dicom.hu import MATRAD_DEFAULT, CtCalibration
from simsbrt.dicom.uids import UidFactory
from simsbrt.errors import SpecError
from simsbrt.io.atomic import atomic_path

log = logging.getLogger(__name__)

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
RT_DOSE_STORAGE = "1.2.840.10008.5.1.4.1.1.481.2"
RT_STRUCTURE_SET_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"
RT_PLAN_STORAGE = "1.2.840.10008.5.1.4.1.1.481.5"
STUDY_COMPONENT_MANAGEMENT = "1.2.840.10008.3.1.2.3.1"   # the conventional class in RTReferencedStudySequence
EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
HFS_ORIENTATION = [1, 0, 0, 0, 1, 0]
UINT32_MAX = 2 ** 32 - 1
NOMINAL_ENERGY_MV = 6
MACHINE_NAME = "simsbrt_6MV"
FILE_PATTERNS = ("CT_*.dcm", "RS.dcm", "RD.dcm", "RP.dcm")

ROI_TYPES = {"Body": "EXTERNAL", "GTV": "GTV", "CTV": "CTV", "PTV": "PTV", "PTV_Eval": "PTV",
             "SpinalCord_PRV02": "AVOIDANCE"}


def roi_colour(name: str) -> list[int]:
    """ROIDisplayColor: the structure's colour in simsbrt's own figures (report.phantom_plot), as RGB 0-255."""
    from simsbrt.report.phantom_plot import STRUCTURE_COLOURS

    hex_colour = STRUCTURE_COLOURS.get(name, "#c8c8c8")
    return [int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)]


@dataclass
class ExportContext:
    """What every exported object shares: patient, study, frame of reference and the UIDs."""

    uids: UidFactory
    patient_name: str
    patient_id: str
    when: _dt.datetime = field(default_factory=_dt.datetime.now)

    def ct_image_uid(self, k: int) -> str:
        return self.uids.uid("ct_image", k)

    @property
    def date(self) -> str:
        return self.when.strftime("%Y%m%d")

    @property
    def time(self) -> str:
        return self.when.strftime("%H%M%S")


@dataclass(frozen=True)
class ExportResult:
    out_dir: Path
    files: dict                    # role -> list of paths
    structures: tuple[str, ...]    # exported (non-empty)
    empty_structures: tuple[str, ...]
    dose_max_gy: float | None
    dose_grid_scaling: float | None
    beam_meterset_mu: tuple[float, ...]   # per fraction, per arc (fluence MU)

    def summary(self) -> dict:
        return {"out": str(self.out_dir), "files": {k: [str(p) for p in v] for k, v in self.files.items()},
                "structures": list(self.structures), "empty_structures_left_out": list(self.empty_structures),
                "dose_max_gy": self.dose_max_gy, "dose_grid_scaling": self.dose_grid_scaling,
                "beam_meterset_mu_per_fraction": list(self.beam_meterset_mu)}


# ------------------------------------------------------------------ small helpers
def ds_number(value: float) -> str:
    """A decimal string (DS, at most 16 characters) for a float, as exact as fits."""
    v = float(value)
    if v == 0:
        return "0"
    for digits in range(12, 4, -1):
        text = f"{v:.{digits}g}"
        if len(text) <= 16:
            return text
    raise SpecError("DICOM DS", f"cannot write {value!r} in 16 characters")


def _coords(values) -> list[str]:
    return [ds_number(round(float(v), 4)) for v in values]


def _decimal_string(values) -> bytes:
    """Coordinates (mm, 4 decimals) as one DS value: backslash-separated, padded to even length."""
    parts = []
    for v in np.round(np.asarray(values, dtype=float), 4):
        text = f"{v:.4f}".rstrip("0").rstrip(".")
        parts.append("0" if text in ("-0", "") else text)
    data = "\\".join(parts).encode("ascii")
    return data + b" " if len(data) % 2 else data


def _set_contour_data(item, xyz: np.ndarray) -> None:
    """ContourData written as pre-encoded decimal strings: pydicom's per-value DS objects are slow for
    tens of thousands of points; falls back to the ordinary assignment where raw elements are refused."""
    from pydicom.dataelem import RawDataElement
    from pydicom.tag import Tag

    data = _decimal_string(np.asarray(xyz).ravel())
    try:
        item[0x30060050] = RawDataElement(Tag(0x30060050), "DS", len(data), data, 0, False, True)
    except (TypeError, ValueError):
        item.ContourData = data.decode().strip().split("\\")


def _new_dataset(ctx: ExportContext, modality: str, sop_class: str, sop_uid: str, series_uid: str,
                 series_number: int, description: str):
    from pydicom.dataset import Dataset, FileMetaDataset

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = EXPLICIT_VR_LITTLE_ENDIAN
    meta.ImplementationVersionName = f"simsbrt{simsbrt.__version__}"[:16]
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.Modality = modality
    ds.Manufacturer = "simsbrt"
    ds.ManufacturerModelName = "simsbrt"
    ds.SoftwareVersions = str(simsbrt.__version__)
    ds.PatientName = ctx.patient_name
    ds.PatientID = ctx.patient_id
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.StudyInstanceUID = ctx.uids.uid("study")
    ds.StudyID = "1"
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = ctx.date
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = ctx.time
    ds.StudyDescription = "simsbrt export"
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = series_number
    ds.SeriesDescription = description
    ds.OperatorsName = ""
    ds.FrameOfReferenceUID = ctx.uids.uid("frame_of_reference")
    ds.PositionReferenceIndicator = ""
    return ds


def _sequence(items):
    from pydicom.sequence import Sequence

    return Sequence(list(items))


def _item(**attrs):
    from pydicom.dataset import Dataset

    ds = Dataset()
    for key, value in attrs.items():
        setattr(ds, key, value)
    return ds


def write_dataset(ds, path: Path) -> Path:
    """Write one DICOM file (Part 10, explicit VR little endian) atomically; pydicom 2 and 3."""
    import pydicom

    with atomic_path(Path(path)) as tmp:
        if int(pydicom.__version__.split(".")[0]) >= 3:
            ds.save_as(tmp, enforce_file_format=True)
        else:
            ds.is_little_endian = True
            ds.is_implicit_VR = False
            ds.save_as(tmp, write_like_original=False)
    return Path(path)


def _ct_ref(ctx: ExportContext, k: int):
    return _item(ReferencedSOPClassUID=CT_IMAGE_STORAGE, ReferencedSOPInstanceUID=ctx.ct_image_uid(k))


# ------------------------------------------------------------------ CT
def ct_datasets(phantom, ctx: ExportContext, calibration: CtCalibration = MATRAD_DEFAULT) -> list:
    """One CT image per axial slice (z ascending), HU through ``calibration``."""
    grid = phantom.grid
    hu = calibration.stored_hu(phantom.density)
    series_uid = ctx.uids.uid("ct_series")
    dx, dy, dz = grid.spacing_mm
    z_mm = grid.axis_mm(2)
    out = []
    for k in range(grid.shape[2]):
        ds = _new_dataset(ctx, "CT", CT_IMAGE_STORAGE, ctx.ct_image_uid(k), series_uid, 1,
                          "simsbrt phantom CT (HU from relative electron density)")
        ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]
        ds.KVP = ""                       # type 2: a simulated image has no tube voltage
        ds.AcquisitionNumber = ""
        ds.PatientPosition = "HFS"
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = _coords([grid.origin_mm[0], grid.origin_mm[1], z_mm[k]])
        ds.ImageOrientationPatient = HFS_ORIENTATION
        ds.SliceThickness = ds_number(dz)
        ds.SliceLocation = ds_number(round(float(z_mm[k]), 4))
        ds.PixelSpacing = [ds_number(dy), ds_number(dx)]
        ds.Rows, ds.Columns = grid.shape[1], grid.shape[0]
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
        ds.PixelRepresentation = 1
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = "0", "1", "HU"
        ds.WindowCenter, ds.WindowWidth = "40", "400"
        ds.add_new(0x7FE00010, "OW", np.ascontiguousarray(hu[:, :, k].T).astype("<i2").tobytes())
        out.append(ds)
    return out


# ------------------------------------------------------------------ RTSTRUCT
def rtstruct_dataset(phantom, ctx: ExportContext):
    """RT Structure Set of every non-empty structure, contours per axial slice (see module doc)."""
    grid = phantom.grid
    x_mm, y_mm, z_mm = (grid.axis_mm(a) for a in range(3))
    ds = _new_dataset(ctx, "RTSTRUCT", RT_STRUCTURE_SET_STORAGE, ctx.uids.uid("rtstruct"),
                      ctx.uids.uid("rtstruct_series"), 2, "simsbrt structures")
    ds.StructureSetLabel = "simsbrt"
    ds.StructureSetName = phantom.spec.name[:64]
    ds.StructureSetDate, ds.StructureSetTime = ctx.date, ctx.time
    contour_images = _sequence(_ct_ref(ctx, k) for k in range(grid.shape[2]))
    series = _item(SeriesInstanceUID=ctx.uids.uid("ct_series"), ContourImageSequence=contour_images)
    study = _item(ReferencedSOPClassUID=STUDY_COMPONENT_MANAGEMENT, ReferencedSOPInstanceUID=ctx.uids.uid("study"),
                  RTReferencedSeriesSequence=_sequence([series]))
    ds.ReferencedFrameOfReferenceSequence = _sequence([
        _item(FrameOfReferenceUID=ctx.uids.uid("frame_of_reference"), RTReferencedStudySequence=_sequence([study]))])
    rois, contours, observations = [], [], []
    exported = []
    for name, mask in phantom.structures.items():
        if not np.any(mask):
            continue
        number = len(exported) + 1
        exported.append(name)
        rois.append(_item(ROINumber=number, ReferencedFrameOfReferenceUID=ctx.uids.uid("frame_of_reference"),
                          ROIName=name, ROIGenerationAlgorithm="AUTOMATIC"))
        items = []
        for k in np.nonzero(np.asarray(mask).any(axis=(0, 1)))[0]:
            for poly in mask_slice_to_polygons(mask[:, :, k], x_mm, y_mm):
                xyz = np.column_stack([poly, np.full(len(poly), z_mm[k])])
                item = _item(ContourImageSequence=_sequence([_ct_ref(ctx, int(k))]),
                             ContourGeometricType="CLOSED_PLANAR", NumberOfContourPoints=len(poly))
                _set_contour_data(item, xyz)
                items.append(item)
        contours.append(_item(ROIDisplayColor=roi_colour(name),
                              ReferencedROINumber=number, ContourSequence=_sequence(items)))
        observations.append(_item(ObservationNumber=number, ReferencedROINumber=number, ROIObservationLabel=name,
                                  RTROIInterpretedType=ROI_TYPES.get(name, "ORGAN"), ROIInterpreter=""))
    ds.StructureSetROISequence = _sequence(rois)
    ds.ROIContourSequence = _sequence(contours)
    ds.RTROIObservationsSequence = _sequence(observations)
    return ds, tuple(exported)


# ------------------------------------------------------------------ RTDOSE
def dose_grid_scaling(dose_max_gy: float) -> float:
    """DoseGridScaling (as written in 16 characters) that maps max dose to about 2^32 - 1."""
    if not np.isfinite(dose_max_gy) or dose_max_gy < 0:
        raise SpecError("dose", f"maximum dose must be finite and >= 0 Gy, got {dose_max_gy}")
    if dose_max_gy == 0:
        return 1.0
    scaling = float(ds_number(dose_max_gy / UINT32_MAX))
    while np.rint(dose_max_gy / scaling) > UINT32_MAX:      # the 16-character rounding went down
        scaling = float(ds_number(scaling * (1 + 1e-11)))
    return scaling


def rtdose_dataset(phantom, dose_gy: np.ndarray, ctx: ExportContext):
    """RT Dose of the whole plan (Gy) on the phantom grid, uint32 with DoseGridScaling (see module doc)."""
    from pydicom.tag import Tag

    grid = phantom.grid
    dose = np.clip(np.asarray(dose_gy, dtype=np.float64), 0.0, None)
    if dose.shape != grid.shape:
        raise SpecError("dose", f"has shape {dose.shape}, expected the phantom grid {grid.shape}")
    if not np.all(np.isfinite(dose)):
        raise SpecError("dose", "contains NaN or infinite values")
    scaling = dose_grid_scaling(float(dose.max()))
    pixels = np.rint(dose / scaling).astype("<u4")
    ds = _new_dataset(ctx, "RTDOSE", RT_DOSE_STORAGE, ctx.uids.uid("rtdose"), ctx.uids.uid("rtdose_series"), 4,
                      "simsbrt plan dose")
    dx, dy, dz = grid.spacing_mm
    z_mm = grid.axis_mm(2)
    ds.InstanceNumber = 1
    ds.ImagePositionPatient = _coords(grid.origin_mm)      # the first voxel centre
    ds.ImageOrientationPatient = HFS_ORIENTATION
    ds.PixelSpacing = [ds_number(dy), ds_number(dx)]
    ds.SliceThickness = ds_number(dz)
    ds.Rows, ds.Columns = grid.shape[1], grid.shape[0]
    ds.NumberOfFrames = grid.shape[2]
    ds.FrameIncrementPointer = Tag(0x3004, 0x000C)
    ds.GridFrameOffsetVector = _coords(z_mm - z_mm[0])
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 32, 32, 31
    ds.PixelRepresentation = 0
    ds.DoseUnits, ds.DoseType, ds.DoseSummationType = "GY", "PHYSICAL", "PLAN"
    ds.DoseGridScaling = ds_number(scaling)
    ds.TissueHeterogeneityCorrection = "IMAGE"
    ds.ReferencedRTPlanSequence = _sequence([_item(ReferencedSOPClassUID=RT_PLAN_STORAGE,
                                                   ReferencedSOPInstanceUID=ctx.uids.uid("rtplan"))])
    ds.add_new(0x7FE00010, "OW", np.ascontiguousarray(pixels.transpose(2, 1, 0)).tobytes())
    return ds, scaling


# ------------------------------------------------------------------ RTPLAN
@dataclass(frozen=True)
class ArcDelivery:
    """One arc as DICOM sees it: boundary gantry angles, cumulative weights, MU and static jaws."""

    name: str
    direction: str                    # cw / ccw
    boundary_gantry_deg: np.ndarray   # n_sectors + 1
    cumulative_weight: np.ndarray     # n_sectors + 1, 0 ... 1
    total_mu: float                   # beamlet MU of the whole plan (all fractions)
    couch_deg: float
    collimator_deg: float
    jaws_x_mm: tuple[float, float]
    jaws_y_mm: tuple[float, float]


def arc_deliveries(arc_set, weights_mu: np.ndarray, columns: dict) -> list[ArcDelivery]:
    """Per arc: DICOM control points at the sector boundaries and the MU delivered between them."""
    n_per_arc = [len(a.gantry_angles_deg()) for a in arc_set.arcs]
    offsets = np.concatenate([[0], np.cumsum(n_per_arc)]).astype(int)
    weights = np.asarray(weights_mu, dtype=np.float64)
    cp_of = columns.get("control_point")
    if cp_of is None or len(cp_of) != len(weights):
        raise SpecError("plan", "PLAN.h5 has no /plan/beamlet_control_point matching /plan/weights_mu; "
                                "cannot tell which arc delivers which beamlet")
    mu_per_cp = np.bincount(np.asarray(cp_of, int), weights=weights, minlength=int(offsets[-1]))
    size = float(arc_set.beamlet_size_mm)
    out = []
    for a, arc in enumerate(arc_set.arcs):
        n = n_per_arc[a]
        width = arc.span_deg / n
        sign = 1.0 if arc.direction == "cw" else -1.0
        boundaries = np.round((arc.gantry_start_deg + sign * width * np.arange(n + 1)) % 360.0, 6)
        mu = mu_per_cp[offsets[a]: offsets[a + 1]]
        total = float(mu.sum())
        cumulative = np.concatenate([[0.0], np.cumsum(mu)]) / total if total > 0 else np.linspace(0.0, 1.0, n + 1)
        cumulative[-1] = 1.0
        in_arc = (np.asarray(cp_of) >= offsets[a]) & (np.asarray(cp_of) < offsets[a + 1])
        ks, ls = columns.get("k"), columns.get("l")
        if ks is not None and ls is not None and in_arc.any():
            k, l = np.asarray(ks)[in_arc], np.asarray(ls)[in_arc]
            jaws_x = (float(k.min()) * size, float(k.max() + 1) * size)
            jaws_y = (float(l.min()) * size, float(l.max() + 1) * size)
        else:
            jaws_x = jaws_y = (-50.0, 50.0)
        out.append(ArcDelivery(arc.name or f"arc{a + 1}", arc.direction, boundaries, cumulative, total,
                               arc.couch_deg, arc.collimator_deg, jaws_x, jaws_y))
    return out


def _rtplan_header(ctx: ExportContext, label: str, series_description: str, plan_description: str,
                   prescription_gy: float | None, prescription_label: str, protocol_text: str):
    """The RT Plan module every simsbrt RTPLAN shares: label, approval, structure-set and setup references,
    the prescription (DoseReferenceSequence) and the protocol text (PrescriptionDescription)."""
    ds = _new_dataset(ctx, "RTPLAN", RT_PLAN_STORAGE, ctx.uids.uid("rtplan"), ctx.uids.uid("rtplan_series"), 3,
                      series_description)
    ds.RTPlanLabel = label[:16]
    ds.RTPlanName = label[:64]
    ds.RTPlanDescription = plan_description[:1024]
    ds.RTPlanDate, ds.RTPlanTime = ctx.date, ctx.time
    ds.RTPlanGeometry = "PATIENT"
    ds.ApprovalStatus = "UNAPPROVED"
    ds.ReferencedStructureSetSequence = _sequence([_item(ReferencedSOPClassUID=RT_STRUCTURE_SET_STORAGE,
                                                         ReferencedSOPInstanceUID=ctx.uids.uid("rtstruct"))])
    ds.PatientSetupSequence = _sequence([_item(PatientSetupNumber=1, PatientPosition="HFS")])
    if prescription_gy is not None:
        ds.DoseReferenceSequence = _sequence([_item(
            DoseReferenceNumber=1, DoseReferenceUID=ctx.uids.uid("dose_reference"), DoseReferenceStructureType="SITE",
            DoseReferenceDescription=prescription_label[:64], DoseReferenceType="TARGET",
            TargetPrescriptionDose=ds_number(prescription_gy))])
    if protocol_text:
        ds.PrescriptionDescription = protocol_text[:1024]
    return ds


def rtplan_dataset(arcs: list[ArcDelivery], isocentre_mm, n_fractions: int, prescription_gy: float | None,
                   ctx: ExportContext, label: str, prescription_label: str = "PTV_Eval D90%",
                   protocol_text: str = ""):
    """RT Plan: one DYNAMIC 6 MV photon beam per arc (control points, meterset weights, jaws; no MLC)."""
    ds = _rtplan_header(ctx, label, "simsbrt plan (fluence map; no leaf sequence)",
                        "simsbrt fluence-map plan: control points carry gantry angles and cumulative meterset "
                        "weights of beamlet MU; no MLC leaf positions. Not deliverable.",
                        prescription_gy, prescription_label, protocol_text)
    iso = _coords(isocentre_mm)
    beams, refs = [], []
    for b, arc in enumerate(arcs, start=1):
        meterset = arc.total_mu / n_fractions
        refs.append(_item(ReferencedBeamNumber=b, BeamMeterset=ds_number(round(meterset, 4))))
        beams.append(_beam_item(b, arc, iso))
    ds.FractionGroupSequence = _sequence([_item(FractionGroupNumber=1, NumberOfFractionsPlanned=int(n_fractions),
                                                NumberOfBeams=len(arcs), NumberOfBrachyApplicationSetups=0,
                                                ReferencedBeamSequence=_sequence(refs))])
    ds.BeamSequence = _sequence(beams)
    return ds


def _beam_item(number: int, arc: ArcDelivery, iso: list[str]):
    direction = "CW" if arc.direction == "cw" else "CC"
    devices = _sequence([_item(RTBeamLimitingDeviceType="ASYMX", NumberOfLeafJawPairs=1),
                         _item(RTBeamLimitingDeviceType="ASYMY", NumberOfLeafJawPairs=1)])
    cps = []
    n = len(arc.boundary_gantry_deg)
    for j, (gantry, weight) in enumerate(zip(arc.boundary_gantry_deg, arc.cumulative_weight)):
        cp = _item(ControlPointIndex=j, GantryAngle=ds_number(gantry),
                   GantryRotationDirection=direction if j < n - 1 else "NONE",
                   CumulativeMetersetWeight=ds_number(round(float(weight), 9)))
        if j == 0:
            cp.NominalBeamEnergy = NOMINAL_ENERGY_MV
            cp.BeamLimitingDevicePositionSequence = _sequence([
                _item(RTBeamLimitingDeviceType="ASYMX", LeafJawPositions=_coords(arc.jaws_x_mm)),
                _item(RTBeamLimitingDeviceType="ASYMY", LeafJawPositions=_coords(arc.jaws_y_mm))])
            cp.BeamLimitingDeviceAngle = ds_number(arc.collimator_deg % 360.0)
            cp.BeamLimitingDeviceRotationDirection = "NONE"
            cp.PatientSupportAngle = ds_number(arc.couch_deg % 360.0)
            cp.PatientSupportRotationDirection = "NONE"
            cp.TableTopEccentricAngle = "0"
            cp.TableTopEccentricRotationDirection = "NONE"
            cp.TableTopVerticalPosition = cp.TableTopLongitudinalPosition = cp.TableTopLateralPosition = ""
            cp.IsocenterPosition = iso
        cps.append(cp)
    return _item(BeamNumber=number, BeamName=arc.name[:64], BeamDescription=f"{arc.direction} arc",
                 BeamType="DYNAMIC", RadiationType="PHOTON", TreatmentMachineName=MACHINE_NAME,
                 PrimaryDosimeterUnit="MU", SourceAxisDistance="1000", TreatmentDeliveryType="TREATMENT",
                 BeamLimitingDeviceSequence=devices, NumberOfWedges=0, NumberOfCompensators=0, NumberOfBoli=0,
                 NumberOfBlocks=0, FinalCumulativeMetersetWeight="1", NumberOfControlPoints=n,
                 ReferencedPatientSetupNumber=1, ControlPointSequence=_sequence(cps))


# ------------------------------------------------------------------ RTPLAN with MLC (deliverable plans)
def mlc_beam_meterset_mu(delivery: dict, n_fractions: int) -> np.ndarray:
    """Machine MU per fraction of every arc: the sum of its segments (simsbrt.delivery.apertures)."""
    aps = delivery["apertures"]
    seg = np.asarray(delivery["segment_mu"], dtype=np.float64) / n_fractions
    out, s = [], 0
    for arc in aps.arc_slices():
        n = arc.stop - arc.start - 1
        out.append(float(seg[s:s + n].sum()))
        s += n
    return np.asarray(out)


def rtplan_mlc_dataset(delivery: dict, n_fractions: int, prescription_gy: float | None, ctx: ExportContext,
                       label: str, prescription_label: str = "PTV_Eval D90%", protocol_text: str = ""):
    """RT Plan of a deliverable plan: one DYNAMIC arc beam per arc, one DICOM control point per simsbrt
    control point (gantry angle, MLCX leaves, static ASYMX / ASYMY jaws, cumulative meterset weight of the
    segments before it, the dose rate of the segment after it) and the beam meterset in machine MU per
    fraction. Dose model of the control points: simsbrt.delivery.apertures (half of each segment's MU to
    each of its two control points' static apertures)."""
    from simsbrt.delivery.metrics import segment_times_s

    aps = delivery["apertures"]
    machine = aps.machine
    seg_fx = np.asarray(delivery["segment_mu"], dtype=np.float64) / n_fractions
    rate = 60.0 * seg_fx / np.maximum(segment_times_s(aps, seg_fx), 1e-9)      # MU/min of each segment
    ds = _rtplan_header(ctx, label, "simsbrt deliverable VMAT plan (MLC apertures)",
                        f"simsbrt deliverable VMAT on {machine.name}: one MLC aperture per control point, machine MU "
                        f"({machine.calibration_gy_per_mu * 100:g} cGy/MU at dmax, SSD 100, 10 x 10)",
                        prescription_gy, prescription_label, protocol_text)
    beams, refs, s = [], [], 0
    for b, arc in enumerate(aps.arc_slices(), start=1):
        n = arc.stop - arc.start
        seg, seg_rate = seg_fx[s:s + n - 1], rate[s:s + n - 1]
        s += n - 1
        refs.append(_item(ReferencedBeamNumber=b, BeamMeterset=ds_number(round(float(seg.sum()), 4))))
        beams.append(_mlc_beam_item(b, aps, arc, seg, seg_rate))
    ds.FractionGroupSequence = _sequence([_item(FractionGroupNumber=1, NumberOfFractionsPlanned=int(n_fractions),
                                                NumberOfBeams=len(beams), NumberOfBrachyApplicationSetups=0,
                                                ReferencedBeamSequence=_sequence(refs))])
    ds.BeamSequence = _sequence(beams)
    return ds


def _mlc_beam_item(number: int, aps, arc: slice, seg_mu: np.ndarray, seg_rate: np.ndarray):
    machine = aps.machine
    cps = aps.control_points[arc]
    n = len(cps)
    cw = n < 2 or ((cps[1].gantry_deg - cps[0].gantry_deg) % 360.0) < 180.0
    direction = "CW" if cw else "CC"
    devices = _sequence([_item(RTBeamLimitingDeviceType="ASYMX", NumberOfLeafJawPairs=1),
                         _item(RTBeamLimitingDeviceType="ASYMY", NumberOfLeafJawPairs=1),
                         _item(RTBeamLimitingDeviceType="MLCX", NumberOfLeafJawPairs=machine.n_leaf_pairs,
                               LeafPositionBoundaries=_coords(machine.leaf_boundaries_mm))])
    total = float(seg_mu.sum())
    cumulative = np.concatenate([[0.0], np.cumsum(seg_mu)]) / total if total > 0 else np.linspace(0.0, 1.0, n)
    cumulative[-1] = 1.0
    items = []
    for j, cp in enumerate(cps):
        c = arc.start + j
        item = _item(ControlPointIndex=j, GantryAngle=ds_number(round(cp.gantry_deg, 6)),
                     GantryRotationDirection=direction if j < n - 1 else "NONE",
                     CumulativeMetersetWeight=ds_number(round(float(cumulative[j]), 9)))
        if j < n - 1:
            item.DoseRateSet = ds_number(round(float(seg_rate[j]), 3))
        leaves = aps.leaves_mm[c]
        positions = [_item(RTBeamLimitingDeviceType="MLCX",
                           LeafJawPositions=_coords(np.concatenate([leaves[:, 0], leaves[:, 1]])))]
        if j == 0:
            jaws = aps.jaws_mm[c]
            positions = [_item(RTBeamLimitingDeviceType="ASYMX", LeafJawPositions=_coords(jaws[:2])),
                         _item(RTBeamLimitingDeviceType="ASYMY", LeafJawPositions=_coords(jaws[2:]))] + positions
            item.NominalBeamEnergy = NOMINAL_ENERGY_MV
            item.BeamLimitingDeviceAngle = ds_number(cp.collimator_deg % 360.0)
            item.BeamLimitingDeviceRotationDirection = "NONE"
            item.PatientSupportAngle = ds_number(cp.couch_deg % 360.0)
            item.PatientSupportRotationDirection = "NONE"
            item.TableTopEccentricAngle = "0"
            item.TableTopEccentricRotationDirection = "NONE"
            item.TableTopVerticalPosition = item.TableTopLongitudinalPosition = item.TableTopLateralPosition = ""
            item.IsocenterPosition = _coords(cp.isocentre_mm)
        item.BeamLimitingDevicePositionSequence = _sequence(positions)
        items.append(item)
    return _item(BeamNumber=number, BeamName=f"arc{number}", BeamDescription=f"{direction} arc, MLC apertures",
                 BeamType="DYNAMIC", RadiationType="PHOTON", TreatmentMachineName=machine.dicom_name,
                 PrimaryDosimeterUnit="MU", SourceAxisDistance="1000", TreatmentDeliveryType="TREATMENT",
                 BeamLimitingDeviceSequence=devices, NumberOfWedges=0, NumberOfCompensators=0, NumberOfBoli=0,
                 NumberOfBlocks=0, FinalCumulativeMetersetWeight="1", NumberOfControlPoints=n,
                 ReferencedPatientSetupNumber=1, ControlPointSequence=_sequence(items))


def write_deliverable_rtplan(path, phantom, delivery: dict, n_fractions: int, prescription_gy: float | None,
                             label: str) -> Path:
    """RP.dcm of a deliverable plan on its own (compare --deliverable); new UIDs, atomic write."""
    rp = rtplan_mlc_dataset(delivery, n_fractions, prescription_gy, _context(phantom), label)
    return write_dataset(rp, Path(path))


# ------------------------------------------------------------------ files
def _prepare_out_dir(out_dir: Path, overwrite: bool) -> set:
    """Check (and make) the folder; returns the files of an earlier export. They are replaced one
    by one (atomically) and the stale ones removed only after the new export is complete, so an
    interrupted export leaves every file complete."""
    if out_dir.exists() and not out_dir.is_dir():
        raise SpecError("out", f"{out_dir} exists and is not a folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    existing = sorted(p for p in out_dir.iterdir() if p.suffix.lower() == ".dcm")
    if existing and not overwrite:
        raise SpecError("out", f"{out_dir} already holds {len(existing)} DICOM file(s) (e.g. {existing[0].name}); "
                               "a series must not mix exports: choose an empty folder or pass --overwrite")
    if existing:
        ours = {p for pattern in FILE_PATTERNS for p in out_dir.glob(pattern)}
        others = [p for p in existing if p not in ours]
        if others:
            raise SpecError("out", f"{out_dir} holds DICOM files that simsbrt did not name ({others[0].name}); "
                                   "--overwrite only replaces CT_*.dcm, RS.dcm, RD.dcm and RP.dcm: choose another folder")
        return ours
    return set()


def _remove_stale(earlier: set, files: dict) -> None:
    written = {Path(p) for paths in files.values() for p in paths}
    for p in earlier - written:
        p.unlink(missing_ok=True)


def _context(phantom) -> ExportContext:
    """Patient = the phantom; UIDs from a random key (each export is a new set of instances)."""
    name = phantom.spec.name or "phantom"
    when = _dt.datetime.now()
    return ExportContext(UidFactory(uuid.uuid4().hex), patient_name=f"simsbrt^{name}",
                         patient_id=name[:64], when=when)


def _write_ct_and_structures(phantom, ctx: ExportContext, out_dir: Path, calibration: CtCalibration):
    files = {"CT": []}
    for k, ds in enumerate(ct_datasets(phantom, ctx, calibration)):
        files["CT"].append(write_dataset(ds, out_dir / f"CT_{k + 1:04d}.dcm"))
    rs, exported = rtstruct_dataset(phantom, ctx)
    files["RTSTRUCT"] = [write_dataset(rs, out_dir / "RS.dcm")]
    empty = tuple(n for n in phantom.structures if n not in exported)
    return files, exported, empty


def export_phantom(phantom, out_dir, overwrite: bool = False,
                   calibration: CtCalibration = MATRAD_DEFAULT) -> ExportResult:
    """CT series + RTSTRUCT of a phantom (no plan) into ``out_dir``."""
    out_dir = Path(out_dir)
    earlier = _prepare_out_dir(out_dir, overwrite)
    ctx = _context(phantom)
    files, exported, empty = _write_ct_and_structures(phantom, ctx, out_dir, calibration)
    _remove_stale(earlier, files)
    return ExportResult(out_dir, files, exported, empty, None, None, ())


def export_plan(plan_path, out_dir, overwrite: bool = False,
                calibration: CtCalibration = MATRAD_DEFAULT) -> ExportResult:
    """CT series, RTSTRUCT, RTDOSE and RTPLAN of PLAN.h5 into ``out_dir`` (see module doc)."""
    from simsbrt.geometry.arcs import arc_set_from_doc, structure_centroid_mm
    from simsbrt.io.plan_h5 import read_plan
    from simsbrt.optimize.plans import PROTOCOL_OF_MODE
    from simsbrt.protocols import load_protocol

    plan = read_plan(plan_path)
    phantom = plan.phantom
    out_dir = Path(out_dir)
    earlier = _prepare_out_dir(out_dir, overwrite)
    arc_set = arc_set_from_doc(plan.arcs)
    ctx = _context(phantom)
    files, exported, empty = _write_ct_and_structures(phantom, ctx, out_dir, calibration)
    arcs = arc_deliveries(arc_set, plan.weights_mu, plan.beamlet_columns) if plan.delivery is None else None
    iso = arc_set.isocentre_mm or structure_centroid_mm(phantom.grid, phantom.mask("PTV"))
    protocol = plan.summary.get("protocol_definition") or load_protocol(PROTOCOL_OF_MODE[plan.mode]).to_dict()
    n_fractions = protocol["n_fractions"]
    prescription_gy = plan.summary.get("prescription_gy")       # PTV_Eval D90% goal (escalated: reached)
    rx = protocol["prescription"]
    prescription = {"prescription_label": f"{rx['structure']} {rx['metric']}",
                    "protocol_text": f"protocol {protocol['name']} ({protocol.get('origin', '')}): {rx['structure']} "
                                     f"{rx['metric']} = {prescription_gy:g} Gy in {n_fractions} fractions; "
                                     + protocol.get("description", "")}
    if plan.delivery is not None:     # a deliverable plan: MLC apertures, machine MU
        rp = rtplan_mlc_dataset(plan.delivery, n_fractions, prescription_gy, ctx, label=f"{plan.mode}",
                                **prescription)
        meterset = tuple(float(m) for m in mlc_beam_meterset_mu(plan.delivery, n_fractions))
    else:
        rp = rtplan_dataset(arcs, iso, n_fractions, prescription_gy, ctx, label=f"{plan.mode}", **prescription)
        meterset = tuple(a.total_mu / n_fractions for a in arcs)
    files["RTPLAN"] = [write_dataset(rp, out_dir / "RP.dcm")]
    rd, scaling = rtdose_dataset(phantom, plan.dose_gy, ctx)
    files["RTDOSE"] = [write_dataset(rd, out_dir / "RD.dcm")]
    _remove_stale(earlier, files)
    return ExportResult(out_dir, files, exported, empty, float(np.max(plan.dose_gy)), scaling, meterset)
