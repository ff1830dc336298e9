"""What the plan viewer embeds: each file's dose, anatomy and DVHs as compact, documented arrays.

Arrays travel as gzip-compressed little-endian bytes in base64, flattened in C order of the
simsbrt grid ``[i, j, k]`` (x, y, z; DICOM LPS: +x patient left, +y posterior, +z superior), so
voxel (i, j, k) is element ``(i * ny + j) * nz + k``:
  - dose: uint16, dose_gy = value x ``scale_gy`` with scale_gy = max dose / 65535 (quantisation
    error at most scale_gy / 2; the page states it);
  - density: uint8, relative electron density = value x ``density_scale``;
  - each structure: the boolean mask packed 8 voxels per byte, most significant bit first
    (numpy.packbits).
DVHs are computed here from the full float dose with simsbrt.evaluate (the curves of
report.dvh_plot), not from the quantised copy. Files of the same phantom share one anatomy record.
"""
from __future__ import annotations

import base64
import gzip
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from simsbrt.errors import SchemaError, SpecError

DOSE_LEVELS = 65535
DENSITY_LEVELS = 255
DVH_POINTS = 240
# outline colours: the project's (report.phantom_plot), then these for structures it does not name
EXTRA_COLOURS = ("#00a0a0", "#a0a000", "#a000a0", "#606060", "#0060c0", "#c06000")


@dataclass(frozen=True, eq=False)
class ViewFile:
    """One file to show: a plan (dose + phantom) or a phantom alone (dose None)."""

    path: Path
    kind: str                 # "plan" | "phantom"
    phantom: object
    dose_gy: np.ndarray | None
    mode: str = ""
    protocol_name: str = ""
    feasible: bool | None = None


def file_kind(path) -> str:
    """The ``kind`` root attribute of a simsbrt HDF5 file (SchemaError if it has none)."""
    import h5py

    p = Path(path)
    if not p.is_file():
        raise SpecError("file", f"{p}: no such file")
    from simsbrt.io.h5file import attr_str

    try:
        with h5py.File(p, "r") as f:
            kind = attr_str(f, "kind", str(p)) if "kind" in f.attrs else None
    except (OSError, RuntimeError) as exc:
        raise SchemaError(f"{p}: not an HDF5 file ({exc})") from None
    if kind not in ("plan", "phantom"):
        raise SchemaError(f"{p}: kind {kind!r}: simsbrt view shows PLAN.h5 and PHANTOM.h5 files")
    return kind


def load_view_file(path) -> ViewFile:
    """Read a PLAN.h5 (from `plan`, `compare`, or planned on an imported DICOM phantom) or a PHANTOM.h5."""
    from simsbrt.io.phantom_h5 import read_phantom
    from simsbrt.io.plan_h5 import read_plan

    p = Path(path)
    if file_kind(p) == "phantom":
        return ViewFile(p, "phantom", read_phantom(p), None)
    plan = read_plan(p)
    return ViewFile(p, "plan", plan.phantom, np.asarray(plan.dose_gy, dtype=np.float32), plan.mode,
                    plan.protocol_name, plan.feasible)


def pack_bytes(data: bytes) -> str:
    """gzip (mtime 0, so the page is reproducible) then base64."""
    return base64.b64encode(gzip.compress(data, compresslevel=6, mtime=0)).decode("ascii")


def quantise(values: np.ndarray, levels: int, dtype) -> tuple[np.ndarray, float]:
    """values ~= q x scale with q in 0..levels (round to nearest); scale = max / levels (1 if max is 0)."""
    top = float(np.max(values)) if values.size else 0.0
    if not np.isfinite(top) or float(np.min(values)) < 0:
        raise SpecError("dose", "must be finite and >= 0 to be shown")
    scale = top / levels if top > 0 else 1.0
    q = np.rint(np.asarray(values, dtype=np.float64) / scale)
    return np.clip(q, 0, levels).astype(dtype), scale


def encode_array(values: np.ndarray, dtype) -> str:
    return pack_bytes(np.ascontiguousarray(values, dtype=np.dtype(dtype).newbyteorder("<")).tobytes())


def structure_colour(name: str, index: int) -> str:
    from simsbrt.report.phantom_plot import STRUCTURE_COLOURS

    return STRUCTURE_COLOURS.get(name, EXTRA_COLOURS[index % len(EXTRA_COLOURS)])


def _anatomy_key(phantom) -> str:
    h = hashlib.sha256(np.ascontiguousarray(phantom.density).tobytes())
    for name, mask in phantom.structures.items():
        h.update(name.encode())
        h.update(np.packbits(mask).tobytes())
    return h.hexdigest()


