"""Explicit compute-backend selection.

Order of precedence: an explicit ``backend=`` argument (CLI ``--backend``) > the environment
variable SIMSBRT_BACKEND > "auto" (CUDA when CuPy sees a device and the CUDA self-test passes,
otherwise the CPU, with the reason in ``Backend.reason`` and a warning).
The self-test (cuda_self_test, once per process) compiles the kernels, computes a tiny influence
matrix and one optimiser product on the device and compares them with the CPU's.
An explicit request that cannot be met (no device, or a failed self-test) raises
BackendUnavailableError with the reason; it never falls back silently. Every result records
``Backend.name`` and ``Backend.device``.

This module imports neither cupy nor numba.cuda at import time.
"""
from __future__ import annotations

import importlib
import logging
import os
import sys
from dataclasses import dataclass, field
from typing import Any

from simsbrt.errors import BackendUnavailableError, SpecError

ENV_VAR = "SIMSBRT_BACKEND"
BACKEND_NAMES = ("cpu", "cuda", "cudasim")
REQUEST_NAMES = BACKEND_NAMES + ("auto",)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Backend:
    """The backend that runs: name "cpu" | "cuda" | "cudasim", the device and why it was chosen."""

    name: str
    device: str
    reason: str = field(default="", compare=False)

    @property
    def xp(self) -> Any:
        """The array module: numpy on the CPU and in the simulator, cupy on a CUDA device."""
        if self.name == "cuda":
            return importlib.import_module("cupy")
        import numpy

        return numpy

    @property
    def is_gpu(self) -> bool:
        return self.name == "cuda"


@dataclass(frozen=True)
class CudaProbe:
    """What this machine offers for CUDA: devices seen by CuPy, or why none."""

    available: bool
    devices: tuple[str, ...]
    detail: str


def probe_cuda() -> CudaProbe:
    """Look for CUDA devices through CuPy without raising."""
    try:
        cupy = importlib.import_module("cupy")
    except Exception as exc:  # ImportError, or a broken CUDA install
        return CudaProbe(False, (), f"cupy is not importable ({type(exc).__name__}: {exc}); install simsbrt[gpu]")
    try:
        count = int(cupy.cuda.runtime.getDeviceCount())
    except Exception as exc:
        return CudaProbe(False, (), f"cupy found no usable CUDA driver ({type(exc).__name__}: {exc})")
    if count == 0:
        return CudaProbe(False, (), "cupy is installed but sees no CUDA device")
    names = []
    for i in range(count):
        try:
            props = cupy.cuda.runtime.getDeviceProperties(i)
            name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
            mem_gib = props.get("totalGlobalMem", 0) / 2**30
            names.append(f"cuda:{i} {name} ({mem_gib:.0f} GiB)")
        except Exception:  # pragma: no cover - exotic driver states
            names.append(f"cuda:{i}")
    return CudaProbe(True, tuple(names), f"cupy sees {count} CUDA device(s)")


def _enable_cudasim() -> None:
    """The Numba CUDA simulator must be switched on before numba is first imported."""
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        return
    if "numba" in sys.modules:
        raise BackendUnavailableError(
            "backend 'cudasim' needs NUMBA_ENABLE_CUDASIM=1 before numba is imported; "
            "set it in the environment before starting Python"
        )
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"


def resolve_backend(requested: str | Backend | None = None) -> Backend:
    """Resolve the backend: explicit argument > $SIMSBRT_BACKEND > auto."""
    if isinstance(requested, Backend):
        return requested
    source = "argument"
    if requested is None:
        env = os.environ.get(ENV_VAR, "").strip()
        if env:
            requested, source = env, f"environment variable {ENV_VAR}"
        else:
            requested, source = "auto", "default"
    name = str(requested).strip().lower()
    if name not in REQUEST_NAMES:
        raise SpecError("backend", f"unknown backend {requested!r} (from {source}); choose one of {', '.join(REQUEST_NAMES)}")

    if name == "cpu":
        return Backend("cpu", "cpu", f"requested by {source}")
    if name == "cudasim":
        _enable_cudasim()
        return Backend("cudasim", "numba-cuda-simulator", f"requested by {source}")

    probe = probe_cuda()
    if name == "cuda":
        if not probe.available:
            raise BackendUnavailableError(f"backend 'cuda' was requested by {source} but {probe.detail}")
        test = cuda_self_test(probe.devices[0])
        if not test.passed:
            raise BackendUnavailableError(f"backend 'cuda' was requested by {source} but the CUDA self-test "
                                          f"failed: {test.detail}")
        return Backend("cuda", probe.devices[0], f"requested by {source}; {test.detail}")

    # auto
    if not probe.available:
        backend = Backend("cpu", "cpu", f"auto: no GPU ({probe.detail})")
    else:
        test = cuda_self_test(probe.devices[0])
        if test.passed:
            backend = Backend("cuda", probe.devices[0], f"auto: {probe.detail}; {test.detail}")
        else:
            backend = Backend("cpu", "cpu", f"auto: CUDA self-test failed, using the CPU ({test.detail})")
            log.warning("simsbrt backend: %s", backend.reason)
    log.info("simsbrt backend: %s (%s)", backend.name, backend.reason)
    return backend


