"""Phantom geometry: GTV volumes, protocol-volume nesting, exact margins, anatomy dimensions, densities."""
from functools import lru_cache

import numpy as np
import pytest
from scipy import ndimage

from simsbrt.phantom import build_phantom, load_spec, parse_spec
from simsbrt.phantom.density import LESION_RED, RED_AIR, RED_CORD, RED_CORTICAL, RED_LUNG, RED_MUSCLE, RED_TRABECULAR

BUILTINS = ("t10_body", "c5_body", "t6_body_pedicle", "l3_body_epidural", "l1_posterior", "s1_body_ala",
            "s2_large", "t12_small")


@lru_cache(maxsize=None)
def built(name, spacing=2.0):
    return build_phantom(load_spec(name).with_spacing(spacing))


def spec_for(level, sectors, volume, spacing=2.0, **gtv):
    return parse_spec({"name": "test", "anatomy": {"level": level}, "grid": {"spacing_mm": spacing},
                       "gtv": {"sectors": list(sectors), "volume_cc": volume, **gtv}})


@pytest.mark.parametrize("level, sectors, volume, spacing, extra", [
    ("T10", ["vertebral_body"], 10.0, 1.0, {}),
    ("T10", ["vertebral_body"], 10.0, 1.5, {}),
    ("T10", ["vertebral_body"], 10.0, 2.0, {}),
    ("T10", ["vertebral_body"], 10.0, 3.0, {}),
    ("T12", ["vertebral_body"], 1.1, 3.0, {"shape": "lobulated"}),
    ("C5", ["vertebral_body"], 2.0, 2.0, {"bilsky": "1c"}),
    ("T6", ["vertebral_body", "left_pedicle"], 8.0, 1.5, {"shape": "lobulated", "bilsky": "2"}),
    ("L1", ["left_lamina"], 3.0, 2.0, {}),
    ("L2", ["spinous_process"], 1.5, 1.0, {}),
    ("L4", ["right_pedicle", "right_lamina"], 5.0, 3.0, {}),
    ("S1", ["sacral_body", "left_ala"], 30.0, 2.0, {}),
    ("S3", ["right_ala"], 4.0, 1.5, {}),
])
def test_gtv_volume_within_5_percent_of_request(level, sectors, volume, spacing, extra):
    p = build_phantom(spec_for(level, sectors, volume, spacing, **extra))
    assert p.volume_cc("GTV") == pytest.approx(volume, rel=0.05)


@pytest.mark.parametrize("name", ["t10_body", "s1_body_ala"])
def test_structure_volumes_agree_between_1_and_2_mm(name):
    fine, coarse = built(name, 1.0), built(name, 2.0)
    assert fine.structures.keys() == coarse.structures.keys()
    for structure in fine.structures:
        v1, v2 = fine.volume_cc(structure), coarse.volume_cc(structure)
        if max(v1, v2) > 5.0:
            assert v2 == pytest.approx(v1, rel=0.05), structure


@pytest.mark.parametrize("name", BUILTINS)
def test_protocol_volumes_nest_and_exclude_the_canal(name):
    p = built(name)
    s = p.structures
    assert not (s["GTV"] & ~s["CTV"]).any()
    assert not (s["CTV"] & ~s["PTV"]).any()
    assert not (s["PTV_Eval"] & s["SpinalCanal"]).any()
    assert not (s["PTV_Eval"] & ~s["PTV"]).any()
    assert not (s["SpinalCord"] & ~s["SpinalCord_PRV02"]).any()
    assert not (s["GTV"] & s["SpinalCord"]).any()
    assert not (s["PTV"] & ~s["Body"]).any()
    assert not (s["Vertebrae"] & s["SpinalCanal"]).any()
    for mask in s.values():
        assert mask.dtype == bool and mask.shape == p.grid.shape
    assert p.density.dtype == np.float32 and p.density.shape == p.grid.shape


