"""Explicit compute-backend selection.

Order of precedence: an explicit ``backend=`` argument (CLI ``--backend``) > the environment
variable SIMSBRT_BACKEND > "auto" (CUDA when CuPy sees a device, otherwise the CPU).
An explicit request that cannot be met raises BackendUnavailableError; it never falls back
silently. Every result records ``Backend.name`` and ``Backend.device``.

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
        return Backend("cuda", probe.devices[0], f"requested by {source}")

    # auto
    if probe.available:
        backend = Backend("cuda", probe.devices[0], f"auto: {probe.detail}")
    else:
        backend = Backend("cpu", "cpu", f"auto: no GPU ({probe.detail})")
    log.info("simsbrt backend: %s (%s)", backend.name, backend.reason)
    return backend
