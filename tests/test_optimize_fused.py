"""The CPU's one-pass penalty evaluation (kernels/sparse.penalty_value_gradient) against the two products.

FluenceObjective.value_and_gradient on the CPU evaluates the dose penalties and D^T of their gradient in one pass
over D (RowPenalties); the reference is the same objective through D w, the per-objective penalty kernels and the
transposed product (scipy's operator, which does not fuse). Overlapping structures (two terms on one row), a row
without any penalty, active and inactive penalties, and the correction term of the truncated optimisation.
"""
import numba
import numpy as np
import scipy.sparse as sp

from simsbrt.optimize.correction import CorrectedOperator
from simsbrt.optimize.objectives import (FluenceObjective, RowPenalties, SquaredDeviation, SquaredOverdose,
                                         SquaredUnderdose)
from simsbrt.optimize.problem import SparseOperator


def _case(seed=3, n_rows=700, n_cols=150):
    rng = np.random.default_rng(seed)
    matrix = sp.random(n_rows, n_cols, density=0.2, random_state=rng, format="csr", dtype=np.float32)
    target = np.arange(0, 400)
    boost = np.arange(100, 250)                    # inside the target: two terms on these rows
    organ = np.arange(450, 520)
    ring = np.arange(520, n_rows - 1)              # the last row has no penalty at all
    objectives = (SquaredUnderdose("target", target, 3.0, 2.0), SquaredOverdose("target", target, 4.0, 1.0),
                  SquaredUnderdose("boost", boost, 4.5, 3.0), SquaredOverdose("organ", organ, 1.5, 5.0),
                  SquaredDeviation("ring", ring, 1.0, 0.5))
    x = rng.uniform(0.0, 2.0, n_cols)
    return matrix, objectives, x


def _value_gradient(operator, objectives, x):
    return FluenceObjective(operator, objectives).value_and_gradient(x)


def test_one_pass_equals_the_two_products():
    matrix, objectives, x = _case()
    fused = SparseOperator(matrix)
    assert fused.fuses_penalties
    reference = SparseOperator(matrix, parallel=False)
    assert not reference.fuses_penalties
    value, grad = _value_gradient(fused, objectives, x)
    ref_value, ref_grad = _value_gradient(reference, objectives, x)
    # scipy's product runs in float32 (the reference path's own rounding); the one pass accumulates in float64
    exact = sp.csr_matrix(matrix, dtype=np.float64)
    dose = exact @ x
    expected = sum(o.value_and_gradient(dose)[0] for o in objectives)
    expected_grad = exact.T @ sum(o.value_and_gradient(dose)[1] for o in objectives)
    assert value > 0 and np.count_nonzero(grad) > 0
    np.testing.assert_allclose(value, expected, rtol=1e-12)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-10, atol=1e-12 * np.abs(expected_grad).max())
    np.testing.assert_allclose(value, ref_value, rtol=1e-5)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-4, atol=1e-5 * np.abs(ref_grad).max())


def test_one_pass_with_the_correction_term_and_any_thread_count():
    matrix, objectives, x = _case(seed=8)
    correction = np.random.default_rng(1).normal(0.0, 0.5, matrix.shape[0])
    operator = CorrectedOperator(SparseOperator(matrix), correction)
    assert operator.fuses_penalties
    exact = sp.csr_matrix(matrix, dtype=np.float64)
    dose = exact @ x + correction
    expected = sum(o.value_and_gradient(dose)[0] for o in objectives)
    expected_grad = exact.T @ sum(o.value_and_gradient(dose)[1] for o in objectives)
    threads = numba.get_num_threads()
    results = []
    try:
        for n in sorted({1, threads}):
            numba.set_num_threads(n)
            results.append(_value_gradient(operator, objectives, x))
    finally:
        numba.set_num_threads(threads)
    value, grad = results[0]
    np.testing.assert_allclose(value, expected, rtol=1e-12)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-10, atol=1e-12 * np.abs(expected_grad).max())
    for other_value, other_grad in results[1:]:   # fixed row sets: the same sums whatever the thread count
        assert other_value == value and np.array_equal(other_grad, grad)


def test_row_penalties_list_each_rows_terms_in_the_objectives_order():
    _, objectives, _ = _case()
    from simsbrt.optimize.device import target_of

    table = RowPenalties.of(objectives, 700, target_of("cpu"))
    assert table.ptr[-1] == sum(len(o.rows) for o in objectives)
    row = 120                                              # target underdose, target overdose, boost underdose
    terms = slice(table.ptr[row], table.ptr[row + 1])
    np.testing.assert_array_equal(table.kind[terms], [-1, 1, -1])
    np.testing.assert_array_equal(table.ref_gy[terms], [3.0, 4.0, 4.5])
    np.testing.assert_allclose(table.scale[terms], [2.0 / 400, 1.0 / 400, 3.0 / 150])
    assert table.ptr[699] == table.ptr[700]                # the last row: no term


def test_smoothness_in_one_pass_equals_its_two_csr_products():
    """The CPU's smoothness term (kernels/sparse.pair_differences) gives the numbers of L w and L^T (L w) through
    the compiled CSR products, to the bit (same differences, each beamlet's sum in pair order)."""
    from simsbrt.optimize.device import target_of
    from simsbrt.optimize.objectives import Smoothness

    rng = np.random.default_rng(11)
    n = 300
    pairs = np.unique(np.sort(rng.integers(0, n, size=(1200, 2)), axis=1), axis=0)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    term = Smoothness(pairs, n, weight=0.7)
    cpu = target_of(np)
    operator = term._operator(cpu)
    for seed in range(3):
        w = np.random.default_rng(seed).uniform(0.0, 3.0, n)
        value, grad = term.accumulate(w, cpu)
        diff = operator @ w
        assert value == (0.7 / len(pairs)) * np.einsum("i,i->", diff, diff)
        np.testing.assert_array_equal(grad, (2.0 * 0.7 / len(pairs)) * (operator.T @ diff))
    # and against a float64 reference of ||L w||^2 / n_pairs
    dense = np.zeros((len(pairs), n))
    dense[np.arange(len(pairs)), pairs[:, 0]] = 1.0
    dense[np.arange(len(pairs)), pairs[:, 1]] = -1.0
    np.testing.assert_allclose(grad, 2.0 * 0.7 / len(pairs) * dense.T @ (dense @ w), rtol=1e-12, atol=1e-14)
