"""The exact final dose (simsbrt.dose.final) equals the exact influence matrix times the weights.

Reference: InfluenceMatrix computed with EXACT options (every beamlet evaluated for every row, no
sampling, no window) on a spine-like case whose two arcs share their angles (cw / ccw aliases).
The fluence kernel never builds that matrix; it sums the weights of aliased control points and
evaluates scale * sum_c fx_c^T W fy_c. The two agree to float32 rounding (the matrix stores
float32 entries, the final dose is stored as float32): relative 1e-6 is ~16 float32 ulps.
"""
from types import SimpleNamespace

import numpy as np
import pytest

from simsbrt.dose.engine import EXACT, _control_point_tables, compute_influence
from simsbrt.dose.final import dose_voxels, final_dose, fluence_maps
from simsbrt.dose.machine import load_beam_model
from simsbrt.errors import SpecError
from simsbrt.geometry.arcs import arc_set_from_dict
from simsbrt.geometry.beamlets import build_beamlets
from simsbrt.kernels.device.influence import CPI_PRIMARY

from test_dose_cutoff import spine_case


@pytest.fixture(scope="module")
def case():
    grid, density, structures = spine_case(spacing_mm=4.0)
    arcs = arc_set_from_dict({"arc": [{"gantry_start_deg": 181, "gantry_stop_deg": 179, "spacing_deg": 40},
                                      {"gantry_start_deg": 179, "gantry_stop_deg": 181, "direction": "ccw",
                                       "spacing_deg": 40}]})
    beamlets = build_beamlets(arcs, grid, structures["PTV"])
    rows = np.arange(0, grid.n_voxels, 3, dtype=np.int64)
    exact = compute_influence(grid, density, rows, beamlets, None, EXACT)
    phantom = SimpleNamespace(grid=grid, density=density, structures=structures)
    return phantom, beamlets, rows, exact


def _weights(n, kind):
    rng = np.random.default_rng(11)
    if kind == "uniform":
        return np.ones(n)
    w = rng.exponential(1.0, n) ** 2          # heavy-tailed, like an optimised fluence
    w[rng.random(n) < 0.3] = 0.0              # closed beamlets
    return w


@pytest.mark.parametrize("kind", ["uniform", "sparse heavy-tailed"])
def test_final_dose_equals_exact_matrix_times_weights(case, kind):
    phantom, beamlets, rows, exact = case
    cpi = _control_point_tables(beamlets, load_beam_model())[1]
    assert np.any(cpi[:, CPI_PRIMARY] != np.arange(len(cpi))), "the case must exercise aliased control points"
    w = _weights(beamlets.n_beamlets, kind)
    fd = final_dose(phantom, beamlets, w, "cpu", region="grid")
    assert fd.exact and fd.backend == "cpu"
    assert fd.dose_gy.dtype == np.float32 and fd.dose_gy.shape == phantom.grid.shape
    reference = exact.dose(w)
    got = fd.dose_gy.ravel()[rows].astype(np.float64)
    assert reference.max() > 0 and np.count_nonzero(reference) == len(rows)
    np.testing.assert_allclose(got, reference, rtol=1e-6, atol=0)


def test_body_region_is_zero_only_outside_every_structure(case):
    phantom, beamlets, _, _ = case
    w = _weights(beamlets.n_beamlets, "uniform")
    body = final_dose(phantom, beamlets, w, "cpu").dose_gy
    full = final_dose(phantom, beamlets, w, "cpu", region="grid").dose_gy
    inside = np.zeros(phantom.grid.n_voxels, bool)
    inside[dose_voxels(phantom)] = True
    inside = inside.reshape(phantom.grid.shape)
    assert inside.sum() < inside.size
    np.testing.assert_array_equal(body[inside], full[inside])
    assert np.all(body[~inside] == 0) and np.all(full[~inside] > 0)


def test_aliased_weights_are_summed(case):
    """Moving weight between a control point and its alias (identical beamlets) leaves the dose unchanged."""
    phantom, beamlets, _, _ = case
    cpf, cpi, cell_to_col, _ = _control_point_tables(beamlets, load_beam_model())
    alias = int(np.flatnonzero(cpi[:, CPI_PRIMARY] != np.arange(len(cpi)))[0])
    primary = int(cpi[alias, CPI_PRIMARY])
    offsets = beamlets.column_offsets
    w = _weights(beamlets.n_beamlets, "uniform")
    moved = w.copy()
    moved[offsets[primary]:offsets[primary + 1]] += moved[offsets[alias]:offsets[alias + 1]]
    moved[offsets[alias]:offsets[alias + 1]] = 0.0
    a, b = fluence_maps(beamlets, w, cpi, cell_to_col)[0], fluence_maps(beamlets, moved, cpi, cell_to_col)[0]
    np.testing.assert_allclose(a, b, rtol=1e-15)


@pytest.mark.parametrize("bad", [np.ones(3), -np.ones(1), np.full(1, np.nan)])
def test_bad_weights_name_the_field(case, bad):
    phantom, beamlets, _, _ = case
    w = np.ones(beamlets.n_beamlets) if bad.size == 1 else bad
    if bad.size == 1:
        w[0] = bad[0]
    with pytest.raises(SpecError, match="weights_mu"):
        final_dose(phantom, beamlets, w, "cpu")


def test_primary_window_is_below_float32_rounding_and_the_safety_net_recomputes(case, monkeypatch):
    """The 8-sigma primary window changes nothing visible (its proven bound is far below 2^-26 of the dose); with
    a 1-sigma window the bound is too large almost everywhere in the field, and those voxels are recomputed with
    every primary cell, so the result is still the untruncated sum."""
    import simsbrt.dose.final as final

    phantom, beamlets, _, _ = case
    w = _weights(beamlets.n_beamlets, "sparse heavy-tailed")
    untruncated = final_dose(phantom, beamlets, w, "cpu", region="grid", primary_window_nsigma=0.0)
    windowed = final_dose(phantom, beamlets, w, "cpu", region="grid")
    assert not untruncated.exact and windowed.exact
    assert 0 < windowed.bound_rel_max <= final.BOUND_REL and windowed.n_recomputed == 0
    np.testing.assert_allclose(windowed.dose_gy, untruncated.dose_gy, rtol=2.0**-22, atol=0)
    one_sigma = final_dose(phantom, beamlets, w, "cpu", region="grid", primary_window_nsigma=1.0).dose_gy
    assert np.max(np.abs(one_sigma / untruncated.dose_gy - 1)) > 1e-3      # a 1-sigma window does cut
    monkeypatch.setattr(final, "REACH_NSIGMA", 1.0)
    netted = final_dose(phantom, beamlets, w, "cpu", region="grid")
    assert netted.n_recomputed > 0 and netted.bound_rel_max <= final.BOUND_REL
    np.testing.assert_allclose(netted.dose_gy, untruncated.dose_gy, rtol=2.0**-22, atol=0)
