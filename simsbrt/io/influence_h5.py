"""HDF5 file of an influence matrix (schema 1).

Root attributes: schema_version, simsbrt_version, kind = "influence", backend, device, input_spec
(JSON: what was computed and how). Groups:
  /grid          attributes shape, spacing_mm, origin_mm
  /influence     data (float32, Gy per MU), indices (int32), indptr (int32), voxel_indices (int64,
                 flat C-order grid indices of the rows); attributes n_voxels, n_beamlets, nnz, units
  /beamlets      control_point, k, l (int32), u_mm, v_mm (iso-plane centres); attribute size_mm
  /control_points arc_index, index_in_arc, gantry_deg, couch_deg, collimator_deg, isocentre_mm
  /beam          attribute model_json (the beam model parameters used)
Large datasets are compressed (lzf + shuffle). Files are written atomically. No pickle.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from simsbrt.dose.influence import InfluenceMatrix
from simsbrt.errors import SchemaError
from simsbrt.grid import Grid
from simsbrt.io.h5file import create_h5, open_h5

SCHEMA_VERSION = 1
KIND = "influence"


def _dataset(group, name, data):
    data = np.asarray(data)
    if data.size > 1024:
        return group.create_dataset(name, data=data, compression="lzf", shuffle=True, chunks=True)
    return group.create_dataset(name, data=data)


def write_influence(path, im: InfluenceMatrix, input_spec: dict | None = None, beam=None) -> Path:
    path = Path(path)
    with create_h5(path, KIND, SCHEMA_VERSION, backend=im.backend, device=im.device,
                   input_spec=json.dumps(input_spec or {})) as f:
        g = f.create_group("grid")
        g.attrs["shape"] = np.asarray(im.grid.shape)
        g.attrs["spacing_mm"] = np.asarray(im.grid.spacing_mm)
        g.attrs["origin_mm"] = np.asarray(im.grid.origin_mm)
        inf = f.create_group("influence")
        m = im.full_matrix(keep=False)   # every column's entries, not kept in the (possibly long-lived) matrix
        _dataset(inf, "data", m.data.astype(np.float32, copy=False))
        _dataset(inf, "indices", m.indices.astype(np.int32, copy=False))
        _dataset(inf, "indptr", m.indptr)
        _dataset(inf, "voxel_indices", im.voxel_indices.astype(np.int64, copy=False))
        if im.column_map is not None:
            _dataset(inf, "column_map", np.asarray(im.column_map, dtype=np.int64))
        inf.attrs["n_voxels"] = im.n_voxels
        inf.attrs["n_beamlets"] = im.n_beamlets
        inf.attrs["nnz"] = im.nnz
        inf.attrs["units"] = "Gy per MU (beamlet weight 1 = 1 MU through the beamlet)"
        inf.attrs["timings_json"] = json.dumps(im.timings_s)
        if im.options is not None:
            inf.attrs["options_json"] = json.dumps(vars(im.options) if hasattr(im.options, "__dict__") else {})
        if im.beamlets is not None:
            bl = im.beamlets
            b = f.create_group("beamlets")
            b.attrs["size_mm"] = bl.size_mm
            for key, value in bl.columns().items():
                _dataset(b, key, value)
            c = f.create_group("control_points")
            cps = bl.control_points
            c.create_dataset("arc_index", data=np.array([cp.arc_index for cp in cps], np.int32))
            c.create_dataset("index_in_arc", data=np.array([cp.index_in_arc for cp in cps], np.int32))
            for key in ("gantry_deg", "couch_deg", "collimator_deg"):
                c.create_dataset(key, data=np.array([getattr(cp, key) for cp in cps], float))
            c.create_dataset("isocentre_mm", data=np.array([cp.isocentre_mm for cp in cps], float))
        if beam is not None:
            f.create_group("beam").attrs["model_json"] = json.dumps(beam.to_dict())
    return path


def read_influence(path) -> InfluenceMatrix:
    """Read an influence file; refuses files of another kind or a newer schema."""
    path = Path(path)
    from simsbrt.io.h5file import attr_int, attr_str, attr_vector, dataset, group_of

    src = str(path)
    with open_h5(path, KIND, SCHEMA_VERSION) as f:
        g = group_of(f, "grid", src)
        shape = attr_vector(g, "shape", src, low=1, high=1e5)
        grid = Grid(tuple(int(x) for x in shape), attr_vector(g, "spacing_mm", src, low=1e-3, high=100.0),
                    attr_vector(g, "origin_mm", src, low=-1e4, high=1e4))
        inf = group_of(f, "influence", src)
        n_vox, n_bl = attr_int(inf, "n_voxels", src), attr_int(inf, "n_beamlets", src)
        if not (0 <= n_vox <= grid.n_voxels and 0 <= n_bl < 2**31):
            raise SchemaError(f"{path}: /influence: {n_vox} rows x {n_bl} columns do not fit the grid")
        data = dataset(inf, "data", src, "f", ndim=1, finite=True, low=0.0)
        indices = dataset(inf, "indices", src, "iu", shape=data.shape, low=0, high=max(n_bl - 1, 0))
        indptr = dataset(inf, "indptr", src, "iu", shape=(n_vox + 1,), low=0, high=len(data))
        if len(indptr) and (indptr[0] != 0 or indptr[-1] != len(data) or np.any(np.diff(indptr) < 0)):
            raise SchemaError(f"{path}: /influence/indptr: not a valid row pointer")
        voxels = dataset(inf, "voxel_indices", src, "iu", shape=(n_vox,), low=0, high=grid.n_voxels - 1)
        matrix = sp.csr_matrix((data, indices, indptr), shape=(n_vox, n_bl))
        matrix.has_sorted_indices = False
        beamlets = _read_beamlets(f) if "beamlets" in f else None
        timings = json.loads(inf.attrs.get("timings_json", "{}"))
        column_map = dataset(inf, "column_map", src, "iu", ndim=1) if "column_map" in inf else None
        return InfluenceMatrix(matrix, voxels, grid, attr_str(f, "backend", src), attr_str(f, "device", src),
                               beamlets, None, timings, column_map)


def _read_beamlets(f):
    from simsbrt.geometry.arcs import ControlPoint
    from simsbrt.geometry.beamlets import BeamletGrid, BeamletSet

    c = f["control_points"]
    cps = tuple(ControlPoint(int(a), int(i), float(g), float(co), float(cl), tuple(float(x) for x in iso))
                for a, i, g, co, cl, iso in zip(c["arc_index"][...], c["index_in_arc"][...], c["gantry_deg"][...],
                                                c["couch_deg"][...], c["collimator_deg"][...], c["isocentre_mm"][...]))
    b = f["beamlets"]
    cp_of, ks, ls = b["control_point"][...], b["k"][...], b["l"][...]
    grids = []
    for n in range(len(cps)):
        sel = cp_of == n
        k, l = ks[sel], ls[sel]
        active = np.zeros((k.max() - k.min() + 1, l.max() - l.min() + 1), bool)
        active[k - k.min(), l - l.min()] = True
        grids.append(BeamletGrid(int(k.min()), int(l.min()), active))
    return BeamletSet(float(b.attrs["size_mm"]), cps, tuple(grids))
