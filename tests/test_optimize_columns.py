"""Merged identical columns (ColumnMap, merged operator) and the parallel CSR products of the optimiser."""
import numpy as np
import pytest
import scipy.sparse as sp

from simsbrt.dose.influence import InfluenceMatrix
from simsbrt.errors import SpecError
from simsbrt.grid import Grid
from simsbrt.optimize.columns import ColumnMap, merged_rows
from simsbrt.optimize.problem import FluenceProblem, PlanGoals, SparseOperator
from simsbrt.optimize.sib import SearchStep, bracket_search


def _random_csr(n_rows, n_cols, density, seed, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return sp.random(n_rows, n_cols, density=density, random_state=rng, format="csr", dtype=dtype)


# ------------------------------------------------------------------ parallel products
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_parallel_csr_products_equal_scipy(index_dtype):
    from simsbrt.kernels.sparse import csr_matvec

    A = _random_csr(513, 257, 0.05, 1)
    A.indices = A.indices.astype(index_dtype)
    A.indptr = A.indptr.astype(index_dtype)
    rng = np.random.default_rng(2)
    x, g = rng.normal(size=257), rng.normal(size=513)
    exact = A.astype(np.float64)
    out = np.empty(513)
    csr_matvec(A.indptr, A.indices, A.data, x, out)
    np.testing.assert_allclose(out, exact @ x, rtol=1e-12, atol=1e-12)
    op = SparseOperator(A)
    np.testing.assert_allclose(op @ x, exact @ x, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(op.T @ g, exact.T @ g, rtol=1e-12, atol=1e-12)
    # scipy's own path (float32 vector) agrees to float32 precision
    ref = SparseOperator(A, parallel=False)
    np.testing.assert_allclose(ref @ x, exact @ x, rtol=1e-5, atol=1e-5)


def test_parallel_product_handles_empty_rows_and_rejects_wrong_lengths():
    A = sp.csr_matrix((np.array([2.0], np.float32), np.array([1]), np.array([0, 0, 1, 1])), shape=(3, 2))
    op = SparseOperator(A)
    np.testing.assert_array_equal(op @ np.array([5.0, 3.0]), [0.0, 6.0, 0.0])
    np.testing.assert_array_equal(op.T @ np.array([1.0, 1.0, 1.0]), [0.0, 2.0])
    with pytest.raises(ValueError):
        op @ np.ones(3)


# ------------------------------------------------------------------ column map
def _duplicated_matrix(seed=4):
    """D with 40 distinct columns, delivered as 95 columns: copies in a shuffled order (1, 2 or 3 copies)."""
    rng = np.random.default_rng(seed)
    distinct = _random_csr(120, 40, 0.2, seed).toarray()
    copies = np.concatenate([np.arange(40), np.arange(40), np.arange(15)])
    order = rng.permutation(len(copies))
    delivered_map = copies[order]
    # distinct indices numbered by first appearance (ColumnMap's representatives are first columns)
    first = {}
    for c in delivered_map:
        first.setdefault(int(c), len(first))
    column_map = np.array([first[int(c)] for c in delivered_map])
    full = distinct[:, delivered_map]
    return sp.csr_matrix(full.astype(np.float32)), column_map


def test_column_map_round_trip_keeps_the_dose():
    D, m = _duplicated_matrix()
    cmap = ColumnMap(m)
    assert cmap.n_delivered == 95 and cmap.n_distinct == 40
    assert sorted(np.unique(cmap.multiplicity)) == [2.0, 3.0]
    rng = np.random.default_rng(5)
    w = rng.uniform(0, 2, 95)
    x = cmap.to_distinct(w)
    assert x.sum() == pytest.approx(w.sum())                      # total MU kept
    Dd = merged_rows(D, np.arange(D.shape[0]), cmap).astype(np.float64)
    D64 = D.astype(np.float64)
    np.testing.assert_allclose(Dd @ x, D64 @ w, rtol=1e-10, atol=1e-12)
    # delivered from distinct weights: each copy gets an equal share, same dose
    w_back = cmap.to_delivered(x)
    np.testing.assert_allclose(D64 @ w_back, Dd @ x, rtol=1e-10, atol=1e-12)
    for j in range(40):
        copies = np.flatnonzero(m == j)
        np.testing.assert_allclose(w_back[copies], x[j] / len(copies))
    np.testing.assert_allclose(cmap.to_distinct(w_back), x, rtol=1e-12)
    # gradients: D^T g of every copy equals D_d^T g of its distinct column
    g = rng.normal(size=D.shape[0])
    np.testing.assert_allclose((D64.T @ g), (Dd.T @ g)[m], rtol=1e-10, atol=1e-12)


def test_merged_rows_selects_rows_and_renumbers_columns():
    D, m = _duplicated_matrix(seed=8)
    cmap = ColumnMap(m)
    rows = np.array([3, 0, 77, 119])
    Dd = merged_rows(D, rows, cmap)
    assert Dd.shape == (4, 40)
    expected = D.toarray()[rows][:, cmap.representatives]
    np.testing.assert_array_equal(Dd.toarray(), expected)


def test_merge_writes_16_bit_columns_directly_and_the_truncation_keeps_them():
    """merge_rows(narrow=True) writes the optimiser's 16-bit column indices itself (no 32-bit copy first), the same
    entries as the 32-bit merge; compact_csr keeps the index type it is given."""
    from simsbrt.kernels.sparse import compact_csr, merge_rows

    D, m = _duplicated_matrix(seed=9)
    cmap = ColumnMap(m)
    rows = np.array([5, 1, 60, 118, 2])
    wide = merge_rows(D.indptr, D.indices, D.data, rows, cmap.column_filter(), cmap.n_distinct)
    narrow = merge_rows(D.indptr, D.indices, D.data, rows, cmap.column_filter(), cmap.n_distinct, narrow=True)
    assert wide[1].dtype == np.int32 and narrow[1].dtype == np.uint16 and narrow[0].dtype == np.int32
    for a, b in zip(wide, narrow):
        np.testing.assert_array_equal(a, b)
    keep = narrow[2] > np.median(narrow[2])
    counts = np.array([keep[a:b].sum() for a, b in zip(narrow[0][:-1], narrow[0][1:])], dtype=np.int64)
    kept = compact_csr(narrow[0], narrow[1], narrow[2], keep, counts)
    assert kept[1].dtype == np.uint16
    expected = sp.csr_matrix((narrow[2], narrow[1].astype(np.int32), narrow[0]), shape=(len(rows), cmap.n_distinct))
    expected.data[~keep] = 0.0
    expected.eliminate_zeros()
    got = sp.csr_matrix((kept[2], kept[1].astype(np.int32), kept[0]), shape=expected.shape)
    np.testing.assert_array_equal(got.toarray(), expected.toarray())


def test_column_map_rejects_gaps_and_the_identity_is_free():
    with pytest.raises(SpecError, match="column_map"):
        ColumnMap(np.array([0, 2, 2]))
    with pytest.raises(SpecError, match="column_map"):
        ColumnMap(np.array([-1, 0]))
    ident = ColumnMap.identity(5)
    assert ident.is_identity
    w = np.arange(5.0)
    np.testing.assert_array_equal(ident.to_delivered(w), w)
    np.testing.assert_array_equal(ident.to_distinct(w), w)


def test_distinct_pairs_drop_duplicates_and_self_pairs():
    cmap = ColumnMap(np.array([0, 1, 2, 0, 1, 2]))  # two copies of three beamlets
    pairs = np.array([[0, 1], [1, 2], [3, 4], [4, 5], [0, 3]])
    np.testing.assert_array_equal(cmap.distinct_pairs(pairs), [[0, 1], [1, 2]])


def test_fluence_problem_on_merged_columns_matches_the_full_matrix():
    """The same optimisation with and without merging: same optimum dose (the problems are equivalent)."""
    grid = Grid((10, 10, 2), (2.0, 2.0, 2.0), (0.0, 0.0, 0.0))
    D, m = _duplicated_matrix(seed=11)
    rows = np.arange(D.shape[0])
    target = np.zeros(grid.n_voxels, bool)
    target[rows[:60]] = True
    structures = {"PTV_Eval": target.reshape(grid.shape)}
    merged = InfluenceMatrix(D, rows, grid, "cpu", "cpu", column_map=m)
    pairs = np.zeros((0, 2), dtype=np.int64)
    pm = FluenceProblem.build(merged, structures, pairs=pairs)
    pf = FluenceProblem.build(merged, structures, pairs=pairs, merge_columns=False)
    assert pm.n_beamlets == 40 and pf.n_beamlets == 95
    assert pm.operator.nnz < pf.operator.nnz
    w0 = pm.initial_weights(30.0)
    assert w0.shape == (95,)
    np.testing.assert_allclose(merged.dose(w0)[:60].mean(), 30.0, rtol=1e-5)
    from simsbrt.optimize.solvers import SolverOptions

    opts = SolverOptions(max_iter=2000, ftol=1e-14, pgtol=1e-12)
    rm = pm.optimise(PlanGoals(), options=opts)
    rf = pf.optimise(PlanGoals(), options=opts)
    assert rm.x.shape == (95,) and rf.x.shape == (95,)
    assert rm.value == pytest.approx(rf.value, rel=1e-4, abs=1e-8)
    np.testing.assert_allclose(merged.dose(rm.x), merged.dose(rf.x), atol=0.05)


def test_engine_column_map_marks_identical_columns():
    """Real engine: the cw and ccw arcs of the default layout share every angle; mapped columns are equal."""
    from simsbrt.dose.engine import compute_influence, select_rows
    from simsbrt.geometry.arcs import ArcSet, ArcSpec
    from simsbrt.geometry.beamlets import build_beamlets
    from simsbrt.phantom import build_phantom, load_spec

    ph = build_phantom(load_spec("t10_body").with_spacing(3.0))
    arcs = ArcSet(arcs=(ArcSpec(181.0, 179.0, "cw", spacing_deg=45.0), ArcSpec(179.0, 181.0, "ccw", spacing_deg=45.0)),
                  beamlet_size_mm=5.0, beamlet_margin_mm=3.0)
    beamlets = build_beamlets(arcs, ph.grid, ph.structures["PTV"])
    rows = select_rows(ph.grid, ph.structures, body_margin_mm=5.0, structure_margin_mm=5.0)
    im = compute_influence(ph.grid, ph.density, rows, beamlets)
    cmap = ColumnMap.of(im)
    assert cmap.n_distinct * 2 == cmap.n_delivered
    csc = im.matrix.tocsc()
    csc.sort_indices()
    for c in range(0, cmap.n_delivered, 7):
        rep = cmap.representatives[cmap.distinct_of[c]]
        a, b = csc[:, c], csc[:, rep]
        np.testing.assert_array_equal(a.indices, b.indices)
        np.testing.assert_array_equal(a.data, b.data)
    cp = beamlets.columns()["control_point"]
    arc = np.array([p.arc_index for p in beamlets.control_points])[cp]
    # every distinct beamlet is delivered once by each arc
    for j in range(0, cmap.n_distinct, 5):
        copies = np.flatnonzero(cmap.distinct_of == j)
        assert sorted(arc[copies]) == [0, 1]


# ------------------------------------------------------------------ search outcome
class _Fake:
    def __init__(self, goal):
        self.goal_gy = goal


def _search(limit_gy, lo=30.0, hi=51.0, n=4):
    def describe(c, goal, ok):
        return SearchStep(goal, ok, 0, () if ok else ("GTV D2% <= 51 Gy",), {})
    return bracket_search(lambda g, w: _Fake(g), lambda c: c.goal_gy <= limit_gy, describe, lo, hi, n)


def test_search_says_when_the_range_top_is_reached_and_when_a_limit_binds():
    top = _search(60.0)
    assert top.stop_reason == "range top reached" and top.best_goal_gy == 51.0 and top.lowest_failure is None
    bound = _search(44.0)
    assert bound.stop_reason == "a limit binds"
    assert 44.0 - 21.0 / 2**4 <= bound.best_goal_gy <= 44.0 < bound.lowest_failure.goal_gy
    assert [c.goal_gy for c in bound.accepted] == [s.goal_gy for s in bound.steps if s.acceptable]
    none = _search(20.0)
    assert none.stop_reason == "infeasible at the range bottom" and none.best is None and not none.accepted
