"""The faster optimiser: truncated matrix + iterated correction, and the interpolating search.

Truncation is checked against the full matrix built independently (scipy, from the operator's own
CSR arrays); the search against a root found by scipy's brentq; the plans against the reference
(bisection, full matrix) path on the tiny case of simsbrt.tiny_case."""
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.optimize import brentq

from simsbrt.errors import SpecError
from simsbrt.evaluate.dvh import to_host
from simsbrt.optimize.plans import PlanSettings, make_plan
from simsbrt.optimize.problem import CORD_PRV, FluenceProblem, PlanGoals
from simsbrt.optimize.search import interpolating_pick
from simsbrt.optimize.sib import SearchStep, bracket_search
from simsbrt.optimize.solvers import SolverOptions
from simsbrt.optimize.truncation import correction_error_bound, optimise_truncated, truncate

FRAC = 0.05


# ------------------------------------------------------------------ the search, on a model of the margin
def _margin(goal):
    """A binding limit's margin (Gy) falling faster and faster with the goal, like a D2% against its ceiling."""
    return 47.3 - goal - 0.02 * (goal - 30.0) ** 2


def _search(pick, tolerance_gy=0.0):
    def plan_at(goal, warm):
        return SimpleNamespace(goal=goal, margin=_margin(goal))

    def describe(c, goal, ok):
        return SearchStep(goal, ok, 0, (), {})

    return bracket_search(plan_at, lambda c: c.margin >= 0, describe, 30.0, 51.0, 5, None, "goal", pick, tolerance_gy)


def test_interpolating_search_ends_nearer_the_limit_in_fewer_steps_and_is_deterministic():
    root = brentq(_margin, 30.0, 51.0)
    bisection = _search(None)
    pick = interpolating_pick(lambda cand, failure: cand.margin, 0.3)
    fast = _search(pick, tolerance_gy=0.3)
    assert root - 21.0 / 2 ** 5 <= bisection.best_goal_gy <= root        # bisection's own resolution
    assert root - 0.3 <= fast.best_goal_gy <= root
    assert fast.best_goal_gy >= bisection.best_goal_gy
    assert len(fast.steps) < len(bisection.steps)
    again = _search(interpolating_pick(lambda cand, failure: cand.margin, 0.3), tolerance_gy=0.3)
    assert [s.goal_gy for s in again.steps] == [s.goal_gy for s in fast.steps]


def test_interpolating_search_bisects_without_usable_margins():
    pick = interpolating_pick(lambda cand, failure: None)
    assert [s.goal_gy for s in _search(pick).steps] == [s.goal_gy for s in _search(None).steps]


def test_new_settings_are_validated_by_name():
    with pytest.raises(SpecError, match="search_method"):
        PlanSettings(search_method="golden")
    with pytest.raises(SpecError, match="truncation_frac"):
        PlanSettings(truncation_frac=1.5)
    with pytest.raises(SpecError, match="truncation_rounds"):
        PlanSettings(truncation_rounds=0)
    with pytest.raises(SpecError, match="search_tolerance_gy"):
        PlanSettings(search_tolerance_gy=-1.0)


# ------------------------------------------------------------------ truncation and the correction term
@pytest.fixture(scope="module")
def tiny():
    from simsbrt.tiny_case import tiny_inputs

    return tiny_inputs("cpu")


@pytest.fixture(scope="module")
def problem(tiny):
    return FluenceProblem.build(tiny.influence, tiny.phantom.structures, target="cpu")


def _scipy(csr_raw):
    return sp.csr_matrix((to_host(csr_raw.data).astype(np.float64), to_host(csr_raw.indices).astype(np.int64),
                          to_host(csr_raw.indptr)), shape=csr_raw.shape)


