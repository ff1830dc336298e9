"""The optimiser's CUDA kernels (kernels/cuda_sparse.py) against the CPU kernels and scipy, in the simulator.

The tests marked ``simulated`` need NUMBA_ENABLE_CUDASIM=1 before numba is imported; without it,
test_kernels_in_the_simulator runs this file in a subprocess with the simulator on.
"""
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp

pytestmark = pytest.mark.cudasim
SIMULATED = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
simulated = pytest.mark.skipif(not SIMULATED, reason="runs inside the simulator subprocess")


@pytest.mark.skipif(SIMULATED, reason="this is the simulator run itself")
def test_kernels_in_the_simulator():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    env.pop("SIMSBRT_BACKEND", None)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and "skipped" in proc.stdout  # the simulated tests ran, this one skipped


def _matrix(n_rows=37, n_cols=23, density=0.3, seed=1):
    A = sp.random(n_rows, n_cols, density=density, random_state=np.random.default_rng(seed), format="csr",
                  dtype=np.float32)
    A = A.tolil()
    A[5, :] = 0  # an empty row
    return A.tocsr()


@simulated
@pytest.mark.parametrize("lanes", [1, 32])
def test_products_equal_float64_scipy(lanes):
    from simsbrt.kernels import cuda_sparse

    A = _matrix() if lanes == 1 else _matrix(6, 50, 0.5)  # the warp kernel: 2 simulated blocks
    x = np.random.default_rng(2).normal(size=A.shape[1])
    out = np.full(A.shape[0], np.nan)
    cuda_sparse.csr_matvec(A.indptr, A.indices.astype(np.uint16), A.data, x, out, lanes)
    np.testing.assert_allclose(out, A.astype(np.float64) @ x, rtol=1e-13, atol=1e-13)


@simulated
def test_products_accumulate_in_float64():
    from simsbrt.kernels import cuda_sparse

    # float32 accumulation would lose the 1: (1e8 + 1) - 1e8 = 0 in float32
    A = sp.csr_matrix(np.array([[1e8, 1.0, -1e8]], dtype=np.float32))
    out = np.zeros(1)
    cuda_sparse.csr_matvec(A.indptr, A.indices, A.data, np.ones(3), out, 1)
    assert out[0] == 1.0


@simulated
def test_transpose_equals_the_cpu_kernel_and_scipy():
    from simsbrt.kernels import cuda_sparse, sparse

    A = _matrix()
    got = cuda_sparse.csr_transpose(A.indptr, A.indices, A.data, A.shape[1], n_blocks=5)
    ref = sparse.csr_transpose(A.indptr, A.indices, A.data, A.shape[1], n_blocks=3)
    for a, b in zip(got, ref):
        np.testing.assert_array_equal(a, b)
    T = sp.csr_matrix((got[2], got[1], got[0]), shape=A.shape[::-1])
    expected = A.T.tocsr()
    expected.sort_indices()
    np.testing.assert_array_equal(T.indptr, expected.indptr)
    np.testing.assert_array_equal(T.indices, expected.indices)
    np.testing.assert_array_equal(T.data, expected.data)


@simulated
def test_merge_equals_the_cpu_kernel():
    from simsbrt.kernels import cuda_sparse, sparse

    A = _matrix()
    rows = np.array([0, 3, 5, 7, 20, 36], dtype=np.int64)
    new_column = np.full(A.shape[1], -1, dtype=np.int64)
    new_column[::3] = np.arange(len(new_column[::3]))
    got = cuda_sparse.merge_rows(A.indptr, A.indices, A.data, rows, new_column, len(new_column[::3]))
    ref = sparse.merge_rows(A.indptr, A.indices, A.data, rows, new_column, len(new_column[::3]))
    for a, b in zip(got, ref):
        np.testing.assert_array_equal(a, b)
    dense = sp.csr_matrix((got[2], got[1], got[0]), shape=(len(rows), len(new_column[::3]))).toarray()
    np.testing.assert_array_equal(dense, A.toarray()[rows][:, ::3])


