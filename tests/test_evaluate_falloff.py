"""The GTV-to-cord-PRV fall-off on synthetic doses whose gradient is known by construction."""
import numpy as np
import pytest

from simsbrt.evaluate.falloff import gtv_cord_falloff, smallest_gap_mm
from simsbrt.grid import Grid


def _case(spacing=(2.0, 3.0, 2.5)):
    """GTV: y layers 2-21; cord PRV: y layers 26-29 (gap 5 layers along y, spacing 3 mm -> 15 mm)."""
    grid = Grid((12, 32, 10), spacing, (0.0, 0.0, 0.0))
    gtv = np.zeros(grid.shape, bool)
    prv = np.zeros(grid.shape, bool)
    gtv[1:11, 2:22, 1:9] = True
    prv[3:9, 26:30, 3:7] = True
    y_mm = np.arange(grid.shape[1]) * spacing[1]
    return grid, gtv, prv, y_mm


def test_a_linear_fall_off_towards_the_cord_is_measured_as_its_slope():
    grid, gtv, prv, y_mm = _case()
    slope = 0.6                                                       # Gy/mm along +y (towards the cord)
    dose = np.broadcast_to((60.0 - slope * y_mm)[None, :, None], grid.shape).astype(np.float32)
    out = gtv_cord_falloff(dose, {"GTV": gtv, "SpinalCord_PRV02": prv}, grid)
    assert out["gap_mm"] == pytest.approx(15.0)
    # GTV edge layer y = 21 x 3 mm, PRV edge layer y = 26 x 3 mm: the DVH points sit on those layers to within
    # the interpolation between neighbouring voxels (under 1 % of the 9 Gy drop)
    assert out["falloff_gy_per_mm"] == pytest.approx(slope, rel=0.01)
    # a uniform dose has no fall-off; a steeper dose is steeper in proportion
    flat = gtv_cord_falloff(np.full(grid.shape, 30.0, np.float32), {"GTV": gtv, "SpinalCord_PRV02": prv}, grid)
    assert flat["falloff_gy_per_mm"] == pytest.approx(0.0, abs=1e-6)
    steep = gtv_cord_falloff(2.0 * dose, {"GTV": gtv, "SpinalCord_PRV02": prv}, grid)
    assert steep["falloff_gy_per_mm"] == pytest.approx(2.0 * out["falloff_gy_per_mm"], rel=1e-5)


def test_the_gap_is_the_smallest_centre_distance_in_mm_and_undefined_cases_give_none():
    grid, gtv, prv, _ = _case()
    off = np.zeros(grid.shape, bool)
    off[11, 25, 9] = True                                             # diagonal neighbour of no GTV voxel
    # nearest GTV voxel centre (10, 21, 8): offsets (1, 4, 1) voxels x (2, 3, 2.5) mm
    assert smallest_gap_mm(gtv, off, grid.spacing_mm) == pytest.approx(np.sqrt(2.0 ** 2 + 12.0 ** 2 + 2.5 ** 2))
    dose = np.ones(grid.shape, np.float32)
    assert gtv_cord_falloff(dose, {"GTV": gtv, "SpinalCord_PRV02": gtv}, grid) is None     # touching: gap 0
    assert gtv_cord_falloff(dose, {"GTV": gtv}, grid) is None
    assert gtv_cord_falloff(dose, {"GTV": gtv, "SpinalCord_PRV02": np.zeros(grid.shape, bool)}, grid) is None
