"""|grad D| in Gy/mm against analytic gradients (linear and quadratic fields, anisotropic spacing)."""
import numpy as np
import pytest

from simsbrt.errors import SpecError
from simsbrt.grid import Grid
from simsbrt.phantom import build_phantom, load_spec
from simsbrt.teach.gradient import axial_gradient_slice, gradient_magnitude_gy_per_mm, gradient_map


@pytest.fixture(scope="module")
def phantom():
    return build_phantom(load_spec("t10_body").with_spacing(3.0))


def test_linear_ramp_gradient_is_the_slope_everywhere(phantom):
    grid = phantom.grid
    x, y, z = grid.world_coordinates_mm()
    a, b, c = 0.5, 0.8, -0.3                                   # Gy/mm
    dose = np.broadcast_to(300.0 + a * x + b * y + c * z, grid.shape)
    k = grid.shape[2] // 2
    g = axial_gradient_slice(dose, grid.spacing_mm, k)
    np.testing.assert_allclose(g, np.sqrt(a * a + b * b + c * c), rtol=1e-9)


def test_quadratic_gradient_uses_the_spacing_in_mm():
    grid = Grid((20, 30, 12), (1.0, 2.0, 3.0), (-10.0, -30.0, -18.0))
    x, y, z = grid.world_coordinates_mm()
    dose = np.broadcast_to(100.0 + 0.1 * y * y + 0.05 * z * z, grid.shape)
    g = gradient_magnitude_gy_per_mm(dose, grid.spacing_mm)
    truth = np.broadcast_to(np.sqrt((0.2 * y) ** 2 + (0.1 * z) ** 2), grid.shape)
    interior = (slice(1, -1),) * 3                              # central differences are exact for quadratics
    np.testing.assert_allclose(g[interior], truth[interior], rtol=1e-9, atol=1e-12)


def test_gradient_map_crop_stats_and_not_computed_voxels(phantom):
    grid, s = phantom.grid, phantom.structures
    x, y, z = grid.world_coordinates_mm()
    dose = np.broadcast_to(300.0 + 0.6 * y, grid.shape).copy()
    cord = grid.index_to_world_mm(np.argwhere(s["SpinalCord"]).mean(axis=0))
    dose[:, grid.axis_mm(1) > cord[1] + 15.0, :] = 0.0          # not computed beyond 15 mm behind the cord
    k = int(np.round(grid.world_to_index(cord))[2])
    m = gradient_map("ramp", dose, grid, s, k, half_width_mm=30.0)
    assert np.all(np.abs(m.x_mm - cord[0]) <= 30.0 + 1e-9) and np.all(np.abs(m.y_mm - cord[1]) <= 30.0 + 1e-9)
    assert m.x_mm[0] - grid.spacing_mm[0] < cord[0] - 30.0 and m.y_mm[-1] + grid.spacing_mm[1] > cord[1] + 30.0
    finite = np.isfinite(m.gradient_gy_per_mm)
    np.testing.assert_allclose(m.gradient_gy_per_mm[finite], 0.6, rtol=1e-9)
    # NaN exactly where the voxel or its +-y neighbour is not computed (the zero region and its edge row)
    computed_y = m.y_mm <= cord[1] + 15.0
    expected_finite = np.broadcast_to(computed_y & np.roll(computed_y, -1), finite.shape)
    np.testing.assert_array_equal(finite, expected_finite)
    assert m.stats["max_gy_per_mm"] == pytest.approx(0.6)
    assert m.stats["prv_mean_gy_per_mm"] == pytest.approx(0.6)
    assert m.outlines["SpinalCord"].any()


def test_bad_spacing_is_an_error():
    with pytest.raises(SpecError, match="spacing_mm"):
        gradient_magnitude_gy_per_mm(np.ones((3, 3)), (1.0, 0.0))
    with pytest.raises(SpecError, match="spacing_mm"):
        gradient_magnitude_gy_per_mm(np.ones((3, 3)), (1.0,))
