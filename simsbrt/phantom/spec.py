"""Phantom specifications: TOML -> frozen dataclasses, with errors that name the field.

Format (every key except ``anatomy.level``, ``gtv.sectors`` and ``gtv.volume_cc`` is optional)::

    name = "t10_body"
    description = "..."
    seed = 1
    [anatomy]   level = "T10", levels_above = 1, levels_below = 1
    [grid]      spacing_mm = 2.0
    [gtv]       sectors = ["vertebral_body"], volume_cc = 10.0, shape = "ellipsoid" | "lobulated",
                aspect = [1, 1, 1], offset_mm = [0, 0, 0], levels = ["T10"], extraosseous_mm = 0,
                bilsky = "0" | "1a" | "1b" | "1c" | "2" | "3", lesion_type = "lytic" | "mixed" | "blastic"
    [ctv]       method = "consensus" | "margin", margin_mm = 5.0
    [ptv]       margin_lr_mm = 2.0, margin_ap_mm = 2.0, margin_si_mm = 5.0
"""
from __future__ import annotations

import dataclasses
import importlib.resources
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simsbrt.errors import SpecError
from simsbrt.grid import MAX_SPACING_MM, MIN_SPACING_MM
from simsbrt.phantom.levels import LEVEL_NAMES, LEVELS, level_index

SPINE_SECTORS = ("vertebral_body", "left_pedicle", "left_lamina", "spinous_process", "right_lamina",
                 "right_pedicle")
SACRAL_SECTORS = ("sacral_body", "left_ala", "right_ala", "sacral_lamina")
BILSKY_GRADES = ("0", "1a", "1b", "1c", "2", "3")
LESION_TYPES = ("lytic", "mixed", "blastic")
GTV_SHAPES = ("ellipsoid", "lobulated")
CTV_METHODS = ("consensus", "margin")
MAX_LEVELS_AROUND = 4
MAX_EXTRAOSSEOUS_MM = 40.0
MAX_MARGIN_MM = 20.0
MIN_GTV_CC = 0.05          # a few voxels at the finest grid (1 mm); smaller is no GTV
MAX_GTV_CC = 500.0         # above the largest sacral lesions of the cohort (s2_large: 170 cm3)
MIN_ASPECT, MAX_ASPECT = 0.01, 100.0   # relative axis lengths (their ratio is limited to 5 as well)
MAX_OFFSET_MM = 1000.0     # a metre: larger values only overflow (the build refuses a centre outside the grid)


@dataclass(frozen=True)
class AnatomySpec:
    level: str
    levels_above: int = 1
    levels_below: int = 1


@dataclass(frozen=True)
class GridSpec:
    spacing_mm: float = 2.0


@dataclass(frozen=True)
class GtvSpec:
    sectors: tuple[str, ...]
    volume_cc: float
    shape: str = "ellipsoid"
    aspect: tuple[float, float, float] = (1.0, 1.0, 1.0)
    offset_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    levels: tuple[str, ...] = ()          # empty: the target level only
    extraosseous_mm: float = 0.0          # paraspinal / soft-tissue extension beyond the bone
    bilsky: str = "0"
    lesion_type: str = "mixed"


@dataclass(frozen=True)
class CtvSpec:
    method: str = "consensus"
    margin_mm: float = 5.0


@dataclass(frozen=True)
class PtvSpec:
    margin_lr_mm: float = 2.0
    margin_ap_mm: float = 2.0
    margin_si_mm: float = 5.0


@dataclass(frozen=True)
class PhantomSpec:
    name: str
    anatomy: AnatomySpec
    gtv: GtvSpec
    grid: GridSpec = GridSpec()
    ctv: CtvSpec = CtvSpec()
    ptv: PtvSpec = PtvSpec()
    seed: int = 0
    description: str = ""

    @property
    def gtv_levels(self) -> tuple[str, ...]:
        return self.gtv.levels or (self.anatomy.level,)

    def to_dict(self) -> dict:
        """A plain dict that parse_spec turns back into an equal spec (JSON / TOML friendly)."""
        def clean(value):
            if isinstance(value, tuple):
                return [clean(v) for v in value]
            return value
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if dataclasses.is_dataclass(value):
                out[f.name] = {k: clean(v) for k, v in dataclasses.asdict(value).items()}
            else:
                out[f.name] = clean(value)
        return out

    def with_spacing(self, spacing_mm: float) -> "PhantomSpec":
        return parse_spec({**self.to_dict(), "grid": {"spacing_mm": float(spacing_mm)}})


