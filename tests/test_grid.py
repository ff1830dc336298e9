import numpy as np
import pytest

from simsbrt.errors import SpecError
from simsbrt.grid import Grid


def test_index_world_round_trip():
    grid = Grid((10, 12, 14), (2.0, 2.0, 1.5), (-9.0, -11.0, 3.0))
    idx = np.array([[0, 0, 0], [9, 11, 13], [2.5, 3.25, 7.0]])
    world = grid.index_to_world_mm(idx)
    assert np.allclose(world[0], grid.origin_mm)
    assert np.allclose(world[1], [-9 + 18, -11 + 22, 3 + 13 * 1.5])
    assert np.allclose(grid.world_to_index(world), idx)


def test_covering_grid_spans_box():
    grid = Grid.covering((-10, -10, -10), (10, 10, 10), 2.0)
    assert grid.shape == (11, 11, 11)
    assert grid.axis_mm(0)[-1] == pytest.approx(10.0)
    assert grid.voxel_volume_cc == pytest.approx(0.008)


@pytest.mark.parametrize("kwargs, field", [
    (dict(shape=(0, 2, 2), spacing_mm=(1, 1, 1)), "grid.shape"),
    (dict(shape=(2, 2, 2), spacing_mm=(1, -1, 1)), "grid.spacing_mm"),
    (dict(shape=(2, 2, 2), spacing_mm=(1, 1, 1), origin_mm=(0, np.nan, 0)), "grid.origin_mm"),
])
def test_bad_grid_names_field(kwargs, field):
    with pytest.raises(SpecError, match=field):
        Grid(**kwargs)


def test_column_runs_split_flat_indices_by_grid_column():
    g = Grid(shape=(3, 2, 4), spacing_mm=(1.0, 1.0, 1.0), origin_mm=(0.0, 0.0, 0.0))
    flat = np.array([0, 1, 3, 4, 7, 9, 22, 23])            # columns 0, 0, 0, 1, 1, 2, 5, 5
    np.testing.assert_array_equal(g.column_runs(flat), [0, 3, 5, 6, 8])
    unsorted = np.array([4, 0, 5])                          # columns 1, 0, 1: three runs, each in one column
    runs = g.column_runs(unsorted)
    np.testing.assert_array_equal(runs, [0, 1, 2, 3])
    assert all(len(set(unsorted[a:b] // 4)) == 1 for a, b in zip(runs[:-1], runs[1:]))
    np.testing.assert_array_equal(g.column_runs(np.zeros(0, np.int64)), [0, 0])
