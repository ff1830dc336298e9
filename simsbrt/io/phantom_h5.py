"""Phantom HDF5 files (h5py), one per phantom, written atomically.

Layout (schema_version 1):
  root attributes: schema_version (int), simsbrt_version, kind = "phantom", spacing_mm, origin_mm,
                   shape, spec_json (the PhantomSpec as JSON; parse_spec rebuilds it)
  /density                 float32, grid.shape, gzip
  /structures/<NAME>       bool, grid.shape, gzip; attribute order (int) keeps the dict order
A reader refuses a newer schema_version (SchemaError). No pickle.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

import simsbrt
from simsbrt.errors import SchemaError, SimsbrtError
from simsbrt.grid import Grid
from simsbrt.io.atomic import atomic_path

SCHEMA_VERSION = 1
KIND = "phantom"
GZIP_LEVEL = 4


def write_phantom(path, phantom) -> Path:
    import h5py

    target = Path(path)
    with atomic_path(target) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["schema_version"] = np.int64(SCHEMA_VERSION)
            f.attrs["simsbrt_version"] = simsbrt.__version__
            f.attrs["kind"] = KIND
            f.attrs["spacing_mm"] = np.asarray(phantom.grid.spacing_mm, dtype=np.float64)
            f.attrs["origin_mm"] = np.asarray(phantom.grid.origin_mm, dtype=np.float64)
            f.attrs["shape"] = np.asarray(phantom.grid.shape, dtype=np.int64)
            f.attrs["spec_json"] = json.dumps(phantom.spec.to_dict())
            chunks = (min(64, phantom.grid.shape[0]), min(64, phantom.grid.shape[1]), min(16, phantom.grid.shape[2]))
            f.create_dataset("density", data=np.asarray(phantom.density, dtype=np.float32), compression="gzip",
                             compression_opts=GZIP_LEVEL, chunks=chunks, shuffle=True)
            group = f.create_group("structures")
            for order, (name, mask) in enumerate(phantom.structures.items()):
                ds = group.create_dataset(name, data=np.asarray(mask, dtype=bool), compression="gzip",
                                          compression_opts=GZIP_LEVEL, chunks=chunks)
                ds.attrs["order"] = order
    return target


def read_phantom(path):
    """Read a phantom file; refuses files of a newer schema or of another kind (SchemaError)."""
    import h5py

    from simsbrt.phantom.model import Phantom
    from simsbrt.phantom.spec import parse_spec

    p = Path(path)
    if not p.is_file():
        raise SimsbrtError(f"{p}: no such phantom file")
    try:
        f = h5py.File(p, "r")
    except OSError as exc:
        raise SchemaError(f"{p}: not an HDF5 file ({exc})") from None
    with f:
        if "schema_version" not in f.attrs:
            raise SchemaError(f"{p}: no schema_version attribute; not a simsbrt file")
        version = int(f.attrs["schema_version"])
        if version > SCHEMA_VERSION:
            raise SchemaError(f"{p}: schema_version {version} is newer than this simsbrt reads "
                              f"({SCHEMA_VERSION}); upgrade simsbrt")
        if f.attrs.get("kind", KIND) != KIND:
            raise SchemaError(f"{p}: kind {f.attrs['kind']!r} is not a phantom file")
        for key in ("spacing_mm", "origin_mm", "spec_json"):
            if key not in f.attrs:
                raise SchemaError(f"{p}: missing root attribute {key!r}")
        if "density" not in f or "structures" not in f:
            raise SchemaError(f"{p}: missing /density or /structures")
        density = f["density"][...].astype(np.float32, copy=False)
        grid = Grid(density.shape, tuple(float(v) for v in f.attrs["spacing_mm"]),
                    tuple(float(v) for v in f.attrs["origin_mm"]))
        group = f["structures"]
        names = sorted(group, key=lambda n: int(group[n].attrs.get("order", 0)))
        structures = {name: group[name][...].astype(bool, copy=False) for name in names}
        spec = parse_spec(json.loads(f.attrs["spec_json"]), source=str(p))
    for name, mask in structures.items():
        if mask.shape != grid.shape:
            raise SchemaError(f"{p}: /structures/{name} has shape {mask.shape}, expected {grid.shape}")
    return Phantom(grid=grid, density=density, structures=structures, spec=spec)
