"""Every simsbrt HDF5 reader refuses another kind of file and a newer schema, naming the file."""
import h5py
import numpy as np
import pytest

from simsbrt.errors import SchemaError, SimsbrtError
from simsbrt.io.h5file import create_h5, open_h5


def test_round_trip_of_root_attributes(tmp_path):
    path = tmp_path / "x.h5"
    with create_h5(path, "phantom", 1, backend="cpu") as f:
        f.create_dataset("a", data=np.arange(3))
    with open_h5(path, "phantom", 1) as f:
        assert f.attrs["backend"] == "cpu" and int(f.attrs["schema_version"]) == 1
        assert f.attrs["simsbrt_version"]


@pytest.mark.parametrize("attrs, message", [
    ({"schema_version": 2, "kind": "plan"}, "newer"),
    ({"schema_version": 1, "kind": "influence"}, "is not a plan file"),
    ({"kind": "plan"}, "no schema_version"),
])
def test_reader_refuses_wrong_files(tmp_path, attrs, message):
    path = tmp_path / "bad.h5"
    with h5py.File(path, "w") as f:
        f.attrs.update(attrs)
    with pytest.raises(SchemaError, match=message):
        with open_h5(path, "plan", 1):
            pass


def test_missing_and_non_hdf5_files(tmp_path):
    with pytest.raises(SimsbrtError, match="no such plan file"):
        with open_h5(tmp_path / "none.h5", "plan", 1):
            pass
    text = tmp_path / "text.h5"
    text.write_text("not hdf5")
    with pytest.raises(SchemaError, match="not an HDF5 file"):
        with open_h5(text, "plan", 1):
            pass
