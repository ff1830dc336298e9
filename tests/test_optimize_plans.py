"""uniform / sib / uniform_escalated on a tiny phantom (t10_body at 3 mm, coarse arcs) with the real dose
engine; every verdict comes from simsbrt.evaluate on the full-grid dose."""
from dataclasses import replace

import numpy as np
import pytest
from conftest import tiny_arcs

from simsbrt.errors import SpecError
from simsbrt.evaluate import compute_dvh, evaluate_protocol
from simsbrt.geometry.beamlets import build_beamlets
from simsbrt.optimize.plans import PlanSettings, make_plan, protocol_for
from simsbrt.optimize.problem import beamlet_neighbour_pairs

N_BISECTIONS = 4


@pytest.fixture(scope="module")
def inputs(tiny_plan_inputs):
    return tiny_plan_inputs


@pytest.fixture(scope="module")
def plans(inputs):
    settings = PlanSettings(n_bisections=N_BISECTIONS, boost_policy="max")   # the cord binds (max policy)
    return {"uniform": make_plan(inputs, "uniform", settings), "sib": make_plan(inputs, "sib", settings)}


def _gtv_d50(inputs, result):
    ph = inputs.phantom
    return compute_dvh(result.dose_gy, ph.structures["GTV"], ph.grid.voxel_volume_cc).dose_at_percent(50.0)


def test_uniform_plan_meets_its_protocol(inputs, plans):
    result = plans["uniform"]
    ph = inputs.phantom
    # independent re-evaluation of the stored dose: the verdict is the evaluation module's
    ev = evaluate_protocol("uniform", result.dose_gy, ph.structures, ph.grid.voxel_volume_cc)
    assert ev.feasible and result.feasible
    assert ev.row("PTV_Eval", "D90%").value == pytest.approx(30.0, abs=0.05)
    assert ev.row("SpinalCord_PRV02", "D0.03cc").value <= 25.0
    # homogeneity goal: no boost
    assert _gtv_d50(inputs, result) < 36.0


def test_sib_plan_meets_every_mandatory_limit_and_boosts_the_gtv(inputs, plans):
    sib, uniform = plans["sib"], plans["uniform"]
    ph = inputs.phantom
    ev = evaluate_protocol("sib_trial", sib.dose_gy, ph.structures, ph.grid.voxel_volume_cc)
    assert ev.feasible, ev.format_table()
    assert not ev.violated_limits
    assert ev.row("PTV_Eval", "D90%").value == pytest.approx(30.0, abs=0.05)
    for structure, metric in (("PTV_Eval", "D2%"), ("GTV", "D2%")):
        assert ev.row(structure, metric).value <= 51.0
    assert ev.row("SpinalCord_PRV02", "D0.03cc").value <= 25.0
    gtv_sib, gtv_uniform = _gtv_d50(inputs, sib), _gtv_d50(inputs, uniform)
    assert gtv_sib >= 36.0                      # the protocol's mandatory boost
    assert gtv_sib > gtv_uniform + 6.0          # "well above" the uniform plan
    assert sib.metrics["GTV"]["D50%"] == pytest.approx(gtv_sib)
    assert sib.metrics["ThecalSac"]["D0.03cc"] is None   # no thecal sac at T10 (cord level)


def test_tightening_the_cord_limit_never_raises_the_boost(inputs, plans):
    tight = make_plan(inputs, "sib", PlanSettings(n_bisections=N_BISECTIONS, cord_prv_limit_gy=18.0,
                                                  boost_policy="max"))
    assert tight.feasible
    assert tight.metrics["SpinalCord_PRV02"]["D0.03cc"] <= 18.0
    assert tight.boost_goal_gy <= plans["sib"].boost_goal_gy
    assert tight.metrics["GTV"]["D50%"] <= plans["sib"].metrics["GTV"]["D50%"] + 0.25


def test_an_impossible_cord_limit_is_reported_infeasible_naming_the_limit(inputs):
    result = make_plan(inputs, "sib", PlanSettings(n_bisections=N_BISECTIONS, cord_prv_limit_gy=1.0))
    assert not result.feasible
    assert result.binding_limits[0] == "SpinalCord_PRV02 D0.03cc <= 1 Gy"
    assert "SpinalCord_PRV02 D0.03cc <= 1 Gy" in result.evaluation.violated_limits
    summary = result.summary()
    assert summary["feasible"] is False


def test_uniform_escalated_raises_the_prescription_within_the_limits(inputs):
    result = make_plan(inputs, "uniform_escalated", PlanSettings(n_bisections=2))
    ph = inputs.phantom
    assert result.feasible
    assert result.prescription_gy > 30.0
    ptv = compute_dvh(result.dose_gy, ph.structures["PTV_Eval"], ph.grid.voxel_volume_cc)
    assert ptv.dose_at_percent(90.0) == pytest.approx(result.prescription_gy, rel=2e-3)
    assert ptv.dose_at_percent(2.0) <= 51.0
    assert result.metrics["SpinalCord_PRV02"]["D0.03cc"] <= 25.0


