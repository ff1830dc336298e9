"""benchmarks/trial_cohort.py: the cohort benchmark script runs end to end on a tiny, very coarse cohort,
reports a failing case and goes on, and its EQD2 helper matches the closed form (sib-protocol.md)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "trial_cohort.py"
# n = 2 at seed 3 gives two small cases (L3 1.2 cc, T2 13.6 cc GTV); 20 deg arcs, 5 mm beamlets, short searches
QUICK = ["--n", "2", "--seed", "3", "--spacing-mm", "3", "--arc-spacing-deg", "20", "--beamlet-mm", "5",
         "--search-steps", "1", "--search-max-iter", "30", "--max-iter", "40"]
SUMMARY_LINES = (
    "== cohort vs trial, fluence plans (2 of 2 cases planned) ==",
    "GTV D50% (SIB) median (range):",
    "GTV D98% (SIB) median (range):",
    "SIB plans meeting every mandatory limit (sib_trial):",
    "uniform plans meeting every mandatory limit",
    "SIB gain over uniform, GTV D50%: median",
    "SIB gain over uniform, GTV EQD2 D50%",
    "failed cases: 0",
    "total wall time",
)


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("trial_cohort_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module          # dataclasses resolve their module through sys.modules
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def test_quick_run_prints_the_table_and_the_summary(script, capsys):
    assert script.main(QUICK) == 0
    out = capsys.readouterr().out
    for line in SUMMARY_LINES:
        assert line in out, line
    assert "43.2 (41.3-45.7)" in out and "32.8 (25.3-41.4)" in out          # the trial's numbers beside ours
    for coarsening in ("grid 3 mm", "every 20 deg", "beamlets 5 mm"):
        assert coarsening in out
    table = out.split("== per case")[1].split("== cohort vs trial")[0].strip().splitlines()
    assert table[1].split()[0] == "case"
    assert [row.split()[0] for row in table[2:4]] == ["1", "2"]
    # every GTV D50% that the table prints lies between the 30 Gy prescription and the 51 Gy ceiling
    d50 = [float(row.split()[4]) for row in table[2:4]]
    assert all(25.0 < v < 55.0 for v in d50)


def test_failed_case_is_reported_and_the_run_goes_on(script, capsys, monkeypatch):
    def boom(index, *args, **kwargs):
        raise RuntimeError(f"planned failure {index}")

    monkeypatch.setattr(script, "plan_case", boom)
    assert script.main(QUICK) == 0
    out = capsys.readouterr().out
    assert "FAILED: RuntimeError: planned failure 1" in out
    assert "FAILED: RuntimeError: planned failure 2" in out
    assert "failed cases: 2" in out and "no case was planned" in out


def test_bad_case_numbers_are_refused(script, capsys):
    assert script.main([*QUICK, "--cases", "3"]) == 2
    assert "--cases" in capsys.readouterr().out


def test_gtv_eqd2_d50_of_a_uniform_dose_is_the_closed_form(script):
    # 30 Gy in 5 fx at alpha/beta 6: BED = 30 (1 + 6/6) = 60 Gy, EQD2 = 60 / (1 + 2/6) = 45 Gy
    dose = np.full((4, 4, 4), 30.0)
    mask = np.zeros((4, 4, 4), bool)
    mask[1:3, 1:3, 1:3] = True
    assert script.gtv_eqd2_d50_gy(dose, {"GTV": mask}, 0.027) == pytest.approx(45.0, rel=1e-3)
