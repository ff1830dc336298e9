"""DICOM building blocks: the HU <-> RED table, contour tracing / rasterising, the name mapping, DS numbers."""
import numpy as np
import pytest
from scipy import ndimage

from simsbrt.dicom.contours import mask_slice_to_polygons, polygons_to_mask
from simsbrt.dicom.export import dose_grid_scaling, ds_number
from simsbrt.dicom.hu import MATRAD_DEFAULT, CtCalibration
from simsbrt.dicom.names import load_mapping, parse_mapping
from simsbrt.errors import SpecError


# ------------------------------------------------------------------ HU <-> RED
def test_table_reproduces_the_matrad_anchor_points():
    """facts 2.4: the matRad default lookup, point by point (both directions)."""
    hu = np.array([-999, -90, -45, 0, 100, 350, 3000])
    red = np.array([0.001, 0.95, 0.99, 1.000, 1.095, 1.199, 2.505])
    assert np.allclose(MATRAD_DEFAULT.hu_to_red(hu), red)
    assert np.allclose(MATRAD_DEFAULT.red_to_hu(red), hu)
    assert MATRAD_DEFAULT.hu_to_red(-1024) == pytest.approx(0.001)   # the flat air segment of the original table


def test_tissue_hu_match_the_facts_inversion():
    """facts 3.1 lists the HU this table implies: cortical ~ +1530, muscle ~ +42, adipose ~ -89, lung ~ -750."""
    hu = MATRAD_DEFAULT.red_to_hu([1.781, 1.040, 0.951, 0.258])
    assert hu[0] == pytest.approx(1530, abs=5)
    assert hu[1] == pytest.approx(42, abs=1)
    assert hu[2] == pytest.approx(-89, abs=1)
    assert hu[3] == pytest.approx(-750, abs=15)


def test_density_round_trips_within_half_an_hu():
    red = np.random.default_rng(0).uniform(0.001, 2.8, 20000)
    back = MATRAD_DEFAULT.hu_to_red(MATRAD_DEFAULT.stored_hu(red))
    bound = MATRAD_DEFAULT.max_roundtrip_error_red()
    assert bound == pytest.approx(0.5 * 0.949 / 909, rel=1e-6)       # the steepest segment: -999..-90 HU
    assert np.max(np.abs(back - red)) <= bound + 1e-12
    # above the last point both directions extend the last segment
    assert MATRAD_DEFAULT.hu_to_red(MATRAD_DEFAULT.red_to_hu(3.0)) == pytest.approx(3.0)


def test_a_calibration_must_increase_strictly():
    with pytest.raises(SpecError, match="increase strictly"):
        CtCalibration(hu=(-1024, -999, 0), red=(0.001, 0.001, 1.0))


# ------------------------------------------------------------------ contours
@pytest.mark.parametrize("seed", range(6))
def test_traced_contours_rasterise_back_to_the_same_voxels(seed):
    """Random masks (checkerboard-like noise included) survive tracing + point-in-polygon exactly."""
    rng = np.random.default_rng(seed)
    mask = rng.random((23, 17)) > 0.5
    if seed % 2:
        mask = ndimage.binary_opening(mask)
    x_mm = -30.0 + 2.5 * np.arange(23)
    y_mm = 11.2 + 3.0 * np.arange(17)
    polygons = mask_slice_to_polygons(mask, x_mm, y_mm)
    assert np.array_equal(polygons_to_mask(polygons, x_mm, y_mm), mask)


def test_contour_of_a_square_lies_on_the_voxel_boundaries():
    """A 3 x 2 voxel block at 2 mm: outline on the voxel edges, corners cut by a quarter voxel."""
    mask = np.zeros((6, 5), bool)
    mask[1:4, 2:4] = True
    x_mm, y_mm = 2.0 * np.arange(6), 2.0 * np.arange(5)
    (poly,) = mask_slice_to_polygons(mask, x_mm, y_mm)
    assert poly[:, 0].min() == pytest.approx(1.0) and poly[:, 0].max() == pytest.approx(7.0)
    assert poly[:, 1].min() == pytest.approx(3.0) and poly[:, 1].max() == pytest.approx(7.0)
    x, y = poly[:, 0], poly[:, 1]
    area = 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))
    assert area == pytest.approx(6 * 4.0 - 4 * 0.5 * 0.5 * 0.5)      # 6 voxels of 4 mm2 minus four 0.5 mm corners


