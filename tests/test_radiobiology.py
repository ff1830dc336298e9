"""Radiobiology against the facts file's check values (physics-and-clinical-facts.md 4.2, 5.3-5.5)."""
import numpy as np
import pytest

import simsbrt
from simsbrt.errors import SpecError
from simsbrt.evaluate.dvh import compute_dvh
from simsbrt.evaluate.models import (
    load_model, logistic_tcp, myelopathy_risk, parse_model, tumour_control_probability,
)
from simsbrt.evaluate.radiobiology import biological_dose, biological_dvh, total_gy_for_bed

# Facts section 5.3 "Check-vectors", every row, typed in from the table (values rounded to 0.1 Gy):
# (total Gy, fractions, BED10, BED6, EQD2 at a/b 6, BED3, BED2, EQD2 at a/b 2)
CHECK_VECTORS_5_3 = [
    (14.0, 1, 33.6, 46.7, 35.0, 79.3, 112.0, 56.0),
    (30.0, 3, 60.0, 80.0, 60.0, 130.0, 180.0, 90.0),
    (27.0, 3, 51.3, 67.5, 50.6, 108.0, 148.5, 74.2),
    (24.0, 3, 43.2, 56.0, 42.0, 88.0, 120.0, 60.0),
    (40.0, 3, 93.3, 128.9, 96.7, 217.8, 306.7, 153.3),
    (30.0, 5, 48.0, 60.0, 45.0, 90.0, 120.0, 60.0),
    (36.0, 3, 79.2, 108.0, 81.0, 180.0, 252.0, 126.0),
    (40.0, 5, 72.0, 93.3, 70.0, 146.7, 200.0, 100.0),
    (42.0, 5, 77.3, 100.8, 75.6, 159.6, 218.4, 109.2),
    (43.2, 5, 80.5, 105.4, 79.1, 167.6, 229.8, 114.9),
    (45.0, 5, 85.5, 112.5, 84.4, 180.0, 247.5, 123.8),
    (32.8, 5, 54.3, 68.7, 51.5, 104.5, 140.4, 70.2),
    (25.3, 5, 38.1, 46.6, 35.0, 68.0, 89.3, 44.7),
    (25.0, 5, 37.5, 45.8, 34.4, 66.7, 87.5, 43.8),
    (24.0, 2, 52.8, 72.0, 54.0, 120.0, 168.0, 84.0),
    (28.0, 2, 67.2, 93.3, 70.0, 158.7, 224.0, 112.0),
    (35.0, 5, 59.5, 75.8, 56.9, 116.7, 157.5, 78.8),
    (24.0, 1, 81.6, 120.0, 90.0, 216.0, 312.0, 156.0),
    (30.0, 10, 39.0, 45.0, 33.8, 60.0, 75.0, 37.5),
]
ROUNDING_GY = 0.05 + 1e-9  # the table is rounded to 0.1 Gy


@pytest.mark.parametrize("row", CHECK_VECTORS_5_3, ids=lambda r: f"{r[0]}Gy/{r[1]}fx")
def test_check_vectors_facts_5_3(row):
    total, n, bed10, bed6, eqd2_6, bed3, bed2, eqd2_2 = row
    assert simsbrt.bed(total, n, 10) == pytest.approx(bed10, abs=ROUNDING_GY)
    assert simsbrt.bed(total, n, 6) == pytest.approx(bed6, abs=ROUNDING_GY)
    assert simsbrt.eqd2(total, n, 6) == pytest.approx(eqd2_6, abs=ROUNDING_GY)
    assert simsbrt.bed(total, n, 3) == pytest.approx(bed3, abs=ROUNDING_GY)
    assert simsbrt.bed(total, n, 2) == pytest.approx(bed2, abs=ROUNDING_GY)
    assert simsbrt.eqd2(total, n, 2) == pytest.approx(eqd2_2, abs=ROUNDING_GY)


def test_potkrajic_sib_bed10_facts_5_3():
    # 30 / 40 Gy in 10 fx: BED10 39.0 / 56.0
    np.testing.assert_allclose(simsbrt.bed(np.array([30.0, 40.0]), 10, 10), [39.0, 56.0], atol=ROUNDING_GY)


def test_single_fraction_14_gy_equals_25_3_in_5_at_ab6():
    # facts 5.3 row 1 (25.31 Gy / 5 fx) and sib-protocol.md ("14 Gy x 1 = 25.3 Gy in 5 fx at a/b 6")
    assert simsbrt.isoeffective_total_gy(14.0, 1, 6.0, 5) == pytest.approx(25.31, abs=0.005)
    assert simsbrt.isoeffective_total_gy(25.3, 5, 6.0, 1) == pytest.approx(14.0, abs=0.01)


def test_hytec_anchor_facts_5_4():
    # 40 Gy / 5 fx: EQD2(6) 70 Gy, BED6 93.3 Gy
    assert simsbrt.eqd2(40.0, 5, 6.0) == pytest.approx(70.0)
    assert simsbrt.bed(40.0, 5, 6.0) == pytest.approx(93.3, abs=ROUNDING_GY)


