"""The deliverable boost search: its bracket and bisection on stand-in steps whose acceptable goals are known
(goal <= a threshold), so every expected goal is worked out by hand from the rule in its docstring; then the
search inside make_deliverable on the tiny case, judged by simsbrt.evaluate on the plan's stored dose."""
from dataclasses import replace

import numpy as np
import pytest

from simsbrt.delivery.search import deliverable_boost_search
from simsbrt.evaluate import evaluate_protocol


class _Steps:
    """deliver_at / fluence_at stand-ins: a goal is acceptable when it is <= threshold_gy; fluence_at records
    its warm start and returns weights that encode the goal."""

    def __init__(self, threshold_gy):
        self.threshold_gy = threshold_gy
        self.fluence_calls = []

    def deliver_at(self, weights, goal_gy):
        return ("result", goal_gy), ("evaluation", goal_gy)

    def fluence_at(self, goal_gy, warm):
        self.fluence_calls.append((goal_gy, float(warm[0])))
        return np.array([goal_gy])

    def blocking(self, evaluation):
        return () if evaluation[1] <= self.threshold_gy else ("GTV D2% optimal <= 48 Gy",)


def _search(threshold_gy, top_gy=48.0, bottom_gy=30.0, bisections=2):
    s = _Steps(threshold_gy)
    found = deliverable_boost_search(s.deliver_at, s.fluence_at, s.blocking, top_gy, bottom_gy, np.array([-1.0]),
                                     bisections)
    return s, found


def test_an_acceptable_fluence_plan_goal_is_kept_without_resequencing():
    s, found = _search(threshold_gy=48.0)
    assert found.feasible and found.chosen.goal_gy == 48.0 and not found.chosen.resequenced
    assert [st.goal_gy for st in found.steps] == [48.0] and s.fluence_calls == []


def test_the_goal_steps_down_1_2_4_gy_then_bisects_between_the_bracket():
    # 48 fails, 47 fails, 46 fails, 44 ok -> bracket (44, 46): 45 fails, 44.5 fails -> 44
    s, found = _search(threshold_gy=44.3)
    assert [st.goal_gy for st in found.steps] == [48.0, 47.0, 46.0, 44.0, 45.0, 44.5]
    assert found.feasible and found.chosen.goal_gy == 44.0 and found.chosen.resequenced
    assert found.chosen.result == ("result", 44.0)
    # each lower goal is warm-started from the previous step's fluence; bisections from the best one's
    assert s.fluence_calls == [(47.0, -1.0), (46.0, 47.0), (44.0, 46.0), (45.0, 44.0), (44.5, 44.0)]
    assert "lowest failing goal 44.50 Gy" in found.note


def test_a_bisection_step_that_passes_raises_the_goal():
    # 48, 47, 46 fail; 44 ok; 45 ok; 45.5 fails -> 45
    _, found = _search(threshold_gy=45.2)
    assert [st.goal_gy for st in found.steps] == [48.0, 47.0, 46.0, 44.0, 45.0, 45.5]
    assert found.chosen.goal_gy == 45.0


def test_no_acceptable_goal_returns_the_range_bottom_plan_with_its_binding_limit():
    # 48, 47, 46, 44, 40, 32, then 48 - 32 = 16 is below the range bottom: clamped to 30, which fails too
    _, found = _search(threshold_gy=20.0)
    assert [st.goal_gy for st in found.steps] == [48.0, 47.0, 46.0, 44.0, 40.0, 32.0, 30.0]
    assert not found.feasible and found.chosen.goal_gy == 30.0
    assert "binding: GTV D2% optimal <= 48 Gy" in found.note and "down to the GTV boost goal 30.00 Gy" in found.note


def test_the_search_is_deterministic():
    a = [st.to_dict() for st in _search(threshold_gy=41.7)[1].steps]
    b = [st.to_dict() for st in _search(threshold_gy=41.7)[1].steps]
    assert a == b


