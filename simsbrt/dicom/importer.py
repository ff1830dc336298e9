"""DICOM import: a CT series plus an RTSTRUCT (from a planning system) -> a simsbrt Phantom.

- Only axial head-first-supine series (ImageOrientationPatient [1, 0, 0, 0, 1, 0]), the geometry of
  simsbrt.grid, are accepted; slices must share pixel spacing, size, in-plane position and frame of
  reference, and be equally spaced along z (a gap is reported as missing slices).
- HU -> relative electron density through simsbrt.dicom.hu (the same table as the export).
- The dose grid: the CT's own voxel grid when its spacings lie within 1-3 mm (what the dose engine
  supports), else an isotropic grid (``spacing_mm``, default 2 mm) covering the CT's voxel centres;
  densities are then box-averaged over the new voxel size and interpolated trilinearly.
- Structures: ROI names map to simsbrt names through the mapping file (simsbrt.dicom.names); each
  dose-grid plane takes the polygons of the nearest contour plane (within half the CT slice
  spacing) and a voxel is inside when its centre lies inside an odd number of them (XOR: holes).
  Protocol structures absent from the RTSTRUCT become empty masks (phantom.model's rule).
Every problem is a SpecError that names the file and what is wrong.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from simsbrt.dicom.contours import polygons_to_mask
from simsbrt.dicom.export import HFS_ORIENTATION
from simsbrt.dicom.hu import MATRAD_DEFAULT, CtCalibration
from simsbrt.errors import SpecError
from simsbrt.grid import MAX_SPACING_MM, MIN_SPACING_MM, Grid

log = logging.getLogger(__name__)

POSITION_TOL_MM = 0.01
MAX_COORDINATE_MM = 1.0e4          # patient coordinates beyond 10 m are damaged values
PIXEL_SPACING_RANGE_MM = (0.2, 5.0)  # CT pixels: 0.5-1.5 mm in practice
SLOPE_RANGE = (1e-3, 10.0)         # RescaleSlope: 1 in practice
INTERCEPT_RANGE = (-1.0e4, 1.0e4)  # RescaleIntercept: -1024 / -1000 / 0 in practice
DEFAULT_SPACING_MM = 2.0


@dataclass(frozen=True, eq=False)
class CtSeries:
    grid: Grid                 # the CT's own voxel grid (LPS, [i, j, k] = [x, y, z])
    hu: np.ndarray             # float32 HU, grid.shape
    frame_of_reference_uid: str
    series_uid: str
    files: tuple[Path, ...]    # sorted by z
    sop_uids: tuple[str, ...] = ()   # SOPInstanceUID of each slice, same order


@dataclass(frozen=True, eq=False)
class RoiContours:
    number: int
    name: str
    planes: dict               # z (mm, rounded) -> list of (n, 2) polygons in mm


def _read_header(path: Path):
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(str(path), stop_before_pixels=True)
    except InvalidDicomError:
        if path.suffix.lower() == ".dcm":
            raise SpecError("DICOM", "not a DICOM file (no DICM preamble or readable header)", str(path)) from None
        return None
    except Exception as exc:  # a truncated or corrupt file: pydicom raises various errors
        raise SpecError("DICOM", f"cannot be read: {exc}", str(path)) from None


def scan_folder(folder) -> dict:
    """{"CT": {series_uid: [(path, header)]}, "RTSTRUCT": [(path, header)], "other": [...]} of a folder (recursive)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SpecError("dicom", f"not a folder: {folder}")
    found = {"CT": {}, "RTSTRUCT": [], "other": []}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        ds = _read_header(path)
        if ds is None:
            continue
        modality = str(getattr(ds, "Modality", ""))
        if modality == "CT":
            found["CT"].setdefault(str(getattr(ds, "SeriesInstanceUID", "")), []).append((path, ds))
        elif modality == "RTSTRUCT":
            found["RTSTRUCT"].append((path, ds))
        else:
            found["other"].append((path, ds))
    return found


def _require(ds, path: Path, *keywords):
    for kw in keywords:
        if kw not in ds or ds.data_element(kw).value in (None, ""):
            raise SpecError(kw, "is missing", str(path))