# Facts 4.2: the HyTEC 5 % cord Dmax row; each is BED2 ~ 89 Gy (89.3, 89.2, 89.0, 89.1, 89.3)
CORD_5PCT = [(12.4, 1, 89.3), (17.0, 2, 89.2), (20.3, 3, 89.0), (23.0, 4, 89.1), (25.3, 5, 89.3)]


@pytest.mark.parametrize("total,n,bed2", CORD_5PCT)
def test_cord_isoeffect_facts_4_2(total, n, bed2):
    assert simsbrt.bed(total, n, 2.0) == pytest.approx(bed2, abs=ROUNDING_GY)
    assert simsbrt.eqd2(total, n, 2.0) == pytest.approx(44.6, abs=0.15)  # "EQD2 (a/b 2) ~ 44.6 Gy"
    # "the limit for any n by solving n d (1 + d/2) = 89.3 Gy": within the 0.1 Gy table rounding
    assert total_gy_for_bed(89.3, n, 2.0) == pytest.approx(total, abs=0.1)
    # the 5-fraction row is iso-effective with every other row of the table
    assert simsbrt.isoeffective_total_gy(25.3, 5, 2.0, n) == pytest.approx(total, abs=0.1)


def test_cord_one_percent_row_facts_4_2():
    # recalled [M] 1 % row 9.2 / 12.5 / 14.8 / 16.7 / 18.2 Gy in 1-5 fx: EQD2(2) ~ 25.7-25.8 Gy
    totals = np.array([9.2, 12.5, 14.8, 16.7, 18.2])
    eq = simsbrt.eqd2(totals, np.arange(1, 6), 2.0)
    assert np.all(np.abs(eq - 25.75) <= 0.1)


