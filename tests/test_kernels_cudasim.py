"""The CUDA kernels (run under the Numba CUDA simulator) give the CPU's influence matrix.

NUMBA_ENABLE_CUDASIM must be set before numba is imported, so the simulator runs in a subprocess
(simsbrt.dose._cudasim_check) and writes its arrays; this process computes the same tiny case on
the CPU and compares.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

from simsbrt.dose._cudasim_check import run_case

pytestmark = pytest.mark.cudasim


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    out = tmp_path_factory.mktemp("cudasim") / "tiny.npz"
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    env.pop("SIMSBRT_BACKEND", None)
    proc = subprocess.run([sys.executable, "-m", "simsbrt.dose._cudasim_check", str(out), "--backend", "cudasim"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return dict(np.load(out))


@pytest.fixture(scope="module")
def on_cpu():
    return run_case("cpu")


@pytest.mark.parametrize("mode", ["exact", "sampled"])
def test_cudasim_matches_cpu(simulated, on_cpu, mode):
    a, b = on_cpu[f"{mode}_dense"], simulated[f"{mode}_dense"]
    assert a.shape == b.shape and np.count_nonzero(a) > 50
    np.testing.assert_array_equal(a > 0, b > 0)
    assert np.max(np.abs(a - b)) <= 1e-5 * np.max(np.abs(a))
    np.testing.assert_allclose(b[a > 0], a[a > 0], rtol=1e-5)


def test_results_record_the_backend(simulated):
    assert str(simulated["backend"]) == "cudasim"
    assert str(simulated["device"]) == "numba-cuda-simulator"


def test_cudasim_final_dose_matches_cpu_and_the_exact_matrix(simulated, on_cpu):
    """The fluence kernel (simsbrt.dose.final) gives the same dose on both targets, equal to the exact matrix @ w."""
    from simsbrt.dose._cudasim_check import tiny_case

    a, b = on_cpu["final_dose"], simulated["final_dose"]
    assert a.shape == b.shape and np.count_nonzero(a) > 50
    np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7 * a.max())
    grid, _, rows, _ = tiny_case()
    matrix_dose = on_cpu["exact_dense"] @ on_cpu["final_weights"]
    np.testing.assert_allclose(a.ravel()[rows], matrix_dose, rtol=2e-6, atol=1e-7 * a.max())
