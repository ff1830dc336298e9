"""The one checked way to read a text input file (TOML specs, arcs, sweeps, protocols, name maps,
JSON beam models): a regular file of bounded size, UTF-8 (a leading BOM is allowed), no NUL
bytes, parsed without unbounded recursion. Every failure is a SpecError naming the file."""
from __future__ import annotations

import json
import tomllib
from pathlib import Path

from simsbrt.errors import SpecError

MAX_TEXT_BYTES = 4 * 2**20   # no simsbrt input file comes near this; larger is not a spec
MAX_NESTING = 64             # arrays / tables nested deeper than this are refused before parsing


def read_text_file(path, field: str) -> str:
    """The file's text, or a SpecError naming ``field`` and the file."""
    p = Path(path)
    if not p.exists():
        raise SpecError(field, f"no such file: {p}")
    if not p.is_file():
        raise SpecError(field, f"not a regular file: {p}")
    try:
        size = p.stat().st_size
        if size > MAX_TEXT_BYTES:
            raise SpecError(field, f"{size} bytes is too large for a text input (at most {MAX_TEXT_BYTES})", str(p))
        data = p.read_bytes()
    except OSError as exc:
        raise SpecError(field, f"cannot be read: {exc.strerror}", str(p)) from None
    return decode_text(data, field, str(p))


def decode_text(data: bytes, field: str, source: str) -> str:
    if data.startswith(b"\x89HDF"):
        raise SpecError(field, "is an HDF5 file, not a text file", source)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SpecError(field, f"is not UTF-8 text (byte {exc.start}); save it as UTF-8", source) from None
    if "\x00" in text:
        raise SpecError(field, "contains NUL bytes; not a text file", source)
    return text


def _nesting(text: str) -> int:
    """An upper bound of the bracket nesting depth (brackets inside strings counted too)."""
    depth = deepest = 0
    for ch in text:
        if ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth = max(0, depth - 1)
    return deepest


def parse_toml(text: str, field: str, source: str) -> dict:
    if _nesting(text) > MAX_NESTING:
        raise SpecError(field, f"nested deeper than {MAX_NESTING} levels", source)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(field, f"malformed TOML: {exc}", source) from None
    except RecursionError:
        raise SpecError(field, "nested too deeply", source) from None


def read_toml(path, field: str) -> dict:
    """A TOML file as a dict (every check of read_text_file and parse_toml)."""
    return parse_toml(read_text_file(path, field), field, str(path))


def parse_json(text, field: str, source: str, expect=dict):
    """JSON text (str or bytes) as ``expect`` (dict or list), or a SpecError naming the field."""
    from simsbrt.errors import SchemaError

    if isinstance(text, bytes):
        text = decode_text(text, field, source)
    if not isinstance(text, str):
        raise SchemaError(f"{source}: {field}: must be a JSON string, got {type(text).__name__}")
    if _nesting(text) > MAX_NESTING:
        raise SchemaError(f"{source}: {field}: JSON nested deeper than {MAX_NESTING} levels")
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise SchemaError(f"{source}: {field}: invalid JSON ({exc})") from None
    if expect is not None and not isinstance(value, expect):
        raise SchemaError(f"{source}: {field}: must be a JSON {expect.__name__}, got {type(value).__name__}")
    return value


def read_json(path, field: str) -> dict:
    """A JSON object file as a dict; SpecError naming the file and field otherwise."""
    text = read_text_file(path, field)
    if _nesting(text) > MAX_NESTING:
        raise SpecError(field, f"nested deeper than {MAX_NESTING} levels", str(path))
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise SpecError(field, f"invalid JSON ({exc})", str(path)) from None
    if not isinstance(doc, dict):
        raise SpecError(field, f"must be a JSON object, got {type(doc).__name__}", str(path))
    return doc
