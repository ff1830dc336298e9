"""``simsbrt sweep plot``: one metric against one parameter, one line per value of a third column.

Column names are those of results.csv; a name may be given by its last dotted part when that is
unique (``gtv_cord_gap_mm`` for phantom.gtv_cord_gap_mm). Rows without a y value (failed runs,
missing structures) are left out; x is sorted within each line. Written atomically (Agg backend).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from simsbrt.errors import SpecError
from simsbrt.sweep.results import read_table

SUFFIX_UNITS = {"_mm": "mm", "_gy": "Gy", "_deg": "deg", "_cc": "cm3", "_s": "s", "_frac": "fraction"}


@dataclass(frozen=True)
class PlotData:
    x: str                     # resolved column names
    y: str
    by: str | None
    lines: dict                # by value -> (xs tuple, ys tuple), x ascending
    path: Path


def resolve_column(name: str, columns, option: str) -> str:
    if name in columns:
        return name
    matches = [c for c in columns if c.endswith("." + name)]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise SpecError(option, f"{name!r} is ambiguous: {', '.join(matches)}")
    raise SpecError(option, f"no column {name!r} in the table; columns: {', '.join(columns)}")


def column_unit(column: str) -> str:
    """The unit of a results column: inputs and timings by their name's suffix, metrics by their kind."""
    last = column.split(".")[-1]
    for suffix, unit in SUFFIX_UNITS.items():
        if last.endswith(suffix):
            return unit
    metric = column.split(".", 1)[1] if "." in column else ""
    if re.match(r"^(BED6|EQD2_6)_", metric):
        return f"Gy ({metric.split('_')[0].replace('6', '')}, a/b 6)"
    if re.match(r"^D(\d|mean|max|min)", metric):
        return "Gy"
    return ""


def _label(column: str) -> str:
    unit = column_unit(column)
    return f"{column} [{unit}]" if unit else column


def _number(value):
    if isinstance(value, bool) or value is None:
        return None
    return float(value) if isinstance(value, (int, float)) else None


def _matches(value, wanted: str) -> bool:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return float(wanted) == float(value)
        except ValueError:
            return False
    return str(value).lower() == wanted.lower() if isinstance(value, bool) else str(value) == wanted


def plot_sweep(table, x: str, y: str, out, by: str | None = None, title: str | None = None,
               where: dict | None = None) -> PlotData:
    """Draw y against x (one line per value of by) from results.csv or a sweep folder; returns the data.
    where: {column: value text} keeps only the rows with those values (e.g. {"mode": "sib"})."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from simsbrt.io.atomic import atomic_path

    columns, rows = read_table(table)
    x_col, y_col = resolve_column(x, columns, "x"), resolve_column(y, columns, "y")
    by_col = resolve_column(by, columns, "by") if by else None
    filters = {resolve_column(k, columns, "where"): str(v) for k, v in (where or {}).items()}
    rows = [r for r in rows if all(_matches(r.get(c), v) for c, v in filters.items())]
    groups: dict = {}
    for row in rows:
        xv, yv = _number(row.get(x_col)), _number(row.get(y_col))
        if xv is None or yv is None:
            continue
        key = row.get(by_col) if by_col else y_col
        groups.setdefault(key, []).append((xv, yv))
    if not groups:
        raise SpecError("y", f"no row has numbers in both {x_col} and {y_col}")
    lines = {}
    for key in sorted(groups, key=str):
        pts = sorted(groups[key], key=lambda p: p[0])
        lines[key] = (tuple(p[0] for p in pts), tuple(p[1] for p in pts))
    out = Path(out)
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    for key, (xs, ys) in lines.items():
        ax.plot(xs, ys, marker="o", label=f"{by_col.split('.')[-1]} = {key}" if by_col else str(key))
    ax.set_xlabel(_label(x_col))
    ax.set_ylabel(_label(y_col))
    ax.set_title(title or f"{y_col} vs {x_col}")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format=out.suffix.lstrip(".") or "png")
    plt.close(fig)
    return PlotData(x_col, y_col, by_col, lines, out)
