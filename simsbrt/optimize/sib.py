"""Bracketing search on one scalar goal (the GTV boost, or the escalated prescription).

For a goal value g the caller optimises a plan (warm-started from the best feasible weights so
far), normalises it to the prescription and evaluates it with simsbrt.evaluate; ``acceptable``
decides on that evaluation. The search tries the lower end, then the upper end, then bisects
``steps`` times; it returns the feasible plan with the highest goal and the infeasible plan at the
lowest goal that failed (its violated limits are the binding ones). Deterministic: the sequence
of goals depends only on the verdicts.

Monotonicity in a limit (e.g. the cord PRV D0.03cc): if every verdict under a tighter limit
implies the same verdict under the looser one for the same plan, two searches follow the same
path until the first goal m where they differ; there the looser search moves up (its result is
>= m) and the tighter one moves down (its result is < m). So the tighter limit never gives a
higher goal, provided the plans themselves do not depend on the limit. The plans do depend on
it through the organ aim (limit - margin); the tests check the resulting behaviour.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from simsbrt.errors import SpecError


@dataclass(frozen=True, eq=False)
class SearchStep:
    goal_gy: float
    acceptable: bool
    n_iterations: int
    violated_limits: tuple[str, ...]
    summary: dict            # a few evaluated metrics of the normalised plan

    def to_dict(self) -> dict:
        return {"goal_gy": self.goal_gy, "acceptable": self.acceptable, "n_iterations": self.n_iterations,
                "violated_limits": list(self.violated_limits), **self.summary}


@dataclass(frozen=True, eq=False)
class SearchOutcome:
    best: Any | None            # the candidate with the highest acceptable goal (None: none acceptable)
    best_goal_gy: float | None
    lowest_failure: Any | None  # the candidate at the lowest goal that was not acceptable
    steps: tuple[SearchStep, ...]
    accepted: tuple = ()        # every acceptable candidate, in the order tried

    @property
    def stop_reason(self) -> str:
        """'infeasible at the range bottom', 'range top reached' or 'a limit binds'."""
        if self.best is None:
            return "infeasible at the range bottom"
        if self.lowest_failure is None:
            return "range top reached"
        return "a limit binds"


def bracket_search(plan_at: Callable[[float, Any], Any], acceptable: Callable[[Any], bool],
                   describe: Callable[[Any, float, bool], SearchStep], lo_gy: float, hi_gy: float,
                   n_bisections: int, progress: Callable[[str], None] | None = None,
                   label: str = "goal") -> SearchOutcome:
    """Highest goal in [lo_gy, hi_gy] whose plan is acceptable (bisection; see module docstring).

    plan_at(goal, warm_candidate_or_None) -> candidate; acceptable(candidate) -> bool.
    """
    if not (lo_gy <= hi_gy):
        raise SpecError("search range", f"lower end {lo_gy} Gy exceeds the upper end {hi_gy} Gy")
    if n_bisections < 0:
        raise SpecError("search steps", f"must be >= 0, got {n_bisections}")
    steps: list[SearchStep] = []
    accepted: list = []
    total = n_bisections + 2

    def run(goal, warm):
        cand = plan_at(goal, warm)
        ok = bool(acceptable(cand))
        step = describe(cand, goal, ok)
        steps.append(step)
        if ok:
            accepted.append(cand)
        if progress:
            progress(f"search {len(steps)}/{total}: {label} {goal:.2f} Gy -> "
                     f"{'meets the limits' if ok else 'violates ' + '; '.join(step.violated_limits)}")
        return cand, ok

    lo_cand, ok = run(lo_gy, None)
    if not ok:
        return SearchOutcome(None, None, lo_cand, tuple(steps), ())
    best, best_goal = lo_cand, lo_gy
    if hi_gy == lo_gy:
        return SearchOutcome(best, best_goal, None, tuple(steps), tuple(accepted))
    hi_cand, ok = run(hi_gy, best)
    if ok:
        return SearchOutcome(hi_cand, hi_gy, None, tuple(steps), tuple(accepted))
    failure = hi_cand
    a, b = lo_gy, hi_gy
    for _ in range(n_bisections):
        mid = 0.5 * (a + b)
        cand, ok = run(mid, best)
        if ok:
            a, best, best_goal = mid, cand, mid
        else:
            b, failure = mid, cand
    return SearchOutcome(best, best_goal, failure, tuple(steps), tuple(accepted))
