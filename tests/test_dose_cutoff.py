"""The lateral treatment of the influence matrix keeps the dose in the cord PRV and thecal sac
within 0.5 % of their maximum: a small spine-like case, sampled (default options, cord / PRV /
sac rows exact) against a calculation without any cut-off (every beamlet, every voxel)."""
import numpy as np
import pytest

from simsbrt.dose.engine import EXACT, InfluenceOptions, compute_influence, exact_row_mask, select_rows
from simsbrt.geometry.arcs import arc_set_from_dict
from simsbrt.geometry.beamlets import build_beamlets
from simsbrt.grid import Grid


def spine_case(spacing_mm=3.0):
    grid = Grid.covering((-48.0, -36.0, -18.0), (48.0, 60.0, 18.0), spacing_mm)
    x, y, z = grid.world_coordinates_mm()
    full = np.ones(grid.shape, bool)
    body = full & ((x / 46) ** 2 + ((y - 10) / 46) ** 2 <= 1)
    vb = full & ((x / 18) ** 2 + (y / 15) ** 2 <= 1) & (np.abs(z) <= 12)
    canal_r2 = x**2 + (y - 24) ** 2
    cord = full & (canal_r2 <= 4.5**2)
    prv = full & (canal_r2 <= 6.5**2)
    sac = full & (canal_r2 <= 7.5**2) & ~cord
    ptv = (vb | (full & ((x / 22) ** 2 + ((y - 22) / 14) ** 2 <= 1) & (np.abs(z) <= 12))) & (canal_r2 > 9.0**2)
    density = np.where(body, 1.0, 0.001).astype(np.float32)
    density[vb] = 1.4
    structures = {"Body": body, "PTV": ptv, "SpinalCord": cord, "SpinalCord_PRV02": prv, "ThecalSac": sac}
    return grid, density, structures


@pytest.fixture(scope="module")
def matrices():
    grid, density, structures = spine_case()
    rows = select_rows(grid, structures)
    arcs = arc_set_from_dict({"arc": [{"gantry_start_deg": 181, "gantry_stop_deg": 179, "spacing_deg": 30},
                                      {"gantry_start_deg": 179, "gantry_stop_deg": 181, "direction": "ccw",
                                       "spacing_deg": 30}]})
    beamlets = build_beamlets(arcs, grid, structures["PTV"])
    exact = compute_influence(grid, density, rows, beamlets, None, EXACT)
    default = compute_influence(grid, density, rows, beamlets, None, InfluenceOptions(),
                                exact_rows=exact_row_mask(rows, structures))
    oar = (structures["SpinalCord_PRV02"] | structures["ThecalSac"]).ravel()[rows]
    return exact, default, oar, structures["PTV"].ravel()[rows]


WEIGHTS = {
    "uniform": lambda n, rng: np.ones(n),
    "random": lambda n, rng: rng.uniform(0.0, 2.0, n),
    "heavy-tailed": lambda n, rng: rng.exponential(1.0, n) ** 2,
}


@pytest.mark.parametrize("name", sorted(WEIGHTS))
def test_cord_prv_and_thecal_sac_error_below_half_percent(matrices, name):
    exact, default, oar, _ = matrices
    w = WEIGHTS[name](exact.n_beamlets, np.random.default_rng(5))
    d_exact, d_default = exact.dose(w), default.dose(w)
    assert oar.sum() > 50
    err = np.abs(d_default - d_exact)[oar].max() / d_exact[oar].max()
    assert err < 0.005, f"{name} weights: max error {100 * err:.3f} % of the cord/sac maximum"


def test_sampled_matrix_is_much_sparser_and_unbiased_in_the_target(matrices):
    exact, default, _, ptv = matrices
    assert default.nnz < 0.5 * exact.nnz
    d_exact, d_default = exact.dose(np.ones(exact.n_beamlets)), default.dose(np.ones(exact.n_beamlets))
    rel = (d_default - d_exact)[ptv] / d_exact[ptv].max()
    assert abs(rel.mean()) < 1e-3  # unbiased: errors average out
    assert np.abs(rel).max() < 0.02
