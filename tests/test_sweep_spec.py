"""Sweep files: parsing errors name the field, point expansion, stable run ids, gap derivation, fractionation."""
import math
from pathlib import Path

import numpy as np
import pytest

from simsbrt.errors import SpecError
from simsbrt.sweep.points import expand_points, organ_limits_for_fractions, plan_settings
from simsbrt.sweep.spec import parse_sweep

BASE = {"phantom": "t10_body", "modes": ["uniform"], "fixed": {"phantom.grid.spacing_mm": 3.0}}


def sweep(**extra):
    return parse_sweep({**BASE, **extra})


def test_unknown_top_key_is_named():
    with pytest.raises(SpecError) as err:
        sweep(grdi={"plan.search_steps": [1]})
    assert err.value.field == "grdi"


def test_a_misspelt_parameter_path_names_the_one_meant():
    with pytest.raises(SpecError) as err:
        sweep(grid={"phantom.gtv.volum_cc": [5.0]})
    assert err.value.field == "phantom.gtv.volum_cc"
    assert "did you mean phantom.gtv.volume_cc?" in err.value.problem
    assert "plan.cord_prv_limit_gy" not in err.value.problem


def test_an_unknown_parameter_path_lists_the_valid_ones_of_its_section():
    with pytest.raises(SpecError) as err:
        sweep(grid={"arcs.wobble": [1.0]})
    assert err.value.field == "arcs.wobble"
    assert "arcs.spacing_deg" in err.value.problem and "arcs.n_arcs" in err.value.problem
    assert "plan." not in err.value.problem


def test_zip_lists_of_unequal_length_are_refused():
    with pytest.raises(SpecError) as err:
        sweep(zip=[{"plan.cord_prv_limit_gy": [20.0, 25.0], "plan.boost_max_gy": [45.0]}])
    assert err.value.field == "zip[0]" and "equal length" in err.value.problem


@pytest.mark.parametrize("grid, field", [
    ({"phantom.gtv.volume_cc": ["big"]}, "phantom.gtv.volume_cc"),
    ({"plan.search_steps": [1.5]}, "plan.search_steps"),
    ({"protocol.isoeffective_organ_limits": [1]}, "protocol.isoeffective_organ_limits"),
])
def test_bad_value_types_name_the_parameter(grid, field):
    with pytest.raises(SpecError) as err:
        sweep(grid=grid)
    assert err.value.field == field


def test_bad_values_are_found_when_points_are_expanded():
    with pytest.raises(SpecError) as err:
        expand_points(sweep(grid={"phantom.gtv.volume_cc": [5.0, -1.0]}))
    assert err.value.field == "phantom.gtv.volume_cc"
    with pytest.raises(SpecError) as err:
        expand_points(sweep(grid={"arcs.spacing_deg": [200.0]}))
    assert err.value.field == "arcs.spacing_deg"


def test_a_parameter_set_twice_is_refused():
    with pytest.raises(SpecError) as err:
        sweep(grid={"plan.search_steps": [1, 2]}, zip=[{"plan.n_bisections": [1, 2]}])
    assert "set twice" in err.value.problem


def test_grid_zip_and_sample_expand_to_their_product_deterministically():
    doc = dict(grid={"plan.cord_prv_limit_gy": [20.0, 25.0, 30.0]},
               zip=[{"plan.boost_max_gy": [45.0, 51.0], "plan.search_steps": [1, 2]}],
               sample={"n": 2, "phantom.gtv.volume_cc": {"loguniform": [2.0, 20.0]}}, seed=7)
    points = expand_points(sweep(**doc))
    assert len(points) == 3 * 2 * 2
    assert len({p.run_id for p in points}) == len(points)
    volumes = {p.inputs["phantom.gtv.volume_cc"] for p in points}
    assert len(volumes) == 2 and all(2.0 <= v <= 20.0 for v in volumes)
    # zipped values move together
    assert {(p.inputs["plan.boost_range_gy"][1], p.inputs["plan.n_bisections"]) for p in points} == {(45.0, 1), (51.0, 2)}
    again = expand_points(sweep(**doc))
    assert [p.run_id for p in again] == [p.run_id for p in points]
    other_seed = expand_points(sweep(**{**doc, "seed": 8}))
    assert {p.inputs["phantom.gtv.volume_cc"] for p in other_seed} != volumes


def test_run_ids_depend_on_resolved_inputs_only():
    a = expand_points(sweep(grid={"plan.cord_prv_limit_gy": [20.0, 25.0]}))
    # the same runs written another way (a default made explicit, a value moved to [fixed]) keep their ids
    b = expand_points(parse_sweep({**BASE, "fixed": {"phantom.grid.spacing_mm": 3.0, "plan.search_steps": 5},
                                   "grid": {"plan.cord_prv_limit_gy": [25.0, 20.0]}}))
    assert {p.run_id for p in a} == {p.run_id for p in b}
    c = expand_points(sweep(grid={"plan.cord_prv_limit_gy": [20.0, 26.0]}))
    assert a[0].run_id == c[0].run_id and a[1].run_id != c[1].run_id


def test_aliases_set_the_planner_fields():
    point = expand_points(sweep(fixed={"phantom.grid.spacing_mm": 3.0, "plan.boost_max_gy": 45.0,
                                       "plan.search_steps": 2, "arcs.n_arcs": 3}))[0]
    settings = plan_settings(point.plan_overrides)
    assert settings.boost_range_gy[1] == 45.0 and settings.n_bisections == 2
    assert [a["direction"] for a in point.arcs_doc["arcs"]] == ["cw", "ccw", "cw"]


