"""Where the optimiser's arrays live and which compiled kernels run on them.

A Target names the kernel drivers (kernels/sparse.py on the CPU, kernels/cuda_sparse.py on a CUDA
device or under the Numba CUDA simulator) and their array module (numpy, or cupy on a device; numpy
in the simulator). Both driver modules offer the same functions, compiled from the same device
functions (kernels/device/sparse.py): csr_matvec, penalty_terms, merge_rows, csr_transpose, and the
only host <-> device crossings, to_device / to_host / host_scalar.

The influence matrix crosses to the device once per matrix (influence_on_device caches it); then
the optimiser's products, objectives and the candidate doses run there, and the host receives the
weights, the objective value (a scalar per evaluation) and the full-grid dose of each candidate.
"""
from __future__ import annotations

import importlib
import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np

from simsbrt.errors import SpecError

TARGETS = ("cpu", "cuda", "cudasim")
_KERNELS = {"cpu": "simsbrt.kernels.sparse", "cuda": "simsbrt.kernels.cuda_sparse",
            "cudasim": "simsbrt.kernels.cuda_sparse"}


@dataclass(frozen=True)
class Target:
    """name: "cpu" | "cuda" | "cudasim" (the backend whose kernels run the optimiser)."""

    name: str

    def __post_init__(self):
        if self.name not in TARGETS:
            raise SpecError("backend", f"no optimiser kernels for backend {self.name!r}; choose one of "
                                       f"{', '.join(TARGETS)}")

    @property
    def kernels(self) -> Any:
        if self.name == "cudasim":
            from simsbrt.backend import resolve_backend

            resolve_backend("cudasim")  # the simulator must be on before numba is imported
        module = importlib.import_module(_KERNELS[self.name])
        if self.name == "cudasim" and not module.simulated():
            raise SpecError("backend", "cudasim kernels requested but numba was imported without "
                                       "NUMBA_ENABLE_CUDASIM=1")
        return module

    @property
    def xp(self) -> Any:
        if self.name == "cuda":
            return importlib.import_module("cupy")
        return np

    @property
    def on_gpu(self) -> bool:
        return self.name != "cpu"


CPU = Target("cpu")


def vector_dot(xp):
    """a . b of two vectors on the array module xp. On the CPU numpy's own sum of products (einsum), not BLAS:
    OpenBLAS threads its dot above about 10^4 elements, and its threads then wait for the cores the numba
    kernels' threads still spin on (on 2 cores, one 31 332-element dot after a parallel product: 1.3 ms through
    BLAS, 0.1 ms through einsum; the solver takes about 25 dots per iteration). On a device: xp.dot."""
    return _einsum_dot if xp is np else xp.dot


def _einsum_dot(a, b):
    return np.einsum("i,i->", a, b)


def target_of(backend=None) -> Target:
    """The target of a Backend, a backend name, an array module (numpy -> CPU, cupy -> CUDA) or None (CPU)."""
    if backend is None or backend is np:
        return CPU
    if isinstance(backend, Target):
        return backend
    name = getattr(backend, "name", None)
    if isinstance(name, str) and hasattr(backend, "device"):
        return Target(name)
    if isinstance(backend, str):
        return Target(backend)
    if getattr(backend, "__name__", "") == "cupy":
        return Target("cuda")
    raise SpecError("backend", f"cannot tell the optimiser target of {backend!r}")


@dataclass(frozen=True, eq=False)
class DeviceCSR:
    """A CSR matrix whose arrays live on a target (numpy arrays on the CPU and in the simulator)."""

    indptr: Any
    indices: Any
    data: Any
    shape: tuple
    copies_empty: bool = False   # columns of copied control points hold no entries (their primary's do)

    @property
    def nnz(self) -> int:
        return int(self.data.shape[0])

    @classmethod
    def upload(cls, matrix, target: Target, copies_empty: bool = False) -> "DeviceCSR":
        """Three copies to the device (none on the CPU)."""
        import scipy.sparse as sp

        m = matrix if sp.isspmatrix_csr(matrix) else sp.csr_matrix(matrix)
        k = target.kernels
        return cls(k.to_device(m.indptr), k.to_device(m.indices), k.to_device(m.data), tuple(m.shape), copies_empty)


_ON_DEVICE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def influence_on_device(influence, target: Target) -> DeviceCSR:
    """The influence matrix on the target: the engine's device copy when it kept one, else uploaded once
    (cached for the life of the InfluenceMatrix)."""
    own = getattr(influence, "device_matrix", None)
    if own is not None and getattr(influence, "backend", None) == target.name:
        return own
    cache = _ON_DEVICE.setdefault(influence, {})
    if target.name not in cache:  # the stored matrix: a copied control point's entries once (InfluenceMatrix)
        cache[target.name] = DeviceCSR.upload(influence.stored_matrix, target, influence.copies is not None)
    return cache[target.name]


def _voxels_on_device(influence, target: Target):
    cache = _ON_DEVICE.setdefault(influence, {})
    key = target.name + ":voxels"
    if key not in cache:
        cache[key] = target.kernels.to_device(np.asarray(influence.voxel_indices, dtype=np.int64))
    return cache[key]


def dose_rows(influence, weights, target: Target):
    """D @ w on the target (float64, one value per influence row); weights is a target array."""
    m = influence_on_device(influence, target)
    xp = target.xp
    w = xp.ascontiguousarray(weights, dtype=xp.float64)
    if m.copies_empty:  # the copies' weights act through their primary's columns: D w = D_primary w'
        w = _fold_copies(influence, w, target)
    out = xp.empty(m.shape[0], dtype=xp.float64)
    target.kernels.csr_matvec(m.indptr, m.indices, m.data, w, out)
    return out


def _fold_copies(influence, weights, target: Target):
    """w'[p] = the summed weight of every column that repeats column p (InfluenceMatrix.copies; same dose on the
    matrix as stored; the primary columns on the target once)."""
    copies = getattr(influence, "copies", None)
    if copies is None:
        return weights  # nothing was left out: every column holds its own entries
    cache = _ON_DEVICE.setdefault(influence, {})
    key = target.name + ":primary columns"
    if key not in cache:
        cache[key] = target.kernels.to_device(copies.primary_column)
    primary_column = cache[key]
    return target.xp.bincount(primary_column, weights=weights, minlength=primary_column.shape[0])


def dose_grid(influence, weights, target: Target) -> np.ndarray:
    """The full-grid dose (float64, host) of host weights: one copy up (weights), one down (the dose)."""
    k = target.kernels
    w = np.ascontiguousarray(weights, dtype=np.float64)
    if w.shape != (influence.n_beamlets,):
        raise ValueError(f"weights need shape ({influence.n_beamlets},), got {w.shape}")
    rows = dose_rows(influence, k.to_device(w), target)
    xp = target.xp
    out = xp.zeros(influence.grid.n_voxels, dtype=xp.float64)
    out[_voxels_on_device(influence, target)] = rows
    return k.to_host(out).reshape(influence.grid.shape)