@dataclass(frozen=True)
class SelfTest:
    """The outcome of the CUDA self-test: passed, what was checked or why it failed, and its time (s)."""

    passed: bool
    detail: str
    seconds: float = 0.0


_SELF_TESTS: dict = {}
SELF_TEST_RTOL = 1e-4   # influence values and products: float32 matrix, float64 sums on both targets


def cuda_self_test(device: str = "cuda:0", backend_name: str = "cuda") -> SelfTest:
    """Compile the kernels, compute the tiny influence case (simsbrt.dose._cudasim_check) and one optimiser
    product on the device and compare them with the CPU's (relative SELF_TEST_RTOL). Once per process;
    never raises. backend_name "cudasim" runs the same test in the simulator (the test suite does)."""
    key = (device, backend_name)
    if key not in _SELF_TESTS:
        import time

        t0 = time.perf_counter()
        _SELF_TESTS[key] = SelfTest(False, "self-test running", 0.0)  # the test's own influence case asks again
        try:
            detail = _self_test_body(Backend(backend_name, device, "self-test"))
            result = SelfTest(True, f"self-test passed in {time.perf_counter() - t0:.1f} s ({detail})",
                              time.perf_counter() - t0)
        except Exception as exc:  # noqa: BLE001 -- any failure means: do not run plans on this device
            result = SelfTest(False, f"{type(exc).__name__}: {exc}"[:500], time.perf_counter() - t0)
        _SELF_TESTS[key] = result
    return _SELF_TESTS[key]


def _self_test_body(backend: Backend) -> str:
    import numpy as np

    from simsbrt.dose._cudasim_check import tiny_case
    from simsbrt.dose.engine import InfluenceOptions, compute_influence
    from simsbrt.optimize.problem import SparseOperator

    grid, density, rows, beamlets = tiny_case()
    options = InfluenceOptions(tail_threshold_frac=0.05, seed=7)
    device = compute_influence(grid, density, rows, beamlets, None, options, backend).matrix.toarray()
    cpu = compute_influence(grid, density, rows, beamlets, None, options, Backend("cpu", "cpu")).matrix
    ref = cpu.toarray()
    scale = float(np.max(np.abs(ref)))
    if device.shape != ref.shape or not scale > 0:
        raise RuntimeError(f"influence matrix shape {device.shape} differs from the CPU's {ref.shape}")
    influence_err = float(np.max(np.abs(device - ref))) / scale
    if not influence_err <= SELF_TEST_RTOL:
        raise RuntimeError(f"influence matrix differs from the CPU's by {influence_err:.2e} of its maximum")
    w = np.linspace(0.5, 1.5, ref.shape[1])
    op = SparseOperator(cpu, target=backend.name)
    kernels = op.target.kernels
    dose = kernels.to_host(op @ kernels.to_device(w))
    expected = cpu.astype(np.float64) @ w
    product_err = float(np.max(np.abs(dose - expected))) / float(np.max(np.abs(expected)))
    if not product_err <= SELF_TEST_RTOL:
        raise RuntimeError(f"D @ w differs from the CPU's by {product_err:.2e} of its maximum")
    _check_objective_kernels(kernels)
    return f"influence {influence_err:.1e}, D @ w {product_err:.1e} of max vs the CPU"


def _check_objective_kernels(kernels) -> None:
    """The per-voxel penalty and the column merge on the device equal the CPU kernels (and get compiled)."""
    import numpy as np

    from simsbrt.kernels import sparse as cpu

    dose = np.linspace(20.0, 40.0, 9)
    rows = np.array([0, 2, 5, 8])
    out = []
    for k, move, back in ((kernels, kernels.to_device, kernels.to_host), (cpu, np.asarray, np.asarray)):
        grad, terms = move(np.zeros(9)), move(np.zeros(4))
        k.penalty_terms(move(dose), move(rows), 30.0, 1, 0.5, grad, terms)
        merged = k.merge_rows(*(move(a) for a in (np.array([0, 2, 3]), np.array([0, 1, 1]),
                                                   np.array([1.0, 2.0, 3.0], np.float32), np.array([1, 0]),
                                                   np.array([-1, 0]))), 1)
        out.append([back(grad), back(terms)] + [back(a) for a in merged])
    for a, b in zip(*out):
        if not np.allclose(a, b, rtol=SELF_TEST_RTOL, atol=0.0):
            raise RuntimeError("the penalty or column-merge kernel differs from the CPU's")
