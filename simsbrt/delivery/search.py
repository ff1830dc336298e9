"""The deliverable boost search: the highest GTV boost goal whose DELIVERABLE SIB plan keeps every limit the
boost policy requires (every mandatory limit a higher boost can break; under "optimal_window" also every
optimal ceiling, as the fluence search: simsbrt.optimize.plans).

Which dose judges what:
- the fluence plan at a goal is not judged here: it only supplies the fluence that is sequenced;
- every step is judged on its deliverable's exact aperture dose (kernels/device/aperture.py) on the
  optimisation rows, which hold every voxel of PTV_Eval, GTV, cord PRV and thecal sac, normalised to
  PTV_Eval D90% (the dose the segment-MU optimiser works on; no beamlet approximation in it);
- the returned plan's verdict is simsbrt.evaluate on the final dose of make_deliverable.

Steps: step 0 is the fluence plan's own goal and weights. While a step's deliverable breaks a required limit,
the goal is lowered by 1, 2, 4, ... Gy below the fluence plan's goal (clamped to the bottom of the boost range),
each time re-optimising the FLUENCE at that goal (warm-started from the previous step's fluence), re-sequencing
it into apertures and re-optimising the segment MU. The first acceptable step and the failing step above it
bracket the answer; `bisections` bisection steps narrow it. No acceptable goal down to the range bottom: the
lowest goal's plan is returned as not feasible, and the limits that block it are named.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

FIRST_STEP_GY = 1.0      # the first goal below the fluence plan's; the distance doubles while steps fail


@dataclass(frozen=True, eq=False)
class GoalStep:
    goal_gy: float
    blocking: tuple[str, ...]       # required limits the deliverable breaks (empty: acceptable)
    resequenced: bool               # the fluence was re-optimised at this goal (False: the fluence plan's own)
    fluence_weights: np.ndarray     # the fluence that was sequenced (MU)
    result: Any                     # what deliver_at returned for this step

    @property
    def ok(self) -> bool:
        return not self.blocking

    def to_dict(self) -> dict:
        return {"goal_gy": round(float(self.goal_gy), 4), "acceptable": self.ok, "blocking": list(self.blocking),
                "resequenced": self.resequenced}


@dataclass(frozen=True, eq=False)
class SearchResult:
    chosen: GoalStep
    steps: tuple[GoalStep, ...]
    feasible: bool                  # chosen.ok
    note: str                       # how the search ended, for search_stop


def deliverable_boost_search(deliver_at: Callable, fluence_at: Callable, blocking: Callable, top_gy: float,
                             bottom_gy: float, top_weights, bisections: int, say=None) -> SearchResult:
    """deliver_at(fluence_weights, goal_gy) -> (result, evaluation); fluence_at(goal_gy, warm_weights) -> weights;
    blocking(evaluation) -> names of the required limits it breaks (module docstring)."""
    say = say or (lambda message: None)
    steps: list[GoalStep] = []

    def run(goal, weights, resequenced):
        result, evaluation = deliver_at(weights, goal)
        step = GoalStep(float(goal), tuple(blocking(evaluation)), resequenced, weights, result)
        steps.append(step)
        say(f"deliverable search {len(steps)}: GTV boost goal {goal:.2f} Gy "
            f"({'re-sequenced fluence' if resequenced else 'fluence plan'}) -> "
            f"{'; '.join(step.blocking) or 'meets the limits'}")
        return step

    first = run(top_gy, np.asarray(top_weights, np.float64), False)
    if first.ok:
        return SearchResult(first, tuple(steps), True, "")
    best, fail, distance, weights = None, first, FIRST_STEP_GY, first.fluence_weights
    while best is None and fail.goal_gy > bottom_gy + 1e-9:
        goal = max(top_gy - distance, bottom_gy)
        weights = fluence_at(goal, weights)
        step = run(goal, weights, True)
        if step.ok:
            best = step
        else:
            fail, distance = step, 2.0 * distance
    if best is None:
        return SearchResult(fail, tuple(steps), False,
                            f"no deliverable plan meets the limits down to the GTV boost goal {fail.goal_gy:.2f} Gy "
                            f"(binding: {'; '.join(fail.blocking)}; at the fluence plan's goal {top_gy:.2f} Gy: "
                            f"{'; '.join(first.blocking)})")
    for _ in range(int(bisections)):
        mid = 0.5 * (best.goal_gy + fail.goal_gy)
        step = run(mid, fluence_at(mid, best.fluence_weights), True)
        if step.ok:
            best = step
        else:
            fail = step
    return SearchResult(best, tuple(steps), True,
                        f" at GTV boost goal {best.goal_gy:.2f} Gy, re-sequenced from a fluence plan at that goal "
                        f"(at the fluence plan's goal {top_gy:.2f} Gy it violates {'; '.join(first.blocking)}; "
                        f"lowest failing goal {fail.goal_gy:.2f} Gy)")
