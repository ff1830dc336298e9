"""Objective gradients against finite differences (scipy.optimize.check_grad) and hand-made cases."""
import numpy as np
import pytest
import scipy.sparse as sp
from scipy.optimize import check_grad

from simsbrt.errors import SpecError
from simsbrt.optimize.objectives import (
    FluenceObjective,
    Smoothness,
    SquaredDeviation,
    SquaredOverdose,
    SquaredUnderdose,
)


def _problem(seed=3):
    rng = np.random.default_rng(seed)
    n_vox, n_bl = 60, 25
    D = sp.random(n_vox, n_bl, density=0.3, random_state=rng, format="csr") * 2.0
    target = np.arange(0, 30)
    organ = np.arange(30, 60)
    objectives = (
        SquaredUnderdose("PTV_Eval", target, 30.0, weight=5.0),
        SquaredOverdose("PTV_Eval", target, 33.0, weight=1.0),
        SquaredOverdose("SpinalCord_PRV02", organ, 2.0, weight=10.0),
        SquaredDeviation("GTV", target[:10], 40.0, weight=0.5),
    )
    pairs = np.array([(i, i + 1) for i in range(n_bl - 1)])
    smooth = (Smoothness(pairs, n_bl, weight=0.3),)
    return FluenceObjective(D, objectives, smooth), rng.uniform(0.5, 20.0, n_bl)


def test_fluence_gradient_matches_finite_differences():
    problem, w0 = _problem()
    f = lambda w: problem.value_and_gradient(w)[0]
    g = lambda w: problem.value_and_gradient(w)[1]
    scale = np.linalg.norm(g(w0))
    assert scale > 0
    assert check_grad(f, g, w0, epsilon=1e-6) / scale < 1e-5


@pytest.mark.parametrize("cls, dose, expected", [
    (SquaredOverdose, 25.0, (27.0 - 25.0) ** 2 / 2),   # one voxel of two is 2 Gy over
    (SquaredUnderdose, 25.0, (25.0 - 20.0) ** 2 / 2),  # one voxel of two is 5 Gy under
    (SquaredDeviation, 25.0, ((20 - 25) ** 2 + (27 - 25) ** 2) / 2),
])
def test_penalty_values_by_hand(cls, dose, expected):
    objective = cls("S", np.array([0, 1]), dose)
    value, grad = objective.value_and_gradient(np.array([20.0, 27.0, 99.0]))
    assert value == pytest.approx(expected)
    assert grad[2] == 0.0  # voxels outside the structure get no gradient


def test_smoothness_is_zero_for_a_flat_fluence():
    pairs = np.array([(0, 1), (1, 2), (2, 3)])
    value, grad = Smoothness(pairs, 4, weight=2.0).value_and_gradient(np.full(4, 7.0))
    assert value == 0.0 and np.all(grad == 0.0)


def test_bad_objective_input_names_the_field():
    with pytest.raises(SpecError, match="Cord.dose_gy"):
        SquaredOverdose("Cord", np.array([1]), -3.0)
    with pytest.raises(SpecError, match="Cord.rows"):
        SquaredOverdose("Cord", np.array([], dtype=int), 3.0)
    with pytest.raises(SpecError, match="smoothness.pairs"):
        Smoothness(np.array([(0, 9)]), 4)
