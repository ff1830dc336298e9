"""Shared fixtures: one tiny planning case (t10_body at 3 mm, coarse arcs, 5 mm beamlets)."""
import pytest

from simsbrt.geometry.arcs import ArcSet, default_arc_set


def tiny_arcs() -> ArcSet:
    """The default two full arcs at 15 degrees with 5 mm beamlets: small enough for the test suite."""
    return default_arc_set(spacing_deg=15.0, beamlet_size_mm=5.0, beamlet_margin_mm=3.0)


@pytest.fixture(scope="session")
def tiny_plan_inputs():
    """Influence matrix and phantom of the tiny case, computed once per test session."""
    from simsbrt.optimize.plans import prepare_plan_inputs
    from simsbrt.phantom import build_phantom, load_spec

    phantom = build_phantom(load_spec("t10_body").with_spacing(3.0))
    return prepare_plan_inputs(phantom, tiny_arcs(), "cpu", body_margin_mm=10.0, structure_margin_mm=10.0)
