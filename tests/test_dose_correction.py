"""The dose-correction loop (simsbrt.optimize.correction): a limit the optimiser's dose met but the exact
dose breaks is corrected by re-optimising on D w + c, or the plan is reported infeasible naming it.

To know the answer in advance, the "exact dose" here is the optimiser's dose plus a known systematic
error in the cord PRV (a fixed bump): a correction that works removes it, one that cannot (a bump
larger than the whole limit) must leave the plan infeasible.
"""
import numpy as np
import pytest

from simsbrt.dose.final import FinalDose
from simsbrt.optimize.correction import finalise
from simsbrt.optimize.plans import PlanSettings, _never, _Planner, make_plan, protocol_for
from simsbrt.optimize.problem import CORD_PRV

PRV_LIMIT = f"{CORD_PRV} D0.03cc <= 25 Gy"


def _bumped(planner, bump_gy):
    prv = planner.masks[CORD_PRV]

    def exact_dose(weights):
        dose = planner.optimiser_dose(weights) + np.where(prv, bump_gy, 0.0)
        return FinalDose(dose.astype(np.float32), True, 0.0, "cpu", "cpu", int(dose.size))
    return exact_dose


@pytest.fixture(scope="module")
def uniform(tiny_plan_inputs):
    settings = PlanSettings()
    planner = _Planner(tiny_plan_inputs, settings)
    protocol = protocol_for("uniform", settings)
    goals = planner.goals.with_(boost_gy=None)
    cand = planner.candidate(goals, protocol, None, _never, settings.search_solver_options)
    assert PRV_LIMIT not in cand.evaluation.violated_limits
    return planner, protocol, goals, cand, settings


def test_a_broken_organ_limit_is_corrected(uniform):
    planner, protocol, goals, cand, settings = uniform
    prv_gy = cand.evaluation.row(CORD_PRV, "D0.03cc").value
    planner.exact_dose = _bumped(planner, 25.0 - prv_gy + 1.5)      # the "exact" PRV maximum is 26.5 Gy
    try:
        fin = finalise(planner, cand, protocol,
                       lambda warm: planner.candidate(goals, protocol, warm, _never, settings.search_solver_options))
    finally:
        del planner.exact_dose
    assert fin.record["correction_rounds"] >= 1 and fin.record["kept_round"] >= 1
    assert fin.broken == ()
    assert fin.candidate.evaluation.row(CORD_PRV, "D0.03cc").value <= 25.0 + 1e-6
    assert planner.correction_gy is None and planner.problem is planner._base_problem   # the correction is removed


def test_an_uncorrectable_limit_makes_the_plan_infeasible_and_is_named(tiny_plan_inputs, monkeypatch):
    def exact_dose(self, weights):
        return _bumped(self, 40.0)(weights)

    monkeypatch.setattr(_Planner, "exact_dose", exact_dose)
    result = make_plan(tiny_plan_inputs, "uniform", PlanSettings(solver_options=PlanSettings().search_solver_options))
    assert not result.feasible
    assert result.binding_limits[0] == PRV_LIMIT
    assert result.search_stop.startswith(f"infeasible on the exact final dose: {PRV_LIMIT}")
    assert result.final_dose["correction_rounds"] == 2
    assert result.summary()["final_minus_optimiser_gy"][f"{CORD_PRV} D0.03cc"] == pytest.approx(40.0, abs=1e-3)
