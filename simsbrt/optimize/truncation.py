"""A truncated optimisation matrix with an iterated dose-correction term.

The optimiser's matrix D (simsbrt.optimize.problem: merged columns, optimisation rows) is mostly
low-dose tails: at t10_body 3 mm, 36 % of its non-zeros lie below 1 % of their column's peak and
57 % below 2 %. Each iteration costs one D w and one D^T g, so dropping the tails makes every
iteration cheaper in proportion.

Truncation (truncate): an entry D_ij is kept when D_ij >= frac * max_i D_ij (its column's peak over
the optimisation rows); in the organ rows (cord PRV, thecal sac) when D_ij >= organ_frac * max_i D_ij
(0: every entry). The organ rows are 3 % of the rows but 37 % of the non-zeros at t10_body 3 mm:
every beamlet reaches every cord voxel through its out-of-field tail, 95 % of those entries lie
below 0.3 % of their column's peak and together they give half the cord dose. The correction
term carries the dropped dose exactly at the weights it was taken at; what the optimiser loses is
their share of the gradient, so organ_frac stays much lower than frac.

Iterated correction (optimise_truncated; the usual trick of planning systems that optimise on a
cheap dose and correct it with an accurate one): the optimiser minimises F(D_t x + c) with
c = D x0 - D_t x0 held fixed, x0 the start weights; after each outer round c is recomputed at the
new weights, so D_t x + c equals the full-matrix dose D x exactly at the weights c was taken at.
The dose the optimiser saw at the returned weights x_K differs from D x_K by
(D - D_t)(x_K - x_{K-1}): each dropped entry is below frac times its column's peak, so per row
|error_i| <= frac * sum_j peak_j |x_K - x_{K-1}|_j over the columns dropped in row i
(correction_error_bound). Rounds stop early when the correction moves by less than
stop_gy on every row. The gradient is D_t^T's (the tails' share of it is left out); the objective's
dose level is exact to the bound above.

Cost: the rounds share one iteration budget, the solver's max_iter (round_budgets: each later round
LATER_ROUND_ITER_FRAC of it, the first the rest), and each round starts from the previous round's
L-BFGS curvature pairs (SolverResult.memory) instead of from steepest descent, so the rounds cost
what one optimisation of the same budget costs, on the cheaper matrix.

Which dose decides: never the truncated one. The candidate of each search step is normalised and
judged on the full optimisation-matrix dose D w of its weights over the whole influence matrix
(simsbrt.optimize.plans.full_dose_grid), exactly as without truncation; the final plan on its exact
final dose (simsbrt.optimize.correction).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable

import numpy as np
import scipy.sparse as sp

from simsbrt.errors import SpecError
from simsbrt.evaluate.dvh import to_host
from simsbrt.optimize.correction import CorrectedOperator
from simsbrt.optimize.device import target_of
from simsbrt.optimize.solvers import SolverOptions, minimize_nonnegative

STOP_GY = 0.02          # outer rounds stop when the correction term moves less than this on every row (Gy)
LATER_ROUND_ITER_FRAC = 0.15   # each later round's share of the iteration budget (the first round gets the rest)


@dataclass(frozen=True, eq=False)
class TruncatedMatrix:
    """The truncated operator D_t, its rule and the column peaks."""

    operator: Any              # SparseOperator on the problem's target
    frac: float
    organ_structures: tuple[str, ...]
    organ_frac: float
    column_peak: np.ndarray    # max_i D_ij over the optimisation rows (host, float64)
    nnz_full: int

    @property
    def nnz(self) -> int:
        return int(self.operator.nnz)


def check_truncation(frac: float, rounds: int, field: str = "truncation_frac") -> None:
    if not (np.isfinite(frac) and 0.0 <= frac < 1.0):
        raise SpecError(field, f"must be in [0, 1) (0 = the full matrix), got {frac}")
    if int(rounds) < 1:
        raise SpecError("truncation_rounds", f"must be >= 1, got {rounds}")


def truncate(problem, frac: float, organ_structures: tuple[str, ...], organ_frac: float = 0.0) -> TruncatedMatrix:
    """D_t of the problem's operator: entries >= frac * column peak; in the organ structures' rows
    entries >= organ_frac * column peak (0: every entry)."""
    from simsbrt.kernels.sparse import compact_csr
    from simsbrt.optimize.device import DeviceCSR
    from simsbrt.optimize.problem import SparseOperator

    indptr, indices, data, keep, counts, peak, _ = _kept_entries(problem, frac, organ_structures, organ_frac)
    kept = compact_csr(indptr, indices, data, keep, counts)   # the operator's own index types (16-bit columns)
    target = target_of(problem.target if problem.target is not None else problem.xp)
    operator = SparseOperator.on_target(DeviceCSR(*(target.kernels.to_device(a) for a in kept),
                                                  tuple(problem.operator.shape)), target)
    return TruncatedMatrix(operator, float(frac), tuple(organ_structures), float(organ_frac), peak, int(data.size))


def _kept_entries(problem, frac: float, organ_structures, organ_frac: float):
    """Host CSR arrays of the problem's operator, the kept-entry mask with its count per row, the column
    peaks and each row's fraction (compiled host kernels: kernels/sparse.py)."""
    from simsbrt.kernels.sparse import column_peaks, kept_entries

    m = problem.operator._m
    indptr, indices, data = (to_host(a) for a in (m.indptr, m.indices, m.data))
    peak = column_peaks(indptr, indices, data, m.shape[1])
    row_frac = np.full(m.shape[0], float(frac))
    for name in organ_structures:
        if problem.has(name):
            row_frac[to_host(problem.rows[name])] = organ_frac
    keep, counts = kept_entries(indptr, indices, data, row_frac, peak)
    return indptr, indices, data, keep, counts, peak, row_frac


