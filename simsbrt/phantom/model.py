"""The Phantom (grid, density, named masks, spec) and build_phantom(spec).

Absent-structure rule: the ten protocol structures (volumes.STRUCTURE_NAMES) are ALWAYS present in
``Phantom.structures``; one that does not exist in the covered anatomy is an all-False mask
(volume 0). Examples: SpinalCord (and SpinalCord_PRV02) are empty when the phantom lies wholly
below the conus (L2 and below, sacrum); ThecalSac (the protocol's "below L2" sac) is empty when the
phantom lies wholly above the L1-L2 disc. Downstream code must check ``phantom.is_empty(name)``
(or volume_cc == 0) before taking a dose statistic; ``centroid_mm`` of an empty structure raises.
"Lungs" is present only when the phantom has lung voxels (T1-T11).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from simsbrt.errors import SimsbrtError, SpecError
from simsbrt.grid import Grid
from simsbrt.phantom.anatomy import build_anatomy
from simsbrt.phantom.density import assemble_density
from simsbrt.phantom.gtv import place_gtv
from simsbrt.phantom.levels import LEVEL_NAMES, level_index
from simsbrt.phantom.spec import PhantomSpec
from simsbrt.phantom.volumes import protocol_structures

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImportedSpec:
    """Stands in for the PhantomSpec of a phantom built outside simsbrt (e.g. imported from DICOM CT +
    RTSTRUCT): its name, where it came from, and a free description. It has no anatomy or GTV fields."""

    name: str
    source: str
    description: str = ""

    def to_dict(self) -> dict:
        return {"name": self.name, "source": self.source, "description": self.description}


@dataclass(frozen=True, eq=False)
class Phantom:
    grid: Grid
    density: np.ndarray            # float32 relative electron density, shape grid.shape
    structures: dict               # name -> bool mask, shape grid.shape
    spec: PhantomSpec | ImportedSpec

    def mask(self, name: str) -> np.ndarray:
        try:
            return self.structures[name]
        except KeyError:
            raise SimsbrtError(f"phantom {self.spec.name!r} has no structure {name!r} "
                               f"(has: {', '.join(self.structures)})") from None

    def volume_cc(self, name: str) -> float:
        return float(np.count_nonzero(self.mask(name))) * self.grid.voxel_volume_cc

    def is_empty(self, name: str) -> bool:
        return name not in self.structures or not self.structures[name].any()

    def centroid_mm(self, name: str) -> tuple[float, float, float]:
        idx = np.argwhere(self.mask(name))
        if idx.size == 0:
            raise SimsbrtError(f"structure {name!r} is empty in phantom {self.spec.name!r}; it has no centroid")
        return tuple(float(v) for v in self.grid.index_to_world_mm(idx.mean(axis=0)))

    def description(self) -> str:
        """One line for figure titles and pages: level and GTV of a generated phantom, or where an imported one came from."""
        spec = self.spec
        if isinstance(spec, ImportedSpec):
            return f"imported from {spec.source}, GTV {self.volume_cc('GTV'):.1f} cm3" if "GTV" in self.structures \
                else f"imported from {spec.source}"
        gtv = spec.gtv
        return (f"{spec.anatomy.level}, GTV {self.volume_cc('GTV'):.1f} cm3 ({', '.join(gtv.sectors)}), "
                f"Bilsky {gtv.bilsky}, {gtv.lesion_type}")

    def summary(self) -> dict:
        return {
            "name": self.spec.name,
            "level": self.spec.anatomy.level if isinstance(self.spec, PhantomSpec) else None,
            "shape": list(self.grid.shape),
            "spacing_mm": list(self.grid.spacing_mm),
            "origin_mm": list(self.grid.origin_mm),
            "structures": {name: {"volume_cc": round(self.volume_cc(name), 4)} for name in self.structures},
        }


def covered_levels(spec: PhantomSpec) -> tuple[str, ...]:
    """The target (and GTV) levels plus levels_above / levels_below, clipped to C2-S5."""
    idx = [level_index(v) for v in spec.gtv_levels] + [level_index(spec.anatomy.level)]
    lo = max(0, min(idx) - spec.anatomy.levels_above)
    hi = min(len(LEVEL_NAMES) - 1, max(idx) + spec.anatomy.levels_below)
    return LEVEL_NAMES[lo: hi + 1]


def build_phantom(spec: PhantomSpec) -> Phantom:
    """Build the voxel phantom the spec describes (deterministic for a given spec and seed)."""
    anatomy = build_anatomy(covered_levels(spec), spec.anatomy.level, spec.grid.spacing_mm)
    gtv = place_gtv(anatomy, spec)
    structures = protocol_structures(anatomy, gtv.mask, gtv.bone, spec)
    ptv = structures["PTV"]
    # z index 0 is the inferior face of the grid, -1 the superior face (LPS: +z superior)
    for face, field in ((ptv[:, :, -1], "anatomy.levels_above"), (ptv[:, :, 0], "anatomy.levels_below")):
        if face.any():
            raise SpecError(field, "the PTV reaches the edge of the grid; cover more levels", spec.name)
    density = assemble_density(anatomy, gtv.bone, gtv.soft, spec.gtv.lesion_type)
    phantom = Phantom(grid=anatomy.grid, density=density, structures=structures, spec=spec)
    log.info("phantom %s: grid %s at %s mm, GTV %.2f cm3", spec.name, anatomy.grid.shape,
             spec.grid.spacing_mm, phantom.volume_cc("GTV"))
    return phantom
