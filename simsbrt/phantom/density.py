"""Relative electron density (RED, water = 1) per voxel.

Tissue values: ../shared/reference/physics-and-clinical-facts.md section 3.1 (RED computed from
ICRU-44/46 compositions). Lesion values are assumptions, stated below.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

RED_AIR = 0.001            # facts 3.1: air ~0.001
RED_LUNG = 0.258           # facts 3.1: inflated lung, rho 0.26
RED_ADIPOSE = 0.951        # facts 3.1: ICRU-46 adipose (subcutaneous fat, epidural fat)
RED_MUSCLE = 1.040         # facts 3.1: ICRU-46 skeletal muscle (soft tissue, discs, soft-tissue tumour)
RED_CSF = 1.000            # facts 3.1: CSF ~1.00
RED_CORD = 1.035           # facts 3.1: spinal cord modelled as brain (ICRU-46)
RED_CAUDA = 1.02           # [assumption] cauda equina bundle: about half nerve roots (1.035), half CSF (1.00)
RED_CORTICAL = 1.781       # facts 3.1: ICRU-46 cortical bone
RED_TRABECULAR = 1.15      # facts 3.1: ICRU-46 spongiosa 1.150 (young adult; 1.10-1.15 quoted)
CORTICAL_SHELL_MM = 1.5    # facts 3.1: a 1-2 mm cortical shell around trabecular bone [D/M]

# Lesion RED inside bone (the bony part of the GTV) [assumption]. Basis: the facts' HU anchors
# (section 3.1, matRad lookup inversion) put trabecular bone at ~+230 HU -> 1.15 and cortical bone
# at ~+1530 HU -> 1.781, i.e. ~0.000485 RED per HU between them.
#  - lytic: bone replaced by soft-tissue tumour (~+40 HU, muscle-like) -> 1.04;
#  - blastic: sclerotic bone, typically ~+600 to +1200 HU on CT (general radiology experience, not in
#    the facts file); at ~+800 HU the anchors give 1.15 + 570 * 0.000485 = 1.43;
#  - mixed: half lytic, half blastic -> the mean, 1.24.
# Epidural and paraspinal (extra-osseous) tumour is soft tissue for every type: RED_MUSCLE.
LESION_RED = {"lytic": 1.04, "mixed": 1.24, "blastic": 1.43}


def bone_density(bone: np.ndarray, spacing_mm) -> np.ndarray:
    """RED of bone voxels: trabecular core plus a cortical shell, with partial-volume mixing.

    A voxel whose centre lies a distance d (EDT to the nearest non-bone voxel centre, d >= one
    spacing) inside the bone spans depths of about [d - s, d] below the surface, so the fraction
    of it within the shell is clip((shell - d + s) / s, 0, 1). This keeps the cortical mass about
    the same at every grid spacing instead of a whole-voxel shell.
    """
    out = np.zeros(bone.shape, dtype=np.float32)
    if not bone.any():
        return out
    sl = ndimage.find_objects(bone.astype(np.uint8))[0]
    sl = tuple(slice(max(0, s.start - 1), s.stop + 1) for s in sl)
    sub = bone[sl]
    depth = ndimage.distance_transform_edt(sub, sampling=spacing_mm)
    s = float(np.mean(spacing_mm))
    frac = np.clip((CORTICAL_SHELL_MM - depth + s) / s, 0.0, 1.0)
    red = RED_TRABECULAR + (RED_CORTICAL - RED_TRABECULAR) * frac
    out[sl][sub] = red[sub]
    return out


def assemble_density(anatomy, gtv_bone: np.ndarray, gtv_soft: np.ndarray, lesion_type: str) -> np.ndarray:
    """The RED volume, painted from the outside in (later tissues overwrite earlier ones)."""
    m = anatomy.masks
    density = np.full(anatomy.grid.shape, RED_AIR, dtype=np.float32)
    density[m["body"]] = RED_ADIPOSE
    density[m["body_inner"]] = RED_MUSCLE
    density[m["lungs"]] = RED_LUNG
    density[m["trachea"]] = RED_AIR
    density[m["disc"]] = RED_MUSCLE          # [assumption] disc ~ soft tissue
    density[m["foramina"]] = RED_MUSCLE       # nerve roots and fat in the sacral foramina
    density[m["canal"]] = RED_ADIPOSE         # epidural fat
    density[m["sac"]] = RED_CSF
    density[m["cauda"]] = RED_CAUDA
    density[m["cord"]] = RED_CORD
    bone = anatomy.bone
    density[bone] = bone_density(bone, anatomy.grid.spacing_mm)[bone]
    density[gtv_bone] = LESION_RED[lesion_type]
    density[gtv_soft] = RED_MUSCLE
    return density