def test_truncation_keeps_the_peaks_and_the_organ_rows_and_bounds_the_dropped_dose(problem):
    full = _scipy(problem.operator._m)
    t = truncate(problem, FRAC, (CORD_PRV,))
    kept = _scipy(t.operator._m)
    assert kept.nnz < 0.8 * full.nnz
    cord = to_host(problem.rows[CORD_PRV])
    assert np.array_equal(np.diff(kept.indptr)[cord], np.diff(full.indptr)[cord])     # cord rows exact
    peak = full.max(axis=0).toarray().ravel()
    dropped = (full - kept).tocoo()
    assert np.all(dropped.data >= 0) and np.all(dropped.data < FRAC * peak[dropped.col] * (1 + 1e-6))
    assert np.array_equal(kept.max(axis=0).toarray().ravel(), peak)        # every column keeps its peak
    step = np.random.default_rng(3).normal(size=full.shape[1])
    for t in (t, truncate(problem, FRAC, (CORD_PRV,), organ_frac=0.01)):
        error = np.abs((full - _scipy(t.operator._m)) @ step)
        bound = correction_error_bound(problem, t, step)
        assert np.all(error <= bound + 1e-9) and error[cord].max() >= (t.organ_frac > 0) * 1e-6


def test_correction_rounds_converge_to_the_full_matrix_dose_and_optimum(problem):
    goals = PlanGoals(boost_gy=40.0)
    options = SolverOptions(max_iter=100, ftol=1e-7)
    t = truncate(problem, FRAC, (CORD_PRV,))
    full = _scipy(problem.operator._m)
    kept = _scipy(t.operator._m)
    x = []
    res = optimise_truncated(problem, t, goals, None, options=options, rounds=3, stop_gy=0.0,
                             on_round=lambda k, xk: x.append(to_host(xk).copy()))
    assert len(x) == 4 and np.allclose(to_host(problem.to_distinct(res.x)), x[3])
    # the optimiser's dose at x_k is D_t x_k + (D - D_t) x_{k-1}; its error (D - D_t)(x_k - x_{k-1}) shrinks
    errors = [np.abs((full - kept) @ (x[k] - x[k - 1])) for k in (1, 2, 3)]
    for k, err in zip((1, 2, 3), errors):
        assert np.all(err <= correction_error_bound(problem, t, x[k] - x[k - 1]) + 1e-9)
    assert errors[2].max() < 0.2 * errors[0].max()
    assert errors[2].max() < 0.3                                             # Gy, on a 30 Gy prescription
    # and the full-matrix objective of the result is within 2 % of the full-matrix optimum
    objective = problem.objective(goals)
    reference = problem.optimise(goals, None, options=options)
    f_ref = objective.value_and_gradient(problem.to_distinct(reference.x))[0]
    f_trunc = objective.value_and_gradient(x[3])[0]
    f_uncorrected = objective.value_and_gradient(to_host(problem.to_distinct(
        replace(problem, operator=t.operator).optimise(goals, None, options=options).x)))[0]
    assert f_trunc <= 1.02 * f_ref
    assert f_uncorrected > f_trunc          # the correction term is what brings it there


# ------------------------------------------------------------------ plans: deterministic, quality kept
def _settings(**fast):
    base = PlanSettings(n_bisections=3, organ_rounds=0, floor_rounds=0,
                        search_solver_options=SolverOptions(max_iter=40, ftol=1e-5),
                        solver_options=SolverOptions(max_iter=60, ftol=1e-6))
    return replace(base, **fast)


FAST = {"search_method": "interpolate", "search_tolerance_gy": 0.3, "truncation_frac": FRAC}


def test_fast_sib_plan_is_deterministic_and_not_worse_than_the_reference(tiny):
    reference = make_plan(tiny, "sib", _settings())
    fast = make_plan(tiny, "sib", _settings(**FAST))
    again = make_plan(tiny, "sib", _settings(**FAST))
    assert np.array_equal(fast.weights, again.weights)
    assert [s.goal_gy for s in fast.search] == [s.goal_gy for s in again.search]
    assert fast.feasible or not reference.feasible, fast.search_stop
    # judged on the exact final dose of each plan
    assert fast.metrics["GTV"]["D50%"] >= reference.metrics["GTV"]["D50%"] - 0.3
    assert fast.final_dose["exact"] and reference.final_dose["exact"]
