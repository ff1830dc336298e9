"""benchmarks/performance.py: the pure pieces of the performance tables (traffic count, scaling fit, a grid
that cannot be built is reported as such) checked against hand-derived values."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "performance.py"


@pytest.fixture(scope="module")
def perf():
    spec = importlib.util.spec_from_file_location("performance_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def test_csr_traffic_counts_values_indices_pointers_and_vectors(perf):
    # 10 x 4 matrix, 7 non-zeros, float32 values, int32 indices:
    # 7 * (4 + 4) + 11 * 4 (row pointers) + 4 * 8 (input, float64) + 10 * 8 (output, float64) = 56 + 44 + 32 + 80
    assert perf._csr_traffic_bytes(10, 4, 7, 4, 4) == 212
    # 16-bit indices save 2 bytes per non-zero
    assert perf._csr_traffic_bytes(10, 4, 7, 4, 2) == 212 - 14


def test_scaling_exponent_recovers_a_power_law(perf):
    x = np.array([1e4, 3e4, 1e5, 4e5])
    assert perf._fit_exponent(x, 7.0 * x ** 1.5) == pytest.approx(1.5)
    assert perf._fit_exponent([5.0], [2.0]) is None


def test_scaling_lines_use_only_built_cases_at_the_reference_settings(perf):
    def built(grid, cp, rows, beamlets, nnz, t):
        return {"status": "built", "grid_mm": grid, "cp_deg": cp, "n_rows": rows, "n_beamlets": beamlets,
                "nnz": nnz, "walls_s": [t, t]}
    results = [built(3.0, 4.0, 1000, 500, 1000 * 50, 1.0), built(2.0, 4.0, 8000, 500, 8000 * 50, 8.0),
               {"status": "not built: 3e9 non-zeros exceed int32 indexing", "grid_mm": 1.0, "cp_deg": 4.0},
               built(2.0, 2.0, 8000, 1000, 8000 * 100, 16.0), built(2.0, 8.0, 8000, 250, 8000 * 25, 4.0)]
    lines = perf.scaling_lines(results)
    assert len(lines) == 2
    assert "nnz ~ n^1.00" in lines[0] and "time ~ n^1.00" in lines[0] and "over 2 points" in lines[0]
    assert "nnz ~ n^1.00" in lines[1] and "over 3 points" in lines[1]


def test_a_grid_that_cannot_be_built_is_reported_with_the_reason(perf):
    failed = {"grid_mm": 1.0, "cp_deg": 4.0, "grid_voxels": 7_257_600, "warmup_s": 3.0, "fail_s": 250.0,
              "status": "not built: rows: 2600000000 non-zeros exceed int32 indexing", "walls_s": [],
              "peak_rss_mib": 4096.0}
    row, = perf.influence_table([failed], "cpu")
    assert row["nnz"] == "-" and row["time_s"] == "250 to fail" and row["peak_GiB"] == "4.0"
    assert "exceed int32" in row["note"]
    crashed, = perf.influence_table([{"grid_mm": 1.0, "cp_deg": 4.0, "error": "killed (out of memory?) rc -9"}], "cpu")
    assert "out of memory" in crashed["note"]
