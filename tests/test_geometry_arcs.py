"""Arcs, control points, beam frame convention (IEC 61217, patient HFS in LPS) and beamlets."""
import math

import numpy as np
import pytest

from simsbrt.errors import SpecError
from simsbrt.geometry.arcs import ArcSpec, ControlPoint, arc_set_from_dict, default_arc_set, load_arc_set
from simsbrt.geometry.beamlets import build_beamlets
from simsbrt.grid import Grid

ISO = (10.0, -20.0, 30.0)


def _source(gantry, couch=0.0, collimator=0.0):
    return ControlPoint(0, 0, gantry, couch, collimator, ISO).source_mm - np.asarray(ISO)


def test_gantry_0_irradiates_from_anterior():
    # LPS: anterior is -y; the source sits SAD above the patient's front
    np.testing.assert_allclose(_source(0.0), [0.0, -1000.0, 0.0], atol=1e-9)


def test_gantry_90_irradiates_from_patient_left():
    np.testing.assert_allclose(_source(90.0), [1000.0, 0.0, 0.0], atol=1e-9)  # +x = patient left


def test_gantry_180_posterior_and_270_right():
    np.testing.assert_allclose(_source(180.0), [0.0, 1000.0, 0.0], atol=1e-9)
    np.testing.assert_allclose(_source(270.0), [-1000.0, 0.0, 0.0], atol=1e-9)


def test_couch_90_moves_gantry_90_source_towards_the_feet():
    # couch rotated 90 deg counter-clockwise (seen from above): the patient's head swings to the
    # observer's left; the lateral source at gantry 90 then lies on the patient's inferior side
    s = _source(90.0, couch=90.0)
    np.testing.assert_allclose(np.abs(s), [0.0, 0.0, 1000.0], atol=1e-9)


