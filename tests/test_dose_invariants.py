"""Physics invariants of the influence matrix: adjoint, linearity, positivity, beamlet sum = open
field, inverse square in vacuum, symmetry, radiological-depth scaling behind a bone slab."""
import numpy as np
import pytest

from simsbrt.dose.engine import EXACT, InfluenceOptions, compute_influence
from simsbrt.dose.fit import water_dose
from simsbrt.dose.machine import load_beam_model
from simsbrt.dose.water import open_field_beamlets
from simsbrt.geometry.arcs import ControlPoint, arc_set_from_dict
from simsbrt.geometry.beamlets import BeamletSet, build_beamlets, rectangular_field
from simsbrt.grid import Grid

BEAM = load_beam_model()


def _hetero_case(options):
    grid = Grid((16, 16, 10), (2.5, 2.5, 2.5), (-18.75, -18.75, -11.25))
    x, y, z = grid.world_coordinates_mm()
    density = np.ones(grid.shape, np.float32) * np.float32(1.0)
    density[:, 10:, :] = 1.5
    density[:4, :, :] = 0.25
    ptv = (x**2 + y**2 + z**2) <= 6.0**2
    arcs = arc_set_from_dict({"arc": [{"gantry_start_deg": 0, "gantry_stop_deg": 360, "spacing_deg": 60,
                                        "collimator_deg": 15}]})
    beamlets = build_beamlets(arcs, grid, ptv)
    rows = np.arange(0, grid.n_voxels, 3)
    return compute_influence(grid, density, rows, beamlets, BEAM, options)


@pytest.fixture(scope="module", params=["exact", "sampled"])
def hetero(request):
    return _hetero_case(EXACT if request.param == "exact" else InfluenceOptions(tail_threshold_frac=0.02, seed=3))


def test_dot_test_adjoint(hetero):
    rng = np.random.default_rng(0)
    w = rng.uniform(0, 1, hetero.n_beamlets)
    v = rng.normal(size=hetero.n_voxels)
    lhs = hetero.dose(w) @ v
    rhs = w @ hetero.gradient(v)
    assert lhs == pytest.approx(rhs, rel=1e-10)


def test_linearity(hetero):
    rng = np.random.default_rng(1)
    w1, w2 = rng.uniform(0, 2, (2, hetero.n_beamlets))
    np.testing.assert_allclose(hetero.dose(2.5 * w1 + 0.5 * w2), 2.5 * hetero.dose(w1) + 0.5 * hetero.dose(w2),
                               rtol=1e-10, atol=1e-14)


def test_values_non_negative_and_types(hetero):
    m = hetero.matrix
    assert m.data.dtype == np.float32 and m.indices.dtype == np.int32 and m.indptr.dtype == np.int32
    assert m.nnz > 0 and np.all(m.data > 0)
    assert hetero.backend == "cpu" and hetero.device == "cpu"


def test_sampling_is_deterministic_for_a_seed():
    a = _hetero_case(InfluenceOptions(tail_threshold_frac=0.02, seed=3))
    b = _hetero_case(InfluenceOptions(tail_threshold_frac=0.02, seed=3))
    c = _hetero_case(InfluenceOptions(tail_threshold_frac=0.02, seed=4))
    assert (a.matrix != b.matrix).nnz == 0
    assert (a.matrix != c.matrix).nnz > 0


def _water_column(ssd_mm, half_mm, depth_mm, step_mm=1.0, density_value=1.0):
    n = int(round(half_mm / step_mm))
    grid = Grid((2 * n + 1, int(round(depth_mm / step_mm)), 1), (step_mm, step_mm, 1.0),
                (-n * step_mm, ssd_mm - 1000.0 + 0.5 * step_mm, 0.0))
    return grid, np.full(grid.shape, density_value, np.float32)


def test_sum_of_beamlets_equals_open_field():
    field = 30.0
    grid, density = _water_column(900.0, 40.0, 200.0, step_mm=2.0)
    im = compute_influence(grid, density, np.arange(grid.n_voxels), open_field_beamlets(field), BEAM, EXACT)
    summed = im.dose(np.ones(im.n_beamlets)).reshape(grid.shape)[:, :, 0]
    x = grid.axis_mm(0)
    depth = grid.axis_mm(1) - (900.0 - 1000.0)
    X, Z = np.meshgrid(x, depth, indexing="ij")
    open_field = water_dose(BEAM, field, 900.0, X.ravel(), Z.ravel()).reshape(X.shape)
    np.testing.assert_allclose(summed, open_field, rtol=2e-5, atol=1e-12)


