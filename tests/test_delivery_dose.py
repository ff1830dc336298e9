"""The delivered plan's dose: MLC transmission in the exact aperture dose.

References: the open field of the same jaws (leaves withdrawn), computed by the same engine with no closed
leaf area inside the jaws, so its dose does not depend on the transmission; the closed-leaf region is where
the transmission model (the closed area inside the jaws transmits T of the open-field dose) applies."""
import numpy as np
import pytest

from simsbrt.delivery.apertures import ApertureDoseEngine, Apertures
from simsbrt.delivery.machine import load_machine
from simsbrt.geometry.arcs import ControlPoint
from simsbrt.grid import Grid

JAWS = (-30.0, 30.0, -20.0, 20.0)


@pytest.fixture(scope="module")
def water():
    """A 80 mm water cube, one control point at gantry 0, and the voxels of the iso plane across the beam
    with their beam's-eye-view (u, v) at the isocentre plane."""
    grid = Grid((41, 41, 41), (2.0, 2.0, 2.0), (-40.0, -40.0, -40.0))
    density = np.ones(grid.shape, np.float32)
    cp = ControlPoint(0, 0, 0.0, 0.0, 0.0, (0.0, 0.0, 0.0))
    xb, yb, zb = (np.asarray(a) for a in cp.beam_axes())
    ijk = np.stack(np.unravel_index(np.arange(grid.n_voxels), grid.shape), axis=1)
    world = grid.index_to_world_mm(ijk).reshape(-1, 3)
    plane = np.flatnonzero(np.abs(world @ zb) < 1e-6)
    return grid, density, cp, plane, world[plane] @ xb, world[plane] @ yb


def _dose(water, leaf_x1, leaf_x2, transmission):
    grid, density, cp, plane, _, _ = water
    m = load_machine("truebeam_hd120")
    leaves = np.zeros((1, m.n_leaf_pairs, 2))
    leaves[0, :, 0], leaves[0, :, 1] = leaf_x1, leaf_x2
    aps = Apertures(m, (cp,), np.zeros(1, int), leaves, np.array([JAWS]))
    return ApertureDoseEngine(grid, density, aps, transmission=transmission).dose(plane, np.ones(1))


def test_the_machines_carry_a_cited_mlc_transmission():
    hd = load_machine("truebeam_hd120")
    assert hd.transmission_frac == 0.0117                               # Wang et al. Med Phys 2008;35:2827, 6 MV
    assert "Med Phys 2008" in hd.sources["mlc.transmission_source"]
    assert 0.005 < load_machine("truebeam_millennium120").transmission_frac < 0.03


def test_a_fully_closed_bank_gives_t_times_the_open_field_dose(water):
    t = load_machine("truebeam_hd120").transmission_frac
    open_field = _dose(water, -100.0, 100.0, t)
    assert open_field.max() > 0.005                                     # ~1 cGy/MU at depth in the field
    np.testing.assert_allclose(_dose(water, -100.0, 100.0, 0.0), open_field, rtol=1e-12)
    closed = _dose(water, 0.0, 0.0, t)
    np.testing.assert_allclose(closed, t * open_field, rtol=1e-9, atol=1e-15)


def test_transmission_raises_the_dose_under_closed_leaves_by_t_of_the_blocked_dose(water):
    """Half the field open (u < 0), half under closed leaves: with T the dose rises by T x (open field - dose
    without transmission); deep under the closed leaves (u 15-25 mm, 5+ primary widths from the leaf tips)
    that is nearly T of the open-field dose, at the open half nearly nothing."""
    _, _, _, _, u, v = water
    t = 0.015
    open_field = _dose(water, -100.0, 100.0, 0.0)
    without = _dose(water, -100.0, 0.0, 0.0)
    with_t = _dose(water, -100.0, 0.0, t)
    np.testing.assert_allclose(with_t - without, t * (open_field - without), rtol=1e-9, atol=1e-15)
    under = (u > 15.0) & (u < 25.0) & (np.abs(v) < 10.0)
    inside_open = (u < -15.0) & (u > -25.0) & (np.abs(v) < 10.0)
    assert under.sum() >= 10 and inside_open.sum() >= 10
    rise = (with_t - without)[under] / open_field[under]
    assert np.all(rise > 0.5 * t) and np.all(rise < t)
    assert np.all((with_t - without)[inside_open] < 0.05 * t * open_field[inside_open])


def test_the_final_dose_shares_the_fluence_geometry_depths_only_when_every_source_matches(water):
    """ApertureDoseEngine.dose_on: with a DoseGeometry of the same sources it takes the geometry's cached depths;
    with a source the geometry lacks it traces its own. Both equal the engine's own per-voxel dose."""
    from types import SimpleNamespace

    from simsbrt.dose.final import DoseGeometry
    from simsbrt.geometry.beamlets import BeamletSet, rectangular_field

    grid, density, cp, plane, _, _ = water
    body = np.zeros(grid.shape, bool)
    body.ravel()[plane] = True
    phantom = SimpleNamespace(grid=grid, density=density, structures={"Body": body})
    m = load_machine("truebeam_hd120")
    leaves = np.zeros((1, m.n_leaf_pairs, 2))
    leaves[0, :, 0], leaves[0, :, 1] = -15.0, 10.0
    engine = ApertureDoseEngine(grid, density, Apertures(m, (cp,), np.zeros(1, int), leaves, np.array([JAWS])))
    reference = engine.dose(plane, np.ones(1))
    other = ControlPoint(0, 0, 90.0, 0.0, 0.0, (0.0, 0.0, 0.0))
    for cps, shared in (((other, cp), True), ((other,), False)):
        beamlets = BeamletSet(5.0, cps, tuple(rectangular_field(c, 5.0, (-10.0, 10.0), (-10.0, 10.0)) for c in cps))
        geometry = DoseGeometry.build(phantom, beamlets)
        dose, used = engine.dose_on(geometry, np.ones(1))
        assert used is shared
        np.testing.assert_allclose(dose, reference, rtol=1e-12)
        assert bool(geometry.depth_cache) is shared        # the geometry traced (and kept) its depths only when used