def test_isoeffective_organ_limits_follow_the_lq_model():
    """25 Gy / 5 fx at alpha/beta 2 Gy in n fractions: n d (1 + d/2) = 25 (1 + 5/2) (facts 4.2, 5.1)."""
    settings = plan_settings(())
    for n in (1, 3):
        converted = organ_limits_for_fractions(settings, n, True)
        bed = 25.0 * (1 + 5.0 / 2.0)
        d = -1.0 + math.sqrt(1.0 + 2.0 * bed / n)       # root of d^2/2 + d - bed/n = 0
        assert converted.cord_prv_limit_gy == pytest.approx(n * d, rel=1e-9)
        sac_bed = 30.0 * (1 + 6.0 / 2.0)
        assert converted.thecal_sac_limit_gy == pytest.approx(n * (-1.0 + math.sqrt(1.0 + 2.0 * sac_bed / n)), rel=1e-9)
    assert organ_limits_for_fractions(settings, 1, True).cord_prv_limit_gy == pytest.approx(12.27, abs=0.01)
    assert organ_limits_for_fractions(settings, 1, False) is settings
    assert organ_limits_for_fractions(settings, 5, True) is settings


def _brute_force_gap_mm(phantom) -> float:
    """Smallest centre distance between GTV and cord voxels (KD-tree, independent of the EDT) minus one AP voxel."""
    from scipy.spatial import cKDTree

    g = phantom.grid
    gtv = g.index_to_world_mm(np.argwhere(phantom.structures["GTV"]))
    cord = g.index_to_world_mm(np.argwhere(phantom.structures["SpinalCord"]))
    distance, _ = cKDTree(cord).query(gtv)
    return max(0.0, float(distance.min()) - g.spacing_mm[1])


def test_gap_is_realised_within_half_a_voxel_and_measured_independently():
    from simsbrt.phantom import build_phantom, parse_spec
    from simsbrt.sweep.derived import realise_gap

    doc = expand_points(sweep())[0].phantom_doc
    gap = realise_gap(doc, 6.0)
    assert abs(gap.realised_mm - 6.0) <= 1.5
    moved = build_phantom(parse_spec({**doc, "gtv": {**doc["gtv"], "offset_mm": list(gap.offset_mm)}}))
    assert _brute_force_gap_mm(moved) == pytest.approx(gap.realised_mm, abs=1e-6)
    assert moved.volume_cc("GTV") == pytest.approx(doc["gtv"]["volume_cc"], rel=0.05)


def test_an_unreachable_gap_is_a_clear_error():
    from simsbrt.sweep.derived import GapError, realise_gap

    doc = expand_points(sweep())[0].phantom_doc
    with pytest.raises(GapError, match="cannot be realised"):
        realise_gap(doc, 0.0)      # Bilsky 0 body GTV: the posterior wall stays between GTV and cord


@pytest.mark.parametrize("path", sorted((Path(__file__).resolve().parents[1] / "sweeps").glob("*.toml")),
                         ids=lambda p: p.name)
def test_shipped_sweeps_parse_and_expand(path):
    from simsbrt.sweep import load_sweep

    spec = load_sweep(path)
    points = expand_points(spec)
    assert len(points) >= 5 and all(p.inputs["phantom.grid.spacing_mm"] == 2.0 for p in points)
    quick = expand_points(load_sweep(path, {"phantom.grid.spacing_mm": 3.0}))
    assert all(p.inputs["phantom.grid.spacing_mm"] == 3.0 for p in quick)


def test_set_overrides_fixed_values_and_refuses_varied_ones():
    from simsbrt.sweep.spec import parse_assignment

    assert parse_assignment("phantom.grid.spacing_mm=3") == ("phantom.grid.spacing_mm", 3)
    assert parse_assignment("phantom.gtv.bilsky=1a") == ("phantom.gtv.bilsky", "1a")
    spec = parse_sweep({**BASE, "grid": {"plan.search_steps": [1, 2]}}, overrides={"phantom.grid.spacing_mm": 2.5})
    assert dict(spec.fixed)["phantom.grid.spacing_mm"] == 2.5
    with pytest.raises(SpecError, match="set twice"):
        parse_sweep({**BASE, "grid": {"plan.search_steps": [1, 2]}}, overrides={"plan.search_steps": 3})


def test_groups_are_split_only_until_every_worker_has_a_task():
    from simsbrt.sweep.runner import GroupTask, split_for_workers

    points = expand_points(sweep(grid={"plan.cord_prv_limit_gy": [20.0, 21.0, 22.0, 23.0, 24.0]}))
    task = GroupTask("k", {}, {}, {}, tuple((p, {}) for p in points), "cpu", None, "c", True, 1)
    tasks, split = split_for_workers([task], 2)
    assert split == {"k"} and [len(t.runs) for t in tasks] == [3, 2]
    assert [p.index for t in tasks for p, _ in t.runs] == [0, 1, 2, 3, 4]       # every run once, in order
    tasks, _ = split_for_workers([task], 8)
    assert sorted(len(t.runs) for t in tasks) == [1] * 5
    assert split_for_workers([task], 1) == ([task], set())
