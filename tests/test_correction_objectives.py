"""A dose-correction round re-optimises with the objectives of the plan it corrects.

A SIB plan chosen after GTV-floor rounds was optimised with extra GTV underdose objectives; when its exact
final dose breaks a limit, the correction round (simsbrt.optimize.correction.finalise) must re-optimise with
those same extra objectives, not with the goals alone.
"""
import numpy as np

from simsbrt.dose.final import FinalDose
from simsbrt.optimize.correction import finalise
from simsbrt.optimize.objectives import SquaredUnderdose
from simsbrt.optimize.plans import PlanSettings, _never, _Planner, _reoptimiser, protocol_for
from simsbrt.optimize.solvers import SolverOptions


def test_correction_round_keeps_the_gtv_floor_objectives(tiny_plan_inputs, monkeypatch):
    quick = SolverOptions(max_iter=15, ftol=1e-4)   # the objectives passed matter here, not convergence
    settings = PlanSettings(organ_rounds=0, solver_options=quick, search_solver_options=quick)
    planner = _Planner(tiny_plan_inputs, settings)
    protocol = protocol_for("sib", settings)
    goals = planner.goals.with_(boost_gy=44.0)
    floor = (SquaredUnderdose("GTV floor test", planner.floor_rows(()), 40.0, 10.0),)
    cand = planner.candidate(goals, protocol, None, _never, settings.search_solver_options, floor)
    assert cand.extra_objectives == floor

    prv = np.asarray(planner.masks["SpinalCord_PRV02"], bool)
    calls = {"exact": 0, "extra": []}

    def exact_dose(weights):   # the first exact dose breaks the cord-PRV limit; later ones equal D w
        dose = planner.optimiser_dose(weights).astype(np.float32)
        if calls["exact"] == 0:
            dose[prv] *= 3.0
        calls["exact"] += 1
        return FinalDose(dose, True, 0.0, "cpu", "test", int(dose.size))

    candidate = planner.candidate

    def recording(*args, **kwargs):
        calls["extra"].append(kwargs.get("extra_objectives", ()))
        return candidate(*args, **kwargs)

    monkeypatch.setattr(planner, "exact_dose", exact_dose)
    monkeypatch.setattr(planner, "candidate", recording)
    fin = finalise(planner, cand, protocol, _reoptimiser(planner, goals, protocol), max_rounds=1)
    assert fin.record["correction_rounds"] == 1 and calls["exact"] == 2
    assert calls["extra"] == [floor], "the correction round must re-optimise with the plan's GTV-floor objectives"
    assert fin.candidate.extra_objectives == floor
