"""The example arc files load, and the written-out default equals the built-in default arc set."""
from pathlib import Path

from simsbrt.geometry.arcs import control_points, default_arc_set, load_arc_set

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_written_out_default_equals_builtin_default():
    assert load_arc_set(EXAMPLES / "arcs_two_full.toml") == default_arc_set()


def test_partial_arcs_have_the_expected_control_points():
    arcs = load_arc_set(EXAMPLES / "arcs_posterior_couch.toml")
    cps = control_points(arcs, (0.0, 0.0, 0.0))
    # two 120 degree arcs at <= 2 degree spacing: 60 sectors each
    assert len(cps) == 120