def correction_error_bound(problem, truncated: TruncatedMatrix, step) -> np.ndarray:
    """Per optimisation row i, frac_i * sum_j peak_j |step_j| over the columns dropped in that row (distinct
    variables): |(D - D_t) step|_i never exceeds it (each dropped entry is < frac_i * its column's peak)."""
    indptr, indices, data, keep, _, peak, row_frac = _kept_entries(problem, truncated.frac,
                                                                  truncated.organ_structures, truncated.organ_frac)
    dropped_before = np.concatenate([[0], np.cumsum(~keep, dtype=np.int64)])
    pattern = sp.csr_matrix((np.ones(int((~keep).sum())), indices[~keep].astype(np.int32), dropped_before[indptr]),
                            shape=tuple(problem.operator.shape))
    return row_frac * (pattern @ (peak * np.abs(np.asarray(step, dtype=np.float64))))


def round_budgets(max_iter: int, rounds: int) -> list[int]:
    """Iterations per outer round: the rounds share the solver's max_iter (the same iteration budget as one
    optimisation on the full matrix); each later round LATER_ROUND_ITER_FRAC of it, the first the rest."""
    later = max(1, int(max_iter * LATER_ROUND_ITER_FRAC)) if rounds > 1 else 0
    first = max(1, int(max_iter) - later * (rounds - 1))
    return [first] + [later] * (rounds - 1)


def optimise_truncated(problem, truncated: TruncatedMatrix, goals, weights0=None, solver: str = "projected_lbfgs",
                       options: SolverOptions = SolverOptions(), rounds: int = 3, stop_gy: float = STOP_GY,
                       on_round: Callable | None = None):
    """FluenceProblem.optimise on D_t x + c, c = D x - D_t x recomputed after each round (module docstring).

    problem.operator is the full optimisation matrix (possibly itself carrying the final dose's correction
    term: then c includes it). Returns a SolverResult with delivered weights, n_iter summed over the rounds
    and a message naming the rounds run. on_round(k, x) sees the distinct variables after round k (0: the start)."""
    xp = problem.xp
    kernels = target_of(problem.target if problem.target is not None else xp).kernels
    x = problem.initial_variables(goals.prescription_gy) if weights0 is None else problem.to_distinct(weights0)
    x = xp.maximum(xp.asarray(x, dtype=xp.float64), 0.0)
    base = problem.objective(goals)
    n_iter = n_eval = 0
    correction = None
    result = None
    if on_round is not None:
        on_round(0, x)
    budgets = round_budgets(options.max_iter, int(rounds))
    memory = ((), ())
    for k in range(int(rounds)):
        new = problem.operator @ x - truncated.operator @ x
        if correction is not None and kernels.host_scalar(xp.max(xp.abs(new - correction))) < stop_gy:
            break
        correction = new
        objective = replace(base, influence=CorrectedOperator(truncated.operator, correction))
        # c only shifts the dose: the Hessian D_t^T H D_t changes only where a squared penalty switches on or off
        # (H is piecewise constant), so the curvature pairs of the last round stay good ones
        result = minimize_nonnegative(objective.value_and_gradient, x, solver, xp,
                                      replace(options, max_iter=budgets[k]), host_scalar=kernels.host_scalar,
                                      memory=memory if solver == "projected_lbfgs" else ((), ()))
        memory = result.memory
        x = result.x
        if on_round is not None:
            on_round(k + 1, x)
        n_iter += result.n_iter
        n_eval += result.n_evaluations
        rounds_run = k + 1
    return replace(result, x=problem.to_delivered(x), n_iter=n_iter, n_evaluations=n_eval,
                   message=f"{result.message} (truncated matrix, {rounds_run} correction round(s))")
