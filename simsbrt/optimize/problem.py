"""The fluence problem: influence-matrix rows per structure, plan goals -> objective, one optimisation.

The optimiser works on the rows that carry an objective (targets, cord PRV, thecal sac, a
normal-tissue ring around the PTV); the plan verdict never comes from here but from
simsbrt.evaluate on the full-grid dose (simsbrt.optimize.plans).

Goals are in Gy; penalties are the squared under/over-doses of objectives.py (mean over the
structure's voxels). The organ limits (D0.03cc) become squared overdoses of every PRV / sac voxel
above an aim set below the limit by a safety margin, with a large weight: a near-hard maximum-dose
penalty whose gradient is exact.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import scipy.sparse as sp

from simsbrt.errors import SpecError, nonnegative_number
from simsbrt.optimize.columns import ColumnMap
from simsbrt.optimize.device import DeviceCSR, influence_on_device, target_of
from simsbrt.optimize.objectives import FluenceObjective, Smoothness, SquaredOverdose, SquaredUnderdose
from simsbrt.optimize.protocol_numbers import default_goal_values
from simsbrt.optimize.solvers import SolverOptions, SolverResult, minimize_nonnegative

log = logging.getLogger(__name__)

TARGET = "PTV_Eval"
BOOST = "GTV"
CORD_PRV = "SpinalCord_PRV02"
THECAL_SAC = "ThecalSac"
BODY = "Body"
PTV = "PTV"
RING = "_ring"            # normal tissue around the PTV (built here, not a phantom structure)
TARGET_REST = "_ptv_eval_minus_gtv"


@dataclass(frozen=True)
class ObjectiveWeights:
    """Relative importance of the penalties (dimensionless; each penalty is a mean over its voxels in Gy^2)."""

    target_underdose: float = 1.0
    target_overdose: float = 0.3
    boost_underdose: float = 1.0
    boost_overdose: float = 0.5
    organ_overdose: float = 100.0
    ring_overdose: float = 0.05
    smoothness: float = 0.02

    def __post_init__(self):
        for name, value in self.__dict__.items():
            nonnegative_number(f"weights.{name}", value)


_PROTOCOL_GOALS = default_goal_values()   # defaults from the default protocol (sib_trial); plans set their own


@dataclass(frozen=True)
class PlanGoals:
    """What one optimisation aims at (Gy).

    prescription_gy: PTV_Eval coverage goal (the plan is then normalised to D90% = this).
    boost_gy: GTV goal (SIB); None = no boost (uniform plans).
    homogeneity_frac: PTV_Eval (outside the GTV when boosting) overdose aim = prescription * this.
    boost_hot_margin_gy: GTV overdose aim = boost + this, capped at hot_spot_aim_gy.
    hot_spot_aim_gy: ceiling aimed at in the targets: the protocol's optimal D2% ceiling (sib_trial: 48 Gy).
        Boost goals above it (the search runs up to the mandatory ceiling, sib_trial: 51 Gy) push the GTV
        underdose term against this overdose aim: the GTV dose rises while staying as homogeneous as the
        plan allows, until the evaluated mandatory D2% ceiling (or another limit) fails.
    cord_prv_aim_gy / thecal_sac_aim_gy: organ maximum-dose aims (limit minus a safety margin).
    The dose defaults are the default protocol's (simsbrt.optimize.protocol_numbers); a plan takes them
    from its own protocol.
    ring_aim_frac: normal-tissue ring overdose aim as a fraction of the prescription.
    """

    prescription_gy: float = _PROTOCOL_GOALS["prescription_gy"]
    boost_gy: float | None = None
    homogeneity_frac: float = 1.08
    boost_hot_margin_gy: float = 2.0
    hot_spot_aim_gy: float = _PROTOCOL_GOALS["hot_spot_aim_gy"]
    cord_prv_aim_gy: float = _PROTOCOL_GOALS["cord_prv_aim_gy"]
    thecal_sac_aim_gy: float = _PROTOCOL_GOALS["thecal_sac_aim_gy"]
    ring_aim_frac: float = 0.6
    weights: ObjectiveWeights = ObjectiveWeights()

    def __post_init__(self):
        for name in ("prescription_gy", "homogeneity_frac", "boost_hot_margin_gy", "hot_spot_aim_gy",
                     "cord_prv_aim_gy", "thecal_sac_aim_gy", "ring_aim_frac"):
            nonnegative_number(f"goals.{name}", getattr(self, name))
        if self.prescription_gy <= 0:
            raise SpecError("goals.prescription_gy", "must be > 0 Gy")
        if self.boost_gy is not None and not (np.isfinite(self.boost_gy) and self.boost_gy > 0):
            raise SpecError("goals.boost_gy", f"must be a finite dose > 0 Gy or None, got {self.boost_gy}")

    def with_(self, **changes) -> "PlanGoals":
        return replace(self, **changes)


class SparseOperator:
    """D (rows x beamlets) and its transpose as CSR on the optimiser's target (simsbrt.optimize.device).

    Stored in float32 by default (the influence matrix's own precision; half the memory traffic of
    float64 per product). Both products are the target's compiled CSR row gather (kernels/device/
    sparse.py: numba prange on the CPU, Numba CUDA on a GPU or in the simulator), float64
    accumulation; D^T g runs on a transposed CSR copy built on the target by the row-block transpose
    kernel (at the first D^T g), so no product writes to scattered addresses. Column indices are
    16-bit where they fit.
    Results are float64, so the objective and the solver work in double precision.
    parallel=False uses scipy's (single-threaded, CPU) product instead: the reference.
    """

    def __init__(self, matrix: sp.csr_matrix, xp=np, dtype=np.float32, parallel: bool = True, target=None):
        self.target = target_of(xp) if target is None else target_of(target)
        self.xp = self.target.xp
        self.shape = tuple(matrix.shape)
        self.dtype = np.dtype(dtype)
        host = matrix if (sp.isspmatrix_csr(matrix) and matrix.dtype == self.dtype) else sp.csr_matrix(matrix, dtype=dtype)
        self._scipy = None
        if not parallel:
            if self.target.on_gpu:
                raise SpecError("parallel", "scipy's product runs on the CPU only")
            self._scipy = (host, host.T.tocsr())
            self._m = _RawCSR(host.indptr, host.indices, host.data, host.shape)
            return
        self._set(DeviceCSR.upload(host, self.target))

    @classmethod
    def on_target(cls, csr: DeviceCSR, target) -> "SparseOperator":
        """An operator on a CSR matrix already on the target (no copy)."""
        op = cls.__new__(cls)
        op.target = target_of(target)
        op.xp = op.target.xp
        op.shape = tuple(csr.shape)
        op.dtype = np.dtype(str(csr.data.dtype))
        op._scipy = None
        op._set(csr)
        return op

    def _set(self, m: DeviceCSR) -> None:
        # the products are memory-bound: 16-bit column indices where they fit (6 instead of 8 bytes per
        # non-zero; the distinct beamlets of two full arcs and the optimisation rows do)
        self._m = _narrow_indices(self.xp, m.indptr, m.indices, m.data, m.shape)
        self._mt_built = None

    @property
    def _mt(self):
        """The transposed CSR copy for D^T g, built on first use: an operator used only for D x (the full
        matrix next to a truncated one, which only forms the correction term) never pays for it."""
        if self._scipy is not None:
            return None
        if self._mt_built is None:
            m = self._m
            t_indptr, t_indices, t_data = self.target.kernels.csr_transpose(m.indptr, m.indices, m.data, m.shape[1])
            self._mt_built = _narrow_indices(self.xp, t_indptr, t_indices, t_data, m.shape[::-1])
        return self._mt_built

    @property
    def nnz(self) -> int:
        return int(self._m.nnz)

    def _apply(self, matrix, vector):
        if self._scipy is not None:
            m = self._scipy[0] if matrix is self._m else self._scipy[1]
            return (m @ vector.astype(self.dtype, copy=False)).astype(np.float64, copy=False)
        xp = self.xp
        x = xp.ascontiguousarray(vector, dtype=xp.float64)
        if x.shape != (matrix.shape[1],):
            raise ValueError(f"vector needs shape ({matrix.shape[1]},), got {x.shape}")
        out = xp.empty(matrix.shape[0], dtype=xp.float64)
        self.target.kernels.csr_matvec(matrix.indptr, matrix.indices, matrix.data, x, out)
        return out

    def __matmul__(self, vector):
        return self._apply(self._m, vector)

    @property
    def T(self) -> "_Transposed":
        return _Transposed(self)

    @property
    def fuses_penalties(self) -> bool:
        """Whether penalty_value_gradient runs here: the CPU's compiled kernels (the GPU takes the two products)."""
        return self._scipy is None and hasattr(self.target.kernels, "penalty_value_gradient")

    def penalty_value_gradient(self, vector, penalties: "RowPenalties", offset=None):
        """(value, gradient) of the per-row penalties at the dose D x (+ offset), in one pass over D
        (kernels/sparse.penalty_value_gradient): no D^T g product, and rows whose penalties are all inactive
        are not read a second time."""
        m = self._m
        x = np.ascontiguousarray(vector, dtype=np.float64)
        if x.shape != (self.shape[1],):
            raise ValueError(f"vector needs shape ({self.shape[1]},), got {x.shape}")
        kernels = self.target.kernels
        # scratch reused by every evaluation on this operator (fresh memory is slow to write: docs/speed.md)
        scratch = self.__dict__.setdefault("_penalty_scratch", {})
        if "grad_sets" not in scratch:
            scratch["grad_sets"] = np.empty((kernels.FUSED_BLOCKS, self.shape[1]))
            scratch["zero_shift"] = np.zeros(self.shape[0])
        shift = scratch["zero_shift"] if offset is None else np.ascontiguousarray(offset, dtype=np.float64)
        return kernels.penalty_value_gradient(m.indptr, m.indices, m.data, x, shift, penalties.ptr, penalties.ref_gy,
                                              penalties.kind, penalties.scale, self.shape[1], scratch["grad_sets"])


