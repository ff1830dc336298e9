"""The xp projected L-BFGS against scipy's L-BFGS-B and NNLS; problem assembly on a synthetic influence matrix."""
import numpy as np
import pytest
import scipy.sparse as sp
from scipy.optimize import nnls

from simsbrt.dose.influence import InfluenceMatrix
from simsbrt.errors import SpecError
from simsbrt.grid import Grid
from simsbrt.optimize.objectives import (
    FluenceObjective,
    Smoothness,
    SquaredDeviation,
    SquaredOverdose,
    SquaredUnderdose,
)
from simsbrt.optimize.problem import FluenceProblem, PlanGoals
from simsbrt.optimize.solvers import (
    SolverOptions,
    minimize_nonnegative,
    projected_lbfgs,
    scipy_lbfgsb,
)

TIGHT = SolverOptions(max_iter=3000, ftol=1e-13, pgtol=1e-11)


def _penalty_problem(seed=3, n_vox=300, n_bl=80):
    rng = np.random.default_rng(seed)
    D = sp.random(n_vox, n_bl, density=0.3, random_state=rng, format="csr") * 0.05
    target, organ = np.arange(0, n_vox // 2), np.arange(n_vox // 2, n_vox)
    objectives = (SquaredUnderdose("PTV", target, 30.0, 5.0), SquaredOverdose("PTV", target, 33.0, 1.0),
                  SquaredOverdose("OAR", organ, 10.0, 10.0), SquaredDeviation("GTV", target[:40], 40.0, 0.5))
    pairs = np.array([(i, i + 1) for i in range(n_bl - 1)])
    return FluenceObjective(D, objectives, (Smoothness(pairs, n_bl, 0.01),)), np.full(n_bl, 10.0)


def test_projected_lbfgs_reaches_the_scipy_lbfgsb_optimum():
    problem, w0 = _penalty_problem()
    ours = projected_lbfgs(problem.value_and_gradient, w0, np, TIGHT)
    ref = scipy_lbfgsb(problem.value_and_gradient, w0, TIGHT)
    assert ours.converged
    assert ours.value <= ref.value * (1 + 1e-6)
    assert np.all(ours.x >= 0)
    # the problem is convex: a bound must be active somewhere, or the comparison is trivial
    assert np.any(ref.x == 0) and np.any(ours.x == 0)


def test_projected_lbfgs_matches_nnls_on_least_squares():
    # mean((D w - d)^2) over all rows with w >= 0 is a non-negative least-squares problem: scipy's NNLS
    # (an active-set method, independent of L-BFGS) gives the exact optimum.
    rng = np.random.default_rng(7)
    D = rng.uniform(0, 1, (60, 25))
    w_true = np.where(rng.uniform(size=25) < 0.4, 0.0, rng.uniform(0, 2, 25))
    d = D @ w_true + rng.normal(0, 0.3, 60)
    d = np.maximum(d, 0.0)
    w_nnls, _ = nnls(D, d)
    objective = _LeastSquares(D, d)
    ours = projected_lbfgs(objective, np.ones(25), np, TIGHT)
    best = objective(w_nnls)[0]
    assert ours.value == pytest.approx(best, rel=1e-7, abs=1e-10)
    np.testing.assert_allclose(ours.x, w_nnls, atol=1e-4)
    assert np.any(w_nnls == 0)  # the bound is active: not an unconstrained least-squares problem


class _LeastSquares:
    def __init__(self, D, d):
        self.D, self.d = D, d

    def __call__(self, w):
        r = self.D @ w - self.d
        return float(r @ r) / len(r), 2.0 * self.D.T @ r / len(r)


def test_solver_dispatch_rejects_unknown_names_and_bad_options():
    problem, w0 = _penalty_problem(n_vox=40, n_bl=10)
    with pytest.raises(SpecError, match="solver"):
        minimize_nonnegative(problem.value_and_gradient, w0, "newton")
    with pytest.raises(SpecError, match="solver.max_iter"):
        SolverOptions(max_iter=0)


def test_projected_lbfgs_keeps_the_bound_from_a_negative_start():
    problem, w0 = _penalty_problem(n_vox=40, n_bl=10)
    res = projected_lbfgs(problem.value_and_gradient, -w0, np, SolverOptions(max_iter=50))
    assert np.all(res.x >= 0)


# ------------------------------------------------------------------ synthetic influence matrix
def _synthetic_case():
    """A 2-D slab: a round PTV_Eval with a central GTV, a cord PRV disc just behind it, pencil
    beamlets along x and y with Gaussian profiles and an exponential fall-off."""
    grid = Grid((24, 24, 3), (2.0, 2.0, 2.0), (0.0, 0.0, 0.0))
    X, Y, Z = np.meshgrid(*(np.arange(n) * 2.0 for n in grid.shape), indexing="ij")
    cx, cy = 23.0, 20.0
    r = np.hypot(X - cx, Y - cy)
    ptv = r <= 9.0
    gtv = r <= 4.5
    cord = np.hypot(X - cx, Y - (cy + 16.0)) <= 4.0
    structures = {"Body": np.ones(grid.shape, bool), "PTV": ptv, "PTV_Eval": ptv & ~cord, "GTV": gtv,
                  "SpinalCord_PRV02": cord}
    cols = []
    for pos in np.arange(8.0, 40.0, 2.0):
        for axis in (0, 1):
            lateral = (Y if axis == 0 else X) - pos
            depth = (X if axis == 0 else Y)
            cols.append((np.exp(-0.5 * (lateral / 1.5) ** 2) * np.exp(-depth / 100.0)).ravel())
    dense = np.stack(cols, axis=1) * 0.01
    dense[dense < 1e-6] = 0.0
    rows = np.flatnonzero(np.ones(grid.n_voxels, bool))
    influence = InfluenceMatrix(sp.csr_matrix(dense[rows].astype(np.float32)), rows, grid, "cpu", "cpu")
    return influence, structures


def _mean_dose(influence, weights, mask):
    return float(influence.dose_grid(weights)[mask].mean())


def test_problem_assembly_uniform_and_boost_goals_on_synthetic_matrix():
    influence, structures = _synthetic_case()
    problem = FluenceProblem.build(influence, structures)
    assert problem.row_counts["PTV_Eval"] == int(structures["PTV_Eval"].sum())
    assert problem.row_counts["GTV"] == int(structures["GTV"].sum())
    w0 = problem.initial_weights(30.0)
    np.testing.assert_allclose(_mean_dose(influence, w0, structures["PTV_Eval"]), 30.0, rtol=1e-5)

    uniform = problem.optimise(PlanGoals(cord_prv_aim_gy=15.0), options=SolverOptions(max_iter=400))
    sib = problem.optimise(PlanGoals(boost_gy=40.0, cord_prv_aim_gy=15.0), options=SolverOptions(max_iter=400))
    objective = problem.objective(PlanGoals(cord_prv_aim_gy=15.0))
    assert uniform.value < objective.value_and_gradient(w0)[0]
    rest = structures["PTV_Eval"] & ~structures["GTV"]
    gtv_uniform = _mean_dose(influence, uniform.x, structures["GTV"])
    gtv_sib = _mean_dose(influence, sib.x, structures["GTV"])
    assert abs(gtv_uniform - 30.0) < 3.0
    assert gtv_sib > gtv_uniform + 5.0
    assert _mean_dose(influence, sib.x, rest) < gtv_sib - 5.0
    # the cord PRV maximum-dose penalty: no PRV voxel far above its aim
    assert influence.dose_grid(uniform.x)[structures["SpinalCord_PRV02"]].max() < 15.0 + 2.0


def test_problem_rejects_an_empty_target_and_missing_rows():
    influence, structures = _synthetic_case()
    with pytest.raises(SpecError, match="PTV_Eval"):
        FluenceProblem.build(influence, {**structures, "PTV_Eval": np.zeros_like(structures["PTV"])})
    partial = InfluenceMatrix(influence.matrix[:100], influence.voxel_indices[:100], influence.grid, "cpu", "cpu")
    with pytest.raises(SpecError, match="influence.rows"):
        FluenceProblem.build(partial, structures)


def test_goals_reject_bad_values():
    with pytest.raises(SpecError, match="goals.prescription_gy"):
        PlanGoals(prescription_gy=-1.0)
    with pytest.raises(SpecError, match="goals.boost_gy"):
        PlanGoals(boost_gy=float("nan"))


def test_optimiser_modules_import_no_gpu_library():
    import subprocess
    import sys

    code = ("import sys, simsbrt.optimize.plans, simsbrt.optimize.cli, simsbrt.io.plan_h5; "
            "bad = [m for m in ('cupy', 'cupyx', 'numba.cuda') if m in sys.modules]; print(bad); sys.exit(bool(bad))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_curvature_memory_carries_over_between_runs():
    """A run continued with the previous run's (s, y) pairs gets further in the same iterations than one restarted
    from steepest descent (the truncated optimisation's correction rounds continue this way), and an empty
    memory is the plain solver."""
    problem, w0 = _penalty_problem(seed=7)
    first = projected_lbfgs(problem.value_and_gradient, w0, np, SolverOptions(max_iter=15, ftol=0.0, pgtol=0.0))
    assert len(first.memory[0]) == len(first.memory[1]) > 0
    more = SolverOptions(max_iter=10, ftol=0.0, pgtol=0.0)
    restarted = projected_lbfgs(problem.value_and_gradient, first.x, np, more)
    continued = projected_lbfgs(problem.value_and_gradient, first.x, np, more, memory=first.memory)
    assert continued.value < restarted.value < first.value
    plain = projected_lbfgs(problem.value_and_gradient, w0, np, more, memory=((), ()))
    assert plain.value == projected_lbfgs(problem.value_and_gradient, w0, np, more).value


def test_truncation_rounds_share_one_iteration_budget():
    from simsbrt.optimize.truncation import round_budgets

    assert round_budgets(200, 3) == [140, 30, 30]
    assert round_budgets(120, 1) == [120]
    assert all(sum(round_budgets(n, r)) <= max(n, r) for n in (1, 5, 80, 200) for r in (1, 2, 3, 5))