# ---------------------------------------------------------------- parsing helpers
class _Reader:
    """Reads one TOML table, remembers which keys were used, and names fields in errors."""

    def __init__(self, table: Any, prefix: str, source: str | None):
        self.prefix = prefix
        self.source = source
        if not isinstance(table, dict):
            raise self.error("", f"must be a table, got {type(table).__name__}")
        self.table = table
        self.used: set[str] = set()

    def field(self, key: str) -> str:
        return f"{self.prefix}.{key}" if self.prefix and key else (self.prefix or key)

    def error(self, key: str, problem: str) -> SpecError:
        return SpecError(self.field(key), problem, self.source)

    def get(self, key: str, default=dataclasses.MISSING):
        self.used.add(key)
        if key in self.table:
            return self.table[key]
        if default is dataclasses.MISSING:
            raise self.error(key, "is required")
        return default

    def number(self, key, default=dataclasses.MISSING, *, low=None, high=None, low_inclusive=True) -> float:
        value = self.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.error(key, f"must be a finite number, got {value!r}")
        value = float(value)
        if low is not None and (value < low if low_inclusive else value <= low):
            raise self.error(key, f"must be {'>=' if low_inclusive else '>'} {low:g}, got {value:g}")
        if high is not None and value > high:
            raise self.error(key, f"must be <= {high:g}, got {value:g}")
        return value

    def integer(self, key, default=dataclasses.MISSING, *, low=None, high=None) -> int:
        value = self.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, f"must be an integer, got {value!r}")
        if (low is not None and value < low) or (high is not None and value > high):
            raise self.error(key, f"must be between {low} and {high}, got {value}")
        return value

    def choice(self, key, choices, default=dataclasses.MISSING) -> str:
        value = self.get(key, default)
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if value not in choices:
            raise self.error(key, f"unknown value {value!r}; expected one of {', '.join(choices)}")
        return value

    def string(self, key, default=dataclasses.MISSING) -> str:
        value = self.get(key, default)
        if not isinstance(value, str):
            raise self.error(key, f"must be a string, got {value!r}")
        return value

    def vector3(self, key, default, *, positive=False, low=None, high=None) -> tuple[float, float, float]:
        value = self.get(key, default)
        if (not isinstance(value, (list, tuple)) or len(value) != 3
                or any(isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)
                       for v in value)):
            raise self.error(key, f"must be a list of three numbers, got {value!r}")
        if positive and any(v <= 0 for v in value):
            raise self.error(key, f"must be > 0 in every component, got {list(value)}")
        if (low is not None and min(value) < low) or (high is not None and max(value) > high):
            raise self.error(key, f"every component must be within {low:g}..{high:g}, got {list(value)}")
        return tuple(float(v) for v in value)  # type: ignore[return-value]

    def finish(self) -> None:
        unknown = sorted(set(self.table) - self.used)
        if unknown:
            raise self.error(unknown[0], "unknown key" + (f" (also unknown: {', '.join(unknown[1:])})"
                                                          if len(unknown) > 1 else ""))


def _level(reader: _Reader, key: str, value) -> str:
    if not isinstance(value, str) or value not in LEVELS:
        raise reader.error(key, f"unknown level {value!r}; expected one of {LEVEL_NAMES[0]}-{LEVEL_NAMES[-1]} "
                                f"({', '.join(LEVEL_NAMES)})")
    return value


def parse_spec(data: dict, source: str | None = None) -> PhantomSpec:
    """Validate a spec dict (as tomllib returns it) and build the frozen PhantomSpec."""
    root = _Reader(data, "", source)
    name = root.string("name", Path(source).stem if source else "phantom")
    description = root.string("description", "")
    seed = root.integer("seed", 0, low=0, high=2**32 - 1)

    r = _Reader(root.get("anatomy"), "anatomy", source)
    level = _level(r, "level", r.get("level"))
    anatomy = AnatomySpec(level, r.integer("levels_above", 1, low=1, high=MAX_LEVELS_AROUND),
                          r.integer("levels_below", 1, low=1, high=MAX_LEVELS_AROUND))
    r.finish()

    r = _Reader(root.get("grid", {}), "grid", source)
    grid = GridSpec(r.number("spacing_mm", 2.0, low=MIN_SPACING_MM, high=MAX_SPACING_MM))
    r.finish()

    gtv = _parse_gtv(_Reader(root.get("gtv"), "gtv", source), level)

    r = _Reader(root.get("ctv", {}), "ctv", source)
    ctv = CtvSpec(r.choice("method", CTV_METHODS, "consensus"),
                  r.number("margin_mm", 5.0, low=0.0, high=MAX_MARGIN_MM))
    r.finish()

    r = _Reader(root.get("ptv", {}), "ptv", source)
    ptv = PtvSpec(*(r.number(k, d, low=0.0, high=MAX_MARGIN_MM)
                    for k, d in (("margin_lr_mm", 2.0), ("margin_ap_mm", 2.0), ("margin_si_mm", 5.0))))
    r.finish()
    root.finish()
    return PhantomSpec(name=name, anatomy=anatomy, gtv=gtv, grid=grid, ctv=ctv, ptv=ptv, seed=seed,
                       description=description)