def _select_rtstruct(found: dict, folder) -> tuple[Path, object]:
    structs = found["RTSTRUCT"]
    if not structs:
        raise SpecError("RTSTRUCT", f"no RT Structure Set (Modality RTSTRUCT) in {folder}")
    if len(structs) > 1:
        raise SpecError("RTSTRUCT", f"{len(structs)} structure sets in {folder} "
                                    f"({', '.join(p.name for p, _ in structs)}); keep one per folder")
    return structs[0]


def _referenced_series(rtstruct) -> set[str]:
    out = set()
    for fr in getattr(rtstruct, "ReferencedFrameOfReferenceSequence", []):
        for st in getattr(fr, "RTReferencedStudySequence", []):
            for se in getattr(st, "RTReferencedSeriesSequence", []):
                out.add(str(getattr(se, "SeriesInstanceUID", "")))
    return out


def _select_ct_series(found: dict, rtstruct, folder) -> list:
    series = found["CT"]
    if not series:
        raise SpecError("CT", f"no CT images (Modality CT) in {folder}")
    if len(series) == 1:
        return next(iter(series.values()))
    counts = ", ".join(f"{uid} ({len(items)} slices)" for uid, items in sorted(series.items()))
    raise SpecError("CT", f"{len(series)} CT series in {folder}: {counts}; an import needs exactly one series "
                          "(slices split between series would give a partial anatomy): keep one per folder")


def _floats(ds, keyword: str, path: Path, n: int) -> np.ndarray:
    _require(ds, path, keyword)
    try:
        values = np.asarray([float(v) for v in ds.data_element(keyword).value], dtype=float)
    except (TypeError, ValueError):
        raise SpecError(keyword, f"is not a list of numbers: {ds.data_element(keyword).value!r}", str(path)) from None
    if values.shape != (n,):
        raise SpecError(keyword, f"needs {n} numbers, got {list(values)}", str(path))
    if not np.all(np.isfinite(values)) or np.any(np.abs(values) > MAX_COORDINATE_MM):
        raise SpecError(keyword, f"needs finite numbers within +-{MAX_COORDINATE_MM:g}, got {list(values)}", str(path))
    return values


def _number(ds, keyword: str, path: Path, default: float, low: float, high: float) -> float:
    """A numeric tag (default when absent), finite and within [low, high]; SpecError naming the file."""
    raw = getattr(ds, keyword, None)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise SpecError(keyword, f"is not a number: {raw!r}", str(path)) from None
    if not (np.isfinite(value) and low <= value <= high):
        raise SpecError(keyword, f"{value:g} is outside the plausible range {low:g}..{high:g}", str(path))
    return value


