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


# what a phantom file may hold (relative electron density: air 0.001, cortical bone 1.78, titanium ~3.7)
MAX_DENSITY = 5.0
MIN_BODY_DENSITY = 0.2           # the median density inside Body: below it the body is air
MAX_ORIGIN_MM = 1.0e4
REQUIRED_STRUCTURES = ("Body", "GTV", "PTV", "PTV_Eval")   # non-empty in every plannable phantom


def read_phantom_group(group, source: str):
    """Read the phantom layout written by write_phantom_group from an open h5py group; SchemaError
    naming the field when a member is missing, of the wrong type or rank, or not physical."""
    from simsbrt.grid import MAX_SPACING_MM, MIN_SPACING_MM
    from simsbrt.io.h5file import attr_json, attr_vector, dataset, group_of
    from simsbrt.phantom.model import ImportedSpec, Phantom
    from simsbrt.phantom.spec import parse_spec

    spacing = attr_vector(group, "spacing_mm", source, low=MIN_SPACING_MM - 1e-6, high=MAX_SPACING_MM + 1e-6,
                          unit=" mm")
    origin = attr_vector(group, "origin_mm", source, low=-MAX_ORIGIN_MM, high=MAX_ORIGIN_MM, unit=" mm")
    if "spec_json" not in group.attrs and "source_json" not in group.attrs:
        raise SchemaError(f"{source}: missing attribute 'spec_json'")
    density = dataset(group, "density", source, "f", ndim=3, finite=True, low=0.0, high=MAX_DENSITY)
    density = density.astype(np.float32, copy=False)
    grid = Grid(density.shape, spacing, origin)
    structs = group_of(group, "structures", source)
    order = {}
    for name in structs:
        value = structs[name].attrs.get("order", 0)
        order[name] = int(value) if isinstance(value, (int, np.integer)) and not isinstance(value, bool) else 0
    names = sorted(structs, key=lambda n: order[n])
    structures = {name: dataset(structs, name, source, "b", shape=grid.shape) for name in names}
    if "spec_json" in group.attrs:
        spec = parse_spec(attr_json(group, "spec_json", source), source=source)
    else:
        doc = attr_json(group, "source_json", source)
        spec = ImportedSpec(str(doc.get("name", "")), str(doc.get("source", "")), str(doc.get("description", "")))
    _check_anatomy(structures, density, source)
    return Phantom(grid=grid, density=density, structures=structures, spec=spec)


def check_phantom(phantom, source: str) -> None:
    """A phantom in memory passes the checks a phantom file passes on reading."""
    density = np.asarray(phantom.density)
    if density.dtype.kind != "f" or not np.all(np.isfinite(density)) or density.min() < 0 \
            or density.max() > MAX_DENSITY:
        raise SchemaError(f"{source}: /density: must be finite within 0..{MAX_DENSITY:g}")
    _check_anatomy(phantom.structures, density, source)


def _check_anatomy(structures: dict, density: np.ndarray, source: str) -> None:
    """Refuse a phantom nobody could plan on: a required structure missing or empty, or a body of air."""
    for name in REQUIRED_STRUCTURES:
        if name not in structures:
            raise SchemaError(f"{source}: /structures/{name}: missing")
        if not structures[name].any():
            raise SchemaError(f"{source}: /structures/{name}: empty (no voxel inside)")
    body_density = float(np.median(density[structures["Body"]]))
    if body_density < MIN_BODY_DENSITY:
        raise SchemaError(f"{source}: /density: median {body_density:.3g} inside Body; a body needs tissue "
                          f"(relative electron density >= {MIN_BODY_DENSITY})")
