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

Also here, for the SIB plan (simsbrt.optimize.plans): the boost policies (BOOST_POLICIES), the optimal
ceilings the "optimal_window" policy keeps (optimal_ceilings, ceiling_violations), and the geometry of
GTV floors capped by an organ limit (floor_conflicts, FloorConflict).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from scipy.ndimage import distance_transform_edt

from simsbrt.errors import SpecError
from simsbrt.evaluate.metrics import DOSE_AT_PERCENT, DOSE_AT_VOLUME_CC, DOSE_MAX, parse_metric
from simsbrt.optimize.problem import BOOST
from simsbrt.progress import add_steps
from simsbrt.progress import step as step_done


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
                   label: str = "goal", pick: Callable | None = None, tolerance_gy: float = 0.0) -> SearchOutcome:
    """Highest goal in [lo_gy, hi_gy] whose plan is acceptable (bisection; see module docstring).

    plan_at(goal, warm_candidate_or_None) -> candidate; acceptable(candidate) -> bool.
    pick(a, b, best, failure, steps) -> the next goal inside the bracket (None: its midpoint; see
    simsbrt.optimize.search); the inner steps stop early once the bracket is no wider than tolerance_gy.
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
        step_done(progress, f"search {len(steps)}/{total}: {label} {goal:.2f} Gy -> "
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
    for k in range(n_bisections):
        if b - a <= tolerance_gy:
            add_steps(progress, -(n_bisections - k))    # the steps announced but not needed
            break
        mid = 0.5 * (a + b) if pick is None else pick(a, b, best, failure, steps)
        cand, ok = run(mid, best)
        if ok:
            a, best, best_goal = mid, cand, mid
        else:
            b, failure = mid, cand
    return SearchOutcome(best, best_goal, failure, tuple(steps), tuple(accepted))


# ------------------------------------------------------------------ SIB boost policy and GTV floors
# Boost policies of the SIB search (PlanSettings.boost_policy):
#   "max":            the highest boost goal whose plan keeps every mandatory limit that a higher boost can
#                     break (the GTV floors rise with the boost and are left to the final verdict);
#   "optimal_window": the highest boost goal whose plan also keeps every *optimal ceiling* of the protocol
#                     (sib_trial: GTV D2% <= 48 Gy, PTV_Eval D2% <= 48 Gy; read from the protocol).
BOOST_POLICIES = ("max", "optimal_window")


def check_boost_policy(policy) -> str:
    if policy not in BOOST_POLICIES:
        raise SpecError("boost_policy", f"unknown boost policy {policy!r}; choose one of {', '.join(BOOST_POLICIES)}")
    return policy


@dataclass(frozen=True)
class OptimalCeiling:
    """The upper bound of one protocol row's optimal range (e.g. GTV D2% optimal <= 48 Gy)."""

    structure: str
    metric: str
    max_value: float
    unit: str

    @property
    def name(self) -> str:
        unit = self.unit if self.unit == "%" else f" {self.unit}"
        return f"{self.structure} {self.metric} optimal <= {self.max_value:g}{unit}"


def optimal_ceilings(protocol) -> tuple[OptimalCeiling, ...]:
    """Every optimal upper bound of the protocol, except the prescription row's (normalisation meets it)."""
    rx = protocol.prescription
    return tuple(OptimalCeiling(lim.structure, lim.metric.name, float(lim.optimal.max_value), lim.metric.unit)
                 for lim in protocol.limits
                 if lim.optimal is not None and lim.optimal.max_value is not None
                 and not (lim.structure == rx.structure and lim.metric.name == rx.metric.name))


def ceiling_violations(evaluation, ceilings, tolerance: float) -> tuple[str, ...]:
    """Names of the optimal ceilings the evaluated plan exceeds (rows without a value are skipped)."""
    out = []
    for c in ceilings:
        try:
            value = evaluation.row(c.structure, c.metric).value
        except KeyError:
            continue
        if value is not None and value > c.max_value + tolerance:
            out.append(c.name)
    return tuple(out)


