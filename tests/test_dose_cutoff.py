"""The optimiser's sampled influence matrix against the exact dose, on the rows it samples.

The matrix (simsbrt.dose.engine, default options) samples entries below tau = 1 % of a beamlet's peak
(Russian roulette), draws the scatter beyond a 4-sigma window, and drops the primary beyond that
window; only the cord, PRV and thecal-sac rows are exact. The exact reference is simsbrt.dose.final
(every beamlet, every component, no window), itself checked against an exact matrix in
tests/test_final_dose.py. Checked here on the GTV and PTV_Eval rows:

* the 4-sigma primary cut, measured: exact dose minus the dose with the primary summed only inside
  the same 4-sigma window (final_dose(primary_window_nsigma=4), the sampled matrix's expectation);
* unbiasedness for fixed weights: 16 independent seeds; the mean over seeds of the per-seed mean
  relative error equals zero within 4 standard errors (a biased roulette or draw fails it);
* an optimised, non-uniform SIB fluence (weights chosen against seed 0, so the optimiser may fit
  that draw's noise): per voxel, the error stays within 5 sampling standard deviations measured on
  the independent seeds (plus the cut), and the DVH metrics reported by plans differ by <= 0.3 Gy
  (the plan-quality tolerance of the project) after normalisation; exact rows are exact.
"""
from dataclasses import replace

import numpy as np
import pytest

from simsbrt.dose.engine import InfluenceOptions, compute_influence
from simsbrt.dose.final import DoseGeometry, final_dose
from simsbrt.evaluate import compute_dvhs
from simsbrt.grid import Grid

N_SEEDS = 16
SIB_GOAL_GY = 44.0


def spine_case(spacing_mm=3.0):
    """A small spine-like geometry (body, vertebral body, canal with cord / PRV / sac, PTV); used by
    tests/test_final_dose.py."""
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
def sib(tiny_plan_inputs):
    """An optimised SIB fluence on the tiny case (one optimisation at a 44 Gy GTV goal, on seed 0's matrix),
    its exact dose, the 4-sigma-window dose and the sampled doses of independent seeds on the target rows."""
    from simsbrt.optimize.plans import PlanSettings, _Planner

    inputs = tiny_plan_inputs
    phantom, influence = inputs.phantom, inputs.influence
    planner = _Planner(inputs, PlanSettings())
    result = planner.problem.optimise(planner.goals.with_(boost_gy=SIB_GOAL_GY), None, "projected_lbfgs",
                                      PlanSettings().search_solver_options)
    w = np.asarray(result.x, dtype=np.float64)
    target = (phantom.structures["GTV"] | phantom.structures["PTV_Eval"]).ravel()
    geometry = DoseGeometry.build(phantom, influence.beamlets, "cpu")
    rows = np.flatnonzero(target)
    on_rows = replace(geometry, voxels=rows)
    exact = final_dose(phantom, influence.beamlets, w, geometry=on_rows).dose_gy.ravel()[rows].astype(np.float64)
    window = final_dose(phantom, influence.beamlets, w, geometry=on_rows,
                        primary_window_nsigma=influence.options.window_nsigma).dose_gy.ravel()[rows].astype(np.float64)
    seeds = np.stack([compute_influence(phantom.grid, phantom.density, rows, influence.beamlets, None,
                                        replace(influence.options, seed=s)).dose(w) for s in range(1, N_SEEDS + 1)])
    optimiser = influence.dose_grid(w).ravel()[rows]
    return {"w": w, "rows": rows, "exact": exact, "window": window, "seeds": seeds, "optimiser": optimiser,
            "planner": planner, "phantom": phantom}


def test_the_four_sigma_primary_cut_is_measured_and_below_1e_4(sib):
    cut = (sib["exact"] - sib["window"]) / sib["exact"]
    assert np.all(sib["exact"] > 0)
    assert cut.max() > 0, "the window must cut something, or this test measures nothing"
    assert cut.min() > -1e-7 and cut.max() < 1e-4, f"4-sigma primary cut up to {cut.max():.2e} of the dose"


