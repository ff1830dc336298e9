"""On a real CUDA device: the self-test and the tiny GPU acceptance (every stage against the CPU).

Skipped where no device is seen (CI); run on a GPU machine with `pytest -m gpu`.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.gpu
SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_acceptance.py"


def _device():
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        return None
    from simsbrt.backend import probe_cuda

    probe = probe_cuda()
    return probe.devices[0] if probe.available else None


DEVICE = _device()
needs_gpu = pytest.mark.skipif(DEVICE is None, reason="no CUDA device seen")


@needs_gpu
def test_self_test_passes_on_the_device():
    from simsbrt.backend import cuda_self_test

    result = cuda_self_test(DEVICE)
    assert result.passed, result.detail


@needs_gpu
def test_tiny_acceptance_on_the_device():
    env = dict(os.environ)
    env.pop("SIMSBRT_BACKEND", None)
    proc = subprocess.run([sys.executable, str(SCRIPT), "--tiny", "--backend", "cuda"], env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
