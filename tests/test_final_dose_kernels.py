"""The final dose's fast paths equal the reference path (simsbrt.dose.final).

* the column kernel (the u-side scatter shared by a grid column) against the per-voxel kernel, on coplanar arcs
  (every control point shared), a couch-rotated arc (none shared: u depends on z there) and columns cut by the
  chunking; the same sums in another order, so float64 rounding is the only difference (rtol 1e-12);
* the depth trace by columns (x / y crossings walked once per column and source) against trace_ray per voxel,
  bit for bit (the same arithmetic on the same numbers), on rays that enter the grid through its x / y faces
  (the shared walk) and through its z faces (traced on their own);
* voxels whose primary-window bound is too loose are recomputed in every chunk of voxels, not only the first.
"""
from types import SimpleNamespace

import numpy as np
import pytest

from simsbrt.dose.final import DoseGeometry, final_dose
from simsbrt.geometry.arcs import arc_set_from_dict
from simsbrt.geometry.beamlets import build_beamlets

from test_dose_cutoff import spine_case


def _phantom(spacing_mm=4.0):
    grid, density, structures = spine_case(spacing_mm=spacing_mm)
    return SimpleNamespace(grid=grid, density=density, structures=structures)


def _weights(n, seed=5):
    rng = np.random.default_rng(seed)
    w = rng.exponential(1.0, n) ** 2
    w[rng.random(n) < 0.3] = 0.0
    return w


@pytest.mark.parametrize("couch_deg", [0.0, 30.0])
def test_column_kernel_equals_per_voxel_kernel(couch_deg, monkeypatch):
    import simsbrt.dose.final as final

    phantom = _phantom()
    arcs = arc_set_from_dict({"arc": [{"gantry_start_deg": 181, "gantry_stop_deg": 179, "spacing_deg": 45,
                                       "couch_deg": couch_deg}]})
    beamlets = build_beamlets(arcs, phantom.grid, phantom.structures["PTV"])
    geo = DoseGeometry.build(phantom, beamlets, "cpu", region="grid")
    assert np.all(geo.shared_u == (1 if couch_deg == 0.0 else 0))
    w = _weights(beamlets.n_beamlets)
    pair = final_dose(phantom, beamlets, w, geometry=geo, kernel="pair")
    monkeypatch.setattr(final, "CHUNK_VOXELS", 97)   # chunks that cut columns (nz = 10 here)
    column = final_dose(phantom, beamlets, w, geometry=DoseGeometry.build(phantom, beamlets, "cpu", region="grid"))
    assert phantom.grid.shape[2] > 1 and 97 % phantom.grid.shape[2] != 0
    assert pair.dose_gy.max() > 0 and pair.n_recomputed == column.n_recomputed == 0
    np.testing.assert_allclose(column.dose_gy, pair.dose_gy, rtol=1e-12, atol=0)
    assert column.bound_rel_max == pytest.approx(pair.bound_rel_max, rel=1e-9)


def test_unknown_kernel_names_the_field():
    from simsbrt.errors import SpecError

    phantom = _phantom(6.0)
    arcs = arc_set_from_dict({"arc": [{"gantry_start_deg": 181, "gantry_stop_deg": 179, "spacing_deg": 90}]})
    beamlets = build_beamlets(arcs, phantom.grid, phantom.structures["PTV"])
    with pytest.raises(SpecError, match="kernel"):
        final_dose(phantom, beamlets, np.ones(beamlets.n_beamlets), kernel="fast")


def test_recomputed_voxels_in_several_chunks(monkeypatch):
    """Voxels whose window bound is too loose are recomputed in every chunk, not only the first (a 1-sigma window
    makes the bound too loose almost everywhere; small chunks make many of them)."""
    import simsbrt.dose.final as final

    phantom = _phantom(6.0)
    arcs = arc_set_from_dict({"arc": [{"gantry_start_deg": 181, "gantry_stop_deg": 179, "spacing_deg": 60}]})
    beamlets = build_beamlets(arcs, phantom.grid, phantom.structures["PTV"])
    w = _weights(beamlets.n_beamlets)
    untruncated = final_dose(phantom, beamlets, w, region="grid", primary_window_nsigma=0.0)
    monkeypatch.setattr(final, "REACH_NSIGMA", 1.0)
    monkeypatch.setattr(final, "CHUNK_VOXELS", 64)
    netted = final_dose(phantom, beamlets, w, region="grid")
    assert netted.exact is True and netted.n_recomputed > 64
    assert netted.bound_rel_max <= final.BOUND_REL
    np.testing.assert_allclose(netted.dose_gy, untruncated.dose_gy, rtol=2.0**-22, atol=0)