@dataclass(frozen=True)
class FloorConflict:
    """A GTV dose floor (D_x% >= F) against an organ maximum (limit L < F) of a structure the GTV touches.

    proven: the geometry alone makes the floor unattainable while the organ limit holds. With the DVH
    interpolation of simsbrt.evaluate.dvh (voxel centres, sorted descending), an organ limit such as
    D0.03cc <= L lets at most n_organ_hot_allowed organ voxels exceed L, so at least
    n_in_organ - n_organ_hot_allowed GTV voxels stay <= L < F; a D_x% floor fails once that count
    reaches n_cold_allowed = n_gtv (1 - x/100) + 1/2 (the x % point then lies on or past the centre
    of a cold voxel).
    """

    floor: str                  # e.g. "GTV D90% >= 27 Gy"
    organ_limit: str            # e.g. "SpinalCord_PRV02 D0.03cc <= 25 Gy"
    organ: str
    n_gtv_voxels: int
    n_in_organ: int             # GTV voxels inside the organ
    n_near_organ: int           # GTV voxels inside or within one voxel (the largest spacing) of it
    n_organ_hot_allowed: int | None   # organ voxels the organ limit lets exceed it (None: not derivable)
    n_cold_allowed: float | None      # GTV voxels the floor lets lie below it (None: not a D_x% floor)
    proven: bool

    @property
    def in_organ_frac(self) -> float:
        return self.n_in_organ / self.n_gtv_voxels

    @property
    def near_organ_frac(self) -> float:
        return self.n_near_organ / self.n_gtv_voxels

    def describe(self) -> str:
        geometry = (f"{self.n_in_organ} of {self.n_gtv_voxels} GTV voxels ({100 * self.in_organ_frac:.1f} %) lie "
                    f"inside {self.organ}, {self.n_near_organ} ({100 * self.near_organ_frac:.1f} %) inside or "
                    "within one voxel of it")
        if self.proven:
            geometry += (f"; the organ limit lets at most {self.n_organ_hot_allowed} of those exceed it, so at least "
                         f"{self.n_in_organ - self.n_organ_hot_allowed} stay below the floor, which tolerates fewer "
                         f"than {self.n_cold_allowed:g}: geometrically unattainable")
        return f"{self.floor} conflicts with {self.organ_limit} ({geometry})"


def capping_limits(protocol, floor_gy: float) -> tuple:
    """Mandatory maximum-dose limits (Gy) of structures other than the GTV that lie below a GTV floor."""
    return tuple(lim for lim in protocol.limits
                 if lim.structure != BOOST and lim.metric.unit == "Gy" and lim.mandatory is not None
                 and lim.mandatory.max_value is not None and lim.mandatory.max_value < floor_gy)


def floor_conflicts(protocol, floor_rows, masks: dict, spacing_mm) -> tuple[FloorConflict, ...]:
    """The organ maxima (mandatory max below the floor) of structures the GTV lies in or touches, per floor row.

    floor_rows: evaluated protocol rows of GTV floors (mandatory min, no max). Organs absent or empty in
    ``masks`` are skipped. Pure geometry; see FloorConflict for the 'proven' rule.
    """
    gtv = np.asarray(masks[BOOST], bool)
    n_gtv = int(gtv.sum())
    if n_gtv == 0:
        return ()
    voxel_cc = float(np.prod(spacing_mm)) / 1000.0
    out = []
    near_cache = {}
    for row in floor_rows:
        floor_gy = row.mandatory.min_value
        n_cold_allowed = _cold_voxels_allowed(parse_metric(row.metric), n_gtv)
        for lim in capping_limits(protocol, floor_gy):
            organ = np.asarray(masks.get(lim.structure, np.zeros(1, bool)), bool)
            if organ.shape != gtv.shape or not organ.any():
                continue
            if lim.structure not in near_cache:
                distance = distance_transform_edt(~organ, sampling=spacing_mm)
                near_cache[lim.structure] = (int((gtv & organ).sum()),
                                             int((gtv & (distance <= max(spacing_mm) + 1e-6)).sum()))
            n_in, n_near = near_cache[lim.structure]
            if n_near == 0:
                continue
            hot_allowed = _hot_voxels_allowed(lim.metric, int(organ.sum()), voxel_cc)
            proven = (hot_allowed is not None and n_cold_allowed is not None
                      and n_in - hot_allowed >= n_cold_allowed)
            out.append(FloorConflict(row.limit_name, lim.name, lim.structure, n_gtv, n_in, n_near,
                                     hot_allowed, n_cold_allowed, bool(proven)))
    return tuple(out)


def _cold_voxels_allowed(metric, n_voxels: int) -> float | None:
    """D_x% >= F fails once this many voxels lie below F (simsbrt.evaluate.dvh interpolation)."""
    if metric.kind != DOSE_AT_PERCENT:
        return None
    return n_voxels * (1.0 - metric.parameter / 100.0) + 0.5


def _hot_voxels_allowed(metric, n_organ_voxels: int, voxel_cc: float) -> int | None:
    """The most organ voxels above L that keep the organ metric <= L: j with (j - 1/2) v < V (voxel centres)."""
    if metric.kind == DOSE_MAX:
        return 0
    if metric.kind == DOSE_AT_VOLUME_CC:
        return max(math.ceil(metric.parameter / voxel_cc + 0.5) - 1, 0)
    if metric.kind == DOSE_AT_PERCENT:
        return max(math.ceil(metric.parameter / 100.0 * n_organ_voxels + 0.5) - 1, 0)
    return None
