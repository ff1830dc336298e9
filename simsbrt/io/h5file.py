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
    """Open a simsbrt file for reading; SchemaError unless it is of ``kind`` and not newer.

    Whatever the reader inside the ``with`` block meets in a damaged file (a dataset that cannot
    be decompressed, an object of the wrong type, a missing member) becomes a SchemaError naming
    the file; the field checks below name the field as well."""
    import h5py

    p = Path(path)
    if not p.is_file():
        raise SimsbrtError(f"{p}: no such {kind} file")
    try:
        f = h5py.File(p, "r")
    except (OSError, RuntimeError) as exc:
        raise SchemaError(f"{p}: not an HDF5 file ({exc})") from None
    with f:
        try:
            version = attr_int(f, "schema_version", str(p))
            found = f.attrs.get("kind")
        except (OSError, RuntimeError, KeyError) as exc:     # a damaged root object
            raise SchemaError(f"{p}: damaged {kind} file ({type(exc).__name__}: {exc})") from None
        except SchemaError:
            raise SchemaError(f"{p}: no schema_version attribute holding an integer; not a simsbrt file") from None
        if version > schema_version:
            raise SchemaError(f"{p}: schema_version {version} is newer than this simsbrt reads "
                              f"({schema_version}); upgrade simsbrt")
        if version < 1:
            raise SchemaError(f"{p}: invalid schema_version {version}")
        if not isinstance(found, str) or found != kind:
            raise SchemaError(f"{p}: kind {found!r} is not a {kind} file")
        try:
            yield f
        except SimsbrtError:
            raise
        except (OSError, RuntimeError, KeyError, TypeError, ValueError, IndexError, AttributeError,
                RecursionError) as exc:
            raise SchemaError(f"{p}: damaged {kind} file ({type(exc).__name__}: {exc})") from None


# ---------------------------------------------------------------- checked members
def _where(group, source: str, name: str) -> str:
    prefix = group.name.rstrip("/") if getattr(group, "name", "/") not in (None, "/") else ""
    return f"{source}: {prefix}/{name}" if not name.startswith("@") else f"{source}: {prefix}{name}"


def attr(group, key: str, source: str):
    if key not in group.attrs:
        raise SchemaError(f"{_where(group, source, '@' + key)}: missing attribute")
    return group.attrs[key]


def attr_int(group, key: str, source: str) -> int:
    value = attr(group, key, source)
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value[()]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise SchemaError(f"{_where(group, source, '@' + key)}: must be an integer, got {value!r}")
    return int(value)


def attr_str(group, key: str, source: str, choices=None) -> str:
    value = attr(group, key, source)
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if not isinstance(value, str):
        raise SchemaError(f"{_where(group, source, '@' + key)}: must be a string, got {type(value).__name__}")
    if choices is not None and value not in choices:
        raise SchemaError(f"{_where(group, source, '@' + key)}: unknown value {value!r}; expected one of "
                          f"{', '.join(choices)}")
    return value


def attr_json(group, key: str, source: str, expect=dict):
    from simsbrt.io.text_input import parse_json

    return parse_json(attr(group, key, source), key, _where(group, source, "").rstrip("/ :") or source, expect)


def attr_vector(group, key: str, source: str, n: int = 3, low: float | None = None, high: float | None = None,
                unit: str = "") -> tuple:
    value = attr(group, key, source)
    arr = np.asarray(value)
    if arr.dtype.kind not in "iuf" or arr.shape != (n,):
        raise SchemaError(f"{_where(group, source, '@' + key)}: must be {n} numbers, got {value!r}")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)) or (low is not None and arr.min() < low) or (high is not None and arr.max() > high):
        bounds = f" within {low:g}..{high:g}{unit}" if low is not None and high is not None else ""
        raise SchemaError(f"{_where(group, source, '@' + key)}: must be finite{bounds}, got {arr.tolist()}")
    return tuple(float(v) for v in arr)


def dataset(group, name: str, source: str, kinds: str, ndim: int | None = None, shape=None,
            finite: bool = False, low: float | None = None, high: float | None = None) -> np.ndarray:
    """A dataset read whole, checked: numpy dtype kind in ``kinds`` ("f" float, "b" bool, "iu" integer,
    "O"/"S"/"U" strings), rank, shape, finite values and bounds."""
    import h5py

    where = _where(group, source, name)
    if name not in group:
        raise SchemaError(f"{where}: missing")
    obj = group[name]
    if not isinstance(obj, h5py.Dataset):
        raise SchemaError(f"{where}: must be a dataset, not a {type(obj).__name__}")
    if obj.dtype.kind not in kinds:
        raise SchemaError(f"{where}: wrong data type {obj.dtype}")
    if ndim is not None and obj.ndim != ndim:
        raise SchemaError(f"{where}: must have rank {ndim}, has shape {obj.shape}")
    if shape is not None and tuple(obj.shape) != tuple(shape):
        raise SchemaError(f"{where}: has shape {obj.shape}, expected {tuple(shape)}")
    try:
        data = obj[()]
    except OSError as exc:
        raise SchemaError(f"{where}: cannot be read (damaged: {exc})") from None
    if finite or low is not None or high is not None:
        values = np.asarray(data, dtype=np.float64) if data.dtype.kind != "f" else np.asarray(data)
        if finite and values.size and not np.all(np.isfinite(values)):
            raise SchemaError(f"{where}: holds NaN or infinite values")
        if low is not None and values.size and values.min() < low:
            raise SchemaError(f"{where}: values below {low:g} (min {values.min():g})")
        if high is not None and values.size and values.max() > high:
            raise SchemaError(f"{where}: values above {high:g} (max {values.max():g})")
    return data


def group_of(parent, name: str, source: str):
    import h5py

    where = _where(parent, source, name)
    if name not in parent:
        raise SchemaError(f"{where}: missing")
    obj = parent[name]
    if not isinstance(obj, h5py.Group):
        raise SchemaError(f"{where}: must be a group, not a {type(obj).__name__}")
    return obj