def test_column_depth_trace_equals_per_voxel_trace_bit_for_bit():
    from simsbrt.kernels import cpu

    rng = np.random.default_rng(3)
    shape = np.array([13, 11, 9], dtype=np.int64)
    spacing = np.array([2.0, 2.5, 3.0])
    origin = np.array([-12.0, -12.5, -12.0])
    density = rng.choice(np.array([0.001, 0.25, 1.0, 1.04, 1.4], dtype=np.float32), size=int(np.prod(shape)))
    angles = np.radians(np.arange(0.0, 360.0, 37.0))
    coplanar = np.stack([1000 * np.sin(angles), -1000 * np.cos(angles), np.full_like(angles, 1.5)], axis=1)
    oblique = np.array([[300.0, -200.0, 900.0], [-50.0, 40.0, -800.0], [0.0, 0.0, 600.0], [5.0, -7.0, 2.0]])
    sources = np.concatenate([coplanar, oblique])
    flat = np.sort(rng.choice(int(np.prod(shape)), 500, replace=False))     # runs of 1..9 voxels per column
    ijk = np.stack(np.unravel_index(flat, tuple(shape)), axis=1)
    points = np.ascontiguousarray(origin + ijk * spacing)
    column = flat // shape[2]
    columns = np.concatenate(([0], np.flatnonzero(np.diff(column)) + 1, [len(flat)])).astype(np.int64)
    assert np.max(np.diff(columns)) > 3
    reference = cpu.radiological_depths(points, sources, origin, spacing, shape, density)
    by_column = cpu.column_radiological_depths(points, columns, sources, origin, spacing, shape, density)
    assert reference.min() >= 0 and np.count_nonzero(reference) > 0.9 * reference.size
    np.testing.assert_array_equal(by_column, reference)


@pytest.mark.parametrize("couch_deg", [0.0, 30.0])
def test_several_weight_vectors_in_one_pass_equal_their_own_doses(couch_deg):
    """final_doses: each dose of the pass equals final_dose of its weights (same sums in the same order; the
    common box only adds zeros), on the shared-column path (coplanar) and the per-voxel path inside the column
    kernel (couch 30 deg); and the pass is linear: the dose of w1 + w2 is the sum of theirs."""
    from simsbrt.dose.final import final_doses

    phantom = _phantom()
    arcs = arc_set_from_dict({"arc": [{"gantry_start_deg": 181, "gantry_stop_deg": 179, "spacing_deg": 45,
                                       "couch_deg": couch_deg}]})
    beamlets = build_beamlets(arcs, phantom.grid, phantom.structures["PTV"])
    w1 = _weights(beamlets.n_beamlets, seed=1)
    w2 = _weights(beamlets.n_beamlets, seed=2)
    cp = beamlets.columns()["control_point"]
    w2[cp == cp.max()] = 0.0                 # a control point without weight in one map only: the boxes differ
    geo = DoseGeometry.build(phantom, beamlets, "cpu", region="grid")
    d1, d2, d12 = final_doses(phantom, beamlets, [w1, w2, w1 + w2], geometry=geo)
    assert d1.n_in_pass == 3 and d1.record()["doses_in_pass"] == 3
    for weights, batched in ((w1, d1), (w2, d2)):
        alone = final_dose(phantom, beamlets, weights, geometry=geo)
        assert alone.n_in_pass == 1 and alone.dose_gy.max() > 0
        if alone.n_recomputed == batched.n_recomputed == 0:
            np.testing.assert_array_equal(batched.dose_gy, alone.dose_gy)
        else:
            np.testing.assert_allclose(batched.dose_gy, alone.dose_gy, rtol=2.0**-22, atol=0)
    np.testing.assert_allclose(d12.dose_gy, d1.dose_gy.astype(np.float64) + d2.dose_gy, rtol=1e-6,
                               atol=1e-6 * float(d12.dose_gy.max()))
    p1, p2 = final_doses(phantom, beamlets, [w1, w2], geometry=geo, kernel="pair")   # the maps one after the other
    np.testing.assert_allclose(p1.dose_gy, d1.dose_gy, rtol=1e-6, atol=0)
    np.testing.assert_allclose(p2.dose_gy, d2.dose_gy, rtol=1e-6, atol=0)


def test_one_pass_needs_a_weight_vector():
    from simsbrt.dose.final import final_doses
    from simsbrt.errors import SpecError

    phantom = _phantom(6.0)
    arcs = arc_set_from_dict({"arc": [{"gantry_start_deg": 181, "gantry_stop_deg": 179, "spacing_deg": 90}]})
    beamlets = build_beamlets(arcs, phantom.grid, phantom.structures["PTV"])
    with pytest.raises(SpecError, match="weights_mu"):
        final_doses(phantom, beamlets, [])
