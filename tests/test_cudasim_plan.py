"""A whole plan under the Numba CUDA simulator equals the CPU plan, and the search stays on the device.

benchmarks/gpu_acceptance.py --tiny runs every stage of the GPU acceptance in the simulator (so the
script cannot rot): the self-test, a water depth dose, the influence-matrix kernels, the optimiser's
matrix merged and transposed on the device, both CSR products and the per-voxel objectives
(kernels/cuda_sparse.py), the SIB search's candidate doses, with the crossings per optimiser
iteration counted. NUMBA_ENABLE_CUDASIM must be set before numba is imported, so it runs in a
subprocess; this test checks its exit code and table and compares the raw plan results itself.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.cudasim

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_acceptance.py"
METRIC_TOLERANCE_GY = 0.1   # stated tolerance; the two agree to ~1e-6 Gy (same float32 matrix, float64 sums)


@pytest.fixture(scope="module")
def acceptance(tmp_path_factory):
    details = tmp_path_factory.mktemp("gpu_acceptance") / "details.json"
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    env.pop("SIMSBRT_BACKEND", None)
    proc = subprocess.run([sys.executable, str(SCRIPT), "--tiny", "--details", str(details)],
                          env=env, capture_output=True, text=True, timeout=600)
    return proc, json.loads(details.read_text()) if details.is_file() else None


def test_tiny_acceptance_passes_every_check(acceptance):
    proc, details = acceptance
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "0 failed check(s)" in proc.stdout
    stages = {row["stage"] for row in details["rows"]}
    assert {"compile", "6 MV PDD", "influence", "uniform plan", "sib plan", "crossings", "products"} <= stages
    assert sum(row["status"] == "pass" for row in details["rows"]) >= 10


def test_simulated_plan_ran_through_the_cuda_kernels(acceptance):
    _, details = acceptance
    assert details["backend"] == "cudasim"
    assert details["crossings"]["kernels"] == "simsbrt.kernels.cuda_sparse"
    for plans in details["plans"].values():
        assert plans["gpu"]["backend"] == "cudasim" and plans["cpu"]["backend"] == "cpu"


@pytest.mark.parametrize("mode", ["uniform", "sib"])
def test_every_reported_metric_matches_the_cpu_plan(acceptance, mode):
    sim, cpu = acceptance[1]["plans"][mode]["gpu"], acceptance[1]["plans"][mode]["cpu"]
    compared = 0
    for structure, metrics in cpu["metrics"].items():
        for metric, value in metrics.items():
            other = sim["metrics"][structure][metric]
            if value is None:
                assert other is None
                continue
            assert abs(other - value) <= METRIC_TOLERANCE_GY, (mode, structure, metric, value, other)
            compared += 1
    assert compared >= 9
    assert sim["feasible"] == cpu["feasible"] and sim["boost_goal_gy"] == cpu["boost_goal_gy"]
    assert sim["statuses"] == cpu["statuses"] and sim["search"] == cpu["search"]
    assert sim["weights_sum_mu"] == pytest.approx(cpu["weights_sum_mu"], rel=1e-4)


def test_sib_search_ran_more_than_one_optimisation(acceptance):
    plans = acceptance[1]["plans"]
    assert len(plans["sib"]["gpu"]["search"]) >= 2
    assert plans["sib"]["gpu"]["metrics"]["GTV"]["D50%"] > plans["uniform"]["gpu"]["metrics"]["GTV"]["D50%"]


def test_optimiser_iterations_copy_nothing_and_read_a_handful_of_scalars(acceptance):
    c = acceptance[1]["crossings"]
    assert c["iterations"] >= 5
    # no array crosses inside the iterations (the matrix, the rows, the vectors all stay on the device)
    assert c["to_device"] == 0 and c["to_host"] == 0 and c["largest_copy_bytes"] == 0
    # scalars: 4 per iteration (gradient test, slope, curvature, decrease) + 1 per trial step (Armijo)
    # + 1 per evaluation (the objective value)
    assert c["host_scalar"] <= 4 * c["iterations"] + 2 * c["evaluations"] + 2
    assert c["host_scalar"] <= 8 * c["iterations"]
