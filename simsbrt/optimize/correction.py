"""The verdict on the exact dose: the final dose of a plan and the dose-correction loop.

Which dose each step of planning uses, and why:

* Search steps (the SIB boost bisection, the escalation search, the organ and GTV-floor rounds)
  optimise and judge on the optimiser's dose D w: the sampled influence matrix of the optimisation
  (simsbrt.dose.engine, unbiased for fixed weights; cord, PRV and thecal-sac rows exact). The exact
  dose costs about as much as a full optimisation on the CPU, so it is not run for every step;
  the steps only choose where the search goes.
* The chosen plan is then judged on the exact final dose of its weights (simsbrt.dose.final: no
  sampling, no cut-off, the full phantom): normalised to the prescription (PTV_Eval D90%) on that
  dose, evaluated by simsbrt.evaluate on it, and every number the user sees comes from it.
* Dose-correction loop (the usual one of commercial planning systems): if the exact dose breaks a
  mandatory limit that the optimiser's dose met, the plan is re-optimised at the same goal, with the same
  objectives (the extra GTV-floor objectives of a plan chosen after floor rounds too), from its
  own weights with the objective on D w + c, c = exact - optimiser dose of the current weights on
  the optimisation rows, held fixed during the optimisation (so the optimiser sees the dose the
  verdict will see, to first order); then the exact dose is recomputed. At most max_rounds rounds.
  The round whose exact dose breaks the fewest mandatory limits is kept (the first plan on ties);
  a limit still broken makes the plan infeasible and is named (FinalPlan.broken).

The differences final - optimiser (Gy) of the reported DVH metrics are those of the same final
weights: the exact dose minus the optimisation matrix's dose D w (without correction term).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any, Callable

import numpy as np

from simsbrt.evaluate import evaluate_protocol, prescription_scale_factor
from simsbrt.progress import add_steps
from simsbrt.progress import step as step_done

# (structure, metric) pairs whose final - optimiser difference the plan records
DIFFERENCE_METRICS = (("GTV", "D2%"), ("GTV", "D50%"), ("GTV", "D90%"), ("GTV", "D98%"),
                      ("PTV_Eval", "D2%"), ("PTV_Eval", "D90%"), ("PTV_Eval", "D98%"),
                      ("SpinalCord_PRV02", "D0.03cc"), ("ThecalSac", "D0.03cc"))
MAX_CORRECTION_ROUNDS = 2


class CorrectedOperator:
    """D w + c with a fixed correction c (Gy per optimisation row); the gradient operator D^T is D's own."""

    def __init__(self, operator, correction_gy):
        self._op = operator
        self.correction_gy = correction_gy
        self.shape = operator.shape

    @property
    def nnz(self) -> int:
        return int(self._op.nnz)

    def __matmul__(self, vector):
        return self._op @ vector + self.correction_gy

    @property
    def T(self):
        return self._op.T

    @property
    def fuses_penalties(self) -> bool:
        return bool(getattr(self._op, "fuses_penalties", False))

    def penalty_value_gradient(self, vector, penalties, offset=None):
        shift = self.correction_gy if offset is None else self.correction_gy + offset
        return self._op.penalty_value_gradient(vector, penalties, shift)


@dataclass(frozen=True, eq=False)
class FinalPlan:
    candidate: Any                 # plans.Candidate: weights normalised on the exact dose; dose_gy = exact dose
    optimiser_dose_gy: np.ndarray  # the optimisation matrix's dose D w of the same final weights (float32)
    record: dict                   # how the final dose was made (exact, time_s, backend, ..., correction_rounds)
    differences: dict              # "GTV D50%" -> final - optimiser (Gy, None where not evaluated)
    broken: tuple[str, ...]        # mandatory limits the exact dose breaks that the optimiser's dose met


def metric_differences(final_gy, optimiser_gy, masks: dict, voxel_cc: float) -> dict:
    """final - optimiser (Gy) of DIFFERENCE_METRICS (None for a structure missing or empty)."""
    from simsbrt.evaluate import compute_dvhs

    present = {s: masks[s] for s, _ in DIFFERENCE_METRICS if s in masks and np.any(masks[s])}
    final = compute_dvhs(final_gy, present, voxel_cc)
    opt = compute_dvhs(optimiser_gy, present, voxel_cc)
    out = {}
    for structure, metric in DIFFERENCE_METRICS:
        key = f"{structure} {metric}"
        out[key] = (round(float(final[structure].metric(metric)) - float(opt[structure].metric(metric)), 4)
                    if structure in present else None)
    return out


def finalise(planner, cand, protocol, reoptimise: Callable[[Any], Any], progress=None,
             max_rounds: int = MAX_CORRECTION_ROUNDS, exact=None) -> FinalPlan:
    """The chosen optimiser candidate -> its plan judged on the exact dose, with the dose-correction loop.

    planner: plans._Planner (exact_dose, optimiser_dose, set_correction); reoptimise(warm_candidate) -> a new
    optimiser candidate at the same goal (run while the planner holds the correction term). exact: the exact
    final dose of cand.weights when already computed (simsbrt.dose.final.FinalDose; plans.make_plans computes
    those of several plans in one pass), else it is computed here.
    """
    t0 = time.perf_counter()
    met_by_optimiser = set(cand.evaluation.violated_limits)
    tried = []
    exact = planner.exact_dose(cand.weights) if exact is None else exact
    for round_ in range(max_rounds + 1):
        final = _judged(planner, cand, exact, protocol)
        broken = tuple(n for n in final.evaluation.violated_limits if n not in met_by_optimiser)
        tried.append((len(final.evaluation.violated_limits), round_, final, exact, broken))
        if progress:
            verdict = "breaks " + "; ".join(broken) if broken else "keeps every limit the optimiser's dose met"
            shared = f", one pass for {exact.n_in_pass} plans" if exact.n_in_pass > 1 else ""
            step_done(progress, f"exact final dose ({exact.n_voxels} voxels, {exact.time_s:.1f} s{shared}, "
                                f"{exact.backend}): {verdict}" + (f" (correction round {round_})" if round_ else ""))
        if not broken or round_ == max_rounds:
            break
        correction = exact.dose_gy.astype(np.float64) - planner.optimiser_dose(cand.weights)
        add_steps(progress, 2)
        planner.set_correction(correction)
        try:
            cand = reoptimise(cand)
        finally:
            planner.set_correction(None)
        step_done(progress, f"re-optimised on the optimiser's dose + the exact-dose correction (round {round_ + 1})")
        exact = planner.exact_dose(cand.weights)
    _, rounds, final, exact, broken = min(tried, key=lambda t: (t[0], t[1]))
    optimiser = planner.optimiser_dose(final.weights).astype(np.float32)
    record = {**exact.record(), "correction_rounds": len(tried) - 1, "kept_round": rounds,
              "total_s": round(time.perf_counter() - t0, 3)}
    diffs = metric_differences(final.dose_gy, optimiser, planner.masks, planner.voxel_cc)
    return FinalPlan(final, optimiser, record, diffs, broken)


def _judged(planner, cand, exact, protocol):
    """The candidate normalised and evaluated on its exact dose."""
    factor = prescription_scale_factor(protocol, exact.dose_gy, planner.masks, planner.voxel_cc)
    dose = (exact.dose_gy.astype(np.float64) * factor).astype(np.float32)
    evaluation = evaluate_protocol(protocol, dose, planner.masks, planner.voxel_cc)
    return replace(cand, weights=cand.weights * factor, dose_gy=dose, evaluation=evaluation,
                   scale_factor=cand.scale_factor * factor)