def _narrow_indices(xp, indptr, indices, data, shape):
    """A CSR with uint16 column indices when the matrix has <= 2**16 columns."""
    if shape[1] <= np.iinfo(np.uint16).max + 1 and indices.dtype != np.uint16:
        indices = indices.astype(xp.uint16)
    return _RawCSR(indptr, indices, data, tuple(shape))


@dataclass(frozen=True, eq=False)
class _RawCSR:
    indptr: Any
    indices: Any
    data: Any
    shape: tuple

    @property
    def nnz(self) -> int:
        return int(self.data.shape[0])


class _Transposed:
    def __init__(self, op: SparseOperator):
        self._op = op
        self.shape = op.shape[::-1]

    def __matmul__(self, vector):
        op = self._op
        return op._apply(op._mt if op._scipy is None else None, vector)


def beamlet_neighbour_pairs(beamlets) -> np.ndarray:
    """(n_pairs, 2) columns of neighbouring beamlets: adjacent cells in one control point and the
    same cell at consecutive control points of the same arc (the smoothness term's pairs)."""
    if beamlets is None:
        return np.zeros((0, 2), dtype=np.int64)
    cols = beamlets.columns()
    cp = cols["control_point"].astype(np.int64)
    k = cols["k"].astype(np.int64)
    l = cols["l"].astype(np.int64)
    arc_of_column = np.array([c.arc_index for c in beamlets.control_points], dtype=np.int64)[cp]
    k_off, l_off = k.min() - 1, l.min() - 1
    nk, nl = int(k.max() - k_off + 2), int(l.max() - l_off + 2)
    key = ((cp * nk) + (k - k_off)) * nl + (l - l_off)
    order = np.argsort(key)
    sorted_keys = key[order]

    def lookup(target_keys):
        pos = np.clip(np.searchsorted(sorted_keys, target_keys), 0, len(sorted_keys) - 1)
        found = sorted_keys[pos] == target_keys
        return np.where(found, order[pos], -1)

    pairs = []
    for dcp, dk, dl in ((0, 1, 0), (0, 0, 1), (1, 0, 0)):
        other = lookup(((cp + dcp) * nk + (k + dk - k_off)) * nl + (l + dl - l_off))
        ok = other >= 0
        if dcp:  # consecutive control points only within one arc
            ok &= arc_of_column[np.clip(other, 0, None)] == arc_of_column
        idx = np.flatnonzero(ok)
        pairs.append(np.stack([idx, other[idx]], axis=1))
    return np.concatenate(pairs).astype(np.int64) if pairs else np.zeros((0, 2), dtype=np.int64)