@simulated
@pytest.mark.parametrize("kind", [-1, 0, 1])
def test_penalties_equal_the_cpu_kernel_and_the_formula(kind):
    from simsbrt.kernels import cuda_sparse, sparse

    dose = np.linspace(20.0, 40.0, 17)
    rows = np.array([1, 4, 8, 9, 16])
    results = []
    for k in (cuda_sparse, sparse):
        grad, terms = np.full(17, 0.5), np.empty(5)
        k.penalty_terms(dose, rows, 30.0, kind, 0.2, grad, terms)
        results.append((grad, terms))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])
    d = dose[rows]
    r = {1: np.maximum(d - 30.0, 0.0), -1: np.maximum(30.0 - d, 0.0), 0: d - 30.0}[kind]
    np.testing.assert_allclose(results[0][1], 0.2 * r ** 2)
    expected = np.full(17, 0.5)
    expected[rows] += 2 * 0.2 * r * (-1.0 if kind < 0 else 1.0)
    np.testing.assert_allclose(results[0][0], expected)


@simulated
def test_operator_dot_test_on_the_simulated_device():
    from simsbrt.optimize.problem import SparseOperator

    A = _matrix(30, 20)
    op = SparseOperator(A, target="cudasim")
    assert op.target.kernels.__name__ == "simsbrt.kernels.cuda_sparse"
    rng = np.random.default_rng(5)
    w, v = rng.normal(size=20), rng.normal(size=30)
    assert np.dot(op @ w, v) == pytest.approx(np.dot(w, op.T @ v), rel=1e-12)
    np.testing.assert_allclose(op.T @ v, A.T.astype(np.float64) @ v, rtol=1e-12, atol=1e-12)


@simulated
def test_cuda_self_test_passes_in_the_simulator_and_catches_a_wrong_product(monkeypatch):
    import simsbrt.backend as b
    from simsbrt.kernels import cuda_sparse

    monkeypatch.setattr(b, "_SELF_TESTS", {})
    good = b.cuda_self_test("numba-cuda-simulator", "cudasim")
    assert good.passed, good.detail

    def float32_product(indptr, indices, data, x, out, lanes=None):  # a kernel summing in float32
        import scipy.sparse as sp

        m = sp.csr_matrix((data, indices, indptr), shape=(out.shape[0], x.shape[0]))
        out[:] = (m @ x.astype(np.float32)).astype(np.float32) * np.float32(1.001)

    monkeypatch.setattr(cuda_sparse, "csr_matvec", float32_product)
    monkeypatch.setattr(b, "_SELF_TESTS", {})
    bad = b.cuda_self_test("numba-cuda-simulator", "cudasim")
    assert not bad.passed and "D @ w differs from the CPU" in bad.detail


@simulated
def test_device_matrix_without_copies_gives_the_delivered_dose():
    """The engine's device copy leaves the copied control point's columns empty: a dose there folds their
    weights onto the primary's columns, and an operator asking for the copies' own columns gets them."""
    from simsbrt.dose._cudasim_check import tiny_case
    from simsbrt.dose.engine import InfluenceOptions, compute_influence
    from simsbrt.optimize.columns import ColumnMap
    from simsbrt.optimize.device import dose_rows, target_of
    from simsbrt.optimize.problem import _merged_operator

    grid, density, rows, beamlets = tiny_case()  # its third control point copies the first
    im = compute_influence(grid, density, rows, beamlets, None, InfluenceOptions(seed=7), "cudasim")
    assert im.device_matrix is not None and im.device_matrix.copies_empty
    assert im.device_matrix.nnz < im.nnz  # the copies were not built on the device
    target = target_of("cudasim")
    w = np.random.default_rng(3).uniform(0.0, 2.0, im.n_beamlets)
    expected = im.matrix.astype(np.float64) @ w
    np.testing.assert_allclose(dose_rows(im, w, target), expected, rtol=1e-12, atol=1e-15)
    used = np.arange(0, im.n_voxels, 2)
    for columns in (ColumnMap.of(im), ColumnMap.identity(im.n_beamlets)):
        op = _merged_operator(im, used, columns, target, True)
        x = columns.to_distinct(w)
        np.testing.assert_allclose(op @ x, expected[used], rtol=1e-12, atol=1e-15)
