"""Dose slices and isodose lines: vertices read back bilinearly from the slice equal their level, the levels
drawn are the requested ones inside the slice's computed dose range, and no line enters uncomputed voxels."""
import numpy as np
import pytest
from scipy.interpolate import RegularGridInterpolator

from simsbrt.errors import SpecError
from simsbrt.phantom import build_phantom, load_spec
from simsbrt.teach.figures import DEFAULT_ISODOSE_GY, axial_slice, check_levels, isodose_lines, sagittal_slice

LEVELS = (0.05, *DEFAULT_ISODOSE_GY, 80.0)          # 0.05 and 80 Gy lie outside the field's range


@pytest.fixture(scope="module")
def phantom():
    return build_phantom(load_spec("t10_body").with_spacing(3.0))


@pytest.fixture(scope="module")
def blob(phantom):
    """An anisotropic Gaussian of 50 Gy on a 0.5 Gy floor, centred beside the GTV centroid."""
    grid = phantom.grid
    c = np.array(phantom.centroid_mm("GTV")) + (2.0, 1.0, 1.5)
    x, y, z = grid.world_coordinates_mm()
    r2 = ((x - c[0]) / 14.0) ** 2 + ((y - c[1]) / 11.0) ** 2 + ((z - c[2]) / 17.0) ** 2
    return 0.5 + 50.0 * np.exp(-0.5 * r2)


def bilinear(sl):
    return RegularGridInterpolator((sl.vertical_mm, sl.horizontal_mm), sl.dose_gy, method="linear")


@pytest.mark.parametrize("make", [axial_slice, sagittal_slice])
def test_isodose_vertices_lie_on_their_level(phantom, blob, make):
    sl = make("blob", blob, phantom, LEVELS)
    interp = bilinear(sl)
    assert sl.levels_present_gy == DEFAULT_ISODOSE_GY
    for level in sl.levels_present_gy:
        segments = sl.isodose_lines[level]
        assert segments, level
        vertices = np.concatenate(segments)
        assert len(vertices) > 8
        values = interp(vertices[:, ::-1])                 # (vertical, horizontal)
        np.testing.assert_allclose(values, level, rtol=1e-6)


def test_levels_present_are_the_requested_ones_inside_the_slice_range(phantom, blob):
    sl = axial_slice("blob", blob, phantom, LEVELS)
    k = sl.fixed_index
    lo, hi = blob[:, :, k].min(), blob[:, :, k].max()
    assert sl.levels_present_gy == tuple(v for v in sorted(LEVELS) if lo < v < hi)
    assert sl.levels_requested_gy == tuple(sorted(LEVELS))
    assert set(sl.isodose_lines) == set(sl.levels_present_gy)


def test_slices_are_the_dose_array_in_display_layout(phantom, blob):
    ax = axial_slice("blob", blob, phantom)
    sg = sagittal_slice("blob", blob, phantom)
    i, j, k = np.round(phantom.grid.world_to_index(phantom.centroid_mm("GTV"))).astype(int)
    assert (ax.fixed_index, sg.fixed_index) == (k, i)
    np.testing.assert_array_equal(ax.dose_gy, blob[:, :, k].T)         # [y, x]
    np.testing.assert_array_equal(sg.dose_gy, blob[i, :, :].T)         # [z, y]
    np.testing.assert_array_equal(ax.horizontal_mm, phantom.grid.axis_mm(0))
    np.testing.assert_array_equal(sg.vertical_mm, phantom.grid.axis_mm(2))
    np.testing.assert_array_equal(ax.outlines["GTV"], phantom.structures["GTV"][:, :, k].T)


def test_isodose_lines_stay_out_of_uncomputed_voxels(phantom, blob):
    dose = blob.copy()
    y = phantom.grid.axis_mm(1)
    cut = phantom.centroid_mm("GTV")[1] + 6.0
    dose[:, y > cut, :] = 0.0                     # dose not computed posterior of the cut (> 15 Gy at the cut)
    sl = axial_slice("cut", dose, phantom, (15.0,))
    last_computed = y[y <= cut][-1]
    vertices = np.concatenate(sl.isodose_lines[15.0])
    assert vertices[:, 1].max() <= last_computed + 1e-9
    # plain contouring of the same slice would run along the cut: the masking is what keeps it out
    unmasked = isodose_lines(sl.horizontal_mm, sl.vertical_mm, np.where(sl.dose_gy > 0, sl.dose_gy, 1e-3), 15.0)
    assert np.concatenate(unmasked)[:, 1].max() > last_computed


def test_levels_are_checked():
    assert check_levels([30, 15, 15.0]) == (15.0, 30.0)
    for bad in ([], [0.0], [-5.0], [float("nan")], ["x"]):
        with pytest.raises(SpecError, match="isodose-gy"):
            check_levels(bad)
