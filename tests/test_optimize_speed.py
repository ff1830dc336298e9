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


def test_search_method_option_sets_the_method_and_its_tolerance(capsys):
    from simsbrt.cli import main
    from simsbrt.optimize.search import INTERPOLATE_TOLERANCE_GY, search_fields

    assert PlanSettings(**search_fields("interpolate")).search_tolerance_gy == INTERPOLATE_TOLERANCE_GY > 0
    defaults = PlanSettings()
    assert replace(defaults, **search_fields(defaults.search_method)) == defaults
    with pytest.raises(SpecError, match="search_method"):
        search_fields("golden")
    assert main(["compare", "t10_body", "--search-method", "golden"]) == 2
    assert "--search-method" in capsys.readouterr().err


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


def test_truncation_kernels_match_the_numpy_rule_entry_by_entry():
    """Column peaks = the dense column maxima (0 for an empty column); an entry is kept exactly when numpy's
    float32 comparison data >= float32(row_frac * peak) keeps it, ties at the threshold included."""
    from simsbrt.kernels.sparse import column_peaks, compact_csr, kept_entries

    rng = np.random.default_rng(11)
    dense = rng.gamma(0.5, size=(300, 40)).astype(np.float32) * (rng.random((300, 40)) < 0.3)
    dense[:, 39] = 0.0                                          # an empty column
    m = sp.csr_matrix(dense)
    peak = column_peaks(m.indptr, m.indices, m.data, 40)
    assert np.array_equal(peak, dense.max(axis=0).astype(np.float64)) and peak[39] == 0.0
    row_frac = rng.choice([0.05, 0.001, 0.3], size=300)
    ties = np.flatnonzero(np.diff(m.indptr) > 0)[:20]           # entries exactly on their row's threshold
    m.data[m.indptr[ties]] = (row_frac[ties] * peak[m.indices[m.indptr[ties]]]).astype(np.float32)
    keep, counts = kept_entries(m.indptr, m.indices, m.data, row_frac, peak)
    expected = m.data >= (np.repeat(row_frac, np.diff(m.indptr)) * peak[m.indices]).astype(np.float32)
    assert np.array_equal(keep, expected) and keep[m.indptr[ties]].all()
    mask = sp.csr_matrix((expected, m.indices, m.indptr), shape=m.shape).toarray()
    assert np.array_equal(counts, mask.sum(axis=1))
    indptr, indices, data = compact_csr(m.indptr, m.indices, m.data, keep, counts)
    kept = sp.csr_matrix((data, indices, indptr), shape=m.shape)
    assert np.array_equal(kept.toarray(), np.where(mask, m.toarray(), 0))


def test_ring_sampling_keeps_half_the_ring_rows_and_every_other_row(tiny, problem):
    from simsbrt.optimize.problem import RING, ring_mask

    grid, structures = tiny.phantom.grid, tiny.phantom.structures
    full, half = ring_mask(grid, structures), ring_mask(grid, structures, sampling=2)
    assert not np.any(half & ~full) and 0.4 < half.sum() / full.sum() < 0.6
    for axis in range(3):       # no two kept voxels are face neighbours: an even sampling in every direction
        a = np.moveaxis(half, axis, 0)
        assert not np.any(a[1:] & a[:-1])
    sampled = FluenceProblem.build(tiny.influence, structures, target="cpu", ring_sampling=2)
    assert sampled.row_counts[RING] == int(half.ravel()[tiny.influence.voxel_indices].sum())
    assert {k: v for k, v in sampled.row_counts.items() if k != RING} == \
        {k: v for k, v in problem.row_counts.items() if k != RING}
    assert sampled.operator.shape[0] < problem.operator.shape[0]
    with pytest.raises(SpecError, match="ring_sampling"):
        ring_mask(grid, structures, sampling=3)
    with pytest.raises(SpecError, match="ring_sampling"):
        PlanSettings(ring_sampling=0)


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
