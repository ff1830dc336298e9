"""The three plans: uniform, sib and uniform_escalated (sib-protocol.md).

Pipeline: phantom -> arcs -> beamlets -> influence matrix (simsbrt.dose) -> fluence problem ->
optimisation (one, or a bracketing search) -> normalisation to the prescription (PTV_Eval D90%)
-> verdict by simsbrt.evaluate on the full-grid dose with the phantom's masks. The optimiser's
own penalties never decide feasibility. Search steps are judged on the optimiser's dose; the
returned plan is normalised, judged and reported on its exact final dose (simsbrt.dose.final),
with the dose-correction loop of simsbrt.optimize.correction (its docstring says which dose each
step uses and why).

- uniform: 30 Gy to PTV_Eval, homogeneity goal, no GTV goal; protocol "uniform".
- sib: PTV_Eval at D90% = 30 Gy and the highest GTV boost goal whose normalised plan keeps every
  mandatory limit of "sib_trial" that a higher boost can break (organ maxima, D2% ceilings,
  D98% floors); the GTV D50%/D90%/D98% floors rise with the boost, so they are left to the final
  verdict. The goal range reaches the mandatory ceiling: D50% <= D2% <= 51 Gy, so a GTV goal of
  51 Gy cannot be met and the search ends where a limit binds (or says "range top reached" when
  the top of a narrower range is still acceptable). The GTV hot-spot aim is boost + 2 Gy, capped
  at 50 Gy (the 51 Gy ceiling minus 1 Gy), so it stays inside the optimal D2% range (<= 48 Gy)
  for boosts up to 46 Gy and moves toward the mandatory ceiling only above.
  Rule for "preferring optimal ranges where reachable" (deterministic): among the acceptable plans
  of the search whose GTV D50% is within optimal_preference_gy (0.5 Gy) of the highest one, the
  plan with the most protocol rows in their optimal range is chosen (ties: higher GTV D50%, then
  higher goal). Intermediate search steps run at search_solver_options (looser, warm-started);
  the chosen plan is then re-optimised at solver_options (full accuracy) from its own weights and
  kept only if it is still acceptable (otherwise the search's plan stays).
  Boost policy (PlanSettings.boost_policy): "max" is the rule above. "optimal_window" (the default,
  how the trial planned) makes a search step acceptable only if, besides those mandatory limits,
  every optimal *ceiling* of the protocol holds (each limit's optimal max, read from the protocol;
  sib_trial: GTV D2% <= 48 Gy and PTV_Eval D2% <= 48 Gy; the prescription row is met by normalisation and left out), with
  the evaluation's BOUNDARY_TOLERANCE. So it returns the highest boost whose plan stays inside the
  optimal hot-spot window (the same search, polish and optimal-range rule, all under this test).
  Optimal floors (e.g. GTV D50% >= 42 Gy) are not required. If even the range bottom breaks a
  ceiling while every mandatory limit holds, that plan is returned and search_stop says so.
  GTV floors (after either policy): if the chosen plan meets every other mandatory limit but
  violates a GTV floor (D50/D90/D98% minimum), the floor is checked against the organ maxima below
  it (cord PRV 25 Gy < GTV D90% >= 27 Gy) of structures the GTV lies in or touches
  (sib.floor_conflicts; a voxel-count bound proves some floors unattainable). Otherwise up to
  floor_rounds re-optimisations at the same goal add a GTV underdose objective at floor +
  organ_margin_gy on the GTV outside those organs (weight 10, x 5 per round); a round's plan is
  taken only if it meets every floor and breaks nothing the chosen plan kept, so an organ limit is
  never traded for a floor. A floor still violated leaves the plan infeasible: binding_limits
  start with the floor and the organ limit it conflicts with, search_stop starts with "infeasible:
  GTV floor ...: GTV D90% >= 27 Gy conflicts with SpinalCord_PRV02 D0.03cc <= 25 Gy (geometry)",
  and PlanResult.floor_conflicts holds the details.
- uniform_escalated: the whole PTV_Eval prescription p (D90% = p) raised as far as the organ
  limits and the D2% <= 51 Gy ceiling allow (protocol "uniform" with the D90% row moved to p).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, fields, replace
from typing import Any, Callable

import numpy as np

from simsbrt.backend import Backend, resolve_backend
from simsbrt.errors import SpecError
from simsbrt.evaluate import compute_dvhs, evaluate_protocol, prescription_scale_factor
from simsbrt.evaluate.protocol import BOUNDARY_TOLERANCE, OPTIMAL, VIOLATED
from simsbrt.evaluate.dvh import to_host
from simsbrt.optimize.correction import finalise
from simsbrt.optimize.objectives import SquaredUnderdose
from simsbrt.optimize.problem import BOOST, CORD_PRV, THECAL_SAC, FluenceProblem, PlanGoals, check_ring_sampling
from simsbrt.optimize.protocol_numbers import (DEFAULT_PROTOCOL, ORGAN_MARGIN_GY, PlanningNumbers, as_protocol,
                                               mode_protocol, planning_numbers)
from simsbrt.optimize.sib import (FloorConflict, SearchStep, bracket_search, capping_limits, ceiling_violations,
                                  check_boost_policy, floor_conflicts, optimal_ceilings)
from simsbrt.optimize.search import binding_slack, check_search_method, interpolating_pick, limit_margins
from simsbrt.optimize.solvers import SOLVERS, SolverOptions
from simsbrt.optimize.truncation import check_truncation, optimise_truncated, truncate
from simsbrt.progress import add_steps, fraction
from simsbrt.progress import step as step_done
from simsbrt.protocols.loader import Prescription, Protocol, Range

log = logging.getLogger(__name__)

MODES = ("uniform", "sib", "uniform_escalated")
PROTOCOL_OF_MODE = {"uniform": "uniform", "sib": "sib_trial", "uniform_escalated": "uniform"}  # of the default
# protocol only; a plan's protocol is protocol_for(mode, settings) (its settings.protocol and comparator)
ORGAN_STRUCTURES = (CORD_PRV, THECAL_SAC)
REPORTED_METRICS = {
    "GTV": ("D50%", "D98%", "D2%", "D90%"),
    "PTV_Eval": ("D50%", "D98%", "D2%", "D90%"),
    CORD_PRV: ("D0.03cc",),
    THECAL_SAC: ("D0.03cc",),
}


@dataclass(frozen=True)
class PlanSettings:
    """How a plan is searched for. protocol: a built-in name, a TOML path or a Protocol (every planning number
    comes from it: simsbrt.optimize.protocol_numbers). Limits None = the protocol's own (sib_trial: cord PRV
    25 Gy, sac 30 Gy); a range end None = the protocol's (sib_trial: boost 30-51 Gy, escalation 30-48 Gy)."""

    cord_prv_limit_gy: float | None = None
    thecal_sac_limit_gy: float | None = None
    organ_margin_gy: float = ORGAN_MARGIN_GY   # optimiser aims at limit - margin (verdict is on the evaluated dose)
    boost_range_gy: tuple[float | None, float | None] = (None, None)
    escalation_range_gy: tuple[float | None, float | None] = (None, None)
    n_bisections: int = 5
    organ_rounds: int = 2                   # extra rounds with 5x organ weight when an organ limit fails
    solver: str = "projected_lbfgs"
    solver_options: SolverOptions = SolverOptions(max_iter=200, ftol=1e-6)       # single plans, final polish
    search_solver_options: SolverOptions = SolverOptions(max_iter=80, ftol=1e-5)   # search steps (warm starts)
    optimal_preference_gy: float = 0.5
    polish: bool = True
    goals: PlanGoals = PlanGoals()
    boost_policy: str = "optimal_window"    # SIB: "optimal_window" (the trial's way) or "max" (module docstring)
    floor_rounds: int = 2                   # SIB: extra rounds with a GTV-floor objective when a GTV floor fails
    protocol: Any = DEFAULT_PROTOCOL        # name, TOML path or Protocol (see the docstring)
    # the optimiser's cost (simsbrt.optimize.search, simsbrt.optimize.truncation): where the search steps go
    # ("bisection" | "interpolate") and when they stop (bracket width, Gy of goal); the optimisation matrix
    # truncated below this fraction of each column's peak (0: the full matrix) with this many correction rounds.
    # Defaults measured at t10_body 2 mm (docs/speed.md): 0.05 / 0.001 keep 41 % of the non-zeros, every plan
    # within 0.05 Gy of GTV D50% or better on its exact final dose, the three plans 271 -> 158 s. The
    # interpolating search (0.3 Gy) stays opt-in: 6 / 5 steps instead of 7 / 7 there, but with one inner step on
    # the tiny case it ends at the range bottom where bisection reaches 40.5 Gy (docs/speed.md)
    search_method: str = "bisection"
    search_tolerance_gy: float = 0.0
    truncation_frac: float = 0.05
    truncation_rounds: int = 3
    truncation_organ_frac: float = 0.001    # the same for the cord PRV / thecal sac rows (0: every entry kept)
    # uniform_escalated: "full" runs every search step at solver_options; "search" runs the warm-started steps at
    # search_solver_options and re-optimises the chosen plan at solver_options (kept if still feasible), as sib does
    escalation_step_options: str = "search"
    # the normal-tissue ring's optimisation rows: 1 = every ring voxel, 2 = a checkerboard (half the rows; the
    # ring penalty is a mean over its voxels). Only the optimiser's objective sees it; every verdict is on full doses.
    # Measured at t10_body 2 mm (docs/speed.md): 2 = 24 % fewer non-zeros, the three plans 161 -> 139 s, GTV D50%
    # within 0.03 Gy, the same limits met
    ring_sampling: int = 2

    def __post_init__(self):
        for name in ("cord_prv_limit_gy", "thecal_sac_limit_gy"):
            v = getattr(self, name)
            if v is not None and not (np.isfinite(v) and v > 0):
                raise SpecError(name.replace("_", "-"), f"must be a dose > 0 Gy, got {v}")
        if not (np.isfinite(self.organ_margin_gy) and self.organ_margin_gy >= 0):
            raise SpecError("organ_margin_gy", f"must be >= 0 Gy, got {self.organ_margin_gy}")
        for name in ("boost_range_gy", "escalation_range_gy"):
            ends = getattr(self, name)
            given = [v for v in ends if v is not None]
            if (len(ends) != 2 or not all(np.isfinite(v) and v > 0 for v in given)
                    or (len(given) == 2 and ends[0] > ends[1])):
                raise SpecError(name, f"needs 0 < low <= high (None = the protocol's), got {tuple(ends)}")
        if self.solver not in SOLVERS:
            raise SpecError("solver", f"unknown solver {self.solver!r}; choose one of {', '.join(SOLVERS)}")
        if not (np.isfinite(self.optimal_preference_gy) and self.optimal_preference_gy >= 0):
            raise SpecError("optimal_preference_gy", f"must be >= 0 Gy, got {self.optimal_preference_gy}")
        if int(self.n_bisections) < 0 or int(self.organ_rounds) < 0:
            raise SpecError("n_bisections", "search steps and organ rounds must be >= 0")
        check_boost_policy(self.boost_policy)
        if int(self.floor_rounds) < 0:
            raise SpecError("floor_rounds", f"must be >= 0, got {self.floor_rounds}")
        check_search_method(self.search_method)
        if not (np.isfinite(self.search_tolerance_gy) and self.search_tolerance_gy >= 0):
            raise SpecError("search_tolerance_gy", f"must be >= 0 Gy, got {self.search_tolerance_gy}")
        check_truncation(self.truncation_frac, self.truncation_rounds)
        check_truncation(self.truncation_organ_frac, self.truncation_rounds, "truncation_organ_frac")
        check_ring_sampling(self.ring_sampling)
        if self.escalation_step_options not in ("full", "search"):
            raise SpecError("escalation_step_options", f"choose 'full' or 'search', got {self.escalation_step_options!r}")


