"""Analytic voxel anatomy: vertebrae by sector, discs, canal, dural sac, cord, cauda equina, body, lungs.

Every shape is a superellipse cylinder (|dx/a|^p + |dy/b|^p <= 1 between two z planes) evaluated
at voxel centres inside its own bounding box, so the build cost follows the anatomy, not the grid,
and volumes converge without bias as the spacing shrinks. Frame and dimensions: levels.py.
Sectors follow the ISRC numbering (facts 4.4): 1 body, 2 left pedicle, 3 left transverse process
and lamina, 4 spinous process, 5 right lamina/TP, 6 right pedicle; the sacrum has body, left/right
ala (lateral mass) and lamina/posterior elements (facts 4.5).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from simsbrt.grid import Grid
from simsbrt.phantom.levels import (CONUS_BELOW_ENDPLATE_MM, CONUS_LEVEL, CONUS_TAPER_MM, LEVELS, LUNG_LEVELS,
                                    TRACHEA_LEVELS, LevelGeometry, level_index)

SECTOR_CODE = {
    "vertebral_body": 1, "left_pedicle": 2, "left_lamina": 3, "spinous_process": 4, "right_lamina": 5,
    "right_pedicle": 6, "sacral_body": 7, "left_ala": 8, "right_ala": 9, "sacral_lamina": 10,
}
SECTOR_NAME = {v: k for k, v in SECTOR_CODE.items()}
CODES_PER_LEVEL = 16
# Sectors that border the spinal canal (epidural extension starts from these), with the direction
# from the canal towards the sector in the axial plane (x left, y posterior).
CANAL_BORDER_DIRECTION = {
    "vertebral_body": (0.0, -1.0), "sacral_body": (0.0, -1.0),
    "left_pedicle": (1.0, 0.0), "right_pedicle": (-1.0, 0.0),
    "left_lamina": (0.7071, 0.7071), "right_lamina": (-0.7071, 0.7071), "sacral_lamina": (0.0, 1.0),
}
PAD_WITHOUT_NEIGHBOUR_MM = 15.0
GRID_TILE_MM = 6.0       # a common multiple of the spacings 1, 1.5, 2 and 3 mm
GRID_Y_OFFSET_MM = 0.3
TRACHEA_RADIUS_MM = 8.0
CAUDA_CORE_FRAC = 0.5   # cauda equina: a central bundle of half the sac's diameters [assumption]
SACRAL_FORAMEN_RADIUS_MM = (6.3, 5.5, 4.5, 3.5)  # below S1..S4; facts 3.3: first ~13 x 12 mm


def label_code(level: str, sector: str) -> int:
    return level_index(level) * CODES_PER_LEVEL + SECTOR_CODE[sector]


def decode_label(code: int) -> tuple[str, str]:
    from simsbrt.phantom.levels import LEVEL_NAMES
    return LEVEL_NAMES[code // CODES_PER_LEVEL], SECTOR_NAME[code % CODES_PER_LEVEL]


@dataclass(frozen=True)
class Anatomy:
    grid: Grid
    levels: tuple[str, ...]            # covered levels, superior to inferior
    z_centre_mm: dict                  # level -> VB centre z
    bone_label: np.ndarray             # int16: level_index * 16 + sector code, 0 = no bone
    masks: dict = field(default_factory=dict)  # canal, sac, cord, cauda, disc, foramina, body, body_inner,
    # lungs, trachea, thecal_sac

    def vb_z_range_mm(self, level: str) -> tuple[float, float]:
        h = LEVELS[level].vb_height_mm
        return self.z_centre_mm[level] - h / 2, self.z_centre_mm[level] + h / 2

    def sector_mask(self, level: str, sector: str) -> np.ndarray:
        return self.bone_label == label_code(level, sector)

    @property
    def bone(self) -> np.ndarray:
        return self.bone_label > 0


# ---------------------------------------------------------------- layout
def layout_levels(levels: tuple[str, ...], target: str) -> dict:
    """VB centre z (mm) of each level, target at z = 0, stacked with the discs between them."""
    z = {target: 0.0}
    i0 = levels.index(target)
    for i in range(i0 - 1, -1, -1):          # upwards
        lower, upper = LEVELS[levels[i + 1]], LEVELS[levels[i]]
        z[levels[i]] = z[levels[i + 1]] + lower.vb_height_mm / 2 + upper.disc_below_mm + upper.vb_height_mm / 2
    for i in range(i0 + 1, len(levels)):     # downwards
        upper, lower = LEVELS[levels[i - 1]], LEVELS[levels[i]]
        z[levels[i]] = z[levels[i - 1]] - upper.vb_height_mm / 2 - upper.disc_below_mm - lower.vb_height_mm / 2
    return z


def _spinous_tip_y(g: LevelGeometry) -> float:
    r = g.region_geometry
    return g.canal_ap_mm + r.lamina_thickness_mm + r.spinous_length_mm


def body_outline(g: LevelGeometry) -> tuple[float, float, float]:
    """(semi_x, semi_y, centre_y) of the body outline ellipse at a level."""
    r = g.region_geometry
    posterior_skin = _spinous_tip_y(g) + r.posterior_soft_tissue_mm
    return r.body_semi_x_mm, r.body_semi_y_mm, posterior_skin - r.body_semi_y_mm


def grid_for(levels: tuple[str, ...], z_centre: dict, spacing_mm: float, target: str) -> Grid:
    """A grid over the whole body cross-section and the covered levels (+ half a disc, or a pad)."""
    from simsbrt.phantom.levels import LEVEL_NAMES
    top, bottom = LEVELS[levels[0]], LEVELS[levels[-1]]
    i_top = level_index(top.name)
    above_disc = LEVELS[LEVEL_NAMES[i_top - 1]].disc_below_mm if i_top > 0 else 0.0
    pad_top = above_disc / 2 + 2.0 if i_top > 0 else PAD_WITHOUT_NEIGHBOUR_MM
    pad_bottom = bottom.disc_below_mm / 2 + 2.0 if bottom.name != "S5" else PAD_WITHOUT_NEIGHBOUR_MM
    z_hi = z_centre[top.name] + top.vb_height_mm / 2 + pad_top
    z_lo = z_centre[bottom.name] - bottom.vb_height_mm / 2 - pad_bottom
    outlines = [body_outline(LEVELS[n]) for n in levels]
    half_x = max(o[0] for o in outlines) + 6.0
    y_lo = min(o[2] - o[1] for o in outlines) - 6.0
    y_hi = max(o[2] + o[1] for o in outlines) + 6.0
    # Voxel faces tile boxes whose sides are multiples of GRID_TILE_MM (a common multiple of 1, 1.5,
    # 2 and 3 mm), so the covered volume is the same at those spacings. Faces lie on x = 0 (the
    # mid-sagittal plane) and on the target VB's endplates; as all VB and disc heights are even mm
    # (levels.py) every endplate lies on a 1 mm and 2 mm face. In y the faces sit GRID_Y_OFFSET_MM
    # off the canal's anterior wall (y = 0), so no voxel centre lies on that wall (chosen among
    # 0, 0.3, 0.6, 1.0 mm for the best 1 mm / 2 mm volume agreement of the built-in phantoms).
    half_x = GRID_TILE_MM / 2 * np.ceil(2 * half_x / GRID_TILE_MM)
    y0 = GRID_Y_OFFSET_MM - GRID_TILE_MM * np.ceil((GRID_Y_OFFSET_MM - y_lo) / GRID_TILE_MM)
    y1 = y0 + GRID_TILE_MM * np.ceil((y_hi - y0) / GRID_TILE_MM)
    z_anchor = z_centre[target] - LEVELS[target].vb_height_mm / 2
    z0 = z_anchor - GRID_TILE_MM * np.ceil((z_anchor - z_lo) / GRID_TILE_MM)
    z1 = z0 + GRID_TILE_MM * np.ceil((z_hi - z0) / GRID_TILE_MM)
    s = float(spacing_mm)
    lo, hi = np.array([-half_x, y0, z0]), np.array([half_x, y1, z1])
    shape = tuple(int(n) for n in np.maximum(1, np.round((hi - lo) / s)))
    return Grid(shape, (s, s, s), tuple(lo + s / 2))


# ---------------------------------------------------------------- primitives
class _Canvas:
    def __init__(self, grid: Grid):
        self.grid = grid
        self.axes = [grid.axis_mm(a) for a in range(3)]

    def _slice(self, axis: int, lo: float, hi: float) -> slice:
        ax = self.axes[axis]
        i0 = int(np.searchsorted(ax, lo, side="left"))
        i1 = int(np.searchsorted(ax, hi, side="right"))
        return slice(i0, max(i0, i1))

    def box(self, lo, hi):
        """Slices of the voxels whose centres lie in [lo, hi] and their open coordinate arrays."""
        sl = tuple(self._slice(a, lo[a], hi[a]) for a in range(3))
        coords = np.ix_(self.axes[0][sl[0]], self.axes[1][sl[1]], self.axes[2][sl[2]])
        return sl, coords

    def superellipse(self, cx, cy, a, b, z0, z1, p=2.0):
        """(slices, mask) of |x-cx|/a ^p + |y-cy|/b ^p <= 1 for z0 <= z <= z1."""
        if a <= 0 or b <= 0 or z1 < z0:
            return None
        sl, (x, y, z) = self.box((cx - a, cy - b, z0), (cx + a, cy + b, z1))
        inside = (np.abs((x - cx) / a) ** p + np.abs((y - cy) / b) ** p) <= 1.0
        return sl, np.broadcast_to(inside, (x.shape[0], y.shape[1], z.shape[2]))

    def cylinder_y(self, cx, cz, radius, y0, y1):
        """(slices, mask) of a cylinder along y: (x-cx)^2 + (z-cz)^2 <= r^2 for y0 <= y <= y1."""
        sl, (x, y, z) = self.box((cx - radius, y0, cz - radius), (cx + radius, y1, cz + radius))
        inside = ((x - cx) ** 2 + (z - cz) ** 2) <= radius ** 2
        return sl, np.broadcast_to(inside, (x.shape[0], y.shape[1], z.shape[2]))


def _paint(label: np.ndarray, shape, code: int, reserved: np.ndarray | None = None) -> None:
    """Write ``code`` where the shape is inside and nothing was painted before (first come wins)."""
    if shape is None:
        return
    sl, inside = shape
    region = label[sl]
    free = inside & (region == 0)
    if reserved is not None:
        free &= ~reserved[sl]
    region[free] = code


def _or(mask: np.ndarray, shape) -> None:
    if shape is not None:
        sl, inside = shape
        mask[sl] |= inside


# ---------------------------------------------------------------- builders
def _level_at_z(levels, z_centre, z: float) -> LevelGeometry:
    """The level whose segment (VB plus the disc below it) contains z; edge levels extend outwards."""
    for name in levels:
        g = LEVELS[name]
        if z >= z_centre[name] - g.vb_height_mm / 2 - g.disc_below_mm:
            return g
    return LEVELS[levels[-1]]


def _build_canal_contents(canvas, levels, z_centre, masks) -> None:
    zs = canvas.axes[2]
    conus_end_z = None
    if CONUS_LEVEL in z_centre:
        g = LEVELS[CONUS_LEVEL]
        conus_end_z = z_centre[CONUS_LEVEL] - g.vb_height_mm / 2 - CONUS_BELOW_ENDPLATE_MM
    elif level_index(levels[-1]) < level_index(CONUS_LEVEL):
        conus_end_z = -np.inf          # whole phantom above the conus
    else:
        conus_end_z = np.inf           # whole phantom below it
    last = levels[-1]
    below_s5 = z_centre[last] - LEVELS[last].vb_height_mm / 2 if last == "S5" else -np.inf
    for k, z in enumerate(zs):
        if z < below_s5:
            continue
        g = _level_at_z(levels, z_centre, z)
        r = g.region_geometry
        zk = (z - 1e-6, z + 1e-6)
        _or(masks["canal"], canvas.superellipse(0.0, g.canal_ap_mm / 2, g.canal_width_mm / 2, g.canal_ap_mm / 2, *zk))
        if g.sac_present:
            y0, y1 = r.ventral_epidural_mm, g.canal_ap_mm - r.dorsal_epidural_mm
            sac = (0.0, (y0 + y1) / 2, g.canal_width_mm / 2 - r.lateral_epidural_mm, (y1 - y0) / 2)
            _or(masks["sac"], canvas.superellipse(*sac, *zk))
            if z < conus_end_z:
                _or(masks["cauda"], canvas.superellipse(sac[0], sac[1], sac[2] * CAUDA_CORE_FRAC,
                                                        sac[3] * CAUDA_CORE_FRAC, *zk))
        if z >= conus_end_z:
            cord_g = g if g.cord_ap_mm > 0 else LEVELS[CONUS_LEVEL]
            scale = min(1.0, (z - conus_end_z) / CONUS_TAPER_MM) if g.name == CONUS_LEVEL or g.cord_ap_mm == 0 else 1.0
            a, b = cord_g.cord_width_mm / 2 * scale, cord_g.cord_ap_mm / 2 * scale
            gap = cord_g.region_geometry.cord_ventral_gap_mm
            _or(masks["cord"], canvas.superellipse(0.0, gap + cord_g.cord_ap_mm / 2, a, b, *zk))
    masks["cord"] &= masks["canal"]
    masks["sac"] &= masks["canal"]
    # protocol ThecalSac: below the end of the cord (L1-L2 disc), the dural sac; where the
    # anatomical sac has ended (below S2), the bony sacral canal (Dunne 2021, facts 4.5)
    below = zs < conus_end_z
    no_sac = ~masks["sac"].any(axis=(0, 1))
    masks["thecal_sac"][:, :, below & ~no_sac] = masks["sac"][:, :, below & ~no_sac]
    masks["thecal_sac"][:, :, below & no_sac] = masks["canal"][:, :, below & no_sac]


def _build_vertebra(canvas, label, name, zc, reserved) -> None:
    g = LEVELS[name]
    r = g.region_geometry
    h = g.vb_height_mm
    z0, z1 = zc - h / 2, zc + h / 2
    code = {s: label_code(name, s) for s in SECTOR_CODE}
    if g.region == "sacral":
        _build_sacral_segment(canvas, label, g, zc, code, reserved)
        return
    cw, cap = g.canal_width_mm, g.canal_ap_mm
    _paint(label, canvas.superellipse(0.0, -g.vb_depth_mm / 2, g.vb_width_mm / 2, g.vb_depth_mm / 2, z0, z1, 3.0),
           code["vertebral_body"], reserved)
    ph = h * r.pedicle_height_frac
    pz0, pz1 = zc + h / 2 - ph - 1.0, zc + h / 2 - 1.0       # pedicles arise from the upper VB
    p_y0, p_y1 = -5.0, cap * 0.55
    for side, sector in ((1, "left_pedicle"), (-1, "right_pedicle")):
        px = side * (cw / 2 + r.pedicle_width_mm / 2 - 1.0)
        _paint(label, canvas.superellipse(px, (p_y0 + p_y1) / 2, r.pedicle_width_mm / 2 + 1.0, (p_y1 - p_y0) / 2,
                                          pz0, pz1, 6.0), code[sector], reserved)
    # spinous process before the laminae so the midline of the arch belongs to it
    sy0 = cap + r.lamina_thickness_mm * 0.3
    sy1 = cap + r.lamina_thickness_mm + r.spinous_length_mm
    sh = h * r.spinous_height_frac
    _paint(label, canvas.superellipse(0.0, (sy0 + sy1) / 2, r.spinous_width_mm / 2, (sy1 - sy0) / 2,
                                      zc - 0.1 * h - sh / 2, zc - 0.1 * h + sh / 2, 4.0), code["spinous_process"],
           reserved)
    outer = canvas.superellipse(0.0, cap / 2, cw / 2 + r.pedicle_width_mm, cap / 2 + r.lamina_thickness_mm,
                                z0, z1, 2.5)
    if outer is not None:
        sl, inside = outer
        y = canvas.axes[1][sl[1]][None, :, None]
        x = canvas.axes[0][sl[0]][:, None, None]
        posterior = inside & (y >= cap * 0.45)
        _paint(label, (sl, posterior & (x > 0)), code["left_lamina"], reserved)
        _paint(label, (sl, posterior & (x < 0)), code["right_lamina"], reserved)
    t = r.tp_thickness_mm
    ty = cap * r.tp_y_frac
    tz = zc + 0.1 * h
    x_in = cw / 2 + r.pedicle_width_mm * 0.5
    for side, sector in ((1, "left_lamina"), (-1, "right_lamina")):
        cx = side * (x_in + r.tp_reach_mm) / 2
        _paint(label, canvas.superellipse(cx, ty, (r.tp_reach_mm - x_in) / 2, t / 2, tz - t / 2, tz + t / 2, 4.0),
               code[sector], reserved)


def _build_sacral_segment(canvas, label, g, zc, code, reserved) -> None:
    r = g.region_geometry
    h = g.vb_height_mm
    z0, z1 = zc - h / 2, zc + h / 2
    _paint(label, canvas.superellipse(0.0, -g.vb_depth_mm / 2, g.vb_width_mm / 2, g.vb_depth_mm / 2, z0, z1, 3.0),
           code["sacral_body"], reserved)
    lt = r.lamina_thickness_mm
    y0, y1 = -0.8 * g.vb_depth_mm, g.canal_ap_mm + lt
    x_in = g.vb_width_mm / 2 - 3.0
    for side, sector in ((1, "left_ala"), (-1, "right_ala")):
        cx = side * (x_in + g.ala_half_width_mm) / 2
        _paint(label, canvas.superellipse(cx, (y0 + y1) / 2, (g.ala_half_width_mm - x_in) / 2, (y1 - y0) / 2,
                                          z0, z1, 4.0), code[sector], reserved)
    sy1 = g.canal_ap_mm + lt + r.spinous_length_mm
    _paint(label, canvas.superellipse(0.0, (g.canal_ap_mm + sy1) / 2, r.spinous_width_mm / 2,
                                      (sy1 - g.canal_ap_mm) / 2, zc - h / 4, zc + h / 4, 4.0), code["sacral_lamina"],
           reserved)
    outer = canvas.superellipse(0.0, g.canal_ap_mm / 2, g.canal_width_mm / 2 + lt, g.canal_ap_mm / 2 + lt, z0, z1, 2.5)
    if outer is not None:
        sl, inside = outer
        y = canvas.axes[1][sl[1]][None, :, None]
        _paint(label, (sl, inside & (y >= g.canal_ap_mm * 0.3)), code["sacral_lamina"], reserved)


def _build_sacral_foramina(canvas, levels, z_centre, foramina) -> None:
    for i, name in enumerate(("S1", "S2", "S3", "S4")):
        if name not in z_centre:
            continue
        g = LEVELS[name]
        radius = SACRAL_FORAMEN_RADIUS_MM[i]
        zf = z_centre[name] - g.vb_height_mm / 2
        below = LEVELS[f"S{i + 2}"]
        xf = below.vb_width_mm / 2 + radius          # just lateral of the segment body below
        y0, y1 = -0.8 * g.vb_depth_mm - 2.0, g.canal_ap_mm + g.region_geometry.lamina_thickness_mm + 2.0
        for side in (1, -1):
            _or(foramina, canvas.cylinder_y(side * xf, zf, radius, y0, y1))


def _build_discs(canvas, levels, z_centre, disc) -> None:
    for name in levels:
        g = LEVELS[name]
        if g.disc_below_mm <= 0:
            continue
        z1 = z_centre[name] - g.vb_height_mm / 2
        _or(disc, canvas.superellipse(0.0, -g.vb_depth_mm / 2, g.vb_width_mm / 2, g.vb_depth_mm / 2,
                                      z1 - g.disc_below_mm, z1 - 1e-6, 3.0))
    from simsbrt.phantom.levels import LEVEL_NAMES
    i_top = level_index(levels[0])
    if i_top > 0:                      # the disc above the top level (half of it is in the grid)
        g = LEVELS[LEVEL_NAMES[i_top - 1]]
        z0 = z_centre[levels[0]] + LEVELS[levels[0]].vb_height_mm / 2
        _or(disc, canvas.superellipse(0.0, -g.vb_depth_mm / 2, g.vb_width_mm / 2, g.vb_depth_mm / 2,
                                      z0 + 1e-6, z0 + g.disc_below_mm, 3.0))


def _build_body_and_lungs(canvas, levels, z_centre, masks) -> None:
    names = list(levels)
    zc = np.array([z_centre[n] for n in names])[::-1]            # ascending z
    outlines = np.array([body_outline(LEVELS[n]) for n in names])[::-1]
    fats = np.array([LEVELS[n].region_geometry.fat_thickness_mm for n in names])[::-1]
    x = canvas.axes[0][:, None]
    y = canvas.axes[1][None, :]
    for k, z in enumerate(canvas.axes[2]):
        ax, ay, cy = (np.interp(z, zc, outlines[:, j]) for j in range(3))
        fat = np.interp(z, zc, fats)
        masks["body"][:, :, k] = ((x / ax) ** 2 + ((y - cy) / ay) ** 2) <= 1.0
        masks["body_inner"][:, :, k] = ((x / (ax - fat)) ** 2 + ((y - cy) / (ay - fat)) ** 2) <= 1.0
        g = _level_at_z(levels, z_centre, z)
        if g.name in LUNG_LEVELS:
            lx, ly, lcy = ax * 0.48, ay * 0.72, cy + 0.04 * ay
            for side in (1, -1):
                masks["lungs"][:, :, k] |= (((x - side * lx) / (ax * 0.32)) ** 2 + ((y - lcy) / ly) ** 2) <= 1.0
        if g.name in TRACHEA_LEVELS:
            ty = -g.vb_depth_mm - 20.0
            masks["trachea"][:, :, k] = (x ** 2 + (y - ty) ** 2) <= TRACHEA_RADIUS_MM ** 2


def build_anatomy(levels: tuple[str, ...], target: str, spacing_mm: float) -> Anatomy:
    z_centre = layout_levels(levels, target)
    grid = grid_for(levels, z_centre, spacing_mm, target)
    canvas = _Canvas(grid)
    names = ("canal", "sac", "cord", "cauda", "disc", "foramina", "body", "body_inner", "lungs", "trachea",
             "thecal_sac")
    masks = {n: np.zeros(grid.shape, dtype=bool) for n in names}
    _build_canal_contents(canvas, levels, z_centre, masks)
    _build_sacral_foramina(canvas, levels, z_centre, masks["foramina"])
    label = np.zeros(grid.shape, dtype=np.int16)
    reserved = masks["canal"] | masks["foramina"]
    for name in levels:
        _build_vertebra(canvas, label, name, z_centre[name], reserved)
    _build_discs(canvas, levels, z_centre, masks["disc"])
    masks["disc"] &= (label == 0) & ~reserved
    _build_body_and_lungs(canvas, levels, z_centre, masks)
    solid = (label > 0) | masks["canal"] | masks["disc"] | masks["foramina"]
    masks["lungs"] &= masks["body_inner"] & ~solid
    masks["trachea"] &= masks["body_inner"] & ~solid
    masks["lungs"] &= ~masks["trachea"]
    return Anatomy(grid=grid, levels=levels, z_centre_mm=z_centre, bone_label=label, masks=masks)
