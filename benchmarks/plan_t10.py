"""Plan benchmark: t10_body, two full arcs (4 degree control points, 2.5 mm beamlets), 2.0 mm grid.

Times the influence matrix (dose), one uniform optimisation and the full SIB search, and reports
iterations, GTV D50% and whether every mandatory limit is met (verdict of simsbrt.evaluate).
Targets (issue 4): full SIB search <= 5 min on the 2-core CPU, <= 15 s on an H100.

    python benchmarks/plan_t10.py [--backend cpu|cuda] [--spacing-mm 2.0] [--search-steps 5] [--no-steps]

Before the plans, the "steps" table times one objective evaluation (D@w, the objective, D^T@g) on the
same rows for each optimiser configuration: full matrix with scipy (the original), merged identical
columns with scipy, merged columns with the parallel numba kernels (16-bit indices; the default).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine_line, peak_rss_mib, print_table  # noqa: E402

from simsbrt.geometry.arcs import default_arc_set  # noqa: E402
from simsbrt.optimize.plans import PlanSettings, make_plan, prepare_plan_inputs  # noqa: E402
from simsbrt.optimize.problem import FluenceProblem, PlanGoals  # noqa: E402


def time_steps(inputs, n_evals: int = 10) -> list[dict]:
    """Seconds per objective evaluation (one D@w and one D^T@g) for each optimiser configuration."""
    rows = []
    for label, merge, parallel in (("full matrix, scipy", False, False), ("merged columns, scipy", True, False),
                                   ("merged columns, numba parallel", True, True)):
        t0 = time.perf_counter()
        problem = FluenceProblem.build(inputs.influence, inputs.phantom.structures, merge_columns=merge,
                                       parallel=parallel)
        build_s = time.perf_counter() - t0
        objective = problem.objective(PlanGoals(boost_gy=45.0))
        x = problem.initial_variables(30.0)
        objective.value_and_gradient(x)
        t0 = time.perf_counter()
        for _ in range(n_evals):
            objective.value_and_gradient(x)
        per_eval = (time.perf_counter() - t0) / n_evals
        rows.append({"configuration": label, "variables": problem.n_beamlets, "nnz": problem.operator.nnz,
                     "build_s": f"{build_s:.1f}", "eval_s": f"{per_eval:.3f}",
                     "200_evals_s": f"{200 * per_eval:.0f}"})
        print(f"steps: {rows[-1]}", flush=True)
        del problem, objective
    return rows
from simsbrt.phantom import build_phantom, load_spec  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", default="cpu")
    ap.add_argument("--spacing-mm", type=float, default=2.0)
    ap.add_argument("--search-steps", type=int, default=5)
    ap.add_argument("--no-steps", action="store_true", help="skip the per-configuration evaluation timing")
    args = ap.parse_args()

    print(f"plan benchmark: t10_body, {args.spacing_mm} mm grid, two full arcs (4 deg), 2.5 mm beamlets")
    print(machine_line())
    spec = load_spec("t10_body")
    if args.spacing_mm != spec.grid.spacing_mm:
        spec = spec.with_spacing(args.spacing_mm)
    t0 = time.perf_counter()
    phantom = build_phantom(spec)
    build_s = time.perf_counter() - t0
    inputs = prepare_plan_inputs(phantom, default_arc_set(), args.backend)
    im = inputs.influence
    print(f"phantom {phantom.grid.shape} ({phantom.grid.n_voxels} voxels) built in {build_s:.1f} s; influence "
          f"{im.n_voxels} rows x {im.n_beamlets} beamlets, {im.nnz} non-zeros, {im.nbytes / 2**20:.0f} MiB, "
          f"{inputs.timings_s['dose_s']:.1f} s ({im.backend} on {im.device})")
    if not args.no_steps:
        steps = time_steps(inputs)
        print_table(steps, ["configuration", "variables", "nnz", "build_s", "eval_s", "200_evals_s"])
    settings = PlanSettings(n_bisections=args.search_steps)
    progress = lambda msg: print(f"  {msg}", file=sys.stderr, flush=True)  # noqa: E731
    rows = []
    for mode in ("uniform", "sib"):
        t0 = time.perf_counter()
        result = make_plan(inputs, mode, settings, progress)
        wall = time.perf_counter() - t0
        m = result.metrics
        rows.append({
            "mode": mode, "backend": result.backend,
            "dose_s": f"{inputs.timings_s['dose_s']:.1f}",
            "optimise_s": f"{result.timings_s['optimise_s']:.1f}",
            "plan_s": f"{wall:.1f}",
            "n_opt": max(1, len(result.search)),
            "iters": result.n_iterations,
            "GTV_D50": f"{m['GTV']['D50%']:.2f}",
            "PTV_D90": f"{m['PTV_Eval']['D90%']:.2f}",
            "PTV_D2": f"{m['PTV_Eval']['D2%']:.2f}",
            "PRV_D0.03cc": f"{m['SpinalCord_PRV02']['D0.03cc']:.2f}",
            "limits_met": "yes" if result.feasible else "no: " + "; ".join(result.binding_limits),
            "binding": ("-" if mode == "uniform" else
                        "range top reached" if result.search_stop.startswith("range top") else
                        "; ".join(result.binding_limits) or "-"),
        })
        print(f"{mode}: " + ", ".join(f"{k} {v}" for k, v in rows[-1].items()), flush=True)
        if mode == "sib":
            print(f"SIB: highest acceptable boost goal {result.boost_goal_gy} Gy, plan at goal {result.plan_goal_gy} Gy; "
                  f"search: {result.search_stop}")
            print(f"SIB GTV D2% {m['GTV']['D2%']:.2f} Gy, D98% {m['GTV']['D98%']:.2f} Gy; "
                  f"SIB search target (issue 4): <= 300 s on the 2-core CPU: "
                  f"{'met' if wall <= 300 else 'MISSED'} ({wall:.0f} s)")
    print_table(rows, ["mode", "backend", "dose_s", "optimise_s", "plan_s", "n_opt", "iters", "GTV_D50", "PTV_D90",
                       "PTV_D2", "PRV_D0.03cc", "limits_met", "binding"])
    print("GPU (H100): unmeasured: no GPU")
    print(f"peak RSS {peak_rss_mib():.0f} MiB. plan_s of sib = the full SIB search (optimisations + evaluations, "
          "including the final full-accuracy re-optimisation); n_opt = search steps.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