@dataclass(frozen=True, eq=False)
class PlanInputs:
    """Everything the optimiser needs: the phantom, the arcs, the influence matrix and the backend."""

    phantom: Any
    arc_set: Any
    influence: Any
    backend: Backend
    timings_s: dict = field(default_factory=dict)
    cache: dict = field(default_factory=dict)   # shared by the plans on these inputs (the final-dose geometry)


@dataclass(frozen=True, eq=False)
class Candidate:
    goal_gy: float
    weights: np.ndarray          # MU, normalised to the prescription
    dose_gy: np.ndarray          # full grid, normalised
    evaluation: Any              # ProtocolEvaluation
    n_iterations: int
    scale_factor: float
    extra_objectives: tuple = ()  # dose objectives beyond the goals' own it was optimised with (GTV-floor rounds)


@dataclass(frozen=True, eq=False)
class PlanResult:
    mode: str
    protocol: Protocol
    weights: np.ndarray
    dose_gy: np.ndarray          # float32, grid.shape
    evaluation: Any
    metrics: dict
    feasible: bool
    binding_limits: tuple[str, ...]
    boost_goal_gy: float | None
    prescription_gy: float
    cord_prv_limit_gy: float | None
    search: tuple[SearchStep, ...]
    n_iterations: int
    backend: str
    device: str
    timings_s: dict
    search_stop: str = ""        # how the search ended: "a limit binds: ...", "range top reached (...)", ...
    plan_goal_gy: float | None = None   # the goal of the returned plan (the optimal-range rule may pick one
                                        # below boost_goal_gy, the highest acceptable goal)
    boost_policy: str | None = None     # the SIB boost policy (None for plans without a boost)
    floor_conflicts: tuple[FloorConflict, ...] = ()   # GTV floors still violated vs the organ limits capping them
    final_dose: dict = field(default_factory=dict)      # how dose_gy was made (simsbrt.optimize.correction)
    final_minus_optimiser_gy: dict = field(default_factory=dict)  # "GTV D50%" -> exact - optimiser dose (Gy)
    backend_reason: str = ""     # why this backend ran (e.g. auto fell back to the CPU: the CUDA self-test's reason)

    def summary(self) -> dict:
        """The JSON document of the CLI contract (plus search details)."""
        return {
            "mode": self.mode,
            "backend": self.backend,
            "device": self.device,
            "backend_reason": self.backend_reason,
            "protocol_name": self.protocol.name,
            "protocol_definition": self.protocol.to_dict(),    # the protocol in force (organ overrides applied)
            "metrics": self.metrics,
            "protocol": [{"structure": r.structure, "metric": r.metric, "value": r.value, "status": r.status}
                         for r in self.evaluation.rows],
            "feasible": bool(self.feasible),
            "violated_limits": list(self.evaluation.violated_limits),
            "binding_limits": list(self.binding_limits),
            "search_stop": self.search_stop,
            "plan_goal_gy": self.plan_goal_gy,
            "boost_policy": self.boost_policy,
            "floor_conflicts": [{"floor": c.floor, "organ_limit": c.organ_limit,
                                 "gtv_in_organ_frac": round(c.in_organ_frac, 4),
                                 "gtv_near_organ_frac": round(c.near_organ_frac, 4),
                                 "geometrically_unattainable": c.proven, "text": c.describe()}
                                for c in self.floor_conflicts],
            "prescription_gy": self.prescription_gy,
            "boost_goal_gy": self.boost_goal_gy,
            "cord_prv_limit_gy": self.cord_prv_limit_gy,
            "n_iterations": self.n_iterations,
            "search": [s.to_dict() for s in self.search],
            "timing_s": {k: round(float(v), 3) for k, v in self.timings_s.items()},
            "final_dose": dict(self.final_dose),
            "final_minus_optimiser_gy": dict(self.final_minus_optimiser_gy),
        }