def _check_slice_geometry(items) -> tuple[list, np.ndarray, float]:
    """Slices sorted by z, their z (mm) and the slice spacing; SpecError naming the file otherwise."""
    first_path, first = items[0]
    _require(first, first_path, "Rows", "Columns", "FrameOfReferenceUID")
    ref_spacing = _floats(first, "PixelSpacing", first_path, 2)
    low, high = PIXEL_SPACING_RANGE_MM
    if np.any(ref_spacing < low) or np.any(ref_spacing > high):
        raise SpecError("PixelSpacing", f"{list(ref_spacing)} mm is outside the plausible CT range "
                                        f"{low:g}-{high:g} mm", str(first_path))
    ref_pos = _floats(first, "ImagePositionPatient", first_path, 3)
    rows = []
    for path, ds in items:
        orientation = _floats(ds, "ImageOrientationPatient", path, 6)
        if not np.allclose(orientation, HFS_ORIENTATION, atol=1e-4):
            raise SpecError("ImageOrientationPatient", f"{list(orientation)} is not axial head-first supine "
                            "[1, 0, 0, 0, 1, 0]; only HFS axial series are supported", str(path))
        spacing = _floats(ds, "PixelSpacing", path, 2)
        if not np.allclose(spacing, ref_spacing, atol=1e-4):
            raise SpecError("PixelSpacing", f"inconsistent spacing: {list(spacing)} mm here, {list(ref_spacing)} mm "
                                            f"in {first_path.name}", str(path))
        _require(ds, path, "Rows", "Columns", "FrameOfReferenceUID")
        if (int(ds.Rows), int(ds.Columns)) != (int(first.Rows), int(first.Columns)):
            raise SpecError("Rows/Columns", f"{ds.Rows} x {ds.Columns} here, {first.Rows} x {first.Columns} "
                                            f"in {first_path.name}", str(path))
        pos = _floats(ds, "ImagePositionPatient", path, 3)
        if not np.allclose(pos[:2], ref_pos[:2], atol=POSITION_TOL_MM):
            raise SpecError("ImagePositionPatient", f"in-plane position {list(pos[:2])} mm differs from "
                                                    f"{list(ref_pos[:2])} mm in {first_path.name}", str(path))
        if str(ds.FrameOfReferenceUID) != str(first.FrameOfReferenceUID):
            raise SpecError("FrameOfReferenceUID", f"{ds.FrameOfReferenceUID} differs from "
                                                   f"{first.FrameOfReferenceUID} in {first_path.name}", str(path))
        rows.append((pos[2], path, ds))
    rows.sort(key=lambda r: r[0])
    if len(rows) < 2:
        raise SpecError("CT", "a series needs at least two slices", str(first_path))
    z = np.array([r[0] for r in rows])
    steps = np.diff(z)
    for n, step in enumerate(steps):
        if step < POSITION_TOL_MM:
            raise SpecError("ImagePositionPatient", f"two slices at z = {z[n]:g} mm ({rows[n][1].name} and "
                                                    f"{rows[n + 1][1].name})", str(rows[n + 1][1]))
    # the nominal spacing: the most common step (ties: the smallest), so one odd step is the one reported
    values, counts = np.unique(np.round(steps, 2), return_counts=True)
    dz = float(np.median(steps[np.abs(steps - values[np.argmax(counts)]) <= POSITION_TOL_MM]))
    for n, step in enumerate(steps):
        if abs(step - dz) <= POSITION_TOL_MM:
            continue
        a, b = rows[n][1], rows[n + 1][1]
        ratio = step / dz
        if abs(ratio - round(ratio)) * dz <= POSITION_TOL_MM:
            raise SpecError("CT", f"missing slice(s): a gap of {step:g} mm between z = {z[n]:g} mm ({a.name}) and "
                                  f"z = {z[n + 1]:g} mm ({b.name}) where the series spacing is {dz:g} mm "
                                  f"({int(round(ratio)) - 1} slice(s) missing)", str(b))
        raise SpecError("CT", f"inconsistent slice spacing: {step:g} mm between {a.name} and {b.name}, "
                              f"{dz:g} mm elsewhere", str(b))
    return rows, z, dz


def read_ct_series(items) -> CtSeries:
    """The CT volume in HU on its own grid (checks as in the module doc)."""
    import pydicom

    rows, z, dz = _check_slice_geometry(items)
    first = rows[0][2]
    row_mm, col_mm = (float(v) for v in first.PixelSpacing)
    x0, y0 = (float(v) for v in first.ImagePositionPatient[:2])
    nx, ny = int(first.Columns), int(first.Rows)
    hu = np.empty((nx, ny, len(rows)), dtype=np.float32)
    for k, (_, path, _) in enumerate(rows):
        try:
            ds = pydicom.dcmread(str(path))
            pixels = ds.pixel_array
        except Exception as exc:
            raise SpecError("PixelData", f"cannot be decoded: {exc}", str(path)) from None
        if pixels.shape != (ny, nx):
            raise SpecError("PixelData", f"has shape {pixels.shape}, expected (Rows, Columns) = ({ny}, {nx})", str(path))
        slope = _number(ds, "RescaleSlope", path, 1.0, *SLOPE_RANGE)
        intercept = _number(ds, "RescaleIntercept", path, 0.0, *INTERCEPT_RANGE)
        hu[:, :, k] = (pixels.astype(np.float32) * slope + intercept).T
    grid = Grid((nx, ny, len(rows)), (col_mm, row_mm, dz), (x0, y0, float(z[0])))
    return CtSeries(grid, hu, str(first.FrameOfReferenceUID), str(first.SeriesInstanceUID),
                    tuple(r[1] for r in rows), tuple(str(getattr(r[2], "SOPInstanceUID", "")) for r in rows))