def test_a_hole_is_a_second_polygon_removed_by_the_even_odd_rule():
    mask = np.zeros((7, 7), bool)
    mask[1:6, 1:6] = True
    mask[3, 3] = False
    x_mm = y_mm = np.arange(7.0)
    polygons = mask_slice_to_polygons(mask, x_mm, y_mm)
    assert len(polygons) == 2
    assert np.array_equal(polygons_to_mask(polygons, x_mm, y_mm), mask)


# ------------------------------------------------------------------ names
def test_default_mapping_knows_common_aliases():
    m = load_mapping()
    assert m.structure_of(" external ") == "Body"
    assert m.structure_of("Cord_PRV2") == "SpinalCord_PRV02"
    assert m.is_ignored("CouchSurface")
    assert m.resolve(["BODY", "GTV", "PTV", "PTV_Eval", "Couch Interior"]) == \
        {"BODY": "Body", "GTV": "GTV", "PTV": "PTV", "PTV_Eval": "PTV_Eval"}


def test_mapping_errors_name_the_file_and_every_offender():
    m = load_mapping()
    with pytest.raises(SpecError, match=r"RS.dcm: ROI names: 2 name\(s\) not in the mapping file .*names.toml: "
                                        r"'Oesophagus', 'Kidney_L'"):
        m.resolve(["Body", "GTV", "PTV", "PTV_Eval", "Oesophagus", "Kidney_L"], "RS.dcm")
    with pytest.raises(SpecError, match="required structure.*PTV_Eval not found"):
        m.resolve(["Body", "GTV", "PTV"], "RS.dcm")
    with pytest.raises(SpecError, match="all map to GTV"):
        m.resolve(["Body", "GTV", "GTVp", "PTV", "PTV_Eval"], "RS.dcm")
    with pytest.raises(SpecError, match="structures.Liver: is not a simsbrt structure"):
        parse_mapping({"structures": {"Liver": ["Liver"]}}, "my.toml")
    with pytest.raises(SpecError, match="mapping file not found"):
        load_mapping("/nonexistent/names.toml")


# ------------------------------------------------------------------ DS and dose scaling
def test_decimal_strings_fit_16_characters():
    for v in (1.0 / 3.0, -123456.789012345, 7.886875154831e-09, 0.0, 2.5e-12):
        text = ds_number(v)
        assert len(text) <= 16
        assert float(text) == pytest.approx(v, rel=1e-9, abs=0)


def test_dose_grid_scaling_keeps_the_maximum_within_32_bits():
    for dmax in (33.873870849609375, 51.0, 1e-3, 1234.5):
        s = dose_grid_scaling(dmax)
        assert np.rint(dmax / s) <= 2**32 - 1
        assert s <= dmax / (2**32 - 1) * (1 + 1e-9)
        assert 0.5 * s / dmax < 1e-9        # quantisation error far below 1e-6 of the maximum


# ------------------------------------------------------------------ export CLI input checks
def test_export_cli_refuses_missing_and_foreign_files(tmp_path, capsys):
    from simsbrt.cli import main

    assert main(["export", "dicom", str(tmp_path / "none.h5"), "--out", str(tmp_path / "d")]) == 2
    assert "file not found" in capsys.readouterr().err
    (tmp_path / "text.h5").write_text("not hdf5")
    assert main(["export", "dicom", str(tmp_path / "text.h5"), "--out", str(tmp_path / "d")]) == 2
    assert "not an HDF5 file" in capsys.readouterr().err
