"""ROI names in an RTSTRUCT -> simsbrt structure names, through a mapping file (TOML).

The default mapping is package data (``simsbrt/dicom/data/names.toml``); ``--names FILE`` replaces
it. Errors name the mapping file and list every offending ROI name at once.
"""
from __future__ import annotations

import fnmatch
import importlib.resources
from dataclasses import dataclass
from pathlib import Path

from simsbrt.errors import SpecError
from simsbrt.protocols import KNOWN_STRUCTURES
DEFAULT_MAPPING = "simsbrt/dicom/data/names.toml"


@dataclass(frozen=True)
class NameMapping:
    aliases: dict                      # simsbrt name -> tuple of ROI names (as written)
    required: tuple[str, ...]
    ignore: tuple[str, ...]
    source: str

    def structure_of(self, roi_name: str) -> str | None:
        key = roi_name.strip().lower()
        for ours, names in self.aliases.items():
            if any(key == n.strip().lower() for n in names):
                return ours
        return None

    def is_ignored(self, roi_name: str) -> bool:
        return any(fnmatch.fnmatchcase(roi_name.strip().lower(), p.lower()) for p in self.ignore)

    def resolve(self, roi_names, rtstruct_file: str = "RTSTRUCT") -> dict:
        """{ROI name: simsbrt name} for the ROIs to import; SpecError for unknown, duplicate or missing names."""
        mapped, unknown = {}, []
        seen: dict[str, str] = {}
        for roi in roi_names:
            key = roi.strip().lower()
            if key in seen:
                raise SpecError("ROI names", f"two ROIs are named {seen[key]!r} and {roi!r}: the structure set is "
                                             "ambiguous; rename or delete one", rtstruct_file)
            seen[key] = roi
        for roi in roi_names:
            ours = self.structure_of(roi)
            if ours is not None:
                mapped[roi] = ours
            elif not self.is_ignored(roi):
                unknown.append(roi)
        if unknown:
            raise SpecError("ROI names", f"{len(unknown)} name(s) not in the mapping file {self.source}: "
                            f"{', '.join(repr(n) for n in unknown)}; add each under [structures] (as an alias "
                            "of a simsbrt structure) or to 'ignore', and pass the file with --names",
                            rtstruct_file)
        by_structure: dict[str, list[str]] = {}
        for roi, ours in mapped.items():
            by_structure.setdefault(ours, []).append(roi)
        twice = {k: v for k, v in by_structure.items() if len(v) > 1}
        if twice:
            k, v = next(iter(twice.items()))
            raise SpecError("ROI names", f"ROIs {', '.join(repr(n) for n in v)} all map to {k} in {self.source}; "
                            "keep one alias per structure (move the others to 'ignore')", rtstruct_file)
        missing = [s for s in self.required if s not in by_structure]
        if missing:
            raise SpecError("ROI names", f"required structure(s) {', '.join(missing)} not found (ROIs present: "
                            f"{', '.join(repr(n) for n in roi_names) or 'none'}); add the planning system's name "
                            f"as an alias in the mapping file {self.source} and pass it with --names",
                            rtstruct_file)
        return mapped


def _string_list(value, field: str, source: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise SpecError(field, f"must be a list of non-empty strings, got {value!r}", source)
    return tuple(value)


def parse_mapping(doc: dict, source: str) -> NameMapping:
    unknown = sorted(set(doc) - {"required", "ignore", "structures"})
    if unknown:
        raise SpecError(unknown[0], "unknown key (allowed: required, ignore, [structures])", source)
    table = doc.get("structures")
    if not isinstance(table, dict) or not table:
        raise SpecError("structures", "needs a [structures] table: simsbrt name = [ROI names]", source)
    aliases = {}
    for ours, names in table.items():
        if ours not in KNOWN_STRUCTURES:
            raise SpecError(f"structures.{ours}", f"is not a simsbrt structure ({', '.join(KNOWN_STRUCTURES)})",
                            source)
        aliases[ours] = _string_list(names, f"structures.{ours}", source)
    required = _string_list(doc.get("required", []), "required", source) if doc.get("required") else ()
    for name in required:
        if name not in aliases:
            raise SpecError("required", f"{name!r} has no entry under [structures]", source)
    ignore = _string_list(doc.get("ignore", []), "ignore", source) if doc.get("ignore") else ()
    return NameMapping(aliases, required, ignore, source)


def load_mapping(path=None) -> NameMapping:
    """The mapping file at ``path``, or the default one (package data)."""
    from simsbrt.io.text_input import parse_toml, read_text_file

    if path is None:
        text = importlib.resources.files("simsbrt.dicom").joinpath("data/names.toml").read_text()
        source = DEFAULT_MAPPING
    else:
        p = Path(path)
        if not p.is_file():
            raise SpecError("names", f"mapping file not found: {p}")
        text, source = read_text_file(p, "names"), str(p)
    return parse_mapping(parse_toml(text, "names", source), source)
