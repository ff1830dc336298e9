"""Where the next search step goes: bisection, or interpolation on the binding limits' margins.

The searches of simsbrt.optimize.plans (the SIB boost goal, the escalated prescription) look for
the highest goal whose normalised plan is acceptable (simsbrt.optimize.sib.bracket_search). Each
step costs an optimisation. Bisection halves the bracket [a, b] (a acceptable, b not) per step and
ignores how far each plan is from its limits. The evaluated plans carry that distance: the margin
of each limit (limit - value for a maximum, value - limit for a minimum, in the limit's unit), and
the margin of the limits that fail at b changes smoothly with the goal (the GTV D2% rises with the
boost goal). "interpolate" (regula falsi with a safeguard) puts the next goal where the straight
line through (a, margin at a) and (b, margin at b) crosses zero, kept inside the middle 80 % of the
bracket and at least the tolerance (or half the bracket) from either end, so that a step next to a
good estimate either moves the acceptable end by the tolerance or closes the bracket to it; when
one end was kept for two steps in a row its margin is halved (the Illinois modification, which
keeps regula falsi from creeping from the other end). The search stops once the bracket is no wider than the tolerance. Every step is still judged by the same verdict on the same dose as in bisection;
only the goals tried differ. Deterministic: the goals depend only on the evaluated plans.
"""
from __future__ import annotations

from typing import Callable

from simsbrt.errors import SpecError

SEARCH_METHODS = ("bisection", "interpolate")
INNER_FRAC = 0.1            # interpolated goals stay >= this fraction of the bracket from either end
INTERPOLATE_TOLERANCE_GY = 0.3   # the command line's interpolating search stops at a bracket this wide


def search_fields(method: str) -> dict:
    """PlanSettings fields of a command line's --search-method: bisection runs every step (tolerance 0),
    interpolate stops at INTERPOLATE_TOLERANCE_GY."""
    check_search_method(method)
    return {"search_method": method, "search_tolerance_gy": INTERPOLATE_TOLERANCE_GY if method == "interpolate" else 0.0}


def check_search_method(method) -> str:
    if method not in SEARCH_METHODS:
        raise SpecError("search_method", f"unknown search method {method!r}; choose one of {', '.join(SEARCH_METHODS)}")
    return method


def limit_margins(evaluation, ceilings=(), tolerance: float = 0.0) -> dict:
    """Signed distance of every mandatory limit (and optimal ceiling) from failing: > 0 met, < 0 violated."""
    out = {}
    for r in evaluation.rows:
        if r.mandatory is None or r.value is None:
            continue
        margins = [r.mandatory.max_value - r.value if r.mandatory.max_value is not None else None,
                   r.value - r.mandatory.min_value if r.mandatory.min_value is not None else None]
        margins = [m for m in margins if m is not None]
        if margins:
            out[r.limit_name] = min(margins)
    for c in ceilings:
        try:
            value = evaluation.row(c.structure, c.metric).value
        except KeyError:
            continue
        if value is not None:
            out[c.name] = c.max_value + tolerance - value
    return out


def binding_slack(margins_of: Callable, blocking: Callable) -> Callable:
    """slack(candidate, failure): the smallest margin of the candidate over the limits that fail at failure."""
    def slack(cand, failure):
        names = blocking(failure.evaluation)
        margins = margins_of(cand.evaluation)
        values = [margins[n] for n in names if n in margins]
        return min(values) if values else None
    return slack


def interpolating_pick(slack: Callable, tolerance_gy: float = 0.0) -> Callable:
    """pick(a, b, best, failure, steps) -> the next goal in (a, b) (module docstring)."""
    def pick(a: float, b: float, best, failure, steps) -> float:
        mid = 0.5 * (a + b)
        sa, sb = slack(best, failure), slack(failure, failure)
        if sa is None or sb is None or not (sa > 0.0 > sb):
            return mid
        recent = [s.acceptable for s in steps[2:]][-2:]
        if len(recent) == 2 and recent[0] == recent[1]:     # one end kept twice: halve its margin (Illinois)
            sa, sb = (sa, 0.5 * sb) if recent[0] else (0.5 * sa, sb)
        goal = a + (b - a) * sa / (sa - sb)
        width = b - a
        gap = max(INNER_FRAC * width, min(tolerance_gy, 0.5 * width))
        return min(max(goal, a + gap), b - gap)
    return pick