def _contour_points(contour) -> np.ndarray:
    """ContourData as floats; parses the raw decimal strings directly (pydicom's DS objects are slow)."""
    raw = contour.get_item(0x30060050)
    value = getattr(raw, "value", None)
    if isinstance(value, (bytes, bytearray)):
        try:
            return np.asarray(bytes(value).strip(b" \x00").split(b"\\"), dtype=float)
        except ValueError:
            pass
    return np.asarray([float(v) for v in contour.ContourData], dtype=float)


def read_roi_contours(rtstruct, path: Path, frame_of_reference_uid: str) -> list[RoiContours]:
    """Every ROI's axial polygons; SpecError when a reference points at another frame of reference or
    the structure set is incomplete (a truncated file), ambiguous or holds non-finite points."""
    try:
        return _read_roi_contours(rtstruct, path, frame_of_reference_uid)
    except (AttributeError, KeyError, TypeError, ValueError, IndexError) as exc:
        if isinstance(exc, SpecError):
            raise
        raise SpecError("RTSTRUCT", f"incomplete or damaged structure set ({type(exc).__name__}: {exc})",
                        str(path)) from None


def _roi_number(item, keyword: str, path: Path) -> int:
    raw = getattr(item, keyword, None)
    try:
        return int(str(raw).strip())
    except (TypeError, ValueError):
        raise SpecError(keyword, f"must be an integer, got {raw!r}", str(path)) from None


def _read_roi_contours(rtstruct, path: Path, frame_of_reference_uid: str) -> list[RoiContours]:
    for fr in getattr(rtstruct, "ReferencedFrameOfReferenceSequence", []):
        uid = str(getattr(fr, "FrameOfReferenceUID", ""))
        if uid and uid != frame_of_reference_uid:
            raise SpecError("ReferencedFrameOfReferenceSequence", f"refers to frame of reference {uid}, but the CT "
                            f"series is in {frame_of_reference_uid}: the structures belong to another image set",
                            str(path))
    _require(rtstruct, path, "StructureSetROISequence")
    names = {}
    for roi in rtstruct.StructureSetROISequence:
        number, name = _roi_number(roi, "ROINumber", path), str(getattr(roi, "ROIName", "")).strip()
        if number in names:
            raise SpecError("ROINumber", f"{number} is used by ROIs {names[number]!r} and {name!r}", str(path))
        uid = str(getattr(roi, "ReferencedFrameOfReferenceUID", frame_of_reference_uid))
        if uid != frame_of_reference_uid:
            raise SpecError(f"ROI {name!r}", f"refers to frame of reference {uid}, but the CT series is in "
                                             f"{frame_of_reference_uid}", str(path))
        names[number] = name
    out = {n: RoiContours(n, name, {}) for n, name in names.items()}
    for item in getattr(rtstruct, "ROIContourSequence", []):
        number = _roi_number(item, "ReferencedROINumber", path)
        if number not in out:
            raise SpecError("ROIContourSequence", f"refers to ROI number {number}, which StructureSetROISequence "
                                                  "does not define", str(path))
        roi = out[number]
        for c in getattr(item, "ContourSequence", []):
            kind = str(getattr(c, "ContourGeometricType", "CLOSED_PLANAR"))
            if kind != "CLOSED_PLANAR":
                log.warning("%s: ROI %s: %s contour skipped (only CLOSED_PLANAR outlines a volume)", path, roi.name, kind)
                continue
            pts = _contour_points(c)
            if pts.size % 3 or pts.size < 9:
                raise SpecError(f"ROI {roi.name!r}", f"ContourData has {pts.size} values; needs x, y, z triples "
                                                     "of at least three points", str(path))
            pts = pts.reshape(-1, 3)
            if not np.all(np.isfinite(pts)) or np.abs(pts).max() > MAX_COORDINATE_MM:
                raise SpecError(f"ROI {roi.name!r}", "ContourData holds a non-finite or absurd coordinate "
                                                     f"(|x| > {MAX_COORDINATE_MM:g} mm)", str(path))
            if np.ptp(pts[:, 2]) > POSITION_TOL_MM:
                raise SpecError(f"ROI {roi.name!r}", f"a contour is not axial (z from {pts[:, 2].min():g} to "
                                                     f"{pts[:, 2].max():g} mm)", str(path))
            roi.planes.setdefault(round(float(pts[0, 2]), 3), []).append(pts[:, :2])
    return list(out.values())