@pytest.mark.parametrize("g,c,k", [(0, 0, 0), (33, 10, 45), (250, -20, 300), (181.5, 5, 90)])
def test_beam_axes_are_right_handed_orthonormal(g, c, k):
    xb, yb, zb = ControlPoint(0, 0, g, c, k, ISO).beam_axes()
    m = np.stack([xb, yb, zb])
    np.testing.assert_allclose(m @ m.T, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(np.cross(xb, yb), zb, atol=1e-12)


def test_projection_to_iso_plane_magnifies_by_sad_over_distance():
    cp = ControlPoint(0, 0, 40.0, 0.0, 15.0, ISO)
    xb, yb, zb = cp.beam_axes()
    iso = np.asarray(ISO)
    pts = np.stack([iso, iso + 10 * xb, iso + 7 * yb, iso + 100 * zb + 9 * xb])
    uv = cp.project_to_iso_plane(pts)
    np.testing.assert_allclose(uv, [[0, 0], [10, 0], [0, 7], [9 * 1000 / 900, 0]], atol=1e-9)


def test_default_arcs_two_full_coplanar_arcs_share_angles():
    arcs = default_arc_set()
    assert len(arcs.arcs) == 2 and all(a.couch_deg == 0 for a in arcs.arcs)
    a1, a2 = (a.gantry_angles_deg() for a in arcs.arcs)
    assert len(a1) == len(a2) == 90
    np.testing.assert_allclose(np.sort(a1), np.sort(a2), atol=1e-9)
    steps = np.diff(np.unwrap(np.radians(a1)))
    assert np.all(np.degrees(steps) > 0) and np.all(np.degrees(steps) <= 4.0 + 1e-9)  # cw: increasing


def test_partial_ccw_arc_runs_backwards():
    angles = ArcSpec(90.0, 30.0, "ccw", spacing_deg=10.0).gantry_angles_deg()
    np.testing.assert_allclose(angles, [85, 75, 65, 55, 45, 35])


def test_arcs_toml_loads(tmp_path):
    p = tmp_path / "ARCS.toml"
    p.write_text('beamlet_size_mm = 5.0\nisocentre_mm = [1, 2, 3]\n'
                 '[[arc]]\ngantry_start_deg = 181\ngantry_stop_deg = 179\ndirection = "cw"\n'
                 '[[arc]]\ngantry_start_deg = 200\ngantry_stop_deg = 160\ndirection = "ccw"\n'
                 'couch_deg = 10\ncollimator_deg = 30\nspacing_deg = 2\n')
    arcs = load_arc_set(p)
    assert arcs.beamlet_size_mm == 5.0 and arcs.isocentre_mm == (1.0, 2.0, 3.0)
    assert len(arcs.arcs[1].gantry_angles_deg()) == 20 and arcs.arcs[1].collimator_deg == 30.0


@pytest.mark.parametrize("doc,field", [
    ({"arc": [{"gantry_start_deg": 0, "gantry_stop_deg": 10, "gantry_strat": 1}]}, "arc[0].gantry_strat"),
    ({"arc": [{"gantry_start_deg": 0, "gantry_stop_deg": 10, "direction": "left"}]}, "arc[0].direction"),
    ({"arc": [{"gantry_start_deg": "zero", "gantry_stop_deg": 10}]}, "arc[0].gantry_start_deg"),
    ({"arc": [{"gantry_start_deg": 0, "gantry_stop_deg": 10, "spacing_deg": 0}]}, "arc[0].spacing_deg"),
    ({"arc": [{"gantry_stop_deg": 10}]}, "arc[0].gantry_start_deg"),
    ({"arc": []}, "arc"),
    ({"arc": [{"gantry_start_deg": 0, "gantry_stop_deg": 10}], "beamlet_size": 2}, "beamlet_size"),
    ({"arc": [{"gantry_start_deg": 0, "gantry_stop_deg": 10}], "beamlet_size_mm": -1}, "beamlet_size_mm"),
    ({"arc": [{"gantry_start_deg": 0, "gantry_stop_deg": 10}], "isocentre_mm": [1, 2]}, "isocentre_mm"),
])
def test_bad_arcs_name_the_field(doc, field):
    with pytest.raises(SpecError) as exc:
        arc_set_from_dict(doc, "ARCS.toml")
    assert exc.value.field == field
    assert "ARCS.toml" in str(exc.value)


def test_bad_toml_is_spec_error(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text("[[arc]\n")
    with pytest.raises(SpecError):
        load_arc_set(p)


def _sphere_ptv(radius_mm=12.0):
    grid = Grid((21, 21, 21), (2.0, 2.0, 2.0), (-20.0, -20.0, -20.0))
    x, y, z = grid.world_coordinates_mm()
    centre = np.array([4.0, -2.0, 6.0])
    mask = (x - centre[0]) ** 2 + (y - centre[1]) ** 2 + (z - centre[2]) ** 2 <= radius_mm**2
    return grid, mask, centre


def test_isocentre_defaults_to_ptv_centroid_and_beamlets_cover_projection():
    grid, mask, centre = _sphere_ptv()
    arcs = arc_set_from_dict({"arc": [{"gantry_start_deg": 0, "gantry_stop_deg": 360, "spacing_deg": 45,
                                        "collimator_deg": 20}]})
    bl = build_beamlets(arcs, grid, mask)
    np.testing.assert_allclose(bl.control_points[0].isocentre_mm, centre, atol=1e-9)
    pts = grid.index_to_world_mm(np.argwhere(mask))
    size = arcs.beamlet_size_mm
    for cp, g in zip(bl.control_points, bl.grids):
        uv = cp.project_to_iso_plane(pts)
        k = np.floor(uv[:, 0] / size).astype(int) - g.k0
        l = np.floor(uv[:, 1] / size).astype(int) - g.l0
        assert g.active[k, l].all(), "every target point's beamlet is open"
        # an open beamlet's square meets the square of half-width (margin + half a magnified voxel)
        # around some target point, so its centre is within sqrt(2) (margin + 1.05 mm + size / 2)
        kk, ll = np.nonzero(g.active)
        centres = (np.stack([kk + g.k0, ll + g.l0], 1) + 0.5) * size
        d = np.sqrt(((centres[:, None, :] - uv[None, :, :]) ** 2).sum(-1)).min(1)
        assert d.max() <= math.sqrt(2) * (arcs.beamlet_margin_mm + 1.05 + size / 2)
        # open area: at least the disc of radius r + margin, at most the bounding square grown by a beamlet
        area = g.n_beamlets * size**2
        assert math.pi * (12 + arcs.beamlet_margin_mm) ** 2 <= area <= (2 * (12 + arcs.beamlet_margin_mm + 1.05 + size)) ** 2
    assert bl.n_beamlets == sum(g.n_beamlets for g in bl.grids)
