"""An interrupted sweep loses no finished run and leaves no half-written file that looks complete:
SIGKILL midway, then SIGINT (Ctrl-C: clean message, exit 130), then a resume that skips the finished runs."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import pytest

from simsbrt.cli import main
from simsbrt.sweep import read_table, read_table_h5
from simsbrt.sweep.results import is_temporary, read_run_file

SWEEP = """
phantom = "t10_body"
modes = ["uniform"]
[fixed]
"phantom.grid.spacing_mm" = 3.0
"arcs.spacing_deg" = 15.0
"arcs.beamlet_size_mm" = 5.0
"arcs.beamlet_margin_mm" = 3.0
"influence.body_margin_mm" = 10.0
"influence.structure_margin_mm" = 10.0
"plan.solver_options.max_iter" = 30
[grid]
"plan.cord_prv_limit_gy" = [20.0, 21.0, 22.0, 23.0, 24.0, 25.0, 26.0, 27.0, 28.0, 29.0]
"""
N_POINTS = 10


def start(sweep_file: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "simsbrt.cli", "sweep", str(sweep_file), "--out", str(out),
                             "--workers", "1", "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run_files(out: Path) -> list[Path]:
    runs = out / "runs"
    return [p for p in runs.glob("*.json") if not is_temporary(p)] if runs.is_dir() else []


def wait_for_runs(process: subprocess.Popen, out: Path, n: int, timeout_s: float = 120.0) -> None:
    t0 = time.monotonic()
    while len(run_files(out)) < n:
        if process.poll() is not None:
            pytest.fail(f"sweep ended early (rc {process.returncode}): {process.stderr.read()}")
        if time.monotonic() - t0 > timeout_s:
            process.kill()
            pytest.fail("no run file appeared in time")
        time.sleep(0.02)


def check_nothing_half_written(out: Path) -> set:
    """Every file under its final name parses completely; the table lists only committed runs."""
    committed = set()
    for path in run_files(out):
        record = read_run_file(path)
        assert record is not None, f"{path} is not a complete run file"
        assert len(record["rows"]) == 1 and record["status"] == "done"
        committed.add(record["run_id"])
    for path in out.rglob("*"):
        if path.is_dir() or is_temporary(path):
            continue
        if path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".csv":
            _, rows = read_table(path)
            assert {r["run_id"] for r in rows} <= committed
        elif path.suffix == ".h5":
            with h5py.File(path, "r") as f:
                assert "schema_version" in f.attrs
            if path.name == "results.h5":
                assert set(read_table_h5(path)["run_id"]) <= committed
    return committed


def test_killed_and_interrupted_sweeps_lose_nothing_and_resume(tmp_path, capsys):
    sweep_file = tmp_path / "kill.toml"
    sweep_file.write_text(SWEEP)
    out = tmp_path / "out"

    process = start(sweep_file, out)
    wait_for_runs(process, out, 1)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    process.stdout.close()
    process.stderr.close()
    after_kill = check_nothing_half_written(out)
    assert 1 <= len(after_kill) <= N_POINTS - 2, "the sweep ran on too far before the kill to test the interrupt"

    process = start(sweep_file, out)
    wait_for_runs(process, out, len(after_kill) + 1)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr and "run the same command again to resume" in stderr
    assert "Traceback" not in stderr
    after_interrupt = check_nothing_half_written(out)
    assert after_kill < after_interrupt and len(after_interrupt) < N_POINTS

    assert main(["sweep", str(sweep_file), "--out", str(out), "--workers", "1", "--quiet"]) == 0
    assert f"skipped {len(after_interrupt)}" in capsys.readouterr().out
    _, rows = read_table(out)
    assert len(rows) == N_POINTS and len({r["run_id"] for r in rows}) == N_POINTS
    assert sorted(r["plan.cord_prv_limit_gy"] for r in rows) == [20.0 + k for k in range(N_POINTS)]
    assert check_nothing_half_written(out) == {r["run_id"] for r in rows}
    # one geometry: its matrix was computed once, then read from DIR/cache by the resumed processes
    assert sorted(r["influence_source"] for r in rows).count("computed") == 1
    assert {r["influence_source"] for r in rows} <= {"computed", "disk", "memory"}
    assert "disk" in {r["influence_source"] for r in rows}


def test_a_ctrl_c_swallowed_by_a_finaliser_still_stops_the_sweep_at_the_next_commit(tmp_path):
    """Python only prints an exception raised inside a finaliser: a Ctrl-C landing there must not be lost."""
    import weakref

    from simsbrt.sweep.runner import _Progress

    class Anything:
        pass

    progress = _Progress(tmp_path, [], {}, total=2, initial=0, quiet=True)
    with progress.catching_interrupts():
        thing = Anything()
        weakref.finalize(thing, signal.getsignal(signal.SIGINT), signal.SIGINT, None)
        del thing                                  # the handler runs (and raises) inside the finaliser
        assert progress.interrupted
        with pytest.raises(KeyboardInterrupt):
            progress.finished({"run_id": "r1", "status": "done"}, commit=False)
    assert progress.records["r1"]["status"] == "done"          # kept before stopping
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert sys.unraisablehook is not None and "on_unraisable" not in repr(sys.unraisablehook)
