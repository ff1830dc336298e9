"""DVH metrics against analytic cases (definitions: facts section 6.1; interpolation: dvh.py docstring)."""
import numpy as np
import pytest

from simsbrt.errors import SimsbrtError, SpecError
from simsbrt.evaluate.dvh import DVH, EmptyStructureError, compute_dvh, compute_dvhs
from simsbrt.evaluate.metrics import parse_metric

V_2MM_CC = 0.008  # one 2 mm voxel: 2 * 2 * 2 mm3 = 8 mm3 = 0.008 cm3


def ramp_1d(n_voxels=100, low_gy=0.0, high_gy=50.0):
    """A continuous linear ramp low..high sampled at voxel centres along x (shape (n, 1, 1))."""
    step = (high_gy - low_gy) / n_voxels
    dose = low_gy + (np.arange(n_voxels) + 0.5) * step
    return dose.reshape(n_voxels, 1, 1), np.ones((n_voxels, 1, 1), bool), step


def analytic_ramp_dx(percent, low_gy=0.0, high_gy=50.0):
    """For a continuous linear ramp, the hottest x % of the volume starts at high - x/100 * span."""
    return high_gy - np.asarray(percent) / 100.0 * (high_gy - low_gy)


class TestUniformDose:
    def test_every_metric_equals_the_dose(self):
        dose = np.full((6, 5, 4), 27.5)
        dvh = compute_dvh(dose, np.ones(dose.shape, bool), V_2MM_CC)
        for pct in (0, 2, 50, 90, 98, 100):
            assert dvh.dose_at_percent(pct) == pytest.approx(27.5, abs=1e-12)
        for cc in (0.001, 0.03, 0.5, 10.0):
            assert dvh.dose_at_volume_cc(cc) == pytest.approx(27.5, abs=1e-12)
        assert dvh.mean_gy == pytest.approx(27.5)
        assert dvh.max_gy == dvh.min_gy == 27.5
        assert dvh.volume_cc_at_dose(27.5) == pytest.approx(120 * V_2MM_CC)
        assert dvh.volume_percent_at_dose(27.5) == pytest.approx(100.0)
        assert dvh.volume_cc_at_dose(27.6) == 0.0


class TestLinearRamp:
    def test_dx_matches_closed_form_exactly_in_the_interior(self):
        # Voxel-centre doses of a linear ramp lie on the analytic line, and the interpolation runs
        # through voxel-centre points, so interior D_x% is exact (x between 0.5 and 99.5 % here).
        dose, mask, _ = ramp_1d()
        dvh = compute_dvh(dose, mask, V_2MM_CC)
        pcts = np.array([0.5, 2.0, 10.0, 33.3, 50.0, 90.0, 98.0, 99.5])
        np.testing.assert_allclose(dvh.dose_at_percent(pcts), analytic_ramp_dx(pcts), atol=1e-9)

    def test_dx_within_one_voxel_dose_step_at_the_ends(self):
        dose, mask, step = ramp_1d()
        dvh = compute_dvh(dose, mask, V_2MM_CC)
        pcts = np.array([0.0, 0.1, 99.9, 100.0])
        assert np.all(np.abs(dvh.dose_at_percent(pcts) - analytic_ramp_dx(pcts)) <= step)

    def test_3d_box_ramp_within_one_dose_step(self):
        # Ramp along z in a 7 x 5 x 40 box; 35 tied voxels per slice make the curve a smoothed
        # staircase, still within one slice's dose step of the continuous ramp.
        n_z, step = 40, 0.75
        dose = np.broadcast_to((np.arange(n_z) + 0.5) * step, (7, 5, n_z)).copy()
        dvh = compute_dvh(dose, np.ones(dose.shape, bool), 0.0125)
        pcts = np.linspace(0, 100, 201)
        assert np.max(np.abs(dvh.dose_at_percent(pcts) - analytic_ramp_dx(pcts, 0.0, n_z * step))) <= step

    def test_d_cc_consistent_with_d_percent(self):
        dose, mask, _ = ramp_1d()
        dvh = compute_dvh(dose, mask, V_2MM_CC)  # total 0.8 cc
        assert dvh.dose_at_volume_cc(0.4) == pytest.approx(dvh.dose_at_percent(50.0))
        assert dvh.metric("D0.2cc") == pytest.approx(dvh.metric("D25%"))

    def test_v_x_of_a_ramp(self):
        # doses (i + 0.5) * 0.5 Gy: those >= 20 Gy are i >= 40, i.e. 60 of 100 voxels (60 % of a
        # 0-50 Gy continuous ramp lies above 20 Gy)
        dose, mask, _ = ramp_1d()
        dvh = compute_dvh(dose, mask, V_2MM_CC)
        assert dvh.metric("V20Gy") == pytest.approx(60 * V_2MM_CC)
        assert dvh.metric("V20Gy%") == pytest.approx(60.0)
        # 20.1 Gy: analytic 59.8 %; voxel count 60 (i >= 39.7), within one voxel (1 %)
        assert abs(dvh.volume_percent_at_dose(20.1) - 59.8) <= 1.0
        assert dvh.volume_cc_at_dose(0.0) == pytest.approx(0.8)
        assert dvh.volume_cc_at_dose(60.0) == 0.0

    def test_mean_max_min_of_a_ramp(self):
        dose, mask, step = ramp_1d()
        dvh = compute_dvh(dose, mask, V_2MM_CC)
        assert dvh.metric("Dmean") == pytest.approx(25.0)  # (0 + 50) / 2
        assert dvh.metric("Dmax") == pytest.approx(50.0 - step / 2)
        assert dvh.metric("Dmin") == pytest.approx(step / 2)

    def test_cumulative_curve(self):
        dose, mask, _ = ramp_1d()
        dvh = compute_dvh(dose, mask, V_2MM_CC)
        bins = np.array([0.0, 20.0, 49.75, 49.76, 100.0])
        np.testing.assert_allclose(dvh.cumulative_cc(bins), np.array([100, 60, 1, 0, 0]) * V_2MM_CC)


