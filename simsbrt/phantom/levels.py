"""Per-level anatomy dimensions (adult, mm) for the named levels C2-C7, T1-T12, L1-L5, S1-S5.

Sources: ../shared/reference/physics-and-clinical-facts.md section 3.2 (vertebral bodies),
section 3.3 (canal, cord, thecal sac, sacrum). Values between the levels the facts name are
interpolated; the ones marked [assumption] are textbook-typical and not in the facts file.

All vertebral-body and disc heights are whole even millimetres (rounded from the sources) so
that every endplate falls on a voxel face of the 1 mm and 2 mm grids (anatomy.grid_for): volumes
then agree between those spacings instead of gaining or losing a 2 mm layer per endplate.

Phantom frame (see simsbrt.grid for the axes): x = 0 is the mid-sagittal plane, y = 0 is the
posterior wall of the vertebral bodies (= the anterior wall of the spinal canal), z = 0 is the
centre of the target vertebral body. The spine is modelled straight (no kyphosis or lordosis).
"""
from __future__ import annotations

from dataclasses import dataclass

REGIONS = ("cervical", "thoracic", "lumbar", "sacral")


@dataclass(frozen=True)
class RegionGeometry:
    """Dimensions shared by all levels of one region (mm)."""
    pedicle_width_mm: float        # transverse (x) width of one pedicle
    pedicle_height_frac: float     # pedicle height as a fraction of the VB height
    lamina_thickness_mm: float     # thickness of the posterior arch around the canal
    tp_reach_mm: float             # transverse-process tip distance from the midline
    tp_thickness_mm: float         # AP and SI thickness of a transverse process
    tp_y_frac: float               # TP centre y as a fraction of the canal AP depth
    spinous_length_mm: float       # spinous process length behind the lamina
    spinous_width_mm: float
    spinous_height_frac: float     # spinous process SI height as a fraction of VB height
    body_semi_x_mm: float          # body outline semi-axis left-right
    body_semi_y_mm: float          # body outline semi-axis anterior-posterior
    posterior_soft_tissue_mm: float  # skin to spinous-process tip
    fat_thickness_mm: float        # subcutaneous adipose layer
    ventral_epidural_mm: float     # canal wall to dural sac, anterior (facts 3.3: ~1 mm)
    dorsal_epidural_mm: float      # canal wall to dural sac, posterior [assumption]
    lateral_epidural_mm: float     # canal wall to dural sac, left/right [assumption]
    cord_ventral_gap_mm: float     # posterior VB wall to cord surface (facts 3.3: 2-4 mm thoracic)


# Body outlines: cervical 130 x 130, thoracic 320 x 220, lumbar 330 x 230, sacral/pelvic
# 360 x 240 mm (left-right x anterior-posterior), as asked in the issue [assumption, typical adult].
REGION_GEOMETRY = {
    "cervical": RegionGeometry(5.0, 0.55, 5.0, 28.0, 8.0, 0.2, 20.0, 6.0, 0.6, 65.0, 65.0, 20.0, 5.0,
                               1.0, 1.0, 1.5, 2.0),
    "thoracic": RegionGeometry(7.0, 0.55, 7.0, 38.0, 10.0, 0.9, 35.0, 8.0, 0.6, 160.0, 110.0, 30.0, 10.0,
                               1.0, 2.5, 1.5, 3.0),
    "lumbar": RegionGeometry(9.0, 0.55, 9.0, 45.0, 10.0, 0.3, 30.0, 10.0, 0.7, 165.0, 115.0, 40.0, 15.0,
                             1.0, 3.0, 1.5, 3.0),
    "sacral": RegionGeometry(0.0, 0.0, 6.0, 0.0, 0.0, 0.0, 10.0, 8.0, 0.5, 180.0, 120.0, 30.0, 20.0,
                             1.0, 2.0, 1.5, 0.0),
}


@dataclass(frozen=True)
class LevelGeometry:
    name: str
    region: str
    vb_width_mm: float      # vertebral body transverse width
    vb_depth_mm: float      # vertebral body AP depth
    vb_height_mm: float     # vertebral body SI height
    disc_below_mm: float    # height of the intervertebral disc below this level (0 in the sacrum)
    canal_ap_mm: float      # bony canal AP diameter
    canal_width_mm: float   # bony canal transverse diameter
    cord_ap_mm: float       # 0 where the cord has ended (below L1)
    cord_width_mm: float
    sac_present: bool       # anatomical dural sac (ends at S2, facts 3.3 / 4.5)
    ala_half_width_mm: float = 0.0   # sacrum: half the whole sacral width at this segment

    @property
    def region_geometry(self) -> RegionGeometry:
        return REGION_GEOMETRY[self.region]


def _cervical(name, canal_ap, cord_ap, cord_w):
    # VB: CT 24.6 (M) / 23.0 (F) wide, 15-18 deep (facts 3.2); height from dry bone 10-11 mm.
    # Canal transverse 20.4-21.6 mm; sagittal 14.4 (C2) to 12.8 (C4) (facts 3.3, Parihar).
    # Cord AP x transverse: C2 8.8 x 12.4, C4 8.7 x 14.0, C7 7.4 x 11.4 (facts 3.3, Sherman 1990).
    return LevelGeometry(name, "cervical", 24.0, 16.0, 12.0 if name != "C2" else 14.0, 4.0,
                         canal_ap, 21.0, cord_ap, cord_w, True)


def _thoracic(name, w, d, h, canal_ap, canal_w, cord_ap=6.5, cord_w=8.5):
    # Thoracic cord ~6-7 AP x 8-9 transverse (facts 3.3); discs 6 mm [assumption].
    return LevelGeometry(name, "thoracic", w, d, h, 6.0, canal_ap, canal_w, cord_ap, cord_w, True)


