"""benchmarks/beam_model.py: the beam-model benchmark runs on a reduced set, selected rows agree with the
reference data file within the file's own tolerances, the engine is the equivalent-path-length pencil beam
it claims to be in a slab phantom, and every reference value in the data file names a cited source.

Reference values are read from benchmarks/data/beam_reference.toml (cited measured/published data),
never from the code under test.
"""
from __future__ import annotations

import importlib.util
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

from simsbrt.errors import SpecError

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "beam_model.py"
DATA = ROOT / "benchmarks" / "data" / "beam_reference.toml"


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("beam_model_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


@pytest.fixture(scope="module")
def quick(script):
    return script.run(quick=True)


@pytest.fixture(scope="module")
def raw():
    with open(DATA, "rb") as f:
        return tomllib.load(f)


def _row(rows, quantity):
    found = [r for r in rows if r.quantity == quantity]
    assert len(found) == 1, f"row {quantity!r} missing from {[r.quantity for r in rows]}"
    return found[0]


def _measured_mean(raw, field_mm, depth_mm, metric):
    values = [e[metric] for e in raw["profile_measured"] if e["field_mm"] == field_mm and e["depth_mm"] == depth_mm]
    assert len(values) == 2, "expected an inplane and a crossplane scan"
    return float(np.mean(values))


def test_every_reference_value_names_a_cited_source(raw, script):
    sources = raw["sources"]
    assert sources, "no [sources] table"
    for name, src in sources.items():
        assert src.get("citation", "").strip(), f"sources.{name} has no citation"
        assert src.get("tag") in ("V", "D", "M"), f"sources.{name} has no V/D/M tag"
    numeric_tables = ["profile_measured", "output_factor", "slab_published"]
    for table in numeric_tables:
        assert raw[table], f"{table} is empty"
        for i, entry in enumerate(raw[table]):
            assert entry.get("source") in sources, f"{table}[{i}] has no known source"
    for name, tol in raw["tolerance"].items():
        assert tol.get("source") in sources and tol.get("criterion"), f"tolerance.{name} lacks source or criterion"
    assert raw["slab"]["red_source"] in sources
    assert raw["slab_electron_range"]["source"] in sources
    assert raw["profile_context"]["source"] in sources
    script.load_reference(DATA)  # the script's own check accepts the file


def test_reference_loader_rejects_a_value_without_source(script, tmp_path):
    text = DATA.read_text().replace('source = "followill2012"', 'source = "nowhere"', 1)
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    with pytest.raises(SpecError, match="output_factor"):
        script.load_reference(bad)
    text = DATA.read_text().replace('tag = "V"', 'tag = ""', 1)
    bad.write_text(text)
    with pytest.raises(SpecError, match="tag"):
        script.load_reference(bad)


def test_profile_rows_agree_with_measured_scans(quick, raw):
    rows = quick["profiles"]
    tol = raw["tolerance"]
    width = _row(rows, "10x10 cm, d 10 cm: 50% width mm")
    assert width.reference == pytest.approx(_measured_mean(raw, 100, 100, "width_50_mm"))
    assert abs(width.model - width.reference) <= tol["width_50_mm"]["value"]
    shoulder = _row(rows, "5x5 cm, d 10 cm: shoulder OAR@0.8")
    assert shoulder.reference == pytest.approx(_measured_mean(raw, 50, 100, "shoulder"))
    assert abs(shoulder.model / shoulder.reference - 1) * 100 <= tol["shoulder"]["value"]
    penumbra = _row(rows, "5x5 cm, d 10 cm: 80-20 penumbra mm")
    assert penumbra.fit, "penumbra data were used in the fit and must be marked so"
    assert abs(penumbra.model - _measured_mean(raw, 50, 100, "penumbra_80_20_mm")) <= tol["penumbra_80_20_mm"]["value"]
    assert all(r.passed is not None for r in rows)


def test_output_factor_rows_agree_with_independent_measurements(quick, raw):
    rows = quick["output_factors"]
    pymedphys = _row(rows, "pymedphys M2619: 5x5 cm")
    assert pymedphys.reference == 0.906 and not pymedphys.fit
    assert abs(pymedphys.model / 0.906 - 1) * 100 <= raw["tolerance"]["output_factor"]["value"]
    elekta = [e for e in raw["output_factor"] if e["dataset"] == "RPC Elekta 6 MV"][0]
    ref_3cm = dict(zip(elekta["side_mm"], elekta["value"]))[30]
    row = _row(rows, "RPC Elekta 6 MV: 3x3 cm")
    assert row.reference == ref_3cm
    assert abs(row.model / ref_3cm - 1) * 100 <= raw["tolerance"]["output_factor"]["value"]
    missing = _row(rows, "independent 1x1 cm measurement")
    assert missing.reference is None and missing.passed is None


def test_slab_engine_is_an_equivalent_path_length_pencil_beam(quick, script):
    (res,) = quick["slab"]
    assert res.field_mm == 50.0
    assert res.epl_max_abs_percent <= script.EPL_TOLERANCE_PERCENT
    by_medium = {}
    for depth, medium, zrad, cf, dev in res.axis_rows:
        by_medium.setdefault(medium, []).append((depth, zrad, cf))
    # 7 cm of lung (RED 0.207) removes 5.6 cm of water-equivalent path: dose beyond it must rise
    beyond = [cf for depth, zrad, cf in by_medium["water"] if depth > 120.0]
    assert beyond and min(beyond) > 1.05
    # the pencil beam keeps its water lateral kernel in lung: no penumbra broadening (the limitation)
    assert abs(res.penumbra_lung_mm - res.penumbra_water_mm) < 0.5


def test_main_prints_all_sections(script, capsys):
    assert script.main(["--quick"]) == 0
    out = capsys.readouterr().out
    for heading in ("# command: python benchmarks/beam_model.py --quick", "# commit:", "load average at start",
                    "== 1. lateral profiles", "== 2. output factors", "== 3. slab phantom",
                    "EPL implementation check", "published errors of the algorithm classes", "not available"):
        assert heading in out