def _merged_operator(influence, used_idx: np.ndarray, columns: ColumnMap, target, parallel: bool):
    """D_d (the used rows, distinct columns) as an operator, merged on the target from its copy of D."""
    own_map = np.array_equal(columns.distinct_of, ColumnMap.of(influence).distinct_of)
    if not parallel:
        from simsbrt.optimize.columns import merged_rows

        # the merge drops the copies' columns, which the stored matrix leaves empty: the same rows
        source = influence.stored_matrix if own_map else influence.matrix
        return SparseOperator(merged_rows(source, used_idx, columns), parallel=False)
    full = influence_on_device(influence, target)
    if full.copies_empty and not own_map:
        full = DeviceCSR.upload(influence.matrix, target)  # the copies' own columns are wanted: the full matrix
    k = target.kernels
    indptr, indices, data = k.merge_rows(full.indptr, full.indices, full.data,
                                         k.to_device(np.ascontiguousarray(used_idx, dtype=np.int64)),
                                         k.to_device(columns.column_filter()), columns.n_distinct, narrow=True)
    return SparseOperator.on_target(DeviceCSR(indptr, indices, data, (len(used_idx), columns.n_distinct)), target)


RING_SAMPLINGS = (1, 2)


def check_ring_sampling(sampling) -> int:
    if sampling not in RING_SAMPLINGS:
        raise SpecError("ring_sampling", f"choose 1 (every ring voxel) or 2 (a checkerboard), got {sampling!r}")
    return sampling