def test_inverse_square_along_axis_in_near_vacuum():
    grid, density = _water_column(700.0, 0.0, 600.0, step_mm=5.0, density_value=1e-9)
    im = compute_influence(grid, density, np.arange(grid.n_voxels), open_field_beamlets(20.0), BEAM, EXACT)
    d = im.dose(np.ones(im.n_beamlets))
    r = 1000.0 + grid.axis_mm(1)  # source at y = -1000
    assert np.all(d > 0)
    np.testing.assert_allclose(d * r**2, (d * r**2)[0], rtol=1e-3)
    assert d[0] / d[-1] == pytest.approx((r[-1] / r[0]) ** 2, rel=1e-3)


def test_symmetric_phantom_and_beam_give_symmetric_profile():
    grid, density = _water_column(950.0, 30.0, 120.0)
    density[:, 40:60, :] = 1.4  # a slab across the whole width keeps the phantom symmetric
    cp = ControlPoint(0, 0, 0.0, 0.0, 0.0, (0.0, 0.0, 0.0))
    field = BeamletSet(2.5, (cp,), (rectangular_field(cp, 2.5, (-10.0, 10.0), (-5.0, 7.5)),))
    im = compute_influence(grid, density, np.arange(grid.n_voxels), field, BEAM, EXACT)
    d = im.dose(np.ones(im.n_beamlets)).reshape(grid.shape)[:, :, 0]
    np.testing.assert_allclose(d, d[::-1, :], rtol=1e-6)
    assert d[30, 80] > 5 * d[5, 80]  # a real profile, not a constant


def test_bone_slab_reduces_dose_by_its_extra_radiological_depth():
    # water, SSD 100; a 20 mm slab of relative density 1.5 from 30 to 50 mm adds 10 mm of depth
    grid, water = _water_column(1000.0, 0.0, 150.0)
    slab = water.copy()
    slab[:, 30:50, :] = 1.5
    beamlets = open_field_beamlets(50.0)
    rows = np.arange(grid.n_voxels)
    d_water = compute_influence(grid, water, rows, beamlets, BEAM, EXACT).dose(np.ones(beamlets.n_beamlets))
    d_slab = compute_influence(grid, slab, rows, beamlets, BEAM, EXACT).dose(np.ones(beamlets.n_beamlets))
    depth = grid.axis_mm(1)  # surface at y = 0
    for j in range(60, 140, 10):
        z, z_equiv = depth[j], depth[j + 10]
        # same geometric distance (inverse square) but the water dose of the deeper radiological depth
        expected = d_water[j + 10] * ((1000.0 + z_equiv) / (1000.0 + z)) ** 2
        assert d_slab[j] == pytest.approx(expected, rel=1e-5)
        assert d_slab[j] < d_water[j]
    np.testing.assert_allclose(d_slab[:30], d_water[:30], rtol=1e-12)  # upstream of the slab: unchanged


def test_identical_control_points_give_identical_columns():
    from simsbrt.dose._cudasim_check import tiny_case

    grid, density, rows, beamlets = tiny_case()
    im = compute_influence(grid, density, rows, beamlets, BEAM, InfluenceOptions(tail_threshold_frac=0.05))
    off = beamlets.column_offsets
    dense = im.matrix.toarray()
    np.testing.assert_array_equal(dense[:, off[0]:off[1]], dense[:, off[2]:off[3]])
    assert dense[:, off[0]:off[1]].any()


