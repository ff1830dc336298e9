"""The AP dose profile against analytic fields on the t10_body phantom grid (3 mm): the samples are the dose
array itself, the fall-off numbers are the ramp's slope and the positions where the ramp takes the dose values."""
import numpy as np
import pytest

from simsbrt.errors import SpecError
from simsbrt.evaluate import compute_dvh
from simsbrt.phantom import build_phantom, load_spec
from simsbrt.teach.profile import ap_profile, crossing_below, steepest_step

SLOPE_GY_PER_MM, TOP_GY, FLOOR_GY = 1.5, 60.0, 1.0


@pytest.fixture(scope="module")
def phantom():
    return build_phantom(load_spec("t10_body").with_spacing(3.0))


def centroid(mask, grid):
    return grid.index_to_world_mm(np.argwhere(mask).mean(axis=0))


def ramp(grid, y0, sign=-1.0):
    """TOP at y0, changing by SLOPE Gy/mm along y (falling toward +y for sign -1), floored at 1 Gy."""
    _, y, _ = grid.world_coordinates_mm()
    d = TOP_GY + sign * SLOPE_GY_PER_MM * (y - y0)
    return np.broadcast_to(np.maximum(d, FLOOR_GY), grid.shape).astype(np.float64)


def line_indices(grid, point):
    i, _, k = np.round(grid.world_to_index(point)).astype(int)
    return i, k


def first_run_start_mm(mask_line, y, spacing):
    return float(y[np.flatnonzero(mask_line)[0]] - spacing / 2)


def test_profile_samples_are_the_dose_array_on_the_line(phantom):
    grid, s = phantom.grid, phantom.structures
    rng = np.random.default_rng(5)
    dose = rng.uniform(1.0, 50.0, grid.shape)
    p = ap_profile("test", dose, grid, s)
    i, k = line_indices(grid, centroid(s["GTV"], grid))
    assert (p.index_i, p.index_k) == (i, k)
    np.testing.assert_array_equal(p.dose_gy, dose[i, :, k])
    np.testing.assert_array_equal(p.positions_mm, grid.origin_mm[1] + grid.spacing_mm[1] * np.arange(grid.shape[1]))
    assert p.x_mm == pytest.approx(grid.origin_mm[0] + i * grid.spacing_mm[0])
    assert p.z_mm == pytest.approx(grid.origin_mm[2] + k * grid.spacing_mm[2])


def test_ramp_falloff_equals_the_analytic_slope_and_positions(phantom):
    grid, s = phantom.grid, phantom.structures
    y0 = centroid(s["GTV"], grid)[1]
    dose = ramp(grid, y0)
    p = ap_profile("ramp", dose, grid, s, cord_prv_limit_gy=25.0)
    f = p.falloff
    assert f.direction == 1                                     # the cord is posterior of a vertebral-body GTV
    assert f.steepest_gy_per_mm == pytest.approx(SLOPE_GY_PER_MM, rel=1e-9)
    # the reference is the GTV D50% of the plan's DVH
    ref = compute_dvh(dose, s["GTV"], grid.voxel_volume_cc).metric("D50%")
    assert f.reference_dose_gy == pytest.approx(ref, rel=1e-12)
    assert f.high_point_mm == pytest.approx(y0 + (TOP_GY - 0.8 * ref) / SLOPE_GY_PER_MM, abs=1e-9)
    assert f.low_point_mm == pytest.approx(y0 + (TOP_GY - 0.2 * ref) / SLOPE_GY_PER_MM, abs=1e-9)
    assert f.distance_high_low_mm == pytest.approx(0.6 * ref / SLOPE_GY_PER_MM, abs=1e-9)
    assert f.limit_crossing_mm == pytest.approx(y0 + (TOP_GY - 25.0) / SLOPE_GY_PER_MM, abs=1e-9)
    y = grid.axis_mm(1)
    edge = first_run_start_mm(s["SpinalCord_PRV02"][p.index_i, :, p.index_k], y, grid.spacing_mm[1])
    assert f.prv_edge_mm == pytest.approx(edge)
    assert f.limit_to_prv_edge_mm == pytest.approx(edge - f.limit_crossing_mm)


