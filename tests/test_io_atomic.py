import os

import pytest

from simsbrt.io.atomic import atomic_path, write_text_atomic


def test_interrupted_write_leaves_no_file_under_the_final_name(tmp_path):
    target = tmp_path / "result.h5"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed midway")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []  # the temporary file is removed too


def test_interrupted_rewrite_keeps_the_previous_file(tmp_path):
    target = tmp_path / "result.txt"
    write_text_atomic(target, "complete v1")
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as tmp:
            tmp.write_text("partial v2")
            raise KeyboardInterrupt
    assert target.read_text() == "complete v1"


def test_written_file_has_the_usual_permissions(tmp_path):
    target = tmp_path / "out.txt"
    write_text_atomic(target, "x")
    umask = os.umask(0)
    os.umask(umask)
    assert (target.stat().st_mode & 0o777) == (0o666 & ~umask)