class TestSingleHotVoxel:
    """Structure of 5^3 voxels of 2 mm (0.008 cc each) at B = 10 Gy with hot voxels at H = 30 Gy.

    Sorted descending, voxel k is represented at cumulative volume (k + 0.5) * 0.008 cc.
    One hot voxel: the points are (0.004 cc, 30 Gy), (0.012 cc, 10 Gy), (0.020 cc, 10 Gy) ...
      D0.03cc : 0.03 cc lies beyond 0.012 cc, where the curve is flat at B  -> 10 Gy
      D0.008cc: halfway between 0.004 and 0.012                             -> 20 Gy
      D0.006cc: a quarter of the way: 30 - 0.25 * 20                        -> 25 Gy
      D0.004cc and below: clamped to the hottest voxel                      -> 30 Gy
    Four hot voxels: points at 0.004, 0.012, 0.020, 0.028 (30 Gy), 0.036 (10 Gy); 0.03 cc is a
    quarter of the way from 0.028 to 0.036: D0.03cc = 30 - 0.25 * 20 = 25 Gy (not rounded to a
    whole voxel, which would give 30 or 10).
    """

    @staticmethod
    def plan(n_hot):
        dose = np.full((5, 5, 5), 10.0)
        dose.reshape(-1)[[7, 31, 62, 100][:n_hot]] = 30.0
        return compute_dvh(dose, np.ones(dose.shape, bool), V_2MM_CC)

    def test_one_hot_voxel(self):
        dvh = self.plan(1)
        assert dvh.metric("D0.03cc") == pytest.approx(10.0)
        assert dvh.dose_at_volume_cc(0.008) == pytest.approx(20.0)
        assert dvh.dose_at_volume_cc(0.006) == pytest.approx(25.0)
        assert dvh.dose_at_volume_cc(0.004) == pytest.approx(30.0)
        assert dvh.dose_at_volume_cc(0.0) == pytest.approx(30.0)
        assert dvh.metric("Dmax") == 30.0

    def test_four_hot_voxels(self):
        assert self.plan(4).metric("D0.03cc") == pytest.approx(25.0)