def test_given_reference_and_limit_are_respected(phantom):
    grid, s = phantom.grid, phantom.structures
    y0 = centroid(s["GTV"], grid)[1]
    p = ap_profile("ramp", ramp(grid, y0), grid, s, cord_prv_limit_gy=30.0, reference_dose_gy=50.0)
    f = p.falloff
    assert f.reference_label == "given reference" and f.reference_dose_gy == 50.0
    assert f.high_point_mm == pytest.approx(y0 + (TOP_GY - 40.0) / SLOPE_GY_PER_MM, abs=1e-9)
    assert f.distance_high_low_mm == pytest.approx(30.0 / SLOPE_GY_PER_MM, abs=1e-9)
    assert f.limit_gy == 30.0
    assert f.limit_crossing_mm == pytest.approx(y0 + (TOP_GY - 30.0) / SLOPE_GY_PER_MM, abs=1e-9)


def test_cord_anterior_of_the_gtv_walks_anteriorly(phantom):
    grid = phantom.grid
    flipped = {n: m[:, ::-1, :] for n, m in phantom.structures.items()}     # mirror A-P: cord now anterior
    y0 = centroid(flipped["GTV"], grid)[1]
    dose = ramp(grid, y0, sign=+1.0)                                          # falls toward -y (the cord side)
    f = ap_profile("mirror", dose, grid, flipped, reference_dose_gy=50.0).falloff
    assert f.direction == -1
    assert f.steepest_gy_per_mm == pytest.approx(SLOPE_GY_PER_MM, rel=1e-9)
    assert f.high_point_mm == pytest.approx(y0 - (TOP_GY - 40.0) / SLOPE_GY_PER_MM, abs=1e-9)
    assert f.limit_crossing_mm == pytest.approx(y0 - (TOP_GY - 25.0) / SLOPE_GY_PER_MM, abs=1e-9)
    prv_line = flipped["SpinalCord_PRV02"][ap_profile("m", dose, grid, flipped).index_i, :,
                                           ap_profile("m", dose, grid, flipped).index_k]
    y = grid.axis_mm(1)
    edge = float(y[np.flatnonzero(prv_line)[-1]] + grid.spacing_mm[1] / 2)   # the PRV edge facing the GTV
    assert f.prv_edge_mm == pytest.approx(edge)
    assert f.limit_to_prv_edge_mm == pytest.approx(f.limit_crossing_mm - edge)


def test_walks_stop_where_the_dose_was_not_computed():
    y = np.arange(10.0)
    values = np.array([50, 45, 40, 35, 0, 0, 0, 0, 0, 0], dtype=float)   # 0 Gy: outside the computed rows
    assert crossing_below(y, values, 30.0, 0, 1) is None                  # never reached 30 Gy inside
    assert crossing_below(y, values, 42.0, 0, 1) == pytest.approx(1.6)
    assert steepest_step(y, values, 0, 9) == (pytest.approx(5.0), pytest.approx(0.5))


def test_structure_intervals_are_voxel_boundaries_of_the_masks(phantom):
    grid, s = phantom.grid, phantom.structures
    p = ap_profile("x", np.ones(grid.shape), grid, s)
    y, half = grid.axis_mm(1), grid.spacing_mm[1] / 2
    for name in ("GTV", "SpinalCord", "SpinalCord_PRV02"):
        on = s[name][p.index_i, :, p.index_k]
        runs = [iv for iv in p.intervals if iv.name == name]
        covered = np.zeros_like(on)
        for iv in runs:
            covered |= (y > iv.start_mm) & (y < iv.end_mm)
        np.testing.assert_array_equal(covered, on)
        assert all(abs((iv.end_mm - iv.start_mm) / (2 * half) - round((iv.end_mm - iv.start_mm) / (2 * half))) < 1e-9
                   for iv in runs)


def test_bad_input_names_the_field(phantom):
    grid, s = phantom.grid, phantom.structures
    with pytest.raises(SpecError, match="dose_gy"):
        ap_profile("x", np.ones((3, 3, 3)), grid, s)
    with pytest.raises(SpecError, match="cord-prv-limit-gy"):
        ap_profile("x", np.ones(grid.shape), grid, s, cord_prv_limit_gy=-1.0)
    empty = {**s, "GTV": np.zeros(grid.shape, dtype=bool)}
    with pytest.raises(SpecError, match="GTV"):
        ap_profile("x", np.ones(grid.shape), grid, empty)
