"""Bound-constrained (w >= 0) solvers for the fluence problem.

``projected_lbfgs`` is written against an array module ``xp``: with numpy it runs on the CPU,
with cupy (and the influence operator's CUDA kernels) every iteration stays on the device; only
a handful of scalars per iteration cross to the host (see projected_lbfgs). It is a projected L-BFGS with an
active set: variables at the bound whose gradient pushes outwards are frozen, the two-loop
recursion (Nocedal & Wright, Numerical Optimization, 2nd ed., Algorithm 7.4) acts on the free
ones, and a backtracking Armijo search runs along the projection arc
(Bertsekas, Nonlinear Programming, section 2.3). ``scipy_lbfgsb`` wraps scipy's L-BFGS-B (the
CPU reference; the tests hold the two to the same optimum).
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from simsbrt.errors import SpecError
from simsbrt.optimize.device import vector_dot

SOLVERS = ("projected_lbfgs", "scipy_lbfgsb")


@dataclass(frozen=True)
class SolverOptions:
    max_iter: int = 300
    memory: int = 10
    ftol: float = 1e-7          # stop when the relative decrease of F over one step is below this
    pgtol: float = 1e-8         # stop when max |projected gradient| <= pgtol * max(1, |F|)
    armijo_c1: float = 1e-4
    max_backtracks: int = 30

    def __post_init__(self):
        if int(self.max_iter) < 1:
            raise SpecError("solver.max_iter", f"must be >= 1, got {self.max_iter}")
        if int(self.memory) < 1:
            raise SpecError("solver.memory", f"must be >= 1, got {self.memory}")
        for name in ("ftol", "pgtol"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v >= 0):
                raise SpecError(f"solver.{name}", f"must be a finite number >= 0, got {v}")


@dataclass(frozen=True, eq=False)
class SolverResult:
    x: Any                      # xp array (numpy or cupy)
    value: float
    n_iter: int
    n_evaluations: int
    converged: bool
    message: str
    solver: str
    history: tuple = field(default=(), repr=False)
    memory: tuple = field(default=((), ()), repr=False)   # projected_lbfgs: its last (s, y) curvature pairs


def projected_lbfgs(fun: Callable, x0, xp=np, options: SolverOptions = SolverOptions(),
                    host_scalar: Callable = float, memory: tuple = ((), ())) -> SolverResult:
    """Minimise fun(x) -> (value, gradient) subject to x >= 0; x0 is projected first.

    memory: (s, y) curvature pairs to start from (SolverResult.memory of an earlier run on an objective with
    the same Hessian, e.g. the same dose penalties with a dose shift held fixed: simsbrt.optimize.truncation);
    the default starts without curvature information.

    host_scalar reads a device scalar on the host (one synchronisation on a GPU); per iteration the
    solver reads four (projected-gradient test, slope, curvature test, relative decrease) plus one
    per trial step (Armijo test), and fun one (the value): the two-loop recursion keeps its
    scalars on the device."""
    dot = vector_dot(xp)
    x = xp.maximum(xp.asarray(x0, dtype=xp.float64), 0.0)
    f, g = fun(x)
    n_eval = 1
    s_hist: deque = deque(memory[0], maxlen=options.memory)
    y_hist: deque = deque(memory[1], maxlen=options.memory)
    history = [f]
    message, converged = "maximum iterations reached", False
    it = 0
    for it in range(1, options.max_iter + 1):
        pg = x - xp.maximum(x - g, 0.0)
        if host_scalar(xp.max(xp.abs(pg))) <= options.pgtol * max(1.0, abs(f)):
            message, converged, it = "projected gradient below tolerance", True, it - 1
            break
        free = ~((x <= 0.0) & (g > 0.0))
        d = _two_loop_direction(g, free, s_hist, y_hist, xp, dot)
        slope = host_scalar(dot(g, d))
        if not slope < 0.0:  # not a descent direction: restart from steepest descent
            s_hist.clear()
            y_hist.clear()
            d = _two_loop_direction(g, free, s_hist, y_hist, xp, dot)
            slope = host_scalar(dot(g, d))
            if not slope < 0.0:
                message, converged = "no descent direction", True
                break
        step = 1.0
        accepted = False
        for _ in range(options.max_backtracks):
            x_new = xp.maximum(x + step * d, 0.0)
            f_new, g_new = fun(x_new)
            n_eval += 1
            if f_new <= f + options.armijo_c1 * host_scalar(dot(g, x_new - x)):
                accepted = True
                break
            step *= 0.5
        if not accepted:
            message, converged = "line search found no decrease", True
            break
        s = x_new - x
        y = g_new - g
        if host_scalar(dot(s, y) - 1e-12 * dot(y, y)) > 0.0:
            s_hist.append(s)
            y_hist.append(y)
        decrease = f - f_new
        x, f, g = x_new, f_new, g_new
        history.append(f)
        if decrease <= options.ftol * max(abs(f), 1e-300):
            message, converged = "relative decrease below ftol", True
            break
    return SolverResult(x, float(f), it, n_eval, converged, message, "projected_lbfgs", tuple(history),
                        (tuple(s_hist), tuple(y_hist)))


def _two_loop_direction(g, free, s_hist, y_hist, xp, dot):
    """-H g on the free variables (L-BFGS two-loop recursion); the first step is scaled to the iterate.
    Every scalar stays an array-module scalar (no host round trip on a device)."""
    q = xp.where(free, g, 0.0)
    if not s_hist:
        norm = xp.sqrt(dot(q, q))
        return -q / xp.where(norm > 0, norm, 1.0)
    alphas = []
    rhos = []
    for s, y in zip(reversed(s_hist), reversed(y_hist)):
        s_f = xp.where(free, s, 0.0)
        y_f = xp.where(free, y, 0.0)
        sy = dot(s_f, y_f)
        rho = 1.0 / xp.where(sy > 0, sy, xp.inf)  # 0 where sy <= 0
        a = rho * dot(s_f, q)
        q = q - a * y_f
        alphas.append(a)
        rhos.append((rho, s_f, y_f))
    s_last, y_last = rhos[0][1], rhos[0][2]
    yy = dot(y_last, y_last)
    gamma = dot(s_last, y_last) / xp.where(yy > 0, yy, 1.0)
    gamma = xp.where((yy > 0) & (gamma > 0), gamma, 1.0)
    r = gamma * q
    for (rho, s_f, y_f), a in zip(reversed(rhos), reversed(alphas)):
        b = rho * dot(y_f, r)
        r = r + (a - b) * s_f
    return -xp.where(free, r, 0.0)


def scipy_lbfgsb(fun: Callable, x0, options: SolverOptions = SolverOptions()) -> SolverResult:
    """scipy's L-BFGS-B with bounds x >= 0 (host arrays only)."""
    from scipy.optimize import minimize

    history = []
    n_eval = [0]

    def wrapped(x):
        f, g = fun(x)
        n_eval[0] += 1
        history.append(f)
        return f, np.asarray(g, dtype=np.float64)

    x0 = np.maximum(np.asarray(x0, dtype=np.float64), 0.0)
    res = minimize(wrapped, x0, jac=True, method="L-BFGS-B", bounds=[(0.0, None)] * len(x0),
                   options={"maxiter": options.max_iter, "maxcor": options.memory, "ftol": options.ftol,
                            "gtol": options.pgtol})
    return SolverResult(res.x, float(res.fun), int(res.nit), n_eval[0], bool(res.success), str(res.message),
                        "scipy_lbfgsb", tuple(history))


def minimize_nonnegative(fun: Callable, x0, solver: str = "projected_lbfgs", xp=np,
                         options: SolverOptions = SolverOptions(), host_scalar: Callable = float,
                         memory: tuple = ((), ())) -> SolverResult:
    """Dispatch to a solver by name; scipy's L-BFGS-B is CPU-only (and starts without memory)."""
    if solver == "projected_lbfgs":
        return projected_lbfgs(fun, x0, xp, options, host_scalar, memory)
    if solver == "scipy_lbfgsb":
        if xp is not np:
            raise SpecError("solver", "scipy_lbfgsb runs on the CPU only; use projected_lbfgs on a GPU")
        return scipy_lbfgsb(fun, x0, options)
    raise SpecError("solver", f"unknown solver {solver!r}; choose one of {', '.join(SOLVERS)}")