def anatomy_doc(phantom) -> dict:
    density_q, density_scale = quantise(np.clip(phantom.density, 0, None), DENSITY_LEVELS, np.uint8)
    structures = [{"name": name, "colour": structure_colour(name, n),
                   "volume_cc": round(float(phantom.volume_cc(name)), 3),
                   "bits": pack_bytes(np.packbits(np.asarray(mask, dtype=bool).ravel()).tobytes())}
                  for n, (name, mask) in enumerate(phantom.structures.items()) if np.any(mask)]
    empty = [name for name, mask in phantom.structures.items() if not np.any(mask)]
    return {"name": getattr(phantom.spec, "name", ""), "density": encode_array(density_q, np.uint8),
            "density_scale": density_scale, "structures": structures, "empty_structures": empty}


def dvh_doc(dose_gy, phantom, dose_axis_gy: np.ndarray) -> dict:
    """Cumulative DVH (% of each non-empty structure receiving >= dose) on dose_axis_gy."""
    from simsbrt.report.dvh_plot import cumulative_dvh_percent

    vv = phantom.grid.voxel_volume_cc
    return {name: [round(float(v), 3) for v in cumulative_dvh_percent(dose_gy, mask, vv, dose_axis_gy)]
            for name, mask in phantom.structures.items() if np.any(mask)}


def default_slices(files: list[ViewFile]) -> list[int]:
    """Start at the first plan's GTV centroid (else its dose maximum, else the grid centre)."""
    first = files[0]
    grid = first.phantom.grid
    if "GTV" in first.phantom.structures and not first.phantom.is_empty("GTV"):
        index = np.rint(grid.world_to_index(first.phantom.centroid_mm("GTV"))).astype(int)
    elif first.dose_gy is not None and float(np.max(first.dose_gy)) > 0:
        index = np.array(np.unravel_index(int(np.argmax(first.dose_gy)), grid.shape))
    else:
        index = np.array(grid.shape) // 2
    return [int(np.clip(v, 0, n - 1)) for v, n in zip(index, grid.shape)]


def view_document(files: list[ViewFile], isodose_gy=None) -> dict:
    """The JSON document the page reads (see the module docstring for the array encodings)."""
    from simsbrt.teach.figures import DEFAULT_ISODOSE_GY

    if not files:
        raise SpecError("files", "nothing to show: give at least one PLAN.h5 or PHANTOM.h5")
    grid = files[0].phantom.grid
    for f in files[1:]:
        g = f.phantom.grid
        if g.shape != grid.shape or not (np.allclose(g.spacing_mm, grid.spacing_mm)
                                         and np.allclose(g.origin_mm, grid.origin_mm)):
            raise SpecError("files", f"{f.path}: grid {g.shape} at {g.spacing_mm} mm differs from {files[0].path}'s "
                                     f"{grid.shape} at {grid.spacing_mm} mm; the viewer shows plans on one grid")
    top_gy = max([float(np.max(f.dose_gy)) for f in files if f.dose_gy is not None], default=0.0)
    dose_axis = np.linspace(0.0, max(top_gy * 1.02, 1.0), DVH_POINTS)
    anatomies: dict[str, int] = {}
    anatomy_docs, plans = [], []
    for n, f in enumerate(files):
        key = _anatomy_key(f.phantom)
        if key not in anatomies:
            anatomies[key] = len(anatomy_docs)
            anatomy_docs.append(anatomy_doc(f.phantom))
        plan = {"label": f"{chr(65 + n) if n < 26 else n}: {f.mode or 'phantom'} ({f.path.name})", "file": f.path.name,
                "kind": f.kind, "mode": f.mode, "protocol": f.protocol_name, "feasible": f.feasible,
                "anatomy": anatomies[key], "dose": None}
        if f.dose_gy is not None:
            q, scale = quantise(f.dose_gy, DOSE_LEVELS, np.uint16)
            plan.update(dose=encode_array(q, np.uint16), scale_gy=scale, max_gy=float(np.max(f.dose_gy)),
                        dvh=dvh_doc(f.dose_gy, f.phantom, dose_axis))
        plans.append(plan)
    levels = sorted(float(v) for v in (DEFAULT_ISODOSE_GY if isodose_gy is None else isodose_gy))
    return {"format": "simsbrt-view-1", "shape": list(grid.shape), "spacing_mm": list(grid.spacing_mm),
            "origin_mm": list(grid.origin_mm), "start": default_slices(files), "isodose_gy": levels,
            "dvh_axis_gy": [round(float(v), 4) for v in dose_axis], "anatomies": anatomy_docs, "plans": plans}
