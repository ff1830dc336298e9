"""A whole plan under the Numba CUDA simulator equals the CPU plan, and the search stays on the device.

The simulator runs every line of the CUDA path: the influence-matrix kernels, the optimiser's
matrix merged and transposed on the device, both CSR products and the per-voxel objectives
(kernels/cuda_sparse.py), the candidate doses. NUMBA_ENABLE_CUDASIM must be set before numba is
imported, so the simulated plan runs in a subprocess (simsbrt.optimize._cudasim_plan); this process
plans the same tiny case on the CPU and compares every reported metric.
"""
import json
import os
import subprocess
import sys

import pytest

from simsbrt.optimize._cudasim_plan import run_case

pytestmark = pytest.mark.cudasim

METRIC_TOLERANCE_GY = 0.1   # stated tolerance; the two agree to ~1e-4 Gy (float32 matrix, float64 sums)


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    out = tmp_path_factory.mktemp("cudasim_plan") / "plan.json"
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    env.pop("SIMSBRT_BACKEND", None)
    proc = subprocess.run([sys.executable, "-m", "simsbrt.optimize._cudasim_plan", str(out), "--backend", "cudasim"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def on_cpu():
    return run_case("cpu")


def test_simulated_plan_ran_through_the_cuda_kernels(simulated):
    assert simulated["backend"] == "cudasim" and simulated["device"] == "numba-cuda-simulator"
    assert simulated["crossings"]["kernels"] == "simsbrt.kernels.cuda_sparse"
    for plan in simulated["plans"].values():
        assert plan["backend"] == "cudasim"


@pytest.mark.parametrize("mode", ["uniform", "sib"])
def test_every_reported_metric_matches_the_cpu_plan(simulated, on_cpu, mode):
    sim, cpu = simulated["plans"][mode], on_cpu["plans"][mode]
    assert simulated["nnz"] == on_cpu["nnz"] and simulated["shape"] == on_cpu["shape"]
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
    assert [row[3] for row in sim["protocol"]] == [row[3] for row in cpu["protocol"]]
    assert [s["acceptable"] for s in sim["search"]] == [s["acceptable"] for s in cpu["search"]]
    assert sim["weights_sum_mu"] == pytest.approx(cpu["weights_sum_mu"], rel=1e-4)


def test_sib_search_ran_more_than_one_optimisation(simulated):
    assert len(simulated["plans"]["sib"]["search"]) >= 2
    assert simulated["plans"]["sib"]["metrics"]["GTV"]["D50%"] > simulated["plans"]["uniform"]["metrics"]["GTV"]["D50%"]


def test_optimiser_iterations_copy_nothing_and_read_a_handful_of_scalars(simulated):
    c = simulated["crossings"]
    assert c["iterations"] >= 5
    # no array crosses inside the iterations (the matrix, the rows, the vectors all stay on the device)
    assert c["to_device"] == 0 and c["to_host"] == 0 and c["largest_copy_bytes"] == 0
    # scalars: 4 per iteration (gradient test, slope, curvature, decrease) + 1 per trial step (Armijo)
    # + 1 per evaluation (the objective value)
    assert c["host_scalar"] <= 4 * c["iterations"] + 2 * c["evaluations"] + 2
    assert c["host_scalar"] <= 8 * c["iterations"]