def ring_mask(grid, structures: dict, inner_mm: float = 5.0, outer_mm: float = 20.0, sampling: int = 1) -> np.ndarray:
    """Body voxels between inner_mm and outer_mm from the PTV (a normal-tissue fall-off region).
    sampling 2: only the voxels with i + j + k even (a checkerboard: half the voxels, every part of the ring
    still sampled at twice the spacing; the ring's penalty is a mean over its voxels, so its scale is kept)."""
    from scipy.ndimage import distance_transform_edt

    check_ring_sampling(sampling)
    ptv = np.asarray(structures[PTV], bool)
    body = np.asarray(structures.get(BODY, np.ones(grid.shape, bool)), bool)
    dist = distance_transform_edt(~ptv, sampling=grid.spacing_mm)
    ring = body & (dist >= inner_mm) & (dist <= outer_mm) & ~ptv
    if sampling == 2:
        i, j, k = np.indices(grid.shape, sparse=True)
        ring &= (i + j + k) % 2 == 0
    return ring


@dataclass(frozen=True, eq=False)
class FluenceProblem:
    """The optimisation rows of an influence matrix, per structure, on one array module.

    Build with FluenceProblem.build(influence, structures, beamlets, xp).
    The optimiser's variables are the distinct beamlets (simsbrt.optimize.columns): identical
    columns of the influence matrix are merged, and the public methods (initial_weights, optimise)
    take and return delivered weights, one per influence-matrix column.
    rows: structure name -> indices into the operator's rows (xp arrays).
    n_beamlets: the number of optimisation variables (distinct beamlets).
    pairs: smoothness neighbour pairs of distinct beamlets.
    """

    operator: Any
    rows: dict
    n_beamlets: int
    pairs: np.ndarray
    weight_scale_mu: float
    xp: Any = np
    row_counts: dict = field(default_factory=dict)
    columns: ColumnMap | None = None
    target: Any = None
    voxels: np.ndarray | None = None   # flat grid index of every operator row (host array)

    @classmethod
    def build(cls, influence, structures: dict, beamlets=None, xp=np, ring_mm=(5.0, 20.0),
              pairs: np.ndarray | None = None, merge_columns: bool = True,
              parallel: bool = True, target=None, ring_sampling: int = 1) -> "FluenceProblem":
        """target (a Backend, its name or a Target; default: that of xp) runs the products and objectives;
        the merged matrix is built there from the influence matrix's copy on it. ring_sampling 2 keeps the
        normal-tissue ring's voxels of one checkerboard colour only (ring_mask)."""
        target = target_of(xp) if target is None else target_of(target)
        xp = target.xp
        voxel_indices = np.asarray(influence.voxel_indices)
        grid = influence.grid
        if TARGET not in structures or not np.any(structures[TARGET]):
            raise SpecError(TARGET, "the plan needs a non-empty PTV_Eval")
        masks = {name: np.asarray(structures[name], bool).ravel()[voxel_indices]
                 for name in (TARGET, BOOST, CORD_PRV, THECAL_SAC) if name in structures}
        if PTV in structures:
            masks[RING] = ring_mask(grid, structures, *ring_mm, sampling=ring_sampling).ravel()[voxel_indices]
        if BOOST in masks:
            masks[TARGET_REST] = masks[TARGET] & ~masks[BOOST]
        n_target = int(np.count_nonzero(np.asarray(structures[TARGET], bool)))
        if int(masks[TARGET].sum()) < n_target:
            raise SpecError("influence.rows", f"{n_target - int(masks[TARGET].sum())} PTV_Eval voxels have no "
                                              "influence-matrix row")
        used = np.zeros(len(voxel_indices), dtype=bool)
        for m in masks.values():
            used |= m
        used_idx = np.flatnonzero(used)
        columns = ColumnMap.of(influence) if merge_columns else ColumnMap.identity(influence.n_beamlets)
        operator = _merged_operator(influence, used_idx, columns, target, parallel)
        k = target.kernels
        rows = {}
        counts = {}
        for name, m in masks.items():
            r = np.flatnonzero(m[used_idx])
            counts[name] = int(r.size)
            if r.size:
                rows[name] = k.to_device(r)
        if pairs is None:
            pairs = beamlet_neighbour_pairs(beamlets if beamlets is not None else getattr(influence, "beamlets", None))
        pairs = columns.distinct_pairs(pairs)
        # typical distinct-beamlet weight (MU) giving the prescription on average in PTV_Eval: scales the
        # smoothness (D_d @ 1 summed over the target rows = the mean dose per MU of every beamlet)
        row_sums = operator @ xp.ones(columns.n_distinct, dtype=xp.float64)
        mean_per_mu = k.host_scalar(xp.mean(row_sums[rows[TARGET]])) if TARGET in rows else 0.0
        if not mean_per_mu > 0:
            raise SpecError("influence", "no beamlet reaches PTV_Eval: check the arcs and the isocentre")
        return cls(operator, rows, columns.n_distinct, np.asarray(pairs, dtype=np.int64), 1.0 / mean_per_mu,
                   xp, counts, columns, target, voxel_indices[used_idx])

    @property
    def column_map(self) -> ColumnMap:
        return self.columns if self.columns is not None else ColumnMap.identity(self.n_beamlets)

    def to_distinct(self, weights):
        """Delivered weights (one per influence column) -> the optimiser's variables (same dose)."""
        return self.column_map.to_distinct(weights, self.xp)

    def to_delivered(self, x):
        """The optimiser's variables -> delivered weights, each distinct weight split equally over its copies."""
        return self.column_map.to_delivered(x, self.xp)

    def initial_weights(self, prescription_gy: float):
        """Open uniform fluence giving the prescription as the mean PTV_Eval dose (delivered weights)."""
        return self.to_delivered(self.initial_variables(prescription_gy))

    def initial_variables(self, prescription_gy: float):
        return self.xp.full(self.n_beamlets, prescription_gy * self.weight_scale_mu, dtype=self.xp.float64)

    def has(self, name: str) -> bool:
        return name in self.rows

    def objective(self, goals: PlanGoals) -> FluenceObjective:
        """The objective as a function of the distinct-beamlet variables (see to_distinct)."""
        w = goals.weights
        rx = goals.prescription_gy
        objs = [SquaredUnderdose(TARGET, self.rows[TARGET], rx, w.target_underdose)]
        boosting = goals.boost_gy is not None and self.has(BOOST)
        if boosting:
            boost = goals.boost_gy
            objs.append(SquaredUnderdose(BOOST, self.rows[BOOST], boost, w.boost_underdose))
            objs.append(SquaredOverdose(BOOST, self.rows[BOOST], min(boost + goals.boost_hot_margin_gy,
                                                                     goals.hot_spot_aim_gy), w.boost_overdose))
            if self.has(TARGET_REST):
                objs.append(SquaredOverdose(TARGET, self.rows[TARGET_REST],
                                            min(rx * goals.homogeneity_frac, goals.hot_spot_aim_gy),
                                            w.target_overdose))
        else:
            objs.append(SquaredOverdose(TARGET, self.rows[TARGET], min(rx * goals.homogeneity_frac,
                                                                       goals.hot_spot_aim_gy), w.target_overdose))
        if self.has(CORD_PRV):
            objs.append(SquaredOverdose(CORD_PRV, self.rows[CORD_PRV], goals.cord_prv_aim_gy, w.organ_overdose))
        if self.has(THECAL_SAC):
            objs.append(SquaredOverdose(THECAL_SAC, self.rows[THECAL_SAC], goals.thecal_sac_aim_gy,
                                        w.organ_overdose))
        if self.has(RING) and w.ring_overdose > 0:
            objs.append(SquaredOverdose("ring", self.rows[RING], goals.ring_aim_frac * rx, w.ring_overdose))
        weight_objs = ()
        if len(self.pairs) and w.smoothness > 0:
            # penalise differences relative to the typical weight: dimensionless like the dose terms (Gy^2)
            scale = (1.0 / self.weight_scale_mu) ** 2  # (prescription / typical weight)^2
            weight_objs = (Smoothness(self.pairs, self.n_beamlets, w.smoothness * scale,
                                      self.__dict__.setdefault("_smoothness_operators", {})),)
        return FluenceObjective(self.operator, tuple(objs), weight_objs, self.xp, self.target)

    def optimise(self, goals: PlanGoals, weights0=None, solver: str = "projected_lbfgs",
                 options: SolverOptions = SolverOptions()) -> SolverResult:
        """Optimise from delivered weights weights0 (None: open uniform fluence); the result's x is the
        delivered weights (one per influence column); the objective works on distinct beamlets."""
        objective = self.objective(goals)
        x0 = self.initial_variables(goals.prescription_gy) if weights0 is None else self.to_distinct(weights0)
        kernels = target_of(self.target if self.target is not None else self.xp).kernels
        result = minimize_nonnegative(objective.value_and_gradient, x0, solver, self.xp, options,
                                      host_scalar=kernels.host_scalar)
        return replace(result, x=self.to_delivered(result.x))