def test_ptv_margin_is_2_mm_in_plane_and_5_mm_superior_inferior():
    p = built("t10_body", 1.0)
    ctv, ptv = p.structures["CTV"], p.structures["PTV"]
    # independent measurement 1: in-plane distance within each axial slice (2-D EDT)
    in_plane = []
    for k in np.nonzero(ctv.any(axis=(0, 1)))[0]:
        d = ndimage.distance_transform_edt(~ctv[:, :, k], sampling=(1.0, 1.0))
        in_plane.append(d[ptv[:, :, k]].max())
    assert max(in_plane) == pytest.approx(2.0)
    # independent measurement 2: distance along z within each (x, y) column
    col = ctv.any(axis=2)
    z = p.grid.axis_mm(2)
    ext = []
    for i, j in zip(*np.nonzero(col)):
        zc, zp = z[ctv[i, j]], z[ptv[i, j]]
        ext += [zp.max() - zc.max(), zc.min() - zp.min()]
    assert max(ext) == pytest.approx(5.0)
    # brute force against the analytic ellipsoid (2, 2, 5) mm on sampled voxels near the CTV
    rng = np.random.default_rng(0)
    ctv_pts = p.grid.index_to_world_mm(np.argwhere(ctv))
    near = np.argwhere(ndimage.binary_dilation(ctv, iterations=6) & ~ctv)
    sample = near[rng.choice(len(near), 300, replace=False)]
    pts = p.grid.index_to_world_mm(sample)
    scaled = ((pts[:, None, :] - ctv_pts[None, :, :]) / np.array([2.0, 2.0, 5.0])) ** 2
    inside = scaled.sum(axis=2).min(axis=1) <= 1.0 + 1e-9
    assert np.array_equal(inside, ptv[tuple(sample.T)])


def test_cord_prv_is_a_2_mm_shell():
    p = built("t10_body", 1.0)
    cord, prv, body = p.structures["SpinalCord"], p.structures["SpinalCord_PRV02"], p.structures["Body"]
    d = ndimage.distance_transform_edt(~cord, sampling=p.grid.spacing_mm)
    assert d[prv].max() == pytest.approx(2.0)
    assert np.array_equal(prv, (d <= 2.0 + 1e-9) & body)


def test_cord_and_canal_dimensions_follow_the_facts():
    # facts 3.3: thoracic cord ~6-7 AP x 8-9 transverse; canal AP 15-20 (issue); VB wall to cord 2-4 mm
    p = built("t10_body", 1.0)
    k = int(np.argmin(np.abs(p.grid.axis_mm(2))))
    cord = p.structures["SpinalCord"][:, :, k]
    canal = p.structures["SpinalCanal"][:, :, k]
    ys = p.grid.axis_mm(1)
    cord_y = ys[cord.any(axis=0)]
    canal_y = ys[canal.any(axis=0)]
    assert 5.5 <= cord.any(axis=0).sum() <= 7.5          # AP, 1 mm voxels
    assert 7.5 <= cord.any(axis=1).sum() <= 9.5          # transverse
    assert 14.0 <= canal.any(axis=0).sum() <= 20.0
    assert 2.0 <= cord_y.min() - canal_y.min() <= 4.0
    # cervical cord larger than thoracic (facts 3.3: C4 8.7 x 14.0)
    c5 = built("c5_body", 1.0)
    kc = int(np.argmin(np.abs(c5.grid.axis_mm(2))))
    assert c5.structures["SpinalCord"][:, :, kc].any(axis=1).sum() > cord.any(axis=1).sum() + 2


def test_absent_structures_are_empty_not_missing():
    t10, l3, l1 = built("t10_body"), built("l3_body_epidural"), built("l1_posterior")
    assert t10.is_empty("ThecalSac") and t10.volume_cc("ThecalSac") == 0.0
    assert l3.is_empty("SpinalCord") and l3.is_empty("SpinalCord_PRV02")
    assert not l3.is_empty("ThecalSac")
    assert "Lungs" in t10.structures and "Lungs" not in l3.structures
    # L1 phantom (T12-L2): the cord ends near the L1-L2 disc and the thecal sac starts below it
    z = l1.grid.axis_mm(2)
    cord_z = z[l1.structures["SpinalCord"].any(axis=(0, 1))]
    sac_z = z[l1.structures["ThecalSac"].any(axis=(0, 1))]
    assert cord_z.min() > sac_z.max()
    with pytest.raises(Exception, match="empty"):
        l3.centroid_mm("SpinalCord")


def test_densities_use_the_reference_values():
    p = built("t10_body")
    d, s = p.density, p.structures
    assert np.all(d[~s["Body"]] == pytest.approx(RED_AIR))
    assert np.all(d[s["Lungs"]] == pytest.approx(RED_LUNG))
    assert np.all(d[s["SpinalCord"]] == pytest.approx(RED_CORD))
    bone = s["Vertebrae"] & ~s["GTV"]
    assert d[bone].min() == pytest.approx(RED_TRABECULAR)
    assert RED_TRABECULAR < d[bone].max() <= RED_CORTICAL + 1e-6
    assert np.all(d[s["GTV"] & s["Vertebrae"]] == pytest.approx(LESION_RED["mixed"]))
    # mean RED of the vertebrae between trabecular and cortical, near the ICRU whole-vertebra mixtures
    assert 1.15 < d[s["Vertebrae"] & ~s["GTV"]].mean() < 1.6