# ------------------------------------------------------------------ inputs
BODY_MARGIN_MM = 20.0          # influence rows kept: body voxels within this of the PTV ...
STRUCTURE_MARGIN_MM = 30.0     # ... and structure voxels within this (prepare_plan_inputs defaults)


def prepare_plan_inputs(phantom, arc_set=None, backend: str | Backend | None = "cpu", influence_options=None,
                        body_margin_mm: float = BODY_MARGIN_MM, structure_margin_mm: float = STRUCTURE_MARGIN_MM
                        ) -> PlanInputs:
    """Beamlets and the influence matrix for a phantom (as ``simsbrt dose compute`` chains them)."""
    from simsbrt.dose.engine import InfluenceOptions, compute_influence, exact_row_mask, select_rows
    from simsbrt.geometry.arcs import default_arc_set
    from simsbrt.geometry.beamlets import build_beamlets

    backend = resolve_backend(backend)
    arc_set = arc_set or default_arc_set()
    for name in ("PTV", "PTV_Eval"):
        if phantom.is_empty(name):
            raise SpecError(name, "the phantom has no voxels in this structure; nothing to plan")
    t0 = time.perf_counter()
    rows = select_rows(phantom.grid, phantom.structures, body_margin_mm=body_margin_mm,
                       structure_margin_mm=structure_margin_mm)
    beamlets = build_beamlets(arc_set, phantom.grid, phantom.structures["PTV"])
    geometry_s = time.perf_counter() - t0
    engine_backend = backend.name if backend.name in ("cpu", "cuda", "cudasim") else "cpu"
    cache, timings, depths = {}, {"geometry_s": geometry_s}, None
    if backend.name == "cpu":
        # the exact final dose traces every body voxel's depths anyway: trace them once, before the influence
        # matrix, whose rows take theirs from there (simsbrt.dose.final.DoseGeometry.voxel_depths)
        from simsbrt.dose.final import DoseGeometry

        t0 = time.perf_counter()
        geometry = DoseGeometry.build(phantom, beamlets, "cpu")
        depths = geometry.voxel_depths(rows)
        if depths is not None:
            cache["final_dose_geometry"] = geometry
            timings["depth_trace_s"] = time.perf_counter() - t0
    influence = compute_influence(phantom.grid, phantom.density, rows, beamlets, None,
                                  influence_options or InfluenceOptions(), engine_backend,
                                  exact_rows=exact_row_mask(rows, phantom.structures), depths=depths)
    timings["dose_s"] = float(influence.timings_s.get("total_s", 0.0)) + timings.get("depth_trace_s", 0.0)
    if "compile_s" in influence.timings_s:
        timings["compile_s"] = influence.timings_s["compile_s"]
    return PlanInputs(phantom, arc_set, influence, backend, timings, cache)


# ------------------------------------------------------------------ protocols
def protocol_for(mode: str, settings: PlanSettings, prescription_gy: float | None = None) -> Protocol:
    """The protocol of a mode with the settings' organ limits (and, escalated, the prescription moved)."""
    if mode not in MODES:
        raise SpecError("mode", f"unknown plan mode {mode!r}; choose one of {', '.join(MODES)}")
    protocol = mode_protocol(settings.protocol, mode)
    protocol = with_organ_limits(protocol, settings.cord_prv_limit_gy, settings.thecal_sac_limit_gy)
    if mode == "uniform_escalated" and prescription_gy is not None:
        protocol = escalated_protocol(protocol, prescription_gy)
    return protocol


def plan_numbers(settings: PlanSettings) -> PlanningNumbers:
    """The planning numbers of the settings' protocol with their organ limits and range overrides."""
    base = with_organ_limits(as_protocol(settings.protocol), settings.cord_prv_limit_gy, settings.thecal_sac_limit_gy)
    return planning_numbers(base, settings.organ_margin_gy, settings.boost_range_gy, settings.escalation_range_gy)


def with_organ_limits(protocol: Protocol, cord_prv_limit_gy: float | None,
                      thecal_sac_limit_gy: float | None = None) -> Protocol:
    """The protocol with the D0.03cc maxima of the cord PRV / thecal sac replaced (None = unchanged)."""
    new = {CORD_PRV: cord_prv_limit_gy, THECAL_SAC: thecal_sac_limit_gy}
    limits = []
    for limit in protocol.limits:
        value = new.get(limit.structure)
        if value is not None and limit.metric.name == "D0.03cc" and limit.mandatory is not None:
            limit = replace(limit, mandatory=Range(None, float(value), limit.mandatory.unit),
                            note=f"{limit.note} (limit set to {value:g} Gy)".strip())
        limits.append(limit)
    return replace(protocol, limits=tuple(limits))