def _lumbar(name, w, d, h, cord_ap=0.0, cord_w=0.0):
    # Lumbar VB 40-50 wide, 30-35 deep, 20-30 high (facts 3.2, spinebase). Canal 16 AP x 19
    # transverse: bony canal area ~239 mm2 (facts 3.3: 200 +- 61 mm2, AP 15-27 normal).
    # Discs ~10 mm [assumption].
    return LevelGeometry(name, "lumbar", w, d, h, 10.0, 16.0, 19.0, cord_ap, cord_w, True)


def _sacral(name, w, d, h, canal_ap, canal_w, half_width, sac):
    # Sacrum: whole width 103.6 mm, height 106.7 mm (dry bone); S1 body ~40-45 wide (facts 3.2);
    # sacral canal V-shaped and shrinking caudally; dural sac ends at S2 (facts 3.3/4.5).
    return LevelGeometry(name, "sacral", w, d, h, 0.0, canal_ap, canal_w, 0.0, 0.0, sac, half_width)


LEVELS: dict[str, LevelGeometry] = {g.name: g for g in (
    _cervical("C2", 14.4, 8.8, 12.4),
    _cervical("C3", 13.6, 8.75, 13.2),
    _cervical("C4", 12.8, 8.7, 14.0),
    _cervical("C5", 13.0, 8.3, 13.1),
    _cervical("C6", 13.5, 7.8, 12.3),
    _cervical("C7", 14.0, 7.4, 11.4),
    # T2-T9 dry bone 27.0 wide, 20.8 deep, 17-18 high; T9 ~19-20 high; T10 ~32-38 x 25-30 x 20-22
    # (facts 3.2, interpolated). Canal ~15-16 AP x 17-18 transverse [assumption, issue: 15-20 AP].
    _thoracic("T1", 26.0, 18.0, 16.0, 15.0, 18.0, 7.0, 10.0),
    _thoracic("T2", 27.0, 19.0, 16.0, 15.0, 17.0),
    _thoracic("T3", 27.0, 20.0, 18.0, 15.0, 17.0),
    _thoracic("T4", 27.0, 20.5, 18.0, 15.0, 17.0),
    _thoracic("T5", 27.0, 21.0, 18.0, 15.0, 17.0),
    _thoracic("T6", 28.0, 21.5, 18.0, 15.0, 17.0),
    _thoracic("T7", 28.0, 22.0, 18.0, 15.0, 17.0),
    _thoracic("T8", 29.0, 23.0, 20.0, 15.0, 17.0),
    _thoracic("T9", 31.0, 24.0, 20.0, 15.5, 17.5),
    _thoracic("T10", 34.0, 27.0, 22.0, 16.0, 18.0),
    # lumbar enlargement: ~33 mm circumference (~10.5 mm) at about L1 (facts 3.3)
    _thoracic("T11", 36.0, 28.0, 22.0, 16.0, 19.0, 7.5, 9.5),
    _thoracic("T12", 38.0, 29.0, 24.0, 16.0, 19.0, 8.0, 10.0),
    _lumbar("L1", 42.0, 30.0, 24.0, 8.0, 10.5),   # the cord ends in a conus at the L1-L2 disc
    _lumbar("L2", 44.0, 31.0, 26.0),
    _lumbar("L3", 46.0, 33.0, 26.0),
    _lumbar("L4", 48.0, 34.0, 28.0),
    _lumbar("L5", 49.0, 34.0, 26.0),
    _sacral("S1", 44.0, 30.0, 28.0, 12.0, 28.0, 52.0, True),
    _sacral("S2", 34.0, 22.0, 24.0, 10.0, 22.0, 46.0, True),
    _sacral("S3", 26.0, 17.0, 20.0, 8.0, 16.0, 36.0, False),
    _sacral("S4", 20.0, 13.0, 18.0, 6.0, 12.0, 26.0, False),
    _sacral("S5", 16.0, 10.0, 16.0, 5.0, 10.0, 18.0, False),
)}

LEVEL_NAMES: tuple[str, ...] = tuple(LEVELS)

# The cord's conus ends at the L1-L2 disc (facts 3.3); the taper covers the lower part of L1.
CONUS_LEVEL = "L1"
CONUS_TAPER_MM = 15.0
CONUS_BELOW_ENDPLATE_MM = 4.0   # conus tip 4 mm below the L1 lower endplate (inside the L1-L2 disc)
# The ThecalSac structure (protocol) exists below L2: from the top of L2 to the caudal end of S5,
# continuing as the bony sacral canal below the end of the anatomical sac (Dunne 2021, facts 4.5).
THECAL_SAC_FIRST_LEVEL = "L2"
# Lungs span T1-T11 [assumption: the posterior costophrenic recess reaches about T11-T12].
LUNG_LEVELS = tuple(f"T{i}" for i in range(1, 12))
# Trachea (air) at C-levels down to the carina at about T4 [assumption, textbook].
TRACHEA_LEVELS = ("C2", "C3", "C4", "C5", "C6", "C7", "T1", "T2", "T3", "T4")


def level_index(name: str) -> int:
    return LEVEL_NAMES.index(name)


def neighbours(name: str, above: int, below: int) -> tuple[str, ...]:
    """The levels from ``above`` levels above to ``below`` levels below, clipped to C2-S5."""
    i = level_index(name)
    return LEVEL_NAMES[max(0, i - above): min(len(LEVEL_NAMES), i + below + 1)]