def test_sampled_matrix_is_unbiased_for_fixed_weights(sib):
    """The weights were chosen against seed 0 only: for seeds 1..16 they are fixed weights. The sampled dose's
    expectation is the exact dose minus the cut (sib['window']); per-seed mean relative errors average to zero."""
    rel = (sib["seeds"] - sib["window"]) / sib["window"]
    per_seed = rel.mean(axis=1)
    se = per_seed.std(ddof=1) / np.sqrt(N_SEEDS)
    assert se > 0 and np.abs(rel).max() > 1e-4, "the rows must be sampled (non-zero noise)"
    t = per_seed.mean() / se
    assert abs(t) < 4.0, f"mean relative error {per_seed.mean():.2e} is {t:.1f} standard errors from zero"
    assert abs(per_seed.mean()) < 2e-4


def test_optimised_plan_sampled_vs_exact_dose_per_voxel(sib):
    err = sib["optimiser"] - sib["window"]                # sampling error of the optimiser's own draw
    noise = sib["seeds"].std(axis=0, ddof=1)              # per-voxel sampling sd on independent draws
    assert np.all(np.abs(err) <= 5.0 * noise + 1e-9 * sib["exact"]), \
        f"worst |error| / sd = {np.max(np.abs(err) / np.maximum(noise, 1e-30)):.1f}"
    rel = np.abs(sib["optimiser"] - sib["exact"]) / sib["exact"]
    assert rel.max() < 0.03, f"per-voxel optimiser-vs-exact error up to {100 * rel.max():.2f} %"


def test_optimised_plan_dvh_metrics_within_0_3_gy(sib):
    phantom, rows = sib["phantom"], sib["rows"]
    masks = {name: phantom.structures[name] for name in ("GTV", "PTV_Eval")}
    doses = {}
    for name in ("exact", "optimiser"):
        grid = np.zeros(phantom.grid.n_voxels)
        grid[rows] = sib[name]
        dvh = compute_dvhs(grid.reshape(phantom.grid.shape), {"PTV_Eval": masks["PTV_Eval"]},
                           phantom.grid.voxel_volume_cc)["PTV_Eval"]
        grid *= 30.0 / dvh.metric("D90%")                 # each normalised to PTV_Eval D90% = 30 Gy
        doses[name] = compute_dvhs(grid.reshape(phantom.grid.shape).astype(np.float32), masks,
                                   phantom.grid.voxel_volume_cc)
    for structure, metrics in (("GTV", ("D2%", "D50%", "D90%", "D98%")), ("PTV_Eval", ("D2%", "D98%"))):
        for metric in metrics:
            diff = doses["optimiser"][structure].metric(metric) - doses["exact"][structure].metric(metric)
            assert abs(diff) <= 0.3, f"{structure} {metric}: optimiser - exact = {diff:+.3f} Gy"


def test_exact_rows_of_the_sampled_matrix_are_exact(sib, tiny_plan_inputs):
    """Cord, PRV and sac rows are never sampled: the optimiser's dose there equals the exact dose."""
    phantom, influence = tiny_plan_inputs.phantom, tiny_plan_inputs.influence
    organ = (phantom.structures["SpinalCord_PRV02"] | phantom.structures["SpinalCord"]).ravel()
    rows = np.flatnonzero(organ)
    geometry = replace(DoseGeometry.build(phantom, influence.beamlets, "cpu"), voxels=rows)
    exact = final_dose(phantom, influence.beamlets, sib["w"], geometry=geometry).dose_gy.ravel()[rows]
    optimiser = influence.dose_grid(sib["w"]).ravel()[rows]
    assert rows.size > 50 and exact.max() > 1.0
    np.testing.assert_allclose(optimiser, exact, rtol=2e-6, atol=1e-6 * exact.max())