def _referenced_images(rtstruct) -> set[str]:
    """SOPInstanceUIDs of the CT images the structure set names (series references and per contour)."""
    uids = set()
    for fr in getattr(rtstruct, "ReferencedFrameOfReferenceSequence", []):
        for st in getattr(fr, "RTReferencedStudySequence", []):
            for se in getattr(st, "RTReferencedSeriesSequence", []):
                for img in getattr(se, "ContourImageSequence", []):
                    uids.add(str(getattr(img, "ReferencedSOPInstanceUID", "")))
    for item in getattr(rtstruct, "ROIContourSequence", []):
        for c in getattr(item, "ContourSequence", []):
            for img in getattr(c, "ContourImageSequence", []):
                uids.add(str(getattr(img, "ReferencedSOPInstanceUID", "")))
    uids.discard("")
    return uids


def check_structure_set_covers_series(rtstruct, rs_path: Path, ct: CtSeries, rois) -> None:
    """Missing first / last slices leave no gap in the spacing: find them through the images the
    RTSTRUCT refers to, and through contours lying beyond the series' first or last slice."""
    missing = _referenced_images(rtstruct) - set(ct.sop_uids)
    if missing and any(ct.sop_uids):
        raise SpecError("CT", f"the structure set refers to {len(missing)} CT image(s) not in the series "
                              f"(e.g. {sorted(missing)[0]}): slices are missing", str(rs_path))
    z = ct.grid.axis_mm(2)
    half = 0.5 * ct.grid.spacing_mm[2] + POSITION_TOL_MM
    for roi in rois:
        outside = [p for p in roi.planes if p < z[0] - half or p > z[-1] + half]
        if outside:
            raise SpecError(f"ROI {roi.name!r}", f"has contours at z = {min(outside):g}..{max(outside):g} mm, beyond "
                                                 f"the CT series ({z[0]:g}..{z[-1]:g} mm): slices are missing",
                            str(rs_path))


def dose_grid_for(ct_grid: Grid, spacing_mm: float | None) -> Grid:
    """The CT grid itself when usable (spacings 1-3 mm, or equal to the request), else an isotropic grid."""
    spacings = np.asarray(ct_grid.spacing_mm)
    if spacing_mm is None:
        if np.all((spacings >= MIN_SPACING_MM - 1e-6) & (spacings <= MAX_SPACING_MM + 1e-6)):
            return ct_grid
        spacing_mm = DEFAULT_SPACING_MM
    if not (MIN_SPACING_MM <= spacing_mm <= MAX_SPACING_MM):
        raise SpecError("spacing_mm", f"must be within {MIN_SPACING_MM:g}-{MAX_SPACING_MM:g} mm, got {spacing_mm:g}")
    if np.allclose(spacings, spacing_mm, atol=1e-6):
        return ct_grid
    lower = np.asarray(ct_grid.origin_mm)
    upper = np.asarray(ct_grid.index_to_world_mm(np.asarray(ct_grid.shape) - 1))
    shape = np.floor((upper - lower) / spacing_mm + 1e-9).astype(int) + 1
    return Grid(tuple(shape), (spacing_mm,) * 3, tuple(lower))


def resample_density(values: np.ndarray, source: Grid, target: Grid) -> np.ndarray:
    """``values`` on ``target``: box average over the target voxel size, then trilinear interpolation."""
    from scipy import ndimage

    if target == source:
        return values.astype(np.float32)
    sizes = [max(1, int(round(t / s))) for t, s in zip(target.spacing_mm, source.spacing_mm)]
    smoothed = ndimage.uniform_filter(values.astype(np.float32), size=sizes, mode="nearest")
    axes = [(target.axis_mm(a) - source.origin_mm[a]) / source.spacing_mm[a] for a in range(3)]
    mesh = np.meshgrid(*axes, indexing="ij")
    return ndimage.map_coordinates(smoothed, mesh, order=1, mode="nearest").astype(np.float32)