def escalated_protocol(protocol: Protocol, prescription_gy: float) -> Protocol:
    """Uniform protocol with the prescription moved to p: the prescription row's window and the D2% homogeneity
    goal scaled by p / prescription (uniform: D90% p +- 1 %, D2% <= 1.2 p), the goal capped at the mandatory
    ceiling; every absolute limit unchanged."""
    p = float(prescription_gy)
    rx = protocol.prescription
    scale = p / rx.dose_gy

    def scaled(rng):
        return Range(*(None if v is None else v * scale for v in (rng.min_value, rng.max_value)), rng.unit)

    limits = []
    for limit in protocol.limits:
        if limit.structure == rx.structure and limit.metric.name == rx.metric.name:
            limit = replace(limit, optimal=Range(p, p, "Gy"), mandatory=scaled(limit.mandatory),
                            note=f"escalated prescription {p:.2f} Gy ({limit.note})")
        elif (limit.structure == rx.structure and limit.metric.name == "D2%" and limit.optimal is not None
              and limit.optimal.max_value is not None):
            ceiling = limit.mandatory.max_value if limit.mandatory else None
            hot = limit.optimal.max_value * scale
            hot = hot if ceiling is None else min(hot, ceiling)
            limit = replace(limit, optimal=Range(None, hot, "Gy"))
        limits.append(limit)
    return replace(protocol, name=f"{protocol.name}_escalated", prescription=Prescription(rx.structure, rx.metric, p),
                   limits=tuple(limits))


