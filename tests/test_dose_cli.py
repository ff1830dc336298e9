"""``simsbrt dose pdd`` and ``simsbrt dose compute`` (contract: keys, stored file, printed summary)."""
import json

import h5py
import numpy as np
import pytest

from simsbrt.cli import main
from simsbrt.errors import SchemaError
from simsbrt.io.influence_h5 import read_influence


def test_dose_pdd_json_contract(capsys):
    assert main(["dose", "pdd", "--field-mm", "100", "--ssd-mm", "1000", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc) == {"depth_mm", "pdd_percent", "dmax_mm", "penumbra_80_20_mm_at_100mm"}
    assert len(doc["depth_mm"]) == len(doc["pdd_percent"]) > 100
    assert max(doc["pdd_percent"]) == pytest.approx(100.0, abs=0.01)
    assert 12.0 <= doc["dmax_mm"] <= 16.0  # facts 1.1: dmax 14 mm (+-2 mm)
    assert 3.7 <= doc["penumbra_80_20_mm_at_100mm"] <= 7.6  # facts 1.5 range widened by 1 mm


def test_dose_pdd_bad_field_is_a_clean_error(capsys):
    assert main(["dose", "pdd", "--field-mm", "33", "--json"]) == 2
    assert "field_mm" in capsys.readouterr().err


@pytest.fixture(scope="module")
def phantom_h5(tmp_path_factory):
    phantom = pytest.importorskip("simsbrt.phantom")
    phantom_io = pytest.importorskip("simsbrt.io.phantom_h5")
    ph = phantom.build_phantom(phantom.load_spec("t10_body").with_spacing(3.0))
    path = tmp_path_factory.mktemp("ph") / "t10.h5"
    phantom_io.write_phantom(path, ph)
    return path


def test_dose_compute_writes_influence_file(tmp_path, phantom_h5, capsys):
    arcs = tmp_path / "ARCS.toml"
    arcs.write_text('[[arc]]\ngantry_start_deg = 181\ngantry_stop_deg = 179\nspacing_deg = 60\n'
                    '[[arc]]\ngantry_start_deg = 179\ngantry_stop_deg = 181\ndirection = "ccw"\nspacing_deg = 60\n')
    out = tmp_path / "influence.h5"
    assert main(["dose", "compute", str(phantom_h5), "--arcs", str(arcs), "--out", str(out), "--backend", "cpu"]) == 0
    text = capsys.readouterr().out
    assert "non-zeros" in text and "depth" in text and "fill" in text
    with h5py.File(out) as f:
        assert f.attrs["schema_version"] == 1 and f.attrs["backend"] == "cpu" and f.attrs["device"] == "cpu"
        assert "simsbrt_version" in f.attrs
        assert f["influence/data"].compression == "lzf"
        spec = json.loads(f.attrs["input_spec"])
        assert len(spec["arcs"]["arcs"]) == 2
    im = read_influence(out)
    assert im.n_beamlets > 0 and im.nnz > 0 and im.matrix.indices.dtype == np.int32
    assert im.beamlets.n_control_points == 12
    assert im.beamlets.n_beamlets == im.n_beamlets
    d = im.dose(np.ones(im.n_beamlets))
    assert np.all(d >= 0) and d.max() > 0


def test_read_refuses_newer_schema(tmp_path, phantom_h5):
    p = tmp_path / "new.h5"
    with h5py.File(p, "w") as f:
        f.attrs["schema_version"] = 99
        f.attrs["kind"] = "influence"
    with pytest.raises(SchemaError):
        read_influence(p)
    with pytest.raises(SchemaError):
        read_influence(phantom_h5)  # another kind of file


def test_dose_compute_missing_input_is_a_clean_error(tmp_path, capsys):
    assert main(["dose", "compute", str(tmp_path / "nope.h5"), "--out", str(tmp_path / "o.h5")]) == 2
    assert "not found" in capsys.readouterr().err
