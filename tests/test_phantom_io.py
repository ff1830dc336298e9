"""Phantom HDF5: lossless round trip, schema refusal, atomic write."""
import h5py
import numpy as np
import pytest

from simsbrt.errors import SchemaError
from simsbrt.io.phantom_h5 import SCHEMA_VERSION, read_phantom, write_phantom
from simsbrt.phantom import build_phantom, load_spec


@pytest.fixture(scope="module")
def phantom():
    return build_phantom(load_spec("t12_small").with_spacing(3.0))


def test_round_trip_is_lossless(phantom, tmp_path):
    path = write_phantom(tmp_path / "p.h5", phantom)
    back = read_phantom(path)
    assert back.grid == phantom.grid
    assert back.spec == phantom.spec
    assert back.density.dtype == np.float32 and np.array_equal(back.density, phantom.density)
    assert list(back.structures) == list(phantom.structures)
    for name, mask in phantom.structures.items():
        assert back.structures[name].dtype == bool and np.array_equal(back.structures[name], mask)
    with h5py.File(path, "r") as f:
        assert int(f.attrs["schema_version"]) == SCHEMA_VERSION
        assert f["density"].compression == "gzip"
        assert f["structures/GTV"].compression == "gzip"
        for key in ("simsbrt_version", "spacing_mm", "origin_mm", "spec_json"):
            assert key in f.attrs
    assert [p.name for p in tmp_path.iterdir()] == ["p.h5"]      # no temporary left behind


def test_newer_schema_is_refused(phantom, tmp_path):
    path = write_phantom(tmp_path / "p.h5", phantom)
    with h5py.File(path, "r+") as f:
        f.attrs["schema_version"] = SCHEMA_VERSION + 1
    with pytest.raises(SchemaError, match="newer"):
        read_phantom(path)


def test_not_a_phantom_file_is_refused(tmp_path):
    path = tmp_path / "junk.h5"
    path.write_bytes(b"not hdf5")
    with pytest.raises(SchemaError):
        read_phantom(path)
