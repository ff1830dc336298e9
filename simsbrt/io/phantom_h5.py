"""Phantom HDF5 files (h5py), one per phantom, written atomically.

Layout (schema_version 1):
  root attributes: schema_version (int), simsbrt_version, kind = "phantom", spacing_mm, origin_mm,
                   shape, spec_json (the PhantomSpec as JSON; parse_spec rebuilds it), or instead of
                   spec_json for a phantom built outside simsbrt (DICOM import): source_json
                   (phantom.model.ImportedSpec as JSON: name, source, description)
  /density                 float32, grid.shape, gzip
  /structures/<NAME>       bool, grid.shape, gzip; attribute order (int) keeps the dict order
A reader refuses a newer schema_version (SchemaError). No pickle.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from simsbrt.errors import SchemaError
from simsbrt.grid import Grid
from simsbrt.io.h5file import create_h5, open_h5

SCHEMA_VERSION = 1
KIND = "phantom"
GZIP_LEVEL = 4


def write_phantom(path, phantom) -> Path:
    with create_h5(path, KIND, SCHEMA_VERSION) as f:
        write_phantom_group(f, phantom)
    return Path(path)


def write_phantom_group(group, phantom) -> None:
    """Write the phantom layout (grid attributes, spec_json, /density, /structures) into an open h5py
    group (the file root for a phantom file, a sub-group in other files such as PLAN.h5)."""
    group.attrs["spacing_mm"] = np.asarray(phantom.grid.spacing_mm, dtype=np.float64)
    group.attrs["origin_mm"] = np.asarray(phantom.grid.origin_mm, dtype=np.float64)
    group.attrs["shape"] = np.asarray(phantom.grid.shape, dtype=np.int64)
    from simsbrt.phantom.model import ImportedSpec

    key = "source_json" if isinstance(phantom.spec, ImportedSpec) else "spec_json"
    group.attrs[key] = json.dumps(phantom.spec.to_dict())
    chunks = (min(64, phantom.grid.shape[0]), min(64, phantom.grid.shape[1]), min(16, phantom.grid.shape[2]))
    group.create_dataset("density", data=np.asarray(phantom.density, dtype=np.float32), compression="gzip",
                         compression_opts=GZIP_LEVEL, chunks=chunks, shuffle=True)
    structures = group.create_group("structures")
    for order, (name, mask) in enumerate(phantom.structures.items()):
        ds = structures.create_dataset(name, data=np.asarray(mask, dtype=bool), compression="gzip",
                                       compression_opts=GZIP_LEVEL, chunks=chunks)
        ds.attrs["order"] = order


def read_phantom(path):
    """Read a phantom file; refuses files of a newer schema or of another kind (SchemaError)."""
    with open_h5(path, KIND, SCHEMA_VERSION) as f:
        return read_phantom_group(f, str(path))


def read_phantom_group(group, source: str):
    """Read the phantom layout written by write_phantom_group from an open h5py group (SchemaError if incomplete)."""
    from simsbrt.phantom.model import ImportedSpec, Phantom
    from simsbrt.phantom.spec import parse_spec

    for key in ("spacing_mm", "origin_mm"):
        if key not in group.attrs:
            raise SchemaError(f"{source}: missing attribute {key!r}")
    if "spec_json" not in group.attrs and "source_json" not in group.attrs:
        raise SchemaError(f"{source}: missing attribute 'spec_json'")
    if "density" not in group or "structures" not in group:
        raise SchemaError(f"{source}: missing /density or /structures")
    density = group["density"][...].astype(np.float32, copy=False)
    grid = Grid(density.shape, tuple(float(v) for v in group.attrs["spacing_mm"]),
                tuple(float(v) for v in group.attrs["origin_mm"]))
    structs = group["structures"]
    names = sorted(structs, key=lambda n: int(structs[n].attrs.get("order", 0)))
    structures = {name: structs[name][...].astype(bool, copy=False) for name in names}
    if "spec_json" in group.attrs:
        spec = parse_spec(json.loads(group.attrs["spec_json"]), source=source)
    else:
        doc = json.loads(group.attrs["source_json"])
        spec = ImportedSpec(str(doc.get("name", "")), str(doc.get("source", "")), str(doc.get("description", "")))
    for name, mask in structures.items():
        if mask.shape != grid.shape:
            raise SchemaError(f"{source}: /structures/{name} has shape {mask.shape}, expected {grid.shape}")
    return Phantom(grid=grid, density=density, structures=structures, spec=spec)