def test_copied_control_points_are_stored_once_and_expand_to_the_kernel_layout():
    """The engine stores a copied control point's entries once; the expansion equals, array for array, the matrix
    the kernels write with the copies filled in, and dose / gradient / the optimiser's merged rows taken on the
    stored matrix equal those of the expanded one."""
    from simsbrt.dose._cudasim_check import tiny_case
    from simsbrt.dose.engine import _control_point_tables
    from simsbrt.kernels import cpu
    from simsbrt.optimize.columns import ColumnMap
    from simsbrt.optimize.device import target_of
    from simsbrt.optimize.problem import _merged_operator

    grid, density, rows, beamlets = tiny_case()  # the third control point copies the first
    options = InfluenceOptions(tail_threshold_frac=0.05, seed=11)
    im = compute_influence(grid, density, rows, beamlets, BEAM, options)
    assert im.copies is not None and "matrix" not in im._expanded
    off = beamlets.column_offsets
    assert im.stored_matrix[:, off[2]:off[3]].nnz == 0 and im.stored_matrix.nnz < im.nnz

    # the reference: the kernels with the copies written in (the engine's layout before it stored them once)
    points = grid.index_to_world_mm(np.stack(np.unravel_index(rows, grid.shape), axis=1)).astype(np.float64)
    cpf, cpi, cell_to_col, sources = _control_point_tables(beamlets, BEAM)
    depths = cpu.radiological_depths(points, sources, np.asarray(grid.origin_mm, float),
                                     np.asarray(grid.spacing_mm, float), np.asarray(grid.shape, np.int64),
                                     density.ravel())
    args = (points, depths, cpf, cpi, cell_to_col, beamlets.size_mm, BEAM.as_array(),
            np.full(len(rows), _tau(im, options)), options.window_nsigma,
            int(options.max_tail_draws), int(options.seed))
    counts = cpu.count_entries(*args, copies=True)
    offsets, nnz = cpu.exclusive_offsets(counts)
    cols, vals = cpu.fill_entries(*args, counts, offsets, nnz, copies=True)
    full = im.matrix
    assert im.nnz == nnz == full.nnz
    np.testing.assert_array_equal(full.indptr, offsets[::len(cpi)].tolist() + [nnz])
    np.testing.assert_array_equal(full.indices, cols)
    np.testing.assert_array_equal(full.data, vals)

    rng = np.random.default_rng(5)
    w, g = rng.uniform(0.0, 2.0, im.n_beamlets), rng.normal(size=im.n_voxels)
    expanded = full.astype(np.float64)
    np.testing.assert_allclose(im.dose(w), expanded @ w, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(im.gradient(g), expanded.T @ g, rtol=1e-12, atol=1e-15)
    used = np.arange(0, im.n_voxels, 2)
    for columns in (ColumnMap.of(im), ColumnMap.identity(im.n_beamlets)):
        for parallel in (False, True):
            op = _merged_operator(im, used, columns, target_of("cpu"), parallel)
            np.testing.assert_allclose(op @ columns.to_distinct(w), (expanded @ w)[used], rtol=1e-6, atol=1e-12)


def _tau(im, options):
    """The engine's sampling threshold for these options (Gy per MU)."""
    from simsbrt.dose.engine import beamlet_reference_peak_gy

    return options.tail_threshold_frac * beamlet_reference_peak_gy(BEAM, im.beamlets.size_mm)


def test_writing_the_matrix_does_not_keep_its_expansion(tmp_path):
    """A file holds every column's entries; writing it leaves the matrix holding only what it stored."""
    from simsbrt.dose._cudasim_check import tiny_case
    from simsbrt.io.influence_h5 import read_influence, write_influence

    grid, density, rows, beamlets = tiny_case()
    im = compute_influence(grid, density, rows, beamlets, BEAM, InfluenceOptions(seed=4))
    held = im.nbytes
    write_influence(tmp_path / "m.h5", im)
    assert im.nbytes == held and im.copies is not None
    back = read_influence(tmp_path / "m.h5")
    assert back.nnz == im.nnz
    np.testing.assert_array_equal(back.matrix.toarray(), im.full_matrix(keep=False).toarray())


def test_influence_rows_take_the_final_doses_depths():
    """prepare_plan_inputs traces every body voxel's depths once (the final dose's DoseGeometry) and the influence
    matrix's rows take theirs from there: the same matrix, entry for entry, as one that traces its own rows, and the
    exact final dose does not trace again (its depths are all kept). Wrong depths are refused by name."""
    import simsbrt.dose.final as final
    from simsbrt.dose.engine import exact_row_mask
    from simsbrt.errors import SpecError
    from simsbrt.tiny_case import tiny_inputs

    inputs = tiny_inputs("cpu")
    geometry = inputs.cache["final_dose_geometry"]
    influence = inputs.influence
    n_chunks = -(-len(geometry.voxels) // final.CHUNK_VOXELS)
    assert len(geometry.depth_cache) == n_chunks
    ph = inputs.phantom
    rows = np.asarray(influence.voxel_indices)
    own = compute_influence(ph.grid, ph.density, rows, influence.beamlets, None, InfluenceOptions(), "cpu",
                            exact_rows=exact_row_mask(rows, ph.structures))
    a, b = influence.stored_matrix, own.stored_matrix
    np.testing.assert_array_equal(a.indptr, b.indptr)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.data, b.data)
    n_sources = len(geometry.sources)
    flat = compute_influence(ph.grid, ph.density, rows, influence.beamlets, None, InfluenceOptions(), "cpu",
                             exact_rows=exact_row_mask(rows, ph.structures),
                             depths=np.zeros((len(rows), n_sources), np.float32))
    assert flat.stored_matrix.data.sum() != b.data.sum()        # the given depths are the ones used
    with pytest.raises(SpecError, match="depths"):
        compute_influence(ph.grid, ph.density, rows, influence.beamlets, None, InfluenceOptions(), "cpu",
                          depths=np.zeros((len(rows), 2), np.float32))
    assert geometry.voxel_depths(np.array([-5])) is None       # not a voxel of the geometry: traced by the caller