class TestWeights:
    def test_fractional_occupancy_scales_voxel_volume(self):
        dose = np.array([10.0, 20.0, 99.0]).reshape(3, 1, 1)
        mask = np.array([True, True, False]).reshape(3, 1, 1)
        weights = np.array([1.0, 0.5, 1.0]).reshape(3, 1, 1)
        dvh = compute_dvh(dose, mask, 0.01, weights)
        assert dvh.total_volume_cc == pytest.approx(0.015)
        assert dvh.mean_gy == pytest.approx((10 * 1 + 20 * 0.5) / 1.5)
        assert dvh.volume_cc_at_dose(15.0) == pytest.approx(0.005)
        # points (0.0025 cc, 20 Gy), (0.01 cc, 10 Gy): D0.00625cc is halfway -> 15 Gy
        assert dvh.dose_at_volume_cc(0.00625) == pytest.approx(15.0)

    def test_unit_weights_equal_no_weights(self):
        rng = np.random.default_rng(3)
        dose = rng.uniform(0, 40, (6, 6, 6))
        mask = rng.random((6, 6, 6)) > 0.4
        a = compute_dvh(dose, mask, V_2MM_CC)
        b = compute_dvh(dose, mask, V_2MM_CC, np.ones(dose.shape))
        pcts = np.linspace(0, 100, 21)
        np.testing.assert_allclose(a.dose_at_percent(pcts), b.dose_at_percent(pcts))

    def test_zero_weight_voxels_are_dropped(self):
        dose = np.array([50.0, 10.0]).reshape(2, 1, 1)
        dvh = compute_dvh(dose, np.ones(dose.shape, bool), 0.01, np.array([0.0, 1.0]).reshape(2, 1, 1))
        assert dvh.max_gy == 10.0


class TestErrors:
    def test_bad_inputs_name_the_field(self):
        dose = np.zeros((2, 2, 2))
        mask = np.ones((2, 2, 2), bool)
        cases = [
            (lambda: compute_dvh(dose, np.ones((2, 2, 3), bool), 0.008), "mask"),
            (lambda: compute_dvh(dose - 1, mask, 0.008), "dose_gy"),
            (lambda: compute_dvh(dose * np.nan, mask, 0.008), "dose_gy"),
            (lambda: compute_dvh(dose, mask, 0.0), "voxel_volume_cc"),
            (lambda: compute_dvh(dose, mask.astype(float) * 2, 0.008), "mask"),
            (lambda: compute_dvh(dose, mask, 0.008, np.full((2, 2, 2), 1.5)), "weights"),
            (lambda: compute_dvh(dose, mask, 0.008).dose_at_percent(101), "percent"),
            (lambda: compute_dvh(dose, mask, 0.008).dose_at_volume_cc(-1), "volume_cc"),
            (lambda: compute_dvhs(dose, {"GTV": mask}, 0.008, weights={"PTV": mask}), "weights"),
        ]
        for call, field in cases:
            with pytest.raises(SpecError) as info:
                call()
            assert info.value.field == field

    @pytest.mark.parametrize("bad", ["D2", "D101%", "D0cc", "V30", "Dmedian", "d2%", "D-2%", "", 2.0])
    def test_bad_metric_names(self, bad):
        with pytest.raises(SpecError) as info:
            parse_metric(bad, field="limit[3].metric")
        assert info.value.field == "limit[3].metric"

    def test_metric_names_parse(self):
        assert parse_metric("D0.03cc").parameter == pytest.approx(0.03)
        assert parse_metric("V30Gy").unit == "cc"
        assert parse_metric("V30Gy%").unit == "%"
        assert parse_metric("D98%").unit == "Gy"

    def test_empty_structure_has_no_metrics(self):
        dvh = compute_dvh(np.ones((2, 2, 2)), np.zeros((2, 2, 2), bool), 0.008, name="ThecalSac")
        assert dvh.is_empty
        with pytest.raises(EmptyStructureError):
            dvh.metric("D0.03cc")
        assert isinstance(EmptyStructureError("x"), SimsbrtError)

    def test_dvh_sorted_descending(self):
        dvh = compute_dvh(np.array([3.0, 1.0, 2.0]).reshape(3, 1, 1), np.ones((3, 1, 1), bool), 1.0)
        assert isinstance(dvh, DVH)
        np.testing.assert_array_equal(dvh.doses_gy, [3.0, 2.0, 1.0])
