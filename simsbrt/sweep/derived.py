"""Derived sweep parameters: the GTV-to-cord gap (phantom.gtv_cord_gap_mm).

The phantom has no gap field. A requested gap is realised by moving the GTV along AP
(phantom.gtv.offset_mm[1]; +y is posterior, toward the cord for a vertebral-body GTV) and picking
the offset whose built phantom has the requested gap, by bisection on the cheap phantom build.

Gap definition (voxel masks as cubes): the smallest centre-to-centre distance between a GTV voxel
and a SpinalCord voxel (Euclidean distance transform of the cord complement with the grid spacing,
scipy.ndimage.distance_transform_edt) minus one voxel spacing along y, clipped at 0. Two masks that
are face neighbours along AP have gap 0; k empty voxels between them give k x spacing. The gap is
therefore quantised to the grid (multiples of the AP spacing); the realised value is recorded next
to the requested one. A request farther than half an AP voxel from every reachable gap is an error
(GapError) for that point: e.g. a Bilsky 0 vertebral-body GTV cannot come closer to the cord than
the posterior wall allows, and an epidural GTV's canal part does not move with the offset.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simsbrt.errors import SimsbrtError, SpecError

SEARCH_HALF_RANGE_MM = 40.0    # offsets tried: base offset_y +- this (a vertebral body is 20-45 mm deep, facts 3.2)
RESOLUTION_MM = 0.1            # bisection stops when the bracket is this narrow


class GapError(SimsbrtError):
    """The requested GTV-to-cord gap cannot be realised on this phantom."""


@dataclass(frozen=True)
class RealisedGap:
    requested_mm: float
    realised_mm: float
    offset_mm: tuple[float, float, float]


def gtv_cord_gap_mm(phantom) -> float:
    """The GTV-to-SpinalCord gap of a built phantom (definition in the module docstring)."""
    from scipy import ndimage

    cord, gtv = phantom.structures["SpinalCord"], phantom.structures["GTV"]
    if not cord.any():
        raise GapError("the phantom has no SpinalCord at this level (below L1-L2); a GTV-to-cord gap is undefined")
    if not gtv.any():
        raise GapError("the phantom has an empty GTV")
    spacing = phantom.grid.spacing_mm
    distance = ndimage.distance_transform_edt(~cord, sampling=spacing)
    return max(0.0, float(distance[gtv].min()) - float(spacing[1]))


def _gap_at(phantom_doc: dict, offset_y: float):
    """(gap, offset) of the phantom built with the GTV moved to offset_y, or None if it cannot be built."""
    from simsbrt.phantom import build_phantom, parse_spec

    gtv = dict(phantom_doc["gtv"])
    offset = list(gtv.get("offset_mm", (0.0, 0.0, 0.0)))
    offset[1] = float(offset_y)
    gtv["offset_mm"] = offset
    try:
        phantom = build_phantom(parse_spec({**phantom_doc, "gtv": gtv}))
    except SpecError:
        return None
    return gtv_cord_gap_mm(phantom), tuple(float(v) for v in offset)


def realise_gap(phantom_doc: dict, requested_mm: float) -> RealisedGap:
    """Move the GTV along AP until its gap to the cord is the one requested (nearest reachable value)."""
    if not np.isfinite(requested_mm) or requested_mm < 0:
        raise GapError(f"phantom.gtv_cord_gap_mm must be >= 0 mm, got {requested_mm}")
    spacing_y = float(phantom_doc.get("grid", {}).get("spacing_mm", 2.0))
    y0 = float(phantom_doc["gtv"].get("offset_mm", (0.0, 0.0, 0.0))[1])
    lo_y, hi_y = y0 - SEARCH_HALF_RANGE_MM, y0 + SEARCH_HALF_RANGE_MM   # gap falls as y rises
    lo, hi = _buildable_end(phantom_doc, lo_y, y0), _buildable_end(phantom_doc, hi_y, y0)
    if lo is None or hi is None:
        raise GapError("the GTV cannot be built at its base offset, so the gap cannot be set")
    (lo_y, (gap_lo, _)), (hi_y, (gap_hi, _)) = lo, hi
    best: dict = {}
    _remember(best, lo[1], requested_mm, y0)
    _remember(best, hi[1], requested_mm, y0)
    tolerance = spacing_y / 2 + 1e-9
    if requested_mm > gap_lo + tolerance or requested_mm < gap_hi - tolerance:
        raise GapError(f"a GTV-to-cord gap of {requested_mm:g} mm cannot be realised by moving the GTV along AP: "
                       f"this phantom reaches {gap_hi:g}-{gap_lo:g} mm at {spacing_y:g} mm spacing "
                       "(the GTV stays in its sectors and must not touch the cord)")
    # bisection for the AP offset where the gap crosses the request; keep the nearest gap seen
    while hi_y - lo_y > RESOLUTION_MM:
        mid = 0.5 * (lo_y + hi_y)
        got = _gap_at(phantom_doc, mid)
        if got is None:                 # not buildable in between: shrink toward the base offset side
            if mid > y0:
                hi_y = mid
            else:
                lo_y = mid
            continue
        _remember(best, got, requested_mm, y0)
        if got[0] >= requested_mm:
            lo_y = mid
        else:
            hi_y = mid
    gap, offset = best["value"]
    if abs(gap - requested_mm) > tolerance:
        raise GapError(f"a GTV-to-cord gap of {requested_mm:g} mm cannot be realised on the {spacing_y:g} mm grid; "
                       f"the nearest reachable gap is {gap:g} mm")
    return RealisedGap(float(requested_mm), float(gap), offset)


def _remember(best: dict, got, requested_mm: float, base_y: float) -> None:
    """Keep the candidate nearest the request (ties: the larger, safer gap, then the smallest move)."""
    if got is None:
        return
    score = (abs(got[0] - requested_mm), -got[0], abs(got[1][1] - base_y))
    if "score" not in best or score < best["score"]:
        best["score"], best["value"] = score, got


def _buildable_end(phantom_doc: dict, end_y: float, base_y: float):
    """(y, (gap, offset)) at end_y, or the buildable offset nearest to it on the way back to base_y."""
    y = end_y
    for _ in range(12):
        got = _gap_at(phantom_doc, y)
        if got is not None:
            return y, got
        y = 0.5 * (y + base_y)
    got = _gap_at(phantom_doc, base_y)
    return (base_y, got) if got is not None else None
