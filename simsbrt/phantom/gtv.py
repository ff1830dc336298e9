"""GTV placement: by sector, volume, shape and epidural extension (Bilsky grade).

The GTV is the union of
  * an epidural part E inside the spinal canal, fixed by the Bilsky grade (how far the tumour
    reaches toward and around the cord, or the cauda equina below the conus), and
  * a "pool" part: the voxels of the listed host sectors (at the listed levels), plus soft tissue
    within ``extraosseous_mm`` of them, ranked by a shape field f (ellipsoid or seeded lobulated
    level set around a centre). The lowest-f voxels are taken until the total voxel count equals
    round(volume_cc / voxel volume), so the built volume is within half a voxel of the request at
    any spacing (much tighter than the 5 % the issue asks for, once the GTV spans ~10 voxels).
Bilsky model in the rigid phantom (c = distance to the cord surface, w = depth into the canal,
arc = half-angle around the cord centre, centred on the host sector's side):
  1a: arc 60 deg, the outer third of the space (2 w <= c; on coarse grids at least the first voxel
      layer inside the canal wall, not touching the cord): epidural, sac not deformed;
  1b: arc 60 deg, c > max(2 mm, spacing): into the sac, not abutting the cord;
  1c: arc 45 deg, up to the cord surface (abutting, no overlap);
  2 : arc 100 deg, up to the cord surface (around the cord, CSF still visible elsewhere);
  3 : the whole canal around the cord at the host level (no CSF visible).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from simsbrt.errors import SpecError
from simsbrt.phantom.anatomy import CANAL_BORDER_DIRECTION, Anatomy

BILSKY_RULES = {  # grade: (half-arc deg, rule)
    "1a": (60.0, "outer_third"), "1b": (60.0, "clear_of_cord"), "1c": (45.0, "abut"),
    "2": (100.0, "abut"), "3": (180.0, "abut"),
}
N_LOBES = 6


@dataclass(frozen=True)
class GtvResult:
    mask: np.ndarray        # the whole GTV
    bone: np.ndarray        # the part inside bone (takes the lesion density)
    soft: np.ndarray        # epidural and paraspinal parts (soft-tissue tumour)
    centre_mm: tuple[float, float, float]


def _bbox(mask: np.ndarray, pad_vox=(0, 0, 0)) -> tuple[slice, ...]:
    sl = ndimage.find_objects(mask.astype(np.uint8))[0]
    return tuple(slice(max(0, s.start - p), min(n, s.stop + p)) for s, p, n in zip(sl, pad_vox, mask.shape))


def _centroid_mm(grid, mask) -> np.ndarray:
    idx = np.argwhere(mask)
    return grid.index_to_world_mm(idx.mean(axis=0))


def _host_pool(anatomy: Anatomy, spec) -> np.ndarray:
    pool = np.zeros(anatomy.grid.shape, dtype=bool)
    for level in spec.gtv_levels:
        for sector in spec.gtv.sectors:
            pool |= anatomy.sector_mask(level, sector)
    return pool


def _extraosseous(anatomy: Anatomy, host: np.ndarray, reach_mm: float) -> np.ndarray:
    """Soft tissue within reach_mm of the host bone (not canal, lung, trachea or other bone)."""
    grid = anatomy.grid
    m = anatomy.masks
    pad = tuple(int(np.ceil(reach_mm / s)) + 1 for s in grid.spacing_mm)
    sl = _bbox(host, pad)
    dist = ndimage.distance_transform_edt(~host[sl], sampling=grid.spacing_mm)
    soft = m["body_inner"][sl] & ~m["canal"][sl] & ~m["lungs"][sl] & ~m["trachea"][sl] & ~anatomy.bone[sl]
    out = np.zeros(grid.shape, dtype=bool)
    out[sl] = (dist <= reach_mm) & soft
    return out


def _epidural(anatomy: Anatomy, spec) -> np.ndarray:
    """The epidural part E for the spec's Bilsky grade (empty for grade 0)."""
    grid = anatomy.grid
    out = np.zeros(grid.shape, dtype=bool)
    grade = spec.gtv.bilsky
    if grade == "0":
        return out
    host = next((s for s in spec.gtv.sectors if s in CANAL_BORDER_DIRECTION), None)
    if host is None:
        raise SpecError("gtv.bilsky", f"grade {grade} needs a sector that borders the spinal canal; "
                                      f"{', '.join(spec.gtv.sectors)} do not", spec_source(spec))
    level = spec.anatomy.level
    z0, z1 = anatomy.vb_z_range_mm(level)
    zs = grid.axis_mm(2)
    slab = (zs >= z0 + 0.05 * (z1 - z0)) & (zs <= z1 - 0.05 * (z1 - z0))
    canal = anatomy.masks["canal"].copy()
    canal[:, :, ~slab] = False
    if not canal.any():
        raise SpecError("gtv.bilsky", f"no spinal canal at {level}", spec_source(spec))
    neural = anatomy.masks["cord"] & canal
    if not neural.any():
        neural = anatomy.masks["cauda"] & canal
    half_arc, rule = BILSKY_RULES[grade]
    if not neural.any() and grade != "1a":
        raise SpecError("gtv.bilsky", f"grade {grade} needs a cord or thecal sac at {level}; "
                                      f"only 0 or 1a are possible there", spec_source(spec))
    pad = tuple(int(np.ceil(4.0 / s)) + 1 for s in grid.spacing_mm)
    sl = _bbox(canal, pad)
    sub_canal = canal[sl]
    w = ndimage.distance_transform_edt(anatomy.masks["canal"][sl], sampling=grid.spacing_mm)
    x = grid.axis_mm(0)[sl[0]][:, None, None]
    y = grid.axis_mm(1)[sl[1]][None, :, None]
    if neural.any():
        sub_neural = neural[sl]
        c = ndimage.distance_transform_edt(~sub_neural, sampling=grid.spacing_mm)
        cx, cy, _ = _centroid_mm(grid, neural)
    else:
        sub_neural = np.zeros_like(sub_canal)
        c = np.full(sub_canal.shape, np.inf)
        cx, cy, _ = _centroid_mm(grid, canal)
    dx, dy = CANAL_BORDER_DIRECTION[host]
    rx, ry = x - cx, y - cy
    norm = np.hypot(rx, ry)
    cos_angle = np.where(norm > 0, (rx * dx + ry * dy) / np.maximum(norm, 1e-9), 1.0)
    in_arc = cos_angle >= np.cos(np.radians(half_arc)) - 1e-9
    region = sub_canal & ~sub_neural & in_arc & ~anatomy.masks["cord"][sl]
    if rule == "outer_third":
        # the outer third of the wall-to-cord space; on coarse grids at least the first voxel layer
        # inside the canal wall, as long as it does not touch the cord / cauda
        s_max = max(grid.spacing_mm)
        first_layer = (w <= max(2.0, s_max) + 1e-6) & (c > s_max * 1.01)
        region &= ((2.0 * w <= c) | first_layer) if neural.any() else (w <= max(2.0, s_max) + 1e-6)
    elif rule == "clear_of_cord":
        region &= c > max(2.0, max(grid.spacing_mm)) + 1e-6
    out[sl] = region
    if not out.any():
        raise SpecError("gtv.bilsky", f"grade {grade} leaves no epidural voxels at {level} on a "
                                      f"{grid.spacing_mm[0]:g} mm grid", spec_source(spec))
    if rule == "abut":
        touching = ndimage.binary_dilation(sub_neural) & region
        if not touching.any():
            raise SpecError("gtv.bilsky", f"grade {grade} could not reach the cord at {level}", spec_source(spec))
    return out


