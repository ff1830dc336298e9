"""What every simsbrt HDF5 file shares: written atomically with versioned root attributes, and
read only when its kind matches and its schema is not newer than this simsbrt reads."""
from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np

import simsbrt
from simsbrt.errors import SchemaError, SimsbrtError
from simsbrt.io.atomic import atomic_path


@contextlib.contextmanager
def create_h5(path, kind: str, schema_version: int, **attrs):
    """Open a new file for writing (atomically: a temporary file renamed on success) with the
    root attributes schema_version, simsbrt_version, kind and ``attrs``."""
    import h5py

    with atomic_path(Path(path)) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["schema_version"] = np.int64(schema_version)
            f.attrs["simsbrt_version"] = simsbrt.__version__
            f.attrs["kind"] = kind
            for key, value in attrs.items():
                f.attrs[key] = value
            yield f


@contextlib.contextmanager
def open_h5(path, kind: str, schema_version: int):
    """Open a simsbrt file for reading; SchemaError unless it is of ``kind`` and not newer."""
    import h5py

    p = Path(path)
    if not p.is_file():
        raise SimsbrtError(f"{p}: no such {kind} file")
    try:
        f = h5py.File(p, "r")
    except OSError as exc:
        raise SchemaError(f"{p}: not an HDF5 file ({exc})") from None
    with f:
        if "schema_version" not in f.attrs:
            raise SchemaError(f"{p}: no schema_version attribute; not a simsbrt file")
        version = int(f.attrs["schema_version"])
        if version > schema_version:
            raise SchemaError(f"{p}: schema_version {version} is newer than this simsbrt reads "
                              f"({schema_version}); upgrade simsbrt")
        if version < 1:
            raise SchemaError(f"{p}: invalid schema_version {version}")
        if f.attrs.get("kind") != kind:
            raise SchemaError(f"{p}: kind {f.attrs.get('kind')!r} is not a {kind} file")
        yield f