class TestApi:
    def test_vectorised_matches_scalar(self):
        doses = np.array([[14.0, 30.0], [0.0, 45.0]])
        got = simsbrt.eqd2(doses, 5, 6.0)
        assert got.shape == (2, 2)
        for idx in np.ndindex(doses.shape):
            assert got[idx] == pytest.approx(simsbrt.eqd2(float(doses[idx]), 5, 6.0))
        assert isinstance(simsbrt.bed(30.0, 5, 10.0), float)

    def test_round_trips(self):
        doses = np.linspace(0.0, 60.0, 13)
        for ab in (0.87, 2.0, 6.0, 10.0):
            for n, m in ((1, 5), (5, 1), (3, 10), (5, 5)):
                there = simsbrt.isoeffective_total_gy(doses, n, ab, m)
                np.testing.assert_allclose(simsbrt.bed(there, m, ab), simsbrt.bed(doses, n, ab), rtol=1e-12, atol=1e-12)
                np.testing.assert_allclose(simsbrt.isoeffective_total_gy(there, m, ab, n), doses, rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(total_gy_for_bed(simsbrt.bed(doses, 3, ab), 3, ab), doses, rtol=1e-12, atol=1e-12)

    def test_eqd2_of_2_gy_fractions_is_the_physical_dose(self):
        assert simsbrt.eqd2(60.0, 30, 3.0) == pytest.approx(60.0)

    @pytest.mark.parametrize("args,field", [
        ((-1.0, 5, 6.0), "total_gy"),
        ((np.array([10.0, -0.1]), 5, 6.0), "total_gy"),
        ((float("nan"), 5, 6.0), "total_gy"),
        ((30.0, 0, 6.0), "n_fractions"),
        ((30.0, 2.5, 6.0), "n_fractions"),
        ((30.0, 5, 0.0), "alpha_beta_gy"),
        ((30.0, 5, -3.0), "alpha_beta_gy"),
        ((30.0, 5, "six"), "alpha_beta_gy"),
    ])
    def test_errors(self, args, field):
        for fn in (simsbrt.bed, simsbrt.eqd2):
            with pytest.raises(SpecError) as info:
                fn(*args)
            assert info.value.field == field
        with pytest.raises(SpecError) as info:
            simsbrt.isoeffective_total_gy(*args, 5)
        assert info.value.field == field

    def test_new_fractions_checked(self):
        with pytest.raises(SpecError) as info:
            simsbrt.isoeffective_total_gy(30.0, 5, 6.0, 0)
        assert info.value.field == "new_n_fractions"


class TestVoxelwiseDvh:
    """Facts 5.1: take BED/EQD2 DVH metrics from voxel-wise BED, not from physical DVH points."""

    def test_heterogeneous_dose_differs_from_converting_physical_points(self):
        # two voxels, 20 and 40 Gy in 5 fx; EQD2(6): 20 * (4 + 6) / 8 = 25, 40 * (8 + 6) / 8 = 70
        dose = np.array([20.0, 40.0]).reshape(2, 1, 1)
        mask = np.ones(dose.shape, bool)
        physical = compute_dvh(dose, mask, 0.01)
        bio = biological_dvh(dose, mask, 0.01, 5, 6.0)
        assert bio.mean_gy == pytest.approx(47.5)  # (25 + 70) / 2
        assert simsbrt.eqd2(physical.mean_gy, 5, 6.0) == pytest.approx(45.0)  # EQD2(30 Gy)
        # D50% sits halfway between the two voxel points on either curve
        assert bio.metric("D50%") == pytest.approx(47.5)
        assert simsbrt.eqd2(physical.metric("D50%"), 5, 6.0) == pytest.approx(45.0)
        # at voxel points the monotone transform commutes: Dmax agrees
        assert bio.max_gy == pytest.approx(simsbrt.eqd2(physical.max_gy, 5, 6.0))

    def test_uniform_dose_agrees(self):
        dose = np.full((4, 4, 4), 30.0)
        mask = np.ones(dose.shape, bool)
        bio = biological_dvh(dose, mask, 0.008, 5, 10.0, quantity="BED")
        assert bio.mean_gy == pytest.approx(48.0)  # facts 5.3: 30 Gy / 5 fx BED10 48.0
        assert bio.metric("D98%") == pytest.approx(simsbrt.bed(compute_dvh(dose, mask, 0.008).metric("D98%"), 5, 10.0))

    def test_bad_quantity(self):
        with pytest.raises(SpecError) as info:
            biological_dose(np.ones(3), 5, 6.0, "TCP")
        assert info.value.field == "quantity"


class TestTumourControl:
    def test_logistic_form_definition(self):
        # HyTEC/Niemierko form (facts 5.4, 6.3): TCP(D50) = 1/2, normalised slope D dTCP/dD = gamma50 at D50
        d50, g50 = 40.0, 2.0
        assert logistic_tcp(d50, d50, g50) == pytest.approx(0.5)
        h = 1e-4
        slope = d50 * (logistic_tcp(d50 + h, d50, g50) - logistic_tcp(d50 - h, d50, g50)) / (2 * h)
        assert slope == pytest.approx(g50, rel=1e-6)
        assert logistic_tcp(0.0, d50, g50) == 0.0
        assert np.all(np.diff(logistic_tcp(np.linspace(1, 100, 50), d50, g50)) > 0)

    def test_placeholder_passes_through_the_facts_anchors(self):
        # facts 5.4: >= 90 % 2-year LC at > 40 Gy / 5 fx; Guckenberger 24 Gy / 3 fx -> 83.9 % LC
        assert tumour_control_probability(40.0, 5).probability == pytest.approx(0.90, abs=0.002)
        assert tumour_control_probability(24.0, 3).probability == pytest.approx(0.839, abs=0.002)

    def test_estimate_is_labelled_unverified(self):
        est = tumour_control_probability(np.array([30.0, 45.0]), 5)
        assert est.verified is False and "UNVERIFIED" in est.label
        assert est.alpha_beta_gy == 6.0 and est.dose_quantity == "EQD2"
        assert est.probability[1] > est.probability[0]
        model = load_model("tcp_hytec_spine")
        assert model.anchors and all(model.probability_of_biological_dose(a.eqd2_gy) == pytest.approx(
            a.probability, abs=0.002) for a in model.anchors)


class TestMyelopathy:
    def test_two_point_fit_of_facts_5_5(self):
        # 1 % at EQD2(2) 25.8 Gy, 5 % at 44.6 Gy (e.g. 25.3 Gy / 5 fx), ~12.5 % for 14 Gy x 1
        model = load_model("myelopathy_sahgal_placeholder")
        assert model.probability_of_biological_dose(25.8) == pytest.approx(0.01, abs=0.0005)
        assert model.probability_of_biological_dose(44.6) == pytest.approx(0.05, abs=0.001)
        assert myelopathy_risk(14.0, 1).probability == pytest.approx(0.125, abs=0.002)
        assert model.probability_of_biological_dose(78.0) == pytest.approx(0.5, abs=0.01)  # EQD2_50 ~ 78 Gy

    def test_labelled_as_unverified_model(self):
        est = myelopathy_risk(25.0, 5)
        assert est.verified is False and est.label.startswith("MODEL")
        assert est.biological_dose_gy == pytest.approx(43.75)  # facts 5.3: 25 Gy / 5 fx EQD2(2) 43.8

    def test_model_file_errors(self):
        good = {"model": {"form": "logistic_linear_dose", "dose_quantity": "EQD2", "alpha_beta_gy": 2.0,
                          "beta0": -6.0, "beta1_per_gy": 0.1, "verified": False}}
        assert parse_model(good).alpha_beta_gy == 2.0
        for key, value, field in [("form", "probit", "model.form"), ("alpha_beta_gy", 0.0, "model.alpha_beta_gy"),
                                  ("beta0", "x", "model.beta0"), ("colour", 1, "model.colour"),
                                  ("verified", "no", "model.verified")]:
            bad = {"model": dict(good["model"], **{key: value})}
            with pytest.raises(SpecError) as info:
                parse_model(bad)
            assert info.value.field == field