# ------------------------------------------------------------------ the search inside make_deliverable
@pytest.fixture(scope="module")
def tiny_sib():
    """The tiny case (simsbrt.tiny_case: a cut-down t10_body, 60-degree arcs, 10 mm beamlets) and its SIB plan."""
    from simsbrt.optimize.plans import make_plan
    from simsbrt.tiny_case import tiny_inputs, tiny_settings

    inputs, settings = tiny_inputs("cpu"), tiny_settings()
    return inputs, settings, make_plan(inputs, "sib", settings)


def _broken(plan, phantom):
    """Mandatory limits (GTV floors aside) and optimal ceilings the plan's stored dose breaks, judged by
    simsbrt.evaluate on that dose, independently of the search's own verdict."""
    ev = evaluate_protocol(plan.protocol, plan.dose_gy, phantom.structures, phantom.grid.voxel_volume_cc)
    out = []
    for r in ev.rows:
        gtv_floor = r.structure == "GTV" and r.mandatory is not None and r.mandatory.max_value is None
        if r.status == "violated" and not gtv_floor:
            out.append(r.limit_name)
        ceiling = r.optimal.max_value if r.optimal is not None else None
        if ceiling is not None and r.value is not None and (r.structure, r.metric) != ("PTV_Eval", "D90%") \
                and r.value > ceiling + 1e-3:
            out.append(f"{r.limit_name} optimal ceiling")
    return out


def test_a_deliverable_sib_that_breaks_a_limit_is_resequenced_at_the_highest_acceptable_goal(tiny_sib):
    """At a 51 Gy goal the deliverable breaks the D2% limits: the fluence is re-optimised at lower goals and
    re-sequenced; the plan kept is the highest acceptable goal tried, below every failing one, and its stored
    dose keeps every required limit. The same inputs give the same plan."""
    from simsbrt.delivery.plan import DeliverySettings, make_deliverable

    inputs, settings, fluence = tiny_sib
    fluence = replace(fluence, plan_goal_gy=51.0)
    plan = make_deliverable(inputs, fluence, settings, DeliverySettings(goal_bisections=1))
    assert plan.feasible and _broken(plan, inputs.phantom) == []
    steps = plan.delivery["boost_search"]
    assert steps[0]["goal_gy"] == 51.0 and not steps[0]["acceptable"] and not steps[0]["resequenced"]
    assert all(s["resequenced"] for s in steps[1:])
    goal = plan.delivery["boost_goal_gy"]
    assert goal < 51.0 and plan.plan_goal_gy == goal
    assert goal == max(s["goal_gy"] for s in steps if s["acceptable"])
    assert all(not s["acceptable"] for s in steps if s["goal_gy"] > goal)
    again = make_deliverable(inputs, fluence, settings, DeliverySettings(goal_bisections=1))
    np.testing.assert_array_equal(again.weights, plan.weights)
    np.testing.assert_array_equal(again.delivery["apertures"].leaves_mm, plan.delivery["apertures"].leaves_mm)
    np.testing.assert_array_equal(again.dose_gy, plan.dose_gy)
    assert again.delivery["boost_search"] == steps


def test_a_deliverable_sib_with_no_acceptable_goal_names_its_binding_limit(tiny_sib):
    """A 5 Gy cord PRV limit no goal can keep: the search goes down to the bottom of the boost range, returns
    that plan not feasible, and names the cord limit as binding."""
    from simsbrt.delivery.plan import make_deliverable
    from simsbrt.optimize.plans import plan_numbers, with_organ_limits

    inputs, settings, fluence = tiny_sib
    strict = replace(fluence, plan_goal_gy=51.0, protocol=with_organ_limits(fluence.protocol, 5.0))
    plan = make_deliverable(inputs, strict, settings)
    steps = plan.delivery["boost_search"]
    bottom = float(plan_numbers(settings).boost_range_gy[0])
    assert not any(s["acceptable"] for s in steps) and steps[-1]["goal_gy"] == bottom
    assert plan.delivery["boost_goal_gy"] == bottom and not plan.feasible
    assert "SpinalCord_PRV02 D0.03cc <= 5 Gy" in _broken(plan, inputs.phantom)
    assert "no deliverable plan meets the limits" in plan.search_stop
    assert "binding: " + "; ".join(steps[-1]["blocking"]) in plan.search_stop
    assert "SpinalCord_PRV02 D0.03cc <= 5 Gy" in steps[-1]["blocking"]