@pytest.mark.parametrize("lesion", ["lytic", "mixed", "blastic"])
def test_lesion_density_by_type(lesion):
    p = build_phantom(spec_for("L3", ["vertebral_body"], 5.0, 3.0, lesion_type=lesion, bilsky="1a"))
    gtv, bone, canal = p.structures["GTV"], p.structures["Vertebrae"], p.structures["SpinalCanal"]
    assert np.all(p.density[gtv & bone] == pytest.approx(LESION_RED[lesion]))
    assert np.all(p.density[gtv & canal] == pytest.approx(RED_MUSCLE))
    assert LESION_RED["lytic"] < LESION_RED["mixed"] < LESION_RED["blastic"]


def _canal_gtv(p):
    return p.structures["GTV"] & p.structures["SpinalCanal"]


def test_bilsky_grades_reach_progressively_toward_and_around_the_cord():
    grades = ["0", "1a", "1b", "1c", "2", "3"]
    ph = {g: build_phantom(spec_for("T10", ["vertebral_body"], 12.0, 2.0, bilsky=g)) for g in grades}
    cord = ph["0"].structures["SpinalCord"]
    touching = ndimage.binary_dilation(cord)
    assert not _canal_gtv(ph["0"]).any()
    for g in grades[1:]:
        assert _canal_gtv(ph[g]).any(), g
        assert not (ph[g].structures["GTV"] & cord).any(), g
    for g in ("1a", "1b"):
        assert not (ph[g].structures["GTV"] & touching).any(), g
    for g in ("1c", "2", "3"):
        assert (ph[g].structures["GTV"] & touching).any(), g
    # the arc around the cord widens: 1c < 2 < 3 (cord-adjacent GTV voxels)
    around = [int((ph[g].structures["GTV"] & touching & ~cord).sum()) for g in ("1c", "2", "3")]
    assert around[0] < around[1] < around[2]
    for g in grades:
        assert ph[g].volume_cc("GTV") == pytest.approx(12.0, rel=0.05)


def test_build_is_deterministic_and_seed_changes_lobulated_shape():
    a = build_phantom(spec_for("T10", ["vertebral_body"], 6.0, 2.0, shape="lobulated"))
    b = build_phantom(spec_for("T10", ["vertebral_body"], 6.0, 2.0, shape="lobulated"))
    assert np.array_equal(a.density, b.density)
    assert all(np.array_equal(a.structures[k], b.structures[k]) for k in a.structures)
    other = build_phantom(parse_spec({**a.spec.to_dict(), "seed": 99}))
    assert not np.array_equal(a.structures["GTV"], other.structures["GTV"])


@pytest.mark.parametrize("name", BUILTINS)
def test_every_builtin_builds_and_meets_its_stated_volume(name):
    p = built(name)
    assert p.volume_cc("GTV") == pytest.approx(p.spec.gtv.volume_cc, rel=0.05)
    # size sanity at 2 mm: single levels stay under 2 M voxels; s2_large covers L5-S5 (GTV over S1-S3)
    assert p.grid.n_voxels < (2_500_000 if name == "s2_large" else 2_000_000)


def test_builtin_volumes_as_named():
    assert 9.0 <= built("t10_body").volume_cc("GTV") <= 11.0
    assert 150.0 <= built("s2_large").volume_cc("GTV") <= 190.0
    assert 1.0 <= built("t12_small").volume_cc("GTV") <= 2.0
    assert built("l3_body_epidural").spec.gtv.bilsky == "1a"
    # body outlines: thoracic about 320 x 220 mm, pelvis about 360 x 240 mm
    for name, (lr, ap) in (("t10_body", (320, 220)), ("s2_large", (360, 240)), ("c5_body", (130, 130))):
        p = built(name)
        k = int(np.argmin(np.abs(p.grid.axis_mm(2))))
        body = p.structures["Body"][:, :, k]
        assert body.any(axis=1).sum() * 2.0 == pytest.approx(lr, abs=6)
        assert body.any(axis=0).sum() * 2.0 == pytest.approx(ap, abs=6)
