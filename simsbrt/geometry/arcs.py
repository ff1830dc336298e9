"""Arcs, control points and the beam frame.

Coordinate convention (stated once; tests check it):
  * Patient coordinates are DICOM LPS (simsbrt.grid), patient head-first supine (HFS).
  * IEC 61217 fixed system (X_f, Y_f, Z_f): +X_f to the right of an observer at the couch foot
    facing the gantry, +Y_f towards the gantry, +Z_f up. For HFS: X_f = +x (patient left),
    Y_f = +z (superior), Z_f = -y (anterior). So gantry 0 irradiates from anterior, gantry 90 from
    the patient's left, gantry 180 from posterior, gantry 270 from the patient's right.
  * Gantry angle theta (clockwise seen from the couch foot): the source sits at
    iso + SAD * Z_b with Z_b = (sin theta, 0, cos theta) in IEC fixed; the beam-limiting-device
    axes are X_b = (cos theta, 0, -sin theta), Y_b = (0, 1, 0) (right-handed: X_b x Y_b = Z_b).
  * Collimator angle psi rotates (X_b, Y_b) about Z_b: X_b' = cos psi X_b + sin psi Y_b,
    Y_b' = -sin psi X_b + cos psi Y_b.
  * Couch angle phi (counter-clockwise seen from above) rotates the patient about Z_f, so beam
    vectors in patient coordinates are R_z(-phi) applied to the fixed-frame vectors.
  * Beam's-eye-view coordinates (u, v) of a point are its offsets along X_b, Y_b projected to the
    isocentre plane (scaled by SAD / distance-from-source along the axis).
An arc from gantry_start_deg to gantry_stop_deg (cw: increasing angle) is cut into equal sectors
no wider than spacing_deg; each control point sits at a sector's middle (a full 358 degree arc at
4 degrees gives 90 control points; the cw and ccw full arcs share the same angles).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from simsbrt.errors import SpecError

SAD_MM = 1000.0
DEFAULT_SPACING_DEG = 4.0
DEFAULT_BEAMLET_MM = 2.5  # the trial's MLC leaf width (facts 1.8)
DEFAULT_BEAMLET_MARGIN_MM = 5.0
DIRECTIONS = ("cw", "ccw")
MAX_ANGLE_DEG = 720.0   # gantry and collimator angles are read modulo 360; beyond two turns is a typo


@dataclass(frozen=True)
class ArcSpec:
    gantry_start_deg: float
    gantry_stop_deg: float
    direction: str = "cw"
    spacing_deg: float = DEFAULT_SPACING_DEG
    couch_deg: float = 0.0
    collimator_deg: float = 0.0
    name: str = ""

    def __post_init__(self):
        for name in ("gantry_start_deg", "gantry_stop_deg", "spacing_deg", "couch_deg", "collimator_deg"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise SpecError(f"arc.{name}", f"must be a finite number of degrees, got {value!r}")
            object.__setattr__(self, name, float(value))
        if self.direction not in DIRECTIONS:
            raise SpecError("arc.direction", f"must be 'cw' or 'ccw', got {self.direction!r}")
        if not 0.1 <= self.spacing_deg <= 90.0:
            raise SpecError("arc.spacing_deg", f"must be between 0.1 and 90 degrees, got {self.spacing_deg}")
        for name in ("gantry_start_deg", "gantry_stop_deg", "collimator_deg"):
            if not -MAX_ANGLE_DEG <= getattr(self, name) <= MAX_ANGLE_DEG:
                raise SpecError(f"arc.{name}", f"must be within -{MAX_ANGLE_DEG:g}..{MAX_ANGLE_DEG:g} degrees, "
                                               f"got {getattr(self, name):g}")
        if not -90.0 <= self.couch_deg <= 90.0:
            raise SpecError("arc.couch_deg", f"must be within -90..90 degrees, got {self.couch_deg}")

    @property
    def span_deg(self) -> float:
        if self.direction == "cw":
            span = (self.gantry_stop_deg - self.gantry_start_deg) % 360.0
        else:
            span = (self.gantry_start_deg - self.gantry_stop_deg) % 360.0
        return 360.0 if span == 0.0 else span

    def gantry_angles_deg(self) -> np.ndarray:
        """Control-point gantry angles (sector midpoints) in delivery order, in [0, 360)."""
        n = max(1, int(math.ceil(self.span_deg / self.spacing_deg - 1e-9)))
        width = self.span_deg / n
        offsets = (np.arange(n) + 0.5) * width
        sign = 1.0 if self.direction == "cw" else -1.0
        return np.round((self.gantry_start_deg + sign * offsets) % 360.0, 9)


@dataclass(frozen=True)
class ArcSet:
    arcs: tuple[ArcSpec, ...]
    isocentre_mm: tuple[float, float, float] | None = None
    beamlet_size_mm: float = DEFAULT_BEAMLET_MM
    beamlet_margin_mm: float = DEFAULT_BEAMLET_MARGIN_MM

    def __post_init__(self):
        if not self.arcs:
            raise SpecError("arc", "at least one arc is needed")
        if not (0.5 <= float(self.beamlet_size_mm) <= 20.0):
            raise SpecError("beamlet_size_mm", f"must be within 0.5..20 mm, got {self.beamlet_size_mm}")
        if not (0.0 <= float(self.beamlet_margin_mm) <= 30.0):
            raise SpecError("beamlet_margin_mm", f"must be within 0..30 mm, got {self.beamlet_margin_mm}")
        if self.isocentre_mm is not None:
            iso = tuple(float(x) for x in self.isocentre_mm)
            if len(iso) != 3 or not all(math.isfinite(x) for x in iso):
                raise SpecError("isocentre_mm", f"needs three finite coordinates, got {self.isocentre_mm}")
            object.__setattr__(self, "isocentre_mm", iso)


def default_arc_set(spacing_deg: float = DEFAULT_SPACING_DEG, beamlet_size_mm: float = DEFAULT_BEAMLET_MM,
                    beamlet_margin_mm: float = DEFAULT_BEAMLET_MARGIN_MM) -> ArcSet:
    """Two coplanar full arcs (cw 181 -> 179, ccw 179 -> 181), collimator 0; by default 4 degree control
    points and 2.5 mm beamlets (coarser settings make the quick / test variants of the same arcs)."""
    return ArcSet(arcs=(ArcSpec(181.0, 179.0, "cw", spacing_deg=spacing_deg, name="arc1"),
                        ArcSpec(179.0, 181.0, "ccw", spacing_deg=spacing_deg, name="arc2")),
                  beamlet_size_mm=beamlet_size_mm, beamlet_margin_mm=beamlet_margin_mm)


_ARC_KEYS = {"gantry_start_deg", "gantry_stop_deg", "direction", "spacing_deg", "couch_deg", "collimator_deg", "name"}
_TOP_KEYS = {"arc", "isocentre_mm", "beamlet_size_mm", "beamlet_margin_mm"}


def _number(value, field_name: str, source: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SpecError(field_name, f"must be a finite number, got {value!r}", source)
    return float(value)


def arc_set_from_dict(doc: dict, source: str = "<arcs>") -> ArcSet:
    """Build an ArcSet from parsed TOML; unknown keys and bad values raise SpecError naming the field."""
    unknown = set(doc) - _TOP_KEYS
    if unknown:
        raise SpecError(sorted(unknown)[0], f"unknown key (allowed: {', '.join(sorted(_TOP_KEYS))})", source)
    arcs_doc = doc.get("arc")
    if not isinstance(arcs_doc, list) or not arcs_doc:
        raise SpecError("arc", "needs at least one [[arc]] table", source)
    arcs = []
    for n, a in enumerate(arcs_doc):
        where = f"arc[{n}]"
        if not isinstance(a, dict):
            raise SpecError(where, "must be a table", source)
        bad = set(a) - _ARC_KEYS
        if bad:
            raise SpecError(f"{where}.{sorted(bad)[0]}", f"unknown key (allowed: {', '.join(sorted(_ARC_KEYS))})",
                            source)
        for req in ("gantry_start_deg", "gantry_stop_deg"):
            if req not in a:
                raise SpecError(f"{where}.{req}", "missing", source)
        kwargs = {}
        for key in ("gantry_start_deg", "gantry_stop_deg", "spacing_deg", "couch_deg", "collimator_deg"):
            if key in a:
                kwargs[key] = _number(a[key], f"{where}.{key}", source)
        if "direction" in a:
            if a["direction"] not in DIRECTIONS:
                raise SpecError(f"{where}.direction", f"must be 'cw' or 'ccw', got {a['direction']!r}", source)
            kwargs["direction"] = a["direction"]
        kwargs["name"] = str(a.get("name", f"arc{n + 1}"))
        try:
            arcs.append(ArcSpec(**kwargs))
        except SpecError as exc:
            raise SpecError(exc.field.replace("arc.", f"{where}."), exc.problem, source) from None
    kwargs = {}
    if "isocentre_mm" in doc:
        iso = doc["isocentre_mm"]
        if not isinstance(iso, list) or len(iso) != 3:
            raise SpecError("isocentre_mm", f"needs [x, y, z] in mm, got {iso!r}", source)
        kwargs["isocentre_mm"] = tuple(_number(x, "isocentre_mm", source) for x in iso)
    for key in ("beamlet_size_mm", "beamlet_margin_mm"):
        if key in doc:
            kwargs[key] = _number(doc[key], key, source)
    try:
        return ArcSet(arcs=tuple(arcs), **kwargs)
    except SpecError as exc:
        raise SpecError(exc.field, exc.problem, source) from None


def arc_set_to_doc(arc_set: ArcSet) -> dict:
    """The arc set as plain JSON data (PLAN.h5 arcs_json, influence input specs, sweep inputs)."""
    iso = arc_set.isocentre_mm
    return {"arcs": [{f.name: getattr(a, f.name) for f in fields(a)} for a in arc_set.arcs],
            "isocentre_mm": None if iso is None else [float(v) for v in iso],
            "beamlet_size_mm": float(arc_set.beamlet_size_mm), "beamlet_margin_mm": float(arc_set.beamlet_margin_mm)}


def arc_set_from_doc(doc: dict) -> ArcSet:
    """The inverse of arc_set_to_doc (SpecError naming arcs_json when the document is malformed)."""
    try:
        return _arc_set_from_doc(doc)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        if isinstance(exc, SpecError):
            raise SpecError(f"arcs_json.{exc.field}", exc.problem) from None
        raise SpecError("arcs_json", f"malformed arc set ({type(exc).__name__}: {exc})") from None


def _arc_set_from_doc(doc: dict) -> ArcSet:
    iso = doc.get("isocentre_mm")
    return ArcSet(arcs=tuple(ArcSpec(**a) for a in doc["arcs"]), isocentre_mm=None if iso is None else tuple(iso),
                  beamlet_size_mm=doc["beamlet_size_mm"], beamlet_margin_mm=doc["beamlet_margin_mm"])


def load_arc_set(path: str | Path) -> ArcSet:
    from simsbrt.io.text_input import read_toml

    return arc_set_from_dict(read_toml(path, "arcs"), str(path))


def _iec_fixed_to_lps(v) -> np.ndarray:
    x_f, y_f, z_f = v
    return np.array([x_f, -z_f, y_f])


@dataclass(frozen=True)
class ControlPoint:
    arc_index: int
    index_in_arc: int
    gantry_deg: float
    couch_deg: float
    collimator_deg: float
    isocentre_mm: tuple[float, float, float]
    sad_mm: float = SAD_MM

    def beam_axes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Unit vectors X_b, Y_b, Z_b (Z_b from isocentre towards the source) in patient LPS."""
        th, ps, ph = (math.radians(a) for a in (self.gantry_deg, self.collimator_deg, self.couch_deg))
        xb = np.array([math.cos(th), 0.0, -math.sin(th)])
        yb = np.array([0.0, 1.0, 0.0])
        zb = np.array([math.sin(th), 0.0, math.cos(th)])
        xb, yb = math.cos(ps) * xb + math.sin(ps) * yb, -math.sin(ps) * xb + math.cos(ps) * yb
        c, s = math.cos(-ph), math.sin(-ph)
        rz = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        return tuple(_iec_fixed_to_lps(rz @ v) for v in (xb, yb, zb))  # type: ignore[return-value]

    @property
    def source_mm(self) -> np.ndarray:
        return np.asarray(self.isocentre_mm) + self.sad_mm * self.beam_axes()[2]

    def project_to_iso_plane(self, points_mm: np.ndarray) -> np.ndarray:
        """Beam's-eye-view (u, v) in mm at the isocentre plane of points (n, 3) (same maths as the kernels)."""
        xb, yb, zb = self.beam_axes()
        rel = np.asarray(points_mm, float) - np.asarray(self.isocentre_mm)
        mag = self.sad_mm / (self.sad_mm - rel @ zb)
        return np.stack([(rel @ xb) * mag, (rel @ yb) * mag], axis=-1)


def control_points(arc_set: ArcSet, isocentre_mm) -> tuple[ControlPoint, ...]:
    iso = tuple(float(x) for x in (arc_set.isocentre_mm if arc_set.isocentre_mm is not None else isocentre_mm))
    cps = []
    for a, arc in enumerate(arc_set.arcs):
        for i, g in enumerate(arc.gantry_angles_deg()):
            cps.append(ControlPoint(a, i, float(g), arc.couch_deg, arc.collimator_deg, iso))
    return tuple(cps)


def structure_centroid_mm(grid, mask: np.ndarray) -> tuple[float, float, float]:
    """Centroid (mm) of a boolean mask's voxel centres: the default isocentre for the PTV."""
    idx = np.argwhere(np.asarray(mask, bool))
    if len(idx) == 0:
        raise SpecError("PTV", "mask is empty; cannot place the isocentre")
    return tuple(float(x) for x in grid.index_to_world_mm(idx.mean(axis=0)))
