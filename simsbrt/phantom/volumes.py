"""Protocol volumes (sib-protocol.md "Structures"): CTV, PTV, PTV_Eval, SpinalCord_PRV02.

Expansions are exact and distance based: one Euclidean distance transform with sampling
spacing_a / M_a (an anisotropically rescaled metric) on a bounding box, never repeated voxel
dilation. Voxel p joins the expansion of mask M when min over q in M of sum(((p - q)_a / M_a)^2) <= 1,
i.e. the ellipsoid with semi-axes M_a between voxel centres is exact.
M_a is the requested margin m_a realised on the grid: the nearest whole number of voxel layers
along that axis (half layers round up; a margin > 0 is never less than one layer):
M_a = s_a * max(1, round_half_up(m_a / s_a)). When m_a is a multiple of the spacing (2 mm at 1 or
2 mm, 5 mm at 1 mm) M_a = m_a exactly. Plain centre-to-centre expansion would instead add
floor(m / s) layers: at 3 mm a 2 mm PRV or PTV margin would vanish and at 2 mm the 5 mm
superior-inferior margin would shrink to 4 mm (PTV ~14 % smaller than at 1 mm); with the rounding,
structure volumes agree across spacings.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from simsbrt.phantom.anatomy import Anatomy

STRUCTURE_NAMES = ("Body", "Vertebrae", "SpinalCanal", "SpinalCord", "SpinalCord_PRV02", "ThecalSac", "GTV",
                   "CTV", "PTV", "PTV_Eval")
OPTIONAL_STRUCTURES = ("Lungs",)
CORD_PRV_MARGIN_MM = 2.0          # sib-protocol.md: cord expanded isotropically by 2 mm
LATERALISED_FRAC = 0.9            # a body GTV with >= 90 % of its voxels on one side is lateralised
_TINY_MARGIN_MM = 1e-3


def effective_margins_mm(spacing_mm, margins_mm) -> tuple[float, ...]:
    """The margins as realised on the grid (module docstring): whole voxel layers, 0 stays 0."""
    return tuple(s * max(1, int(np.floor(m / s + 0.5 + 1e-9))) if m > 0 else 0.0
                 for m, s in zip(margins_mm, spacing_mm))


def expand_mask(mask: np.ndarray, spacing_mm, margins_mm) -> np.ndarray:
    """Ellipsoidal expansion of ``mask`` by per-axis margins (mm), see the module docstring;
    margins of 0 do not expand along that axis."""
    out = mask.copy()
    if not mask.any() or all(m <= 0 for m in margins_mm):
        return out
    margins_mm = effective_margins_mm(spacing_mm, margins_mm)
    pad = [int(np.ceil(m / s)) + 1 for m, s in zip(margins_mm, spacing_mm)]
    sl = ndimage.find_objects(mask.astype(np.uint8))[0]
    sl = tuple(slice(max(0, s.start - p), min(n, s.stop + p)) for s, p, n in zip(sl, pad, mask.shape))
    sampling = [s / max(m, _TINY_MARGIN_MM) for s, m in zip(spacing_mm, margins_mm)]
    dist = ndimage.distance_transform_edt(~mask[sl], sampling=sampling)
    out[sl] = dist <= 1.0 + 1e-9
    return out


# ---------------------------------------------------------------- consensus rules
def consensus_spine_sectors(involved, lateralised_side: str | None = None) -> frozenset:
    """CTV sectors for the GTV's involved sectors at one mobile-spine level.

    ISRC consensus (Cox 2012) as implemented by Brainlab SmartBrush (facts 4.4), applied as a union:
      - every involved sector;
      - body involved: whole body; body + both sides' posterior sectors: all six sectors (donut);
        body + one pedicle (or lamina/TP): that pedicle and the ipsilateral lamina/TP;
        a lateralised body GTV (body only): the ipsilateral pedicle and lamina/TP (Cox [M]);
      - unilateral pedicle: + ipsilateral lamina/TP;
      - spinous process: + both laminae;
      - unilateral lamina/TP: + ipsilateral pedicle + spinous process.
    """
    involved = frozenset(involved)
    ctv = set(involved)
    sides = {side for side in ("left", "right")
             if {f"{side}_pedicle", f"{side}_lamina"} & involved}
    if "vertebral_body" in involved:
        if sides == {"left", "right"}:
            return frozenset(("vertebral_body", "left_pedicle", "left_lamina", "spinous_process", "right_lamina",
                              "right_pedicle"))
        for side in sides or ({lateralised_side} if lateralised_side else set()):
            ctv |= {f"{side}_pedicle", f"{side}_lamina"}
    for side in ("left", "right"):
        if f"{side}_pedicle" in involved:
            ctv.add(f"{side}_lamina")
        if f"{side}_lamina" in involved:
            ctv |= {f"{side}_pedicle", "spinous_process"}
    if "spinous_process" in involved:
        ctv |= {"left_lamina", "right_lamina"}
    return frozenset(ctv)


def consensus_sacral_sectors(involved) -> frozenset:
    """CTV sectors at one involved sacral segment (facts 4.5, as the seed papers apply Dunne 2020):
    the whole involved sacral vertebral body segment, plus the ala and lamina/posterior elements
    that are involved; each sector spans its segment's whole superior-inferior extent, so ala
    disease follows the involved vertebral body in z."""
    involved = frozenset(involved)
    return frozenset(involved | {"sacral_body"}) if involved else frozenset()


def involved_sectors(anatomy: Anatomy, gtv_bone: np.ndarray) -> dict:
    """{level: set of sector names the GTV touches}."""
    from simsbrt.phantom.anatomy import decode_label
    codes = np.unique(anatomy.bone_label[gtv_bone])
    out: dict[str, set] = {}
    for code in codes[codes > 0]:
        level, sector = decode_label(int(code))
        out.setdefault(level, set()).add(sector)
    return out


def lateralised_side(anatomy: Anatomy, gtv_bone: np.ndarray, level: str) -> str | None:
    body = gtv_bone & anatomy.sector_mask(level, "vertebral_body")
    n = int(body.sum())
    if n == 0:
        return None
    x = anatomy.grid.axis_mm(0)[np.nonzero(body)[0]]
    if np.count_nonzero(x > 0) >= LATERALISED_FRAC * n:
        return "left"
    if np.count_nonzero(x < 0) >= LATERALISED_FRAC * n:
        return "right"
    return None


def consensus_ctv(anatomy: Anatomy, gtv: np.ndarray, gtv_bone: np.ndarray) -> np.ndarray:
    from simsbrt.phantom.levels import LEVELS
    ctv = gtv.copy()
    for level, sectors in involved_sectors(anatomy, gtv_bone).items():
        if LEVELS[level].region == "sacral":
            rule = consensus_sacral_sectors(sectors)
        else:
            rule = consensus_spine_sectors(sectors, lateralised_side(anatomy, gtv_bone, level))
        for sector in rule:
            ctv |= anatomy.sector_mask(level, sector)
    return ctv


def margin_ctv(anatomy: Anatomy, gtv: np.ndarray, margin_mm: float) -> np.ndarray:
    """GTV + margin_mm (isotropic, exact), clipped to bone; the GTV itself is always kept."""
    grown = expand_mask(gtv, anatomy.grid.spacing_mm, (margin_mm,) * 3)
    return gtv | (grown & anatomy.bone)


def protocol_structures(anatomy: Anatomy, gtv: np.ndarray, gtv_bone: np.ndarray, spec) -> dict:
    from simsbrt.phantom.levels import LEVELS
    m = anatomy.masks
    spacing = anatomy.grid.spacing_mm
    if spec.ctv.method == "consensus":
        ctv = consensus_ctv(anatomy, gtv, gtv_bone)
    else:
        ctv = margin_ctv(anatomy, gtv, spec.ctv.margin_mm)
    p = spec.ptv
    ptv = expand_mask(ctv, spacing, (p.margin_lr_mm, p.margin_ap_mm, p.margin_si_mm)) & m["body"]
    ptv_eval = ptv & ~m["canal"]
    if LEVELS[spec.anatomy.level].region == "sacral":
        ptv_eval &= ~m["foramina"]            # trial: sacrum, minus the sacral canal and the bony foramina
    prv = expand_mask(m["cord"], spacing, (CORD_PRV_MARGIN_MM,) * 3) & m["body"]
    structures = {
        "Body": m["body"].copy(),
        "Vertebrae": anatomy.bone.copy(),
        "SpinalCanal": m["canal"].copy(),
        "SpinalCord": m["cord"].copy(),
        "SpinalCord_PRV02": prv,
        "ThecalSac": m["thecal_sac"].copy(),
        "GTV": gtv.copy(),
        "CTV": ctv,
        "PTV": ptv,
        "PTV_Eval": ptv_eval,
    }
    if m["lungs"].any():
        structures["Lungs"] = m["lungs"].copy()
    return structures
