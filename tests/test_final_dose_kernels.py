"""The final dose's fast paths equal the reference path (simsbrt.dose.final).

* the column kernel (the u-side scatter shared by a grid column) against the per-voxel kernel, on coplanar arcs
  (every control point shared), a couch-rotated arc (none shared: u depends on z there) and columns cut by the
  chunking; the same sums in another order, so float64 rounding is the only difference (rtol 1e-12);
* several weight vectors in one pass against one pass each (bit for bit: the same arithmetic per vector).
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
