"""Deliverable plan of an optimised fluence plan: arc sequencing, segment-MU re-optimisation on the
exact aperture doses, normalisation and the protocol verdict (docs/deliverable.md).

make_deliverable(inputs, fluence_plan, settings):
  1. sequence the plan's beamlet fluence into one aperture per control point within the machine's
     limits (simsbrt.delivery.sequencing);
  2. the aperture-dose influence matrix on the optimisation rows (targets, GTV, cord PRV, thecal
     sac, normal-tissue ring): one exact column per control point (kernels/device/aperture.py),
     then one column per segment (each segment's MU split over its two control points,
     simsbrt.delivery.apertures);
  3. re-optimise the non-negative segment MU with the fluence plan's own objective and goals
     (FluenceProblem, the same boost goal / prescription), with the same organ-weight rounds as
     the fluence planner when an organ limit fails; a SIB plan that then breaks a limit its boost
     policy requires (every mandatory limit but the GTV floors; the optimal ceilings too under
     optimal_window) is first re-optimised with heavier overdose weights at the same goal; if it
     still breaks one, the deliverable boost search (simsbrt.delivery.search) lowers the goal,
     re-optimising the FLUENCE at each lower goal and re-sequencing it, judged on the deliverable's
     exact aperture dose, and keeps the highest goal whose deliverable plan keeps them;
  4. the final dose: the dose of the final apertures and MU through the same aperture kernel (exact,
     MLC transmission included) on every Body / structure voxel, the voxels of the fluence plan's final
     dose, with its radiological depths (simsbrt.dose.final.DoseGeometry, traced once); normalised to the
     protocol's prescription (PTV_Eval D90%) and evaluated with simsbrt.evaluate; recorded like the
     fluence plan's final dose (final_dose: exact, region, time, depths; final_dose_step).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np
import scipy.sparse as sp

from simsbrt.delivery.apertures import ApertureDoseEngine, Apertures, cp_mu, segment_matrix
from simsbrt.delivery.machine import DEFAULT_MACHINE, MachineModel, load_machine
from simsbrt.delivery.metrics import delivery_metrics
from simsbrt.delivery.search import deliverable_boost_search
from simsbrt.delivery.sequencing import DEFAULT_MEDIAN_PAIRS, sequence_plan
from simsbrt.errors import SpecError
from simsbrt.evaluate import evaluate_protocol, prescription_scale_factor
from simsbrt.evaluate.falloff import gtv_cord_falloff
from simsbrt.evaluate.protocol import BOUNDARY_TOLERANCE, VIOLATED
from simsbrt.optimize.plans import PlanResult, plan_metrics, plan_numbers, sib_fluence_at
from simsbrt.optimize.problem import BOOST, CORD_PRV, TARGET, THECAL_SAC, FluenceProblem, ring_mask
from simsbrt.optimize.sib import ceiling_violations, optimal_ceilings

DOSE_VOXELS = ("body", "grid")   # simsbrt.dose.final.REGIONS


@dataclass(frozen=True)
class DeliverySettings:
    """machine: a built-in machine name or a machine TOML file; dose_voxels: the final dose's region, "body"
    (every Body / structure voxel, as the fluence plan's final dose) or "grid" (every voxel); smoothing_mm: Gaussian
    sigma applied to each angle's fluence before sequencing (0 = none); median_pairs: the median filter of
    the leaf edges over neighbouring pairs (1 = none; simsbrt.delivery.sequencing)."""

    machine: str = DEFAULT_MACHINE
    dose_voxels: str = "body"
    smoothing_mm: float = 0.0
    median_pairs: int = DEFAULT_MEDIAN_PAIRS
    goal_bisections: int = 2       # bisection steps of the deliverable boost search (simsbrt.delivery.search)

    def __post_init__(self):
        if isinstance(self.goal_bisections, bool) or not isinstance(self.goal_bisections, int) or not 0 <= self.goal_bisections <= 8:
            raise SpecError("goal_bisections", f"must be an integer within 0..8, got {self.goal_bisections!r}")
        if isinstance(self.median_pairs, bool) or not isinstance(self.median_pairs, int) or not 1 <= self.median_pairs <= 9:
            raise SpecError("median_pairs", f"must be an integer within 1..9 (1 = no filter), got {self.median_pairs!r}")
        if not (np.isfinite(self.smoothing_mm) and 0.0 <= self.smoothing_mm <= 10.0):
            raise SpecError("smoothing_mm", f"must be within 0..10 mm, got {self.smoothing_mm}")
        if self.dose_voxels not in DOSE_VOXELS:
            raise SpecError("dose_voxels", f"must be one of {', '.join(DOSE_VOXELS)}, got {self.dose_voxels!r}")


@dataclass(frozen=True, eq=False)
class DeliverablePlan(PlanResult):
    """A PlanResult whose weights are segment MU (whole course) of MLC apertures; delivery holds the rest."""

    delivery: dict = field(default_factory=dict)

    def summary(self) -> dict:
        doc = super().summary()
        from simsbrt.delivery.store import delivery_summary

        doc["deliverable"] = delivery_summary(self.delivery)
        return doc


def optimisation_voxels(influence, structures: dict) -> np.ndarray:
    """The influence rows (flat voxel indices) FluenceProblem optimises on: targets, organs and the ring."""
    voxels = np.asarray(influence.voxel_indices)
    used = np.zeros(len(voxels), dtype=bool)
    for name in (TARGET, BOOST, CORD_PRV, THECAL_SAC):
        if name in structures:
            used |= np.asarray(structures[name], bool).ravel()[voxels]
    if "PTV" in structures:
        used |= ring_mask(influence.grid, structures).ravel()[voxels]
    return voxels[used]


def plan_goals(fluence_plan: PlanResult, plan_settings):
    """The fluence plan's goals: its boost goal (SIB) or prescription, organ aims = limit - margin."""
    protocol = fluence_plan.protocol
    margin = plan_settings.organ_margin_gy
    cord = protocol.max_dose_limit_gy(CORD_PRV)
    sac = protocol.max_dose_limit_gy(THECAL_SAC)
    boost = fluence_plan.plan_goal_gy if fluence_plan.mode == "sib" else None
    return plan_settings.goals.with_(boost_gy=boost, prescription_gy=float(protocol.prescription.dose_gy),
                                     cord_prv_aim_gy=max(cord - margin, 0.0), thecal_sac_aim_gy=max(sac - margin, 0.0))


def _seed_segments(fitted_mu: np.ndarray, arc_of_cp: np.ndarray) -> np.ndarray:
    starts = [c for c in range(len(arc_of_cp) - 1) if arc_of_cp[c + 1] == arc_of_cp[c]]
    return np.array([0.5 * (fitted_mu[c] + fitted_mu[c + 1]) for c in starts]) + 1e-6


def make_deliverable(inputs, fluence_plan: PlanResult, plan_settings, settings: DeliverySettings = DeliverySettings(),
                     progress=None, machine: MachineModel | None = None) -> DeliverablePlan:
    """The deliverable version of a fluence plan (module doc)."""
    say = progress or (lambda message: None)
    t_start = time.perf_counter()
    machine = machine or load_machine(settings.machine)
    phantom = inputs.phantom
    masks = phantom.structures
    beamlets = inputs.influence.beamlets
    if beamlets is None:
        raise SpecError("influence", "has no beamlets; cannot sequence apertures")
    timings = {"sequence_s": 0.0, "aperture_matrix_s": 0.0, "optimise_s": 0.0}
    voxels = optimisation_voxels(inputs.influence, masks)
    protocol = fluence_plan.protocol
    stage, deliverable_goal, goal_note, search_steps, n_iter = _deliver_plan(
        inputs, fluence_plan, plan_settings, settings, machine, voxels, timings, say)
    apertures, engine, seg, evaluation = stage.apertures, stage.engine, stage.seg, stage.evaluation
    t0 = time.perf_counter()
    seg, mu_cp, dose, evaluation, metrics, record = final_dose_step(inputs, engine, seg, protocol,
                                                                    settings.dose_voxels, say)
    timings["final_dose_s"] = time.perf_counter() - t0
    timings["deliverable_s"] = time.perf_counter() - t_start
    numbers = delivery_metrics(apertures, seg, protocol.n_fractions)
    delivery = {**numbers, "dose_voxels": settings.dose_voxels, "boost_goal_gy": deliverable_goal,
                "gtv_cord_falloff": {"fluence": gtv_cord_falloff(fluence_plan.dose_gy, masks, phantom.grid),
                                     "deliverable": gtv_cord_falloff(dose, masks, phantom.grid)},
                "boost_search": search_steps,
                "n_apertures": apertures.n_control_points, "n_segments": int(len(seg)), "segment_mu": seg,
                "mu_per_cp": mu_cp, "apertures": apertures}
    say(f"deliverable {fluence_plan.mode}: {'feasible' if evaluation.feasible else 'NOT feasible'}, "
        f"{numbers['mu_per_fraction']:.0f} MU/fx, {numbers['delivery_time_s_per_fraction']:.0f} s/fx, "
        f"MCS {numbers['mcs']:.3f}")
    binding = tuple(evaluation.violated_limits)
    return DeliverablePlan(
        fluence_plan.mode, protocol, seg, dose, evaluation, metrics, bool(evaluation.feasible), binding,
        fluence_plan.boost_goal_gy, fluence_plan.prescription_gy, fluence_plan.cord_prv_limit_gy, fluence_plan.search,
        n_iter, "cpu", "cpu", {**fluence_plan.timings_s, **timings},
        f"deliverable version of the fluence plan{goal_note} (fluence plan: {fluence_plan.search_stop})",
        deliverable_goal if fluence_plan.mode == "sib" else fluence_plan.plan_goal_gy,
        fluence_plan.boost_policy, fluence_plan.floor_conflicts, final_dose=record, delivery=delivery)


def final_dose_step(inputs, engine: ApertureDoseEngine, segment_mu, protocol, region: str = "body", say=None):
    """Step 4 (module doc): the exact dose of the segment MU on the region, normalised to the prescription and
    evaluated. Returns (segment_mu, mu_per_cp, dose_gy, evaluation, metrics, record), all normalised. No
    final - optimiser difference is recorded: the segment optimiser's matrix is the same exact kernel."""
    t0 = time.perf_counter()
    masks, voxel_cc = inputs.phantom.structures, inputs.phantom.grid.voxel_volume_cc
    arcs = engine.apertures.arc_of_cp
    dose, record = delivered_dose(inputs, engine, cp_mu(segment_mu, arcs), region, say)
    factor = prescription_scale_factor(protocol, dose, masks, voxel_cc)
    segment_mu = np.asarray(segment_mu, dtype=np.float64) * factor
    dose = (dose * factor).astype(np.float32)
    evaluation = evaluate_protocol(protocol, dose, masks, voxel_cc)
    record["total_s"] = round(time.perf_counter() - t0, 3)
    return segment_mu, cp_mu(segment_mu, arcs), dose, evaluation, plan_metrics(dose, masks, voxel_cc), record


def _deliver_plan(inputs, fluence_plan, plan_settings, settings, machine, voxels, timings, say):
    """The chosen stage: the fluence plan's own for a uniform plan; for a SIB plan the deliverable boost search's
    (simsbrt.delivery.search). Returns (stage, boost goal, note, search steps, iterations)."""
    protocol = fluence_plan.protocol
    goals = plan_goals(fluence_plan, plan_settings)
    sib = fluence_plan.mode == "sib" and goals.boost_gy is not None
    required = required_limits(protocol, fluence_plan.boost_policy)

    def deliver_at(weights, goal_gy):
        stage = _deliver_fluence(inputs, weights, goals.with_(boost_gy=goal_gy), protocol, plan_settings, settings,
                                 machine, voxels, required if sib else None, timings, say)
        return stage, stage.evaluation

    if not sib:
        stage, _ = deliver_at(fluence_plan.weights, goals.boost_gy)
        return stage, goals.boost_gy, stage.note, [], stage.n_iter
    t0 = time.perf_counter()
    found = deliverable_boost_search(deliver_at, _fluence_at(inputs, plan_settings, timings), required,
                                     float(goals.boost_gy), float(plan_numbers(plan_settings).boost_range_gy[0]),
                                     fluence_plan.weights, settings.goal_bisections, say)
    timings["boost_search_s"] = time.perf_counter() - t0
    stage = found.chosen.result
    return (stage, found.chosen.goal_gy, stage.note + found.note, [step.to_dict() for step in found.steps],
            sum(step.result.n_iter for step in found.steps))


def delivered_dose(inputs, engine: ApertureDoseEngine, mu_per_cp, region: str = "body", say=None):
    """The exact dose (Gy, float32, grid shape; zero outside the region) of the apertures delivering mu_per_cp and
    its record (as FinalDose.record). Region "body" shares the fluence plans' DoseGeometry (its radiological
    depths) through inputs.cache["final_dose_geometry"], building it when no fluence plan has."""
    from simsbrt.dose.final import DoseGeometry
    from simsbrt.progress import fraction

    t0 = time.perf_counter()
    phantom = inputs.phantom
    geometry = inputs.cache.get("final_dose_geometry") if region == "body" else None
    if geometry is None:
        geometry = DoseGeometry.build(phantom, inputs.influence.beamlets, inputs.backend, engine.beam, region)
        if region == "body":
            inputs.cache["final_dose_geometry"] = geometry
    values, shared = engine.dose_on(geometry, mu_per_cp,
                                    progress=lambda done, total: fraction(say, "deliverable final dose, voxels",
                                                                          done, total))
    out = np.zeros(phantom.grid.n_voxels, dtype=np.float32)
    out[geometry.voxels] = values.astype(np.float32)
    record = {"exact": True, "time_s": round(time.perf_counter() - t0, 3), "backend": engine.backend.name,
              "device": engine.backend.device, "region": geometry.region, "n_voxels": int(len(geometry.voxels)),
              "engine": "MLC apertures, kernels/device/aperture.py",
              "mlc_transmission_frac": engine.transmission,
              "depths": "shared with the fluence plans' final dose" if shared else "traced for the apertures"}
    return out.reshape(phantom.grid.shape), record


class _SegmentSolver:
    """Optimise the segment MU at given goals, normalise on the optimisation rows (they hold every voxel of
    PTV_Eval, GTV, cord PRV and thecal sac, so the protocol's metrics are exact there) and evaluate; heavier
    organ weights while an organ limit fails (as the fluence planner's rounds)."""

    def __init__(self, problem, seg_columns, voxels, protocol, masks, grid, plan_settings):
        self.problem, self.seg_columns, self.voxels = problem, seg_columns, voxels
        self.protocol, self.masks, self.grid, self.settings = protocol, masks, grid, plan_settings
        self.n_iter = 0

    def evaluate(self, seg):
        dose = np.zeros(self.grid.n_voxels, dtype=np.float32)
        dose[self.voxels] = self.seg_columns @ seg
        dose = dose.reshape(self.grid.shape)
        factor = prescription_scale_factor(self.protocol, dose, self.masks, self.grid.voxel_volume_cc)
        return seg * factor, evaluate_protocol(self.protocol, (dose * factor).astype(np.float32), self.masks,
                                               self.grid.voxel_volume_cc)

    def __call__(self, goals, seg0):
        first = None
        seg = seg0
        for _ in range(self.settings.organ_rounds + 1):
            result = self.problem.optimise(goals, seg, self.settings.solver, self.settings.solver_options)
            self.n_iter += result.n_iter
            seg = np.asarray(result.x, dtype=np.float64)
            candidate = self.evaluate(seg)
            first = first or candidate
            if not any(r.status == VIOLATED and r.structure in (CORD_PRV, THECAL_SAC) for r in candidate[1].rows):
                return candidate
            goals = goals.with_(weights=replace(goals.weights, organ_overdose=5.0 * goals.weights.organ_overdose))
        return first


def _blocking(evaluation) -> tuple[str, ...]:
    """Violated mandatory limits other than GTV floors (those a lower boost goal cannot help)."""
    return tuple(r.limit_name for r in evaluation.rows if r.status == VIOLATED
                 and not (r.structure == BOOST and r.mandatory is not None and r.mandatory.max_value is None))


def required_limits(protocol, boost_policy: str | None):
    """evaluation -> the limits a deliverable SIB plan must keep under the fluence plan's boost policy: every
    mandatory limit except the GTV floors, plus every optimal ceiling under "optimal_window" (as the fluence
    search: simsbrt.optimize.plans)."""
    ceilings = optimal_ceilings(protocol) if boost_policy == "optimal_window" else ()

    def required(evaluation) -> tuple[str, ...]:
        return _blocking(evaluation) + ceiling_violations(evaluation, ceilings, BOUNDARY_TOLERANCE)
    return required


@dataclass(frozen=True, eq=False)
class _Stage:
    """One fluence sequenced into apertures, with its segment MU optimised at one goal (optimisation-row dose)."""

    apertures: Apertures
    engine: ApertureDoseEngine
    seg: np.ndarray
    evaluation: object
    n_iter: int
    note: str


def _deliver_fluence(inputs, weights, goals, protocol, plan_settings, settings, machine, voxels, required, timings,
                     say) -> _Stage:
    """Sequence the fluence weights, compute the exact aperture-dose columns on the optimisation voxels and
    optimise the segment MU at goals; a SIB stage that breaks a required limit (required is not None) gets the
    hot-spot rounds."""
    from simsbrt.dose.influence import InfluenceMatrix

    phantom = inputs.phantom
    t0 = time.perf_counter()
    apertures, fitted = sequence_plan(inputs.influence.beamlets, weights, inputs.arc_set, machine,
                                      settings.smoothing_mm, settings.median_pairs)
    timings["sequence_s"] += time.perf_counter() - t0
    engine = ApertureDoseEngine(phantom.grid, phantom.density, apertures)
    t0 = time.perf_counter()
    columns = engine.columns(voxels)
    to_segments = segment_matrix(apertures.arc_of_cp)
    seg_columns = (columns.astype(np.float64) @ to_segments).astype(np.float32)
    spent = time.perf_counter() - t0
    timings["aperture_matrix_s"] += spent
    say(f"{apertures.n_control_points} apertures on {machine.name}; exact aperture doses on {len(voxels)} "
        f"optimisation voxels in {spent:.1f} s; re-optimising {to_segments.shape[1]} segment MU")
    influence = InfluenceMatrix(sp.csr_matrix(seg_columns), voxels, phantom.grid, "cpu", "cpu")
    problem = FluenceProblem.build(influence, phantom.structures, pairs=np.zeros((0, 2), dtype=np.int64),
                                   merge_columns=False)
    t0 = time.perf_counter()
    solve = _SegmentSolver(problem, seg_columns, voxels, protocol, phantom.structures, phantom.grid, plan_settings)
    seg, evaluation = solve(goals, _seed_segments(fitted, apertures.arc_of_cp))
    note = ""
    if required is not None and required(evaluation):
        seg, evaluation, note = _cool_hot_spots(solve, goals, seg, evaluation, required, say)
    timings["optimise_s"] += time.perf_counter() - t0
    return _Stage(apertures, engine, seg, evaluation, solve.n_iter, note)


def _fluence_at(inputs, plan_settings, timings):
    """goal, warm weights -> the SIB fluence re-optimised at that goal (simsbrt.optimize.plans.sib_fluence_at)."""
    def fluence_at(goal_gy, warm_weights):
        t0 = time.perf_counter()
        weights = sib_fluence_at(inputs, plan_settings, goal_gy, warm_weights).weights
        timings["fluence_resequence_s"] = timings.get("fluence_resequence_s", 0.0) + time.perf_counter() - t0
        return weights
    return fluence_at


HOT_SPOT_ROUNDS = 2


def _cool_hot_spots(solve, goals, seg, evaluation, required, say):
    """First remedy at the same boost goal: up to HOT_SPOT_ROUNDS re-optimisations with the target and GTV
    overdose weights x 5 per round (the hot spot is what one aperture per control point worsens)."""
    failing = required(evaluation)
    weights = goals.weights
    for k in range(1, HOT_SPOT_ROUNDS + 1):
        heavier = replace(weights, boost_overdose=weights.boost_overdose * 5.0 ** k,
                          target_overdose=weights.target_overdose * 5.0 ** k)
        trial_seg, trial_ev = solve(goals.with_(weights=heavier), seg)
        blocked = required(trial_ev)
        say(f"deliverable: hot-spot round {k} (overdose weights x {5 ** k}) -> {'; '.join(blocked) or 'meets the limits'}")
        if not blocked:
            return trial_seg, trial_ev, (f" with overdose weights x {5 ** k} (at the standard weights it violates "
                                         f"{'; '.join(failing)})")
    return seg, evaluation, ""


COMPARED = (("GTV", "D50%"), ("GTV", "D98%"), ("GTV", "D2%"), ("PTV_Eval", "D90%"), ("PTV_Eval", "D2%"),
            (CORD_PRV, "D0.03cc"), (THECAL_SAC, "D0.03cc"))


def fluence_vs_deliverable(fluence_plan: PlanResult, deliverable: DeliverablePlan) -> dict:
    """The side-by-side numbers: DVH metrics of both, the change (deliverable - fluence), delivery numbers."""
    rows = []
    for structure, metric in COMPARED:
        a = fluence_plan.metrics.get(structure, {}).get(metric)
        b = deliverable.metrics.get(structure, {}).get(metric)
        rows.append({"structure": structure, "metric": metric, "fluence_gy": a, "deliverable_gy": b,
                     "change_gy": None if a is None or b is None else b - a})
    d = deliverable.delivery
    return {"mode": fluence_plan.mode, "fluence_feasible": fluence_plan.feasible,
            "fluence_boost_goal_gy": fluence_plan.plan_goal_gy if fluence_plan.mode == "sib" else None,
            "deliverable_boost_goal_gy": d.get("boost_goal_gy") if fluence_plan.mode == "sib" else None,
            "deliverable_search_stop": deliverable.search_stop,
            "deliverable_feasible": deliverable.feasible,
            "deliverable_violated": list(deliverable.evaluation.violated_limits), "metrics": rows,
            "mu_per_fraction": d["mu_per_fraction"], "delivery_time_s_per_fraction": d["delivery_time_s_per_fraction"],
            "gtv_cord_falloff": _falloff_pair(d.get("gtv_cord_falloff")),
            "deliverable_final_dose": dict(deliverable.final_dose),
            "mcs": d["mcs"], "max_leaf_speed_mm_per_s": d["max_leaf_speed_mm_per_s"], "machine": d["machine"],
            "calibration": d["calibration"],
            "fluence_plan_s": float(fluence_plan.timings_s.get("plan_s", float("nan"))),
            "deliverable_s": float(deliverable.timings_s.get("deliverable_s", float("nan")))}


def _falloff_pair(falloff: dict | None) -> dict:
    """The GTV-to-cord-PRV fall-off (Gy/mm, simsbrt.evaluate.falloff) of both plans and the change."""
    a, b = ((falloff or {}).get(k) for k in ("fluence", "deliverable"))
    fa, fb = (None if x is None else x["falloff_gy_per_mm"] for x in (a, b))
    return {"fluence_gy_per_mm": fa, "deliverable_gy_per_mm": fb,
            "change_gy_per_mm": None if fa is None or fb is None else round(fb - fa, 4),
            "gap_mm": None if a is None else a["gap_mm"], "fluence": a, "deliverable": b}
