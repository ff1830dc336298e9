"""Plan-quality indices against hand-computed cases (definitions: facts section 6.2)."""
import numpy as np
import pytest

from simsbrt.errors import SimsbrtError, SpecError
from simsbrt.evaluate.indices import (
    conformity_indices, gradient_index, homogeneity_index_icru83, paddick_conformity_index,
)

V_1MM_CC = 0.001


def box(shape, *slices):
    mask = np.zeros(shape, bool)
    mask[slices] = True
    return mask


SHAPE = (20, 20, 20)
TARGET = box(SHAPE, slice(5, 15), slice(5, 15), slice(5, 15))  # 10^3 = 1000 voxels = 1 cc


class TestPaddick:
    def test_dose_box_inside_target(self):
        dose = 30.0 * box(SHAPE, slice(7, 13), slice(7, 13), slice(7, 13))  # 6^3 = 216 voxels
        ci = conformity_indices(dose, TARGET, 30.0, V_1MM_CC)
        # TV = 1000, PIV = TV_PIV = 216 voxels: CI = 216^2 / (1000 * 216) = 0.216
        assert ci.paddick_ci == pytest.approx(0.216)
        assert ci.coverage_frac == pytest.approx(0.216)
        assert ci.rtog_ci == pytest.approx(0.216)
        assert ci.target_volume_cc == pytest.approx(1.0)

    def test_dose_box_enclosing_target(self):
        dose = 30.0 * box(SHAPE, slice(3, 17), slice(3, 17), slice(3, 17))  # 14^3 = 2744
        assert paddick_conformity_index(dose, TARGET, 30.0, V_1MM_CC) == pytest.approx(1000 / 2744)

    def test_shifted_dose_box(self):
        dose = 30.0 * box(SHAPE, slice(10, 20), slice(5, 15), slice(5, 15))  # overlap 5*10*10 = 500
        assert paddick_conformity_index(dose, TARGET, 30.0, V_1MM_CC) == pytest.approx(500**2 / (1000 * 1000))

    def test_perfect_conformity(self):
        assert paddick_conformity_index(35.0 * TARGET, TARGET, 30.0, V_1MM_CC) == pytest.approx(1.0)

    def test_reference_level_is_a_parameter(self):
        dose = 30.0 * box(SHAPE, slice(7, 13), slice(7, 13), slice(7, 13)) + 15.0 * TARGET
        assert paddick_conformity_index(dose, TARGET, 45.0, V_1MM_CC) == pytest.approx(0.216)
        assert paddick_conformity_index(dose, TARGET, 15.0, V_1MM_CC) == pytest.approx(1.0)

    def test_region_mask_limits_the_isodose_volume(self):
        dose = 30.0 * box(SHAPE, slice(3, 17), slice(3, 17), slice(3, 17))
        assert paddick_conformity_index(dose, TARGET, 30.0, V_1MM_CC, region_mask=TARGET) == pytest.approx(1.0)


class TestSphere:
    """Dose 300 / r (Gy, r in mm from the centre), capped at 45 Gy, on a 1 mm grid.
    The 30 Gy isodose is the sphere r <= 10 mm, the 15 Gy one r <= 20 mm:
    GI = (20 / 10)^3 = 8. The target is a cube of side 31 mm around the centre (29 791 mm3),
    containing the 10 mm sphere: Paddick CI = V_sphere / V_cube = 4188.8 / 29 791 = 0.1406."""

    @staticmethod
    def dose_and_cube():
        n = 45
        axis = np.arange(n) - (n - 1) / 2
        r = np.sqrt(axis[:, None, None] ** 2 + axis[None, :, None] ** 2 + axis[None, None, :] ** 2)
        dose = np.minimum(45.0, 300.0 / np.maximum(r, 1e-9))
        cube = np.zeros((n, n, n), bool)
        cube[7:38, 7:38, 7:38] = True
        return dose, cube

    def test_gradient_index(self):
        dose, _ = self.dose_and_cube()
        assert gradient_index(dose, 30.0, V_1MM_CC) == pytest.approx(8.0, rel=0.03)

    def test_paddick_ci(self):
        dose, cube = self.dose_and_cube()
        ci = conformity_indices(dose, cube, 30.0, V_1MM_CC)
        assert ci.piv_cc == pytest.approx(4 / 3 * np.pi * 10**3 * 1e-3, rel=0.03)
        assert ci.paddick_ci == pytest.approx(4 / 3 * np.pi * 1000 / 31**3, rel=0.03)
        assert ci.gradient_index == pytest.approx(8.0, rel=0.03)


class TestGradientIndexBoxes:
    def test_two_level_boxes(self):
        dose = 15.0 * box(SHAPE, slice(6, 14), slice(6, 14), slice(6, 14))  # 8^3 = 512
        dose[8:12, 8:12, 8:12] = 30.0  # 4^3 = 64
        assert gradient_index(dose, 30.0, V_1MM_CC) == pytest.approx(512 / 64)
        assert gradient_index(dose, 15.0, V_1MM_CC) == pytest.approx(1.0)

    def test_nothing_at_reference_gives_nan(self):
        assert np.isnan(gradient_index(np.zeros(SHAPE), 30.0, V_1MM_CC))


class TestHomogeneity:
    def test_uniform_dose_is_zero(self):
        assert homogeneity_index_icru83(np.full(SHAPE, 30.0), TARGET, V_1MM_CC) == pytest.approx(0.0)

    def test_linear_ramp(self):
        # doses i + 0.5 (i = 0..99) sample a 0-100 Gy ramp at voxel centres: D2% = 98, D98% = 2,
        # D50% = 50 on the interpolated curve, so HI = (98 - 2) / 50 = 1.92
        dose = (np.arange(100) + 0.5).reshape(100, 1, 1)
        assert homogeneity_index_icru83(dose, np.ones(dose.shape, bool), V_1MM_CC) == pytest.approx(1.92)


class TestErrors:
    def test_bad_reference(self):
        with pytest.raises(SpecError) as info:
            paddick_conformity_index(np.ones(SHAPE), TARGET, 0.0, V_1MM_CC)
        assert info.value.field == "reference_dose_gy"

    def test_empty_target(self):
        with pytest.raises(SpecError) as info:
            conformity_indices(np.ones(SHAPE), np.zeros(SHAPE, bool), 30.0, V_1MM_CC)
        assert info.value.field == "target_mask"
        with pytest.raises(SimsbrtError):
            homogeneity_index_icru83(np.ones(SHAPE), np.zeros(SHAPE, bool), V_1MM_CC)