def spec_source(spec) -> str | None:
    return f"{spec.name}" if spec.name else None


def _shape_field(grid, sl, centre, spec) -> np.ndarray:
    """f(p): anisotropic distance from the centre, divided by a seeded lobe factor (lobulated)."""
    aspect = np.asarray(spec.gtv.aspect, dtype=float)
    aspect = aspect / np.prod(aspect) ** (1 / 3)
    q = [(grid.axis_mm(a)[sl[a]] - centre[a]) / aspect[a] for a in range(3)]
    qx, qy, qz = q[0][:, None, None], q[1][None, :, None], q[2][None, None, :]
    r = np.sqrt(qx ** 2 + qy ** 2 + qz ** 2)
    if spec.gtv.shape == "lobulated":
        rng = np.random.default_rng(spec.seed)
        dirs = rng.normal(size=(N_LOBES, 3))
        dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
        amps = rng.uniform(0.3, 0.7, size=N_LOBES)
        safe = np.maximum(r, 1e-9)
        lobes = np.ones(r.shape)
        for d, a in zip(dirs, amps):
            u_dot = (qx * d[0] + qy * d[1] + qz * d[2]) / safe
            lobes = lobes + a * np.maximum(u_dot, 0.0) ** 3
        r = r / lobes
    return r


def _inside(grid, mask, point_mm) -> bool:
    idx = np.round(grid.world_to_index(point_mm)).astype(int)
    return grid.contains_index(idx) and bool(mask[tuple(idx)])


def _default_centre(grid, host, sector_centroids) -> np.ndarray:
    """The mean of the listed sectors' centroids (so every sector is near); if that falls outside
    the host bone (e.g. in the canal, for a ring of sectors), the host's volume centroid; if that is
    outside too, the host voxel nearest to it."""
    if sector_centroids:
        centre = np.mean(sector_centroids, axis=0)
        if _inside(grid, host, centre):
            return centre
    centre = _centroid_mm(grid, host)
    if _inside(grid, host, centre):
        return centre
    pts = grid.index_to_world_mm(np.argwhere(host))
    return pts[np.argmin(np.sum((pts - centre) ** 2, axis=1))]