def rasterise_roi(roi: RoiContours, grid: Grid, plane_spacing_mm: float) -> np.ndarray:
    """The ROI's voxels on ``grid``: per grid plane, the nearest contour plane within half a plane spacing."""
    mask = np.zeros(grid.shape, dtype=bool)
    if not roi.planes:
        return mask
    plane_z = np.array(sorted(roi.planes))
    x_mm, y_mm = grid.axis_mm(0), grid.axis_mm(1)
    for k, z in enumerate(grid.axis_mm(2)):
        n = int(np.argmin(np.abs(plane_z - z)))
        if abs(plane_z[n] - z) <= 0.5 * plane_spacing_mm + POSITION_TOL_MM:
            mask[:, :, k] = polygons_to_mask(roi.planes[plane_z[n]], x_mm, y_mm)
    return mask


def import_dicom(folder, names=None, spacing_mm: float | None = None, name: str | None = None,
                 calibration: CtCalibration = MATRAD_DEFAULT):
    """A Phantom from a folder with one CT series and one RTSTRUCT (see module doc)."""
    from simsbrt.dicom.names import NameMapping, load_mapping
    from simsbrt.phantom.model import ImportedSpec, Phantom
    from simsbrt.phantom.volumes import OPTIONAL_STRUCTURES, STRUCTURE_NAMES

    folder = Path(folder)
    mapping = names if isinstance(names, NameMapping) else load_mapping(names)
    found = scan_folder(folder)
    rs_path, rs_header = _select_rtstruct(found, folder)
    ct = read_ct_series(_select_ct_series(found, rs_header, folder))
    rtstruct = rs_header                 # an RTSTRUCT has no pixel data: the header scan read all of it
    rois = read_roi_contours(rtstruct, rs_path, ct.frame_of_reference_uid)
    check_structure_set_covers_series(rtstruct, rs_path, ct, rois)
    chosen = mapping.resolve([r.name for r in rois], str(rs_path))
    grid = dose_grid_for(ct.grid, spacing_mm)
    density = resample_density(calibration.hu_to_red(ct.hu), ct.grid, grid)
    masks = {}
    for roi in rois:
        if roi.name in chosen:
            masks[chosen[roi.name]] = rasterise_roi(roi, grid, ct.grid.spacing_mm[2])
            if not masks[chosen[roi.name]].any():
                log.warning("%s: ROI %r (%s) has no voxel on the dose grid", rs_path, roi.name, chosen[roi.name])
    structures = {n: masks.get(n, np.zeros(grid.shape, dtype=bool)) for n in STRUCTURE_NAMES}
    structures.update({n: masks[n] for n in OPTIONAL_STRUCTURES if n in masks})
    label = name or str(getattr(rtstruct, "PatientID", "") or folder.name)
    spec = ImportedSpec(label, str(folder), f"DICOM CT series {ct.series_uid} ({len(ct.files)} slices) + "
                                            f"RTSTRUCT {rs_path.name}; HU->RED: {calibration.source}; "
                                            f"ROI names: {mapping.source}")
    absent = [n for n in STRUCTURE_NAMES if n not in masks]
    if absent:
        log.info("structures absent from %s (empty masks): %s", rs_path, ", ".join(absent))
    phantom = Phantom(grid=grid, density=density, structures=structures, spec=spec)
    check_imported(phantom, folder, rs_path)
    return phantom


def check_imported(phantom, folder: Path, rs_path: Path) -> None:
    """The imported phantom passes what every phantom file must pass on reading (densities physical,
    required structures non-empty); the error names the DICOM tags that usually cause it."""
    from simsbrt.errors import SchemaError
    from simsbrt.io.phantom_h5 import MAX_DENSITY, check_phantom

    top = float(np.max(phantom.density))
    if top > MAX_DENSITY:
        raise SpecError("RescaleSlope/RescaleIntercept", f"give relative electron densities up to {top:.4g} "
                                                         f"(at most {MAX_DENSITY:g} is physical)", str(folder))
    try:
        check_phantom(phantom, str(folder))
    except SchemaError as exc:
        raise SpecError("DICOM", f"{str(exc).removeprefix(str(folder) + ': ')} after import (check PixelSpacing, "
                                 f"RescaleSlope and the contours in {rs_path.name})", str(folder)) from None