def _parse_gtv(r: _Reader, level: str) -> GtvSpec:
    region_is_sacral = LEVELS[level].region == "sacral"
    allowed = SACRAL_SECTORS if region_is_sacral else SPINE_SECTORS
    sectors = r.get("sectors")
    if isinstance(sectors, str):
        sectors = [sectors]
    if not isinstance(sectors, list) or not sectors:
        raise r.error("sectors", f"must be a non-empty list of sector names, got {sectors!r}")
    for s in sectors:
        if s not in allowed:
            raise r.error("sectors", f"unknown sector {s!r} at {level} ({LEVELS[level].region}); "
                                     f"expected one of {', '.join(allowed)}")
    if len(set(sectors)) != len(sectors):
        raise r.error("sectors", f"lists a sector twice: {sectors}")
    volume = r.number("volume_cc", low=0.0, low_inclusive=False, high=MAX_GTV_CC)
    if volume < MIN_GTV_CC:
        raise r.error("volume_cc", f"must be at least {MIN_GTV_CC:g} cm3 (a few voxels), got {volume:g}")
    levels = r.get("levels", [])
    if isinstance(levels, str):
        levels = [levels]
    if not isinstance(levels, list):
        raise r.error("levels", f"must be a list of level names, got {levels!r}")
    levels = [_level(r, "levels", v) for v in levels]
    if levels:
        if level not in levels:
            raise r.error("levels", f"must include the target level {level}, got {levels}")
        idx = sorted(level_index(v) for v in levels)
        if idx != list(range(idx[0], idx[-1] + 1)) or len(set(idx)) != len(idx):
            raise r.error("levels", f"must be adjacent levels without repeats, got {levels}")
        regions = {LEVELS[v].region == "sacral" for v in levels}
        if len(regions) > 1:
            raise r.error("levels", f"cannot mix sacral and mobile-spine levels, got {levels}")
        levels = [LEVEL_NAMES[i] for i in idx]
    gtv = GtvSpec(
        sectors=tuple(sectors),
        volume_cc=volume,
        shape=r.choice("shape", GTV_SHAPES, "ellipsoid"),
        aspect=r.vector3("aspect", (1.0, 1.0, 1.0), positive=True, low=MIN_ASPECT, high=MAX_ASPECT),
        offset_mm=r.vector3("offset_mm", (0.0, 0.0, 0.0), low=-MAX_OFFSET_MM, high=MAX_OFFSET_MM),
        levels=tuple(levels),
        extraosseous_mm=r.number("extraosseous_mm", 0.0, low=0.0, high=MAX_EXTRAOSSEOUS_MM),
        bilsky=r.choice("bilsky", BILSKY_GRADES, "0"),
        lesion_type=r.choice("lesion_type", LESION_TYPES, "mixed"),
    )
    if max(gtv.aspect) / min(gtv.aspect) > 5.0:
        raise r.error("aspect", f"axis ratio above 5 is not supported, got {list(gtv.aspect)}")
    r.finish()
    return gtv


def builtin_names() -> list[str]:
    files = importlib.resources.files("simsbrt.builtin_phantoms")
    return sorted(p.name[:-5] for p in files.iterdir() if p.name.endswith(".toml"))


def load_spec(path_or_name) -> PhantomSpec:
    """Load a TOML spec from a path, or a built-in phantom by name (e.g. ``"t10_body"``)."""
    from simsbrt.io.text_input import parse_toml, read_text_file

    path = Path(path_or_name)
    if path.suffix == ".toml" or path.exists():
        text, source = read_text_file(path, "spec"), str(path)
    else:
        name = str(path_or_name)
        resource = importlib.resources.files("simsbrt.builtin_phantoms").joinpath(f"{name}.toml")
        if not resource.is_file():
            raise SpecError("spec", f"{name!r} is neither a file nor a built-in phantom "
                                    f"({', '.join(builtin_names())})")
        text, source = resource.read_text(), f"{name}.toml"
    return parse_spec(parse_toml(text, "toml", source), source=source)
