"""Consensus CTV rules (facts 4.4 spine / ISRC via SmartBrush, 4.5 sacrum) and the margin CTV."""
import numpy as np
import pytest
from scipy import ndimage

from simsbrt.phantom import build_phantom, load_spec, parse_spec
from simsbrt.phantom.anatomy import build_anatomy
from simsbrt.phantom.model import covered_levels
from simsbrt.phantom.volumes import consensus_sacral_sectors, consensus_spine_sectors

ALL = {"vertebral_body", "left_pedicle", "left_lamina", "spinous_process", "right_lamina", "right_pedicle"}


# straight from facts 4.4 (SmartBrush table + Cox rules); "lamina" means lamina + transverse process
@pytest.mark.parametrize("involved, lateral, required, excluded", [
    ({"vertebral_body"}, None, {"vertebral_body"}, ALL - {"vertebral_body"}),
    ({"vertebral_body"}, "left", {"vertebral_body", "left_pedicle", "left_lamina"}, {"right_pedicle", "right_lamina"}),
    ({"left_pedicle"}, None, {"left_pedicle", "left_lamina"}, {"vertebral_body", "right_pedicle"}),
    ({"spinous_process"}, None, {"spinous_process", "left_lamina", "right_lamina"}, {"vertebral_body"}),
    ({"vertebral_body", "left_pedicle", "right_pedicle"}, None, ALL, set()),
    ({"vertebral_body", "left_lamina", "right_lamina"}, None, ALL, set()),
    ({"vertebral_body", "right_pedicle"}, None, {"vertebral_body", "right_pedicle", "right_lamina"},
     {"left_pedicle", "left_lamina"}),
    ({"left_lamina"}, None, {"left_lamina", "left_pedicle", "spinous_process"}, {"vertebral_body", "right_pedicle"}),
])
def test_spine_consensus_table(involved, lateral, required, excluded):
    ctv = consensus_spine_sectors(involved, lateral)
    assert required <= ctv
    assert not (excluded & ctv)
    assert involved <= ctv            # SmartBrush also includes any sector the GTV touches


@pytest.mark.parametrize("involved, required, excluded", [
    ({"sacral_body"}, {"sacral_body"}, {"left_ala", "right_ala", "sacral_lamina"}),
    ({"left_ala"}, {"sacral_body", "left_ala"}, {"right_ala"}),
    ({"sacral_body", "right_ala", "sacral_lamina"}, {"sacral_body", "right_ala", "sacral_lamina"}, {"left_ala"}),
])
def test_sacral_consensus_table(involved, required, excluded):
    ctv = consensus_sacral_sectors(involved)
    assert required <= ctv and not (excluded & ctv)


def _anatomy_for(phantom):
    spec = phantom.spec
    return build_anatomy(covered_levels(spec), spec.anatomy.level, spec.grid.spacing_mm)


@pytest.mark.parametrize("name, level, required, excluded", [
    ("t10_body", "T10", {"vertebral_body"}, {"left_pedicle", "right_pedicle", "spinous_process"}),
    ("t6_body_pedicle", "T6", {"vertebral_body", "left_pedicle", "left_lamina"}, {"right_pedicle", "right_lamina"}),
    ("l1_posterior", "L1", {"spinous_process", "left_lamina", "right_lamina", "left_pedicle", "right_pedicle"},
     {"vertebral_body"}),
    ("s1_body_ala", "S1", {"sacral_body", "left_ala"}, {"right_ala"}),
])
def test_built_ctv_contains_the_required_sectors(name, level, required, excluded):
    p = build_phantom(load_spec(name).with_spacing(3.0))
    anatomy = _anatomy_for(p)
    assert anatomy.grid == p.grid
    ctv = p.structures["CTV"]
    for sector in required:
        mask = anatomy.sector_mask(level, sector)
        assert mask.any() and not (mask & ~ctv).any(), sector
    for sector in excluded:
        assert not (anatomy.sector_mask(level, sector) & ctv).any(), sector


def test_lateralised_body_gtv_adds_the_ipsilateral_pedicle():
    spec = parse_spec({"name": "lat", "anatomy": {"level": "T10"}, "grid": {"spacing_mm": 2.0},
                       "gtv": {"sectors": ["vertebral_body"], "volume_cc": 2.0, "offset_mm": [10.0, 0.0, 0.0]}})
    p = build_phantom(spec)
    anatomy = _anatomy_for(p)
    assert not (anatomy.sector_mask("T10", "left_pedicle") & ~p.structures["CTV"]).any()
    assert not (anatomy.sector_mask("T10", "right_pedicle") & p.structures["CTV"]).any()


def test_margin_ctv_is_gtv_plus_margin_clipped_to_bone():
    spec = parse_spec({"name": "m", "anatomy": {"level": "T10"}, "grid": {"spacing_mm": 1.0},
                       "gtv": {"sectors": ["vertebral_body"], "volume_cc": 4.0},
                       "ctv": {"method": "margin", "margin_mm": 5.0}})
    p = build_phantom(spec)
    gtv, ctv, bone = p.structures["GTV"], p.structures["CTV"], p.structures["Vertebrae"]
    assert not (gtv & ~ctv).any()
    assert not (ctv & ~gtv & ~bone).any()
    d = ndimage.distance_transform_edt(~gtv, sampling=p.grid.spacing_mm)
    assert d[ctv].max() == pytest.approx(5.0)
    assert np.array_equal(ctv, gtv | ((d <= 5.0) & bone))
