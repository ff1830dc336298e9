"""The deliverable boost search's bracket and bisection, on stand-in steps whose acceptable goals are known
(goal <= a threshold), so every expected goal is worked out by hand from the rule in its docstring."""
import numpy as np

from simsbrt.delivery.search import deliverable_boost_search


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
