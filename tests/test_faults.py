"""Faults: a killed sweep takes its workers with it; SIGKILL during plan, compare and export leaves
every earlier output intact and no file that looks complete but is not; a full disk (a writer that
raises ENOSPC) gives one clear line and no partial output."""
from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from simsbrt.cli import main
from tests.fuzz.assets import session_assets


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    return session_assets(tmp_path_factory)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def start(argv, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "NUMBA_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "simsbrt.cli", *argv], cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=env)


def children_of(pid: int) -> set[int]:
    """Live (non-zombie) processes whose parent is pid (Linux /proc)."""
    out = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.add(int(stat.parent.name))
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_for(condition, timeout_s: float, what: str) -> None:
    t0 = time.monotonic()
    while not condition():
        if time.monotonic() - t0 > timeout_s:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_killing_the_sweep_stops_its_workers(tmp_path, assets):
    for name in ("spec.toml", "arcs.toml"):
        shutil.copy(assets / name, tmp_path / name)
    # four geometries: four groups, so both workers get one
    sweep = (assets / "sweep.toml").read_text() + '"arcs.spacing_deg" = [4.0, 5.0, 6.0, 8.0]\n'
    (tmp_path / "s.toml").write_text(sweep)
    process = start(["sweep", "s.toml", "--out", "out", "--workers", "2", "--no-cache", "--quiet"], tmp_path)
    # the pool's two workers (plus multiprocessing's resource tracker) are children of the sweep
    wait_for(lambda: len(children_of(process.pid)) >= 3 or process.poll() is not None, 120, "the workers")
    workers = children_of(process.pid)
    time.sleep(1.0)                                  # the workers are in their first run
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    process.stderr.close()
    wait_for(lambda: not any(alive(p) for p in workers), 20, "the workers to end after the sweep was killed")
    runs = sorted((tmp_path / "out" / "runs").glob("*.json")) if (tmp_path / "out" / "runs").is_dir() else []
    time.sleep(2.0)
    later = sorted((tmp_path / "out" / "runs").glob("*.json")) if (tmp_path / "out" / "runs").is_dir() else []
    assert later == runs, "a worker committed a run after the sweep was killed"


def _check_plan_files(folder: Path, before: dict) -> None:
    """Every file under its final name is either its earlier version or a complete new one."""
    from simsbrt.io.plan_h5 import read_plan

    for path in folder.iterdir():
        if path.name.startswith(".") and path.name.endswith(".part"):
            continue                                  # a temporary file: never under a final name
        if path.name in before and digest(path) == before[path.name]:
            continue
        if path.suffix == ".h5":
            read_plan(path)
        elif path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".png":
            data = path.read_bytes()
            assert data.startswith(b"\x89PNG") and data.rstrip().endswith(b"IEND\xaeB`\x82"), path
        elif path.suffix == ".csv":
            assert path.read_text().endswith("\n"), path


@pytest.mark.parametrize("command, marker", [
    ("plan", "optimising"),
    ("compare", "wrote uniform.h5"),
    ("export", None),
])
def test_sigkill_midway_leaves_earlier_outputs_intact(tmp_path, assets, command, marker):
    shutil.copy(assets / "phantom.h5", tmp_path / "phantom.h5")
    shutil.copy(assets / "arcs.toml", tmp_path / "arcs.toml")
    shutil.copytree(assets / "plans", tmp_path / "out")
    if command == "plan":
        argv = ["plan", "phantom.h5", "--mode", "uniform", "--arcs", "arcs.toml", "--search-steps", "0",
                "--out", "out/sib.h5"]
    elif command == "compare":
        argv = ["compare", "phantom.h5", "--arcs", "arcs.toml", "--search-steps", "0", "--out", "out"]
    else:
        assert main(["export", "dicom", str(tmp_path / "out/sib.h5"), "--out", str(tmp_path / "out/dicom")]) == 0
        argv = ["export", "dicom", "out/uniform.h5", "--out", "out/dicom", "--overwrite"]
    before = {p.name: digest(p) for p in (tmp_path / "out").iterdir() if p.is_file()}
    dicom_before = {p.name: digest(p) for p in (tmp_path / "out" / "dicom").glob("*")} \
        if command == "export" else {}
    process = start(argv, tmp_path)
    lines = []
    if marker:
        for line in process.stderr:
            lines.append(line)
            if marker in line:
                break
    else:
        wait_for(lambda: any(p.name.endswith(".part") for p in (tmp_path / "out" / "dicom").iterdir())
                 or process.poll() is not None, 120, "the export to start writing")
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    process.stderr.close()
    _check_plan_files(tmp_path / "out", before)
    if command == "export":
        import pydicom

        for path in (tmp_path / "out" / "dicom").iterdir():
            if path.name.endswith(".part"):
                continue
            if dicom_before.get(path.name) != digest(path):
                pydicom.dcmread(str(path))           # a replaced file is complete
        assert set(dicom_before) <= {p.name for p in (tmp_path / "out" / "dicom").iterdir()}, \
            "files of the earlier export were removed before the new one was complete"


def _full_disk(monkeypatch):
    """Every atomic write fails as on a full disk (at the fsync before the rename)."""
    import simsbrt.io.atomic as atomic

    def no_space(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "(the output file)")
    monkeypatch.setattr(atomic.os, "fsync", no_space)


@pytest.mark.parametrize("argv, output", [
    (["phantom", "build", "spec.toml", "--out", "new/p.h5"], "new/p.h5"),
    (["export", "dicom", "plans/sib.h5", "--out", "dicom_out"], "dicom_out"),
    (["plan", "phantom.h5", "--mode", "uniform", "--arcs", "arcs.toml", "--search-steps", "0", "--out", "p.h5"],
     "p.h5"),
])
def test_a_full_disk_gives_one_line_and_no_partial_output(tmp_path, assets, monkeypatch, capsys, argv, output):
    for name in ("phantom.h5", "spec.toml", "arcs.toml"):
        shutil.copy(assets / name, tmp_path / name)
    shutil.copytree(assets / "plans", tmp_path / "plans")
    monkeypatch.chdir(tmp_path)
    _full_disk(monkeypatch)
    assert main(argv) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("simsbrt: error:")]
    assert len(err) == 1 and "No space left on device" in err[0], err
    assert not (tmp_path / output).exists()
    assert not [p for p in tmp_path.rglob("*.part")], "a temporary file was left behind"
