"""The dose fall-off from the GTV to the spinal cord PRV: one gradient number per plan (docs/deliverable.md).

    fall-off (Gy/mm) = (GTV D98% - cord PRV D0.03cc) / gap_mm

gap_mm is the smallest distance between a GTV voxel centre and a cord-PRV voxel centre (the thinnest
part of the tissue between them, where the gradient must be steepest). GTV D98% is the GTV's
near-minimum dose (ICRU 83), which in a spine SIB plan lies at the GTV edge facing the cord; cord PRV
D0.03cc is the protocol's cord metric (sib-protocol.md Table 1). So the fall-off is the mean dose
gradient across the gap that the plan must achieve between the two protocol numbers: for a dose that
falls linearly with slope g from the GTV edge to the PRV edge it is g. Spine SBRT needs steep
gradients of about 10 %/mm of the prescription at the cord (physics-and-clinical-facts.md 6.1);
6 Gy/fx x 5 fx = 30 Gy makes 10 %/mm = 3 Gy/mm.

The same function serves fluence and deliverable plans (both on their exact final dose), so the loss
of gradient from the ideal fluence to MLC apertures is the difference of two numbers made alike.
None where either structure is missing or empty, or where they touch (gap 0).
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from simsbrt.evaluate.dvh import compute_dvh

GTV, CORD_PRV = "GTV", "SpinalCord_PRV02"


def smallest_gap_mm(mask_a, mask_b, spacing_mm) -> float:
    """Smallest distance (mm) between a voxel centre of mask_a and one of mask_b (0 where they overlap)."""
    a, b = np.asarray(mask_a, bool), np.asarray(mask_b, bool)
    both = a | b
    lo = [int(np.min(ix)) for ix in np.nonzero(both)]
    hi = [int(np.max(ix)) + 1 for ix in np.nonzero(both)]
    box = tuple(slice(l, h) for l, h in zip(lo, hi))     # every voxel of both lies inside: distances are exact
    if np.any(a[box] & b[box]):
        return 0.0
    distance = ndimage.distance_transform_edt(~b[box], sampling=tuple(float(s) for s in spacing_mm))
    return float(distance[a[box]].min())


def gtv_cord_falloff(dose_gy, structures: dict, grid, gtv: str = GTV, organ: str = CORD_PRV) -> dict | None:
    """The GTV-to-cord-PRV fall-off of a dose (module doc), with its parts; None where undefined."""
    if gtv not in structures or organ not in structures:
        return None
    a, b = np.asarray(structures[gtv], bool), np.asarray(structures[organ], bool)
    if not a.any() or not b.any():
        return None
    gap = smallest_gap_mm(a, b, grid.spacing_mm)
    if gap <= 0.0:
        return None
    voxel_cc = grid.voxel_volume_cc
    d98 = float(compute_dvh(dose_gy, a, voxel_cc, name=gtv).metric("D98%"))
    d003 = float(compute_dvh(dose_gy, b, voxel_cc, name=organ).metric("D0.03cc"))
    return {"gtv_d98_gy": round(d98, 4), "cord_prv_d003cc_gy": round(d003, 4), "gap_mm": round(gap, 3),
            "falloff_gy_per_mm": round((d98 - d003) / gap, 4)}