def place_gtv(anatomy: Anatomy, spec) -> GtvResult:
    grid = anatomy.grid
    source = spec_source(spec)
    g = spec.gtv
    host = _host_pool(anatomy, spec)
    if not host.any():
        raise SpecError("gtv.sectors", f"{', '.join(g.sectors)} hold no voxels at {', '.join(spec.gtv_levels)}", source)
    pool = host.copy()
    if g.extraosseous_mm > 0:
        pool |= _extraosseous(anatomy, host, g.extraosseous_mm)
    epidural = _epidural(anatomy, spec)
    pool &= ~epidural

    n_total = int(round(g.volume_cc / grid.voxel_volume_cc))
    n_epidural = int(epidural.sum())
    capacity_cc = (int(pool.sum()) + n_epidural) * grid.voxel_volume_cc
    if n_total > pool.sum() + n_epidural:
        raise SpecError("gtv.volume_cc", f"{g.volume_cc:g} cm3 does not fit: sectors {', '.join(g.sectors)} at "
                                         f"{', '.join(spec.gtv_levels)} (with extraosseous_mm = {g.extraosseous_mm:g}"
                                         f" and Bilsky {g.bilsky}) hold at most {capacity_cc:.1f} cm3; "
                                         f"add sectors, gtv.levels or gtv.extraosseous_mm", source)
    if n_total < max(1, n_epidural):
        raise SpecError("gtv.volume_cc", f"{g.volume_cc:g} cm3 is smaller than the epidural part of Bilsky "
                                         f"{g.bilsky} ({n_epidural * grid.voxel_volume_cc:.2f} cm3) or one voxel",
                        source)
    n_pool = n_total - n_epidural

    target_level = spec.anatomy.level
    centroids = [_centroid_mm(grid, anatomy.sector_mask(target_level, s)) for s in g.sectors
                 if anatomy.sector_mask(target_level, s).any()]
    centre = _default_centre(grid, host, centroids)
    if n_epidural and n_pool:
        e_centre = _centroid_mm(grid, epidural)
        r_est = (3.0 * n_pool * grid.voxel_volume_cc * 1000.0 / (4.0 * np.pi)) ** (1 / 3)
        d = e_centre - centre
        dist = float(np.linalg.norm(d))
        if dist > 0.8 * r_est:
            centre = centre + d * (dist - 0.8 * r_est) / dist
    centre = centre + np.asarray(g.offset_mm)
    idx = np.round(grid.world_to_index(centre)).astype(int)
    if not grid.contains_index(idx):
        raise SpecError("gtv.offset_mm", f"the GTV centre {np.round(centre, 1).tolist()} mm lies outside the grid "
                                         f"(x {grid.axis_mm(0)[0]:.0f}..{grid.axis_mm(0)[-1]:.0f}, "
                                         f"y {grid.axis_mm(1)[0]:.0f}..{grid.axis_mm(1)[-1]:.0f}, "
                                         f"z {grid.axis_mm(2)[0]:.0f}..{grid.axis_mm(2)[-1]:.0f})", source)
    if anatomy.masks["cord"][tuple(idx)]:
        raise SpecError("gtv.offset_mm", "the GTV centre lies inside the SpinalCord; a GTV must not overlap "
                                         "the cord", source)

    bone_part = np.zeros(grid.shape, dtype=bool)
    if n_pool > 0:
        sl = _bbox(pool)
        f = _shape_field(grid, sl, centre, spec)
        sub_pool = pool[sl]
        values = f[sub_pool]
        chosen = np.argsort(values, kind="stable")[:n_pool]
        picked = np.zeros(values.shape, dtype=bool)
        picked[chosen] = True
        sub = np.zeros(sub_pool.shape, dtype=bool)
        sub[sub_pool] = picked
        bone_part[sl] = sub
    mask = bone_part | epidural
    if mask[anatomy.masks["cord"]].any():
        raise SpecError("gtv", "the GTV overlaps the SpinalCord", source)
    _check_inside_grid(mask, source)
    _check_sectors_touched(anatomy, spec, bone_part, source)
    if n_epidural and n_pool and not (ndimage.binary_dilation(bone_part) & epidural).any():
        raise SpecError("gtv.volume_cc", f"{g.volume_cc:g} cm3 is too small for the bony GTV to reach the "
                                         f"canal (Bilsky {g.bilsky}); raise the volume or move gtv.offset_mm", source)
    return GtvResult(mask=mask, bone=bone_part & anatomy.bone, soft=mask & ~anatomy.bone,
                     centre_mm=tuple(float(v) for v in centre))


def _check_inside_grid(mask: np.ndarray, source) -> None:
    faces = (mask[0], mask[-1], mask[:, 0], mask[:, -1], mask[:, :, 0], mask[:, :, -1])
    if any(face.any() for face in faces):
        raise SpecError("gtv", "the GTV reaches the edge of the grid; add anatomy.levels_above/below or "
                               "reduce gtv.extraosseous_mm", source)


def _check_sectors_touched(anatomy, spec, bone_part, source) -> None:
    for sector in spec.gtv.sectors:
        touched = any((anatomy.sector_mask(level, sector) & bone_part).any() for level in spec.gtv_levels)
        if not touched:
            raise SpecError("gtv.sectors", f"a {spec.gtv.volume_cc:g} cm3 GTV does not reach sector {sector}; "
                                           f"raise gtv.volume_cc, move gtv.offset_mm or drop the sector", source)
