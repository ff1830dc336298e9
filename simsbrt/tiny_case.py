"""A tiny planning case for the CUDA path in the simulator, and a counter of host <-> device crossings.

Test data, not planner logic (so it lives outside simsbrt.optimize, whose code holds no clinical dose).

benchmarks/gpu_acceptance.py --tiny plans this case on the CPU and on a device backend (the
simulator in CI): influence matrix (kernels/cuda.py), the optimiser's matrix merged and transposed
on the device, products and objectives (kernels/cuda_sparse.py), the SIB search's candidate doses.
CrossingCounter counts every host <-> device copy (to_device / to_host) and every device scalar read
on the host (host_scalar) of a driver module. The case is tiny on purpose: the simulator runs each
CUDA thread as a Python thread.
"""
from __future__ import annotations

import numpy as np


def tiny_phantom(stride: int = 2, z_pad_mm: float = 10.0, xy_pad_mm: float = 30.0):
    """t10_body at 3 mm, every ``stride``-th voxel (6 mm for 2), cropped to the PTV +- z_pad_mm in z and
    +- xy_pad_mm in x and y (a box inside the body: the exact final dose, one simulated thread per voxel,
    then stays short): about 200 influence rows with the margins of tiny_inputs."""
    from simsbrt.grid import Grid
    from simsbrt.phantom import build_phantom, load_spec
    from simsbrt.phantom.model import Phantom

    ph = build_phantom(load_spec("t10_body").with_spacing(3.0))
    g = ph.grid
    ptv = np.argwhere(ph.structures["PTV"])
    bounds = []
    for axis, pad_mm in ((0, xy_pad_mm), (1, xy_pad_mm), (2, z_pad_mm)):
        pad = int(round(pad_mm / g.spacing_mm[axis]))
        bounds.append((max(int(ptv[:, axis].min()) - pad, 0), min(int(ptv[:, axis].max()) + pad + 1, g.shape[axis])))
    cut = tuple(slice(lo, hi, stride) for lo, hi in bounds)
    density = np.ascontiguousarray(ph.density[cut])
    origin = tuple(g.origin_mm[a] + bounds[a][0] * g.spacing_mm[a] for a in range(3))
    grid = Grid(density.shape, tuple(s * stride for s in g.spacing_mm), origin)
    return Phantom(grid, density, {n: np.ascontiguousarray(m[cut]) for n, m in ph.structures.items()}, ph.spec)


def tiny_arcs():
    from simsbrt.geometry.arcs import default_arc_set

    return default_arc_set(spacing_deg=60.0, beamlet_size_mm=10.0, beamlet_margin_mm=0.0)


def tiny_settings():
    """A short search: one bisection, no extra rounds, few iterations (every stage still runs)."""
    from simsbrt.optimize.plans import PlanSettings
    from simsbrt.optimize.solvers import SolverOptions

    return PlanSettings(n_bisections=1, organ_rounds=0, floor_rounds=0, polish=False, cord_prv_limit_gy=32.0,
                        solver_options=SolverOptions(max_iter=12, ftol=1e-6),
                        search_solver_options=SolverOptions(max_iter=8, ftol=1e-5))


def tiny_inputs(backend):
    from simsbrt.optimize.plans import prepare_plan_inputs

    return prepare_plan_inputs(tiny_phantom(), tiny_arcs(), backend, body_margin_mm=0.0, structure_margin_mm=0.0)


class CrossingCounter:
    """Wraps a kernel module's to_device / to_host / host_scalar and counts the calls (and bytes)."""

    NAMES = ("to_device", "to_host", "host_scalar")

    def __init__(self, kernels):
        self.kernels = kernels
        self.calls = {name: 0 for name in self.NAMES}
        self.largest_copy = 0
        self._saved = {}

    def __enter__(self):
        for name in self.NAMES:
            original = getattr(self.kernels, name)
            self._saved[name] = original
            setattr(self.kernels, name, self._counted(name, original))
        return self

    def __exit__(self, *exc):
        for name, original in self._saved.items():
            setattr(self.kernels, name, original)

    def _counted(self, name, original):
        def wrapper(value):
            self.calls[name] += 1
            if name != "host_scalar":
                self.largest_copy = max(self.largest_copy, int(getattr(value, "nbytes", 0)))
            return original(value)
        return wrapper

    def snapshot(self) -> dict:
        return dict(self.calls)


def count_iteration_crossings(inputs, n_iter: int = 6) -> dict:
    """One optimisation of the tiny problem with the crossings counted (the problem built before)."""
    from simsbrt.optimize.problem import FluenceProblem, PlanGoals
    from simsbrt.optimize.solvers import SolverOptions

    problem = FluenceProblem.build(inputs.influence, inputs.phantom.structures, target=inputs.backend)
    kernels = problem.target.kernels
    goals = PlanGoals(boost_gy=40.0)
    x0 = problem.initial_variables(goals.prescription_gy)
    objective = problem.objective(goals)
    objective.value_and_gradient(x0)  # first evaluation: per-problem copies (row indices, smoothness)
    with CrossingCounter(kernels) as counter:
        from simsbrt.optimize.solvers import projected_lbfgs

        result = projected_lbfgs(objective.value_and_gradient, x0, problem.xp,
                                 SolverOptions(max_iter=n_iter, ftol=0.0, pgtol=0.0),
                                 host_scalar=lambda v: kernels.host_scalar(v))
    return {"iterations": int(result.n_iter), "evaluations": int(result.n_evaluations), **counter.calls,
            "largest_copy_bytes": counter.largest_copy, "matrix_bytes": int(problem.operator.nnz * 6),
            "n_variables": int(problem.n_beamlets), "kernels": kernels.__name__}