# ------------------------------------------------------------------ one plan at one goal
class _Planner:
    """Optimise -> normalise -> evaluate, with the organ-weight rounds; counts iterations and time."""

    def __init__(self, inputs: PlanInputs, settings: PlanSettings):
        self.inputs = inputs
        self.settings = settings
        self.phantom = inputs.phantom
        self.masks = inputs.phantom.structures
        self.voxel_cc = inputs.phantom.grid.voxel_volume_cc
        t0 = time.perf_counter()
        # the optimisation matrix (merged columns) is built once per inputs and reused by every plan on them (the
        # three plans of a comparison, a sweep's plans on one matrix); what is cached from it (its truncated copy,
        # cold optimisations) is keyed by the same problem_key, so a setting that shapes the problem is named once
        self.problem_key = ("fluence_problem", inputs.backend.name, settings.ring_sampling)
        self.problem = inputs.cache.get(self.problem_key)
        if self.problem is None:
            self.problem = FluenceProblem.build(inputs.influence, self.masks, target=inputs.backend,
                                                ring_sampling=settings.ring_sampling)
            inputs.cache[self.problem_key] = self.problem
        self.timings = {"problem_s": time.perf_counter() - t0, "optimise_s": 0.0, "evaluate_s": 0.0}
        self.n_iterations = 0
        self.numbers = plan_numbers(settings)
        self.goals = settings.goals.with_(**self.numbers.goal_values())
        self._base_problem = self.problem
        self.correction_gy = None   # fixed exact - optimiser dose (grid) added to the optimiser's dose, or None

    def set_correction(self, correction_gy) -> None:
        """Hold a fixed dose correction (Gy, grid shape) on the optimiser's dose D w (None: remove it)."""
        from simsbrt.optimize.correction import CorrectedOperator

        self.correction_gy = None if correction_gy is None else np.asarray(correction_gy, dtype=np.float64)
        base = self._base_problem
        if self.correction_gy is None:
            self.problem = base
            return
        rows = base.xp.asarray(self.correction_gy.ravel()[base.voxels])
        self.problem = replace(base, operator=CorrectedOperator(base.operator, rows))

    def optimiser_dose(self, weights) -> np.ndarray:
        """The optimisation matrix's dose D w (float64, grid shape; zero outside its rows)."""
        return full_dose_grid(self.inputs.influence, weights, self.problem.target)

    def exact_dose(self, weights):
        """The exact final dose of the weights (simsbrt.dose.final.FinalDose)."""
        return _exact_doses([self], [weights])[0]

    def candidate(self, goals: PlanGoals, protocol: Protocol, warm: Candidate | None, ignore: Callable,
                  options: SolverOptions | None = None, extra_objectives: tuple = ()) -> Candidate:
        """A normalised, evaluated plan; extra rounds with heavier organ weights while an organ limit fails.
        extra_objectives: dose objectives added to the goals' own (the GTV-floor rounds)."""
        w0 = None if warm is None else warm.weights
        options = options or self.settings.solver_options
        first = None
        for round_ in range(self.settings.organ_rounds + 1):
            cand = self._optimise_once(goals, protocol, w0, options, extra_objectives)
            first = first or cand
            if not _organ_violations(cand.evaluation):
                return cand
            weights = goals.weights
            goals = goals.with_(weights=replace(weights, organ_overdose=5.0 * weights.organ_overdose))
            w0 = cand.weights
        # heavier organ weights did not meet the organ limit: keep the plan of the standard weights
        return first

    def _optimise_once(self, goals: PlanGoals, protocol: Protocol, w0, options: SolverOptions,
                       extra_objectives: tuple = ()) -> Candidate:
        t0 = time.perf_counter()
        # a cold start with the same goals on the same inputs is the same (deterministic) optimisation: the
        # escalation search starts at the uniform plan's prescription, so its first step is the uniform plan
        cold_key = None
        if w0 is None and not extra_objectives and self.correction_gy is None:
            cold_key = ("cold optimisation", self.problem_key, goals, options, self.settings.solver,
                        self.settings.truncation_frac, self.settings.truncation_organ_frac, self.settings.truncation_rounds)
        reused = self.inputs.cache.get(cold_key) if cold_key is not None else None
        if reused is not None:
            result = reused
            self.timings["reused_optimisations"] = self.timings.get("reused_optimisations", 0) + 1
        else:
            w0 = None if w0 is None else self.problem.xp.asarray(w0)
            if extra_objectives:
                result = self._optimise_with_extra(goals, extra_objectives, w0, options)
            else:
                result = self._solve(self.problem, goals, w0, options)
            self.n_iterations += result.n_iter
            if cold_key is not None:
                self.inputs.cache[cold_key] = result
        weights = np.asarray(to_host(result.x), dtype=np.float64)
        self.timings["optimise_s"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        dose = full_dose_grid(self.inputs.influence, weights, self.problem.target)
        if self.correction_gy is not None:   # D w + c can dip below zero where c < 0 and D w has fallen
            dose = np.maximum(dose + self.correction_gy, 0.0)
        factor = prescription_scale_factor(protocol, dose, self.masks, self.voxel_cc)
        # evaluated as stored in PLAN.h5 (float32), so the search and the final verdict agree
        weights, dose = weights * factor, (dose * factor).astype(np.float32)
        evaluation = evaluate_protocol(protocol, dose, self.masks, self.voxel_cc)
        self.timings["evaluate_s"] += time.perf_counter() - t0
        return Candidate(goals.boost_gy or goals.prescription_gy, weights, dose, evaluation, result.n_iter, factor,
                         tuple(extra_objectives))

    def _optimise_with_extra(self, goals: PlanGoals, extra_objectives: tuple, w0, options: SolverOptions):
        """FluenceProblem.optimise with dose objectives added to the goals' own."""
        shared = {f.name: getattr(self.problem, f.name) for f in fields(FluenceProblem)}
        problem = _ProblemWithExtra(**shared, extra_objectives=tuple(extra_objectives))
        return self._solve(problem, goals, w0, options)

    def _solve(self, problem: FluenceProblem, goals: PlanGoals, w0, options: SolverOptions):
        """problem.optimise, on the truncated matrix with the iterated correction when the settings ask for it."""
        frac = self.settings.truncation_frac
        if not frac:
            return problem.optimise(goals, w0, self.settings.solver, options)
        organ_frac = self.settings.truncation_organ_frac
        key = ("truncated matrix", self.problem_key, frac, organ_frac)
        truncated = self.inputs.cache.get(key)
        if truncated is None:
            t0 = time.perf_counter()
            truncated = truncate(self._base_problem, frac, ORGAN_STRUCTURES, organ_frac)
            self.inputs.cache[key] = truncated
            self.timings["truncation_s"] = time.perf_counter() - t0
        self.timings["optimiser_nnz"] = truncated.nnz
        return optimise_truncated(problem, truncated, goals, w0, self.settings.solver, options,
                                  self.settings.truncation_rounds)

    def floor_rows(self, capped_by: tuple[str, ...]):
        """Optimisation rows of the GTV outside the given organs (their voxels cannot reach a floor above
        the organ limit), or None when none is left."""
        rows = self.problem.rows
        if not self.problem.has(BOOST):
            return None
        gtv = to_host(rows[BOOST])
        for organ in capped_by:
            if self.problem.has(organ):
                gtv = np.setdiff1d(gtv, to_host(rows[organ]))
        return self.problem.xp.asarray(gtv) if gtv.size else None


@dataclass(frozen=True, eq=False)
class _ProblemWithExtra(FluenceProblem):
    """The same fluence problem (shared operator and rows) with extra dose objectives in its objective."""

    extra_objectives: tuple = ()

    def objective(self, goals: PlanGoals):
        base = super().objective(goals)
        return replace(base, dose_objectives=base.dose_objectives + self.extra_objectives)


def full_dose_grid(influence, weights, target=None) -> np.ndarray:
    """influence.dose_grid(weights) with the target's parallel CSR kernel (float64 accumulation, the same sums as
    scipy's product, which would first copy the float32 matrix to float64) on the matrix as stored (a copied
    control point's weights folded onto its primary's columns; simsbrt.optimize.device.dose_grid)."""
    from simsbrt.optimize.device import dose_grid, target_of

    return dose_grid(influence, weights, target if target is not None else target_of("cpu"))


def _organ_violations(evaluation) -> tuple[str, ...]:
    return tuple(r.limit_name for r in evaluation.rows if r.status == "violated" and r.structure in ORGAN_STRUCTURES)


def _n_optimal_rows(evaluation) -> int:
    return sum(r.status == OPTIMAL for r in evaluation.rows)


def _gtv_d50(cand: Candidate) -> float:
    value = cand.evaluation.row("GTV", "D50%").value
    return float("-inf") if value is None else float(value)


def prefer_optimal(accepted, tolerance_gy: float):
    """Among acceptable candidates with GTV D50% within tolerance_gy of the highest, the one with the most
    protocol rows in their optimal range (ties: higher GTV D50%, then higher goal). None if none."""
    if not accepted:
        return None
    top = max(_gtv_d50(c) for c in accepted)
    pool = [c for c in accepted if _gtv_d50(c) >= top - tolerance_gy]
    return max(pool, key=lambda c: (_n_optimal_rows(c.evaluation), _gtv_d50(c), c.goal_gy))


def _search_stop(outcome, binding, lo_gy: float, hi_gy: float, label: str) -> str:
    reason = outcome.stop_reason
    if reason == "range top reached":
        return f"range top reached ({label} {hi_gy:.2f} Gy still meets every limit; no limit bound)"
    if reason == "a limit binds":
        return "a limit binds: " + "; ".join(binding)
    return f"infeasible at the range bottom ({label} {lo_gy:.2f} Gy): " + "; ".join(binding)


def _binding_first(names) -> tuple[str, ...]:
    """Organ limits first: when an organ limit fails it is the one that binds the plan."""
    names = tuple(names)
    organ = tuple(n for n in names if n.split(" ")[0] in ORGAN_STRUCTURES)
    return organ + tuple(n for n in names if n not in organ)


def _blocking_violations(evaluation, rises_with_goal: Callable) -> tuple[str, ...]:
    """Violated mandatory limits, except those a higher goal can only help (e.g. GTV floors for a boost)."""
    return _binding_first(r.limit_name for r in evaluation.rows if r.status == "violated" and not rises_with_goal(r))


def _gtv_floor(row) -> bool:
    return row.structure == "GTV" and row.mandatory is not None and row.mandatory.max_value is None


def _never(row) -> bool:
    return False


def _mandatory_violations(evaluation) -> tuple[str, ...]:
    return _blocking_violations(evaluation, _never)


def plan_metrics(dose_gy, masks: dict, voxel_volume_cc: float) -> dict:
    """The reported DVH metrics (None for a structure that is missing or empty at this level)."""
    present = {n: masks[n] for n in REPORTED_METRICS if n in masks and np.any(masks[n])}
    dvhs = compute_dvhs(dose_gy, present, voxel_volume_cc)
    return {name: {m: (float(dvhs[name].metric(m)) if name in dvhs else None) for m in metrics}
            for name, metrics in REPORTED_METRICS.items()}


def _polished_escalation(planner: _Planner, cand: Candidate, p: float, protocol: Protocol, progress) -> Candidate:
    """The chosen escalation step re-optimised at solver_options from its own weights, kept if still feasible."""
    add_steps(progress, 1)
    polished = planner.candidate(planner.goals.with_(boost_gy=None, prescription_gy=p), protocol, cand, _never)
    kept = polished.evaluation.feasible
    step_done(progress, f"final plan at PTV_Eval prescription {p:.2f} Gy, full accuracy: "
                        f"{'kept' if kept else 'violates a limit, the search plan is kept'}")
    return polished if kept else cand


def _search_rule(settings: PlanSettings, blocking: Callable, ceilings=()) -> dict:
    """bracket_search's pick and tolerance_gy under settings.search_method (simsbrt.optimize.search)."""
    pick = None
    if settings.search_method == "interpolate":
        pick = interpolating_pick(binding_slack(lambda ev: limit_margins(ev, ceilings, BOUNDARY_TOLERANCE), blocking),
                                  settings.search_tolerance_gy)
    return {"pick": pick, "tolerance_gy": settings.search_tolerance_gy}


def _describe(blocking: Callable):
    """SearchStep of a candidate; blocking(evaluation) -> the violations that make a step unacceptable."""
    def describe(cand: Candidate, goal: float, ok: bool) -> SearchStep:
        ev = cand.evaluation
        pick = {}
        for structure, metric in (("GTV", "D50%"), ("PTV_Eval", "D2%"), (CORD_PRV, "D0.03cc")):
            try:
                pick[f"{structure} {metric}"] = ev.row(structure, metric).value
            except KeyError:
                pass
        violated = () if ok else (blocking(ev) or tuple(ev.violated_limits))
        return SearchStep(float(goal), ok, cand.n_iterations, violated, pick)
    return describe


# ------------------------------------------------------------------ the SIB plan
FLOOR_WEIGHT = 10.0        # GTV-floor underdose weight of the first floor round (x 5 per further round)


@dataclass(frozen=True, eq=False)
class _SibPlan:
    protocol: Protocol
    candidate: Candidate
    boost_goal_gy: float | None
    steps: tuple
    binding: tuple[str, ...]
    search_stop: str
    conflicts: tuple[FloorConflict, ...] = ()


def _sib_blocking(protocol: Protocol, policy: str) -> Callable:
    """evaluation -> the violations that make a search step unacceptable under the boost policy: the
    mandatory limits a higher boost can break ("max"), plus the optimal ceilings ("optimal_window")."""
    ceilings = optimal_ceilings(protocol) if policy == "optimal_window" else ()

    def blocking(evaluation) -> tuple[str, ...]:
        return (_blocking_violations(evaluation, _gtv_floor)
                + ceiling_violations(evaluation, ceilings, BOUNDARY_TOLERANCE))
    return blocking


def _plan_sib(planner: _Planner, settings: PlanSettings, progress) -> _SibPlan:
    """The boost search under settings.boost_policy, the final polish, then the GTV-floor rounds."""
    protocol = protocol_for("sib", settings)
    lo, hi = planner.numbers.boost_range_gy
    blocking = _sib_blocking(protocol, settings.boost_policy)

    def acceptable(c):
        return not blocking(c.evaluation)

    def plan_at(goal, warm):
        return planner.candidate(planner.goals.with_(boost_gy=goal), protocol, warm, _gtv_floor,
                                 settings.search_solver_options)

    ceilings = optimal_ceilings(protocol) if settings.boost_policy == "optimal_window" else ()
    outcome = bracket_search(plan_at, acceptable, _describe(blocking), lo, hi, settings.n_bisections,
                             progress, "GTV boost goal", **_search_rule(settings, blocking, ceilings))
    chosen = prefer_optimal(outcome.accepted, settings.optimal_preference_gy)
    cand = chosen if chosen is not None else outcome.lowest_failure
    if chosen is not None and settings.polish and settings.search_solver_options != settings.solver_options:
        polished = planner.candidate(planner.goals.with_(boost_gy=chosen.goal_gy), protocol, chosen, _gtv_floor,
                                     settings.solver_options)
        kept = acceptable(polished)
        step_done(progress, f"final plan at GTV boost goal {chosen.goal_gy:.2f} Gy, full accuracy: "
                  f"{'kept' if kept else 'violates a limit, the search plan is kept'}")
        cand = polished if kept else chosen
    binding = blocking(outcome.lowest_failure.evaluation) if outcome.lowest_failure is not None else ()
    search_stop = _search_stop(outcome, binding, lo, hi, "GTV boost goal")
    if outcome.best is None and not _blocking_violations(cand.evaluation, _gtv_floor):
        # optimal_window only: every mandatory limit holds at the range bottom, an optimal ceiling does not
        search_stop = (f"optimal ceilings not met even at the range bottom (GTV boost goal {lo:.2f} Gy): "
                       + "; ".join(binding) + "; the range-bottom plan is returned")
    cand, conflicts, floor_note = _meet_gtv_floors(planner, protocol, cand, blocking, progress)
    floors_failed = _violated_floors(cand.evaluation)
    if floor_note and floors_failed:        # infeasible through a GTV floor: that verdict first
        search_stop = f"{floor_note}; boost search: {search_stop}"
        named = [n for c in conflicts for n in (c.floor, c.organ_limit)] + list(floors_failed)
        binding = tuple(dict.fromkeys(named + list(binding)))
    elif floor_note:                        # the floor rounds met the floors
        search_stop = f"{search_stop}; {floor_note}"
    return _SibPlan(protocol, cand, outcome.best_goal_gy, outcome.steps, tuple(binding), search_stop, conflicts)


def _violated_floors(evaluation) -> tuple[str, ...]:
    return tuple(r.limit_name for r in _violated_floor_rows(evaluation))


def _violated_floor_rows(evaluation) -> tuple:
    return tuple(r for r in evaluation.rows if r.status == VIOLATED and _gtv_floor(r))


def _capping_organs(protocol: Protocol, floor_gy: float) -> tuple[str, ...]:
    """Structures other than the GTV with a mandatory maximum dose below floor_gy."""
    return tuple(dict.fromkeys(lim.structure for lim in capping_limits(protocol, floor_gy)))


def _meet_gtv_floors(planner: _Planner, protocol: Protocol, cand: Candidate | None, blocking: Callable, progress):
    """When the chosen SIB plan violates a GTV floor (and nothing else mandatory): up to settings.floor_rounds
    re-optimisations at the same boost goal with a GTV underdose objective at floor + organ_margin_gy on the GTV
    voxels outside the organs capped below the floor (weight FLOOR_WEIGHT, x 5 per round), warm-started. A round's
    plan replaces the chosen one only if it meets every GTV floor and breaks nothing the chosen plan kept (so an
    organ limit is never traded for a floor). Floors the geometry proves unattainable (sib.FloorConflict) skip
    the rounds. Returns (plan, conflicts of the floors still violated, note for search_stop)."""
    if cand is None or _blocking_violations(cand.evaluation, _gtv_floor) or not _violated_floors(cand.evaluation):
        return cand, (), ""
    settings = planner.settings
    spacing = planner.phantom.grid.spacing_mm
    floors = _violated_floor_rows(cand.evaluation)
    conflicts = floor_conflicts(protocol, floors, planner.masks, spacing)
    proven = {c.floor for c in conflicts if c.proven}
    kept = set(blocking(cand.evaluation))
    open_floors = [r for r in floors if r.limit_name not in proven]
    extra_rows = [(r, planner.floor_rows(_capping_organs(protocol, r.mandatory.min_value))) for r in open_floors]
    extra_rows = [(r, rows) for r, rows in extra_rows if rows is not None]
    n_rounds = settings.floor_rounds if extra_rows else 0
    goals = planner.goals.with_(boost_gy=cand.goal_gy)
    warm = cand
    add_steps(progress, n_rounds)
    for k in range(n_rounds):
        weight = FLOOR_WEIGHT * 5.0 ** k
        margin = settings.organ_margin_gy
        extra = tuple(SquaredUnderdose(f"GTV floor {r.limit_name}", rows, r.mandatory.min_value + margin, weight)
                      for r, rows in extra_rows)
        trial = planner.candidate(goals, protocol, warm, _gtv_floor, settings.solver_options, extra)
        ok = set(blocking(trial.evaluation)) <= kept
        met = ok and not _violated_floors(trial.evaluation)
        if progress:
            failing = blocking(trial.evaluation) + _violated_floors(trial.evaluation)
            step_done(progress, f"GTV floor round {k + 1}/{n_rounds} (weight {weight:g}) at GTV boost goal "
                                f"{cand.goal_gy:.2f} Gy: {'every GTV floor met' if met else '; '.join(failing)}")
        if met:
            return trial, (), f"GTV floor(s) {', '.join(r.limit_name for r in floors)} met after {k + 1} floor round(s)"
        if ok:
            warm = trial
    how = (f"not met after {n_rounds} floor round(s)" if n_rounds else
           "geometrically unattainable, floor rounds skipped" if proven else "no floor round run")
    named = {c.floor for c in conflicts}
    text = [c.describe() for c in conflicts]
    text += [f"{r.limit_name} (no organ limit below the floor touches the GTV)" for r in floors
             if r.limit_name not in named]
    if progress:
        progress(f"GTV floor {how}: " + "; ".join(text))
    return cand, conflicts, f"infeasible: GTV floor {how}: " + "; ".join(text)


# ------------------------------------------------------------------ the plans
def _reoptimiser(planner: _Planner, goals: PlanGoals, protocol: Protocol) -> Callable[[Candidate], Candidate]:
    """The dose-correction loop's re-optimisation: the same goals and the same extra objectives (GTV-floor rounds)
    as the plan it corrects, warm-started from it."""
    return lambda warm: planner.candidate(goals, protocol, warm, _never, extra_objectives=warm.extra_objectives)


def make_plan(inputs: PlanInputs, mode: str, settings: PlanSettings = PlanSettings(),
              progress: Callable[[str], None] | None = None) -> PlanResult:
    """Plan one mode on prepared inputs; the verdict is simsbrt.evaluate's on the final full-grid dose."""
    return _finished(_searched(inputs, mode, settings, progress), progress)


def make_plans(inputs: PlanInputs, modes, settings: PlanSettings = PlanSettings(),
               progress: Callable[[str], None] | None = None,
               announce: Callable[[str], None] | None = None,
               on_result: Callable[[str, PlanResult], None] | None = None) -> dict[str, PlanResult]:
    """Several modes on the same inputs, each exactly as make_plan plans it: the searches one after the other,
    then the exact final doses of every chosen plan in one pass over the voxels (simsbrt.dose.final.final_doses:
    the depths, beam coordinates and Gaussian masses computed once for all), then each plan's dose-correction
    rounds (if any) and verdict. announce(message) hears when each search and the shared pass start;
    on_result(mode, result) gets each plan as soon as it is judged (e.g. to write it). If a later search raises,
    the plans already searched are still finished and handed to on_result before the error goes on, so no
    finished search is lost."""
    modes = tuple(modes)
    if len(set(modes)) != len(modes):
        raise SpecError("modes", f"each mode once, got {', '.join(modes)}")
    searched = []
    try:
        for mode in modes:
            if announce:
                announce(f"planning {mode} ...")
            searched.append(_searched(inputs, mode, settings, progress))
    except Exception:
        if searched and on_result is not None:
            _finish_all(searched, progress, announce, on_result)
        raise
    return _finish_all(searched, progress, announce, on_result)


def _finish_all(searched, progress, announce, on_result) -> dict[str, PlanResult]:
    """The exact final doses of the searched plans in one pass, then each plan judged (and handed to on_result)."""
    if announce and len(searched) > 1:
        announce(f"exact final doses of the {len(searched)} plans, one pass over the voxels ...")
    exact = _exact_doses([s.planner for s in searched], [s.candidate.weights for s in searched])
    results = {}
    for s, e in zip(searched, exact):
        results[s.mode] = _finished(s, progress, e)
        if on_result is not None:
            on_result(s.mode, results[s.mode])
    return results


def _exact_doses(planners, weights_list) -> tuple:
    """The exact final doses of several weight vectors in one pass (FinalDose each); the pass's time is added to
    every planner's final_dose_s."""
    from simsbrt.dose.final import DoseGeometry, final_doses

    first = planners[0]
    inputs = first.inputs
    geometry = inputs.cache.get("final_dose_geometry")
    if geometry is None:
        geometry = DoseGeometry.build(first.phantom, inputs.influence.beamlets, inputs.backend)
        inputs.cache["final_dose_geometry"] = geometry
    progress = getattr(first, "progress", None)
    label = "exact final dose, voxels" if len(weights_list) == 1 else "exact final doses, voxels"
    doses = final_doses(first.phantom, inputs.influence.beamlets,
                        [np.asarray(w, dtype=np.float64) for w in weights_list], geometry=geometry,
                        progress=lambda done, total: fraction(progress, label, done, total))
    for planner in planners:
        planner.timings["final_dose_s"] = planner.timings.get("final_dose_s", 0.0) + doses[0].time_s
    return doses


@dataclass(frozen=True, eq=False)
class _Searched:
    """A plan whose search is done and whose exact final dose is not: what _finished needs."""

    mode: str
    planner: _Planner
    protocol: Protocol
    candidate: Candidate
    final_goals: PlanGoals
    boost_goal_gy: float | None
    steps: tuple
    binding: tuple
    search_stop: str
    conflicts: tuple
    reached_rx: float
    search_s: float


def _searched(inputs: PlanInputs, mode: str, settings: PlanSettings, progress) -> _Searched:
    """The search of one mode (make_plan up to its exact final dose)."""
    if mode not in MODES:
        raise SpecError("mode", f"unknown plan mode {mode!r}; choose one of {', '.join(MODES)}")
    t_start = time.perf_counter()
    planner = _Planner(inputs, settings)
    planner.progress = progress
    boost_goal = None
    if mode == "uniform":
        protocol = protocol_for(mode, settings)
        final_goals = planner.goals.with_(boost_gy=None)
        cand = planner.candidate(final_goals, protocol, None, _never)
        step_done(progress, f"uniform plan optimised ({cand.n_iterations} iterations)")
        steps = ()
        binding = tuple(cand.evaluation.violated_limits)
        search_stop = "no search (single optimisation)"
        reached_rx = protocol.prescription.dose_gy
        conflicts = ()
    elif mode == "sib":
        sib = _plan_sib(planner, settings, progress)
        protocol, cand, boost_goal, steps = sib.protocol, sib.candidate, sib.boost_goal_gy, sib.steps
        binding, search_stop, conflicts = sib.binding, sib.search_stop, sib.conflicts
        reached_rx = protocol.prescription.dose_gy
        final_goals = planner.goals.with_(boost_gy=cand.goal_gy)
    else:  # uniform_escalated
        lo, hi = planner.numbers.escalation_range_gy
        protocols = {}

        def escalated(p):
            return protocols.setdefault(p, protocol_for(mode, settings, p))

        def plan_at(p, warm):
            goals = planner.goals.with_(boost_gy=None, prescription_gy=p)
            start = None if warm is None else replace(warm, weights=warm.weights * (p / warm.goal_gy), evaluation=None)
            return planner.candidate(goals, escalated(p), start, _never, step_options(warm))

        def step_options(warm):   # the cold first step keeps solver_options: it is the uniform plan's optimisation
            return settings.search_solver_options if warm is not None and search_steps else None

        search_steps = settings.escalation_step_options == "search"

        outcome = bracket_search(plan_at, lambda c: c.evaluation.feasible, _describe(_mandatory_violations), lo, hi,
                                 settings.n_bisections, progress, "PTV_Eval prescription",
                                 **_search_rule(settings, _mandatory_violations))
        cand = outcome.best if outcome.best is not None else outcome.lowest_failure
        reached_rx = outcome.best_goal_gy if outcome.best is not None else lo
        protocol = escalated(reached_rx)
        if search_steps and outcome.best is not None and outcome.best_goal_gy != lo:
            cand = _polished_escalation(planner, cand, reached_rx, protocol, progress)
        steps = outcome.steps
        binding = (tuple(outcome.lowest_failure.evaluation.violated_limits)
                   if outcome.lowest_failure is not None else ())
        search_stop = _search_stop(outcome, _binding_first(binding), lo, hi, "PTV_Eval prescription")
        conflicts = ()
        final_goals = planner.goals.with_(boost_gy=None, prescription_gy=reached_rx)
    return _Searched(mode, planner, protocol, cand, final_goals, boost_goal, tuple(steps), tuple(binding),
                     search_stop, tuple(conflicts), float(reached_rx), time.perf_counter() - t_start)


def _finished(searched: _Searched, progress, exact=None) -> PlanResult:
    """A searched plan judged on its exact final dose (exact: that dose when already computed), as a PlanResult."""
    t_start = time.perf_counter()
    mode, planner, protocol, cand = searched.mode, searched.planner, searched.protocol, searched.candidate
    inputs, settings = planner.inputs, planner.settings
    boost_goal, steps, binding = searched.boost_goal_gy, searched.steps, searched.binding
    search_stop, conflicts, reached_rx = searched.search_stop, searched.conflicts, searched.reached_rx
    # every reported dose: the exact final dose of the chosen weights, with the dose-correction loop
    fin = finalise(planner, cand, protocol, _reoptimiser(planner, searched.final_goals, protocol), progress,
                   exact=exact)
    cand = fin.candidate
    if fin.broken:
        rounds = fin.record["correction_rounds"]
        search_stop = (f"infeasible on the exact final dose: {'; '.join(fin.broken)} (met on the optimiser's dose; "
                       f"{rounds} dose-correction round(s)); {search_stop}")
        binding = tuple(dict.fromkeys(fin.broken + tuple(binding)))
    # the verdict: simsbrt.evaluate on the exact final dose exactly as stored (float32, full grid)
    masks = inputs.phantom.structures
    dose32 = cand.dose_gy.astype(np.float32)
    evaluation = evaluate_protocol(protocol, dose32, masks, inputs.phantom.grid.voxel_volume_cc)
    metrics = plan_metrics(dose32, masks, inputs.phantom.grid.voxel_volume_cc)
    shared_pass_s = exact.time_s if exact is not None else 0.0     # the exact dose computed before, with others
    timings = {**inputs.timings_s, **planner.timings,
               "plan_s": searched.search_s + time.perf_counter() - t_start + shared_pass_s}
    cord_limit = settings.cord_prv_limit_gy
    cord_limit = dict(planner.numbers.organ_limits_gy).get(CORD_PRV) if cord_limit is None else cord_limit
    log.info("plan %s: feasible=%s, %d iterations", mode, evaluation.feasible, planner.n_iterations)
    # a GTV floor against an organ limit is named in that order (floor first), the rest organ limits first
    binding = tuple(binding) if conflicts or fin.broken else _binding_first(binding or evaluation.violated_limits)
    return PlanResult(mode, protocol, cand.weights, dose32, evaluation, metrics,
                      bool(evaluation.feasible), binding, boost_goal,
                      float(reached_rx), None if cord_limit is None else float(cord_limit), tuple(steps),
                      planner.n_iterations,
                      inputs.backend.name, inputs.backend.device, timings, search_stop,
                      float(cand.goal_gy) if cand is not None else None,
                      settings.boost_policy if mode == "sib" else None, tuple(conflicts),
                      fin.record, fin.differences, inputs.backend.reason)


def sib_fluence_at(inputs: PlanInputs, settings: PlanSettings, goal_gy: float, warm_weights=None) -> Candidate:
    """One step of the SIB boost search at a fixed GTV boost goal: the fluence optimised at
    settings.search_solver_options with the organ-weight rounds, warm-started from warm_weights (MU) when
    given, normalised and evaluated on the optimiser's dose (the deliverable boost search sequences it)."""
    planner = _Planner(inputs, settings)
    warm = None if warm_weights is None else Candidate(goal_gy, np.asarray(warm_weights, np.float64), None, None, 0, 1.0)
    return planner.candidate(planner.goals.with_(boost_gy=goal_gy), protocol_for("sib", settings), warm, _gtv_floor,
                             settings.search_solver_options)