def test_plans_are_deterministic(inputs, plans):
    # fresh inputs cache: the optimisation is run again, not reused from the first plan (plans.PlanInputs.cache)
    again = make_plan(replace(inputs, cache={}), "uniform", PlanSettings(n_bisections=N_BISECTIONS))
    np.testing.assert_array_equal(again.weights, plans["uniform"].weights)
    np.testing.assert_array_equal(again.dose_gy, plans["uniform"].dose_gy)


def test_neighbour_pairs_are_adjacent_cells_or_consecutive_control_points(inputs):
    beamlets = build_beamlets(tiny_arcs(), inputs.phantom.grid, inputs.phantom.structures["PTV"])
    pairs = beamlet_neighbour_pairs(beamlets)
    cols = beamlets.columns()
    cp, k, l = cols["control_point"], cols["k"], cols["l"]
    arc = np.array([c.arc_index for c in beamlets.control_points])[cp]
    a, b = pairs[:, 0], pairs[:, 1]
    same_cp = (cp[a] == cp[b]) & (np.abs(k[a] - k[b]) + np.abs(l[a] - l[b]) == 1)
    next_cp = (cp[b] == cp[a] + 1) & (k[a] == k[b]) & (l[a] == l[b]) & (arc[a] == arc[b])
    assert len(pairs) > beamlets.n_beamlets
    assert np.all(same_cp | next_cp)
    assert len(np.unique(np.sort(pairs, axis=1), axis=0)) == len(pairs)


def test_bad_requests_raise_spec_errors_naming_the_field(inputs):
    with pytest.raises(SpecError, match="mode"):
        make_plan(inputs, "boost_everything")
    with pytest.raises(SpecError, match="cord-prv-limit-gy"):
        PlanSettings(cord_prv_limit_gy=-3.0)
    with pytest.raises(SpecError, match="boost_range_gy"):
        PlanSettings(boost_range_gy=(45.0, 30.0))
    assert protocol_for("sib", PlanSettings(cord_prv_limit_gy=20.0)).limits[-2].mandatory.max_value == 20.0


def test_sib_search_ends_at_a_binding_mandatory_limit(inputs, plans):
    """The goal range reaches the 51 Gy D2% ceiling, so the search must stop where a limit binds."""
    sib = plans["sib"]
    assert sib.search_stop.startswith("a limit binds")
    assert sib.binding_limits
    mandatory_ceilings = {"GTV D2% <= 51 Gy", "PTV_Eval D2% <= 51 Gy", "SpinalCord_PRV02 D0.03cc <= 25 Gy",
                          "ThecalSac D0.03cc <= 30 Gy"}
    floors = ("PTV_Eval D98%", "GTV D98%")
    assert all(b in mandatory_ceilings or b.startswith(floors) for b in sib.binding_limits), sib.binding_limits
    failed = [s for s in sib.search if not s.acceptable]
    assert failed and min(s.goal_gy for s in failed) > sib.boost_goal_gy
    assert sib.plan_goal_gy <= sib.boost_goal_gy
    assert sib.summary()["search_stop"] == sib.search_stop


def test_sib_search_that_stops_at_its_range_top_says_so(inputs):
    result = make_plan(inputs, "sib", PlanSettings(n_bisections=1, boost_range_gy=(30.0, 36.0)))
    assert result.feasible
    assert result.search_stop.startswith("range top reached")
    assert result.boost_goal_gy == 36.0
    assert result.binding_limits == ()


def test_plans_sharing_one_exact_dose_pass_equal_plans_made_one_by_one(inputs, plans):
    """make_plans (the searches, then one pass of exact final doses for all, then each verdict) gives each mode
    the plan make_plan gives it alone: the same weights, dose (to the proven 2^-26 truncation bound of voxels
    recomputed for one map only), verdict and binding limits."""
    from simsbrt.optimize.plans import make_plans

    settings = PlanSettings(n_bisections=N_BISECTIONS, boost_policy="max")
    together = make_plans(inputs, ("uniform", "sib"), settings)
    assert list(together) == ["uniform", "sib"]
    for mode, result in together.items():
        alone = plans[mode]
        assert result.final_dose["doses_in_pass"] == 2 and alone.final_dose["doses_in_pass"] == 1
        np.testing.assert_array_equal(result.weights, alone.weights)
        np.testing.assert_allclose(result.dose_gy, alone.dose_gy, rtol=2.0**-22, atol=0)
        assert result.feasible == alone.feasible and result.binding_limits == alone.binding_limits
        assert result.metrics == alone.metrics
    with pytest.raises(SpecError, match="modes"):
        make_plans(inputs, ("sib", "sib"), settings)


def test_plans_searched_before_a_failing_search_are_still_finished(inputs, monkeypatch):
    """No finished search is lost: when a later mode's search raises, the plans searched before it are judged
    on their exact dose and handed to on_result before the error goes on."""
    import simsbrt.optimize.plans as plans_module

    real = plans_module._searched

    def failing(plan_inputs, mode, settings, progress):
        if mode == "sib":
            raise RuntimeError("search failed")
        return real(plan_inputs, mode, settings, progress)

    monkeypatch.setattr(plans_module, "_searched", failing)
    handed = {}
    with pytest.raises(RuntimeError, match="search failed"):
        plans_module.make_plans(inputs, ("uniform", "sib"), PlanSettings(), on_result=handed.__setitem__)
    assert list(handed) == ["uniform"] and handed["uniform"].final_dose["exact"] is True
