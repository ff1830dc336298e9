"""Every built-in phantom builds at the coarse end of the allowed spacings, with its GTV volume."""
import dataclasses

import pytest

from simsbrt.errors import SpecError
from simsbrt.phantom import build_phantom, builtin_names, load_spec


@pytest.mark.parametrize("name", builtin_names())
@pytest.mark.parametrize("spacing_mm", [2.5, 3.0])
def test_builtin_phantom_builds_at_coarse_spacing(name, spacing_mm):
    spec = load_spec(name).with_spacing(spacing_mm)
    phantom = build_phantom(spec)
    assert phantom.volume_cc("GTV") == pytest.approx(spec.gtv.volume_cc, rel=0.05)
    assert not phantom.is_empty("PTV_Eval")


def test_ptv_at_the_inferior_grid_edge_names_levels_below():
    # S1-S3 GTV with only S4 below: at 3 mm the 5 mm SI margin (two layers) reaches the grid's inferior face
    spec = load_spec("s2_large").with_spacing(3.0)
    spec = dataclasses.replace(spec, anatomy=dataclasses.replace(spec.anatomy, levels_below=1))
    with pytest.raises(SpecError, match="anatomy.levels_below"):
        build_phantom(spec)
